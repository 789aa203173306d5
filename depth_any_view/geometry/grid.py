"""Axis-aligned voxel grids and their labels.

A grid covers [lower, upper) metres in its frame (base_link for network volumes) with
`dims` = (nx, ny, nz) voxels; arrays are indexed [i, j, k] = [x, y, z] and voxel (i, j, k)
has its centre at lower + (index + 0.5) * voxel_size. Ground-truth labels are uint8:
FREE (seen empty), OCCUPIED (holds scene surface) and UNKNOWN (never seen).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from depth_any_view.config import ConfigError

FREE = 0
OCCUPIED = 1
UNKNOWN = 255


@dataclass(frozen=True)
class VoxelGrid:
    """An axis-aligned voxel grid: bounds in metres and the number of voxels per axis."""

    lower: tuple[float, float, float]  # metres, minimum corner
    upper: tuple[float, float, float]  # metres, maximum corner
    dims: tuple[int, int, int]  # voxels along x, y, z

    def __post_init__(self) -> None:
        """Check the bounds and dims, raising ConfigError with the offending values."""
        lower = tuple(float(v) for v in self.lower)
        upper = tuple(float(v) for v in self.upper)
        dims = tuple(int(v) for v in self.dims)
        if len(lower) != 3 or len(upper) != 3 or len(dims) != 3:
            raise ConfigError("grid 'lower', 'upper' and 'dims' need 3 values each (x, y, z)")
        if not all(np.isfinite(lower + upper)) or any(u <= lo for lo, u in zip(lower, upper)):
            raise ConfigError(f"grid bounds must be finite with upper > lower, got lower="
                              f"{lower} upper={upper}")
        if any(d <= 0 for d in dims):
            raise ConfigError(f"grid 'dims' must be positive, got {dims}")
        object.__setattr__(self, "lower", lower)
        object.__setattr__(self, "upper", upper)
        object.__setattr__(self, "dims", dims)

    @classmethod
    def cube(cls, n: int, lower: tuple[float, float, float] = (-12.8, -12.8, -0.8),
             upper: tuple[float, float, float] = (12.8, 12.8, 3.2)) -> VoxelGrid:
        """An n^3 grid over the given bounds (defaults: the package's base_link volume)."""
        return cls(lower, upper, (n, n, n))

    @property
    def voxel_size(self) -> np.ndarray:
        """Edge lengths (3,) of one voxel in metres."""
        return (np.asarray(self.upper) - np.asarray(self.lower)) / np.asarray(self.dims)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape (nx, ny, nz)."""
        return self.dims

    def centers(self, dtype: Any = np.float32) -> np.ndarray:
        """Voxel centres (nx, ny, nz, 3) in the grid's frame, metres."""
        axes = [self.lower[a] + (np.arange(self.dims[a]) + 0.5) * self.voxel_size[a]
                for a in range(3)]
        gx, gy, gz = np.meshgrid(*axes, indexing="ij")
        return np.stack([gx, gy, gz], axis=-1).astype(dtype)  # (nx, ny, nz, 3)

    def points_to_index(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Voxel indices (N, 3) int64 of points (N, 3) and which points lie inside (N,)."""
        p = np.asarray(p, dtype=np.float64).reshape(-1, 3)
        finite = np.all(np.isfinite(p), axis=1)
        rel = np.where(finite[:, None], (p - np.asarray(self.lower)) / self.voxel_size, -1.0)
        idx = np.floor(np.clip(rel, -1.0, np.asarray(self.dims) + 1.0)).astype(np.int64)
        inside = finite & np.all((idx >= 0) & (idx < np.asarray(self.dims)), axis=1)
        return idx, inside

    def to_dict(self) -> dict[str, list[float] | list[int]]:
        """{'lower', 'upper', 'dims'} as plain lists, for YAML/JSON."""
        return {"lower": list(self.lower), "upper": list(self.upper), "dims": list(self.dims)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VoxelGrid:
        """Grid from {'lower', 'upper', 'dims'}; ConfigError names a missing key."""
        for key in ("lower", "upper", "dims"):
            if key not in data:
                raise ConfigError(f"grid is missing '{key}' (need lower, upper, dims)")
        return cls(tuple(data["lower"]), tuple(data["upper"]), tuple(data["dims"]))
