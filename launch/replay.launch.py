"""Replay a bag into the depth_any_view node: node (use_sim_time) + `depth-any-view replay`.

    ros2 launch depth_any_view replay.launch.py bag:=/path/to/bag
    ros2 launch depth_any_view replay.launch.py bag:=/path/to/bag rate:=0.5 loop:=true \
        params_file:=/path/robot.yaml rviz:=true

Arguments:
    bag           rosbag2 directory or .mcap / .db3 file (required)
    rate          playback speed factor (default 1.0)
    loop          true to restart the bag at its end (the clock jumps back, the node
                  resets its occupancy map)
    params_file   parameters YAML of the node (default: the package's config)
    weights       network weights (.safetensors); empty keeps the parameters file's value
    rviz          true to start RViz with rviz/depth_any_view.rviz
    delay         seconds the player waits before playing, so the node can load its
                  network and discover the topics (default 5.0)

Booleans are true/false in any case (True, TRUE) or 1/0, as launch's conditions read them.

The player publishes /clock from the bag (`--clock`) and the node runs with
use_sim_time:=true, so outputs carry the bag's stamps. It is the package's own player
(ros/replay.py), so this works without `ros2 bag`; stopping the launch stops both. Both
apply the package's Fast DDS profile (config/fastdds_large_images.xml) to themselves when
the environment sets no Fast DDS profile or transports (`depth_any_view.ros.fastdds`).
Written against the standard launch / launch_ros API (not installable in the development
environment, present on every ROS 2 robot).
"""

# ruff's isort takes `launch` for this repository's launch/ folder; it is the ROS package.
from launch import LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    EmitEvent,
    ExecuteProcess,
    IncludeLaunchDescription,
    OpaqueFunction,
    RegisterEventHandler,
)
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.substitutions import FindPackagePrefix, FindPackageShare

from depth_any_view.ros.launch_args import launch_bool

PACKAGE = "depth_any_view"
BOOL_HELP = "true or false (any case), or 1 or 0"


def _player(context, *args, **kwargs):
    """`depth-any-view replay BAG --rate R --clock [--loop] --delay D`; when it ends on its
    own (no --loop), the whole launch shuts down."""
    bag = LaunchConfiguration("bag").perform(context)
    if not bag:
        raise RuntimeError("replay.launch.py needs bag:=/path/to/bag (rosbag2 directory or "
                           ".mcap / .db3 file)")
    prefix = FindPackagePrefix(PACKAGE).perform(context)
    cmd = [PathJoinSubstitution([prefix, "lib", PACKAGE, "depth-any-view"]).perform(context),
           "replay", bag, "--clock",
           "--rate", LaunchConfiguration("rate").perform(context),
           "--delay", LaunchConfiguration("delay").perform(context)]
    if launch_bool(LaunchConfiguration("loop").perform(context), "loop"):
        cmd.append("--loop")
    player = ExecuteProcess(cmd=cmd, name="depth_any_view_replay", output="screen",
                            emulate_tty=True)
    done = RegisterEventHandler(OnProcessExit(
        target_action=player,
        on_exit=[EmitEvent(event=Shutdown(reason="bag replay finished"))]))
    return [player, done]


def generate_launch_description():
    """Arguments, the node (via depth_any_view.launch.py, use_sim_time) and the player."""
    share = FindPackageShare(PACKAGE)
    node = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(
            PathJoinSubstitution([share, "launch", "depth_any_view.launch.py"])),
        launch_arguments={
            "params_file": LaunchConfiguration("params_file"),
            "weights": LaunchConfiguration("weights"),
            "rviz": LaunchConfiguration("rviz"),
            "use_sim_time": "true",
        }.items())
    return LaunchDescription([
        DeclareLaunchArgument(
            "bag", description="rosbag2 directory or .mcap / .db3 file to replay"),
        DeclareLaunchArgument(
            "rate", default_value="1.0", description="Playback speed factor"),
        DeclareLaunchArgument(
            "loop", default_value="false",
            description=f"Restart the bag at its end (the node resets its map): {BOOL_HELP}"),
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([share, "config", "depth_any_view.yaml"]),
            description="Parameters YAML of the node (/**/depth_any_view: ros__parameters: ...)"),
        DeclareLaunchArgument(
            "weights", default_value="",
            description="Network weights (.safetensors); empty keeps the parameters file's"),
        DeclareLaunchArgument(
            "rviz", default_value="false",
            description=f"Start RViz with rviz/depth_any_view.rviz: {BOOL_HELP}"),
        DeclareLaunchArgument(
            "delay", default_value="5.0",
            description="Seconds before playing (the node loads its network meanwhile)"),
        node,
        OpaqueFunction(function=_player),
    ])
