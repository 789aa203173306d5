"""The node's parts that need no ROS graph: the throttled log, the bridge of the core's
Python logging, the reading of a PipelineResult's skipped views and dropped sets, and the
parameters-file check run before rclpy starts (ros/throttled_log.py, ros/log_bridge.py,
ros/outcomes.py, ros/startup.py)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from depth_any_view.pipeline import DROP_BAD_INPUT, SKIP_CAMERA_INFO, SKIP_SIZE, PipelineResult
from depth_any_view.ros.log_bridge import CORE_LOGGER, CoreLogBridge
from depth_any_view.ros.throttled_log import ThrottledLog


class FakeRosLogger:
    """Records (severity, message) as a ROS logger would print them."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def __getattr__(self, severity: str):  # debug, info, warning, error
        return lambda message: self.lines.append((severity, message))


def test_throttled_log_once_per_period_per_key() -> None:
    ros = FakeRosLogger()
    period = [0.2]
    log = ThrottledLog(ros, lambda: period[0])
    log.warn("a", "first")
    log.warn("a", "again")  # within the period: not logged
    log.warn("b", "other key", error=True)
    assert ros.lines == [("warning", "first"), ("error", "other key")] and len(log) == 2
    time.sleep(0.25)
    log.warn("a", "after the period")
    period[0] = 60.0  # read at each call: a runtime parameter change takes effect
    log.warn("a", "throttled again")
    log.once("frame", "said once")
    log.once("frame", "said once")
    assert ros.lines[2:] == [("warning", "after the period"), ("warning", "said once")]


def test_core_log_bridge_forwards_and_restores() -> None:
    core = logging.getLogger(CORE_LOGGER)
    before = (core.level, core.propagate, list(core.handlers))
    ros = FakeRosLogger()
    bridge = CoreLogBridge(ros)
    child = logging.getLogger(f"{CORE_LOGGER}.pipeline")
    child.debug("not shown")  # the bridge passes INFO and above
    child.info("set processed")
    child.warning("odometry late")
    child.error("inference failed")
    bridge.close()
    child.error("after close")
    assert ros.lines == [("info", f"[{CORE_LOGGER}.pipeline] set processed"),
                         ("warning", f"[{CORE_LOGGER}.pipeline] odometry late"),
                         ("error", f"[{CORE_LOGGER}.pipeline] inference failed")]
    assert (core.level, core.propagate, list(core.handlers)) == before


def test_skip_kinds_and_drop_reason_read_the_pipelines_records() -> None:
    from depth_any_view.ros.outcomes import drop_reason, skip_kinds

    size = "camera 'back' CameraInfo 'width'/'height' is 16x24 but its image is 32x24"
    result = PipelineResult(stamp_ns=5, cameras={}, missing=[], skipped={
        "front": "camera 'front': no CameraInfo", "back": size, "left": "unrecorded"},
        dropped=f"{DROP_BAD_INPUT}: 0 usable view(s), min_cameras is 2 (a: b)")
    last_errors = {f"front/{SKIP_CAMERA_INFO}": "camera 'front': no CameraInfo",
                   f"back/{SKIP_SIZE}": size, "front/image": size}
    assert skip_kinds(result, last_errors) == {"front": SKIP_CAMERA_INFO, "back": SKIP_SIZE,
                                               "left": "view"}
    assert drop_reason(result) == (DROP_BAD_INPUT,
                                   "0 usable view(s), min_cameras is 2 (a: b)")


@pytest.mark.ros
def test_params_file_error_names_the_file_and_line(tmp_path: Path) -> None:
    from depth_any_view.ros.startup import params_file_error

    bad = tmp_path / "bad.yaml"
    bad.write_text("depth_any_view:\n  ros__parameters:\n    a: [1, 2\n")
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n")
    ros = ["node", "--ros-args", "--params-file"]
    assert params_file_error([*ros, str(bad)]).startswith(
        f"parameters file '{bad}' is not valid YAML at line 4, column 1: ")
    assert params_file_error([*ros, str(tmp_path / "none.yaml")]) == (
        f"parameters file '{tmp_path / 'none.yaml'}' cannot be read: No such file or directory")
    assert "must be a mapping of node names" in params_file_error([*ros, str(listed)])
    assert params_file_error(ros) == "--params-file needs a file name"
    assert params_file_error(["node", "--params-file", str(bad)]) is None  # not a ROS arg
