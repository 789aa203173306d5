"""Free-space carving: the voxels every camera ray passes through before its surface.

A depth pixel says more than "there is a surface here": the space between the camera and
that surface is empty. `carve_mask` turns the network-size depth of every view into the
set of map voxels that get one miss update (octomap's `computeUpdate`, vectorised):

- Rays: every `stride`-th pixel row and column (starting at (stride - 1) // 2, so the kept
  pixels sit in the middle of their stride x stride blocks) whose depth is finite and > 0
  and whose `valid` flag (a per-pixel mask, e.g. confidence >= min_confidence) is set.
- Each ray runs from the camera centre towards the back-projected surface point, in the
  map's voxel coordinates (map frame through T_frame_base @ T_base_cam, divided by the
  voxel size, so anisotropic voxels are handled). It is sampled at steps of half a voxel
  (L2 length in voxel units, so no axis advances more than half a voxel per step), from
  where it enters the map to the first of: `margin` voxels short of the surface,
  `max_range` metres from the camera, or where it leaves the map. A voxel holding a sample
  is carved. Sampling at half-voxel steps can skip a voxel whose corner the ray clips by
  less than half a voxel (a single ray finds about 85 % of the voxels it traverses; the
  neighbouring rays and the next sets find the rest); it never carves a voxel the ray does
  not pass through (up to float32 round-off at a voxel face).
- Density: the rays are `stride` pixels apart, so where their spacing at a distance
  exceeds a voxel edge (far away, or the 6 cm z voxels of a 64^3 map over 4 m) a set
  carves only some of the voxels; a smaller stride carves more at a higher cost.
- Dedupe: samples are scattered into one boolean volume, so a voxel gets at most one miss
  per set however many rays cross it.
- Layout: every strided pixel keeps its ray (unusable ones get no samples). Rays are
  sorted by their number of samples and sampled in a few groups, each a padded (rays,
  samples) block built by broadcasting (cheaper on the CPU than ragged gathers). Samples
  are marked in a work volume with a one-voxel border around the map: padding samples,
  float round-off at a ray's entry and exit and surfaces outside the map fall into the
  border, which is dropped, so no sample needs a bounds check. On a GPU (`sync_free`)
  nothing is read back to the host: all rays are sampled in one block padded to the
  longest segment the map can hold; the carved voxels are the same.
- Surfaces win: the voxel of every valid pixel's surface point (all pixels, not just the
  strided ones) is never carved in that set, so grazing rays of one view cannot free the
  surface another view (or a neighbouring pixel) sees.

Everything runs as a handful of torch ops on all rays at once (no Python loop over rays or
views), on the map's device. Units: metres, voxels where said; depth is metres along the
optical z axis (not ray length).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from depth_any_view.mapping.upload import to_device

STEP_VOXELS = 0.5  # sample spacing along a ray, voxels (L2 in voxel units)
SAMPLE_BUCKETS = 8  # rays are sampled in this many groups of similar length (padding)


@dataclass(frozen=True)
class DepthViews:
    """Depth of V views with their calibration: what carving needs of a set.

    `depth` is metres along z at the network size (NaN, inf or <= 0: no ray), `K` the
    distortion-free intrinsics of that size, `T_base_cam` optical frame -> base_link and
    `valid` an optional per-pixel mask (False: the pixel carves nothing and protects
    nothing, e.g. confidence below min_confidence).
    """

    depth: np.ndarray | torch.Tensor  # (V, h, w) float metres along z
    K: np.ndarray  # (V, 3, 3) intrinsics of `depth`
    T_base_cam: np.ndarray  # (V, 4, 4) optical frame -> base_link
    valid: np.ndarray | torch.Tensor | None = None  # (V, h, w) bool, None = all pixels

    def __post_init__(self) -> None:
        """Check the shapes agree; ValueError names the field and the expected shape."""
        shape = tuple(self.depth.shape)
        if len(shape) != 3:
            raise ValueError(f"DepthViews.depth must be (V, h, w) metres, got shape {shape}")
        V = shape[0]
        K = np.asarray(self.K, dtype=np.float64)
        T = np.asarray(self.T_base_cam, dtype=np.float64)
        if K.shape != (V, 3, 3):
            raise ValueError(f"DepthViews.K must be (V, 3, 3) = ({V}, 3, 3) for depth "
                             f"{shape}, got {K.shape}")
        if T.shape != (V, 4, 4):
            raise ValueError(f"DepthViews.T_base_cam must be (V, 4, 4) = ({V}, 4, 4), got "
                             f"{T.shape}")
        if not (np.all(np.isfinite(K)) and np.all(np.isfinite(T))):
            raise ValueError("DepthViews.K and T_base_cam must be finite (no NaN or inf)")
        if self.valid is not None and tuple(self.valid.shape) != shape:
            raise ValueError(f"DepthViews.valid must be a (V, h, w) bool mask like depth "
                             f"{shape}, got shape {tuple(self.valid.shape)}")
        object.__setattr__(self, "K", K)
        object.__setattr__(self, "T_base_cam", T)

    @property
    def num_views(self) -> int:
        """Number of views V."""
        return int(self.depth.shape[0])

    @classmethod
    def from_prediction(cls, pred: Any, valid: Any = None) -> DepthViews:
        """The network-size depth, intrinsics and extrinsics of a `Prediction`; `valid`
        (V, h, w) bool masks pixels out (e.g. `confidence >= min_confidence`)."""
        K = np.stack([np.asarray(c.K, dtype=np.float64) for c in pred.cameras])
        return cls(pred.depth, K, np.asarray(pred.T_base_cam, dtype=np.float64), valid)


def _view_mask(views: DepthViews, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Depth (V, h, w) float32 on `device` and its usable pixels (finite, > 0, valid)."""
    depth = to_device(views.depth, device).float()
    ok = (depth > 0) & (depth < math.inf)  # NaN compares False; cheaper than isfinite
    if views.valid is not None:
        ok &= to_device(views.valid, device).bool()
    return depth, ok


