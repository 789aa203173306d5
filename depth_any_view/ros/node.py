"""The depth_any_view ROS 2 node: N synchronized cameras in; depth, points, occupancy out.

A thin adapter (docs/DESIGN.md) over `depth_any_view.pipeline.Pipeline`, the same object
the offline bag evaluation (bag/feeder.py) runs: callbacks turn messages into arrays
(`ros/conversions.py`) and feed the pipeline (`add_camera_info`, `add_image`,
`add_odometry`, `poll`); the worker runs `Pipeline.process` on each synchronized set and
publishes its `PipelineResult` as messages. Synchronization, the odometry pose buffer,
view validation, inference, the point cloud and occupancy fusion all live in the
pipeline; the node holds only ROS plumbing, /diagnostics and the throttled warnings.

Threads:
- the executor thread runs every callback: image and CameraInfo callbacks convert the
  message and queue it in the pipeline, the odometry callback hands the pose to the
  pipeline's buffer, a steady timer polls for timed-out (partial) sets, another publishes
  /diagnostics. None of them waits for the network.
- two worker threads (`overlap.TwoStageRunner`): the first takes synchronized sets from a
  latest-wins slot of one (when the network is slower than the cameras, a set still
  waiting is replaced by the newer one, counted as `superseded` in /diagnostics, instead
  of queueing without bound), applies changed runtime parameters (`Pipeline.reconfigure`,
  once the second is idle) and runs the network (`Pipeline.infer`); the second takes its
  sets in order through a hand-over slot of one, fuses them (`Pipeline.finish`) and
  publishes depth, points and occupancy, all stamped with the set. So the network of set
  N + 1 runs while set N is fused and published, and outputs keep the sets' order.

Publishing: large messages (depth images, clouds, markers: over `LARGE_MESSAGE_BYTES`) go
out at least `publish_spacing` seconds apart. Published back to back, a set's 2.5-4 MB of
them can overflow the receive buffers of Fast DDS's default transports on a busy host; a
reliable reader then gets the lost samples only when the writer repairs them, up to
seconds later (measured: depth images 0.8-1.4 s median late back to back, on time 1-3 ms
apart; BENCHMARKS.md). The MarkerArray (RViz only) is rebuilt and published at most every
`markers_period` seconds of set stamps, serialized with numpy (`marker_array_bytes`).

Bad input never stops the node: a message that cannot be used (unsupported encoding, a
`step` or size that does not match, more pixels than `max_image_pixels` (refused on the
header, before the data is read), missing or invalid CameraInfo, NaN odometry) is
dropped with a throttled warning naming the camera and field, and counted in
/diagnostics; a camera going silent, coming back or going out of sync gets one log line
each (`NodeDiagnostics.events`, from the diagnostics timer); the set goes ahead with the
other cameras when at least `min_cameras` remain. A set the network fails on (e.g. out
of memory) is dropped with a throttled error and counted, and the next set is tried.
Start-up problems (a bad parameter, parameters file, rig file or weights) end the process
with one line on stderr and exit status 2, before any of the node's topics exist.
docs/TROUBLESHOOTING.md lists the messages.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import tempfile
import threading
import time
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import rclpy
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import OccupancyGrid, Odometry
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from visualization_msgs.msg import MarkerArray

from depth_any_view.config import ConfigError
from depth_any_view.data.encodings import ImageEncodingError
from depth_any_view.geometry.rig import Rig
from depth_any_view.model.weights import WeightsError
from depth_any_view.overlap import TwoStageRunner
from depth_any_view.pipeline import (
    DROP_INFERENCE,
    QUATERNION_TOLERANCE,
    InferredSet,
    Pipeline,
    PipelineConfig,
    PipelineResult,
    one_line,
    resolve_rig_file,
)
from depth_any_view.ros.conversions import (
    array_to_image_msg,
    camera_to_camera_info,
    depth_to_image_msg,
    image_msg_to_array,
    make_header,
    marker_array_bytes,
    occupancy_grid_msg,
    odometry_msg,
    odometry_to_transform,
    stamp_to_ns,
    voxel_cloud,
    xyzrgb_cloud,
)
from depth_any_view.ros.diagnostics import OK, NodeDiagnostics, to_diagnostic_array
from depth_any_view.ros.fastdds import apply_default_profile
from depth_any_view.ros.params import (
    PARAMETERS,
    SPECS,
    ParameterError,
    Settings,
    check_value,
    to_descriptor,
    unmatched_params_files,
)
from depth_any_view.ros.qos import diagnostics_qos, qos_profile
from depth_any_view.ros.rig_tf import (
    RigTfPublisher,
    TfMessagesMissing,
    check_rig_frames,
    tf_message_type,
)
from depth_any_view.sync.approximate_time import SyncedSet

NODE_NAME = "depth_any_view"
# Parameters rclpy itself declares or understands; they may appear in parameter files.
ROS_OWN_PARAMETERS = ("use_sim_time", "start_type_description_service")
INFERENCE_STAGES = ("preprocess", "forward", "postprocess")  # PipelineResult.timings keys
LARGE_MESSAGE_BYTES = 64 * 1024  # a message above this is paced (publish_spacing)


def _payload_bytes(msg: Any) -> int:
    """Bytes of a message's bulk data: serialized bytes, or an Image's / PointCloud2's
    `data` (0 for other messages)."""
    if isinstance(msg, (bytes, bytearray)):
        return len(msg)
    return len(getattr(msg, "data", b""))


class StartupError(RuntimeError):
    """The node cannot start; the message is the one line printed before exiting."""


class _RosLogHandler(logging.Handler):
    """Forwards the core's Python logging (`depth_any_view.*`) to the node's ROS logger."""

    def __init__(self, logger: Any) -> None:
        super().__init__()
        self._logger = logger

    def emit(self, record: logging.LogRecord) -> None:
        """Log `record` at the matching ROS severity."""
        msg = f"[{record.name}] {record.getMessage()}"
        if record.levelno >= logging.ERROR:
            self._logger.error(msg)
        elif record.levelno >= logging.WARNING:
            self._logger.warning(msg)
        elif record.levelno >= logging.INFO:
            self._logger.info(msg)
        else:
            self._logger.debug(msg)


def unknown_parameters(node: Node) -> list[str]:
    """Parameters given to the node (file or command line) that it does not have."""
    overrides = getattr(node, "_parameter_overrides", {})
    return sorted(n for n in overrides if n not in SPECS and n not in ROS_OWN_PARAMETERS
                  and not n.startswith("qos_overrides."))


def declare_parameters(node: Node) -> Settings:
    """Declare every parameter of `PARAMETERS` on `node` and return validated Settings.

    Raises StartupError with one line naming the parameter and its allowed values.
    """
    overrides = getattr(node, "_parameter_overrides", {})  # rclpy keeps them here
    values: dict[str, Any] = {}
    for spec in PARAMETERS:
        try:
            values[spec.name] = node.declare_parameter(spec.name, spec.default,
                                                       to_descriptor(spec)).value
        except (InvalidParameterTypeException, InvalidParameterValueException) as exc:
            given = overrides[spec.name].value if spec.name in overrides else None
            msg = check_value(spec.name, given) if spec.name in overrides else None
            raise StartupError(msg or f"parameter '{spec.name}': "
                                      f"{str(exc).splitlines()[0]}") from None
        if values[spec.name] is None and spec.kind == "string_array":
            values[spec.name] = []  # rclpy reads an empty list override as "not set"
    try:
        return Settings(values)
    except ParameterError as exc:
        raise StartupError(str(exc)) from None


def load_rig(settings: Settings) -> Rig:
    """The rig of `rig_file`, with only `camera_names` in that order.

    Raises ConfigError naming the parameter and the file or camera at fault.
    """
    try:
        full_rig = Rig.from_yaml(resolve_rig_file(settings.rig_file))
    except ConfigError as exc:
        raise ConfigError(f"parameter 'rig_file' ({settings.rig_file!r}): {exc}") from None
    try:
        return full_rig.subset(settings.camera_names)
    except ConfigError as exc:
        raise ConfigError(f"parameter 'camera_names': {exc} (rig_file "
                          f"{settings.rig_file!r})") from None


def pipeline_config(settings: Settings) -> PipelineConfig:
    """The pipeline configuration of the node's parameters: `from_parameters`, as the bag
    evaluation reads them, with the cloud skipped while `publish_points` is off.

    Raises ConfigError / ValueError naming the parameter or field that does not fit.
    """
    cfg = PipelineConfig.from_parameters(settings)
    cfg.points = replace(cfg.points, enabled=bool(settings.publish_points))
    return cfg


class DepthAnyViewNode(Node):
    """The node; see the module docstring. Raises StartupError from the constructor."""

    def __init__(self, *, argv: list[str] | None = None, **kwargs: Any) -> None:
        """Declare parameters, load the rig and the network, then create topics and threads.

        `argv`: the command line rclpy was initialised with (default `sys.argv`); its
        `--params-file`s are checked against the node's name. Other keyword arguments go
        to rclpy's Node (e.g. `context`, `parameter_overrides`, `cli_args`).
        """
        super().__init__(NODE_NAME, **kwargs)
        self._attach_core_logging()
        args = list(sys.argv if argv is None else argv)
        if not kwargs.get("use_global_arguments", True):
            args = []
        args += ["--"] + list(kwargs.get("cli_args") or [])
        for warning in unmatched_params_files(args, self.get_fully_qualified_name()):
            self.get_logger().warning(warning)
        try:
            self._setup()
        except StartupError:
            self._detach_core_logging()
            super().destroy_node()
            raise

    def _attach_core_logging(self) -> None:
        """Send the core's Python logging to this node's ROS logger (undone on destroy)."""
        core_log = logging.getLogger("depth_any_view")
        self._log_handler = _RosLogHandler(self.get_logger())
        self._log_saved = (core_log.level, core_log.propagate)
        core_log.addHandler(self._log_handler)
        core_log.setLevel(logging.INFO)
        core_log.propagate = False

    def _detach_core_logging(self) -> None:
        """Restore the core logger as it was before this node."""
        core_log = logging.getLogger("depth_any_view")
        core_log.removeHandler(self._log_handler)
        core_log.setLevel(self._log_saved[0])
        core_log.propagate = self._log_saved[1]

    # ------------------------------------------------------------------ start-up
    def _setup(self) -> None:
        """Everything the constructor does after creating the rclpy node."""
        self.settings = s = declare_parameters(self)
        unknown = unknown_parameters(self)
        if unknown:  # a warning, not an error: /** sections of shared files reach every node
            self.get_logger().warning(
                f"ignoring parameter(s) {unknown}: {NODE_NAME} has no such parameter (a typo? "
                "see config/depth_any_view.yaml)")
        try:
            rig = load_rig(s)
        except ConfigError as exc:
            raise StartupError(str(exc)) from None
        problem = self._rig_tf_problem(s.publish_rig_tf, rig)
        if problem is not None:
            raise StartupError(problem)
        try:
            cfg = pipeline_config(s)
        except ValueError as exc:  # ConfigError is one
            raise StartupError(str(exc)) from None
        try:
            self.pipeline = Pipeline(cfg, rig)  # loads the network (weights, device)
        except (ConfigError, WeightsError) as exc:
            raise StartupError(str(exc)) from None
        self.rig: Rig = self.pipeline.rig  # replaced by a runtime change of rig_file
        self._applied: Settings = s  # the settings the pipeline runs with
        self._applied_rig: Rig = self.rig  # the rig the pipeline runs with
        self.diag = NodeDiagnostics(s.camera_names, latency_window=s.latency_window,
                                    input_timeout=s.input_timeout,
                                    event_hold=max(5.0, 2.0 * s.diagnostics_period),
                                    inference_timeout=s.inference_timeout,
                                    image_topics={c: s.camera_topic(c, s.image_topic)
                                                  for c in s.camera_names},
                                    camera_qos=s.camera_qos, sync_slop=s.sync_slop)
        self._fusion_stats_at = -math.inf  # monotonic time the map statistics were last read
        self._engine_info = {k: v for k, v in self.pipeline.engine.describe().items()
                             if k in ("device", "device_name", "precision", "preset", "weights",
                                      "image_size", "compiled", "cpu_capability")}
        self._throttle: dict[Any, float] = {}
        self._once: set[str] = set()
        self._markers_stamp_ns: int | None = None  # set stamp of the last MarkerArray
        self._last_large = 0.0  # time.monotonic() of the last large message published

        self._create_topics(s)
        self._rig_tf: RigTfPublisher | None = None
        self._update_rig_tf(s)  # base_link -> optical frames on /tf_static, stamped now
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._poll_timer = self.create_timer(s.sync_poll_period, self._on_poll, clock=steady)
        self._diag_timer = self.create_timer(s.diagnostics_period, self._on_diagnostics,
                                             clock=steady)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.add_post_set_parameters_callback(self._after_set_parameters)

        self._stop = threading.Event()
        self._worker = TwoStageRunner(self._infer, self._finish, self._stage_failed,
                                      name="depth_any_view")
        e = self._engine_info
        self.get_logger().info(
            f"ready: {len(s.camera_names)} cameras ({', '.join(s.camera_names)}) on "
            f"{s.camera_topic_prefix}/<name>/{s.image_topic} ({s.camera_qos} QoS), network "
            f"{e['preset']} on {e['device']} ({e['precision']}, weights {e['weights']}), "
            f"min_cameras {s.min_cameras}, slop {s.sync_slop * 1e3:.0f} ms")

    def _create_topics(self, s: Settings) -> None:
        """Publishers first (so no input is processed without them), then subscriptions."""
        out_qos = qos_profile(s.output_qos, s.qos_depth)
        self._pub_depth: dict[str, Any] = {}
        self._pub_depth_info: dict[str, Any] = {}
        self._pub_confidence: dict[str, Any] = {}
        for name in s.camera_names:
            self._pub_depth[name] = self.create_publisher(
                Image, s.camera_topic(name, s.depth_image_topic), out_qos)
            self._pub_confidence[name] = self.create_publisher(
                Image, s.camera_topic(name, s.depth_confidence_topic), out_qos)
            self._pub_depth_info[name] = self.create_publisher(
                CameraInfo, s.camera_topic(name, s.depth_camera_info_topic), out_qos)
        self._pub_points = self.create_publisher(PointCloud2, s.points_topic, out_qos)
        self._pub_voxels = self.create_publisher(PointCloud2, s.voxels_topic, out_qos)
        self._pub_markers = self.create_publisher(MarkerArray, s.markers_topic, out_qos)
        self._pub_grid = self.create_publisher(OccupancyGrid, s.grid_topic,
                                               qos_profile(s.grid_qos, 1))
        self._pub_diag = self.create_publisher(DiagnosticArray, s.diagnostics_topic,
                                               diagnostics_qos())
        cam_qos = qos_profile(s.camera_qos, s.qos_depth)
        self._subs = []
        for name in s.camera_names:
            self._subs.append(self.create_subscription(
                Image, s.camera_topic(name, s.image_topic), partial(self._on_image, name),
                cam_qos))
            self._subs.append(self.create_subscription(
                CameraInfo, s.camera_topic(name, s.camera_info_topic),
                partial(self._on_camera_info, name), cam_qos))
        self._pub_odometry = None
        if s.odometry_source != "topic":  # cameras-only odometry: /odom is not read
            self._pub_odometry = self.create_publisher(Odometry, s.odometry_output_topic,
                                                       out_qos)
        else:
            self._subs.append(self.create_subscription(
                Odometry, s.odom_topic, self._on_odometry,
                qos_profile(s.odom_qos, s.qos_depth)))

    # ------------------------------------------------------------------ /tf_static
    @staticmethod
    def _rig_tf_problem(publish: bool, rig: Rig) -> str | None:
        """Why `rig` cannot go on /tf_static when `publish` is on (no tf2_msgs, clashing
        frame names), or None."""
        if not publish:
            return None
        try:
            tf_message_type()
        except TfMessagesMissing as exc:
            return str(exc)
        return check_rig_frames(rig)

    def _update_rig_tf(self, s: Settings) -> None:
        """/tf_static as `s` says: the current rig stamped now (sent only when it changed),
        or no publisher at all when publish_rig_tf is off."""
        if not s.publish_rig_tf:
            if self._rig_tf is not None:
                self._rig_tf.close()
                self._rig_tf = None
            return
        if self._rig_tf is None:
            self._rig_tf = RigTfPublisher(self)
        if self._rig_tf.send(self.rig, self._now_ns()):
            self.get_logger().info(
                f"/tf_static: {self.rig.base_frame} -> "
                f"{', '.join(c.frame_id for c in self.rig.cameras.values())} "
                f"(rig_file {s.rig_file})")

    # ------------------------------------------------------------------ helpers
    def _now_ns(self) -> int:
        """The node clock (sim time under use_sim_time) in integer nanoseconds."""
        return int(self.get_clock().now().nanoseconds)

    def _warn(self, key: Any, message: str, *, error: bool = False) -> None:
        """A warning (an error with `error`), at most once per `warn_throttle` seconds for
        each key."""
        now = time.monotonic()
        last = self._throttle.get(key)
        if last is None or now - last >= self.settings.warn_throttle:
            self._throttle[key] = now
            if error:
                self.get_logger().error(message)
            else:
                self.get_logger().warning(message)

    def _warn_once(self, key: str, message: str) -> None:
        """A warning logged only the first time for `key`."""
        if key not in self._once:
            self._once.add(key)
            self.get_logger().warning(message)

    def _bad(self, source: str, field_name: str, message: str) -> None:
        """Count and (throttled) report a rejected input of `source` (camera or odometry)."""
        message = one_line(message)
        self.diag.bad_input(source, field_name, message)
        self._warn((source, field_name), f"{message} (dropped)")

    # ------------------------------------------------------------------ input callbacks
    def _on_image(self, camera: str, msg: Image) -> None:
        """Convert an image and queue it in the pipeline's synchronizer (one larger than
        max_image_pixels is refused on its header, before its data is read)."""
        self.diag.image_received(camera)
        too_large = self.pipeline.check_image_size(camera, msg.width, msg.height)
        if too_large is not None:
            self._bad(camera, "image_size", too_large)
            return
        try:
            array = image_msg_to_array(msg)
        except ImageEncodingError as exc:
            self._bad(camera, "image", f"camera '{camera}' image: {exc}")
            return
        key = f"{camera}/image"
        before = self.pipeline.last_errors.get(key)
        sets = self.pipeline.add_image(camera, stamp_to_ns(msg.header.stamp), array,
                                       self._now_ns(), encoding=msg.encoding,
                                       frame_id=msg.header.frame_id or None)
        error = self.pipeline.last_errors.get(key)
        if error is not None and error is not before:  # a new message: this image was refused
            self._bad(camera, "image", error)
        self._dispatch(sets)

    def _on_camera_info(self, camera: str, msg: CameraInfo) -> None:
        """Hand a CameraInfo to the pipeline (an unchanged calibration is reused there)."""
        error = self.pipeline.add_camera_info(camera, stamp_to_ns(msg.header.stamp), msg)
        if error is not None:
            self._bad(camera, "camera_info", error)

    def _on_odometry(self, msg: Odometry) -> None:
        """Convert an odometry pose (naming a bad field) into the pipeline's pose buffer."""
        topic = self.settings.odom_topic
        try:
            T = odometry_to_transform(msg, QUATERNION_TOLERANCE)  # (4, 4) T_odom_base
        except ValueError as exc:
            error: str | None = str(exc)
        else:
            error = self.pipeline.add_odometry(stamp_to_ns(msg.header.stamp), T)
        if error is not None:
            self._bad("odometry", "pose",
                      f"odometry on {topic}: {error.removeprefix('odometry: ')}")
            return
        if msg.header.frame_id and msg.header.frame_id != self.settings.odom_frame:
            self._warn_once("odom_frame", (
                f"odometry on {topic} is in frame '{msg.header.frame_id}', parameter "
                f"odom_frame is '{self.settings.odom_frame}'; occupancy is published in the "
                "latter"))
        if msg.child_frame_id and msg.child_frame_id != self.rig.base_frame:
            self._warn_once("odom_child", (
                f"odometry child_frame_id is '{msg.child_frame_id}', the rig's base frame is "
                f"'{self.rig.base_frame}'; the pose is taken as the rig's base frame"))

    def _on_poll(self) -> None:
        """Let timed-out windows go ahead as partial sets."""
        self._dispatch(self.pipeline.poll(self._now_ns()))

    def _dispatch(self, sets: list[SyncedSet]) -> None:
        """Hand sets to the worker (latest wins) and log a synchronizer reset."""
        reset = self.pipeline.take_reset()
        if reset is not None:
            self.get_logger().info(f"synchronizer reset: {reset.reason}")
            self.diag.event("synchronizer", f"synchronizer reset: {reset.reason}")
        for synced in sets:
            if self._worker.put(synced):
                self.diag.set_dropped("superseded")

    def _on_diagnostics(self) -> None:
        """Publish /diagnostics."""
        # The synchronizer is only touched from this (the executor's) thread, never by
        # the worker, so its counters can be read here without the pipeline's full stats.
        sync_stats = self.pipeline.sync.stats()
        s = self.settings
        for level, message in self.diag.events(sync_stats=sync_stats):
            if level == OK:
                self.get_logger().info(message)
            else:
                self.get_logger().warning(message)
        for cam, c in sync_stats["cameras"].items():
            if c["received"] and not c["has_camera_info"]:  # its images wait, then drop
                self._warn((cam, "no_camera_info"), (
                    f"camera '{cam}': images arrive on {s.camera_topic(cam, s.image_topic)} "
                    f"but no CameraInfo on {s.camera_topic(cam, s.camera_info_topic)} yet; "
                    "its images wait for it (and are dropped after sync_timeout)"))
        statuses = self.diag.statuses(sync_stats=sync_stats, engine=self._engine_info)
        self._pub_diag.publish(to_diagnostic_array(statuses, self.get_clock().now().to_msg(),
                                                   NODE_NAME))

    # ------------------------------------------------------------------ parameters
    def _on_set_parameters(self, params: list[Any]) -> SetParametersResult:
        """Refuse runtime changes that are start-up only or not allowed, with the reason."""
        changes = {p.name: p.value for p in params if p.name in SPECS}
        for name in changes:
            if not SPECS[name].runtime:
                return SetParametersResult(successful=False, reason=(
                    f"parameter '{name}' can only be set at start-up; restart the node "
                    "with the new value"))
        try:
            wanted = self.settings.updated(changes)
            pipeline_config(wanted)
            rig = load_rig(wanted) if "rig_file" in changes else self.rig
        except ValueError as exc:  # ParameterError and ConfigError are ValueErrors
            return SetParametersResult(successful=False, reason=str(exc))
        problem = self._rig_tf_problem(wanted.publish_rig_tf, rig)
        if problem is not None:
            return SetParametersResult(successful=False, reason=problem)
        return SetParametersResult(successful=True)

    def _after_set_parameters(self, params: list[Any]) -> None:
        """Record accepted runtime changes; the worker applies them before its next set."""
        changes = {p.name: p.value for p in params if p.name in SPECS}
        if not changes:
            return
        s = self.settings.updated(changes)
        if "rig_file" in changes:
            try:
                self.rig = load_rig(s)  # the worker hands it to the pipeline
            except ConfigError as exc:  # the file changed since it was checked
                self.get_logger().error(f"{exc}; keeping the previous rig")
        self.settings = s
        self.get_logger().info(f"parameters changed: {changes}")
        if "rig_file" in changes or "publish_rig_tf" in changes:
            self._update_rig_tf(s)

    def _apply_settings(self) -> Settings:
        """The current settings, pushed into the pipeline first if they changed (worker)."""
        s, rig = self.settings, self.rig
        if s is not self._applied:
            self._worker.wait_idle()  # the map and publishing read these settings
            self._applied = s
            cfg = pipeline_config(s)  # validated by _on_set_parameters
            self.pipeline.reconfigure(points=cfg.points, fusion=cfg.fusion,
                                      min_confidence=cfg.min_confidence,
                                      rig=None if rig is self._applied_rig else rig)
            self._applied_rig = rig
        return s

    # ------------------------------------------------------------------ inference worker
    def _handle(self, synced: SyncedSet) -> None:
        """One set through both workers' steps on the calling thread (tests drive the
        node with it)."""
        self._finish(self._infer(synced))

    def _infer(self, synced: SyncedSet) -> tuple[Settings, SyncedSet, InferredSet]:
        """Worker one: apply changed parameters, run the network on the set."""
        s = self._apply_settings()
        return s, synced, self.pipeline.infer(synced)

    def _finish(self, item: tuple[Settings, SyncedSet, InferredSet]) -> None:
        """Worker two: fuse the set and publish its result."""
        s, _, inferred = item
        self._publish(self.pipeline.finish(inferred), s)

    def _stage_failed(self, stage: str, item: Any, exc: BaseException) -> None:
        """A worker's exception: the set is dropped and reported; the workers go on."""
        if self._stop.is_set() or not self.context.ok():
            return  # shutting down: publishers are gone, nothing to report
        synced = item if stage == "first" else item[1]
        self.diag.set_dropped("error", f"{type(exc).__name__}: {exc}")
        self._warn(("worker", type(exc).__name__), f"set at {synced.stamp_ns} ns "
                   f"failed and was dropped: {type(exc).__name__}: {exc}", error=True)

    def _publish(self, result: PipelineResult, s: Settings) -> None:
        """Report the set's bad views, then publish its outputs and record diagnostics."""
        errors = list(self.pipeline.last_errors.items())
        for name, message in result.skipped.items():
            # the skip kind (camera_info, size, encoding) is the key process() filed it under
            kind = next((k.split("/", 1)[1] for k, v in errors
                         if v == message and k.startswith(f"{name}/")), "view")
            self._bad(name, kind, message)
        if not result.ok:
            reason, _, detail = result.dropped.partition(": ")
            if reason == DROP_INFERENCE:
                self.diag.set_dropped(reason, detail)
                self._warn("inference", f"inference failed, set dropped: {detail}",
                           error=True)
            else:
                self.diag.set_dropped(reason)
            return
        if s.publish_depth:
            for name, out in result.cameras.items():  # the input image's header
                header = make_header(out.stamp_ns, out.frame_id)
                self._send(self._pub_depth[name], depth_to_image_msg(out.depth, header,
                                                                          s.depth_encoding), s)
                self._pub_depth_info[name].publish(camera_to_camera_info(out.camera, header))
        if s.publish_confidence:
            for name, out in result.cameras.items():  # same header as the depth image
                if out.confidence is not None:
                    header = make_header(out.stamp_ns, out.frame_id)
                    self._send(self._pub_confidence[name], array_to_image_msg(
                        out.confidence, "32FC1", header), s)
        if self._pub_odometry is not None and result.odometry is not None:
            self._pub_odometry.publish(odometry_msg(  # whether or not it fuses occupancy
                result.odometry, make_header(result.stamp_ns, self.pipeline.cfg.odom_frame),
                self.pipeline.rig.base_frame))
        if s.publish_points:
            self._send(self._pub_points, xyzrgb_cloud(
                result.points, result.colors, make_header(result.stamp_ns, result.points_frame)),
                s)
        self._publish_occupancy(result, s)
        fusion = result.fusion
        if fusion is not None and fusion.reset_reason is not None:
            self.diag.event("occupancy", f"map reset: {fusion.reset_reason}")
        elif fusion is not None and not fusion.accepted:
            self.diag.event("occupancy", fusion.message)
        note = result.odometry_note
        self.diag.odometry_note(None if note is None else f"{note} (odometry topic "
                                                          f"{s.odom_topic})")
        inference_s = sum(result.timings.get(k, 0.0) for k in INFERENCE_STAGES)
        # The map's statistics count its known voxels (a GPU sync): once per diagnostics
        # period is what the diagnostics show, not every set.
        now = time.monotonic()
        stats = None
        if now - self._fusion_stats_at >= s.diagnostics_period:
            stats, self._fusion_stats_at = self.pipeline.fusion.stats(), now
        self.diag.set_processed([c for c in s.camera_names if c not in result.cameras],
                                inference_s, (self._now_ns() - result.stamp_ns) / 1e9, stats)

    def _publish_occupancy(self, result: PipelineResult, s: Settings) -> None:
        """Voxels, markers and the 2D grid of the fused map, in the result's map frame."""
        if result.voxels is None:  # the fusion refused the update (a jump, a stale stamp)
            self._warn("occupancy", result.fusion_message)
            return
        header = make_header(result.stamp_ns, result.map_frame)
        if s.publish_voxels:
            self._send(self._pub_voxels, voxel_cloud(result.voxels, result.voxel_probability,
                                                     header), s)
        if s.publish_markers and self._markers_due(result, s.markers_period):
            centres, z_range = self.pipeline.marker_voxels(result, s.marker_max_voxels)
            self._send(self._pub_markers, marker_array_bytes(
                centres, self.pipeline.fusion.voxel_size, header, z_range=z_range), s)
            self._markers_stamp_ns = result.stamp_ns
        if s.publish_grid and result.grid2d is not None:
            self._pub_grid.publish(occupancy_grid_msg(result.grid2d, header))

    def _markers_due(self, result: PipelineResult, period: float) -> bool:
        """Whether this set's MarkerArray is due: `period` seconds of stamps after the last
        one (0 = every set), at once after a map reset or a stamp going backwards."""
        last = self._markers_stamp_ns
        fusion = result.fusion
        if last is None or period <= 0 or result.stamp_ns < last or (
                fusion is not None and fusion.reset_reason is not None):
            return True
        return result.stamp_ns - last >= round(period * 1e9)

    def _send(self, publisher: Any, msg: Any, s: Settings) -> None:
        """Publish `msg` (a message or serialized bytes); a large one at least
        `publish_spacing` seconds after the previous large one (see the module docstring).
        """
        if _payload_bytes(msg) > LARGE_MESSAGE_BYTES and s.publish_spacing > 0:
            wait = self._last_large + s.publish_spacing - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            publisher.publish(msg)
            self._last_large = time.monotonic()
            return
        publisher.publish(msg)

    # ------------------------------------------------------------------ shutdown
    def destroy_node(self) -> None:
        """Stop the worker, then destroy the rclpy node."""
        if hasattr(self, "_worker"):
            self._stop.set()
            self._worker.close()
        self._detach_core_logging()
        super().destroy_node()


