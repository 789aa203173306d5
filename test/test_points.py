"""Tests of depth_any_view.mapping.points: analytic plane, stride, downsampling, rgb packing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from depth_any_view.geometry.camera import PinholeCamera
from depth_any_view.geometry.transforms import make_transform, quat_to_rotmat
from depth_any_view.mapping.points import (
    XYZRGB_DTYPE,
    depth_to_points,
    depth_to_points_torch,
    pack_rgb,
    to_xyzrgb,
    unpack_rgb,
    voxel_downsample,
    voxel_downsample_torch,
)


def plane_scene(V=2, H=24, W=32):
    """Depth of the plane n . p = d (in base_link) seen by V cameras, plus K and poses."""
    rng = np.random.default_rng(0)
    n = np.array([0.3, -0.2, 1.0])
    n /= np.linalg.norm(n)
    d = -0.5  # the plane passes below the cameras
    cams, Ks, Ts = [], [], []
    for v in range(V):
        cam = PinholeCamera.from_intrinsics(W, H, 20.0 + 3 * v, 22.0, 15.3, 11.7)
        # Optical frame looking down-forward: x right, y down, z forward and down.
        q = np.array([-0.65, 0.65 - 0.1 * v, -0.27, 0.27])
        T = make_transform(quat_to_rotmat(q), [0.2 * v, 0.1, 1.2])
        cams.append(cam)
        Ks.append(cam.K)
        Ts.append(T)
    Ts = np.stack(Ts)  # (V, 4, 4)
    depth = np.empty((V, H, W), dtype=np.float32)
    for v, cam in enumerate(cams):
        rays = cam.pixel_rays().reshape(-1, 3)  # (H*W, 3), z = 1
        R, t = Ts[v, :3, :3], Ts[v, :3, 3]
        # p = t + s * R ray on the plane: n.(t + s R ray) = d  ->  s = (d - n.t) / n.(R ray)
        s = (d - n @ t) / (rays @ R.T @ n)
        depth[v] = np.where(s > 0, s, np.nan).reshape(H, W)  # z of a z=1 ray is s
    images = rng.integers(0, 256, size=(V, H, W, 3), dtype=np.uint8)
    return depth, np.stack(Ks), Ts, images, n, d, cams


def test_plane_depth_backprojects_onto_the_plane():
    depth, K, T, images, n, d, cams = plane_scene()
    assert np.isfinite(depth).mean() > 0.5
    pts, cols = depth_to_points(depth, K, T, images)
    assert pts.dtype == np.float32 and cols.dtype == np.uint8
    assert pts.shape[0] == np.isfinite(depth).sum()
    np.testing.assert_allclose(pts @ n, d, atol=1e-4)
    np.testing.assert_array_equal(cols, images[np.isfinite(depth)])
    # The rays path (distortion-aware geometry) gives the same cloud.
    rays = np.stack([c.pixel_rays() for c in cams])
    pts_r, _ = depth_to_points(depth, K, T, images, rays=rays)
    np.testing.assert_allclose(pts_r, pts, atol=1e-5)
    # The torch variant agrees.
    tp, tc = depth_to_points_torch(torch.from_numpy(depth), torch.from_numpy(K),
                                   torch.from_numpy(T), torch.from_numpy(images))
    np.testing.assert_allclose(tp.numpy(), pts, atol=1e-4)
    np.testing.assert_array_equal(tc.numpy(), cols)


def test_stride_range_and_invalid_depth():
    depth = np.full((1, 6, 8), 2.0, dtype=np.float32)
    depth[0, 0, 0] = np.nan
    depth[0, 0, 2] = 0.0
    depth[0, 2, 0] = 50.0
    depth[0, 2, 2] = np.inf
    K = np.array([[[10.0, 0, 4], [0, 10.0, 3], [0, 0, 1]]])
    T = np.eye(4)[None]
    pts, cols = depth_to_points(depth, K, T, stride=2, max_depth=10.0)
    # Strided grid 3x4 = 12 pixels, 4 of them invalid.
    assert pts.shape == (8, 3) and (cols == 255).all()
    np.testing.assert_allclose(pts[0], [(4 - 4) / 10 * 2, (0 - 3) / 10 * 2, 2.0])  # (u=4, v=0)
    tp, _ = depth_to_points_torch(torch.from_numpy(depth), torch.from_numpy(K),
                                  torch.from_numpy(T), stride=2, max_depth=10.0)
    np.testing.assert_allclose(tp.numpy(), pts, atol=1e-6)
    pts_all, _ = depth_to_points(depth, K, T, min_depth=2.5)
    assert pts_all.shape == (1, 3)  # only the 50 m pixel is beyond 2.5 m


def test_bad_shapes_name_the_argument():
    depth = np.ones((2, 4, 5), dtype=np.float32)
    K = np.tile(np.eye(3), (2, 1, 1))
    T = np.tile(np.eye(4), (2, 1, 1))
    with pytest.raises(ValueError, match="K must be"):
        depth_to_points(depth, K[:1], T)
    with pytest.raises(ValueError, match="T_base_cam"):
        depth_to_points(depth, K, T[:, :3])
    with pytest.raises(ValueError, match="images must be"):
        depth_to_points(depth, K, T, np.zeros((2, 5, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="depth must be"):
        depth_to_points(depth[0], K, T)
    with pytest.raises(ValueError, match="stride"):
        depth_to_points(depth, K, T, stride=0)


def test_voxel_downsample_centroids_and_colours():
    pts = np.array([[0.01, 0.01, 0.01], [0.09, 0.05, 0.03], [0.15, 0.0, 0.0],
                    [-0.05, 0.0, 0.0]], dtype=np.float32)
    cols = np.array([[0, 0, 0], [100, 50, 255], [7, 7, 7], [1, 2, 3]], dtype=np.uint8)
    out_p, out_c = voxel_downsample(pts, cols, 0.1)
    assert out_p.shape == (3, 3)
    # Sorted by voxel: (-1,0,0), (0,0,0), (1,0,0).
    np.testing.assert_allclose(out_p[1], [0.05, 0.03, 0.02], atol=1e-6)
    np.testing.assert_array_equal(out_c[1], [50, 25, 128])
    np.testing.assert_array_equal(out_c[0], [1, 2, 3])
    tp, tc = voxel_downsample_torch(torch.from_numpy(pts), torch.from_numpy(cols), 0.1)
    np.testing.assert_allclose(tp.numpy(), out_p, atol=1e-6)
    np.testing.assert_array_equal(tc.numpy(), out_c)
    # A dense random cloud: at most one point per voxel, each inside its voxel's bounds.
    rng = np.random.default_rng(1)
    big = rng.uniform(-2, 2, size=(20000, 3)).astype(np.float32)
    bp, bc = voxel_downsample(big, np.zeros_like(big, dtype=np.uint8), 0.5)
    keys = np.floor(bp / 0.5).astype(int)
    assert len({tuple(k) for k in keys}) == bp.shape[0] == 8 * 8 * 8
    with pytest.raises(ValueError, match="voxel_size"):
        voxel_downsample(pts, cols, 0.0)
    empty_p, empty_c = voxel_downsample(np.zeros((0, 3)), np.zeros((0, 3), np.uint8), 0.1)
    assert empty_p.shape == (0, 3) and empty_c.shape == (0, 3)


def test_pack_rgb_matches_pcl_layout_and_roundtrips():
    rgb = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [1, 2, 3]],
                   dtype=np.uint8)
    packed = pack_rgb(rgb)
    assert packed.dtype == np.float32
    assert packed.view(np.uint32).tolist() == [0xFF0000, 0x00FF00, 0x0000FF, 0xFFFFFF,
                                               0x010203]
    allc = np.stack(np.meshgrid(np.arange(256), np.arange(0, 256, 5), np.arange(0, 256, 7),
                                indexing="ij"), -1).reshape(-1, 3).astype(np.uint8)
    p = pack_rgb(allc)
    assert np.isfinite(p).all()  # alpha byte 0: never NaN or inf
    np.testing.assert_array_equal(unpack_rgb(p), allc)
    with pytest.raises(ValueError, match="uint8"):
        pack_rgb(allc.astype(np.int32))


def test_structured_cloud_layout():
    pts = np.array([[1.0, 2.0, 3.0], [-1.5, 0.0, 0.25]], dtype=np.float32)
    cols = np.array([[10, 20, 30], [255, 128, 0]], dtype=np.uint8)
    cloud = to_xyzrgb(pts, cols)
    assert cloud.dtype == XYZRGB_DTYPE and cloud.dtype.itemsize == 16
    assert [XYZRGB_DTYPE.fields[f][1] for f in ("x", "y", "z", "rgb")] == [0, 4, 8, 12]
    raw = np.frombuffer(cloud.tobytes(), dtype="<f4").reshape(2, 4)
    np.testing.assert_array_equal(raw[:, :3], pts)
    np.testing.assert_array_equal(unpack_rgb(raw[:, 3].copy()), cols)
