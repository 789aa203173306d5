"""Faults the node survives (issue 8), each checked on the real node.

Start-up faults run the node's executable (`python -m depth_any_view.ros.node`) and expect
exit status 2 with one line on stderr, before any of its topics exist. A network that
raises at runtime is injected in a node built in this process (its engine's forward pass
raises once, as a CUDA out-of-memory error would), with the real worker thread running.
Every other fault goes over real DDS (localhost, a private ROS_DOMAIN_ID) to one node
process for the whole module: a tiny random network on one CPU thread, `use_sim_time` with
this test publishing /clock like a bag player, six 64x48 rgb8 cameras at 10 Hz from a fake
robot that can stop cameras, withhold CameraInfo, duplicate, delay, reorder or speed up a
camera, corrupt images, CameraInfo and odometry, jump the odometry and loop time back.

Checked for each fault: outputs go on from the usable views (at least `min_cameras` = 4),
nothing is ever mixed up (stamps, spreads, no stale voxels after a reset), the node's log
has a (throttled) line naming the camera and field or the reason, /diagnostics shows the
fault at WARN (or ERROR) with a message saying what it is, and the node keeps running.
The tests of the DDS part run in file order and share the node; each restores the robot.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import (
    OCCUPANCY_GAIN,
    SpinningNode,
    dds_env,
    ros_args,
    run_nodes_to_exit,
    start_node,
    stop_node,
    tail,
    tiny_model,
    write_tiny_network,
)

from depth_any_view.ros.process import NodeProcess

pytestmark = [pytest.mark.ros, pytest.mark.slow]

CAMERAS = ["front", "front_left", "front_right", "back", "back_left", "back_right"]
SIZE = (64, 48)  # (width, height) of the synthetic images
N_IMAGES = 4  # distinct image sets the robot cycles through
MIN_CAMERAS = 4
SLOP_NS = 20_000_000
SIM_START_NS = 1_000 * 10**9  # sim time of the first /clock
P_MAX = 0.95  # FusionConfig.p_max: one observation never exceeds it
TINY_MODEL = tiny_model(grid_lower=[-12.8, -12.8, -1.0], grid_upper=[12.8, 12.8, 3.0])
NODE_PARAMS = {"threads": 1, "warmup_iters": 1, "input_timeout": 0.5, "diagnostics_period": 0.25,
               "warn_throttle": 0.5, "min_cameras": MIN_CAMERAS, "sync_slop": SLOP_NS / 1e9,
               "grid_qos": "reliable",  # every grid arrives (they tell the map's pose)
               "max_image_pixels": 100_000}  # a 400x300 image stands for an 8000x8000 one
SKEW_NS = 30_000_000  # a camera stamping this late is out of sync (slop 20 ms)
WARN, ERROR = b"\x01", b"\x02"


# ---------------------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def ros_env() -> dict[str, str]:
    """Environment of every process of this module: localhost DDS on a private domain."""
    return dds_env(domains=(101, 200))


@pytest.fixture(scope="module")
def tiny_network(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A tiny model config and random weights whose occupancy output layer is scaled so
    its probabilities are confident (many voxels occupied, many free)."""
    net = write_tiny_network(tmp_path_factory.mktemp("tiny_network"), TINY_MODEL,
                             occupancy_gain=OCCUPANCY_GAIN, occupancy_bias=0.0)
    return {k: str(v) for k, v in net.items()}


def _wait(predicate: Callable[[], Any], timeout: float, what: str, log: Path | None = None
          ) -> Any:
    """Poll `predicate` until it returns something true; fail naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout} s waiting for {what}"
                + (f"; node log:\n{tail(log)}" if log else ""))


# ---------------------------------------------------------------------------- start-up faults
def test_start_up_faults_exit_non_zero_with_one_clear_line(ros_env, tiny_network,
                                                          tmp_path: Path) -> None:
    """Corrupt or other-preset weights and malformed parameter files: exit status 2 and
    exactly one line on stderr saying what is wrong (the processes run in parallel; a
    missing weights file is test_node_integration.py's)."""
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes())
    bad_yaml = tmp_path / "bad_syntax.yaml"
    bad_yaml.write_text("depth_any_view:\n  ros__parameters:\n    sync_slop: [0.02,\n")
    bad_type = tmp_path / "bad_type.yaml"
    bad_type.write_text("depth_any_view:\n  ros__parameters:\n    sync_slop: fast\n")
    bad_shape = tmp_path / "bad_shape.yaml"
    bad_shape.write_text("depth_any_view:\n  ros__parameters: 5\n")
    preset = {"preset": tiny_network["preset"]}
    cases = {
        "corrupt weights": (ros_args({**preset, "weights": str(corrupt)}),
                            "is not a valid safetensors file"),
        "weights of another preset": (ros_args({"weights": tiny_network["weights"]}),
                                      "was made for another model configuration"),
        "parameters file with a YAML error": (["--ros-args", "--params-file", str(bad_yaml)],
                                              f"parameters file '{bad_yaml}' is not valid YAML "
                                              "at line 4"),
        "parameters file with a wrong type": (["--ros-args", "--params-file", str(bad_type)],
                                              "parameter 'sync_slop' must be a floating-point "
                                              "number, got str 'fast'"),
        "parameters file rcl cannot use": (["--ros-args", "--params-file", str(bad_shape)],
                                           f"Couldn't parse params file: '--params-file "
                                           f"{bad_shape}'"),
    }
    results = run_nodes_to_exit({name: args for name, (args, _) in cases.items()}, ros_env)
    failures = []
    for name, (code, out, err) in results.items():
        lines = [ln for ln in err.splitlines() if ln.strip()]
        expected = cases[name][1]
        ok = (code == 2 and len(lines) == 1 and expected in lines[0]
              and lines[0].startswith("depth_any_view: ") and "Traceback" not in out + err)
        print(f"{name}: exit {code}: {err.strip()}")
        if not ok:
            failures.append(f"{name}: exit {code}, expected one line with "
                            f"{expected!r}; stderr:\n{err}\nstdout:\n{out}")
    assert not failures, "\n\n".join(failures)


@pytest.fixture()
def ros_context() -> Iterator[Any]:
    """An rclpy context of its own (localhost, a random domain) for a node in this process."""
    import rclpy

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
        ctx = rclpy.Context()
        rclpy.init(context=ctx, domain_id=random.SystemRandom().randint(201, 230))
        try:
            yield ctx
        finally:
            rclpy.try_shutdown(context=ctx)


