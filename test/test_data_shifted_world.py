"""Tests of the shifted world (data/shifted_world.py, data/shifted_render.py): frames,
z-depth, occupancy, determinism, shards, bags, evaluation, CLI and the dataset seeds."""

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from depth_any_view.bag.synthetic import write_shifted_bag
from depth_any_view.config import ConfigError, load_yaml
from depth_any_view.data.dataset import SyntheticShardDataset, find_shard_dirs
from depth_any_view.data.occupancy import OccupancyLabeler
from depth_any_view.data.random_rig import RandomRig, optical_rotation
from depth_any_view.data.shards import read_meta
from depth_any_view.data.shifted_config import ShiftedConfig, load_shifted_config
from depth_any_view.data.shifted_render import (
    PHOTO_NAMES,
    ShiftedRenderer,
    draw_materials,
    sample_photos,
)
from depth_any_view.data.shifted_scene import _lighting, _noise_tile
from depth_any_view.data.shifted_world import (
    GroundPlane,
    MeshSoup,
    ShiftedScene,
    box_mesh,
    make_sequence,
    plan_motion,
    write_sequence,
)
from depth_any_view.geometry.camera import PinholeCamera
from depth_any_view.geometry.grid import FREE, OCCUPIED, VoxelGrid
from depth_any_view.geometry.rig import Rig

REPO = Path(__file__).resolve().parent.parent


def tiny(cameras=(1, 3), indoor=None) -> ShiftedConfig:
    """Small images and few cameras (fast); `indoor` forces the scene kind."""
    cfg = ShiftedConfig()
    world = cfg.world if indoor is None else replace(cfg.world,
                                                     indoor_probability=float(indoor))
    return replace(cfg, world=world, rig=replace(cfg.rig, cameras=cameras, width=(32, 64),
                                                 height_px=(24, 48)))


def test_packaged_yaml_equals_the_defaults():
    assert load_shifted_config() == ShiftedConfig()


def test_config_errors_name_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("rig:\n  cameras: [1, 8]\n  colour: red\n")
    with pytest.raises(ConfigError, match="colour"):
        load_shifted_config(bad)
    bad.write_text("rig:\n  cameras: [1, 9]\n")
    with pytest.raises(ConfigError, match="rig.cameras"):
        load_shifted_config(bad)
    bad.write_text("rig:\n  aspects: [1.5]\nscene:\n  objects: [9, 2]\n")
    with pytest.raises(ConfigError, match="scene.objects"):
        load_shifted_config(bad)


@pytest.mark.parametrize("indoor", [True, False])
def test_frames_have_the_standard_conventions(indoor):
    seq = make_sequence(11, frames=2, grid_dims=16, config=tiny(indoor=indoor))
    assert seq.kind == ("indoor" if indoor else "outdoor")
    frames = list(seq.frames())
    f = frames[1]
    V, (W, H) = seq.rig.num_views, seq.rig.size
    assert [g.index for g in frames] == [0, 1]
    assert frames[1].stamp_ns - frames[0].stamp_ns == 100_000_000  # 10 Hz, int64 ns
    assert f.images.shape == (V, H, W, 3) and f.images.dtype == np.uint8
    assert f.depth.shape == (V, H, W) and f.depth.dtype == np.float32
    assert f.occupancy.shape == (16, 16, 16) and f.occupancy.dtype == np.uint8
    assert f.camera_names == seq.rig.names and f.frame_ids == seq.rig.frame_ids
    np.testing.assert_array_equal(f.K, seq.rig.K)
    np.testing.assert_array_equal(f.T_base_cam, seq.rig.T_base_cam)
    assert f.grid.to_dict() == VoxelGrid((-12.8, -12.8, -0.8), (12.8, 12.8, 3.2),
                                         (16, 16, 16)).to_dict()
    d = f.depth[np.isfinite(f.depth)]
    assert d.size and d.min() > 0.05 and d.max() <= 40.0
    if indoor:  # a closed room: every ray hits something near
        assert np.isfinite(f.depth).all()
    assert f.images.std() > 5  # not a blank picture


def _one_camera_rig(yaw_deg=0.0, pitch_deg=0.0, height=1.0, size=(48, 36)) -> RandomRig:
    T = np.eye(4)
    T[:3, :3] = optical_rotation(np.radians(yaw_deg), np.radians(pitch_deg))
    T[:3, 3] = (0.0, 0.0, height)
    cam = PinholeCamera.from_fov(size[0], size[1], np.radians(90.0))
    return RandomRig(["cam0"], ["cam0_optical"], T[None], [cam], None, 0.0)


def _wall_scene(x_face=4.0) -> ShiftedScene:
    """A wall whose face is the plane x = x_face (odom), 40 m wide and 20 m high."""
    rng = np.random.default_rng(0)
    cfg = ShiftedConfig()
    soup = MeshSoup()
    soup.add(box_mesh((x_face + 0.5, 0.0, 1.0), (1.0, 40.0, 20.0)), 2)
    v, f, m = soup.build()
    from depth_any_view.data.shifted_render import triplanar_axes

    tri = v[f].astype(np.float64)
    tu, tv = triplanar_axes(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]))
    return ShiftedScene("outdoor", v, f, m, tu, tv, draw_materials(rng, 4, cfg.texture,
                                                                    cfg.lighting),
                        _noise_tile(rng), GroundPlane(), _lighting(rng, "outdoor", cfg, None))


