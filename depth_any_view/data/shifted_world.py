"""The shifted world: a second procedural world, unlike scenes.py, with a random rig per
sequence, for measuring (and training) generalisation beyond the standard world.

Frames: scenes are built in odom (x, y horizontal, z up, metres). The base starts at the
odom origin with a random heading and stands on the ground (a flat floor indoors, a tilted
plane outdoors: its pitch and roll follow the plane). Cameras come from random_rig.py;
frame conventions of the output are those of docs/ARCHITECTURE.md ("Synthetic frame"):
depth along the optical axis (NaN beyond `max_range`), uint8 RGB, `T_odom_base` of the
base, occupancy labels by data/occupancy.py's OccupancyLabeler in the base_link grid of
config/shifted_world.yaml (the same bounds as config/synth.yaml).

- indoor: one closed room of random size (walls, floor, ceiling as thin slabs), photographs
  hung on the walls, a point lamp below the ceiling.
- outdoor: an open yard on a tilted ground plane out to 300 m, distant halls, towers and
  hills 20-150 m away, a sky with sun disc and clouds.
Both hold free-standing objects of many sizes (spheres, upright and lying cylinders,
boxes, rocks made from subdivided icosahedra, poles with signs, trees, tables, chairs,
shelves with thin legs and boards, wedge ramps) from 0.5 m to ~12 m beyond the rig's
reach, and small clutter on the ground. Materials and lighting are in shifted_render.py.

Sequence `seed` draws rig, motion, scene and pixel noise from four generators of
`np.random.SeedSequence(seed)`, so the same seed gives the same bytes. Its few frames at
`world.fps` show the base standing still, turning on the spot or driving a slow arc.

Written here as shard directories; as rosbag2 by bag/synthetic.py (data/ never imports bag/).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from depth_any_view.data.frame import Frame
from depth_any_view.data.random_rig import RandomRig, sample_rig
from depth_any_view.data.scenes import build_raycaster, tessellate
from depth_any_view.data.shifted_config import ShiftedConfig, load_shifted_config
from depth_any_view.data.shifted_render import (
    PHOTO,
    Lighting,
    MaterialSet,
    ShiftedRenderer,
    draw_materials,
    triplanar_axes,
)
from depth_any_view.geometry.grid import VoxelGrid

SHIFTED_KINDS = ("indoor", "outdoor")
OCC_RADIUS = 35.0  # metres: triangles farther (horizontally) from odom's origin get no labels
NEAR_TILE = 5.0  # metres, ground tiles out to +/- 40 m; beyond, four big quads
GROUND_EXTENT = 300.0  # metres, half-size of the outdoor ground
MATERIALS = 160  # materials drawn per scene (objects pick from them)

_PHI = (1.0 + 5.0**0.5) / 2.0
_ICO_V = np.array([[0, 1, _PHI], [0, -1, _PHI], [0, 1, -_PHI], [0, -1, -_PHI],
                   [1, _PHI, 0], [-1, _PHI, 0], [1, -_PHI, 0], [-1, -_PHI, 0],
                   [_PHI, 0, 1], [-_PHI, 0, 1], [_PHI, 0, -1], [-_PHI, 0, -1]], np.float64)
_ICO_V /= np.linalg.norm(_ICO_V, axis=1, keepdims=True)
_ICO_F = np.array([[0, 1, 8], [0, 9, 1], [0, 8, 4], [0, 4, 5], [0, 5, 9], [1, 6, 8],
                   [1, 7, 6], [1, 9, 7], [2, 3, 11], [2, 10, 3], [2, 4, 10], [2, 5, 4],
                   [2, 11, 5], [3, 6, 7], [3, 10, 6], [3, 7, 11], [4, 8, 10], [5, 11, 9],
                   [6, 10, 8], [7, 9, 11]])


# ---------------------------------------------------------------------- primitives
def _rot_z(yaw: float) -> np.ndarray:
    """Rotation (3, 3) about z by `yaw` radians."""
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def box_mesh(center: Any, size: Any, yaw: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Box of edge lengths `size` (3,) metres centred at `center` (3,), turned by `yaw`."""
    corners = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5)
                        for z in (-0.5, 0.5)]) * np.asarray(size, np.float64)  # (8, 3)
    faces = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                      [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]])
    return corners @ _rot_z(yaw).T + np.asarray(center, np.float64), faces


