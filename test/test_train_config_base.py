"""Training configs that name a `base:` hold only what they change (training/config.py):
the chain resolves to the full options, sections merge key by key, and a missing base or
a loop is one clear error naming the file."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest
import yaml

from depth_any_view.config import ConfigError, config_dirs
from depth_any_view.training.config import load_train_config, load_train_yaml


def _write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_child_changes_only_what_it_names(tmp_path: Path) -> None:
    base = _write(tmp_path / "base.yaml", {"lr": 1.0e-3, "seed": 0, "model_overrides": {},
                                           "loss": {"depth_weight": 1.0, "cos_weight": 0.5}})
    mid = _write(tmp_path / "mid.yaml", {"base": str(base), "seed": 1,
                                         "loss": {"cos_weight": 0.0}})
    child = _write(tmp_path / "child.yaml", {"base": str(mid),
                                             "model_overrides": {"confidence": True}})
    assert load_train_yaml(child) == {"lr": 1.0e-3, "seed": 1,
                                      "model_overrides": {"confidence": True},
                                      "loss": {"depth_weight": 1.0, "cos_weight": 0.0}}
    cfg = load_train_config(child, ["lr=5.0e-4"])
    assert cfg.lr == 5.0e-4 and cfg.seed == 1 and cfg.loss["cos_weight"] == 0.0


def test_missing_bases_and_loops_are_named(tmp_path: Path) -> None:
    lost = _write(tmp_path / "lost.yaml", {"base": "no_such_stage", "seed": 1})
    with pytest.raises(ConfigError, match=r"lost\.yaml': its base 'no_such_stage': config "
                                          r"file 'train_no_such_stage\.yaml' not found"):
        load_train_yaml(lost)
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    _write(a, {"base": str(b)})
    _write(b, {"base": str(a)})
    with pytest.raises(ConfigError, match=r"loops \(a\.yaml -> b\.yaml -> a\.yaml\)"):
        load_train_yaml(a)
    with pytest.raises(ConfigError, match="'base' must name a training config"):
        load_train_yaml(_write(tmp_path / "empty.yaml", {"base": ""}))


def test_every_shipped_stage_resolves_to_a_full_config() -> None:
    """Each shipped config with a base resolves to a TrainConfig whose every option is
    given by the file or one of its bases (none left at the dataclass default unnoticed)."""
    folder = config_dirs()[0] if config_dirs()[0].is_dir() else config_dirs()[1]
    staged = [p for p in sorted(folder.glob("train_*.yaml"))
              if "base" in yaml.safe_load(p.read_text())]
    assert len(staged) >= 7
    for path in staged:
        data = load_train_yaml(path)
        cfg = load_train_config(path)
        assert set(data) >= {"model", "train_data", "lr", "max_steps", "loss", "augment"}
        assert asdict(cfg)["out_dir"] == data["out_dir"] != "runs/lite"
