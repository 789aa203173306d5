"""The depth_any_view ROS 2 node: N synchronized cameras in; depth, points, occupancy out.

A thin adapter (docs/DESIGN.md): callbacks turn messages into arrays and hand them to the
core (`sync/` matches the cameras, `inference/` runs the network, `mapping/` builds points
and fuses occupancy), and the results go back out as messages (`ros/conversions.py`).

Threads:
- the executor thread runs every callback: image and CameraInfo callbacks validate the
  message and queue it in the synchronizer, the odometry callback keeps a short pose
  buffer, a steady timer polls the synchronizer for timed-out (partial) sets, another
  publishes /diagnostics. None of them waits for the network.
- one inference worker thread takes synchronized sets from a latest-wins slot of one: when
  the network is slower than the cameras, a set still waiting is replaced by the newer one
  (counted as `superseded` in /diagnostics) instead of queueing without bound. The worker
  runs the network, publishes depth, points and occupancy, all stamped with the set.

Bad input never stops the node: a message that cannot be used (unsupported encoding, a
`step` or size that does not match, missing or invalid CameraInfo, NaN odometry) is
dropped with a throttled warning naming the camera and field, and counted in
/diagnostics; the set goes ahead with the other cameras when at least `min_cameras`
remain. Start-up problems (a bad parameter, rig file or weights) end the process with one
line on stderr and exit status 2, before any of the node's topics exist.
"""

from __future__ import annotations

import bisect
import logging
import sys
import threading
import time
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import rclpy
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
from depth_any_view.data.encodings import ImageEncodingError, to_rgb8
from depth_any_view.geometry.camera import CalibrationError, PinholeCamera
from depth_any_view.geometry.rig import Rig
from depth_any_view.inference.engine import InferenceEngine, InferenceError
from depth_any_view.inference.prediction import Prediction
from depth_any_view.inference.preprocess import ViewInput
from depth_any_view.mapping.fusion import ODOM_FRAME, OccupancyFusion
from depth_any_view.mapping.points import depth_to_points, voxel_downsample
from depth_any_view.model.weights import WeightsError
from depth_any_view.ros.conversions import (
    camera_info_to_camera,
    camera_to_camera_info,
    depth_to_image_msg,
    image_msg_to_array,
    make_header,
    marker_array_msg,
    occupancy_grid_msg,
    odometry_to_transform,
    stamp_to_ns,
    voxel_cloud,
    xyzrgb_cloud,
)
from depth_any_view.ros.diagnostics import NodeDiagnostics, to_diagnostic_array
from depth_any_view.ros.params import (
    PARAMETERS,
    SPECS,
    ParameterError,
    Settings,
    check_value,
    engine_config,
    fusion_config,
    resolve_config_file,
    sync_config,
    to_descriptor,
)
from depth_any_view.ros.qos import diagnostics_qos, qos_profile
from depth_any_view.sync.approximate_time import ApproximateTimeSynchronizer, SyncedSet

NODE_NAME = "depth_any_view"
ODOM_BUFFER = 400  # odometry poses kept (4 s at 100 Hz)
ODOM_JUMP_BACK_NS = 1_000_000_000  # an odometry stamp this far back clears the buffer
QUATERNION_TOLERANCE = 1e-3  # |q| must be within this of 1
# Parameters rclpy itself declares or understands; they may appear in parameter files.
ROS_OWN_PARAMETERS = ("use_sim_time", "start_type_description_service")


class StartupError(RuntimeError):
    """The node cannot start; the message is the one line printed before exiting."""


@dataclass(frozen=True)
class ImagePayload:
    """A validated input image waiting in the synchronizer."""

    array: np.ndarray  # (H, W) or (H, W, C) view of the message's data, its encoding
    encoding: str
    frame_id: str  # header frame_id of the image (the depth output reuses it)
    stamp_ns: int  # header stamp of the image


@dataclass(frozen=True)
class InfoEntry:
    """The latest CameraInfo of a camera: its calibration, or why it is unusable."""

    key: tuple  # the message fields it was built from (to reuse unchanged calibrations)
    camera: PinholeCamera | None
    error: str | None


