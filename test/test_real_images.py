"""Tests of the real-image loader (data/real_images.py), the rank metric and the real-pair
evaluation (training/evaluate_real.py, `depth-any-view eval-real`)."""

import gzip
import json
import math

import cv2
import numpy as np
import pytest

from depth_any_view.data import real_images as ri
from depth_any_view.training.metrics import average_ranks, depth_metrics, spearman_correlation


def _opencv_doc_or_skip():
    try:
        return ri.opencv_data_dir()
    except ri.RealDataMissing:
        pytest.skip("opencv-doc is not installed (apt-get install opencv-doc; "
                    "scripts/bootstrap.sh installs it)")


@pytest.fixture(scope="module")
def aloe():
    _opencv_doc_or_skip()
    return ri.load_opencv_pair("aloe")


@pytest.fixture(scope="module")
def pairs(aloe):
    out = [aloe]
    try:
        out.append(ri.load_motorcycle())
    except ri.RealDataMissing:
        pass  # scikit-image missing: Aloe alone
    return out


# ---------------------------------------------------------------------------- loader
def test_missing_opencv_doc_names_the_install_command(tmp_path):
    with pytest.raises(ri.RealDataMissing, match="apt-get install opencv-doc"):
        ri.opencv_data_dir([tmp_path / "nothing"])


