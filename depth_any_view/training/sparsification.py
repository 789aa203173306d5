"""Sparsification curve of a depth confidence: AbsRel of the pixels kept above a threshold.

Issue 10 ("Confidence"): when the least confident pixels are dropped first, the AbsRel of
what remains must fall. For each kept fraction f (1.0, 0.9, ..., 0.1) the curve gives the
AbsRel of the f most confident valid pixels and the confidence threshold that keeps them;
the oracle curve keeps the f pixels with the smallest true error (the best any confidence
could do). AUSE, the area between the two curves over f, summarises how far the
confidence is from that bound (0 = perfect ranking; the random ranking's curve is flat).

Pixels are counted in histograms (confidence in 2000 bins over [0, 1]; relative error in
log-spaced bins for the oracle), so accumulators merge and memory does not grow with the
number of frames. A cut falls inside a bin by the bin's mean error, which moves the curve
by less than one bin's share of pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

FRACTIONS: tuple[float, ...] = tuple(round(1.0 - 0.1 * i, 1) for i in range(10))  # 1.0..0.1
CONF_BINS = 2000
# Oracle bins of the relative error |p - g| / g: 0 and log-spaced 1e-5 .. 1e3.
ERR_EDGES = np.concatenate([[0.0], np.geomspace(1e-5, 1e3, 4001), [np.inf]])
_PNG_METADATA = {"Software": None}  # same data, same bytes


class SparsificationAccumulator:
    """Histograms of AbsRel by confidence (and by the error itself, for the oracle)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget every pixel."""
        self.conf_count = np.zeros(CONF_BINS, np.int64)
        self.conf_err = np.zeros(CONF_BINS, np.float64)
        self.err_count = np.zeros(ERR_EDGES.size - 1, np.int64)
        self.err_sum = np.zeros(ERR_EDGES.size - 1, np.float64)

    def update(self, pred: Any, gt: Any, confidence: Any) -> None:
        """Add the pixels where prediction, ground truth and confidence are all valid.

        Args:
            pred: (...) predicted depth, metres (NaN or <= 0 = no estimate).
            gt: same shape, true depth, metres (NaN or <= 0 = unknown).
            confidence: same shape, in [0, 1] (NaN = none).
        """
        p, g, c = (np.asarray(a, dtype=np.float64).ravel() for a in (pred, gt, confidence))
        if not p.shape == g.shape == c.shape:
            raise ValueError(f"pred, gt and confidence must have one shape, got "
                             f"{np.shape(pred)}, {np.shape(gt)}, {np.shape(confidence)}")
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(p) & np.isfinite(g) & np.isfinite(c) & (p > 0) & (g > 0)
        p, g, c = p[ok], g[ok], c[ok]
        err = np.abs(p - g) / g
        b = np.clip((c * CONF_BINS).astype(np.int64), 0, CONF_BINS - 1)
        self.conf_count += np.bincount(b, minlength=CONF_BINS)
        self.conf_err += np.bincount(b, weights=err, minlength=CONF_BINS)
        e = np.clip(np.searchsorted(ERR_EDGES, err, side="right") - 1, 0, self.err_count.size - 1)
        self.err_count += np.bincount(e, minlength=self.err_count.size)
        self.err_sum += np.bincount(e, weights=err, minlength=self.err_count.size)

    def merge(self, other: SparsificationAccumulator) -> None:
        """Add another accumulator's pixels."""
        self.conf_count += other.conf_count
        self.conf_err += other.conf_err
        self.err_count += other.err_count
        self.err_sum += other.err_sum

    @staticmethod
    def _curve(count: np.ndarray, total_err: np.ndarray,
               fractions: Sequence[float]) -> tuple[list[float], list[int]]:
        """AbsRel of the first f of the pixels, in bin order (bins ordered best first);
        returns the AbsRel per fraction and the index of the bin the cut falls in."""
        n = int(count.sum())
        cum_n = np.cumsum(count)
        cum_e = np.cumsum(total_err)
        out, cut_bins = [], []
        for f in fractions:
            want = f * n
            k = int(np.searchsorted(cum_n, want, side="left"))  # bin where the cut falls
            k = min(k, count.size - 1)
            before_n = cum_n[k - 1] if k else 0
            before_e = cum_e[k - 1] if k else 0.0
            part = want - before_n  # pixels taken from bin k, at its mean error
            mean_k = total_err[k] / count[k] if count[k] else 0.0
            out.append(float((before_e + part * mean_k) / want) if want > 0 else float("nan"))
            cut_bins.append(k)
        return out, cut_bins

    def compute(self, fractions: Sequence[float] = FRACTIONS) -> dict[str, Any]:
        """The curve: {'fractions', 'abs_rel', 'oracle_abs_rel', 'thresholds', 'ause',
        'pixels', 'monotonic'}; thresholds[i] is the confidence that keeps about
        fractions[i] of the pixels; monotonic says whether AbsRel never rises as f falls."""
        n = int(self.conf_count.sum())
        fr = [float(f) for f in fractions]
        if n == 0:
            nan = [float("nan")] * len(fr)
            return {"fractions": fr, "abs_rel": nan, "oracle_abs_rel": nan,
                    "thresholds": nan, "ause": float("nan"), "pixels": 0, "monotonic": None}
        order = slice(None, None, -1)  # most confident bins first
        abs_rel, cuts = self._curve(self.conf_count[order], self.conf_err[order], fr)
        oracle, _ = self._curve(self.err_count, self.err_sum, fr)
        thresholds = [float((CONF_BINS - 1 - k) / CONF_BINS) for k in cuts]
        gap = np.asarray(abs_rel) - np.asarray(oracle)
        x = np.asarray(fr)
        ause = float(np.sum(0.5 * (gap[1:] + gap[:-1]) * np.abs(np.diff(x))))
        monotonic = bool(np.all(np.diff(abs_rel) <= 1e-9))
        return {"fractions": fr, "abs_rel": abs_rel, "oracle_abs_rel": oracle,
                "thresholds": thresholds, "ause": ause, "pixels": n, "monotonic": monotonic}


