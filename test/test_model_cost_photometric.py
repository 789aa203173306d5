"""Tests of the photometric (grey-level NCC) part of the plane-sweep cost volume."""

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from test_model_cost_volume import COST_TINY, stereo_rig
from test_model_network import ring_inputs

from depth_any_view.model.config import ConfigError, model_config_from_dict
from depth_any_view.model.cost_volume import (
    PlaneSweepCostVolume,
    SourceViews,
    cell_box_means,
    grey_levels,
    normalised_cross_correlation,
)
from depth_any_view.model.network import DepthAnyViewNet, PreviousSet

PHOTO_TINY = replace(COST_TINY, cost_photometric=True, cost_photo_window=6)


def test_cell_box_means_average_the_box_around_each_cell():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 12, 16, generator=gen)
    out = cell_box_means(x, 4, 2)  # boxes of 4 x 4 pixels centred on 2 x 2 cells
    assert out.shape == (2, 3, 6, 8)
    # cell (2, 3) covers pixels 4..5 x 6..7: its box is rows 3..6, columns 5..8
    assert torch.allclose(out[..., 2, 3], x[..., 3:7, 5:9].mean((-1, -2)), atol=1e-6)
    # at the corner the box is cut: rows 0..2, columns 0..2
    assert torch.allclose(out[..., 0, 0], x[..., 0:3, 0:3].mean((-1, -2)), atol=1e-6)


def test_ncc_ignores_gain_and_offset_and_flat_patches():
    """Cameras with other exposure correlate fully; a flat (textureless) patch says 0."""
    gen = torch.Generator().manual_seed(1)
    ref = torch.rand(1, 1, 16, 16, generator=gen)
    warped = torch.stack([0.5 * ref + 0.2, 1.0 - ref, torch.full_like(ref, 0.3)], 1)
    ncc = normalised_cross_correlation(ref, warped[:, None, :, 0], 4, 2)  # (1, 1, 3, 8, 8)
    assert torch.allclose(ncc[0, 0, 0], torch.ones(8, 8), atol=1e-4)
    assert torch.allclose(ncc[0, 0, 1], -torch.ones(8, 8), atol=1e-4)
    assert torch.equal(ncc[0, 0, 2], torch.zeros(8, 8))


def test_photometric_sweep_finds_a_textured_plane_without_training():
    """A fronto-parallel textured plane seen by a rectified pair: the NCC over the raw grey
    images peaks at the plane's depth for nearly every cell that both cameras see."""
    size, f = 64, 32.0
    vol = PlaneSweepCostVolume(4, groups=1, hypotheses=32, min_depth=0.5, max_depth=20.0,
                               neighbours=1, min_baseline=0.05, photo_window=6,
                               photo_factor=2)
    photo_depths = vol.depths[::2]
    z_true = float(photo_depths[7])
    disparity = 8  # pixels at full resolution: f * baseline / z
    K, T = stereo_rig(disparity * z_true / f, size, f)
    gen = torch.Generator().manual_seed(2)
    texture = F.interpolate(torch.rand(1, 1, 24, 40, generator=gen), size=(size, size + 16),
                            mode="bilinear", align_corners=False)
    left = texture[..., 8:8 + size]
    right = texture[..., 8 + disparity:8 + disparity + size]  # left's u appears at u - d
    images = torch.cat([left, right]).expand(2, 3, size, size)  # grey RGB
    feats = torch.cat([torch.zeros(2, 4, 16, 16), grey_levels(images, 2)], 1)[None]
    valid = torch.ones(1, 2, dtype=torch.bool)
    out = vol(feats, K, T, valid, SourceViews(feats, K, T, valid), (size, size),
              torch.eye(2, dtype=torch.bool))
    assert out.shape == (1, 2, 32 + 16 + 1, 16, 16)
    photo = out[0, 0, 32:48]  # the left view's NCC per plane, (16, 16, 16)
    best = photo.argmax(0)[2:-2, 2:-4]  # away from the border and the unseen right edge
    assert (best == 7).float().mean() > 0.9


def test_zero_initialised_photometric_layer_leaves_the_network_unchanged():
    images, K, T = ring_inputs(1, 3)
    torch.manual_seed(0)
    base = DepthAnyViewNet(COST_TINY).eval()
    photo = DepthAnyViewNet(PHOTO_TINY).eval()
    missing, unexpected = photo.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected and missing == ["cost.photo_encode.weight", "cost.photo_encode.bias"]
    with torch.no_grad():
        a, b = base(images, K, T), photo(images, K, T)
    assert torch.equal(a.depth, b.depth)
    # the grey levels travel with the matching features (what the previous set carries)
    assert b.match_features.shape == (1, 3, 8 + 4, 16, 16)


def test_photometric_network_learns_and_runs_with_a_previous_set():
    """From a fresh start the zero layers open up: after one step (the layers into the
    tokens and decoder leave zero) the photometric layer gets gradients too."""
    images, K, T = ring_inputs(1, 4)
    torch.manual_seed(0)
    net = DepthAnyViewNet(PHOTO_TINY).train()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    motion = torch.eye(4)[None]
    motion[0, 0, 3] = -0.4  # 0.4 m forward since the previous set
    for _ in range(2):
        opt.zero_grad()
        out = net(images, K, T)
        prev = PreviousSet(net.match_features(images).detach(), K, T, motion,
                           torch.ones(1, 4, dtype=torch.bool))
        again = net(images, K, T, previous=prev)
        (out.depth.mean() + again.depth.mean()).backward()
        opt.step()
    grad = net.cost.photo_encode.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    assert torch.isfinite(again.depth).all()


def test_config_checks_the_photometric_options():
    with pytest.raises(ConfigError, match="cost_photometric"):
        model_config_from_dict({"cost_photometric": True})
    with pytest.raises(ConfigError, match="cost_photo_window"):
        model_config_from_dict({"cost_volume": True, "cost_photometric": True,
                                "cost_photo_window": 5})
    cfg = model_config_from_dict({"cost_volume": True, "cost_photometric": True})
    assert cfg.cost_photo_window == 8
