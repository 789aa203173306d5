"""`depth-any-view adapt`: fine-tune the network on a robot's own unlabelled bags.

    depth-any-view adapt BAG [BAG ...] --out DIR [--params FILE] [--weights W] [--steps N]
                         [--resume DIR] [--config FILE] [--set key=value ...]

`adapt_bags` reads each bag's synchronized sets (bag_sets.py: the node's parameters file,
topic plan and rig; images, CameraInfo and odometry only), adapts the starting weights on
the sets that are not held out (trainer.py, losses.py), and writes into DIR:

    model.safetensors   the adapted weights (with their ModelConfig): the node's `weights`
                        parameter and `eval-bag --weights` take it
    model.yaml          where they came from (command, starting weights, bags, figures)
    checkpoint/         resumable state (`--resume DIR`)
    report.md / report.json / loss_curve.png   losses and, where a bag has depth ground
                        truth, AbsRel before and after on its held-out sets (evaluate.py)
    mlflow.db, mlartifacts/   the MLflow run (unless `mlflow: false`)
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from depth_any_view.adapt.bag_sets import read_bag_sets
from depth_any_view.adapt.config import AdaptConfig, load_adapt_config
from depth_any_view.adapt.evaluate import score_holdout
from depth_any_view.adapt.report import LOSS_CURVES, write_report
from depth_any_view.adapt.trainer import CHECKPOINT, START_WEIGHTS, Adapter, checkpoint_dir
from depth_any_view.bag.node_parameters import load_pipeline_config
from depth_any_view.inference.engine import InferenceEngine, resolve_device
from depth_any_view.model.weights import load_weights, save_weights

WEIGHTS_FILE = "model.safetensors"


def _mean_terms(history: list[dict[str, float]]) -> dict[str, float]:
    """Mean of each plotted loss term over some steps."""
    keys = [k for k in LOSS_CURVES if any(k in h for h in history)]
    return {k: float(np.mean([h[k] for h in history if k in h])) for k in keys}


def adapt_bags(bags: Sequence[Path | str], out_dir: Path | str, *,
               params_file: Path | str | None = None, weights: Path | str | None = None,
               steps: int | None = None, resume: Path | str | None = None,
               config: AdaptConfig | Path | str | None = None,
               overrides: list[str] | None = None, progress: bool = True,
               command: str | None = None) -> dict[str, Any]:
    """Adapt the network to bags and write DIR (see the module docstring).

    Args:
        bags: rosbag2 directories or .mcap / .db3 files of the robot.
        out_dir: output directory (created; an earlier run's checkpoint is overwritten).
        params_file: the node's parameters YAML (topics, cameras, rig_file, engine);
            None = the packaged config/depth_any_view.yaml.
        weights: starting weights (.safetensors); None = the parameters' `weights` (empty:
            the shipped weights of `preset`). Ignored with `resume` (the checkpoint keeps
            the weights it started from).
        steps: optimizer steps (replaces the config's `steps`).
        resume: an earlier run's output directory (or its checkpoint folder) to continue.
        config: AdaptConfig, or a YAML path; None = config/adapt.yaml.
        overrides: `key=value` changes of the adapt settings.
        progress: progress bars.
        command: the command line to record (default: sys.argv).

    Returns:
        The report dictionary (also in DIR/report.json) plus 'report_files'.

    Raises:
        BagError: an unusable bag (one line: what is missing).
        ConfigError / WeightsError: bad settings or weights.
        FileNotFoundError: `resume` has no checkpoint.
    """
    command = command or " ".join(["depth-any-view", *sys.argv[1:]])
    cfg = (config if isinstance(config, AdaptConfig)
           else load_adapt_config(config, overrides))
    if isinstance(config, AdaptConfig) and overrides:
        raise ValueError("give overrides with a config path, not with an AdaptConfig")
    if steps is not None:
        cfg = replace(cfg, steps=int(steps))
    if not bags:
        raise ValueError("adapt needs at least one bag")
    out_dir = Path(out_dir)
    ckpt = checkpoint_dir(resume) if resume is not None else None
    start_path = ckpt / START_WEIGHTS if ckpt is not None else weights
    device = resolve_device(cfg.device)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    pipe_cfg, topics, _, params_path = load_pipeline_config(
        params_file, weights=start_path,
        parameters={"device": str(device), "warmup_iters": 0, "compile": False,
                    "backend": "torch"})  # the torch network is the one that trains
    engine = InferenceEngine(pipe_cfg.engine)
    start_file = Path(engine.weights_source)
    state, model_cfg, _ = load_weights(start_file)
    bag_sets = [read_bag_sets(b, pipe_cfg, topics, cfg, engine, progress=progress)
                for b in bags]
    adapter = Adapter(cfg, bag_sets, model_cfg, state, out_dir, device=device, command=command)
    if ckpt is not None:
        adapter.load(ckpt)
    t0 = time.monotonic()
    first_step = adapter.step
    try:
        history = adapter.run(progress)
        seconds = time.monotonic() - t0
        weights_out = save_weights(adapter.model, model_cfg, out_dir / WEIGHTS_FILE,
                                   metadata={"adapted_from": str(start_file),
                                             "steps": adapter.step, "command": command,
                                             "bags": [str(b) for b in bags]})
        final_start = out_dir / CHECKPOINT / START_WEIGHTS
        holdout = score_holdout(bag_sets, topics, pipe_cfg.engine,
                                {"before": final_start, "after": weights_out})
        ran = max(1, adapter.step - first_step)
        result: dict[str, Any] = {
            "command": command, "params_file": str(params_path),
            "start_weights": str(start_file),
            "weights": str(weights_out), "steps": adapter.step, "device": str(device),
            "seconds": seconds, "seconds_per_step": seconds / ran,
            "config": cfg.to_dict(),
            "bags": [{"path": str(b.path), "adapt_sets": len(b.adapt_sets),
                      "holdout_sets": len(b.holdout_sets), "partial_sets": b.partial_sets,
                      "odometry": b.odometry, "rig_source": b.rig_source,
                      "overlapping_pairs": len(b.pairs), "depth_gt": bool(b.depth_gt_topics),
                      "notes": b.notes} for b in bag_sets],
            "loss_first": _mean_terms(history[:10]), "loss_last": _mean_terms(history[-10:]),
            "holdout": holdout,
        }
        if holdout is not None:
            adapter.log_metrics({f"holdout/{label}_{k}": holdout[label][k]
                                 for label in ("before", "after")
                                 for k in ("abs_rel", "rmse", "delta1", "scale_ratio")},
                                adapter.step)
        paths = write_report(result, history, out_dir)
        _write_model_yaml(out_dir / "model.yaml", result)
        if adapter._mlflow is not None:
            for path in paths.values():
                adapter._mlflow.log_artifact(str(path))
    finally:
        adapter.end_tracking()
    result["report_files"] = {k: str(v) for k, v in paths.items()}
    return result


def _write_model_yaml(path: Path, result: dict[str, Any]) -> None:
    """model.yaml beside the weights: what they are and how they were made."""
    held = result.get("holdout")
    doc: dict[str, Any] = {
        "produced_by": {"command": result["command"], "adapted_from": result["start_weights"],
                        "bags": [b["path"] for b in result["bags"]],
                        "steps": result["steps"], "device": result["device"],
                        "seconds_per_step": round(float(result["seconds_per_step"]), 3)},
        "use": ("node parameter `weights: <this folder>/model.safetensors`, or "
                "`depth-any-view eval-bag BAG --weights <this folder>/model.safetensors`"),
    }
    if held is not None:
        doc["held_out"] = {label: {k: (None if held[label][k] is None
                                       else round(float(held[label][k]), 4))
                                   for k in ("abs_rel", "rmse", "delta1", "scale_ratio")}
                           for label in ("before", "after")}
        doc["held_out"]["sets"] = held["sets"]
    text = ("# Weights adapted with `depth-any-view adapt` (depth_any_view/adapt/); the file "
            "model.safetensors\n# carries its own model configuration.\n")
    path.write_text(text + yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")


__all__ = ["WEIGHTS_FILE", "adapt_bags"]
