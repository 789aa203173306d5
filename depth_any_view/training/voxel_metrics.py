"""Occupancy metrics: IoU, precision, recall and accuracy over the known voxels.

Labels follow the data's convention: 0 free, 1 occupied, 255 unknown (left out).
Inputs may be numpy arrays or torch tensors.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from depth_any_view.training.metric_arrays import to_float64

UNKNOWN_LABEL = 255
OCCUPIED_LABEL = 1


def _voxel_counts(pred_occupied: Any, gt_labels: Any, observed: Any | None,
                  threshold: float) -> np.ndarray:
    """(tp, fp, fn, tn) over known voxels."""
    p = to_float64(pred_occupied) >= threshold
    g = to_float64(gt_labels)
    if p.shape != g.shape:
        raise ValueError(f"predicted occupancy {p.shape} and labels {g.shape} must match")
    known = g != UNKNOWN_LABEL
    if observed is not None:
        known &= to_float64(observed) > 0
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
        labels = to_float64(gt_labels)
        self.counts += _voxel_counts(pred_occupied, labels, observed, self.threshold)
        self.frames += labels.shape[0] if labels.ndim == 4 else 1

    def compute(self) -> dict[str, float]:
        """Pooled metrics, prefixed 'voxel_' (e.g. 'voxel_iou'), plus 'voxel_frames'."""
        out = {f"voxel_{k}": v for k, v in _voxel_metrics_from_counts(self.counts).items()}
        out["voxel_frames"] = float(self.frames)
        return out