def carve_mask(views: DepthViews, T_frame_base: np.ndarray, origin: np.ndarray,
               voxel_size: np.ndarray, dims: tuple[int, int, int], *, stride: int = 4,
               max_range: float = float("inf"), margin: float = 1.0,
               device: str | torch.device = "cpu",
               out: torch.Tensor | None = None,
               sync_free: bool | None = None) -> torch.Tensor:
    """Map voxels that get a miss update from this set of views (see the module docstring).

    Args:
        views: depth, intrinsics, extrinsics and the optional pixel mask of V views.
        T_frame_base: (4, 4) base_link -> map frame (T_odom_base, or identity in the
            base_link fallback).
        origin: (3,) metres, minimum corner of voxel (0, 0, 0) in the map frame.
        voxel_size: (3,) metres per voxel.
        dims: (nx, ny, nz) voxels of the map.
        stride: keep every stride-th pixel row and column for rays (>= 1).
        max_range: metres from the camera beyond which nothing is carved.
        margin: voxels (L2 in voxel units) short of the surface where carving stops.
        device: torch device of the result.
        out: optional (nx, ny, nz) bool buffer to write the result into (overwritten).
        sync_free: lay the rays out without reading anything back to the host (one
            block padded to the longest possible ray, no sorting into groups), for GPUs,
            where a read-back waits for the device; None = on CUDA devices. The result is
            the same; on the CPU the bucketed layout is faster.

    Returns:
        (nx, ny, nz) bool tensor on `device`: True = carve this voxel (at most once).
    """
    if isinstance(stride, bool) or int(stride) != stride or stride < 1:
        raise ValueError(f"carving stride must be an integer >= 1 pixel, got {stride!r}")
    if not (max_range > 0):
        raise ValueError(f"carving max_range must be > 0 metres, got {max_range!r}")
    if not (margin >= 0 and np.isfinite(margin)):
        raise ValueError(f"carving margin must be a finite number >= 0 voxels, got {margin!r}")
    device = torch.device(device)
    dims = tuple(int(d) for d in dims)
    if out is None:
        out = torch.zeros(dims, dtype=torch.bool, device=device)
    if views.num_views == 0:
        return out.zero_()
    vs = np.asarray(voxel_size, dtype=np.float64)
    # The samples are marked in a work volume with a one-voxel border: voxel (i, j, k) of
    # the map is (i + 1, j + 1, k + 1) there. Whatever falls outside the map (float
    # round-off at a ray's entry and exit, surfaces outside, padding samples) lands in the
    # border, which is dropped at the end, so no sample needs a bounds check. Its axes are
    # laid out in the order of `out`'s strides (the map's storage), so the final copy
    # into `out` is contiguous.
    padded = tuple(d + 2 for d in dims)
    n_pad = padded[0] * padded[1] * padded[2]
    order = sorted(range(3), key=lambda a: -out.stride(a))  # axes, outermost first
    strides = [0.0, 0.0, 0.0]  # flat index of padded voxel (i, j, k) per axis
    size = 1
    for a in reversed(order):
        strides[a] = float(size)
        size *= padded[a]
    # The flat index is composed in floating point: exact below 2^24 in float32.
    index_dtype = torch.float32 if n_pad < 2 ** 24 else torch.float64
    # Optical frame -> padded voxel coordinates: p_vox = A_v @ p_cam + b_v (per view);
    # with p_cam = z * K_v^-1 [u, v, 1], p_vox = z * (M_v @ [u, v, 1]) + b_v, M_v = A_v K_v^-1.
    T = np.asarray(T_frame_base, dtype=np.float64) @ views.T_base_cam  # (V, 4, 4)
    A = T[:, :3, :3] / vs[None, :, None]  # (V, 3, 3)
    K_inv = np.linalg.inv(views.K)  # (V, 3, 3)
    f32 = {"dtype": torch.float32, "device": device}
    M = to_device(A @ K_inv, device, torch.float32)  # (V, 3, 3) voxels per metre of depth
    K_inv_t = to_device(K_inv, device, torch.float32)  # (V, 3, 3)
    b = to_device((T[:, :3, 3] - np.asarray(origin, dtype=np.float64)) / vs + 1.0, device,
                  torch.float32)  # (V, 3) camera centres, padded voxels
    depth, ok = _view_mask(views, device)
    V, h, w = depth.shape
    work = torch.zeros(n_pad, dtype=torch.bool, device=device)
    # Coordinates are kept as rows (3, ...): torch's CPU reductions over a trailing axis of
    # size 3 are an order of magnitude slower than elementwise ops on whole rows.
    lo = [1.0, 1.0, 1.0]  # the map inside the padded volume: [1, d + 1) per axis
    hi = [float(d + 1) for d in dims]

    # ---- rays of the strided pixels, all views at once: (V, P), then N = V * P in a row
    step_px = int(stride)
    first_px = (step_px - 1) // 2
    pix = _pixels(torch.arange(first_px, h, step_px, **f32),
                  torch.arange(first_px, w, step_px, **f32))  # (3, P) homogeneous
    z = depth[:, first_px::step_px, first_px::step_px].reshape(V, -1)  # (V, P)
    use = ok[:, first_px::step_px, first_px::step_px].reshape(V, -1)
    P = z.shape[1]
    D = torch.matmul(M, pix)  # (V, 3, P) voxels per metre of depth
    metres = _norm(torch.matmul(K_inv_t, pix).unbind(1))  # (V, P) metres of ray per metre z
    rays = torch.cat([b[:, :, None].expand(V, 3, P), D, z[:, None], metres[:, None]], dim=1)
    # Every strided pixel keeps its ray (a boolean compaction would cost more than the
    # rays it drops, and read a size back to the host); the unusable ones get no samples.
    rays = rays.permute(1, 0, 2).reshape(8, V * P)  # (8, N): origin (voxels), D, z, metres
    if sync_free is None:
        sync_free = device.type == "cuda"
    if rays.shape[1]:
        o, D, z, metres = rays[:3], rays[3:6], rays[6], rays[7]
        # Ray parameter s = metres of depth along z; position o + s * D (voxels).
        speed = _norm(D)  # (N,) voxels per unit s
        step = STEP_VOXELS / speed  # (N,)
        s_in = torch.zeros_like(z)
        s_end = torch.minimum(z - float(margin) / speed, float(max_range) / metres)
        for a in range(3):  # clip to the map: slab [lo, hi] on each axis
            inv = 1.0 / torch.where(D[a].abs() > 1e-12, D[a], torch.full_like(z, 1e-12))
            t0, t1 = (lo[a] - o[a]) * inv, (hi[a] - o[a]) * inv
            s_in = torch.maximum(s_in, torch.minimum(t0, t1))
            s_end = torch.minimum(s_end, torch.maximum(t0, t1))
        count = torch.ceil((s_end - s_in) / step).clamp_min_(0)  # (N,) samples per ray
        # Unusable rays (NaN depth, masked out) and NaN counts: no samples.
        count = torch.where(use.reshape(-1) & (count < math.inf), count,
                            torch.zeros_like(count))
        walk = torch.cat([o + s_in * D, step * D, count[None]])  # (7, N) start, step, count
        if sync_free:  # a segment inside the map is at most its diagonal long (voxels)
            longest = math.ceil(math.sqrt(sum(d * d for d in dims)) / STEP_VOXELS) + 1
            _sample_block(walk, strides, work, 0, longest, index_dtype)
        else:
            _sample_rays(walk, strides, work, index_dtype)

    # ---- surfaces win: the voxel of every usable pixel's surface point is not carved
    pix = _pixels(torch.arange(h, **f32), torch.arange(w, **f32))  # (3, h * w)
    q = torch.matmul(M, pix).mul_(depth.reshape(V, 1, -1)).add_(b[:, :, None]).floor_()
    for a in range(3):  # outside the map -> the border: [0, d + 1] padded voxels per axis
        q[:, a].clamp_(0.0, hi[a])
    q = q.to(index_dtype)
    index = _flat_index(q[:, 0], q[:, 1], q[:, 2], strides)
    index.masked_fill_(~ok.reshape(V, -1), 0.0)  # unusable pixels (NaN too): the border
    work.index_fill_(0, index.view(-1).long(), False)
    inner = work.view(tuple(padded[a] for a in order))[1:-1, 1:-1, 1:-1]  # storage order
    return out.copy_(inner.permute(*(order.index(a) for a in range(3))))  # (nx, ny, nz)


