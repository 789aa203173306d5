"""Tests of `depth-any-view slam` (slam/slam_command.py) end to end on a tiny bag and network."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from helpers import copy_bag, write_tiny_network

from depth_any_view.cli import main
from depth_any_view.config import ConfigError
from depth_any_view.geometry.camera import PinholeCamera
from depth_any_view.slam.mesh import camera_view
from depth_any_view.slam.slam_command import run_slam
from depth_any_view.slam.slam_config import SlamConfig, load_slam_config
from depth_any_view.slam.slam_report import TUM_FILES
from depth_any_view.slam.trajectory import read_tum

FRAMES = 24
SIZE = (64, 64)  # (width, height) pixels
RUN_FILES = ("report.json", "report.md", "trajectory_gt.tum", "trajectory_predicted.tum",
             "trajectory_gt_depth.tum", "trajectory_top.png", "mesh_predicted.ply",
             "mesh_predicted.png", "mesh_gt.ply", "mesh_gt.png", "mesh_reference.ply",
             "mesh_reference.png")


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The module's scratch folder."""
    return tmp_path_factory.mktemp("slam")


@pytest.fixture(scope="module")
def setup(work: Path) -> dict[str, Any]:
    """A tiny network, light node parameters, light consumer settings and a short outdoor
    bag with ground truth, plus the frames it was written from."""
    from depth_any_view.bag.writer import write_bag
    from depth_any_view.data.synth import generate_frames

    net = write_tiny_network(work / "net")
    params = work / "params.yaml"
    params.write_text(yaml.safe_dump({"depth_any_view": {"ros__parameters": {
        "device": "cpu", "threads": 1, "warmup_iters": 0}}}))
    cfg = yaml.safe_load(Path(load_slam_config().path).read_text())
    cfg["kiss_icp"]["max_num_threads"] = 1  # deterministic and light
    cfg["tsdf"].update(voxel_size=0.1, depth_max=8.0)
    cfg["mesh_eval"]["samples"] = 20000
    slam_cfg = work / "slam_test.yaml"
    slam_cfg.write_text(yaml.safe_dump(cfg))
    frames = list(generate_frames(frames=FRAMES, size=SIZE, seed=11, scene="outdoor",
                                  grid_dims=8))
    bag = work / "bag"
    write_bag(bag, frames)
    return {"weights": net["weights"], "params": params, "config": slam_cfg, "bag": bag,
            "frames": frames}


def without_topics(src: Path, dst: Path, drop: tuple[str, ...]) -> Path:
    """An MCAP copy of a bag without the topics that contain any of `drop`."""
    return copy_bag(src, dst, lambda topic, n, total: not any(d in topic for d in drop))


@pytest.fixture(scope="module")
def report(setup: dict[str, Any], work: Path) -> dict[str, Any]:
    """`depth-any-view slam` run once from the command line (KISS-ICP, both depths)."""
    out = work / "report"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        rc = main(["slam", str(setup["bag"]), "--report", str(out), "--params",
                   str(setup["params"]), "--weights", str(setup["weights"]), "--config",
                   str(setup["config"]), "--quiet"])
    assert rc == 0
    return {"dir": out, "json": json.loads((out / "report.json").read_text()),
            "printed": printed.getvalue()}


