"""`depth-any-view slam`: the node's output drives real odometry and mapping, scored.

`run_slam` feeds a rosbag2 through the node's own pipeline with `bag/feeder.py`
`BagFeeder` (the loop behind `eval-bag`, no copy) and gives every processed set to a
consumer that runs here:

- `kiss-icp`: KISS-ICP registers the fused base_link cloud of each set: the node's
  `/depth_any_view/points` for predicted depth; for the bag's ground-truth depth
  (`<prefix>/<name>/depth_gt`) the same cloud built the same way (`depth_to_points` on the
  same pixel grid: the node's `points_stride` on network-size pixels, i.e. the stride
  scaled to the ground truth's size, the same depth limits and voxel filter).
- `open3d-rgbd`: Open3D RGB-D odometry per camera (colour + depth + CameraInfo of each
  view), combined into one base_link step (slam/odometry.py).

By default both depths go through the same consumer side by side (`depth='both'`): the
ground-truth run is the consumer's own upper bound. The bag's odometry (`/odom`) is never
given to a consumer; it is the ground truth (the pipeline still fuses occupancy with it,
as the node does). Per run: ATE RMSE after SE(3) alignment, RPE over the configured
segment lengths (all segments, and steady state after the consumer's start-up), tracking
jumps, consumer milliseconds per set; then a TSDF mesh of that run's depth along its
estimated trajectory (aligned to the ground truth by the ATE's alignment) against the
mesh of ground-truth depth along the true trajectory: Chamfer distance and F-scores.

Writes into the report directory: report.json, report.md, trajectory_gt.tum,
trajectory_predicted.tum, trajectory_gt_depth.tum (estimates in their own odom frame, as
`evo_ape tum trajectory_gt.tum trajectory_predicted.tum --align` reads them),
trajectory_top.png, mesh_<run>.ply / .png and mesh_reference.ply / .png. Settings:
config/slam.yaml (slam/slam_config.py `load_slam_config`, the one place it is read).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from depth_any_view.bag.feeder import BagFeeder, FedSet, image_camera
from depth_any_view.bag.messages import BagError
from depth_any_view.bag.node_parameters import load_pipeline_config
from depth_any_view.bag.reader import BagReader
from depth_any_view.bag.report import to_jsonable
from depth_any_view.bag.topic_plan import choose_rig, plan_topics
from depth_any_view.geometry.camera import PinholeCamera
from depth_any_view.mapping.points import depth_to_points, voxel_downsample
from depth_any_view.pipeline import Pipeline, PipelineResult
from depth_any_view.slam.mesh import camera_view
from depth_any_view.slam.odometry import KissIcpOdometry, RgbdOdometry, RgbdView
from depth_any_view.slam.slam_config import SlamConfig, Targets, load_slam_config
from depth_any_view.slam.trajectory import (
    ate,
    detect_jumps,
    path_length,
    rpe,
    write_tum,
)

BACKENDS = ("kiss-icp", "open3d-rgbd")
DEPTHS = ("predicted", "gt", "both")
RUN_LABELS = {"predicted": "predicted depth", "gt": "ground-truth depth"}
TUM_FILES = {"truth": "trajectory_gt.tum", "predicted": "trajectory_predicted.tum",
             "gt": "trajectory_gt_depth.tum"}
PLOT_FILE = "trajectory_top.png"
MAX_LISTED_JUMPS = 20  # jump stamps listed in the report


# ---------------------------------------------------------------------------- inputs
class GroundTruthCloud:
    """The fused base_link cloud of ground-truth depth, sampled like the node's cloud.

    The node back-projects network-size depth every `points_stride` pixels; here the
    ground truth (at its own, usually the input, size) is back-projected with its own
    camera every `points_stride * gt_width / network_width` pixels, with the node's depth
    limits and voxel filter, so both clouds have the same density and coverage.
    """

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self._rays: dict[tuple, np.ndarray] = {}  # (camera, K, D, size) -> (H, W, 3) rays

    def _camera_rays(self, name: str, camera: PinholeCamera) -> np.ndarray:
        """Undistorted z = 1 rays of a camera, cached while its calibration is the same."""
        key = (name, camera.width, camera.height, camera.K.tobytes(), camera.D.tobytes())
        rays = self._rays.get(key)
        if rays is None:
            rays = self._rays[key] = camera.pixel_rays().astype(np.float32)
        return rays

    def cloud(self, fed: FedSet) -> np.ndarray | None:
        """(N, 3) float64 metres in base_link, or None when no camera has ground truth."""
        result, pc = fed.result, self.pipeline.cfg.points
        net_w = result.prediction.depth.shape[2] if result.prediction is not None else None
        parts = []
        for name, gt in fed.depth_gt.items():
            if name not in result.cameras:
                continue
            h, w = gt.shape
            camera = image_camera(result, fed.synced, name)
            if (camera.width, camera.height) != (w, h):
                camera = camera.resized(w, h)
            stride = max(1, int(round(pc.stride * w / net_w))) if net_w else pc.stride
            T = self.pipeline.rig[name].T_base_cam[None]
            max_depth = pc.max_depth if pc.max_depth > 0 else float("inf")
            p, _ = depth_to_points(gt[None], camera.K[None], T, stride=stride,
                                   min_depth=pc.min_depth, max_depth=max_depth,
                                   rays=self._camera_rays(name, camera)[None])
            parts.append(p)
        if not parts:
            return None
        points = np.concatenate(parts)
        if pc.voxel_size > 0:
            points, _ = voxel_downsample(points, np.zeros((len(points), 3), np.uint8),
                                         pc.voxel_size)
        return points.astype(np.float64)


def predicted_views(result: PipelineResult, rig: Any) -> list[RgbdView]:
    """The node's depth output of every camera as RGB-D views (colour at the depth's size,
    with the depth's confidence when the network has a confidence head)."""
    return [camera_view(n, o.rgb, o.depth, o.camera, rig[n].T_base_cam, o.confidence)
            for n, o in result.cameras.items()]


