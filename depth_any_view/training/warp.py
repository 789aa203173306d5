"""Differentiable view warping between calibrated cameras of a rig (torch).

Conventions (docs/ARCHITECTURE.md): optical camera frames (x right, y down, z forward),
pixel (u, v) = (column, row) with the centre of pixel (i, j) at u = i, v = j, depth in
metres along the optical axis, `T_base_cam` maps camera points into base_link. A warp
from a *source* view into a *target* view back-projects the target's depth to 3D, moves
the points into the source camera with `T_src_tgt = inv(T_base_src) @ T_base_tgt` and
projects them with the source intrinsics; sampling the source image at those pixels
reconstructs the target image. Sampling uses `grid_sample(..., align_corners=True)`, which
puts normalised -1 / +1 on the centres of the first / last pixel, i.e. exactly the pixel
convention above.

The small modules follow monodepth2's `layers.py` (BackprojectDepth, Project3D, SSIM):
constants are built in `__init__` as non-persistent buffers and the batch size comes from
the input.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def rigid_inverse(T: torch.Tensor) -> torch.Tensor:
    """Inverse of rigid transforms (..., 4, 4) using R^T instead of a general inverse."""
    R = T[..., :3, :3]
    t = T[..., :3, 3:]
    Rt = R.transpose(-1, -2)
    out = torch.zeros_like(T)
    out[..., :3, :3] = Rt
    out[..., :3, 3:] = -Rt @ t
    out[..., 3, 3] = 1.0
    return out


def relative_transform(T_base_tgt: torch.Tensor, T_base_src: torch.Tensor) -> torch.Tensor:
    """`T_src_tgt` (..., 4, 4) mapping target-camera points into the source camera.

    Computed in float64 and returned in the dtype of `T_base_tgt`.
    """
    out = rigid_inverse(T_base_src.double()) @ T_base_tgt.double()
    return out.to(T_base_tgt.dtype)


def neighbour_pairs(T_base_cam: torch.Tensor | np.ndarray,
                    max_angle_deg: float = 100.0) -> list[tuple[int, int]]:
    """Ordered (target, source) view pairs whose optical axes are within `max_angle_deg`.

    Args:
        T_base_cam: extrinsics (V, 4, 4) of one rig (a batch (B, V, 4, 4) uses sample 0).
        max_angle_deg: largest angle between two optical axes, degrees. On the surround
            rig (cameras 60 deg apart) the default 100 keeps ring neighbours only.

    Returns:
        Both directions of every neighbouring pair, sorted, e.g. [(0, 1), (0, 2), (1, 0)...].
    """
    T = torch.as_tensor(np.asarray(T_base_cam) if isinstance(T_base_cam, np.ndarray)
                        else T_base_cam).detach().double().cpu()
    if T.ndim == 4:
        T = T[0]
    if T.ndim != 3 or T.shape[-2:] != (4, 4):
        raise ValueError(f"T_base_cam must have shape (V, 4, 4) or (B, V, 4, 4), "
                         f"got {tuple(T.shape)}")
    axes = T[:, :3, 2]  # (V, 3) optical axes in base_link
    axes = axes / axes.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    cos = (axes @ axes.T).clamp(-1.0, 1.0)  # (V, V)
    close = cos >= math.cos(math.radians(max_angle_deg)) - 1e-9
    close.fill_diagonal_(False)
    return [(int(i), int(j)) for i, j in torch.nonzero(close).tolist()]


def pixel_to_grid(uv: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pixel coordinates (..., 2) -> grid_sample coordinates in [-1, 1] (align_corners=True).

    Values far outside the image are clamped to [-2, 2] so grid_sample never sees huge or
    infinite numbers; such pixels are masked by the caller anyway.
    """
    scale = uv.new_tensor([2.0 / max(width - 1, 1), 2.0 / max(height - 1, 1)])
    return (uv * scale - 1.0).clamp(-2.0, 2.0)


