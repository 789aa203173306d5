"""Tests of pipeline.py: synthetic six-camera frames through a tiny random network."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from depth_any_view.config import ConfigError
from depth_any_view.geometry.camera import PinholeCamera
from depth_any_view.geometry.rig import load_rig
from depth_any_view.inference.engine import EngineConfig, InferenceEngine
from depth_any_view.inference.prediction import Prediction
from depth_any_view.pipeline import (
    STAGES,
    Pipeline,
    PipelineConfig,
    PipelineResult,
    PointsConfig,
    height_colors,
    interpolate_pose,
    most_probable,
    resolve_rig_file,
)
from depth_any_view.sync.approximate_time import SyncConfig

SIZE = 48  # pixels, square synthetic images
TINY = {"backbone_width": 8, "image_size": [32, 32], "hidden": 32, "layers": 2, "heads": 2,
        "decoder_width": 16, "grid_dims": [16, 16, 16], "occ_channels": 8, "occ_stride": 2,
        "occ_hidden": 8, "occ_blocks": 1, "occ_fine_channels": 8, "occ_fine_kernel": 1,
        "max_depth": 20.0}


@pytest.fixture(scope="module")
def engine() -> InferenceEngine:
    """A tiny randomly initialised network on the CPU (seed 0)."""
    return InferenceEngine(EngineConfig(random_init=True, model_overrides=dict(TINY),
                                        device="cpu", warmup_iters=0, threads=1,
                                        return_images=True))


@pytest.fixture(scope="module")
def frames() -> list[Any]:
    """Three synthetic indoor frames of the surround6 rig, 48x48 pixels."""
    from depth_any_view.data.synth import generate_frames

    return list(generate_frames(frames=3, size=(SIZE, SIZE), seed=4, scene="indoor",
                                grid_dims=16))


def info(K: np.ndarray, width: int = SIZE, height: int = SIZE) -> SimpleNamespace:
    """A sensor_msgs/CameraInfo-like object (the fields Pipeline reads)."""
    return SimpleNamespace(width=width, height=height, distortion_model="plumb_bob",
                           d=[0.0] * 5, k=np.asarray(K).ravel(), r=np.eye(3).ravel(),
                           p=np.hstack([K, np.zeros((3, 1))]).ravel())


def make(engine: InferenceEngine, **sync: Any) -> Pipeline:
    """A pipeline with the surround6 rig and the tiny engine."""
    cfg = PipelineConfig(sync=SyncConfig(cameras=tuple(load_rig("surround6").names), **sync))
    return Pipeline(cfg, load_rig("surround6"), engine=engine)


def feed(pipe: Pipeline, frame: Any, *, skip: tuple[str, ...] = (), odometry: bool = True,
         infos: dict[str, Any] | None = None) -> list[Any]:
    """CameraInfo, odometry and images of one frame; returns the sets formed."""
    stamp = frame.stamp_ns
    for i, name in enumerate(frame.camera_names):
        pipe.add_camera_info(name, stamp, (infos or {}).get(name, info(frame.K[i])))
    if odometry:
        pipe.add_odometry(stamp, frame.T_odom_base)
    sets = []
    for i, name in enumerate(frame.camera_names):
        if name not in skip:
            sets += pipe.add_image(name, stamp, frame.images[i], stamp + 1_000_000,
                                   frame_id=frame.frame_ids[i])
    return sets


def test_a_full_set_flows_through(engine: InferenceEngine, frames: list[Any]) -> None:
    pipe = make(engine)
    sets = feed(pipe, frames[0])
    assert len(sets) == 1 and sets[0].complete
    r = pipe.process(sets[0])
    assert r.ok and r.complete and r.stamp_ns == frames[0].stamp_ns
    assert list(r.cameras) == frames[0].camera_names
    for i, out in enumerate(r.cameras.values()):
        assert out.depth.shape == (SIZE, SIZE) and out.depth.dtype == np.float32
        assert (out.camera.width, out.camera.height) == (SIZE, SIZE)
        assert out.frame_id == frames[0].frame_ids[i] and out.stamp_ns == frames[0].stamp_ns
        finite = out.depth[np.isfinite(out.depth)]
        assert finite.size > 0 and finite.min() >= 0.3 and finite.max() <= 20.0
    assert r.points.ndim == 2 and r.points.shape[1] == 3 and r.points.shape[0] > 0
    assert r.colors.shape == r.points.shape and r.colors.dtype == np.uint8
    assert r.points_frame == "base_link"
    # every point lies within the trusted range of some camera centre
    dist = np.linalg.norm(r.points[:, None, :] - frames[0].T_base_cam[None, :, :3, 3], axis=2)
    assert dist.min(axis=1).max() <= 20.0 * math.sqrt(3) + 1e-3
    assert r.map_frame == "odom" and r.fusion.accepted and r.odometry_note is None
    np.testing.assert_allclose(r.pose, frames[0].T_odom_base, atol=1e-9)
    assert r.voxels.shape[1] == 3 and r.voxel_probability.shape == (r.voxels.shape[0],)
    assert r.grid2d is not None and r.grid2d.frame == "odom"
    assert set(r.timings) == set(STAGES) and r.timings["forward"] > 0
    assert r.timings["total"] >= r.timings["forward"]
    stats = pipe.stats()
    assert stats["sets"]["processed"] == 1 and stats["sets"]["complete"] == 1
    assert stats["sync"]["sets_complete"] == 1


def test_a_missing_camera_gives_a_partial_set_after_the_timeout(
        engine: InferenceEngine, frames: list[Any]) -> None:
    pipe = make(engine, timeout_ns=100_000_000)
    assert feed(pipe, frames[0], skip=("back_right",)) == []
    assert pipe.poll(frames[0].stamp_ns + 50_000_000) == []  # window still open
    sets = pipe.poll(frames[0].stamp_ns + 200_000_000)
    assert len(sets) == 1 and sets[0].missing == ["back_right"]
    r = pipe.process(sets[0])
    assert r.ok and not r.complete and r.missing == ["back_right"]
    assert "back_right" not in r.cameras and len(r.cameras) == 5
    assert pipe.stats()["sets"]["partial"] == 1


def test_camera_info_of_another_size_skips_that_view(engine: InferenceEngine,
                                                      frames: list[Any]) -> None:
    pipe = make(engine)
    # No CameraInfo of its image's size: the set waits for one, then goes after the timeout
    assert feed(pipe, frames[0], infos={"front": info(frames[0].K[0], width=40)}) == []
    sets = pipe.poll(frames[0].stamp_ns + 200_000_000)
    r = pipe.process(sets[0])
    assert r.ok and "front" not in r.cameras and len(r.cameras) == 5
    assert "40x48" in r.skipped["front"] and "48x48" in r.skipped["front"]
    stats = pipe.stats()
    assert stats["views_skipped"]["front"]["size"] == 1
    assert "front/size" in stats["last_errors"]


def test_nan_intrinsics_are_reported_and_the_view_skipped(engine: InferenceEngine,
                                                           frames: list[Any]) -> None:
    pipe = make(engine)
    K = frames[0].K[1].copy()
    K[0, 0] = np.nan
    assert pipe.add_camera_info("front_left", 0, info(K)) is not None
    err = pipe.add_camera_info("front_left", 0, info(K))
    assert "'k'" in err and "front_left" in err
    sets = feed(pipe, frames[0], infos={"front_left": info(K)})
    r = pipe.process(sets[0])
    assert "front_left" not in r.cameras and "'k'" in r.skipped["front_left"]
    stats = pipe.stats()
    assert stats["camera_info"]["front_left"]["invalid"] >= 2
    assert stats["views_skipped"]["front_left"]["camera_info"] == 1


def test_too_few_usable_views_drop_the_set(engine: InferenceEngine,
                                           frames: list[Any]) -> None:
    pipe = make(engine, min_cameras=6)
    sets = feed(pipe, frames[0], infos={"back": info(frames[0].K[3], height=30)})
    sets += pipe.poll(frames[0].stamp_ns + 200_000_000)
    r = pipe.process(sets[0])
    assert not r.ok and r.dropped.startswith("bad_input") and "min_cameras is 6" in r.dropped
    assert r.cameras == {} and r.voxels is None and r.points.shape == (0, 3)
    assert pipe.stats()["sets"]["dropped"]["bad_input"] == 1


def test_undecodable_images_are_rejected_at_input(engine: InferenceEngine) -> None:
    pipe = make(engine)
    assert pipe.add_image("front", 1, np.zeros((8, 8, 3), np.float32), 1) == []
    assert pipe.add_image("front", 2, np.zeros((8, 8), np.uint8), 2, encoding="32FC1") == []
    stats = pipe.stats()
    assert stats["images"]["front"] == {"received": 2, "rejected": 2}
    assert "front/image" in stats["last_errors"]
    with pytest.raises(ValueError, match="unknown camera 'left'"):
        pipe.add_image("left", 1, np.zeros((8, 8, 3), np.uint8), 1)


def test_other_encodings_are_decoded(engine: InferenceEngine, frames: list[Any]) -> None:
    pipe = make(engine)
    f = frames[0]
    for i, name in enumerate(f.camera_names):
        pipe.add_camera_info(name, f.stamp_ns, info(f.K[i]))
    sets = []
    for i, name in enumerate(f.camera_names):
        bgr = np.ascontiguousarray(f.images[i][..., ::-1])
        sets += pipe.add_image(name, f.stamp_ns, bgr, f.stamp_ns, encoding="bgr8")
    r = pipe.process(sets[0])
    assert r.ok and r.complete
    np.testing.assert_array_equal(r.cameras["back"].rgb, f.images[3])


def test_fusion_falls_back_to_base_link_without_odometry(engine: InferenceEngine,
                                                         frames: list[Any]) -> None:
    pipe = make(engine)
    r0 = pipe.process(feed(pipe, frames[0], odometry=False)[0])
    assert r0.ok and r0.pose is None and r0.map_frame == "base_link"
    assert r0.fusion.frame == "base_link" and "no odometry" in r0.odometry_note
    assert "no odometry" in r0.fusion_message and r0.grid2d.frame == "base_link"
    r1 = pipe.process(feed(pipe, frames[1])[0])
    assert r1.map_frame == "odom" and r1.odometry_note is None
    assert "odometry available" in r1.fusion.reset_reason
    assert pipe.stats()["sets"]["without_odometry"] == 1
    off = make(engine)
    off.reconfigure(use_odometry=False)
    r = off.process(feed(off, frames[0])[0])
    assert r.map_frame == "base_link" and r.odometry_note is None


def test_odometry_lookup_interpolates_within_the_max_age(engine: InferenceEngine) -> None:
    pipe = make(engine)
    T1 = np.eye(4)
    T1[:3, :3] = [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]  # 90 degrees yaw
    T1[:3, 3] = [1.0, 0.0, 0.0]
    assert pipe.add_odometry(0, np.eye(4)) is None
    assert pipe.add_odometry(100_000_000, T1) is None
    mid = pipe.odometry_at(50_000_000)
    np.testing.assert_allclose(mid[:3, 3], [0.5, 0.0, 0.0], atol=1e-12)
    c = math.cos(math.pi / 4)
    np.testing.assert_allclose(mid[:3, :3], [[c, -c, 0], [c, c, 0], [0, 0, 1]], atol=1e-12)
    np.testing.assert_allclose(pipe.odometry_at(250_000_000), T1)  # nearest, 150 ms away
    assert pipe.odometry_at(400_000_000) is None  # 300 ms > odom_max_age
    np.testing.assert_allclose(interpolate_pose(np.eye(4), T1, 1.0), T1, atol=1e-12)
    bad = np.eye(4)
    bad[0, 3] = np.nan
    assert "NaN" in pipe.add_odometry(200_000_000, bad)
    assert pipe.add_odometry(300_000_000, ([0, 0, 0], [0, 0, 0, 2.0])) is not None
    assert pipe.stats()["odometry"] == {"received": 4, "rejected": 2, "buffer_resets": 0}
    pipe.add_odometry(5_000_000_000, np.eye(4))
    pipe.add_odometry(1_000_000_000, np.eye(4))  # 4 s back: a looped bag
    assert pipe.stats()["odometry"]["buffer_resets"] == 1
    assert pipe.odometry_at(5_000_000_000) is None


def test_same_messages_give_the_same_outputs(engine: InferenceEngine,
                                             frames: list[Any]) -> None:
    runs = []
    for _ in range(2):
        pipe = make(engine)
        runs.append([pipe.process(feed(pipe, f)[0]) for f in frames])
    for a, b in zip(*runs):
        for name in a.cameras:
            np.testing.assert_array_equal(a.cameras[name].depth, b.cameras[name].depth)
        np.testing.assert_array_equal(a.points, b.points)
        np.testing.assert_array_equal(a.voxels, b.voxels)
        np.testing.assert_array_equal(a.grid2d.data, b.grid2d.data)


def test_points_settings_and_runtime_reconfiguration(engine: InferenceEngine,
                                                     frames: list[Any]) -> None:
    pipe = make(engine)
    dense = pipe.process(feed(pipe, frames[0])[0]).points.shape[0]
    pipe.reconfigure(points=PointsConfig(stride=4, voxel_size=0.5, max_depth=3.0),
                     fusion={"occupied_threshold": 0.9})
    r = pipe.process(feed(pipe, frames[1])[0])
    assert 0 < r.points.shape[0] < dense / 4
    keys = np.floor(r.points / 0.5).astype(np.int64)
    assert len(np.unique(keys, axis=0)) == len(keys)  # one point per 0.5 m voxel
    assert pipe.fusion.config.occupied_threshold == 0.9
    assert np.all(r.voxel_probability >= 0.9)
    with pytest.raises(ValueError, match="geometry"):
        pipe.reconfigure(fusion={"voxel_size": (0.5, 0.5, 0.5)})
    with pytest.raises(ValueError, match="unknown FusionConfig"):
        pipe.reconfigure(fusion={"threshold": 0.5})
    with pytest.raises(ValueError, match="stride"):
        PointsConfig(stride=0)


def test_points_sample_takes_another_random_subset_each_set(engine: InferenceEngine,
                                                            frames: list[Any]) -> None:
    clouds = []
    for _ in range(2):  # a new pipeline gives the same subsets (a bag replays alike)
        pipe = make(engine)
        r0 = pipe.process(feed(pipe, frames[0])[0])
        full = pipe._points(r0.prediction)
        pipe.reconfigure(points=PointsConfig(stride=1, sample=100))
        runs = [pipe.process(feed(pipe, f)[0]) for f in frames[1:]]
        clouds.append([r.points for r in runs])
    assert len(full[0]) > 500 and len(r0.points) > 100
    picked = []
    for r in runs:
        assert r.points.shape == (100, 3) and r.colors.shape == (100, 3)
        # every kept point (with its colour) is one of the set's whole cloud, in its order
        whole, colors = pipe._points(r.prediction, pc=PointsConfig(stride=1))
        index = {p.tobytes(): i for i, p in enumerate(whole)}
        at = np.array([index[p.tobytes()] for p in r.points])
        assert np.all(np.diff(at) > 0)
        np.testing.assert_array_equal(colors[at], r.colors)
        picked.append(at)
    assert not np.array_equal(*picked)  # other pixels each set, not one fixed subset
    for a, b in zip(*clouds):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="PointsConfig.sample"):
        PointsConfig(sample=-1)
    assert PipelineConfig.from_parameters({"points_sample": 4000}).points.sample == 4000


def test_config_from_node_parameters() -> None:
    cfg = PipelineConfig.from_parameters({
        "camera_names": ["front", "back"], "sync_slop": 0.03, "sync_timeout": 1,
        "min_cameras": 2, "max_staleness": 0.5, "odom_max_age": 0.1, "use_odometry": False,
        "weights": "", "preset": "lite", "device": "cpu", "depth_min": 0.5, "depth_max": 30.0,
        "points_stride": 3, "points_voxel_size": 0.1, "occupied_threshold": 0.7,
        "fusion_interpolation": "nearest", "decay_free": 0.5, "odom_frame": "map"})
    assert cfg.camera_names == ["front", "back"]
    assert cfg.sync.slop_ns == 30_000_000 and cfg.sync.timeout_ns == 1_000_000_000
    assert cfg.sync.min_cameras == 2 and cfg.sync.max_staleness_ns == 500_000_000
    assert cfg.engine.weights is None and cfg.engine.device == "cpu"
    assert cfg.engine.depth_range == (0.5, 30.0) and cfg.engine.warmup_views == 2
    assert cfg.points == PointsConfig(stride=3, voxel_size=0.1)
    assert cfg.fusion == {"occupied_threshold": 0.7, "interpolation": "nearest",
                          "decay_free_per_s": 0.5}
    assert cfg.odom_max_age_ns == 100_000_000 and not cfg.use_odometry
    assert cfg.odom_frame == "map"
    default = PipelineConfig.from_parameters({})
    assert default.camera_names == ["front", "front_left", "front_right", "back",
                                    "back_left", "back_right"]
    assert default.sync == SyncConfig(cameras=tuple(default.camera_names))
    with pytest.raises(ConfigError, match="parameter 'sync_slop' must be a number"):
        PipelineConfig.from_parameters({"sync_slop": "fast"})
    with pytest.raises(ValueError, match="occupied_threshold"):
        PipelineConfig.from_parameters({"occupied_threshold": 1.5})



def test_carving_parameters_reach_the_fusion_config() -> None:
    cfg = PipelineConfig.from_parameters({
        "carve_free_space": False, "carve_probability": 0.3, "carve_stride": 2,
        "carve_max_range": 6.5, "carve_margin": 0.5, "decay_occupied": 1.0})
    assert cfg.fusion == {"carve_free_space": False, "carve_probability": 0.3,
                          "carve_stride": 2, "carve_max_range": 6.5, "carve_margin": 0.5,
                          "decay_occupied_per_s": 1.0}
    assert PipelineConfig.from_parameters({}).fusion == {}  # FusionConfig's defaults
    with pytest.raises(ConfigError, match="parameter 'carve_stride' must be an integer"):
        PipelineConfig.from_parameters({"carve_stride": 2.0})
    with pytest.raises(ConfigError, match="parameter 'carve_free_space' must be true or false"):
        PipelineConfig.from_parameters({"carve_free_space": 1})
    with pytest.raises(ValueError, match="carve_max_range"):
        PipelineConfig.from_parameters({"carve_max_range": 0.0})


def test_a_rig_without_a_configured_camera_is_refused(engine: InferenceEngine) -> None:
    cfg = PipelineConfig(sync=SyncConfig(cameras=("front", "roof")))
    with pytest.raises(ConfigError, match="roof"):
        Pipeline(cfg, load_rig("surround6"), engine=engine)


def test_rig_file_default_resolves_from_any_directory(tmp_path: Any,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = resolve_rig_file("config/rig_surround6.yaml")
    assert path.is_file() and path.name == "rig_surround6.yaml"
    with pytest.raises(ConfigError, match="not found"):
        resolve_rig_file("config/no_such_rig.yaml")


def test_height_colors_ramp_from_blue_to_red() -> None:
    c = height_colors(np.array([-10.0, 0.0, 0.5, 1.0, 10.0]), 0.0, 1.0)  # (5, 3)
    assert c.shape == (5, 3) and c.dtype == np.float32
    assert np.all((c >= 0) & (c <= 1))
    np.testing.assert_array_equal(c[0], c[1])  # clipped below the range
    np.testing.assert_array_equal(c[3], c[4])  # and above it
    assert c[1, 2] > c[1, 0] and c[3, 0] > c[3, 2] and c[2, 1] == 1.0


def test_most_probable_is_the_stable_argsort_prefix() -> None:
    """The top-k selection of the markers equals argsort(-p, stable)[:k], ties included."""
    rng = np.random.default_rng(0)
    for trial in range(60):
        n = int(rng.integers(0, 200))
        if trial % 2:  # few distinct values: many ties, as clamped fused probabilities
            p = rng.choice([0.6, 0.75, 0.9, 0.98], n).astype(np.float32)
        else:
            p = rng.random(n).astype(np.float32)
        for k in (0, 1, 3, n // 2, n - 1, n, n + 5):
            np.testing.assert_array_equal(most_probable(p, k),
                                          np.argsort(-p, kind="stable")[:max(k, 0)])
    p = np.array([0.7, np.nan, 0.9, 0.7], dtype=np.float32)  # NaN: the plain sort, NaN last
    np.testing.assert_array_equal(most_probable(p, 3), [2, 0, 3])


def test_marker_voxels_keeps_the_most_probable(engine: InferenceEngine) -> None:
    pipeline = Pipeline(PipelineConfig(sync=SyncConfig(cameras=("front",))),
                        load_rig("surround6").subset(["front"]), engine=engine)
    voxels = np.arange(15, dtype=np.float32).reshape(5, 3)  # (5, 3) metres
    result = PipelineResult(stamp_ns=1, cameras={}, missing=[], skipped={}, voxels=voxels,
                            voxel_probability=np.array([0.7, 0.9, 0.7, 0.95, 0.8],
                                                       dtype=np.float32),
                            pose=np.eye(4))
    centres, z_range = pipeline.marker_voxels(result, 3)
    np.testing.assert_array_equal(centres, voxels[[3, 1, 4]])
    cfg = pipeline.fusion.config
    assert z_range == (cfg.lower[2], cfg.upper[2])
    assert pipeline.marker_voxels(result, 10)[0] is voxels  # fewer than the cap: all, as is



def test_sets_carve_free_space_unless_turned_off(engine: InferenceEngine,
                                                 frames: list[Any]) -> None:
    pipe = make(engine)
    r = pipe.process(feed(pipe, frames[0])[0])
    assert r.fusion.carved_voxels > 0 and "carved free" in r.fusion_message
    pipe.reconfigure(fusion={"carve_free_space": False})  # a runtime parameter
    r = pipe.process(feed(pipe, frames[1])[0])
    assert r.ok and r.fusion.carved_voxels == 0


# ---------------------------------------------------------------------------- carving
WALL_X = 9.1  # metres: a wall across the front camera's view (odom)


def person_depth(pipe: Pipeline, y: float, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Depth (1, size, size) of the front camera (robot at the odom origin) seeing a 0.6 m
    person box at x 4.0..4.6 m, centred at lateral y, before a wall; and its K."""
    T = pipe.rig["front"].T_base_cam
    K = np.array([[size / 2, 0.0, (size - 1) / 2], [0.0, size / 2, (size - 1) / 2],
                  [0.0, 0.0, 1.0]])  # 90 degrees
    v, u = np.mgrid[0:size, 0:size].astype(np.float64)
    d = (np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(K).T) @ T[:3, :3].T  # z = 1
    o = T[:3, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = (WALL_X - o[0]) / d[..., 0]  # the wall plane
        lo, hi = np.array([4.0, y - 0.3, -0.8]), np.array([4.6, y + 0.3, 1.0])
        t0, t1 = (lo - o) / d, (hi - o) / d
        near = np.nanmax(np.minimum(t0, t1), -1)
        far = np.nanmin(np.maximum(t0, t1), -1)
    depth = np.where((far >= near) & (near > 0), near, depth)
    return np.where(depth > 0, depth, np.nan)[None].astype(np.float32), K


def test_a_person_leaving_a_voxel_clears_through_the_pipeline(engine: InferenceEngine) -> None:
    """Pipeline._fuse with depth of a person walking out of a voxel: the voxel is free
    within 10 sets (1 s at 10 Hz) of the person leaving it, the wall stays occupied."""
    pipe = Pipeline(PipelineConfig(sync=SyncConfig(cameras=("front",))),
                    load_rig("surround6").subset(["front"]), engine=engine)
    grid = engine.grid
    T = pipe.rig["front"].T_base_cam
    probe = tuple(grid.points_to_index(np.array([[4.1, 0.8, 0.5]]))[0][0])
    wall = tuple(grid.points_to_index(np.array([[WALL_X + 0.1, 0.8, 0.5]]))[0][0])
    history, walls = [], []
    for k in range(30):
        stamp = 1_000_000_000 + k * 100_000_000
        y = 0.8 - 1.2 * k / 10  # starts inside the probe voxel (y 0..1.6 m), walks to -y
        depth, K = person_depth(pipe, y)
        size = depth.shape[-1]
        v, u = np.mgrid[0:size, 0:size].astype(np.float64)
        pts = ((np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(K).T)
               * depth[0][..., None]) @ T[:3, :3].T + T[:3, 3]
        idx, inside = grid.points_to_index(pts.reshape(-1, 3))
        observed = np.zeros(grid.dims, bool)
        observed[tuple(idx[inside].T)] = True  # the volume only knows surfaces
        pred = Prediction(["front"], depth, [PinholeCamera.from_intrinsics(
            size, size, K[0, 0], K[1, 1], K[0, 2], K[1, 2])],
            np.where(observed, 0.9, 0.5).astype(np.float32), observed, grid, T[None])
        pipe.add_odometry(stamp, np.eye(4))
        result = PipelineResult(stamp_ns=stamp, cameras={}, missing=[], skipped={})
        pipe._fuse(pred, stamp, result)
        assert result.fusion.accepted and result.fusion.carved_voxels > 0
        p = pipe.fusion.probability_grid().probability
        history.append(float(p[probe]))
        walls.append(float(p[wall]))
    history = np.array(history)
    cfg = pipe.fusion.config
    assert history[:3].min() >= cfg.occupied_threshold  # the person was there
    left = 11  # y + 0.3 < 0 from k = 10 on; k = 11 is the first set fully clear of it
    assert (history[left + 9:] <= cfg.free_threshold).all(), history.round(3)
    assert min(walls) >= cfg.occupied_threshold
    # A mask without any pixel carves nothing.
    result = PipelineResult(stamp_ns=stamp + 1, cameras={}, missing=[], skipped={})
    pipe.add_odometry(stamp + 100_000_000, np.eye(4))
    pipe._fuse(pred, stamp + 100_000_000, result, valid=np.zeros(depth.shape, bool))
    assert result.fusion.accepted and result.fusion.carved_voxels == 0


def test_min_confidence_masks_depth_points_and_carving(frames: list[Any],
                                                        caplog: pytest.LogCaptureFixture) -> None:
    conf_engine = InferenceEngine(EngineConfig(
        random_init=True, model_overrides={**TINY, "confidence": True}, device="cpu",
        warmup_iters=0, threads=1, return_images=True))
    pipe = make(conf_engine)
    full = pipe.process(feed(pipe, frames[0])[0])
    conf = np.stack([c.confidence for c in full.cameras.values()])
    depth = np.stack([c.depth for c in full.cameras.values()])
    assert conf.shape == depth.shape and np.array_equal(np.isnan(conf), np.isnan(depth))
    threshold = float(np.nanmedian(conf))  # about half of the pixels fall below it
    pipe = make(conf_engine)
    pipe.reconfigure(min_confidence=threshold)
    cut = pipe.process(feed(pipe, frames[0])[0])
    for name, out in cut.cameras.items():
        before = full.cameras[name]
        keep = np.isfinite(before.depth) & (before.confidence >= threshold)
        assert np.array_equal(np.isfinite(out.depth), keep), name
        np.testing.assert_array_equal(out.depth[keep], before.depth[keep])
    assert 0 < cut.points.shape[0] < 0.8 * full.points.shape[0]
    assert cut.fusion.carved_voxels < full.fusion.carved_voxels
    with pytest.raises(ValueError, match="min_confidence"):
        pipe.reconfigure(min_confidence=1.5)
    # weights without a confidence head cannot honour it: one warning, every pixel kept
    plain = make(InferenceEngine(EngineConfig(
        random_init=True, model_overrides={**TINY, "confidence": False}, device="cpu",
        warmup_iters=0, threads=1, return_images=True)))
    plain.reconfigure(min_confidence=0.5)
    with caplog.at_level("WARNING", logger="depth_any_view.pipeline"):
        r = plain.process(feed(plain, frames[0])[0])
        plain.process(feed(plain, frames[1])[0])
    assert r.ok and all(c.confidence is None for c in r.cameras.values())
    assert sum("no confidence head" in m for m in caplog.messages) == 1
    assert PipelineConfig.from_parameters({"min_confidence": 0.25}).min_confidence == 0.25


def test_fusion_takes_the_engines_device_tensors_when_on_its_device(
        engine: InferenceEngine, frames: list[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """On CUDA the engine keeps the occupancy on the GPU (Prediction.occupancy_device) and
    the pipeline fuses those tensors instead of uploading the host copy again. Here on the
    CPU: a prediction carrying device tensors (all occupied) is fused from them, not from
    its host arrays (all free)."""
    real_infer = engine.infer

    def infer(views: Any, **kwargs: Any) -> Any:
        pred = real_infer(views, **kwargs)
        pred.occupancy = np.zeros_like(pred.occupancy)  # host copy: free everywhere
        pred.occupancy_device = torch.ones(pred.occupancy.shape)  # "device": occupied
        pred.observed_device = torch.ones(pred.observed.shape, dtype=torch.bool)
        return pred

    monkeypatch.setattr(engine, "infer", infer)
    pipe = make(engine)
    pipe.reconfigure(fusion={"carve_free_space": False})
    r = pipe.process(feed(pipe, frames[0])[0])
    assert r.ok and r.voxels.shape[0] > 0.9 * np.prod(pipe.fusion.dims)  # nearly every voxel


# ---------------------------------------------------------------------------- issue 24
def make_cfg(engine: InferenceEngine, **changes: Any) -> Pipeline:
    """A pipeline with the surround6 rig, the tiny engine and PipelineConfig `changes`."""
    cfg = PipelineConfig(sync=SyncConfig(cameras=tuple(load_rig("surround6").names)),
                         **changes)
    return Pipeline(cfg, load_rig("surround6"), engine=engine)


def test_images_above_max_image_pixels_are_refused_before_they_are_queued(
        engine: InferenceEngine) -> None:
    pipe = make_cfg(engine, max_image_pixels=2000)
    err = pipe.check_image_size("front", 48, 48)
    assert err is not None and err.startswith("camera 'front' image is 48x48 (0.0 Mpixel), "
                                              "above parameter max_image_pixels 2000")
    assert pipe.check_image_size("front", 40, 50) is None  # 2000 pixels: allowed
    assert pipe.add_image("back", 1, np.zeros((48, 48, 3), np.uint8), 1) == []
    stats = pipe.stats()
    assert stats["images"]["front"] == {"received": 1, "rejected": 1}
    assert stats["images"]["back"] == {"received": 1, "rejected": 1}
    assert "max_image_pixels 2000" in stats["last_errors"]["back/image"]
    assert stats["sync"]["cameras"]["back"]["received"] == 0  # nothing was queued


def test_a_resolution_change_takes_the_camera_info_of_each_images_size(
        engine: InferenceEngine, frames: list[Any]) -> None:
    """Every camera switches 48x48 -> 57x31 -> 48x48 with its CameraInfo of the new size
    published just after the image (the order that lost a view): every view is used with
    the CameraInfo of its own size (issue 24)."""
    pipe = make(engine)
    rng = np.random.default_rng(0)
    for f, (w, h) in zip(frames, [(SIZE, SIZE), (57, 31), (SIZE, SIZE)]):
        pipe.add_odometry(f.stamp_ns, f.T_odom_base)
        sets = []
        for i, name in enumerate(f.camera_names):
            K = f.K[i] * [[w / SIZE], [h / SIZE], [1.0]]
            image = f.images[i] if w == SIZE else rng.integers(0, 256, (h, w, 3), np.uint8)
            sets += pipe.add_image(name, f.stamp_ns, image, f.stamp_ns + 1_000_000)
            pipe.add_camera_info(name, f.stamp_ns, info(K, width=w, height=h))
        sets += pipe.poll(f.stamp_ns + 2_000_000)  # the node polls every 20 ms
        (synced,) = sets
        r = pipe.process(synced)
        assert r.ok and r.complete and not r.skipped, r.skipped
        assert {(o.camera.width, o.camera.height) for o in r.cameras.values()} == {(w, h)}
        assert {o.depth.shape for o in r.cameras.values()} == {(h, w)}
    assert sum(pipe.stats()["views_skipped"]["front"].values()) == 0


def test_a_short_odometry_gap_holds_the_map_and_a_long_one_resets_it(
        engine: InferenceEngine, frames: list[Any], caplog: pytest.LogCaptureFixture) -> None:
    """One set without odometry (gap 0.1 s <= odom_reset_timeout): the map is held in odom,
    not fused and not reset, and fusion goes on when the pose is back. With a timeout below
    the gap it falls back to base_link (a reset) and back (another)."""
    pipe = make_cfg(engine, odom_max_age_ns=50_000_000)
    r0 = pipe.process(feed(pipe, frames[0])[0])
    with caplog.at_level("INFO", logger="depth_any_view"):
        r1 = pipe.process(feed(pipe, frames[1], odometry=False)[0])
        r2 = pipe.process(feed(pipe, frames[2])[0])
    assert r1.fusion.held and not r1.fusion.accepted and r1.fusion.reset_reason is None
    assert r1.map_frame == "odom" and r1.pose is None and "map held in odom" in r1.odometry_note
    np.testing.assert_array_equal(r1.voxels, r0.voxels)  # the held map is still published
    np.testing.assert_array_equal(r1.voxel_probability, r0.voxel_probability)
    assert r2.fusion.accepted and r2.fusion.reset_reason is None and r2.map_frame == "odom"
    stats = pipe.stats()
    assert stats["fusion"]["resets"] == 0 and stats["fusion"]["held"] == 1
    assert stats["sets"]["fusion_held"] == 1 and stats["sets"]["without_odometry"] == 1
    text = [r.getMessage() for r in caplog.records]
    assert sum("map held in odom" in t for t in text) == 1, text
    assert sum("odometry is back" in t for t in text) == 1, text

    short = make_cfg(engine, odom_max_age_ns=50_000_000, odom_reset_timeout_ns=50_000_000)
    short.process(feed(short, frames[0])[0])
    r1 = short.process(feed(short, frames[1], odometry=False)[0])
    assert r1.map_frame == "base_link" and "odometry lost" in r1.fusion.reset_reason
    assert "single-frame occupancy in base_link" in r1.odometry_note
    r2 = short.process(feed(short, frames[2])[0])
    assert "odometry available" in r2.fusion.reset_reason


def test_odometry_quaternions_near_unit_length_are_normalised(
        engine: InferenceEngine) -> None:
    pipe = make(engine)
    q = np.array([0.0, 0.0, math.sin(0.3), math.cos(0.3)])
    assert pipe.add_odometry(10, ([1.0, 2.0, 0.0], q * 1.005)) is None  # a filter's output
    T = pipe.odometry_at(10)
    np.testing.assert_allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(T[:2, 0], [math.cos(0.6), math.sin(0.6)], atol=1e-12)
    err = pipe.add_odometry(20, ([1.0, 2.0, 0.0], q * 1.2))
    assert err is not None and "norm 1.200000" in err and "0.05" in err
    assert pipe.stats()["odometry"] == {"received": 2, "rejected": 1, "buffer_resets": 0}


def test_a_forward_stamp_jump_resets_the_map_once(engine: InferenceEngine, frames: list[Any],
                                                 caplog: pytest.LogCaptureFixture,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Set stamps jump 100 s ahead (a clock jump): one log line, the map and the temporal
    matching state reset (issue 24)."""
    from dataclasses import replace

    pipe = make(engine)
    temporal_resets: list[int] = []
    monkeypatch.setattr(pipe.engine.previous, "reset", lambda: temporal_resets.append(1))
    pipe.process(feed(pipe, frames[0])[0])
    pipe.process(feed(pipe, frames[1])[0])
    jumped = replace(frames[2], stamp_ns=frames[1].stamp_ns + 100 * 10**9)
    with caplog.at_level("INFO", logger="depth_any_view"):
        r = pipe.process(feed(pipe, jumped)[0])
    assert r.ok and r.fusion.accepted and r.map_frame == "odom"
    assert r.fusion.reset_reason.startswith("set stamp jumped forward 100.000 s, more than "
                                            "max_stamp_jump 10 s")
    assert temporal_resets == [1]
    stats = pipe.stats()
    assert stats["sets"]["stamp_jumps"] == 1 and stats["fusion"]["resets"] == 1
    lines = [rec.getMessage() for rec in caplog.records if "jumped forward" in rec.getMessage()]
    assert len(lines) == 1, lines
