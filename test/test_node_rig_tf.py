"""publish_rig_tf over DDS across processes (issue 23): the real node, started with
`publish_rig_tf:=true`, puts base_link -> every camera's optical frame of its rig file on
/tf_static; a transient-local subscriber that joins after the node is ready still gets it,
and its translations and rotations are the rig file's (read here with yaml, not with the
package's Rig). A new rig_file set at runtime is re-sent, to a second late joiner.

Skipped when tf2_msgs does not import (`bash scripts/bootstrap.sh` builds it).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from helpers import ROOT, dds_env, start_node, stop_node, tail, write_tiny_network

pytest.importorskip("tf2_msgs.msg", reason="tf2_msgs is not installed: run `bash "
                    "scripts/bootstrap.sh` (it builds tf2_msgs into .venv)")

pytestmark = [pytest.mark.ros, pytest.mark.slow]

READY_TIMEOUT_S = 120.0
TFMESSAGE_HASH = "RIHS01_e369d0f05a23ae52508854b66f6aa0437f3449d652e8cbf22d5abe85d020f087"


def _quat_matrix(q: list[float]) -> np.ndarray:
    """Rotation (3, 3) of a unit quaternion [x, y, z, w] (written out here on purpose)."""
    x, y, z, w = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def _check_against_rig(msg: Any, rig_path: Path) -> None:
    """Every camera of the rig file is in `msg` with its translation and rotation."""
    rig = yaml.safe_load(rig_path.read_text())
    by_child = {t.child_frame_id: t for t in msg.transforms}
    assert len(msg.transforms) == len(rig["cameras"]) == len(by_child)
    for name, cam in rig["cameras"].items():
        t = by_child.get(cam["frame_id"])
        assert t is not None, f"{name}: no transform to {cam['frame_id']} in {list(by_child)}"
        assert t.header.frame_id == rig["base_frame"]
        tr, q = t.transform.translation, t.transform.rotation
        np.testing.assert_allclose([tr.x, tr.y, tr.z], cam["translation"], atol=1e-9,
                                   err_msg=name)
        np.testing.assert_allclose(_quat_matrix([q.x, q.y, q.z, q.w]),
                                   _quat_matrix(cam["rotation"]), atol=1e-9, err_msg=name)


class _Client:
    """The test's side of the graph: late-joining /tf_static subscribers, the publisher's
    endpoint information and the node's set_parameters service."""

    def __init__(self, domain_id: int) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node

        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx, domain_id=domain_id)
        self.node = Node("rig_tf_test_client", context=self.ctx)
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)

    def late_tf_static(self, timeout_s: float = 20.0) -> Any:
        """The message a new transient-local /tf_static subscriber receives first."""
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from tf2_msgs.msg import TFMessage

        got: list[Any] = []
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
        sub = self.node.create_subscription(TFMessage, "/tf_static", got.append, qos)
        deadline = time.monotonic() + timeout_s
        while not got and time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.1)
        self.node.destroy_subscription(sub)
        assert got, "no /tf_static message reached a late transient-local subscriber"
        return got[0]

    def publisher_info(self) -> Any:
        """The /tf_static publisher's endpoint information (one publisher expected)."""
        infos = self.node.get_publishers_info_by_topic("/tf_static")
        assert len(infos) == 1, infos
        return infos[0]

    def set_parameter(self, name: str, value: str, timeout_s: float = 20.0) -> Any:
        """Set a string parameter of /depth_any_view; the SetParametersResult."""
        from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
        from rcl_interfaces.srv import SetParameters

        client = self.node.create_client(SetParameters, "/depth_any_view/set_parameters")
        assert client.wait_for_service(timeout_sec=timeout_s)
        value_msg = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)
        future = client.call_async(SetParameters.Request(
            parameters=[Parameter(name=name, value=value_msg)]))
        self.executor.spin_until_future_complete(future, timeout_sec=timeout_s)
        assert future.done(), "set_parameters did not answer"
        return future.result().results[0]

    def close(self) -> None:
        import rclpy

        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.ctx)


def test_late_subscriber_gets_the_rig_on_tf_static_and_a_new_rig(tmp_path: Path) -> None:
    env = dds_env()
    net = write_tiny_network(tmp_path / "net")
    rig_path = ROOT / "config" / "rig_surround6.yaml"
    moved = yaml.safe_load(rig_path.read_text())  # a recalibration: front moved, rotated
    q = np.array([-0.45, 0.55, -0.5, 0.5])
    moved["cameras"]["front"].update(translation=[0.31, -0.02, 1.55],
                                     rotation=(q / np.linalg.norm(q)).tolist())
    moved_path = tmp_path / "rig_moved.yaml"
    moved_path.write_text(yaml.safe_dump(moved))
    log = tmp_path / "node.log"
    started_ns = time.time_ns()
    node = start_node(env, {"preset": net["preset"], "weights": net["weights"],
                            "threads": 1, "warmup_iters": 0, "device": "cpu",
                            "rig_file": str(rig_path), "publish_rig_tf": True}, log)
    client = None
    try:
        node.wait_ready(READY_TIMEOUT_S)
        client = _Client(int(env["ROS_DOMAIN_ID"]))
        first = client.late_tf_static()  # joins after the node sent it at start-up
        info = client.publisher_info()
        result = client.set_parameter("rig_file", str(moved_path))
        second = client.late_tf_static() if result.successful else None
    finally:
        if client is not None:
            client.close()
        status = stop_node(node)
    text = log.read_text(errors="replace")
    _check_against_rig(first, rig_path)
    stamp_ns = first.transforms[0].header.stamp.sec * 10**9 + \
        first.transforms[0].header.stamp.nanosec
    assert started_ns <= stamp_ns <= time.time_ns(), "not stamped at start-up"
    assert len({(t.header.stamp.sec, t.header.stamp.nanosec) for t in first.transforms}) == 1
    from rclpy.qos import DurabilityPolicy

    assert info.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL
    assert str(info.topic_type_hash) == TFMESSAGE_HASH
    assert result.successful, result.reason
    _check_against_rig(second, moved_path)
    assert text.count("/tf_static: base_link -> ") == 2, tail(log)
    assert status == 0 and "Traceback" not in text, tail(log)
