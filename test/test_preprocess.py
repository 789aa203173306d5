"""Tests of inference/preprocess.py: resize with exact intrinsics, undistortion, stacking."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from depth_any_view.geometry.camera import PinholeCamera
from depth_any_view.inference.preprocess import (
    Preprocessor,
    ViewInput,
    calibration_key,
    check_views,
    make_camera_plan,
)

CPU = torch.device("cpu")


def _view(name: str, rgb: np.ndarray, camera: PinholeCamera | None = None) -> ViewInput:
    """A view at the origin with a 60-degree camera matching the image size."""
    h, w = rgb.shape[:2]
    camera = camera or PinholeCamera.from_fov(w, h, np.radians(60.0))
    return ViewInput(name, rgb, camera, np.eye(4))


def _distorted(width: int = 320, height: int = 240, k1: float = 0.3) -> PinholeCamera:
    """A plumb_bob camera; k1 > 0 (pincushion) pushes the rectified corners off the image."""
    f = 0.8 * width
    K = [f, 0, width / 2 - 3.0, 0, f * 1.05, height / 2 + 2.0, 0, 0, 1]
    P = [f, 0, width / 2 - 3.0, 0, 0, f * 1.05, height / 2 + 2.0, 0, 0, 0, 1, 0]
    return PinholeCamera.from_camera_info(width, height, "plumb_bob",
                                          [k1, -0.05, 0.001, -0.002, 0.0], K,
                                          np.eye(3).ravel(), P)


def test_intrinsics_match_camera_resized_and_project_to_same_relative_place() -> None:
    cam = PinholeCamera.from_intrinsics(320, 240, 250.0, 260.0, 161.3, 118.7)
    plan = make_camera_plan(cam, (32, 48), CPU, input_maps=True)
    np.testing.assert_allclose(plan.net_camera.K, cam.resized(48, 32).K)
    rng = np.random.default_rng(0)
    p = np.c_[rng.uniform(-1, 1, (50, 2)), rng.uniform(2, 5, 50)]  # (50, 3) metres
    uv, ok = cam.project(p)
    uv_n, ok_n = plan.net_camera.project(p)
    assert ok.any()
    # pixel centres at integers: relative positions are (u + 0.5) / width
    rel = (uv + 0.5) / [320, 240]
    rel_n = (uv_n + 0.5) / [48, 32]
    np.testing.assert_allclose(rel, rel_n, atol=1e-9)
    assert plan.undistort_grid is None and bool(plan.net_valid.all())


def test_resize_follows_pixel_centre_convention() -> None:
    # A horizontal ramp: value(u) = u. An antialiased bilinear resize of a linear image keeps
    # it linear away from the borders, so output pixel u' holds (u' + 0.5) * 8 - 0.5.
    W, H, w, h = 256, 64, 32, 8
    ramp = np.broadcast_to(np.arange(W, dtype=np.uint8)[None, :, None], (H, W, 3)).copy()
    pre = Preprocessor((h, w), CPU)
    out = pre([_view("a", ramp)]).images[0, 0, 0].numpy() * 255.0  # (h, w)
    expected = (np.arange(w) + 0.5) * (W / w) - 0.5
    np.testing.assert_allclose(out[:, 2:-2], np.broadcast_to(expected[2:-2], (h, w - 4)),
                               atol=0.51)


def test_stack_shapes_order_and_layout_for_mixed_sizes() -> None:
    sizes = [(48, 64), (30, 40), (48, 64), (100, 90)]
    colours = [(10, 20, 30), (200, 100, 0), (255, 255, 255), (0, 128, 64)]
    views = [_view(f"cam{i}", np.full((*s, 3), c, dtype=np.uint8))
             for i, (s, c) in enumerate(zip(sizes, colours))]
    for channels_last in (True, False):
        inp = Preprocessor((16, 24), CPU, channels_last=channels_last)(views)
        assert inp.images.shape == (1, 4, 3, 16, 24) and inp.images.dtype == torch.float32
        flat = inp.images[0]  # (V, 3, h, w)
        assert flat.is_contiguous(memory_format=torch.channels_last) == channels_last
        means = flat.mean(dim=(2, 3)).numpy() * 255.0  # (V, 3)
        np.testing.assert_allclose(means, np.array(colours, dtype=np.float64), atol=1e-3)
        assert inp.K.shape == (1, 4, 3, 3) and inp.T_base_cam.shape == (1, 4, 4, 4)
        assert inp.valid.shape == (4, 16, 24) and inp.names == ["cam0", "cam1", "cam2", "cam3"]
        for i, v in enumerate(views):
            np.testing.assert_allclose(inp.K[0, i].numpy(), v.camera.resized(24, 16).K,
                                       rtol=1e-6)


def test_undistortion_moves_points_to_the_pinhole_projection() -> None:
    cam = _distorted()
    h, w = 96, 128
    pre = Preprocessor((h, w), CPU)
    plan = pre.plan(cam)
    assert plan.distorted and not plan.net_camera.has_distortion
    # A bright blob where a 3D point lands in the raw (distorted) image ...
    p = np.array([[0.9, -0.6, 2.0]])  # (1, 3) metres, towards a corner: strong distortion
    uv_raw, ok = cam.project(p)
    assert ok[0]
    u, v = np.meshgrid(np.arange(cam.width), np.arange(cam.height))
    blob = np.exp(-((u - uv_raw[0, 0]) ** 2 + (v - uv_raw[0, 1]) ** 2) / (2 * 5.0 ** 2))
    rgb = np.repeat((255 * blob).astype(np.uint8)[..., None], 3, axis=2)
    img = pre([_view("d", rgb, cam)]).images[0, 0, 0].numpy()  # (h, w)
    # ... appears where the undistorted network camera projects it.
    uv_net, ok_net = plan.net_camera.project(p)
    assert ok_net[0]
    wgt = img * (img > 0.2 * img.max())
    centroid = np.array([(wgt * np.arange(w)[None]).sum(), (wgt * np.arange(h)[:, None]).sum()])
    centroid /= wgt.sum()
    resized_only = (uv_raw[0] + 0.5) * [w / cam.width, h / cam.height] - 0.5  # no undistortion
    assert np.linalg.norm(resized_only - uv_net[0]) > 2.0  # the distortion matters here
    np.testing.assert_allclose(centroid, uv_net[0], atol=0.15)


def test_distorted_plan_marks_pixels_outside_the_raw_image_invalid() -> None:
    plan = make_camera_plan(_distorted(k1=0.4), (60, 80), CPU, input_maps=True)
    valid = plan.net_valid.numpy()
    assert valid[30, 40] and not valid[0, 0] and not valid[-1, -1]
    assert 0.3 < valid.mean() < 1.0
    assert plan.input_grid is not None and plan.input_grid.shape == (1, 240, 320, 2)
    assert plan.input_valid.shape == (240, 320) and bool(plan.input_valid[120, 160])
    # a pixel of the rectified image outside the raw image is black after preprocessing
    rgb = np.full((240, 320, 3), 200, dtype=np.uint8)
    inp = Preprocessor((60, 80), CPU)([_view("d", rgb, _distorted(k1=0.4))])
    assert float(inp.images[0, 0, :, 0, 0].max()) == 0.0
    assert float(inp.images[0, 0, 0, 30, 40]) == pytest.approx(200 / 255, abs=1e-3)
    assert torch.equal(inp.valid[0], plan.net_valid)


def test_plan_cache_reuses_and_evicts_by_calibration() -> None:
    pre = Preprocessor((8, 8), CPU, cache_size=2)
    a = PinholeCamera.from_fov(64, 48, 1.0)
    b = PinholeCamera.from_fov(64, 48, 1.1)
    c = PinholeCamera.from_fov(64, 48, 1.2)
    assert pre.plan(a) is pre.plan(PinholeCamera.from_fov(64, 48, 1.0))
    assert calibration_key(a) != calibration_key(b)
    plan_a = pre.plan(a)
    pre.plan(b)
    pre.plan(c)  # evicts a (least recently used)
    assert pre.plan(a) is not plan_a


def test_bad_views_are_named() -> None:
    rgb = np.zeros((20, 30, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="at least one"):
        check_views([])
    with pytest.raises(ValueError, match="unique"):
        check_views([_view("a", rgb), _view("a", rgb)])
    with pytest.raises(ValueError, match="view 'f'.*uint8"):
        check_views([_view("f", rgb.astype(np.float32))])
    with pytest.raises(ValueError, match="view 'g'.*30x20 but its CameraInfo says 40x20"):
        check_views([_view("g", rgb, PinholeCamera.from_fov(40, 20, 1.0))])
    with pytest.raises(ValueError, match="view 'h'.*T_base_cam"):
        check_views([ViewInput("h", rgb, PinholeCamera.from_fov(30, 20, 1.0), np.eye(3))])