def _sample_rays(walk: torch.Tensor, strides: list[float], work: torch.Tensor,
                 index_dtype: torch.dtype) -> None:
    """Mark the padded voxels of every ray's samples in `work` (flat bools with a border).

    `walk` (7, N) holds per ray its first sample (3 rows, padded voxels), its step (3 rows)
    and its number of samples. Rays are sorted by that number and cut into SAMPLE_BUCKETS
    groups; each group is a padded (rays, longest) block built by broadcasting (no
    gathers). Only the columns past a group's shortest ray can be padding, and only those
    are masked (to the border voxel 0).
    """
    order = torch.argsort(walk[6])
    walk = walk[:, order]
    n = walk.shape[1]
    cuts = sorted({int(round(n * i / SAMPLE_BUCKETS)) for i in range(SAMPLE_BUCKETS + 1)})
    ends = walk[6, cuts[:-1] + [c - 1 for c in cuts[1:]]].tolist()  # one host sync
    shortest, longest = ends[:len(cuts) - 1], ends[len(cuts) - 1:]
    for lo, hi_ray, fewest, m in zip(cuts[:-1], cuts[1:], shortest, longest):
        if m > 0:
            _sample_block(walk[:, lo:hi_ray], strides, work, int(fewest), int(m),
                          index_dtype)