# ---------------------------------------------------------------------------- end to end
def test_slam_writes_its_report_trajectories_plot_and_meshes(report: dict[str, Any]) -> None:
    out, r = report["dir"], report["json"]
    for name in RUN_FILES:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert r["backend"] == "kiss-icp" and r["depth"] == ["predicted", "gt"]
    assert r["sets"]["processed"] == FRAMES and r["frames_in_bag"] == FRAMES
    assert r["node_parameters"]["points_stride"] == 1  # config/slam.yaml's node override
    for kind in ("predicted", "gt"):
        run = r["runs"][kind]
        assert run["sets"] == run["scored"] == FRAMES and run["sets_without_depth"] == 0
        assert run["ate"]["rmse"] >= 0.0 and run["distance_m"] > 1.0
        assert set(run["rpe"]) == {"1m", "10m"} and run["rpe"]["1m"]["segments"] > 0
        assert run["rpe"]["10m"]["segments"] == 0  # the drive is shorter than 10 m
        assert isinstance(run["jumps"]["count"], int) and run["time_ms"]["median"] > 0
        assert run["input_size"]["median"] > 1000  # points of the fused cloud
        mesh = run["mesh"]
        assert mesh["triangles"] > 0 and mesh["aligned"]
        assert set(mesh["fscore"]) == {"0.05", "0.10"}
        for f in mesh["fscore"].values():
            assert 0.0 <= f["fscore"] <= 1.0
        assert mesh["chamfer_m"] > 0.0
    assert {t["name"] for t in r["targets"]} == {
        "rpe_1m_translation", "rpe_1m_ratio", "rpe_10m_translation", "rpe_10m_ratio",
        "tracking_failures"}
    assert next(t for t in r["targets"] if t["name"] == "rpe_10m_ratio")["met"] is None
    md = (out / "report.md").read_text()
    assert "## Targets" in md and "| ground-truth depth |" in md
    assert "![trajectories](trajectory_top.png)" in md and "mesh_reference.png" in md
    assert "evo_ape tum trajectory_gt.tum trajectory_predicted.tum --align" in md
    lines = report["printed"].splitlines()
    assert lines[0].startswith("kiss-icp on predicted depth: ATE ")
    assert lines[1].startswith("kiss-icp on ground-truth depth: ATE ")
    assert sum(line.startswith("target ") for line in lines) == len(r["targets"])
    assert lines[-1] == f"report: {out / 'report.md'}"


def test_tum_files_hold_the_truth_and_estimates_in_their_own_frame(
        report: dict[str, Any], setup: dict[str, Any]) -> None:
    out = report["dir"]
    stamps, truth = read_tum(out / TUM_FILES["truth"])
    frames = setup["frames"]
    assert stamps.tolist() == [f.stamp_ns for f in frames]
    np.testing.assert_allclose(truth, np.stack([f.T_odom_base for f in frames]), atol=1e-6)
    for kind in ("predicted", "gt"):
        s, est = read_tum(out / TUM_FILES[kind])
        assert s.tolist() == stamps.tolist()
        np.testing.assert_allclose(est[0], np.eye(4), atol=1e-6)  # not the bag's odom
    assert not np.allclose(truth[0], np.eye(4), atol=1e-3)


def test_the_consumer_never_sees_the_bags_odometry(report: dict[str, Any],
                                                   setup: dict[str, Any], work: Path) -> None:
    # The same bag without /odom (and /tf): the consumer's trajectory is the same, only
    # the scores are missing.
    bag = without_topics(setup["bag"], work / "no_odom", drop=("/odom", "/tf"))
    r = run_slam(bag, work / "report_no_odom", depth="gt", params_file=setup["params"],
                 weights=setup["weights"], slam_config=setup["config"], meshes=False,
                 progress=False)
    assert r["runs"]["gt"]["ate"] is None and r["runs"]["gt"]["scored"] == 0
    assert any("no odometry" in n for n in r["notes"])
    s1, e1 = read_tum(report["dir"] / TUM_FILES["gt"])
    s2, e2 = read_tum(work / "report_no_odom" / TUM_FILES["gt"])
    assert s1.tolist() == s2.tolist()
    np.testing.assert_allclose(e2, e1, atol=1e-9)
    assert not (work / "report_no_odom" / TUM_FILES["truth"]).exists()


