"""Depth to points, PCL rgb packing, and temporal log-odds occupancy fusion in odom."""

from depth_any_view.mapping.fusion import (
    FusionConfig,
    OccupancyFusion,
    OccupancyGrid2D,
    ProbabilityGrid,
    UpdateStatus,
    pose_to_transform,
)
from depth_any_view.mapping.points import (
    XYZRGB_DTYPE,
    depth_to_points,
    depth_to_points_torch,
    pack_rgb,
    to_xyzrgb,
    unpack_rgb,
    voxel_downsample,
    voxel_downsample_torch,
)

__all__ = [
    "FusionConfig", "OccupancyFusion", "OccupancyGrid2D", "ProbabilityGrid", "UpdateStatus",
    "pose_to_transform", "XYZRGB_DTYPE", "depth_to_points", "depth_to_points_torch",
    "pack_rgb", "to_xyzrgb", "unpack_rgb", "voxel_downsample", "voxel_downsample_torch",
]
