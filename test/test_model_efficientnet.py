"""Tests of depth_any_view.model.efficientnet: ImageNet weights we can trust, and the encoder.

The trust test runs the wheel's weights through the package's full classifier on two
scikit-image photographs: Chelsea the cat and a cup of coffee, resized to 224 (shorter
side) and centre-cropped, as for ImageNet evaluation.
"""

import json
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from test_model_network import TINY, check_output, ring_inputs

from depth_any_view.model.efficientnet import (
    LITE_MEAN,
    LITE_STD,
    EfficientNetLiteEncoder,
    imagenet_classifier,
    imagenet_state_dict,
    imagenet_weights_path,
)
from depth_any_view.model.network import DepthAnyViewNet, build_model, describe
from depth_any_view.model.normalization import IMAGENET_MEAN, IMAGENET_STD, ImageNormalization
from depth_any_view.model.weights import (
    default_weights_path,
    load_weights,
    model_config_from_json,
    model_config_to_json,
    read_weights_config,
    save_weights,
)

skimage_data = pytest.importorskip("skimage.data")

CAT_CLASSES = {281: "tabby", 282: "tiger cat", 283: "Persian cat", 284: "Siamese cat",
               285: "Egyptian cat"}
COFFEE_CLASSES = {504: "coffee mug", 967: "espresso", 968: "cup"}
EFF = replace(TINY, backbone="efficientnet_lite0")  # the tiny network, EfficientNet encoder
TRUNK_PARAMS = 4_652_008 - (320 * 1280 + 2 * 1280 + 1280 * 1000 + 1000)  # file - classifier


def photo(name: str, size: int = 224) -> torch.Tensor:
    """A scikit-image photograph as (1, 3, size, size) RGB in [0, 1]: resize, centre crop."""
    x = torch.from_numpy(getattr(skimage_data, name)()).permute(2, 0, 1)[None].float() / 255
    h, w = x.shape[-2:]
    s = size / min(h, w)
    x = F.interpolate(x, size=(round(h * s), round(w * s)), mode="bilinear", antialias=True,
                      align_corners=False)
    top, left = (x.shape[-2] - size) // 2, (x.shape[-1] - size) // 2
    return x[..., top:top + size, left:left + size]  # (1, 3, size, size)


@pytest.fixture(scope="module")
def classifier() -> torch.nn.Module:
    """The full ImageNet classifier with the wheel's weights."""
    return imagenet_classifier()


@pytest.fixture(scope="module")
def photos() -> dict[str, torch.Tensor]:
    """Chelsea (a cat) and coffee (a cup of espresso), (1, 3, 224, 224) in [0, 1]."""
    return {"chelsea": photo("chelsea"), "coffee": photo("coffee")}


def class_probabilities(classifier: torch.nn.Module, x: torch.Tensor,
                        norm: ImageNormalization) -> torch.Tensor:
    """Softmax over the 1000 ImageNet classes, (1000,)."""
    with torch.inference_mode():
        return classifier(norm(x)).softmax(-1)[0]


@pytest.mark.parametrize("name, classes", [("chelsea", CAT_CLASSES),
                                           ("coffee", COFFEE_CLASSES)])
def test_imagenet_weights_recognise_the_photographs(classifier, photos, name, classes):
    p = class_probabilities(classifier, photos[name], EfficientNetLiteEncoder().normalize)
    top5 = p.topk(5).indices.tolist()
    assert top5[0] in classes, [(i, round(p[i].item(), 3)) for i in top5]
    assert p[list(classes)].sum() > 0.8
    # pixel values in 0..255 (no normalisation): the check has teeth
    wrong = class_probabilities(classifier, photos[name], ImageNormalization((0.0,) * 3,
                                                                             (1 / 255,) * 3))
    assert wrong.argmax().item() not in classes


def test_tensorflow_normalisation_beats_imagenet_mean_std(classifier, photos):
    """(255 x - 127) / 128 gives the true classes more probability than mean / std."""
    tf = ImageNormalization(LITE_MEAN, LITE_STD)
    imagenet = ImageNormalization(IMAGENET_MEAN, IMAGENET_STD)
    for name, classes in (("chelsea", CAT_CLASSES), ("coffee", COFFEE_CLASSES)):
        p_tf = class_probabilities(classifier, photos[name], tf)[list(classes)].sum()
        p_in = class_probabilities(classifier, photos[name], imagenet)[list(classes)].sum()
        assert p_tf > p_in, name
    x = torch.rand(1, 3, 4, 4)
    assert torch.allclose(tf(x), (255 * x - 127) / 128, atol=1e-5)


