"""Offline evaluation of a rosbag2 recording through the node's own pipeline (`eval-bag`).

`evaluate_bag` reads a bag (a rosbag2 directory, or one .mcap / .db3 file) with
bag/reader.py and feeds it, in record order and with the bag's record time as the clock,
into `depth_any_view.pipeline.Pipeline` with `BagFeeder` (bag/feeder.py, also behind
`depth-any-view slam`), so two runs on the same bag, or on its MCAP and sqlite3 copies,
give the same figures; here every processed set is scored.

Topic names and every pipeline setting come from the node's parameters file
(bag/node_parameters.py), so a user's remappings and settings apply. The camera
extrinsics come from the bag's `/tf_static` (the recording's own calibration) when it
reaches every camera's optical frame, else from the parameters' `rig_file`
(bag/topic_plan.py).

Ground truth, when the bag has it, is matched by header stamp: `<prefix>/<name>/depth_gt`
(32FC1 metres) per camera for depth (AbsRel, RMSE, delta<1.25, ... overall, per camera, per
range bin), and `/ground_truth/occupancy` (bag/messages.py layout) for occupancy: voxel IoU,
precision and recall of the single-frame network volume and of the fused map, both sampled
onto the ground-truth grid. Depth ground truth also scores scale stability (issue 10,
training/scale_stability.py ScaleStabilityAccumulator): the median predicted / true depth per set
and camera over time (x = seconds from the bag start), its spread between cameras, and the
disagreement of neighbouring cameras on surface points both see; the ground truth's pixels
use the image's CameraInfo resized to the ground truth's size, and a prediction of another
size is matched to the ground truth by nearest resampling, as for the depth errors. A
processed set waits up to GT_WAIT_NS (bag/feeder.py) of record time for its ground truth.
Without ground truth the run still reports coverage and latency.

Outputs (report_dir): report.json, report.md, PNG figures (bag/report.py) and `outputs/`, an
MCAP bag with the node's output topics for every processed set (depth image and CameraInfo
per camera, points, occupancy voxels, markers, grid) plus /tf and /tf_static so RViz or
Foxglove can show it (bag/output_bag.py). Bag problems (missing path, corrupt file, missing
camera topics, unexpected message types) raise BagError with one line naming what is
missing and what the bag has.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from depth_any_view.bag.feeder import BagFeeder, FedSet, image_camera
from depth_any_view.bag.node_parameters import NodeTopics, load_pipeline_config
from depth_any_view.bag.output_bag import OutputBagWriter
from depth_any_view.bag.reader import BagReader
from depth_any_view.bag.report import BirdsEye, FigureData, SamplePanel, to_jsonable, write_report
from depth_any_view.bag.topic_plan import TopicPlan, choose_rig, plan_topics
from depth_any_view.geometry.camera import PinholeCamera
from depth_any_view.geometry.grid import FREE, OCCUPIED, UNKNOWN, VoxelGrid
from depth_any_view.mapping.fusion import ghost_voxels
from depth_any_view.pipeline import STAGES, Pipeline, PipelineResult
from depth_any_view.training.metrics import (
    DEFAULT_BINS,
    DEPTH_METRICS,
    DepthMetricAccumulator,
    ScaleStabilityAccumulator,
    VoxelMetricAccumulator,
    bin_name,
)
from depth_any_view.training.sparsification import SparsificationAccumulator

DISTANCE_BIN_M = 2.0  # width of the error-vs-distance bins, metres
GHOST_MARGIN_VOXELS = 1  # a fused-occupied voxel this near a true surface is no ghost
OUTPUT_BAG = "outputs"  # output bag directory inside the report directory


# ---------------------------------------------------------------------------- scoring
@dataclass
class _Pending:
    """What scoring needs of a processed set, taken when it was processed."""

    stamp_ns: int  # set stamp
    depth: dict[str, tuple[int, np.ndarray]]  # camera -> (image stamp, (H, W) metres)
    single: np.ndarray | None  # (nx, ny, nz) float32 network probability on the eval grid
    observed: np.ndarray | None  # (nx, ny, nz) bool, voxels the network observed
    fused: np.ndarray | None  # (nx, ny, nz) float32 fused probability, NaN = unknown
    cameras: dict[str, PinholeCamera] = field(default_factory=dict)  # camera -> the
    # calibration of its input image (its CameraInfo), for the scale overlap
    confidence: dict[str, np.ndarray] = field(default_factory=dict)  # camera -> (H, W)
    # confidence registered with its depth (networks with a confidence head)


def labels_from_probability(prob: np.ndarray, known: np.ndarray, occupied: float,
                            free: float) -> np.ndarray:
    """(nx, ny, nz) uint8 FREE / OCCUPIED / UNKNOWN of probabilities (known voxels only)."""
    out = np.full(prob.shape, UNKNOWN, dtype=np.uint8)
    with np.errstate(invalid="ignore"):
        out[known & (prob >= occupied)] = OCCUPIED
        out[known & (prob <= free)] = FREE
    return out


def _resample_nearest(depth: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Depth (h, w) resized to `shape` (H, W) by nearest pixel (centre-aligned)."""
    return cv2.resize(depth, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)


