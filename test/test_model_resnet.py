"""Tests of depth_any_view.model.resnet: torchvision-compatible names, shapes and loading."""

import pytest
import torch

from depth_any_view.model.resnet import ResNetEncoder

BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def torchvision_keys(blocks: tuple[int, ...], bottleneck: bool) -> set[str]:
    """torchvision's resnet state-dict keys without fc.*, written out from its layout."""
    keys = {"conv1.weight"} | {f"bn1.{p}" for p in BN}
    convs = 3 if bottleneck else 2
    for stage, n in enumerate(blocks, start=1):
        for b in range(n):
            for c in range(1, convs + 1):
                keys.add(f"layer{stage}.{b}.conv{c}.weight")
                keys |= {f"layer{stage}.{b}.bn{c}.{p}" for p in BN}
        # the first block projects when it strides or changes width (layer1 of resnet50)
        if stage > 1 or bottleneck:
            keys.add(f"layer{stage}.0.downsample.0.weight")
            keys |= {f"layer{stage}.0.downsample.1.{p}" for p in BN}
    return keys


@pytest.mark.parametrize("arch, blocks, bottleneck, params", [
    # torchvision's parameter counts (11689512, 21797672, 25557032) minus fc (512/2048*1000+1000)
    ("resnet18", (2, 2, 2, 2), False, 11_689_512 - 513_000),
    ("resnet34", (3, 4, 6, 3), False, 21_797_672 - 513_000),
    ("resnet50", (3, 4, 6, 3), True, 25_557_032 - 2_049_000),
])
def test_keys_and_parameter_count_match_torchvision(arch, blocks, bottleneck, params):
    enc = ResNetEncoder(arch, 64)
    assert set(enc.state_dict()) == torchvision_keys(blocks, bottleneck)
    assert sum(p.numel() for p in enc.parameters()) == params


def test_selected_shapes_match_torchvision():
    sd = ResNetEncoder("resnet50", 64).state_dict()
    assert sd["conv1.weight"].shape == (64, 3, 7, 7)
    assert sd["layer1.0.downsample.0.weight"].shape == (256, 64, 1, 1)
    assert sd["layer4.2.conv3.weight"].shape == (2048, 512, 1, 1)
    assert sd["layer3.0.conv2.weight"].shape == (256, 256, 3, 3)  # v1.5: stride on the 3x3
    sd18 = ResNetEncoder("resnet18", 64).state_dict()
    assert sd18["layer2.0.downsample.0.weight"].shape == (128, 64, 1, 1)
    assert sd18["layer4.1.conv2.weight"].shape == (512, 512, 3, 3)


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_feature_strides_and_channels(arch):
    enc = ResNetEncoder(arch, 8).eval()
    feats = enc(torch.randn(2, 3, 64, 96))
    assert [tuple(f.shape[-2:]) for f in feats] == [(64 // s, 96 // s) for s in (2, 4, 8, 16, 32)]
    assert tuple(f.shape[1] for f in feats) == enc.channels
    e = 4 if arch == "resnet50" else 1
    assert enc.channels == (8, 8 * e, 16 * e, 32 * e, 64 * e)


def test_imagenet_state_dict_loads_ignoring_fc_and_rejects_other_depths():
    src = ResNetEncoder("resnet18", 64)
    with torch.no_grad():
        for p in src.parameters():
            p.normal_()
    sd = dict(src.state_dict())
    sd["fc.weight"], sd["fc.bias"] = torch.zeros(1000, 512), torch.zeros(1000)
    dst = ResNetEncoder("resnet18", 64)
    dst.load_imagenet_state_dict(sd)
    assert torch.equal(dst.layer3[1].conv2.weight, src.layer3[1].conv2.weight)
    assert torch.equal(dst.bn1.running_var, src.bn1.running_var)
    with pytest.raises(RuntimeError, match="layer"):
        ResNetEncoder("resnet34", 64).load_imagenet_state_dict(sd)


def test_unknown_arch_is_named():
    with pytest.raises(ValueError, match="resnet101"):
        ResNetEncoder("resnet101")
