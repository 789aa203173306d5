"""Evaluate weights on a synthetic split: depth and occupancy metrics, JSON and Markdown.

`depth-any-view evaluate --weights W --data SPLIT` runs every frame of the split through
the same InferenceEngine the node uses (uint8 images in, depth at input resolution out),
so the figures are those of the shipped product, not of the training loop. Depth metrics
are pooled over pixels, overall, per camera and per range bin (0-5 m, 5-15 m, 15 m+);
occupancy is scored on voxels the ground truth knows and the network observes. Scale
stability (training/scale_stability.py, ScaleStabilityAccumulator) reports how steady the metric
scale is over frames and between cameras, against the issue-10 targets; `write_report` also
draws the scale ratio of every camera over the evaluated frames (`scale_over_time.png`).
Weights with a confidence head also get the sparsification curve (training/
sparsification.py: AbsRel as the least confident pixels are dropped, `sparsification.png`).
Ground truth only scores; inference never sees it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from depth_any_view.data.dataset import find_shard_dirs
from depth_any_view.data.shards import load_frame, read_meta
from depth_any_view.geometry.camera import PinholeCamera
from depth_any_view.training.metrics import (
    DEFAULT_BINS,
    SCALE_FIGURES,
    SCALE_TARGETS,
    DepthMetricAccumulator,
    ScaleStabilityAccumulator,
    VoxelMetricAccumulator,
    bin_name,
)
from depth_any_view.training.sparsification import (
    SparsificationAccumulator,
    plot_sparsification,
    sparsification_markdown,
)

HEADLINE = ("abs_rel", "rmse", "delta1")
SCALE_FIGURE = "scale_over_time.png"  # ratio per camera over frames, beside the report
SPARSIFICATION_FIGURE = "sparsification.png"  # AbsRel vs kept fraction (confidence head)
_PNG_METADATA = {"Software": None}  # no library version in the file: same data, same bytes


def camera_union(metas: Sequence[dict[str, Any]]) -> list[str]:
    """Camera names of shard metas in order of first appearance (one rig: its order; the
    shifted world's random rigs: every name any of them uses)."""
    names: list[str] = []
    for meta in metas:
        names += [n for n in meta["camera_names"] if n not in names]
    return names


def evaluate_split(data: Sequence[str | Path] | str | Path, *, weights: str | Path | None,
                   views: Sequence[str] | None = None, random_init: bool = False,
                   max_frames: int = 0, progress: bool = True,
                   engine_overrides: dict[str, Any] | None = None,
                   odometry: bool = True) -> dict[str, Any]:
    """Metrics of a weights file on shard directories.

    Args:
        data: shard directories or folders of them (see data.dataset.find_shard_dirs).
        weights: safetensors file; None = the package's shipped weights.
        views: camera subset (default: all cameras of the split; for shards of several
            rigs, every name any of them has: each shard scores the cameras it holds).
        random_init: evaluate an untrained network (a baseline).
        max_frames: stop after this many frames (0 = all).
        progress: show a progress bar.
        engine_overrides: extra EngineConfig fields (device, precision, ...).
        odometry: give the engine each frame's true base pose, as `/odom` gives the node,
            so weights with a temporal cost volume match against the previous frame of the
            same sequence (False: every frame alone).

    Returns:
        {'depth': {...}, 'occupancy': {...}, 'scale': {...} (ScaleStabilityAccumulator;
        x of its series = frame number), 'sparsification': {...} (only for weights with a
        confidence head), 'frames', 'cameras', 'weights', 'seconds'}.
    """
    from depth_any_view.inference.engine import EngineConfig, InferenceEngine, ViewInput

    dirs = find_shard_dirs(data)
    if not dirs:
        raise FileNotFoundError(f"no shard directories under {data}; make them with "
                                "`depth-any-view synth --format shards` or "
                                "scripts/make_datasets.sh")
    cfg = EngineConfig(weights=str(weights) if weights else None,
                       preset="lite" if random_init and not weights else None,  # baseline
                       random_init=random_init, warmup_iters=0,
                       **(engine_overrides or {}))
    engine = InferenceEngine(cfg)
    metas = [read_meta(d) for d in dirs]
    names_all = camera_union(metas)
    names = list(views) if views else names_all
    missing = [n for n in names if n not in names_all]
    if missing:
        raise ValueError(f"camera(s) {missing} not in the split (it has {names_all})")
    depth_acc = DepthMetricAccumulator(names, bins=DEFAULT_BINS)
    voxel_acc = VoxelMetricAccumulator()
    scale_acc = ScaleStabilityAccumulator(names)
    spars_acc = SparsificationAccumulator()
    total = sum(int(m["frames"]) for m in metas)
    if max_frames:
        total = min(total, max_frames)
    bar = tqdm(total=total, desc="evaluate", disable=not progress, dynamic_ncols=True)
    t0 = time.perf_counter()
    count = 0
    for d, meta in zip(dirs, metas):
        engine.previous.reset()  # a new sequence: nothing before its first frame
        cams = list(meta["camera_names"])
        slot = [k for k, n in enumerate(names) if n in cams]  # accumulator rows it fills
        sel = [cams.index(names[k]) for k in slot]  # the shard's views for them
        for i in range(int(meta["frames"]) if sel else 0):
            if max_frames and count >= max_frames:
                break
            frame = load_frame(d, i, meta)
            if tuple(frame.occupancy.shape) != tuple(engine.grid.dims):
                raise ValueError(f"split '{d}' has a {frame.occupancy.shape} grid but the "
                                 f"weights predict {engine.grid.dims}; regenerate it with "
                                 f"--grid {engine.grid.dims[0]}")
            inputs = []
            for v in sel:
                H, W = frame.depth.shape[1:]
                cam = PinholeCamera(width=W, height=H, K=frame.K[v])
                inputs.append(ViewInput(frame.camera_names[v], frame.images[v], cam,
                                        frame.T_base_cam[v]))
            pose = frame.T_odom_base if odometry else None
            pred = engine.infer(inputs, T_odom_base=pose, stamp_ns=frame.stamp_ns)
            depth = np.stack([pred.view_depth(k)[0] for k in range(len(sel))])  # (V', H, W)
            if len(sel) == len(names):
                depth_acc.update(depth, frame.depth[sel])
                scale_acc.update(depth, frame.depth[sel], frame.K[sel], frame.T_base_cam[sel],
                                 stamp=count)
            else:  # a split of several rigs: the cameras this shard lacks count nothing
                full = np.full((len(names), *depth.shape[1:]), np.nan, np.float32)
                gt = full.copy()
                full[slot], gt[slot] = depth, frame.depth[sel]
                depth_acc.update(full, gt)
                T = np.tile(np.eye(4), (len(names), 1, 1))
                T[slot] = frame.T_base_cam[sel]
                K: list[np.ndarray | None] = [None] * len(names)
                for k, v in zip(slot, sel):
                    K[k] = frame.K[v]
                scale_acc.update([full[k] if k in slot else None for k in range(len(names))],
                                 [gt[k] if k in slot else None for k in range(len(names))],
                                 K, T, stamp=count)
            voxel_acc.update(pred.occupancy, frame.occupancy, pred.observed)
            if pred.confidence is not None:
                conf = np.stack([pred.view_confidence(k) for k in range(len(sel))])
                spars_acc.update(depth, frame.depth[sel], conf)
            count += 1
            bar.update(1)
    bar.close()
    depth = depth_acc.compute()
    occ = voxel_acc.compute()
    result = {"frames": count, "cameras": names, "weights": engine.weights_source,
              "shard_dirs": [str(d) for d in dirs], "seconds": time.perf_counter() - t0,
              "odometry": bool(odometry), "temporal": engine.temporal, "depth": depth,
              "occupancy": occ, "scale": scale_acc.compute()}
    if spars_acc.conf_count.any():
        result["sparsification"] = spars_acc.compute()
    return result


def _fmt(v: float) -> str:
    """A metric for a Markdown table."""
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.3f}"


