"""Any number of cameras in one node (issue 10): 1 to 8 cameras of a rig file, no code change.

The real node runs as a separate process over DDS (localhost, a private ROS_DOMAIN_ID),
once with 4 cameras of the six-camera surround rig (chosen out of rig order) and once with
all 8 cameras of `config/rig_ring8.yaml`, both with the same tiny random weights (one CPU
thread). A fake robot in this process renders synthetic frames of that rig
(`depth_any_view.data.synth`, 32x24 pixels), publishes synchronized Image + CameraInfo of
every configured camera and odometry for a few sets, and subscribes to every output.

Checked, per camera count: every camera's depth image and depth CameraInfo arrive with its
frame_id, the input stamp and the input size; at least one set holds all N cameras (they
were synchronized together); the point cloud, occupancy voxels, markers and grid arrive;
/diagnostics report exactly the configured cameras; cameras of the rig left out of
`camera_names` get no output. A `camera_names` of more than 8 cameras or with a name the
rig lacks ends the node with one line naming it. Without DDS: the pipeline as the node
configures it takes 1, 4 and 8 cameras of the ring rig; the ring rig's geometry; the
parameter check.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
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
    write_tiny_network,
)

from depth_any_view.geometry.rig import load_rig

SIZE = (32, 24)  # (width, height) pixels of the synthetic images
N_FRAMES = 3  # distinct frames the robot cycles through
SET_PERIOD_S = 0.25  # seconds between published sets
MAX_SETS = 40  # most sets published before giving up
NEED = 2  # messages wanted on every output topic
SURROUND6 = ["front", "front_left", "front_right", "back", "back_left", "back_right"]
FOUR = ["back", "front", "front_left", "back_right"]  # a subset of surround6, not rig order
RING8 = ["front", "front_left", "left", "back_left", "back", "back_right", "right",
         "front_right"]
# name -> (camera_names, rig name for rendering, rig_file parameter or None = default)
CASES = {"4 of surround6": (FOUR, "surround6", None),
         "8 of ring8": (RING8, "ring8", "config/rig_ring8.yaml")}
NODE_PARAMS = {"threads": 1, "warmup_iters": 0, "diagnostics_period": 0.5,
               "markers_period": 0.0, "input_timeout": 2.0}
SHARED = ["/depth_any_view/points", "/depth_any_view/occupancy/voxels",
          "/depth_any_view/occupancy/markers", "/depth_any_view/occupancy/grid"]


def depth_topics(camera: str) -> list[str]:
    """The two per-camera outputs."""
    return [f"/cameras/{camera}/depth/image", f"/cameras/{camera}/depth/camera_info"]


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def tiny_network(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """One tiny random network for every camera count (occupancy probabilities decided)."""
    net = write_tiny_network(tmp_path_factory.mktemp("tiny_network"),
                             occupancy_gain=OCCUPANCY_GAIN, occupancy_bias=0.0)
    return {k: str(v) for k, v in net.items()}


@functools.cache
def frames_of(rig: str) -> list[Any]:
    """Synthetic indoor frames of a built-in rig (rendered once per test run)."""
    from depth_any_view.data.synth import generate_frames

    return list(generate_frames(frames=N_FRAMES, rig=rig, size=SIZE, seed=5, scene="indoor",
                                grid_dims=16))


class Robot(SpinningNode):
    """Camera drivers, odometry and the node's consumers in one rclpy node of the test."""

    def __init__(self, domain_id: int, cameras: list[str], frames: list[Any],
                 watched: list[str]) -> None:
        """Publish `cameras` of `frames`; subscribe to the outputs of the `watched` cameras
        and to the shared outputs and /diagnostics."""
        from diagnostic_msgs.msg import DiagnosticArray
        from nav_msgs.msg import OccupancyGrid, Odometry
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image, PointCloud2
        from visualization_msgs.msg import MarkerArray

        from depth_any_view.geometry.camera import PinholeCamera
        from depth_any_view.ros import conversions as C

        self.C, self.frames, self.cameras = C, frames, cameras
        self.index = {name: frames[0].camera_names.index(name) for name in cameras}
        self.calib = {c: PinholeCamera(SIZE[0], SIZE[1], frames[0].K[i])
                      for c, i in self.index.items()}
        super().__init__("fake_robot", domain_id)
        self.lock = threading.Lock()
        self.received: dict[str, list[Any]] = defaultdict(list)
        self.published: dict[int, int] = {}  # stamp_ns -> frame index
        self.pub_image = {c: self.node.create_publisher(Image, f"/cameras/{c}/image_raw", 10)
                          for c in cameras}
        self.pub_info = {c: self.node.create_publisher(CameraInfo, f"/cameras/{c}/camera_info",
                                                       10) for c in cameras}
        self.pub_odom = self.node.create_publisher(Odometry, "/odom", 10)
        types: dict[str, Any] = {SHARED[0]: PointCloud2, SHARED[1]: PointCloud2,
                                 SHARED[2]: MarkerArray, SHARED[3]: OccupancyGrid,
                                 "/diagnostics": DiagnosticArray}
        for c in watched:
            image, info = depth_topics(c)
            types[image], types[info] = Image, CameraInfo
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.subs = {topic: self.node.create_subscription(
            t, topic, lambda m, topic=topic: self._store(topic, m),
            latched if topic.endswith("grid") else reliable) for topic, t in types.items()}
        self.start_spinning()

    def _store(self, topic: str, msg: Any) -> None:
        with self.lock:
            self.received[topic].append(msg)

    def connected(self, topics: list[str]) -> bool:
        """The node subscribes to every camera and publishes every output in `topics`."""
        return (all(p.get_subscription_count() > 0 for p in self.pub_image.values())
                and all(p.get_subscription_count() > 0 for p in self.pub_info.values())
                and self.pub_odom.get_subscription_count() > 0
                and all(self.subs[t].get_publisher_count() > 0 for t in topics))

    def publish_set(self, k: int) -> int:
        """CameraInfo, Image (rgb8) of every camera and odometry of frame k (cycled), all
        stamped with the wall clock like live drivers; returns the stamp."""
        from nav_msgs.msg import Odometry

        C = self.C
        i = k % len(self.frames)
        frame = self.frames[i]
        stamp = time.time_ns()
        with self.lock:
            self.published[stamp] = i
        for cam, v in self.index.items():
            header = C.make_header(stamp, frame.frame_ids[v])
            self.pub_info[cam].publish(C.camera_to_camera_info(self.calib[cam], header))
            self.pub_image[cam].publish(C.array_to_image_msg(frame.images[v], "rgb8", header))
        odom = Odometry(header=C.make_header(stamp, "odom"), child_frame_id="base_link")
        odom.pose.pose = C.matrix_to_pose(frame.T_odom_base)
        self.pub_odom.publish(odom)
        return stamp

    def messages(self, topic: str) -> list[Any]:
        """Messages received on `topic` so far."""
        with self.lock:
            return list(self.received[topic])


