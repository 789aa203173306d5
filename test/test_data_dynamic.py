"""Tests of depth_any_view.data.dynamic: moving persons and cars in depth, occupancy and shards."""

from dataclasses import replace

import numpy as np
import pytest

from depth_any_view.cli import build_parser
from depth_any_view.config import ConfigError
from depth_any_view.data.base_trajectory import FilletPath
from depth_any_view.data.dynamic import CAR, PERSON, DynamicWorld, MovingObject
from depth_any_view.data.frame import DYNAMIC_KINDS
from depth_any_view.data.occupancy import OccupancyLabeler
from depth_any_view.data.render import Renderer
from depth_any_view.data.scenes import HeightField, MeshBuilder, assemble_scene
from depth_any_view.data.shards import load_frame, read_meta, read_npz
from depth_any_view.data.synth import generate_sequence, synthesize
from depth_any_view.data.synth_config import SynthConfig, load_synth_config
from depth_any_view.data.textures import MaterialLibrary, merge_tables
from depth_any_view.geometry.camera import PinholeCamera
from depth_any_view.geometry.grid import FREE, OCCUPIED, VoxelGrid
from depth_any_view.geometry.rig import load_rig
from depth_any_view.geometry.transforms import invert_transform, transform_points

SMALL = dict(size=(64, 64), grid_dims=32, progress=False)
SEQ = dict(frames=12, scene="outdoor", seed=9100, **SMALL)
FPS = 10.0
COS16 = np.cos(np.pi / 16)  # persons are 16-sided prisms inscribed in their cylinder


@pytest.fixture(scope="module")
def dynamic_seq():
    return [i.frame for i in generate_sequence(dynamic=True, **SEQ)]


@pytest.fixture(scope="module")
def static_seq():
    return [i.frame for i in generate_sequence(dynamic=False, **SEQ)]


# ----------------------------------------------------------------------------- helpers
def _local(state, k, p):
    """Points p (..., 3) odom in the frame of object k (centre origin, x along its yaw)."""
    c, s = np.cos(state.yaw[k]), np.sin(state.yaw[k])
    d = np.asarray(p, np.float64) - state.center[k]
    return np.stack([c * d[..., 0] + s * d[..., 1], -s * d[..., 0] + c * d[..., 1], d[..., 2]],
                    axis=-1)


def _ray_hit(state, k, origin, direction):
    """Parameter t (units of `direction`) where a ray first enters object k, or inf."""
    o = _local(state, k, origin)
    v = _local(state, k, origin + direction) - o
    half = state.size[k] / 2
    if state.kind[k] == CAR:  # slab test
        with np.errstate(divide="ignore", invalid="ignore"):
            t1, t2 = (-half - o) / v, (half - o) / v
        near, far = np.nanmax(np.minimum(t1, t2)), np.nanmin(np.maximum(t1, t2))
        return near if 0 < near <= far else np.inf
    r = half[0] * (1 + COS16) / 2  # between the prism's faces and edges
    a, b, c = v[0] ** 2 + v[1] ** 2, 2 * (o[0] * v[0] + o[1] * v[1]), o[0] ** 2 + o[1] ** 2 - r * r
    ts = []
    if b * b - 4 * a * c >= 0 and a > 0:
        t = (-b - np.sqrt(b * b - 4 * a * c)) / (2 * a)
        if t > 0 and abs(o[2] + t * v[2]) <= half[2]:
            ts.append(t)
    for zc in (-half[2], half[2]):  # caps
        if abs(v[2]) > 1e-12:
            t = (zc - o[2]) / v[2]
            q = o + t * v
            if t > 0 and q[0] ** 2 + q[1] ** 2 <= r * r:
                ts.append(t)
    return min(ts, default=np.inf)


def _surface_samples(state, k):
    """Points (M, 3) odom on the sides and top of object k."""
    L, W, H = state.size[k]
    if state.kind[k] == PERSON:
        ang, z = np.meshgrid(np.linspace(0, 2 * np.pi, 96, endpoint=False),
                             np.linspace(-H / 2 + 0.02, H / 2 - 0.02, 80))
        r = W / 2 * (1 + COS16) / 2
        local = np.stack([r * np.cos(ang), r * np.sin(ang), z], axis=-1).reshape(-1, 3)
    else:
        a = np.linspace(-0.48, 0.48, 40)
        u, v = np.meshgrid(a, a)
        u, v = u.ravel(), v.ravel()
        faces = []
        for axis in range(3):
            for sign in (-0.5, 0.5):
                if axis == 2 and sign < 0:
                    continue  # the bottom rests on the ground
                p = np.zeros((u.size, 3))
                others = [i for i in range(3) if i != axis]
                p[:, axis] = sign
                p[:, others[0]], p[:, others[1]] = u, v
                faces.append(p * [L, W, H])
        local = np.concatenate(faces)
    c, s = np.cos(state.yaw[k]), np.sin(state.yaw[k])
    x = c * local[:, 0] - s * local[:, 1]
    y = s * local[:, 0] + c * local[:, 1]
    return np.stack([x, y, local[:, 2]], axis=1) + state.center[k]


