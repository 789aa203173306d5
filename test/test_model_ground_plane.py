"""Tests of depth_any_view.model.ground_plane and the network's ground-embedding path."""

import math
from dataclasses import replace

import pytest
import torch
from test_model_network import TINY, net_for, ring_inputs

from depth_any_view.model.camera_encoding import cell_centers, unproject
from depth_any_view.model.config import ConfigError, model_config_from_dict
from depth_any_view.model.ground_plane import MAX_INVERSE_DEPTH, ground_plane_maps
from depth_any_view.model.network import DepthAnyViewNet

GROUND_TINY = replace(TINY, ground_embedding=True)


def pitched_camera(height: float, pitch_deg: float, size: int = 32, f: float = 16.0):
    """One forward camera `height` m above base_link's origin, pitched down by pitch_deg."""
    K = torch.tensor([[f, 0.0, size / 2 - 0.5], [0.0, f, size / 2 - 0.5], [0.0, 0.0, 1.0]])
    p = math.radians(pitch_deg)
    Ry = torch.tensor([[math.cos(p), 0.0, math.sin(p)], [0.0, 1.0, 0.0],
                       [-math.sin(p), 0.0, math.cos(p)]])  # about base y: +p tilts x down
    R_forward = torch.tensor([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    T = torch.eye(4)
    T[:3, :3] = Ry @ R_forward
    T[2, 3] = height
    return K.expand(1, 1, 3, 3).clone(), T.expand(1, 1, 4, 4).clone()


@pytest.mark.parametrize("height,pitch", [(1.6, 0.0), (0.4, 15.0), (2.3, -8.0)])
def test_ground_depth_lands_on_the_ground(height, pitch):
    """Pixels unprojected at the embedded ground depth sit on z = 0 in base_link."""
    K, T = pitched_camera(height, pitch)
    maps = ground_plane_maps(K, T, (32, 32), (32, 32))  # (1, 1, 3, 32, 32)
    inv = maps[0, 0, 0].reshape(-1)
    hit = (inv > 0) & (inv < MAX_INVERSE_DEPTH)
    assert hit.sum() > 50  # the lower part of the image sees the ground
    uv = cell_centers(32, 32, (32, 32), device=K.device)[hit]
    p = unproject(uv[None, None], (1.0 / inv[hit])[None, None], K, T)
    assert torch.allclose(p[..., 2], torch.zeros_like(p[..., 2]), atol=1e-4)
    # at and above the horizon there is no ground: 0, and the elevation is >= 0 there
    elevation = maps[0, 0, 1].reshape(-1)
    assert torch.all(inv[elevation >= 0] == 0)
    assert torch.all(inv[elevation < -1e-3] > 0)
    assert torch.allclose(maps[0, 0, 2], torch.full((32, 32), height))


def test_ground_z_moves_the_plane_and_below_ground_sees_none():
    K, T = pitched_camera(1.5, 10.0)
    K2, T2 = pitched_camera(2.0, 10.0)
    a = ground_plane_maps(K, T, (32, 32), (8, 8), ground_z=-0.5)
    b = ground_plane_maps(K2, T2, (32, 32), (8, 8))
    assert torch.allclose(a, b, atol=1e-6)
    below = ground_plane_maps(K, T, (32, 32), (8, 8), ground_z=2.0)
    assert torch.all(below[0, 0, 0] == 0) and torch.all(below[0, 0, 2] == 0)


def test_maps_follow_the_grid_and_batch():
    """A coarse grid samples the rays through its cells' centres; views are independent."""
    _, K, T = ring_inputs(2, 3, size=64)
    coarse = ground_plane_maps(K, T, (64, 64), (4, 4))
    assert coarse.shape == (2, 3, 3, 4, 4) and coarse.dtype == torch.float32
    one = ground_plane_maps(K[1:, 2:], T[1:, 2:], (64, 64), (4, 4))
    assert torch.allclose(coarse[1:, 2:], one)


def test_zero_initialised_embedding_leaves_the_network_unchanged():
    """Weights trained without the embedding load and give the same depth with it."""
    images, K, T = ring_inputs(1, 3)
    base = net_for(TINY)
    with_ground = DepthAnyViewNet(GROUND_TINY).eval()
    missing, unexpected = with_ground.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("ground.") for k in missing)
    with torch.no_grad():
        a, b = base(images, K, T), with_ground(images, K, T)
    assert torch.equal(a.depth, b.depth)
    assert torch.equal(a.occupancy_logits, b.occupancy_logits)


def test_embedding_learns_and_responds_to_the_camera_height():
    """Its zero layers get gradients, and once they are non-zero the camera height changes
    the predicted depth of the same image (what a monocular net cannot see in pixels)."""
    images, K, T = ring_inputs(1, 2)
    net = net_for(GROUND_TINY).train()
    net(images, K, T).depth.mean().backward()
    last = [m[-1] for m in net.ground.mlps.values()]
    assert all(layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
               for layer in last)
    with torch.no_grad():
        for layer in last:
            layer.weight.normal_(std=0.3)
    net.eval()
    T_low = T.clone()
    T_low[..., 2, 3] = 0.4
    with torch.no_grad():
        high, low = net(images, K, T).depth, net(images, K, T_low).depth
    assert (high - low).abs().max() > 1e-3


def test_config_checks_the_ground_options():
    cfg = model_config_from_dict({"ground_embedding": True, "ground_z": -0.1})
    assert cfg.ground_embedding and cfg.ground_z == pytest.approx(-0.1)
    with pytest.raises(ConfigError, match="ground_embedding"):
        model_config_from_dict({"ground_embedding": "yes"})
    with pytest.raises(ConfigError, match="ground_z"):
        model_config_from_dict({"ground_z": "floor"})
