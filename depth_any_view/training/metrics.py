"""Evaluation metrics, one module per kind; this module gathers their public names.

- `training/depth_errors.py`: depth errors by range bin and camera, rank agreement;
- `training/image_metrics.py`: PSNR and SSIM;
- `training/voxel_metrics.py`: occupancy IoU, precision, recall over known voxels;
- `training/scale_stability.py`: scale over time and across cameras, reprojection angles.

Each module states its definitions. Inputs may be numpy arrays or torch tensors.
"""

from __future__ import annotations

from depth_any_view.training.depth_errors import (
    DEFAULT_BINS,
    DEPTH_METRICS,
    DepthBin,
    DepthMetricAccumulator,
    average_ranks,
    bin_name,
    depth_metrics,
    spearman_correlation,
)
from depth_any_view.training.image_metrics import (
    psnr,
    ssim,
    ssim_map,
)
from depth_any_view.training.scale_stability import (
    OVERLAP_STRIDE,
    SAME_SURFACE_TOLERANCE,
    SCALE_CROSS_CAMERA_STD_MAX,
    SCALE_FIGURES,
    SCALE_OVERLAP_DISAGREEMENT_MAX,
    SCALE_RATIO_STD_MAX,
    SCALE_RATIO_TOLERANCE,
    SCALE_TARGETS,
    ScaleStabilityAccumulator,
    angular_reprojection_error,
    scale_targets_met,
)
from depth_any_view.training.voxel_metrics import (
    OCCUPIED_LABEL,
    UNKNOWN_LABEL,
    VoxelMetricAccumulator,
    voxel_metrics,
)

__all__ = [
    "DEFAULT_BINS", "DEPTH_METRICS", "DepthBin", "DepthMetricAccumulator", "OCCUPIED_LABEL",
    "OVERLAP_STRIDE", "SAME_SURFACE_TOLERANCE", "SCALE_CROSS_CAMERA_STD_MAX", "SCALE_FIGURES",
    "SCALE_OVERLAP_DISAGREEMENT_MAX", "SCALE_RATIO_STD_MAX", "SCALE_RATIO_TOLERANCE",
    "SCALE_TARGETS", "ScaleStabilityAccumulator", "UNKNOWN_LABEL", "VoxelMetricAccumulator",
    "angular_reprojection_error", "average_ranks", "bin_name", "depth_metrics", "psnr",
    "scale_targets_met", "spearman_correlation", "ssim", "ssim_map", "voxel_metrics",
]
