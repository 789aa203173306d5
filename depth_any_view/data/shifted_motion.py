"""How the base moves in a shifted-world sequence: standing still, turning on the spot or
driving a slow arc, standing on the ground plane (its pitch and roll follow the plane)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from depth_any_view.data.shifted_config import ShiftedConfig
from depth_any_view.data.shifted_mesh import GroundPlane, rot_z


@dataclass(frozen=True)
class Motion:
    """Base poses of a sequence."""

    kind: str  # 'still' | 'turn' | 'drive'
    T_odom_base: np.ndarray  # (F, 4, 4) float64
    stamps_ns: np.ndarray  # (F,) int64

    @property
    def xy(self) -> np.ndarray:
        """Base positions (F, 2) in odom, metres."""
        return self.T_odom_base[:, :2, 3]


def _tilt(normal: np.ndarray) -> np.ndarray:
    """The smallest rotation (3, 3) taking +z onto the unit `normal`."""
    axis = np.cross([0.0, 0.0, 1.0], normal)
    s, c = np.linalg.norm(axis), float(normal[2])
    if s < 1e-12:
        return np.eye(3)
    k = axis / s
    Kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + s * Kx + (1 - c) * Kx @ Kx


def plan_motion(rng: np.random.Generator, frames: int, fps: float, start_ns: int,
                ground: GroundPlane, config: ShiftedConfig) -> Motion:
    """Poses of a base standing still, turning on the spot or driving an arc (unicycle,
    speed m/s and yaw rate rad/s constant) from the origin, on the ground plane."""
    tc = config.trajectory
    u = rng.random()
    yaw0 = float(rng.uniform(0.0, 2 * np.pi))
    speed, rate = 0.0, 0.0
    if u < tc.still_probability:
        kind = "still"
    elif u < tc.still_probability + tc.turn_probability:
        kind = "turn"
        rate = math.radians(float(rng.uniform(10.0, max(abs(tc.yaw_rate_deg[0]),
                                                        abs(tc.yaw_rate_deg[1]), 10.0))))
        rate *= 1.0 if rng.random() < 0.5 else -1.0
    else:
        kind = "drive"
        speed = float(rng.uniform(*tc.speed))
        rate = math.radians(float(rng.uniform(*tc.yaw_rate_deg)))
    t = np.arange(frames) / fps  # (F,) seconds
    yaw = yaw0 + rate * t
    if abs(rate) > 1e-9:
        fx, fy = np.sin(rate * t) / rate, (1.0 - np.cos(rate * t)) / rate
    else:
        fx, fy = t, np.zeros_like(t)
    x = speed * (math.cos(yaw0) * fx - math.sin(yaw0) * fy)
    y = speed * (math.sin(yaw0) * fx + math.cos(yaw0) * fy)
    tilt = _tilt(ground.normal)
    T = np.tile(np.eye(4), (frames, 1, 1))
    for j in range(frames):
        T[j, :3, :3] = tilt @ rot_z(float(yaw[j]))
    T[:, 0, 3], T[:, 1, 3] = x, y
    T[:, 2, 3] = ground.height(np.stack([x, y], axis=1))
    stamps = start_ns + np.round(t * 1e9).astype(np.int64)
    return Motion(kind, T, stamps)
