"""Benchmark inputs: one synthetic six-camera frame and the arrays derived from it.

The network in the benchmark runs with random weights (its speed does not depend on them),
so its depth and occupancy would give unrealistic point and voxel counts. The stages after
the network therefore take the frame's ground truth in the network's place: its depth
resampled to the network size (nearest) and its occupancy labels as probabilities
(occupied 0.9, free 0.1, unknown = unobserved) on the network's grid. The point cloud,
voxel list and markers then have the sizes a trained network on a real scene gives.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from depth_any_view.geometry.camera import PinholeCamera
from depth_any_view.geometry.grid import FREE, OCCUPIED, VoxelGrid

P_OCCUPIED = 0.9  # probability given to ground-truth occupied voxels
P_FREE = 0.1  # ... and to free ones
SCENE = "mixed"  # seed 0 + 'mixed' = an outdoor street scene (data/synth.py)


@dataclass(frozen=True)
class Workload:
    """One synchronized set of V views with ground truth, as the benchmark feeds it."""

    names: tuple[str, ...]  # V camera names, rig order
    frame_ids: tuple[str, ...]  # V optical frame ids
    images: np.ndarray  # (V, H, W, 3) uint8 RGB
    depth: np.ndarray  # (V, H, W) float32 metres, NaN = nothing hit
    cameras: tuple[PinholeCamera, ...]  # V calibrations of the images
    T_base_cam: np.ndarray  # (V, 4, 4) float64
    T_odom_base: np.ndarray  # (4, 4) float64
    occupancy: np.ndarray  # (nx, ny, nz) uint8 labels on `grid`
    grid: VoxelGrid  # ground-truth grid in base_link

    @property
    def num_views(self) -> int:
        """V."""
        return len(self.names)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the images, pixels."""
        return int(self.images.shape[2]), int(self.images.shape[1])

    def subset(self, num_views: int) -> Workload:
        """The first `num_views` cameras (1..V)."""
        if not 1 <= num_views <= self.num_views:
            raise ValueError(f"num_views must be 1..{self.num_views}, got {num_views}")
        n = int(num_views)
        return replace(self, names=self.names[:n], frame_ids=self.frame_ids[:n],
                       images=self.images[:n], depth=self.depth[:n], cameras=self.cameras[:n],
                       T_base_cam=self.T_base_cam[:n])


@lru_cache(maxsize=8)
def make_workload(size: tuple[int, int] = (256, 256), seed: int = 0,
                  grid_dims: int = 64) -> Workload:
    """The first frame of the synthetic sequence `seed` at `size` (width, height); cached
    and shared, so callers must not modify its arrays."""
    from depth_any_view.data.synth import generate_frames

    frame = next(iter(generate_frames(frames=1, size=tuple(size), seed=seed, scene=SCENE,
                                      grid_dims=grid_dims)))
    cams = tuple(PinholeCamera(frame.width, frame.height, frame.K[i])
                 for i in range(frame.num_views))
    return Workload(tuple(frame.camera_names), tuple(frame.frame_ids), frame.images,
                    frame.depth, cams, frame.T_base_cam, frame.T_odom_base, frame.occupancy,
                    frame.grid)


def _nearest_index(n_out: int, n_in: int) -> np.ndarray:
    """Source index of each output sample for a nearest resize along one axis."""
    return np.minimum(((np.arange(n_out) + 0.5) * n_in / n_out).astype(np.int64), n_in - 1)


def network_inputs(w: Workload, image_size: tuple[int, int]
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Depth (V, h, w) metres, intrinsics (V, 3, 3) and images (V, h, w, 3) uint8 at the
    network's image size (h, w), resampled nearest from the workload."""
    return resample_views(w.depth, w.images, w.cameras, image_size)


def resample_views(depth: np.ndarray, images: np.ndarray, cameras: Sequence[PinholeCamera],
                   image_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Depth (V, H, W) metres, images (V, H, W, 3) and their cameras resampled (nearest) to
    the network's image size (h, w): depth (V, h, w), intrinsics (V, 3, 3), images."""
    h, wd = int(image_size[0]), int(image_size[1])
    H, W = depth.shape[1:]
    rows, cols = _nearest_index(h, H), _nearest_index(wd, W)
    depth_n = np.ascontiguousarray(depth[:, rows][:, :, cols])  # (V, h, w)
    images_n = np.ascontiguousarray(images[:, rows][:, :, cols])  # (V, h, w, 3)
    K = np.stack([c.resized(wd, h).K for c in cameras])  # (V, 3, 3)
    return depth_n, K, images_n


def occupancy_volume(w: Workload, grid: VoxelGrid) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities (nx, ny, nz) float32 and observed mask (bool) on `grid` from the
    workload's labels (nearest voxel; grids share their bounds)."""
    idx = [_nearest_index(n, m) for n, m in zip(grid.dims, w.grid.dims)]
    labels = w.occupancy[np.ix_(*idx)]  # (nx, ny, nz)
    prob = np.full(labels.shape, 0.5, dtype=np.float32)
    prob[labels == OCCUPIED] = P_OCCUPIED
    prob[labels == FREE] = P_FREE
    observed = (labels == OCCUPIED) | (labels == FREE)
    return prob, observed


def pose_on_track(T0: np.ndarray, step: int, speed: float = 1.0, yaw_rate: float = 0.1,
                  period_s: float = 0.1) -> np.ndarray:
    """T_odom_base `step` periods after T0 for a robot driving at `speed` m/s forward and
    turning at `yaw_rate` rad/s (what the fusion sees on a real drive)."""
    t = step * period_s
    yaw = yaw_rate * t
    c, s = math.cos(yaw), math.sin(yaw)
    T = np.eye(4)
    T[:3, :3] = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    T[0, 3] = speed * t
    return T0 @ T