def test_start_up_faults_come_before_any_topic(ros_context, tiny_network,
                                              tmp_path: Path) -> None:
    """The same weights faults in this process: StartupError before `_create_topics`."""
    from rclpy.parameter import Parameter

    from depth_any_view.ros.node import DepthAnyViewNode, StartupError

    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x00" * 64)

    def no_topics(self, settings):  # noqa: ANN001 - replaces a method
        raise AssertionError("topics created before the start-up error")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(DepthAnyViewNode, "_create_topics", no_topics)
        for params, expected in (
                ({"preset": tiny_network["preset"], "weights": str(corrupt)},
                 "not a valid safetensors file"),
                ({"weights": tiny_network["weights"]}, "another model configuration")):
            with pytest.raises(StartupError, match=expected):
                DepthAnyViewNode(context=ros_context, parameter_overrides=[
                    Parameter(k, value=v) for k, v in params.items()])


# ------------------------------------------------------------------------ runtime network error
class Recorder:
    """Stands in for a publisher: keeps what is published."""

    def __init__(self) -> None:
        self.msgs: list[Any] = []

    def publish(self, msg: Any) -> None:
        self.msgs.append(msg)


def _camera_messages(stamp_ns: int, images: np.ndarray, rig: Any, K: np.ndarray,
                     size: tuple[int, int] = SIZE, cameras: list[str] = CAMERAS
                     ) -> tuple[dict[str, Any], dict[str, Any]]:
    """CameraInfo and rgb8 Image messages of every camera at `stamp_ns`."""
    from depth_any_view.geometry.camera import PinholeCamera
    from depth_any_view.ros import conversions as C

    infos, imgs = {}, {}
    for v, cam in enumerate(cameras):
        header = C.make_header(stamp_ns, rig[cam].frame_id)
        infos[cam] = C.camera_to_camera_info(PinholeCamera(size[0], size[1], K), header)
        imgs[cam] = C.array_to_image_msg(images[v], "rgb8", header)
    return infos, imgs


def _odometry(stamp_ns: int, x: float = 0.0) -> Any:
    """nav_msgs/Odometry of base_link at (x, 0, 0) in odom, not rotated."""
    from nav_msgs.msg import Odometry

    from depth_any_view.ros import conversions as C

    msg = Odometry(header=C.make_header(stamp_ns, "odom"), child_frame_id="base_link")
    msg.pose.pose.position.x = float(x)
    msg.pose.pose.orientation.w = 1.0
    return msg


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    """(N_IMAGES, 6, H, W, 3) uint8: the image sets the cameras cycle through."""
    rng = np.random.default_rng(8)
    return rng.integers(0, 256, (N_IMAGES, len(CAMERAS), SIZE[1], SIZE[0], 3), np.uint8)


@pytest.fixture(scope="module")
def rig() -> Any:
    """The surround6 rig of the node's default rig_file."""
    from depth_any_view.geometry.rig import load_rig

    return load_rig("surround6")


def _intrinsics() -> np.ndarray:
    """(3, 3) K of every synthetic camera (about 92 degrees horizontal field of view)."""
    from depth_any_view.geometry.camera import PinholeCamera

    return PinholeCamera.from_fov(SIZE[0], SIZE[1], 1.6).K


def test_network_error_at_runtime_drops_the_set_and_the_next_one_works(
        ros_context, tiny_network, images, rig, capfd) -> None:
    """The forward pass raises (CUDA out of memory) once, then a bug raises in processing
    once: each set is dropped, logged and counted, /diagnostics goes ERROR naming the error,
    and the worker thread goes on with the next set, which is published."""
    from rclpy.parameter import Parameter

    from depth_any_view.pipeline import DROP_INFERENCE
    from depth_any_view.ros.diagnostics import ERROR as D_ERROR
    from depth_any_view.ros.diagnostics import OK as D_OK
    from depth_any_view.ros.node import DepthAnyViewNode

    params = {**tiny_network, "threads": 1, "warmup_iters": 0, "device": "cpu"}
    node = DepthAnyViewNode(context=ros_context, parameter_overrides=[
        Parameter(k, value=v) for k, v in params.items()])
    try:
        cams = node.settings.camera_names
        node.outputs.depth = {c: Recorder() for c in cams}
        node.outputs.depth_info = {c: Recorder() for c in cams}
        for name in ("points", "voxels", "markers", "grid"):
            setattr(node.outputs, name, Recorder())
        engine = node.pipeline.engine
        real_forward = engine._run_network
        failures = {"n": 0}

        def out_of_memory_once(inp, previous=None):  # noqa: ANN001 - replaces a method
            if failures["n"] == 0:
                failures["n"] += 1
                raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB")
            return real_forward(inp, previous)

        engine._run_network = out_of_memory_once
        K = _intrinsics()

        t0 = node.get_clock().now().nanoseconds

        def feed(i: int) -> None:
            stamp = t0 + i * 100_000_000  # the node's clock: a real end-to-end latency
            infos, imgs = _camera_messages(stamp, images[i % N_IMAGES], rig, K)
            node._on_odometry(_odometry(stamp))
            for cam in cams:
                node._on_camera_info(cam, infos[cam])
                node._on_image(cam, imgs[cam])

        def settled(n: int) -> bool:
            return node.diag.processed + sum(node.diag.dropped().values()) >= n

        feed(0)  # the worker thread takes it: the network raises
        _wait(lambda: settled(1), 30.0, "the first set to be handled")
        assert node.diag.dropped() == {DROP_INFERENCE: 1} and node.diag.processed == 0
        inference = node.diag.statuses()[2]
        assert inference.level == D_ERROR and "CUDA out of memory" in inference.message
        assert inference.values["sets dropped: inference_error"] == "1"
        assert node.pipeline.stats()["sets"]["dropped"][DROP_INFERENCE] == 1
        assert not node.outputs.points.msgs
        feed(1)  # the next set goes through
        _wait(lambda: settled(2), 30.0, "the second set to be handled")
        assert node.diag.processed == 1 and len(node.outputs.points.msgs) == 1
        assert node.diag.statuses()[2].level == D_OK
        assert all(len(node.outputs.depth[c].msgs) == 1 for c in cams)

        real_finish = node.pipeline.finish  # the second worker's step (overlap.py)
        node.pipeline.finish = lambda inferred: (_ for _ in ()).throw(KeyError("a bug"))
        feed(2)  # an unexpected exception in processing: the workers survive it too
        _wait(lambda: settled(3), 30.0, "the third set to be handled")
        node.pipeline.finish = real_finish
        assert node.diag.dropped() == {DROP_INFERENCE: 1, "error": 1}
        assert "KeyError" in node.diag.statuses()[2].message
        feed(3)
        _wait(lambda: settled(4), 30.0, "the fourth set to be handled")
        assert node.diag.processed == 2 and node._worker.is_alive()
        err = capfd.readouterr().err
        assert re.search(r"\[ERROR\].*inference failed, set dropped: inference failed on 6 "
                         r"view\(s\).*RuntimeError: CUDA out of memory", err), err
        assert re.search(r"\[ERROR\].*failed and was dropped: KeyError: 'a bug'", err), err
    finally:
        node.destroy_node()