def _stage_stats(values: list[float]) -> dict[str, float]:
    """Median, p95 and mean of seconds (NaN when empty)."""
    if not values:
        return {"median": math.nan, "p95": math.nan, "mean": math.nan}
    v = np.asarray(values, dtype=np.float64)
    return {"median": float(np.median(v)), "p95": float(np.percentile(v, 95)),
            "mean": float(v.mean())}


class _Evaluation:
    """One run: feeds the bag into the pipeline (BagFeeder), scores, writes outputs."""

    def __init__(self, reader: BagReader, pipeline: Pipeline, topics: NodeTopics,
                 plan: TopicPlan, out_bag: OutputBagWriter | None, notes: list[str]) -> None:
        self.reader, self.pipeline, self.topics, self.plan = reader, pipeline, topics, plan
        self.out_bag, self.notes = out_bag, notes
        self.names = list(topics.camera_names)
        fcfg = pipeline.fusion.config
        self.occupied, self.free = fcfg.occupied_threshold, fcfg.free_threshold
        self.z_band = (fcfg.grid_z_min, fcfg.grid_z_max)
        self.eval_grid = self._eval_grid()
        hi = float(pipeline.engine.depth_range[1])
        edges = np.arange(0.0, hi, DISTANCE_BIN_M)
        self.fine_bins = [(float(a), float(a + DISTANCE_BIN_M)) for a in edges]
        self.fine_bins[-1] = (self.fine_bins[-1][0], math.inf)
        self.depth_acc = DepthMetricAccumulator(self.names, bins=DEFAULT_BINS)
        self.fine_acc = DepthMetricAccumulator(["all"], bins=self.fine_bins)
        self.single_acc = VoxelMetricAccumulator(self.occupied)
        self.fused_acc = VoxelMetricAccumulator(self.occupied)
        self.scale_acc = (ScaleStabilityAccumulator(plan.depth_gt_cameras)
                          if plan.depth_gt_cameras else None)
        self.gt_known = 0
        self.spars_acc = SparsificationAccumulator()  # AbsRel vs confidence (issue 10)
        self.ghosts: list[int] = []  # per scored set: fused-occupied voxels free in truth
        self.feeder = BagFeeder(reader, pipeline, topics, plan, notes=notes,
                                occupancy_grid=self.eval_grid)
        self._grid_map: tuple[np.ndarray, np.ndarray] | None = None  # eval -> network grid
        self.timings: list[dict[str, float]] = []
        self.valid = dict.fromkeys(self.names, 0)  # pixels with depth, per camera
        self.pixels = dict.fromkeys(self.names, 0)  # depth pixels, per camera
        self.processed = 0
        self.scored_depth_sets = 0
        self.scored_occ_sets = 0
        self.sample_index = self.feeder.frames_in_bag // 2
        self.sample: SamplePanel | None = None
        self.birds_eye: BirdsEye | None = None
        self._sample_pending: _Pending | None = None

    def _eval_grid(self) -> VoxelGrid:
        """The ground truth's grid (bag metadata) when the bag has one, else the network's."""
        engine_grid = self.pipeline.engine.grid
        if not self.plan.occupancy_gt:
            return engine_grid
        grid = self.reader.grid()
        if grid is None:
            self.notes.append("the bag records no occupancy grid in its metadata: ground "
                              "truth is read on the network's grid")
            return engine_grid
        return grid

    @property
    def occ_enabled(self) -> bool:
        """Occupancy is scored (the bag has readable occupancy ground truth)."""
        return self.feeder.occupancy_enabled

    @property
    def emitted(self) -> int:
        """Sets the synchronizer emitted."""
        return self.feeder.emitted

    @property
    def frames_in_bag(self) -> int:
        """Most images on one camera topic."""
        return self.feeder.frames_in_bag

    @property
    def input_errors(self) -> dict[str, int]:
        """Input errors by kind (the first of each is a note)."""
        return self.feeder.input_errors

    # ------------------------------------------------------------------ running
    def run(self, progress: bool) -> float:
        """Feed the bag (BagFeeder) and score every processed set; returns wall seconds."""
        t0 = time.perf_counter()
        for fed in self.feeder.sets(progress=progress, desc="eval-bag",
                                    on_processed=self._processed):
            self._score(fed)
        return time.perf_counter() - t0

    # ------------------------------------------------------------------ processing
    def _processed(self, result: PipelineResult, synced: Any, now_ns: int) -> _Pending:
        """Right after a set is processed: outputs, timings, and what scoring needs of it."""
        self.timings.append(result.timings)
        for name, out in result.cameras.items():
            self.valid[name] += int(np.count_nonzero(np.isfinite(out.depth)))
            self.pixels[name] += int(out.depth.size)
        if self.out_bag is not None:
            self.out_bag.write(result, self.pipeline)
        # the sample: the set in the middle of the bag, or the last one if fewer came
        is_sample = self.processed <= self.sample_index
        item = self._pending(result, synced, is_sample)
        if is_sample:
            self._keep_sample(result, item)
        self.processed += 1
        return item

    def _network_index(self, grid: VoxelGrid) -> tuple[np.ndarray, np.ndarray]:
        """For every eval-grid voxel centre, its network-grid voxel (N, 3) and whether the
        centre lies inside the network grid (N,); computed once."""
        if self._grid_map is None:
            centres = self.eval_grid.centers(np.float64).reshape(-1, 3)  # (N, 3) base_link
            idx, inside = grid.points_to_index(centres)
            self._grid_map = (np.where(inside[:, None], idx, 0), inside)
        return self._grid_map

    def _pending(self, result: PipelineResult, synced: Any, is_sample: bool) -> _Pending:
        """What scoring needs of a result, taken now (the fused map keeps changing)."""
        depth = {n: (o.stamp_ns, o.depth) for n, o in result.cameras.items()
                 if n in self.plan.depth_gt_cameras}
        cameras = {n: image_camera(result, synced, n) for n in depth}
        confidence = {n: result.cameras[n].confidence for n in depth
                      if result.cameras[n].confidence is not None}
        single = observed = fused = None
        if self.occ_enabled or is_sample:
            pred = result.prediction
            idx, inside = self._network_index(pred.grid)
            dims = self.eval_grid.dims
            single = pred.occupancy[idx[:, 0], idx[:, 1], idx[:, 2]].reshape(dims)
            observed = (pred.observed[idx[:, 0], idx[:, 1], idx[:, 2]] & inside).reshape(dims)
            if result.fusion is not None and result.fusion.accepted:
                fused = self.pipeline.fusion.sample(self.eval_grid, result.pose)
            else:
                fused = np.full(dims, np.nan, dtype=np.float32)
        return _Pending(result.stamp_ns, depth, single, observed, fused, cameras, confidence)

    def _keep_sample(self, result: PipelineResult, item: _Pending) -> None:
        """Arrays of the sample set for the panel and the bird's-eye view."""
        names = list(result.cameras)
        self.sample = SamplePanel(
            stamp_ns=result.stamp_ns, cameras=names,
            rgb=[result.cameras[n].rgb.copy() for n in names],
            prediction=[result.cameras[n].depth for n in names],
            ground_truth=[None] * len(names), max_depth=0.0)
        self.birds_eye = BirdsEye(
            grid=self.eval_grid, z_band=self.z_band,
            single=labels_from_probability(item.single, item.observed, self.occupied,
                                           self.free),
            fused=labels_from_probability(item.fused, np.isfinite(item.fused), self.occupied,
                                          self.free), stamp_ns=result.stamp_ns)
        self._sample_pending = item

    # ------------------------------------------------------------------ scoring
    def _score(self, fed: FedSet) -> None:
        """Add one set's depth and occupancy errors to the accumulators."""
        item: _Pending = fed.extra
        preds, gts = {}, {}
        for name, (_, pred) in item.depth.items():
            gt = fed.depth_gt.get(name)
            if gt is None:
                continue
            if pred.shape != gt.shape:
                self.feeder.note_error("depth_size", f"depth at {pred.shape} is compared with "
                                 f"ground truth at {gt.shape} after nearest resampling")
                pred = _resample_nearest(pred, gt.shape)
            preds[name], gts[name] = pred, gt
            conf = item.confidence.get(name)
            if conf is not None:
                if conf.shape != gt.shape:
                    conf = _resample_nearest(conf, gt.shape)
                self.spars_acc.update(pred, gt, conf)
        if preds:
            self._score_depth(preds, gts)
            self._score_scale(item, preds, gts)
            self.scored_depth_sets += 1
        labels = fed.occupancy_gt
        if labels is not None:
            self.single_acc.update(item.single, labels, item.observed)
            known = np.isfinite(item.fused)
            self.fused_acc.update(np.nan_to_num(item.fused, nan=0.0), labels, known)
            if known.any():
                self.ghosts.append(ghost_voxels(item.fused, labels, self.occupied,
                                                margin=GHOST_MARGIN_VOXELS))
            self.gt_known += int(np.count_nonzero(labels != UNKNOWN))
            self.scored_occ_sets += 1
        if item is self._sample_pending:
            names = self.sample.cameras
            self.sample.ground_truth = [gts.get(n) for n in names]
            ref = [g for g in self.sample.ground_truth if g is not None] or \
                  self.sample.prediction
            finite = np.concatenate([r[np.isfinite(r)].ravel() for r in ref])
            self.sample.max_depth = float(np.percentile(finite, 99)) if finite.size else \
                float(self.pipeline.engine.depth_range[1])
            if labels is not None:
                self.birds_eye.ground_truth = labels

    def _score_depth(self, preds: dict[str, np.ndarray], gts: dict[str, np.ndarray]) -> None:
        """Pool one set's depth errors per camera, per range bin and per distance bin."""
        V = len(self.names)
        shapes = {g.shape for g in gts.values()}
        if len(shapes) == 1:
            (H, W), = shapes
            P = np.full((1, V, H, W), np.nan, dtype=np.float32)
            G = np.full((1, V, H, W), np.nan, dtype=np.float32)
            for name in preds:
                v = self.names.index(name)
                P[0, v], G[0, v] = preds[name], gts[name]
            self.depth_acc.update(P, G)
            sel = [self.names.index(n) for n in preds]
            self.fine_acc.update(P[0, sel][:, None], G[0, sel][:, None])  # (B, 1, H, W)
            return
        for name in preds:  # cameras of different sizes: one camera per update
            H, W = gts[name].shape
            P = np.full((1, V, H, W), np.nan, dtype=np.float32)
            G = np.full((1, V, H, W), np.nan, dtype=np.float32)
            v = self.names.index(name)
            P[0, v], G[0, v] = preds[name], gts[name]
            self.depth_acc.update(P, G)
            self.fine_acc.update(preds[name][None, None], gts[name][None, None])

    def _score_scale(self, item: _Pending, preds: dict[str, np.ndarray],
                     gts: dict[str, np.ndarray]) -> None:
        """One set's scale ratios and overlap disagreement (depth at the GT's size)."""
        names = self.scale_acc.camera_names
        rig = self.pipeline.rig
        self.scale_acc.update(
            [preds.get(n) for n in names], [gts.get(n) for n in names],
            [item.cameras.get(n) if n in preds else None for n in names],
            np.stack([rig[n].T_base_cam for n in names]),
            stamp=(item.stamp_ns - self.reader.start_ns) / 1e9)

    # ------------------------------------------------------------------ results
    def scale_result(self) -> dict[str, Any] | None:
        """Scale stability over the scored sets (None without depth ground truth)."""
        return None if self.scale_acc is None else self.scale_acc.compute()

    def depth_result(self) -> dict[str, Any] | None:
        """Depth metrics overall, per camera, per bin and per camera and bin (or None)."""
        if not self.plan.depth_gt_cameras:
            return None
        d = self.depth_acc.compute()
        bins = [bin_name(b) for b in DEFAULT_BINS]
        return {
            "overall": {k: d[k] for k in DEPTH_METRICS},
            "per_camera": {c: {k: d[f"{k}/{c}"] for k in DEPTH_METRICS}
                           for c in self.plan.depth_gt_cameras},
            "per_bin": {b: {k: d[f"{k}/{b}"] for k in DEPTH_METRICS} for b in bins},
            "per_camera_bin": {c: {b: {k: d[f"{k}/{c}/{b}"] for k in DEPTH_METRICS}
                                   for b in bins} for c in self.plan.depth_gt_cameras},
            "sets_scored": self.scored_depth_sets,
        }

    def depth_curve(self) -> dict[str, list[float]] | None:
        """AbsRel, RMSE and pixel count per DISTANCE_BIN_M bin, for the figure."""
        if not self.plan.depth_gt_cameras:
            return None
        d = self.fine_acc.compute()
        names = [bin_name(b) for b in self.fine_bins]
        return {"lower": [b[0] for b in self.fine_bins], "upper": [b[1] for b in self.fine_bins],
                "abs_rel": [d[f"abs_rel/{n}"] for n in names],
                "rmse": [d[f"rmse/{n}"] for n in names],
                "count": [d[f"count/{n}"] for n in names]}

    def occupancy_result(self) -> dict[str, Any] | None:
        """Voxel IoU / precision / recall of the single-frame and fused maps (or None)."""
        if not self.plan.occupancy_gt or not self.occ_enabled:
            return None
        out: dict[str, Any] = {"grid": self.eval_grid.to_dict(),
                               "occupied_threshold": self.occupied,
                               "sets_scored": self.scored_occ_sets}
        for key, acc in (("single_frame", self.single_acc), ("fused", self.fused_acc)):
            m = {k.removeprefix("voxel_"): v for k, v in acc.compute().items()}
            m.pop("frames", None)
            m["coverage"] = m["known"] / self.gt_known if self.gt_known else math.nan
            out[key] = m
        g = self.ghosts
        out["fused"]["ghost_voxels"] = {
            "per_set": list(g), "mean": float(np.mean(g)) if g else math.nan,
            "max": max(g, default=0), "margin_voxels": GHOST_MARGIN_VOXELS}
        return out

    def sparsification_result(self) -> dict[str, Any] | None:
        """The confidence's sparsification curve (None without confidence or ground truth)."""
        return self.spars_acc.compute() if self.spars_acc.conf_count.any() else None


