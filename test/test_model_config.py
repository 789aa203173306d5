"""Tests of depth_any_view.model.config: ModelConfig, its validation and the YAML presets."""

from dataclasses import asdict, replace

import pytest

from depth_any_view.config import ConfigError
from depth_any_view.model.config import ModelConfig, load_model_config, model_config_from_dict


def test_presets_load_with_the_documented_values():
    lite = load_model_config("lite")
    assert (lite.backbone, lite.backbone_width, lite.image_size) == ("resnet18", 32, (128, 128))
    assert (lite.hidden, lite.layers, lite.heads, lite.token_stride) == (128, 4, 4, 16)
    assert lite.grid_dims == (64, 64, 64) and lite.fusion
    paper = load_model_config("paper")
    assert (paper.backbone, paper.backbone_width, paper.image_size) == ("resnet50", 64,
                                                                       (512, 512))
    assert (paper.hidden, paper.layers, paper.heads) == (256, 8, 4)
    assert paper.grid_dims == (128, 128, 128)


def test_yaml_lists_become_tuples_and_a_path_loads(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("image_size: [64, 96]\ngrid_lower: [-1, -2, -3]\nfusion: false\n")
    cfg = load_model_config(str(path))
    assert cfg.image_size == (64, 96) and isinstance(cfg.image_size, tuple)
    assert cfg.grid_lower == (-1.0, -2.0, -3.0) and cfg.fusion is False
    assert cfg.hidden == ModelConfig().hidden  # omitted fields keep their defaults


def test_unknown_key_is_named(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("hidden: 64\nhiden_size: 3\n")
    with pytest.raises(ConfigError, match="hiden_size"):
        load_model_config(str(path))


@pytest.mark.parametrize("data, key", [
    ({"hidden": "big"}, "hidden"),
    ({"fusion": 1}, "fusion"),
    ({"min_depth": True}, "min_depth"),
    ({"image_size": [100, 128]}, "image_size"),
    ({"image_size": [128]}, "image_size"),
    ({"backbone": "vit"}, "backbone"),
    ({"hidden": 30, "heads": 4}, "hidden"),
    ({"min_depth": 5.0, "max_depth": 1.0}, "min_depth"),
    ({"grid_dims": [15, 16, 16]}, "grid_dims"),
    ({"token_stride": 4}, "token_stride"),
    ({"grid_upper": [1.0, 1.0, -5.0]}, "grid_upper"),
])
def test_bad_values_raise_naming_the_field(data, key):
    with pytest.raises(ConfigError, match=key):
        model_config_from_dict(data, source="test")


def test_missing_preset_file_is_a_clear_error():
    with pytest.raises(ConfigError, match="not found"):
        load_model_config("no_such_model_config.yaml")


def test_replace_and_asdict_roundtrip():
    cfg = load_model_config("lite")
    again = ModelConfig(**asdict(cfg))
    assert again == cfg
    changed = replace(cfg, grid_dims=[32, 32, 32])  # lists are normalised to tuples
    assert changed.grid_dims == (32, 32, 32)
    assert cfg.voxel_size == pytest.approx((0.4, 0.4, 0.0625))


def test_lite_effnet_example_is_lite_with_a_pretrained_efficientnet():
    lite, effnet = load_model_config("lite"), load_model_config("model_lite_effnet.yaml")
    assert (effnet.backbone, effnet.pretrained) == ("efficientnet_lite0", True)
    assert replace(effnet, backbone="resnet18", pretrained=False,
                   backbone_width=lite.backbone_width) == lite


def test_pretrained_defaults_off_and_needs_a_backbone_with_imagenet_weights():
    assert ModelConfig().pretrained is False and load_model_config("lite").pretrained is False
    with pytest.raises(ConfigError, match="pretrained.*resnet18.*efficientnet_lite0"):
        model_config_from_dict({"pretrained": True}, source="test")
    with pytest.raises(ConfigError, match="pretrained"):
        model_config_from_dict({"backbone": "efficientnet_lite0", "pretrained": "yes"},
                               source="test")
    with pytest.raises(ConfigError, match="pretrained"):
        ModelConfig(backbone="efficientnet_lite0", pretrained=1)
    with pytest.raises(ConfigError, match="efficientnet_lite0"):  # the valid list names it
        model_config_from_dict({"backbone": "efficientnet_lite1"}, source="test")