@pytest.mark.parametrize("size", [(128, 128), (96, 160)])
def test_feature_strides_and_channels(size):
    enc = EfficientNetLiteEncoder().eval()
    H, W = size
    with torch.inference_mode():
        feats = enc(torch.randn(2, 3, H, W))
    assert [tuple(f.shape[-2:]) for f in feats] == [(H // s, W // s) for s in (2, 4, 8, 16, 32)]
    assert tuple(f.shape[1] for f in feats) == enc.channels == (16, 24, 40, 112, 320)
    assert sum(p.numel() for p in enc.parameters()) == TRUNK_PARAMS


def test_imagenet_weights_load_into_the_trunk():
    torch.manual_seed(0)
    fresh = EfficientNetLiteEncoder()
    loaded = EfficientNetLiteEncoder()
    assert loaded.load_imagenet() == imagenet_weights_path()
    state = imagenet_state_dict()
    own = loaded.state_dict()
    assert set(state) - set(own) == {k for k in state if k.startswith(("_conv_head.", "_bn1.",
                                                                       "_fc."))}
    for key, value in own.items():
        assert torch.equal(value, state[key]), key
    changed = [k for k, v in fresh.state_dict().items()
               if v.is_floating_point() and not torch.equal(v, own[k])]
    assert len(changed) == sum(v.is_floating_point() for v in own.values())
    with pytest.raises(RuntimeError, match="_blocks"):
        loaded.load_imagenet_state_dict({k: v for k, v in state.items() if "_blocks.3." not in k})


def test_static_padding_equals_tensorflow_same_padding_at_other_sizes():
    """The package pads for 224 x 224; at multiples of 32 that is TF's SAME padding too."""
    from efficientnet_lite_pytorch import EfficientNet

    enc = EfficientNetLiteEncoder().eval()
    enc.load_imagenet()
    dynamic = EfficientNet.from_name("efficientnet-lite0", image_size=None).eval()
    dynamic.load_state_dict(imagenet_state_dict())
    x = enc.normalize(torch.rand(1, 3, 96, 160, generator=torch.Generator().manual_seed(0)))
    with torch.inference_mode():
        ours = enc(x)[-1]  # (1, 320, 3, 5)
        ref = dynamic._swish(dynamic._bn0(dynamic._conv_stem(x)))
        for block in dynamic._blocks:
            ref = block(ref)
    assert ours.abs().mean() > 0.1
    assert torch.allclose(ours, ref, atol=1e-5)


def eff_net(cfg=EFF, seed: int = 0) -> DepthAnyViewNet:
    """The tiny network with the EfficientNet encoder, seeded, eval mode, varied depth."""
    torch.manual_seed(seed)
    net = DepthAnyViewNet(cfg).eval()
    torch.nn.init.normal_(net.depth_head.out_logit.weight, std=0.5)
    return net


@pytest.mark.parametrize("V", [1, 6])
def test_network_runs_with_efficientnet_and_a_view_mask(V):
    net = eff_net()
    assert net.encoder.channels == (16, 24, 40, 112, 320)
    images, K, T = ring_inputs(2, V)
    mask = torch.ones(2, V, dtype=torch.bool)
    if V > 1:
        mask[1, -1] = False  # the second sample has a padding view
    with torch.inference_mode():
        out = net(images, K, T, mask)
    check_output(out, EFF, 2, V)
    assert out.occupancy_observed.any()
    assert "efficientnet_lite0 at 64x64" in describe(net)


def test_masked_view_equals_removed_view_with_efficientnet():
    net = eff_net(replace(EFF, layers=4))
    images, K, T = ring_inputs(1, 6)
    images[:, 2], K[:, 2], T[:, 2] = float("nan"), 0.0, float("nan")
    mask = torch.tensor([[True, True, False, True, True, True]])
    keep = [0, 1, 3, 4, 5]
    with torch.inference_mode():
        masked = net(images, K, T, mask)
        removed = net(images[:, keep], K[:, keep], T[:, keep])
    assert masked.depth[:, keep].std() > 0.05
    assert torch.allclose(masked.depth[:, keep], removed.depth, rtol=1e-4, atol=1e-4)
    assert torch.allclose(masked.occupancy_logits, removed.occupancy_logits, atol=1e-4)


def test_gradient_reaches_every_efficientnet_parameter():
    torch.manual_seed(0)
    net = DepthAnyViewNet(EFF).train()
    images, K, T = ring_inputs(2, 3)
    out = net(images, K, T, torch.tensor([[True, True, True], [True, True, False]]))
    (out.log_depth.mean() + out.occupancy_logits.sigmoid().mean()).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_pretrained_only_when_building_a_fresh_model(tmp_path):
    cfg = replace(EFF, pretrained=True)
    state = imagenet_state_dict()
    key = "_blocks.10._depthwise_conv.weight"
    assert not torch.equal(DepthAnyViewNet(cfg).encoder.state_dict()[key], state[key])
    model = build_model(cfg)
    for name, value in model.encoder.state_dict().items():
        assert torch.equal(value, state[name]), name
    assert not torch.equal(build_model(EFF).encoder.state_dict()[key], state[key])
    # the project's weights file carries the ImageNet encoder: loading needs no wheel file
    path = save_weights(model, cfg, tmp_path / "eff.safetensors")
    file_state, file_cfg, _ = load_weights(path, expect=replace(cfg, pretrained=False))
    assert file_cfg == cfg
    again = DepthAnyViewNet(file_cfg)
    again.load_state_dict(file_state)
    assert torch.equal(again.encoder.state_dict()[key], state[key])


def test_old_weights_files_without_the_new_fields_still_load():
    cfg, _ = read_weights_config(default_weights_path("lite"))  # made before `pretrained`
    assert cfg.pretrained is False and cfg.backbone == "resnet18"
    old = json.loads(model_config_to_json(replace(EFF, pretrained=True)))
    del old["pretrained"]
    assert model_config_from_json(json.dumps(old)) == EFF
