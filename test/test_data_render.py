"""Tests of depth_any_view.data.render: z-depth, ranges, texture and cross-view agreement."""

import numpy as np
import pytest

from depth_any_view.data.base_trajectory import FilletPath
from depth_any_view.data.render import Renderer
from depth_any_view.data.scenes import (
    HeightField,
    MeshBuilder,
    assemble_scene,
    build_scene,
)
from depth_any_view.data.textures import MaterialLibrary
from depth_any_view.geometry.camera import PinholeCamera
from depth_any_view.geometry.rig import load_rig
from depth_any_view.geometry.transforms import invert_transform, transform_points

SQUARE = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])


def _scene(mesh_fn, sky=((0.7, 0.8, 0.9), (0.2, 0.4, 0.8))):
    rng = np.random.default_rng(0)
    lib = MaterialLibrary(rng)
    mesh = MeshBuilder()
    mesh_fn(mesh, lib.add("wall"))
    return assemble_scene("indoor", mesh, lib, rng, FilletPath(SQUARE, 0.0),
                          HeightField.flat(), elevation_deg=(60.0, 60.0), ambient=0.5,
                          diffuse=0.5, sky=sky)


def _rig(size=64, hfov=90.0):
    rig = load_rig("surround6")
    cams = [PinholeCamera.from_fov(size, size, np.deg2rad(hfov))] * len(rig)
    return rig, cams


def test_depth_is_along_the_optical_axis_not_the_ray():
    # A tall box room: the front camera (at x = 0.25 m, looking along +x) sees only the
    # wall at x = 5 m, so every pixel's depth is 4.75 m although ray lengths differ.
    scene = _scene(lambda m, mat: m.add_boxes(np.zeros((1, 3)), [[10.0, 10.0, 20.0]], 0.0,
                                              mat))
    rig, cams = _rig()
    r = Renderer(scene, cams, rig.T_base_cams(), max_range=40.0)
    images, depth = r.render(np.eye(4))
    assert images.shape == (6, 64, 64, 3) and images.dtype == np.uint8
    assert depth.shape == (6, 64, 64) and depth.dtype == np.float32
    np.testing.assert_allclose(depth[0], 4.75, atol=1e-5)
    np.testing.assert_allclose(depth[3], 4.75, atol=1e-5)  # back camera, wall at x = -5
    # Beyond max range: NaN depth, but the wall is still drawn (no sky colour).
    far = Renderer(scene, cams, rig.T_base_cams(), max_range=4.0)
    images_far, depth_far = far.render(np.eye(4))
    assert np.isnan(depth_far[0]).all()
    np.testing.assert_array_equal(images_far, images)


def test_misses_are_sky_with_nan_depth():
    scene = _scene(lambda m, mat: m.add_quads(np.array([[[-50, -50, 0], [50, -50, 0],
                                                         [50, 50, 0], [-50, 50, 0]]]), mat))
    rig, cams = _rig()
    images, depth = Renderer(scene, cams, rig.T_base_cams(), max_range=40.0).render(np.eye(4))
    sky = np.isnan(depth[0, :20])  # upper rows look above the horizon
    assert sky.all()
    top = images[0, :20].reshape(-1, 3).astype(int)
    assert np.all(top[:, 2] > top[:, 0])  # bluish sky gradient
    assert np.isfinite(depth[0, 40:]).all()  # lower rows see the floor


@pytest.fixture(scope="module", params=["indoor", "outdoor"])
def rendered(request):
    scene = build_scene(request.param, np.random.default_rng(11))
    rig, cams = _rig()
    r = Renderer(scene, cams, rig.T_base_cams(), max_range=40.0)
    xy, heading, _ = scene.path.sample(np.array([7.0]))
    T = np.eye(4)
    c, s = np.cos(heading[0]), np.sin(heading[0])
    T[:2, :2] = [[c, -s], [s, c]]
    T[:2, 3] = xy[0]
    T[2, 3] = scene.ground.height(xy)[0]
    images, depth = r.render(T)
    return scene, r, cams, rig, T, images, depth


def test_images_are_textured(rendered):
    """Surfaces carry texture: brightness varies between neighbouring pixels that see the
    same surface (a flat-shaded world would be constant there)."""
    _, _, _, _, _, images, depth = rendered
    gray = images.astype(np.float64).mean(axis=-1)  # (V, H, W)
    for v in range(gray.shape[0]):
        d = depth[v]
        same = np.abs(d[:, 1:] - d[:, :-1]) < 0.02 * d[:, 1:]  # NaN compares False
        gx = np.abs(np.diff(gray[v], axis=1))[same]
        assert gray[v].std() > 8.0
        assert same.sum() > 1000
        assert gx.mean() > 1.0 and np.mean(gx > 2.0) > 0.1


def test_render_is_deterministic(rendered):
    _, r, _, _, T, images, depth = rendered
    images2, depth2 = r.render(T)
    np.testing.assert_array_equal(images2, images)
    np.testing.assert_array_equal(depth2, depth)


def test_neighbouring_views_agree_on_depth(rendered):
    """Depth of camera A, back-projected and projected into camera B, equals B's depth where
    both see the same surface (surround6 neighbours overlap by 30 degrees at 90 deg hfov).

    B's depth is interpolated at the sub-pixel projection through inverse depth, which is
    exact on a plane, where its four pixels lie on one plane."""
    _, _, cams, rig, _, _, depth = rendered
    T_bc = rig.T_base_cams()
    for a, b in ((0, 1), (0, 2), (3, 4), (3, 5)):
        pts = cams[a].depth_to_points(depth[a]).reshape(-1, 3)
        pts = pts[np.isfinite(pts).all(axis=1)]
        p_b = transform_points(invert_transform(T_bc[b]) @ T_bc[a], pts)
        uv, valid = cams[b].project(p_b)
        uv, z = uv[valid], p_b[valid, 2]
        x0 = np.clip(np.floor(uv[:, 0]).astype(int), 0, cams[b].width - 2)
        y0 = np.clip(np.floor(uv[:, 1]).astype(int), 0, cams[b].height - 2)
        fx, fy = uv[:, 0] - x0, uv[:, 1] - y0
        inv = 1.0 / depth[b].astype(np.float64)  # NaN where B sees nothing in range
        i00, i10 = inv[y0, x0], inv[y0, x0 + 1]
        i01, i11 = inv[y0 + 1, x0], inv[y0 + 1, x0 + 1]
        planar = np.abs(i00 + i11 - i10 - i01) < 1e-4 * np.abs(i00)  # NaN compares False
        interp = (i00 * (1 - fx) * (1 - fy) + i10 * fx * (1 - fy) + i01 * (1 - fx) * fy
                  + i11 * fx * fy)
        rel = z[planar] * interp[planar] - 1.0  # z_A->B / D_B - 1
        seen = rel < 0.01  # farther than B's surface = occluded in B
        assert seen.sum() > 300, (a, b)
        assert np.median(np.abs(rel[seen])) < 1e-3
        # Exact up to float32 except where a thin object falls between B's pixel centres.
        assert np.mean(np.abs(rel[seen]) < 5e-3) > 0.95
