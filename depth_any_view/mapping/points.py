"""Depth images to coloured points in base_link, downsampling, and PCL-style rgb packing.

Conventions (docs/ARCHITECTURE.md): depth is metres along the optical z axis, NaN or 0 =
no estimate; pixel (u, v) = (column, row) with pixel centres at integer coordinates;
`T_base_cam` (V, 4, 4) maps optical-frame points into base_link. Every function here is
vectorised (numpy, plus a torch variant that stays on the tensors' device).

Colour packing follows PCL's `PointXYZRGB`: the uint32 `(r << 16) | (g << 8) | b` is stored
bit for bit in a float32 field named `rgb` (alpha byte 0, so the float is never NaN or
inf). `XYZRGB_DTYPE` is the matching numpy structured dtype, 16 bytes per point, byte
compatible with sensor_msgs_py.point_cloud2.create_cloud for fields x y z rgb at offsets
0 4 8 12 (FLOAT32).
"""

from __future__ import annotations

import numpy as np
import torch

XYZRGB_DTYPE = np.dtype({"names": ["x", "y", "z", "rgb"],
                         "formats": ["<f4", "<f4", "<f4", "<f4"],
                         "offsets": [0, 4, 8, 12], "itemsize": 16})
# Occupied voxel centres with their fused probability, 16 bytes per point.
XYZP_DTYPE = np.dtype({"names": ["x", "y", "z", "probability"],
                       "formats": ["<f4", "<f4", "<f4", "<f4"],
                       "offsets": [0, 4, 8, 12], "itemsize": 16})


def _check_inputs(depth_shape: tuple[int, ...], K_shape: tuple[int, ...],
                  T_shape: tuple[int, ...], image_shape: tuple[int, ...] | None,
                  stride: int) -> None:
    """Raise ValueError naming the argument whose shape does not fit depth (V, H, W)."""
    if len(depth_shape) != 3:
        raise ValueError(f"depth must be (V, H, W) metres, got shape {depth_shape}")
    V, H, W = depth_shape
    if K_shape != (V, 3, 3):
        raise ValueError(f"K must be (V, 3, 3) = ({V}, 3, 3) for depth {depth_shape}, "
                         f"got {K_shape}")
    if T_shape != (V, 4, 4):
        raise ValueError(f"T_base_cam must be (V, 4, 4) = ({V}, 4, 4), got {T_shape}")
    if image_shape is not None and image_shape != (V, H, W, 3):
        raise ValueError(f"images must be (V, H, W, 3) uint8 = ({V}, {H}, {W}, 3) to colour "
                         f"depth {depth_shape}; resize them to the depth size first, got "
                         f"{image_shape}")
    if int(stride) < 1:
        raise ValueError(f"stride must be >= 1 pixel, got {stride}")


