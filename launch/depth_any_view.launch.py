"""Launch the depth_any_view node with its parameters file, optionally with RViz.

    ros2 launch depth_any_view depth_any_view.launch.py
    ros2 launch depth_any_view depth_any_view.launch.py params_file:=/path/robot.yaml \
        weights:=/path/lite.safetensors use_sim_time:=true namespace:=robot1 rviz:=true

Arguments:
    params_file   parameters YAML (default: the package's config/depth_any_view.yaml)
    weights       network weights (.safetensors); empty keeps the parameters file's value
    use_sim_time  true when replaying a bag with --clock
    namespace     namespace of the node (topic parameters given as relative names follow it)
    rviz          true to start RViz with rviz/depth_any_view.rviz

Booleans are true/false in any case (True, TRUE) or 1/0, as launch's conditions read them
(`depth_any_view.ros.launch_args`). The parameters file's top key `/**/depth_any_view:`
applies to the node in any namespace.

Fast DDS: the node applies the package's profile config/fastdds_large_images.xml (a 32 MB
shared-memory segment for six cameras' images) to its own process when the environment
sets no Fast DDS profile or transports (`depth_any_view.ros.fastdds`), so this file sets
nothing; the camera drivers need the same profile (README, "Camera drivers on the same
machine").

Written against the standard launch / launch_ros API (not installable in the development
environment, present on every ROS 2 robot).
"""

# ruff's isort takes `launch` for this repository's launch/ folder; it is the ROS package.
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from depth_any_view.ros.launch_args import launch_bool

PACKAGE = "depth_any_view"
BOOL_HELP = "true or false (any case), or 1 or 0"


def _nodes(context, *args, **kwargs):
    """The node, with `weights` overriding the parameters file only when it is given, and
    RViz with rviz:=true; booleans read as launch's conditions read them (True, TRUE, 1)."""
    use_sim_time = launch_bool(LaunchConfiguration("use_sim_time").perform(context),
                               "use_sim_time")
    rviz = launch_bool(LaunchConfiguration("rviz").perform(context), "rviz")
    overrides = {"use_sim_time": use_sim_time}
    weights = LaunchConfiguration("weights").perform(context)
    if weights:
        overrides["weights"] = weights
    actions = [Node(
        package=PACKAGE,
        executable="depth_any_view_node",
        name="depth_any_view",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        emulate_tty=True,
        parameters=[LaunchConfiguration("params_file"), overrides],
    )]
    if rviz:
        actions.append(Node(
            package="rviz2",
            executable="rviz2",
            name="rviz2",
            arguments=["-d", PathJoinSubstitution([FindPackageShare(PACKAGE), "rviz",
                                                   "depth_any_view.rviz"])],
            parameters=[{"use_sim_time": use_sim_time}],
            output="screen",
        ))
    return actions


def generate_launch_description():
    """Arguments, then the node and (with rviz:=true) RViz."""
    share = FindPackageShare(PACKAGE)
    return LaunchDescription([
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([share, "config", "depth_any_view.yaml"]),
            description="Parameters YAML of the node (/**/depth_any_view: ros__parameters: ...)"),
        DeclareLaunchArgument(
            "weights", default_value="",
            description="Network weights (.safetensors); empty keeps the parameters file's"),
        DeclareLaunchArgument(
            "use_sim_time", default_value="false",
            description=f"Use /clock (bag replay with --clock): {BOOL_HELP}"),
        DeclareLaunchArgument(
            "namespace", default_value="", description="Namespace of the node"),
        DeclareLaunchArgument(
            "rviz", default_value="false",
            description=f"Start RViz with rviz/depth_any_view.rviz: {BOOL_HELP}"),
        OpaqueFunction(function=_nodes),
    ])
