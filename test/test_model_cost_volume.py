"""Tests of depth_any_view.model.cost_volume and the network's cost-volume path."""

import math
from dataclasses import replace

import pytest
import torch
from test_model_network import TINY, ring_inputs

from depth_any_view.model.camera_encoding import (
    cell_centers,
    grid_to_pixel,
    project_points,
    unproject,
)
from depth_any_view.model.cost_volume import (
    PlaneSweepCostVolume,
    SourceViews,
    inverse_depth_hypotheses,
    pair_transforms,
    sweep_coordinates,
)
from depth_any_view.model.network import DepthAnyViewNet, PreviousSet

# optical frame (x right, y down, z forward) -> base_link for a camera looking along +x
R_FORWARD = torch.tensor([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
COST_TINY = replace(TINY, cost_volume=True, cost_temporal=True, cost_hypotheses=8,
                    cost_channels=8, cost_groups=2)


def stereo_rig(baseline: float, size: int = 64, f: float = 32.0):
    """Two forward cameras, the second `baseline` metres to the right (optical +x)."""
    K = torch.tensor([[f, 0.0, size / 2 - 0.5], [0.0, f, size / 2 - 0.5], [0.0, 0.0, 1.0]])
    T = torch.eye(4).repeat(1, 2, 1, 1)
    T[0, :, :3, :3] = R_FORWARD
    T[0, 1, :3, 3] = R_FORWARD @ torch.tensor([baseline, 0.0, 0.0])
    return K.expand(1, 2, 3, 3).clone(), T


def test_hypotheses_are_uniform_in_inverse_depth():
    d = inverse_depth_hypotheses(0.5, 20.0, 5)
    assert d[0] == pytest.approx(0.5) and d[-1] == pytest.approx(20.0)
    inv = 1.0 / d
    assert torch.allclose(inv[1:] - inv[:-1], (inv[1] - inv[0]).expand(4), atol=1e-5)
    with pytest.raises(ValueError):
        inverse_depth_hypotheses(2.0, 1.0, 8)


def test_sweep_lands_where_the_point_projects():
    """A reference pixel at hypothesis depth z lands where project_points puts that point."""
    images, K, T = ring_inputs(1, 3, size=64)
    T[0, 1, :3, :3] = T[0, 0, :3, :3]  # a second camera looking the same way, moved
    T[0, 1, :3, 3] = T[0, 0, :3, 3] + torch.tensor([0.1, -0.3, 0.05])
    depths = torch.tensor([1.0, 2.5, 7.0])
    uv = cell_centers(4, 4, (64, 64), device=K.device)  # (16, 2)
    T_src_ref = pair_transforms(T, T)  # (1, 3, 3, 4, 4)
    K_src = K[:, None].expand(1, 3, 3, 3, 3)
    grid, inside = sweep_coordinates(K, K_src, T_src_ref, depths, uv, (64, 64))
    for i, z in enumerate(depths):
        p = unproject(uv.expand(1, 3, 16, 2), torch.full((1, 3, 16), float(z)), K, T)
        uv_src, z_src = project_points(p[:, 0], K, T)  # reference view 0 into every view
        got = grid_to_pixel(grid[0, 0, :, i], (64, 64))  # (S, N, 2)
        seen = z_src[0] > 0
        assert torch.allclose(got[seen], uv_src[0][seen], atol=1e-3)
    assert inside[0, 0, 0].all()  # a view sees its own pixels at every depth
    assert not inside[0, 0, 2].any()  # the camera looking 120 deg away sees none of them


def test_stereo_cost_peaks_at_the_true_depth():
    """A fronto-parallel plane seen by a stereo pair: the best hypothesis is its depth."""
    size, f, cells = 64, 32.0, 16  # features at 1/4: 16 x 16 cells, f = 8 per cell
    vol = PlaneSweepCostVolume(8, groups=2, hypotheses=16, min_depth=0.5, max_depth=20.0,
                               neighbours=1, min_baseline=0.05)
    z_true = float(vol.depths[6])
    disparity_cells = 3
    baseline = disparity_cells * z_true / (f * cells / size)  # f_cell * B / z = 3 cells
    K, T = stereo_rig(baseline, size, f)
    gen = torch.Generator().manual_seed(1)
    ref = torch.nn.functional.normalize(torch.randn(1, 2, 8, cells, cells, generator=gen), dim=2)
    # the right camera sees at cell j what the left one sees at cell j + 3
    feats = ref.clone()
    feats[:, 1, :, :, :-disparity_cells] = ref[:, 0, :, :, disparity_cells:]
    valid = torch.ones(1, 2, dtype=torch.bool)
    same = torch.eye(2, dtype=torch.bool)
    out = vol(feats, K, T, valid, SourceViews(feats, K, T, valid), (size, size), same)
    cost = out[0, 0, :-1].view(2, 16, cells, cells).mean(0)  # (D, h, w) of the left view
    best = cost.argmax(0)[:, disparity_cells:cells - disparity_cells]
    assert (best == 6).float().mean() > 0.9
    assert out[0, 0, -1].mean() > 0.5  # evidence: most samples land inside the right view


def test_no_partner_means_no_evidence():
    """One camera alone, a masked partner, or a partner that did not move: evidence 0."""
    vol = PlaneSweepCostVolume(8, groups=2, hypotheses=8, min_depth=0.5, max_depth=20.0,
                               neighbours=2, min_baseline=0.05)
    K, T = stereo_rig(0.2)
    feats = torch.randn(1, 2, 8, 16, 16)
    one = torch.ones(1, 1, dtype=torch.bool)
    out = vol(feats[:, :1], K[:, :1], T[:, :1], one,
              SourceViews(feats[:, :1], K[:, :1], T[:, :1], one), (64, 64),
              torch.eye(1, dtype=torch.bool))
    assert torch.isfinite(out).all() and out.abs().max() == 0
    valid = torch.tensor([[True, False]])
    out = vol(feats, K, T, valid, SourceViews(feats, K, T, valid), (64, 64),
              torch.eye(2, dtype=torch.bool))
    assert out[0, 0].abs().max() == 0
    # the previous set of a robot standing still: the same view at zero baseline
    src = SourceViews(feats[:, :1], K[:, :1], T[:, :1], one)
    out = vol(feats[:, :1], K[:, :1], T[:, :1], one, src, (64, 64), None)
    assert out[0, 0, -1].abs().max() == 0


def test_network_runs_for_one_to_eight_views_with_and_without_a_previous_set():
    torch.manual_seed(0)
    net = DepthAnyViewNet(COST_TINY).eval()
    for V in (1, 2, 6, 8):
        images, K, T = ring_inputs(1, V)
        with torch.no_grad():
            out = net(images, K, T)
            assert out.match_features.shape == (1, V, 8, 16, 16)
            motion = torch.eye(4)[None]
            motion[0, 0, 3] = -0.4  # the base drove 0.4 m forward since the previous set
            prev = PreviousSet(out.match_features, K, T, motion, torch.ones(1, V, dtype=bool))
            again = net(images, K, T, previous=prev)
        assert torch.isfinite(again.depth).all()
        assert again.depth.shape == (1, V, 64, 64)


def test_previous_set_changes_depth_only_with_motion():
    """The previous set counts when the base moved, and not at all when it stood still."""
    torch.manual_seed(0)
    net = DepthAnyViewNet(COST_TINY).eval()
    for m in net.modules():  # the volume's projections start at zero: make them count
        if m is net.cost_tokens or m is net.depth_head.cost_proj:
            torch.nn.init.normal_(m.weight, std=0.3)
    torch.nn.init.normal_(net.depth_head.out_logit.weight, std=0.5)
    images, K, T = ring_inputs(1, 1)
    with torch.no_grad():
        first = net(images, K, T)
        still = PreviousSet(first.match_features, K, T, torch.eye(4)[None],
                            torch.ones(1, 1, dtype=torch.bool))
        same = net(images, K, T, previous=still)
        motion = torch.eye(4)[None]
        motion[0, 0, 3] = -0.5
        moved = net(images, K, T, previous=PreviousSet(first.match_features, K, T, motion,
                                                       torch.ones(1, 1, dtype=torch.bool)))
    assert torch.allclose(same.depth, first.depth, atol=1e-5)
    assert (moved.depth - first.depth).abs().max() > 1e-3


def test_masked_view_equals_removed_view_with_cost_volume():
    torch.manual_seed(0)
    net = DepthAnyViewNet(replace(COST_TINY, cost_temporal=False)).eval()
    for m in (net.cost_tokens, net.depth_head.cost_proj):
        torch.nn.init.normal_(m.weight, std=0.3)
    images, K, T = ring_inputs(1, 4)
    mask = torch.tensor([[True, True, False, True]])
    keep = [0, 1, 3]
    with torch.no_grad():
        masked = net(images, K, T, mask)
        removed = net(images[:, keep], K[:, keep], T[:, keep])
    assert torch.allclose(masked.depth[:, keep], removed.depth, atol=1e-4, rtol=1e-4)


def test_gradient_reaches_the_matching_features():
    torch.manual_seed(0)
    net = DepthAnyViewNet(COST_TINY)
    for m in (net.cost_tokens, net.depth_head.cost_proj):
        torch.nn.init.normal_(m.weight, std=0.3)
    images, K, T = ring_inputs(2, 6)  # 90 deg lenses 60 deg apart: neighbours overlap
    out = net(images, K, T)
    out.depth.mean().backward()
    assert net.cost.match.weight.grad.abs().sum() > 0
    assert net.cost_tokens.weight.grad.abs().sum() > 0


def test_cost_stride_eight_and_bad_options():
    from depth_any_view.config import ConfigError

    net = DepthAnyViewNet(replace(COST_TINY, cost_stride=8)).eval()
    images, K, T = ring_inputs(1, 2)
    with torch.no_grad():
        assert net(images, K, T).match_features.shape[-2:] == (8, 8)
    with pytest.raises(ConfigError, match="cost_temporal"):
        replace(TINY, cost_temporal=True)
    with pytest.raises(ConfigError, match="cost_groups"):
        replace(COST_TINY, cost_channels=6, cost_groups=4)
    with pytest.raises(ConfigError, match="cost_stride"):
        replace(COST_TINY, cost_stride=2)
    assert math.isfinite(COST_TINY.cost_min_baseline)


def test_soft_argmin_depth_follows_the_best_plane():
    """The volume's own depth (soft-argmin) lands near the plane the stereo pair matches."""
    from depth_any_view.model.cost_volume import CostVolumeEncoder

    enc = CostVolumeEncoder(8, 8, channels=8, groups=2, hypotheses=16, min_depth=0.5,
                            max_depth=20.0, neighbours=1, min_baseline=0.05)
    size, f, cells, d_cells = 64, 32.0, 16, 3
    z_true = float(enc.sweep.depths[6])
    K, T = stereo_rig(d_cells * z_true / (f * cells / size), size, f)
    gen = torch.Generator().manual_seed(1)
    ref = torch.nn.functional.normalize(torch.randn(1, 2, 8, cells, cells, generator=gen), dim=2)
    feats = ref.clone()
    feats[:, 1, :, :, :-d_cells] = ref[:, 0, :, :, d_cells:]
    out = enc(feats, K, T, torch.ones(1, 2, dtype=torch.bool), (size, size))
    assert out.features.shape == (2, 8, cells, cells)
    depth = out.depth[0, 0, :, d_cells:cells - d_cells]
    assert ((depth - z_true).abs() / z_true).median() < 0.1
    assert out.evidence.shape == (1, 2, cells, cells)
