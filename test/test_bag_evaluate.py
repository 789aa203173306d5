"""Tests of bag/evaluate.py (with the bag modules it runs: feeder, topic plan, output bag)
and bag/report.py on tiny synthetic bags and a tiny network."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from helpers import OCCUPANCY_GAIN, copy_bag, tiny_model, write_tiny_network
from rosbags.rosbag2 import StoragePlugin, Writer

from depth_any_view.bag.evaluate import evaluate_bag
from depth_any_view.bag.messages import BagError, default_typestore
from depth_any_view.bag.reader import BagReader
from depth_any_view.bag.report import FIGURES, headline

CAMERAS = ["front", "front_left", "front_right", "back", "back_left", "back_right"]
SIZE = (48, 48)  # (width, height) pixels
FRAMES = 5
# Deterministic scores: compared between runs (everything but timings and paths).
SCORE_KEYS = ("sets", "depth", "occupancy", "scale", "coverage", "sync", "fusion",
              "ground_truth", "frames_in_bag", "input_errors")


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The module's scratch folder."""
    return tmp_path_factory.mktemp("eval_bag")


@pytest.fixture(scope="module")
def network(work: Path) -> dict[str, Path]:
    """A tiny model config and its random weights (fixed seed; the occupancy output layer
    scaled so its probabilities are decided), written with the real save path."""
    return write_tiny_network(work, tiny_model(grid_dims=[16, 16, 16], confidence=True),
                              occupancy_gain=OCCUPANCY_GAIN)


@pytest.fixture(scope="module")
def params(work: Path) -> Path:
    """The node's parameters with a light CPU setting (a user's override file)."""
    path = work / "params.yaml"
    path.write_text(yaml.safe_dump({"depth_any_view": {"ros__parameters": {
        "device": "cpu", "threads": 1, "warmup_iters": 0, "points_stride": 2}}}))
    return path


@pytest.fixture(scope="module")
def bags(work: Path) -> dict[str, Path]:
    """The same synthetic frames as an MCAP and an sqlite3 bag (with ground truth)."""
    from depth_any_view.bag.writer import write_bag
    from depth_any_view.data.synth import generate_frames

    frames = list(generate_frames(frames=FRAMES, size=SIZE, seed=2, scene="indoor",
                                  grid_dims=16))
    out = {}
    for storage in ("mcap", "sqlite3"):
        out[storage] = work / f"gt_{storage}"
        write_bag(out[storage], frames, storage=storage)
    return out


@pytest.fixture(scope="module")
def evaluated(bags: dict[str, Path], network: dict[str, Path], params: Path,
              work: Path) -> dict[str, dict[str, Any]]:
    """The MCAP bag evaluated twice and the sqlite3 bag once."""
    runs = {}
    for name, bag in (("a", bags["mcap"]), ("b", bags["mcap"]), ("sqlite", bags["sqlite3"])):
        runs[name] = evaluate_bag(bag, work / f"report_{name}", params_file=params,
                                  weights=network["weights"], progress=False)
    return runs


def scores(report: dict[str, Any]) -> dict[str, Any]:
    """The deterministic part of a report."""
    return {k: report[k] for k in SCORE_KEYS}


