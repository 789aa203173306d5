"""Evaluate weights on a synthetic split: depth and occupancy metrics, JSON and Markdown.

`depth-any-view evaluate --weights W --data SPLIT` runs every frame of the split through
the same InferenceEngine the node uses (uint8 images in, depth at input resolution out),
so the figures are those of the shipped product, not of the training loop. Depth metrics
are pooled over pixels, overall, per camera and per range bin (0-5 m, 5-15 m, 15 m+);
occupancy is scored on voxels the ground truth knows and the network observes.
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
    DepthMetricAccumulator,
    VoxelMetricAccumulator,
    bin_name,
)

HEADLINE = ("abs_rel", "rmse", "delta1")


def evaluate_split(data: Sequence[str | Path] | str | Path, *, weights: str | Path | None,
                   views: Sequence[str] | None = None, random_init: bool = False,
                   max_frames: int = 0, progress: bool = True,
                   engine_overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Metrics of a weights file on shard directories.

    Args:
        data: shard directories or folders of them (see data.dataset.find_shard_dirs).
        weights: safetensors file; None = the package's shipped weights.
        views: camera subset (default: all cameras of the split).
        random_init: evaluate an untrained network (a baseline).
        max_frames: stop after this many frames (0 = all).
        progress: show a progress bar.
        engine_overrides: extra EngineConfig fields (device, precision, ...).

    Returns:
        {'depth': {...}, 'occupancy': {...}, 'frames', 'cameras', 'weights', 'seconds'}.
    """
    from depth_any_view.inference.engine import EngineConfig, InferenceEngine, ViewInput

    dirs = find_shard_dirs(data)
    if not dirs:
        raise FileNotFoundError(f"no shard directories under {data}; make them with "
                                "`depth-any-view synth --format shards` or "
                                "scripts/make_datasets.sh")
    cfg = EngineConfig(weights=str(weights) if weights else None, preset=None,
                       random_init=random_init, warmup_iters=0,
                       **(engine_overrides or {}))
    engine = InferenceEngine(cfg)
    names_all = list(read_meta(dirs[0])["camera_names"])
    names = list(views) if views else names_all
    missing = [n for n in names if n not in names_all]
    if missing:
        raise ValueError(f"camera(s) {missing} not in the split (it has {names_all})")
    sel = [names_all.index(n) for n in names]
    depth_acc = DepthMetricAccumulator(names, bins=DEFAULT_BINS)
    voxel_acc = VoxelMetricAccumulator()
    total = sum(int(read_meta(d)["frames"]) for d in dirs)
    if max_frames:
        total = min(total, max_frames)
    bar = tqdm(total=total, desc="evaluate", disable=not progress, dynamic_ncols=True)
    t0 = time.perf_counter()
    count = 0
    for d in dirs:
        meta = read_meta(d)
        for i in range(int(meta["frames"])):
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
            pred = engine.infer(inputs)
            depth = np.stack([pred.view_depth(k)[0] for k in range(len(sel))])  # (V, H, W)
            depth_acc.update(depth, frame.depth[sel])
            voxel_acc.update(pred.occupancy, frame.occupancy, pred.observed)
            count += 1
            bar.update(1)
    bar.close()
    depth = depth_acc.compute()
    occ = voxel_acc.compute()
    return {"frames": count, "cameras": names, "weights": engine.weights_source,
            "shard_dirs": [str(d) for d in dirs], "seconds": time.perf_counter() - t0,
            "depth": depth, "occupancy": occ}


def _fmt(v: float) -> str:
    """A metric for a Markdown table."""
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.3f}"


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
    return "\n".join(lines)


def write_report(result: dict[str, Any], out_dir: str | Path,
                 title: str = "Evaluation") -> tuple[Path, Path]:
    """Write `metrics.json` and `metrics.md` into out_dir; returns both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    js = out / "metrics.json"
    clean = json.loads(json.dumps(result, default=float).replace("NaN", "null"))
    js.write_text(json.dumps(clean, indent=2, sort_keys=True))
    md = out / "metrics.md"
    md.write_text(report_markdown(result, title))
    return js, md