class LatestSlot:
    """A hand-over slot of one item between threads: a newer `put` replaces a waiting one."""

    def __init__(self) -> None:
        """Empty, open slot."""
        self._cond = threading.Condition()
        self._item: Any = None
        self._closed = False

    def put(self, item: Any) -> bool:
        """Offer `item`; True when it replaced an item nobody had taken yet."""
        with self._cond:
            replaced = self._item is not None
            self._item = item
            self._cond.notify()
            return replaced

    def take(self, timeout: float) -> Any:
        """The waiting item (emptying the slot), or None after `timeout` seconds / close."""
        with self._cond:
            if self._item is None and not self._closed:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return item

    def close(self) -> None:
        """Wake the taker; later takes return at once."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


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


class DepthAnyViewNode(Node):
    """The node; see the module docstring. Raises StartupError from the constructor."""

    def __init__(self, **kwargs: Any) -> None:
        """Declare parameters, load the rig and the network, then create topics and threads.

        Keyword arguments go to rclpy's Node (e.g. `context`, `parameter_overrides`).
        """
        super().__init__(NODE_NAME, **kwargs)
        self._attach_core_logging()
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
            full_rig = Rig.from_yaml(resolve_config_file(s.rig_file))
        except ConfigError as exc:
            raise StartupError(f"parameter 'rig_file' ({s.rig_file!r}): {exc}") from None
        try:
            self.rig: Rig = full_rig.subset(s.camera_names)
        except ConfigError as exc:
            raise StartupError(f"parameter 'camera_names': {exc} (rig_file "
                               f"{s.rig_file!r})") from None
        try:
            self.engine = InferenceEngine(engine_config(s, return_images=True))
        except (ConfigError, WeightsError) as exc:
            raise StartupError(str(exc)) from None
        self.fusion = OccupancyFusion(fusion_config(s, self.engine.grid),
                                      device=self.engine.device)
        self.sync = ApproximateTimeSynchronizer(sync_config(s))
        self.diag = NodeDiagnostics(s.camera_names, latency_window=s.latency_window,
                                    input_timeout=s.input_timeout)
        self._engine_info = {k: v for k, v in self.engine.describe().items()
                             if k in ("device", "device_name", "precision", "preset", "weights",
                                      "image_size", "compiled")}
        self._sync_lock = threading.Lock()
        self._odom_lock = threading.Lock()
        self._odom_stamps: list[int] = []  # sorted, int ns
        self._odom_poses: list[np.ndarray] = []  # (4, 4) T_odom_base, same order
        self._info: dict[str, InfoEntry] = {}
        self._throttle: dict[Any, float] = {}
        self._once: set[str] = set()
        self._odom_missing = False

        self._create_topics(s)
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._poll_timer = self.create_timer(s.sync_poll_period, self._on_poll, clock=steady)
        self._diag_timer = self.create_timer(s.diagnostics_period, self._on_diagnostics,
                                             clock=steady)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.add_post_set_parameters_callback(self._after_set_parameters)

        self._slot = LatestSlot()
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._work, name="depth_any_view_inference",
                                        daemon=True)
        self._worker.start()
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
        for name in s.camera_names:
            self._pub_depth[name] = self.create_publisher(
                Image, s.camera_topic(name, s.depth_image_topic), out_qos)
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
        self._subs.append(self.create_subscription(
            Odometry, s.odom_topic, self._on_odometry, qos_profile(s.odom_qos, s.qos_depth)))

    # ------------------------------------------------------------------ helpers
    def _now_ns(self) -> int:
        """The node clock (sim time under use_sim_time) in integer nanoseconds."""
        return int(self.get_clock().now().nanoseconds)

    def _warn(self, key: Any, message: str) -> None:
        """A warning, at most once per `warn_throttle` seconds for each key."""
        now = time.monotonic()
        last = self._throttle.get(key)
        if last is None or now - last >= self.settings.warn_throttle:
            self._throttle[key] = now
            self.get_logger().warning(message)

    def _warn_once(self, key: str, message: str) -> None:
        """A warning logged only the first time for `key`."""
        if key not in self._once:
            self._once.add(key)
            self.get_logger().warning(message)

    def _bad(self, source: str, field_name: str, message: str) -> None:
        """Count and (throttled) report a rejected input of `source` (camera or odometry)."""
        self.diag.bad_input(source, field_name, message)
        self._warn((source, field_name), f"{message} (dropped)")

    # ------------------------------------------------------------------ input callbacks
    def _on_image(self, camera: str, msg: Image) -> None:
        """Validate an image and queue it in the synchronizer."""
        self.diag.image_received(camera)
        try:
            array = image_msg_to_array(msg)
        except ImageEncodingError as exc:
            self._bad(camera, "image", f"camera '{camera}' image: {exc}")
            return
        frame = msg.header.frame_id or self.rig[camera].frame_id
        if msg.header.frame_id and msg.header.frame_id != self.rig[camera].frame_id:
            self._warn_once(f"frame:{camera}", (
                f"camera '{camera}' images are in frame '{msg.header.frame_id}' but rig_file "
                f"calls its optical frame '{self.rig[camera].frame_id}'; using the rig's "
                "extrinsics for them"))
        stamp = stamp_to_ns(msg.header.stamp)
        payload = ImagePayload(array, msg.encoding, frame, stamp)
        with self._sync_lock:
            sets = self.sync.add_image(camera, stamp, payload, self._now_ns())
            reset = self.sync.take_reset()
        self._dispatch(sets, reset)

    def _on_camera_info(self, camera: str, msg: CameraInfo) -> None:
        """Convert a CameraInfo (reusing an unchanged calibration) for the synchronizer."""
        key = (msg.width, msg.height, msg.distortion_model, tuple(msg.d), tuple(msg.k),
               tuple(msg.r), tuple(msg.p))
        entry = self._info.get(camera)
        if entry is None or entry.key != key:
            try:
                entry = InfoEntry(key, camera_info_to_camera(msg), None)
            except CalibrationError as exc:
                entry = InfoEntry(key, None, f"camera '{camera}' CameraInfo: {exc}")
                self._bad(camera, "camera_info", entry.error)
            self._info[camera] = entry
        with self._sync_lock:
            self.sync.add_camera_info(camera, stamp_to_ns(msg.header.stamp), entry)

    def _on_odometry(self, msg: Any) -> None:
        """Validate an odometry pose and keep it, sorted by stamp, for the worker."""
        try:
            T = odometry_to_transform(msg, QUATERNION_TOLERANCE)
        except ValueError as exc:
            self._bad("odometry", "pose", f"odometry on {self.settings.odom_topic}: {exc}")
            return
        if msg.header.frame_id and msg.header.frame_id != self.settings.odom_frame:
            self._warn_once("odom_frame", (
                f"odometry is in frame '{msg.header.frame_id}', parameter odom_frame is "
                f"'{self.settings.odom_frame}'; occupancy is published in the latter"))
        if msg.child_frame_id and msg.child_frame_id != self.rig.base_frame:
            self._warn_once("odom_child", (
                f"odometry child_frame_id is '{msg.child_frame_id}', the rig's base frame is "
                f"'{self.rig.base_frame}'; the pose is taken as the rig's base frame"))
        stamp = stamp_to_ns(msg.header.stamp)
        with self._odom_lock:
            if self._odom_stamps and stamp < self._odom_stamps[-1] - ODOM_JUMP_BACK_NS:
                self.get_logger().info(
                    f"odometry stamp jumped back {(self._odom_stamps[-1] - stamp) / 1e9:.2f} s "
                    "(looped bag or clock reset): pose buffer cleared")
                self._odom_stamps.clear()
                self._odom_poses.clear()
            i = bisect.bisect_left(self._odom_stamps, stamp)
            if i < len(self._odom_stamps) and self._odom_stamps[i] == stamp:
                self._odom_poses[i] = T
            else:
                self._odom_stamps.insert(i, stamp)
                self._odom_poses.insert(i, T)
            if len(self._odom_stamps) > ODOM_BUFFER:
                del self._odom_stamps[0], self._odom_poses[0]

    def _on_poll(self) -> None:
        """Let timed-out windows go ahead as partial sets."""
        with self._sync_lock:
            sets = self.sync.poll(self._now_ns())
            reset = self.sync.take_reset()
        self._dispatch(sets, reset)

    def _dispatch(self, sets: list[SyncedSet], reset: Any) -> None:
        """Hand sets to the worker (latest wins) and log a synchronizer reset."""
        if reset is not None:
            self.get_logger().info(f"synchronizer reset: {reset.reason}")
        for synced in sets:
            if self._slot.put(synced):
                self.diag.set_dropped("superseded")

    def _on_diagnostics(self) -> None:
        """Publish /diagnostics."""
        with self._sync_lock:
            stats = self.sync.stats()
        statuses = self.diag.statuses(sync_stats=stats, engine=self._engine_info)
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
            self.settings.updated(changes)
        except ParameterError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    def _after_set_parameters(self, params: list[Any]) -> None:
        """Apply accepted runtime changes (the worker reads settings once per set)."""
        changes = {p.name: p.value for p in params if p.name in SPECS}
        if changes:
            self.settings = self.settings.updated(changes)
            self.get_logger().info(f"parameters changed: {changes}")

    # ------------------------------------------------------------------ inference worker
    def _work(self) -> None:
        """Worker loop: take the latest set, process it; never let one set stop the loop."""
        while not self._stop.is_set():
            synced = self._slot.take(timeout=0.1)
            if synced is None:
                continue
            try:
                self._process(synced)
            except Exception as exc:  # noqa: BLE001 - keep serving; the error is reported
                if self._stop.is_set() or not self.context.ok():
                    return  # shutting down: publishers are gone, nothing to report
                self.diag.set_dropped("error", f"{type(exc).__name__}: {exc}")
                self.get_logger().error(f"set at {synced.stamp_ns} ns failed: "
                                        f"{type(exc).__name__}: {exc}")

    def _view_input(self, name: str, view: Any) -> ViewInput | None:
        """The engine's input for one synchronized view, or None (reported) if unusable."""
        payload: ImagePayload = view.payload
        info: InfoEntry = view.info
        if info.camera is None:
            self._bad(name, "camera_info", info.error or f"camera '{name}': no CameraInfo")
            return None
        cam = info.camera
        h, w = payload.array.shape[:2]
        if (cam.width, cam.height) != (w, h):
            self._bad(name, "camera_info", (
                f"camera '{name}' CameraInfo 'width'/'height' is {cam.width}x{cam.height} but "
                f"its image is {w}x{h}; publish the CameraInfo of the image's resolution"))
            return None
        rgb = to_rgb8(payload.array, payload.encoding)  # (H, W, 3) uint8
        return ViewInput(name, rgb, cam, self.rig[name].T_base_cam)

    def _process(self, synced: SyncedSet) -> None:
        """Network, then depth, points and occupancy outputs for one synchronized set."""
        s = self.settings
        views: list[ViewInput] = []
        payloads: dict[str, ImagePayload] = {}
        for name, view in synced.views.items():
            built = self._view_input(name, view)
            if built is not None:
                views.append(built)
                payloads[name] = view.payload
        if len(views) < s.min_cameras or not views:
            self.diag.set_dropped("bad_input")
            return
        try:
            pred = self.engine.infer(views)
        except (InferenceError, ValueError) as exc:
            self.diag.set_dropped("inference_error", str(exc))
            self._warn("inference", f"inference failed, set dropped: {exc}")
            return
        if s.publish_depth:
            self._publish_depth(pred, payloads)
        if s.publish_points:
            self._publish_points(pred, synced.stamp_ns, s)
        fusion_state = self._publish_occupancy(pred, synced.stamp_ns, s)
        missing = [c for c in s.camera_names if c not in payloads]
        self.diag.set_processed(missing, pred.timings.get("total", float("nan")),
                                (self._now_ns() - synced.stamp_ns) / 1e9, fusion_state)

    def _publish_depth(self, pred: Prediction, payloads: dict[str, ImagePayload]) -> None:
        """Per camera: depth (32FC1) and its CameraInfo, with the input image's header."""
        for i, name in enumerate(pred.camera_names):
            depth, camera = pred.view_depth(i)
            header = make_header(payloads[name].stamp_ns, payloads[name].frame_id)
            self._pub_depth[name].publish(depth_to_image_msg(depth, header))
            self._pub_depth_info[name].publish(camera_to_camera_info(camera, header))

    def _publish_points(self, pred: Prediction, stamp_ns: int, s: Settings) -> None:
        """The coloured cloud of every view's network depth, in base_link."""
        K = np.stack([c.K for c in pred.cameras])  # (V, 3, 3)
        max_depth = s.points_max_depth if s.points_max_depth > 0 else float("inf")
        points, colors = depth_to_points(pred.depth, K, pred.T_base_cam, pred.images,
                                         stride=s.points_stride, max_depth=max_depth)
        if s.points_voxel_size > 0:
            points, colors = voxel_downsample(points, colors, s.points_voxel_size)
        header = make_header(stamp_ns, self.rig.base_frame)
        self._pub_points.publish(xyzrgb_cloud(points, colors, header))

    def _odometry_at(self, stamp_ns: int, max_age_ns: int) -> np.ndarray | None:
        """The buffered pose nearest to `stamp_ns`, if within `max_age_ns`; else None."""
        with self._odom_lock:
            stamps = self._odom_stamps
            if not stamps:
                return None
            i = bisect.bisect_left(stamps, stamp_ns)
            best = min((j for j in (i - 1, i) if 0 <= j < len(stamps)),
                       key=lambda j: abs(stamps[j] - stamp_ns))
            if abs(stamps[best] - stamp_ns) > max_age_ns:
                return None
            return self._odom_poses[best]

    def _publish_occupancy(self, pred: Prediction, stamp_ns: int,
                           s: Settings) -> dict[str, Any]:
        """Fuse the set's occupancy volume, then publish voxels, markers and the 2D grid."""
        wanted = fusion_config(s, pred.grid, base=self.fusion.config)
        if wanted != self.fusion.config:
            self.fusion.config = wanted  # runtime thresholds, decay and jump limits
        pose = None
        if s.use_odometry:
            pose = self._odometry_at(stamp_ns, int(s.odom_max_age * 1e9))
            note = None if pose is not None else (
                f"no odometry on {s.odom_topic} within {s.odom_max_age} s of the set stamp: "
                "single-frame occupancy in base_link")
            if note is not None and not self._odom_missing:
                self.get_logger().warning(note)
            elif note is None and self._odom_missing:
                self.get_logger().info(f"odometry on {s.odom_topic} is back: fusing in odom")
            self._odom_missing = note is not None
            self.diag.odometry_note(note)
        else:
            self.diag.odometry_note(None)
        status = self.fusion.update(pred.occupancy, pred.observed, pred.grid, stamp_ns, pose)
        if status.reset_reason is not None:
            self.get_logger().info(f"occupancy map reset: {status.reset_reason}")
        state = self.fusion.stats()
        if not status.accepted:
            self._warn("occupancy", status.message)
            return state
        frame = s.odom_frame if status.frame == ODOM_FRAME else self.rig.base_frame
        header = make_header(stamp_ns, frame)
        if s.publish_voxels or s.publish_markers:
            centres, probs = self.fusion.occupied_voxels(s.occupied_threshold)
            if s.publish_voxels:
                self._pub_voxels.publish(voxel_cloud(centres, probs, header))
            if s.publish_markers:
                if centres.shape[0] > s.marker_max_voxels:
                    keep = np.argsort(-probs, kind="stable")[: s.marker_max_voxels]
                    centres = centres[keep]
                base_z = 0.0 if pose is None else float(pose[2, 3])
                lo, hi = self.fusion.config.lower[2], self.fusion.config.upper[2]
                self._pub_markers.publish(marker_array_msg(
                    centres, self.fusion.voxel_size, header,
                    z_range=(base_z + lo, base_z + hi)))
        if s.publish_grid:
            grid2d = self.fusion.occupancy_grid(s.grid_z_min, s.grid_z_max,
                                                s.occupied_threshold, s.free_threshold)
            self._pub_grid.publish(occupancy_grid_msg(grid2d, header))
        return state

    # ------------------------------------------------------------------ shutdown
    def destroy_node(self) -> None:
        """Stop the worker, then destroy the rclpy node."""
        if hasattr(self, "_worker"):
            self._stop.set()
            self._slot.close()
            self._worker.join(timeout=10.0)
        self._detach_core_logging()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """Run the node until shutdown; exit status 2 with one line on stderr if it cannot start.

    `rclpy.init`, spin, then `destroy_node` and `try_shutdown` in `finally` (works on Jazzy
    and Kilted alike).
    """
    try:
        rclpy.init(args=args)
    except Exception as exc:  # noqa: BLE001 - e.g. a malformed --params-file
        print(f"{NODE_NAME}: cannot initialise ROS: {str(exc).splitlines()[0]}",
              file=sys.stderr)
        return 2
    node = None
    try:
        node = DepthAnyViewNode()
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
