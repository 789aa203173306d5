"""The adaptation report: report.json, report.md and the loss curves (loss_curve.png).

Written from the run's result dictionary and loss history only; figures use matplotlib's
Agg backend (no display).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from depth_any_view.bag.report import to_jsonable

LOSS_CURVES = ("total", "photo_spatial", "photo_temporal", "smooth", "anchor",
               "synthetic")  # plotted terms
SMOOTH_STEPS = 10  # running-mean window of the plotted curves, steps


def _fmt(value: Any, digits: int = 4) -> str:
    """A number for the markdown tables ('n/a' for None / NaN)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return f"{float(value):.{digits}f}"


def plot_losses(history: list[dict[str, float]], path: Path) -> Path:
    """Loss terms per step (thin) and their running mean (thick), one panel per term."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in LOSS_CURVES if any(n in h for h in history)]
    fig, axes = plt.subplots(len(names) or 1, 1, figsize=(7.0, 1.9 * max(1, len(names))),
                             squeeze=False, sharex=True)
    for ax, name in zip(axes[:, 0], names):
        steps = np.array([h["step"] for h in history if name in h])
        values = np.array([h[name] for h in history if name in h])
        ax.plot(steps, values, lw=0.6, alpha=0.5)
        if values.size >= SMOOTH_STEPS:
            kernel = np.ones(SMOOTH_STEPS) / SMOOTH_STEPS
            ax.plot(steps[SMOOTH_STEPS - 1:], np.convolve(values, kernel, mode="valid"), lw=1.6)
        ax.set_ylabel(name, fontsize=8)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("step")
    fig.suptitle("adaptation losses (running mean over "
                 f"{SMOOTH_STEPS} steps)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def markdown(result: dict[str, Any]) -> str:
    """The report as markdown."""
    lines = ["# Adaptation report", "",
             f"Command: `{result['command']}`", "",
             f"- starting weights: `{result['start_weights']}`",
             f"- adapted weights: `{result['weights']}`",
             f"- steps: {result['steps']} ({_fmt(result['seconds_per_step'], 3)} s per step, "
             f"device {result['device']})", ""]
    lines += ["## Bags", "", "| bag | sets adapted on | held out | partial sets left out | "
              "poses | extrinsics | depth ground truth |", "|---|---|---|---|---|---|---|"]
    for b in result["bags"]:
        lines.append(f"| `{b['path']}` | {b['adapt_sets']} | {b['holdout_sets']} | "
                     f"{b['partial_sets']} | {b['odometry']} | {b['rig_source']} | "
                     f"{'yes' if b['depth_gt'] else 'no'} |")
    notes = [n for b in result["bags"] for n in b["notes"]]
    if notes:
        lines += ["", "Notes:"] + [f"- {n}" for n in notes]
    lines += ["", "## Losses", "", "![loss curves](loss_curve.png)", ""]
    first, last = result.get("loss_first") or {}, result.get("loss_last") or {}
    if first:
        lines += ["| term | first 10 steps | last 10 steps |", "|---|---|---|"]
        lines += [f"| {k} | {_fmt(first.get(k))} | {_fmt(last.get(k))} |" for k in first]
    held = result.get("holdout")
    lines += ["", "## Held-out depth (never adapted on)", ""]
    if held is None:
        lines.append("No bag has depth ground truth (`<prefix>/<name>/depth_gt`) for its "
                     "held-out sets: nothing to score.")
    else:
        lines += [f"{held['sets']} held-out set(s) of {', '.join(held['bags'])}.", "",
                  "| weights | AbsRel | RMSE (m) | delta < 1.25 | scale ratio | pixels |",
                  "|---|---|---|---|---|---|"]
        for label in ("before", "after"):
            m = held.get(label)
            if m:
                lines.append(f"| {label} | {_fmt(m['abs_rel'])} | {_fmt(m['rmse'], 3)} | "
                             f"{_fmt(m['delta1'], 3)} | {_fmt(m['scale_ratio'], 3)} | "
                             f"{_fmt(int(m['count']))} |")
        change = held.get("abs_rel_change")
        if change is not None and math.isfinite(change):
            lines += ["", f"AbsRel change: {100 * change:+.1f} %."]
    lines.append("")
    return "\n".join(lines)


def write_report(result: dict[str, Any], history: list[dict[str, float]],
                 out_dir: Path) -> dict[str, Path]:
    """report.json, report.md and loss_curve.png in `out_dir`; name -> path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "report.json", "markdown": out_dir / "report.md",
             "loss_curve": out_dir / "loss_curve.png"}
    plot_losses(history, paths["loss_curve"])
    data = to_jsonable({**result, "history": history})
    paths["json"].write_text(json.dumps(data, indent=1), encoding="utf-8")
    paths["markdown"].write_text(markdown(result), encoding="utf-8")
    return paths


__all__ = ["LOSS_CURVES", "markdown", "plot_losses", "write_report"]
