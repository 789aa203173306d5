"""Tests of depth_any_view.training.losses with analytic scenes (a textured wall, two cameras)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from depth_any_view.config import ConfigError
from depth_any_view.geometry.rig import optical_rotation
from depth_any_view.geometry.transforms import make_transform
from depth_any_view.training.losses import (
    LossConfig,
    compute_losses,
    depth_consistency_loss,
    depth_l1_loss,
    laplacian_nll_loss,
    occupancy_loss,
    photometric_loss,
    scale_intrinsics,
    smoothness_loss,
)

H, W = 32, 48
WALL_X = 4.0  # metres: the wall x = WALL_X in base_link that both cameras see


def _K() -> np.ndarray:
    return np.array([[24.0, 0.0, (W - 1) / 2], [0.0, 24.0, (H - 1) / 2], [0.0, 0.0, 1.0]])


def _rig() -> np.ndarray:
    """(2, 4, 4): camera 0 looks along x; camera 1 is 0.5 m to the right, yawed -20 deg."""
    return np.stack([make_transform(optical_rotation(0.0), [0.0, 0.0, 1.5]),
                     make_transform(optical_rotation(math.radians(-20)), [0.0, -0.5, 1.5])])


def _render(K: np.ndarray, T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Image (3, H, W) and depth (H, W) of the textured wall x = WALL_X."""
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    rays = np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(K).T  # (H, W, 3), z = 1
    rays_base = rays @ T[:3, :3].T
    s = (WALL_X - T[0, 3]) / rays_base[..., 0]  # depth, since rays have z = 1
    p = T[:3, 3] + s[..., None] * rays_base  # (H, W, 3) hit points in base_link
    y, z = p[..., 1], p[..., 2]
    img = np.stack([0.5 + 0.35 * np.sin(4.0 * y + 0.3) * np.cos(3.0 * z),
                    0.5 + 0.3 * np.cos(3.0 * y - 0.7 * z),
                    0.5 + 0.3 * np.sin(2.5 * z + 1.1 * y)])
    return img, s


def _wall_batch() -> dict[str, torch.Tensor]:
    K, T = _K(), _rig()
    imgs, depths = zip(*(_render(K, t) for t in T))
    return {"images": torch.tensor(np.stack(imgs), dtype=torch.float32)[None],
            "depth": torch.tensor(np.stack(depths), dtype=torch.float32)[None],
            "K": torch.tensor(np.stack([K, K]), dtype=torch.float32)[None],
            "T_base_cam": torch.tensor(T)[None]}


PAIRS = [(0, 1), (1, 0)]


def test_depth_l1_equals_shift_and_ignores_invalid():
    gen = torch.Generator().manual_seed(0)
    gt = torch.rand(2, 3, 8, 10, generator=gen) * 10 + 1
    gt[0, 0, :2] = math.nan
    gt[1, 2, :, :3] = 0.0
    assert depth_l1_loss(gt + 0.37, gt).item() == pytest.approx(0.37, abs=1e-5)
    pred = gt.clone()
    pred[0, 0, :2] = 100.0  # errors on invalid pixels do not count
    assert depth_l1_loss(torch.nan_to_num(pred, nan=100.0), gt).item() == pytest.approx(0.0)


def test_depth_l1_log_space_is_relative_error():
    gt = torch.tensor([[[[1.0, 10.0], [float("nan"), 40.0]]]])
    pred = gt * 1.1  # 10 % too far everywhere: one log ratio, whatever the range
    loss = depth_l1_loss(torch.nan_to_num(pred, nan=5.0), gt, space="log")
    assert loss.item() == pytest.approx(math.log(1.1), rel=1e-5)
    assert depth_l1_loss(pred.nan_to_num(5.0), gt).item() == pytest.approx(5.1 / 3, rel=1e-5)
    with pytest.raises(ConfigError, match="depth_space"):
        LossConfig(depth_space="inverse")


def test_depth_l1_upsamples_low_resolution_prediction():
    gt = torch.full((1, 2, 8, 12), 3.0)
    assert depth_l1_loss(torch.full((1, 2, 4, 6), 3.5), gt).item() == pytest.approx(0.5)


