"""Camera models, rig extrinsics, rigid transforms and voxel grids (numpy only)."""

from depth_any_view.geometry.camera import CalibrationError, PinholeCamera
from depth_any_view.geometry.grid import FREE, OCCUPIED, UNKNOWN, VoxelGrid
from depth_any_view.geometry.rig import Rig, RigCamera, load_rig
from depth_any_view.geometry.transforms import (
    invert_transform,
    make_transform,
    quat_to_rotmat,
    rotmat_to_quat,
    transform_points,
)

__all__ = [
    "CalibrationError", "PinholeCamera", "VoxelGrid", "FREE", "OCCUPIED", "UNKNOWN", "Rig",
    "RigCamera", "load_rig", "invert_transform", "make_transform", "quat_to_rotmat",
    "rotmat_to_quat", "transform_points",
]