def ground_truth_views(fed: FedSet, rig: Any) -> list[RgbdView]:
    """The bag's ground-truth depth of every camera that has it, as RGB-D views."""
    out = []
    for name, gt in fed.depth_gt.items():
        if name in fed.result.cameras:
            camera = image_camera(fed.result, fed.synced, name)
            out.append(camera_view(name, fed.result.cameras[name].rgb, gt, camera,
                                   rig[name].T_base_cam))
    return out


# ---------------------------------------------------------------------------- one run
@dataclass
class ConsumerRun:
    """One consumer fed with one kind of depth, and what it gave."""

    kind: str  # 'predicted' | 'gt'
    backend: str
    odometry: Any  # KissIcpOdometry | RgbdOdometry
    tsdf: Any = None  # TsdfFusion of this depth along this run's estimate (its odom frame)
    stamps: list[int] = field(default_factory=list)  # set stamps, ns
    poses: list[np.ndarray] = field(default_factory=list)  # (4, 4) T_odom_base estimates
    truth: list[np.ndarray | None] = field(default_factory=list)  # bag odometry per stamp
    seconds: list[float] = field(default_factory=list)  # consumer time per set
    points: list[int] = field(default_factory=list)  # cloud size (kiss-icp) / views
    missing: int = 0  # sets without this depth (ground truth absent)
    tsdf_seconds: float = 0.0  # time spent integrating this run's TSDF

    def step(self, stamp_ns: int, inputs: Any, truth: np.ndarray | None) -> np.ndarray:
        """Give the consumer one set's cloud or views; returns its T_odom_base."""
        t0 = time.perf_counter()
        pose = self.odometry.register(inputs, stamp_ns / 1e9)
        self.seconds.append(time.perf_counter() - t0)
        self.stamps.append(int(stamp_ns))
        self.poses.append(pose)
        self.truth.append(truth)
        self.points.append(int(len(inputs)))
        return pose