# ---------------------------------------------------------------------------- entry point
def evaluate_bag(bag: Path | str, report_dir: Path | str, *, params_file: Path | str | None = None,
                 weights: Path | str | None = None, random_init: bool = False,
                 progress: bool = True, parameters: Mapping[str, Any] | None = None,
                 output_bag: bool = True) -> dict[str, Any]:
    """Run the node's pipeline over a bag and write the report (see the module docstring).

    Args:
        bag: rosbag2 directory, or one .mcap / .db3 file.
        report_dir: where report.json, report.md, the figures and `outputs/` go (created).
        params_file: the node's parameters YAML; None = the packaged
            config/depth_any_view.yaml.
        weights: a .safetensors file (its own model config is used); None = the parameters'
            `weights` (empty: the shipped weights of `preset`).
        random_init: random weights of the parameters' `preset` (plumbing checks only).
        progress: show a progress bar.
        parameters: parameter values replacing the file's (e.g. {'device': 'cpu'}).
        output_bag: write the node's outputs as an MCAP bag into report_dir/outputs.

    Returns:
        The report as written to report.json (NaN as None), plus 'report_files'
        (name -> path).

    Raises:
        BagError: the bag is missing, corrupt, lacks a camera topic or has unexpected
            message types (one line naming what is wrong and the bag's topics).
        ConfigError: the parameters file is missing or malformed, or a value is invalid.
        WeightsError: the weights are missing, corrupt or do not fit.
    """
    bag, report_dir = Path(bag), Path(report_dir)
    cfg, topics, values, params_path = load_pipeline_config(
        params_file, weights=weights, random_init=random_init, parameters=parameters)
    notes: list[str] = []
    with BagReader(bag) as reader:
        plan = plan_topics(reader, topics)
        notes += plan.notes
        rig, rig_source = choose_rig(reader, topics, cfg, notes)
        pipeline = Pipeline(cfg, rig)
        report_dir.mkdir(parents=True, exist_ok=True)
        publish = {k: bool(values.get(k, True)) for k in
                   ("publish_depth", "publish_points", "publish_voxels", "publish_markers",
                    "publish_grid")}
        out_bag = (OutputBagWriter(report_dir / OUTPUT_BAG, topics, rig,
                                   pipeline.fusion.voxel_size, publish,
                                   int(values.get("marker_max_voxels", 50000)))
                   if output_bag else None)
        run = _Evaluation(reader, pipeline, topics, plan, out_bag, notes)
        try:
            wall = run.run(progress)
        finally:
            if out_bag is not None:
                out_bag.close()
        duration = max(0, reader.end_ns - reader.start_ns) / 1e9
    result = _result(run, bag, params_path, rig_source, wall, duration,
                     None if out_bag is None else out_bag.path)
    figures = FigureData(cameras=list(topics.camera_names), depth_curve=run.depth_curve(),
                         per_camera=_per_camera_figure(run, result),
                         sample=run.sample, birds_eye=run.birds_eye,
                         scale=result["scale"], sparsification=result["sparsification"],
                         ghost_voxels=list(run.ghosts) or None)
    paths = write_report(result, figures, report_dir)
    out = to_jsonable(result)
    out["report_files"] = {k: str(v) for k, v in paths.items()}
    return out


