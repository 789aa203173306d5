"""A smooth base trajectory through a scene: filleted route, speed profile, stops, attitude.

Frames: positions are in odom (x, y on the ground plane, z up, metres). The base_link
pose `T_odom_base` (4, 4) has its origin on the ground under the robot, x forward along the
path heading (radians, counter-clockwise from odom x), z along the ground normal averaged
over the wheel footprint (so pitch and roll follow slopes and ramps). Stamps are int64
nanoseconds at a fixed rate.

The route is a closed polyline through free space; its corners are replaced by circular
fillets (`FilletPath`), the speed is capped by a cruise speed, a lateral acceleration in
turns and an acceleration limit, and the base comes to a standstill at random stops.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

DS = 0.05  # metres between samples of the speed profile


class FilletPath:
    """A closed polyline with circular fillets at its corners, evaluated by arc length."""

    def __init__(self, route: np.ndarray, radius: float) -> None:
        """Fillet every corner of the closed route (P, 2) with `radius` metres (or less).

        A fillet's tangent length is capped at 0.45 of the shorter adjacent edge, which
        shrinks its radius where edges are short.
        """
        route = np.asarray(route, dtype=np.float64).reshape(-1, 2)
        keep = np.linalg.norm(route - np.roll(route, 1, axis=0), axis=1) > 1e-9
        route = route[keep]
        if route.shape[0] < 3:
            raise ValueError(f"a closed route needs >= 3 distinct points, got {route.shape[0]}")
        if radius < 0:
            raise ValueError(f"fillet radius must be >= 0 metres, got {radius}")
        P = route.shape[0]
        edge = np.roll(route, -1, axis=0) - route  # (P, 2) edge i: route[i] -> route[i+1]
        length = np.linalg.norm(edge, axis=1)
        d = edge / length[:, None]
        d_in = np.roll(d, 1, axis=0)  # edge arriving at corner i
        turn = np.arctan2(d_in[:, 0] * d[:, 1] - d_in[:, 1] * d[:, 0],
                          np.sum(d_in * d, axis=1))  # (P,) signed turn at corner i, rad
        half = np.tan(np.abs(turn) / 2.0)
        tangent = np.minimum(radius * half, 0.45 * np.minimum(length, np.roll(length, 1)))
        curv = np.where(np.abs(turn) > 1e-9, np.sign(turn) * half / np.maximum(tangent, 1e-12),
                        0.0)  # signed curvature 1 / r of the fillet at corner i
        arc_len = np.where(np.abs(turn) > 1e-9, np.abs(turn) / np.maximum(np.abs(curv), 1e-12),
                           0.0)
        heading = np.arctan2(d[:, 1], d[:, 0])
        starts, headings, curvs, lengths = [], [], [], []
        for i in range(P):  # per corner, not per sample: P is small
            j = (i + 1) % P
            starts.append(route[i] + d[i] * tangent[i])  # straight part of edge i
            headings.append(heading[i])
            curvs.append(0.0)
            lengths.append(length[i] - tangent[i] - tangent[j])
            if arc_len[j] > 0:  # fillet at corner j
                starts.append(route[j] - d[i] * tangent[j])
                headings.append(heading[i])
                curvs.append(curv[j])
                lengths.append(arc_len[j])
        self.route = route
        self.radius = float(radius)
        self._start = np.array(starts)  # (Q, 2)
        self._heading = np.array(headings)  # (Q,)
        self._curv = np.array(curvs)  # (Q,)
        self._len = np.maximum(np.array(lengths), 0.0)  # (Q,)
        self._s0 = np.concatenate([[0.0], np.cumsum(self._len)[:-1]])  # (Q,)
        self.length = float(self._len.sum())

    def sample(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Positions (N, 2), headings (N,) rad and signed curvatures (N,) 1/m at arc lengths
        s (N,) metres (taken modulo the loop length)."""
        s = np.mod(np.asarray(s, dtype=np.float64).reshape(-1), self.length)
        q = np.clip(np.searchsorted(self._s0, s, side="right") - 1, 0, len(self._s0) - 1)
        u = np.minimum(s - self._s0[q], self._len[q])
        th0, k = self._heading[q], self._curv[q]
        th = th0 + k * u
        straight = np.abs(k) < 1e-12
        safe_k = np.where(straight, 1.0, k)
        dx = np.where(straight, u * np.cos(th0), (np.sin(th) - np.sin(th0)) / safe_k)
        dy = np.where(straight, u * np.sin(th0), (np.cos(th0) - np.cos(th)) / safe_k)
        xy = self._start[q] + np.stack([dx, dy], axis=1)
        return xy, np.arctan2(np.sin(th), np.cos(th)), k

    def points(self, step: float = 0.25) -> np.ndarray:
        """The whole loop sampled every `step` metres, (N, 2)."""
        xy, _, _ = self.sample(np.arange(0.0, self.length, step))
        return xy


@dataclass(frozen=True)
class Trajectory:
    """Poses and stamps of the base along a path, one per frame."""

    T_odom_base: np.ndarray  # (N, 4, 4) float64
    stamps_ns: np.ndarray  # (N,) int64
    speed: np.ndarray  # (N,) m/s
    arc: np.ndarray  # (N,) arc length along the path from the start, metres


