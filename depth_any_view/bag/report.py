"""The bag evaluation's report: report.json, report.md and PNG figures.

`write_report` takes the result dictionary of `bag/evaluate.py` and the arrays behind the
figures (`FigureData`) and writes, into one directory:
- `report.json`: the result, NaN written as null, keys sorted (two identical runs give
  identical files apart from timing entries);
- `report.md`: headline, depth per camera and range bin, scale stability against the
  issue-10 targets, occupancy, coverage, latency;
- `error_vs_distance.png`: AbsRel and RMSE against ground-truth distance (needs depth GT);
- `per_camera.png`: AbsRel, RMSE and delta<1.25 per camera (without GT: the fraction of
  pixels with a depth estimate and the sets each camera took part in);
- `sample_panel.png`: one set, a row per camera: RGB | prediction | ground truth | error;
- `birds_eye.png`: occupancy seen from above in base_link (x forward up, y left):
  ground truth | single-frame network | fused map, black occupied, white free, grey unknown;
- `scale_over_time.png`: median predicted / true depth per camera and pooled, over seconds
  from the bag start (needs depth GT).

Figures are drawn with matplotlib's Agg backend (no display) from the given arrays only, so
the same data gives byte-identical PNGs.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from depth_any_view.data.preview import occupancy_topdown
from depth_any_view.geometry.grid import VoxelGrid
from depth_any_view.training.evaluate import plot_scale_over_time, scale_markdown
from depth_any_view.training.sparsification import plot_sparsification, sparsification_markdown

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
FIGURES = {"error_vs_distance": "error_vs_distance.png", "per_camera": "per_camera.png",
           "sample_panel": "sample_panel.png", "birds_eye": "birds_eye.png",
           "scale_over_time": "scale_over_time.png", "sparsification": "sparsification.png",
           "ghost_voxels": "ghost_voxels.png"}
MAX_REL_ERROR = 0.5  # colour scale end of the panel's relative error column
_PNG_METADATA = {"Software": None}  # no library version in the file: same data, same bytes


@dataclass
class SamplePanel:
    """The arrays of one synchronized set for the sample panel."""

    stamp_ns: int  # stamp of the set
    cameras: list[str]  # row order
    rgb: list[np.ndarray]  # per camera (H, W, 3) uint8 input image
    prediction: list[np.ndarray]  # per camera (H, W) float32 metres, NaN = none
    ground_truth: list[np.ndarray | None]  # per camera (H, W) float32 metres, or None
    max_depth: float  # metres at the far end of the colour scale


@dataclass
class BirdsEye:
    """Occupancy label volumes (FREE / OCCUPIED / UNKNOWN) of one set on one grid."""

    grid: VoxelGrid  # base_link grid of every volume
    z_band: tuple[float, float]  # metres above base_link projected to 2D
    single: np.ndarray  # (nx, ny, nz) uint8, the network's single-frame volume
    fused: np.ndarray  # (nx, ny, nz) uint8, the fused map sampled onto `grid`
    ground_truth: np.ndarray | None = None  # (nx, ny, nz) uint8, or None
    stamp_ns: int = 0  # stamp of the set


@dataclass
class FigureData:
    """Everything the figures are drawn from."""

    cameras: list[str]  # configured cameras, bar order
    depth_curve: dict[str, list[float]] | None = None  # 'lower', 'upper', 'abs_rel',
    # 'rmse', 'count' per distance bin (metres), or None without depth ground truth
    per_camera: dict[str, dict[str, float]] = field(default_factory=dict)  # camera ->
    # metrics ('abs_rel', 'rmse', 'delta1' with GT; 'valid_fraction', 'sets' always)
    sample: SamplePanel | None = None
    birds_eye: BirdsEye | None = None
    scale: dict[str, Any] | None = None  # ScaleStabilityAccumulator.compute(), or None
    # without depth ground truth; its series' t is seconds from the bag start
    sparsification: dict[str, Any] | None = None  # SparsificationAccumulator.compute()
    ghost_voxels: list[int] | None = None  # per scored set, fused-occupied but truly free


# ---------------------------------------------------------------------------- JSON
def to_jsonable(value: Any) -> Any:
    """Plain JSON values: numpy scalars/arrays to Python, NaN/inf to None, paths to str."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(result: dict[str, Any], path: Path) -> Path:
    """`result` as indented JSON with sorted keys and NaN as null."""
    path.write_text(json.dumps(to_jsonable(result), indent=2, sort_keys=True) + "\n",
                    encoding="utf-8")
    return path


