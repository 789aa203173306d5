"""Tests of depth_any_view.data.synth_config (config/synth.yaml)."""

import pytest

from depth_any_view.config import ConfigError
from depth_any_view.data.synth_config import SynthConfig, load_synth_config


def test_packaged_yaml_equals_dataclass_defaults():
    cfg = load_synth_config()
    assert cfg == SynthConfig()
    assert cfg.world.fps == 10.0
    assert cfg.cameras.hfov_for("surround6") == 90.0
    assert cfg.cameras.hfov_for("front_array") == 70.0
    assert cfg.cameras.hfov_for("/some/rig.yaml") == cfg.cameras.default_hfov_deg
    assert cfg.grid.lower == (-12.8, -12.8, -0.8) and cfg.grid.upper == (12.8, 12.8, 3.2)


def test_overrides_and_errors_name_the_key(tmp_path):
    path = tmp_path / "synth.yaml"
    path.write_text("world:\n  fps: 20\ngrid:\n  lower: [-5, -5, -1]\n  upper: [5, 5, 2]\n")
    cfg = load_synth_config(path)
    assert cfg.world.fps == 20 and cfg.world.max_range == SynthConfig().world.max_range
    assert cfg.grid.lower == (-5.0, -5.0, -1.0)
    path.write_text("world:\n  fsp: 20\n")
    with pytest.raises(ConfigError, match="fsp"):
        load_synth_config(path)
    path.write_text("lightning: {}\n")
    with pytest.raises(ConfigError, match="lightning"):
        load_synth_config(path)
    path.write_text("indoor:\n  room_size: [8.0, 4.0]\n")
    with pytest.raises(ConfigError, match="indoor.room_size"):
        load_synth_config(path)
    path.write_text("world:\n  max_range: -1\n")
    with pytest.raises(ConfigError, match="max_range"):
        load_synth_config(path)
    path.write_text("grid:\n  lower: [0, 0]\n")
    with pytest.raises(ConfigError, match="grid.lower"):
        load_synth_config(path)
