"""Temporal log-odds occupancy fusion in a rolling voxel map that moves with the robot.

The map is an axis-aligned voxel grid in `odom` whose voxel boundaries lie on a fixed
odom lattice (multiples of the voxel size). It is centred on base_link: its bounds are
`lower`..`upper` metres around the robot, rounded to whole voxels, and when the robot
moves the map shifts by whole voxels; cells that leave it are forgotten, cells that enter
are unknown. Each network occupancy volume (probabilities and an observed mask on a
`VoxelGrid` in base_link) is resampled at the map's voxel centres through `T_odom_base`
(trilinear or nearest, one vectorised `grid_sample`): for every observed voxel the
increment logit(clamp(p, p_min, p_max)) is added to the voxel's log-odds, which is then
clamped (the nvblox `log_odds.h` recipe, with octomap-style clamping of the sum). Unobserved
voxels are untouched. An optional decay moves every voxel's log-odds toward 0 (p = 0.5)
by a rate per second, as nvblox's occupancy decay integrator does, so moving obstacles
fade; a voxel decayed all the way to 0.5 is unknown again.

Free-space carving (`carve_free_space`, on by default): when `update` also gets the set's
depth (`DepthViews`: network-size depth, intrinsics, extrinsics, optional pixel mask),
every voxel that a camera ray passes through before its surface gets one miss update of
logit(carve_probability) per set, through the same pose as the volume (mapping/carving.py:
strided rays sampled at half-voxel steps, stopped `carve_margin` voxels short of the
surface and at `carve_max_range` metres, deduplicated, surface voxels never carved).
The carving comes before the volume's increments, so an obstacle the network sees in a
voxel some ray crossed still gains. This is what clears the voxels a moving obstacle
left: the network's volume only covers what it predicts, the rays cover all the depth.

Resets: `reset(reason)`, a stamp going backwards, odometry jumping faster than the
configured speeds, or odometry appearing/disappearing. `hold(reason)` skips an update and
keeps the map (the pipeline's short odometry gaps). A pose with NaN/inf, a quaternion
that is not unit length or a matrix that is not a rigid transform is rejected (the map
is untouched) and the returned `UpdateStatus` says why. Without odometry the map is the
latest single frame in base_link (`frame == 'base_link'`).

Storage is torch (CPU or CUDA, `device`); queries return numpy. Arrays are indexed
[i, j, k] = [x, y, z]; voxel (i, j, k) has its centre at origin + (index + 0.5) * size.

Speed on the CPU: the map's tensors are small (64^3 float32 is 1 MiB), so every update and
query runs its torch ops with `FusionConfig.cpu_threads` intra-op threads (default 1) and
restores torch's setting afterwards. With torch's default of one thread per core, each of
the ~20 elementwise ops of an update waits at a barrier for every core, which on a busy
robot computer (or a 2-core machine running anything else) costs a scheduler time slice
per op (8 ms instead of 20 us measured per 64^3 add under load). Intermediate volumes are
written into buffers kept between updates.

Separable fast path: a ground robot's pose turns about z, with at most a small tilt. Then
the source x, y of a map voxel hardly depend on its height, and the trilinear (or nearest)
resampling separates: one bilinear 2D `grid_sample` over x, y that treats every z slice of
both channels as an image channel (stored channels-last), then a linear interpolation
along z in each map column (slices when the pose does not tilt, as with 2D odometry;
with a tilt, each column shifted by its own constant: a few slices times per-column
weights, or a per-voxel gather when the map's and the source's z voxels differ). Without
tilt it gives the values of the 3D `grid_sample` (to float rounding; the tests compare
them); with a tilt the x, y of each voxel are taken at the column's mid-height, at most
SEPARABLE_TOLERANCE_VOXELS of a source voxel off; poses tilted more take the general 3D
path. A 64^3 update (trilinear, one thread) went from 11 ms to about 4 ms (no tilt, or
the synthetic world's 0.0045 rad tilt).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F

from depth_any_view.geometry.grid import FREE, OCCUPIED, UNKNOWN, VoxelGrid
from depth_any_view.mapping.carving import DepthViews, carve_mask
from depth_any_view.mapping.upload import to_device

P_MIN_OBSERVATION = 0.05  # one observation never says "free" more surely than this
P_MAX_OBSERVATION = 0.95  # ... nor "occupied" more surely than this (nvblox: 1e-3 / 0.999)
P_CLAMP_MIN = 0.02  # accumulated belief is kept within [P_CLAMP_MIN, P_CLAMP_MAX] so a
P_CLAMP_MAX = 0.98  # voxel can change its mind after about two contrary observations
ODOM_FRAME = "odom"
BASE_FRAME = "base_link"


SEPARABLE_TOLERANCE_VOXELS = 0.1  # largest x / y error (source voxels) the separable
#   resampling may make by ignoring the tilt's effect on x, y (0.02 rad for the lite grid)
Z_TAPS_TOLERANCE_VOXELS = 0.02  # the tilted separable path shifts each map column by one
#   constant when the source z step per map voxel is 1 to within this spread over the
#   column (source voxels; the error is at most half of it). A tilt shortens the step by
#   1 - cos(tilt): 0.013 voxel over 64 at 0.02 rad. Larger spreads take a per-voxel gather


def _z_major(dims: tuple[int, int, int], dtype: torch.dtype, device: torch.device
             ) -> torch.Tensor:
    """An uninitialised (X, Y, Z) tensor stored z-major: a view of a contiguous (Z, X, Y)
    one, so `.permute(2, 0, 1)` is contiguous (the map's layout)."""
    X, Y, Z = dims
    return torch.empty((Z, X, Y), dtype=dtype, device=device).permute(1, 2, 0)


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


def _normalised_affine(T_src_dst: np.ndarray, src_lower: np.ndarray, src_extent: np.ndarray,
                       dst_origin: np.ndarray, dst_extent: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
    """(A (3, 3), b (3,)): a destination voxel at normalised coordinates n (per axis in
    [-1, 1]) sits at A @ n + b in the source's normalised coordinates (x, y, z order)."""
    R = T_src_dst[:3, :3]
    A = R * (dst_extent / 2.0)[None, :] / (src_extent / 2.0)[:, None]
    b = (R @ (dst_origin + dst_extent / 2.0) + T_src_dst[:3, 3] - src_lower) \
        / (src_extent / 2.0) - 1.0
    return A, b


def _rotation_angle(R: np.ndarray) -> float:
    """Angle in radians of a rotation matrix (3, 3)."""
    return float(np.arccos(np.clip((np.trace(R) - 1.0) / 2.0, -1.0, 1.0)))


def pose_to_transform(pose: Any, quaternion_tolerance: float = 1e-3) -> np.ndarray:
    """T_odom_base (4, 4) from a 4x4 matrix or a (position (3,), quaternion xyzw (4,)) pair.

    Raises ValueError saying what is wrong: NaN/inf values, a quaternion whose norm is
    off 1 by more than `quaternion_tolerance`, or a matrix that is not rigid.
    """
    if isinstance(pose, (tuple, list)) and len(pose) == 2:
        p = np.asarray(pose[0], dtype=np.float64).reshape(-1)
        q = np.asarray(pose[1], dtype=np.float64).reshape(-1)
        if p.shape != (3,) or q.shape != (4,):
            raise ValueError(f"pose (position, quaternion) needs 3 + 4 values, got "
                             f"{p.size} + {q.size}")
        if not (np.all(np.isfinite(p)) and np.all(np.isfinite(q))):
            raise ValueError(f"pose has NaN or inf: position {p.tolist()}, "
                             f"quaternion {q.tolist()}")
        with np.errstate(over="ignore"):  # |q| of 1e300 is inf: refused below
            n = float(np.linalg.norm(q))
        if not abs(n - 1.0) <= quaternion_tolerance:
            raise ValueError(f"pose quaternion {q.tolist()} is not normalised "
                             f"(norm {n:.6f}, tolerance {quaternion_tolerance})")
        x, y, z, w = q / n
        T = np.eye(4)
        T[:3, :3] = [[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]]
        T[:3, 3] = p
        return T
    T = np.asarray(pose, dtype=np.float64)
    if T.shape != (4, 4):
        raise ValueError(f"pose must be a (4, 4) T_odom_base or (position, quaternion), "
                         f"got an array of shape {T.shape}")
    if not np.all(np.isfinite(T)):
        raise ValueError("pose T_odom_base has NaN or inf")
    R = T[:3, :3]
    tol = max(quaternion_tolerance, 1e-9) * 4
    if (not np.allclose(R @ R.T, np.eye(3), atol=tol) or abs(np.linalg.det(R) - 1.0) > tol
            or not np.allclose(T[3], [0.0, 0.0, 0.0, 1.0])):
        raise ValueError("pose T_odom_base is not a rigid transform (rotation not "
                         "orthonormal or last row not [0, 0, 0, 1])")
    return T.copy()


@contextmanager
def torch_cpu_threads(threads: int, device: torch.device) -> Iterator[None]:
    """Run torch's CPU ops of the block with `threads` intra-op threads, then restore the
    previous setting (a no-op for `threads` 0 or a CUDA device).

    torch's thread count is process-wide: use it from the one thread that runs torch (the
    node's worker, the bag evaluation, the benchmark).
    """
    if threads <= 0 or device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    if before == threads:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


_Method = TypeVar("_Method", bound=Callable[..., Any])


def _map_threads(method: _Method) -> _Method:
    """Decorator: run an OccupancyFusion method under `torch_cpu_threads` of its config."""
    @functools.wraps(method)
    def wrapper(self: OccupancyFusion, *args: Any, **kwargs: Any) -> Any:
        with torch_cpu_threads(self.config.cpu_threads, self.device):
            return method(self, *args, **kwargs)
    return wrapper  # type: ignore[return-value]


class OccupancyFusion:
    """Rolling log-odds voxel map in odom, fed with network occupancy volumes."""

    def __init__(self, config: FusionConfig | None = None,
                 device: str | torch.device = "cpu") -> None:
        """Create an empty map (everything unknown) on `device`."""
        self.config = config or FusionConfig()
        self.device = torch.device(device)
        self.dims = self.config.dims
        self.voxel_size = np.asarray(self.config.voxel_size, dtype=np.float64)
        # (X, Y, Z) views of z-major storage (see _z_major): the update's volumes come out
        # of the resampling (C, Z, X, Y), and adding them to an x-major map went through
        # memory with a 4096-element stride (20x slower than the contiguous add).
        self._log_odds = _z_major(self.dims, torch.float32, self.device).zero_()
        self._known = _z_major(self.dims, torch.bool, self.device).zero_()
        self._l_min = logit(self.config.clamp_min)
        self._l_max = logit(self.config.clamp_max)
        # Normalised output coordinates of map voxel centres along each axis, (n,) each.
        self._axes = [((2 * torch.arange(n, device=self.device, dtype=torch.float32) + 1) / n
                       - 1) for n in self.dims]
        self._axes_np = [(2 * np.arange(n) + 1) / n - 1 for n in self.dims]  # float64
        self._frame: str | None = None
        self._origin_index = np.zeros(3, dtype=np.int64)  # odom lattice index of voxel 0
        self._origin = np.asarray(self.config.lower, dtype=np.float64)  # metres in frame
        self._last_stamp_ns: int | None = None
        self._last_T: np.ndarray | None = None
        self._counts = {"updates": 0, "rejected": 0, "resets": 0, "held": 0}
        self._last_reset_reason: str | None = None
        # Buffers reused between updates: the other half of the double-buffered map (for
        # shifts), the sampling grid (3, X, Y, Z) and the network-side source volume.
        self._spare_L = torch.empty_like(self._log_odds)
        self._spare_known = torch.empty_like(self._known)
        self._grid_buf = torch.empty((3, *self.dims), dtype=torch.float32,
                                     device=self.device)
        self._src_buf: torch.Tensor | None = None  # (1, 2, nx, ny, nz) of the network grid
        self._sep_buf: torch.Tensor | None = None  # (nx, ny, C, nz) channels-last source
        self._sep_grid = torch.empty((1, *self.dims[:2], 2), dtype=torch.float32,
                                     device=self.device)
        self.separable_updates = 0  # updates that took the separable fast path (tests)
        self._carve_buf = _z_major(self.dims, torch.bool, self.device)  # the map's layout

    # ------------------------------------------------------------------ state
    @property
    def frame(self) -> str:
        """'odom' while fusing with odometry, 'base_link' in the single-frame fallback."""
        return self._frame or ODOM_FRAME

    @property
    def origin(self) -> np.ndarray:
        """(3,) metres: minimum corner of voxel (0, 0, 0) in `frame`."""
        return self._origin.copy()

    @property
    def stamp_ns(self) -> int | None:
        """Stamp of the last integrated volume (None before the first or after a reset)."""
        return self._last_stamp_ns

    @_map_threads
    def stats(self) -> dict[str, Any]:
        """Counters (updates, rejected, resets, held), the last reset reason and known
        voxels."""
        return {**self._counts, "last_reset_reason": self._last_reset_reason,
                "known_voxels": int(self._known.sum()), "frame": self.frame}

    @_map_threads
    def reset(self, reason: str) -> None:
        """Forget everything (all voxels unknown, no last stamp or pose) and count it."""
        self._log_odds.zero_()
        self._known.zero_()
        self._frame = None
        self._last_stamp_ns = None
        self._last_T = None
        self._counts["resets"] += 1
        self._last_reset_reason = reason

    # ------------------------------------------------------------------ update
    @_map_threads
    def update(self, probability: np.ndarray | torch.Tensor, observed: np.ndarray | torch.Tensor,
               grid: VoxelGrid, stamp_ns: int, pose: Any = None, *,
               views: DepthViews | None = None) -> UpdateStatus:
        """Integrate one network occupancy volume (and carve free space along its rays).

        Args:
            probability: (nx, ny, nz) occupancy probabilities on `grid` (base_link); NaN
                counts as unobserved. Numpy or a tensor; a tensor on this map's GPU is used
                in place (no copy) and, to keep the set free of host syncs, not checked for
                values outside [0, 1] (they count as unobserved).
            observed: (nx, ny, nz) bool, True where the network saw the voxel.
            grid: the network's VoxelGrid in base_link.
            stamp_ns: stamp of the synchronized set, integer nanoseconds.
            pose: T_odom_base as a (4, 4) matrix or (position (3,), quaternion xyzw (4,)),
                or None without odometry (single-frame fallback in base_link).
            views: the set's depth (`DepthViews`, e.g. `DepthViews.from_prediction(pred)`);
                with `carve_free_space` on, the voxels between each camera and its surface
                get a miss. None: no carving.

        Returns:
            UpdateStatus: accepted or rejected (with the reason), any reset and its reason,
            the voxels observed and carved.
        """
        if views is not None and not isinstance(views, DepthViews):
            raise TypeError(f"views must be a DepthViews (depth, K, T_base_cam, valid), got "
                            f"{type(views).__name__}")
        if isinstance(stamp_ns, bool) or not hasattr(stamp_ns, "__index__"):
            raise TypeError(f"stamp_ns must be an integer number of nanoseconds, "
                            f"got {stamp_ns!r}")
        stamp_ns = int(stamp_ns)
        from_host = not isinstance(probability, torch.Tensor) or probability.device.type == "cpu"
        prob = to_device(probability, self.device).float()
        obs = to_device(observed, self.device).bool()
        if tuple(prob.shape) != grid.dims or tuple(obs.shape) != grid.dims:
            raise ValueError(f"probability {tuple(prob.shape)} and observed "
                             f"{tuple(obs.shape)} must both match the grid dims {grid.dims}")
        frame = BASE_FRAME if pose is None else ODOM_FRAME
        if pose is None:
            T = np.eye(4)
        else:
            try:
                T = pose_to_transform(pose, self.config.quaternion_tolerance)
            except ValueError as exc:
                return self._reject(str(exc))
        reset_reason = None
        if self._last_stamp_ns is not None:
            if stamp_ns == self._last_stamp_ns:
                return self._reject(f"duplicate stamp {stamp_ns} ns (already integrated)")
            if stamp_ns < self._last_stamp_ns:
                reset_reason = (f"stamp went backwards by "
                                f"{(self._last_stamp_ns - stamp_ns) / 1e9:.3f} s")
        if reset_reason is None and self._frame is not None and frame != self._frame:
            reset_reason = ("odometry lost: single-frame occupancy in base_link"
                            if frame == BASE_FRAME else "odometry available: fusing in odom")
        if reset_reason is None and frame == ODOM_FRAME and self._last_T is not None:
            reset_reason = self._jump_reason(T, (stamp_ns - self._last_stamp_ns) / 1e9)
        if reset_reason is not None:
            self.reset(reset_reason)
        elif frame == ODOM_FRAME and self._last_stamp_ns is not None:
            self._decay((stamp_ns - self._last_stamp_ns) / 1e9)

        shift = np.zeros(3, dtype=np.int64)
        if frame == ODOM_FRAME:
            new_index = np.rint((T[:3, 3] + np.asarray(self.config.lower)) /
                                self.voxel_size).astype(np.int64)
            if self._frame == ODOM_FRAME:
                shift = new_index - self._origin_index
                self._shift(shift)
            self._origin_index = new_index
            self._origin = new_index * self.voxel_size
        else:
            self._log_odds.zero_()  # single frame: no memory without odometry
            self._known.zero_()
            self._origin = np.asarray(self.config.lower, dtype=np.float64)
        self._frame = frame
        n_carved = 0
        if views is not None and self.config.carve_free_space:
            n_carved = self._carve(views, T)
        n_obs = self._integrate(prob, obs, grid, T, check=from_host)
        self._last_stamp_ns = stamp_ns
        self._last_T = T
        self._counts["updates"] += 1
        return UpdateStatus(True, frame, reset_reason, None,
                            tuple(int(s) for s in shift), n_obs, n_carved)

    def hold(self, reason: str) -> UpdateStatus:
        """Skip one update on purpose (e.g. a set without odometry during a short gap):
        the map, its frame, last stamp and pose stay as they were; counted as 'held'."""
        self._counts["held"] += 1
        return UpdateStatus(False, self.frame, None, reason, held=True)

    def _reject(self, reason: str) -> UpdateStatus:
        """Count and describe a refused update."""
        self._counts["rejected"] += 1
        return UpdateStatus(False, self.frame, None, reason)

    def _jump_reason(self, T: np.ndarray, dt: float) -> str | None:
        """Why the odometry step from the last pose is a jump, or None if plausible."""
        cfg = self.config
        dist = float(np.linalg.norm(T[:3, 3] - self._last_T[:3, 3]))
        angle = _rotation_angle(self._last_T[:3, :3].T @ T[:3, :3])
        if dist > cfg.max_linear_speed * dt + cfg.jump_tolerance_m:
            return f"odometry jumped {dist:.2f} m in {dt:.3f} s"
        if angle > cfg.max_angular_speed * dt + cfg.jump_tolerance_rad:
            return f"odometry turned {angle:.2f} rad in {dt:.3f} s"
        return None

    def _decay(self, dt: float) -> None:
        """Move log-odds toward 0 (p = 0.5) by the configured rates times dt seconds."""
        occ = self.config.decay_occupied_per_s * dt
        free = self.config.decay_free_per_s * dt
        if occ <= 0 and free <= 0:
            return
        L = self._log_odds
        decayed = torch.where(L > 0, (L - occ).clamp_min(0.0), (L + free).clamp_max(0.0))
        gone = self._known & (L != 0) & (decayed == 0)
        L.copy_(decayed)  # in place: the map keeps its z-major storage
        self._known &= ~gone  # fully decayed voxels are unknown again

    @_map_threads
    def carve(self, views: DepthViews, pose: Any = None) -> int:
        """Carve free space of `views` into the map as it stands (no volume, no stamp).

        `update(..., views=...)` does this for every set; this entry point is for callers
        that carve on their own (the benchmark times it alone). `pose` is T_odom_base of
        the map's last update (None in the base_link fallback). Returns the voxels carved.
        """
        if not isinstance(views, DepthViews):
            raise TypeError(f"views must be a DepthViews (depth, K, T_base_cam, valid), got "
                            f"{type(views).__name__}")
        if self._frame is None:
            raise ValueError("carve needs a map to carve into: call update first")
        if (pose is None) != (self._frame == BASE_FRAME):
            raise ValueError(f"the map is in {self._frame}: pass the pose of its last update "
                             f"(T_odom_base) when it is odom, None when it is base_link")
        T = np.eye(4) if pose is None else pose_to_transform(pose,
                                                             self.config.quaternion_tolerance)
        return int(self._carve(views, T))

    def _carve(self, views: DepthViews, T_frame_base: np.ndarray) -> torch.Tensor:
        """One miss for every voxel the views' rays cross before their surfaces; returns
        how many voxels were carved as a 0-d tensor on the map's device (not read: no
        sync) (mapping/carving.py)."""
        cfg = self.config
        mask = carve_mask(views, T_frame_base, self._origin, self.voxel_size, self.dims,
                          stride=cfg.carve_stride, max_range=cfg.carve_max_range,
                          margin=cfg.carve_margin, device=self.device, out=self._carve_buf)
        # A miss only lowers the log-odds, so clamping from below is enough. (Adding the
        # mask as uint8 is 3x faster on the CPU than as bool, which goes through a
        # float conversion; count_nonzero likewise beats a bool sum.)
        self._log_odds.add_(mask.view(torch.uint8), alpha=cfg.carve_log_odds)
        self._log_odds.clamp_min_(self._l_min)
        self._known |= mask
        return torch.count_nonzero(mask)

    def _shift(self, shift: np.ndarray) -> None:
        """Move the map contents by `shift` voxels (the map moved +shift in odom)."""
        if not np.any(shift):
            return
        new_L, new_known = self._spare_L, self._spare_known  # double buffer: no allocation
        new_L.zero_()
        new_known.zero_()
        if np.all(np.abs(shift) < np.asarray(self.dims)):
            dst, src = [], []
            for d, n in zip(shift.tolist(), self.dims):
                dst.append(slice(max(0, -d), min(n, n - d)))
                src.append(slice(max(0, d), min(n, n + d)))
            new_L[tuple(dst)] = self._log_odds[tuple(src)]
            new_known[tuple(dst)] = self._known[tuple(src)]
        self._spare_L, self._spare_known = self._log_odds, self._known
        self._log_odds, self._known = new_L, new_known

    def _sampling_grid(self, T_src_dst: np.ndarray, src_lower: np.ndarray,
                       src_extent: np.ndarray, dst_origin: np.ndarray,
                       dst_extent: np.ndarray, axes: list[torch.Tensor],
                       out: torch.Tensor | None = None) -> torch.Tensor:
        """grid_sample coordinates (1, X, Y, Z, 3) of destination voxel centres in a source.

        A destination voxel at normalised coordinate n (per axis in [-1, 1]) sits at
        c = dst_origin + (n + 1) * dst_extent / 2 in its frame, at T_src_dst @ c in the
        source frame, and at 2 * (p - src_lower) / src_extent - 1 in source normalised
        coordinates. That chain is affine, so it is built from three broadcast axes, one
        coordinate at a time into a (3, X, Y, Z) tensor (`out` when given: no allocation),
        returned as the (1, X, Y, Z, 3) view grid_sample reads through its strides.
        """
        A, b = _normalised_affine(T_src_dst, src_lower, src_extent, dst_origin, dst_extent)
        # grid_sample wants the source coordinates in (z, y, x) = (W, H, D) order.
        At = to_device(A[::-1], self.device, torch.float32)
        bt = to_device(b[::-1], self.device, torch.float32)
        ax, ay, az = axes
        g = At[:, 0, None] * ax[None, :] + bt[:, None]  # (3, X)
        g = g[:, :, None] + At[:, 1, None, None] * ay[None, None, :]  # (3, X, Y)
        z = (At[:, 2, None] * az[None, :])[:, None, None, :]  # (3, 1, 1, Z)
        if out is None:
            out = g[..., None] + z  # (3, X, Y, Z)
        else:
            torch.add(g[..., None], z, out=out)
        return out.permute(1, 2, 3, 0)[None]  # (1, X, Y, Z, 3)

    def _integrate(self, prob: torch.Tensor, obs: torch.Tensor, grid: VoxelGrid,
                   T_frame_base: np.ndarray, check: bool = True) -> torch.Tensor:
        """Resample the volume's log-odds increments at map voxel centres and add them;
        returns the voxels observed (0-d tensor on the map's device).

        The increment logit(clamp(p, p_min, p_max)) is formed on the network grid, then
        sampled with the observed mask; trilinear sampling normalises by the observed
        weight, so unobserved neighbours never dilute an observation. The intermediate
        volumes live in buffers kept between updates (same values as fresh tensors).
        """
        # NaN is unobserved. The value check reads the values on the host: on a GPU it would
        # synchronise every set, so input already on a GPU (the engine's sigmoid) skips it
        # (`check` False) and its out-of-range voxels count as unobserved. Host input (numpy,
        # CPU tensors) is checked: one min / max of the NaN-free values decides, and only
        # values outside [0, 1] lead to the voxel-wise test (an error if any is observed).
        if check:
            valid = obs & (prob == prob)  # NaN compares False: unobserved
            lo, hi = torch.aminmax(torch.nan_to_num(prob, nan=0.5))
            if not (float(lo) >= 0.0 and float(hi) <= 1.0):
                bad = valid & ~((prob >= 0) & (prob <= 1))
                if bool(bad.any()):
                    raise ValueError(f"probability must lie in [0, 1] (pass sigmoid(logits)), "
                                     f"got {float(prob[bad][0]):.4g} at an observed voxel")
        else:
            valid = obs & (prob >= 0) & (prob <= 1)  # NaN compares False: unobserved
        src_lower = np.asarray(grid.lower, dtype=np.float64)
        src_extent = np.asarray(grid.upper, dtype=np.float64) - src_lower
        T_base_frame = np.linalg.inv(T_frame_base)
        nearest = self.config.interpolation == "nearest"
        affine = self._separable_affine(T_base_frame, grid.dims, src_lower, src_extent)
        if affine is not None:  # the separable path reads a z-padded channels-last buffer
            nx, ny, nz = grid.dims
            buf = self._sep_buf
            if buf is None or tuple(buf.shape) != (nx, ny, 2, nz + 2):
                buf = self._sep_buf = torch.zeros((nx, ny, 2, nz + 2), dtype=torch.float32,
                                                  device=self.device)  # pads stay 0
            inc, weight_src = buf[:, :, 0, 1:-1], buf[:, :, 1, 1:-1]  # (nx, ny, nz) views
        else:
            src = self._src_buf
            if src is None or tuple(src.shape[2:]) != tuple(prob.shape):
                src = self._src_buf = torch.empty((1, 2, *prob.shape), dtype=torch.float32,
                                                  device=self.device)
            inc, weight_src = src[0, 0], src[0, 1]  # (nx, ny, nz) views into the buffer
        # 1.0 observed, 0.0 not (bool -> float copies are ~6x slower on the CPU than uint8)
        weight_src.copy_(valid.view(torch.uint8))
        # NaN (unobserved) -> 0.5 first, so that every increment is finite and x 0.0 zeroes
        # the unobserved ones (a multiply is ~20x cheaper than masked_fill_ on the CPU)
        torch.nan_to_num(prob, nan=0.5, out=inc)
        inc.clamp_(self.config.p_min, self.config.p_max).logit_().mul_(weight_src)
        if affine is not None:
            self.separable_updates += 1
            sampled = self._sample_separable(affine, nearest)  # (2, Z, X, Y)
        else:  # the grid read (Z, X, Y, 3) through strides: the output comes out z-major
            g = self._sampling_grid(T_base_frame, src_lower, src_extent,
                                    self._origin, np.asarray(self.dims) * self.voxel_size,
                                    self._axes, out=self._grid_buf).permute(0, 3, 1, 2, 4)
            sampled = F.grid_sample(src, g, mode="nearest" if nearest else "bilinear",
                                    padding_mode="zeros", align_corners=False)[0]  # (2, Z, X, Y)
        # the map's storage is (Z, X, Y): contiguous like `sampled`
        log_odds, known = self._log_odds.permute(2, 0, 1), self._known.permute(2, 0, 1)
        if nearest:
            seen = sampled[1] > 0.5
            step = sampled[0]  # already 0 where unobserved
        else:
            weight = sampled[1]
            seen = weight >= self.config.observed_fraction
            step = sampled[0].div_(weight.clamp_min_(self.config.observed_fraction))
            # finite (unobserved increments are 0): same as masked_fill_; uint8 for speed
            step.mul_(seen.view(torch.uint8))
        # The map's log-odds always lie in [l_min, l_max], so clamping every voxel only
        # changes the ones that just received a step.
        log_odds.add_(step)
        self._log_odds.clamp_(self._l_min, self._l_max)
        known.logical_or_(seen)
        return torch.count_nonzero(seen)  # 0-d tensor: read lazily by UpdateStatus

    def _separable_affine(self, T_base_frame: np.ndarray, src_dims: tuple[int, int, int],
                          src_lower: np.ndarray, src_extent: np.ndarray
                          ) -> tuple[np.ndarray, np.ndarray] | None:
        """(A (3, 3), b (3,)) with normalised source coordinates = A @ n_map + b (x, y, z;
        n_map in [-1, 1] per map axis, as in _sampling_grid) when the pose allows the
        separable resampling, else None (tilted more than SEPARABLE_TOLERANCE_VOXELS)."""
        A, b = _normalised_affine(T_base_frame, src_lower, src_extent, self._origin,
                                  np.asarray(self.dims) * self.voxel_size)
        xy_error = max(abs(A[0, 2]) * src_dims[0], abs(A[1, 2]) * src_dims[1]) / 2.0
        if T_base_frame[2, 2] <= 0 or not xy_error <= SEPARABLE_TOLERANCE_VOXELS:
            return None
        return A, b

    def _sample_separable(self, affine: tuple[np.ndarray, np.ndarray],
                          nearest: bool) -> torch.Tensor:
        """The resampling of the channels-last source in `_sep_buf` (nx, ny, C, nz + 2, z
        padded with zeros) at the map's voxel centres, x, y then z (module docstring).

        Returns (C, Z, X, Y) contiguous (note the order).
        """
        A, b = affine
        buf = self._sep_buf
        nx, ny, C, nz_pad = buf.shape
        nz = nz_pad - 2
        X, Y, Z = self.dims
        # ---- x, y: every source z slice of every channel is a channel of one 2D image
        ax, ay, _ = self._axes
        g = self._sep_grid[0]  # (X, Y, 2): (W = source y, H = source x) for grid_sample
        for out_c, row in ((0, 1), (1, 0)):
            torch.add((A[row, 0] * ax + b[row])[:, None], (A[row, 1] * ay)[None, :],
                      out=g[:, :, out_c])
        image = buf.view(1, nx, ny, C * nz_pad).permute(0, 3, 1, 2)  # (1, C*(nz+2), nx, ny)
        W = F.grid_sample(image, self._sep_grid, mode="nearest" if nearest else "bilinear",
                          padding_mode="zeros", align_corners=False)[0].view(C, nz_pad, X, Y)
        # ---- z: map voxel k of column (i, j) at padded source index u (slice i + 1 holds
        # source voxel i, centred at i + 0.5); the zero pads stand for everything outside
        to_index = nz / 2.0
        col = np.array([A[2, 0], A[2, 1]]) * to_index  # source z voxels per unit n_map x, y
        u_k = (A[2, 2] * self._axes_np[2] + b[2] + 1.0) * to_index + 0.5
        if np.abs(col).max() < 1e-9:  # no tilt: every column shifts alike -> slices
            u_k = np.clip(u_k, 0.0, nz + 1.0)
            if nearest:
                taps = [(np.rint(u_k).astype(np.int64), np.ones(Z))]
            else:
                k0 = np.minimum(np.floor(u_k).astype(np.int64), nz)
                taps = [(k0, 1.0 - (u_k - k0)), (k0 + 1, u_k - k0)]
            out = torch.zeros((C, Z, X, Y), dtype=torch.float32, device=self.device)
            for k, w in taps:
                d = k - np.arange(Z)
                if np.all(d == d[0]) and np.ptp(w) < 1e-6:  # same z voxel size: one slice
                    out.add_(W[:, int(d[0]):int(d[0]) + Z], alpha=float(np.mean(w)))
                    continue
                for z in np.nonzero(w > 1e-9)[0]:
                    out[:, z].add_(W[:, k[z]], alpha=float(w[z]))
            return out
        resid = u_k - np.arange(Z)  # u_k = k + resid: one source z voxel per map voxel?
        if np.ptp(resid) <= Z_TAPS_TOLERANCE_VOXELS:
            offset = (float(np.mean(resid)) + col[0] * self._axes_np[0][:, None]
                      + col[1] * self._axes_np[1][None, :])  # (X, Y) source index of k = 0
            return self._z_taps(W, offset, nearest)
        u = (to_device(u_k, self.device, torch.float32)[:, None, None]
             + (float(col[0]) * ax)[None, :, None] + (float(col[1]) * ay)[None, None, :])
        u.clamp_(0.0, nz + 1.0)  # (Z, X, Y): beyond the pads reads a pad (zero)
        if nearest:
            idx = torch.round(u).long()[None].expand(C, Z, X, Y)
            return torch.gather(W, 1, idx)
        k0 = torch.floor(u).clamp_(max=nz)
        w1 = u.sub_(k0)
        idx = k0.long()[None].expand(C, Z, X, Y)
        out = torch.gather(W, 1, idx)
        hi = torch.gather(W, 1, idx + 1)
        return out.add_(hi.sub_(out).mul_(w1))  # (1 - w1) lo + w1 hi

    def _z_taps(self, W: torch.Tensor, offset: np.ndarray, nearest: bool) -> torch.Tensor:
        """The z interpolation of a tilted pose whose map and source z voxels are equal:
        map voxel k of column (i, j) sits at padded source index k + offset[i, j], so every
        column shifts by its own constant. The columns' integer shifts take a few values
        (the tilt moves a column by about a voxel across the map); each is one slice of `W`
        (C, nz + 2, X, Y) times a per-column weight (X, Y), summed: a handful of
        multiply-adds over the volume instead of two gathers and their index volumes.
        Indices outside the padded source read zero, as the pads do. Weights are built on
        the host from the pose alone (no device sync). Returns (C, Z, X, Y).
        """
        C, nz_pad, X, Y = W.shape
        Z = self.dims[2]
        if nearest:
            low = np.rint(offset).astype(np.int64)
            weights = [(low, np.ones_like(offset))]
        else:
            low_f = np.floor(offset)
            frac = offset - low_f
            low = low_f.astype(np.int64)
            weights = [(low, 1.0 - frac), (low + 1, frac)]
        first, last = int(low.min()), int(low.max()) + len(weights) - 1
        taps = np.zeros((last - first + 1, X, Y), dtype=np.float32)
        ii, jj = np.meshgrid(np.arange(X), np.arange(Y), indexing="ij")
        for index, weight in weights:
            taps[index - first, ii, jj] += weight
        taps_t = to_device(taps, self.device)  # (taps, X, Y)
        out = torch.zeros((C, Z, X, Y), dtype=torch.float32, device=self.device)
        for t, shift in enumerate(range(first, last + 1)):
            k0, k1 = max(0, -shift), min(Z, nz_pad - shift)  # map k with k + shift in W
            if k1 > k0:
                out[:, k0:k1].addcmul_(W[:, k0 + shift:k1 + shift], taps_t[t])
        return out

    # ------------------------------------------------------------------ queries
    def _probability(self) -> torch.Tensor:
        """(X, Y, Z) probabilities of the map (0.5 where unknown)."""
        return torch.sigmoid(self._log_odds)

    @_map_threads
    def probability_grid(self) -> ProbabilityGrid:
        """The full map: probabilities (NaN where unknown), known mask, origin, size."""
        p = torch.where(self._known, self._probability(), torch.nan)
        known = self._known.cpu().numpy().copy(order="C")  # a snapshot: the map changes
        return ProbabilityGrid(np.ascontiguousarray(p.cpu().numpy(), dtype=np.float32), known,
                               self._origin.copy(), self.voxel_size.copy(), self.frame,
                               self._last_stamp_ns)

    @_map_threads
    def occupied_voxels(self, threshold: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Centres (M, 3) float32 metres in `frame` and probabilities (M,) float32 of the
        known voxels with p >= threshold (default: config.occupied_threshold), ordered by
        z, then x, then y index (the map's storage order)."""
        thr = self.config.occupied_threshold if threshold is None else float(threshold)
        L = self._log_odds.permute(2, 0, 1)  # (Z, X, Y): the storage order, contiguous
        mask = self._known.permute(2, 0, 1) & (L >= logit(thr))
        # numpy's flatnonzero is ~3x faster than torch.nonzero on the CPU; the mask is on
        # the host for the output anyway (one copy of X*Y*Z bools from a GPU).
        flat = np.flatnonzero(mask.cpu().numpy())  # (M,) in storage order: z, then x, y
        flat_t = torch.from_numpy(flat).to(self.device)
        probs = torch.sigmoid(L.reshape(-1)[flat_t]).cpu().numpy()  # (M,) float32
        nx, ny, _ = self.dims
        rest, j = np.divmod(flat, ny)
        k, i = np.divmod(rest, nx)
        centres = np.empty((flat.size, 3), dtype=np.float32)
        for a, index in enumerate((i, j, k)):  # voxel centres per axis, then a gather
            axis = self._origin[a] + (np.arange(self.dims[a]) + 0.5) * self.voxel_size[a]
            centres[:, a] = axis.astype(np.float32)[index]
        return centres, probs

    @_map_threads
    def labels(self, occupied_threshold: float | None = None,
               free_threshold: float | None = None) -> np.ndarray:
        """(X, Y, Z) uint8 labels FREE / OCCUPIED / UNKNOWN (uncertain voxels: UNKNOWN)."""
        occ = self.config.occupied_threshold if occupied_threshold is None else occupied_threshold
        free = self.config.free_threshold if free_threshold is None else free_threshold
        L = self._log_odds
        out = torch.full(self.dims, UNKNOWN, dtype=torch.uint8, device=self.device)
        out[self._known & (L >= logit(occ))] = OCCUPIED
        out[self._known & (L <= logit(free))] = FREE
        return out.cpu().numpy()

    @_map_threads
    def occupancy_grid(self, z_min: float | None = None, z_max: float | None = None,
                       occupied_threshold: float | None = None,
                       free_threshold: float | None = None) -> OccupancyGrid2D:
        """Project a height band to 2D: 100 occupied, 0 free, -1 unknown.

        The band holds the voxels whose centres lie in [z_min, z_max] metres above
        base_link (defaults: config.grid_z_min/max). A cell is occupied when any known
        voxel of its column in the band has p >= occupied_threshold, free when it has
        known voxels in the band and all of them have p <= free_threshold, else unknown.
        """
        cfg = self.config
        z_lo = cfg.grid_z_min if z_min is None else float(z_min)
        z_hi = cfg.grid_z_max if z_max is None else float(z_max)
        occ = cfg.occupied_threshold if occupied_threshold is None else occupied_threshold
        free = cfg.free_threshold if free_threshold is None else free_threshold
        base_z = 0.0 if self._last_T is None else float(self._last_T[2, 3])
        centres_z = self._origin[2] + (np.arange(self.dims[2]) + 0.5) * self.voxel_size[2]
        band = np.nonzero((centres_z - base_z >= z_lo) & (centres_z - base_z <= z_hi))[0]
        data = np.full((self.dims[1], self.dims[0]), -1, dtype=np.int8)  # (ny, nx)
        if band.size:
            sl = slice(int(band[0]), int(band[-1]) + 1)
            L = self._log_odds[:, :, sl]
            known = self._known[:, :, sl]
            max_l = torch.where(known, L, torch.full_like(L, -torch.inf)).amax(dim=2)  # (X, Y)
            any_known = known.any(dim=2)
            cells = torch.full(max_l.shape, -1, dtype=torch.int8, device=self.device)
            cells[any_known & (max_l <= logit(free))] = 0
            cells[any_known & (max_l >= logit(occ))] = 100
            data = cells.T.contiguous().cpu().numpy()  # (ny, nx): data[y, x]
        origin = np.array([self._origin[0], self._origin[1], base_z + z_lo])
        return OccupancyGrid2D(data, float(self.voxel_size[0]), origin, self.frame,
                               self._last_stamp_ns)

    @_map_threads
    def sample(self, grid: VoxelGrid, pose: Any = None) -> np.ndarray:
        """Map probabilities at the centres of a base_link `grid` (nearest voxel).

        `pose` is T_odom_base (as in `update`; None in the base_link fallback). Returns
        (nx, ny, nz) float32 with NaN where the map is unknown or does not reach; used to
        compare the fused map with a frame's ground truth.
        """
        T_frame_base = np.eye(4) if pose is None else pose_to_transform(
            pose, self.config.quaternion_tolerance)
        axes = [((2 * torch.arange(n, device=self.device, dtype=torch.float32) + 1) / n - 1)
                for n in grid.dims]
        g_lower = np.asarray(grid.lower, dtype=np.float64)
        g_extent = np.asarray(grid.upper, dtype=np.float64) - g_lower
        g = self._sampling_grid(T_frame_base, self._origin,
                                np.asarray(self.dims) * self.voxel_size, g_lower, g_extent,
                                axes)
        src = torch.stack([self._probability(), self._known.float()])[None]  # (1, 2, X, Y, Z)
        out = F.grid_sample(src, g, mode="nearest", padding_mode="zeros",
                            align_corners=False)[0]  # (2, nx, ny, nz)
        p = torch.where(out[1] > 0.5, out[0], torch.nan)
        return p.cpu().numpy().astype(np.float32)


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
