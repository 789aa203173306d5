"""Training losses: supervised depth, multi-view self-supervision and occupancy (torch).

`compute_losses(outputs, batch, cfg)` returns every enabled term unweighted plus 'total',
their weighted sum. A term whose weight is 0 is neither computed nor returned, so an
ablation is a weight of 0 (e.g. `cos_weight: 0` for "no depth consistency").

Inputs (B = batch, V = views, H x W = image size, X x Y x Z = voxels):
    outputs['depth']               (B, V, H, W) predicted depth, metres
    outputs['occupancy_logits']    (B, X, Y, Z) occupancy logits
    outputs['occupancy_observed']  (B, X, Y, Z) bool, optional (see LossConfig)
    batch['images']                (B, V, 3, H, W) float in [0, 1]
    batch['depth']                 (B, V, H, W) ground-truth depth, metres, NaN (or 0) invalid
    batch['K']                     (B, V, 3, 3) intrinsics
    batch['T_base_cam']            (B, V, 4, 4) camera -> base_link
    batch['occupancy']             (B, X, Y, Z) uint8: 0 free, 1 occupied, 255 unknown
Images (and their intrinsics) are resized to the predicted depth's resolution for the
photometric and smoothness terms; the prediction is upsampled to the ground truth's
resolution for the depth term.

Terms:
    depth      L1 between predicted and valid ground-truth depth: in metres (depth_space
               'metric', the reference design) or between log depths ('log': a relative
               error, so 40 m outdoor pixels do not drown 1 m indoor ones; AbsRel is relative).
    photo      per pair (target t, source s): reconstruct image t by sampling image s at
               the projection of t's predicted depth; error alpha*(1-SSIM)/2 + (1-alpha)*L1
               averaged over pixels that land inside s and are not occluded there (the
               projected depth exceeds s's own predicted depth by less than a relative
               tolerance).
    cos        cross-view depth consistency: |log z_s - log D_s(u_s)| where z_s is the depth
               of t's back-projected point in camera s and D_s(u_s) is s's predicted depth
               sampled at its projection, over the same visibility mask.
    smooth     edge-aware smoothness of the mean-normalised inverse depth (monodepth2).
    occupancy  BCE (or focal) + occupancy_iou_weight * (1 - soft IoU of the occupied
               class) over known voxels (label != 255).
    cost       the cost volume's own depth (networks with `cost_volume`: soft-argmin over
               its planes, outputs['cost_depth'] at 1/cost_stride) against the ground truth
               brought to that grid (mean of valid inverse depths per cell): inverse-depth
               L1 |1/d - 1/d_gt| in 1/m (a disparity error: what matching can resolve is
               uniform in inverse depth, so far pixels weigh little), only where the volume matched
               (outputs['cost_evidence'] >= cost_min_evidence) and the truth lies inside
               its planes. It teaches the matching features directly.
    confidence Laplacian negative log-likelihood of the log-depth error under the predicted
               scale b (outputs['log_depth_scale'], networks with `confidence`):
               |log gt - log pred| / b + log b over valid ground truth. The depth is
               detached here, so this term teaches the scale only and the L1 term alone
               shapes the depth; the minimum is at b = the expected |log error|.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from depth_any_view.config import ConfigError, dataclass_from_mapping
from depth_any_view.training.warp import (
    SSIM,
    ViewWarp,
    WarpResult,
    neighbour_pairs,
    relative_transform,
)

UNKNOWN_LABEL = 255
OCCUPIED_LABEL = 1


@dataclass
class LossConfig:
    """Loss weights and options; load from YAML with `LossConfig.from_dict`."""

    depth_weight: float = 1.0  # L_depth: L1 to valid ground-truth depth (metres)
    depth_space: str = "metric"  # L_depth on 'metric' depth (metres) or 'log' depth
    photo_weight: float = 1.0  # L_photo: SSIM + L1 of each view vs neighbours warped into it
    cos_weight: float = 0.5  # L_cos: cross-view consistency of predicted depths (log ratio)
    smooth_weight: float = 0.1  # L_smooth: edge-aware smoothness of normalised inverse depth
    occupancy_weight: float = 1.0  # occupancy: BCE/focal + soft IoU over known voxels
    ssim_alpha: float = 0.85  # photo error = alpha * (1 - SSIM) / 2 + (1 - alpha) * L1
    occlusion_tolerance: float = 0.1  # relative depth slack before a point counts as occluded
    neighbour_pairs: list[tuple[int, int]] | None = None  # (target, source) views; None: auto
    neighbour_max_angle_deg: float = 100.0  # auto pairs: max angle between optical axes, deg
    min_depth: float = 1e-3  # metres; floor on predicted depth for logs and inverse depth
    occupancy_loss: str = "bce"  # classification term: 'bce' or 'focal'
    focal_gamma: float = 2.0  # focal loss exponent (only for occupancy_loss 'focal')
    occupancy_pos_weight: float = 1.0  # weight of occupied voxels in the classification term
    occupancy_iou_weight: float = 1.0  # weight of (1 - soft IoU) inside the occupancy term
    occupancy_observed_only: bool = False  # also ignore voxels outputs mark as unobserved
    confidence_weight: float = 0.0  # Laplacian NLL of the log-depth error (confidence head)
    cost_weight: float = 0.0  # L_cost: the cost volume's own depth vs the truth (cost_volume)
    cost_min_evidence: float = 0.25  # cells the volume matched at least this much count
    cost_depth_range: tuple[float, float] = (0.5, 30.0)  # metres: truth outside is left out

    def __post_init__(self) -> None:
        """Validate values, raising ConfigError that names the field."""
        for name in ("depth_weight", "photo_weight", "cos_weight", "smooth_weight",
                     "occupancy_weight", "occlusion_tolerance", "focal_gamma",
                     "occupancy_pos_weight", "occupancy_iou_weight", "confidence_weight",
                     "cost_weight", "cost_min_evidence"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not value >= 0:
                raise ConfigError(f"loss '{name}' must be a number >= 0, got {value!r}")
        if not 0.0 <= self.ssim_alpha <= 1.0:
            raise ConfigError(f"loss 'ssim_alpha' must be in [0, 1], got {self.ssim_alpha}")
        if self.depth_space not in ("metric", "log"):
            raise ConfigError(f"loss 'depth_space' must be 'metric' or 'log', "
                              f"got {self.depth_space!r}")
        if self.occupancy_loss not in ("bce", "focal"):
            raise ConfigError(f"loss 'occupancy_loss' must be 'bce' or 'focal', "
                              f"got {self.occupancy_loss!r}")
        lo_hi = tuple(float(v) for v in self.cost_depth_range)
        if len(lo_hi) != 2 or not 0.0 < lo_hi[0] < lo_hi[1]:
            raise ConfigError(f"loss 'cost_depth_range' must be [near, far] metres with "
                              f"0 < near < far, got {self.cost_depth_range!r}")
        self.cost_depth_range = lo_hi  # type: ignore[assignment]
        if not self.min_depth > 0:
            raise ConfigError(f"loss 'min_depth' must be > 0 metres, got {self.min_depth}")
        if self.neighbour_pairs is not None:
            pairs = []
            for pair in self.neighbour_pairs:
                if len(pair) != 2 or int(pair[0]) == int(pair[1]):
                    raise ConfigError(f"loss 'neighbour_pairs' entries must be [target, source]"
                                      f" with two different view indices, got {pair!r}")
                pairs.append((int(pair[0]), int(pair[1])))
            self.neighbour_pairs = pairs

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> LossConfig:
        """Config from a mapping (e.g. the `loss:` section of a YAML file); unknown keys fail."""
        return dataclass_from_mapping(cls, data, "loss option(s)")


def _zero(ref: torch.Tensor) -> torch.Tensor:
    """A zero scalar still attached to `ref`'s graph, so backward() works."""
    return ref.sum() * 0.0


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `values` where `mask`; zero (with a graph) when the mask is empty."""
    mask_f = mask.to(values.dtype)
    filled = torch.where(mask, values, torch.zeros_like(values))
    return filled.sum() / mask_f.sum().clamp_min(1.0)


def scale_intrinsics(K: torch.Tensor, sx: float, sy: float) -> torch.Tensor:
    """Intrinsics (..., 3, 3) of an image resized by (sx, sy), pixel centres at integers."""
    K = K.clone()
    K[..., 0, 0] = K[..., 0, 0] * sx
    K[..., 0, 1] = K[..., 0, 1] * sx
    K[..., 1, 1] = K[..., 1, 1] * sy
    K[..., 0, 2] = (K[..., 0, 2] + 0.5) * sx - 0.5
    K[..., 1, 2] = (K[..., 1, 2] + 0.5) * sy - 0.5
    return K


def _images_at(images: torch.Tensor, K: torch.Tensor, height: int,
               width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (B, V, 3, h, w) and K resized to (height, width)."""
    b, v, c, h, w = images.shape
    if (h, w) == (height, width):
        return images, K
    flat = images.reshape(b * v, c, h, w)  # (B*V, 3, h, w)
    flat = F.interpolate(flat, size=(height, width), mode="bilinear", align_corners=False,
                         antialias=True)
    return flat.reshape(b, v, c, height, width), scale_intrinsics(K, width / w, height / h)


