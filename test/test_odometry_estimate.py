"""Tests of slam/odometry_estimate.py: velocity and covariances of cameras-only odometry."""

from __future__ import annotations

import math

import numpy as np
import pytest

from depth_any_view.slam.odometry_estimate import (
    POSITION_FLOOR_M,
    ROTATION_FLOOR_RAD,
    UNKNOWN_VARIANCE,
    OdometryTracker,
)


def step(x: float, yaw: float) -> np.ndarray:
    """(4, 4) motion of x metres forward, then a turn of yaw radians about z."""
    T = np.eye(4)
    c, s = math.cos(yaw), math.sin(yaw)
    T[:2, :2] = [[c, -s], [s, c]]
    T[0, 3] = x
    return T


def test_velocity_is_the_step_over_the_time_in_the_previous_base_link() -> None:
    tracker = OdometryTracker(drift_per_m=0.02, drift_rad_per_m=0.005)
    first = tracker.update(np.eye(4), 10.0)
    np.testing.assert_array_equal(first.linear, np.zeros(3))
    assert np.all(np.diag(first.twist_covariance) == UNKNOWN_VARIANCE)  # no velocity yet
    np.testing.assert_allclose(np.diag(first.pose_covariance),
                               [POSITION_FLOOR_M ** 2] * 3 + [ROTATION_FLOOR_RAD ** 2] * 3)
    T1 = step(0.3, 0.1)
    T2 = T1 @ step(0.3, 0.1)  # the same step in the turned base_link: the same velocity
    for T, stamp in ((T1, 10.1), (T2, 10.2)):
        est = tracker.update(T, stamp)
        np.testing.assert_allclose(est.linear, [3.0, 0.0, 0.0], atol=1e-9)  # 0.3 m / 0.1 s
        np.testing.assert_allclose(est.angular, [0.0, 0.0, 1.0], atol=1e-9)  # 0.1 rad / 0.1 s
        np.testing.assert_allclose(est.pose, T)
    # 0.6 m travelled: 1-sigma 0.02 x 0.6 + 0.01 m and 0.005 x 0.6 + 0.001 rad
    assert est.distance_m == pytest.approx(0.6)
    np.testing.assert_allclose(np.diag(est.pose_covariance),
                               [0.022 ** 2] * 3 + [0.004 ** 2] * 3)
    # at 3 m/s: 0.02 x 3 + 0.01 m/s and 0.005 x 3 + 0.001 rad/s
    np.testing.assert_allclose(np.diag(est.twist_covariance),
                               [0.07 ** 2] * 3 + [0.016 ** 2] * 3)
    assert est.pose_covariance.shape == est.twist_covariance.shape == (6, 6)
    assert np.count_nonzero(est.pose_covariance - np.diag(np.diag(est.pose_covariance))) == 0


def test_a_stamp_that_does_not_increase_restarts_and_bad_input_is_named() -> None:
    tracker = OdometryTracker(drift_per_m=0.5, drift_rad_per_m=0.01)
    tracker.update(np.eye(4), 1.0)
    tracker.update(step(1.0, 0.0), 2.0)
    assert tracker.distance_m == pytest.approx(1.0)
    again = tracker.update(np.eye(4), 1.5)  # a looped bag: the odometry restarted
    assert again.distance_m == 0.0 and again.twist_covariance[0, 0] == UNKNOWN_VARIANCE
    bad = np.eye(4)
    bad[0, 3] = np.nan
    with pytest.raises(ValueError, match="finite"):
        tracker.update(bad, 3.0)
    with pytest.raises(ValueError, match="drift_per_m"):
        OdometryTracker(drift_per_m=-0.1, drift_rad_per_m=0.01)
    with pytest.raises(ValueError, match="drift_rad_per_m"):
        OdometryTracker(drift_per_m=0.1, drift_rad_per_m=float("nan"))
