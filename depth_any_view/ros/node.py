"""The depth_any_view ROS 2 node: N synchronized cameras in; depth, points, occupancy out.

A thin adapter over `depth_any_view.pipeline.Pipeline`, the object the offline bag
evaluation (bag/feeder.py) runs too. The executor thread runs every callback: images and
CameraInfo are converted (`ros/conversions.py`) and queued in the pipeline, odometry goes to
its pose buffer, a steady timer polls for timed-out partial sets, another publishes
/diagnostics; none waits for the network. Two workers (`overlap.TwoStageRunner`): the
first takes sets from a latest-wins slot (a replaced set counts as `superseded`), applies
changed runtime parameters (`ros/runtime_params.py`, once the second is idle) and runs the
network (`Pipeline.infer`); the second takes its sets in order, fuses them
(`Pipeline.finish`) and publishes the result (`ros/result_publisher.py`), so the network of
set N + 1 runs while set N is fused and published. Bad input, skipped views and dropped sets never
stop the node: they are counted and logged (`ros/outcomes.py`, `ros/diagnostics.py`).
Start-up is `ros/startup.py`: a problem there ends the process with one line on stderr
and exit status 2, before any topic exists. docs/TROUBLESHOOTING.md lists the messages.
"""

from __future__ import annotations

import sys
import threading
from functools import partial
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image

from depth_any_view.data.encodings import ImageEncodingError
from depth_any_view.overlap import TwoStageRunner
from depth_any_view.pipeline import QUATERNION_TOLERANCE, InferredSet
from depth_any_view.ros.conversions import image_msg_to_array, odometry_to_transform, stamp_to_ns
from depth_any_view.ros.diagnostics import OK, to_diagnostic_array
from depth_any_view.ros.log_bridge import CoreLogBridge
from depth_any_view.ros.lost_images import subscribe_reporting_losses
from depth_any_view.ros.outcomes import Outcomes
from depth_any_view.ros.params import Settings, unmatched_params_files
from depth_any_view.ros.qos import diagnostics_qos, qos_profile
from depth_any_view.ros.result_publisher import ResultPublisher
from depth_any_view.ros.rig_tf import RigTfSwitch
from depth_any_view.ros.runtime_params import RuntimeParameters, parameter_changes
from depth_any_view.ros.startup import (
    StartupError,
    declare_parameters,
    node_diagnostics,
    ready_line,
    run_node,
    start_pipeline,
    unknown_parameters,
)
from depth_any_view.ros.throttled_log import ThrottledLog
from depth_any_view.sync.approximate_time import SyncedSet

NODE_NAME = "depth_any_view"
ENGINE_FIELDS = ("device", "device_name", "precision", "preset", "weights", "image_size",
                 "compiled", "cpu_capability")  # what /diagnostics shows of the engine


