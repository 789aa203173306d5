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
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F

from depth_any_view.geometry.grid import FREE, OCCUPIED, UNKNOWN, VoxelGrid
from depth_any_view.mapping.carving import DepthViews, carve_mask
from depth_any_view.mapping.fusion_config import (  # noqa: F401 - the map's public names
    P_CLAMP_MAX,
    P_CLAMP_MIN,
    P_MAX_OBSERVATION,
    P_MIN_OBSERVATION,
    FusionConfig,
    logit,
)
from depth_any_view.mapping.ghosts import ghost_voxels  # noqa: F401 - re-exported
from depth_any_view.mapping.map_records import (  # noqa: F401 - re-exported
    OccupancyGrid2D,
    ProbabilityGrid,
    UpdateStatus,
)
from depth_any_view.mapping.map_threads import torch_cpu_threads
from depth_any_view.mapping.pose import pose_to_transform, rotation_angle
from depth_any_view.mapping.upload import to_device

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
        angle = rotation_angle(self._last_T[:3, :3].T @ T[:3, :3])
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
