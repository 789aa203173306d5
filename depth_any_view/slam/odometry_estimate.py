"""What a cameras-only odometry publishes besides its pose: velocity and covariances.

nav_msgs/Odometry carries the pose (odom -> base_link), the velocity in base_link and a
6x6 covariance for each (x, y, z, roll, pitch, yaw; m², rad², (m/s)², (rad/s)²). A filter
such as robot_localization weighs the message by them, so an all-zero covariance ("exact")
would make it trust an estimate that drifts. `OdometryTracker` derives both from the poses
of a KISS-ICP or Open3D RGB-D run (slam/odometry.py):

- velocity: the motion from the previous set to this one, divided by their time apart,
  in the previous base_link (linear m/s, angular rad/s as a rotation vector);
- pose covariance: dead reckoning drifts with the distance travelled, so the 1-sigma
  position error is `drift_per_m` x metres travelled since the odometry started (plus
  1 cm) and the 1-sigma rotation error `drift_rad_per_m` x metres (plus 1 mrad), per
  axis;
- velocity covariance: the same fractions of the speed (plus 1 cm/s and 1 mrad/s); before
  a second set there is no velocity, and its variance is UNKNOWN_VARIANCE.

The drift figures are per consumer in config/slam.yaml, from the measured RPE.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from depth_any_view.geometry.transforms import invert_transform
from depth_any_view.slam.odometry import _positive

POSITION_FLOOR_M = 0.01  # metres: the smallest 1-sigma position (and m/s velocity) error
ROTATION_FLOOR_RAD = 0.001  # radians (and rad/s): the smallest 1-sigma rotation error
UNKNOWN_VARIANCE = 1e6  # variance of a velocity not known yet (first set after a start)


@dataclass(frozen=True)
class OdometryEstimate:
    """One set's cameras-only odometry, as nav_msgs/Odometry carries it."""

    pose: np.ndarray  # (4, 4) T_odom_base, metres
    linear: np.ndarray  # (3,) m/s in base_link
    angular: np.ndarray  # (3,) rad/s in base_link (rotation vector per second)
    pose_covariance: np.ndarray  # (6, 6) x y z roll pitch yaw: m², rad²
    twist_covariance: np.ndarray  # (6, 6): (m/s)², (rad/s)²
    distance_m: float  # metres travelled since the odometry started


class OdometryTracker:
    """Velocity and covariances of one odometry run's poses (`reset` when it restarts)."""

    def __init__(self, drift_per_m: float, drift_rad_per_m: float) -> None:
        """Args: drift_per_m: 1-sigma position error per metre travelled (fraction);
        drift_rad_per_m: 1-sigma rotation error per metre travelled, radians."""
        _positive("OdometryTracker", "drift_per_m", drift_per_m, allow_zero=True)
        _positive("OdometryTracker", "drift_rad_per_m", drift_rad_per_m, allow_zero=True)
        self.drift_per_m = float(drift_per_m)
        self.drift_rad_per_m = float(drift_rad_per_m)
        self.reset()

    def reset(self) -> None:
        """Forget the previous pose: the odometry restarted (a new odom frame)."""
        self._pose: np.ndarray | None = None
        self._stamp_s = 0.0
        self.distance_m = 0.0

    def update(self, pose: np.ndarray, stamp_s: float) -> OdometryEstimate:
        """The estimate of the set at `stamp_s` (seconds) with pose T_odom_base (4, 4).

        A stamp that does not increase restarts the tracker (the odometry restarted).
        """
        T = np.asarray(pose, dtype=np.float64)
        if T.shape != (4, 4) or not np.isfinite(T).all():
            raise ValueError(f"OdometryTracker.update: pose must be a finite (4, 4) "
                             f"transform, got shape {T.shape}")
        linear = np.zeros(3)
        angular = np.zeros(3)
        known = self._pose is not None and stamp_s > self._stamp_s
        if self._pose is not None and not known:
            self.reset()
        if known:
            dt = stamp_s - self._stamp_s
            rel = invert_transform(self._pose) @ T
            step = float(np.linalg.norm(rel[:3, 3]))
            self.distance_m += step
            linear = rel[:3, 3] / dt
            angular = cv2.Rodrigues(np.ascontiguousarray(rel[:3, :3]))[0].ravel() / dt
        self._pose, self._stamp_s = T.copy(), float(stamp_s)
        d = self.distance_m
        pos = (self.drift_per_m * d + POSITION_FLOOR_M) ** 2
        rot = (self.drift_rad_per_m * d + ROTATION_FLOOR_RAD) ** 2
        if known:
            speed = float(np.linalg.norm(linear))
            vel = (self.drift_per_m * speed + POSITION_FLOOR_M) ** 2
            spin = (self.drift_rad_per_m * speed + ROTATION_FLOOR_RAD) ** 2
        else:
            vel = spin = UNKNOWN_VARIANCE
        return OdometryEstimate(
            pose=T.copy(), linear=linear, angular=angular,
            pose_covariance=np.diag([pos] * 3 + [rot] * 3),
            twist_covariance=np.diag([vel] * 3 + [spin] * 3), distance_m=d)


__all__ = ["OdometryEstimate", "OdometryTracker", "POSITION_FLOOR_M", "ROTATION_FLOOR_RAD",
           "UNKNOWN_VARIANCE"]