def _sample_block(g: torch.Tensor, strides: list[float], work: torch.Tensor, full: int,
                  m: int, index_dtype: torch.dtype) -> None:
    """Mark the padded voxels of the first `m` samples of every ray of `g` (7, n) in `work`;
    every ray has at least `full` samples, and the samples past a ray's count go to the
    border voxel 0."""
    k = torch.arange(m, dtype=g.dtype, device=g.device)  # (m,)
    # All three axes in one op: (3, n, m) padded voxel coordinates, then their voxels.
    # (a broadcast addcmul is 3x slower on the CPU than this multiply and add)
    c = (g[3:6, :, None] * k).add_(g[:3, :, None]).floor_().to(index_dtype)
    index = _flat_index(c[0], c[1], c[2], strides)
    if full < m:  # padding only in the columns past the shortest ray of the group
        tail = index[:, full:]
        tail.masked_fill_(k[full:] >= g[6, :, None], 0.0)
    work.index_fill_(0, index.view(-1).long(), True)  # cheaper than work[index] = True


def _flat_index(i: torch.Tensor, j: torch.Tensor, k: torch.Tensor, strides: list[float]
                ) -> torch.Tensor:
    """Flat index i * strides[0] + j * strides[1] + k * strides[2] (new tensor), the
    unit-stride axis first (no multiply)."""
    (u, _), (v, sv), (w, sw) = sorted(zip((i, j, k), strides), key=lambda p: p[1])
    return torch.add(u, v, alpha=sv).add_(w, alpha=sw)


def _norm(xyz: torch.Tensor | tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Euclidean norm of three coordinate rows (x, y, z), each of the same shape."""
    x, y, zz = xyz[0], xyz[1], xyz[2]
    return torch.sqrt(x * x + y * y + zz * zz)


def _pixels(rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """(3, R * C) homogeneous pixel coordinates [u, v, 1] of a grid, row-major."""
    v, u = torch.meshgrid(rows, cols, indexing="ij")
    return torch.stack([u.reshape(-1), v.reshape(-1), torch.ones_like(u).reshape(-1)])
