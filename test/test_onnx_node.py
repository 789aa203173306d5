"""The real node with `backend: onnxruntime` over DDS (issue 23; localhost, own domain).

The node runs as a separate process with the tiny random network on two cameras of the
surround rig and the ONNX Runtime backend (CPU provider, one thread): it exports the
network at start-up into a private cache folder (XDG_CACHE_HOME). A fake robot (the one
of test_node_cameras) publishes synthetic sets and subscribes to the outputs. Checked: the
depth images, the point cloud and the occupancy outputs arrive, the depth of a set equals
the torch backend's depth of the same views (computed in this process) within 1e-3
relative, and the export landed in the cache. Bad backend parameters end the node with one
line naming the parameter.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import (
    OCCUPANCY_GAIN,
    dds_env,
    ros_args,
    run_nodes_to_exit,
    start_node,
    stop_node,
    tail,
    write_tiny_network,
)
from test_node_cameras import SHARED, SIZE, Robot, _stamps, _wait, depth_topics, frames_of

pytestmark = [pytest.mark.ros, pytest.mark.slow]
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

CAMERAS = ["front", "back"]
NODE_PARAMS = {"threads": 1, "warmup_iters": 1, "diagnostics_period": 0.5,
               "markers_period": 0.0, "input_timeout": 2.0, "backend": "onnxruntime",
               "onnx_providers": ["CPUExecutionProvider"], "camera_names": CAMERAS}


@pytest.fixture(scope="module")
def tiny_network(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The tiny random network (occupancy probabilities decided)."""
    net = write_tiny_network(tmp_path_factory.mktemp("tiny_network"),
                             occupancy_gain=OCCUPANCY_GAIN, occupancy_bias=0.0)
    return {k: str(v) for k, v in net.items()}


def test_node_runs_the_onnx_backend_over_dds(tiny_network: dict[str, str],
                                             tmp_path: Path) -> None:
    from depth_any_view.geometry.camera import PinholeCamera
    from depth_any_view.inference.engine import EngineConfig, InferenceEngine
    from depth_any_view.inference.preprocess import ViewInput
    from depth_any_view.ros.conversions import image_msg_to_depth, stamp_to_ns

    frames = frames_of("surround6")
    env = {**dds_env(), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    log = tmp_path / "node.log"
    proc = start_node(env, {**tiny_network, **NODE_PARAMS}, log)
    robot = Robot(int(env["ROS_DOMAIN_ID"]), CAMERAS, frames, watched=CAMERAS)
    expected = SHARED + [t for c in CAMERAS for t in depth_topics(c)]
    try:
        _wait(lambda: robot.connected(expected), 120.0,
              "the node to subscribe to the cameras and publish its outputs", proc, log)
        for k in range(40):
            robot.publish_set(k)
            time.sleep(0.25)
            if all(len(_stamps(robot, t) & set(robot.published)) >= 2 for t in expected):
                break
            assert proc.poll() is None, f"the node exited ({proc.returncode}):\n{tail(log)}"
        _wait(lambda: all(len(_stamps(robot, t)) >= 2 for t in expected), 10.0,
              "two messages on every output", proc, log)
        text = log.read_text()
        assert "'backend': 'onnxruntime'" in text and "CPUExecutionProvider" in text, tail(log)
    finally:
        robot.close()
        code = stop_node(proc)
        print(f"node exit status {code}; log tail:\n{tail(log, 10)}")
    assert len(list((tmp_path / "cache" / "depth_any_view" / "onnx").glob("*2v*.onnx"))) == 1

    # the node's depth equals the torch backend's on the same views
    engine = InferenceEngine(EngineConfig(weights=tiny_network["weights"],
                                          preset=tiny_network["preset"], warmup_iters=0,
                                          threads=1))
    checked = 0
    for cam in CAMERAS:
        for msg in robot.messages(f"/cameras/{cam}/depth/image")[-2:]:
            frame = frames[robot.published[stamp_to_ns(msg.header.stamp)]]
            views = [ViewInput(c, frame.images[i], PinholeCamera(SIZE[0], SIZE[1], frame.K[i]),
                               frame.T_base_cam[i])
                     for c, i in ((c, frame.camera_names.index(c)) for c in CAMERAS)]
            want = engine.infer(views).depth_input[CAMERAS.index(cam)]
            got = image_msg_to_depth(msg)
            assert got.shape == want.shape == (SIZE[1], SIZE[0])
            np.testing.assert_allclose(got, want, rtol=1e-3, equal_nan=True)
            checked += 1
    assert checked >= 2


def test_bad_backend_parameters_end_the_node_with_one_line(tiny_network: dict[str, str],
                                                           tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.onnx")
    cases: dict[str, tuple[dict[str, Any], str]] = {
        "backend typo": ({"backend": "onnx"},
                         "parameter 'backend' is 'onnx'; allowed values: torch, onnxruntime"),
        "missing onnx_file": ({"backend": "onnxruntime", "onnx_file": missing},
                              f"inference option 'onnx_file' is '{missing}', which does not "
                              "exist; export it with `depth-any-view export --onnx"),
    }
    results = run_nodes_to_exit({name: ros_args({**tiny_network, **params})
                                 for name, (params, _) in cases.items()}, dds_env())
    failures = []
    for name, (code, out, err) in results.items():
        lines = [ln for ln in err.splitlines() if ln.strip()]
        want = cases[name][1]
        if not (code == 2 and len(lines) == 1 and want in lines[0]):
            failures.append(f"{name}: exit {code}, expected one line with {want!r}; "
                            f"stderr:\n{err}\nstdout:\n{out}")
    assert not failures, "\n\n".join(failures)