def sample_image(image: torch.Tensor, grid: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Sample images (N, C, H, W) at a normalised grid (N, Ho, Wo, 2), border padding."""
    return F.grid_sample(image, grid, mode=mode, padding_mode="border", align_corners=True)


class BackprojectDepth(nn.Module):
    """Depth maps (N, H, W) -> camera-frame points (N, 3, H*W), metres."""

    def __init__(self, height: int, width: int) -> None:
        super().__init__()
        self.height = int(height)
        self.width = int(width)
        v, u = torch.meshgrid(torch.arange(self.height, dtype=torch.float32),
                              torch.arange(self.width, dtype=torch.float32), indexing="ij")
        pix = torch.stack([u.reshape(-1), v.reshape(-1), torch.ones(self.height * self.width)])
        self.register_buffer("pix", pix, persistent=False)  # (3, H*W) homogeneous pixels

    def forward(self, depth: torch.Tensor, inv_K: torch.Tensor) -> torch.Tensor:
        """Points p_cam = depth * K^-1 [u, v, 1]^T for depth (N, H, W), inv_K (N, 3, 3)."""
        rays = inv_K.to(self.pix.dtype) @ self.pix  # (N, 3, H*W), z = 1
        return rays.to(depth.dtype) * depth.reshape(depth.shape[0], 1, -1)  # (N, 3, H*W)


class Project3D(nn.Module):
    """Points (N, 3, H*W) in a camera -> pixels (N, H, W, 2) and depths (N, H, W) in another."""

    def __init__(self, height: int, width: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.height = int(height)
        self.width = int(width)
        self.eps = float(eps)

    def forward(self, points: torch.Tensor, K: torch.Tensor,
                T: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Project `T @ points` with intrinsics K (N, 3, 3); T (N, 4, 4).

        Returns pixel coordinates (N, H, W, 2) as (u, v) and the depth z (N, H, W) of each
        point in the projecting camera (metres; <= 0 behind it).
        """
        p = T[:, :3, :3].to(points.dtype) @ points + T[:, :3, 3:].to(points.dtype)  # (N, 3, HW)
        z = p[:, 2]  # (N, H*W)
        z_safe = torch.where(z.abs() < self.eps, torch.full_like(z, self.eps), z)
        uvw = K.to(points.dtype) @ p  # (N, 3, H*W)
        uv = uvw[:, :2] / z_safe.unsqueeze(1)  # (N, 2, H*W)
        n = points.shape[0]
        uv = uv.reshape(n, 2, self.height, self.width).permute(0, 2, 3, 1)  # (N, H, W, 2)
        return uv, z.reshape(n, self.height, self.width)


class WarpResult(NamedTuple):
    """Where each target pixel lands in the source view."""

    grid: torch.Tensor  # (N, H, W, 2) grid_sample coordinates into the source image
    uv: torch.Tensor  # (N, H, W, 2) source pixel coordinates (u, v)
    depth: torch.Tensor  # (N, H, W) depth of the back-projected point in the source, metres
    in_view: torch.Tensor  # (N, H, W) bool: in front of the source and inside its image


class ViewWarp(nn.Module):
    """Warp target pixels into a source camera through the target's depth and calibration."""

    def __init__(self, height: int, width: int, src_height: int | None = None,
                 src_width: int | None = None, min_depth: float = 1e-3) -> None:
        super().__init__()
        self.src_height = int(src_height or height)
        self.src_width = int(src_width or width)
        self.min_depth = float(min_depth)
        self.backproject = BackprojectDepth(height, width)
        self.project = Project3D(height, width)

    def forward(self, depth_tgt: torch.Tensor, K_tgt: torch.Tensor, K_src: torch.Tensor,
                T_src_tgt: torch.Tensor) -> WarpResult:
        """Args: target depth (N, H, W) metres, intrinsics (N, 3, 3), T_src_tgt (N, 4, 4)."""
        inv_K = torch.linalg.inv(K_tgt.double()).float()
        points = self.backproject(depth_tgt.float(), inv_K)  # (N, 3, H*W)
        uv, z = self.project(points, K_src.float(), T_src_tgt.float())
        u, v = uv[..., 0], uv[..., 1]
        in_view = ((z > self.min_depth) & torch.isfinite(z)
                   & (u >= -0.5) & (u <= self.src_width - 0.5)
                   & (v >= -0.5) & (v <= self.src_height - 0.5))
        grid = pixel_to_grid(torch.nan_to_num(uv, nan=-1e6), self.src_height, self.src_width)
        return WarpResult(grid, uv, z, in_view)


class SSIM(nn.Module):
    """Per-pixel structural dissimilarity (1 - SSIM) / 2 over 3x3 windows (monodepth2)."""

    def __init__(self, c1: float = 0.01 ** 2, c2: float = 0.03 ** 2) -> None:
        super().__init__()
        self.c1 = float(c1)
        self.c2 = float(c2)
        self.pool = nn.AvgPool2d(3, 1)
        self.pad = nn.ReflectionPad2d(1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(1 - SSIM(x, y)) / 2 in [0, 1] for images (N, C, H, W), same shape out."""
        x = self.pad(x)
        y = self.pad(y)
        mu_x = self.pool(x)
        mu_y = self.pool(y)
        sigma_x = self.pool(x * x) - mu_x ** 2
        sigma_y = self.pool(y * y) - mu_y ** 2
        sigma_xy = self.pool(x * y) - mu_x * mu_y
        num = (2 * mu_x * mu_y + self.c1) * (2 * sigma_xy + self.c2)
        den = (mu_x ** 2 + mu_y ** 2 + self.c1) * (sigma_x + sigma_y + self.c2)
        return torch.clamp((1 - num / den) / 2, 0, 1)
