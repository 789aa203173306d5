"""Per-stage latency of one synchronized set, as the node runs it, stage by stage.

Stages (in the node's order), each timed on its own over repeated runs after warm-up:

    intake          message -> array for every image (`image_msg_to_array`), CameraInfo and
                    odometry into the pipeline, images into the synchronizer (callbacks)
    decode          input encoding -> RGB (`to_rgb8`)
    preprocess      engine: upload, resize, normalise         } one `InferenceEngine.infer`,
    forward         engine: the network                       } timed by the engine itself
    postprocess     engine: depth policy, resize to input, host copy
    points          network-size depth -> coloured points in base_link (`depth_to_points`)
    pointcloud2     points -> sensor_msgs/PointCloud2 (`xyzrgb_cloud`)
    fusion_update   log-odds occupancy update through the odometry pose (the volume)
    fusion_carve    free-space carving of the same update: rays from each camera to its
                    network-size depth, every carve_stride-th pixel, sampled at half-voxel
                    steps (`OccupancyFusion.carve`; the node does both in one `update`)
    fusion_outputs  occupied voxel list and the 2D grid of the fused map
    voxels_msg      voxel PointCloud2 (`voxel_cloud`)
    markers         MarkerArray as the node builds it when due: the marker_max_voxels most
                    probable voxels (`Pipeline.marker_voxels`) serialized with numpy
                    (`marker_array_bytes`); the node does this at most every
                    markers_period seconds (1 s), so a set costs it only when due
    grid_msg        nav_msgs/OccupancyGrid (`occupancy_grid_msg`)
    depth_msgs      per-camera 32FC1 depth Image + CameraInfo (`depth_to_image_msg`)
    publish         rclpy `publish` of every output of the set (no subscriber), the
                    MarkerArray as serialized bytes like the node; without the node's
                    publish_spacing waits between large messages (counted in
                    `counts['large_messages']`: the node waits about (n - 1) x
                    publish_spacing on top, idle time, not work)

The stages after the network take the frame's ground truth in the network's place (see
`workload.py`), so point and voxel counts are realistic although the weights are random.
The ROS stages need rclpy and the message packages; without them they are left out and
the result says why.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from depth_any_view import topics
from depth_any_view.bench.common import PeakMemory, summarize, time_call
from depth_any_view.bench.workload import (
    Workload,
    network_inputs,
    occupancy_volume,
    pose_on_track,
)
from depth_any_view.inference.engine import EngineConfig, InferenceEngine
from depth_any_view.inference.preprocess import ViewInput
from depth_any_view.mapping.carving import DepthViews
from depth_any_view.ros.params import LARGE_MESSAGE_BYTES, SPECS
from depth_any_view.topics import camera_topic

LOG = logging.getLogger(__name__)


@contextlib.contextmanager
def quiet_loggers(*names: str) -> Iterator[None]:
    """Only errors from these loggers inside the block (the engine's and the pipeline's
    start-up lines would bury the bench's own); their levels are restored afterwards, so
    a bench run in a process (the tests) leaves its logging as it found it."""
    loggers = [logging.getLogger(n) for n in names]
    saved = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, saved):
            lg.setLevel(level)

STAGES = ("intake", "decode", "preprocess", "forward", "postprocess", "points", "pointcloud2",
          "fusion_update", "fusion_carve", "fusion_outputs", "voxels_msg", "markers",
          "grid_msg", "depth_msgs", "publish")
ENGINE_STAGES = ("preprocess", "forward", "postprocess")
ROS_STAGES = ("intake", "pointcloud2", "voxels_msg", "markers", "grid_msg", "depth_msgs",
              "publish")
STAGE_LABELS = {
    "intake": "message -> array, CameraInfo, odometry, synchronizer (callbacks)",
    "decode": "input encoding -> RGB",
    "preprocess": "preprocessing (upload, resize, normalise)",
    "forward": "network forward",
    "postprocess": "postprocessing (depth policy, resize to input, host copy)",
    "points": "depth -> points (base_link, stride 2)",
    "pointcloud2": "PointCloud2 packing (x y z rgb)",
    "fusion_update": "occupancy fusion update (log-odds, odometry)",
    "fusion_carve": "free-space carving (rays to the network depth, every "
                    f"{int(SPECS['carve_stride'].default)}th pixel)",
    "fusion_outputs": "fused map -> occupied voxels + 2D grid",
    "voxels_msg": "voxel PointCloud2",
    "markers": "MarkerArray bytes (most probable voxels; when due, every markers_period)",
    "grid_msg": "OccupancyGrid message",
    "depth_msgs": "depth Image + CameraInfo messages",
    "publish": "rclpy publish of all outputs (markers as bytes, no spacing waits)",
}
POINTS_STRIDE = int(SPECS["points_stride"].default)  # node parameter (default)
MARKER_MAX_VOXELS = int(SPECS["marker_max_voxels"].default)  # node parameter (default)
MARKERS_PERIOD_S = float(SPECS["markers_period"].default)  # node parameter (default)
PERIOD_NS = 100_000_000  # 10 Hz between the benchmark's sets
OUTPUT_TOPICS = {"points": topics.POINTS, "voxels": topics.VOXELS,  # the node's defaults
                 "markers": topics.MARKERS, "grid": topics.GRID}


def make_engine(preset: str, device: str = "cpu", precision: str = "fp32", *,
                overrides: dict[str, Any] | None = None, threads: int = 0,
                compile: bool = False, compile_mode: str = "default",
                backend: str = "torch") -> InferenceEngine:
    """A random-weight engine of a preset (speed does not depend on the weights), set up as
    the node runs it: depth at the input resolution, network-size images returned
    (backend onnxruntime: the CPU provider, the export cached as the node's)."""
    cfg = EngineConfig(preset=preset, random_init=True, device=device, precision=precision,
                       model_overrides=dict(overrides or {}), warmup_iters=0, threads=threads,
                       compile=compile, compile_mode=compile_mode, return_images=True,
                       backend=backend)
    with quiet_loggers("depth_any_view.inference.engine"):
        return InferenceEngine(cfg)


def views_of(w: Workload) -> list[ViewInput]:
    """The engine inputs of a workload."""
    return [ViewInput(n, w.images[i], w.cameras[i], w.T_base_cam[i])
            for i, n in enumerate(w.names)]


def bench_forward(engine: InferenceEngine, views: Sequence[ViewInput], repeats: int,
                  warmup: int = 1) -> dict[str, Any]:
    """Summaries (seconds) of preprocess / forward / postprocess / total of `engine.infer`
    over `repeats` runs after `warmup`, with peak memory of the whole measurement."""
    with PeakMemory(engine.device) as mem:
        for _ in range(max(0, warmup)):
            engine.infer(views)
        runs = [engine.infer(views).timings for _ in range(max(1, repeats))]
    out: dict[str, Any] = {s: summarize([r[s] for r in runs])
                           for s in (*ENGINE_STAGES, "total")}
    out["memory"] = mem.as_dict()
    out["repeats"] = len(runs)
    out["warmup"] = int(warmup)
    return out


# ---------------------------------------------------------------------------- ROS messages
def ros_available() -> str | None:
    """None when rclpy and the message packages import, else why not."""
    try:
        import rclpy  # noqa: F401

        import depth_any_view.ros.conversions  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        return f"rclpy / ROS message packages not importable: {exc}"
    return None


def input_messages(w: Workload, stamp_ns: int, encoding: str = "rgb8") -> dict[str, Any]:
    """What the cameras and odometry publish for one set: Image and CameraInfo per camera
    (the images in `encoding`: rgb8 or bgr8) and one Odometry."""
    from nav_msgs.msg import Odometry

    from depth_any_view.ros import conversions as C

    images, infos = [], []
    for i in range(w.num_views):
        header = C.make_header(stamp_ns, w.frame_ids[i])
        rgb = w.images[i] if encoding == "rgb8" else np.ascontiguousarray(w.images[i][..., ::-1])
        images.append(C.array_to_image_msg(rgb, encoding, header))
        infos.append(C.camera_to_camera_info(w.cameras[i], header))
    odom = Odometry(header=C.make_header(stamp_ns, "odom"), child_frame_id="base_link")
    odom.pose.pose = C.matrix_to_pose(w.T_odom_base)
    return {"images": images, "infos": infos, "odom": odom}


class LocalPublishers:
    """The node's output publishers in a private rclpy context (for the `publish` stage)."""

    def __init__(self, names: Sequence[str], domain_id: int) -> None:
        import rclpy
        from nav_msgs.msg import OccupancyGrid
        from sensor_msgs.msg import CameraInfo, Image, PointCloud2
        from visualization_msgs.msg import MarkerArray

        from depth_any_view.ros.qos import qos_profile

        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=int(domain_id))
        self.node = rclpy.create_node("depth_any_view_bench_publish", context=self.context)
        q = qos_profile("reliable", 5)
        self.depth = {n: self.node.create_publisher(Image, camera_topic(n, topics.DEPTH_IMAGE), q)
                      for n in names}
        self.info = {n: self.node.create_publisher(
            CameraInfo, camera_topic(n, topics.DEPTH_CAMERA_INFO), q) for n in names}
        self.points = self.node.create_publisher(PointCloud2, OUTPUT_TOPICS["points"], q)
        self.voxels = self.node.create_publisher(PointCloud2, OUTPUT_TOPICS["voxels"], q)
        self.markers = self.node.create_publisher(MarkerArray, OUTPUT_TOPICS["markers"], q)
        self.grid = self.node.create_publisher(OccupancyGrid, OUTPUT_TOPICS["grid"],
                                               qos_profile("transient_local", 1))

    def publish(self, msgs: dict[str, Any]) -> None:
        """Publish one set's outputs (messages; the MarkerArray as serialized bytes)."""
        for name, (img, info) in msgs["depth"].items():
            self.depth[name].publish(img)
            self.info[name].publish(info)
        self.points.publish(msgs["points"])
        self.voxels.publish(msgs["voxels"])
        self.markers.publish(msgs["markers"])
        self.grid.publish(msgs["grid"])

    def close(self) -> None:
        """Destroy the node and shut the context down."""
        import rclpy

        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


# ---------------------------------------------------------------------------- the stages
@dataclass
class StageResult:
    """Per-stage summaries (seconds) and the sizes the stages worked on."""

    stages: dict[str, dict[str, float]]
    counts: dict[str, int]
    skipped: dict[str, str]
    forward: dict[str, Any]

    def medians(self) -> dict[str, float]:
        """Stage -> median seconds."""
        return {k: v["median"] for k, v in self.stages.items()}

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form with the totals."""
        non_net = [s for s in self.stages if s != "forward"]
        return {"stages": self.stages, "counts": self.counts, "skipped": self.skipped,
                "forward_detail": self.forward,
                "non_network_median_s": sum(self.stages[s]["median"] for s in non_net),
                "non_network_p95_s": sum(self.stages[s]["p95"] for s in non_net),
                "set_median_s": sum(v["median"] for v in self.stages.values())}


def bench_stages(engine: InferenceEngine, w: Workload, *, repeats: int, warmup: int = 1,
                 forward_repeats: int | None = None, publishers: LocalPublishers | None = None,
                 only: Sequence[str] | None = None) -> StageResult:
    """Time every stage of one set of `w` with `engine` (see the module docstring).

    Args:
        engine: a ready engine (its preset, device and precision are what is measured).
        w: the set of views.
        repeats: timed runs per stage (>= 1); `forward_repeats` for the network
            (default: `repeats`).
        warmup: untimed runs first, per stage.
        publishers: output publishers for the `publish` stage (None: stage skipped).
        only: restrict to these stages (scaling tables); None = all.
    """
    from depth_any_view.data.encodings import to_rgb8
    from depth_any_view.mapping.points import depth_to_points

    want = set(STAGES if only is None else only)
    unknown = want - set(STAGES)
    if unknown:
        raise ValueError(f"unknown benchmark stage(s) {sorted(unknown)}; known: {STAGES}")
    stages: dict[str, dict[str, float]] = {}
    skipped: dict[str, str] = {}
    counts: dict[str, int] = {"views": w.num_views, "image_width": w.size[0],
                              "image_height": w.size[1],
                              "network_height": engine.image_size[0],
                              "network_width": engine.image_size[1],
                              "grid_voxels": int(np.prod(engine.grid.dims))}
    no_ros = ros_available()
    if no_ros is not None:
        skipped.update({s: no_ros for s in ROS_STAGES if s in want})
        want -= set(ROS_STAGES)
    if "publish" in want and publishers is None:
        skipped["publish"] = "no publishers given (rclpy context not created)"
        want.discard("publish")

    def run(name: str, fn: Callable[[int], Any]) -> None:
        if name in want:
            stages[name] = time_call(fn, repeats, warmup)

    # ---- inputs: messages into the pipeline (the node's callbacks), decode
    if "intake" in want:
        counts["synchronized_sets"] = _intake(engine, w, run)
    run("decode", lambda i: [to_rgb8(w.images[k], "rgb8") for k in range(w.num_views)])

    # ---- the engine
    forward: dict[str, Any] = {}
    if want & set(ENGINE_STAGES):
        forward = bench_forward(engine, views_of(w), forward_repeats or repeats, warmup)
        stages.update({s: forward[s] for s in ENGINE_STAGES if s in want})

    # ---- points, the cloud and the depth messages
    depth_n, K_n, images_n = network_inputs(w, engine.image_size)
    T = np.asarray(w.T_base_cam)
    points, colors = depth_to_points(depth_n, K_n, T, images_n, stride=POINTS_STRIDE)
    counts["points"] = int(points.shape[0])
    run("points", lambda i: depth_to_points(depth_n, K_n, T, images_n, stride=POINTS_STRIDE))
    out_msgs: dict[str, Any] = {}
    if no_ros is None:
        from depth_any_view.ros import conversions as C

        header = C.make_header(1_000_000_000, "base_link")
        run("pointcloud2", lambda i: C.xyzrgb_cloud(points, colors, header))
        run("depth_msgs", lambda i: _depth_msgs(w))
        out_msgs = {"depth": _depth_msgs(w), "points": C.xyzrgb_cloud(points, colors, header)}
        counts["cloud_bytes"] = len(out_msgs["points"].data)

    # ---- the occupancy map and its messages, publishing
    if want & {"fusion_update", "fusion_carve", "fusion_outputs", "voxels_msg", "markers",
               "grid_msg", "publish"}:
        _map_stages(engine, w, want, run, counts, out_msgs,
                    DepthViews(depth_n, K_n, T))
        if "publish" in want and publishers is not None:
            run("publish", lambda i: publishers.publish(out_msgs))
    ordered = {s: stages[s] for s in STAGES if s in stages}
    return StageResult(ordered, counts, skipped, {k: v for k, v in forward.items()
                                                   if k not in ENGINE_STAGES})


def _pipeline(engine: InferenceEngine, w: Workload) -> Any:
    """A `Pipeline` of the workload's cameras sharing `engine` (its fusion matches the
    engine's grid, as in the node)."""
    from depth_any_view.geometry.rig import load_rig
    from depth_any_view.pipeline import Pipeline, PipelineConfig
    from depth_any_view.sync.approximate_time import SyncConfig

    return Pipeline(PipelineConfig(sync=SyncConfig(cameras=tuple(w.names))),
                    load_rig("surround6").subset(list(w.names)), engine=engine)


def _intake(engine: InferenceEngine, w: Workload, run: Callable[..., None]) -> int:
    """Time the node's input callbacks for one set; returns the sets synchronized."""
    from depth_any_view.ros import conversions as C

    msgs = input_messages(w, 0)
    pipeline = _pipeline(engine, w)
    ready: list[int] = []

    def intake(i: int) -> None:
        stamp = 1_000_000_000 + i * PERIOD_NS
        for k, name in enumerate(w.names):
            img = msgs["images"][k]
            C.stamp_to_ns(img.header.stamp)
            array = C.image_msg_to_array(img)
            pipeline.add_camera_info(name, stamp, msgs["infos"][k])
            ready.extend(s.stamp_ns for s in pipeline.add_image(
                name, stamp, array, stamp, encoding=img.encoding,
                frame_id=img.header.frame_id))
        pipeline.add_odometry(stamp, C.odometry_to_transform(msgs["odom"]))

    run("intake", intake)
    return len(ready)


def _depth_msgs(w: Workload) -> dict[str, Any]:
    """Depth Image + CameraInfo per camera, at the input resolution (ground-truth depth)."""
    from depth_any_view.ros import conversions as C

    out = {}
    for k, name in enumerate(w.names):
        h = C.make_header(1_000_000_000, w.frame_ids[k])
        out[name] = (C.depth_to_image_msg(w.depth[k], h),
                     C.camera_to_camera_info(w.cameras[k], h))
    return out


def _map_stages(engine: InferenceEngine, w: Workload, want: set[str],
                run: Callable[..., None], counts: dict[str, int],
                out_msgs: dict[str, Any], views: DepthViews) -> None:
    """Fusion (the volume, then the carving of the network-size depth `views`), the map's
    outputs and their messages (added to `out_msgs` for publishing)."""
    from depth_any_view.pipeline import PipelineResult

    pipeline = _pipeline(engine, w)  # marker_voxels: the node's voxel selection
    fusion = pipeline.fusion
    prob, observed = occupancy_volume(w, engine.grid)
    T0 = np.asarray(w.T_odom_base)
    step = [0]

    def fuse(i: int) -> None:
        k = step[0]
        step[0] += 1
        status = fusion.update(prob, observed, engine.grid, 1_000_000_000 + k * PERIOD_NS,
                               pose_on_track(T0, k))
        if not status.accepted:
            raise RuntimeError(f"benchmark fusion update rejected: {status.message}")

    if "fusion_update" in want:
        run("fusion_update", fuse)
    else:
        fuse(0)
    last_pose = pose_on_track(T0, step[0] - 1)  # the map's frame: the last update's pose
    counts["carved_voxels"] = fusion.carve(views, last_pose)
    run("fusion_carve", lambda i: fusion.carve(views, last_pose))
    run("fusion_outputs", lambda i: (fusion.occupied_voxels(), fusion.occupancy_grid()))
    centres, probs = fusion.occupied_voxels()
    grid2d = fusion.occupancy_grid()
    counts["occupied_voxels"] = int(centres.shape[0])
    counts["grid_cells"] = int(grid2d.data.size)
    stamp_ns = 1_000_000_000 + (step[0] - 1) * PERIOD_NS  # the last update's
    result = PipelineResult(stamp_ns=stamp_ns, cameras={}, missing=[], skipped={},
                            voxels=centres, voxel_probability=probs, grid2d=grid2d,
                            pose=pose_on_track(T0, step[0] - 1))
    counts["marker_cubes"] = int(pipeline.marker_voxels(result, MARKER_MAX_VOXELS)[0].shape[0])
    if ros_available() is not None:
        return
    from depth_any_view.ros import conversions as C

    map_header = C.make_header(stamp_ns, result.map_frame)

    def markers() -> bytes:  # node.py _publish_occupancy, a set with the markers due
        marker_centres, z_range = pipeline.marker_voxels(result, MARKER_MAX_VOXELS)
        return C.marker_array_bytes(marker_centres, fusion.voxel_size, map_header,
                                    z_range=z_range)

    run("voxels_msg", lambda i: C.voxel_cloud(centres, probs, map_header))
    run("markers", lambda i: markers())
    run("grid_msg", lambda i: C.occupancy_grid_msg(grid2d, map_header))
    marker_bytes = markers()
    counts["marker_bytes"] = len(marker_bytes)
    if "publish" in want:
        out_msgs.update(voxels=C.voxel_cloud(centres, probs, map_header), markers=marker_bytes,
                        grid=C.occupancy_grid_msg(grid2d, map_header))
        counts["large_messages"] = large_messages(out_msgs)


def payload_bytes(msg: Any) -> int:
    """Bytes of a message's bulk data as the node counts them for pacing: serialized
    bytes, or an Image's / PointCloud2's `data` (0 for other messages)."""
    if isinstance(msg, (bytes, bytearray)):
        return len(msg)
    return len(getattr(msg, "data", b""))


def large_messages(out_msgs: dict[str, Any]) -> int:
    """How many of a set's outputs the node paces by publish_spacing (over
    LARGE_MESSAGE_BYTES): depth images, clouds, the MarkerArray (CameraInfo and the
    grid go out unpaced)."""
    msgs = [img for img, _ in out_msgs.get("depth", {}).values()]
    msgs += [out_msgs.get(k) for k in ("points", "voxels", "markers")]
    return sum(payload_bytes(m) > LARGE_MESSAGE_BYTES for m in msgs if m is not None)


def stage_sum(medians: dict[str, float], exclude: Sequence[str] = ("forward",)) -> float:
    """Sum of stage medians (seconds) without the excluded stages."""
    return float(sum(v for k, v in medians.items() if k not in exclude))