def sphere_mesh(center: Any, radius: float, n_lat: int = 9, n_lon: int = 16
                ) -> tuple[np.ndarray, np.ndarray]:
    """Latitude-longitude sphere of `radius` metres around `center` (3,)."""
    th = np.linspace(0.0, np.pi, n_lat + 1)[:, None]  # (n_lat+1, 1) polar angle
    ph = np.linspace(0.0, 2 * np.pi, n_lon, endpoint=False)[None, :]  # (1, n_lon)
    unit = np.stack(np.broadcast_arrays(np.sin(th) * np.cos(ph), np.sin(th) * np.sin(ph),
                                        np.cos(th) + 0 * ph), axis=-1).reshape(-1, 3)
    i, j = np.meshgrid(np.arange(n_lat), np.arange(n_lon), indexing="ij")
    a, b = i * n_lon + j, i * n_lon + (j + 1) % n_lon
    c, d = a + n_lon, b + n_lon
    faces = np.concatenate([np.stack([a, c, d], -1).reshape(-1, 3),
                            np.stack([a, d, b], -1).reshape(-1, 3)])
    return unit * radius + np.asarray(center, np.float64), faces


def cylinder_mesh(base: Any, radius: float, height: float, n: int = 16, *,
                  axis: Any = (0.0, 0.0, 1.0)) -> tuple[np.ndarray, np.ndarray]:
    """Closed cylinder from `base` (3,) along the unit `axis` for `height` metres."""
    ax = np.asarray(axis, np.float64)
    ax = ax / np.linalg.norm(ax)
    helper = np.array([1.0, 0.0, 0.0]) if abs(ax[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = np.cross(ax, helper)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(ax, e1)
    ang = np.linspace(0.0, 2 * np.pi, n, endpoint=False)[:, None]
    ring = radius * (np.cos(ang) * e1 + np.sin(ang) * e2)  # (n, 3)
    b = np.asarray(base, np.float64)
    verts = np.concatenate([b + ring, b + height * ax + ring, [b, b + height * ax]])
    k = np.arange(n)
    k1 = (k + 1) % n
    faces = np.concatenate([np.stack([k, k1, n + k1], 1), np.stack([k, n + k1, n + k], 1),
                            np.stack([np.full(n, 2 * n), k1, k], 1),
                            np.stack([np.full(n, 2 * n + 1), n + k, n + k1], 1)])
    return verts, faces


def rock_mesh(center: Any, radii: Any, rng: np.random.Generator, bump: float = 0.2
              ) -> tuple[np.ndarray, np.ndarray]:
    """A rock: an icosahedron subdivided once, pushed in and out by smooth bumps (a function
    of direction, so shared vertices move alike), scaled by `radii` (3,) and turned."""
    tri = _ICO_V[_ICO_F]  # (20, 3, 3)
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    ab, bc, ca = (a + b) / 2, (b + c) / 2, (c + a) / 2
    sub = np.stack([np.stack(t, 1) for t in ((a, ab, ca), (ab, b, bc), (ca, bc, c),
                                               (ab, bc, ca))]).reshape(-1, 3, 3)  # (80, 3, 3)
    d = sub.reshape(-1, 3)
    d = d / np.linalg.norm(d, axis=1, keepdims=True)
    w = rng.normal(0.0, 2.5, (4, 3))
    phase = rng.uniform(0.0, 2 * np.pi, 4)
    r = 1.0 + bump * np.sin(d @ w.T + phase).mean(axis=1)  # (240,)
    verts = d * r[:, None] * np.asarray(radii, np.float64)
    verts = verts @ _rot_z(float(rng.uniform(0, 2 * np.pi))).T + np.asarray(center)
    return verts, np.arange(verts.shape[0]).reshape(-1, 3)


def wedge_mesh(center: Any, run: float, width: float, rise: float, yaw: float
               ) -> tuple[np.ndarray, np.ndarray]:
    """A ramp with bottom centre `center` (3,), rising `rise` over `run` along its +x."""
    v = np.array([[-0.5, -0.5, 0], [0.5, -0.5, 0], [0.5, 0.5, 0], [-0.5, 0.5, 0],
                  [0.5, -0.5, 1], [0.5, 0.5, 1]]) * np.array([run, width, rise])
    f = np.array([[0, 2, 1], [0, 3, 2], [0, 1, 4], [3, 5, 2], [1, 2, 5], [1, 5, 4],
                  [0, 4, 5], [0, 5, 3]])
    return v @ _rot_z(yaw).T + np.asarray(center, np.float64), f


class MeshSoup:
    """Collects triangle meshes with one material id each (odom, metres)."""

    def __init__(self) -> None:
        """Start empty."""
        self.verts: list[np.ndarray] = []
        self.faces: list[np.ndarray] = []
        self.mats: list[np.ndarray] = []
        self.count = 0

    def add(self, mesh: tuple[np.ndarray, np.ndarray], material: int) -> None:
        """Add (vertices (N, 3), faces (F, 3)) with one material id."""
        v, f = mesh
        self.verts.append(np.asarray(v, np.float64))
        self.faces.append(np.asarray(f, np.int64) + self.count)
        self.mats.append(np.full(len(f), int(material), np.int32))
        self.count += len(v)

    def add_parts(self, center: Any, yaw: float, parts: list[tuple[Any, Any]],
                  material: int) -> None:
        """Boxes (offset (3,), size (3,)) in a local frame at `center` (3,) turned by yaw."""
        R = _rot_z(yaw)
        for offset, size in parts:
            self.add(box_mesh(np.asarray(center) + R @ np.asarray(offset, np.float64), size,
                              yaw), material)

    def build(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Vertices (N, 3) float32, faces (F, 3) int32, materials (F,) int32."""
        return (np.concatenate(self.verts).astype(np.float32),
                np.concatenate(self.faces).astype(np.int32), np.concatenate(self.mats))


# ---------------------------------------------------------------------- ground, scene
@dataclass(frozen=True)
class GroundPlane:
    """The ground z = z0 + gx * x + gy * y (odom, metres)."""

    gx: float = 0.0
    gy: float = 0.0
    z0: float = 0.0

    def height(self, xy: np.ndarray) -> np.ndarray:
        """Ground height (N,) at odom positions (N, 2)."""
        xy = np.asarray(xy, np.float64).reshape(-1, 2)
        return self.z0 + self.gx * xy[:, 0] + self.gy * xy[:, 1]

    @property
    def normal(self) -> np.ndarray:
        """Unit up normal (3,)."""
        n = np.array([-self.gx, -self.gy, 1.0])
        return n / np.linalg.norm(n)

    @property
    def z_range(self) -> tuple[float, float]:
        """Lowest and highest ground within OCC_RADIUS of the origin, metres."""
        dz = (abs(self.gx) + abs(self.gy)) * OCC_RADIUS
        return self.z0 - dz, self.z0 + dz


@dataclass
class ShiftedScene:
    """A textured triangle scene in odom with its ground, lighting and materials; it offers
    what OccupancyLabeler needs (`ground.z_range`, `occupancy_triangles`)."""

    kind: str  # 'indoor' | 'outdoor'
    vertices: np.ndarray  # (N, 3) float32 odom, metres
    faces: np.ndarray  # (F, 3) int32
    face_material: np.ndarray  # (F,) int32
    face_tu: np.ndarray  # (F, 3) float32 texture axis u (world-aligned, triplanar)
    face_tv: np.ndarray  # (F, 3) float32 texture axis v
    materials: MaterialSet
    noise_tile: np.ndarray  # (T, T) float32 periodic value noise in [0, 1]
    ground: GroundPlane
    lighting: Lighting
    _raycaster: Any = field(default=None, repr=False)
    _occ_cache: dict = field(default_factory=dict, repr=False)

    @property
    def num_triangles(self) -> int:
        """Number of triangles."""
        return int(self.faces.shape[0])

    def raycasting_scene(self) -> Any:
        """The Open3D `RaycastingScene` of the mesh (built once)."""
        if self._raycaster is None:
            self._raycaster = build_raycaster(self.vertices, self.faces)
        return self._raycaster

    def occupancy_triangles(self, max_edge: float, z_range: tuple[float, float]
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Triangles (F', 3, 3) float32 within OCC_RADIUS of the origin and the height band,
        split to `max_edge` metres, with their bounding boxes lo, hi (F', 3) (cached)."""
        key = (float(max_edge), float(z_range[0]), float(z_range[1]))
        if key not in self._occ_cache:
            tri = self.vertices[self.faces]  # (F, 3, 3)
            near = np.all((tri[:, :, :2].min(axis=1) <= OCC_RADIUS)
                          & (tri[:, :, :2].max(axis=1) >= -OCC_RADIUS), axis=1)
            tris = tessellate(tri[near], max_edge, z_range)
            self._occ_cache[key] = (tris, tris.min(axis=1), tris.max(axis=1))
        return self._occ_cache[key]


# ---------------------------------------------------------------------- motion
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
        T[j, :3, :3] = tilt @ _rot_z(float(yaw[j]))
    T[:, 0, 3], T[:, 1, 3] = x, y
    T[:, 2, 3] = ground.height(np.stack([x, y], axis=1))
    stamps = start_ns + np.round(t * 1e9).astype(np.int64)
    return Motion(kind, T, stamps)


# ---------------------------------------------------------------------- scene building
def _noise_tile(rng: np.random.Generator, texels: int = 64) -> np.ndarray:
    """A periodic value-noise tile (texels, texels) float32 in [0, 1]: random lattices of
    three octaves, each smoothed by periodic bilinear upsampling."""
    out = np.zeros((texels, texels), np.float64)
    amp, total = 1.0, 0.0
    for cells in (4, 8, 16):
        lat = rng.random((cells, cells))
        g = np.arange(texels) * cells / texels
        i0 = np.floor(g).astype(np.int64)
        f = g - i0
        f = f * f * (3 - 2 * f)
        rows = lat[i0] * (1 - f)[:, None] + lat[(i0 + 1) % cells] * f[:, None]
        out += amp * (rows[:, i0] * (1 - f)[None] + rows[:, (i0 + 1) % cells] * f[None])
        total += amp
        amp *= 0.5
    out /= total
    return ((out - out.min()) / max(np.ptp(out), 1e-9)).astype(np.float32)


class _Placer:
    """Draws object positions clear of the driven path (and inside a room, if any)."""

    def __init__(self, rng: np.random.Generator, path_xy: np.ndarray, reach: float,
                 bounds: tuple[float, float, float, float] | None) -> None:
        """`path_xy` (F, 2) base positions, `reach` metres of the rig around them, `bounds`
        (x0, y0, x1, y1) of the room or None."""
        self.rng, self.reach, self.bounds = rng, reach, bounds
        a, b = path_xy[:-1], path_xy[1:]
        mids = [a + (b - a) * s for s in np.linspace(0, 1, 5)[:, None, None]]
        self.path = np.concatenate([path_xy, *mids]) if len(path_xy) > 1 else path_xy

    def place(self, radius: float, gap: tuple[float, float], tries: int = 25
              ) -> np.ndarray | None:
        """A centre (2,) whose disc of `radius` lies at least gap[0] beyond the rig's
        reach from every path point, at a log-uniform gap in `gap`; None if none fits."""
        lo, hi = math.log(max(gap[0], 1e-3)), math.log(max(gap[1], gap[0] + 1e-3))
        for _ in range(tries):
            k = int(self.rng.integers(len(self.path)))
            ang = float(self.rng.uniform(0, 2 * np.pi))
            dist = self.reach + math.exp(float(self.rng.uniform(lo, hi))) + radius
            c = self.path[k] + dist * np.array([math.cos(ang), math.sin(ang)])
            if np.min(np.linalg.norm(self.path - c, axis=1)) - radius < self.reach + gap[0]:
                continue
            if self.bounds is not None:
                x0, y0, x1, y1 = self.bounds
                if not (x0 + radius < c[0] < x1 - radius and y0 + radius < c[1] < y1 - radius):
                    continue
            return c
        return None


def _add_object(soup: MeshSoup, rng: np.random.Generator, kind: str, xy: np.ndarray,
                size: float, ground: GroundPlane, mat: int, photo_mat: int) -> None:
    """One free-standing object of `kind` and largest extent ~`size` metres at `xy`."""
    z = float(ground.height(xy)[0]) - 0.02  # sunk a little so tilted ground leaves no gap
    yaw = float(rng.uniform(0, 2 * np.pi))
    x, y = float(xy[0]), float(xy[1])
    if kind == "sphere":
        r = size / 2
        soup.add(sphere_mesh((x, y, z + r * rng.uniform(0.7, 1.0)), r), mat)
    elif kind == "cylinder":
        soup.add(cylinder_mesh((x, y, z), size * rng.uniform(0.15, 0.5), size), mat)
    elif kind == "log":  # a cylinder lying on the ground
        r = size * rng.uniform(0.08, 0.25)
        axis = (math.cos(yaw), math.sin(yaw), 0.0)
        base = (x - axis[0] * size / 2, y - axis[1] * size / 2, z + r)
        soup.add(cylinder_mesh(base, r, size, axis=axis), mat)
    elif kind == "box":
        s = size * rng.uniform(0.3, 1.0, 3)
        soup.add(box_mesh((x, y, z + s[2] / 2), s, yaw), mat)
    elif kind == "rock":
        radii = size / 2 * rng.uniform(0.5, 1.0, 3)
        soup.add(rock_mesh((x, y, z + radii[2] * 0.6), radii, rng), mat)
    elif kind == "pole":
        h = max(size, 1.0) * rng.uniform(1.0, 2.0)
        soup.add(cylinder_mesh((x, y, z), rng.uniform(0.02, 0.08), h, 10), mat)
        if rng.random() < 0.6:  # a sign on it
            w = rng.uniform(0.3, 0.9)
            soup.add(box_mesh((x, y, z + h - 0.3), (0.02, w, w * rng.uniform(0.5, 1.0)), yaw),
                     photo_mat)
    elif kind == "tree":
        h = max(size, 1.5) * rng.uniform(1.0, 2.0)
        soup.add(cylinder_mesh((x, y, z), rng.uniform(0.05, 0.2), h * 0.6, 10), mat)
        soup.add(rock_mesh((x, y, z + h * 0.7), h * rng.uniform(0.15, 0.3, 3), rng, 0.3),
                 photo_mat if rng.random() < 0.3 else mat + 1)
    elif kind == "table":
        L, W, H = size, size * rng.uniform(0.4, 0.8), rng.uniform(0.45, 1.1)
        t, leg = rng.uniform(0.02, 0.06), rng.uniform(0.025, 0.06)
        parts = [((0, 0, H - t / 2), (L, W, t))]
        parts += [((sx * (L / 2 - leg), sy * (W / 2 - leg), (H - t) / 2), (leg, leg, H - t))
                  for sx in (-1, 1) for sy in (-1, 1)]
        soup.add_parts((x, y, z), yaw, parts, mat)
    elif kind == "chair":
        s, H = rng.uniform(0.38, 0.5), rng.uniform(0.4, 0.5)
        leg, back = 0.03, rng.uniform(0.35, 0.55)
        parts = [((0, 0, H), (s, s, 0.04)), ((-s / 2, 0, H + back / 2), (0.03, s, back))]
        parts += [((sx * (s / 2 - leg), sy * (s / 2 - leg), H / 2), (leg, leg, H))
                  for sx in (-1, 1) for sy in (-1, 1)]
        soup.add_parts((x, y, z), yaw, parts, mat)
    elif kind == "shelf":
        W, D, H = size * rng.uniform(0.5, 1.0), rng.uniform(0.25, 0.45), rng.uniform(1.0, 2.2)
        n = int(rng.integers(3, 6))
        parts = [((0, sy * W / 2, H / 2), (D, 0.02, H)) for sy in (-1, 1)]
        parts += [((0, 0, h), (D, W, 0.02)) for h in np.linspace(0.05, H - 0.01, n)]
        soup.add_parts((x, y, z), yaw, parts, mat)
    elif kind == "ramp":
        run = size * rng.uniform(1.0, 2.0)
        soup.add(wedge_mesh((x, y, z), run, size * rng.uniform(0.5, 1.0),
                            run * math.tan(math.radians(rng.uniform(5.0, 25.0))), yaw), mat)
    else:
        raise ValueError(f"object kind '{kind}' is unknown")


OBJECT_KINDS = ("sphere", "cylinder", "log", "box", "rock", "pole", "tree", "table", "chair",
                "shelf")
CLUTTER_KINDS = ("sphere", "box", "rock", "cylinder", "log")


def _footprint(kind: str, size: float) -> float:
    """Horizontal radius (metres) that an object of `kind` and `size` (as drawn by
    `_add_object`) stays within around its centre."""
    if kind == "pole":
        return 0.5  # the sign plate is at most 0.9 m wide
    if kind == "tree":
        return 0.8 * max(size, 1.5) + 0.05  # the crown
    return {"log": 0.8, "ramp": 1.5}.get(kind, 0.75) * size + 0.05


def _lighting(rng: np.random.Generator, kind: str, cfg: ShiftedConfig,
              room: tuple[float, float, float, float, float] | None) -> Lighting:
    """A random sun or lamp, sky, exposure and gamma."""
    lc = cfg.lighting
    palette = int(rng.integers(3))  # clear, overcast, dusk
    horizon = np.array([[0.75, 0.85, 0.95], [0.72, 0.72, 0.75], [1.0, 0.6, 0.35]][palette])
    zenith = np.array([[0.18, 0.38, 0.85], [0.5, 0.52, 0.56], [0.25, 0.2, 0.45]][palette])
    horizon = np.clip(horizon + rng.uniform(-0.1, 0.1, 3), 0, 1)
    zenith = np.clip(zenith + rng.uniform(-0.1, 0.1, 3), 0, 1)
    tint = 1.0 + lc.tint * rng.uniform(-1.0, 1.0, 3)
    if palette == 2:
        tint *= np.array([1.2, 0.9, 0.7])
    colour = float(rng.uniform(*lc.sun_intensity)) * np.clip(tint, 0.2, None)
    ambient = float(rng.uniform(*lc.ambient))
    if kind == "outdoor":
        el = math.radians(float(rng.uniform(*lc.sun_elevation_deg)))
        az = float(rng.uniform(0, 2 * np.pi))
        vector = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az),
                           math.sin(el)])
        amb = ambient * (0.5 * (horizon + zenith))
        light_kind, falloff = "sun", 0.0
    else:
        x0, y0, x1, y1, h = room  # type: ignore[misc]
        vector = np.array([rng.uniform(x0 + 0.3, x1 - 0.3), rng.uniform(y0 + 0.3, y1 - 0.3),
                           h - 0.25])
        amb = ambient * np.clip(1.0 + 0.3 * rng.uniform(-1, 1, 3), 0.3, None)
        colour = colour * 1.6
        light_kind, falloff = "lamp", float(rng.uniform(2.5, 7.0))
    return Lighting(kind=light_kind, vector=vector, colour=colour.astype(np.float32),
                    ambient=amb.astype(np.float32), falloff=falloff,
                    sky_horizon=horizon.astype(np.float32), sky_zenith=zenith.astype(np.float32),
                    cloud_colour=np.clip(horizon * 1.1, 0, 1).astype(np.float32),
                    cloudiness=float(rng.uniform(0.0, 0.7)) if palette != 1 else 0.0,
                    exposure=float(rng.uniform(*lc.exposure)),
                    gamma=float(rng.uniform(*lc.gamma)), shadows=bool(lc.shadows),
                    noise_std=float(rng.uniform(*cfg.world.image_noise_std)))