def _wait(predicate: Callable[[], bool], timeout: float, what: str, proc: Any,
          log: Path) -> None:
    """Poll `predicate`; fail naming `what` with the node's log tail (also if it exits)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            pytest.fail(f"the node exited ({proc.returncode}) while waiting for {what}:\n"
                        f"{tail(log)}")
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout} s waiting for {what}; node log:\n{tail(log)}")


def _stamps(robot: Robot, topic: str) -> set[int]:
    """Header stamps (ns) of the messages on `topic` (MarkerArray: its first marker's)."""
    from depth_any_view.ros.conversions import stamp_to_ns

    msgs = robot.messages(topic)
    if topic.endswith("markers"):
        return {stamp_to_ns(m.markers[0].header.stamp) for m in msgs if m.markers}
    return {stamp_to_ns(m.header.stamp) for m in msgs}


@pytest.fixture(scope="module", params=list(CASES), ids=list(CASES))
def run(request: pytest.FixtureRequest, tiny_network: dict[str, str],
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The node with one camera list; the robot publishes sets until every output came."""
    cameras, rig_name, rig_file = CASES[request.param]
    frames = frames_of(rig_name)
    rig = load_rig(rig_name)
    env = dds_env()
    log = tmp_path_factory.mktemp("node") / "node.log"
    params = {**tiny_network, **NODE_PARAMS, "camera_names": cameras}
    if rig_file is not None:
        params["rig_file"] = rig_file
    proc = start_node(env, params, log)
    robot = Robot(int(env["ROS_DOMAIN_ID"]), cameras, frames, watched=rig.names)
    expected = SHARED + [t for c in cameras for t in depth_topics(c)]
    try:
        _wait(lambda: robot.connected(expected), 90.0,
              "the node to subscribe to the cameras and publish its outputs", proc, log)

        def all_arrived() -> bool:
            published = set(robot.published)
            depth_sets = set.intersection(*(_stamps(robot, depth_topics(c)[0])
                                            for c in cameras))
            return bool(depth_sets & published) and all(
                len(_stamps(robot, t) & published) >= NEED for t in expected)

        for k in range(MAX_SETS):
            robot.publish_set(k)
            time.sleep(SET_PERIOD_S)
            if all_arrived():
                break
            assert proc.poll() is None, f"the node exited ({proc.returncode}):\n{tail(log)}"
        _wait(all_arrived, 10.0, f"{NEED} messages on every output of {cameras}", proc, log)
        _wait(lambda: robot.messages("/diagnostics"), 5.0, "/diagnostics", proc, log)
        yield {"cameras": cameras, "rig": rig, "robot": robot, "frames": frames, "log": log,
               "proc": proc}
    finally:
        robot.close()
        code = stop_node(proc)
        print(f"node exit status {code}; log tail:\n{tail(log, 10)}")


# ---------------------------------------------------------------------------- over DDS
@pytest.mark.ros
@pytest.mark.slow
def test_every_camera_gets_depth_and_camera_info(run: dict[str, Any]) -> None:
    from depth_any_view.ros.conversions import stamp_to_ns

    robot, rig, cameras = run["robot"], run["rig"], run["cameras"]
    assert f"ready: {len(cameras)} cameras ({', '.join(cameras)})" in \
        run["log"].read_text(errors="replace")
    published = set(robot.published)
    for cam in cameras:
        images = robot.messages(f"/cameras/{cam}/depth/image")
        infos = robot.messages(f"/cameras/{cam}/depth/camera_info")
        assert len(images) >= NEED and len(infos) >= NEED, cam
        for msg in images:
            assert msg.encoding == "32FC1" and (msg.width, msg.height) == SIZE, cam
            assert msg.header.frame_id == rig[cam].frame_id, cam
            assert stamp_to_ns(msg.header.stamp) in published, cam
        for info in infos:
            assert (info.width, info.height) == SIZE and info.header.frame_id == \
                rig[cam].frame_id, cam
        v = run["frames"][0].camera_names.index(cam)
        np.testing.assert_allclose(np.asarray(infos[-1].k).reshape(3, 3),
                                   run["frames"][0].K[v], rtol=1e-6)
    # all N cameras of one published set came out together: they were synchronized as one
    together = set.intersection(*(_stamps(robot, f"/cameras/{c}/depth/image")
                                  for c in cameras)) & published
    assert together, "no set with a depth image from every camera"


@pytest.mark.ros
@pytest.mark.slow
def test_cameras_left_out_of_camera_names_get_nothing(run: dict[str, Any]) -> None:
    robot, rig, cameras = run["robot"], run["rig"], run["cameras"]
    left_out = [c for c in rig.names if c not in cameras]
    assert len(left_out) == len(rig) - len(cameras)
    for cam in left_out:
        for topic in depth_topics(cam):
            assert not robot.messages(topic), topic


@pytest.mark.ros
@pytest.mark.slow
def test_points_and_occupancy_arrive_from_all_cameras(run: dict[str, Any]) -> None:
    from depth_any_view.ros.conversions import (
        cloud_to_structured,
        occupancy_grid_to_array,
        xyzrgb_from_cloud,
    )

    robot, rig, cameras = run["robot"], run["rig"], run["cameras"]
    published = set(robot.published)
    for topic, frame in ((SHARED[0], "base_link"), (SHARED[1], "odom"), (SHARED[3], "odom")):
        msgs = robot.messages(topic)
        assert len(msgs) >= NEED, topic
        assert all(m.header.frame_id == frame for m in msgs), topic
    assert len(_stamps(robot, SHARED[2]) & published) >= NEED
    # the cloud surrounds the robot: points within 20 degrees of every camera's heading
    pts, _ = xyzrgb_from_cloud(robot.messages(SHARED[0])[-1])
    assert pts.shape[0] > 50 and np.all(np.isfinite(pts))
    azimuth = np.arctan2(pts[:, 1], pts[:, 0])  # (N,) radians, about base_link z
    for cam in cameras:
        fwd = rig[cam].forward
        off = np.angle(np.exp(1j * (azimuth - np.arctan2(fwd[1], fwd[0]))))  # wrapped
        assert np.count_nonzero(np.abs(off) < np.radians(20)) > 5, cam
    voxels = cloud_to_structured(robot.messages(SHARED[1])[-1])
    assert voxels.dtype.names == ("x", "y", "z", "probability")
    markers = robot.messages(SHARED[2])[-1]
    assert markers.markers and markers.markers[0].type == markers.markers[0].CUBE_LIST
    cells = occupancy_grid_to_array(robot.messages(SHARED[3])[-1])
    assert cells.shape == (16, 16) and set(np.unique(cells).tolist()) <= {-1, 0, 100}


@pytest.mark.ros
@pytest.mark.slow
def test_diagnostics_list_exactly_the_configured_cameras(run: dict[str, Any]) -> None:
    robot, rig, cameras = run["robot"], run["rig"], run["cameras"]
    statuses = [s for m in robot.messages("/diagnostics") for s in m.status
                if s.name == "depth_any_view: cameras"]
    assert statuses
    keys = {kv.key for kv in statuses[-1].values}
    for cam in rig.names:
        assert (f"{cam} rate (Hz)" in keys) == (cam in cameras), (cam, sorted(keys))


@pytest.mark.ros
@pytest.mark.slow
def test_too_many_or_unknown_cameras_end_the_node_with_one_line(tiny_network: dict[str, str]
                                                                 ) -> None:
    """Exit status 2 and one line naming the problem (both processes run in parallel)."""
    nine = RING8 + ["top"]
    cases = {
        "nine cameras": ({"camera_names": nine, "rig_file": "config/rig_ring8.yaml"},
                         f"parameter 'camera_names' lists 9 cameras {nine}; one node takes 1 "
                         "to 8"),
        "names the rig lacks": ({"camera_names": ["front", "left", "right"]},
                                "parameter 'camera_names': camera(s) ['left', 'right'] not in "
                                "the rig"),
    }
    env = dds_env()
    results = run_nodes_to_exit({name: ros_args({**tiny_network, **params})
                                 for name, (params, _) in cases.items()}, env)
    failures = []
    for name, (code, out, err) in results.items():
        lines = [ln for ln in err.splitlines() if ln.strip()]
        expected = cases[name][1]
        if not (code == 2 and len(lines) == 1 and expected in lines[0]
                and lines[0].startswith("depth_any_view: ")):
            failures.append(f"{name}: exit {code}, expected one line with "
                            f"{expected!r}; stderr:\n{err}\nstdout:\n{out}")
    assert not failures, "\n\n".join(failures)


# ---------------------------------------------------------------------------- without DDS
def test_ring8_rig_is_eight_cameras_evenly_round_the_robot() -> None:
    rig = load_rig("ring8")
    assert rig.names == RING8 and rig.base_frame == "base_link"
    assert load_rig("config/rig_ring8.yaml").names == RING8
    yaw = []
    for name, cam in rig.cameras.items():
        assert cam.frame_id == f"{name}_camera_optical"
        np.testing.assert_allclose(cam.T_base_cam[:3, :3].T @ cam.T_base_cam[:3, :3],
                                   np.eye(3), atol=1e-6)
        np.testing.assert_allclose(cam.T_base_cam[:3, 1], [0, 0, -1], atol=1e-6)  # image down
        assert cam.position[2] == pytest.approx(1.6)
        assert np.linalg.norm(cam.position[:2]) == pytest.approx(0.25, abs=1e-5)
        # looking outwards, from where it sits
        np.testing.assert_allclose(cam.forward[:2], cam.position[:2] / 0.25, atol=1e-5)
        yaw.append(np.degrees(np.arctan2(cam.forward[1], cam.forward[0])) % 360.0)
    np.testing.assert_allclose(yaw, np.arange(8) * 45.0, atol=1e-4)  # counter-clockwise
    surround = load_rig("surround6")
    for name in ("front", "back"):  # the same mounting as the surround rig's
        np.testing.assert_allclose(rig[name].T_base_cam, surround[name].T_base_cam, atol=1e-6)


def test_camera_names_takes_one_to_eight() -> None:
    from depth_any_view.ros.params import MAX_CAMERAS, Settings, check_value, defaults

    assert MAX_CAMERAS == 8
    for names in (["left"], FOUR, RING8):
        assert check_value("camera_names", names) is None
    nine = RING8 + ["top"]
    message = check_value("camera_names", nine)
    assert message is not None and "'camera_names'" in message and "9 cameras" in message
    assert "1 to 8" in message
    s = Settings({**defaults(), "camera_names": RING8, "min_cameras": 8})
    assert s.camera_names == RING8


@pytest.fixture(scope="module")
def engine(tiny_network: dict[str, str]) -> Any:
    """The tiny network's engine on the CPU, shared by the pipelines below."""
    from depth_any_view.inference.engine import EngineConfig, InferenceEngine

    return InferenceEngine(EngineConfig(weights=tiny_network["weights"],
                                        preset=tiny_network["preset"], device="cpu",
                                        warmup_iters=0, threads=1, return_images=True))


@pytest.mark.parametrize("cameras", [["left"], ["back_right", "front", "left", "right"], RING8],
                         ids=["1", "4", "8"])
def test_the_pipeline_takes_one_to_eight_cameras(engine: Any, cameras: list[str]) -> None:
    """The pipeline as the node configures it (parameters -> PipelineConfig, rig file
    from the rig_file parameter): one set of N cameras gives depth for each, points,
    voxels and the grid; with one camera the set is complete at its first image."""
    from types import SimpleNamespace

    from depth_any_view.pipeline import Pipeline, PipelineConfig
    from depth_any_view.ros.params import Settings, defaults

    s = Settings({**defaults(), "camera_names": cameras, "rig_file": "config/rig_ring8.yaml",
                  "device": "cpu", "threads": 1, "warmup_iters": 0})
    pipe = Pipeline(PipelineConfig.from_parameters(s), engine=engine)
    assert pipe.rig.names == cameras
    frame = frames_of("ring8")[0]
    index = {n: frame.camera_names.index(n) for n in cameras}
    stamp = frame.stamp_ns
    for name, v in index.items():
        K = frame.K[v]
        pipe.add_camera_info(name, stamp, SimpleNamespace(
            width=SIZE[0], height=SIZE[1], distortion_model="plumb_bob", d=[0.0] * 5,
            k=K.ravel(), r=np.eye(3).ravel(), p=np.hstack([K, np.zeros((3, 1))]).ravel()))
    pipe.add_odometry(stamp, frame.T_odom_base)
    sets = []
    for name, v in index.items():
        assert not sets, "a set went ahead before every camera's image was in"
        sets += pipe.add_image(name, stamp, frame.images[v], stamp + 1_000_000,
                               frame_id=frame.frame_ids[v])
    assert len(sets) == 1 and sets[0].complete
    r = pipe.process(sets[0])
    assert r.ok and r.complete and list(r.cameras) == cameras
    for name, out in r.cameras.items():
        assert out.depth.shape == (SIZE[1], SIZE[0]) and out.frame_id == frame.frame_ids[
            index[name]]
        assert np.isfinite(out.depth).mean() > 0.5, name
    assert r.points.shape[0] > 0 and r.points_frame == "base_link"
    assert r.map_frame == "odom" and r.voxels is not None and r.grid2d is not None
    assert r.prediction is not None and r.prediction.num_views == len(cameras)
    # every point lies in front of some configured camera (none come from the others)
    T = np.stack([pipe.rig[n].T_base_cam for n in cameras])  # (N, 4, 4)
    local = np.einsum("nji,pnj->pni", T[:, :3, :3], r.points[:, None, :] - T[None, :, :3, 3])
    assert np.all((local[..., 2] > 0).any(axis=1))
