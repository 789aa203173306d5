"""Depth before and after adaptation on a bag's held-out sets, where it has ground truth.

Runs only after the adapted weights are written: adaptation itself never reads a
ground-truth topic. For each bag with `<prefix>/<name>/depth_gt` topics, the held-out sets'
images and the ground truth stamped like them are read (by camera and header stamp), and
each network runs through the node's own inference engine (same preprocessing, depth
policy and output resolution as the node and `eval-bag`), the sets in record order with
their poses (for a temporal cost volume). Scores: the depth metrics of
training/metrics.py (AbsRel, RMSE, delta < 1.25, per camera) and the metric scale ratio
(median predicted / true depth per set, `ScaleStabilityAccumulator`).
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from depth_any_view.adapt.bag_sets import AdaptSet, BagSets
from depth_any_view.bag.messages import image_from_msg
from depth_any_view.bag.node_parameters import NodeTopics
from depth_any_view.bag.reader import BagReader
from depth_any_view.data.encodings import to_rgb8
from depth_any_view.inference.engine import EngineConfig, InferenceEngine
from depth_any_view.inference.preprocess import ViewInput
from depth_any_view.training.metrics import DepthMetricAccumulator, ScaleStabilityAccumulator

HEADLINE = ("abs_rel", "rmse", "delta1", "count")  # metrics in the report's table


def _read_holdout(bag: BagSets, topics: NodeTopics
                  ) -> list[tuple[AdaptSet, list[ViewInput], dict[str, np.ndarray]]]:
    """(set, full-size views, camera -> ground truth (H, W) metres) of each held-out set."""
    held = bag.holdout_sets
    names = bag.camera_names
    want_img = {(n, s.image_stamps[n]): (k, v) for k, s in enumerate(held)
                for v, n in enumerate(names)}
    image_topics = {topics.camera(n, topics.image): n for n in names}
    gt_topics = {t: n for n, t in bag.depth_gt_topics.items()}
    rgb: dict[tuple[int, int], np.ndarray] = {}
    gts: dict[tuple[int, str], np.ndarray] = {}
    with BagReader(bag.path) as reader:
        for m in reader.messages(list(image_topics) + list(gt_topics)):
            cam = image_topics.get(m.topic) or gt_topics[m.topic]
            stamp = m.msg.header.stamp
            key = (cam, int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec))
            if key not in want_img:
                continue
            k, v = want_img[key]
            img = image_from_msg(m.msg)
            if m.topic in image_topics:
                rgb[(k, v)] = to_rgb8(img.array, img.encoding)
            else:
                gts[(k, cam)] = img.depth_metres()
    out = []
    for k, s in enumerate(held):
        if any((k, v) not in rgb for v in range(len(names))):
            continue
        views = [ViewInput(n, rgb[(k, v)], s.cameras[v], s.T_base_cam[v])
                 for v, n in enumerate(names)]
        out.append((s, views, {n: gts[(k, n)] for n in names if (k, n) in gts}))
    return out


def _score(engine: InferenceEngine, items: list[Any], names: list[str]) -> dict[str, Any]:
    """Depth metrics and scale ratio of one network over the held-out sets."""
    depth_acc = DepthMetricAccumulator(names)
    scale_acc = ScaleStabilityAccumulator(names)
    for s, views, gts in items:
        pred = engine.infer(views, T_odom_base=s.T_odom_base, stamp_ns=s.stamp_ns)
        preds: list[np.ndarray | None] = []
        truths: list[np.ndarray | None] = []
        for v, name in enumerate(names):
            gt = gts.get(name)
            if gt is None:
                preds.append(None)
                truths.append(None)
                continue
            depth, _ = pred.view_depth(v)
            if depth.shape != gt.shape:  # nearest resampling, as eval-bag does
                depth = cv2.resize(depth, (gt.shape[1], gt.shape[0]),
                                   interpolation=cv2.INTER_NEAREST)
            P = np.full((len(names), *gt.shape), np.nan, dtype=np.float32)
            G = np.full_like(P, np.nan)
            P[v], G[v] = depth, gt
            depth_acc.update(P, G)
            preds.append(depth)
            truths.append(gt)
        scale_acc.update(preds, truths, [s.cameras[v] if preds[v] is not None else None
                                         for v in range(len(names))],
                         s.T_base_cam, stamp=s.stamp_ns / 1e9)
    d = depth_acc.compute()
    scale = scale_acc.compute()
    return {**{k: d[k] for k in HEADLINE},
            "per_camera": {n: {k: d[f"{k}/{n}"] for k in HEADLINE} for n in names},
            "scale_ratio": scale["ratio_mean"], "scale_ratio_std": scale["ratio_std"],
            "sets": len(items)}


def score_holdout(bags: list[BagSets], topics: NodeTopics, engine_cfg: EngineConfig,
                  weights: dict[str, Path | str]) -> dict[str, Any] | None:
    """Scores of each weights file on the held-out sets of the bags with ground truth.

    Args:
        bags: the run's bags (their held-out sets and depth ground-truth topics).
        topics: the node's topic names.
        engine_cfg: the node's engine settings (device, output resolution, depth range).
        weights: label ('before', 'after') -> weights file.

    Returns:
        {label: metrics, 'sets': held-out sets scored, 'bags': [...]}, or None when no bag
        has both held-out sets and depth ground truth.
    """
    items = []
    used = []
    names = bags[0].camera_names
    for bag in bags:
        if bag.depth_gt_topics and bag.holdout_sets:
            got = _read_holdout(bag, topics)
            if got:
                items += got
                used.append(str(bag.path))
    if not items:
        return None
    out: dict[str, Any] = {"bags": used, "sets": len(items)}
    for label, path in weights.items():
        engine = InferenceEngine(replace(engine_cfg, weights=str(path), preset=None,
                                         random_init=False, warmup_iters=0,
                                         return_images=False, compile=False))
        out[label] = _score(engine, items, names)
    if "before" in out and "after" in out:
        b, a = out["before"]["abs_rel"], out["after"]["abs_rel"]
        out["abs_rel_change"] = (a - b) / b if b and math.isfinite(b) else math.nan
    return out


__all__ = ["HEADLINE", "score_holdout"]