def _stats_ms(seconds: list[float]) -> dict[str, float]:
    """Median, p95 and mean of seconds, in milliseconds (NaN when empty)."""
    if not seconds:
        return {"median": math.nan, "p95": math.nan, "mean": math.nan}
    v = np.asarray(seconds) * 1e3
    return {"median": float(np.median(v)), "p95": float(np.percentile(v, 95)),
            "mean": float(v.mean())}


def _evaluate_run(run: ConsumerRun, cfg: SlamConfig) -> dict[str, Any]:
    """Trajectory errors of a run against the bag's odometry at its stamps."""
    ev = cfg.evaluation
    out: dict[str, Any] = {
        "backend": run.backend, "depth": run.kind, "sets": len(run.stamps),
        "sets_without_depth": run.missing, "time_ms": _stats_ms(run.seconds),
        "input_size": {"median": float(np.median(run.points)) if run.points else math.nan,
                       "unit": "points" if run.backend == "kiss-icp" else "views"}}
    odo = run.odometry
    if isinstance(odo, KissIcpOdometry):
        out["clouds_too_small"] = odo.skipped
    else:
        out["failed_steps"] = odo.failures
        out["cameras_used_median"] = (float(np.median(odo.cameras_used)) if odo.cameras_used
                                      else math.nan)
    have = [i for i, t in enumerate(run.truth) if t is not None]
    out["scored"] = len(have)
    if len(have) < 2:
        out.update(ate=None, rpe={}, rpe_steady={}, jumps=None, distance_m=None)
        return out
    est = np.stack([run.poses[i] for i in have])
    gt = np.stack([run.truth[i] for i in have])
    out["ate"] = ate(est, gt)
    out["distance_m"] = float(path_length(gt)[-1])
    out["rpe"] = {f"{L:g}m": rpe(est, gt, L) for L in ev.segment_lengths}
    out["rpe_steady"] = {f"{L:g}m": rpe(est, gt, L, start_after=ev.steady_state_after_m)
                         for L in ev.segment_lengths}
    jumps = detect_jumps(est, gt, threshold=ev.jump_m)
    out["jumps"] = {"count": int(jumps.size), "threshold_m": ev.jump_m,
                    "stamps_ns": [run.stamps[have[k]] for k in jumps[:MAX_LISTED_JUMPS]]}
    return out


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
        "engine": engine, "pipeline_ms": _stats_ms(pipeline_s),
        "evaluation": {"segment_lengths_m": list(cfg.evaluation.segment_lengths),
                       "steady_state_after_m": cfg.evaluation.steady_state_after_m,
                       "jump_m": cfg.evaluation.jump_m},
        "runs": {r.kind: _evaluate_run(r, cfg) for r in runs},
        "notes": notes,
    }
    t_feed = time.perf_counter() - t_start
    files = _write_trajectories(runs, report_dir)
    files[PLOT_FILE.removesuffix(".png")] = str(_plot_trajectories(runs, result, report_dir))
    t0 = time.perf_counter()
    if meshes:
        files.update(_meshes(runs, reference, result, cfg, report_dir))
    result["targets"] = _targets(result, cfg.targets)
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


