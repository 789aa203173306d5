"""Tests of depth_any_view.geometry.rig: the shipped rigs and a point seen by two cameras."""

import numpy as np
import pytest

from depth_any_view.config import ConfigError
from depth_any_view.geometry.camera import PinholeCamera
from depth_any_view.geometry.rig import Rig, load_rig, optical_rotation
from depth_any_view.geometry.transforms import invert_transform, transform_points

NAMES = ["front", "front_left", "front_right", "back", "back_left", "back_right"]


def test_surround6_layout():
    rig = load_rig("surround6")
    assert rig.names == NAMES and rig.base_frame == "base_link"
    assert rig["front"].frame_id == "front_camera_optical"
    np.testing.assert_allclose(rig["front"].T_base_cam[:3, 3], [0.25, 0.0, 1.6])
    np.testing.assert_allclose(rig["front"].forward, [1, 0, 0], atol=1e-9)
    # optical y (down in the image) points down in base_link for every camera
    for cam in rig.cameras.values():
        np.testing.assert_allclose(cam.T_base_cam[:3, 1], [0, 0, -1], atol=1e-9)
        assert cam.position[2] == pytest.approx(1.6)
    yaw = {n: np.degrees(np.arctan2(c.forward[1], c.forward[0])) for n, c in rig.cameras.items()}
    assert yaw["front_left"] == pytest.approx(60) and yaw["back_right"] == pytest.approx(-120)


def test_front_array_all_look_forward_with_distinct_baselines():
    rig = load_rig("front_array")
    assert len(rig) == 6
    ys = sorted(c.position[1] for c in rig.cameras.values())
    assert len(set(np.round(ys, 3))) == 6
    for cam in rig.cameras.values():
        np.testing.assert_allclose(cam.forward, [1, 0, 0], atol=1e-9)


def test_point_seen_by_two_neighbours_lands_where_geometry_says():
    rig = load_rig("surround6")
    cam = PinholeCamera.from_fov(256, 256, np.radians(90))
    p_base = np.array([[4.0, 2.3, 1.2]])  # 30 deg to the left: between front and front_left
    hits = {}
    for name in ("front", "front_left"):
        T_cam_base = invert_transform(rig[name].T_base_cam)
        p_cam = transform_points(T_cam_base, p_base)
        uv, valid = cam.project(p_cam)
        assert valid[0], name
        hits[name] = (uv[0], p_cam[0, 2])
    # back-project each camera's pixel at its depth: both give the same base_link point
    for name, (uv, z) in hits.items():
        back = transform_points(rig[name].T_base_cam, cam.backproject(uv[None], np.array([z])))
        np.testing.assert_allclose(back[0], p_base[0], atol=1e-9)
    # seen to the left of the front camera's centre and to the right of front_left's
    assert hits["front"][0][0] < 127.5 < hits["front_left"][0][0]


def test_subset_roundtrip_and_errors(tmp_path):
    rig = load_rig("surround6")
    sub = rig.subset(["back", "front"])
    assert sub.names == ["back", "front"]
    again = Rig.from_dict(rig.to_dict())
    np.testing.assert_allclose(again.T_base_cams(), rig.T_base_cams(), atol=1e-8)
    with pytest.raises(ConfigError, match="not in the rig"):
        rig.subset(["left_wing"])
    bad = tmp_path / "rig.yaml"
    bad.write_text("cameras:\n  front:\n    frame_id: f\n    translation: [0, 0]\n"
                   "    rotation: [0, 0, 0, 1]\n")
    with pytest.raises(ConfigError, match="cameras.front.translation"):
        Rig.from_yaml(bad)
    bad.write_text("cameras:\n  front:\n    frame_id: f\n    translation: [0, 0, 1]\n"
                   "    rotation: [0, 0, 0, 2]\n")
    with pytest.raises(ConfigError, match="unit quaternion"):
        Rig.from_yaml(bad)
    bad.write_text("cameras: [front\n")
    with pytest.raises(ConfigError, match="malformed YAML"):
        Rig.from_yaml(bad)


def test_optical_rotation_pitch_looks_down():
    R = optical_rotation(0.0, np.radians(10))
    assert R[2, 2] < 0  # optical axis tilts below the horizon
