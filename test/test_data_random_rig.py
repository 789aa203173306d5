"""Tests of depth_any_view.data.random_rig: ranges, stereo pairs, determinism, rig YAML."""

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from depth_any_view.data.random_rig import optical_rotation, sample_rig
from depth_any_view.data.shifted_config import RigSamplerConfig
from depth_any_view.geometry.rig import Rig, load_rig
from depth_any_view.geometry.transforms import invert_transform

CFG = RigSamplerConfig()


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_rigs_stay_in_their_ranges(seed):
    rig = sample_rig(np.random.default_rng(seed), CFG)
    V = rig.num_views
    assert 1 <= V <= 8
    assert len(set(rig.names)) == V and rig.frame_ids == [f"{n}_optical" for n in rig.names]
    assert rig.T_base_cam.shape == (V, 4, 4) and rig.K.shape == (V, 3, 3)
    w, h = rig.size
    assert 160 <= w <= 640 and 120 <= h <= 480
    assert all((c.width, c.height) == (w, h) for c in rig.cameras)
    R = rig.T_base_cam[:, :3, :3]
    np.testing.assert_allclose(R @ R.transpose(0, 2, 1), np.broadcast_to(np.eye(3), R.shape),
                               atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-9)
    heights = rig.T_base_cam[:, 2, 3]
    assert np.all((heights >= 0.3 - 1e-9) & (heights <= 2.5 + 1e-9))
    pitch = np.degrees(np.arcsin(R[:, 2, 2]))  # optical z's elevation
    assert np.all((pitch >= -20 - 1e-6) & (pitch <= 10 + 1e-6))
    np.testing.assert_allclose(R[:, 2, 0], 0.0, atol=1e-9)  # no roll: optical x horizontal
    hfov = np.degrees(rig.hfov)
    assert np.all((hfov >= 60 - 1e-6) & (hfov <= 120 + 1e-6))
    for c in rig.cameras:  # centred principal point, square pixels
        assert c.fx == c.fy and c.cx == (w - 1) / 2 and c.cy == (h - 1) / 2


def _stereo_rigs(n=400):
    rigs = [sample_rig(np.random.default_rng(s), CFG) for s in range(n)]
    return [r for r in rigs if r.stereo is not None], [r for r in rigs if r.stereo is None]


def test_stereo_pairs_are_parallel_with_their_baseline():
    stereo, plain = _stereo_rigs()
    assert len(stereo) > 50 and len(plain) > 50  # both kinds occur
    for rig in stereo:
        a, b = rig.stereo
        assert 0.05 <= rig.baseline <= 0.5
        np.testing.assert_allclose(rig.T_base_cam[a, :3, :3], rig.T_base_cam[b, :3, :3])
        np.testing.assert_array_equal(rig.K[a], rig.K[b])
        # The right camera's centre, seen from the left one: baseline along +x, nothing else.
        T_a_b = invert_transform(rig.T_base_cam[a]) @ rig.T_base_cam[b]
        np.testing.assert_allclose(T_a_b[:3, 3], [rig.baseline, 0.0, 0.0], atol=1e-9)
        yaw = math.degrees(math.atan2(rig.T_base_cam[a, 1, 2], rig.T_base_cam[a, 0, 2]))
        assert -30 - 1e-6 <= yaw <= 30 + 1e-6  # a forward pair


def test_yaw_spacing_is_uneven():
    uneven = 0
    for s in range(60):
        rig = sample_rig(np.random.default_rng(s), CFG)
        if rig.num_views < 3:
            continue
        fwd = rig.T_base_cam[:, :3, 2]
        yaws = np.sort(np.arctan2(fwd[:, 1], fwd[:, 0]))
        gaps = np.diff(np.concatenate([yaws, yaws[:1] + 2 * np.pi]))
        uneven += np.ptp(gaps) > 0.05
    assert uneven >= 10


def test_same_seed_same_rig_other_seed_other_rig():
    a, b = (sample_rig(np.random.default_rng(7), CFG) for _ in range(2))
    assert a.names == b.names and a.size == b.size
    np.testing.assert_array_equal(a.T_base_cam, b.T_base_cam)
    np.testing.assert_array_equal(a.K, b.K)
    c = sample_rig(np.random.default_rng(8), CFG)
    assert c.T_base_cam.shape != a.T_base_cam.shape or not np.allclose(c.T_base_cam,
                                                                       a.T_base_cam)


def test_optical_rotation_follows_rep103():
    front = load_rig("surround6")["front"].T_base_cam[:3, :3]  # yaw 0, level
    np.testing.assert_allclose(optical_rotation(0.0, 0.0), front, atol=1e-12)
    R = optical_rotation(math.radians(90), math.radians(10))  # looking left, a bit up
    assert R[1, 2] > 0.9 and R[2, 2] > 0.1  # optical z towards +y and up
    np.testing.assert_allclose(R[:, 0], [1.0, 0.0, 0.0], atol=1e-12)  # right = -y_left = +x


def test_rig_yaml_round_trips(tmp_path):
    rig = sample_rig(np.random.default_rng(3), CFG)
    path = rig.write_yaml(tmp_path / "rig.yaml")
    back = Rig.from_yaml(path)
    assert back.base_frame == "base_link" and back.names == rig.names
    assert [back[n].frame_id for n in back.names] == rig.frame_ids
    np.testing.assert_allclose(back.T_base_cams(), rig.T_base_cam, atol=1e-6)
    assert load_rig(str(path)).names == rig.names  # the node's rig_file path works
