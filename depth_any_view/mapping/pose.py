"""Odometry poses for the map: T_odom_base from a matrix or (position, quaternion), checked.

A pose with NaN/inf, a quaternion whose norm is off 1 by more than the tolerance, or a
matrix that is not a rigid transform is refused with a ValueError saying which. Metres and
radians.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def rotation_angle(R: np.ndarray) -> float:
    """Angle in radians of a rotation matrix (3, 3)."""
    return float(np.arccos(np.clip((np.trace(R) - 1.0) / 2.0, -1.0, 1.0)))


def pose_to_transform(pose: Any, quaternion_tolerance: float = 1e-3) -> np.ndarray:
    """T_odom_base (4, 4) from a 4x4 matrix or a (position (3,), quaternion xyzw (4,)) pair.

    Raises ValueError saying what is wrong: NaN/inf values, a quaternion whose norm is
    off 1 by more than `quaternion_tolerance`, or a matrix that is not rigid.
    """
    if isinstance(pose, (tuple, list)) and len(pose) == 2:
        p = np.asarray(pose[0], dtype=np.float64).reshape(-1)
        q = np.asarray(pose[1], dtype=np.float64).reshape(-1)
        if p.shape != (3,) or q.shape != (4,):
            raise ValueError(f"pose (position, quaternion) needs 3 + 4 values, got "
                             f"{p.size} + {q.size}")
        if not (np.all(np.isfinite(p)) and np.all(np.isfinite(q))):
            raise ValueError(f"pose has NaN or inf: position {p.tolist()}, "
                             f"quaternion {q.tolist()}")
        with np.errstate(over="ignore"):  # |q| of 1e300 is inf: refused below
            n = float(np.linalg.norm(q))
        if not abs(n - 1.0) <= quaternion_tolerance:
            raise ValueError(f"pose quaternion {q.tolist()} is not normalised "
                             f"(norm {n:.6f}, tolerance {quaternion_tolerance})")
        x, y, z, w = q / n
        T = np.eye(4)
        T[:3, :3] = [[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]]
        T[:3, 3] = p
        return T
    T = np.asarray(pose, dtype=np.float64)
    if T.shape != (4, 4):
        raise ValueError(f"pose must be a (4, 4) T_odom_base or (position, quaternion), "
                         f"got an array of shape {T.shape}")
    if not np.all(np.isfinite(T)):
        raise ValueError("pose T_odom_base has NaN or inf")
    R = T[:3, :3]
    tol = max(quaternion_tolerance, 1e-9) * 4
    if (not np.allclose(R @ R.T, np.eye(3), atol=tol) or abs(np.linalg.det(R) - 1.0) > tol
            or not np.allclose(T[3], [0.0, 0.0, 0.0, 1.0])):
        raise ValueError("pose T_odom_base is not a rigid transform (rotation not "
                         "orthonormal or last row not [0, 0, 0, 1])")
    return T.copy()
