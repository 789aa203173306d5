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

Written against the standard launch / launch_ros API (not installable in the development
environment, present on every ROS 2 robot).
"""

# ruff's isort takes `launch` for this repository's launch/ folder; it is the ROS package.
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = "depth_any_view"


def _node(context, *args, **kwargs):
    """The node, with `weights` overriding the parameters file only when it is given."""
    overrides = {"use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"),
                                                value_type=bool)}
    weights = LaunchConfiguration("weights").perform(context)
    if weights:
        overrides["weights"] = weights
    return [Node(
        package=PACKAGE,
        executable="depth_any_view_node",
        name="depth_any_view",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        emulate_tty=True,
        parameters=[LaunchConfiguration("params_file"), overrides],
    )]


def generate_launch_description():
    """Arguments, the node and (with rviz:=true) RViz."""
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
            "use_sim_time", default_value="false", choices=["true", "false"],
            description="Use /clock (bag replay with --clock)"),
        DeclareLaunchArgument(
            "namespace", default_value="", description="Namespace of the node"),
        DeclareLaunchArgument(
            "rviz", default_value="false", choices=["true", "false"],
            description="Start RViz with rviz/depth_any_view.rviz"),
        OpaqueFunction(function=_node),
        Node(
            package="rviz2",
            executable="rviz2",
            name="rviz2",
            arguments=["-d", PathJoinSubstitution([share, "rviz", "depth_any_view.rviz"])],
            parameters=[{"use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"),
                                                        value_type=bool)}],
            condition=IfCondition(LaunchConfiguration("rviz")),
            output="screen",
        ),
    ])
