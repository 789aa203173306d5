"""`depth-any-view demo` (depth_any_view/demo.py): the whole product on a tiny sequence.

The demo renders a synthetic bag, evaluates it offline, starts the real node as a separate
process, replays the bag to it over DDS (localhost, the test run's ROS_DOMAIN_ID from
test/conftest.py), records the node's outputs and draws the picture. Here it runs 4
frames at 64x64 with a tiny random network (a model config YAML and its weights saved with
model/weights.save_weights, by test/helpers.py), so it takes seconds, not
minutes. Checked: one output set per input set over DDS (the node keeps up at the paced
rate), the report, the picture and the recorded bag exist, the headline is printed; the
offline-only mode; a node that cannot start ends the demo non-zero with its log's tail;
the pacing arithmetic and the node's command line on their own.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import tiny_model, write_tiny_network

from depth_any_view.demo import cpu_has_bf16, demo_parameters, node_command, pace, set_period

CAMERAS = ["front", "front_left", "front_right", "back", "back_left", "back_right"]
LIGHT = {"threads": 1, "warmup_iters": 0}  # node parameters: one CPU thread, no warm-up
FRAMES = 4


# ---------------------------------------------------------------------------- pure parts
def test_pace_keeps_the_input_period_at_least_the_time_a_set_takes() -> None:
    assert pace(0.1, 0.05) == 1.0  # faster than real time is never asked for
    assert pace(0.1, 0.5) == pytest.approx(0.2)
    for need in (0.13, 0.3, 0.77, 4.81, 123.0):
        rate = pace(0.1, need)
        assert 0 < rate <= 1.0
        assert 0.1 / rate >= need  # rounded down: never faster than the node
        assert 0.1 / rate < need * 1.2  # two significant digits: not much slower either
    # twice the offline median time per set, plus transport; 0.5 s per set when unknown
    assert set_period(0.2) == pytest.approx(0.45)
    assert set_period(None) == pytest.approx(1.05)
    assert set_period(float("nan")) == pytest.approx(1.05)


def test_the_demo_runs_on_the_cpu_in_bf16_only_where_the_cpu_has_it() -> None:
    assert demo_parameters() == {"device": "cpu",
                                 "precision": "bf16" if cpu_has_bf16() else "fp32"}


def test_node_command_passes_the_parameters_file_and_values(tmp_path: Path) -> None:
    params = tmp_path / "p.yaml"
    cmd = node_command(params, {"device": "cpu", "random_init": True, "threads": 1,
                                "camera_names": ["front", "back"]})
    assert cmd[0].endswith("depth_any_view_node") or cmd[1:3] == ["-m",
                                                                  "depth_any_view.ros.node"]
    i = cmd.index("--ros-args")
    assert cmd[i + 1:i + 3] == ["--params-file", str(params)]
    pairs = [cmd[j + 1] for j in range(i, len(cmd)) if cmd[j] == "-p"]
    assert pairs == ["device:=cpu", "random_init:=true", "threads:=1",
                     "camera_names:=[front, back]"]


# ---------------------------------------------------------------------------- the demo
@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random weights of a tiny network (its config travels inside the file)."""
    folder = tmp_path_factory.mktemp("tiny_network")
    return write_tiny_network(folder, tiny_model(grid_dims=[16, 16, 16]))["weights"]


def _run(out: Path, capsys: pytest.CaptureFixture[str], **kwargs: Any) -> tuple[int, str, str]:
    from depth_any_view.demo import run_demo

    before = {k: os.environ.get(k) for k in ("ROS_DOMAIN_ID", "FASTDDS_DEFAULT_PROFILES_FILE")}
    code = run_demo(out, seed=3, **kwargs)
    after = {k: os.environ.get(k) for k in before}
    assert after == before, "the demo restores the environment it changed"
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _stamps(bag: Path, topic: str) -> list[int]:
    """Header stamps on one topic of a bag, in record order."""
    from rosbags.rosbag2 import Reader

    from depth_any_view.bag.messages import default_typestore, stamp_to_ns

    ts = default_typestore()
    with Reader(bag) as reader:
        conns = [c for c in reader.connections if c.topic == topic]
        return [stamp_to_ns(ts.deserialize_cdr(raw, c.msgtype).header.stamp)
                for c, _, raw in reader.messages(connections=conns)]


@pytest.mark.ros
@pytest.mark.slow
def test_demo_runs_end_to_end_with_one_output_set_per_input_set(
        tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    code, stdout, stderr = _run(out, capsys, frames=FRAMES, size=(64, 64), weights=str(tiny),
                                parameters=LIGHT)
    assert code == 0, stdout + stderr

    # the live path over DDS: as many output sets as input sets, every output of each
    live = out / "node_outputs"
    input_stamps = _stamps(out / "sequence", "/cameras/front/image_raw")
    assert len(input_stamps) == FRAMES
    assert _stamps(live, "/depth_any_view/points") == input_stamps
    for cam in CAMERAS:
        assert _stamps(live, f"/cameras/{cam}/depth/image") == input_stamps, cam
    assert f"{FRAMES} input sets -> {FRAMES} output sets" in stdout

    # the files the summary names exist
    report = json.loads((out / "report" / "report.json").read_text())
    assert report["sets"]["processed"] == FRAMES
    assert report["depth"]["overall"]["abs_rel"] is not None
    assert (out / "report" / "report.md").is_file()
    picture = out / "demo.png"
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    with Image.open(picture) as img:
        assert img.width > 1200 and img.height > 1000
        pixels = np.asarray(img.convert("RGB"))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 200  # a drawing, not a blank

    # the headline: where things are and the figures
    for needle in (f"picture:       {picture}", "report:", "node outputs:", "AbsRel",
                   "delta1", "voxel IoU", "Hz", "latency median", "p95", "live depth AbsRel"):
        assert needle in stdout, needle
    assert "RANDOM" not in stdout  # a weights file was given


@pytest.mark.slow
def test_skip_live_draws_the_offline_outputs_without_a_node(
        tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "offline"
    code, stdout, stderr = _run(out, capsys, frames=2, size=(32, 32), weights=str(tiny),
                                parameters=LIGHT, skip_live=True)
    assert code == 0, stdout + stderr
    assert (out / "demo.png").is_file() and (out / "report" / "report.json").is_file()
    assert not (out / "node_outputs").exists() and not (out / "node.log").exists()
    assert "live stage skipped" in stdout and "AbsRel" in stdout


@pytest.mark.ros
@pytest.mark.slow
def test_a_node_that_cannot_start_ends_the_demo_with_its_log(
        tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "broken"
    # qos_depth is a node parameter the offline pipeline does not read: only the node fails
    code, stdout, stderr = _run(out, capsys, frames=2, size=(32, 32), weights=str(tiny),
                                parameters={**LIGHT, "qos_depth": 0})
    assert code == 1
    assert "the node exited with status 2 before it was ready" in stderr
    assert "qos_depth" in stderr  # the node's own line, from the tail of its log
    assert (out / "node.log").is_file()


def test_bad_arguments_are_refused_before_anything_runs(tmp_path: Path) -> None:
    from depth_any_view.demo import run_demo

    with pytest.raises(ValueError, match="--frames"):
        run_demo(tmp_path / "a", frames=1)
    with pytest.raises(ValueError, match="--rate"):
        run_demo(tmp_path / "b", rate=0.0)
    with pytest.raises(ValueError, match="exclude each other"):
        run_demo(tmp_path / "c", frames=2, size=(32, 32), weights="w.safetensors",
                 random_init=True)