def depth_to_points(depth: np.ndarray, K: np.ndarray, T_base_cam: np.ndarray,
                    images: np.ndarray | None = None, *, stride: int = 1,
                    min_depth: float = 0.0, max_depth: float = float("inf"),
                    rays: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Back-project depth images of V cameras into one cloud in base_link (numpy).

    Args:
        depth: (V, H, W) metres along z; NaN, inf, 0 and values outside
            (min_depth, max_depth] are skipped.
        K: (V, 3, 3) pinhole intrinsics matching the depth resolution.
        T_base_cam: (V, 4, 4) camera optical frame -> base_link.
        images: optional (V, H, W, 3) uint8 RGB of the same size; white when None.
        stride: keep every stride-th row and column (pixels (0, 0), (0, stride), ...).
        min_depth: metres; depths at or below it are skipped.
        max_depth: metres; depths above it are skipped.
        rays: optional (V, H, W, 3) undistorted rays with z = 1 (e.g.
            `PinholeCamera.pixel_rays()`), used instead of K for distorted images.

    Returns:
        points (N, 3) float32 metres in base_link and colours (N, 3) uint8, ordered by
        view, then row, then column.
    """
    depth = np.asarray(depth, dtype=np.float32)
    K = np.asarray(K, dtype=np.float64)
    T_base_cam = np.asarray(T_base_cam, dtype=np.float64)
    _check_inputs(depth.shape, K.shape, T_base_cam.shape,
                  None if images is None else np.shape(images), stride)
    V, H, W = depth.shape
    d = depth[:, ::stride, ::stride]  # (V, h, w)
    if rays is not None:
        if np.shape(rays) != (V, H, W, 3):
            raise ValueError(f"rays must be (V, H, W, 3) = ({V}, {H}, {W}, 3), got "
                             f"{np.shape(rays)}")
        r = np.asarray(rays, dtype=np.float32)[:, ::stride, ::stride]  # (V, h, w, 3)
    else:
        u = np.arange(0, W, stride, dtype=np.float32)  # (w,)
        v = np.arange(0, H, stride, dtype=np.float32)  # (h,)
        fx, fy = K[:, 0, 0, None, None], K[:, 1, 1, None, None]  # (V, 1, 1)
        cx, cy, skew = K[:, 0, 2, None, None], K[:, 1, 2, None, None], K[:, 0, 1, None, None]
        yn = (v[None, :, None] - cy) / fy  # (V, h, 1)
        xn = (u[None, None, :] - cx - skew * yn) / fx  # (V, h, w)
        yn = np.broadcast_to(yn, xn.shape)
        r = np.stack([xn, yn, np.ones_like(xn)], axis=-1).astype(np.float32)  # (V, h, w, 3)
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(d) & (d > max(float(min_depth), 0.0)) & (d <= float(max_depth))
    R = T_base_cam[:, :3, :3].astype(np.float32)  # (V, 3, 3)
    t = T_base_cam[:, :3, 3].astype(np.float32)  # (V, 3)
    # Rotate the rays once per view, then scale by depth: p_base = R (d * ray) + t, for
    # every pixel (invalid ones give NaN or junk), then keep the valid rows: one dense
    # pass and one np.compress are ~2x faster than boolean row indexing and gathers.
    r_base = np.matmul(r.reshape(V, -1, 3), R.transpose(0, 2, 1))  # (V, h*w, 3)
    keep = valid.reshape(-1)  # (V*h*w,)
    with np.errstate(invalid="ignore", over="ignore"):
        dense = r_base * d.reshape(V, -1, 1)
        dense += t[:, None, :]
    points = np.compress(keep, dense.reshape(-1, 3), axis=0)  # (N, 3)
    if images is None:
        colors = np.full((points.shape[0], 3), 255, dtype=np.uint8)
    else:
        rgb = np.ascontiguousarray(np.asarray(images, dtype=np.uint8)[:, ::stride, ::stride])
        colors = np.compress(keep, rgb.reshape(-1, 3), axis=0)  # (N, 3)
    return points.astype(np.float32, copy=False), colors


def depth_to_points_torch(depth: torch.Tensor, K: torch.Tensor, T_base_cam: torch.Tensor,
                          images: torch.Tensor | None = None, *, stride: int = 1,
                          min_depth: float = 0.0, max_depth: float = float("inf"),
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Torch version of `depth_to_points` on the depth tensor's device (no host copies).

    Args as in `depth_to_points` (tensors; images uint8 (V, H, W, 3)). Returns points
    (N, 3) float32 and colours (N, 3) uint8 on depth's device, in the same order.
    """
    _check_inputs(tuple(depth.shape), tuple(K.shape), tuple(T_base_cam.shape),
                  None if images is None else tuple(images.shape), stride)
    dev = depth.device
    V, H, W = depth.shape
    d = depth[:, ::stride, ::stride].float()  # (V, h, w)
    K = K.to(dev, torch.float32)
    T = T_base_cam.to(dev, torch.float32)
    u = torch.arange(0, W, stride, device=dev, dtype=torch.float32)  # (w,)
    v = torch.arange(0, H, stride, device=dev, dtype=torch.float32)  # (h,)
    fx, fy = K[:, 0, 0, None, None], K[:, 1, 1, None, None]  # (V, 1, 1)
    cx, cy, skew = K[:, 0, 2, None, None], K[:, 1, 2, None, None], K[:, 0, 1, None, None]
    yn = (v[None, :, None] - cy) / fy  # (V, h, 1)
    xn = (u[None, None, :] - cx - skew * yn) / fx  # (V, h, w)
    r = torch.stack([xn, yn.expand_as(xn), torch.ones_like(xn)], dim=-1)  # (V, h, w, 3)
    valid = torch.isfinite(d) & (d > max(float(min_depth), 0.0)) & (d <= float(max_depth))
    r_base = torch.matmul(r.reshape(V, -1, 3), T[:, :3, :3].transpose(1, 2))  # (V, h*w, 3)
    flat = valid.reshape(V, -1)  # (V, h*w)
    view = torch.nonzero(flat, as_tuple=True)[0]  # (N,)
    points = r_base[flat] * d.reshape(V, -1)[flat][:, None] + T[view, :3, 3]  # (N, 3)
    if images is None:
        colors = torch.full((points.shape[0], 3), 255, dtype=torch.uint8, device=dev)
    else:
        colors = images[:, ::stride, ::stride].to(dev)[valid].to(torch.uint8)  # (N, 3)
    return points, colors


def _voxel_keys(points: np.ndarray, voxel_size: float) -> np.ndarray:
    """One int64 key per point for the voxel (edge `voxel_size` metres) holding it."""
    idx = np.floor(points / voxel_size).astype(np.int64)  # (N, 3)
    idx -= idx.min(axis=0)
    span = idx.max(axis=0) + 1
    if float(np.prod(span.astype(np.float64))) >= 2.0**62:
        raise ValueError(f"voxel_size {voxel_size} m is too small for a cloud spanning "
                         f"{span.tolist()} voxels; use a larger voxel size")
    return (idx[:, 0] * span[1] + idx[:, 1]) * span[2] + idx[:, 2]


def voxel_downsample(points: np.ndarray, colors: np.ndarray,
                     voxel_size: float) -> tuple[np.ndarray, np.ndarray]:
    """One point per occupied voxel: the centroid of its points and their mean colour.

    Args:
        points: (N, 3) float metres, finite.
        colors: (N, 3) uint8.
        voxel_size: voxel edge in metres (> 0); voxels are aligned to the frame's origin.

    Returns:
        points (M, 3) float32 and colours (M, 3) uint8, sorted by voxel (deterministic).
    """
    if not voxel_size > 0:
        raise ValueError(f"voxel_size must be > 0 metres, got {voxel_size}")
    points = np.asarray(points, dtype=np.float32).reshape(-1, 3)
    colors = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
    if points.shape[0] != colors.shape[0]:
        raise ValueError(f"points ({points.shape[0]}) and colors ({colors.shape[0]}) "
                         "must have the same length")
    if points.shape[0] == 0:
        return points.copy(), colors.copy()
    _, inverse, counts = np.unique(_voxel_keys(points, voxel_size), return_inverse=True,
                                   return_counts=True)
    M = counts.shape[0]
    inverse = inverse.reshape(-1)
    sums = np.stack([np.bincount(inverse, points[:, a], M) for a in range(3)], 1)  # (M, 3)
    csum = np.stack([np.bincount(inverse, colors[:, a], M) for a in range(3)], 1)  # (M, 3)
    out_p = (sums / counts[:, None]).astype(np.float32)  # (M, 3)
    out_c = np.rint(csum / counts[:, None]).astype(np.uint8)  # (M, 3)
    return out_p, out_c


def voxel_downsample_torch(points: torch.Tensor, colors: torch.Tensor,
                           voxel_size: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Torch version of `voxel_downsample` on the points' device (same output order)."""
    if not voxel_size > 0:
        raise ValueError(f"voxel_size must be > 0 metres, got {voxel_size}")
    if points.shape[0] != colors.shape[0]:
        raise ValueError(f"points ({points.shape[0]}) and colors ({colors.shape[0]}) "
                         "must have the same length")
    if points.shape[0] == 0:
        return points.float(), colors.to(torch.uint8)
    idx = torch.floor(points.double() / voxel_size).long()  # (N, 3)
    idx = idx - idx.min(dim=0).values
    span = idx.max(dim=0).values + 1
    if float(span.double().prod()) >= 2.0**62:
        raise ValueError(f"voxel_size {voxel_size} m is too small for a cloud spanning "
                         f"{span.tolist()} voxels; use a larger voxel size")
    keys = (idx[:, 0] * span[1] + idx[:, 1]) * span[2] + idx[:, 2]  # (N,)
    _, inverse, counts = torch.unique(keys, return_inverse=True, return_counts=True)
    M = counts.shape[0]
    sums = torch.zeros((M, 3), dtype=torch.float64, device=points.device)
    sums.index_add_(0, inverse, points.double())
    csum = torch.zeros((M, 3), dtype=torch.float64, device=points.device)
    csum.index_add_(0, inverse, colors.double())
    n = counts.double()[:, None]
    return (sums / n).float(), torch.round(csum / n).to(torch.uint8)


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """PCL-packed colours: uint8 (N, 3) RGB -> float32 (N,) holding (r<<16)|(g<<8)|b."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 2 or rgb.shape[1] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"rgb must be (N, 3) uint8, got shape {rgb.shape} dtype {rgb.dtype}")
    c = rgb.astype(np.uint32)
    packed = (c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]  # (N,) uint32
    return packed.view(np.float32)


def unpack_rgb(packed: np.ndarray) -> np.ndarray:
    """Inverse of `pack_rgb`: float32 (N,) -> uint8 (N, 3) RGB (alpha byte ignored)."""
    packed = np.ascontiguousarray(packed, dtype=np.float32).reshape(-1)
    bits = packed.view(np.uint32)
    return np.stack([(bits >> 16) & 0xFF, (bits >> 8) & 0xFF, bits & 0xFF],
                    axis=1).astype(np.uint8)


def to_xyzrgb(points: np.ndarray, colors: np.ndarray) -> np.ndarray:
    """Structured array (N,) of XYZRGB_DTYPE, ready to be a PointCloud2's data buffer."""
    points = np.asarray(points, dtype=np.float32).reshape(-1, 3)
    colors = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
    if points.shape[0] != colors.shape[0]:
        raise ValueError(f"points ({points.shape[0]}) and colors ({colors.shape[0]}) "
                         "must have the same length")
    out = np.empty(points.shape[0], dtype=XYZRGB_DTYPE)
    out["x"], out["y"], out["z"] = points[:, 0], points[:, 1], points[:, 2]
    out["rgb"] = pack_rgb(colors)
    return out
