"""Pieces of the node that run without DDS traffic (its latest-wins slot: test_latest_slot.py):
the start-up error path of the constructor, and the node built in this process, driven through
its callbacks, checked to publish exactly what the shared Pipeline computes, to report bad
input per camera and field, and to pass runtime parameters on to the pipeline (see
test_node_integration.py for the node as a process over DDS)."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from depth_any_view.sync.latest_slot import LatestSlot


@pytest.mark.ros
def test_constructor_refuses_bad_parameters_before_creating_topics() -> None:
    import rclpy
    from rclpy.parameter import Parameter

    from depth_any_view.ros.node import DepthAnyViewNode, StartupError

    def no_topics(self, settings):  # start-up errors must come before any topic exists
        raise AssertionError("topics created before the start-up error")

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
        mp.setattr(DepthAnyViewNode, "_create_topics", no_topics)
        ctx = rclpy.Context()
        rclpy.init(context=ctx, domain_id=random.SystemRandom().randint(1, 100))
        try:
            for overrides, expected in (
                    ({"camera_names": ["front", "left_wing"]}, "parameter 'camera_names': "
                                                               "camera(s) ['left_wing']"),
                    ({"rig_file": "no_such_rig.yaml"}, "parameter 'rig_file'"),
                    ({"weights": "/nonexistent.safetensors"}, "does not exist"),
                    ({"random_init": True, "device": "cuda:7"}, "'device' is 'cuda:7'")):
                with pytest.raises(StartupError) as info:
                    DepthAnyViewNode(context=ctx, parameter_overrides=[
                        Parameter(k, value=v) for k, v in overrides.items()])
                assert expected in str(info.value)
        finally:
            rclpy.try_shutdown(context=ctx)


# ---------------------------------------------------------------------------- in-process node
# The node built in this process with a tiny random network; its worker thread is stopped
# and its publishers replaced by recorders, so each test drives the callbacks and the
# worker's set handling itself, deterministically and without DDS traffic.
SIZE = (32, 24)  # (width, height) of the synthetic images
TINY_MODEL = {"backbone": "resnet18", "backbone_width": 8, "image_size": [32, 32],
              "hidden": 32, "layers": 2, "heads": 2, "token_stride": 16, "decoder_width": 16,
              "grid_dims": [16, 16, 8], "occ_channels": 8, "occ_stride": 2, "occ_hidden": 8,
              "occ_blocks": 1, "occ_fine_channels": 8, "occ_fine_kernel": 1,
              "min_depth": 0.3, "max_depth": 20.0}


class Recorder:
    """Stands in for a publisher: keeps what is published, and when (time.monotonic())."""

    def __init__(self) -> None:
        self.msgs: list[Any] = []
        self.times: list[float] = []

    def publish(self, msg: Any) -> None:
        self.msgs.append(msg)
        self.times.append(time.monotonic())


def _markers(data: Any) -> Any:
    """The MarkerArray the node published as serialized bytes."""
    from rclpy.serialization import deserialize_message
    from visualization_msgs.msg import MarkerArray

    assert isinstance(data, bytes)  # published serialized (conversions.marker_array_bytes)
    return deserialize_message(data, MarkerArray)


@pytest.fixture(scope="module")
def frames() -> list[Any]:
    """Four synthetic indoor frames of the surround6 rig."""
    from depth_any_view.data.synth import generate_frames

    return list(generate_frames(frames=4, size=SIZE, seed=2, scene="indoor", grid_dims=16))


@pytest.fixture()
def node(tmp_path: Path) -> Iterator[Any]:
    """A DepthAnyViewNode on a private domain, workers stopped, publishers recorded."""
    import rclpy
    import yaml
    from rclpy.parameter import Parameter

    from depth_any_view.ros.node import DepthAnyViewNode

    model = tmp_path / "model_tiny.yaml"
    model.write_text(yaml.safe_dump(TINY_MODEL))
    params = {"preset": str(model), "random_init": True, "device": "cpu", "threads": 1,
              "warmup_iters": 0}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
        ctx = rclpy.Context()
        rclpy.init(context=ctx, domain_id=random.SystemRandom().randint(1, 100))
        n = None
        try:
            n = DepthAnyViewNode(context=ctx, parameter_overrides=[
                Parameter(k, value=v) for k, v in params.items()])
            n._worker.close()  # the test hands sets over itself (_feed, _handle)
            n._slot = LatestSlot()
            n._worker = SimpleNamespace(put=n._slot.put, wait_idle=lambda timeout=None: True,
                                        close=lambda timeout=10.0: None)
            cams = n.settings.camera_names
            n.outputs.depth = {c: Recorder() for c in cams}
            n.outputs.depth_info = {c: Recorder() for c in cams}
            for name in ("points", "voxels", "markers", "grid"):
                setattr(n.outputs, name, Recorder())
            yield n
        finally:
            if n is not None:
                n.destroy_node()
            rclpy.try_shutdown(context=ctx)


def _messages(frame: Any, corrupt: dict[str, str] | None = None) -> dict[str, Any]:
    """CameraInfo and Image messages per camera and the Odometry of a synthetic frame."""
    from nav_msgs.msg import Odometry

    from depth_any_view.geometry.camera import PinholeCamera
    from depth_any_view.ros import conversions as C

    corrupt = corrupt or {}
    out: dict[str, Any] = {"info": {}, "image": {}}
    for v, cam in enumerate(frame.camera_names):
        header = C.make_header(frame.stamp_ns, frame.frame_ids[v])
        width = SIZE[0] // 2 if corrupt.get(cam) == "size" else SIZE[0]
        info = C.camera_to_camera_info(PinholeCamera(width, SIZE[1], frame.K[v]), header)
        if corrupt.get(cam) == "nan_k":
            info.k[0] = float("nan")
        image = C.array_to_image_msg(frame.images[v], "rgb8", header)
        if corrupt.get(cam) == "step":
            image.step -= 1
        out["info"][cam], out["image"][cam] = info, image
    odom = Odometry(header=C.make_header(frame.stamp_ns, "odom"), child_frame_id="base_link")
    odom.pose.pose = C.matrix_to_pose(frame.T_odom_base)
    if corrupt.get("odometry") == "nan":
        odom.pose.pose.position.x = float("nan")
    out["odom"] = odom
    return out


def _feed(node: Any, msgs: dict[str, Any]) -> Any:
    """Run the node's callbacks on a frame's messages; the set handed to the worker."""
    for cam, info in msgs["info"].items():
        node._on_camera_info(cam, info)
    node._on_odometry(msgs["odom"])
    for cam, image in msgs["image"].items():
        node._on_image(cam, image)
    return node._slot.take(0.0)


@pytest.mark.ros
def test_the_node_publishes_exactly_what_the_pipeline_computes(node: Any,
                                                               frames: list[Any]) -> None:
    """The node is an adapter: a Pipeline fed the same data gives the same outputs."""
    from rclpy.parameter import Parameter
    from rclpy.serialization import deserialize_message, serialize_message
    from visualization_msgs.msg import MarkerArray

    from depth_any_view.pipeline import Pipeline
    from depth_any_view.ros import conversions as C
    from depth_any_view.ros.startup import pipeline_config

    assert node.set_parameters([Parameter("markers_period", value=0.0)])[0].successful
    ref = Pipeline(pipeline_config(node.settings), node.rig, engine=node.pipeline.engine)
    for frame in frames[:3]:
        msgs = _messages(frame)
        synced = _feed(node, msgs)
        assert synced is not None and synced.complete
        node._handle(synced)
        for cam, info in msgs["info"].items():
            ref.add_camera_info(cam, frame.stamp_ns, info)
        ref.add_odometry(frame.stamp_ns, C.odometry_to_transform(msgs["odom"]))
        sets = []
        for v, cam in enumerate(frame.camera_names):
            sets += ref.add_image(cam, frame.stamp_ns, frame.images[v], frame.stamp_ns,
                                  frame_id=frame.frame_ids[v])
        r = ref.process(sets[0])
        assert r.ok and r.map_frame == "odom"
        for v, cam in enumerate(frame.camera_names):
            depth_msg = node.outputs.depth[cam].msgs[-1]
            info_msg = node.outputs.depth_info[cam].msgs[-1]
            for m in (depth_msg, info_msg):  # the input image's header
                assert C.stamp_to_ns(m.header.stamp) == frame.stamp_ns
                assert m.header.frame_id == frame.frame_ids[v]
            np.testing.assert_array_equal(C.image_msg_to_depth(depth_msg),
                                          r.cameras[cam].depth)
            assert (info_msg.width, info_msg.height) == (depth_msg.width, depth_msg.height)
        cloud = node.outputs.points.msgs[-1]
        assert cloud.header.frame_id == "base_link"
        pts, rgb = C.xyzrgb_from_cloud(cloud)
        np.testing.assert_array_equal(pts, r.points)
        np.testing.assert_array_equal(rgb, r.colors)
        voxels = C.cloud_to_structured(node.outputs.voxels.msgs[-1])
        assert node.outputs.voxels.msgs[-1].header.frame_id == "odom"
        np.testing.assert_array_equal(np.stack([voxels[a] for a in "xyz"], axis=1), r.voxels)
        np.testing.assert_array_equal(voxels["probability"], r.voxel_probability)
        np.testing.assert_array_equal(C.occupancy_grid_to_array(node.outputs.grid.msgs[-1]),
                                      r.grid2d.data)
        centres, z_range = ref.marker_voxels(r, node.settings.marker_max_voxels)
        want = C.marker_array_msg(centres, ref.fusion.voxel_size,
                                  C.make_header(r.stamp_ns, "odom"), z_range=z_range)
        got = _markers(node.outputs.markers.msgs[-1])
        assert got == deserialize_message(serialize_message(want), MarkerArray)
        assert len(got.markers[0].points) == len(r.voxels)
    assert node.diag.processed == 3 and len(node.outputs.markers.msgs) == 3


@pytest.mark.ros
def test_bad_input_is_counted_per_camera_and_field(node: Any, frames: list[Any]) -> None:
    corrupt = {"front_right": "step", "front_left": "nan_k", "back": "size",
               "odometry": "nan"}
    assert _feed(node, _messages(frames[0], corrupt)) is None  # front_right never arrived
    node._dispatch(node.pipeline.poll(node._now_ns() + 10**9))  # the window times out
    synced = node._slot.take(0.0)
    assert synced is not None and synced.missing == ["front_right"]
    node._handle(synced)
    values = node.diag.statuses()[0].values
    assert values["front_right bad image"] == "1"
    assert "Image field 'step'" in values["front_right last bad input"]
    assert values["back bad size"] == "1"
    assert "16x24" in values["back last bad input"]
    assert int(values["front_left bad camera_info"]) >= 2  # the message, then its view
    assert "'k'" in values["front_left last bad input"]
    assert values["odometry bad pose"] == "1"
    assert "pose.pose.position" in values["odometry last bad input"]
    assert node.outputs.depth["front"].msgs and not node.outputs.depth["back"].msgs
    # the set went ahead with the three good views, without odometry: base_link
    assert node.outputs.grid.msgs[-1].header.frame_id == "base_link"
    assert "no odometry" in node.diag.statuses()[3].message
    # no usable view at all: the set is dropped as bad input
    everything = {c: "size" for c in frames[1].camera_names}
    assert _feed(node, _messages(frames[1], everything)) is None  # no CameraInfo of their
    node._dispatch(node.pipeline.poll(node._now_ns() + 10**9))  # size: after the timeout
    node._handle(node._slot.take(0.0))
    assert node.diag.dropped() == {"bad_input": 1}


@pytest.mark.ros
def test_runtime_parameters_reach_the_pipeline(node: Any, frames: list[Any]) -> None:
    from rclpy.parameter import Parameter

    node._handle(_feed(node, _messages(frames[0])))
    dense = node.outputs.points.msgs[-1].width
    results = node.set_parameters([Parameter("occupied_threshold", value=0.3)])
    assert not results[0].successful and "occupied_threshold" in results[0].reason
    assert not node.set_parameters([Parameter("device", value="cuda")])[0].successful
    results = node.set_parameters([Parameter("points_stride", value=4),
                                   Parameter("occupied_threshold", value=0.8)])
    assert all(r.successful for r in results), [r.reason for r in results]
    node._handle(_feed(node, _messages(frames[1])))
    assert node.pipeline.cfg.points.stride == 4
    assert node.pipeline.fusion.config.occupied_threshold == 0.8
    assert 0 < node.outputs.points.msgs[-1].width < dense / 2
    assert node.set_parameters([Parameter("publish_points", value=False)])[0].successful
    clouds = len(node.outputs.points.msgs)
    node._handle(_feed(node, _messages(frames[2])))
    assert not node.pipeline.cfg.points.enabled and len(node.outputs.points.msgs) == clouds


@pytest.mark.ros
def test_a_new_rig_file_at_runtime_reaches_the_pipeline(node: Any, frames: list[Any],
                                                        tmp_path: Path) -> None:
    import yaml
    from rclpy.parameter import Parameter

    from depth_any_view.pipeline import resolve_rig_file

    rig = yaml.safe_load(resolve_rig_file(node.settings.rig_file).read_text())
    rig["cameras"]["front"]["translation"] = [0.4, 0.1, 1.2]
    moved = tmp_path / "moved.yaml"
    moved.write_text(yaml.safe_dump(rig))
    del rig["cameras"]["back"]
    lacking = tmp_path / "lacking.yaml"
    lacking.write_text(yaml.safe_dump(rig))
    for value, expected in ((str(tmp_path / "none.yaml"), "parameter 'rig_file'"),
                            (str(lacking), "camera(s) ['back'] not in the rig")):
        result = node.set_parameters([Parameter("rig_file", value=value)])[0]
        assert not result.successful and expected in result.reason, result.reason
    assert node.set_parameters([Parameter("rig_file", value=str(moved))])[0].successful
    node._handle(_feed(node, _messages(frames[0])))
    np.testing.assert_allclose(node.pipeline.rig["front"].T_base_cam[:3, 3], [0.4, 0.1, 1.2])
    assert node.pipeline.rig.names == list(node.settings.camera_names)


@pytest.mark.ros
def test_markers_are_published_at_most_every_markers_period(node: Any,
                                                             frames: list[Any]) -> None:
    """Frames 0.1 s apart: with the default period of 1 s only the first set's markers go
    out; a period of 0 publishes every set's; a stamp going backwards publishes at once."""
    from rclpy.parameter import Parameter

    from depth_any_view.ros import conversions as C

    assert node.settings.markers_period == 1.0
    for frame in frames[:3]:
        node._handle(_feed(node, _messages(frame)))
    assert len(node.outputs.voxels.msgs) == 3  # the other outputs go out every set
    assert len(node.outputs.markers.msgs) == 1
    (m,) = _markers(node.outputs.markers.msgs[0]).markers
    assert C.stamp_to_ns(m.header.stamp) == frames[0].stamp_ns and m.type == m.CUBE_LIST
    assert node.set_parameters([Parameter("markers_period", value=0.0)])[0].successful
    node._handle(_feed(node, _messages(frames[3])))
    assert len(node.outputs.markers.msgs) == 2
    assert node.set_parameters([Parameter("markers_period", value=1.0)])[0].successful
    assert node.outputs.markers_due(replace_stamp(node, frames[3].stamp_ns + 10**8), 1.0) is False
    assert node.outputs.markers_due(replace_stamp(node, frames[3].stamp_ns + 10**9), 1.0) is True
    assert node.outputs.markers_due(replace_stamp(node, frames[0].stamp_ns), 1.0) is True  # looped
    assert not node.set_parameters([Parameter("markers_period", value=-1.0)])[0].successful


