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

Scale stability (`ScaleStabilityAccumulator`, issue 10: metric scale that holds over time
and across cameras). Per frame f and camera v the scale ratio r_fv is the median of
pred / gt over the camera's valid pixels; the frame's pooled ratio R_f is that median over
all its cameras' valid pixels together.
    ratio_mean          mean over frames of R_f                  target |x - 1| <= 0.03
    ratio_std           standard deviation (ddof 0) over frames of R_f       <= 0.02
    cross_camera_std    std (ddof 0) of r_fv over the cameras of frame f, averaged over
                        frames with at least two cameras                      <= 0.02
    overlap_disagreement  for ordered camera pairs (a, b): a strided subsample of a's pixels
                        is back-projected with a's *predicted* depth into b and projected to
                        its nearest pixel u_b; where the ground truth says both cameras see
                        that surface point (a's true point lands in b within 2 % of b's true
                        depth there), |z_b(point) - pred_b(u_b)| / pred_b(u_b); the median
                        over all pairs, pixels and frames                     <= 0.03
Ground truth only selects and scores pixels, as in every metric here. The overlap median is
read from a histogram (bins of 1e-4 below 1, 0.2 % wide above), so accumulators merge and
memory does not grow with the number of frames.

Rank agreement (`spearman_correlation`): the Spearman correlation of predicted and true
depth over valid pixels, ties ranked by their average; it ignores any monotonic rescaling
of the prediction, and a constant prediction has no order (NaN).

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

from depth_any_view.geometry.camera import PinholeCamera

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


def average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 0..N-1 of a 1-D array, ties sharing their average rank (float64)."""
    x = np.asarray(x).ravel()
    order = np.argsort(x, kind="stable")
    xs = x[order]
    new_group = np.ones(xs.size, dtype=bool)
    new_group[1:] = xs[1:] != xs[:-1]
    group = np.cumsum(new_group) - 1  # (N,) tie group of each sorted value
    first = np.flatnonzero(new_group)  # first sorted position of each group
    counts = np.diff(np.append(first, xs.size))
    ranks = np.empty(xs.size, dtype=np.float64)
    ranks[order] = (first + (counts - 1) / 2.0)[group]
    return ranks


def spearman_correlation(pred: Any, gt: Any) -> float:
    """Spearman rank correlation of predicted and true depth over pixels where both are
    finite and > 0: the Pearson correlation of their average ranks, in [-1, 1]. NaN when
    fewer than two pixels count or either side has no order (e.g. a constant prediction).
    """
    p, g = _to_numpy(pred).ravel(), _to_numpy(gt).ravel()
    if p.shape != g.shape:
        raise ValueError(f"pred and gt must have the same number of pixels, got {p.size} "
                         f"and {g.size}")
    ok = _valid(p) & _valid(g)
    if ok.sum() < 2:
        return math.nan
    rp, rg = average_ranks(p[ok]), average_ranks(g[ok])
    rp -= rp.mean()
    rg -= rg.mean()
    denom = math.sqrt(float(rp @ rp) * float(rg @ rg))
    return float(rp @ rg) / denom if denom > 0 else math.nan


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


# ---------------------------------------------------------------------------- scale stability
SCALE_RATIO_TOLERANCE = 0.03  # target: |ratio_mean - 1| <= this
SCALE_RATIO_STD_MAX = 0.02  # target: ratio_std (over frames) <= this
SCALE_CROSS_CAMERA_STD_MAX = 0.02  # target: cross_camera_std <= this
SCALE_OVERLAP_DISAGREEMENT_MAX = 0.03  # target: overlap_disagreement <= this
SCALE_FIGURES = ("ratio_mean", "ratio_std", "cross_camera_std", "overlap_disagreement")
SCALE_TARGETS: dict[str, tuple[str, float]] = {  # figure -> (comparison, bound)
    "ratio_mean": ("|x - 1| <=", SCALE_RATIO_TOLERANCE),
    "ratio_std": ("<=", SCALE_RATIO_STD_MAX),
    "cross_camera_std": ("<=", SCALE_CROSS_CAMERA_STD_MAX),
    "overlap_disagreement": ("<=", SCALE_OVERLAP_DISAGREEMENT_MAX),
}
OVERLAP_STRIDE = 4  # pixels: every 4th row and column of camera a is projected into b
SAME_SURFACE_TOLERANCE = 0.02  # relative: a's true point within 2 % of b's true depth
# Histogram of the overlap's relative differences: 1e-4 wide below 1, ~0.2 % above, to 1e4.
_OVERLAP_EDGES = np.concatenate([np.linspace(0.0, 1.0, 10001),
                                 np.geomspace(1.0, 1e4, 4001)[1:]])


def scale_targets_met(figures: dict[str, float]) -> dict[str, bool | None]:
    """Whether each scale figure meets its target (None when the figure is NaN / absent)."""
    out: dict[str, bool | None] = {}
    for key, (_, bound) in SCALE_TARGETS.items():
        v = figures.get(key)
        if v is None or not math.isfinite(v):
            out[key] = None
        elif key == "ratio_mean":
            out[key] = abs(v - 1.0) <= bound
        else:
            out[key] = v <= bound
    return out


def _hist_median(counts: np.ndarray, edges: np.ndarray) -> float:
    """Median of histogrammed values (linear within the bin); counts has len(edges) bins,
    the last one for values >= edges[-1] (inf if the median falls there); NaN if empty."""
    n = counts.sum()
    if n == 0:
        return math.nan
    cum = np.cumsum(counts)
    i = int(np.searchsorted(cum, n / 2.0))  # first bin whose cumulative count >= n / 2
    if i >= len(edges) - 1:
        return math.inf
    before = cum[i] - counts[i]
    frac = (n / 2.0 - before) / counts[i]
    return float(edges[i] + frac * (edges[i + 1] - edges[i]))


def _valid(x: np.ndarray) -> np.ndarray:
    """Finite and > 0 (valid depth)."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(x) & (x > 0)