def _voxels(frame, points_odom, interior=0.3):
    """Flat voxel ids of odom points that lie well inside a voxel of the frame's grid (at
    least `interior` voxel edges from every face), so no sampling scheme can miss them."""
    p = transform_points(invert_transform(frame.T_odom_base), points_odom)
    q = (p - np.asarray(frame.grid.lower)) / frame.grid.voxel_size
    idx = np.floor(q).astype(np.int64)
    f = q - idx
    ok = np.all((idx >= 0) & (idx < np.asarray(frame.grid.dims)), axis=1)
    ok &= np.all((f >= interior) & (f <= 1 - interior), axis=1)
    nx, ny, nz = frame.grid.dims
    return np.unique((idx[ok, 0] * ny + idx[ok, 1]) * nz + idx[ok, 2])


# ----------------------------------------------------------------------------- motion
def test_motion_goes_back_and_forth_at_constant_speed_inside_its_free_stretch():
    obj = MovingObject(id=0, kind=PERSON, size=(0.5, 0.5, 1.7), anchor=(1.0, 2.0),
                       direction=(0.0, 1.0), speed=1.2, t_cross=2.0, lo=-1.0, hi=3.0,
                       material=0)
    t = np.arange(0.0, 20.0, 0.05)
    xy, v = obj.motion(t)
    np.testing.assert_allclose(xy[:, 0], 1.0)
    u = xy[:, 1] - 2.0
    assert u.min() >= -1.0 - 1e-9 and u.max() <= 3.0 + 1e-9
    assert u.min() < -0.9 and u.max() > 2.9  # it reaches both ends and turns there
    np.testing.assert_allclose(obj.motion(2.0)[0], [[1.0, 2.0]])  # at the anchor at t_cross
    np.testing.assert_allclose(np.abs(v), 1.2)
    step = np.abs(np.diff(u))
    turn = np.diff(np.sign(v)) != 0
    np.testing.assert_allclose(step[~turn], 1.2 * 0.05, atol=1e-9)
    assert (step[turn] <= 1.2 * 0.05 + 1e-9).all()


def test_objects_move_at_their_configured_speed(dynamic_seq):
    cfg = SynthConfig().dynamic
    states = [f.dynamic for f in dynamic_seq]
    first = states[0]
    # Outdoors: the configured car and persons, each with a unique id and its size.
    assert sorted(first.kind.tolist()) == sorted([CAR] * cfg.outdoor_cars
                                                 + [PERSON] * cfg.outdoor_persons)
    assert len(set(first.id.tolist())) == len(first)
    for s in states:
        np.testing.assert_array_equal(s.id, first.id)
        np.testing.assert_array_equal(s.size, first.size)
    car, person = first.kind == CAR, first.kind == PERSON
    np.testing.assert_allclose(first.size[car], [[cfg.car_length, cfg.car_width,
                                                  cfg.car_height]])
    np.testing.assert_allclose(first.size[person], [[2 * cfg.person_radius,
                                                     2 * cfg.person_radius,
                                                     cfg.person_height]] * int(person.sum()))
    speed = np.linalg.norm(first.velocity, axis=1)
    assert (speed[person] >= cfg.person_speed[0]).all()
    assert (speed[person] <= cfg.person_speed[1]).all()
    assert (speed[car] >= cfg.car_speed[0]).all() and (speed[car] <= cfg.car_speed[1]).all()
    moved = 0
    for a, b in zip(states[:-1], states[1:]):
        step = np.linalg.norm(b.center[:, :2] - a.center[:, :2], axis=1)
        same_way = np.einsum("ij,ij->i", a.velocity, b.velocity) > 0
        np.testing.assert_allclose(step[same_way], speed[same_way] / FPS, rtol=1e-6)
        assert (step <= speed / FPS + 1e-9).all()
        # The velocity points the way it moves; the yaw is its heading.
        d = (b.center - a.center)[same_way, :2]
        np.testing.assert_allclose(d, a.velocity[same_way, :2] / FPS, atol=1e-9)
        np.testing.assert_allclose(np.cos(a.yaw), a.velocity[:, 0] / speed, atol=1e-9)
        moved += int(same_way.sum())
    assert moved > 0
    # Every object keeps its distance from the robot in every frame.
    for f in dynamic_seq:
        d = np.linalg.norm(f.dynamic.center[:, :2] - f.T_odom_base[:2, 3], axis=1)
        assert (d - np.where(person, cfg.person_radius, 0.0) > cfg.robot_clearance - 1e-6).all()