def speed_profile(s: np.ndarray, v_limit: np.ndarray, accel: float) -> np.ndarray:
    """Fastest speeds (N,) m/s at arc lengths s (N,) under a pointwise limit and |dv/dt| <=
    accel (m/s^2): v(s)^2 <= v_lim(s')^2 + 2 a |s - s'| for every s' (vectorised both ways)."""
    two_a_s = 2.0 * accel * s
    vl2 = v_limit**2
    fwd = two_a_s + np.minimum.accumulate(vl2 - two_a_s)
    bwd = -two_a_s + np.minimum.accumulate((vl2 + two_a_s)[::-1])[::-1]
    return np.sqrt(np.maximum(np.minimum(fwd, bwd), 0.0))


def plan_trajectory(path: FilletPath, ground: Callable[[np.ndarray], np.ndarray], *,
                    frames: int, fps: float, start_ns: int, speed: float, accel: float,
                    lateral_accel: float, stop_spacing: float,
                    stop_duration: tuple[float, float], footprint: tuple[float, float],
                    rng: np.random.Generator) -> Trajectory:
    """Drive `frames` frames along the loop from a random start, in a random direction.

    Args:
        path: the filleted loop (odom, metres).
        ground: ground height z (N,) metres at odom positions (N, 2).
        frames: number of poses; fps: their rate (Hz); start_ns: stamp of the first.
        speed: cruise speed, m/s; accel: m/s^2; lateral_accel: m/s^2 (caps turn speed).
        stop_spacing: mean distance between stops, metres; stop_duration: seconds range.
        footprint: (wheelbase, track) metres over which pitch and roll follow the ground.
        rng: seeded generator (start, direction, stops).
    """
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    if rng.random() < 0.5:
        path = FilletPath(path.route[::-1], path.radius)
    s0 = rng.uniform(0.0, path.length)
    duration = (frames - 1) / fps
    total = speed * duration + 2.0 * DS  # enough length: the speed never exceeds `speed`
    s = np.arange(0.0, total + DS, DS)  # (K,) arc from the start
    _, _, curv = path.sample(s0 + s)
    v_lim = np.minimum(speed, np.sqrt(lateral_accel / np.maximum(np.abs(curv), 1e-9)))
    v_lim[0] = 0.0  # start from rest
    stops = []
    pos = rng.uniform(0.2, 1.0) * stop_spacing
    while pos < total:
        stops.append(int(round(pos / DS)))
        pos += rng.uniform(0.5, 1.5) * stop_spacing
    stops = np.array([k for k in stops if 0 < k < s.size], dtype=np.int64)
    v_lim[stops] = 0.0
    v = speed_profile(s, v_lim, accel)
    dt = 2.0 * DS / np.maximum(v[:-1] + v[1:], 1e-9)
    t = np.concatenate([[0.0], np.cumsum(dt)])  # (K,) time of arrival at each sample
    dwell = np.zeros_like(t)
    dwell[stops] = rng.uniform(*stop_duration, size=stops.size)
    leave = t + np.cumsum(dwell)  # time of leaving each sample
    arrive = leave - dwell
    t_knots = np.stack([arrive, leave], axis=1).reshape(-1)  # (2K,)
    s_knots = np.repeat(s, 2)
    v_knots = np.repeat(v, 2)
    tau = np.arange(frames) / fps
    s_f = np.interp(tau, t_knots, s_knots)
    v_f = np.interp(tau, t_knots, v_knots)  # 0 while dwelling: both knots of a stop have v=0
    xy, heading, _ = path.sample(s0 + s_f)
    T = base_poses(xy, heading, ground, footprint)
    stamps = np.int64(start_ns) + np.round(np.arange(frames) * (1e9 / fps)).astype(np.int64)
    return Trajectory(T_odom_base=T, stamps_ns=stamps, speed=v_f, arc=s_f)


def base_poses(xy: np.ndarray, heading: np.ndarray, ground: Callable[[np.ndarray], np.ndarray],
               footprint: tuple[float, float]) -> np.ndarray:
    """base_link poses (N, 4, 4) on the ground at xy (N, 2) with headings (N,) rad.

    z = ground height at xy; pitch and roll from the ground under the wheels (wheelbase,
    track in metres): x follows the heading up or down the slope, z is normal to it.
    """
    n = xy.shape[0]
    L, W = footprint
    f = np.stack([np.cos(heading), np.sin(heading)], axis=1)  # (N, 2) forward
    left = np.stack([-f[:, 1], f[:, 0]], axis=1)  # (N, 2)
    probes = np.concatenate([xy, xy + 0.5 * L * f, xy - 0.5 * L * f, xy + 0.5 * W * left,
                             xy - 0.5 * W * left])  # (5N, 2)
    z = ground(probes).reshape(5, n)
    slope_x = (z[1] - z[2]) / L
    slope_y = (z[3] - z[4]) / W
    x_axis = np.concatenate([f, slope_x[:, None]], axis=1)
    y_axis = np.concatenate([left, slope_y[:, None]], axis=1)
    x_axis /= np.linalg.norm(x_axis, axis=1, keepdims=True)
    z_axis = np.cross(x_axis, y_axis)
    z_axis /= np.linalg.norm(z_axis, axis=1, keepdims=True)
    y_axis = np.cross(z_axis, x_axis)
    T = np.tile(np.eye(4), (n, 1, 1))
    T[:, :3, 0], T[:, :3, 1], T[:, :3, 2] = x_axis, y_axis, z_axis
    T[:, :2, 3] = xy
    T[:, 2, 3] = z[0]
    return T
