"""`depth-any-view slam`: the node's output drives real odometry and mapping, scored.

`run_slam` feeds a rosbag2 through the node's own pipeline with `bag/feeder.py`
`BagFeeder` (the loop behind `eval-bag`, no copy) and gives every processed set to a
consumer that runs here (slam/consumers.py): `kiss-icp` (KISS-ICP registers the fused
base_link cloud of each set) or `open3d-rgbd` (Open3D RGB-D odometry per camera, combined
into one base_link step, slam/odometry.py).

By default both depths go through the same consumer side by side (`depth='both'`): the
ground-truth run is the consumer's own upper bound. The bag's odometry (`/odom`) is never
given to a consumer; it is the ground truth (the pipeline still fuses occupancy with it,
as the node does). Each run is scored, and its trajectory and TSDF mesh written and
compared, by slam/slam_report.py.

Writes into the report directory: report.json, report.md and the files of
slam/slam_report.py. Settings: config/slam.yaml (slam/slam_config.py `load_slam_config`,
the one place it is read).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from depth_any_view.bag.feeder import BagFeeder, FedSet
from depth_any_view.bag.messages import BagError
from depth_any_view.bag.node_parameters import load_pipeline_config
from depth_any_view.bag.reader import BagReader
from depth_any_view.bag.report import to_jsonable
from depth_any_view.bag.topic_plan import choose_rig, plan_topics
from depth_any_view.pipeline import Pipeline
from depth_any_view.slam.consumers import (
    ConsumerRun,
    GroundTruthCloud,
    ground_truth_views,
    predicted_views,
)
from depth_any_view.slam.odometry import KissIcpOdometry, RgbdOdometry
from depth_any_view.slam.slam_config import SlamConfig, load_slam_config
from depth_any_view.slam.slam_report import (
    PLOT_FILE,
    TUM_FILES,
    evaluate_run,
    evaluate_targets,
    plot_trajectories,
    report_markdown,
    stats_ms,
    write_meshes,
    write_trajectories,
)

BACKENDS = ("kiss-icp", "open3d-rgbd")
DEPTHS = ("predicted", "gt", "both")


# ---------------------------------------------------------------------------- entry point
def run_slam(bag: Path | str, report_dir: Path | str, *, backend: str = "kiss-icp",
             depth: str = "both", params_file: Path | str | None = None,
             weights: Path | str | None = None, random_init: bool = False,
             parameters: Mapping[str, Any] | None = None, slam_config: Path | str | None = None,
             meshes: bool = True, progress: bool = True) -> dict[str, Any]:
    """Run the node's pipeline over a bag into a SLAM consumer and write the report.

    Args:
        bag: rosbag2 directory, or one .mcap / .db3 file, with the node's input topics;
            `/odom` (the ground truth) and `<prefix>/<name>/depth_gt` make it scored.
        report_dir: where the report, trajectories, plot and meshes go (created).
        backend: 'kiss-icp' (fused cloud) or 'open3d-rgbd' (RGB-D per camera).
        depth: 'predicted', 'gt' (the bag's ground-truth depth) or 'both'.
        params_file: the node's parameters YAML; None = config/depth_any_view.yaml.
        weights: a .safetensors file; None = the parameters' / shipped weights.
        random_init: random weights (plumbing checks only).
        parameters: node parameters replacing the file's and config/slam.yaml's
            `node_parameters` (e.g. {'device': 'cpu'}).
        slam_config: the consumers' settings; None = config/slam.yaml.
        meshes: fuse, write and compare the TSDF meshes.
        progress: show a progress bar.

    Returns:
        The report as written to report.json (NaN as None), with 'files' (name -> path).

    Raises:
        BagError: the bag is missing or corrupt, lacks a camera topic, or lacks the
            ground-truth depth `depth='gt'` asks for.
        ConfigError / ValueError: a bad setting or argument (named).
        WeightsError: the weights are missing, corrupt or do not fit.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend '{backend}' is unknown; use one of {', '.join(BACKENDS)}")
    if depth not in DEPTHS:
        raise ValueError(f"depth '{depth}' is unknown; use one of {', '.join(DEPTHS)}")
    cfg = load_slam_config(slam_config)
    bag, report_dir = Path(bag), Path(report_dir)
    overrides = {**cfg.node_parameters, **(parameters or {})}
    pcfg, topics, _, params_path = load_pipeline_config(
        params_file, weights=weights, random_init=random_init, parameters=overrides)
    notes: list[str] = []
    t_start = time.perf_counter()
    with BagReader(bag) as reader:
        plan = plan_topics(reader, topics)
        notes += plan.notes
        kinds = ["predicted", "gt"] if depth == "both" else [depth]
        if "gt" in kinds and not plan.depth_gt_cameras:
            if depth == "gt":
                raise BagError(f"bag {bag} has no ground-truth depth "
                               f"({topics.camera(topics.camera_names[0], topics.depth_gt)}, "
                               "...); run with --depth predicted")
            kinds = ["predicted"]
            notes.append("the bag has no ground-truth depth: only predicted depth is run "
                         "and no reference mesh is made")
        if not plan.odometry:
            notes.append(f"the bag has no odometry on {topics.odom}: trajectories are not "
                         "scored and meshes are not compared")
        rig, rig_source = choose_rig(reader, topics, pcfg, notes)
        pipeline = Pipeline(pcfg, rig)
        report_dir.mkdir(parents=True, exist_ok=True)
        runs, reference = _make_runs(kinds, backend, cfg, meshes, plan)
        gt_cloud = GroundTruthCloud(pipeline)
        feeder = BagFeeder(reader, pipeline, topics, plan, notes=notes)
        pipeline_s: list[float] = []
        index = 0
        reference_s = 0.0
        for fed in feeder.sets(progress=progress, desc="slam"):
            pipeline_s.append(fed.result.timings.get("total", math.nan))
            integrate = index % cfg.tsdf.frame_step == 0
            _feed_runs(runs, fed, gt_cloud, rig, integrate)
            if reference is not None and integrate and fed.odometry is not None \
                    and fed.depth_gt:
                t0 = time.perf_counter()
                for view in ground_truth_views(fed, rig):
                    reference.integrate(view, fed.odometry)
                reference_s += time.perf_counter() - t0
            index += 1
        emitted, processed = feeder.emitted, feeder.processed
        frames_in_bag = feeder.frames_in_bag
        engine = {k: v for k, v in pipeline.engine.describe().items()
                  if k in ("device", "device_name", "precision", "preset", "weights",
                           "image_size", "output_resolution")}
    result: dict[str, Any] = {
        "bag": str(bag), "params_file": str(params_path), "slam_config": cfg.path,
        "backend": backend, "depth": kinds, "rig_source": rig_source,
        "node_parameters": overrides, "frames_in_bag": frames_in_bag,
        "sets": {"emitted": emitted, "processed": processed},
        "ground_truth": {"odometry": plan.odometry, "depth": list(plan.depth_gt_cameras)},
        "engine": engine, "pipeline_ms": stats_ms(pipeline_s),
        "evaluation": {"segment_lengths_m": list(cfg.evaluation.segment_lengths),
                       "steady_state_after_m": cfg.evaluation.steady_state_after_m,
                       "jump_m": cfg.evaluation.jump_m},
        "runs": {r.kind: evaluate_run(r, cfg) for r in runs},
        "notes": notes,
    }
    t_feed = time.perf_counter() - t_start
    files = write_trajectories(runs, report_dir)
    files[PLOT_FILE.removesuffix(".png")] = str(plot_trajectories(runs, result, report_dir))
    t0 = time.perf_counter()
    if meshes:
        files.update(write_meshes(runs, reference, result, cfg, report_dir))
    result["targets"] = evaluate_targets(result, cfg.targets)
    result["wall_s"] = {
        "total": time.perf_counter() - t_start, "feeding": t_feed,
        "pipeline": float(np.nansum(pipeline_s)),
        "consumers": {r.kind: float(sum(r.seconds)) for r in runs},
        "tsdf_integration": {**{r.kind: r.tsdf_seconds for r in runs},
                             "reference": reference_s},
        "meshes": time.perf_counter() - t0 if meshes else 0.0}
    truth_file = TUM_FILES["truth"]
    result["evo"] = [cmd for r in runs for cmd in (
        f"evo_ape tum {truth_file} {TUM_FILES[r.kind]} --align",
        *(f"evo_rpe tum {truth_file} {TUM_FILES[r.kind]} --align --delta {L:g} "
          "--delta_unit m" for L in cfg.evaluation.segment_lengths))]
    files["json"] = str(report_dir / "report.json")
    files["markdown"] = str(report_dir / "report.md")
    result["files"] = files
    out = to_jsonable(result)
    (report_dir / "report.json").write_text(json.dumps(out, indent=2, sort_keys=False) + "\n")
    (report_dir / "report.md").write_text(report_markdown(out))
    return out


def _make_runs(kinds: list[str], backend: str, cfg: SlamConfig, meshes: bool,
               plan: Any) -> tuple[list[ConsumerRun], Any]:
    """One consumer per depth kind (with its TSDF), and the reference TSDF (or None)."""
    from depth_any_view.slam.mesh import TsdfFusion

    runs = []
    for kind in kinds:
        odo = (KissIcpOdometry(cfg.kiss_icp) if backend == "kiss-icp"
               else RgbdOdometry(cfg.open3d_rgbd))
        runs.append(ConsumerRun(kind, backend, odo,
                                TsdfFusion(cfg.tsdf) if meshes else None))
    reference = (TsdfFusion(cfg.tsdf) if meshes and plan.odometry and plan.depth_gt_cameras
                 else None)
    return runs, reference


def _feed_runs(runs: list[ConsumerRun], fed: FedSet, gt_cloud: GroundTruthCloud, rig: Any,
               integrate: bool) -> None:
    """Give one processed set to every run (and its TSDF, every frame_step sets)."""
    for run in runs:
        views = (predicted_views(fed.result, rig) if run.kind == "predicted"
                 else ground_truth_views(fed, rig))
        if run.backend == "kiss-icp":
            inputs = (fed.result.points.astype(np.float64) if run.kind == "predicted"
                      else gt_cloud.cloud(fed))
        else:
            inputs = views
        if inputs is None or (run.kind == "gt" and not views):
            run.missing += 1
            continue
        pose = run.step(fed.result.stamp_ns, inputs, fed.odometry)
        if run.tsdf is not None and integrate:
            t0 = time.perf_counter()
            for view in views:
                run.tsdf.integrate(view, pose)
            run.tsdf_seconds += time.perf_counter() - t0



__all__ = ["BACKENDS", "DEPTHS", "run_slam"]
