"""The tf2_msgs that scripts/build_tf2_msgs.sh generates (issue 23) is upstream's: its type
hashes, which DDS peers compare, equal those of ros2/geometry2's definitions, taken from
rosbags' Kilted typestore (an independent copy of upstream's .msg files) and, for
TFMessage, from the issue's record of upstream's hash. Also the message the node puts on
/tf_static, built from a rig, and the error when tf2_msgs is missing.

Skipped when tf2_msgs does not import: `bash scripts/bootstrap.sh` (run by `make test`)
builds it into the venv.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pytest
from helpers import ROOT

pytest.importorskip("tf2_msgs.msg", reason="tf2_msgs is not installed: run `bash "
                    "scripts/bootstrap.sh` (it builds tf2_msgs into .venv)")

from depth_any_view.geometry.rig import Rig  # noqa: E402
from depth_any_view.geometry.transforms import quat_to_rotmat  # noqa: E402
from depth_any_view.ros import rig_tf  # noqa: E402

# ros2/geometry2 tf2_msgs/msg/TFMessage.msg (Jazzy to Rolling); the issue quotes its prefix
TFMESSAGE_HASH = "RIHS01_e369d0f05a23ae52508854b66f6aa0437f3449d652e8cbf22d5abe85d020f087"


def _published_type_hash(msg_type: type, topic: str, timeout_s: float = 10.0) -> str:
    """The type hash a publisher of `msg_type` announces (the one DDS peers match)."""
    import rclpy
    from rclpy.node import Node

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    try:
        node = Node("tf2_msgs_hash_test", context=ctx)
        node.create_publisher(msg_type, topic, 1)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            infos = node.get_publishers_info_by_topic(topic)
            if infos:
                return str(infos[0].topic_type_hash)
            time.sleep(0.05)
        raise AssertionError(f"the publisher on {topic} did not show in the graph")
    finally:
        rclpy.try_shutdown(context=ctx)


@pytest.mark.ros
def test_type_hashes_equal_upstreams() -> None:
    from rosbags.typesys import Stores, get_typestore
    from tf2_msgs.msg import TF2Error, TFMessage

    store = get_typestore(Stores.ROS2_KILTED)
    assert store.hash_rihs01("tf2_msgs/msg/TFMessage") == TFMESSAGE_HASH
    for msg_type, name in ((TFMessage, "TFMessage"), (TF2Error, "TF2Error")):
        built = _published_type_hash(msg_type, f"/tf2_msgs_hash_test/{name}")
        assert built == store.hash_rihs01(f"tf2_msgs/msg/{name}"), name


def test_interface_files_are_upstreams_four() -> None:
    folder = ROOT / "ros_interfaces" / "tf2_msgs"
    found = sorted(p.relative_to(folder).as_posix() for p in folder.glob("*/*")
                   if p.suffix in (".msg", ".srv", ".action"))
    assert found == ["action/LookupTransform.action", "msg/TF2Error.msg", "msg/TFMessage.msg",
                     "srv/FrameGraph.srv"]
    from tf2_msgs.action import LookupTransform
    from tf2_msgs.srv import FrameGraph

    assert LookupTransform.Result().error.error == 0 and FrameGraph.Response().frame_yaml == ""


def test_rig_message_holds_every_camera_of_the_rig() -> None:
    rig = Rig.from_yaml(ROOT / "config" / "rig_ring8.yaml")
    msg = rig_tf.rig_tf_message(rig, 1_500_000_123)
    assert [t.child_frame_id for t in msg.transforms] == [c.frame_id for c in
                                                          rig.cameras.values()]
    for t, cam in zip(msg.transforms, rig.cameras.values()):
        assert t.header.frame_id == rig.base_frame
        assert (t.header.stamp.sec, t.header.stamp.nanosec) == (1, 500_000_123)
        tr, q = t.transform.translation, t.transform.rotation
        np.testing.assert_allclose([tr.x, tr.y, tr.z], cam.T_base_cam[:3, 3], atol=1e-12)
        np.testing.assert_allclose(quat_to_rotmat(np.array([q.x, q.y, q.z, q.w])),
                                   cam.T_base_cam[:3, :3], atol=1e-9)


def test_a_frame_named_twice_is_refused_by_name() -> None:
    rig = Rig.from_dict({"base_frame": "base_link", "cameras": {
        "a": {"frame_id": "cam_optical", "translation": [0, 0, 0], "rotation": [0, 0, 0, 1]},
        "b": {"frame_id": "cam_optical", "translation": [1, 0, 0], "rotation": [0, 0, 0, 1]}}})
    problem = rig_tf.check_rig_frames(rig)
    assert problem is not None and "['cam_optical']" in problem
    with pytest.raises(ValueError, match="cam_optical"):
        rig_tf.rig_tf_message(rig, 0)


def test_missing_tf2_msgs_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tf2_msgs.msg", None)  # import fails as if not there
    with pytest.raises(rig_tf.TfMessagesMissing, match=r"scripts/bootstrap\.sh.*publish_rig_tf "
                                                       "false"):
        rig_tf.tf_message_type()
