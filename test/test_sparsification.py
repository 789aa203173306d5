"""Tests of depth_any_view.training.sparsification (the confidence's sparsification curve)."""

from __future__ import annotations

import numpy as np
import pytest

from depth_any_view.training.sparsification import (
    SparsificationAccumulator,
    plot_sparsification,
    sparsification_markdown,
)


def _pixels(seed: int, n: int = 20000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ground truth 1-40 m, a prediction with a per-pixel relative error, and that error."""
    rng = np.random.default_rng(seed)
    gt = rng.uniform(1.0, 40.0, n)
    err = rng.exponential(0.1, n)  # relative error per pixel
    sign = rng.choice([-1.0, 1.0], n)
    pred = gt * (1.0 + sign * np.minimum(err, 0.9))
    return pred, gt, np.minimum(err, 0.9)


def test_informative_confidence_gives_a_falling_curve_near_the_oracle():
    pred, gt, err = _pixels(0)
    acc = SparsificationAccumulator()
    acc.update(pred, gt, 1.0 / (1.0 + err / 0.1))  # a confidence that ranks by the error
    curve = acc.compute()
    assert curve["pixels"] == gt.size and curve["monotonic"]
    assert curve["abs_rel"][0] == pytest.approx(np.mean(err), rel=1e-6)  # all pixels kept
    assert curve["abs_rel"][-1] < 0.3 * curve["abs_rel"][0]
    assert np.allclose(curve["abs_rel"], curve["oracle_abs_rel"], rtol=0.02)
    assert curve["ause"] < 0.002
    assert curve["thresholds"] == sorted(curve["thresholds"])  # fewer kept: higher threshold


def test_uninformative_confidence_is_flat_and_far_from_the_oracle():
    pred, gt, err = _pixels(1)
    acc = SparsificationAccumulator()
    acc.update(pred, gt, np.random.default_rng(2).uniform(0, 1, gt.size))
    curve = acc.compute()
    assert max(curve["abs_rel"]) - min(curve["abs_rel"]) < 0.2 * curve["abs_rel"][0]
    assert curve["ause"] > 0.03
    assert all(o <= a + 1e-9 for a, o in zip(curve["abs_rel"], curve["oracle_abs_rel"]))


def test_invalid_pixels_are_left_out_and_accumulators_merge():
    pred, gt, err = _pixels(3, 1000)
    conf = 1.0 - err
    pred[:10] = np.nan
    gt[10:20] = 0.0
    conf[20:30] = np.nan
    a, b, whole = SparsificationAccumulator(), SparsificationAccumulator(), \
        SparsificationAccumulator()
    a.update(pred[:500], gt[:500], conf[:500])
    b.update(pred[500:], gt[500:], conf[500:])
    whole.update(pred, gt, conf)
    a.merge(b)
    assert a.compute() == whole.compute()
    assert whole.compute()["pixels"] == 970
    with pytest.raises(ValueError, match="one shape"):
        whole.update(pred, gt, conf[:5])


def test_empty_curve_and_report_outputs(tmp_path):
    empty = SparsificationAccumulator().compute()
    assert empty["pixels"] == 0 and empty["monotonic"] is None
    assert "no curve" in "\n".join(sparsification_markdown(empty))
    pred, gt, err = _pixels(4, 2000)
    acc = SparsificationAccumulator()
    acc.update(pred, gt, 1.0 - err)
    curve = acc.compute()
    text = "\n".join(sparsification_markdown(curve, "s.png"))
    assert "| 100% |" in text and "| 10% |" in text and "![sparsification](s.png)" in text
    png = plot_sparsification(curve, tmp_path / "s.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