def sparsification_markdown(curve: dict[str, Any] | None,
                            figure: str | None = None) -> list[str]:
    """Markdown lines: the curve as a table (kept fraction, threshold, AbsRel, oracle)."""
    lines = ["## Confidence: sparsification", ""]
    if not curve or not curve.get("pixels"):
        return lines + ["The network predicts no confidence (or there is no depth ground "
                        "truth): no curve.", ""]
    trend = "falls" if curve["monotonic"] else "does NOT fall monotonically"
    lines += [f"AbsRel of the most confident pixels as the least confident are dropped "
              f"({curve['pixels']} pixels): it {trend} as the threshold rises. AUSE (area "
              f"between the curve and the oracle's) {curve['ause']:.4f}.", "",
              "| kept | confidence >= | AbsRel | oracle AbsRel |", "|---|---|---|---|"]
    for f, t, a, o in zip(curve["fractions"], curve["thresholds"], curve["abs_rel"],
                          curve["oracle_abs_rel"]):
        lines.append(f"| {f:.0%} | {t:.3f} | {a:.4f} | {o:.4f} |")
    if figure:
        lines += ["", f"![sparsification]({figure})"]
    return lines + [""]


def plot_sparsification(curve: dict[str, Any], path: str | Path, title: str = "") -> Path:
    """PNG of AbsRel against the kept fraction, confidence and oracle (matplotlib Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    x = np.asarray(curve["fractions"]) * 100.0
    ax.plot(x, curve["abs_rel"], "o-", label="drop least confident first")
    ax.plot(x, curve["oracle_abs_rel"], "s--", color="gray", label="oracle (true error)")
    ax.axhline(curve["abs_rel"][0], color="tab:red", lw=0.8, ls=":",
               label="all pixels (random drop)")
    ax.invert_xaxis()
    ax.set_xlabel("pixels kept (%)")
    ax.set_ylabel("AbsRel")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or f"sparsification (AUSE {curve['ause']:.4f})", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100, metadata=_PNG_METADATA)
    plt.close(fig)
    return path
