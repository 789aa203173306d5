"""Tests of inference/prediction.py: depth policy and depth resized back to the inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from depth_any_view.geometry.camera import PinholeCamera
from depth_any_view.geometry.grid import VoxelGrid
from depth_any_view.inference.prediction import (
    HostCopy,
    Prediction,
    apply_depth_policy,
    resize_depth_to_input,
)
from depth_any_view.inference.preprocess import make_camera_plan

CPU = torch.device("cpu")


def _distorted(width: int = 160, height: int = 120) -> PinholeCamera:
    """A plumb_bob camera with noticeable barrel distortion and an off-centre principal point."""
    f = 0.7 * width
    K = [f, 0, width / 2 + 2.5, 0, f, height / 2 - 1.5, 0, 0, 1]
    return PinholeCamera.from_camera_info(width, height, "plumb_bob",
                                          [-0.25, 0.06, 0.001, 0.001, 0.0], K,
                                          np.eye(3).ravel(), np.zeros(12))


def test_depth_policy_nan_and_clamp() -> None:
    depth = torch.tensor([[[0.05, 1.0, 50.0, float("nan")]]])  # (1, 1, 4)
    valid = torch.tensor([[[True, False, True, True]]])
    nan = apply_depth_policy(depth, valid, min_depth=0.1, max_depth=40.0).numpy()
    assert np.isnan(nan).all()  # below range, invalid area, above range, NaN
    clamp = apply_depth_policy(depth, valid, min_depth=0.1, max_depth=40.0,
                               out_of_range="clamp").numpy()[0, 0]
    assert clamp[0] == pytest.approx(0.1) and np.isnan(clamp[1]) and clamp[2] == 40.0
    assert np.isnan(clamp[3])
    ok = apply_depth_policy(torch.full((2, 3, 3), 5.0, dtype=torch.bfloat16),
                            torch.ones(2, 3, 3, dtype=torch.bool), min_depth=0.1, max_depth=40.0)
    assert ok.dtype == torch.float32 and bool((ok == 5.0).all())
    with pytest.raises(ValueError, match="out_of_range"):
        apply_depth_policy(depth, valid, min_depth=0.1, max_depth=1.0, out_of_range="drop")


def test_nearest_resize_is_pixel_centre_exact() -> None:
    cam = PinholeCamera.from_fov(30, 20, 1.0)
    plan = make_camera_plan(cam, (8, 12), CPU, input_maps=True)
    depth = torch.arange(96, dtype=torch.float32).reshape(8, 12) + 1.0  # (h, w)
    out = resize_depth_to_input(depth, plan, mode="nearest").numpy()  # (20, 30)
    ui = np.floor((np.arange(30) + 0.5) * 12 / 30).astype(int)
    vi = np.floor((np.arange(20) + 0.5) * 8 / 20).astype(int)
    np.testing.assert_array_equal(out, depth.numpy()[vi][:, ui])


def test_bilinear_resize_is_exact_on_linear_depth_and_keeps_nan_local() -> None:
    cam = PinholeCamera.from_fov(64, 48, 1.0)
    plan = make_camera_plan(cam, (12, 16), CPU, input_maps=True)
    u = np.arange(16, dtype=np.float32)
    depth = torch.from_numpy(np.broadcast_to(2.0 + 0.25 * u, (12, 16)).copy())
    out = resize_depth_to_input(depth, plan, mode="bilinear").numpy()  # (48, 64)
    src_u = (np.arange(64) + 0.5) * 16 / 64 - 0.5
    expected = 2.0 + 0.25 * np.clip(src_u, 0, 15)
    np.testing.assert_allclose(out, np.broadcast_to(expected, (48, 64)), atol=1e-5)
    holed = torch.full((12, 16), 7.0)
    holed[5, 6] = float("nan")
    out = resize_depth_to_input(holed, plan, mode="bilinear").numpy()
    finite = np.isfinite(out)
    assert np.all(out[finite] == pytest.approx(7.0))  # NaN never mixes into values
    assert 0 < (~finite).sum() <= 4 * 4 * 2  # at most about one network pixel's footprint


def test_distorted_input_depth_is_registered_with_the_raw_image() -> None:
    cam = _distorted()
    h, w = 30, 40
    plan = make_camera_plan(cam, (h, w), CPU, input_maps=True)
    net = plan.net_camera
    # Network depth of a tilted plane n . p = d, seen by the distortion-free network camera.
    n, d = np.array([0.2, -0.1, 1.0]), 4.0
    rays = net.pixel_rays()  # (h, w, 3) with z = 1
    depth_net = torch.from_numpy((d / (rays @ n)).astype(np.float32))
    out = resize_depth_to_input(depth_net, plan, mode="bilinear").numpy()  # (120, 160)
    assert out.shape == (cam.height, cam.width)
    valid = np.isfinite(out)
    assert valid[60, 80] and 0.6 < valid.mean() < 1.0  # raw corners fall outside P's view
    # Back-projected with the *input* camera (distortion included) they lie on the plane.
    p = cam.depth_to_points(out)[valid]  # (N, 3)
    residual = (p @ n - d) / np.linalg.norm(n)
    # metres: a one-pixel misregistration would be ~7 mm everywhere; bilinear is exact to
    # second order inside, and renormalised (nearest-like) at the edge of the valid area.
    assert np.median(np.abs(residual)) < 2e-4 and np.abs(residual).max() < 0.03
    with pytest.raises(ValueError, match="input_maps=True"):
        resize_depth_to_input(depth_net, make_camera_plan(cam, (h, w), CPU, input_maps=False))


def test_host_copy_and_prediction_view_depth() -> None:
    copies = HostCopy(CPU)
    t = copies.add(torch.arange(6.0).reshape(2, 3).t())
    copies.wait()
    assert t.is_contiguous() and t.shape == (3, 2)
    cams = [PinholeCamera.from_fov(8, 6, 1.0), PinholeCamera.from_fov(10, 6, 1.0)]
    pred = Prediction(camera_names=["a", "b"], depth=np.zeros((2, 4, 4), np.float32),
                      cameras=[c.resized(4, 4) for c in cams],
                      occupancy=np.zeros((2, 2, 2), np.float32),
                      observed=np.zeros((2, 2, 2), bool), grid=VoxelGrid.cube(2),
                      T_base_cam=np.tile(np.eye(4), (2, 1, 1)))
    assert pred.view_depth("b")[0].shape == (4, 4) and pred.num_views == 2
    pred.depth_input = [np.zeros((6, 8), np.float32), np.zeros((6, 10), np.float32)]
    pred.cameras_input = cams
    depth, cam = pred.view_depth("b")
    assert depth.shape == (6, 10) and cam is cams[1]
    with pytest.raises(KeyError, match="'c' is not in this prediction"):
        pred.view_depth("c")
