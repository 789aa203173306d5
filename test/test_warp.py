"""Tests of depth_any_view.training.warp: back-projection, projection, warps, SSIM, pairs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from depth_any_view.geometry.rig import load_rig, optical_rotation
from depth_any_view.geometry.transforms import make_transform
from depth_any_view.training.warp import (
    SSIM,
    BackprojectDepth,
    Project3D,
    ViewWarp,
    neighbour_pairs,
    pixel_to_grid,
    relative_transform,
    rigid_inverse,
    sample_image,
)

H, W = 12, 16


def _K(fx: float = 10.0, fy: float = 11.0, cx: float = 7.3, cy: float = 5.6) -> torch.Tensor:
    return torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def _random_transform(seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))
    return torch.from_numpy(make_transform(q, rng.normal(size=3)))


def test_rigid_inverse_and_relative_transform():
    T = torch.stack([_random_transform(s) for s in range(3)])  # (3, 4, 4)
    eye = torch.eye(4, dtype=torch.float64).expand(3, 4, 4)
    assert torch.allclose(T @ rigid_inverse(T), eye, atol=1e-12)
    T_s_t = relative_transform(T[0], T[1])
    p_t = torch.tensor([0.3, -0.2, 2.0, 1.0], dtype=torch.float64)
    # the same base_link point seen from both cameras
    assert torch.allclose(T[1] @ (T_s_t @ p_t), T[0] @ p_t, atol=1e-12)


def test_backproject_project_identity_roundtrip():
    depth = torch.rand(2, H, W) * 5 + 0.5
    K = _K().expand(2, 3, 3)
    points = BackprojectDepth(H, W)(depth, torch.linalg.inv(K))  # (2, 3, H*W)
    assert points.shape == (2, 3, H * W)
    assert torch.allclose(points[:, 2], depth.reshape(2, -1))
    uv, z = Project3D(H, W)(points, K, torch.eye(4).expand(2, 4, 4))
    v, u = torch.meshgrid(torch.arange(H, dtype=torch.float32),
                          torch.arange(W, dtype=torch.float32), indexing="ij")
    assert torch.allclose(uv[..., 0], u.expand(2, H, W), atol=1e-4)
    assert torch.allclose(uv[..., 1], v.expand(2, H, W), atol=1e-4)
    assert torch.allclose(z, depth, atol=1e-5)


def test_project_known_point():
    # a point at camera coordinates (1, -0.5, 4) in the source camera, translated by T
    K = _K()
    T = torch.eye(4)
    T[:3, 3] = torch.tensor([0.5, 0.0, 1.0])  # source <- target: shift
    p_t = torch.zeros(1, 3, H * W)
    p_t[0, :, 0] = torch.tensor([0.5, -0.5, 3.0])
    uv, z = Project3D(H, W)(p_t, K[None], T[None])
    assert z[0, 0, 0].item() == pytest.approx(4.0)
    assert uv[0, 0, 0, 0].item() == pytest.approx(10.0 * 1.0 / 4.0 + 7.3)
    assert uv[0, 0, 0, 1].item() == pytest.approx(11.0 * -0.5 / 4.0 + 5.6)


def test_pixel_to_grid_hits_pixel_centres():
    img = torch.arange(H * W, dtype=torch.float32).reshape(1, 1, H, W)
    uv = torch.tensor([[[[3.0, 2.0], [0.0, 0.0], [W - 1.0, H - 1.0]]]])  # (1, 1, 3, 2)
    vals = sample_image(img, pixel_to_grid(uv, H, W))[0, 0, 0]
    assert vals.tolist() == [2 * W + 3, 0, H * W - 1]


def test_view_warp_between_two_cameras_matches_numpy_projection():
    # target looks along base x, source is 0.4 m to the right and yawed by -20 degrees
    T_t = make_transform(optical_rotation(0.0), [0.0, 0.0, 1.5])
    T_s = make_transform(optical_rotation(math.radians(-20)), [0.0, -0.4, 1.5])
    K = _K(8.0, 8.0, (W - 1) / 2, (H - 1) / 2)
    depth = torch.full((1, H, W), 4.0)
    T_s_t = relative_transform(torch.from_numpy(T_t), torch.from_numpy(T_s))
    res = ViewWarp(H, W)(depth, K[None], K[None], T_s_t[None].float())
    # pixel (u=5, v=7) of the target, checked by hand with numpy
    p_t = 4.0 * np.linalg.solve(K.double().numpy(), [5.0, 7.0, 1.0])
    p_base = T_t[:3, :3] @ p_t + T_t[:3, 3]
    p_s = np.linalg.inv(T_s) @ np.append(p_base, 1.0)
    uv = (K.double().numpy() @ p_s[:3])[:2] / p_s[2]
    assert np.allclose(res.uv[0, 7, 5].numpy(), uv, atol=1e-4)
    assert res.depth[0, 7, 5].item() == pytest.approx(p_s[2], rel=1e-5)
    inside = (0 <= uv[0] <= W - 1) and (0 <= uv[1] <= H - 1)
    assert bool(res.in_view[0, 7, 5]) == inside


def test_view_warp_out_of_view_when_looking_away():
    T_t = make_transform(optical_rotation(0.0), [0.0, 0.0, 1.5])
    T_s = make_transform(optical_rotation(math.pi), [0.0, 0.0, 1.5])
    T_s_t = relative_transform(torch.from_numpy(T_t), torch.from_numpy(T_s)).float()
    res = ViewWarp(H, W)(torch.full((1, H, W), 3.0), _K()[None], _K()[None], T_s_t[None])
    assert not res.in_view.any()
    assert torch.isfinite(res.grid).all()


def test_neighbour_pairs_on_surround_rig_are_ring_neighbours():
    rig = load_rig("surround6")
    T = rig.T_base_cams()  # (6, 4, 4)
    pairs = neighbour_pairs(T)
    names = rig.names
    got = {(names[i], names[j]) for i, j in pairs}
    ring = ["front", "front_left", "back_left", "back", "back_right", "front_right"]
    expected = set()
    for k, n in enumerate(ring):
        expected.add((n, ring[(k + 1) % 6]))
        expected.add((n, ring[(k - 1) % 6]))
    assert got == expected and len(pairs) == 12
    batched = torch.from_numpy(T)[None].expand(2, 6, 4, 4)
    assert neighbour_pairs(batched) == pairs
    assert len(neighbour_pairs(T, 130.0)) == 24
    with pytest.raises(ValueError, match="T_base_cam"):
        neighbour_pairs(np.eye(4))


def test_ssim_identical_is_zero_and_differs_otherwise():
    x = torch.rand(2, 3, H, W, generator=torch.Generator().manual_seed(0))
    ssim = SSIM()
    assert ssim(x, x).abs().max().item() < 1e-5
    y = torch.rand(2, 3, H, W, generator=torch.Generator().manual_seed(1))
    assert ssim(x, y).mean().item() > 0.1