def params_file_error(args: list[str]) -> str | None:
    """Why a `--params-file` among the ROS arguments of `args` cannot be read, or None.

    rcl refuses such a file too, but in words about its parser; this names the file, the
    line and column of a YAML error, or says that the file is missing.
    """
    in_ros = False
    for i, arg in enumerate(args):
        if arg == "--ros-args":
            in_ros = True
        elif arg == "--":
            in_ros = False
        elif in_ros and arg == "--params-file":
            if i + 1 >= len(args):
                return "--params-file needs a file name"
            path = Path(args[i + 1])
            try:
                data = yaml.safe_load(path.read_text())
            except OSError as exc:
                return f"parameters file '{path}' cannot be read: {exc.strerror or exc}"
            except yaml.YAMLError as exc:
                mark = getattr(exc, "problem_mark", None)
                where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
                problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
                return f"parameters file '{path}' is not valid YAML{where}: {problem}"
            if not isinstance(data, dict):
                return (f"parameters file '{path}' must be a mapping of node names to "
                        "'ros__parameters' (see config/depth_any_view.yaml)")
    return None


def _init_rclpy(args: list[str] | None) -> None:
    """`rclpy.init`, holding back what rcl itself writes to stderr meanwhile: replayed when
    it works, dropped when it fails (the exception says the same; the caller prints one
    line)."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no file descriptor (captured stderr)
        rclpy.init(args=args)
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), fd)
        try:
            rclpy.init(args=args)
        finally:
            os.dup2(saved, fd)
            os.close(saved)
        held.seek(0)
        text = held.read()
        if text:
            os.write(fd, text)


def main(args: list[str] | None = None) -> int:
    """Run the node until shutdown; exit status 2 with one line on stderr if it cannot start.

    `rclpy.init`, spin, then `destroy_node` and `try_shutdown` in `finally` (works on Jazzy
    and Kilted alike). Before `rclpy.init`, with Fast DDS and no Fast DDS configuration
    of the user's, the packaged profile is applied to this process (`ros/fastdds.py`); the
    node logs what it uses once it has started.
    """
    problem = params_file_error(sys.argv if args is None else args)
    if problem is not None:
        print(f"{NODE_NAME}: {problem}", file=sys.stderr)
        return 2
    dds = apply_default_profile()
    try:
        _init_rclpy(args)
    except Exception as exc:  # noqa: BLE001 - e.g. a --params-file rcl cannot use
        print(f"{NODE_NAME}: cannot initialise ROS: {str(exc).splitlines()[0]}",
              file=sys.stderr)
        return 2
    node = None
    try:
        node = DepthAnyViewNode(argv=args)
        # after start-up: a node that cannot start says one line on stderr, nothing else
        (node.get_logger().warning if dds.warn else node.get_logger().info)(dds.message)
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except StartupError as exc:
        print(f"{NODE_NAME}: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