# ---------------------------------------------------------------------------- diagnostics
def test_diagnostics_give_a_level_and_message_for_every_fault() -> None:
    """The statuses of each fault, without ROS (the DDS tests below see them live)."""
    from depth_any_view.ros.diagnostics import ERROR as D_ERROR
    from depth_any_view.ros.diagnostics import OK as D_OK
    from depth_any_view.ros.diagnostics import WARN as D_WARN
    from depth_any_view.ros.diagnostics import NodeDiagnostics

    cams = ["front", "back"]

    def sync(has_info: bool = True) -> dict:
        return {"cameras": {c: {"has_camera_info": has_info or c == "front"} for c in cams},
                "dropped": {"late": 3, "duplicate": 2, "no_partner": 0}, "sets_complete": 9,
                "sets_partial": 1, "resets": 1, "last_reset": "camera 'front' stamp jumped",
                "max_spread_ns": 4_000_000}

    d = NodeDiagnostics(cams, input_timeout=0.5, event_hold=5.0)
    for t in (100.0, 100.2, 100.4):
        for c in cams:
            d.image_received(c, t)
    d.set_processed([], 0.01, 0.02, {"frame": "odom", "known_voxels": 5})
    statuses = d.statuses(sync_stats=sync(), engine={"device": "cpu"}, now=100.45)
    assert [s.level for s in statuses] == [D_OK] * 4
    assert statuses[1].message == ("10 sets (1 partial), 5 images dropped (late 3, "
                                   "duplicate 2)")
    assert statuses[1].values["largest set spread (ms)"] == "4.000"

    d.bad_input("back", "image", "camera 'back' image: Image field 'step' is 5", t=100.5)
    d.bad_input("odometry", "pose", "odometry on /odom: field 'pose.pose.position' holds NaN",
                t=100.5)
    d.event("synchronizer", "synchronizer reset: camera 'front' stamp jumped back", t=100.5)
    d.event("occupancy", "map reset: stamp went backwards by 20.000 s", t=100.5)
    d.set_dropped("inference_error", "InferenceError: CUDA out of memory")
    cams_s, sync_s, inf_s, occ_s = d.statuses(sync_stats=sync(), now=100.6)
    assert cams_s.level == D_WARN
    assert cams_s.message == "bad input from back: camera 'back' image: Image field 'step' is 5"
    assert sync_s.level == D_WARN and "stamp jumped back" in sync_s.message
    assert inf_s.level == D_ERROR and "CUDA out of memory" in inf_s.message
    assert occ_s.level == D_WARN and occ_s.message == (
        "odometry on /odom: field 'pose.pose.position' holds NaN; map reset: stamp went "
        "backwards by 20.000 s")
    assert d.statuses(sync_stats=sync(False), now=100.6)[1].message == (
        "waiting for CameraInfo of: back")
    # Bad input is current for input_timeout, events for event_hold; then back to OK.
    for c in cams:
        d.image_received(c, 106.0)
    d.set_processed([], 0.01, 0.02, {"frame": "odom", "known_voxels": 5})
    later = d.statuses(sync_stats=sync(), now=106.1)
    assert [s.level for s in later] == [D_OK] * 4, [s.message for s in later]
    assert d.statuses(sync_stats=sync(), now=100.55)[0].level == D_WARN  # not yet past
    assert d.statuses(sync_stats=sync(), now=100.45)[0].level == D_OK  # not yet happened


