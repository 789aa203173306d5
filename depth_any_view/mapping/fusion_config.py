"""The occupancy map's configuration (`FusionConfig`) and its log-odds constants.

Probabilities are turned into log-odds with `logit`; one observation is clamped to
[p_min, p_max] before it, the accumulated belief to [clamp_min, clamp_max] (nvblox
`log_odds.h`, octomap-style clamping). Metres, seconds and radians throughout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from depth_any_view.geometry.grid import VoxelGrid

P_MIN_OBSERVATION = 0.05  # one observation never says "free" more surely than this
P_MAX_OBSERVATION = 0.95  # ... nor "occupied" more surely than this (nvblox: 1e-3 / 0.999)
P_CLAMP_MIN = 0.02  # accumulated belief is kept within [P_CLAMP_MIN, P_CLAMP_MAX] so a
P_CLAMP_MAX = 0.98  # voxel can change its mind after about two contrary observations

def logit(p: float) -> float:
    """Log-odds of a probability in (0, 1)."""
    return math.log(p / (1.0 - p))


@dataclass(frozen=True)
class FusionConfig:
    """Rolling map geometry, log-odds constants, thresholds, decay and jump limits."""

    voxel_size: tuple[float, float, float] = (0.2, 0.2, 0.2)  # metres per voxel (x, y, z)
    lower: tuple[float, float, float] = (-12.8, -12.8, -0.8)  # metres, map min corner re base
    upper: tuple[float, float, float] = (12.8, 12.8, 3.2)  # metres, map max corner re base
    p_min: float = P_MIN_OBSERVATION  # network probabilities are clamped to [p_min, p_max]
    p_max: float = P_MAX_OBSERVATION  # ... before the logit
    clamp_min: float = P_CLAMP_MIN  # accumulated belief lower bound (probability)
    clamp_max: float = P_CLAMP_MAX  # accumulated belief upper bound (probability)
    occupied_threshold: float = 0.6  # p >= this is occupied (queries, 2D grid)
    free_threshold: float = 0.4  # p <= this is free; in between is uncertain
    decay_occupied_per_s: float = 0.0  # log-odds per second occupied voxels lose; 0 = off
    decay_free_per_s: float = 0.0  # log-odds per second free voxels lose; 0 = off
    max_linear_speed: float = 5.0  # m/s; odometry moving faster is a jump (reset)
    max_angular_speed: float = 3.0  # rad/s; odometry turning faster is a jump (reset)
    jump_tolerance_m: float = 0.5  # metres allowed on top of max_linear_speed * dt
    jump_tolerance_rad: float = 0.35  # radians allowed on top of max_angular_speed * dt
    quaternion_tolerance: float = 1e-3  # reject quaternions with | |q| - 1 | above this
    interpolation: str = "trilinear"  # network grid -> map: "trilinear" or "nearest"
    observed_fraction: float = 0.5  # trilinear weight on observed voxels to count as seen
    grid_z_min: float = 0.1  # metres above base_link: lowest voxel centre in the 2D grid
    grid_z_max: float = 1.5  # metres above base_link: highest voxel centre in the 2D grid
    cpu_threads: int = 1  # torch intra-op threads for the map's work on the CPU; 0 = torch's
    carve_free_space: bool = True  # rays camera -> surface give misses (needs the depth)
    carve_probability: float = 0.35  # one miss adds logit(this) to a voxel's log-odds
    carve_stride: int = 4  # every n-th pixel row and column of the network depth casts a ray
    carve_max_range: float = 10.0  # metres from the camera beyond which nothing is carved
    carve_margin: float = 1.0  # voxels short of the surface where a ray stops carving

    def __post_init__(self) -> None:
        """Validate every field; ValueError names the field and the allowed range."""
        vs = tuple(float(v) for v in self.voxel_size)
        lo = tuple(float(v) for v in self.lower)
        up = tuple(float(v) for v in self.upper)
        if len(vs) != 3 or not all(v > 0 and math.isfinite(v) for v in vs):
            raise ValueError(f"FusionConfig.voxel_size must be 3 positive metres, got {vs}")
        if abs(vs[0] - vs[1]) > 1e-9:
            raise ValueError(f"FusionConfig.voxel_size x and y must be equal (square "
                             f"OccupancyGrid cells), got {vs}")
        if len(lo) != 3 or len(up) != 3 or not all(u > v for v, u in zip(lo, up)):
            raise ValueError(f"FusionConfig.lower/upper must be 3 values each with upper > "
                             f"lower (metres around base_link), got {lo} / {up}")
        object.__setattr__(self, "voxel_size", vs)
        object.__setattr__(self, "lower", lo)
        object.__setattr__(self, "upper", up)
        for name in ("p_min", "p_max", "clamp_min", "clamp_max", "occupied_threshold",
                     "free_threshold", "observed_fraction"):
            value = getattr(self, name)
            if not 0.0 < float(value) < 1.0:
                raise ValueError(f"FusionConfig.{name} must be in (0, 1), got {value}")
        if not self.p_min < self.p_max:
            raise ValueError(f"FusionConfig.p_min ({self.p_min}) must be < p_max "
                             f"({self.p_max})")
        if not self.clamp_min < 0.5 < self.clamp_max:
            raise ValueError(f"FusionConfig.clamp_min < 0.5 < clamp_max is required, got "
                             f"{self.clamp_min}, {self.clamp_max}")
        if not self.free_threshold <= 0.5 <= self.occupied_threshold:
            raise ValueError(f"FusionConfig.free_threshold <= 0.5 <= occupied_threshold is "
                             f"required, got {self.free_threshold}, {self.occupied_threshold}")
        for name in ("decay_occupied_per_s", "decay_free_per_s", "max_linear_speed",
                     "max_angular_speed", "jump_tolerance_m", "jump_tolerance_rad",
                     "quaternion_tolerance"):
            value = float(getattr(self, name))
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"FusionConfig.{name} must be a finite number >= 0, "
                                 f"got {getattr(self, name)}")
        if self.interpolation not in ("trilinear", "nearest"):
            raise ValueError(f"FusionConfig.interpolation must be 'trilinear' or 'nearest', "
                             f"got {self.interpolation!r}")
        if not self.grid_z_min <= self.grid_z_max:
            raise ValueError(f"FusionConfig.grid_z_min ({self.grid_z_min}) must be <= "
                             f"grid_z_max ({self.grid_z_max})")
        threads = self.cpu_threads
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
            raise ValueError(f"FusionConfig.cpu_threads must be an integer >= 0 (0 = torch's "
                             f"setting), got {threads!r}")
        if not isinstance(self.carve_free_space, (bool, np.bool_)):
            raise ValueError(f"FusionConfig.carve_free_space must be true or false, got "
                             f"{self.carve_free_space!r}")
        object.__setattr__(self, "carve_free_space", bool(self.carve_free_space))
        if not 0.0 < float(self.carve_probability) < 0.5:
            raise ValueError(f"FusionConfig.carve_probability must be in (0, 0.5) (a miss "
                             f"says 'more likely free'), got {self.carve_probability}")
        stride = self.carve_stride
        if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
            raise ValueError(f"FusionConfig.carve_stride must be an integer >= 1 pixel, "
                             f"got {stride!r}")
        if not (float(self.carve_max_range) > 0 and math.isfinite(self.carve_max_range)):
            raise ValueError(f"FusionConfig.carve_max_range must be a finite number > 0 "
                             f"metres, got {self.carve_max_range}")
        if not (float(self.carve_margin) >= 0 and math.isfinite(self.carve_margin)):
            raise ValueError(f"FusionConfig.carve_margin must be a finite number >= 0 voxels, "
                             f"got {self.carve_margin}")

    @property
    def carve_log_odds(self) -> float:
        """Log-odds one miss adds (negative): logit(carve_probability)."""
        return logit(float(self.carve_probability))

    @property
    def dims(self) -> tuple[int, int, int]:
        """Map size in voxels (nx, ny, nz): the extent rounded to whole voxels."""
        return tuple(max(1, round((u - lo) / v))
                     for lo, u, v in zip(self.lower, self.upper, self.voxel_size))

    @classmethod
    def matching(cls, grid: VoxelGrid, **overrides: Any) -> FusionConfig:
        """A config whose map has the network grid's bounds and voxel size."""
        base = {"voxel_size": tuple(float(v) for v in grid.voxel_size),
                "lower": grid.lower, "upper": grid.upper}
        names = {f.name for f in fields(cls)}
        unknown = set(overrides) - names
        if unknown:
            raise ValueError(f"unknown FusionConfig fields {sorted(unknown)}; "
                             f"known: {sorted(names)}")
        return cls(**{**base, **overrides})