@pytest.mark.parametrize("yaw_deg", [0.0, 25.0])
def test_depth_is_z_along_the_optical_axis(yaw_deg):
    rig = _one_camera_rig(yaw_deg=yaw_deg)
    r = ShiftedRenderer(_wall_scene(4.0), rig.cameras, rig.T_base_cam, max_range=40.0)
    T_odom_base = np.eye(4)
    T_odom_base[:3, 3] = (0.5, 0.0, 0.0)  # base 3.5 m from the wall face
    images, depth = r.render(T_odom_base, np.random.default_rng(0))
    rays = rig.cameras[0].pixel_rays()  # (H, W, 3), z = 1
    dirs = rays @ rig.T_base_cam[0, :3, :3].T  # base = odom axes here
    expected = 3.5 / dirs[..., 0]  # x distance over the ray's x per unit of z
    np.testing.assert_allclose(depth[0], expected, rtol=1e-4)
    if yaw_deg == 0.0:  # facing the wall: the same z everywhere, unlike the ray length
        np.testing.assert_allclose(depth[0], 3.5, rtol=1e-5)
    assert images.dtype == np.uint8


def test_depth_beyond_max_range_is_nan():
    rig = _one_camera_rig()
    r = ShiftedRenderer(_wall_scene(4.0), rig.cameras, rig.T_base_cam, max_range=3.0)
    images, depth = r.render(np.eye(4), np.random.default_rng(0))
    assert np.isnan(depth).all() and images.std() > 0  # the wall is still drawn


def test_occupancy_marks_the_wall_and_frees_the_space_before_it():
    rig = _one_camera_rig(height=1.0)
    scene = _wall_scene(4.0)
    grid = VoxelGrid((-12.8, -12.8, -0.8), (12.8, 12.8, 3.2), (64, 64, 16))
    r = ShiftedRenderer(scene, rig.cameras, rig.T_base_cam, max_range=40.0)
    _, depth = r.render(np.eye(4), np.random.default_rng(0))
    labels = OccupancyLabeler(grid, rig.cameras, rig.T_base_cam, max_range=40.0).label(
        scene, np.eye(4), depth)
    c = grid.centers()  # (nx, ny, nz, 3)
    wall = (c[..., 0] > 4.1) & (c[..., 0] < 4.3) & (np.abs(c[..., 1]) < 3.0) \
        & (c[..., 2] > -0.5) & (c[..., 2] < 2.5)
    assert wall.any() and (labels[wall] == OCCUPIED).all()  # the voxels holding x = 4 m
    inside = (c[..., 0] > 4.5) & (c[..., 0] < 4.7) & (np.abs(c[..., 1]) < 3.0)
    assert (labels[inside] != OCCUPIED).all()  # no surface inside the solid wall
    ahead = (c[..., 0] > 1.5) & (c[..., 0] < 3.5) & (np.abs(c[..., 1]) < 0.5) \
        & (np.abs(c[..., 2] - 1.0) < 0.3)
    assert ahead.any() and (labels[ahead] == FREE).all()
    assert (labels[(c[..., 0] < -1.0)] != OCCUPIED).all()  # nothing behind the camera


def test_every_depth_point_in_the_grid_is_occupied():
    seq = make_sequence(5, frames=1, grid_dims=32, config=tiny())
    f = next(seq.frames())
    for v in range(f.num_views):
        p = f.points_base(v).reshape(-1, 3)
        p = p[np.isfinite(p).all(axis=1)]
        idx, inside = f.grid.points_to_index(p)
        assert inside.any()
        assert (f.occupancy[tuple(idx[inside].T)] == OCCUPIED).all()


def test_objects_stand_near_but_clear_of_the_rig():
    near = 0
    for seed in range(6):
        seq = make_sequence(seed, frames=4, grid_dims=8, config=tiny())
        sc = seq.scene
        objects = np.unique(sc.faces[sc.face_material >= 2])  # not ground, floor, ceiling
        xy = sc.vertices[objects, :2].astype(np.float64)
        dist = np.linalg.norm(xy[:, None] - seq.motion.xy[None], axis=2).min(axis=1)
        assert dist.min() >= seq.rig.reach + 0.5 - 1e-3, seed
        near += (dist < seq.rig.reach + 3.0).any()
    assert near >= 4  # objects within a few metres in most sequences


def test_motions_stand_turn_and_drive_slowly():
    cfg = ShiftedConfig()
    kinds = set()
    for s in range(40):
        m = plan_motion(np.random.default_rng(s), 4, 10.0, 0, GroundPlane(0.05, 0.0), cfg)
        kinds.add(m.kind)
        step = np.linalg.norm(np.diff(m.xy, axis=0), axis=1)
        assert np.all(step <= 1.2 / 10.0 + 1e-9)
        if m.kind == "still":
            np.testing.assert_allclose(m.T_odom_base, m.T_odom_base[:1].repeat(4, 0))
        np.testing.assert_allclose(m.T_odom_base[:, 2, 3], 0.05 * m.xy[:, 0])  # on the slope
        up = m.T_odom_base[:, :3, 2]  # base z follows the ground normal
        np.testing.assert_allclose(up, np.broadcast_to(GroundPlane(0.05, 0.0).normal, up.shape),
                                   atol=1e-12)
    assert kinds == {"still", "turn", "drive"}