# ---------------------------------------------------------------------------- the fake robot
class FakeRobot(SpinningNode):
    """Camera drivers, odometry, a /clock and the node's consumers, in one rclpy node.

    Sim time advances with the wall clock from SIM_START_NS; `jump_back` loops it like a
    bag player. Frames go out at 10 Hz (all cameras stamped alike), a 20 Hz half-tick
    serves cameras in "fast" mode. Behaviour per camera (`modes`): stopped, no_info, dup,
    late (published 300 ms after its stamp), swap (every other image after the next one),
    fast (an extra image 50 ms after each frame), skew (stamped SKEW_NS late); `corrupt`
    breaks image or CameraInfo fields (or sends a 400x300 image: `huge`); `odom_mode`
    breaks or stops odometry; `odom_x` moves the robot; `size` changes every camera's
    resolution (with its CameraInfo), `info_after` publishes each CameraInfo just after
    its image instead of before.
    """

    def __init__(self, env: dict[str, str], images: np.ndarray, rig: Any) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from nav_msgs.msg import OccupancyGrid, Odometry
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from rosgraph_msgs.msg import Clock
        from sensor_msgs.msg import CameraInfo, Image, PointCloud2

        self.images, self.rig, self.K = images, rig, _intrinsics()
        super().__init__("fake_robot", int(env["ROS_DOMAIN_ID"]))
        self.lock = threading.RLock()
        self.received: dict[str, list[tuple[float, Any]]] = defaultdict(list)
        self.modes: dict[str, str] = {}
        self.corrupt: dict[str, set[str]] = defaultdict(set)
        self.odom_mode: str | None = None
        self.odom_x = 0.0
        self.size = SIZE
        self.info_after = False
        self.sent: dict[str, dict[int, int]] = defaultdict(dict)  # camera -> stamp -> index
        self.frame_stamps: dict[int, int] = {}  # stamp of each 10 Hz frame -> image index
        self.pending: list[tuple[int, str, Any]] = []  # (due half-tick, camera, image)
        self.held: dict[str, Any] = {}
        self.half = 0
        self.frame = 0
        self.sim_offset = SIM_START_NS - time.monotonic_ns()
        self.pub_image = {c: self.node.create_publisher(Image, f"/cameras/{c}/image_raw", 10)
                          for c in CAMERAS}
        self.pub_info = {c: self.node.create_publisher(CameraInfo, f"/cameras/{c}/camera_info",
                                                       10) for c in CAMERAS}
        self.pub_odom = self.node.create_publisher(Odometry, "/odom", 10)
        self.pub_clock = self.node.create_publisher(Clock, "/clock", 10)
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        types = {"/depth_any_view/points": PointCloud2,
                 "/depth_any_view/occupancy/voxels": PointCloud2,
                 "/depth_any_view/occupancy/grid": OccupancyGrid,
                 "/diagnostics": DiagnosticArray}
        types.update({f"/cameras/{c}/depth/image": Image for c in CAMERAS})
        self.subs = [self.node.create_subscription(
            t, topic, lambda m, topic=topic: self._store(topic, m), reliable)
            for topic, t in types.items()]
        self.start_spinning()
        self.timers: list[Any] = []

    def _store(self, topic: str, msg: Any) -> None:
        with self.lock:
            self.received[topic].append((time.monotonic(), msg))

    # ------------------------------------------------------------------ time
    def sim_now(self) -> int:
        """Sim time in integer nanoseconds."""
        return time.monotonic_ns() + self.sim_offset

    def jump_back(self, seconds: float) -> None:
        """Loop time back (clock and stamps), as a bag player does at the end of a loop."""
        with self.lock:
            self.sim_offset -= int(seconds * 1e9)

    def start(self) -> None:
        """/clock at 100 Hz, frames at 10 Hz (a 20 Hz half-tick for fast cameras)."""
        self.timers = [self.node.create_timer(0.01, self._publish_clock),
                       self.node.create_timer(0.05, self._half_tick)]

    def _publish_clock(self) -> None:
        from rosgraph_msgs.msg import Clock

        from depth_any_view.ros.conversions import ns_to_stamp

        with self.lock:
            self.pub_clock.publish(Clock(clock=ns_to_stamp(self.sim_now())))

    # ------------------------------------------------------------------ publishing
    def _half_tick(self) -> None:
        with self.lock:
            self.half += 1
            stamp = self.sim_now()
            for item in [p for p in self.pending if p[0] <= self.half]:
                self.pending.remove(item)
                self.pub_image[item[1]].publish(item[2])
            if self.half % 2:
                for cam in CAMERAS:
                    if self.modes.get(cam) == "fast":
                        self._publish_image(cam, stamp, self.frame % N_IMAGES)
                return
            index = self.frame % N_IMAGES
            self.frame += 1
            self.frame_stamps[stamp] = index
            self._publish_odometry(stamp)
            for cam in CAMERAS:
                if self.modes.get(cam) != "stopped":
                    self._publish_image(cam, stamp, index)

    def _publish_odometry(self, stamp: int) -> None:
        if self.odom_mode == "stopped":
            return
        msg = _odometry(stamp, self.odom_x)
        if self.odom_mode == "nan":
            msg.pose.pose.position.x = float("nan")
        elif self.odom_mode == "inf":
            msg.pose.pose.orientation.z = float("inf")
        elif self.odom_mode == "quat":
            msg.pose.pose.orientation.w = 2.0  # not normalised
        elif self.odom_mode == "near_unit":
            msg.pose.pose.orientation.w = 1.005  # a filter's output: normalised by the node
        self.pub_odom.publish(msg)

    def _publish_image(self, cam: str, stamp: int, index: int) -> None:
        from depth_any_view.geometry.camera import PinholeCamera

        v = CAMERAS.index(cam)
        images, K, size = self.images[index][v:v + 1], self.K, self.size
        if size != SIZE:  # nearest-neighbour resize, and the intrinsics of that size
            rows = np.arange(size[1]) * SIZE[1] // size[1]
            cols = np.arange(size[0]) * SIZE[0] // size[0]
            images = np.ascontiguousarray(images[:, rows][:, :, cols])
            K = PinholeCamera.from_fov(size[0], size[1], 1.6).K
        if self.modes.get(cam) == "skew":
            stamp += SKEW_NS
        infos, imgs = _camera_messages(stamp, images, self.rig, K, size=size, cameras=[cam])
        info, img = infos[cam], imgs[cam]
        bad = self.corrupt.get(cam, set())
        if "huge" in bad:
            from depth_any_view.ros.conversions import array_to_image_msg

            img = array_to_image_msg(np.zeros((300, 400, 3), np.uint8), "rgb8", img.header)
        if "encoding" in bad:
            img.encoding = "yuv422"
        if "step" in bad:
            img.step -= 1
        if "data" in bad:
            img.data = bytes(img.data)[:-7]
        if "zero" in bad:
            img.height, img.data = 0, b""
        if "enormous" in bad:
            img.height, img.width, img.step, img.data = 100_000, 100_000, 300_000, bytes(16)
        if "k_zero" in bad:
            info.k = np.zeros(9)
        if "k_nan" in bad:
            info.k[0] = float("nan")
        if "info_size" in bad:
            info.width = SIZE[0] // 2
        if "distortion" in bad:
            info.distortion_model = "fisheye62"
        mode = self.modes.get(cam)
        if mode != "no_info" and not self.info_after:
            self.pub_info[cam].publish(info)
        self.sent[cam][stamp] = index
        if mode == "late":
            self.pending.append((self.half + 6, cam, img))  # 6 half-ticks = 300 ms
        elif mode == "swap" and cam not in self.held and self.frame % 2:
            self.held[cam] = img  # goes out after the next frame's image
        else:
            self.pub_image[cam].publish(img)
            if mode == "dup":
                self.pub_image[cam].publish(img)
            if cam in self.held:
                self.pub_image[cam].publish(self.held.pop(cam))
        if mode != "no_info" and self.info_after:
            self.pub_info[cam].publish(info)

    def restore(self) -> None:
        """Every camera and the odometry back to normal."""
        with self.lock:
            self.modes.clear()
            self.corrupt.clear()
            self.odom_mode = None
            self.odom_x = 0.0
            self.size = SIZE
            self.info_after = False
            for cam, img in self.held.items():
                self.pub_image[cam].publish(img)
            self.held.clear()

    # ------------------------------------------------------------------ what came out
    def messages(self, topic: str, after: float = 0.0) -> list[Any]:
        """Messages received on `topic` after monotonic time `after`."""
        with self.lock:
            return [m for t, m in self.received[topic] if t > after]

    def stamped(self, topic: str, after_ns: int, before_ns: int | None = None,
                received_after: float = 0.0) -> list[Any]:
        """Messages on `topic` with header stamps in [after_ns, before_ns), received after
        monotonic time `received_after`."""
        from depth_any_view.ros.conversions import stamp_to_ns

        return [m for m in self.messages(topic, received_after)
                if stamp_to_ns(m.header.stamp) >= after_ns
                and (before_ns is None or stamp_to_ns(m.header.stamp) < before_ns)]

    def status(self, name: str, after: float = 0.0) -> Any:
        """The newest diagnostic status `name` received after monotonic time `after`."""
        for msg in reversed(self.messages("/diagnostics", after)):
            for s in msg.status:
                if s.name == f"depth_any_view: {name}":
                    return s
        return None

    def close(self) -> None:
        """Cancel the timers, then stop spinning and shut down."""
        for t in self.timers:
            t.cancel()
        super().close()


def _values(status: Any) -> dict[str, str]:
    """A diagnostic status's key/values."""
    return {kv.key: kv.value for kv in status.values}


