"""Camera geometry for the network: pixel rays, Plücker coordinates, projection, and inverses.

Conventions (docs/ARCHITECTURE.md): camera frames are OpenCV optical frames (x right, y down,
z forward); pixel (u, v) = (column, row) with the centre of pixel (i, j) at u = i, v = j;
`T_base_cam` maps camera points into base_link; depth is z in the camera frame (metres).
A feature map of size (h, w) covering an (H, W) image has cell (i, j) centred at pixel
u = (j + 0.5) * W / w - 0.5, v = (i + 0.5) * H / h - 0.5.

Each encoding sits next to its inverse, and the tests run the roundtrips:
- `pixel_rays` (pixels -> rays in base_link)      <-> `project_points` (points -> pixels, z)
- `unproject` (pixels + z -> points)              <-> `project_points`
- `plucker_from_rays` (ray -> direction, moment)  <-> `rays_from_plucker` (-> point, direction)
- `pixel_to_grid` (pixels -> grid_sample coords)  <-> `grid_to_pixel`
  (`grid_intrinsics` folds it into K; `project_grid` projects a whole voxel grid at once)
Geometry always runs in float32 with autocast disabled (bf16 would cost pixels and metres).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import AbstractContextManager

import torch
from torch import Tensor, nn

EPS_Z = 1e-6  # metres: smallest camera z treated as "in front" when dividing


def fp32_geometry(x: Tensor) -> AbstractContextManager[None]:
    """Context that disables autocast on `x`'s device, so geometry stays float32."""
    return torch.autocast(device_type=x.device.type, enabled=False)


def intrinsics_inverse(K: Tensor) -> Tensor:
    """Analytic inverse of upper-triangular pinhole intrinsics (fx, skew, cx; fy, cy).

    Args:
        K: (..., 3, 3) intrinsics in pixels.

    Returns:
        (..., 3, 3) inverse, float32.
    """
    K = K.float()
    fx, s, cx = K[..., 0, 0], K[..., 0, 1], K[..., 0, 2]
    fy, cy = K[..., 1, 1], K[..., 1, 2]
    zero, one = torch.zeros_like(fx), torch.ones_like(fx)
    rows = [torch.stack([1.0 / fx, -s / (fx * fy), (s * cy - cx * fy) / (fx * fy)], -1),
            torch.stack([zero, 1.0 / fy, -cy / fy], -1),
            torch.stack([zero, zero, one], -1)]
    return torch.stack(rows, -2)  # (..., 3, 3)


def cell_centers(h: int, w: int, image_hw: tuple[int, int], *, device: torch.device) -> Tensor:
    """Pixel coordinates of the centres of an (h, w) feature grid over an image.

    Returns:
        (h * w, 2) float32 (u, v), row-major over the grid.
    """
    H, W = image_hw
    u = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) * (W / w) - 0.5
    v = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) * (H / h) - 0.5
    vv, uu = torch.meshgrid(v, u, indexing="ij")  # (h, w) each
    return torch.stack([uu, vv], -1).reshape(h * w, 2)  # (h*w, 2)


def camera_directions(uv: Tensor, K: Tensor) -> Tensor:
    """Rays through pixels in the camera frame with z = 1 (not normalised).

    Args:
        uv: (N, 2) or (..., N, 2) pixel coordinates; broadcast against K's batch dims.
        K: (..., 3, 3) intrinsics.

    Returns:
        (..., N, 3) float32 directions (x/z, y/z, 1).
    """
    with fp32_geometry(uv):
        Kinv = intrinsics_inverse(K)  # (..., 3, 3)
        uv1 = torch.cat([uv.float(), torch.ones_like(uv[..., :1], dtype=torch.float32)], -1)
        return uv1 @ Kinv.transpose(-1, -2)  # (..., N, 3)


def pixel_rays(uv: Tensor, K: Tensor, T_base_cam: Tensor) -> tuple[Tensor, Tensor]:
    """Rays through pixels, in base_link.

    Args:
        uv: (N, 2) or (..., N, 2) pixel coordinates.
        K: (..., 3, 3) intrinsics; T_base_cam: (..., 4, 4) camera -> base_link.

    Returns:
        origin (..., N, 3) camera centre in metres, direction (..., N, 3) unit vectors.
    """
    with fp32_geometry(uv):
        d_cam = camera_directions(uv, K)  # (..., N, 3)
        T = T_base_cam.float()
        R, t = T[..., :3, :3], T[..., :3, 3]
        d = nn.functional.normalize(d_cam @ R.transpose(-1, -2), dim=-1)  # (..., N, 3)
        origin = t.unsqueeze(-2).expand_as(d)  # (..., N, 3)
        return origin, d


def plucker_from_rays(origin: Tensor, direction: Tensor) -> Tensor:
    """Plücker coordinates (d, m) of rays: unit direction d and moment m = o x d (metres).

    Returns:
        (..., 6) float32 [d, m]; every point of the line gives the same coordinates.
    """
    with fp32_geometry(origin):
        d = nn.functional.normalize(direction.float(), dim=-1)
        m = torch.linalg.cross(origin.float(), d, dim=-1)
        return torch.cat([d, m], -1)  # (..., 6)