# ---------------------------------------------------------------------------- runs
def test_evaluation_writes_every_report_file(evaluated: dict[str, dict[str, Any]],
                                             work: Path) -> None:
    r = evaluated["a"]
    folder = work / "report_a"
    for name in ("report.json", "report.md", *FIGURES.values()):
        assert (folder / name).is_file() and (folder / name).stat().st_size > 0, name
    assert set(r["figures"]) == set(FIGURES)
    ghosts = r["occupancy"]["fused"]["ghost_voxels"]  # issue 10: per scored set
    assert len(ghosts["per_set"]) == r["occupancy"]["sets_scored"] > 0
    assert ghosts["max"] == max(ghosts["per_set"]) and ghosts["margin_voxels"] == 1
    curve = r["sparsification"]  # the tiny network has a confidence head
    assert curve["pixels"] > 0 and len(curve["abs_rel"]) == len(curve["fractions"])
    text = (folder / "report.md").read_text()
    assert "Ghost voxels" in text and "## Confidence: sparsification" in text
    on_disk = json.loads((folder / "report.json").read_text())
    assert scores(on_disk) == scores(r)
    assert r["sets"]["emitted"] == r["sets"]["processed"] == r["sets"]["complete"] == FRAMES
    assert r["sets"]["scored_depth"] == r["sets"]["scored_occupancy"] == FRAMES
    assert r["ground_truth"] == {"depth": CAMERAS, "occupancy": True}
    assert r["rig_source"] == "the bag's /tf_static" and r["cameras"] == CAMERAS
    d = r["depth"]
    assert set(d["per_camera"]) == set(CAMERAS) and set(d["per_bin"]) == {"0-5m", "5-15m",
                                                                          "15m+"}
    assert d["overall"]["count"] == FRAMES * len(CAMERAS) * SIZE[0] * SIZE[1]
    assert 0.0 < d["overall"]["abs_rel"] and 0.0 <= d["overall"]["delta1"] <= 1.0
    assert d["overall"]["rmse"] > 0.0
    assert sum(d["per_camera"][c]["count"] for c in CAMERAS) == d["overall"]["count"]
    occ = r["occupancy"]
    assert occ["grid"]["dims"] == [16, 16, 16] and occ["occupied_threshold"] == 0.6
    for key in ("single_frame", "fused"):
        assert {"iou", "precision", "recall", "known", "coverage"} <= set(occ[key])
        assert 0.0 <= occ[key]["iou"] <= 1.0 and occ[key]["known"] > 0
    for stage in ("sync_wait", "preprocess", "forward", "points", "fusion", "total"):
        lat = r["latency"][stage]
        assert lat["median"] is not None and lat["p95"] >= lat["median"] >= 0.0
    assert r["latency"]["forward"]["median"] > 0.0
    assert r["throughput"]["sets"] == FRAMES and r["throughput"]["sets_per_s"] > 0
    assert r["coverage"]["front"]["used"] == FRAMES
    assert r["coverage"]["front"]["valid_depth_fraction"] > 0.5
    h = headline(r)
    assert h["abs_rel"] == d["overall"]["abs_rel"] and h["iou"] == occ["fused"]["iou"]
    md = (folder / "report.md").read_text()
    assert "## Depth" in md and "| front |" in md and "fused" in md
    assert "![sample_panel](sample_panel.png)" in md
    sc = r["scale"]
    assert sc["frames"] == FRAMES and set(sc["per_camera"]) == set(CAMERAS)
    for key in ("ratio_mean", "ratio_std", "cross_camera_std"):
        assert sc[key] is not None and np.isfinite(sc[key]) and sc[key] >= 0.0, key
    assert set(sc["targets_met"]) == {"ratio_mean", "ratio_std", "cross_camera_std",
                                      "overlap_disagreement"}
    # six surround cameras overlap: neighbours see the same walls
    assert sc["overlap_pixels"] > 0 and 0.0 <= sc["overlap_disagreement"]
    t = sc["series"]["t"]
    assert len(t) == FRAMES and t == sorted(t) and 0.0 <= t[0] < 1.0  # seconds from start
    assert all(len(sc["series"]["per_camera"][c]) == FRAMES for c in CAMERAS)
    assert all(sc["per_camera"][c]["frames"] == FRAMES for c in CAMERAS)
    assert "scale_over_time" in r["figures"]
    assert "## Scale stability" in md and "| overlap disagreement |" in md
    assert "![scale over time](scale_over_time.png)" in md


@pytest.mark.parametrize("other", ["b", "sqlite"], ids=["same bag again", "sqlite3 copy"])
def test_the_same_bag_again_or_as_sqlite3_gives_identical_figures(
        evaluated: dict[str, dict[str, Any]], work: Path, other: str) -> None:
    assert scores(evaluated["a"]) == scores(evaluated[other])
    for file in FIGURES.values():
        assert (work / "report_a" / file).read_bytes() == \
            (work / f"report_{other}" / file).read_bytes(), file


def test_output_bag_holds_the_node_topics(evaluated: dict[str, dict[str, Any]],
                                          work: Path) -> None:
    out = Path(evaluated["a"]["output_bag"])
    assert out == work / "report_a" / "outputs"
    expected = {"/depth_any_view/points": "sensor_msgs/msg/PointCloud2",
                "/depth_any_view/occupancy/voxels": "sensor_msgs/msg/PointCloud2",
                "/depth_any_view/occupancy/markers": "visualization_msgs/msg/MarkerArray",
                "/depth_any_view/occupancy/grid": "nav_msgs/msg/OccupancyGrid",
                "/tf": "tf2_msgs/msg/TFMessage", "/tf_static": "tf2_msgs/msg/TFMessage"}
    for c in CAMERAS:
        expected[f"/cameras/{c}/depth/image"] = "sensor_msgs/msg/Image"
        expected[f"/cameras/{c}/depth/camera_info"] = "sensor_msgs/msg/CameraInfo"
    with BagReader(out) as bag:
        assert bag.topics() == dict(sorted(expected.items()))
        counts = bag.message_counts()
        assert counts["/tf_static"] == 1
        assert all(counts[t] == FRAMES for t in expected if t != "/tf_static")
        frame_ids = {}
        for m, data in bag.decoded(["/cameras/front/depth/image",
                                    "/cameras/front/depth/camera_info"]):
            frame_ids[m.topic] = data.frame_id
            if m.topic.endswith("image"):
                assert data.encoding == "32FC1" and data.array.shape == (SIZE[1], SIZE[0])
            else:
                assert (data.camera.width, data.camera.height) == SIZE
        assert set(frame_ids.values()) == {"front_camera_optical"}
        stamps = []
        for m, cloud in bag.decoded(["/depth_any_view/points",
                                     "/depth_any_view/occupancy/voxels"]):
            if m.topic.endswith("points"):
                assert cloud.frame_id == "base_link"
                assert list(cloud.points.dtype.names) == ["x", "y", "z", "rgb"]
                stamps.append(cloud.stamp_ns)
            else:
                assert cloud.frame_id == "odom"
                assert list(cloud.points.dtype.names) == ["x", "y", "z", "probability"]
        for m in bag.messages(["/depth_any_view/occupancy/grid"]):
            assert m.msg.header.frame_id == "odom"
            assert m.msg.info.width * m.msg.info.height == len(m.msg.data)
            assert set(np.unique(m.msg.data)) <= {-1, 0, 100}
    with BagReader(work / "gt_mcap") as src:
        assert stamps == [m.msg.header.stamp.sec * 10**9 + m.msg.header.stamp.nanosec
                          for m in src.messages(["/odom"])]


