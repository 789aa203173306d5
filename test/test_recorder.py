"""ros/recorder.py: the node's outputs recorded from DDS into an MCAP rosbag2.

A tiny publisher in this process (its own rclpy context, localhost DDS on the test run's
domain, test/conftest.py) plays the node: for each of three sets it publishes an input
image, then every output topic of the contract with the set's stamp, plus /diagnostics.
Checked: the bag opens with rosbags, every topic has the right type and count, each
message deserialises and carries its stamp, the recorder counts input and output sets and
gives a finite, non-negative latency; the stamp parser and the topic table on their own.
"""

from __future__ import annotations

import struct
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.ros

rclpy = pytest.importorskip("rclpy")

from rclpy.serialization import serialize_message  # noqa: E402

from depth_any_view.ros.recorder import (  # noqa: E402
    Recorder,
    header_stamp_ns,
    msgtype_of,
    output_topics,
)

CAMERAS = ["front", "front_left", "front_right", "back", "back_left", "back_right"]
STAMPS = [1_700_000_000_100_000_000 + i * 100_000_000 for i in range(3)]  # ns, 10 Hz
INPUT = "/cameras/front/image_raw"
WAIT_S = 20.0  # discovery on a loaded 2-core machine


def _stamp(msg: Any, stamp_ns: int) -> Any:
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    return msg


def _messages(stamp_ns: int, msgtype: str) -> Any:
    """A small message of `msgtype` stamped `stamp_ns`."""
    from diagnostic_msgs.msg import DiagnosticArray
    from nav_msgs.msg import OccupancyGrid
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField
    from visualization_msgs.msg import Marker, MarkerArray

    if msgtype == "sensor_msgs/msg/Image":
        m = _stamp(Image(height=2, width=3, encoding="32FC1", step=12), stamp_ns)
        m.data = np.arange(6, dtype=np.float32).tobytes()
        return m
    if msgtype == "sensor_msgs/msg/CameraInfo":
        return _stamp(CameraInfo(height=2, width=3, distortion_model="plumb_bob"), stamp_ns)
    if msgtype == "sensor_msgs/msg/PointCloud2":
        m = _stamp(PointCloud2(height=1, width=2, point_step=12, row_step=24, is_dense=True),
                   stamp_ns)
        m.fields = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1)
                    for i, n in enumerate("xyz")]
        m.data = np.ones(6, np.float32).tobytes()
        return m
    if msgtype == "visualization_msgs/msg/MarkerArray":
        return MarkerArray(markers=[_stamp(Marker(type=Marker.CUBE_LIST), stamp_ns)])
    if msgtype == "nav_msgs/msg/OccupancyGrid":
        m = _stamp(OccupancyGrid(), stamp_ns)
        m.info.width, m.info.height, m.info.resolution = 2, 1, 0.5
        m.data = [0, 100]
        return m
    assert msgtype == "diagnostic_msgs/msg/DiagnosticArray"
    return _stamp(DiagnosticArray(), time.time_ns())


def test_header_stamp_is_read_from_the_cdr_bytes() -> None:
    from sensor_msgs.msg import Image
    from std_msgs.msg import String
    from visualization_msgs.msg import MarkerArray

    stamp = 1_234_567_890_987_654_321
    for msgtype in ("sensor_msgs/msg/Image", "sensor_msgs/msg/PointCloud2",
                    "visualization_msgs/msg/MarkerArray", "nav_msgs/msg/OccupancyGrid"):
        raw = serialize_message(_messages(stamp, msgtype))
        assert header_stamp_ns(raw, msgtype) == stamp, msgtype
    assert header_stamp_ns(serialize_message(MarkerArray()), msgtype_of(MarkerArray)) is None
    assert header_stamp_ns(serialize_message(String(data="x")), "std_msgs/msg/String") is None
    big_endian = b"\x00\x00\x00\x00" + struct.pack(">iI", 5, 7)
    assert header_stamp_ns(big_endian, "sensor_msgs/msg/Image") == 5_000_000_007
    assert header_stamp_ns(b"\x00\x01", "sensor_msgs/msg/Image") is None
    assert msgtype_of(Image) == "sensor_msgs/msg/Image"


def test_output_topics_are_the_contracts_defaults_and_follow_parameters() -> None:
    topics = output_topics()
    for cam in CAMERAS:
        assert topics[f"/cameras/{cam}/depth/image"] == "sensor_msgs/msg/Image"
        assert topics[f"/cameras/{cam}/depth/camera_info"] == "sensor_msgs/msg/CameraInfo"
    assert topics["/depth_any_view/points"] == "sensor_msgs/msg/PointCloud2"
    assert topics["/depth_any_view/occupancy/voxels"] == "sensor_msgs/msg/PointCloud2"
    assert topics["/depth_any_view/occupancy/markers"] == "visualization_msgs/msg/MarkerArray"
    assert topics["/depth_any_view/occupancy/grid"] == "nav_msgs/msg/OccupancyGrid"
    assert topics["/diagnostics"] == "diagnostic_msgs/msg/DiagnosticArray"
    assert len(topics) == 2 * len(CAMERAS) + 5
    mine = output_topics({"camera_names": ["left"], "camera_topic_prefix": "rig",
                          "points_topic": "cloud"})
    assert "/rig/left/depth/image" in mine and "/cloud" in mine
    assert "/cameras/front/depth/image" not in mine