def rays_from_plucker(plucker: Tensor) -> tuple[Tensor, Tensor]:
    """Inverse of `plucker_from_rays`: the line's point nearest the origin, and d.

    Returns:
        point (..., 3) metres (= d x m for unit d), direction (..., 3) unit.
    """
    with fp32_geometry(plucker):
        d = nn.functional.normalize(plucker[..., :3].float(), dim=-1)
        m = plucker[..., 3:].float()
        return torch.linalg.cross(d, m, dim=-1), d


def project_points(p_base: Tensor, K: Tensor, T_base_cam: Tensor) -> tuple[Tensor, Tensor]:
    """Project base_link points into cameras.

    Args:
        p_base: (B, N, 3) points in metres, shared by all views, or (B, V, N, 3).
        K: (B, V, 3, 3) intrinsics; T_base_cam: (B, V, 4, 4) camera -> base_link.

    Returns:
        uv (B, V, N, 2) pixels (meaningless where z <= 0), z (B, V, N) metres along the
        optical axis (negative behind the camera).
    """
    with fp32_geometry(p_base):
        T = T_base_cam.float()
        R, t = T[..., :3, :3], T[..., :3, 3]  # (B, V, 3, 3), (B, V, 3)
        p = p_base.float()
        if p.dim() == 3:
            p = p.unsqueeze(1)  # (B, 1, N, 3)
        # p_cam = R^T (p - t), written for row vectors: p @ R - t @ R
        p_cam = p @ R - (t.unsqueeze(-2) @ R)  # (B, V, N, 3)
        z = p_cam[..., 2]
        z_safe = torch.where(z > EPS_Z, z, torch.full_like(z, EPS_Z))
        x, y = p_cam[..., 0] / z_safe, p_cam[..., 1] / z_safe
        Kf = K.float().unsqueeze(-3)  # (B, V, 1, 3, 3)
        u = Kf[..., 0, 0] * x + Kf[..., 0, 1] * y + Kf[..., 0, 2]
        v = Kf[..., 1, 1] * y + Kf[..., 1, 2]
        return torch.stack([u, v], -1), z  # (B, V, N, 2), (B, V, N)


def project_grid(axes: Sequence[Tensor], K: Tensor, T_base_cam: Tensor,
                 ) -> tuple[Tensor, Tensor]:
    """`project_points` for every centre of a separable grid, without building the points.

    Projection is linear before the division by z, so each of (K R^T p)'s rows is a sum of
    one term per axis: three broadcast adds instead of a (N, 3) matmul per view.

    Args:
        axes: (X,), (Y,), (Z,) coordinates along base_link x, y, z, metres; the points are
            all (x_i, y_j, z_k), flattened in [i, j, k] order (N = X * Y * Z).
        K: (B, V, 3, 3) intrinsics (or `grid_intrinsics` for grid_sample coordinates).
        T_base_cam: (B, V, 4, 4) camera -> base_link.

    Returns:
        uv (B, V, N, 2) pixels (meaningless where z <= 0), z (B, V, N) metres.
    """
    with fp32_geometry(K):
        T = T_base_cam.float()
        R, t = T[..., :3, :3], T[..., :3, 3:]  # (B, V, 3, 3), (B, V, 3, 1)
        M = K.float() @ R.transpose(-1, -2)  # (B, V, 3, 3): pixels*z from base_link
        off = -(M @ t)[..., 0]  # (B, V, 3)
        ax, ay, az = (a.float() for a in axes)
        cx = M[..., None, :, 0] * ax[:, None]  # (B, V, X, 3)
        cy = M[..., None, :, 1] * ay[:, None]  # (B, V, Y, 3)
        cz = M[..., None, :, 2] * az[:, None] + off[..., None, :]  # (B, V, Z, 3)
        # coordinates last, so uv comes out in grid_sample's layout without a copy
        q = cx[:, :, :, None, None] + cy[:, :, None, :, None] + cz[:, :, None, None]
        q = q.flatten(2, 4)  # (B, V, N, 3)
        z = q[..., 2]
        inv_z = 1.0 / torch.where(z > EPS_Z, z, torch.full_like(z, EPS_Z))
        return q[..., :2] * inv_z[..., None], z


def grid_intrinsics(K: Tensor, image_hw: tuple[int, int]) -> Tensor:
    """Intrinsics that project to `grid_sample` coordinates instead of pixels.

    `pixel_to_grid` is affine, so K' = A K with A mapping u -> (u + 0.5) * 2 / W - 1 (and v
    likewise); projecting with K' gives what `pixel_to_grid(project with K)` gives.
    """
    H, W = image_hw
    K = K.float()
    row_u = K[..., 0, :] * (2.0 / W) + K[..., 2, :] * (1.0 / W - 1.0)
    row_v = K[..., 1, :] * (2.0 / H) + K[..., 2, :] * (1.0 / H - 1.0)
    return torch.stack([row_u, row_v, K[..., 2, :]], -2)  # (..., 3, 3)


