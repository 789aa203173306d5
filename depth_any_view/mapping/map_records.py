"""What the occupancy map reports: one update's status and the map as arrays / a 2D grid."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class UpdateStatus:
    """What one `update` did, for the node's log and diagnostics."""

    accepted: bool  # the volume was integrated
    frame: str  # 'odom' (fusing) or 'base_link' (single-frame fallback, no odometry)
    reset_reason: str | None = None  # the map was cleared first, and why
    rejected_reason: str | None = None  # why the update was refused (map untouched)
    shift_voxels: tuple[int, int, int] = (0, 0, 0)  # how far the map moved this update
    # The counts stay 0-d tensors on the map's device until read, so that an update on a
    # GPU does not wait for its kernels to count voxels nobody may look at.
    observed_count: int | torch.Tensor = 0  # map voxels that received an observation
    carved_count: int | torch.Tensor = 0  # map voxels that got a free-space miss (carving)
    held: bool = False  # not integrated on purpose (`hold`): the map stays as it was

    @property
    def observed_voxels(self) -> int:
        """Map voxels that received an observation (reads the count: a sync on a GPU)."""
        return int(self.observed_count)

    @property
    def carved_voxels(self) -> int:
        """Map voxels that received a free-space miss (ray carving)."""
        return int(self.carved_count)

    @property
    def message(self) -> str:
        """One line describing the update (for logs)."""
        if self.held:
            return f"occupancy map held in {self.frame}, not fused: {self.rejected_reason}"
        if not self.accepted:
            return f"occupancy update rejected: {self.rejected_reason}"
        carved = f", {self.carved_voxels} carved free" if self.carved_voxels else ""
        text = (f"occupancy fused in {self.frame} ({self.observed_voxels} voxels "
                f"observed{carved})")
        return text if self.reset_reason is None else f"{text}; map reset: {self.reset_reason}"


@dataclass(frozen=True)
class ProbabilityGrid:
    """The whole map as arrays: probabilities with NaN where unknown."""

    probability: np.ndarray  # (nx, ny, nz) float32, NaN = unknown
    known: np.ndarray  # (nx, ny, nz) bool
    origin: np.ndarray  # (3,) float64 metres: minimum corner of voxel (0, 0, 0) in `frame`
    voxel_size: np.ndarray  # (3,) float64 metres
    frame: str  # 'odom' or 'base_link'
    stamp_ns: int | None  # stamp of the last integrated volume


@dataclass(frozen=True)
class OccupancyGrid2D:
    """A nav_msgs/OccupancyGrid-like projection: 100 occupied, 0 free, -1 unknown."""

    data: np.ndarray  # (height=ny, width=nx) int8, row-major as OccupancyGrid.data
    resolution: float  # metres per cell
    origin: np.ndarray  # (3,) float64 metres: corner of cell (0, 0) in `frame`, z = band low
    frame: str  # 'odom' or 'base_link'
    stamp_ns: int | None  # stamp of the last integrated volume