# ----------------------------------------------------------------------------- depth
def test_ray_through_object_centre_hits_it_at_its_distance_in_a_known_scene():
    rng = np.random.default_rng(0)
    lib = MaterialLibrary(rng)
    mesh = MeshBuilder()
    mesh.add_quads(np.array([[[-60, -60, 0], [60, -60, 0], [60, 60, 0], [-60, 60, 0]]]),
                   lib.add("road"))
    scene = assemble_scene("outdoor", mesh, lib, rng, FilletPath(np.eye(3)[:, :2] * 5, 0.0),
                           HeightField.flat(), elevation_deg=(60, 60), ambient=0.5,
                           diffuse=0.5, sky=((0.7, 0.8, 0.9), (0.3, 0.5, 0.8)))
    own = MaterialLibrary(rng)
    person = MovingObject(id=0, kind=PERSON, size=(0.5, 0.5, 1.7), anchor=(4.0, 0.0),
                          direction=(0.0, 1.0), speed=1.2, t_cross=0.0, lo=-5.0, hi=5.0,
                          material=len(scene.materials) + own.add("clothing"))
    car = MovingObject(id=1, kind=CAR, size=(4.2, 1.8, 1.5), anchor=(-8.0, 0.0),
                       direction=(0.0, -1.0), speed=4.0, t_cross=0.0, lo=-20.0, hi=20.0,
                       material=len(scene.materials) + own.add("vehicle"))
    world = DynamicWorld([person, car], scene.ground, merge_tables(scene.materials, own.table()))
    rig = load_rig("surround6")
    cams = [PinholeCamera.from_fov(65, 65, np.deg2rad(90))] * len(rig)  # a centre pixel
    renderer = Renderer(scene, cams, rig.T_base_cams(), max_range=40.0)
    images0, static = renderer.render(np.eye(4))
    images, depth = renderer.render(np.eye(4), dynamic=world.at(0.0))
    # The front camera (x = 0.25 m, 1.6 m up) sees the person's near side at x = 3.75 m; the
    # back camera (x = -0.25 m) sees the car's side at x = -7.1 m below its centre row
    # (row 36 looks down by 4 / 32.5: at 0.76 m height there, on the ground at 13 m depth).
    assert 3.5 - 1e-4 <= depth[0, 32, 32] <= 3.5 + 0.25 * (1 - COS16) + 1e-4  # float32
    assert depth[3, 36, 32] == pytest.approx(6.85, abs=1e-4)
    assert static[3, 36, 32] == pytest.approx(13.0, abs=1e-3)
    assert np.isnan(static[0, 32, 32]) or static[0, 32, 32] > 10
    # Only pixels on the objects change, and they come nearer; the objects are textured.
    changed = ~((depth == static) | (np.isnan(depth) & np.isnan(static)))
    assert changed[0].sum() > 20 and changed[3].sum() > 20
    assert (np.nan_to_num(depth[changed], nan=np.inf) < np.nan_to_num(static[changed],
                                                                      nan=np.inf)).all()
    np.testing.assert_array_equal(images[~changed], images0[~changed])
    assert images[0][changed[0]].std() > 3.0
    # Two seconds later the person has walked 2.4 m to the side and the car has driven 8 m
    # on: both rays see the static world again.
    _, later = renderer.render(np.eye(4), dynamic=world.at(2.0))
    assert np.isnan(later[0, 32, 32]) or later[0, 32, 32] > 10
    assert later[3, 36, 32] == pytest.approx(13.0, abs=1e-3)