# ---------------------------------------------------------------------------- outputs
def _write_trajectories(runs: list[ConsumerRun], out: Path) -> dict[str, str]:
    """TUM files of the ground truth and of every run; {name: path}."""
    files = {}
    truth: dict[int, np.ndarray] = {}
    for run in runs:
        for s, t in zip(run.stamps, run.truth):
            if t is not None:
                truth[s] = t
        if run.stamps:
            path = write_tum(out / TUM_FILES[run.kind], np.array(run.stamps),
                             np.stack(run.poses), header=(
                                 f"depth-any-view slam: {run.backend} on "
                                 f"{RUN_LABELS[run.kind]}, T_odom_base of the estimate "
                                 "(odom = base_link at its first set)"))
            files[Path(TUM_FILES[run.kind]).stem] = str(path)
    if truth:
        stamps = sorted(truth)
        path = write_tum(out / TUM_FILES["truth"], np.array(stamps),
                         np.stack([truth[s] for s in stamps]),
                         header="ground truth: the bag's odometry (T_odom_base)")
        files[Path(TUM_FILES["truth"]).stem] = str(path)
    return files


def _aligned_positions(run: ConsumerRun, report: dict[str, Any]) -> np.ndarray:
    """(N, 3) estimated positions mapped into the ground truth's odom frame by the ATE's
    alignment (unaligned without ground truth)."""
    P = np.stack(run.poses)[:, :3, 3] if run.poses else np.zeros((0, 3))
    a = (report["runs"][run.kind].get("ate") or {}).get("alignment")
    if a is None:
        return P
    T = np.asarray(a)
    return P @ T[:3, :3].T + T[:3, 3]


