"""Tests of depth_any_view.data.occupancy: label invariants on analytic and procedural scenes."""

import numpy as np
import open3d as o3d
import pytest

from depth_any_view.data.base_trajectory import FilletPath
from depth_any_view.data.occupancy import OccupancyLabeler, lattice_samples
from depth_any_view.data.render import Renderer
from depth_any_view.data.scenes import HeightField, MeshBuilder, assemble_scene, build_scene
from depth_any_view.data.synth_config import OccupancyConfig
from depth_any_view.data.textures import MaterialLibrary
from depth_any_view.geometry.camera import PinholeCamera
from depth_any_view.geometry.grid import FREE, OCCUPIED, UNKNOWN, VoxelGrid
from depth_any_view.geometry.rig import load_rig
from depth_any_view.geometry.transforms import invert_transform, transform_points


def _rig(size=64):
    rig = load_rig("surround6")
    return rig, [PinholeCamera.from_fov(size, size, np.deg2rad(90))] * len(rig)


def test_lattice_samples_cover_triangles():
    rng = np.random.default_rng(0)
    tris = rng.uniform(0, 6, (30, 3, 3))
    pts = lattice_samples(tris, 0.35)
    # Every sample lies on its triangle's plane inside the triangle's bounding box...
    assert pts.shape[1] == 3 and pts.shape[0] > 30 * 3
    # ... and every random point of every triangle has a sample within 0.5 units.
    w = rng.dirichlet(np.ones(3), size=(30, 50))  # (30, 50, 3) barycentric
    probe = np.einsum("fsk,fkj->fsj", w, tris).reshape(-1, 3)
    rc = o3d.core.nns.NearestNeighborSearch(o3d.core.Tensor(pts.astype(np.float32)))
    rc.knn_index()
    _, d2 = rc.knn_search(o3d.core.Tensor(probe.astype(np.float32)), 1)
    assert np.sqrt(d2.numpy().max()) <= 0.5 + 1e-4
    assert lattice_samples(np.zeros((0, 3, 3)), 0.5).shape == (0, 3)


def test_floor_plane_gives_one_occupied_layer_and_free_space_above():
    rng = np.random.default_rng(0)
    lib = MaterialLibrary(rng)
    mesh = MeshBuilder()
    mesh.add_quads(np.array([[[-50, -50, 0], [50, -50, 0], [50, 50, 0], [-50, 50, 0]]]),
                   lib.add("floor"))
    scene = assemble_scene("indoor", mesh, lib, rng, FilletPath(np.eye(3)[:, :2] * 5, 0.0),
                           HeightField.flat(), elevation_deg=(60, 60), ambient=0.5,
                           diffuse=0.5, sky=((0.7, 0.8, 0.9), (0.3, 0.5, 0.8)))
    rig, cams = _rig()
    grid = VoxelGrid((-4.0, -4.0, -0.97), (4.0, 4.0, 1.03), (16, 16, 16))  # floor in k = 7
    depth = Renderer(scene, cams, rig.T_base_cams(), max_range=40.0).render(np.eye(4))[1]
    labels = OccupancyLabeler(grid, cams, rig.T_base_cams(), max_range=40.0).label(
        scene, np.eye(4), depth)
    assert labels.shape == (16, 16, 16) and labels.dtype == np.uint8
    occupied = labels == OCCUPIED
    assert occupied[:, :, 7].all() and occupied.sum() == 16 * 16
    assert not (labels[:, :, :7] == FREE).any()  # below the floor: never seen
    # Above the floor, far enough from the robot to be in view, space is seen free.
    ring = np.hypot(*np.meshgrid(grid.centers()[:, 0, 0, 0], grid.centers()[0, :, 0, 1],
                                 indexing="ij")) > 3.0
    assert (labels[:, :, 8][ring] == FREE).mean() > 0.5  # 3-10 cm above: pixel-limited
    assert (labels[:, :, 9:13][ring] == FREE).mean() > 0.95  # 0.2-0.7 m above the floor
    assert set(np.unique(labels)) <= {FREE, OCCUPIED, UNKNOWN}


@pytest.fixture(scope="module", params=["indoor", "outdoor"])
def labelled(request):
    scene = build_scene(request.param, np.random.default_rng(21))
    rig, cams = _rig()
    T_bc = rig.T_base_cams()
    xy, heading, _ = scene.path.sample(np.array([12.0]))
    T = np.eye(4)
    c, s = np.cos(heading[0]), np.sin(heading[0])
    T[:2, :2] = [[c, -s], [s, c]]
    T[:2, 3] = xy[0]
    T[2, 3] = scene.ground.height(xy)[0]
    depth = Renderer(scene, cams, T_bc, max_range=40.0).render(T)[1]
    grid = VoxelGrid.cube(32)
    labeler = OccupancyLabeler(grid, cams, T_bc, max_range=40.0, config=OccupancyConfig())
    return scene, cams, T_bc, T, depth, grid, labeler.label(scene, T, depth)


