"""Tests of depth_any_view.geometry.camera against OpenCV and analytic cases."""

import cv2
import numpy as np
import pytest

from depth_any_view.geometry.camera import CalibrationError, PinholeCamera

PLUMB = dict(width=320, height=240, distortion_model="plumb_bob",
             d=[-0.28, 0.07, 0.0012, -0.0008, 0.01],
             k=[260.0, 0, 161.3, 0, 258.0, 118.9, 0, 0, 1],
             r=[1, 0, 0, 0, 1, 0, 0, 0, 1], p=[250.0, 0, 160, 0, 0, 250.0, 120, 0, 0, 0, 1, 0])
FISHEYE = dict(PLUMB, distortion_model="equidistant", d=[0.05, -0.01, 0.002, -0.0004])


def random_points(n: int, seed: int = 0) -> np.ndarray:
    """Camera-frame points in front of the camera inside a ~60 deg cone."""
    rng = np.random.default_rng(seed)
    z = rng.uniform(0.5, 30.0, n)
    xy = rng.uniform(-0.5, 0.5, (n, 2)) * z[:, None]
    return np.column_stack([xy, z])


@pytest.mark.parametrize("fields", [PLUMB, FISHEYE], ids=["plumb_bob", "equidistant"])
def test_project_matches_opencv(fields):
    cam = PinholeCamera.from_camera_info(**fields)
    p = random_points(500)
    uv, _ = cam.project(p)
    if cam.distortion_model == "equidistant":
        ref, _ = cv2.fisheye.projectPoints(p.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), cam.K,
                                           cam.D)
    else:
        ref, _ = cv2.projectPoints(p, np.zeros(3), np.zeros(3), cam.K, cam.D)
    np.testing.assert_allclose(uv, ref.reshape(-1, 2), atol=1e-6)


@pytest.mark.parametrize("fields", [PLUMB, FISHEYE], ids=["plumb_bob", "equidistant"])
def test_project_backproject_roundtrip(fields):
    cam = PinholeCamera.from_camera_info(**fields)
    p = random_points(300, seed=1)
    uv, valid = cam.project(p)
    assert valid.sum() > 100
    back = cam.backproject(uv[valid], p[valid, 2])
    np.testing.assert_allclose(back, p[valid], atol=1e-5 * p[valid, 2:].max())


def test_pixel_rays_and_depth_to_points_undistorted():
    cam = PinholeCamera.from_intrinsics(8, 6, 10.0, 12.0, 3.5, 2.5)
    rays = cam.pixel_rays()
    assert rays.shape == (6, 8, 3)
    np.testing.assert_allclose(rays[2, 5], [(5 - 3.5) / 10.0, (2 - 2.5) / 12.0, 1.0])
    depth = np.full((6, 8), 2.0)
    depth[0, 0] = np.nan
    pts = cam.depth_to_points(depth)
    assert np.isnan(pts[0, 0]).all()
    uv, valid = cam.project(pts[1:].reshape(-1, 3))
    assert valid.all()
    u, v = np.meshgrid(np.arange(8), np.arange(1, 6))
    np.testing.assert_allclose(uv, np.column_stack([u.ravel(), v.ravel()]), atol=1e-9)


def test_undistort_maps_match_opencv_undistort():
    cam = PinholeCamera.from_camera_info(**PLUMB)
    rng = np.random.default_rng(3)
    img = cv2.GaussianBlur(rng.integers(0, 255, (240, 320), dtype=np.uint8), (0, 0), 3)
    m1, m2 = cam.undistort_rectify_maps()
    mine = cv2.remap(img, m1, m2, cv2.INTER_LINEAR)
    ref = cv2.undistort(img, cam.K, cam.D, None, cam.P[:, :3])
    inner = (slice(20, -20), slice(20, -20))
    assert np.abs(mine[inner].astype(int) - ref[inner].astype(int)).max() <= 1
    # A rectified pixel maps to the raw pixel where the same ray lands.
    ray = np.array([[(100 - 160) / 250.0, (80 - 120) / 250.0, 1.0]])
    uv, _ = cam.project(ray)
    np.testing.assert_allclose([m1[80, 100], m2[80, 100]], uv[0], atol=1e-2)


def test_resized_keeps_rays_of_pixel_corners():
    cam = PinholeCamera.from_camera_info(**PLUMB)
    small = cam.resized(160, 120)
    # The top-left corner (-0.5, -0.5) of the image sees the same ray in both sizes.
    a = np.linalg.solve(cam.K, [-0.5, -0.5, 1.0])
    b = np.linalg.solve(small.K, [-0.5, -0.5, 1.0])
    np.testing.assert_allclose(a, b, atol=1e-12)
    assert small.fx == pytest.approx(130.0) and small.P[0, 0] == pytest.approx(125.0)
    fields = small.camera_info_fields()
    assert fields["width"] == 160 and len(fields["k"]) == 9 and len(fields["p"]) == 12


def test_project_validity():
    cam = PinholeCamera.from_fov(64, 48, np.radians(90))
    uv, valid = cam.project(np.array([[0, 0, 1.0], [0, 0, -1.0], [100.0, 0, 1.0]]))
    assert valid.tolist() == [True, False, False]
    np.testing.assert_allclose(uv[0], [31.5, 23.5])


@pytest.mark.parametrize("change, field", [
    (dict(k=[0, 0, 1, 0, 1, 1, 0, 0, 1]), "'k'"),
    (dict(k=[np.nan, 0, 1, 0, 1, 1, 0, 0, 1]), "'k'"),
    (dict(d=[0.1, 0.2, 0.3]), "'d'"),
    (dict(distortion_model="kannala_magic"), "'distortion_model'"),
    (dict(width=0), "'width'"),
    (dict(r=[1, 0, 0]), "'r'"),
])
def test_invalid_calibration_names_field(change, field):
    with pytest.raises(CalibrationError, match=field):
        PinholeCamera.from_camera_info(**dict(PLUMB, **change))


def test_empty_d_and_zero_p_are_accepted_as_uncalibrated_defaults():
    cam = PinholeCamera.from_camera_info(**dict(PLUMB, d=[], p=[0.0] * 12))
    assert cam.D.shape == (5,) and not cam.has_distortion
    np.testing.assert_allclose(cam.P[:, :3], cam.K)


@pytest.mark.parametrize("index, value, name", [(2, -3.0, "cx"), (2, 700.0, "cx"),
                                                (5, -0.5, "cy"), (5, 481.0, "cy")])
def test_camera_info_principal_point_outside_the_image_is_refused(index: int, value: float,
                                                                   name: str) -> None:
    """A negative or out-of-image cx / cy in a CameraInfo (issue 24) names field 'k' and
    the coordinate; the edges themselves are allowed."""
    k = [500.0, 0.0, 320.0, 0.0, 500.0, 240.0, 0.0, 0.0, 1.0]
    k[index] = value
    with pytest.raises(CalibrationError, match=rf"field 'k' has principal point {name} = "
                                               rf"{value:g} pixels, outside the 640x480"):
        PinholeCamera.from_camera_info(640, 480, "plumb_bob", [0.0] * 5, k, np.eye(3).ravel(),
                                       [0.0] * 12)
    k[index] = 0.0 if value < 0 else (640.0 if name == "cx" else 480.0)
    PinholeCamera.from_camera_info(640, 480, "plumb_bob", [0.0] * 5, k, np.eye(3).ravel(),
                                   [0.0] * 12)