def test_sample_photographs_ship_with_scikit_image():
    photos = sample_photos(16)
    assert photos.shape == (len(PHOTO_NAMES), 16, 16, 3) and photos.dtype == np.float32
    assert 0.0 <= photos.min() and photos.max() <= 1.0 and photos.std() > 0.05


def test_same_seed_same_bytes_and_shards_load(tmp_path):
    cfg = tiny()
    a = write_sequence(tmp_path / "a", 3, frames=2, grid_dims=16, config=cfg)
    b = write_sequence(tmp_path / "b", 3, frames=2, grid_dims=16, config=cfg)
    c = write_sequence(tmp_path / "c", 4, frames=2, grid_dims=16, config=cfg)
    for name in ("frame_000000.npz", "frame_000001.npz", "meta.json", "rig.yaml"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a / "frame_000000.npz").read_bytes() != (c / "frame_000000.npz").read_bytes()
    meta = read_meta(a)
    rig = Rig.from_yaml(a / "rig.yaml")
    assert rig.names == meta["camera_names"] and meta["seed"] == 3
    ds = SyntheticShardDataset(a, temporal=True)
    assert len(ds) == 2 and ds.previous_index(1) == 0
    item = ds[1]
    V = len(meta["camera_names"])
    W, H = meta["size"]
    assert item["images"].shape == (V, 3, H, W) and item["depth"].shape == (V, H, W)
    np.testing.assert_allclose(item["T_base_cam"].numpy(), rig.T_base_cams(), atol=1e-6)
    assert item["prev_images"].shape == item["images"].shape


def test_cli_writes_sequences_that_evaluate_reads(tmp_path, monkeypatch):
    from depth_any_view import cli
    from depth_any_view.data import shifted_world
    from depth_any_view.training.evaluate import evaluate_split

    monkeypatch.setattr(shifted_world, "load_shifted_config", lambda: tiny((1, 2)))
    args = cli.build_parser().parse_args(
        ["synth", "--world", "shifted", "--out", str(tmp_path / "split"), "--sequences", "2",
         "--frames", "1", "--seed", "40", "--grid", "64", "--quiet"])
    assert args.func(args) == 0
    dirs = find_shard_dirs(tmp_path / "split")
    assert [d.name for d in dirs] == ["seq_40", "seq_41"]
    names = [read_meta(d)["camera_names"] for d in dirs]
    assert names[0] != names[1]  # two rigs in one split
    result = evaluate_split(tmp_path / "split", weights=None, random_init=True, max_frames=2,
                            progress=False, engine_overrides={"device": "cpu"})
    assert result["frames"] == 2
    union = list(dict.fromkeys(names[0] + names[1]))
    assert result["cameras"] == union
    assert np.isfinite(result["depth"]["abs_rel"])
    assert cli.build_parser().parse_args(["synth", "--out", "x"]).world == "standard"


def test_a_sequence_is_written_as_an_mcap_bag(tmp_path):
    from rosbags.highlevel import AnyReader

    out = write_shifted_bag(tmp_path / "bag", 2, frames=2, fmt="mcap", grid_dims=16,
                            config=tiny((2, 2)))
    rig = Rig.from_yaml(tmp_path / "bag.rig.yaml")
    params = load_yaml(tmp_path / "bag.params.yaml")["/**/depth_any_view"]["ros__parameters"]
    assert params["camera_names"] == rig.names
    assert Rig.from_yaml(params["rig_file"]).names == rig.names
    with AnyReader([out]) as reader:
        topics = {c.topic: c.msgcount for c in reader.connections}
    for name in rig.names:
        assert topics[f"/cameras/{name}/image_raw"] == 2
        assert topics[f"/cameras/{name}/depth_gt"] == 2


def _seed_ranges(script: str) -> dict[str, range]:
    """Split -> seed range of the shifted-world lines of make_datasets.sh."""
    out = {}
    for split, first, count in re.findall(r"^gen_shifted (\S+) (\d+) (\d+) \d+", script, re.M):
        out[split] = range(int(first), int(first) + int(count))
    return out


def test_shifted_test_and_train_seeds_are_disjoint():
    script = (REPO / "scripts" / "make_datasets.sh").read_text()
    ranges = _seed_ranges(script)
    assert set(ranges) == {"shifted_test", "shifted_train"}
    assert len(ranges["shifted_test"]) >= 6 and len(ranges["shifted_train"]) >= 100
    assert not set(ranges["shifted_test"]) & set(ranges["shifted_train"])
    standard = re.findall(r"seq (\d+) (\d+)", script)  # the standard world's seed loops
    for lo, hi in standard:
        assert not set(range(int(lo), int(hi) + 1)) & set(ranges["shifted_test"])