class System:
    """The node process, its log and the fake robot."""

    def __init__(self, proc: NodeProcess, log: Path, robot: FakeRobot,
                 params: dict[str, Any]) -> None:
        self.proc, self.log, self.robot, self.params = proc, log, robot, params

    def mark(self) -> int:
        """Position in the node's log (to search only what comes after)."""
        return len(self.log.read_bytes())

    def log_since(self, mark: int) -> str:
        """The node's log from `mark` on."""
        return self.log.read_bytes()[mark:].decode(errors="replace")

    def wait(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        """Wait for `predicate`, failing early if the node died."""
        def check() -> Any:
            assert self.proc.poll() is None, f"the node exited ({self.proc.returncode}):\n" \
                                             f"{tail(self.log)}"
            return predicate()
        return _wait(check, timeout, what, self.log)

    def wait_log(self, mark: int, expected: list[str], timeout: float = 15.0) -> str:
        """Wait until every string of `expected` is in the log after `mark`."""
        self.wait(lambda: all(e in self.log_since(mark) for e in expected), timeout,
                  f"log lines {expected}")
        return self.log_since(mark)

    def wait_status(self, name: str, after: float, check: Callable[[Any], bool],
                    what: str, timeout: float = 15.0) -> Any:
        """Wait for a diagnostic status received after `after` that passes `check`."""
        return self.wait(lambda: (lambda s: s if s is not None and check(s) else None)(
            self.robot.status(name, after)), timeout, what)

    def wait_points(self, after_ns: int, n: int = 3, timeout: float = 20.0,
                    before_ns: int | None = None, received_after: float = 0.0) -> list[Any]:
        """Wait for `n` point clouds stamped in [after_ns, before_ns)."""
        return self.wait(lambda: (lambda m: m if len(m) >= n else None)(
            self.robot.stamped("/depth_any_view/points", after_ns, before_ns,
                               received_after)), timeout,
            f"{n} point clouds stamped after {after_ns}")


@pytest.fixture(scope="module")
def system(ros_env, tiny_network, images, rig, tmp_path_factory) -> Iterator[System]:
    """The node (use_sim_time) with the robot publishing; back_right sends no CameraInfo."""
    log = tmp_path_factory.mktemp("node") / "node.log"
    params = {**tiny_network, **NODE_PARAMS, "use_sim_time": True}
    proc = start_node(ros_env, params, log)
    robot = FakeRobot(ros_env, images, rig)
    robot.modes["back_right"] = "no_info"
    sys_ = System(proc, log, robot, params)
    try:
        sys_.wait(lambda: all(p.get_subscription_count() > 0 for p in robot.pub_image.values())
                  and robot.pub_clock.get_subscription_count() > 0, 60.0,
                  "the node to subscribe to the cameras and /clock")
        robot.start()
        sys_.wait_points(SIM_START_NS, n=3, timeout=45.0)
        yield sys_
    finally:
        robot.close()
        stop_node(proc)
        print(f"node exit status {proc.returncode}; log tail:\n{tail(log, 15)}")
        assert "Traceback" not in log.read_text(errors="replace"), tail(log, 80)


# ---------------------------------------------------------------------------- DDS faults
def test_missing_camera_info_waits_and_says_which(system: System) -> None:
    robot = system.robot
    start = time.monotonic()
    sync = system.wait_status("synchronizer", start, lambda s: s.level == WARN,
                              "a WARN from the synchronizer")
    assert sync.message == "waiting for CameraInfo of: back_right"
    assert int(_values(sync)["images dropped: no_camera_info"]) > 0
    system.wait_log(0, ["camera 'back_right': images arrive on /cameras/back_right/image_raw "
                        "but no CameraInfo on /cameras/back_right/camera_info yet"])
    cams = robot.status("cameras", start)
    assert cams.level == WARN and cams.message == "missing cameras: back_right"
    now = robot.sim_now()
    system.wait_points(now)  # the other five go on
    assert robot.stamped("/cameras/front/depth/image", SIM_START_NS)
    assert not robot.stamped("/cameras/back_right/depth/image", SIM_START_NS)

    robot.restore()  # its CameraInfo arrives: its images are used from then on
    now, t0 = robot.sim_now(), time.monotonic()
    system.wait(lambda: robot.stamped("/cameras/back_right/depth/image", now), 15.0,
                "depth from back_right once its CameraInfo arrived")
    system.wait_status("synchronizer", t0 + 0.6, lambda s: s.level == b"\x00",
                       "the synchronizer status back at OK")
    system.wait_status("cameras", t0 + 0.6,
                       lambda s: s.message == "all 6 cameras publishing", "cameras at OK")


def test_cameras_stop_and_return(system: System) -> None:
    """One camera stops, then a second, then a third (below min_cameras), then all come
    back: outputs go on from at least min_cameras views, /diagnostics names the missing
    cameras, and the full output resumes. Each camera going silent and returning gets one
    log line each (issue 24)."""
    robot = system.robot
    mark = system.mark()
    try:
        for stopped, message in ((["back"], "missing cameras: back"),
                                 (["back", "back_left"], "missing cameras: back, back_left")):
            for cam in stopped:
                robot.modes[cam] = "stopped"
            t0, now = time.monotonic(), robot.sim_now()
            system.wait_status("cameras", t0 + 0.6, lambda s, m=message: s.message == m,
                               f"the cameras status '{message}'")
            assert robot.status("cameras", t0 + 0.6).level == WARN
            system.wait_points(now + 600_000_000)
            for cam in CAMERAS:
                depth = robot.stamped(f"/cameras/{cam}/depth/image", now + 300_000_000)
                assert bool(depth) == (cam not in stopped), cam
        robot.modes["front_right"] = "stopped"  # three cameras left, min_cameras is 4
        t0, now = time.monotonic(), robot.sim_now()
        system.wait_status("cameras", t0 + 0.6, lambda s: s.message == (
            "missing cameras: front_right, back, back_left"), "three missing cameras")
        time.sleep(1.5)
        assert not robot.stamped("/depth_any_view/points", now + 300_000_000)
    finally:
        robot.restore()
    t0, now = time.monotonic(), robot.sim_now()
    system.wait(lambda: all(robot.stamped(f"/cameras/{c}/depth/image", now) for c in CAMERAS),
                20.0, "depth from every camera after they returned")
    system.wait_status("cameras", t0 + 0.6,
                       lambda s: s.message == "all 6 cameras publishing", "cameras at OK")
    system.wait_points(now)
    text = system.wait_log(mark, [f"camera '{c}': images arrive again on /cameras/{c}/"
                                  "image_raw" for c in ("back", "back_left", "front_right")])
    for cam in ("back", "back_left", "front_right"):
        silent = f"camera '{cam}': no images on /cameras/{cam}/image_raw for "
        assert text.count(silent) == 1, (cam, text)
        assert text.count(f"camera '{cam}': images arrive again") == 1, (cam, text)
    assert "camera 'front':" not in text


def test_late_reordered_duplicated_and_fast_cameras_never_mix_instants(system: System) -> None:
    """front sends every image twice, front_left sends every other image after the next
    one, front_right's images arrive 300 ms late (after the set's timeout), back runs at
    20 Hz: the synchronizer drops and counts, every set holds one instant."""
    robot = system.robot
    before = _values(system.wait_status("synchronizer", time.monotonic(), lambda s: True,
                                        "a synchronizer status"))
    robot.modes.update(front="dup", front_left="swap", front_right="late", back="fast")
    start = robot.sim_now()
    try:
        system.wait_points(start + 300_000_000, n=15, timeout=40.0)
    finally:
        robot.restore()
    end = robot.sim_now()
    t_end = time.monotonic()
    after = _values(system.wait_status("synchronizer", t_end + 0.3, lambda s: True,
                                       "a synchronizer status after the faults"))

    def grew(reason: str) -> int:
        return int(after[f"images dropped: {reason}"]) - int(before[f"images dropped: {reason}"])

    assert grew("duplicate") > 0, after
    assert grew("late") > 0, after
    assert grew("no_partner") + grew("timed_out") > 0, after  # back's in-between images
    assert float(after["largest set spread (ms)"]) <= SLOP_NS / 1e6
    frames = set(robot.frame_stamps)
    points = robot.stamped("/depth_any_view/points", start, end)
    from depth_any_view.ros.conversions import stamp_to_ns

    assert all(stamp_to_ns(m.header.stamp) in frames for m in points)
    for cam in CAMERAS:
        stamps = [stamp_to_ns(m.header.stamp)
                  for m in robot.stamped(f"/cameras/{cam}/depth/image", start, end)]
        assert set(stamps) <= frames, cam  # never back's in-between images
        assert stamps == sorted(set(stamps)), cam  # each instant once, in order
    for cam in ("front", "front_left", "back", "back_left", "back_right"):
        assert robot.stamped(f"/cameras/{cam}/depth/image", start, end), cam


def _throttled(text: str, needle: str, seconds: float, throttle: float) -> None:
    """At most one warning containing `needle` per `throttle` seconds (plus one)."""
    n = text.count(needle)
    assert 1 <= n <= seconds / throttle + 2, (needle, n, seconds)


@pytest.mark.parametrize("faults, expected", [
    ({"front": {"encoding", "k_zero"}, "front_left": {"step", "k_nan"}},
     ["camera 'front' image: Image field 'encoding' is 'yuv422'",
      "camera 'front' CameraInfo: CameraInfo field 'k' has a non-positive focal length",
      "camera 'front_left' image: Image field 'step' is 191 bytes",
      "camera 'front_left' CameraInfo: CameraInfo field 'k' holds NaN"]),
    ({"front": {"data", "distortion"}, "front_left": {"zero"}},
     ["camera 'front' image: Image field 'data' holds 9209 bytes",
      "camera 'front' CameraInfo: CameraInfo field 'distortion_model' is 'fisheye62'",
      "camera 'front_left' image: Image fields 'height' and 'width' must be positive"]),
    ({"front": {"enormous"}, "front_left": {"info_size"}},
     ["camera 'front' image is 100000x100000 (10000.0 Mpixel), above parameter "
      "max_image_pixels 100000",
      "camera 'front_left' CameraInfo 'width'/'height' is 32x48 but its image is 64x48"]),
], ids=["encoding-step-zeroK-nanK", "data-distortion-zerosize", "enormous-infosize"])
def test_bad_camera_info_and_images_are_rejected_by_camera_and_field(
        system: System, faults: dict[str, set[str]], expected: list[str]) -> None:
    robot = system.robot
    mark, t0, now = system.mark(), time.monotonic(), robot.sim_now()
    robot.corrupt.update({k: set(v) for k, v in faults.items()})
    try:
        text = system.wait_log(mark, [f"{e}" for e in expected])
        system.wait_points(now + 200_000_000)  # the other four cameras go on
        status = system.wait_status(
            "cameras", t0 + 0.6, lambda s: "bad input from front, front_left" in s.message,
            "the cameras status naming both bad cameras")
        assert status.level == WARN
        time.sleep(1.0)
        text = system.log_since(mark)
        seconds = time.monotonic() - t0
    finally:
        robot.restore()
    for e in expected:
        assert f"{e}" in text and "(dropped)" in text.split(e, 1)[1].splitlines()[0], e
        _throttled(text, e, seconds, NODE_PARAMS["warn_throttle"])
    for cam in ("front", "front_left"):
        assert not robot.stamped(f"/cameras/{cam}/depth/image", now + 300_000_000), cam
    assert system.proc.poll() is None
    now = robot.sim_now()
    system.wait(lambda: all(robot.stamped(f"/cameras/{c}/depth/image", now) for c in CAMERAS),
                20.0, "depth from every camera once the input is good again")


def _first_voxels_of_reset(robot: FakeRobot, after_ns: int, origin_x: float) -> Any:
    """The voxel cloud of the first set at or after `after_ns` whose grid has `origin_x`
    (the map's corner follows the pose), or None while there is none."""
    from depth_any_view.ros.conversions import stamp_to_ns

    grids = [g for g in robot.stamped("/depth_any_view/occupancy/grid", after_ns)
             if abs(g.info.origin.position.x - origin_x) < 1e-6]
    if not grids:
        return None
    stamp = min(stamp_to_ns(g.header.stamp) for g in grids)
    clouds = [m for m in robot.stamped("/depth_any_view/occupancy/voxels", stamp)
              if stamp_to_ns(m.header.stamp) == stamp]
    return clouds[0] if clouds else None


def _probabilities(cloud: Any) -> np.ndarray:
    from depth_any_view.ros.conversions import cloud_to_structured

    return cloud_to_structured(cloud)["probability"]


def test_bad_odometry_gaps_and_jumps(system: System) -> None:
    """NaN, inf and non-normalised odometry are refused naming the field, missing odometry
    falls back to single-frame occupancy in base_link, its return and a jump of 8 m reset
    the map (no voxel of the old map survives); the log and /diagnostics say why."""
    robot = system.robot
    from depth_any_view.ros.conversions import cloud_to_structured

    start = system.mark()
    try:
        for mode, expected in (("nan", "odometry on /odom: field 'pose.pose.position' holds "
                                       "NaN or inf"),
                               ("inf", "odometry on /odom: field 'pose.pose.orientation' holds "
                                       "NaN or inf"),
                               ("quat", "odometry on /odom: field 'pose.pose.orientation' is "
                                        "not a unit quaternion (norm 2.000000")):
            mark, t0 = system.mark(), time.monotonic()
            robot.odom_mode = mode
            system.wait_log(mark, [expected])
            occ = system.wait_status("occupancy", t0, lambda s, e=expected: e in s.message,
                                     f"the occupancy status naming {expected!r}")
            assert occ.level == WARN
        t0, now = time.monotonic(), robot.sim_now()
        robot.odom_mode = "stopped"  # no odometry for a while (said once, since the NaN)
        system.wait_log(start, ["no odometry within 0.2 s of the set stamp: single-frame "
                                "occupancy in base_link"])
        occ = system.wait_status("occupancy", t0 + 0.6, lambda s: s.message.startswith(
            "no odometry within 0.2 s"), "the occupancy status without odometry")
        assert occ.level == WARN and "(odometry topic /odom)" in occ.message
        system.wait(lambda: any(m.header.frame_id == "base_link" for m in robot.stamped(
            "/depth_any_view/occupancy/voxels", now + 300_000_000)), 15.0,
            "voxels in base_link without odometry")
        mark, t0, now = system.mark(), time.monotonic(), robot.sim_now()
        robot.odom_mode = None  # odometry is back
        system.wait_log(mark, ["odometry is back: fusing occupancy in odom",
                               "occupancy map reset: odometry available: fusing in odom"])
        system.wait(lambda: any(m.header.frame_id == "odom" for m in robot.stamped(
            "/depth_any_view/occupancy/voxels", now)), 15.0, "voxels in odom again")
        time.sleep(1.5)  # the map accumulates at the robot's place
        mark, t0, now = system.mark(), time.monotonic(), robot.sim_now()
        robot.odom_x = 8.0  # a jump of 8 m within 0.1 s
        system.wait_log(mark, ["occupancy map reset: odometry jumped 8.00 m"])
        occ = system.wait_status("occupancy", t0, lambda s: "map reset: odometry jumped 8.00 m"
                                 in s.message, "the occupancy status after the jump")
        assert occ.level == WARN
        cloud = system.wait(lambda: _first_voxels_of_reset(robot, now, -4.8), 15.0,
                            "the voxels of the first set after the jump")
        accumulated = [m for m in robot.stamped("/depth_any_view/occupancy/voxels",
                                                now - 1_000_000_000, now)]
        assert accumulated and _probabilities(accumulated[-1]).max() > P_MAX + 0.005
        p = _probabilities(cloud)
        assert p.size and p.max() <= P_MAX + 1e-6  # one observation: nothing from before
        arr = cloud_to_structured(cloud)
        assert arr["x"].min() > 8.0 - 12.8
    finally:
        robot.restore()
    assert system.proc.poll() is None


def test_time_jumping_back_resets_the_map_without_stale_voxels(system: System, tiny_network,
                                                               rig) -> None:
    """A looped bag under use_sim_time: /clock and every stamp jump back 20 s. The
    synchronizer, the odometry buffer and the map reset (each with a log line saying why,
    /diagnostics at WARN), and the first map after the jump is exactly the map of that one
    set, computed here by a fresh Pipeline with the same network and inputs."""
    robot = system.robot
    from depth_any_view.ros.conversions import cloud_to_structured, stamp_to_ns

    robot.restore()
    time.sleep(1.5)  # a map of many observations at a standing robot
    pre_jump = robot.sim_now()
    accumulated = robot.stamped("/depth_any_view/occupancy/voxels", pre_jump - 1_000_000_000)
    assert accumulated and _probabilities(accumulated[-1]).max() > P_MAX + 0.005
    mark, t0 = system.mark(), time.monotonic()
    robot.jump_back(20.0)
    jumped = robot.sim_now()
    looped = pre_jump - 10 * 10**9  # stamps below this, received after t0: after the jump
    text = system.wait_log(mark, ["synchronizer reset: camera '", "stamp jumped back",
                                  "(looped bag or clock reset)",
                                  "odometry stamp jumped back",
                                  "occupancy map reset: stamp went backwards by"])
    assert re.search(r"stamp went backwards by (19|20)\.\d{3} s", text), text
    occ = system.wait_status("occupancy", t0, lambda s: "map reset: stamp went backwards"
                             in s.message, "the occupancy status after the time jump")
    assert occ.level == WARN
    sync = system.wait_status("synchronizer", t0, lambda s: "synchronizer reset" in s.message,
                              "the synchronizer status after the time jump")
    assert sync.level == WARN
    clouds = system.wait(lambda: robot.stamped("/depth_any_view/occupancy/voxels", jumped,
                                               looped, t0), 15.0, "voxels after the jump")
    first = clouds[0]
    stamp = stamp_to_ns(first.header.stamp)
    got = cloud_to_structured(first)
    assert got.size and got["probability"].max() <= P_MAX + 1e-6

    # The same set through a fresh pipeline: the node's map must be exactly that set's.
    from depth_any_view.pipeline import Pipeline
    from depth_any_view.ros.params import Settings, defaults
    from depth_any_view.ros.startup import pipeline_config

    settings = Settings({**defaults(), **{k: v for k, v in system.params.items()
                                          if k != "use_sim_time"}})
    used = [c for c in CAMERAS if any(stamp_to_ns(m.header.stamp) == stamp for m in
                                      robot.messages(f"/cameras/{c}/depth/image"))]
    assert len(used) >= MIN_CAMERAS
    cfg = pipeline_config(settings)
    cfg.engine = replace(cfg.engine, warmup_iters=0)
    fresh = Pipeline(cfg, rig)
    infos, imgs = _camera_messages(stamp, robot.images[robot.frame_stamps[stamp]], rig,
                                   robot.K)
    if first.header.frame_id == "odom":  # the node had the set's odometry (else base_link)
        from depth_any_view.ros.conversions import odometry_to_transform

        fresh.add_odometry(stamp, odometry_to_transform(_odometry(stamp)))
    sets = []
    for cam in used:
        fresh.add_camera_info(cam, stamp, infos[cam])
        from depth_any_view.ros.conversions import image_msg_to_array

        sets += fresh.add_image(cam, stamp, image_msg_to_array(imgs[cam]), stamp,
                                frame_id=rig[cam].frame_id)
    sets += fresh.flush(stamp)
    (synced,) = sets
    want = fresh.process(synced)
    assert want.ok and want.map_frame == first.header.frame_id
    threshold = settings.occupied_threshold
    got_map = {tuple(np.round([x, y, z], 3)): p for x, y, z, p in
               zip(got["x"], got["y"], got["z"], got["probability"])}
    want_map = {tuple(np.round(c, 3)): p for c, p in zip(want.voxels, want.voxel_probability)}
    for key in set(got_map) ^ set(want_map):  # only voxels at the threshold may differ
        assert abs(got_map.get(key, want_map.get(key)) - threshold) < 1e-4, key
    common = sorted(set(got_map) & set(want_map))
    assert len(common) >= 0.9 * len(want_map) > 0
    np.testing.assert_allclose([got_map[k] for k in common], [want_map[k] for k in common],
                               atol=1e-4)
    system.wait_points(stamp + 1, before_ns=looped, received_after=t0)  # and it goes on


# ---------------------------------------------------------------------------- issue 24
def test_an_image_above_max_image_pixels_is_refused_with_one_warning(system: System) -> None:
    """A 400x300 image where max_image_pixels is 100000 (an 8000x8000 one against the
    default): refused on its header, the warning names the camera, the size and the
    parameter (throttled), the other cameras go on, and front's own images come back."""
    robot = system.robot
    mark, t0, now = system.mark(), time.monotonic(), robot.sim_now()
    robot.corrupt["front"] = {"huge"}
    expected = ("camera 'front' image is 400x300 (0.1 Mpixel), above parameter "
                "max_image_pixels 100000 (0.1 Mpixel): refused before decoding")
    try:
        system.wait_log(mark, [expected])
        system.wait_points(now + 200_000_000)
        status = system.wait_status("cameras", t0 + 0.3,
                                    lambda s: "bad input from front" in s.message,
                                    "the cameras status naming front")
        assert int(_values(status)["front bad image_size"]) > 0
        time.sleep(1.0)
        seconds = time.monotonic() - t0
        text = system.log_since(mark)
    finally:
        robot.restore()
    _throttled(text, expected, seconds, NODE_PARAMS["warn_throttle"])
    # (received after t0: the stamps of the first pass before the loop back repeat)
    assert not robot.stamped("/cameras/front/depth/image", now + 300_000_000,
                             robot.sim_now() - 300_000_000, received_after=t0)
    now, t0 = robot.sim_now(), time.monotonic()
    system.wait(lambda: robot.stamped("/cameras/front/depth/image", now, received_after=t0),
                20.0, "depth from front again")


def test_a_camera_with_a_constant_skew_is_reported_out_of_sync(system: System) -> None:
    """front_right stamps 30 ms late (slop 20 ms): the synchronizer status and one log
    line say it is out of sync by +30 ms (not only a `late` count); one line when back."""
    robot = system.robot
    mark, t0 = system.mark(), time.monotonic()
    robot.modes["front_right"] = "skew"
    try:
        sync = system.wait_status("synchronizer", t0, lambda s: "out of sync" in s.message,
                                  "the synchronizer status naming front_right")
        assert sync.level == WARN and ("camera 'front_right' is out of sync: its stamps are "
                                       "+30 ms from the other cameras' (sync_slop 20 ms)"
                                       in sync.message)
        system.wait_points(robot.sim_now())  # the other five go on
    finally:
        robot.restore()
    text = system.wait_log(mark, ["camera 'front_right' is in sync with the other cameras "
                                  "again"])
    assert text.count("camera 'front_right' is out of sync") == 1, text


def test_a_short_odometry_gap_holds_the_map(system: System) -> None:
    """Odometry stops for 0.5 s (under odom_reset_timeout, 2 s) and then comes with a
    quaternion of norm 1.005: the map is held, never reset, keeps its accumulated
    voxels and stays in odom; the log says so once each way and refuses nothing."""
    robot = system.robot
    robot.restore()
    time.sleep(1.0)  # an accumulated map
    mark, now, t0 = system.mark(), robot.sim_now(), time.monotonic()
    robot.odom_mode = "stopped"
    time.sleep(0.5)
    robot.odom_mode = "near_unit"
    try:
        text = system.wait_log(mark, ["map held in odom, not fused",
                                      "odometry is back: fusing occupancy in odom (the map "
                                      "was held)"])
        system.wait_points(robot.sim_now(), n=5)
        text = system.log_since(mark)
    finally:
        robot.restore()
    assert "occupancy map reset" not in text and "not a unit quaternion" not in text, text
    assert text.count("map held in odom, not fused") == 1, text
    voxels = robot.stamped("/depth_any_view/occupancy/voxels", now, received_after=t0)
    assert voxels and all(m.header.frame_id == "odom" for m in voxels)
    assert all(_probabilities(m).max() > P_MAX + 0.005 for m in voxels)  # never reset


def test_a_resolution_change_with_its_camera_info_keeps_every_view(system: System) -> None:
    """Every camera switches 64x48 -> 257x131 -> 64x48, each CameraInfo published just
    after its image: every camera's depth comes at the new size with a CameraInfo of that
    size, and no view is compared with the CameraInfo of the old size."""
    robot = system.robot
    from depth_any_view.ros.conversions import stamp_to_ns

    mark = system.mark()
    try:
        for size in ((257, 131), SIZE):
            with robot.lock:
                robot.size, robot.info_after = size, True
                switched, t0 = robot.sim_now(), time.monotonic()
            system.wait(lambda s=size, t=switched, r=t0: all(
                any((m.width, m.height) == s for m in
                    robot.stamped(f"/cameras/{c}/depth/image", t, received_after=r))
                for c in CAMERAS), 20.0, f"depth of every camera at {size}")
            time.sleep(0.5)
            for cam in CAMERAS:
                depth = robot.stamped(f"/cameras/{cam}/depth/image", switched,
                                      received_after=t0)
                sizes = {(m.width, m.height) for m in depth}
                assert sizes <= {size, SIZE} and size in sizes, (cam, sizes)
                # after the first image of the new size, every depth image has it
                first = min(stamp_to_ns(m.header.stamp) for m in depth
                            if (m.width, m.height) == size)
                assert all((m.width, m.height) == size for m in depth
                           if stamp_to_ns(m.header.stamp) >= first), cam
    finally:
        robot.restore()
    assert "CameraInfo 'width'/'height'" not in system.log_since(mark)


def test_a_forward_stamp_jump_resets_the_map_with_one_line(system: System) -> None:
    """Sim time and every stamp jump 100 s ahead: the map resets once, saying why (one
    log line), /diagnostics shows it, and outputs go on at the new stamps."""
    robot = system.robot
    robot.restore()
    mark, t0 = system.mark(), time.monotonic()
    robot.jump_back(-100.0)
    jumped = robot.sim_now()
    text = system.wait_log(mark, ["occupancy map reset: set stamp jumped forward 100."])
    occ = system.wait_status("occupancy", t0, lambda s: "set stamp jumped forward" in
                             s.message, "the occupancy status after the forward jump")
    assert occ.level == WARN
    system.wait_points(jumped, n=5)
    text = system.log_since(mark)
    assert text.count("jumped forward") == 1, text