def test_a_bag_without_ground_truth_reports_latency_and_coverage(
        bags: dict[str, Path], network: dict[str, Path], params: Path, work: Path) -> None:
    bag = copy_bag(bags["mcap"] / "gt_mcap.mcap", work / "no_gt",
                   lambda topic, n, total: "depth_gt" not in topic
                   and topic != "/ground_truth/occupancy")
    # the storage file alone
    r = evaluate_bag(bag / "no_gt.mcap", work / "report_no_gt", params_file=params,
                     weights=network["weights"], progress=False, output_bag=False)
    assert r["depth"] is None and r["occupancy"] is None
    assert r["ground_truth"] == {"depth": [], "occupancy": False}
    assert r["sets"]["processed"] == FRAMES and r["latency"]["total"]["median"] > 0
    assert set(r["figures"]) == {"per_camera", "sample_panel", "birds_eye"}
    assert r["scale"] is None
    assert r["output_bag"] is None and not (work / "report_no_gt" / "outputs").exists()
    md = (work / "report_no_gt" / "report.md").read_text()
    assert "no depth errors" in md and "| back_right |" in md
    assert "scale not measured" in md


def test_a_lost_image_gives_a_partial_set(bags: dict[str, Path], network: dict[str, Path],
                                          params: Path, work: Path) -> None:
    bag = copy_bag(bags["mcap"] / "gt_mcap.mcap", work / "lost",
                   lambda topic, n, total: not (topic == "/cameras/back/image_raw" and n == 2))
    r = evaluate_bag(bag, work / "report_lost", params_file=params,
                     weights=network["weights"], progress=False, output_bag=False)
    assert r["sets"]["processed"] == FRAMES
    assert r["sets"]["partial"] == 1 and r["sets"]["complete"] == FRAMES - 1
    assert r["coverage"]["back"]["missing_in_sets"] == 1
    assert r["coverage"]["back"]["used"] == FRAMES - 1
    assert r["depth"]["per_camera"]["back"]["count"] == (FRAMES - 1) * SIZE[0] * SIZE[1]
    assert r["scale"]["per_camera"]["back"]["frames"] == FRAMES - 1
    assert r["scale"]["per_camera"]["front"]["frames"] == FRAMES
    assert sum(v is None for v in r["scale"]["series"]["per_camera"]["back"]) == 1
    assert "extrinsics from rig_file" not in " ".join(r["notes"])


def test_parameters_choose_cameras_and_random_weights(bags: dict[str, Path],
                                                      network: dict[str, Path],
                                                      work: Path) -> None:
    path = work / "params_two.yaml"
    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": {"device": "cpu"}},
                                    "/robot/depth_any_view": {"ros__parameters": {
                                        "camera_names": ["back", "front"], "threads": 1,
                                        "warmup_iters": 0, "preset": str(network["preset"]),
                                        "publish_markers": False}}}))
    r = evaluate_bag(bags["sqlite3"], work / "report_two", params_file=path, random_init=True,
                     progress=False)
    assert r["cameras"] == ["back", "front"] and r["engine"]["weights"] == "random"
    assert set(r["depth"]["per_camera"]) == {"back", "front"}
    assert r["sets"]["processed"] == FRAMES
    with BagReader(Path(r["output_bag"])) as out:
        topics = out.topics()
    assert "/depth_any_view/occupancy/markers" not in topics
    assert "/cameras/back/depth/image" in topics and "/cameras/front_left/depth/image" \
        not in topics


