"""Tests of depth_any_view.training.ablate (the `depth-any-view ablate` command)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from depth_any_view.cli import main
from depth_any_view.config import ConfigError, config_path
from depth_any_view.data.synth import synthesize
from depth_any_view.training.ablate import (
    judge,
    load_variants,
    pooled_depth,
    run_ablation,
    select_variants,
)

TINY_MODEL = {
    "backbone": "resnet18", "backbone_width": 8, "image_size": [32, 32], "hidden": 16,
    "layers": 2, "heads": 2, "token_stride": 16, "decoder_width": 16,
    "grid_dims": [8, 8, 8], "occ_channels": 4, "occ_hidden": 4, "occ_blocks": 1,
    "occ_fine_channels": 4, "occ_fine_kernel": 1, "plucker_frequencies": 2,
    "confidence": True,
}
THREE = ["front", "back_left", "back_right"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict[str, Path]:
    """Tiny train and test splits (6 views of 32x32, 8^3 grid) and a tiny base config."""
    root = tmp_path_factory.mktemp("ablate")
    synthesize(root / "train" / "a", frames=2, size=(32, 32), grid_dims=8, seed=3,
               scene="indoor", progress=False)
    synthesize(root / "test" / "a", frames=2, size=(32, 32), grid_dims=8, seed=50,
               scene="indoor", progress=False)
    model = root / "tiny_model.yaml"
    model.write_text(yaml.safe_dump(TINY_MODEL))
    cfg = yaml.safe_load(config_path("train_lite.yaml").read_text())
    cfg.update(model=str(model), train_data=[str(root / "train")], val_data=[], batch_size=2,
               lr=2e-3, warmup_steps=0, threads=1, num_workers=0, mlflow=False, log_every=1,
               device="cpu", seed=0)
    config = root / "train_tiny.yaml"
    config.write_text(yaml.safe_dump(cfg))
    return {"root": root, "config": config, "test": root / "test", "out": root / "runs"}


@pytest.fixture(scope="module")
def ablation(setup) -> tuple[dict, list[str]]:
    """Every variant, 2 optimizer steps each."""
    lines: list[str] = []
    table = run_ablation(setup["test"], setup["out"], config=str(setup["config"]), steps=2,
                         progress=False, log=lines.append)
    return table, lines


def _row(table: dict, name: str) -> dict:
    return next(r for r in table["rows"] if r["name"] == name)


def test_table_files_and_rows(ablation, setup):
    table, lines = ablation
    out = setup["out"]
    data = json.loads((out / "ablation.json").read_text())
    names = [r["name"] for r in data["rows"]]
    assert names == ["full", "no_depth_consistency", "no_fusion", "three_views",
                     "no_temporal", "full_seed1"]
    for r in data["rows"]:
        if r["name"] == "no_temporal":
            assert r["status"] == "not_applicable" and "one time step" in r["reason"]
            assert not (out / "no_temporal").exists()  # nothing trained
            continue
        assert r["status"] == "done" and r["steps"] == 2 and r["minutes"] > 0
        assert 0 < r["metrics"]["abs_rel"] and 0 <= r["metrics"]["delta1"] <= 1
        assert (out / r["name"] / "eval" / "metrics.json").is_file()
        assert (out / r["name"] / "last" / "model.safetensors").is_file()
    md = (out / "ablation.md").read_text()
    assert md.startswith("# Ablations")
    assert "| variant | cameras tested | AbsRel | RMSE (m) |" in md
    for name in names:
        assert f"| {name} |" in md
    rows = [s for s in md.splitlines() if s.startswith("| ")]
    assert len(rows) == 1 + len(names) and all(s.count(" | ") == 13 for s in rows)
    assert "AbsRel +0.010" in md and "RMSE +0.015" in md and "AbsRel +0.008" in md
    assert "not applicable (the network takes one time step" in md
    assert any("[1/5] full: training" in s for s in lines)
    assert any("wrote" in s and "ablation.md" in s for s in lines)


def test_variants_got_their_overrides(ablation, setup):
    table, _ = ablation
    out = setup["out"]

    def run_config(name: str) -> dict:
        return yaml.safe_load((out / name / "last" / "run_config.yaml").read_text())

    full = run_config("full")
    assert full["model"]["fusion"] is True and full["train"]["views"] is None
    assert full["train"]["loss"]["cos_weight"] > 0 and full["train"]["max_steps"] == 2
    assert run_config("no_fusion")["model"]["fusion"] is False
    assert run_config("no_depth_consistency")["train"]["loss"]["cos_weight"] == 0
    assert run_config("three_views")["train"]["views"] == THREE
    assert run_config("full_seed1")["train"]["seed"] == full["train"]["seed"] + 1
    three = _row(table, "three_views")
    assert three["cameras"] == THREE and three["subset"] is True
    assert "3: front, back_left, back_right *" in (out / "ablation.md").read_text()
    # The 120-degree-apart cameras do not overlap: the table says the view losses were idle.
    assert any("no two of its 3 cameras overlap" in n for n in three["notes"])
    assert _row(table, "no_fusion")["cameras"] == _row(table, "full")["cameras"]


def test_deltas_are_against_the_same_pixels(ablation, setup):
    table, _ = ablation
    full_eval = json.loads((setup["out"] / "full" / "eval" / "metrics.json").read_text())
    # Pooling every camera's sums reproduces the overall figures exactly.
    pooled = pooled_depth(full_eval, full_eval["cameras"])
    for k in ("abs_rel", "rmse", "delta1"):
        assert pooled[k] == pytest.approx(full_eval["depth"][k], rel=1e-9)
    three = _row(table, "three_views")
    base3 = pooled_depth(full_eval, THREE)
    assert three["baseline"]["abs_rel"] == pytest.approx(base3["abs_rel"])
    assert three["delta"]["abs_rel"] == pytest.approx(three["metrics"]["abs_rel"]
                                                      - base3["abs_rel"])
    nf = _row(table, "no_fusion")
    assert nf["delta"]["rmse"] == pytest.approx(nf["metrics"]["rmse"]
                                                - full_eval["depth"]["rmse"])
    assert nf["verdict"]["reference"] == pytest.approx(0.015)
    assert "seed_spread" in nf and nf["verdict"]["within_noise"] in (True, False)


def test_judge_direction_size_and_noise():
    assert judge(0.012, 0.010)["text"].startswith("yes, ×1.20 (similar size)")
    assert judge(0.001, 0.010)["text"] == "yes, ×0.10 (smaller)"
    v = judge(-0.004, 0.008)
    assert v["same_direction"] is False and v["text"].startswith("no: opposite")
    assert judge(0.002, 0.010, spread=0.005)["within_noise"] is True
    assert judge(0.002, 0.010, spread=0.005)["text"].startswith(
        "unclear: Δ within seed noise (±0.0050); point estimate same direction, ×0.20")
    assert judge(0.02, 0.010, spread=0.005)["text"] == "yes, ×2.00 (similar size)"
    assert judge(math.nan, 0.01)["text"].startswith("n/a")


def test_resume_keeps_finished_variants(ablation, setup):
    out = setup["out"]
    weights = out / "no_fusion" / "last" / "model.safetensors"
    before = weights.stat().st_mtime_ns
    lines: list[str] = []
    table = run_ablation(setup["test"], out, config=str(setup["config"]), steps=2,
                         only=["no_fusion"], resume=True, progress=False, log=lines.append)
    assert weights.stat().st_mtime_ns == before
    assert any("no_fusion: finished earlier" in s for s in lines)
    assert not any("training" in s for s in lines)
    # Variants not in --only but finished with the same protocol stay in the table.
    assert {r["name"] for r in table["rows"]} >= {"full", "no_fusion", "three_views"}
    with pytest.raises(FileExistsError, match="--resume"):
        run_ablation(setup["test"], out, config=str(setup["config"]), steps=2,
                     only=["no_fusion"], progress=False, log=lines.append)
    with pytest.raises(ConfigError, match="max_steps"):  # another budget: not comparable
        run_ablation(setup["test"], out, config=str(setup["config"]), steps=3,
                     only=["no_fusion"], resume=True, progress=False, log=lines.append)


def test_bad_input_is_a_clear_error(setup, tmp_path, capsys):
    args = ["ablate", "--config", str(setup["config"]), "--data", str(setup["test"]),
            "--out", str(tmp_path / "o"), "--steps", "1"]
    assert main(args + ["--only", "full,no_such_variant"]) == 2
    err = capsys.readouterr().err
    assert "unknown variant(s) ['no_such_variant']" in err and "three_views" in err
    args[4] = str(tmp_path / "missing_test")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "missing_test" in err and "does not exist" in err
    assert not (tmp_path / "o").exists()
    assert main(["ablate", "--data", str(setup["test"]), "--steps", "0"]) == 2
    assert "--steps must be > 0" in capsys.readouterr().err


def test_variants_file_validation(tmp_path):
    variants = load_variants()
    assert [v.name for v in variants if v.role == "full"] == ["full"]
    assert not next(v for v in variants if v.name == "no_temporal").applicable
    assert [v.name for v in select_variants(variants, ["no_fusion", "full"])] == \
        ["full", "no_fusion"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"variants": [
        {"name": "full", "role": "full"},
        {"name": "cheap", "overrides": ["max_steps=1"]}]}))
    with pytest.raises(ConfigError, match="'max_steps', which every variant shares"):
        load_variants(bad)
    bad.write_text(yaml.safe_dump({"variants": [{"name": "a"}]}))
    with pytest.raises(ConfigError, match="role: full"):
        load_variants(bad)
    bad.write_text(yaml.safe_dump({"variants": [
        {"name": "full", "role": "full"},
        {"name": "x", "reference": {"metric": "psnr", "delta": 1}}]}))
    with pytest.raises(ConfigError, match="'reference' must be"):
        load_variants(bad)