def test_bad_arguments_are_named(tmp_path: Path) -> None:
    existing = tmp_path / "bag"
    existing.mkdir()
    with pytest.raises(FileExistsError, match="exists already"):
        Recorder(existing)
    with pytest.raises(ValueError, match="not installed"):
        Recorder(tmp_path / "b1", {"/x": "no_such_msgs/msg/Thing"})
    with pytest.raises(ValueError, match="set_topic"):
        Recorder(tmp_path / "b2", {"/x": "sensor_msgs/msg/Image"}, set_topic="/y")


def test_records_every_output_with_types_counts_and_latency(tmp_path: Path) -> None:
    from rclpy.context import Context
    from rclpy.node import Node
    from rclpy.qos import qos_profile_sensor_data
    from rosbags.rosbag2 import Reader
    from sensor_msgs.msg import Image

    from depth_any_view.bag.messages import default_typestore, stamp_to_ns
    from depth_any_view.ros.replay import message_class

    topics = output_topics()
    bag = tmp_path / "outputs"
    ctx = Context()
    rclpy.init(context=ctx)
    node = Node("test_recorder_publisher", context=ctx)
    try:
        pubs = {t: node.create_publisher(message_class(m), t, 10) for t, m in topics.items()}
        source = node.create_publisher(Image, INPUT, qos_profile_sensor_data)
        with Recorder(bag, topics, input_topic=INPUT) as rec:
            assert rec.wait_for_publishers(WAIT_S) == []
            deadline = time.monotonic() + WAIT_S
            while any(p.get_subscription_count() == 0 for p in [*pubs.values(), source]):
                assert time.monotonic() < deadline, "the recorder's subscriptions not matched"
                time.sleep(0.05)
            time.sleep(0.5)  # the other side of discovery
            for stamp in STAMPS:
                source.publish(_stamp(Image(height=1, width=1, encoding="mono8", step=1,
                                            data=[7]), stamp))
                time.sleep(0.02)  # the node's work: latency > 0
                for topic, msgtype in topics.items():
                    pubs[topic].publish(_messages(stamp, msgtype))
                time.sleep(0.1)
            assert rec.wait_for_sets(len(STAMPS), timeout_s=WAIT_S)
            deadline = time.monotonic() + WAIT_S
            while sum(rec.counts.values()) < len(topics) * len(STAMPS):
                assert time.monotonic() < deadline, f"missing messages: {rec.counts}"
                time.sleep(0.05)
            assert rec.output_stamps() == STAMPS
            assert rec.input_stamps() == STAMPS
        stats = rec.close()  # second close: the same statistics
    finally:
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)

    assert stats.output_sets == stats.input_sets == stats.matched_sets == len(STAMPS)
    assert stats.counts == dict.fromkeys(topics, len(STAMPS))
    assert 0.0 < stats.latency_median_s <= stats.latency_p95_s <= stats.latency_max_s < WAIT_S
    assert stats.output_rate_hz > 0 and stats.notes == []
    assert "3 output sets for 3 input sets" in stats.summary()

    ts = default_typestore()
    with Reader(bag) as reader:
        assert list(bag.glob("*.mcap")), "an MCAP storage file"
        types = {c.topic: c.msgtype for c in reader.connections}
        assert types == topics
        assert INPUT not in types  # the latency anchor is not written
        seen: dict[str, list[int]] = {t: [] for t in topics}
        for conn, log_ns, raw in reader.messages():
            msg = ts.deserialize_cdr(raw, conn.msgtype)
            assert log_ns > 0
            if conn.msgtype == "visualization_msgs/msg/MarkerArray":
                seen[conn.topic].append(stamp_to_ns(msg.markers[0].header.stamp))
            else:
                seen[conn.topic].append(stamp_to_ns(msg.header.stamp))
        for topic, stamps in seen.items():
            if topic != "/diagnostics":
                assert stamps == STAMPS, topic
        image = ts.deserialize_cdr(next(raw for c, _, raw in reader.messages()
                                        if c.topic == "/cameras/back/depth/image"),
                                   "sensor_msgs/msg/Image")
        assert np.frombuffer(image.data.tobytes(), np.float32).tolist() == list(range(6))


def test_record_for_a_duration_writes_a_bag_even_without_messages(tmp_path: Path) -> None:
    from rosbags.rosbag2 import Reader

    from depth_any_view.ros.recorder import record

    with pytest.raises(ValueError, match="duration"):
        record(tmp_path / "never", duration_s=0.0)
    stats = record(tmp_path / "quiet", {"/test_recorder/nothing": "sensor_msgs/msg/Image"},
                   duration_s=0.3)
    assert stats.counts == {"/test_recorder/nothing": 0}
    assert stats.output_sets == stats.input_sets == 0
    assert "0 output sets for 0 input sets" in stats.summary()
    with Reader(tmp_path / "quiet") as reader:
        assert [(c.topic, c.msgtype) for c in reader.connections] == [
            ("/test_recorder/nothing", "sensor_msgs/msg/Image")]
