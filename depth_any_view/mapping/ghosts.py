"""Ghost voxels: occupied in the fused map but free in the ground truth (evaluation)."""

from __future__ import annotations

import numpy as np

from depth_any_view.geometry.grid import FREE, OCCUPIED


def ghost_voxels(fused_probability: np.ndarray, gt_labels: np.ndarray,
                 occupied_threshold: float = 0.6, margin: int = 0) -> int:
    """Voxels occupied in the fused map but FREE in ground truth (ghosts, e.g. left behind
    by a moving obstacle).

    Args:
        fused_probability: (nx, ny, nz) fused probabilities on the ground truth's grid
            (`OccupancyFusion.sample(gt_grid, pose)`), NaN where the map is unknown.
        gt_labels: (nx, ny, nz) uint8 ground-truth labels FREE / OCCUPIED / UNKNOWN.
        occupied_threshold: fused p at or above which a voxel counts as occupied.
        margin: FREE voxels within this many voxels (Chebyshev distance) of an OCCUPIED
            one are not counted, so a surface resampled one voxel off (map and ground
            truth grids differ by a rotation) is not a ghost; 0 counts every FREE voxel.

    Returns:
        The number of voxels with p >= occupied_threshold whose label is FREE (unknown
        voxels on either side never count).
    """
    p = np.asarray(fused_probability)
    labels = np.asarray(gt_labels)
    if p.shape != labels.shape:
        raise ValueError(f"fused_probability {p.shape} and gt_labels {labels.shape} must be "
                         f"on the same grid; sample the map onto the ground truth's grid "
                         f"with OccupancyFusion.sample(grid, pose)")
    if isinstance(margin, bool) or int(margin) != margin or margin < 0:
        raise ValueError(f"ghost_voxels margin must be an integer >= 0 voxels, got {margin!r}")
    with np.errstate(invalid="ignore"):
        occupied = p >= float(occupied_threshold)  # NaN compares False: unknown
    free = labels == FREE
    if margin:
        near = labels == OCCUPIED
        for axis in range(near.ndim):  # a box dilation is separable: one axis at a time
            grown = near.copy()
            for d in range(1, int(margin) + 1):
                lo = [slice(None)] * near.ndim
                hi = [slice(None)] * near.ndim
                lo[axis], hi[axis] = slice(d, None), slice(None, -d)
                grown[tuple(lo)] |= near[tuple(hi)]
                grown[tuple(hi)] |= near[tuple(lo)]
            near = grown
        free &= ~near
    return int(np.count_nonzero(occupied & free))
