"""The node's default topic names, in one place.

The parameter table (`ros/params.py`) takes its topic defaults from here, and what reads or
writes the same topics without a node (the bag layer, the recorder, the demo) builds names
from the same constants with `camera_topic` and `absolute`, so a default is written once.
The contract these follow is the topic table of README "Interface".
"""

from __future__ import annotations

CAMERA_PREFIX = "/cameras"  # per-camera topics: <prefix>/<camera>/<topic>
IMAGE = "image_raw"  # input image under each camera
CAMERA_INFO = "camera_info"  # input CameraInfo under each camera
DEPTH_IMAGE = "depth/image"  # output depth (32FC1, metres) under each camera
DEPTH_CAMERA_INFO = "depth/camera_info"  # output CameraInfo of the depth image
DEPTH_CONFIDENCE = "depth/confidence"  # output confidence (32FC1, 0..1)
DEPTH_GT = "depth_gt"  # ground-truth depth beside each camera's topics in evaluation bags
ODOM = "/odom"  # input nav_msgs/Odometry
ODOMETRY_OUTPUT = "/depth_any_view/odometry"  # cameras-only odometry out
POINTS = "/depth_any_view/points"
VOXELS = "/depth_any_view/occupancy/voxels"
MARKERS = "/depth_any_view/occupancy/markers"
GRID = "/depth_any_view/occupancy/grid"
DIAGNOSTICS = "/diagnostics"
TF = "/tf"
TF_STATIC = "/tf_static"  # absolute: tf2 listens there whatever the node's namespace
OCCUPANCY_GT = "/ground_truth/occupancy"  # ground-truth voxels in evaluation bags


def absolute(topic: str) -> str:
    """`topic` as an absolute name ('/' + the name without outer slashes)."""
    return "/" + str(topic).strip("/")


def camera_topic(camera: str, topic: str, prefix: str = CAMERA_PREFIX) -> str:
    """<prefix>/<camera>/<topic> without doubled slashes (relative if `prefix` is)."""
    return f"{prefix.rstrip('/')}/{camera}/{topic.strip('/')}"
