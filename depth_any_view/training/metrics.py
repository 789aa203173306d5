"""Evaluation metrics: depth errors, image reconstruction quality, voxel IoU, reprojection.

Depth metrics (standard KITTI / Eigen definitions, over pixels whose ground truth is
finite and > 0 and whose prediction is finite and > 0; depth in metres, log = natural):
    abs_rel   mean |p - g| / g
    sq_rel    mean (p - g)^2 / g
    rmse      sqrt(mean (p - g)^2), metres
    rmse_log  sqrt(mean (log p - log g)^2)
    silog     100 * sqrt(mean d^2 - (mean d)^2), d = log p - log g (KITTI benchmark)
    delta1/2/3  fraction of pixels with max(p / g, g / p) < 1.25, 1.25^2, 1.25^3
    coverage  fraction of valid ground-truth pixels that have a valid prediction
    count     number of pixels evaluated
Range bins select pixels by ground-truth depth, lower bound inclusive, upper exclusive;
their metrics are reported as '<metric>/<bin name>', e.g. 'abs_rel/0-5m'. Statistics are
pooled over pixels (an RMSE over many frames is the RMSE of all their pixels). Median
scaling (off by default) multiplies each image's prediction by median(g) / median(p).

Inputs may be numpy arrays or torch tensors; everything is computed in float64 numpy
except SSIM, which uses a torch convolution.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

DepthBin = tuple[float, float]
DEFAULT_BINS: tuple[DepthBin, ...] = ((0.0, 5.0), (5.0, 15.0), (15.0, math.inf))
DEPTH_METRICS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "silog", "delta1", "delta2",
                 "delta3", "coverage", "count")
UNKNOWN_LABEL = 255
OCCUPIED_LABEL = 1

# Sufficient statistics of a set of pixels, in this order (see _depth_stats).
_STATS = ("n_gt", "n", "abs_rel", "sq_rel", "sq_err", "sq_log", "log_d", "d1", "d2", "d3")


def _to_numpy(x: Any) -> np.ndarray:
    """A float64 numpy copy of an array or tensor."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    return np.array(x, dtype=np.float64)  # a contiguous copy


def bin_name(depth_bin: DepthBin) -> str:
    """Label of a depth bin: (0, 5) -> '0-5m', (15, inf) -> '15m+'."""
    lo, hi = depth_bin

    def fmt(v: float) -> str:
        return f"{v:g}"

    return f"{fmt(lo)}m+" if math.isinf(hi) else f"{fmt(lo)}-{fmt(hi)}m"


def _check_bins(bins: Sequence[DepthBin]) -> list[DepthBin]:
    """Bins as float pairs with lo < hi, else ValueError naming the bin."""
    out = []
    for b in bins:
        if len(b) != 2 or not float(b[0]) < float(b[1]):
            raise ValueError(f"depth bin {b!r} must be (lower, upper) metres with lower < upper")
        out.append((float(b[0]), float(b[1])))
    return out


