"""The real node as a separate process over DDS (localhost only, own ROS_DOMAIN_ID).

A fake robot in the test process publishes six synthetic cameras (frames of
`depth_any_view.data.synth`, 64x48, each camera in another input encoding), their
CameraInfo and odometry at 10 Hz, stamped with the current time like a live driver, and
subscribes to every output as a robot's consumers would. The node runs a tiny network
(random weights whose occupancy head is rescaled so its probabilities fall on both sides
of 0.5, calibrated on the first frame) on one CPU thread. launch_testing is not
installable here, so the test starts and stops the process itself.

Checked: every output arrives with the right type, encoding, frame_id and the input stamp;
depth is finite where the scene has surfaces and within the network's range; points lie
within the cameras' range; the occupancy grid has occupied, free and unknown cells;
diagnostics report the rates; runtime parameter changes are applied or refused with a
reason; bad input is dropped with a warning naming the camera and field while the node
keeps running; one camera stopping still gives outputs from the others; a bad parameter
or a missing weights file ends the process with one clear line.
"""

from __future__ import annotations

import math
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import (
    OCCUPANCY_GAIN,
    ROOT,
    SpinningNode,
    dds_env,
    ros_args,
    start_node,
    stop_node,
    tail,
    tiny_model,
    write_tiny_network,
)

pytestmark = [pytest.mark.ros, pytest.mark.slow]

CAMERAS = ["front", "front_left", "front_right", "back", "back_left", "back_right"]
ENCODINGS = dict(zip(CAMERAS, ["rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16"]))
SIZE = (64, 48)  # (width, height) of the synthetic images
NUM_FRAMES = 50
MIN_DEPTH, MAX_DEPTH = 0.3, 20.0  # metres, the tiny network's range
TINY_MODEL = tiny_model(min_depth=MIN_DEPTH, max_depth=MAX_DEPTH, confidence=True)
NODE_PARAMS = {"threads": 1, "warmup_iters": 1, "input_timeout": 1.0,
               "diagnostics_period": 0.5, "grid_z_min": 0.4, "grid_z_max": 1.0,
               "warn_throttle": 0.5}
OUTPUTS = ["/depth_any_view/points", "/depth_any_view/occupancy/voxels",
           "/depth_any_view/occupancy/markers", "/depth_any_view/occupancy/grid",
           "/diagnostics"] + [f"/cameras/{c}/depth/{k}" for c in CAMERAS
                              for k in ("image", "camera_info")]


# ---------------------------------------------------------------------------- set-up
@pytest.fixture(scope="module")
def ros_env() -> dict[str, str]:
    """Environment of every process of this module: localhost DDS on a private domain."""
    return dds_env(domains=(1, 100))


@pytest.fixture(scope="module")
def frames() -> list[Any]:
    """Synthetic indoor frames (the robot drives through rooms)."""
    from depth_any_view.data.synth import generate_frames

    return list(generate_frames(frames=NUM_FRAMES, size=SIZE, seed=3, scene="indoor",
                                grid_dims=16))


def _views(frame: Any) -> list[Any]:
    """The engine's inputs for a synthetic frame."""
    from depth_any_view.geometry.camera import PinholeCamera
    from depth_any_view.inference.preprocess import ViewInput

    return [ViewInput(n, frame.images[i], PinholeCamera(SIZE[0], SIZE[1], frame.K[i]),
                      frame.T_base_cam[i]) for i, n in enumerate(frame.camera_names)]


@pytest.fixture(scope="module")
def tiny_network(tmp_path_factory: pytest.TempPathFactory, frames: list[Any]) -> dict[str, str]:
    """A tiny model config and weights: random, with the occupancy head's output layer scaled
    so its probabilities are confident, and shifted so ~30% of the observed voxels of the
    first frame are above 0.73 (logit 1) and the rest mostly below 0.5."""
    from depth_any_view.inference.engine import EngineConfig, InferenceEngine

    folder = tmp_path_factory.mktemp("tiny_network")
    net = write_tiny_network(folder, TINY_MODEL, occupancy_gain=OCCUPANCY_GAIN,
                             occupancy_bias=0.0)
    engine = InferenceEngine(EngineConfig(weights=str(net["weights"]), preset=str(net["preset"]),
                                          warmup_iters=0, threads=1))
    pred = engine.infer(_views(frames[0]))
    p = np.clip(pred.occupancy[pred.observed].astype(np.float64), 1e-6, 1 - 1e-6)
    logits = np.log(p / (1 - p))
    # the same seed gives the same weights: only the bias differs from the first write
    net = write_tiny_network(folder, TINY_MODEL, occupancy_gain=OCCUPANCY_GAIN,
                             occupancy_bias=float(1.0 - np.quantile(logits, 0.7)))
    return {k: str(v) for k, v in net.items()}