def test_objects_appear_in_ground_truth_depth_at_their_distance(dynamic_seq, static_seq):
    object_hits = 0
    for f, g in zip(dynamic_seq, static_seq):
        np.testing.assert_array_equal(f.T_odom_base, g.T_odom_base)
        st = f.dynamic
        for v in range(f.num_views):
            cam = f.camera(v)
            T_odom_cam = f.T_odom_base @ f.T_base_cam[v]
            uv, ok = cam.project(transform_points(invert_transform(T_odom_cam), st.center))
            for k in np.flatnonzero(ok):
                u, r = np.rint(uv[k]).astype(int)
                ray = cam.pixel_rays()[r, u]  # z = 1: t along it is the depth
                origin = T_odom_cam[:3, 3]
                direction = T_odom_cam[:3, :3] @ ray
                t_obj = min(_ray_hit(st, i, origin, direction) for i in range(len(st)))
                t_static = np.nan_to_num(g.depth[v, r, u], nan=np.inf)
                expected = min(t_obj, t_static)
                if expected > 40.0:
                    assert np.isnan(f.depth[v, r, u])
                    continue
                assert f.depth[v, r, u] == pytest.approx(expected, abs=0.02), (f.index, v, k)
                object_hits += int(t_obj < t_static)
        # Elsewhere depth is the static world's, or nearer where an object stands.
        same = (f.depth == g.depth) | (np.isnan(f.depth) & np.isnan(g.depth))
        assert (np.nan_to_num(f.depth[~same], nan=np.inf)
                < np.nan_to_num(g.depth[~same], nan=np.inf)).all()
        np.testing.assert_array_equal(f.images[same & np.isfinite(f.depth)],
                                      g.images[same & np.isfinite(f.depth)])
    assert object_hits >= 5


# ----------------------------------------------------------------------------- occupancy
def test_object_voxels_are_occupied_in_their_frame_and_not_after_they_left(dynamic_seq,
                                                                          static_seq):
    checked = vacated_free = 0
    for f in dynamic_seq:
        for k in range(len(f.dynamic)):
            ids = _voxels(f, _surface_samples(f.dynamic, k))
            assert (f.occupancy.reshape(-1)[ids] == OCCUPIED).all(), (f.index, k)
            checked += ids.size
    assert checked > 50
    # Voxels an object filled in the first frame, seen from the last frame: where no object
    # is near any more and the static world has no surface, they are no longer occupied.
    first, last, last_static = dynamic_seq[0], dynamic_seq[-1], static_seq[-1]
    centres = VoxelGrid(last.grid.lower, last.grid.upper, last.grid.dims).centers(np.float64)
    centres_odom = transform_points(last.T_odom_base, centres.reshape(-1, 3))
    diag = float(np.linalg.norm(last.grid.voxel_size))
    for k in range(len(first.dynamic)):
        ids = _voxels(last, _surface_samples(first.dynamic, k), interior=0.0)
        near = np.zeros(ids.size, bool)
        for j in range(len(last.dynamic)):
            d = np.linalg.norm(centres_odom[ids, :2] - last.dynamic.center[j, :2], axis=1)
            near |= d < 0.5 * np.linalg.norm(last.dynamic.size[j, :2]) + diag
        keep = ids[~near & (last_static.occupancy.reshape(-1)[ids] != OCCUPIED)]
        assert (last.occupancy.reshape(-1)[keep] != OCCUPIED).all(), k
        vacated_free += int((last.occupancy.reshape(-1)[keep] == FREE).sum())
    assert vacated_free > 0


def test_labeler_marks_objects_and_frees_space_they_left():
    rng = np.random.default_rng(1)
    lib = MaterialLibrary(rng)
    mesh = MeshBuilder()
    mesh.add_quads(np.array([[[-60, -60, 0], [60, -60, 0], [60, 60, 0], [-60, 60, 0]]]),
                   lib.add("floor"))
    scene = assemble_scene("indoor", mesh, lib, rng, FilletPath(np.eye(3)[:, :2] * 5, 0.0),
                           HeightField.flat(), elevation_deg=(60, 60), ambient=0.5,
                           diffuse=0.5, sky=((0.7, 0.8, 0.9), (0.3, 0.5, 0.8)))
    own = MaterialLibrary(rng)
    person = MovingObject(id=0, kind=PERSON, size=(0.5, 0.5, 1.7), anchor=(3.2, 0.0),
                          direction=(0.0, 1.0), speed=1.2, t_cross=0.0, lo=-5.0, hi=5.0,
                          material=len(scene.materials) + own.add("clothing"))
    world = DynamicWorld([person], scene.ground, merge_tables(scene.materials, own.table()))
    rig = load_rig("surround6")
    cams = [PinholeCamera.from_fov(64, 64, np.deg2rad(90))] * len(rig)
    grid = VoxelGrid((-6.4, -6.4, -0.4), (6.4, 6.4, 2.8), (32, 32, 16))  # 0.4 x 0.4 x 0.2 m
    renderer = Renderer(scene, cams, rig.T_base_cams(), max_range=40.0)
    labeler = OccupancyLabeler(grid, cams, rig.T_base_cams(), max_range=40.0)
    now, later = world.at(0.0), world.at(3.0)  # 3.6 m apart
    occ_now = labeler.label(scene, np.eye(4), renderer.render(np.eye(4), dynamic=now)[1],
                            dynamic=now)
    occ_later = labeler.label(scene, np.eye(4), renderer.render(np.eye(4), dynamic=later)[1],
                              dynamic=later)
    occ_static = labeler.label(scene, np.eye(4), renderer.render(np.eye(4))[1])
    i, j = int((3.2 + 6.4) / 0.4), int(6.4 / 0.4)  # the column the person stands in
    column = occ_now[i - 1:i + 1, j - 1:j + 1, 3:10]  # z 0.2 .. 1.6 m
    assert (column == OCCUPIED).all()
    assert (occ_later[i - 1:i + 1, j - 1:j + 1, 3:10] == FREE).all()  # seen empty now
    assert (occ_static[i - 1:i + 1, j - 1:j + 1, 3:10] == FREE).all()
    # Behind the person (seen from the robot) space is hidden: not free while it stands.
    assert not (occ_now[i + 2:i + 4, j, 4:8] == FREE).any()
    assert (occ_later[i + 2:i + 4, j, 4:8] == FREE).all()
    # Between the robot and the person the labels are those of the static world.
    np.testing.assert_array_equal(occ_now[:i - 2], occ_static[:i - 2])


