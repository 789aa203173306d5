"""Out-of-the-box delivery over DDS (issue 24 item 1): six 640x480 cameras in, every depth
image out, to a RELIABLE and a BEST_EFFORT consumer, without a DDS profile of the user's.

Three processes beside the test, on localhost with a domain of their own:
- the node, started as the README documents it (`--params-file config/depth_any_view.yaml`,
  the shipped lite network, one thread), with no Fast DDS variable in its environment;
- the camera drivers (`test/dds_peers.py cameras`): six 640x480 rgb8 cameras, CameraInfo and
  odometry at 1 Hz, configured as the README tells camera drivers to be
  (FASTDDS_DEFAULT_PROFILES_FILE=config/fastdds_large_images.xml), nothing else;
- a consumer (`test/dds_peers.py consumer`) with Fast DDS's defaults: a RELIABLE depth-10
  subscriber (as RTAB-Map uses) and a BEST_EFFORT one to every depth image and depth
  CameraInfo, and /diagnostics for the node's synchronizer figures.

Checked: every set reaches the node complete (six cameras), and every depth image and
depth CameraInfo of every set reaches both subscribers. Without the profiles (Fast DDS's
512 KB shared-memory segments) the same run loses most of them (docs/TROUBLESHOOTING.md).
"""

from __future__ import annotations

import json
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import ROOT, dds_env, stop_node, tail

from depth_any_view.ros.fastdds import OLD_PROFILE_VARIABLE, PROFILE_VARIABLE, TRANSPORTS_VARIABLE
from depth_any_view.ros.process import NodeProcess, node_module_command

pytestmark = [pytest.mark.ros, pytest.mark.slow]

CAMERAS = ["front", "front_left", "front_right", "back", "back_left", "back_right"]
SETS = 6
RATE_HZ = 1.0  # the lite network keeps up on one loaded CPU thread
SIZE = "640x480"
PEERS = ROOT / "test" / "dds_peers.py"
# What the README tells camera drivers on the same machine to set (run from the repository).
DRIVER_ENV = {PROFILE_VARIABLE: str(ROOT / "config" / "fastdds_large_images.xml")}


def _clean_env() -> dict[str, str]:
    """Localhost DDS on a private domain, without any Fast DDS configuration the test run
    may have inherited: the out-of-the-box case."""
    env = dds_env(domains=(1, 100))
    for name in (PROFILE_VARIABLE, OLD_PROFILE_VARIABLE, TRANSPORTS_VARIABLE):
        env.pop(name, None)
    return env


def _read_line(proc: subprocess.Popen, timeout_s: float) -> str:
    """The child's next stdout line ('' at its end or after `timeout_s` seconds)."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
    return proc.stdout.readline().strip() if ready else ""


def test_six_640x480_cameras_reach_the_node_and_every_depth_output_both_consumers(
        tmp_path: Path) -> None:
    env = _clean_env()
    log = tmp_path / "node.log"
    node = NodeProcess(node_module_command([
        "--ros-args", "--params-file", "config/depth_any_view.yaml",
        "-p", "threads:=1", "-p", "warmup_iters:=1"]), log, env, cwd=ROOT, new_session=False)
    consumer = None
    try:
        node.wait_ready(120.0)
        consumer = subprocess.Popen(
            [sys.executable, str(PEERS), "consumer", "--sets", str(SETS), "--timeout", "90"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert _read_line(consumer, 60.0) == "ready", consumer.stderr.read()
        time.sleep(1.0)  # the node's side of the matching
        drivers = subprocess.run(
            [sys.executable, str(PEERS), "cameras", "--sets", str(SETS), "--rate",
             str(RATE_HZ), "--size", SIZE], cwd=ROOT, env={**env, **DRIVER_ENV},
            capture_output=True, text=True, timeout=120)
        assert drivers.returncode == 0, drivers.stderr
        stamps = json.loads(drivers.stdout.strip().splitlines()[-1])
        out, err = consumer.communicate(timeout=100)
        assert consumer.returncode == 0, err
        result = json.loads(out.strip().splitlines()[-1])
    finally:
        if consumer is not None and consumer.poll() is None:
            consumer.kill()
            consumer.wait(timeout=10)
        code = stop_node(node)
        print(f"node exit status {code}; log tail:\n{tail(log, 15)}")

    text = log.read_text(errors="replace")
    assert f"Fast DDS profile {ROOT / 'config' / 'fastdds_large_images.xml'}" in text, tail(log)
    assert len(stamps) == SETS
    sync = result["synchronizer"]
    assert (sync.get("sets complete"), sync.get("sets partial")) == (str(SETS), "0"), (
        f"the node's synchronizer: {sync}\nnode log:\n{tail(log)}")
    missing = {}
    for kind, topics in result["received"].items():
        for camera in CAMERAS:
            for what in ("image", "camera_info"):
                topic = f"/cameras/{camera}/depth/{what}"
                lost = len(set(stamps) - set(topics.get(topic, [])))
                if lost:
                    missing[f"{kind} {topic}"] = lost
    assert not missing, (f"outputs lost of {SETS} sets: {missing}; the node's synchronizer: "
                         f"{sync}\nnode log:\n{tail(log)}")
    assert sorted(result["received"]) == ["best_effort", "reliable"]