def _encode(rgb: np.ndarray, encoding: str) -> np.ndarray:
    """An RGB image (H, W, 3) uint8 in one of the input encodings."""
    if encoding == "rgb8":
        return rgb
    if encoding == "bgr8":
        return np.ascontiguousarray(rgb[..., ::-1])
    alpha = np.full(rgb.shape[:2] + (1,), 255, np.uint8)
    if encoding == "rgba8":
        return np.concatenate([rgb, alpha], axis=2)
    if encoding == "bgra8":
        return np.concatenate([rgb[..., ::-1], alpha], axis=2)
    grey = rgb.mean(axis=2)  # (H, W)
    if encoding == "mono8":
        return grey.round().astype(np.uint8)
    return (grey * 257).round().astype(np.uint16)  # mono16


class FakeRobot(SpinningNode):
    """Camera drivers, odometry and the node's consumers, in one rclpy node of the test."""

    def __init__(self, env: dict[str, str], frames: list[Any]) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from nav_msgs.msg import OccupancyGrid, Odometry
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image, PointCloud2
        from visualization_msgs.msg import MarkerArray

        from depth_any_view.geometry.camera import PinholeCamera
        from depth_any_view.ros import conversions as C

        self.C = C
        self.frames = frames
        super().__init__("fake_robot", int(env["ROS_DOMAIN_ID"]))
        self.lock = threading.Lock()
        self.received: dict[str, list[tuple[float, Any]]] = defaultdict(list)
        self.published: list[tuple[int, int]] = []  # (stamp_ns, frame index)
        self.stopped: set[str] = set()  # cameras that publish nothing
        self.corrupt: dict[str, str] = {}  # camera or 'odometry' -> what to break
        self.index = 0
        self.cameras = [PinholeCamera(SIZE[0], SIZE[1], frames[0].K[i])
                        for i in range(len(CAMERAS))]
        self.pub_image = {c: self.node.create_publisher(Image, f"/cameras/{c}/image_raw", 10)
                          for c in CAMERAS}
        self.pub_info = {c: self.node.create_publisher(CameraInfo, f"/cameras/{c}/camera_info",
                                                       10) for c in CAMERAS}
        self.pub_odom = self.node.create_publisher(Odometry, "/odom", 10)
        reliable = QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        types = {"/depth_any_view/points": PointCloud2,
                 "/depth_any_view/occupancy/voxels": PointCloud2,
                 "/depth_any_view/occupancy/markers": MarkerArray,
                 "/depth_any_view/occupancy/grid": OccupancyGrid,
                 "/diagnostics": DiagnosticArray}
        for c in CAMERAS:
            types[f"/cameras/{c}/depth/image"] = Image
            types[f"/cameras/{c}/depth/camera_info"] = CameraInfo
            types[f"/cameras/{c}/depth/confidence"] = Image
        self.subs = [self.node.create_subscription(
            t, topic, lambda m, topic=topic: self._store(topic, m),
            latched if topic.endswith("grid") else reliable) for topic, t in types.items()]
        self.start_spinning()
        self.timer = None

    def _store(self, topic: str, msg: Any) -> None:
        with self.lock:
            self.received[topic].append((time.monotonic(), msg))

    def start_publishing(self) -> None:
        """Publish one frame every 0.1 s (10 Hz)."""
        self.timer = self.node.create_timer(0.1, self.publish_next)

    def publish_next(self) -> None:
        """All cameras (but the stopped ones), CameraInfo and odometry of the next frame."""
        C = self.C
        from nav_msgs.msg import Odometry

        i = self.index % len(self.frames)
        self.index += 1
        frame = self.frames[i]
        stamp = time.time_ns()
        for v, cam in enumerate(CAMERAS):
            if cam in self.stopped:
                continue
            header = C.make_header(stamp, frame.frame_ids[v])
            msg = C.array_to_image_msg(_encode(frame.images[v], ENCODINGS[cam]),
                                       ENCODINGS[cam], header)
            info = C.camera_to_camera_info(self.cameras[v], header)
            if self.corrupt.get(cam) == "step":
                msg.step = msg.step - 1
            if self.corrupt.get(cam) == "nan_k":
                info.k[0] = float("nan")
            self.pub_info[cam].publish(info)
            self.pub_image[cam].publish(msg)
        odom = Odometry(header=C.make_header(stamp, "odom"), child_frame_id="base_link")
        odom.pose.pose = C.matrix_to_pose(frame.T_odom_base)
        if self.corrupt.get("odometry") == "nan":
            odom.pose.pose.position.x = float("nan")
        self.pub_odom.publish(odom)
        with self.lock:
            self.published.append((stamp, i))

    def messages(self, topic: str, after: float = 0.0) -> list[Any]:
        """Messages received on `topic` (monotonic arrival after `after`)."""
        with self.lock:
            return [m for t, m in self.received[topic] if t > after]

    def stamps(self) -> dict[int, int]:
        """Published stamp -> frame index."""
        with self.lock:
            return dict(self.published)

    def wait_for(self, predicate, timeout: float, what: str, log: Path) -> None:
        """Poll `predicate` until true; fail naming `what` with the node's log tail."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.1)
        pytest.fail(f"timed out after {timeout} s waiting for {what}; node log:\n"
                    f"{tail(log)}")

    def close(self) -> None:
        """Cancel the timers, then stop spinning and shut down."""
        if self.timer is not None:
            self.timer.cancel()
        super().close()


@pytest.fixture(scope="module")
def system(ros_env, frames, tiny_network, tmp_path_factory):
    """The running node with the fake robot publishing; yields (robot, log path)."""
    log = tmp_path_factory.mktemp("node") / "node.log"
    proc = start_node(ros_env, {**tiny_network, **NODE_PARAMS}, log)
    robot = FakeRobot(ros_env, frames)
    try:
        robot.wait_for(lambda: all(p.get_subscription_count() > 0
                                   for p in robot.pub_image.values()) or proc.poll() is not None,
                       60.0, "the node to subscribe to the cameras", log)
        assert proc.poll() is None, f"the node exited ({proc.returncode}):\n{tail(log)}"
        robot.start_publishing()
        robot.wait_for(lambda: all(len(robot.messages(t)) >= 3 for t in OUTPUTS)
                       or proc.poll() is not None, 45.0, "three messages on every output", log)
        assert proc.poll() is None, f"the node exited ({proc.returncode}):\n{tail(log)}"
        yield robot, log, proc
    finally:
        robot.close()
        code = stop_node(proc)
        print(f"node exit status {code}; log tail:\n{tail(log, 15)}")


# ---------------------------------------------------------------------------- outputs
def test_outputs_types_frames_and_input_stamps(system, frames) -> None:
    robot, log, _ = system
    from depth_any_view.ros.conversions import stamp_to_ns

    published = robot.stamps()
    for v, cam in enumerate(CAMERAS):
        for msg in robot.messages(f"/cameras/{cam}/depth/image"):
            assert msg.encoding == "32FC1"
            assert msg.header.frame_id == frames[0].frame_ids[v]
            assert stamp_to_ns(msg.header.stamp) in published
            assert (msg.width, msg.height) == SIZE  # input resolution
        infos = robot.messages(f"/cameras/{cam}/depth/camera_info")
        assert infos and all((i.width, i.height) == SIZE for i in infos)
        assert all(i.header.frame_id == frames[0].frame_ids[v] for i in infos)
        np.testing.assert_allclose(np.asarray(infos[-1].k).reshape(3, 3), frames[0].K[v])
    for topic, frame in (("/depth_any_view/points", "base_link"),
                         ("/depth_any_view/occupancy/voxels", "odom"),
                         ("/depth_any_view/occupancy/grid", "odom")):
        msgs = robot.messages(topic)
        assert all(m.header.frame_id == frame for m in msgs), topic
        assert all(stamp_to_ns(m.header.stamp) in published for m in msgs), topic
    for ma in robot.messages("/depth_any_view/occupancy/markers"):
        assert ma.markers[0].header.frame_id == "odom"
        assert stamp_to_ns(ma.markers[0].header.stamp) in published


def test_depth_is_finite_where_the_scene_has_surfaces(system, frames) -> None:
    robot, _, _ = system
    from depth_any_view.ros.conversions import image_msg_to_depth, stamp_to_ns

    published = robot.stamps()
    checked = 0
    for v, cam in enumerate(CAMERAS):
        for msg in robot.messages(f"/cameras/{cam}/depth/image")[-3:]:
            depth = image_msg_to_depth(msg)  # (H, W) metres, NaN = no estimate
            truth = frames[published[stamp_to_ns(msg.header.stamp)]].depth[v]
            surface = np.isfinite(truth)
            assert surface.mean() > 0.5  # the synthetic rooms surround the robot
            assert np.isfinite(depth[surface]).mean() > 0.95, cam
            d = depth[np.isfinite(depth)]
            assert d.min() >= MIN_DEPTH - 1e-4 and d.max() <= MAX_DEPTH + 1e-4
            checked += 1
    assert checked >= len(CAMERAS) * 2


def test_points_lie_within_the_cameras_range(system, frames) -> None:
    robot, _, _ = system
    from depth_any_view.ros.conversions import xyzrgb_from_cloud

    clouds = robot.messages("/depth_any_view/points")
    assert clouds
    K = frames[0].K[0]
    # Farthest point a pixel ray can reach at MAX_DEPTH along z (image corner).
    reach = MAX_DEPTH * math.sqrt(1 + (SIZE[0] / 2 / K[0, 0]) ** 2 + (SIZE[1] / 2 / K[1, 1]) ** 2)
    centres = frames[0].T_base_cam[:, :3, 3]  # (V, 3) optical centres in base_link
    for msg in clouds[-3:]:
        assert [f.name for f in msg.fields] == ["x", "y", "z", "rgb"]
        assert msg.point_step == 16 and msg.height == 1 and msg.is_dense
        pts, rgb = xyzrgb_from_cloud(msg)
        assert pts.shape[0] > 100 and np.all(np.isfinite(pts))
        dist = np.linalg.norm(pts[:, None, :] - centres[None], axis=2).min(axis=1)  # (N,)
        assert dist.max() <= reach + 1e-3
        assert len(np.unique(rgb, axis=0)) > 10  # coloured from the images


def test_occupancy_voxels_markers_and_grid(system, frames) -> None:
    robot, _, _ = system
    from depth_any_view.ros.conversions import cloud_to_structured, occupancy_grid_to_array

    voxel_size = (25.6 / 16, 25.6 / 16, 4.0 / 8)
    for msg in robot.messages("/depth_any_view/occupancy/voxels")[-3:]:
        arr = cloud_to_structured(msg)
        assert [f.name for f in msg.fields] == ["x", "y", "z", "probability"]
        assert np.all((arr["probability"] >= 0.6) & (arr["probability"] <= 1.0))
    for ma in robot.messages("/depth_any_view/occupancy/markers")[-3:]:
        (m,) = ma.markers
        assert m.type == m.CUBE_LIST
        assert (m.scale.x, m.scale.y, m.scale.z) == pytest.approx(voxel_size)
        assert len(m.points) == len(m.colors)
    grids = robot.messages("/depth_any_view/occupancy/grid")
    kinds = []
    for g in grids:
        assert g.info.resolution == pytest.approx(voxel_size[0])
        cells = occupancy_grid_to_array(g)
        assert cells.shape == (16, 16)
        assert set(np.unique(cells).tolist()) <= {-1, 0, 100}
        kinds.append({int(v) for v in np.unique(cells)})
    assert any(k == {-1, 0, 100} for k in kinds), kinds[-5:]


def _status(diag_msgs: list[Any], name: str) -> Any:
    """The newest status called `name`."""
    for msg in reversed(diag_msgs):
        for s in msg.status:
            if s.name == name:
                return s
    raise AssertionError(f"no diagnostic status '{name}'")


def test_diagnostics_report_rates_latency_and_device(system) -> None:
    robot, _, _ = system
    diag = robot.messages("/diagnostics")
    cams = _status(diag, "depth_any_view: cameras")
    values = {kv.key: kv.value for kv in cams.values}
    for cam in CAMERAS:
        assert 4.0 <= float(values[f"{cam} rate (Hz)"]) <= 16.0, values
    inf = _status(diag, "depth_any_view: inference")
    iv = {kv.key: kv.value for kv in inf.values}
    assert iv["device"] == "cpu"
    assert 0.0 < float(iv["inference p50 (s)"]) < 5.0
    assert float(iv["end-to-end p95 (s)"]) >= float(iv["inference p50 (s)"])
    assert int(iv["sets processed"]) >= 3
    sync = _status(diag, "depth_any_view: synchronizer")
    assert int({kv.key: kv.value for kv in sync.values}["sets complete"]) >= 3


# ---------------------------------------------------------------------------- parameters
def _set_parameters(robot: FakeRobot, params: dict[str, Any]) -> list[Any]:
    """Call /depth_any_view/set_parameters; the SetParametersResult per parameter."""
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter

    client = robot.node.create_client(SetParameters, "/depth_any_view/set_parameters")
    try:
        assert client.wait_for_service(timeout_sec=10.0)
        req = SetParameters.Request(parameters=[Parameter(k, value=v).to_parameter_msg()
                                                for k, v in params.items()])
        future = client.call_async(req)
        deadline = time.monotonic() + 10.0
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert future.done(), "set_parameters did not answer"
        return list(future.result().results)
    finally:
        robot.node.destroy_client(client)


def test_runtime_parameters_applied_or_refused_with_reason(system) -> None:
    robot, _, _ = system
    (bad_range,) = _set_parameters(robot, {"occupied_threshold": 0.3})
    assert not bad_range.successful
    assert "occupied_threshold" in bad_range.reason and "0.5" in bad_range.reason
    (start_only,) = _set_parameters(robot, {"device": "cuda"})
    assert not start_only.successful and "device" in start_only.reason
    (crossed,) = _set_parameters(robot, {"grid_z_min": 2.0})
    assert not crossed.successful and "grid_z_max" in crossed.reason
    before = np.median([m.width for m in robot.messages("/depth_any_view/points")[-3:]])
    (ok,) = _set_parameters(robot, {"points_stride": 4})
    assert ok.successful, ok.reason
    t0 = time.monotonic()
    robot.wait_for(lambda: len(robot.messages("/depth_any_view/points", after=t0 + 0.3)) >= 2,
                   10.0, "point clouds after the stride change", system[1])
    after = max(m.width for m in robot.messages("/depth_any_view/points", after=t0 + 0.3))
    assert after < 0.5 * before


def test_confidence_published_on_request_and_min_confidence_masks_depth(system) -> None:
    robot, log, _ = system
    from depth_any_view.ros.conversions import image_msg_to_array, image_msg_to_depth

    assert not robot.messages("/cameras/front/depth/confidence")  # off by default
    (ok,) = _set_parameters(robot, {"publish_confidence": True})
    assert ok.successful, ok.reason
    t0 = time.monotonic()
    robot.wait_for(lambda: all(robot.messages(f"/cameras/{c}/depth/confidence", after=t0)
                               for c in CAMERAS), 10.0, "confidence images", log)
    conf = robot.messages("/cameras/front/depth/confidence", after=t0)[-1]
    values = image_msg_to_array(conf, allowed=None)
    assert conf.encoding == "32FC1" and (conf.width, conf.height) == SIZE
    finite = values[np.isfinite(values)]
    assert finite.size and finite.min() > 0 and finite.max() <= 1
    threshold = float(np.median(finite))
    (ok,) = _set_parameters(robot, {"min_confidence": threshold})
    assert ok.successful, ok.reason
    (bad,) = _set_parameters(robot, {"min_confidence": 1.5})
    assert not bad.successful and "min_confidence" in bad.reason
    t1 = time.monotonic() + 0.3  # sets already in the worker may use the old threshold

    def pairs() -> list[tuple[Any, Any]]:
        depth = {(m.header.stamp.sec, m.header.stamp.nanosec): m
                 for m in robot.messages("/cameras/front/depth/image", after=t1)}
        return [(depth[k], c) for c in robot.messages("/cameras/front/depth/confidence",
                                                      after=t1)
                if (k := (c.header.stamp.sec, c.header.stamp.nanosec)) in depth]

    robot.wait_for(lambda: len(pairs()) >= 2, 10.0, "depth and confidence of one set", log)
    for depth_msg, conf_msg in pairs():
        assert depth_msg.header.frame_id == conf_msg.header.frame_id  # the same header
        depth = image_msg_to_depth(depth_msg)
        c = image_msg_to_array(conf_msg, allowed=None)
        with np.errstate(invalid="ignore"):
            assert not np.any(np.isfinite(depth) & (c < threshold))  # masked below it
            assert np.any(np.isfinite(depth)) and np.any(c < threshold)
    assert all(_set_parameters(robot, {"min_confidence": 0.0, "publish_confidence": False}))


# ---------------------------------------------------------------------------- faults
def test_bad_input_is_dropped_with_a_warning_and_the_node_keeps_running(system) -> None:
    robot, log, proc = system
    from depth_any_view.ros.conversions import stamp_to_ns

    robot.corrupt.update({"front_right": "step", "front_left": "nan_k", "odometry": "nan"})
    t0 = time.monotonic()
    t0_ns = time.time_ns()
    try:
        robot.wait_for(lambda: len(robot.messages("/depth_any_view/points", after=t0 + 0.5))
                       >= 3, 15.0, "point clouds while inputs are bad", log)
        expected = ("camera 'front_right' image: Image field 'step'",
                    "camera 'front_left' CameraInfo: CameraInfo field 'k'",
                    "odometry on /odom: field 'pose.pose.position' holds NaN")
        robot.wait_for(lambda: all(e in log.read_text(errors="replace") for e in expected),
                       10.0, f"warnings {expected} in the node's log", log)
        late = [stamp_to_ns(m.header.stamp) for m in robot.messages(
            "/cameras/front_right/depth/image", after=t0 + 0.5)]
        assert all(s < t0_ns for s in late)  # its views were dropped
        assert robot.messages("/cameras/front/depth/image", after=t0 + 0.5)
        assert proc.poll() is None
    finally:
        robot.corrupt.clear()


def test_one_camera_stopping_still_gives_outputs_from_the_others(system) -> None:
    robot, log, proc = system
    from depth_any_view.ros.conversions import stamp_to_ns

    robot.stopped.add("back")
    t0 = time.monotonic()
    t0_ns = time.time_ns()
    robot.wait_for(lambda: len(robot.messages("/depth_any_view/points", after=t0 + 1.5)) >= 3,
                   20.0, "point clouds without the back camera", log)
    points = robot.messages("/depth_any_view/points", after=t0 + 1.5)
    assert all(stamp_to_ns(m.header.stamp) > t0_ns for m in points)
    assert robot.messages("/cameras/front/depth/image", after=t0 + 1.5)
    assert not [m for m in robot.messages("/cameras/back/depth/image", after=t0 + 1.0)
                if stamp_to_ns(m.header.stamp) > t0_ns]
    # Any report after the camera stopped may be the one; on a loaded machine an earlier
    # report can also name cameras whose images were merely late (input_timeout).
    def back_missing() -> bool:
        return any(st.name == "depth_any_view: cameras" and st.level == b"\x01"
                   and st.message == "missing cameras: back"
                   for m in robot.messages("/diagnostics", after=t0 + 1.0) for st in m.status)

    robot.wait_for(back_missing, 15.0, "a WARN diagnostic naming only the missing camera",
                   log)
    assert proc.poll() is None


# ---------------------------------------------------------------------------- start-up errors
@pytest.mark.parametrize("params, expected", [
    ({"sync_slop": 5.0}, "parameter 'sync_slop' is 5.0; allowed range [0.0, 1.0] seconds"),
    ({"weights": "/nonexistent/lite.safetensors"},
     "weights file '/nonexistent/lite.safetensors' does not exist"),
])
def test_bad_start_up_exits_with_one_clear_line(ros_env, tmp_path: Path, params: dict,
                                                expected: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "depth_any_view.ros.node",
                           *ros_args(params)], cwd=ROOT, env=ros_env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and expected in lines[0], proc.stderr