def inside_grid(grid: Tensor) -> Tensor:
    """`inside_image` for grid_sample coordinates: both in [-1, 1)."""
    gu, gv = grid[..., 0], grid[..., 1]
    return (gu >= -1.0) & (gu < 1.0) & (gv >= -1.0) & (gv < 1.0)


def unproject(uv: Tensor, z: Tensor, K: Tensor, T_base_cam: Tensor) -> Tensor:
    """Inverse of `project_points`: pixels with depth z (metres) -> base_link points.

    Args:
        uv: (B, V, N, 2) pixels; z: (B, V, N) metres; K (B, V, 3, 3); T_base_cam (B, V, 4, 4).

    Returns:
        (B, V, N, 3) points in base_link, float32.
    """
    with fp32_geometry(uv):
        p_cam = camera_directions(uv, K) * z.float().unsqueeze(-1)  # (B, V, N, 3)
        T = T_base_cam.float()
        return p_cam @ T[..., :3, :3].transpose(-1, -2) + T[..., :3, 3].unsqueeze(-2)


def inside_image(uv: Tensor, image_hw: tuple[int, int]) -> Tensor:
    """True where a pixel coordinate lies inside the image (pixel edges at -0.5, W - 0.5)."""
    H, W = image_hw
    u, v = uv[..., 0], uv[..., 1]
    return (u >= -0.5) & (u < W - 0.5) & (v >= -0.5) & (v < H - 0.5)


def pixel_to_grid(uv: Tensor, image_hw: tuple[int, int]) -> Tensor:
    """Pixel coordinates -> `grid_sample` coordinates in [-1, 1] (align_corners=False).

    Valid for any feature map that covers the whole image, whatever its resolution.
    """
    H, W = image_hw
    u = (uv[..., 0] + 0.5) * (2.0 / W) - 1.0
    v = (uv[..., 1] + 0.5) * (2.0 / H) - 1.0
    return torch.stack([u, v], -1)


def grid_to_pixel(grid: Tensor, image_hw: tuple[int, int]) -> Tensor:
    """Inverse of `pixel_to_grid`."""
    H, W = image_hw
    u = (grid[..., 0] + 1.0) * (W / 2.0) - 0.5
    v = (grid[..., 1] + 1.0) * (H / 2.0) - 0.5
    return torch.stack([u, v], -1)


def fourier_features(x: Tensor, freqs: Tensor) -> Tensor:
    """[x, sin(f x), cos(f x)] for every frequency f, per coordinate.

    Args:
        x: (..., D); freqs: (F,) angular frequencies.

    Returns:
        (..., D * (2F + 1)).
    """
    xf = x.unsqueeze(-1) * freqs  # (..., D, F)
    out = torch.cat([x.unsqueeze(-1), torch.sin(xf), torch.cos(xf)], -1)  # (..., D, 2F+1)
    return out.flatten(-2)  # (..., D*(2F+1))


class CameraRayEmbedding(nn.Module):
    """Per-cell camera embedding: rays as Plücker coordinates in base_link -> MLP.

    Each cell's ray is encoded by its base_link Plücker coordinates (direction, moment /
    `scale`) and its camera-frame direction (where in the image it is), expanded with
    sinusoidal features and mapped to `dim` channels by a two-layer MLP. The result is
    added to the fusion tokens, so attention knows where every token looks from and to.
    """

    def __init__(self, dim: int, num_freqs: int = 6, scale: float = 2.0) -> None:
        """Args: dim output channels; num_freqs sinusoid octaves; scale metres for moments."""
        super().__init__()
        self.scale = float(scale)
        self.register_buffer("freqs", math.pi * 2.0 ** torch.arange(num_freqs).float(),
                             persistent=False)
        in_dim = 9 * (2 * num_freqs + 1)
        self.mlp = nn.Sequential(nn.Linear(in_dim, dim), nn.GELU(), nn.Linear(dim, dim))

    def ray_features(self, K: Tensor, T_base_cam: Tensor, grid_hw: tuple[int, int],
                     image_hw: tuple[int, int]) -> Tensor:
        """Unembedded ray coordinates of every cell, (B, V, h*w, 9) float32."""
        uv = cell_centers(*grid_hw, image_hw, device=K.device)  # (h*w, 2)
        with fp32_geometry(K):
            d_cam = nn.functional.normalize(camera_directions(uv, K), dim=-1)  # (B,V,h*w,3)
            origin, d = pixel_rays(uv, K, T_base_cam)  # (B, V, h*w, 3) each
            pl = plucker_from_rays(origin, d)  # (B, V, h*w, 6)
            pl = torch.cat([pl[..., :3], pl[..., 3:] / self.scale], -1)
            return torch.cat([pl, d_cam], -1)  # (B, V, h*w, 9)

    def forward(self, K: Tensor, T_base_cam: Tensor, grid_hw: tuple[int, int],
                image_hw: tuple[int, int]) -> Tensor:
        """Embeddings (B, V, h*w, dim) for an (h, w) token grid over an (H, W) image."""
        feats = self.ray_features(K, T_base_cam, grid_hw, image_hw)
        with fp32_geometry(feats):
            enc = fourier_features(feats, self.freqs)  # (B, V, h*w, 9*(2F+1))
        return self.mlp(enc)