def _plot_trajectories(runs: list[ConsumerRun], report: dict[str, Any], out: Path) -> Path:
    """Top view of the ground truth and every run (aligned); returns the PNG path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 8), dpi=100)
    truth = {s: t for run in runs for s, t in zip(run.stamps, run.truth) if t is not None}
    if truth:
        G = np.stack([truth[s] for s in sorted(truth)])[:, :3, 3]
        ax.plot(G[:, 0], G[:, 1], color="black", lw=2.0, label="ground truth (/odom)")
        ax.plot(G[0, 0], G[0, 1], "o", color="black", ms=6)
    styles = {"gt": dict(color="tab:blue", ls="--"), "predicted": dict(color="tab:orange")}
    for run in runs:
        P = _aligned_positions(run, report)
        if not len(P):
            continue
        r = report["runs"][run.kind]
        ate_txt = f", ATE {r['ate']['rmse']:.2f} m" if r.get("ate") else ""
        ax.plot(P[:, 0], P[:, 1], lw=1.5, label=f"{run.backend}, {RUN_LABELS[run.kind]}"
                f"{ate_txt}", **styles[run.kind])
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel("x (m, odom)")
    ax.set_ylabel("y (m, odom)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=9)
    ax.set_title("Trajectories from above (estimates aligned in SE(3), no scale)")
    fig.tight_layout()
    path = out / PLOT_FILE
    fig.savefig(path)
    plt.close(fig)
    return path


def _meshes(runs: list[ConsumerRun], reference: Any, report: dict[str, Any],
            cfg: SlamConfig, out: Path) -> dict[str, str]:
    """Extract, align, write, draw and compare the meshes; {name: path}."""
    from depth_any_view.slam.mesh import (
        mesh_distances,
        render_mesh_png,
        transform_mesh,
        write_mesh_ply,
    )

    files: dict[str, str] = {}
    ref_mesh = None
    truth = {s: t for run in runs for s, t in zip(run.stamps, run.truth) if t is not None}
    G = (np.stack([truth[s] for s in sorted(truth)])[:, :3, 3] if truth
         else np.zeros((0, 3)))
    if reference is not None:
        ref_mesh = reference.mesh()
        files["mesh_reference"] = str(write_mesh_ply(ref_mesh, out / "mesh_reference.ply"))
        files["mesh_reference_png"] = str(render_mesh_png(
            ref_mesh, out / "mesh_reference.png", trajectory=G,
            title="Reference: ground-truth depth along the true trajectory (TSDF)"))
        report["mesh_reference"] = {"triangles": len(ref_mesh.triangles),
                                    "views": reference.views}
    for run in runs:
        if run.tsdf is None:
            continue
        r = report["runs"][run.kind]
        mesh = run.tsdf.mesh()
        a = (r.get("ate") or {}).get("alignment")
        if a is not None:
            transform_mesh(mesh, np.asarray(a))
        name = f"mesh_{run.kind}"
        files[name] = str(write_mesh_ply(mesh, out / f"{name}.ply"))
        files[f"{name}_png"] = str(render_mesh_png(
            mesh, out / f"{name}.png", trajectory=_aligned_positions(run, report),
            title=f"{RUN_LABELS[run.kind].capitalize()} along the {run.backend} trajectory "
                  "(TSDF, aligned)"))
        entry: dict[str, Any] = {"triangles": len(mesh.triangles), "views": run.tsdf.views,
                                 "aligned": a is not None}
        if ref_mesh is not None and a is not None:
            me = cfg.mesh_eval
            entry.update(mesh_distances(mesh, ref_mesh, samples=me.samples,
                                        thresholds=me.thresholds, seed=me.seed))
        r["mesh"] = entry
    return files


def _targets(report: dict[str, Any], t: Targets) -> list[dict[str, Any]]:
    """The issue's targets as met / not met (None: not measurable) with their figures."""
    out: list[dict[str, Any]] = []
    pred, gt = report["runs"].get("predicted"), report["runs"].get("gt")
    if pred is None:
        return out
    for key, r in sorted((pred.get("rpe_steady") or {}).items(), key=lambda kv: float(
            kv[0].removesuffix("m"))):
        value = r.get("translation_pct")
        ok = None if value is None or not math.isfinite(value) else value <= \
            t.rpe_translation_max_pct
        out.append({"name": f"rpe_{key}_translation", "target": f"<= "
                    f"{t.rpe_translation_max_pct:g} %", "value": value, "met": ok,
                    "text": f"steady-state RPE over {key} with predicted depth: "
                            f"{_fmt(value, '.2f')} % (target <= {t.rpe_translation_max_pct:g}"
                            " %)"})
        ref = ((gt or {}).get("rpe_steady") or {}).get(key, {}).get("translation_pct")
        ratio = (value / ref if value is not None and ref and math.isfinite(value)
                 and math.isfinite(ref) and ref > 0 else None)
        out.append({"name": f"rpe_{key}_ratio", "target": f"<= {t.rpe_ratio_max:g} x",
                    "value": ratio, "met": None if ratio is None else ratio <= t.rpe_ratio_max,
                    "text": f"steady-state RPE over {key}, predicted / ground-truth depth: "
                            f"{_fmt(value, '.2f')} % / {_fmt(ref, '.2f')} % = "
                            f"{_fmt(ratio, '.2f')} x (target <= {t.rpe_ratio_max:g} x)"})
    jumps = (pred.get("jumps") or {}).get("count")
    out.append({"name": "tracking_failures", "target": f"<= {t.max_jumps}", "value": jumps,
                "met": None if jumps is None else jumps <= t.max_jumps,
                "text": f"tracking failures (steps > {report['evaluation']['jump_m']:g} m "
                        f"off the true step) with predicted depth: {_fmt(jumps, 'd')} "
                        f"(target <= {t.max_jumps})"})
    return out