def _median_scale(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """pred (..., H, W) scaled per image by median(gt) / median(pred) over valid pixels."""
    lead = pred.shape[:-2]
    p = pred.reshape(-1, pred.shape[-2] * pred.shape[-1]).copy()  # (N, H*W)
    g = gt.reshape(p.shape)  # (N, H*W)
    for i in range(p.shape[0]):  # one median per image, not per pixel
        ok = np.isfinite(p[i]) & (p[i] > 0) & np.isfinite(g[i]) & (g[i] > 0)
        if ok.any():
            p[i] *= np.median(g[i][ok]) / np.median(p[i][ok])
    return p.reshape(*lead, *pred.shape[-2:])


def _depth_stats(pred: np.ndarray, gt: np.ndarray, bins: Sequence[DepthBin],
                 max_depth: float | None) -> np.ndarray:
    """Statistics (1 + len(bins), len(_STATS)) for all pixels and for each bin."""
    p = pred.reshape(-1)
    g = gt.reshape(-1)
    with np.errstate(invalid="ignore"):
        gt_ok = np.isfinite(g) & (g > 0)
        if max_depth is not None:
            gt_ok &= g <= max_depth
        ok = gt_ok & np.isfinite(p) & (p > 0)
    g_all = np.where(gt_ok, g, np.nan)
    pv, gv = p[ok], g[ok]
    err = pv - gv
    log_d = np.log(pv) - np.log(gv)
    ratio = np.maximum(pv / gv, gv / pv)
    per_pixel = np.stack([np.ones_like(pv), np.abs(err) / gv, err ** 2 / gv, err ** 2,
                          log_d ** 2, log_d, ratio < 1.25, ratio < 1.25 ** 2,
                          ratio < 1.25 ** 3], axis=1)  # (N, len(_STATS) - 1)
    out = np.zeros((1 + len(bins), len(_STATS)))
    out[0, 0] = gt_ok.sum()
    out[0, 1:] = per_pixel.sum(axis=0)
    for i, (lo, hi) in enumerate(bins, start=1):
        with np.errstate(invalid="ignore"):
            out[i, 0] = ((g_all >= lo) & (g_all < hi)).sum()
        sel = (gv >= lo) & (gv < hi)
        out[i, 1:] = per_pixel[sel].sum(axis=0)
    return out


def _stats_to_metrics(s: np.ndarray) -> dict[str, float]:
    """Metric values from one row of sufficient statistics (NaN when no pixel counted)."""
    st = dict(zip(_STATS, s))
    n = st["n"]
    if n <= 0:
        vals = {k: math.nan for k in DEPTH_METRICS}
        vals["count"] = 0.0
        vals["coverage"] = 0.0 if st["n_gt"] > 0 else math.nan
        return vals
    mean_d = st["log_d"] / n
    return {
        "abs_rel": st["abs_rel"] / n,
        "sq_rel": st["sq_rel"] / n,
        "rmse": math.sqrt(st["sq_err"] / n),
        "rmse_log": math.sqrt(st["sq_log"] / n),
        "silog": 100.0 * math.sqrt(max(st["sq_log"] / n - mean_d ** 2, 0.0)),
        "delta1": st["d1"] / n,
        "delta2": st["d2"] / n,
        "delta3": st["d3"] / n,
        "coverage": n / st["n_gt"],
        "count": float(n),
    }


def _flatten_metrics(stats: np.ndarray, bins: Sequence[DepthBin],
                     suffix: str = "") -> dict[str, float]:
    """'<metric><suffix>' for the overall row and '<metric><suffix>/<bin>' for each bin."""
    out = {f"{k}{suffix}": v for k, v in _stats_to_metrics(stats[0]).items()}
    for row, b in zip(stats[1:], bins):
        name = bin_name(b)
        out.update({f"{k}{suffix}/{name}": v for k, v in _stats_to_metrics(row).items()})
    return out


def depth_metrics(pred: Any, gt: Any, *, bins: Sequence[DepthBin] | None = DEFAULT_BINS,
                  median_scaling: bool = False, max_depth: float | None = None
                  ) -> dict[str, float]:
    """Depth error metrics (see the module docstring) overall and per depth-range bin.

    Args:
        pred: predicted depth (..., H, W), metres; NaN / <= 0 = no prediction.
        gt: ground-truth depth, same shape, metres; NaN / <= 0 = invalid.
        bins: (lower, upper) metre ranges of ground truth; None or () for overall only.
        median_scaling: scale each image's prediction by median(gt) / median(pred).
        max_depth: metres; ground truth beyond it is ignored (None: no cap).

    Returns:
        {'abs_rel': ..., 'rmse': ..., 'abs_rel/0-5m': ..., ...}; NaN where no pixel counted.
    """
    p, g = _to_numpy(pred), _to_numpy(gt)
    if p.shape != g.shape or p.ndim < 2:
        raise ValueError(f"pred {p.shape} and gt {g.shape} must be equal shapes (..., H, W)")
    bins = _check_bins(bins or ())
    if median_scaling:
        p = _median_scale(p, g)
    return _flatten_metrics(_depth_stats(p, g, bins, max_depth), bins)


class DepthMetricAccumulator:
    """Sums depth statistics over many frames, overall, per camera and per depth bin.

    `update(pred, gt)` takes (V, H, W) or (B, V, H, W) with views in `camera_names` order;
    `compute()` returns the metrics of all pixels seen so far with keys '<metric>',
    '<metric>/<bin>', '<metric>/<camera>' and '<metric>/<camera>/<bin>'.
    """

    def __init__(self, camera_names: Sequence[str], *,
                 bins: Sequence[DepthBin] | None = DEFAULT_BINS,
                 median_scaling: bool = False, max_depth: float | None = None) -> None:
        self.camera_names = list(camera_names)
        if not self.camera_names or len(set(self.camera_names)) != len(self.camera_names):
            raise ValueError(f"camera_names must be unique and non-empty, got {camera_names}")
        self.bins = _check_bins(bins or ())
        self.median_scaling = median_scaling
        self.max_depth = max_depth
        self.reset()

    def reset(self) -> None:
        """Forget everything accumulated."""
        self.stats = np.zeros((len(self.camera_names), 1 + len(self.bins), len(_STATS)))
        self.frames = 0

    def update(self, pred: Any, gt: Any) -> None:
        """Add one frame (V, H, W) or a batch (B, V, H, W) of predictions and ground truth."""
        p, g = _to_numpy(pred), _to_numpy(gt)
        if p.ndim == 3:
            p, g = p[None], g[None]
        if p.shape != g.shape or p.ndim != 4 or p.shape[1] != len(self.camera_names):
            raise ValueError(f"pred {p.shape} and gt {g.shape} must both be (V, H, W) or "
                             f"(B, V, H, W) with V = {len(self.camera_names)} cameras")
        if self.median_scaling:
            p = _median_scale(p, g)
        for v in range(p.shape[1]):  # one vectorised pass per camera
            self.stats[v] += _depth_stats(p[:, v], g[:, v], self.bins, self.max_depth)
        self.frames += p.shape[0]

    def merge(self, other: DepthMetricAccumulator) -> None:
        """Add another accumulator's statistics (e.g. from another worker)."""
        if other.camera_names != self.camera_names or other.bins != self.bins:
            raise ValueError("cannot merge accumulators with different cameras or bins")
        self.stats += other.stats
        self.frames += other.frames

    def compute(self) -> dict[str, float]:
        """Metrics over everything accumulated (NaN where nothing was counted)."""
        out = _flatten_metrics(self.stats.sum(axis=0), self.bins)
        for v, name in enumerate(self.camera_names):
            out.update(_flatten_metrics(self.stats[v], self.bins, suffix=f"/{name}"))
        out["frames"] = float(self.frames)
        return out


def psnr(pred: Any, target: Any, *, mask: Any | None = None, max_val: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB, 10 log10(max_val^2 / MSE), over `mask` if given.

    pred and target have equal shapes; mask broadcasts against them. Identical images give
    +inf; an empty mask gives NaN.
    """
    p, t = _to_numpy(pred), _to_numpy(target)
    if p.shape != t.shape:
        raise ValueError(f"pred {p.shape} and target {t.shape} must have the same shape")
    sq = (p - t) ** 2
    if mask is not None:
        m = np.broadcast_to(_to_numpy(mask) > 0, sq.shape)
        if not m.any():
            return math.nan
        mse = float(sq[m].mean())
    else:
        mse = float(sq.mean())
    return math.inf if mse == 0 else 10.0 * math.log10(max_val ** 2 / mse)


def _gaussian_window(size: int, sigma: float) -> torch.Tensor:
    """Normalised 1-D Gaussian (size,) in float64."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def ssim_map(pred: Any, target: Any, *, max_val: float = 1.0, window: int = 11,
             sigma: float = 1.5) -> np.ndarray:
    """Per-pixel SSIM (Wang et al. 2004) of images (..., C, H, W), averaged over channels.

    Gaussian window (11 x 11, sigma 1.5, reflect padding), K1 = 0.01, K2 = 0.03.
    Returns (..., H, W).
    """
    p = torch.as_tensor(_to_numpy(pred))
    t = torch.as_tensor(_to_numpy(target))
    if p.shape != t.shape or p.ndim < 3:
        raise ValueError(f"pred {tuple(p.shape)} and target {tuple(t.shape)} must be equal "
                         "shapes (..., C, H, W)")
    lead, (c, h, w) = p.shape[:-3], p.shape[-3:]
    x = p.reshape(-1, c, h, w)  # (N, C, H, W)
    y = t.reshape(-1, c, h, w)  # (N, C, H, W)
    g = _gaussian_window(window, sigma)
    kernel = (g[:, None] * g[None, :]).expand(c, 1, window, window).contiguous()
    pad = window // 2
    mode = "reflect" if min(h, w) > pad else "replicate"

    def blur(z: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(z, (pad, pad, pad, pad), mode=mode), kernel, groups=c)

    c1, c2 = (0.01 * max_val) ** 2, (0.03 * max_val) ** 2
    mu_x, mu_y = blur(x), blur(y)
    s_xx = blur(x * x) - mu_x ** 2
    s_yy = blur(y * y) - mu_y ** 2
    s_xy = blur(x * y) - mu_x * mu_y
    s = ((2 * mu_x * mu_y + c1) * (2 * s_xy + c2)
         / ((mu_x ** 2 + mu_y ** 2 + c1) * (s_xx + s_yy + c2)))  # (N, C, H, W)
    return s.mean(dim=1).reshape(*lead, h, w).numpy()


def ssim(pred: Any, target: Any, *, mask: Any | None = None, max_val: float = 1.0) -> float:
    """Mean SSIM of images (..., C, H, W) over pixels where `mask` (..., H, W) is true."""
    s = ssim_map(pred, target, max_val=max_val)
    if mask is None:
        return float(s.mean())
    m = np.broadcast_to(_to_numpy(mask) > 0, s.shape)
    return float(s[m].mean()) if m.any() else math.nan


def _voxel_counts(pred_occupied: Any, gt_labels: Any, observed: Any | None,
                  threshold: float) -> np.ndarray:
    """(tp, fp, fn, tn) over known voxels."""
    p = _to_numpy(pred_occupied) >= threshold
    g = _to_numpy(gt_labels)
    if p.shape != g.shape:
        raise ValueError(f"predicted occupancy {p.shape} and labels {g.shape} must match")
    known = g != UNKNOWN_LABEL
    if observed is not None:
        known &= _to_numpy(observed) > 0
    occ = g == OCCUPIED_LABEL
    return np.array([(p & occ & known).sum(), (p & ~occ & known).sum(),
                     (~p & occ & known).sum(), (~p & ~occ & known).sum()], dtype=np.float64)


def _voxel_metrics_from_counts(counts: np.ndarray) -> dict[str, float]:
    """IoU, precision, recall of the occupied class from (tp, fp, fn, tn); NaN if undefined."""
    tp, fp, fn, tn = (float(v) for v in counts)

    def ratio(a: float, b: float) -> float:
        return a / b if b > 0 else math.nan

    return {"iou": ratio(tp, tp + fp + fn), "precision": ratio(tp, tp + fp),
            "recall": ratio(tp, tp + fn), "accuracy": ratio(tp + tn, tp + fp + fn + tn),
            "known": tp + fp + fn + tn}


def voxel_metrics(pred_occupied: Any, gt_labels: Any, *, observed: Any | None = None,
                  threshold: float = 0.5) -> dict[str, float]:
    """IoU, precision and recall of the occupied class over known voxels.

    Args:
        pred_occupied: (X, Y, Z) or batched; bool, or occupancy probabilities in [0, 1]
            (occupied where >= threshold). Pass probabilities, not logits.
        gt_labels: same shape, uint8 0 free / 1 occupied / 255 unknown (ignored).
        observed: optional bool mask; voxels outside it are ignored too.
        threshold: probability at which a voxel counts as occupied.

    Returns:
        {'iou', 'precision', 'recall', 'accuracy', 'known'} (NaN when a ratio is 0/0).
    """
    return _voxel_metrics_from_counts(_voxel_counts(pred_occupied, gt_labels, observed,
                                                    threshold))


class VoxelMetricAccumulator:
    """Sums voxel confusion counts over frames; `compute()` gives pooled IoU etc."""

    def __init__(self, threshold: float = 0.5) -> None:
        self.threshold = float(threshold)
        self.reset()

    def reset(self) -> None:
        """Forget everything accumulated."""
        self.counts = np.zeros(4)
        self.frames = 0

    def update(self, pred_occupied: Any, gt_labels: Any, observed: Any | None = None) -> None:
        """Add one volume (X, Y, Z) or a batch (B, X, Y, Z); see `voxel_metrics`."""
        labels = _to_numpy(gt_labels)
        self.counts += _voxel_counts(pred_occupied, labels, observed, self.threshold)
        self.frames += labels.shape[0] if labels.ndim == 4 else 1

    def compute(self) -> dict[str, float]:
        """Pooled metrics, prefixed 'voxel_' (e.g. 'voxel_iou'), plus 'voxel_frames'."""
        out = {f"voxel_{k}": v for k, v in _voxel_metrics_from_counts(self.counts).items()}
        out["voxel_frames"] = float(self.frames)
        return out


def angular_reprojection_error(pred_depth: Any, gt_depth: Any, K: Any, T_base_cam: Any,
                               T_base_obs: Any, *, K_obs: Any | None = None,
                               obs_size: tuple[int, int] | None = None) -> np.ndarray:
    """Angle (degrees) at which another camera sees a predicted point off its true position.

    For each pixel of camera A with valid predicted and ground-truth depth, back-project
    both depths along the pixel's ray to the predicted point P^ and the true point P in
    base_link. Seen from the optical centre C of an observing camera B, the error is the
    angle between the rays C -> P^ and C -> P:
        angle = atan2(|(P^ - C) x (P - C)|, (P^ - C) . (P - C)).
    It is what a depth error looks like when the point is reprojected into B: about
    (pixel error / focal length) radians. When B is A itself it is 0 (both points lie on
    A's ray), which is why B must be another camera.

    Args:
        pred_depth, gt_depth: (H, W) depth of camera A, metres; NaN / <= 0 invalid.
        K: (3, 3) intrinsics of camera A; T_base_cam: (4, 4) its extrinsics.
        T_base_obs: (4, 4) extrinsics of the observing camera B.
        K_obs, obs_size: optional intrinsics and (width, height) of B; when given, only
            pixels whose true point projects inside B's image count.

    Returns:
        (N,) angles in degrees for the counted pixels (row-major order): valid in both
        depths and with the true point in front of B (z > 0 in B's frame).
    """
    pd, gd = _to_numpy(pred_depth), _to_numpy(gt_depth)
    K, T_a, T_b = _to_numpy(K), _to_numpy(T_base_cam), _to_numpy(T_base_obs)
    if pd.shape != gd.shape or pd.ndim != 2:
        raise ValueError(f"pred_depth {pd.shape} and gt_depth {gd.shape} must be (H, W)")
    h, w = pd.shape
    v, u = np.mgrid[0:h, 0:w]
    rays = np.stack([u, v, np.ones_like(u)], axis=-1).reshape(-1, 3) @ np.linalg.inv(K).T
    with np.errstate(invalid="ignore"):
        ok = (np.isfinite(pd) & (pd > 0) & np.isfinite(gd) & (gd > 0)).reshape(-1)
    rays = rays[ok]  # (N, 3), z = 1 in camera A
    p_hat = (rays * pd.reshape(-1)[ok, None]) @ T_a[:3, :3].T + T_a[:3, 3]  # (N, 3) base
    p_true = (rays * gd.reshape(-1)[ok, None]) @ T_a[:3, :3].T + T_a[:3, 3]  # (N, 3) base
    c = T_b[:3, 3]
    a, b = p_hat - c, p_true - c
    R_ob = T_b[:3, :3].T  # base -> observer rotation
    b_obs = b @ R_ob.T  # (N, 3) true point in B's frame
    keep = b_obs[:, 2] > 0
    if K_obs is not None and obs_size is not None:
        uvw = b_obs @ _to_numpy(K_obs).T
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = uvw[:, :2] / uvw[:, 2:3]
        keep &= ((uv[:, 0] >= -0.5) & (uv[:, 0] <= obs_size[0] - 0.5)
                 & (uv[:, 1] >= -0.5) & (uv[:, 1] <= obs_size[1] - 0.5))
    a, b = a[keep], b[keep]
    cross = np.linalg.norm(np.cross(a, b), axis=1)
    dot = np.einsum("ij,ij->i", a, b)
    return np.degrees(np.arctan2(cross, dot))