# ---------------------------------------------------------------------------- bad bags
def test_missing_camera_topics_name_them_and_list_the_bag(bags: dict[str, Path],
                                                          params: Path, work: Path) -> None:
    bag = copy_bag(bags["mcap"] / "gt_mcap.mcap", work / "five",
                   lambda topic, n, total: "back_right" not in topic)
    with pytest.raises(BagError) as err:
        evaluate_bag(bag, work / "report_bad", params_file=params, progress=False)
    text = str(err.value)
    assert "\n" not in text
    assert "lacks topic(s) /cameras/back_right/image_raw, /cameras/back_right/camera_info" \
        in text
    assert "it has: " in text and "/cameras/front/image_raw (sensor_msgs/msg/Image)" in text


def test_remapped_topics_come_from_the_parameters(bags: dict[str, Path], work: Path) -> None:
    path = work / "params_remap.yaml"
    path.write_text(yaml.safe_dump({"depth_any_view": {"ros__parameters": {
        "camera_topic_prefix": "/rig", "camera_names": ["front"]}}}))
    with pytest.raises(BagError, match="lacks topic.s. /rig/front/image_raw, "
                                       "/rig/front/camera_info"):
        evaluate_bag(bags["mcap"], work / "report_bad", params_file=path, progress=False)


def test_unexpected_message_types_are_named(params: Path, work: Path) -> None:
    path = work / "wrong_type.mcap"
    ts = default_typestore()
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        for c in CAMERAS:
            writer.add_connection(f"/cameras/{c}/image_raw", "sensor_msgs/msg/CompressedImage",
                                  typestore=ts)
            writer.add_connection(f"/cameras/{c}/camera_info", "sensor_msgs/msg/CameraInfo",
                                  typestore=ts)
    with pytest.raises(BagError) as err:
        evaluate_bag(path, work / "report_bad", params_file=params, progress=False)
    text = str(err.value)
    assert "/cameras/front/image_raw is sensor_msgs/msg/CompressedImage (expected " \
           "sensor_msgs/msg/Image)" in text and "it has: " in text and "\n" not in text


def test_corrupt_and_missing_bags_raise_bag_error(params: Path, work: Path) -> None:
    corrupt = work / "corrupt.mcap"
    corrupt.write_bytes(b"\x89MCAP0\r\n" + bytes(range(256)) * 8)
    with pytest.raises(BagError, match="cannot read bag .*corrupt.mcap"):
        evaluate_bag(corrupt, work / "report_bad", params_file=params, progress=False)
    with pytest.raises(BagError, match="does not exist"):
        evaluate_bag(work / "nope", work / "report_bad", params_file=params, progress=False)
    empty = work / "empty.mcap"
    ts = default_typestore()
    with Writer(empty, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        for c in CAMERAS:
            writer.add_connection(f"/cameras/{c}/image_raw", "sensor_msgs/msg/Image",
                                  typestore=ts)
            writer.add_connection(f"/cameras/{c}/camera_info", "sensor_msgs/msg/CameraInfo",
                                  typestore=ts)
    with pytest.raises(BagError, match="no messages on the camera image topics"):
        evaluate_bag(empty, work / "report_bad", params_file=params, progress=False)


# ---------------------------------------------------------------------------- command line
def test_eval_bag_command_prints_headline_and_report(bags: dict[str, Path],
                                                     network: dict[str, Path], params: Path,
                                                     work: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    from depth_any_view.cli import main

    out = work / "report_cli"
    code = main(["eval-bag", str(bags["sqlite3"]), "--report", str(out), "--params",
                 str(params), "--weights", str(network["weights"]), "--quiet",
                 "--no-output-bag"])
    text = capsys.readouterr().out
    assert code == 0
    assert "AbsRel 0." in text and "delta1 " in text and "sets/s" in text
    assert f"report: {out / 'report.md'}" in text and (out / "report.json").is_file()
    assert not (out / "outputs").exists()


def test_eval_bag_command_exits_2_with_one_line_for_bad_bags(params: Path, work: Path,
                                                             capsys: pytest.CaptureFixture
                                                             ) -> None:
    from depth_any_view.cli import main

    corrupt = work / "corrupt_cli.mcap"
    corrupt.write_bytes(b"not a bag at all")
    assert main(["eval-bag", str(corrupt), "--report", str(work / "r"), "--params",
                 str(params), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("depth-any-view eval-bag: error: ") and "\n" not in err
    assert main(["eval-bag", str(work / "missing_bag"), "--report", str(work / "r"),
                 "--params", str(params), "--weights", str(work / "none.safetensors")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["eval-bag", str(work / "missing_bag"), "--report", str(work / "r"),
                 "--params", str(work / "no_params.yaml")]) == 2
    assert "no_params.yaml" in capsys.readouterr().err
