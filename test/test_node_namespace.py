"""A namespaced node reads the shipped parameters file (issue 23): the real node process,
started as a robot's launch file starts it (`-r __ns:=/robot1 --params-file ...`), is asked
over DDS (its parameter service) which values are in force.

The shipped file's values equal the defaults, so the test gives the node a copy of the
shipped file with only three values changed (the top key and everything else as shipped),
and beside it a file keyed `depth_any_view:` (the root namespace only) whose values must
not apply, and about which the node must warn.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from helpers import ROOT, dds_env, stop_node, tail, write_tiny_network

from depth_any_view.ros.process import NodeProcess, node_module_command

pytestmark = [pytest.mark.ros, pytest.mark.slow]

NAMESPACE = "/robot1"
FQN = f"{NAMESPACE}/depth_any_view"
# Values of the file, none of them a default (defaults: 1 camera needed, 0.02 s, 5).
CHANGED = {"min_cameras": ("1", "3"), "sync_slop": ("0.02", "0.035"), "qos_depth": ("5", "7")}
READY_TIMEOUT_S = 120.0


def _robot_file(path: Path) -> Path:
    """The shipped config/depth_any_view.yaml with only the CHANGED values edited."""
    text = (ROOT / "config" / "depth_any_view.yaml").read_text()
    for name, (old, new) in CHANGED.items():
        text, n = re.subn(rf"^(\s+{name}:\s*){re.escape(old)}\b", rf"\g<1>{new}", text,
                          flags=re.MULTILINE)
        assert n == 1, f"{name}: {old} not found once in the shipped file"
    path.write_text(text)
    return path


def _get_parameters(domain_id: int, names: list[str], timeout_s: float = 30.0) -> list[Any]:
    """The node's values of `names`, through its /robot1/depth_any_view/get_parameters."""
    import rclpy
    from rcl_interfaces.srv import GetParameters
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.parameter import parameter_value_to_python

    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=domain_id)
    try:
        node = Node("namespace_test_client", context=ctx)
        client = node.create_client(GetParameters, f"{FQN}/get_parameters")
        assert client.wait_for_service(timeout_sec=timeout_s), f"no {FQN}/get_parameters"
        future = client.call_async(GetParameters.Request(names=names))
        executor = SingleThreadedExecutor(context=ctx)
        executor.add_node(node)
        executor.spin_until_future_complete(future, timeout_sec=timeout_s)
        assert future.done(), "get_parameters did not answer"
        executor.shutdown()
        node.destroy_node()
        return [parameter_value_to_python(v) for v in future.result().values]
    finally:
        rclpy.try_shutdown(context=ctx)


def test_namespaced_node_runs_on_the_shipped_file_and_warns_about_root_only_files(
        tmp_path: Path) -> None:
    env = dds_env(domains=(201, 230))
    net = write_tiny_network(tmp_path / "net")
    robot = _robot_file(tmp_path / "robot.yaml")
    root_only = tmp_path / "root_only.yaml"  # the pre-issue-23 key: the root namespace only
    root_only.write_text("depth_any_view:\n  ros__parameters:\n    qos_depth: 99\n")
    args = ["--ros-args", "-r", f"__ns:={NAMESPACE}",
            "--params-file", str(robot), "--params-file", str(root_only),
            "-p", f"preset:={net['preset']}", "-p", f"weights:={net['weights']}",
            "-p", "threads:=1", "-p", "warmup_iters:=0", "-p", "device:=cpu"]
    log = tmp_path / "node.log"
    node = NodeProcess(node_module_command(args), log, env, cwd=ROOT, new_session=False)
    try:
        node.wait_ready(READY_TIMEOUT_S)
        values = _get_parameters(int(env["ROS_DOMAIN_ID"]), list(CHANGED))
    finally:
        status = stop_node(node)
    text = log.read_text(errors="replace")
    assert values == [3, 0.035, 7], f"{values}; node log:\n{tail(log)}"
    warnings = [ln for ln in text.splitlines() if "has no section for this node" in ln]
    assert len(warnings) == 1, text
    assert str(root_only) in warnings[0] and FQN in warnings[0] and "WARN" in warnings[0]
    assert "'/**/depth_any_view:'" in warnings[0]
    assert status == 0 and "Traceback" not in text, text
