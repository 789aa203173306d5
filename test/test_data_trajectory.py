"""Tests of depth_any_view.data.base_trajectory."""

import numpy as np
import pytest

from depth_any_view.data.base_trajectory import FilletPath, plan_trajectory, speed_profile

SQUARE = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0]])


def test_fillet_path_length_and_continuity():
    sharp = FilletPath(SQUARE, 0.0)
    assert sharp.length == pytest.approx(40.0)
    r = 2.0
    path = FilletPath(SQUARE, r)
    assert path.length == pytest.approx(40.0 - 8 * r + 2 * np.pi * r)
    s = np.arange(0.0, path.length, 0.01)
    xy, heading, curv = path.sample(s)
    step = np.linalg.norm(np.diff(xy, axis=0), axis=1)
    assert step.max() < 0.0101  # continuous, arc-length parameterised
    dh = np.angle(np.exp(1j * np.diff(heading)))
    assert np.abs(dh).max() < 0.01 / r + 1e-6  # heading is continuous (C1 path)
    assert set(np.round(np.unique(np.abs(curv)), 6)) == {0.0, 0.5}
    np.testing.assert_allclose(path.sample(np.array([path.length + 1.0]))[0],
                               path.sample(np.array([1.0]))[0])  # wraps around the loop
    # Fillets stay inside the corners: never farther out than the polyline.
    assert xy.min() >= -1e-9 and xy.max() <= 10.0 + 1e-9
    short = FilletPath(np.array([[0, 0], [1.0, 0], [1.0, 1.0], [0, 1.0]]), 5.0)
    assert short.length > 0  # the radius shrinks on short edges


def test_fillet_path_rejects_degenerate_routes():
    with pytest.raises(ValueError, match="route"):
        FilletPath(np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 0.0]]), 1.0)


def test_speed_profile_respects_limits_and_acceleration():
    s = np.arange(0.0, 50.0, 0.05)
    limit = np.full(s.shape, 3.0)
    limit[0] = 0.0
    limit[500] = 0.0  # a stop at 25 m
    v = speed_profile(s, limit, accel=0.8)
    assert np.all(v <= limit + 1e-9) and v[0] == 0 and v[500] == 0
    dv2 = np.abs(np.diff(v**2)) / np.diff(s)
    assert dv2.max() <= 2 * 0.8 + 1e-6
    assert v.max() == pytest.approx(3.0)


def _ground(xy):
    return 0.1 * xy[:, 0]  # a constant slope along x


def test_plan_trajectory_poses_stamps_and_stops():
    path = FilletPath(SQUARE * 3, 3.0)
    rng = np.random.default_rng(0)
    traj = plan_trajectory(path, _ground, frames=400, fps=10.0, start_ns=5_000_000_000,
                           speed=2.0, accel=0.8, lateral_accel=0.6, stop_spacing=15.0,
                           stop_duration=(1.0, 2.0), footprint=(1.0, 0.7), rng=rng)
    assert traj.stamps_ns.dtype == np.int64
    np.testing.assert_array_equal(np.diff(traj.stamps_ns), 100_000_000)
    assert traj.stamps_ns[0] == 5_000_000_000
    T = traj.T_odom_base
    R = T[:, :3, :3]
    np.testing.assert_allclose(R @ R.transpose(0, 2, 1), np.broadcast_to(np.eye(3), R.shape),
                               atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-9)
    np.testing.assert_allclose(T[:, 2, 3], 0.1 * T[:, 0, 3], atol=1e-9)  # on the ground
    # z follows the ground normal (0.1 slope along x): tilt of about atan(0.1).
    np.testing.assert_allclose(T[:, :3, 2] @ np.array([-0.1, 0, 1]) / np.sqrt(1.01), 1.0,
                               atol=1e-6)
    assert traj.speed.max() <= 2.0 + 1e-9 and traj.speed[0] == 0.0
    step = np.linalg.norm(np.diff(T[:, :2, 3], axis=0), axis=1)
    assert step.max() <= 2.0 / 10.0 + 1e-6  # never faster than the cruise speed
    standing = np.flatnonzero(step < 1e-9)
    assert standing.size >= 10  # stops of 1-2 s at 10 Hz
    moving = step > 0.01
    assert moving.mean() > 0.5
    # Turns happen: at least one full corner of the square within 40 s.
    yaw = np.arctan2(T[:, 1, 0], T[:, 0, 0])
    assert np.ptp(np.unwrap(yaw)) > 1.5


def test_plan_trajectory_is_deterministic():
    path = FilletPath(SQUARE, 1.0)
    kw = dict(frames=30, fps=10.0, start_ns=0, speed=1.0, accel=0.8, lateral_accel=0.6,
              stop_spacing=5.0, stop_duration=(1.0, 2.0), footprint=(1.0, 0.7))
    a = plan_trajectory(path, _ground, rng=np.random.default_rng(5), **kw)
    b = plan_trajectory(path, _ground, rng=np.random.default_rng(5), **kw)
    c = plan_trajectory(path, _ground, rng=np.random.default_rng(6), **kw)
    np.testing.assert_array_equal(a.T_odom_base, b.T_odom_base)
    assert not np.array_equal(a.T_odom_base, c.T_odom_base)
