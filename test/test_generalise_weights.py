"""The `lite_generalise` weights (issue 20, stage 5): a network with cost volumes trained on
both synthetic worlds and random rigs, shipped beside the default weights.

Guards, far from the measured figures (README, "Beyond the training world"): it loads as
any weights file does (its own configuration, cost volumes included), stays metric on the
training world, and on real photographs orders depth the right way round and beats a
constant depth, which the default weights do not.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from depth_any_view.data import real_images as ri
from depth_any_view.data.synth import synthesize
from depth_any_view.model.weights import WEIGHTS_DIR, read_weights_config
from depth_any_view.training.evaluate import evaluate_split
from depth_any_view.training.evaluate_real import evaluate_real

WEIGHTS = WEIGHTS_DIR / "lite_generalise.safetensors"


def test_generalise_weights_have_cost_volumes_and_a_confidence_head() -> None:
    cfg, meta = read_weights_config(WEIGHTS)
    assert cfg.cost_volume and cfg.cost_temporal and cfg.confidence
    assert cfg.image_size == (128, 128)


@pytest.mark.parametrize("name", ["lite_generalise", "lite_geometry", "lite_effnet_geometry"])
def test_weights_beside_the_default_stay_metric_on_the_training_world(
        tmp_path: Path, name: str) -> None:
    """Every issue-20 weights file (this one and test_geometry_weights.py's)."""
    synthesize(tmp_path / "seq_9302", frames=2, size=(128, 128), grid_dims=64, seed=9302,
               scene="outdoor", progress=False)  # a seed outside every split
    result = evaluate_split(tmp_path, weights=WEIGHTS_DIR / f"{name}.safetensors",
                            progress=False, engine_overrides={"threads": 1})
    assert result["temporal"] and result["odometry"]
    assert result["depth"]["abs_rel"] < 0.3 and result["depth"]["delta1"] > 0.6


def test_generalise_weights_order_real_depth_and_beat_a_constant() -> None:
    try:
        ri.opencv_data_dir()
    except ri.RealDataMissing:
        pytest.skip("opencv-doc is not installed (apt-get install opencv-doc; "
                    "scripts/bootstrap.sh installs it)")
    result = evaluate_real(weights=WEIGHTS, engine_overrides={"device": "cpu", "threads": 1})
    mean = result["mean"]
    assert mean["mono"]["spearman"] > 0.2  # the default weights: -0.20
    assert mean["mono"]["si_abs_rel"] < mean["constant"]["si_abs_rel"]
    assert mean["stereo"]["abs_rel"] < 0.35  # the default weights: 0.40
