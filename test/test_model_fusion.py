"""Tests of depth_any_view.model.fusion_transformer: alternating attention, masking and the
ablation."""

import torch

from depth_any_view.model.fusion_transformer import FusionTransformer


def make(fusion: bool = True, layers: int = 2) -> FusionTransformer:
    """A small transformer with fixed random weights, in eval mode."""
    torch.manual_seed(0)
    return FusionTransformer(16, layers, 2, mlp_ratio=2.0, fusion=fusion).eval()


def test_block_pattern_alternates_and_fusion_off_is_within_view():
    assert make(True, 4).global_blocks == (False, True, False, True)
    assert make(False, 4).global_blocks == (False, False, False, False)
    all_global = FusionTransformer(8, 3, 2, cross_view_every=1)
    assert all_global.global_blocks == (True, True, True)


def test_shape_and_views_interact_only_with_fusion():
    x = torch.randn(2, 3, 5, 16)
    y = x.clone()
    y[:, 1:] += torch.randn(2, 2, 5, 16)  # change views 1 and 2 only
    fused = make(True)
    out = fused(x)
    assert out.shape == x.shape
    assert (fused(y)[:, 0] - out[:, 0]).abs().max() > 1e-3  # view 0 sees the others
    alone = make(False)
    assert torch.allclose(alone(y)[:, 0], alone(x)[:, 0], atol=1e-6)


def test_masking_a_view_equals_removing_it():
    net = make(True, 4)
    x = torch.randn(2, 4, 6, 16)
    mask = torch.tensor([[True, False, True, True], [True, True, True, False]])
    out = net(x, mask)
    for b in range(2):
        kept = mask[b].nonzero().flatten()
        ref = net(x[b:b + 1, kept])
        assert torch.allclose(out[b:b + 1, kept], ref, atol=1e-5)


def test_all_masked_sample_stays_finite():
    net = make(True)
    out = net(torch.randn(1, 2, 3, 16), torch.zeros(1, 2, dtype=torch.bool))
    assert torch.isfinite(out).all()


def test_bf16_autocast_runs():
    net = make(True)
    x = torch.randn(1, 3, 4, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(x, torch.tensor([[True, True, False]]))
    assert out.shape == x.shape and torch.isfinite(out.float()).all()
