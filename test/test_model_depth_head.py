"""Tests of depth_any_view.model.heads.depth_head and the head factory."""

import math

import pytest
import torch

from depth_any_view.model.config import ModelConfig
from depth_any_view.model.heads import (
    DepthHead,
    bounded_log_depth,
    confidence_from_scale,
    head_factory,
    inverse_bounded_log_depth,
)
from depth_any_view.model.heads.depth_head import CONFIDENCE_SCALE, MIN_LOG_SCALE

ENC = (8, 8, 16, 32, 64)  # resnet18 width 8 channels at strides 2..32


def skips(n: int, H: int, W: int) -> list[torch.Tensor]:
    """Random encoder maps at strides 2, 4, 8, 16, 32."""
    return [torch.randn(n, c, H // s, W // s) for c, s in zip(ENC, (2, 4, 8, 16, 32))]


def test_bounded_log_depth_range_and_inverse():
    x = torch.linspace(-30, 30, 101)
    log_d = bounded_log_depth(x, 0.3, 50.0)
    assert log_d.min() >= math.log(0.3) - 1e-6 and log_d.max() <= math.log(50.0) + 1e-6
    assert torch.all(log_d[1:] >= log_d[:-1])
    assert bounded_log_depth(torch.zeros(1), 0.3, 50.0).item() == pytest.approx(
        0.5 * (math.log(0.3) + math.log(50.0)))
    depth = torch.tensor([0.5, 1.0, 7.0, 42.0])
    back = torch.exp(bounded_log_depth(inverse_bounded_log_depth(depth, 0.3, 50.0), 0.3, 50.0))
    assert torch.allclose(back, depth, rtol=1e-4)


@pytest.mark.parametrize("stride", [8, 16, 32])
def test_output_shapes_for_every_token_stride(stride):
    torch.manual_seed(0)
    head = DepthHead(24, ENC, token_stride=stride, width=16).eval()
    H, W = 64, 96
    logits, feat8, scale = head(torch.randn(3, 24, H // stride, W // stride), skips(3, H, W),
                                (H, W))
    assert logits.shape == (3, 1, H, W) and logits.dtype == torch.float32
    assert feat8.shape == (3, head.feature_channels, H // 8, W // 8)
    assert scale is None  # no confidence unless asked for


def test_logits_float32_under_autocast_and_start_near_the_middle():
    torch.manual_seed(0)
    head = DepthHead(24, ENC, token_stride=16, width=16).eval()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, _, _ = head(torch.randn(2, 24, 4, 4), skips(2, 64, 64), (64, 64))
    assert logits.dtype == torch.float32
    assert logits.abs().max() < 1.0  # small initial logits: depth near sqrt(min * max)


def test_gradient_reaches_tokens_and_skips():
    head = DepthHead(24, ENC, token_stride=16, width=16)
    tokens = torch.randn(1, 24, 4, 4, requires_grad=True)
    sk = [s.requires_grad_() for s in skips(1, 64, 64)]
    logits, _, _ = head(tokens, sk, (64, 64))
    logits.sum().backward()
    assert tokens.grad.abs().sum() > 0
    assert all(s.grad.abs().sum() > 0 for s in sk[:3])  # strides 2, 4, 8 are decoder skips


def test_confidence_scale_is_positive_float32_and_trainable():
    torch.manual_seed(0)
    head = DepthHead(24, ENC, token_stride=16, width=16, confidence=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, _, scale = head(torch.randn(2, 24, 4, 4), skips(2, 64, 64), (64, 64))
    assert scale.shape == logits.shape == (2, 1, 64, 64) and scale.dtype == torch.float32
    assert (scale >= MIN_LOG_SCALE).all()
    scale.sum().backward()
    assert head.out_scale.weight.grad.abs().sum() > 0


def test_confidence_from_scale_is_monotone_and_half_at_ten_percent():
    b = torch.tensor([0.01, 0.05, CONFIDENCE_SCALE, 0.5, 5.0])
    conf = confidence_from_scale(b)
    assert torch.all(conf[1:] < conf[:-1]) and torch.all((conf > 0) & (conf <= 1))
    assert conf[2].item() == pytest.approx(0.5)


def test_factory_builds_both_heads_and_rejects_unknown():
    cfg = ModelConfig(hidden=24, decoder_width=16, grid_dims=(8, 8, 8))
    assert isinstance(head_factory("depth", cfg, ENC), DepthHead)
    assert head_factory("occupancy", cfg, 16).dims == (8, 8, 8)
    with pytest.raises(ValueError, match="normals"):
        head_factory("normals", cfg, ENC)
    with pytest.raises(ValueError, match="5 encoder"):
        head_factory("depth", cfg, 16)
