"""Tests of depth_any_view.model.heads.occupancy_head: visibility, depth cues, 3D convs."""

import math

import torch
import torch.nn.functional as F

from depth_any_view.model.heads.occupancy_head import (
    NUM_CUES,
    FlatConv3d,
    OccupancyHead,
    centers_from_axes,
    grid_axes,
)

LOWER, UPPER, DIMS = (-4.0, -4.0, -1.0), (4.0, 4.0, 1.0), (16, 16, 8)
# optical frame (x right, y down, z forward) -> base_link for a camera looking along +x
R_FORWARD = torch.tensor([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def head() -> OccupancyHead:
    """A small head over an 8 m x 8 m x 2 m grid."""
    torch.manual_seed(0)
    return OccupancyHead(12, grid_lower=LOWER, grid_upper=UPPER, grid_dims=DIMS, channels=4,
                         stride=2, hidden=8, blocks=1, fine_channels=4).eval()


def forward_camera(yaw: float = 0.0, t=(0.0, 0.0, 0.0)) -> tuple[torch.Tensor, torch.Tensor]:
    """K (3, 3) of a 32x32, 90 deg camera and T_base_cam (4, 4) looking along yaw."""
    K = torch.tensor([[16.0, 0.0, 15.5], [0.0, 16.0, 15.5], [0.0, 0.0, 1.0]])
    c, s = math.cos(yaw), math.sin(yaw)
    Rz = torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    T = torch.eye(4)
    T[:3, :3] = Rz @ R_FORWARD
    T[:3, 3] = torch.tensor(t)
    return K, T


def test_flat_conv3d_matches_conv3d_and_survives_channels_last():
    torch.manual_seed(0)
    flat = FlatConv3d(3, 5, 3)
    ref = torch.nn.Conv3d(3, 5, 3, padding=1)
    with torch.no_grad():
        ref.weight.copy_(flat.weight.view(5, 3, 3, 3, 3))
        ref.bias.copy_(flat.bias)
    x = torch.randn(2, 3, 6, 5, 4)
    assert torch.allclose(flat(x), ref(x), atol=1e-5)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1), flat)
    model.to(memory_format=torch.channels_last)  # a plain Conv3d here raises
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_observed_is_false_behind_the_camera_and_outside_the_view():
    occ = head()
    K, T = forward_camera()
    depth = torch.full((1, 1, 32, 32), 3.0)
    cues, observed = occ.depth_cues(depth, K[None, None], T[None, None],
                                    torch.ones(1, 1, dtype=torch.bool))
    c = centers_from_axes(*grid_axes(LOWER, UPPER, DIMS)).view(*DIMS, 3)
    x, y, z = c[..., 0], c[..., 1], c[..., 2]
    # 90 deg square field of view along +x; its edges are pixel edges u, v = -0.5 (in)
    # and 31.5 (out), i.e. -y / x and -z / x in [-1, 1)
    expected = (x > 0) & (y <= x) & (y > -x) & (z <= x) & (z > -x)
    assert torch.equal(observed[0], expected)
    assert not observed[0][x < 0].any()
    assert torch.all(cues[0][:, ~observed[0]] == 0)


def test_depth_cues_follow_the_predicted_plane():
    occ = head()
    K, T = forward_camera()
    D = 2.25  # a wall at x = D in front of the camera
    cues, observed = occ.depth_cues(torch.full((1, 1, 32, 32), D), K[None, None],
                                    T[None, None], torch.ones(1, 1, dtype=torch.bool))
    c = centers_from_axes(*grid_axes(LOWER, UPPER, DIMS)).view(*DIMS, 3)
    r = (c[..., 0] - D) / occ.half_diagonal
    obs = observed[0]
    surf = torch.exp(-0.5 * r * r)
    assert torch.allclose(cues[0, 0][obs], surf[obs], atol=1e-5)  # max over the one view
    assert torch.allclose(cues[0, 2][obs], torch.tanh(0.5 * r)[obs], atol=1e-5)
    assert torch.all(cues[0, 4][obs] == 1.0) and torch.all(cues[0, 5][obs] == 1.0)


def test_masked_view_equals_removed_view():
    occ = head()
    K0, T0 = forward_camera(0.0)
    K1, T1 = forward_camera(math.pi / 2, (0.0, 0.5, 0.2))
    K2, T2 = forward_camera(math.pi, (-0.3, 0.0, 0.0))
    K = torch.stack([K0, K1, K2])[None]
    T = torch.stack([T0, T1, T2])[None]
    torch.manual_seed(1)
    feats = torch.randn(1, 3, 12, 4, 4)
    depth = 1.0 + 3.0 * torch.rand(1, 3, 32, 32)
    mask = torch.tensor([[True, False, True]])
    logits, observed = occ(feats, depth, K, T, mask)
    keep = [0, 2]
    ref_logits, ref_observed = occ(feats[:, keep], depth[:, keep], K[:, keep], T[:, keep],
                                   torch.ones(1, 2, dtype=torch.bool))
    assert torch.equal(observed, ref_observed)
    assert torch.allclose(logits, ref_logits, atol=1e-5)
    assert logits.shape == (1, *DIMS) and logits.dtype == torch.float32


def test_occupancy_gradient_reaches_features_and_depth():
    occ = head()
    K, T = forward_camera()
    feats = torch.randn(1, 1, 12, 4, 4, requires_grad=True)
    depth = torch.full((1, 1, 32, 32), 2.0, requires_grad=True)
    logits, _ = occ(feats, depth, K[None, None], T[None, None],
                    torch.ones(1, 1, dtype=torch.bool))
    logits.sum().backward()
    assert feats.grad.abs().sum() > 0 and depth.grad.abs().sum() > 0


def test_gather_features_averages_over_seeing_views():
    occ = head()
    K0, T0 = forward_camera(0.0)
    K1, T1 = forward_camera(math.pi)
    K, T = torch.stack([K0, K1])[None], torch.stack([T0, T1])[None]
    feats = torch.stack([torch.full((4, 4, 4), 1.0), torch.full((4, 4, 4), 3.0)])[None]
    out = occ.gather_features(feats, K, T, torch.ones(1, 2, dtype=torch.bool), (32, 32))
    assert out.shape == (1, 8, *(d // 2 for d in DIMS))
    c = centers_from_axes(*grid_axes(LOWER, UPPER, tuple(d // 2 for d in DIMS)))
    c = c.view(*(d // 2 for d in DIMS), 3)
    front = (c[..., 0] > 0) & (c[..., 1].abs() < c[..., 0]) & (c[..., 2].abs() < c[..., 0])
    back = (c[..., 0] < 0) & (c[..., 1].abs() < -c[..., 0]) & (c[..., 2].abs() < -c[..., 0])
    assert torch.allclose(out[0, :4][:, front], torch.tensor(1.0))
    assert torch.allclose(out[0, :4][:, back], torch.tensor(3.0))
    assert torch.all(out[0, 4:][:, front | back].abs() < 1e-5)  # one view: zero variance
    assert NUM_CUES == 6 and F.relu(out).shape == out.shape
