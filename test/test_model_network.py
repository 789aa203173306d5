"""Tests of depth_any_view.model.network: DepthAnyViewNet end to end at tiny sizes."""

import math
from dataclasses import replace

import pytest
import torch

from depth_any_view.model.config import ModelConfig, load_model_config
from depth_any_view.model.network import (
    DepthAnyViewNet,
    ModelOutput,
    build_model,
    count_parameters,
    describe,
)

TINY = ModelConfig(backbone="resnet18", backbone_width=8, image_size=(64, 64), hidden=32,
                   layers=2, heads=2, decoder_width=16, grid_lower=(-6.4, -6.4, -0.8),
                   grid_upper=(6.4, 6.4, 2.4), grid_dims=(16, 16, 16), occ_channels=4,
                   occ_hidden=8, occ_blocks=1, occ_fine_channels=4)
# optical frame (x right, y down, z forward) -> base_link for a camera looking along +x
R_FORWARD = torch.tensor([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def net_for(cfg: ModelConfig = TINY, seed: int = 0) -> DepthAnyViewNet:
    """A network with fixed random weights, in eval mode.

    The depth logit layer starts near zero (depth ~ constant); it is re-drawn larger here so
    that depth actually varies with the input and comparisons below mean something.
    """
    torch.manual_seed(seed)
    net = DepthAnyViewNet(cfg).eval()
    torch.nn.init.normal_(net.depth_head.out_logit.weight, std=0.5)
    return net


def ring_inputs(B: int, V: int, size: int = 64, seed: int = 0):
    """Random images and a ring of V outward-looking 90 deg cameras (1.6 m high)."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.rand(B, V, 3, size, size, generator=gen)
    f = size / 2.0
    K = torch.tensor([[f, 0.0, f - 0.5], [0.0, f, f - 0.5], [0.0, 0.0, 1.0]])
    T = torch.eye(4).repeat(B, V, 1, 1)
    for v in range(V):
        yaw = 2 * math.pi * v / V
        c, s = math.cos(yaw), math.sin(yaw)
        Rz = torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        T[:, v, :3, :3] = Rz @ R_FORWARD
        T[:, v, :3, 3] = torch.tensor([0.25 * c, 0.25 * s, 1.6])
    return images, K.expand(B, V, 3, 3).clone(), T


def check_output(out: ModelOutput, cfg: ModelConfig, B: int, V: int) -> None:
    """Shapes, dtypes and ranges every output must satisfy."""
    H, W = cfg.image_size
    assert out.depth.shape == out.log_depth.shape == (B, V, H, W)
    assert out.occupancy_logits.shape == out.occupancy_observed.shape == (B, *cfg.grid_dims)
    assert out.depth.dtype == out.log_depth.dtype == out.occupancy_logits.dtype == torch.float32
    assert out.occupancy_observed.dtype == torch.bool
    assert out.depth.min() >= cfg.min_depth and out.depth.max() <= cfg.max_depth
    assert torch.allclose(torch.exp(out.log_depth), out.depth, rtol=1e-5)
    assert torch.isfinite(out.occupancy_logits).all()


@pytest.mark.parametrize("preset", ["lite", "paper"])
def test_presets_build_and_run_at_reduced_size(preset):
    cfg = replace(load_model_config(preset), image_size=(64, 64), grid_dims=(16, 16, 16),
                  hidden=32, layers=2)
    net = net_for(cfg)
    images, K, T = ring_inputs(1, 2)
    with torch.inference_mode():
        out = net(images, K, T)
    check_output(out, cfg, 1, 2)


@pytest.mark.parametrize("V", [1, 3, 6])
def test_any_number_of_views(V):
    net = net_for()
    images, K, T = ring_inputs(2, V)
    with torch.inference_mode():
        out = net(images, K, T)
    check_output(out, TINY, 2, V)
    assert out.occupancy_observed.any()


def test_masked_view_equals_removed_view():
    net = net_for(replace(TINY, layers=4))
    images, K, T = ring_inputs(1, 3)
    # the padding view holds garbage, as a collate function might leave it
    images[:, 1], K[:, 1], T[:, 1] = float("nan"), 0.0, float("nan")
    mask = torch.tensor([[True, False, True]])
    keep = [0, 2]
    with torch.inference_mode():
        masked = net(images, K, T, mask)
        removed = net(images[:, keep], K[:, keep], T[:, keep])
    assert masked.depth[:, keep].std() > 0.05  # depth is not constant: the check has teeth
    assert torch.allclose(masked.depth[:, keep], removed.depth, rtol=1e-4, atol=1e-4)
    assert torch.equal(masked.occupancy_observed, removed.occupancy_observed)
    assert torch.allclose(masked.occupancy_logits, removed.occupancy_logits, atol=1e-4)
    assert torch.isfinite(masked.depth).all()


def test_views_interact_only_when_fusion_is_on():
    images, K, T = ring_inputs(1, 3)
    other = images.clone()
    other[:, 1:] = torch.rand(1, 2, 3, 64, 64, generator=torch.Generator().manual_seed(9))
    for fusion in (True, False):
        net = net_for(replace(TINY, fusion=fusion))
        with torch.inference_mode():
            a, b = net(images, K, T).depth[:, 0], net(other, K, T).depth[:, 0]
        if fusion:
            assert (a - b).abs().max() > 1e-4
        else:
            assert torch.allclose(a, b, atol=1e-6)
    # the ablation has the same parameters, so checkpoints are interchangeable
    ablation = net_for(replace(TINY, fusion=False))
    assert ablation.state_dict().keys() == net_for().state_dict().keys()


def test_voxels_behind_every_camera_are_unobserved():
    net = net_for()
    images, K, T = ring_inputs(1, 2)
    for v, (x, z) in enumerate([(1.0, 0.5), (2.0, 1.5)]):  # both look along +x
        T[0, v, :3, :3] = R_FORWARD
        T[0, v, :3, 3] = torch.tensor([x, 0.0, z])
    with torch.inference_mode():
        observed = net(images, K, T).occupancy_observed[0]
    n = TINY.grid_dims[0]
    centres_x = -6.4 + (torch.arange(n) + 0.5) * (12.8 / n)
    assert not observed[centres_x < 1.0].any()  # behind both cameras
    assert observed[centres_x > 4.0].any()


def test_gradient_reaches_every_parameter():
    torch.manual_seed(0)
    net = DepthAnyViewNet(TINY).train()
    for m in net.modules():  # undo the zero-init of residual branches so every path counts
        if isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.ones_(m.weight)
    images, K, T = ring_inputs(2, 3)
    out = net(images, K, T, torch.tensor([[True, True, True], [True, True, False]]))
    loss = out.log_depth.mean() + out.occupancy_logits.sigmoid().mean()
    loss.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_occupancy_loss_alone_reaches_the_depth_head():
    net = net_for()
    images, K, T = ring_inputs(1, 2)
    net(images, K, T).occupancy_logits.mean().backward()
    assert net.depth_head.out_logit.weight.grad.abs().sum() > 0


def test_bf16_autocast_on_cpu():
    net = net_for()
    images, K, T = ring_inputs(1, 2)
    with torch.inference_mode():
        ref = net(images, K, T)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = net(images, K.double(), T.double())
    check_output(out, TINY, 1, 2)
    assert torch.equal(out.occupancy_observed, ref.occupancy_observed)
    assert (out.log_depth - ref.log_depth).abs().mean() < 0.1


def test_channels_last_model_and_inputs():
    net = net_for()
    images, K, T = ring_inputs(1, 2)
    with torch.inference_mode():
        ref = net(images, K, T)
        net = net.to(memory_format=torch.channels_last)
        cl = images.flatten(0, 1).contiguous(memory_format=torch.channels_last).view(1, 2, 3,
                                                                                    64, 64)
        out = net(cl, K, T)
    assert torch.allclose(out.depth, ref.depth, rtol=1e-4, atol=1e-4)
    assert torch.allclose(out.occupancy_logits, ref.occupancy_logits, atol=1e-4)


def test_bad_input_shapes_are_named():
    net = net_for()
    images, K, T = ring_inputs(1, 2)
    with pytest.raises(ValueError, match="multiple of 32"):
        net(images[..., :48, :48], K, T)
    with pytest.raises(ValueError, match="K must be"):
        net(images, K[:, :1], T)
    with pytest.raises(ValueError, match="T_base_cam"):
        net(images, K, T[..., :3, :])
    with pytest.raises(ValueError, match="view_mask"):
        net(images, K, T, torch.ones(1, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="images"):
        net(images[0], K, T)


def test_build_model_count_and_describe():
    net = build_model(TINY)
    n = count_parameters(net)
    assert n == sum(p.numel() for p in net.parameters())
    assert n > count_parameters(net.encoder) > 0
    text = describe(net)
    assert "resnet18" in text and "4x4 tokens" in text and f"{n / 1e6:.2f}M" in text
    assert not [k for k in net.state_dict() if "normalize" in k]  # constants, not weights
    lite = build_model("lite")
    assert lite.cfg == load_model_config("lite")
    assert 1e6 < count_parameters(lite) < 10e6