# ---------------------------------------------------------------------------- Markdown
def _f(value: Any, digits: int = 3) -> str:
    """A number for a table; n/a for None / NaN."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    return f"{float(value):.{digits}f}"


def headline(result: dict[str, Any]) -> dict[str, float | None]:
    """The figures a person asks for first: AbsRel, delta1, fused IoU, rate, latency."""
    depth = (result.get("depth") or {}).get("overall") or {}
    occ = (result.get("occupancy") or {}).get("fused") or {}
    lat = (result.get("latency") or {}).get("total") or {}
    thr = result.get("throughput") or {}
    return {"abs_rel": depth.get("abs_rel"), "rmse": depth.get("rmse"),
            "delta1": depth.get("delta1"), "iou": occ.get("iou"),
            "sets_per_s": thr.get("sets_per_s"), "latency_median_s": lat.get("median"),
            "latency_p95_s": lat.get("p95")}


def format_headline(h: dict) -> str:
    """One line of the headline figures (n/a where the bag had no ground truth)."""
    def f(key: str, fmt: str, scale: float = 1.0) -> str:
        value = h.get(key)
        return "n/a" if value is None else format(float(value) * scale, fmt)

    return (f"AbsRel {f('abs_rel', '.3f')}  RMSE {f('rmse', '.2f')} m  "
            f"delta1 {f('delta1', '.3f')}  voxel IoU (fused) {f('iou', '.3f')}  "
            f"{f('sets_per_s', '.2f')} sets/s  latency median {f('latency_median_s', '.0f', 1e3)}"
            f" ms, p95 {f('latency_p95_s', '.0f', 1e3)} ms")


def report_markdown(result: dict[str, Any]) -> str:
    """The Markdown report of an evaluation result (see bag/evaluate.py for the keys)."""
    h = headline(result)
    sets = result["sets"]
    lines = [f"# Bag evaluation: `{Path(result['bag']).name}`", "",
             f"- bag: `{result['bag']}` ({result['bag_duration_s']:.2f} s, "
             f"{result['frames_in_bag']} frames of the busiest camera)",
             f"- weights: `{result['engine']['weights']}` on {result['engine']['device']} "
             f"({result['engine']['precision']})",
             f"- parameters: `{result['params_file']}`; rig from {result['rig_source']}",
             f"- cameras: {', '.join(result['cameras'])}",
             f"- ground truth: depth for {', '.join(result['ground_truth']['depth']) or 'none'}"
             f"; occupancy {'yes' if result['ground_truth']['occupancy'] else 'no'}", "",
             "## Headline", "",
             "| AbsRel | RMSE (m) | delta<1.25 | fused IoU | sets/s | latency p50 (s) | "
             "latency p95 (s) |", "|---|---|---|---|---|---|---|",
             f"| {_f(h['abs_rel'])} | {_f(h['rmse'])} | {_f(h['delta1'])} | {_f(h['iou'])} | "
             f"{_f(h['sets_per_s'], 2)} | {_f(h['latency_median_s'])} | "
             f"{_f(h['latency_p95_s'])} |", ""]
    depth = result.get("depth")
    if depth:
        lines += ["## Depth", "", "| scope | AbsRel | RMSE (m) | delta<1.25 | pixels | "
                  "coverage |", "|---|---|---|---|---|---|"]
        rows = [("all", depth["overall"])]
        rows += [(c, m) for c, m in depth["per_camera"].items()]
        rows += [(f"GT {b}", m) for b, m in depth["per_bin"].items()]
        for name, m in rows:
            lines.append(f"| {name} | {_f(m['abs_rel'])} | {_f(m['rmse'])} | "
                         f"{_f(m['delta1'])} | {_f(int(m['count']))} | {_f(m['coverage'])} |")
        lines.append("")
    else:
        lines += ["## Depth", "", "No `depth_gt` topics in the bag: no depth errors.", ""]
    figures = result.get("figures") or {}
    lines += scale_markdown(result.get("scale"), figures.get("scale_over_time"))
    if result.get("sparsification"):
        lines += sparsification_markdown(result["sparsification"],
                                         figures.get("sparsification"))
    occ = result.get("occupancy")
    if occ:
        lines += ["## Occupancy", "",
                  f"Voxels of the ground-truth grid {occ['grid']['dims']}, occupied at p >= "
                  f"{occ['occupied_threshold']}.", "",
                  "| map | IoU | precision | recall | scored voxels | share of GT-known |",
                  "|---|---|---|---|---|---|"]
        for key in ("single_frame", "fused"):
            m = occ[key]
            lines.append(f"| {key.replace('_', ' ')} | {_f(m['iou'])} | {_f(m['precision'])} "
                         f"| {_f(m['recall'])} | {_f(int(m['known']))} | "
                         f"{_f(m['coverage'])} |")
        ghosts = occ["fused"].get("ghost_voxels")
        if ghosts and ghosts["per_set"]:
            lines += ["", f"Ghost voxels (occupied in the fused map, free in the ground truth, "
                      f"more than {ghosts['margin_voxels']} voxel from a true surface): mean "
                      f"{_f(ghosts['mean'], 1)}, max {ghosts['max']} per set."]
            if figures.get("ghost_voxels"):
                lines += ["", f"![ghost voxels]({figures['ghost_voxels']})"]
        lines.append("")
    else:
        lines += ["## Occupancy", "", "No `/ground_truth/occupancy` in the bag: no voxel "
                  "scores.", ""]
    drops = ", ".join(f"{k} {v}" for k, v in sets["dropped"].items() if v) or "none"
    lines += ["## Coverage", "",
              f"Sets: {sets['emitted']} synchronized, {sets['processed']} processed "
              f"({sets['complete']} complete, {sets['partial']} partial), dropped: {drops}; "
              f"{sets['without_odometry']} without odometry.", "",
              "| camera | images | used | missing in sets | skipped | valid depth |",
              "|---|---|---|---|---|---|"]
    for cam, c in result["coverage"].items():
        lines.append(f"| {cam} | {c['images']} | {c['used']} | {c['missing_in_sets']} | "
                     f"{c['skipped']} | {_f(c['valid_depth_fraction'])} |")
    lines += ["", "## Latency (seconds per set)", "", "| stage | median | p95 | mean |",
              "|---|---|---|---|"]
    for stage, s in result["latency"].items():
        lines.append(f"| {stage} | {_f(s['median'], 4)} | {_f(s['p95'], 4)} | "
                     f"{_f(s['mean'], 4)} |")
    thr = result["throughput"]
    lines += ["", f"{thr['sets']} sets in {thr['wall_s']:.2f} s: {_f(thr['sets_per_s'], 2)} "
              f"sets/s, {_f(thr['realtime_factor'], 2)}x the bag's real time.", ""]
    linked = ("scale_over_time", "sparsification", "ghost_voxels")  # linked above
    others = {k: v for k, v in figures.items() if k not in linked}
    if others:
        lines += ["## Figures", ""]
        lines += [f"![{name}]({file})" for name, file in others.items()]
        lines.append("")
    if result.get("output_bag"):
        lines += [f"Outputs of the node for every set: `{result['output_bag']}` (MCAP).", ""]
    if result.get("notes"):
        lines += ["## Notes", ""] + [f"- {n}" for n in result["notes"]] + [""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- figures
def _pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    """Write a figure as PNG without version metadata and close it."""
    plt = _pyplot()
    fig.savefig(path, dpi=100, metadata=_PNG_METADATA)
    plt.close(fig)
    return path


def plot_error_vs_distance(curve: dict[str, list[float]], path: Path) -> Path:
    """AbsRel and RMSE per ground-truth distance bin (bins without pixels left out)."""
    plt = _pyplot()
    lo = np.asarray(curve["lower"], dtype=np.float64)
    hi = np.asarray(curve["upper"], dtype=np.float64)
    count = np.asarray(curve["count"], dtype=np.float64)
    keep = count > 0
    width = np.where(np.isfinite(hi), hi - lo, np.nanmedian(hi - lo) if keep.any() else 1.0)
    centre = lo + width / 2.0
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, key, label in ((axes[0], "abs_rel", "AbsRel"), (axes[1], "rmse", "RMSE (m)")):
        y = np.asarray(curve[key], dtype=np.float64)
        ax.plot(centre[keep], y[keep], marker="o", color="tab:blue")
        ax.set_xlabel("ground-truth depth (m)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    ax2 = axes[0].twinx()
    ax2.bar(centre[keep], count[keep], width=width[keep] * 0.9, color="tab:gray", alpha=0.25)
    ax2.set_ylabel("pixels", color="tab:gray")
    axes[0].set_zorder(ax2.get_zorder() + 1)
    axes[0].patch.set_visible(False)
    fig.suptitle("depth error against distance (all cameras)")
    fig.tight_layout()
    return _save(fig, path)


def plot_per_camera(cameras: list[str], per_camera: dict[str, dict[str, float]],
                    path: Path) -> Path:
    """Bars per camera: AbsRel, RMSE, delta<1.25 with GT; else valid fraction and sets."""
    plt = _pyplot()
    has_gt = any(math.isfinite(per_camera.get(c, {}).get("abs_rel", math.nan))
                 for c in cameras)
    keys = ([("abs_rel", "AbsRel"), ("rmse", "RMSE (m)"), ("delta1", "delta < 1.25")] if has_gt
            else [("valid_fraction", "pixels with depth"), ("sets", "sets used")])
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.6))
    x = np.arange(len(cameras))
    for ax, (key, label) in zip(np.atleast_1d(axes), keys):
        y = np.array([per_camera.get(c, {}).get(key, math.nan) for c in cameras], np.float64)
        ax.bar(x, np.nan_to_num(y, nan=0.0), color="tab:blue")
        ax.set_xticks(x, cameras, rotation=35, ha="right", fontsize=8)
        ax.set_title(label, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("per camera" + ("" if has_gt else " (no depth ground truth)"))
    fig.tight_layout()
    return _save(fig, path)


def plot_sample_panel(sample: SamplePanel, path: Path) -> Path:
    """A row per camera: RGB | predicted depth | ground truth | |error| / ground truth."""
    plt = _pyplot()
    has_gt = any(g is not None for g in sample.ground_truth)
    cols = 4 if has_gt else 2
    rows = len(sample.cameras)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.2 * rows), squeeze=False)
    depth_cmap = plt.get_cmap("turbo_r").with_extremes(bad="0.35")  # grey = no depth
    err_cmap = plt.get_cmap("magma").with_extremes(bad="0.35")
    titles = ["RGB", f"prediction (0-{sample.max_depth:.0f} m)", "ground truth",
              f"|error| / GT (0-{MAX_REL_ERROR:g})"]
    for r, cam in enumerate(sample.cameras):
        pred = sample.prediction[r]
        gt = sample.ground_truth[r]
        panels = [(sample.rgb[r], None, None), (np.ma.masked_invalid(pred), depth_cmap,
                                                (0.0, sample.max_depth))]
        if has_gt:
            if gt is None:
                blank = np.full(pred.shape, np.nan, np.float32)
                panels += [(np.ma.masked_invalid(blank), depth_cmap, (0.0, 1.0))] * 2
            else:
                with np.errstate(invalid="ignore", divide="ignore"):
                    rel = np.abs(pred - gt) / gt  # (H, W), NaN where either is missing
                panels += [(np.ma.masked_invalid(gt), depth_cmap, (0.0, sample.max_depth)),
                           (np.ma.masked_invalid(rel), err_cmap, (0.0, MAX_REL_ERROR))]
        for c, (img, cmap, rng) in enumerate(panels):
            ax = axes[r, c]
            if cmap is None:
                ax.imshow(img)
            else:
                ax.imshow(img, cmap=cmap, vmin=rng[0], vmax=rng[1])
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(titles[c], fontsize=8)
            if c == 0:
                ax.set_ylabel(cam, fontsize=8)
    fig.suptitle(f"set at {sample.stamp_ns / 1e9:.3f} s", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def plot_birds_eye(view: BirdsEye, path: Path) -> Path:
    """Occupancy from above in base_link: ground truth | single frame | fused map."""
    plt = _pyplot()
    g = view.grid
    panels = [("single frame (network)", view.single), ("fused map", view.fused)]
    if view.ground_truth is not None:
        panels.insert(0, ("ground truth", view.ground_truth))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.0 * len(panels), 4.3), squeeze=False)
    extent = (g.upper[1], g.lower[1], g.lower[0], g.upper[0])  # y left, x up
    for ax, (title, labels) in zip(axes[0], panels):
        ax.imshow(occupancy_topdown(labels, g, view.z_band), extent=extent,
                  interpolation="nearest")
        ax.plot([0.0], [0.0], marker="^", color="tab:red", markersize=8)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("y (m, left +)", fontsize=8)
        ax.set_ylabel("x (m, forward +)", fontsize=8)
    fig.suptitle(f"occupancy {view.z_band[0]:g}-{view.z_band[1]:g} m above base_link at "
                 f"{view.stamp_ns / 1e9:.3f} s (black occupied, white free, grey unknown)",
                 fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def write_figures(data: FigureData, out_dir: Path) -> dict[str, str]:
    """Every figure the data allows; returns name -> file name (relative to out_dir)."""
    written: dict[str, str] = {}
    if data.depth_curve is not None and any(c > 0 for c in data.depth_curve["count"]):
        plot_error_vs_distance(data.depth_curve, out_dir / FIGURES["error_vs_distance"])
        written["error_vs_distance"] = FIGURES["error_vs_distance"]
    if data.per_camera:
        plot_per_camera(data.cameras, data.per_camera, out_dir / FIGURES["per_camera"])
        written["per_camera"] = FIGURES["per_camera"]
    if data.sample is not None:
        plot_sample_panel(data.sample, out_dir / FIGURES["sample_panel"])
        written["sample_panel"] = FIGURES["sample_panel"]
    if data.birds_eye is not None:
        plot_birds_eye(data.birds_eye, out_dir / FIGURES["birds_eye"])
        written["birds_eye"] = FIGURES["birds_eye"]
    if data.scale is not None and data.scale["series"]["t"]:
        plot_scale_over_time(data.scale, out_dir / FIGURES["scale_over_time"],
                             xlabel="seconds from the bag start")
        written["scale_over_time"] = FIGURES["scale_over_time"]
    if data.sparsification is not None and data.sparsification.get("pixels"):
        plot_sparsification(data.sparsification, out_dir / FIGURES["sparsification"])
        written["sparsification"] = FIGURES["sparsification"]
    if data.ghost_voxels:
        plot_ghost_voxels(data.ghost_voxels, out_dir / FIGURES["ghost_voxels"])
        written["ghost_voxels"] = FIGURES["ghost_voxels"]
    return written


def plot_ghost_voxels(ghosts: list[int], path: Path) -> Path:
    """Ghost voxels (occupied in the fused map, free in the ground truth) per scored set."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.0, 3.2))
    ax.plot(np.arange(len(ghosts)), ghosts, "o-", markersize=3)
    ax.set_xlabel("scored set")
    ax.set_ylabel("ghost voxels")
    ax.set_title(f"fused map: occupied voxels the ground truth says are free (mean "
                 f"{np.mean(ghosts):.0f})", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def write_report(result: dict[str, Any], figures: FigureData, out_dir: Path) -> dict[str, Path]:
    """Write the figures, then report.json and report.md (listing the figures).

    Args:
        result: the evaluation result; its 'figures' entry is filled in here.
        figures: the arrays behind the figures.
        out_dir: the report directory (created).

    Returns:
        {'json': path, 'markdown': path, <figure name>: path, ...}.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result["figures"] = write_figures(figures, out_dir)
    paths = {name: out_dir / file for name, file in result["figures"].items()}
    paths["json"] = write_json(result, out_dir / REPORT_JSON)
    md = out_dir / REPORT_MD
    md.write_text(report_markdown(to_jsonable(result)), encoding="utf-8")
    paths["markdown"] = md
    return paths