def test_laplacian_nll_is_smallest_at_the_true_error_scale_and_leaves_depth_alone():
    gen = torch.Generator().manual_seed(1)
    gt = torch.rand(1, 2, 8, 8, generator=gen) * 10 + 1
    gt[0, 0, 0] = math.nan
    pred = (gt * 1.2).nan_to_num(3.0).requires_grad_()  # |log error| = log 1.2 everywhere
    scales = torch.tensor([0.05, 0.1, math.log(1.2), 0.4, 1.0])
    values = [laplacian_nll_loss(pred, torch.full_like(gt, float(b)), gt).item() for b in scales]
    assert int(np.argmin(values)) == 2  # the NLL's minimum is b = E|log error|
    assert values[2] == pytest.approx(1.0 + math.log(math.log(1.2)), rel=1e-5)
    scale = torch.full_like(gt, 0.3, requires_grad=True)
    laplacian_nll_loss(pred, scale, gt).backward()
    assert pred.grad is None and scale.grad.abs().sum() > 0  # teaches the scale only


def test_confidence_term_needs_the_scale_output():
    batch = _wall_batch()
    cfg = LossConfig(photo_weight=0, cos_weight=0, smooth_weight=0, occupancy_weight=0,
                     confidence_weight=0.5)
    outputs = {"depth": batch["depth"] * 1.1}
    with pytest.raises(KeyError, match="confidence: true"):
        compute_losses(outputs, batch, cfg)
    outputs["log_depth_scale"] = torch.full_like(batch["depth"], 0.1)
    losses = compute_losses(outputs, batch, cfg)
    assert set(losses) == {"depth", "confidence", "total"}
    expected = losses["depth"] + 0.5 * losses["confidence"]
    assert losses["total"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_photometric_zero_for_identical_views_with_identity_warp():
    b = _wall_batch()
    images = b["images"][:, :1].expand(1, 2, 3, H, W)
    K = b["K"]
    T = b["T_base_cam"][:, :1].expand(1, 2, 4, 4)
    depth = torch.rand(1, 2, H, W, generator=torch.Generator().manual_seed(1)) + 2.0
    depth[:, 1] = depth[:, 0]
    assert photometric_loss(depth, images, K, T, PAIRS).item() < 1e-5


def test_photometric_small_with_true_depth_and_larger_with_wrong_depth():
    b = _wall_batch()
    args = (b["images"], b["K"], b["T_base_cam"], PAIRS)
    good = photometric_loss(b["depth"], *args).item()
    bad = photometric_loss(b["depth"] * 1.3, *args).item()
    assert good < 0.02
    assert bad > 3 * good


def test_photometric_gradient_moves_depth_toward_truth():
    b = _wall_batch()
    depth = (b["depth"] * 1.1).requires_grad_(True)
    loss = photometric_loss(depth, b["images"], b["K"], b["T_base_cam"], PAIRS)
    loss.backward()
    assert torch.isfinite(depth.grad).all()
    # a small step against the gradient lowers the loss
    stepped = (depth - 0.05 * depth.grad / depth.grad.abs().max()).detach()
    after = photometric_loss(stepped, b["images"], b["K"], b["T_base_cam"], PAIRS)
    assert after.item() < loss.item()


def test_cross_view_consistency_zero_for_consistent_plane_and_positive_when_perturbed():
    b = _wall_batch()
    good = depth_consistency_loss(b["depth"], b["K"], b["T_base_cam"], PAIRS).item()
    assert good < 1e-3
    perturbed = b["depth"].clone()
    perturbed[:, 0] *= 1.05
    bad = depth_consistency_loss(perturbed, b["K"], b["T_base_cam"], PAIRS).item()
    assert bad > 0.03  # about log(1.05) = 0.049 on the overlap


def test_cross_view_consistency_masks_occluded_points():
    b = _wall_batch()
    occluder = b["depth"].clone()
    occluder[:, 1] *= 0.5  # the source sees something much nearer: target points are hidden
    loss = depth_consistency_loss(occluder, b["K"], b["T_base_cam"], [(0, 1)])
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    nearer = b["depth"].clone()
    nearer[:, 1] *= 1.05  # within tolerance: a real inconsistency, penalised
    assert depth_consistency_loss(nearer, b["K"], b["T_base_cam"], [(0, 1)]).item() > 0.03


def test_smoothness_zero_for_constant_depth_and_edge_aware():
    images = torch.rand(1, 2, 3, 8, 10, generator=torch.Generator().manual_seed(2))
    assert smoothness_loss(torch.full((1, 2, 8, 10), 4.0), images).item() == pytest.approx(0.0)
    step = torch.full((1, 1, 8, 10), 2.0)
    step[..., 5:] = 6.0
    flat = torch.full((1, 1, 3, 8, 10), 0.5)
    edge = flat.clone()
    edge[..., 5:] = 1.0  # an image edge where the depth steps
    on_flat = smoothness_loss(step, flat).item()
    on_edge = smoothness_loss(step, edge).item()
    assert on_flat > 0
    assert on_edge == pytest.approx(on_flat * math.exp(-0.5))


def _occupancy_case():
    gen = torch.Generator().manual_seed(3)
    labels = torch.randint(0, 2, (2, 6, 5, 4), generator=gen).to(torch.uint8)
    labels[:, :2] = 255
    logits = torch.where(labels == 1, 20.0, -20.0)
    logits = torch.where(labels == 255, torch.randn(labels.shape, generator=gen) * 5, logits)
    return logits, labels


@pytest.mark.parametrize("kind", ["bce", "focal"])
def test_occupancy_perfect_logits_near_zero_and_unknown_ignored(kind):
    logits, labels = _occupancy_case()
    out = occupancy_loss(logits, labels, kind=kind)
    assert out["occupancy"].item() < 1e-6
    other = logits.clone()
    other[labels == 255] = 30.0  # anything on unknown voxels
    assert occupancy_loss(other, labels, kind=kind)["occupancy"].item() == pytest.approx(
        out["occupancy"].item(), abs=1e-9)
    wrong = -logits
    bad = occupancy_loss(wrong, labels, kind=kind)
    assert bad["occupancy"].item() > 1.0 and bad["occupancy_iou"].item() > 0.99


def test_occupancy_observed_mask_and_known_answer():
    labels = torch.tensor([[[[1, 0, 255]]]], dtype=torch.uint8)  # (1, 1, 1, 3)
    logits = torch.zeros(1, 1, 1, 3)  # p = 0.5 everywhere
    out = occupancy_loss(logits, labels, iou_weight=0.0)
    assert out["occupancy_ce"].item() == pytest.approx(math.log(2.0), rel=1e-6)
    # soft IoU: inter = 0.5, union = 0.5 + 1 - 0.5 + 0.5 = 1.5, smoothed by +1
    assert out["occupancy_iou"].item() == pytest.approx(1 - 1.5 / 2.5, rel=1e-6)
    observed = torch.tensor([[[[False, False, True]]]])
    masked = occupancy_loss(logits, labels, observed)
    assert masked["occupancy"].item() == pytest.approx(0.0, abs=1e-7)


def _full_case(nan_gt: bool = True):
    b = _wall_batch()
    gt = b["depth"].clone()
    if nan_gt:
        gt[:, :, :5] = math.nan
    logits, labels = _occupancy_case()
    batch = {**b, "depth": gt, "occupancy": labels[:1]}
    pred = (b["depth"] * 1.05).requires_grad_(True)
    occ = logits[:1].clone().mul(0.1).requires_grad_(True)
    outputs = {"depth": pred, "occupancy_logits": occ,
               "occupancy_observed": torch.ones_like(labels[:1], dtype=torch.bool)}
    return outputs, batch


def test_compute_losses_total_and_finite_gradients_with_nan_gt():
    outputs, batch = _full_case()
    cfg = LossConfig(neighbour_pairs=[[0, 1], [1, 0]])
    out = compute_losses(outputs, batch, cfg)
    assert {"depth", "photo", "cos", "smooth", "occupancy", "total"} <= set(out)
    expected = (out["depth"] + out["photo"] + 0.5 * out["cos"] + 0.1 * out["smooth"]
                + out["occupancy"])
    assert out["total"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert out["depth"].item() == pytest.approx(
        float(np.nanmean((batch["depth"] * 0.05).numpy())), rel=1e-4)
    out["total"].backward()
    assert torch.isfinite(outputs["depth"].grad).all()
    assert torch.isfinite(outputs["occupancy_logits"].grad).all()
    assert outputs["depth"].grad.abs().sum() > 0


def test_compute_losses_auto_pairs_from_extrinsics():
    outputs, batch = _full_case(nan_gt=False)
    auto = compute_losses(outputs, batch, LossConfig())
    explicit = compute_losses(outputs, batch, LossConfig(neighbour_pairs=PAIRS))
    assert auto["photo"].item() == pytest.approx(explicit["photo"].item())


def test_zero_weight_disables_term_without_computing_it():
    outputs, batch = _full_case()
    cfg = LossConfig(photo_weight=0.0, cos_weight=0.0, smooth_weight=0.0)
    lean = {"depth": batch["depth"], "occupancy": batch["occupancy"]}  # no images, K, T
    out = compute_losses(outputs, lean, cfg)
    assert set(out) == {"depth", "occupancy", "occupancy_ce", "occupancy_iou", "total"}
    no_cos = compute_losses(outputs, batch, LossConfig(cos_weight=0.0))
    assert "cos" not in no_cos and "photo" in no_cos
    none = compute_losses(outputs, {}, LossConfig(depth_weight=0, photo_weight=0,
                                                  cos_weight=0, smooth_weight=0,
                                                  occupancy_weight=0))
    assert set(none) == {"total"} and none["total"].item() == 0.0
    none["total"].backward()


def test_compute_losses_resizes_images_to_prediction():
    b = _wall_batch()
    outputs = {"depth": torch.nn.functional.avg_pool2d(b["depth"], 2)}
    cfg = LossConfig(depth_weight=0, occupancy_weight=0, neighbour_pairs=PAIRS)
    out = compute_losses(outputs, b, cfg)
    assert out["photo"].item() < 0.05 and out["cos"].item() < 5e-3
    K = torch.tensor(_K())
    K2 = scale_intrinsics(K, 0.5, 0.5)
    assert K2[0, 2].item() == pytest.approx((K[0, 2].item() + 0.5) * 0.5 - 0.5)


def test_missing_inputs_and_bad_config_name_the_fix():
    outputs, batch = _full_case()
    del batch["images"]
    with pytest.raises(KeyError, match="photo_weight"):
        compute_losses(outputs, batch, LossConfig())
    with pytest.raises(ConfigError, match="views"):
        compute_losses(outputs, _full_case()[1], LossConfig(neighbour_pairs=[(0, 5)]))
    with pytest.raises(ConfigError, match="unknown loss option"):
        LossConfig.from_dict({"depth_wieght": 1.0})
    with pytest.raises(ConfigError, match="cos_weight"):
        LossConfig(cos_weight=-1.0)
    with pytest.raises(ConfigError, match="occupancy_loss"):
        LossConfig(occupancy_loss="dice")
    cfg = LossConfig.from_dict({"cos_weight": 0.0, "neighbour_pairs": [[0, 1]]})
    assert cfg.cos_weight == 0.0 and cfg.neighbour_pairs == [(0, 1)]


def test_inverse_depth_at_averages_valid_inverse_depth_per_cell():
    from depth_any_view.training.losses import inverse_depth_at

    gt = torch.tensor([[1.0, 2.0, float("nan"), float("nan")],
                       [1.0, 2.0, float("nan"), float("nan")]])[None, None]  # (1, 1, 2, 4)
    inv = inverse_depth_at(gt, (1, 2))
    assert inv[0, 0, 0, 0] == pytest.approx(0.75) and torch.isnan(inv[0, 0, 0, 1])


def test_cost_volume_loss_is_zero_for_the_truth_and_counts_only_matched_cells():
    from depth_any_view.training.losses import LossConfig, compute_losses, cost_volume_loss

    gt = torch.full((1, 2, 8, 8), 2.0)
    depth = torch.full((1, 2, 4, 4), 2.0, requires_grad=True)
    evidence = torch.ones(1, 2, 4, 4)
    assert cost_volume_loss(depth, evidence, gt).item() == pytest.approx(0.0, abs=1e-6)
    wrong = torch.full((1, 2, 4, 4), 4.0, requires_grad=True)
    loss = cost_volume_loss(wrong, evidence, gt)  # |1/4 - 1/2| = 0.25 per metre
    assert loss.item() == pytest.approx(0.25)
    loss.backward()
    assert wrong.grad.abs().sum() > 0
    none = cost_volume_loss(wrong, torch.zeros_like(evidence), gt)  # nothing matched
    assert none.item() == 0.0
    far = cost_volume_loss(wrong, evidence, torch.full((1, 2, 8, 8), 80.0))  # past the planes
    assert far.item() == 0.0
    with pytest.raises(KeyError, match="cost_volume"):
        compute_losses({"depth": depth}, {"depth": gt},
                       LossConfig(depth_weight=0, photo_weight=0, cos_weight=0,
                                  smooth_weight=0, occupancy_weight=0, cost_weight=1.0))
    with pytest.raises(ConfigError, match="cost_depth_range"):
        LossConfig(cost_depth_range=(3.0, 1.0))