def _per_camera_figure(run: _Evaluation, result: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per-camera bar values: depth errors with GT, valid fraction and sets always."""
    depth = result.get("depth") or {}
    out = {}
    for cam in run.names:
        m = dict((depth.get("per_camera") or {}).get(cam, {}))
        cov = result["coverage"][cam]
        out[cam] = {"abs_rel": m.get("abs_rel", math.nan), "rmse": m.get("rmse", math.nan),
                    "delta1": m.get("delta1", math.nan),
                    "valid_fraction": cov["valid_depth_fraction"], "sets": cov["used"]}
    return out


def _input_notes(stats: dict[str, Any]) -> list[str]:
    """One note per camera and kind of unusable input, with the count and latest reason."""
    notes = []
    errors = stats["last_errors"]
    for cam, c in stats["images"].items():
        if c["rejected"]:
            notes.append(f"{c['rejected']} image(s) of {cam} rejected: "
                         f"{errors.get(f'{cam}/image', '?')}")
    for cam, kinds in stats["views_skipped"].items():
        for kind, n in kinds.items():
            if n:
                notes.append(f"{n} view(s) of {cam} left out ({kind}): "
                             f"{errors.get(f'{cam}/{kind}', '?')}")
    return notes


def _result(run: _Evaluation, bag: Path, params_path: Path, rig_source: str, wall: float,
            duration: float, out_bag: Path | None) -> dict[str, Any]:
    """The report dictionary of a finished run."""
    stats = run.pipeline.stats()
    sync = stats["sync"]
    sets = stats["sets"]
    coverage = {}
    for cam in run.names:
        s = sync["cameras"][cam]
        coverage[cam] = {
            "images": stats["images"][cam]["received"],
            "rejected": stats["images"][cam]["rejected"],
            "used": s["used"], "missing_in_sets": s["missing_in_sets"],
            "skipped": sum(stats["views_skipped"][cam].values()),
            "dropped_by_sync": {k: v for k, v in s["dropped"].items() if v},
            "valid_depth_fraction": (run.valid[cam] / run.pixels[cam] if run.pixels[cam]
                                     else math.nan)}
    n = len(run.timings)
    return {
        "bag": str(bag), "params_file": str(params_path), "rig_source": rig_source,
        "cameras": list(run.names), "frames_in_bag": run.frames_in_bag,
        "bag_duration_s": duration,
        "topics": {"images": [run.topics.camera(c, run.topics.image) for c in run.names],
                   "odometry": run.topics.odom if run.plan.odometry else None},
        "ground_truth": {"depth": list(run.plan.depth_gt_cameras),
                         "occupancy": run.plan.occupancy_gt},
        "engine": {k: v for k, v in run.pipeline.engine.describe().items()
                   if k in ("device", "device_name", "precision", "preset", "weights",
                            "image_size", "grid_dims", "compiled", "output_resolution")},
        "sets": {"emitted": run.emitted, "processed": sets["processed"],
                 "complete": sets["complete"], "partial": sets["partial"],
                 "dropped": dict(sets["dropped"]), "without_odometry": sets["without_odometry"],
                 "fusion_rejected": sets["fusion_rejected"],
                 "scored_depth": run.scored_depth_sets, "scored_occupancy": run.scored_occ_sets},
        "sync": {"dropped": {k: v for k, v in sync["dropped"].items() if v},
                 "resets": sync["resets"]},
        "coverage": coverage,
        "depth": run.depth_result(),
        "occupancy": run.occupancy_result(),
        "scale": run.scale_result(),
        "sparsification": run.sparsification_result(),
        "latency": {stage: _stage_stats([t[stage] for t in run.timings]) for stage in STAGES},
        "throughput": {"sets": n, "wall_s": wall, "sets_per_s": n / wall if wall > 0 else None,
                       "bag_duration_s": duration,
                       "realtime_factor": duration / wall if wall > 0 else None},
        "fusion": {k: v for k, v in stats["fusion"].items()},
        "input_errors": dict(run.input_errors),
        "output_bag": None if out_bag is None else str(out_bag),
        "notes": list(run.notes) + _input_notes(stats),
    }


__all__ = ["DISTANCE_BIN_M", "GHOST_MARGIN_VOXELS", "OUTPUT_BAG", "evaluate_bag",
           "labels_from_probability"]