def replace_stamp(node: Any, stamp_ns: int) -> Any:
    """A processed PipelineResult of the node's last kind with another stamp (no reset)."""
    from depth_any_view.pipeline import PipelineResult

    return PipelineResult(stamp_ns=stamp_ns, cameras={}, missing=[], skipped={})


@pytest.mark.ros
def test_large_messages_are_spaced_by_publish_spacing(node: Any, frames: list[Any],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Every message above LARGE_MESSAGE_BYTES goes out at least publish_spacing after the
    previous one (the test's images are tiny, so the threshold is lowered)."""
    from rclpy.parameter import Parameter

    import depth_any_view.ros.result_publisher as N

    monkeypatch.setattr(N, "LARGE_MESSAGE_BYTES", 1000)  # a 32x24 depth image is 3072 bytes
    assert node.set_parameters([Parameter("publish_spacing", value=0.03)])[0].successful
    node._handle(_feed(node, _messages(frames[0])))
    large = [r for r in (*node.outputs.depth.values(), node.outputs.points, node.outputs.voxels,
                         node.outputs.markers) if r.msgs and N.payload_bytes(r.msgs[-1]) > 1000]
    assert len(large) >= 7  # six depth images and the cloud (voxels and markers if many)
    times = sorted(t for r in large for t in r.times)
    assert min(np.diff(times)) >= 0.03
    assert all(N.payload_bytes(m) < 1000 for m in node.outputs.depth_info["front"].msgs)
    assert N.payload_bytes(b"abc") == 3 and N.payload_bytes(object()) == 0