def _fmt(value: Any, spec: str) -> str:
    """A number formatted, or 'n/a'."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return format(value, spec)


def report_markdown(r: dict[str, Any]) -> str:
    """The Markdown report of a run_slam result (JSON values)."""
    depths = ", ".join(RUN_LABELS[k] for k in r["depth"])
    lines = [f"# SLAM integration: {r['backend']} on {depths}",
             "", f"Bag `{r['bag']}`: {r['sets']['processed']} sets processed "
             f"({r['frames_in_bag']} frames); parameters `{r['params_file']}` with "
             f"{r['node_parameters']}; consumer settings `{r['slam_config']}`; "
             f"extrinsics from {r['rig_source']}.", "",
             f"Network: {r['engine'].get('preset') or ''} {r['engine'].get('weights') or ''} "
             f"on {r['engine'].get('device')}; pipeline {_fmt(r['pipeline_ms']['median'], '.0f')}"
             f" ms per set (median). The bag's odometry is the ground truth and is never given "
             f"to the consumer.", "", "## Targets", ""]
    for t in r.get("targets", []):
        mark = {True: "met", False: "NOT met", None: "not measured"}[t["met"]]
        lines.append(f"- **{mark}**: {t['text']}")
    ev = r["evaluation"]
    lines += ["", "## Trajectory", "",
              f"ATE after SE(3) alignment (Umeyama, no scale). RPE over segments of ground-"
              f"truth travel; steady state: segments starting after "
              f"{ev['steady_state_after_m']:g} m. A jump: a step more than {ev['jump_m']:g} m "
              "off the true step.", ""]
    head = ["run", "sets", "distance (m)", "ATE RMSE (m)"]
    lengths = [f"{L:g}m" for L in ev["segment_lengths_m"]]
    for L in lengths:
        head += [f"RPE {L} (%)", f"RPE {L} steady (%)", f"RPE {L} steady (deg/m)"]
    head += ["jumps", "consumer ms (median / p95)"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for kind, run in r["runs"].items():
        row = [RUN_LABELS[kind], str(run["sets"]), _fmt(run.get("distance_m"), ".1f"),
               _fmt((run.get("ate") or {}).get("rmse"), ".3f")]
        for L in lengths:
            a = (run.get("rpe") or {}).get(L) or {}
            s = (run.get("rpe_steady") or {}).get(L) or {}
            row += [_fmt(a.get("translation_pct"), ".2f"), _fmt(s.get("translation_pct"), ".2f"),
                    _fmt(s.get("rotation_deg_per_m"), ".3f")]
        row += [_fmt((run.get("jumps") or {}).get("count"), "d"),
                f"{_fmt(run['time_ms']['median'], '.1f')} / {_fmt(run['time_ms']['p95'], '.1f')}"]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", f"![trajectories]({PLOT_FILE})", ""]
    meshes = {k: v["mesh"] for k, v in r["runs"].items() if v.get("mesh")}
    if meshes:
        lines += ["## Mesh", "", "TSDF fusion of each run's depth along its estimated "
                  "trajectory (aligned), against the mesh of ground-truth depth along the true "
                  "trajectory; distances between points sampled on both surfaces.", ""]
        taus = sorted({k for m in meshes.values() for k in (m.get("fscore") or {})})
        head = ["run", "triangles", "accuracy (m)", "completeness (m)", "Chamfer (m)",
                *[f"F-score @ {float(k) * 100:g} cm" for k in taus]]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for kind, m in meshes.items():
            row = [RUN_LABELS[kind], str(m["triangles"]), _fmt(m.get("accuracy_m"), ".3f"),
                   _fmt(m.get("completeness_m"), ".3f"), _fmt(m.get("chamfer_m"), ".3f"),
                   *[_fmt(((m.get("fscore") or {}).get(k) or {}).get("fscore"), ".3f")
                     for k in taus]]
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
        for kind in meshes:
            lines.append(f"![mesh {kind}](mesh_{kind}.png)")
        if r.get("mesh_reference"):
            lines.append("![reference mesh](mesh_reference.png)")
        lines.append("")
    lines += ["## Files", ""]
    for name, path in sorted(r.get("files", {}).items()):
        lines.append(f"- {name}: `{Path(path).name}`")
    if r.get("evo"):
        lines += ["", "Check with evo (GPL-3.0, not used by the package):", ""]
        lines += [f"    {c}" for c in r["evo"]]
    if r.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {n}" for n in r["notes"]]
    return "\n".join(lines) + "\n"


__all__ = ["BACKENDS", "DEPTHS", "ConsumerRun", "GroundTruthCloud", "report_markdown",
           "run_slam"]