def test_every_backprojected_surface_point_is_occupied(labelled):
    _, cams, T_bc, _, depth, grid, labels = labelled
    total = 0
    for v, cam in enumerate(cams):  # independent back-projection (float64, camera API)
        pts = transform_points(T_bc[v], cam.depth_to_points(depth[v])).reshape(-1, 3)
        idx, inside = grid.points_to_index(pts)
        assert np.all(labels[tuple(idx[inside].T)] == OCCUPIED)
        total += inside.sum()
        # float32 round-off in another back-projection still lands in OCCUPIED voxels
        pts32 = pts.astype(np.float32).astype(np.float64)
        idx, inside = grid.points_to_index(pts32)
        assert np.all(labels[tuple(idx[inside].T)] == OCCUPIED)
    assert total > 1000


def test_occupied_voxels_contain_surface_and_surface_voxels_are_occupied(labelled):
    scene, _, _, T, _, grid, labels = labelled
    centers = transform_points(T, grid.centers(np.float64).reshape(-1, 3))  # odom
    dist = scene.raycasting_scene().compute_distance(
        o3d.core.Tensor(centers.astype(np.float32))).numpy()
    occ = labels.reshape(-1) == OCCUPIED
    half_diag = 0.5 * np.linalg.norm(grid.voxel_size)
    assert np.all(dist[occ] <= half_diag + 2e-3)  # a voxel holding surface is that close
    near = dist <= 0.4 * grid.voxel_size.min()  # the surface surely crosses these voxels
    assert near.sum() > 100 and np.all(occ[near])


def test_free_voxels_lie_in_front_of_surfaces(labelled):
    _, cams, T_bc, _, depth, grid, labels = labelled
    free = np.flatnonzero(labels.reshape(-1) == FREE)
    assert free.size > 100
    assert not np.any(labels.reshape(-1)[free] == OCCUPIED)
    centers = grid.centers(np.float64).reshape(-1, 3)[free]
    seen_in_front = np.zeros(free.size, bool)
    for v, cam in enumerate(cams):
        p = transform_points(invert_transform(T_bc[v]), centers)
        uv, valid = cam.project(p)
        u = np.rint(uv[valid]).astype(int)
        d = depth[v][u[:, 1], u[:, 0]]
        in_front = np.isnan(d) | (p[valid, 2] < d)
        seen_in_front[np.flatnonzero(valid)[in_front]] = True
    assert seen_in_front.all()


def test_point_eps_marks_both_sides_of_a_face():
    rig, cams = _rig(8)
    grid = VoxelGrid((0.0, 0.0, 0.0), (4.0, 4.0, 4.0), (4, 4, 4))
    lab = OccupancyLabeler(grid, cams, rig.T_base_cams(), max_range=10.0,
                           config=OccupancyConfig(point_eps=0.01))
    ids = set(lab.point_voxels(np.array([[1.0005, 2.5, 2.5], [0.5, 0.5, 0.5]])).tolist())
    flat = lambda i, j, k: (i * 4 + j) * 4 + k  # noqa: E731
    assert ids == {flat(1, 2, 2), flat(0, 2, 2), flat(0, 0, 0)}
    lab0 = OccupancyLabeler(grid, cams, rig.T_base_cams(), max_range=10.0,
                            config=OccupancyConfig(point_eps=0.0))
    assert set(lab0.point_voxels(np.array([[1.0005, 2.5, 2.5]])).tolist()) == {flat(1, 2, 2)}


def test_surface_samples_lie_on_the_scene(labelled):
    scene, cams, T_bc, T, _, grid, _ = labelled
    lab = OccupancyLabeler(grid, cams, T_bc, max_range=40.0)
    pts = lab.surface_points(scene, T)  # base_link
    assert pts.shape[0] > 1000
    idx, inside = grid.points_to_index(pts)
    assert inside.mean() > 0.5  # only triangles that overlap the grid are sampled
    dist = scene.raycasting_scene().compute_distance(o3d.core.Tensor(
        transform_points(T, pts).astype(np.float32))).numpy()
    assert dist.max() < 5e-3  # Open3D float32 distances to thin slivers 80 m out: ~2 mm


@pytest.mark.slow
def test_128_cubed_grid_keeps_the_invariants():
    scene = build_scene("outdoor", np.random.default_rng(5))
    rig, cams = _rig(48)
    T = np.eye(4)
    xy, heading, _ = scene.path.sample(np.array([3.0]))
    c, s = np.cos(heading[0]), np.sin(heading[0])
    T[:2, :2] = [[c, -s], [s, c]]
    T[:2, 3] = xy[0]
    T[2, 3] = scene.ground.height(xy)[0]
    depth = Renderer(scene, cams, rig.T_base_cams(), max_range=40.0).render(T)[1]
    grid = VoxelGrid.cube(128)
    labels = OccupancyLabeler(grid, cams, rig.T_base_cams(), max_range=40.0).label(
        scene, T, depth)
    assert labels.shape == (128, 128, 128)
    for v, cam in enumerate(cams):
        pts = transform_points(rig.T_base_cams()[v], cam.depth_to_points(depth[v]))
        idx, inside = grid.points_to_index(pts.reshape(-1, 3))
        assert np.all(labels[tuple(idx[inside].T)] == OCCUPIED)
    assert (labels == FREE).sum() > 10000 and (labels == OCCUPIED).sum() > 10000