# ----------------------------------------------------------------------------- shards, cli
def test_dynamic_shards_are_deterministic_and_carry_object_states(tmp_path):
    kw = dict(frames=3, scene="outdoor", seed=9100, dynamic=True, **SMALL)
    a = synthesize(tmp_path / "a", **kw)
    b = synthesize(tmp_path / "b", **kw)
    names = sorted(p.name for p in a.iterdir())
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    meta = read_meta(a)
    assert meta["dynamic"] == {"kinds": list(DYNAMIC_KINDS), "frame": "odom"}
    arrays = read_npz(a / "frame_000001.npz")
    assert arrays["dynamic_id"].dtype == np.int32 and arrays["dynamic_center"].shape[1] == 3
    frame = load_frame(a, 1, meta)
    ref = [i.frame for i in generate_sequence(**kw)][1]
    for key in ("id", "kind", "center", "size", "yaw", "velocity"):
        np.testing.assert_array_equal(getattr(frame.dynamic, key), getattr(ref.dynamic, key))
    np.testing.assert_array_equal(frame.depth, ref.depth)  # the same frames as in memory
    np.testing.assert_array_equal(frame.occupancy, ref.occupancy)


def test_default_off_leaves_output_unchanged(tmp_path, static_seq):
    cfg = load_synth_config()
    assert cfg.dynamic.enabled is False
    plain = synthesize(tmp_path / "plain", frames=2, scene="outdoor", seed=9100, **SMALL)
    meta = read_meta(plain)
    assert "dynamic" not in meta
    arrays = read_npz(plain / "frame_000001.npz")
    assert sorted(arrays) == sorted(["images", "depth", "K", "T_base_cam", "T_odom_base",
                                     "occupancy", "stamp_ns", "index", "segment"])
    frame = load_frame(plain, 1, meta)
    assert frame.dynamic is None
    np.testing.assert_array_equal(frame.images, static_seq[1].images)
    np.testing.assert_array_equal(frame.occupancy, static_seq[1].occupancy)
    # The config switch turns them on like the argument does.
    on = replace(cfg, dynamic=replace(cfg.dynamic, enabled=True))
    item = next(generate_sequence(frames=1, scene="outdoor", seed=9100, config=on, **SMALL))
    assert item.frame.dynamic is not None and len(item.frame.dynamic) > 0


def test_cli_flag_and_config_errors(tmp_path):
    parser = build_parser()
    assert parser.parse_args(["synth", "--out", "x", "--dynamic"]).dynamic is True
    assert parser.parse_args(["synth", "--out", "x"]).dynamic is None  # config decides
    path = tmp_path / "synth.yaml"
    path.write_text("dynamic:\n  tries: 0\n")
    with pytest.raises(ConfigError, match="dynamic.tries"):
        load_synth_config(path)
    path.write_text("dynamic:\n  person_speed: [2.0, 1.0]\n")
    with pytest.raises(ConfigError, match="dynamic.person_speed"):
        load_synth_config(path)
    path.write_text("dynamic:\n  walkers: 3\n")
    with pytest.raises(ConfigError, match="walkers"):
        load_synth_config(path)