def _irange(rng: np.random.Generator, r: tuple[float, float]) -> int:
    """An integer drawn uniformly from the inclusive range r."""
    return int(rng.integers(int(r[0]), int(r[1]) + 1))


def build_shifted_scene(rng: np.random.Generator, motion: Motion, rig: RandomRig,
                        kind: str, ground: GroundPlane, config: ShiftedConfig | None = None
                        ) -> ShiftedScene:
    """A scene of `kind` ('indoor' | 'outdoor') around the motion's path, clear of the rig.

    Args:
        rng: draws everything of the scene.
        motion: the base poses; objects keep `scene.object_distance[0]` metres beyond the
            rig's reach from every pose.
        rig: the cameras (their reach and heights size the clearance and the room).
        kind: 'indoor' or 'outdoor'.
        ground: the ground plane the base stands on (flat indoors).
        config: settings (default: config/shifted_world.yaml's defaults).
    """
    cfg = config or ShiftedConfig()
    sc = cfg.scene
    if kind not in SHIFTED_KINDS:
        raise ValueError(f"scene kind '{kind}' is unknown; use one of {SHIFTED_KINDS}")
    mats = draw_materials(rng, MATERIALS, cfg.texture, cfg.lighting)
    photo_ids = np.flatnonzero(mats.kind == PHOTO)
    soup = MeshSoup()
    next_mat = iter(range(2, MATERIALS - 1))  # 0, 1: ground / walls; others per object

    def new_mat() -> int:
        return next(next_mat, int(rng.integers(2, MATERIALS - 1)))

    def photo_mat() -> int:
        return int(rng.choice(photo_ids)) if photo_ids.size else new_mat()

    reach = rig.reach + 0.15
    xy = motion.xy
    room = None
    if kind == "indoor":
        cam_top = float(rig.T_base_cam[:, 2, 3].max())
        margin = reach + sc.object_distance[0] + 0.3
        lo, hi = xy.min(axis=0) - margin, xy.max(axis=0) + margin
        size = np.maximum(rng.uniform(*sc.room_size, 2), hi - lo)
        x0y0 = lo - rng.uniform(0.0, 1.0, 2) * (size - (hi - lo))
        x0, y0 = x0y0
        x1, y1 = x0y0 + size
        h = max(float(rng.uniform(*sc.room_height)), cam_top + 0.4)
        room = (float(x0), float(y0), float(x1), float(y1), h)
        t = 0.1
        cx, cy, lx, ly = (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0
        soup.add(box_mesh((cx, cy, -t / 2), (lx + 2 * t, ly + 2 * t, t)), 0)  # floor
        soup.add(box_mesh((cx, cy, h + t / 2), (lx + 2 * t, ly + 2 * t, t)), 1)  # ceiling
        wall = new_mat() if rng.random() < 0.5 else 1
        for c, s in (((x0 - t / 2, cy, h / 2), (t, ly, h)), ((x1 + t / 2, cy, h / 2), (t, ly, h)),
                     ((cx, y0 - t / 2, h / 2), (lx, t, h)), ((cx, y1 + t / 2, h / 2), (lx, t, h))):
            soup.add(box_mesh(c, s), wall)
        for _ in range(int(rng.integers(0, 5))):  # photographs on the walls
            side = int(rng.integers(4))
            w, ph = rng.uniform(0.4, 1.5), rng.uniform(0.3, 1.0)
            zc = rng.uniform(0.3 + ph / 2, max(h - 0.2 - ph / 2, 0.3 + ph / 2))
            along = rng.uniform(0.1, 0.9)
            if side < 2:
                xw = x0 + 0.01 if side == 0 else x1 - 0.01
                soup.add(box_mesh((xw, y0 + along * ly, zc), (0.02, w, ph)), photo_mat())
            else:
                yw = y0 + 0.01 if side == 2 else y1 - 0.01
                soup.add(box_mesh((x0 + along * lx, yw, zc), (w, 0.02, ph)), photo_mat())
        bounds: tuple[float, float, float, float] | None = room[:4]
    else:
        E, N = GROUND_EXTENT, NEAR_TILE
        k = np.arange(-40.0, 40.0, N)
        gx, gy = np.meshgrid(k, k, indexing="ij")
        quads = [np.stack([gx.ravel(), gy.ravel(), gx.ravel() + N, gy.ravel() + N], 1)]
        quads.append(np.array([[-E, -E, -40.0, E], [40.0, -E, E, E], [-40.0, -E, 40.0, -40.0],
                               [-40.0, 40.0, 40.0, E]]))
        q = np.concatenate(quads)  # (Q, 4) x0 y0 x1 y1
        corners = np.stack([q[:, [0, 1]], q[:, [2, 1]], q[:, [2, 3]], q[:, [0, 3]]], 1)
        cz = ground.height(corners.reshape(-1, 2)).reshape(-1, 4, 1)
        v = np.concatenate([corners, cz], axis=2).reshape(-1, 3)
        base = 4 * np.arange(q.shape[0])[:, None]
        f = np.concatenate([base + [0, 1, 2], base + [0, 2, 3]])
        soup.add((v, f), 0)
        for _ in range(_irange(rng, sc.distant)):  # halls, towers and hills far away
            d = float(rng.uniform(*sc.distant_distance))
            a = float(rng.uniform(0, 2 * np.pi))
            c = np.array([d * math.cos(a), d * math.sin(a)])
            z = float(ground.height(c)[0])
            u = rng.random()
            if u < 0.4:
                s = rng.uniform([8, 8, 4], [min(40, d), min(40, d), 25])
                soup.add(box_mesh((c[0], c[1], z + s[2] / 2 - 0.5), s, rng.uniform(0, np.pi)),
                         new_mat())
            elif u < 0.7:
                r = rng.uniform(1.5, min(8.0, d / 4))
                soup.add(cylinder_mesh((c[0], c[1], z - 0.5), r, rng.uniform(10, 50), 20),
                         new_mat())
            else:
                r = min(rng.uniform(15, 60), d * 0.6)
                soup.add(rock_mesh((c[0], c[1], z - 0.4 * r * 0.3),
                                   (r, r * rng.uniform(0.6, 1.0), r * rng.uniform(0.1, 0.35)),
                                   rng, 0.15), 0)
        bounds = None
    placer = _Placer(rng, xy, reach, bounds)
    kinds = OBJECT_KINDS if kind == "outdoor" else tuple(k for k in OBJECT_KINDS if k != "tree")
    furniture = ("table", "chair", "shelf")
    todo = [str(rng.choice([k for k in kinds if k not in furniture + ("pole",)]))
            for _ in range(_irange(rng, sc.objects))]
    todo += [str(rng.choice(furniture)) for _ in range(_irange(rng, sc.furniture))]
    todo += ["pole"] * _irange(rng, sc.poles) + ["ramp"] * _irange(rng, sc.ramps)
    for obj in todo:
        size = math.exp(float(rng.uniform(math.log(sc.object_size[0]),
                                          math.log(sc.object_size[1]))))
        if obj in ("table", "shelf"):
            size = float(np.clip(size, 0.6, 2.0))
        if obj == "chair":
            size = 0.6
        c = placer.place(_footprint(obj, size), sc.object_distance)
        if c is not None:
            m = new_mat()
            _add_object(soup, rng, obj, c, size, ground, m, photo_mat())
    for _ in range(_irange(rng, sc.clutter)):
        obj = str(rng.choice(CLUTTER_KINDS))
        size = float(rng.uniform(*sc.clutter_size))
        c = placer.place(_footprint(obj, size), (sc.object_distance[0], 6.0))
        if c is not None:
            _add_object(soup, rng, obj, c, size, ground, new_mat(), photo_mat())
    verts, faces, face_mat = soup.build()
    tri = verts[faces].astype(np.float64)
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    tu, tv = triplanar_axes(n)
    return ShiftedScene(kind=kind, vertices=verts, faces=faces, face_material=face_mat,
                        face_tu=tu, face_tv=tv, materials=mats, noise_tile=_noise_tile(rng),
                        ground=ground, lighting=_lighting(rng, kind, cfg, room))


# ---------------------------------------------------------------------- sequences
@dataclass
class ShiftedSequence:
    """One sequence of the shifted world: its rig, scene, motion and frames (lazily)."""

    seed: int
    rig: RandomRig
    scene: ShiftedScene
    motion: Motion
    grid: VoxelGrid
    config: ShiftedConfig
    _noise_rng: np.random.Generator = field(repr=False, default=None)  # type: ignore

    @property
    def kind(self) -> str:
        """'indoor' | 'outdoor'."""
        return self.scene.kind

    def frames(self) -> Iterator[Frame]:
        """The rendered frames with their ground truth, in order."""
        from depth_any_view.data.occupancy import OccupancyLabeler

        cfg = self.config
        rig = self.rig
        renderer = ShiftedRenderer(self.scene, rig.cameras, rig.T_base_cam,
                                   max_range=cfg.world.max_range,
                                   photo_texels=cfg.texture.photo_texels)
        labeler = OccupancyLabeler(self.grid, rig.cameras, rig.T_base_cam,
                                   max_range=cfg.world.max_range, config=cfg.occupancy)
        K = rig.K
        for j, T in enumerate(self.motion.T_odom_base):
            images, depth = renderer.render(T, self._noise_rng)
            occupancy = labeler.label(self.scene, T, depth)  # type: ignore[arg-type]
            yield Frame(stamp_ns=int(self.motion.stamps_ns[j]), index=j,
                        camera_names=list(rig.names), images=images, depth=depth, K=K.copy(),
                        T_base_cam=rig.T_base_cam.copy(), frame_ids=list(rig.frame_ids),
                        T_odom_base=T.copy(), occupancy=occupancy, grid=self.grid)


def make_sequence(seed: int, *, frames: int, grid_dims: int = 64,
                  config: ShiftedConfig | None = None) -> ShiftedSequence:
    """Sequence `seed` of the shifted world: rig, motion, scene and noise each drawn from one
    generator of `np.random.SeedSequence(seed)` (so the same seed gives the same bytes).

    Args:
        seed: non-negative sequence seed.
        frames: number of frames (>= 1) at `world.fps`.
        grid_dims: occupancy voxels per axis (grid_dims^3) over the configured bounds.
        config: settings (default: config/shifted_world.yaml).
    """
    if int(seed) < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if int(frames) < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    if int(grid_dims) < 1:
        raise ValueError(f"grid_dims must be >= 1 (voxels per axis), got {grid_dims}")
    cfg = config or load_shifted_config()
    rig_rng, motion_rng, scene_rng, noise_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(4))
    rig = sample_rig(rig_rng, cfg.rig)
    kind = "indoor" if scene_rng.random() < cfg.world.indoor_probability else "outdoor"
    ground = GroundPlane()
    if kind == "outdoor":
        slope = math.tan(math.radians(float(scene_rng.uniform(*cfg.scene.yard_slope_deg))))
        a = float(scene_rng.uniform(0, 2 * np.pi))
        ground = GroundPlane(slope * math.cos(a), slope * math.sin(a), 0.0)
    start_ns = int(cfg.world.start_time_s) * 1_000_000_000 + int(seed) * 1_000_000_000
    motion = plan_motion(motion_rng, int(frames), cfg.world.fps, start_ns, ground, cfg)
    scene = build_shifted_scene(scene_rng, motion, rig, kind, ground, cfg)
    grid = VoxelGrid(cfg.grid.lower, cfg.grid.upper, (int(grid_dims),) * 3)
    return ShiftedSequence(int(seed), rig, scene, motion, grid, cfg, noise_rng)


