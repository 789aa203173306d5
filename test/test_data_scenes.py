"""Tests of depth_any_view.data.scenes."""

import numpy as np
import open3d as o3d
import pytest

from depth_any_view.data.scenes import HeightField, MeshBuilder, build_scene, tessellate


def _volume(builder: MeshBuilder) -> float:
    """Signed volume of a closed mesh (divergence theorem)."""
    v, f, _ = builder.build()
    t = v[f].astype(np.float64)
    return float(np.einsum("ij,ij->i", t[:, 0], np.cross(t[:, 1], t[:, 2])).sum() / 6.0)


def test_primitives_are_closed_and_outward():
    b = MeshBuilder()
    b.add_boxes(np.array([[1.0, 2.0, 3.0], [5, 5, 5]]), np.array([[1.0, 2.0, 3.0], [1, 1, 1]]),
                np.array([0.3, 1.0]), 0)
    assert _volume(b) == pytest.approx(6.0 + 1.0)
    b = MeshBuilder()
    b.add_wedges(np.array([[0.0, 0.0, 0.0]]), [2.0, 1.0, 0.5], 0.7, 0)
    assert _volume(b) == pytest.approx(0.5)
    b = MeshBuilder()
    b.add_cylinders(np.array([[0.0, 0.0, 0.0]]), np.array([[1.0, 1.0, 0.0]]), 0.5, 2.0, 0,
                    segments=64)
    assert _volume(b) == pytest.approx(np.pi * 0.25 * 2.0, rel=2e-3)
    b = MeshBuilder()
    b.add_blobs(np.array([[0.0, 0.0, 0.0]]), np.array([[1.0, 1.0, 1.0]]), 0)
    assert 2.5 < _volume(b) < 4.19  # an icosahedron inside the unit sphere


def test_tessellate_bounds_edges_and_keeps_area():
    rng = np.random.default_rng(0)
    tris = rng.uniform(-10, 10, (20, 3, 3)).astype(np.float32)
    out = tessellate(tris, 1.5)
    edges = np.linalg.norm(out - np.roll(out, 1, axis=1), axis=2)
    assert edges.max() <= 1.5 + 1e-5

    def area(t):
        return 0.5 * np.linalg.norm(np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]), axis=1).sum()

    assert area(out) == pytest.approx(area(tris), rel=1e-4)
    band = tessellate(tris, 1.5, z_range=(-1.0, 1.0))
    assert band.shape[0] < out.shape[0]
    assert np.all((band[:, :, 2].max(axis=1) >= -1.0) & (band[:, :, 2].min(axis=1) <= 1.0))


@pytest.mark.parametrize("kind", ["indoor", "outdoor"])
def test_scene_is_deterministic_and_route_is_clear(kind):
    a = build_scene(kind, np.random.default_rng(3))
    b = build_scene(kind, np.random.default_rng(3))
    c = build_scene(kind, np.random.default_rng(4))
    np.testing.assert_array_equal(a.vertices, b.vertices)
    np.testing.assert_array_equal(a.face_material, b.face_material)
    np.testing.assert_array_equal(a.materials.color_a, b.materials.color_a)
    assert a.vertices.shape != c.vertices.shape or not np.array_equal(a.vertices, c.vertices)
    assert a.num_triangles > 1000 and len(a.materials) > 10
    assert np.all(np.isfinite(a.vertices)) and a.faces.max() < a.vertices.shape[0]
    np.testing.assert_allclose(np.linalg.norm(a.light_dir), 1.0)
    # Free space along the route from knee to camera height: nothing closer than 0.5 m.
    xy = a.path.points(0.5)
    z0 = a.ground.height(xy)
    pts = np.concatenate([np.column_stack([xy, z0 + h]) for h in (0.6, 1.2, 1.8)])
    dist = a.raycasting_scene().compute_distance(o3d.core.Tensor(pts.astype(np.float32)))
    assert dist.numpy().min() > 0.5
    # The cameras see surfaces around the route, not the void.
    kinds = set(a.materials.kinds)
    expected = {"wall", "floor", "ceiling", "furniture"} if kind == "indoor" else {
        "facade", "road", "sidewalk", "car", "pole", "ramp"}
    assert expected <= kinds


def test_height_field_matches_its_mesh():
    rng = np.random.default_rng(1)
    hf = HeightField((-3.0, 2.0), 0.5, rng.normal(0, 0.3, (12, 9)))
    b = MeshBuilder()
    b.add_heightfield(hf, np.zeros((11, 8), np.int32))
    v, f, _ = b.build()
    rc = o3d.t.geometry.RaycastingScene()
    rc.add_triangles(o3d.core.Tensor(v), o3d.core.Tensor(f.astype(np.uint32)))
    xy = np.column_stack([rng.uniform(-2.9, 2.4, 300), rng.uniform(2.1, 5.9, 300)])
    rays = np.column_stack([xy, np.full(300, 10.0), np.zeros((300, 2)), -np.ones(300)])
    hit = rc.cast_rays(o3d.core.Tensor(rays.astype(np.float32)))["t_hit"].numpy()
    np.testing.assert_allclose(10.0 - hit, hf.height(xy), atol=1e-4)
    assert HeightField.flat(0.3).height(np.array([[1e3, -2e3]]))[0] == pytest.approx(0.3)


def test_unknown_scene_kind_is_named():
    with pytest.raises(ValueError, match="underwater"):
        build_scene("underwater", np.random.default_rng(0))