class DepthAnyViewNode(Node):
    """The node; see the module docstring. Raises StartupError from the constructor."""

    def __init__(self, *, argv: list[str] | None = None, **kwargs: Any) -> None:
        """Declare parameters, load the rig and the network, then create topics and threads.

        `argv`: the command line rclpy was initialised with (default `sys.argv`); its
        `--params-file`s are checked against the node's name. Other keyword arguments go
        to rclpy's Node (e.g. `context`, `parameter_overrides`, `cli_args`).
        """
        super().__init__(NODE_NAME, **kwargs)
        self._core_log = CoreLogBridge(self.get_logger())
        args = list(sys.argv if argv is None else argv)
        if not kwargs.get("use_global_arguments", True):
            args = []
        args += ["--"] + list(kwargs.get("cli_args") or [])
        for warning in unmatched_params_files(args, self.get_fully_qualified_name()):
            self.get_logger().warning(warning)
        try:
            self._setup()
        except StartupError:
            self._core_log.close()
            super().destroy_node()
            raise

    @property
    def settings(self) -> Settings:
        """The parameters as they are now (runtime changes included)."""
        return self._params.settings

    @property
    def rig(self) -> Any:
        """The rig as it is now (a runtime change of rig_file included)."""
        return self._params.rig

    def _setup(self) -> None:
        """Everything the constructor does after creating the rclpy node."""
        s = declare_parameters(self)
        unknown = unknown_parameters(self)
        if unknown:  # a warning, not an error: /** sections of shared files reach every node
            self.get_logger().warning(
                f"ignoring parameter(s) {unknown}: {NODE_NAME} has no such parameter (a typo? "
                "see config/depth_any_view.yaml)")
        self.pipeline = start_pipeline(s)  # loads the rig and the network
        self._params = RuntimeParameters(s, self.pipeline.rig)
        self._log = ThrottledLog(self.get_logger(), lambda: self.settings.warn_throttle)
        self.diag = node_diagnostics(s)
        self._outcomes = Outcomes(self.diag, self._log, self.pipeline)
        self._engine_info = {k: v for k, v in self.pipeline.engine.describe().items()
                             if k in ENGINE_FIELDS}
        self._create_topics(s)
        self._rig_tf = RigTfSwitch(self)  # base_link -> optical frames on /tf_static
        self._rig_tf.update_and_log(s.publish_rig_tf, self.rig, self._now_ns(), s.rig_file)
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._poll_timer = self.create_timer(s.sync_poll_period, self._on_poll, clock=steady)
        self._diag_timer = self.create_timer(s.diagnostics_period, self._on_diagnostics,
                                             clock=steady)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.add_post_set_parameters_callback(self._after_set_parameters)
        self._stop = threading.Event()
        self._worker = TwoStageRunner(self._infer, self._finish, self._stage_failed,
                                      name="depth_any_view")
        self.get_logger().info(ready_line(s, self._engine_info))

    def _create_topics(self, s: Settings) -> None:
        """Publishers first (so no input is processed without them), then subscriptions."""
        self.outputs = ResultPublisher(self, s, self.pipeline)
        self._pub_diag = self.create_publisher(DiagnosticArray, s.diagnostics_topic,
                                               diagnostics_qos())
        cam_qos = qos_profile(s.camera_qos, s.qos_depth)
        self._subs = []
        for name in s.camera_names:
            self._subs.append(subscribe_reporting_losses(
                self, Image, s.camera_topic(name, s.image_topic), partial(self._on_image, name),
                cam_qos, partial(self._outcomes.images_lost, name)))
            self._subs.append(self.create_subscription(
                CameraInfo, s.camera_topic(name, s.camera_info_topic),
                partial(self._on_camera_info, name), cam_qos))
        if s.odometry_source == "topic":  # else cameras-only odometry: /odom is not read
            self._subs.append(self.create_subscription(
                Odometry, s.odom_topic, self._on_odometry,
                qos_profile(s.odom_qos, s.qos_depth)))

    def _now_ns(self) -> int:
        """The node clock (sim time under use_sim_time) in integer nanoseconds."""
        return int(self.get_clock().now().nanoseconds)

    # ------------------------------------------------------------------ input callbacks
    def _on_image(self, camera: str, msg: Image) -> None:
        """Convert an image and queue it in the pipeline's synchronizer (one larger than
        max_image_pixels is refused on its header, before its data is read)."""
        self.diag.image_received(camera)
        too_large = self.pipeline.check_image_size(camera, msg.width, msg.height)
        if too_large is not None:
            self._outcomes.bad_input(camera, "image_size", too_large)
            return
        try:
            array = image_msg_to_array(msg)
        except ImageEncodingError as exc:
            self._outcomes.bad_input(camera, "image", f"camera '{camera}' image: {exc}")
            return
        key = f"{camera}/image"
        before = self.pipeline.last_errors.get(key)
        sets = self.pipeline.add_image(camera, stamp_to_ns(msg.header.stamp), array,
                                       self._now_ns(), encoding=msg.encoding,
                                       frame_id=msg.header.frame_id or None)
        error = self.pipeline.last_errors.get(key)
        if error is not None and error is not before:  # a new message: this image was refused
            self._outcomes.bad_input(camera, "image", error)
        self._dispatch(sets)

    def _on_camera_info(self, camera: str, msg: CameraInfo) -> None:
        """Hand a CameraInfo to the pipeline (an unchanged calibration is reused there)."""
        error = self.pipeline.add_camera_info(camera, stamp_to_ns(msg.header.stamp), msg)
        if error is not None:
            self._outcomes.bad_input(camera, "camera_info", error)

    def _on_odometry(self, msg: Odometry) -> None:
        """Convert an odometry pose (naming a bad field) into the pipeline's pose buffer."""
        s, topic = self.settings, self.settings.odom_topic
        try:
            T = odometry_to_transform(msg, QUATERNION_TOLERANCE)  # (4, 4) T_odom_base
        except ValueError as exc:
            error: str | None = str(exc)
        else:
            error = self.pipeline.add_odometry(stamp_to_ns(msg.header.stamp), T)
        if error is not None:
            self._outcomes.bad_input("odometry", "pose",
                                     f"odometry on {topic}: {error.removeprefix('odometry: ')}")
            return
        if msg.header.frame_id and msg.header.frame_id != s.odom_frame:
            self._log.once("odom_frame", (
                f"odometry on {topic} is in frame '{msg.header.frame_id}', parameter "
                f"odom_frame is '{s.odom_frame}'; occupancy is published in the latter"))
        if msg.child_frame_id and msg.child_frame_id != self.rig.base_frame:
            self._log.once("odom_child", (
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
        """Log the diagnostics' events and publish /diagnostics."""
        # The synchronizer is only touched from this (the executor's) thread, never by
        # the worker, so its counters can be read here without the pipeline's full stats.
        sync_stats = self.pipeline.sync.stats()
        s = self.settings
        for level, message in self.diag.events(sync_stats=sync_stats):
            if level == OK:  # rclpy's logger wants one severity per call site
                self.get_logger().info(message)
            else:
                self.get_logger().warning(message)
        for cam, c in sync_stats["cameras"].items():
            if c["received"] and not c["has_camera_info"]:  # its images wait, then drop
                self._log.warn((cam, "no_camera_info"), (
                    f"camera '{cam}': images arrive on {s.camera_topic(cam, s.image_topic)} "
                    f"but no CameraInfo on {s.camera_topic(cam, s.camera_info_topic)} yet; "
                    "its images wait for it (and are dropped after sync_timeout)"))
        statuses = self.diag.statuses(sync_stats=sync_stats, engine=self._engine_info)
        self._pub_diag.publish(to_diagnostic_array(statuses, self.get_clock().now().to_msg(),
                                                   NODE_NAME))

    # ------------------------------------------------------------------ parameters
    def _on_set_parameters(self, params: list[Any]) -> SetParametersResult:
        """Refuse runtime changes that are start-up only or not allowed, with the reason."""
        reason = self._params.check(parameter_changes(params))
        return SetParametersResult(successful=reason is None, reason=reason or "")

    def _after_set_parameters(self, params: list[Any]) -> None:
        """Record accepted runtime changes; the worker applies them before its next set."""
        changes = parameter_changes(params)
        if not changes:
            return
        error = self._params.accept(changes)
        if error is not None:
            self.get_logger().error(error)
        self.get_logger().info(f"parameters changed: {changes}")
        if "rig_file" in changes or "publish_rig_tf" in changes:
            s = self.settings
            self._rig_tf.update_and_log(s.publish_rig_tf, self.rig, self._now_ns(), s.rig_file)

    # ------------------------------------------------------------------ inference worker
    def _handle(self, synced: SyncedSet) -> None:
        """One set through both workers' steps on the calling thread (tests drive it)."""
        self._finish(self._infer(synced))

    def _infer(self, synced: SyncedSet) -> tuple[Settings, SyncedSet, InferredSet]:
        """Worker one: apply changed parameters (once worker two is idle), run the network."""
        s = self._params.apply(self.pipeline, before_change=self._worker.wait_idle)
        return s, synced, self.pipeline.infer(synced)

    def _finish(self, item: tuple[Settings, SyncedSet, InferredSet]) -> None:
        """Worker two: fuse the set, publish and record it."""
        s, _, inferred = item
        result = self.pipeline.finish(inferred)
        if self._outcomes.set_result(result):
            self.outputs.publish(result, s)
            self._outcomes.set_published(result, s, (self._now_ns() - result.stamp_ns) / 1e9)

    def _stage_failed(self, stage: str, item: Any, exc: BaseException) -> None:
        """A worker's exception: the set is dropped and reported; the workers go on."""
        if self._stop.is_set() or not self.context.ok():
            return  # shutting down: publishers are gone, nothing to report
        synced = item if stage == "first" else item[1]
        self.diag.set_dropped("error", f"{type(exc).__name__}: {exc}")
        self._log.warn(("worker", type(exc).__name__), f"set at {synced.stamp_ns} ns "
                       f"failed and was dropped: {type(exc).__name__}: {exc}", error=True)

    def destroy_node(self) -> None:
        """Stop the worker, then destroy the rclpy node."""
        if hasattr(self, "_worker"):
            self._stop.set()
            self._worker.close()
        self._core_log.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """Run the node until shutdown: exit status 0, or 2 with one line on stderr if it
    cannot start (`ros/startup.py run_node`)."""
    return run_node(DepthAnyViewNode, args, NODE_NAME)


if __name__ == "__main__":
    sys.exit(main())