def test_open3d_rgbd_backend_runs_both_depths(setup: dict[str, Any], work: Path) -> None:
    r = run_slam(setup["bag"], work / "report_rgbd", backend="open3d-rgbd",
                 params_file=setup["params"], weights=setup["weights"],
                 slam_config=setup["config"], meshes=False, progress=False)
    for kind in ("predicted", "gt"):
        run = r["runs"][kind]
        assert run["backend"] == "open3d-rgbd" and run["sets"] == FRAMES
        assert run["input_size"]["unit"] == "views" and run["input_size"]["median"] == 6
        assert 0 <= run["failed_steps"] < FRAMES and run["ate"]["rmse"] >= 0.0
    # (its accuracy on exact depth is test_slam_odometry.py's: 64 x 64 images are too small
    # for a 3-level image pyramid to be stable from run to run)
    stamps, est = read_tum(work / "report_rgbd" / TUM_FILES["gt"])
    assert len(stamps) == FRAMES and np.isfinite(est).all()
    assert np.linalg.norm(est[-1][:3, 3]) > 0.3  # it moved with the robot
    assert (work / "report_rgbd" / "trajectory_top.png").is_file()
    assert not (work / "report_rgbd" / "mesh_predicted.ply").exists()


def test_camera_views_carry_the_depths_confidence_at_its_size() -> None:
    """Open3D RGB-D odometry leaves out less confident depth (open3d_rgbd.min_confidence):
    the view carries the confidence, at the depth's size like the colour."""
    camera = PinholeCamera.from_intrinsics(64, 48, 50.0, 50.0, 32.0, 24.0)
    rgb = np.zeros((96, 128, 3), np.uint8)
    confidence = np.random.default_rng(0).random((24, 32)).astype(np.float32)
    view = camera_view("front", rgb, np.ones((48, 64), np.float32), camera, np.eye(4),
                       confidence)
    assert view.rgb.shape == (48, 64, 3) and view.confidence.shape == (48, 64)
    np.testing.assert_array_equal(view.confidence[::2, ::2], confidence)
    assert camera_view("front", rgb, np.ones((48, 64), np.float32), camera,
                       np.eye(4)).confidence is None


# ---------------------------------------------------------------------------- bad input
def test_missing_and_corrupt_bags_exit_2_with_one_line(setup: dict[str, Any], work: Path,
                                                       capsys: Any) -> None:
    corrupt = work / "corrupt.mcap"
    corrupt.write_bytes(b"\x89MCAP0\r\n" + b"not really a bag" * 10)
    for bag in (work / "missing_bag", corrupt):
        rc = main(["slam", str(bag), "--report", str(work / "never"), "--params",
                   str(setup["params"]), "--weights", str(setup["weights"]), "--quiet"])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1, err
        assert err[0].startswith("depth-any-view slam: error:") and str(bag.name) in err[0]
    assert not (work / "never").exists()


def test_depth_gt_on_a_bag_without_ground_truth_depth_says_what_to_do(
        setup: dict[str, Any], work: Path, capsys: Any) -> None:
    bag = without_topics(setup["bag"], work / "no_depth_gt", drop=("depth_gt",))
    rc = main(["slam", str(bag), "--report", str(work / "never2"), "--depth", "gt",
               "--params", str(setup["params"]), "--weights", str(setup["weights"]),
               "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "--depth predicted" in err[0], err


# ---------------------------------------------------------------------------- settings
def test_the_shipped_settings_are_the_defaults_and_errors_name_the_key(tmp_path: Path) -> None:
    shipped = load_slam_config()
    assert shipped == SlamConfig(node_parameters={"points_stride": 1}, path=shipped.path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("kiss_icp:\n  max_rnage: 10\n")
    with pytest.raises(ConfigError, match=r"max_rnage.*'kiss_icp'"):
        load_slam_config(bad)
    bad.write_text("kiss_icp:\n  max_range: -3\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: kiss_icp\.max_range"):
        load_slam_config(bad)
    bad.write_text("lidar: {}\n")
    with pytest.raises(ConfigError, match="unknown section"):
        load_slam_config(bad)
    with pytest.raises(ValueError, match="backend 'loam'"):
        run_slam(tmp_path / "x", tmp_path / "y", backend="loam")