def _nearest_pixel(cam: PinholeCamera, p_cam: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                       np.ndarray]:
    """Nearest pixel (row (N,), col (N,)) of camera-frame points and whether it is in the
    image with the point in front of the camera (N,)."""
    uv, ok = cam.project(p_cam)
    col = np.clip(np.rint(np.nan_to_num(uv[:, 0])), 0, cam.width - 1).astype(np.int64)
    row = np.clip(np.rint(np.nan_to_num(uv[:, 1])), 0, cam.height - 1).astype(np.int64)
    return row, col, ok


class ScaleStabilityAccumulator:
    """Scale ratios per frame and camera, and cross-camera overlap disagreement.

    See the module docstring for the definitions. `update` takes one synchronized frame;
    `compute` gives the figures, their targets and the per-frame series for a plot.
    """

    def __init__(self, camera_names: Sequence[str], *, stride: int = OVERLAP_STRIDE,
                 same_surface_tolerance: float = SAME_SURFACE_TOLERANCE) -> None:
        """Args:
            camera_names: the V cameras, in the order of the arrays given to `update`.
            stride: pixels between the samples of camera a projected into b (>= 1).
            same_surface_tolerance: relative depth agreement that makes a's true point
                the surface b sees (ground truth, scoring only).
        """
        self.camera_names = list(camera_names)
        if not self.camera_names or len(set(self.camera_names)) != len(self.camera_names):
            raise ValueError(f"camera_names must be unique and non-empty, got {camera_names}")
        if int(stride) < 1:
            raise ValueError(f"stride must be >= 1 pixel, got {stride}")
        if not 0 < float(same_surface_tolerance) < 1:
            raise ValueError("same_surface_tolerance must be a fraction in (0, 1), got "
                             f"{same_surface_tolerance}")
        self.stride = int(stride)
        self.same_surface_tolerance = float(same_surface_tolerance)
        self.reset()

    def reset(self) -> None:
        """Forget everything accumulated."""
        self.stamps: list[float] = []  # per frame: seconds or frame index (x of the plot)
        self.pooled: list[float] = []  # per frame: R_f, NaN without valid pixels
        self.per_camera: list[np.ndarray] = []  # per frame: (V,) r_fv, NaN = no valid pixel
        self.overlap_counts = np.zeros(len(_OVERLAP_EDGES), dtype=np.int64)  # last: overflow

    # ------------------------------------------------------------------ input checks
    def _views(self, x: Any, what: str) -> list[np.ndarray | None]:
        """V float64 (H_v, W_v) arrays (None = camera absent) of an array or a sequence."""
        V = len(self.camera_names)
        if isinstance(x, (np.ndarray, torch.Tensor)):
            x = _to_numpy(x)
            if x.ndim != 3 or x.shape[0] != V:
                raise ValueError(f"{what} {x.shape} must be (V, H, W) with V = {V} cameras "
                                 f"{self.camera_names}")
            return list(x)
        views = list(x)
        if len(views) != V:
            raise ValueError(f"{what} has {len(views)} views; expected V = {V} cameras "
                             f"{self.camera_names}")
        out: list[np.ndarray | None] = []
        for name, v in zip(self.camera_names, views):
            if v is None:
                out.append(None)
                continue
            a = _to_numpy(v)
            if a.ndim != 2:
                raise ValueError(f"{what} of camera '{name}' is {a.shape}; expected (H, W)")
            out.append(a)
        return out

    def _cameras(self, K: Any, shapes: list[tuple[int, int] | None]) -> list[PinholeCamera | None]:
        """One camera per view at its depth's size (a PinholeCamera of another size is
        resized; a (3, 3) matrix becomes a distortion-free camera)."""
        if isinstance(K, (np.ndarray, torch.Tensor)):
            K = list(_to_numpy(K).reshape(-1, 3, 3))
        K = list(K)
        if len(K) != len(self.camera_names):
            raise ValueError(f"K has {len(K)} cameras; expected {len(self.camera_names)} "
                             f"({self.camera_names})")
        cams: list[PinholeCamera | None] = []
        for name, k, shape in zip(self.camera_names, K, shapes):
            if shape is None or k is None:
                cams.append(None)
                continue
            h, w = shape
            if isinstance(k, PinholeCamera):
                cams.append(k if (k.width, k.height) == (w, h) else k.resized(w, h))
                continue
            k = _to_numpy(k)
            if k.shape != (3, 3):
                raise ValueError(f"K of camera '{name}' is {k.shape}; expected (3, 3)")
            cams.append(PinholeCamera(width=w, height=h, K=k))
        return cams

    # ------------------------------------------------------------------ accumulate
    def update(self, pred: Any, gt: Any, K: Any, T_base_cam: Any, stamp: float) -> None:
        """Add one frame.

        Args:
            pred: predicted depth (V, H, W) metres, or a sequence of V (H_v, W_v) arrays
                (None = camera absent in this frame); NaN / <= 0 = no estimate.
            gt: ground-truth depth, same shapes, metres; NaN / <= 0 = unknown.
            K: (V, 3, 3) pinhole intrinsics of the depth images, or V PinholeCamera
                (distortion applied; resized to the depth's size when they differ).
            T_base_cam: (V, 4, 4) camera optical frame -> base_link.
            stamp: the frame's position on the plot's x axis (seconds or frame index).
        """
        preds, gts = self._views(pred, "pred"), self._views(gt, "gt")
        V = len(self.camera_names)
        shapes: list[tuple[int, int] | None] = []
        for name, p, g in zip(self.camera_names, preds, gts):
            if p is None or g is None:
                shapes.append(None)
            elif p.shape != g.shape:
                raise ValueError(f"camera '{name}': pred {p.shape} and gt {g.shape} must have "
                                 "the same shape (resample the prediction to the ground truth)")
            else:
                shapes.append(p.shape)
        T = _to_numpy(T_base_cam)
        if T.shape != (V, 4, 4):
            raise ValueError(f"T_base_cam {T.shape} must be (V, 4, 4) with V = {V}")
        cams = self._cameras(K, shapes)
        ratios = np.full(V, np.nan)
        pooled = []
        masks: list[np.ndarray | None] = []
        for v in range(V):  # one vectorised median per camera
            p, g = preds[v], gts[v]
            if p is None or g is None:
                masks.append(None)
                continue
            ok = _valid(p) & _valid(g)  # (H, W)
            masks.append(ok)
            if ok.any():
                r = p[ok] / g[ok]
                ratios[v] = np.median(r)
                pooled.append(r)
        self.stamps.append(float(stamp))
        self.per_camera.append(ratios)
        self.pooled.append(float(np.median(np.concatenate(pooled))) if pooled else math.nan)
        rel = self._overlap(preds, gts, masks, cams, T)
        if rel.size:
            bins = np.searchsorted(_OVERLAP_EDGES, rel, side="right") - 1  # (N,)
            self.overlap_counts += np.bincount(bins, minlength=len(_OVERLAP_EDGES))

    def _overlap(self, preds: list[np.ndarray | None], gts: list[np.ndarray | None],
                 masks: list[np.ndarray | None], cams: list[PinholeCamera | None],
                 T: np.ndarray) -> np.ndarray:
        """Relative differences (N,) of every ordered camera pair of one frame."""
        s = self.stride
        tol = self.same_surface_tolerance
        out = []
        for a, cam_a in enumerate(cams):
            if cam_a is None:
                continue
            sub = masks[a][s // 2::s, s // 2::s]  # (h, w) strided samples
            rows, cols = np.nonzero(sub)
            if rows.size == 0:
                continue
            rows, cols = rows * s + s // 2, cols * s + s // 2
            uv = np.stack([cols, rows], axis=1).astype(np.float64)  # (N, 2)
            p_hat = cam_a.backproject(uv, preds[a][rows, cols])  # (N, 3) camera a
            p_true = cam_a.backproject(uv, gts[a][rows, cols])  # (N, 3) camera a
            for b, cam_b in enumerate(cams):
                if b == a or cam_b is None:
                    continue
                T_ba = np.linalg.solve(T[b], T[a])  # camera a -> camera b
                R, t = T_ba[:3, :3], T_ba[:3, 3]
                true_b = p_true @ R.T + t  # (N, 3) in b
                hat_b = p_hat @ R.T + t  # (N, 3) in b
                gr, gc, g_in = _nearest_pixel(cam_b, true_b)
                g_b = gts[b][gr, gc]
                with np.errstate(invalid="ignore"):
                    same = g_in & _valid(g_b) & (np.abs(true_b[:, 2] - g_b) <= tol * g_b)
                if not same.any():
                    continue
                pr, pc, p_in = _nearest_pixel(cam_b, hat_b)
                d_b = preds[b][pr, pc]
                keep = same & p_in & _valid(d_b)
                out.append(np.abs(hat_b[keep, 2] - d_b[keep]) / d_b[keep])
        return np.concatenate(out) if out else np.zeros(0)

    def merge(self, other: ScaleStabilityAccumulator) -> None:
        """Add another accumulator's frames and overlap samples (e.g. from another worker)."""
        if other.camera_names != self.camera_names:
            raise ValueError("cannot merge scale accumulators with different cameras")
        self.stamps += other.stamps
        self.pooled += other.pooled
        self.per_camera += [r.copy() for r in other.per_camera]
        self.overlap_counts += other.overlap_counts

    # ------------------------------------------------------------------ results
    def compute(self) -> dict[str, Any]:
        """The figures over everything accumulated (NaN where nothing was counted).

        Returns:
            {'ratio_mean', 'ratio_std', 'cross_camera_std', 'overlap_disagreement',
            'overlap_pixels', 'frames' (frames with a valid pixel),
            'per_camera': {name: {'ratio_mean', 'ratio_std', 'frames'}},
            'series': {'t': [...], 'pooled': [...], 'per_camera': {name: [...]}} (frames
            ordered by t, NaN where a camera had no valid pixel),
            'targets': {figure: [comparison, bound]}, 'targets_met': {figure: bool | None}}.
        """
        order = np.argsort(np.asarray(self.stamps, dtype=np.float64), kind="stable")
        t = np.asarray(self.stamps, dtype=np.float64)[order]
        pooled = np.asarray(self.pooled, dtype=np.float64)[order]  # (F,)
        per_cam = (np.stack(self.per_camera)[order] if self.per_camera
                   else np.zeros((0, len(self.camera_names))))  # (F, V)
        fin = pooled[np.isfinite(pooled)]
        counts = np.isfinite(per_cam).sum(axis=1)  # (F,) cameras with a ratio
        multi = per_cam[counts >= 2]  # (F', V) frames with >= 2 cameras
        cross = math.nan
        if multi.size:
            cross = float(np.mean(np.nanstd(multi, axis=1)))
        out: dict[str, Any] = {
            "ratio_mean": float(fin.mean()) if fin.size else math.nan,
            "ratio_std": float(fin.std()) if fin.size else math.nan,
            "cross_camera_std": cross,
            "overlap_disagreement": _hist_median(self.overlap_counts, _OVERLAP_EDGES),
            "overlap_pixels": int(self.overlap_counts.sum()),
            "frames": int(fin.size),
        }
        cams = {}
        for v, name in enumerate(self.camera_names):
            r = per_cam[:, v]
            r = r[np.isfinite(r)]
            cams[name] = {"ratio_mean": float(r.mean()) if r.size else math.nan,
                          "ratio_std": float(r.std()) if r.size else math.nan,
                          "frames": int(r.size)}
        out["per_camera"] = cams
        out["series"] = {"t": t.tolist(), "pooled": pooled.tolist(),
                         "per_camera": {name: per_cam[:, v].tolist()
                                        for v, name in enumerate(self.camera_names)}}
        out["targets"] = {k: [c, b] for k, (c, b) in SCALE_TARGETS.items()}
        out["targets_met"] = scale_targets_met(out)
        return out