def test_gzipped_files_are_read(tmp_path):
    img = np.zeros((4, 6, 3), np.uint8)
    img[..., 0] = 200  # red in RGB
    ok, png = cv2.imencode(".png", img[..., ::-1])  # OpenCV writes BGR
    assert ok
    (tmp_path / "aloeL.jpg.gz").write_bytes(gzip.compress(png.tobytes()))
    assert ri.opencv_data_dir([tmp_path]) == tmp_path
    back = ri.read_image(tmp_path / "aloeL.jpg", cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(back, img)


def test_aloe_loads_with_the_nominal_rig(aloe):
    w, h = aloe.size
    assert aloe.left.dtype == np.uint8 and aloe.left.shape == (h, w, 3)
    assert aloe.right.shape == aloe.left.shape and aloe.disparity.shape == (h, w)
    known = np.isfinite(aloe.disparity)
    assert 0.9 < known.mean() < 1.0  # Middlebury leaves occlusions unknown (png value 0)
    assert np.nanmin(aloe.disparity) >= 1.0
    hfov = 2 * math.degrees(math.atan(0.5 * w / aloe.K_left[0, 0]))
    assert hfov == pytest.approx(ri.NOMINAL_HFOV_DEG)
    assert aloe.baseline == ri.NOMINAL_BASELINE_M and aloe.doffs == 0.0
    assert not aloe.calibrated


def test_gt_disparity_is_consistent_with_the_pair(pairs):
    """Left pixel x shows what right pixel x - d shows: the photometric error with the GT
    disparity is small and far below that of a shifted or wrongly scaled disparity."""
    for pair in pairs:
        d = pair.disparity
        err = ri.photometric_error(pair.left, pair.right, d)
        assert err < 12.0, pair.name
        for wrong in (ri.photometric_error(pair.left, pair.right, d, offset=4.0),
                      ri.photometric_error(pair.left, pair.right, d, offset=-4.0),
                      ri.photometric_error(pair.left, pair.right, 2.0 * d),
                      ri.photometric_error(pair.left, pair.right, -d)):
            assert err < 0.6 * wrong, pair.name


def test_resized_pair_keeps_disparity_consistent(aloe):
    small = aloe.resized(320)
    assert small.size[0] == 320 and small.left.shape[:2] == small.disparity.shape
    assert np.nanmax(small.disparity) == pytest.approx(np.nanmax(aloe.disparity) * 320 /
                                                       aloe.size[0], rel=1e-3)
    err = ri.photometric_error(small.left, small.right, small.disparity)
    assert err < 0.6 * ri.photometric_error(small.left, small.right, small.disparity,
                                            offset=3.0)
    assert small.K_left[0, 0] == pytest.approx(aloe.K_left[0, 0] * 320 / aloe.size[0])


def test_depth_from_disparity_sign_and_scale():
    f, B = 1000.0, 0.2
    z = np.array([[1.0, 2.0, 8.0]])
    d = f * B / z
    np.testing.assert_allclose(ri.depth_from_disparity(d, f, B), z, rtol=1e-6)
    np.testing.assert_allclose(ri.depth_from_disparity(d - 10.0, f, B, doffs=10.0), z,
                               rtol=1e-6)
    out = ri.depth_from_disparity(np.array([[np.nan, 0.0, -3.0, np.inf]]), f, B)
    assert np.isnan(out).all()  # unknown, infinitely far, behind, broken: no depth
    assert ri.depth_from_disparity(np.array([[20.0]]), f, B)[0, 0] < \
        ri.depth_from_disparity(np.array([[10.0]]), f, B)[0, 0]  # more disparity = nearer


def test_gt_depth_reprojects_into_the_right_camera(pairs):
    """A left pixel back-projected with the GT depth and moved into the right camera with
    the rig's poses lands at column x - d on the same row: poses, K and depth agree."""
    for pair in pairs:
        depth = pair.depth()
        rows, cols = np.nonzero(np.isfinite(depth))
        sel = np.arange(0, rows.size, 997)
        rows, cols = rows[sel], cols[sel]
        cam_l, cam_r = pair.cameras()
        T_l, T_r = pair.poses()
        uv = np.stack([cols, rows], axis=1).astype(np.float64)
        p_l = cam_l.backproject(uv, depth[rows, cols].astype(np.float64))  # (N, 3)
        T_rl = np.linalg.solve(T_r, T_l)  # left optical -> right optical
        p_r = p_l @ T_rl[:3, :3].T + T_rl[:3, 3]
        uv_r, ok = cam_r.project(p_r)
        x_r = cols - pair.disparity[rows, cols]  # expected right column
        assert (x_r >= -0.49).mean() > 0.8
        assert ok[x_r >= -0.49].all() and not ok[x_r < -0.51].any()  # the rest leaves it
        np.testing.assert_allclose(uv_r[:, 0], cols - pair.disparity[rows, cols], atol=1e-2)
        np.testing.assert_allclose(uv_r[:, 1], rows, atol=1e-6)
        # base_link: x forward, the right camera is on the robot's right (-y), same height
        assert T_r[1, 3] == pytest.approx(T_l[1, 3] - pair.baseline)
        assert T_r[0, 3] == T_l[0, 3] and T_r[2, 3] == T_l[2, 3]
        # every pixel with a disparity has a depth in front of the rig (doffs sign)
        np.testing.assert_array_equal(np.isfinite(depth), np.isfinite(pair.disparity))
        assert (T_l[:3, :3] @ np.array([0.0, 0.0, 1.0]))[0] == 1.0  # optical z = forward


# ---------------------------------------------------------------------------- metrics
def test_metrics_on_analytic_inputs():
    rng = np.random.default_rng(0)
    gt = rng.uniform(1.0, 10.0, size=(20, 30))
    gt[0, :5] = np.nan  # unknown
    perfect = depth_metrics(gt, gt, bins=None)
    assert perfect["abs_rel"] == 0.0 and perfect["delta1"] == 1.0
    assert spearman_correlation(gt, gt) == pytest.approx(1.0)
    scaled = 2.5 * gt
    assert depth_metrics(scaled, gt, bins=None, median_scaling=True)["abs_rel"] == \
        pytest.approx(0.0, abs=1e-12)
    assert depth_metrics(scaled, gt, bins=None)["abs_rel"] == pytest.approx(1.5)
    assert spearman_correlation(scaled, gt) == pytest.approx(1.0)
    assert spearman_correlation(np.exp(gt), gt) == pytest.approx(1.0)  # monotonic
    assert spearman_correlation(1.0 / gt, gt) == pytest.approx(-1.0)  # reversed order
    assert spearman_correlation(20.0 - gt, gt) == pytest.approx(-1.0)
    assert math.isnan(spearman_correlation(np.full_like(gt, 3.0), gt))  # no order
    noisy = gt * rng.uniform(0.5, 1.5, size=gt.shape)
    assert 0.0 < spearman_correlation(noisy, gt) < 1.0


def test_average_ranks_share_ties():
    np.testing.assert_allclose(average_ranks(np.array([3.0, 1.0, 3.0, 2.0, 3.0])),
                               [3.0, 0.0, 3.0, 1.0, 3.0])
    np.testing.assert_allclose(average_ranks(np.array([5.0, 4.0])), [1.0, 0.0])


# ---------------------------------------------------------------------------- evaluation
def test_eval_real_end_to_end_with_the_shipped_weights(tmp_path, capsys):
    _opencv_doc_or_skip()
    from depth_any_view.cli import main

    rc = main(["eval-real", "--pairs", "aloe", "--max-width", "192", "--out", str(tmp_path),
               "--device", "cpu", "--no-photographs"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "mono si-AbsRel" in printed and "SGBM" in printed
    result = json.loads((tmp_path / "real_images.json").read_text())
    assert result["weights"].endswith("lite.safetensors")
    r = result["pairs"]["aloe"]
    assert r["size"] == [192, 166]
    for setting, keys in (("mono", ("si_abs_rel", "spearman", "abs_rel")),
                          ("constant", ("si_abs_rel",)),
                          ("stereo", ("abs_rel", "delta1", "si_abs_rel", "spearman")),
                          ("sgbm", ("abs_rel", "delta1", "coverage", "seconds"))):
        for k in keys:
            v = r[setting][k]
            assert v is not None and math.isfinite(v), (setting, k)
    assert r["constant"]["spearman"] is None  # a constant has no order
    assert r["stereo"]["coverage"] > 0.95  # the network predicts (almost) every pixel
    assert 0.3 < r["sgbm"]["coverage"] < 1.0 and r["sgbm"]["abs_rel"] < 0.15
    assert (tmp_path / "real_images.png").stat().st_size > 10_000
    md = (tmp_path / "real_images.md").read_text()
    assert "OpenCV StereoSGBM" in md and "no order" in md


def test_eval_real_takes_weights_of_any_network(tmp_path):
    """A weights file carries its configuration: eval-real runs a network the lite preset
    does not describe (here a tiny one with cost volumes) instead of refusing it."""
    _opencv_doc_or_skip()
    from dataclasses import replace

    import torch

    from depth_any_view.model.config import load_model_config
    from depth_any_view.model.network import DepthAnyViewNet
    from depth_any_view.model.weights import save_weights
    from depth_any_view.training.evaluate_real import evaluate_real

    cfg = replace(load_model_config("lite"), image_size=(32, 32), hidden=16, layers=1,
                  heads=2, backbone_width=8, decoder_width=16, grid_dims=(8, 8, 8),
                  occ_channels=4, occ_hidden=4, occ_blocks=1, occ_fine_channels=4,
                  cost_volume=True, cost_hypotheses=8, cost_channels=8, cost_groups=2)
    torch.manual_seed(0)
    path = save_weights(DepthAnyViewNet(cfg), cfg, tmp_path / "tiny_cv.safetensors")
    result = evaluate_real(weights=path, pairs=["aloe"], max_width=96,
                           engine_overrides={"device": "cpu"})
    assert result["network_size"] == [32, 32]
    assert math.isfinite(result["pairs"]["aloe"]["stereo"]["abs_rel"])