def depth_l1_loss(pred: torch.Tensor, gt: torch.Tensor, space: str = "metric",
                  min_depth: float = 1e-3) -> torch.Tensor:
    """Mean |pred - gt| over valid ground truth (finite and > 0), in metres ('metric') or
    of log depth ('log', with pred floored at min_depth metres).

    pred (B, V, H, W) is bilinearly resized to gt's size when they differ. NaN ground truth
    never reaches the graph, so gradients stay finite.
    """
    if pred.shape[-2:] != gt.shape[-2:]:
        lead = pred.shape[:-2]
        flat = pred.reshape(-1, 1, *pred.shape[-2:])  # (B*V, 1, h, w)
        flat = F.interpolate(flat, size=gt.shape[-2:], mode="bilinear", align_corners=False)
        pred = flat.reshape(*lead, *gt.shape[-2:])
    gt = gt.to(pred.dtype)
    valid = torch.isfinite(gt) & (gt > 0)
    if space == "log":
        gt_clean = torch.where(valid, gt, torch.ones_like(gt))
        return _masked_mean((torch.log(pred.clamp_min(min_depth)) - torch.log(gt_clean)).abs(),
                            valid)
    gt_clean = torch.where(valid, gt, torch.zeros_like(gt))
    return _masked_mean((pred - gt_clean).abs(), valid)