def sequence_name(seed: int) -> str:
    """Directory (or bag) name of sequence `seed` inside an output folder."""
    return f"seq_{int(seed)}"


def write_sequence(out: str | os.PathLike[str], seed: int, *, frames: int,
                   grid_dims: int = 64, config: ShiftedConfig | None = None) -> Path:
    """Write sequence `seed` to `out` as a shard directory (meta.json, frame .npz files and
    the rig as rig.yaml; a rosbag2: bag/synthetic.py `write_shifted_bag`). Returns `out`.

    Raises:
        ValueError: a bad argument (named in the message).
        FileExistsError: `out` exists and is not empty.
    """
    from depth_any_view.data.shards import ShardWriter

    out = Path(out)
    cfg = config or load_shifted_config()
    seq = make_sequence(seed, frames=frames, grid_dims=grid_dims, config=cfg)
    with ShardWriter(out, rig="rig.yaml", seed=int(seed), scene=f"shifted_{seq.kind}",
                     fps=cfg.world.fps, max_range=cfg.world.max_range) as writer:
        seq.rig.write_yaml(out / "rig.yaml")
        for frame in seq.frames():
            writer.write(frame, segment=0, kind=f"shifted_{seq.kind}")
    return out


def _complete(path: Path, frames: int) -> bool:
    """Whether `path` is a finished shard directory of `frames` frames."""
    import json

    meta = path / "meta.json"
    return meta.is_file() and json.loads(meta.read_text(encoding="utf-8")).get(
        "frames") == int(frames)


