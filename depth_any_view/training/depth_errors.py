"""Depth metrics: errors against ground truth per pixel, by range bin and per camera.

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

Rank agreement (`spearman_correlation`): the Spearman correlation of predicted and true
depth over valid pixels, ties ranked by their average; it ignores any monotonic rescaling
of the prediction, and a constant prediction has no order (NaN).

Inputs may be numpy arrays or torch tensors; everything is computed in float64 numpy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from depth_any_view.training.metric_arrays import to_float64, valid_depth

DepthBin = tuple[float, float]
DEFAULT_BINS: tuple[DepthBin, ...] = ((0.0, 5.0), (5.0, 15.0), (15.0, math.inf))
DEPTH_METRICS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "silog", "delta1", "delta2",
                 "delta3", "coverage", "count")

# Sufficient statistics of a set of pixels, in this order (see _depth_stats).
_STATS = ("n_gt", "n", "abs_rel", "sq_rel", "sq_err", "sq_log", "log_d", "d1", "d2", "d3")


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
    p, g = to_float64(pred), to_float64(gt)
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
    p, g = to_float64(pred).ravel(), to_float64(gt).ravel()
    if p.shape != g.shape:
        raise ValueError(f"pred and gt must have the same number of pixels, got {p.size} "
                         f"and {g.size}")
    ok = valid_depth(p) & valid_depth(g)
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
        p, g = to_float64(pred), to_float64(gt)
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