def scale_markdown(scale: dict[str, Any] | None, figure: str | None = None) -> list[str]:
    """Markdown lines of the scale-stability figures against their targets (issue 10).

    Args:
        scale: ScaleStabilityAccumulator.compute() output (JSON NaN may be None), or None.
        figure: file name of the ratio-over-time plot to link, if written.
    """
    lines = ["## Scale stability", ""]
    if not scale:
        return lines + ["No depth ground truth: scale not measured.", ""]
    met = scale.get("targets_met") or {}
    labels = {"ratio_mean": "ratio mean (pred / GT)", "ratio_std": "ratio std over frames",
              "cross_camera_std": "cross-camera std", "overlap_disagreement":
              "overlap disagreement"}
    lines += [f"Per frame and camera the ratio is the median of predicted / true depth over "
              f"valid pixels; {scale['frames']} frames, {scale['overlap_pixels']} overlap "
              "samples.", "", "| figure | measured | target | met |", "|---|---|---|---|"]
    for key in SCALE_FIGURES:
        comp, bound = SCALE_TARGETS[key]
        ok = met.get(key)
        verdict = "n/a" if ok is None else ("yes" if ok else "no")
        comp = comp.replace("|", "\\|")  # a literal bar inside a Markdown table cell
        lines.append(f"| {labels[key]} | {_fmt(scale.get(key))} | {comp} {bound:g} | "
                     f"{verdict} |")
    per_cam = scale.get("per_camera") or {}
    if per_cam:
        lines += ["", "| camera | ratio mean | ratio std | frames |", "|---|---|---|---|"]
        for cam, m in per_cam.items():
            lines.append(f"| {cam} | {_fmt(m.get('ratio_mean'))} | {_fmt(m.get('ratio_std'))} "
                         f"| {m.get('frames', 0)} |")
    if figure:
        lines += ["", f"![scale over time]({figure})"]
    return lines + [""]


