"""depth_any_view: multi-view depth and occupancy for a calibrated camera rig (ROS 2)."""

__version__ = "0.1.0"