def sequence_paths(out: str | os.PathLike[str], *, sequences: int, seed: int = 0,
                   progress: bool = True) -> Iterator[tuple[int, Path]]:
    """(seed, `out/seq_<seed>`) for seeds seed, seed + 1, ... (`out` is created), with a
    progress bar over the sequences; shared by the shard and the bag writers."""
    if int(sequences) < 1:
        raise ValueError(f"sequences must be >= 1, got {sequences}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = range(int(seed), int(seed) + int(sequences))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(seeds), desc="shifted", unit="seq")
    try:
        for s in seeds:
            yield s, out / sequence_name(s)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()


def synthesize_shifted(out: str | os.PathLike[str], *, sequences: int, frames: int,
                       seed: int = 0, grid_dims: int = 64, progress: bool = True,
                       config: ShiftedConfig | None = None) -> list[Path]:
    """Write sequences seed, seed + 1, ... into `out/seq_<seed>` as shard directories that
    data.dataset.find_shard_dirs(out) finds (bags: bag/synthetic.py). A finished shard
    directory is kept (an interrupted run resumes). Returns the sequence paths."""
    if int(sequences) < 1:
        raise ValueError(f"sequences must be >= 1, got {sequences}")
    cfg = config or load_shifted_config()
    paths = []
    for s, path in sequence_paths(out, sequences=sequences, seed=seed, progress=progress):
        if not _complete(path, frames):
            if path.exists():
                import shutil

                shutil.rmtree(path)  # an unfinished sequence of an interrupted run
            write_sequence(path, s, frames=frames, grid_dims=grid_dims, config=cfg)
        paths.append(path)
    return paths
