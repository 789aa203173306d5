"""Tests of depth_any_view.training.metrics against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from depth_any_view.geometry.camera import PinholeCamera
from depth_any_view.geometry.rig import optical_rotation
from depth_any_view.geometry.transforms import make_transform
from depth_any_view.training.metrics import (
    SCALE_TARGETS,
    DepthMetricAccumulator,
    ScaleStabilityAccumulator,
    VoxelMetricAccumulator,
    angular_reprojection_error,
    bin_name,
    depth_metrics,
    psnr,
    ssim,
    ssim_map,
    voxel_metrics,
)

# gt 2, 4, 10, 20 m and predictions off by +1, -1, 0, x2; plus two invalid gt pixels
GT = np.array([[2.0, 4.0, 10.0], [20.0, np.nan, 0.0]])
PRED = np.array([[3.0, 3.0, 10.0], [40.0, 5.0, 5.0]])


def test_depth_metrics_hand_computed():
    m = depth_metrics(PRED, GT, bins=None)
    g = np.array([2.0, 4.0, 10.0, 20.0])
    p = np.array([3.0, 3.0, 10.0, 40.0])
    assert m["count"] == 4 and m["coverage"] == 1.0
    assert m["abs_rel"] == pytest.approx((0.5 + 0.25 + 0 + 1.0) / 4)
    assert m["sq_rel"] == pytest.approx((1 / 2 + 1 / 4 + 0 + 400 / 20) / 4)
    assert m["rmse"] == pytest.approx(math.sqrt((1 + 1 + 0 + 400) / 4))
    d = np.log(p) - np.log(g)
    assert m["rmse_log"] == pytest.approx(math.sqrt(np.mean(d ** 2)))
    assert m["silog"] == pytest.approx(100 * math.sqrt(np.mean(d ** 2) - np.mean(d) ** 2))
    # ratios 1.5, 1.333, 1, 2 -> < 1.25: 1 pixel; < 1.5625: 3; < 1.953: 3
    assert (m["delta1"], m["delta2"], m["delta3"]) == (0.25, 0.75, 0.75)


def test_depth_metrics_bins_torch_input_and_coverage():
    m = depth_metrics(torch.tensor(PRED), torch.tensor(GT))
    assert m["count/0-5m"] == 2 and m["count/5-15m"] == 1 and m["count/15m+"] == 1
    assert m["abs_rel/0-5m"] == pytest.approx((0.5 + 0.25) / 2)
    assert m["rmse/15m+"] == pytest.approx(20.0)
    assert m["abs_rel/5-15m"] == 0.0
    pred = PRED.copy()
    pred[0, 0] = np.nan  # no prediction for one valid pixel
    m2 = depth_metrics(pred, GT)
    assert m2["coverage"] == pytest.approx(0.75) and m2["count/0-5m"] == 1
    empty = depth_metrics(PRED, GT, bins=[(50.0, 60.0)])
    assert math.isnan(empty["abs_rel/50-60m"]) and empty["count/50-60m"] == 0
    assert bin_name((0.0, 5.0)) == "0-5m" and bin_name((15.0, math.inf)) == "15m+"
    with pytest.raises(ValueError, match="bin"):
        depth_metrics(PRED, GT, bins=[(5.0, 1.0)])


def test_median_scaling_makes_scaled_prediction_perfect():
    gt = np.random.default_rng(0).uniform(1, 30, size=(2, 5, 7))
    pred = gt * np.array([0.5, 3.0])[:, None, None]  # a different scale per image
    assert depth_metrics(pred, gt)["abs_rel"] > 0.4
    m = depth_metrics(pred, gt, median_scaling=True)
    assert m["abs_rel"] == pytest.approx(0.0, abs=1e-12) and m["delta1"] == 1.0
    assert depth_metrics(pred, gt, max_depth=10.0)["count"] == np.sum(gt <= 10.0)


def test_accumulator_pools_pixels_per_camera_and_bin():
    acc = DepthMetricAccumulator(["front", "back"])
    f1_pred = np.stack([PRED, PRED * 0 + 10.0])  # (V=2, 2, 3)
    f1_gt = np.stack([GT, np.full_like(GT, 10.0)])
    acc.update(f1_pred, f1_gt)
    acc.update(torch.tensor(f1_pred)[None], torch.tensor(f1_gt)[None])  # batched
    out = acc.compute()
    assert out["frames"] == 2
    assert out["count/front"] == 8 and out["count/back"] == 12
    assert out["abs_rel/front"] == pytest.approx(1.75 / 4)
    assert out["abs_rel/back"] == 0.0
    assert out["abs_rel"] == pytest.approx(2 * 1.75 / 20)
    assert out["rmse/front/15m+"] == pytest.approx(20.0)
    assert out["count/5-15m"] == 2 + 12
    single = depth_metrics(np.concatenate([f1_pred, f1_pred]), np.concatenate([f1_gt, f1_gt]))
    for key in ("abs_rel", "rmse", "silog", "delta1", "abs_rel/0-5m"):
        assert out[key] == pytest.approx(single[key])
    other = DepthMetricAccumulator(["front", "back"])
    other.update(f1_pred, f1_gt)
    acc.merge(other)
    assert acc.compute()["count/front"] == 12
    acc.reset()
    assert acc.compute()["frames"] == 0
    with pytest.raises(ValueError, match="cameras"):
        acc.update(PRED, GT)


def test_psnr_and_ssim_known_values():
    a = np.full((3, 8, 8), 0.5)
    b = a + 0.1
    assert psnr(b, a) == pytest.approx(20.0)  # mse 0.01
    mask = np.zeros((8, 8), bool)
    mask[:2] = True
    c = a.copy()
    c[:, 2:] = 0.0
    assert psnr(c, a, mask=mask) == math.inf
    assert psnr(c, a) < 10
    assert ssim(a, a) == pytest.approx(1.0)
    # constant images: SSIM = (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1)
    c1 = 0.01 ** 2
    expected = (2 * 0.5 * 0.6 + c1) / (0.25 + 0.36 + c1)
    assert ssim(b, a) == pytest.approx(expected, rel=1e-9)
    noise = np.random.default_rng(1).uniform(0, 1, (2, 3, 16, 16))
    assert ssim_map(noise, noise[::-1]).shape == (2, 16, 16)
    assert ssim(noise, noise[::-1]) < 0.3
    assert ssim(torch.tensor(noise), torch.tensor(noise), mask=np.ones((16, 16))) == (
        pytest.approx(1.0))


def test_voxel_metrics_and_accumulator():
    gt = np.array([1, 1, 0, 0, 255, 1], dtype=np.uint8).reshape(1, 2, 3)
    pred = np.array([1, 0, 1, 0, 1, 1], dtype=bool).reshape(1, 2, 3)
    m = voxel_metrics(pred, gt)  # tp 2, fp 1, fn 1, tn 1; unknown ignored
    assert m["iou"] == pytest.approx(2 / 4)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["known"] == 5
    probs = pred.astype(float) * 0.9
    assert voxel_metrics(probs, gt)["iou"] == m["iou"]
    observed = np.ones_like(pred)
    observed[0, 0, 2] = False  # hide the false positive
    assert voxel_metrics(pred, gt, observed=observed)["precision"] == 1.0
    acc = VoxelMetricAccumulator()
    acc.update(pred, gt)
    acc.update(torch.tensor(np.stack([pred, pred])), torch.tensor(np.stack([gt, gt])))
    out = acc.compute()
    assert out["voxel_iou"] == pytest.approx(0.5) and out["voxel_frames"] == 3
    assert math.isnan(voxel_metrics(np.zeros(3, bool), np.zeros(3, np.uint8))["iou"])


def test_angular_reprojection_error_hand_computed():
    K = np.array([[10.0, 0.0, 1.0], [0.0, 10.0, 1.0], [0.0, 0.0, 1.0]])  # 3 x 3 image
    T_a = make_transform(optical_rotation(0.0), [0.0, 0.0, 0.0])  # looks along base x
    gt = np.full((3, 3), np.nan)
    gt[1, 1] = 4.0  # centre pixel: true point (4, 0, 0) in base_link
    pred = gt.copy()
    pred[1, 1] = 5.0  # predicted (5, 0, 0)
    # the observer sits 3 m to the left (y = 3), also looking along x
    T_b = make_transform(optical_rotation(0.0), [0.0, 3.0, 0.0])
    ang = angular_reprojection_error(pred, gt, K, T_a, T_b)
    expected = math.degrees(math.atan2(3, 4) - math.atan2(3, 5))
    assert ang.shape == (1,) and ang[0] == pytest.approx(expected)
    assert angular_reprojection_error(pred, gt, K, T_a, T_a)[0] == pytest.approx(0.0)
    # the observer must see the true point: behind it nothing counts
    T_back = make_transform(optical_rotation(math.pi), [0.0, 3.0, 0.0])
    assert angular_reprojection_error(pred, gt, K, T_a, T_back).size == 0
    # inside-image check with the observer's intrinsics: (4, -3) is far off its 3 px image
    assert angular_reprojection_error(pred, gt, K, T_a, T_b, K_obs=K, obs_size=(3, 3)).size == 0


# ---------------------------------------------------------------------------- scale stability
def _plane_depth(K: np.ndarray, T_base_cam: np.ndarray, size: tuple[int, int],
                 x_plane: float) -> np.ndarray:
    """Depth (H, W) along z of the plane x = x_plane (base_link) seen by a camera."""
    w, h = size
    v, u = np.mgrid[0:h, 0:w]
    rays = np.stack([u, v, np.ones_like(u)], axis=-1) @ np.linalg.inv(K).T  # (H, W, 3) z=1
    dx = rays @ T_base_cam[:3, :3].T  # (H, W, 3) ray directions in base_link
    with np.errstate(divide="ignore"):
        z = (x_plane - T_base_cam[0, 3]) / dx[..., 0]
    return np.where(z > 0, z, np.nan)


K_SCALE = np.array([[40.0, 0.0, 31.5], [0.0, 40.0, 23.5], [0.0, 0.0, 1.0]])  # 64 x 48 px


def test_scale_exact_ratio_and_hand_computed_cross_camera_spread():
    rng = np.random.default_rng(3)
    names = ["front", "left", "right"]
    T = np.stack([make_transform(optical_rotation(y), [0.0, 0.0, 1.0])
                  for y in (0.0, 2.0, -2.0)])  # back to back: no overlap
    K = np.stack([K_SCALE] * 3)
    acc = ScaleStabilityAccumulator(names)
    for f in range(3):
        gt = rng.uniform(1.0, 30.0, size=(3, 48, 64))
        acc.update(gt * 1.1, gt, K, T, stamp=f)
    out = acc.compute()
    assert out["ratio_mean"] == pytest.approx(1.1) and out["frames"] == 3
    assert out["ratio_std"] == pytest.approx(0.0, abs=1e-12)
    assert out["cross_camera_std"] == pytest.approx(0.0, abs=1e-12)
    assert out["per_camera"]["left"]["ratio_mean"] == pytest.approx(1.1)
    assert out["series"]["t"] == [0.0, 1.0, 2.0]
    assert out["series"]["per_camera"]["right"] == pytest.approx([1.1] * 3)
    assert out["targets_met"]["ratio_mean"] is False and out["targets_met"]["ratio_std"]
    assert math.isnan(out["overlap_disagreement"]) and out["overlap_pixels"] == 0
    assert out["targets_met"]["overlap_disagreement"] is None
    assert set(out["targets"]) == set(SCALE_TARGETS)

    # one camera scaled differently per frame: spread = std over cameras, averaged
    acc = ScaleStabilityAccumulator(names)
    scales = [(1.0, 1.0, 1.3), (1.0, 1.2, 1.0)]
    for f, sc in enumerate(scales):
        gt = rng.uniform(1.0, 30.0, size=(3, 48, 64))
        acc.update(gt * np.array(sc)[:, None, None], gt, K, T, stamp=10.0 - f)
    out = acc.compute()
    spread = [math.sqrt(((1.3 - 1.1) ** 2 + 2 * (1.0 - 1.1) ** 2) / 3),
              math.sqrt(((1.2 - 1.0667) ** 2 + 2 * (1.0 - 1.0667) ** 2) / 3)]
    assert out["cross_camera_std"] == pytest.approx(np.mean(spread), rel=1e-3)
    # pooled per frame: two thirds of the pixels at ratio 1.0 -> median 1.0 in both frames
    assert out["ratio_mean"] == pytest.approx(1.0) and out["ratio_std"] == pytest.approx(0.0)
    assert out["series"]["t"] == [9.0, 10.0]  # ordered by stamp
    assert out["series"]["per_camera"]["left"] == pytest.approx([1.2, 1.0])
    assert out["per_camera"]["right"]["ratio_mean"] == pytest.approx(1.15)
    assert out["per_camera"]["right"]["ratio_std"] == pytest.approx(0.15)


def test_scale_pooled_median_and_nan_handling():
    names = ["a", "b"]
    K = np.stack([K_SCALE] * 2)
    T = np.stack([make_transform(optical_rotation(y), [0.0, 0.0, 0.0]) for y in (0.0, math.pi)])
    gt = np.full((2, 48, 64), 5.0)
    pred = gt.copy()
    pred[1] *= 1.2
    pred[1, :, :16] = np.nan  # no prediction on a quarter of b
    gt[0, :, :40] = 0.0  # invalid ground truth on most of a
    gt[0, 0, 50] = np.nan
    acc = ScaleStabilityAccumulator(names)
    acc.update(pred, gt, K, T, stamp=0.0)
    out = acc.compute()
    # a: 48*24-1 valid pixels at 1.0, b: 48*48 at 1.2 -> pooled median 1.2
    assert out["per_camera"]["a"]["ratio_mean"] == pytest.approx(1.0)
    assert out["per_camera"]["b"]["ratio_mean"] == pytest.approx(1.2)
    assert out["ratio_mean"] == pytest.approx(1.2)
    assert out["cross_camera_std"] == pytest.approx(0.1)
    # a frame without any valid pixel counts nowhere; a camera absent (None) neither
    acc.update(np.full((2, 48, 64), np.nan), gt, K, T, stamp=1.0)
    acc.update([pred[0], None], [gt[0], None], K, T, stamp=2.0)
    out = acc.compute()
    assert out["frames"] == 2 and out["ratio_mean"] == pytest.approx(1.1)
    assert out["per_camera"]["b"]["frames"] == 1
    assert math.isnan(out["series"]["pooled"][1]) and math.isnan(
        out["series"]["per_camera"]["b"][2])
    assert out["cross_camera_std"] == pytest.approx(0.1)  # only the frame with two cameras
    empty = ScaleStabilityAccumulator(names).compute()
    assert math.isnan(empty["ratio_mean"]) and empty["frames"] == 0
    assert all(v is None for v in empty["targets_met"].values())
    with pytest.raises(ValueError, match="V = 2 cameras"):
        acc.update(pred[:1], gt[:1], K, T, stamp=3.0)
    with pytest.raises(ValueError, match="same shape"):
        acc.update([pred[0], pred[1, :10]], [gt[0], gt[1]], K, T, stamp=3.0)
    with pytest.raises(ValueError, match="unique"):
        ScaleStabilityAccumulator(["a", "a"])


def test_scale_overlap_disagreement_of_a_plane_seen_by_two_cameras():
    names = ["a", "b"]
    size = (64, 48)
    # fronto-parallel plane 10 m ahead; b sits 1 m to the left of a, both look along x
    T = np.stack([make_transform(optical_rotation(0.0), [0.0, 0.0, 1.0]),
                  make_transform(optical_rotation(0.0), [0.0, 1.0, 1.0])])
    K = np.stack([K_SCALE] * 2)
    gt = np.stack([_plane_depth(K_SCALE, T[v], size, 10.0) for v in range(2)])
    assert np.allclose(gt, 10.0)
    acc = ScaleStabilityAccumulator(names)
    acc.update(gt, gt, K, T, stamp=0.0)
    out = acc.compute()
    assert out["overlap_disagreement"] == pytest.approx(0.0, abs=1e-3)
    assert out["overlap_pixels"] > 2 * 100 and out["targets_met"]["overlap_disagreement"]
    # b's depth 10 % long: pair (a, b) gives |10 - 11| / 11, pair (b, a) |11 - 10| / 10
    acc = ScaleStabilityAccumulator(names)
    acc.update(gt * np.array([1.0, 1.1])[:, None, None], gt, K, T, stamp=0.0)
    d = acc.compute()["overlap_disagreement"]
    assert 1 / 11 - 1e-3 <= d <= 0.1 + 1e-3
    assert acc.compute()["targets_met"]["overlap_disagreement"] is False
    # where b's ground truth shows another surface (an occluder at 5 m), nothing counts
    occluded = gt.copy()
    occluded[1] = 5.0
    acc = ScaleStabilityAccumulator(names)
    acc.update(gt, occluded, K, T, stamp=0.0)
    assert acc.compute()["overlap_pixels"] == 0


def test_scale_overlap_of_yawed_cameras_cameras_objects_and_merge():
    names = ["left", "right"]
    size = (64, 48)
    T = np.stack([make_transform(optical_rotation(0.3), [0.2, 0.3, 1.0]),
                  make_transform(optical_rotation(-0.3), [0.2, -0.3, 1.0])])
    K = np.stack([K_SCALE] * 2)
    gt = np.stack([_plane_depth(K_SCALE, T[v], size, 8.0) for v in range(2)])
    acc = ScaleStabilityAccumulator(names, stride=2)
    acc.update(gt, gt, K, T, stamp=0.0)
    perfect = acc.compute()
    assert perfect["overlap_pixels"] > 100
    assert perfect["overlap_disagreement"] < 0.005  # nearest-pixel rounding on a slant
    scaled = ScaleStabilityAccumulator(names, stride=2)
    scaled.update(gt * np.array([1.1, 1.0])[:, None, None], gt, K, T, stamp=1.0)
    assert scaled.compute()["overlap_disagreement"] == pytest.approx(0.095, abs=0.01)
    # PinholeCamera at half the resolution: resized to the depth's size, same figures
    cams = [PinholeCamera(width=32, height=24, K=np.diag([0.5, 0.5, 1.0]) @ K_SCALE
                          + np.array([[0, 0, -0.25], [0, 0, -0.25], [0, 0, 0]]))] * 2
    via_cams = ScaleStabilityAccumulator(names, stride=2)
    via_cams.update(torch.tensor(gt), gt, cams, T, stamp=0.0)
    assert via_cams.compute()["overlap_disagreement"] == pytest.approx(
        perfect["overlap_disagreement"], abs=1e-9)
    acc.merge(scaled)
    merged = acc.compute()
    assert merged["frames"] == 2 and merged["overlap_pixels"] == (
        perfect["overlap_pixels"] + scaled.compute()["overlap_pixels"])
    assert merged["series"]["t"] == [0.0, 1.0]
    with pytest.raises(ValueError, match="different cameras"):
        acc.merge(ScaleStabilityAccumulator(["x", "y"]))
