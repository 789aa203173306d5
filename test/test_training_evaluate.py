"""Tests of depth_any_view.training.evaluate (metrics of weights on a shard split)."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from depth_any_view.data.synth import synthesize
from depth_any_view.model.config import load_model_config
from depth_any_view.model.network import DepthAnyViewNet
from depth_any_view.model.weights import save_weights
from depth_any_view.training.evaluate import evaluate_split, report_markdown, write_report


@pytest.fixture(scope="module")
def split_and_weights(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    synthesize(root / "test" / "seq_a", frames=2, size=(48, 32), grid_dims=8, seed=21,
               scene="indoor", progress=False)
    cfg = replace(load_model_config("lite"), image_size=(32, 32), hidden=16, layers=1,
                  heads=2, backbone_width=8, decoder_width=16, grid_dims=(8, 8, 8),
                  occ_channels=4, occ_hidden=4, occ_blocks=1, occ_fine_channels=4)
    torch.manual_seed(0)
    weights = save_weights(DepthAnyViewNet(cfg), cfg, root / "tiny.safetensors")
    return root / "test", weights


def test_evaluate_split_reports_per_camera_and_bins(split_and_weights, tmp_path):
    split, weights = split_and_weights
    result = evaluate_split(split, weights=weights, progress=False)
    assert result["frames"] == 2 and len(result["cameras"]) == 6
    d = result["depth"]
    for key in ("abs_rel", "rmse", "delta1", "abs_rel/front", "abs_rel/0-5m", "count/5-15m"):
        assert key in d
    assert 0 <= d["delta1"] <= 1 and d["abs_rel"] > 0 and np.isfinite(d["rmse"])
    assert 0 <= result["occupancy"]["voxel_iou"] <= 1
    js, md = write_report(result, tmp_path)
    data = json.loads(js.read_text())
    assert data["depth"]["abs_rel"] == pytest.approx(d["abs_rel"])
    text = md.read_text()
    assert "| front |" in text and "| depth 15m+ |" in text and "IoU" in text
    assert report_markdown(result).startswith("# Evaluation")


def test_evaluate_reports_scale_stability_and_its_figure(split_and_weights, tmp_path):
    split, weights = split_and_weights
    result = evaluate_split(split, weights=weights, progress=False)
    sc = result["scale"]
    assert sc["frames"] == 2
    for key in ("ratio_mean", "ratio_std", "cross_camera_std"):
        assert np.isfinite(sc[key]) and sc[key] >= 0, key
    assert set(sc["targets_met"]) == {"ratio_mean", "ratio_std", "cross_camera_std",
                                      "overlap_disagreement"}
    assert sc["overlap_pixels"] >= 0
    assert sc["series"]["t"] == [0.0, 1.0]
    assert set(sc["series"]["per_camera"]) == set(result["cameras"])
    # the pooled ratio of a frame lies within its cameras' ratios
    for f in range(2):
        cams = [v[f] for v in sc["series"]["per_camera"].values() if np.isfinite(v[f])]
        assert min(cams) - 1e-9 <= sc["series"]["pooled"][f] <= max(cams) + 1e-9
    js, md = write_report(result, tmp_path)
    png = tmp_path / "scale_over_time.png"
    assert png.is_file() and png.read_bytes()[:4] == b"\x89PNG"
    data = json.loads(js.read_text())
    assert data["scale"]["ratio_mean"] == pytest.approx(sc["ratio_mean"])
    assert data["figures"]["scale_over_time"] == "scale_over_time.png"
    text = md.read_text()
    assert "## Scale stability" in text and "| cross-camera std |" in text
    assert "| \\|x - 1\\| <= 0.03 |" in text and "![scale over time](scale_over_time.png)" in text
    # the figure depends on the data only
    again = tmp_path / "again"
    write_report(result, again)
    assert (again / "scale_over_time.png").read_bytes() == png.read_bytes()


def test_evaluate_is_deterministic_and_views_subset(split_and_weights):
    split, weights = split_and_weights
    a = evaluate_split(split, weights=weights, progress=False, views=["front", "back"])
    b = evaluate_split(split, weights=weights, progress=False, views=["front", "back"])
    assert a["cameras"] == ["front", "back"] and "abs_rel/front_left" not in a["depth"]
    assert a["depth"]["abs_rel"] == b["depth"]["abs_rel"]
    assert a["scale"]["ratio_mean"] == b["scale"]["ratio_mean"]
    assert set(a["scale"]["per_camera"]) == {"front", "back"}
    with pytest.raises(ValueError, match="not in the split"):
        evaluate_split(split, weights=weights, progress=False, views=["left_wing"])


def test_evaluate_missing_split_is_a_clear_error(tmp_path, split_and_weights):
    _, weights = split_and_weights
    with pytest.raises(FileNotFoundError, match="holds no shard directory"):
        evaluate_split(tmp_path / "nothing", weights=weights, progress=False)


def test_results_figure_of_a_test_frame(split_and_weights, tmp_path):
    from depth_any_view.cli import main
    from depth_any_view.training.figure import write_results_figure

    split, weights = split_and_weights
    png = write_results_figure(split, tmp_path / "fig" / "results.png", weights=weights,
                               frame_index=1)
    import cv2

    img = cv2.imread(str(png))
    assert img is not None and img.shape[0] > 400 and img.shape[1] > 600
    assert img.std() > 10  # not a blank canvas
    with pytest.raises(ValueError, match="past the end"):
        write_results_figure(split, tmp_path / "x.png", weights=weights, frame_index=2)
    out = tmp_path / "cli"
    assert main(["evaluate", "--weights", str(weights), "--data", str(split), "--out",
                 str(out), "--quiet", "--figure", str(out / "fig.png")]) == 0
    assert (out / "fig.png").is_file() and (out / "metrics.json").is_file()


def test_random_init_baseline_needs_no_weights(tmp_path):
    # The lite network at random: the baseline the trained weights are compared with.
    synthesize(tmp_path / "seq_b", frames=1, size=(48, 32), grid_dims=64, seed=5,
               scene="indoor", progress=False)
    result = evaluate_split(tmp_path, weights=None, random_init=True, progress=False)
    assert result["frames"] == 1 and np.isfinite(result["depth"]["abs_rel"])
    assert "random" in str(result["weights"]).lower()


def test_evaluate_gives_temporal_weights_the_previous_frame(split_and_weights, tmp_path):
    """With the frames' poses (the default) a temporal cost volume sees the previous frame
    of the sequence; with odometry=False every frame is alone, and the figures differ."""
    data, _ = split_and_weights
    over = dict(image_size=(32, 32), hidden=16, layers=1, heads=2, backbone_width=8,
                decoder_width=16, grid_dims=(8, 8, 8), occ_channels=4, occ_hidden=4,
                occ_blocks=1, occ_fine_channels=4, cost_volume=True, cost_temporal=True,
                cost_hypotheses=8, cost_channels=8, cost_groups=2)
    cfg = replace(load_model_config("lite"), **over)
    torch.manual_seed(3)
    net = DepthAnyViewNet(cfg)
    for m in (net.cost_tokens, net.depth_head.cost_proj):  # zero at init: make them count
        torch.nn.init.normal_(m.weight, std=0.3)
    torch.nn.init.normal_(net.depth_head.out_logit.weight, std=0.5)
    weights = save_weights(net, cfg, tmp_path / "temporal.safetensors")
    with_odom = evaluate_split(data, weights=weights, progress=False)
    alone = evaluate_split(data, weights=weights, progress=False, odometry=False)
    assert with_odom["temporal"] and with_odom["odometry"] and not alone["odometry"]
    assert with_odom["depth"]["abs_rel"] != pytest.approx(alone["depth"]["abs_rel"], abs=1e-6)