def plot_scale_over_time(scale: dict[str, Any], path: str | Path, *,
                         xlabel: str = "frame") -> Path:
    """PNG of the scale ratio per camera (and all cameras pooled) over time (matplotlib Agg).

    Args:
        scale: ScaleStabilityAccumulator.compute() output; its 'series' is drawn.
        path: the PNG file to write.
        xlabel: meaning of the series' t (frame number, seconds from the bag start, ...).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = scale["series"]
    t = np.asarray(series["t"], dtype=np.float64)
    fig, ax = plt.subplots(figsize=(9.0, 3.8))
    tol = SCALE_TARGETS["ratio_mean"][1]
    ax.axhspan(1.0 - tol, 1.0 + tol, color="tab:green", alpha=0.12,
               label=f"target 1 +/- {tol:g}")
    ax.axhline(1.0, color="tab:green", lw=0.8)
    marker = "o" if t.size <= 60 else None
    for cam, values in series["per_camera"].items():
        y = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        ax.plot(t, y, marker=marker, markersize=3, lw=1.0, label=cam)
    pooled = np.array([np.nan if v is None else v for v in series["pooled"]], np.float64)
    ax.plot(t, pooled, color="black", lw=1.6, ls="--", label="all cameras")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("median predicted / true depth")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the axes
    ax.set_title(f"scale over time: mean {_fmt(scale.get('ratio_mean'))}, std over frames "
                 f"{_fmt(scale.get('ratio_std'))}, cross-camera std "
                 f"{_fmt(scale.get('cross_camera_std'))}", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100, metadata=_PNG_METADATA)
    plt.close(fig)
    return path


def report_markdown(result: dict[str, Any], title: str = "Evaluation") -> str:
    """Markdown tables: overall and per camera, and per range bin."""
    d, o = result["depth"], result["occupancy"]
    bins = [bin_name(b) for b in DEFAULT_BINS]
    lines = [f"# {title}", "",
             f"Weights: `{result['weights']}`; {result['frames']} frames, "
             f"cameras: {', '.join(result['cameras'])}.", "",
             "| scope | AbsRel | RMSE (m) | delta<1.25 | pixels |", "|---|---|---|---|---|",
             f"| all | {_fmt(d['abs_rel'])} | {_fmt(d['rmse'])} | {_fmt(d['delta1'])} | "
             f"{int(d['count'])} |"]
    for cam in result["cameras"]:
        lines.append(f"| {cam} | {_fmt(d[f'abs_rel/{cam}'])} | {_fmt(d[f'rmse/{cam}'])} | "
                     f"{_fmt(d[f'delta1/{cam}'])} | {int(d[f'count/{cam}'])} |")
    for b in bins:
        lines.append(f"| depth {b} | {_fmt(d[f'abs_rel/{b}'])} | {_fmt(d[f'rmse/{b}'])} | "
                     f"{_fmt(d[f'delta1/{b}'])} | {int(d[f'count/{b}'])} |")
    lines += ["", "| occupancy | IoU | precision | recall | known voxels |",
              "|---|---|---|---|---|",
              f"| fused views | {_fmt(o['voxel_iou'])} | {_fmt(o['voxel_precision'])} | "
              f"{_fmt(o['voxel_recall'])} | {int(o['voxel_known'])} |", ""]
    if "scale" in result:
        lines += scale_markdown(result["scale"],
                                (result.get("figures") or {}).get("scale_over_time"))
    if "sparsification" in result:
        lines += sparsification_markdown(result["sparsification"],
                                         (result.get("figures") or {}).get("sparsification"))
    return "\n".join(lines)


def write_report(result: dict[str, Any], out_dir: str | Path,
                 title: str = "Evaluation") -> tuple[Path, Path]:
    """Write `metrics.json`, `metrics.md`, `scale_over_time.png` (when the result has a
    scale block with frames) and `sparsification.png` (with a confidence curve) into
    out_dir; returns the JSON and Markdown paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    scale = result.get("scale")
    if scale and scale.get("series", {}).get("t"):
        plot_scale_over_time(scale, out / SCALE_FIGURE, xlabel="evaluated frame")
        result["figures"] = {**(result.get("figures") or {}), "scale_over_time": SCALE_FIGURE}
    if (result.get("sparsification") or {}).get("pixels"):
        plot_sparsification(result["sparsification"], out / SPARSIFICATION_FIGURE)
        result["figures"] = {**(result.get("figures") or {}),
                             "sparsification": SPARSIFICATION_FIGURE}
    js = out / "metrics.json"
    clean = json.loads(json.dumps(result, default=float).replace("NaN", "null"))
    js.write_text(json.dumps(clean, indent=2, sort_keys=True))
    md = out / "metrics.md"
    md.write_text(report_markdown(result, title))
    return js, md
