"""Rigid transforms as 4x4 homogeneous matrices and quaternions (x, y, z, w).

Names follow frames: `T_a_b` maps points in frame b into frame a, p_a = T_a_b @ p_b.
Quaternions use the ROS order (x, y, z, w) and are normalised on input.
"""

from __future__ import annotations

import numpy as np


def quat_to_rotmat(q_xyzw: np.ndarray | list[float]) -> np.ndarray:
    """Rotation matrix (3, 3) of a quaternion (x, y, z, w); raises ValueError if degenerate."""
    q = np.asarray(q_xyzw, dtype=np.float64).reshape(4)
    n = float(np.linalg.norm(q))
    if not np.isfinite(n) or n < 1e-9:
        raise ValueError(f"quaternion {q.tolist()} is zero or not finite; "
                         "give a unit quaternion (x, y, z, w)")
    x, y, z, w = q / n
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def rotmat_to_quat(R: np.ndarray) -> np.ndarray:
    """Quaternion (x, y, z, w) with w >= 0 of a rotation matrix (3, 3) (Shepperd's method)."""
    m = np.asarray(R, dtype=np.float64).reshape(3, 3)
    tr = np.trace(m)
    if tr > 0:
        s = 2.0 * np.sqrt(tr + 1.0)
        q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = [0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s]
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = [(m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = [(m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s, (m[1, 0] - m[0, 1]) / s]
    out = np.asarray(q, dtype=np.float64)
    out /= np.linalg.norm(out)
    return out if out[3] >= 0 else -out


def make_transform(R: np.ndarray, t: np.ndarray | list[float]) -> np.ndarray:
    """Homogeneous transform (4, 4) from a rotation (3, 3) and a translation (3,) in metres."""
    T = np.eye(4)
    T[:3, :3] = np.asarray(R, dtype=np.float64).reshape(3, 3)
    T[:3, 3] = np.asarray(t, dtype=np.float64).reshape(3)
    return T


def invert_transform(T: np.ndarray) -> np.ndarray:
    """Inverse of a rigid transform (..., 4, 4), using R^T instead of a general inverse."""
    T = np.asarray(T, dtype=np.float64)
    R = T[..., :3, :3]
    t = T[..., :3, 3:]
    Rt = np.swapaxes(R, -1, -2)
    out = np.zeros_like(T)
    out[..., :3, :3] = Rt
    out[..., :3, 3:] = -Rt @ t
    out[..., 3, 3] = 1.0
    return out


def transform_points(T: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Apply a transform (4, 4) to points (..., 3); keeps the input dtype for float arrays."""
    p = np.asarray(p)
    dtype = p.dtype if np.issubdtype(p.dtype, np.floating) else np.float64
    T = np.asarray(T, dtype=np.float64)
    out = p.astype(np.float64, copy=False) @ T[:3, :3].T + T[:3, 3]
    return out.astype(dtype, copy=False)


def is_rotation(R: np.ndarray, tol: float = 1e-6) -> bool:
    """True when R (3, 3) is orthonormal with determinant +1 within `tol`."""
    R = np.asarray(R, dtype=np.float64)
    return bool(np.allclose(R @ R.T, np.eye(3), atol=tol) and abs(np.linalg.det(R) - 1) < tol)
