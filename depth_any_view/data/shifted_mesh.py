"""The shifted world's meshes: primitives, a triangle soup, the tilted ground, the scene.

Frame: odom (x, y horizontal, z up, metres). Primitives (boxes, spheres, cylinders,
icosahedron rocks, wedges) are returned as (vertices, faces) and collected with a material
id per triangle by `MeshSoup`; `GroundPlane` is the plane the base stands on;
`ShiftedScene` holds a built scene with its materials and lighting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from depth_any_view.data.scene_mesh import RaycastMesh
from depth_any_view.data.scenes import tessellate
from depth_any_view.data.shifted_render import (
    Lighting,
    MaterialSet,
)

OCC_RADIUS = 35.0  # metres: triangles farther (horizontally) from odom's origin get no labels

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
def rot_z(yaw: float) -> np.ndarray:
    """Rotation (3, 3) about z by `yaw` radians."""
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def box_mesh(center: Any, size: Any, yaw: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Box of edge lengths `size` (3,) metres centred at `center` (3,), turned by `yaw`."""
    corners = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5)
                        for z in (-0.5, 0.5)]) * np.asarray(size, np.float64)  # (8, 3)
    faces = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                      [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]])
    return corners @ rot_z(yaw).T + np.asarray(center, np.float64), faces


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
    verts = verts @ rot_z(float(rng.uniform(0, 2 * np.pi))).T + np.asarray(center)
    return verts, np.arange(verts.shape[0]).reshape(-1, 3)


def wedge_mesh(center: Any, run: float, width: float, rise: float, yaw: float
               ) -> tuple[np.ndarray, np.ndarray]:
    """A ramp with bottom centre `center` (3,), rising `rise` over `run` along its +x."""
    v = np.array([[-0.5, -0.5, 0], [0.5, -0.5, 0], [0.5, 0.5, 0], [-0.5, 0.5, 0],
                  [0.5, -0.5, 1], [0.5, 0.5, 1]]) * np.array([run, width, rise])
    f = np.array([[0, 2, 1], [0, 3, 2], [0, 1, 4], [3, 5, 2], [1, 2, 5], [1, 5, 4],
                  [0, 4, 5], [0, 5, 3]])
    return v @ rot_z(yaw).T + np.asarray(center, np.float64), f


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
        R = rot_z(yaw)
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
class ShiftedScene(RaycastMesh):
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
