"""Tests of depth_any_view.model.camera_encoding: each encoding against its inverse."""

import math

import pytest
import torch
import torch.nn.functional as F

from depth_any_view.model.camera_encoding import (
    CameraRayEmbedding,
    camera_directions,
    cell_centers,
    grid_intrinsics,
    grid_to_pixel,
    inside_grid,
    inside_image,
    intrinsics_inverse,
    pixel_rays,
    pixel_to_grid,
    plucker_from_rays,
    project_grid,
    project_points,
    rays_from_plucker,
    unproject,
)


def random_rotation(gen: torch.Generator, n: int) -> torch.Tensor:
    """(n, 3, 3) random proper rotations (QR of Gaussian matrices)."""
    q, r = torch.linalg.qr(torch.randn(n, 3, 3, generator=gen, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)
    return q * torch.det(q).sign()[:, None, None]


def random_cameras(gen: torch.Generator, B: int, V: int) -> tuple[torch.Tensor, torch.Tensor]:
    """K (B, V, 3, 3) with skew and T_base_cam (B, V, 4, 4) for 64 x 48 images."""
    K = torch.zeros(B, V, 3, 3)
    K[..., 0, 0] = 40 + 20 * torch.rand(B, V, generator=gen)
    K[..., 1, 1] = 40 + 20 * torch.rand(B, V, generator=gen)
    K[..., 0, 1] = 0.5
    K[..., 0, 2], K[..., 1, 2], K[..., 2, 2] = 31.5, 23.5, 1.0
    T = torch.eye(4).repeat(B, V, 1, 1)
    T[..., :3, :3] = random_rotation(gen, B * V).float().view(B, V, 3, 3)
    T[..., :3, 3] = 2 * torch.randn(B, V, 3, generator=gen)
    return K, T


def test_intrinsics_inverse_matches_linalg():
    K, _ = random_cameras(torch.Generator().manual_seed(0), 2, 3)
    eye = intrinsics_inverse(K) @ K
    assert torch.allclose(eye, torch.eye(3).expand_as(eye), atol=1e-5)


def test_plucker_roundtrip_recovers_the_ray():
    gen = torch.Generator().manual_seed(1)
    origin = 3 * torch.randn(100, 3, generator=gen)
    direction = torch.randn(100, 3, generator=gen)
    pl = plucker_from_rays(origin, direction)
    point, d = rays_from_plucker(pl)
    unit = direction / direction.norm(dim=-1, keepdim=True)
    assert torch.allclose(d, unit, atol=1e-6)
    # the recovered point lies on the original line and is the one nearest the origin
    off = point - origin
    assert torch.allclose(torch.linalg.cross(off, unit, dim=-1), torch.zeros(100, 3), atol=1e-4)
    assert torch.allclose((point * unit).sum(-1), torch.zeros(100), atol=1e-4)
    # any other point on the same line gives the same coordinates
    moved = plucker_from_rays(origin + 2.5 * unit, 7.0 * direction)
    assert torch.allclose(moved, pl, atol=1e-4)


def test_project_unproject_roundtrip():
    gen = torch.Generator().manual_seed(2)
    K, T = random_cameras(gen, 2, 3)
    uv = torch.rand(2, 3, 50, 2, generator=gen) * torch.tensor([64.0, 48.0]) - 0.5
    z = 0.5 + 20 * torch.rand(2, 3, 50, generator=gen)
    p = unproject(uv, z, K, T)  # (B, V, N, 3)
    uv2, z2 = project_points(p, K, T)
    assert torch.allclose(uv2, uv, atol=2e-3) and torch.allclose(z2, z, rtol=1e-4)
    assert inside_image(uv2, (48, 64)).all()


def test_pixel_rays_pass_through_their_pixels():
    gen = torch.Generator().manual_seed(3)
    K, T = random_cameras(gen, 1, 2)
    uv = cell_centers(6, 8, (48, 64), device=torch.device("cpu"))  # (48, 2)
    origin, d = pixel_rays(uv, K, T)  # (1, 2, 48, 3)
    assert torch.allclose(d.norm(dim=-1), torch.ones(1, 2, 48), atol=1e-6)
    uv2, z = project_points(origin + 5.0 * d, K, T)
    assert torch.allclose(uv2, uv.expand_as(uv2), atol=2e-3)
    assert (z > 0).all()
    # camera-frame directions have z = 1 and reproduce the pixels through K
    dc = camera_directions(uv, K)
    assert torch.allclose(dc[..., 2], torch.ones_like(dc[..., 2]))


def test_cell_centers_follow_the_resize_convention():
    # a 2x2 grid over a 4x4 image: cells centred between pixels 0,1 and 2,3
    uv = cell_centers(2, 2, (4, 4), device=torch.device("cpu"))
    assert uv.tolist() == [[0.5, 0.5], [2.5, 0.5], [0.5, 2.5], [2.5, 2.5]]


def test_pixel_to_grid_roundtrip_and_grid_sample_hits_pixel_centres():
    uv = torch.tensor([[0.0, 0.0], [63.0, 47.0], [10.0, 20.0], [-0.5, -0.5]])
    g = pixel_to_grid(uv, (48, 64))
    assert torch.allclose(grid_to_pixel(g, (48, 64)), uv, atol=1e-5)
    assert torch.allclose(g[-1], torch.tensor([-1.0, -1.0]))
    # sampling an image holding its column index returns u exactly at pixel centres
    image = torch.arange(64.0).expand(1, 1, 48, 64)
    out = F.grid_sample(image, g[:3].view(1, 1, 3, 2), align_corners=False)
    assert torch.allclose(out.flatten(), uv[:3, 0], atol=1e-4)


def test_points_behind_the_camera_have_negative_z():
    K = torch.tensor([[32.0, 0, 31.5], [0, 32.0, 31.5], [0, 0, 1]]).expand(1, 1, 3, 3)
    T = torch.eye(4).expand(1, 1, 4, 4)
    _, z = project_points(torch.tensor([[[0.0, 0.0, -2.0], [0.0, 0.0, 3.0]]]), K, T)
    assert z.flatten().tolist() == [-2.0, 3.0]


def test_camera_embedding_shape_and_dependence_on_pose():
    torch.manual_seed(0)
    emb = CameraRayEmbedding(16, num_freqs=4, scale=2.0)
    gen = torch.Generator().manual_seed(4)
    K, T = random_cameras(gen, 2, 3)
    out = emb(K, T, (3, 4), (48, 64))
    assert out.shape == (2, 3, 12, 16) and torch.isfinite(out).all()
    T2 = T.clone()
    T2[0, 1, :3, 3] += 1.0  # moving one camera changes only its embedding
    out2 = emb(K, T2, (3, 4), (48, 64))
    changed = (out2 - out).abs().amax(dim=(-1, -2))  # (B, V)
    assert changed[0, 1] > 1e-4 and changed.sum() == changed[0, 1]


def test_geometry_stays_float32_under_autocast():
    gen = torch.Generator().manual_seed(5)
    K, T = random_cameras(gen, 1, 2)
    p = 10 * torch.randn(1, 1000, 3, generator=gen)
    ref_uv, ref_z = project_points(p, K, T)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        uv, z = project_points(p, K, T)
        emb = CameraRayEmbedding(8).ray_features(K, T, (2, 2), (48, 64))
    assert uv.dtype == torch.float32 and emb.dtype == torch.float32
    assert torch.equal(uv, ref_uv) and torch.equal(z, ref_z)
    assert math.isfinite(float(emb.abs().max()))


@pytest.mark.parametrize("shape", [(5, 2), (1, 2, 5, 2)])
def test_camera_directions_broadcast(shape):
    K, _ = random_cameras(torch.Generator().manual_seed(6), 1, 2)
    uv = torch.zeros(shape)
    assert camera_directions(uv, K).shape == (1, 2, 5, 3)


def test_project_grid_matches_project_points_and_grid_intrinsics_match_pixel_to_grid():
    gen = torch.Generator().manual_seed(7)
    K, T = random_cameras(gen, 2, 3)
    axes = [torch.linspace(-3, 3, 5), torch.linspace(-2, 2, 4), torch.linspace(-1, 1, 3)]
    gx, gy, gz = torch.meshgrid(*axes, indexing="ij")
    points = torch.stack([gx, gy, gz], -1).reshape(1, -1, 3).expand(2, -1, -1)
    uv_ref, z_ref = project_points(points, K, T)
    uv, z = project_grid(axes, K, T)
    front = z_ref > 0.1
    assert torch.allclose(z, z_ref, atol=1e-5)
    assert torch.allclose(uv[front], uv_ref[front], rtol=1e-4, atol=1e-3)
    grid, _ = project_grid(axes, grid_intrinsics(K, (48, 64)), T)
    assert torch.allclose(grid[front], pixel_to_grid(uv_ref, (48, 64))[front], atol=1e-4)
    assert torch.equal(inside_grid(grid)[front], inside_image(uv_ref, (48, 64))[front])