def inverse_depth_at(gt: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Ground-truth depth (..., H, W) metres -> mean valid inverse depth per cell of an
    (h, w) grid (1/m; NaN where a cell has no valid pixel). H, W multiples of h, w give
    exact cells; otherwise the cells are adaptive pooling's."""
    lead = gt.shape[:-2]
    flat = gt.reshape(-1, 1, *gt.shape[-2:]).float()
    valid = torch.isfinite(flat) & (flat > 0)
    inv = torch.where(valid, 1.0 / torch.where(valid, flat, torch.ones_like(flat)),
                      torch.zeros_like(flat))
    total = F.adaptive_avg_pool2d(inv, size)
    count = F.adaptive_avg_pool2d(valid.float(), size)
    out = torch.where(count > 0, total / count.clamp_min(1e-12),
                      torch.full_like(total, float("nan")))
    return out.reshape(*lead, *size)


def cost_volume_loss(cost_depth: torch.Tensor, evidence: torch.Tensor, gt: torch.Tensor, *,
                     min_evidence: float = 0.25,
                     depth_range: tuple[float, float] = (0.5, 30.0)) -> torch.Tensor:
    """Inverse-depth L1 (1/m) of the cost volume's depth (B, V, h, w) against the ground
    truth (B, V, H, W), where evidence >= min_evidence and the truth's depth lies in
    `depth_range` metres; zero (with a graph) where nothing qualifies."""
    inv_gt = inverse_depth_at(gt.to(cost_depth.device), tuple(cost_depth.shape[-2:]))
    lo, hi = depth_range
    ok = torch.isfinite(inv_gt) & (inv_gt >= 1.0 / hi) & (inv_gt <= 1.0 / lo)
    ok = ok & (evidence >= min_evidence)
    inv_gt = torch.where(ok, inv_gt, torch.ones_like(inv_gt))
    err = (1.0 / cost_depth.float() - inv_gt).abs()
    return _masked_mean(err, ok)


def _to_size(x: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """(..., h, w) bilinearly resized to (..., *size) (unchanged when already that size)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    lead = x.shape[:-2]
    flat = F.interpolate(x.reshape(-1, 1, *x.shape[-2:]), size=tuple(size), mode="bilinear",
                         align_corners=False)
    return flat.reshape(*lead, *size)


def laplacian_nll_loss(pred: torch.Tensor, scale: torch.Tensor, gt: torch.Tensor,
                       min_depth: float = 1e-3) -> torch.Tensor:
    """Mean Laplacian NLL |log gt - log pred| / b + log b over valid ground truth.

    pred (B, V, h, w) metres is detached (the scale learns the depth's error, the depth is
    not pulled by it); scale (B, V, h, w) is b > 0 in log-depth units. Both are resized to
    gt's size. The constant log 2 is left out, so the value can be negative.
    """
    size = gt.shape[-2:]
    log_pred = torch.log(_to_size(pred.detach().float(), size).clamp_min(min_depth))
    b = _to_size(scale.float(), size).clamp_min(1e-4)
    gt = gt.to(log_pred.dtype)
    valid = torch.isfinite(gt) & (gt > 0)
    gt_clean = torch.where(valid, gt, torch.ones_like(gt))
    err = (log_pred - torch.log(gt_clean)).abs()
    return _masked_mean(err / b + torch.log(b), valid)


def _resolve_pairs(cfg: LossConfig, T_base_cam: torch.Tensor) -> list[tuple[int, int]]:
    """The configured (target, source) pairs, or the automatic ones from the extrinsics."""
    n_views = T_base_cam.shape[1]
    if cfg.neighbour_pairs is None:
        return neighbour_pairs(T_base_cam, cfg.neighbour_max_angle_deg)
    for t, s in cfg.neighbour_pairs:
        if not (0 <= t < n_views and 0 <= s < n_views):
            raise ConfigError(f"loss 'neighbour_pairs' has ({t}, {s}) but the batch has "
                              f"{n_views} views; use indices 0..{n_views - 1}")
    return list(cfg.neighbour_pairs)


def _pair_warp(depth: torch.Tensor, K: torch.Tensor, T_base_cam: torch.Tensor,
               pairs: list[tuple[int, int]], min_depth: float
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, WarpResult,
                          torch.Tensor]:
    """Warp every target view of `pairs` into its source; tensors flattened to (B*P, ...).

    Returns (target indices (P,), source indices (P,), target depth, source depth,
    the warp, target-depth validity (B*P, H, W)).
    """
    b, _, h, w = depth.shape
    tgt = torch.tensor([p[0] for p in pairs], device=depth.device)
    src = torch.tensor([p[1] for p in pairs], device=depth.device)
    n = b * len(pairs)
    d_t = depth[:, tgt].reshape(n, h, w)  # (B*P, H, W)
    d_s = depth[:, src].reshape(n, h, w)  # (B*P, H, W)
    K_t = K[:, tgt].reshape(n, 3, 3)
    K_s = K[:, src].reshape(n, 3, 3)
    T_s_t = relative_transform(T_base_cam[:, tgt], T_base_cam[:, src]).reshape(n, 4, 4)
    warp = ViewWarp(h, w, min_depth=min_depth).to(depth.device)(d_t, K_t, K_s, T_s_t)
    valid_t = torch.isfinite(d_t) & (d_t > min_depth)
    return tgt, src, d_t, d_s, warp, valid_t


def photometric_loss(depth: torch.Tensor, images: torch.Tensor, K: torch.Tensor,
                     T_base_cam: torch.Tensor, pairs: list[tuple[int, int]], *,
                     ssim_alpha: float = 0.85, occlusion_tolerance: float = 0.1,
                     min_depth: float = 1e-3) -> torch.Tensor:
    """Photometric reconstruction error of target views from their source neighbours.

    Args:
        depth: predicted depth (B, V, H, W), metres.
        images: (B, V, 3, H, W) in [0, 1], same size as depth.
        K: intrinsics (B, V, 3, 3) of those images; T_base_cam: (B, V, 4, 4).
        pairs: (target, source) view indices.
        ssim_alpha: weight of (1 - SSIM) / 2 against the L1 term.
        occlusion_tolerance: a target point is visible in the source when its projected
            depth is at most (1 + tolerance) times the source's predicted depth there.
        min_depth: metres; predicted depths below are ignored.

    Returns:
        Scalar mean error over visible pixels of all pairs (0 when nothing is visible).
    """
    if not pairs:
        return _zero(depth)
    b, _, h, w = depth.shape
    tgt, src, _, d_s, warp, valid_t = _pair_warp(depth.float(), K, T_base_cam, pairs,
                                                 min_depth)
    n = b * len(pairs)
    img = images.float()
    img_t = img[:, tgt].reshape(n, 3, h, w)  # (B*P, 3, H, W)
    img_s = img[:, src].reshape(n, 3, h, w)  # (B*P, 3, H, W)
    warped = F.grid_sample(img_s, warp.grid, mode="bilinear", padding_mode="border",
                           align_corners=True)  # (B*P, 3, H, W)
    with torch.no_grad():
        d_s_at = F.grid_sample(d_s.detach()[:, None], warp.grid, mode="nearest",
                               padding_mode="border", align_corners=True)[:, 0]  # (B*P, H, W)
        visible = (warp.in_view & valid_t
                   & (warp.depth <= d_s_at * (1.0 + occlusion_tolerance)))
    ssim = SSIM().to(depth.device)
    err = (ssim_alpha * ssim(warped, img_t).mean(1)
           + (1.0 - ssim_alpha) * (warped - img_t).abs().mean(1))  # (B*P, H, W)
    return _masked_mean(err, visible)


def depth_consistency_loss(depth: torch.Tensor, K: torch.Tensor, T_base_cam: torch.Tensor,
                           pairs: list[tuple[int, int]], *, occlusion_tolerance: float = 0.1,
                           min_depth: float = 1e-3) -> torch.Tensor:
    """Cross-view depth consistency: mean |log z_s - log D_s(u_s)| over visible pixels.

    For each (target t, source s) pair, t's predicted depth is back-projected, moved into
    camera s (depth z_s at pixel u_s) and compared with s's own prediction D_s sampled
    bilinearly at u_s. Pixels outside s, or occluded there (z_s > (1 + tolerance) * D_s),
    are ignored. Both views receive gradients. Shapes as in `photometric_loss`.
    """
    if not pairs:
        return _zero(depth)
    _, _, _, d_s, warp, valid_t = _pair_warp(depth.float(), K, T_base_cam, pairs, min_depth)
    d_s_at = F.grid_sample(d_s[:, None], warp.grid, mode="bilinear", padding_mode="border",
                           align_corners=True)[:, 0]  # (B*P, H, W)
    visible = (warp.in_view & valid_t & torch.isfinite(d_s_at) & (d_s_at > min_depth)
               & (warp.depth <= d_s_at.detach() * (1.0 + occlusion_tolerance)))
    z = torch.where(visible, warp.depth, torch.ones_like(warp.depth))
    d = torch.where(visible, d_s_at, torch.ones_like(d_s_at))
    diff = (torch.log(z.clamp_min(min_depth)) - torch.log(d.clamp_min(min_depth))).abs()
    return _masked_mean(diff, visible)


def smoothness_loss(depth: torch.Tensor, images: torch.Tensor,
                    min_depth: float = 1e-3) -> torch.Tensor:
    """Edge-aware smoothness of mean-normalised inverse depth (monodepth2).

    depth (B, V, H, W) metres, images (B, V, 3, H, W) of the same size. Inverse-depth
    gradients are down-weighted by exp(-|image gradient|); constant depth gives 0.
    """
    b, v, h, w = depth.shape
    disp = 1.0 / depth.float().clamp_min(min_depth).reshape(b * v, 1, h, w)  # (B*V, 1, H, W)
    disp = disp / disp.mean(dim=(2, 3), keepdim=True).clamp_min(1e-7)
    img = images.float().reshape(b * v, 3, h, w)  # (B*V, 3, H, W)
    grad_disp_x = (disp[..., :, :-1] - disp[..., :, 1:]).abs()
    grad_disp_y = (disp[..., :-1, :] - disp[..., 1:, :]).abs()
    grad_img_x = (img[..., :, :-1] - img[..., :, 1:]).abs().mean(1, keepdim=True)
    grad_img_y = (img[..., :-1, :] - img[..., 1:, :]).abs().mean(1, keepdim=True)
    return ((grad_disp_x * torch.exp(-grad_img_x)).mean()
            + (grad_disp_y * torch.exp(-grad_img_y)).mean())


def occupancy_loss(logits: torch.Tensor, labels: torch.Tensor,
                   observed: torch.Tensor | None = None, *, kind: str = "bce",
                   focal_gamma: float = 2.0, pos_weight: float = 1.0,
                   iou_weight: float = 1.0) -> dict[str, torch.Tensor]:
    """Occupancy classification + soft-IoU loss over known voxels.

    Args:
        logits: (B, X, Y, Z) occupancy logits.
        labels: (B, X, Y, Z) uint8, 0 free / 1 occupied / 255 unknown (ignored).
        observed: optional (B, X, Y, Z) bool; when given, only observed voxels count.
        kind: 'bce' or 'focal' (binary focal loss with exponent `focal_gamma`).
        pos_weight: weight on occupied voxels in the classification term.
        iou_weight: weight of 1 - soft IoU (sum(p*y) / sum(p + y - p*y), occupied class).

    Returns:
        {'occupancy': ce + iou_weight * iou, 'occupancy_ce': ce, 'occupancy_iou': iou}.
    """
    if logits.shape != labels.shape:
        raise ValueError(f"occupancy logits {tuple(logits.shape)} and labels "
                         f"{tuple(labels.shape)} must have the same (B, X, Y, Z) shape")
    logits = logits.float()
    known = labels != UNKNOWN_LABEL
    if observed is not None:
        known = known & observed.bool()
    y = (labels == OCCUPIED_LABEL).float()
    ce = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
    if kind == "focal":
        p = torch.sigmoid(logits)
        p_t = p * y + (1 - p) * (1 - y)
        ce = ce * (1 - p_t).pow(focal_gamma)
    elif kind != "bce":
        raise ValueError(f"occupancy loss kind must be 'bce' or 'focal', got {kind!r}")
    weight = torch.where(y > 0, torch.full_like(y, pos_weight), torch.ones_like(y))
    ce = _masked_mean(ce * weight, known)
    p = torch.sigmoid(logits) * known.float()
    yk = y * known.float()
    eps = 1.0
    inter = (p * yk).sum()
    union = (p + yk - p * yk).sum()
    iou = 1.0 - (inter + eps) / (union + eps)
    return {"occupancy": ce + iou_weight * iou, "occupancy_ce": ce, "occupancy_iou": iou}


def _need(mapping: dict[str, Any], key: str, what: str, weight_name: str,
          model_option: str | None = None) -> torch.Tensor:
    """mapping[key], or a KeyError naming the key and the weight that disables its term
    (and, for a network output, the model option that makes the network give it)."""
    if key not in mapping or mapping[key] is None:
        if model_option is not None:
            raise KeyError(f"{what} have no '{key}' (the network was built without "
                           f"'{model_option}: true'); enable it in the model config or set "
                           f"'{weight_name}: 0' in the loss config")
        raise KeyError(f"{what} has no '{key}', which the loss needs; provide it or set "
                       f"'{weight_name}: 0' in the loss config")
    return mapping[key]


def compute_losses(outputs: dict[str, torch.Tensor], batch: dict[str, Any],
                   cfg: LossConfig | None = None) -> dict[str, torch.Tensor]:
    """All enabled loss terms (unweighted) and 'total' = sum of weight * term.

    Keys: 'depth', 'photo', 'cos', 'smooth', 'occupancy' (plus its parts 'occupancy_ce'
    and 'occupancy_iou', for logging only), 'confidence', 'cost' for each term with a weight > 0,
    and 'total'.
    See the module docstring for the expected keys and shapes.
    """
    cfg = cfg or LossConfig()
    out: dict[str, torch.Tensor] = {}
    weights = {"depth": cfg.depth_weight, "photo": cfg.photo_weight, "cos": cfg.cos_weight,
               "smooth": cfg.smooth_weight, "occupancy": cfg.occupancy_weight,
               "confidence": cfg.confidence_weight, "cost": cfg.cost_weight}
    need_depth = any(weights[k] > 0 for k in ("depth", "photo", "cos", "smooth", "confidence"))
    pred = _need(outputs, "depth", "outputs", "depth_weight") if need_depth else None

    if cfg.depth_weight > 0:
        gt = _need(batch, "depth", "batch", "depth_weight")
        out["depth"] = depth_l1_loss(pred, gt.to(pred.device), cfg.depth_space, cfg.min_depth)

    if cfg.photo_weight > 0 or cfg.cos_weight > 0 or cfg.smooth_weight > 0:
        name = "photo_weight" if cfg.photo_weight > 0 else "cos_weight"
        h, w = pred.shape[-2:]
        K = _need(batch, "K", "batch", name).to(pred.device)
        T = _need(batch, "T_base_cam", "batch", name).to(pred.device)
        images = None
        if cfg.photo_weight > 0 or cfg.smooth_weight > 0:
            name = "photo_weight" if cfg.photo_weight > 0 else "smooth_weight"
            images = _need(batch, "images", "batch", name).to(pred.device)
            images, K = _images_at(images.float(), K, h, w)
        pairs = _resolve_pairs(cfg, T) if (cfg.photo_weight > 0 or cfg.cos_weight > 0) else []
        if cfg.photo_weight > 0:
            out["photo"] = photometric_loss(pred, images, K, T, pairs,
                                            ssim_alpha=cfg.ssim_alpha,
                                            occlusion_tolerance=cfg.occlusion_tolerance,
                                            min_depth=cfg.min_depth)
        if cfg.cos_weight > 0:
            out["cos"] = depth_consistency_loss(pred, K, T, pairs,
                                                occlusion_tolerance=cfg.occlusion_tolerance,
                                                min_depth=cfg.min_depth)
        if cfg.smooth_weight > 0:
            out["smooth"] = smoothness_loss(pred, images, cfg.min_depth)

    if cfg.occupancy_weight > 0:
        logits = _need(outputs, "occupancy_logits", "outputs", "occupancy_weight")
        labels = _need(batch, "occupancy", "batch", "occupancy_weight").to(logits.device)
        observed = outputs.get("occupancy_observed") if cfg.occupancy_observed_only else None
        out.update(occupancy_loss(logits, labels, observed, kind=cfg.occupancy_loss,
                                  focal_gamma=cfg.focal_gamma,
                                  pos_weight=cfg.occupancy_pos_weight,
                                  iou_weight=cfg.occupancy_iou_weight))

    if cfg.confidence_weight > 0:
        scale = _need(outputs, "log_depth_scale", "outputs", "confidence_weight", "confidence")
        gt = _need(batch, "depth", "batch", "confidence_weight")
        out["confidence"] = laplacian_nll_loss(pred, scale, gt.to(pred.device), cfg.min_depth)

    if cfg.cost_weight > 0:
        cost_depth = _need(outputs, "cost_depth", "outputs", "cost_weight", "cost_volume")
        gt = _need(batch, "depth", "batch", "cost_weight")
        out["cost"] = cost_volume_loss(cost_depth, outputs["cost_evidence"], gt,
                                       min_evidence=cfg.cost_min_evidence,
                                       depth_range=cfg.cost_depth_range)

    terms = [weights[k] * out[k] for k in weights if k in out]
    if terms:
        out["total"] = torch.stack([t.float() for t in terms]).sum()
    else:
        ref = next((v for v in outputs.values() if isinstance(v, torch.Tensor)
                    and v.is_floating_point()), None)
        out["total"] = _zero(ref) if ref is not None else torch.zeros(())
    return out
