"""What every procedural scene is made of: primitives in a mesh, the ground, the Scene.

Frame: odom (x, y horizontal, z up, metres; the ground is near z = 0). `MeshBuilder`
collects triangles of primitives (boxes, wedges, cylinders, spheres, height fields) with a
material id per triangle (see textures.py); `assemble_scene` turns it into a `Scene` with
its route, ground height field (`HeightField`) and lighting; `build_raycaster` gives the
Open3D ray-casting scene and `tessellate` the small triangles the occupancy labels use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from depth_any_view.data.base_trajectory import FilletPath
from depth_any_view.data.textures import MaterialLibrary, MaterialTable, NoiseTile, surface_frames

_BOX_CORNERS = np.array([[x, y, z] for z in (-0.5, 0.5) for y in (-0.5, 0.5)
                         for x in (-0.5, 0.5)])  # (8, 3) unit box, index = x + 2y + 4z
_BOX_FACES = np.array([[0, 2, 3], [0, 3, 1],  # bottom
                       [4, 5, 7], [4, 7, 6],  # top
                       [0, 1, 5], [0, 5, 4],  # y-
                       [2, 6, 7], [2, 7, 3],  # y+
                       [0, 4, 6], [0, 6, 2],  # x-
                       [1, 3, 7], [1, 7, 5]])  # x+
_WEDGE_VERTS = np.array([[-0.5, -0.5, 0], [0.5, -0.5, 0], [0.5, 0.5, 0], [-0.5, 0.5, 0],
                         [0.5, -0.5, 1], [0.5, 0.5, 1]])  # (6, 3) rises along +x
_WEDGE_FACES = np.array([[0, 2, 1], [0, 3, 2], [0, 1, 4], [3, 5, 2], [1, 2, 5], [1, 5, 4],
                         [0, 4, 5], [0, 5, 3]])
_PHI = (1 + 5**0.5) / 2
_ICO_VERTS = np.array([[-1, _PHI, 0], [1, _PHI, 0], [-1, -_PHI, 0], [1, -_PHI, 0],
                       [0, -1, _PHI], [0, 1, _PHI], [0, -1, -_PHI], [0, 1, -_PHI],
                       [_PHI, 0, -1], [_PHI, 0, 1], [-_PHI, 0, -1], [-_PHI, 0, 1]])
_ICO_VERTS = _ICO_VERTS / np.linalg.norm(_ICO_VERTS, axis=1, keepdims=True)
_ICO_FACES = np.array([[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9],
                       [5, 11, 4], [11, 10, 2], [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2],
                       [3, 2, 6], [3, 6, 8], [3, 8, 9], [4, 9, 5], [2, 4, 11], [6, 2, 10],
                       [8, 6, 7], [9, 8, 1]])


def _yaw_matrices(yaw: np.ndarray) -> np.ndarray:
    """Rotations (B, 3, 3) about z by yaw (B,) radians."""
    c, s = np.cos(yaw), np.sin(yaw)
    R = np.zeros((yaw.shape[0], 3, 3))
    R[:, 0, 0], R[:, 0, 1], R[:, 1, 0], R[:, 1, 1], R[:, 2, 2] = c, -s, s, c, 1.0
    return R


@dataclass(frozen=True)
class HeightField:
    """Ground height on a regular grid: heights[i, j] at origin + (i, j) * spacing (metres).

    Each cell is two triangles split along its (i, j)-(i+1, j+1) diagonal, exactly as
    meshed, so `height` is the height of the mesh itself. Outside the grid it clamps.
    """

    origin: tuple[float, float]
    spacing: float
    heights: np.ndarray  # (nx, ny) metres

    @classmethod
    def flat(cls, z: float = 0.0) -> HeightField:
        """A flat ground at height z."""
        return cls((-1e4, -1e4), 2e4, np.full((2, 2), float(z)))

    def height(self, xy: np.ndarray) -> np.ndarray:
        """Ground height (N,) metres at odom positions (N, 2)."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        h = self.heights
        g = (xy - np.asarray(self.origin)) / self.spacing
        g = np.clip(g, 0.0, np.array(h.shape, dtype=np.float64) - 1.000001)
        i = np.floor(g).astype(np.int64)
        f = g - i
        fx, fy = f[:, 0], f[:, 1]
        ix, iy = i[:, 0], i[:, 1]
        z00, z10 = h[ix, iy], h[ix + 1, iy]
        z01, z11 = h[ix, iy + 1], h[ix + 1, iy + 1]
        lower = z00 + fx * (z10 - z00) + fy * (z11 - z10)  # triangle (00, 10, 11), fx >= fy
        upper = z00 + fy * (z01 - z00) + fx * (z11 - z01)  # triangle (00, 11, 01)
        return np.where(fx >= fy, lower, upper)

    @property
    def z_range(self) -> tuple[float, float]:
        """Lowest and highest ground, metres."""
        return float(self.heights.min()), float(self.heights.max())


class MeshBuilder:
    """Collects triangles of primitives with one material id per triangle (odom, metres)."""

    def __init__(self) -> None:
        """Start empty."""
        self._verts: list[np.ndarray] = []
        self._faces: list[np.ndarray] = []
        self._mats: list[np.ndarray] = []
        self._count = 0

    def add(self, vertices: np.ndarray, faces: np.ndarray, materials: Any) -> None:
        """Add vertices (N, 3) and faces (F, 3) indexing them, materials int or (F,)."""
        vertices = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
        faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
        if faces.size == 0:
            return
        self._verts.append(vertices)
        self._faces.append(faces + self._count)
        self._mats.append(np.broadcast_to(np.asarray(materials, np.int32), (faces.shape[0],)))
        self._count += vertices.shape[0]

    def add_boxes(self, centers: np.ndarray, sizes: np.ndarray, yaws: Any,
                  materials: Any) -> None:
        """Boxes with centres (B, 3), edge lengths (B, 3) along their own axes, yaw (B,)."""
        centers = np.asarray(centers, dtype=np.float64).reshape(-1, 3)
        b = centers.shape[0]
        sizes = np.broadcast_to(np.asarray(sizes, np.float64), (b, 3))
        yaws = np.broadcast_to(np.asarray(yaws, np.float64), (b,))
        local = _BOX_CORNERS[None] * sizes[:, None, :]  # (B, 8, 3)
        verts = np.einsum("bij,bkj->bki", _yaw_matrices(yaws), local) + centers[:, None]
        faces = _BOX_FACES[None] + 8 * np.arange(b)[:, None, None]  # (B, 12, 3)
        mats = np.repeat(np.broadcast_to(np.asarray(materials, np.int32), (b,)), 12)
        self.add(verts.reshape(-1, 3), faces.reshape(-1, 3), mats)

    def add_wedges(self, centers: np.ndarray, sizes: np.ndarray, yaws: Any,
                   materials: Any) -> None:
        """Ramps: bottom centres (B, 3), sizes (B, 3) = run, width, rise; rising along +x."""
        centers = np.asarray(centers, dtype=np.float64).reshape(-1, 3)
        b = centers.shape[0]
        sizes = np.broadcast_to(np.asarray(sizes, np.float64), (b, 3))
        yaws = np.broadcast_to(np.asarray(yaws, np.float64), (b,))
        local = _WEDGE_VERTS[None] * sizes[:, None, :]  # (B, 6, 3)
        verts = np.einsum("bij,bkj->bki", _yaw_matrices(yaws), local) + centers[:, None]
        faces = _WEDGE_FACES[None] + 6 * np.arange(b)[:, None, None]
        mats = np.repeat(np.broadcast_to(np.asarray(materials, np.int32), (b,)), 8)
        self.add(verts.reshape(-1, 3), faces.reshape(-1, 3), mats)

    def add_cylinders(self, bases: np.ndarray, axes: np.ndarray, radii: Any, heights: Any,
                      materials: Any, segments: int = 12) -> None:
        """Closed cylinders from base centres (B, 3) along unit axes (B, 3)."""
        bases = np.asarray(bases, dtype=np.float64).reshape(-1, 3)
        b = bases.shape[0]
        axes = np.broadcast_to(np.asarray(axes, np.float64), (b, 3))
        axes = axes / np.linalg.norm(axes, axis=1, keepdims=True)
        radii = np.broadcast_to(np.asarray(radii, np.float64), (b,))
        heights = np.broadcast_to(np.asarray(heights, np.float64), (b,))
        helper = np.where(np.abs(axes[:, 2:3]) < 0.9, [[0.0, 0.0, 1.0]], [[1.0, 0.0, 0.0]])
        e1 = np.cross(axes, helper)
        e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
        e2 = np.cross(axes, e1)
        ang = 2 * np.pi * np.arange(segments) / segments
        ring = (np.cos(ang)[None, :, None] * e1[:, None] + np.sin(ang)[None, :, None]
                * e2[:, None]) * radii[:, None, None]  # (B, S, 3)
        bottom = bases[:, None] + ring
        top = bottom + (axes * heights[:, None])[:, None]
        centres = np.stack([bases, bases + axes * heights[:, None]], axis=1)  # (B, 2, 3)
        verts = np.concatenate([bottom, top, centres], axis=1)  # (B, 2S + 2, 3)
        k = np.arange(segments)
        k1 = (k + 1) % segments
        S = segments
        faces = np.concatenate([
            np.stack([k, k1, S + k1], axis=1), np.stack([k, S + k1, S + k], axis=1),
            np.stack([np.full(S, 2 * S), k1, k], axis=1),
            np.stack([np.full(S, 2 * S + 1), S + k, S + k1], axis=1)])  # (4S, 3)
        faces = faces[None] + (2 * S + 2) * np.arange(b)[:, None, None]
        mats = np.repeat(np.broadcast_to(np.asarray(materials, np.int32), (b,)), 4 * S)
        self.add(verts.reshape(-1, 3), faces.reshape(-1, 3), mats)

    def add_blobs(self, centers: np.ndarray, radii: np.ndarray, materials: Any) -> None:
        """Icosahedra with centres (B, 3) and per-axis radii (B, 3) (tree crowns)."""
        centers = np.asarray(centers, dtype=np.float64).reshape(-1, 3)
        b = centers.shape[0]
        radii = np.broadcast_to(np.asarray(radii, np.float64), (b, 3))
        verts = _ICO_VERTS[None] * radii[:, None] + centers[:, None]  # (B, 12, 3)
        faces = _ICO_FACES[None] + 12 * np.arange(b)[:, None, None]
        mats = np.repeat(np.broadcast_to(np.asarray(materials, np.int32), (b,)), 20)
        self.add(verts.reshape(-1, 3), faces.reshape(-1, 3), mats)

    def add_quads(self, corners: np.ndarray, materials: Any) -> None:
        """Planar quads with corners (Q, 4, 3) in order around the quad."""
        corners = np.asarray(corners, dtype=np.float64).reshape(-1, 4, 3)
        q = corners.shape[0]
        faces = np.array([[0, 1, 2], [0, 2, 3]])[None] + 4 * np.arange(q)[:, None, None]
        mats = np.repeat(np.broadcast_to(np.asarray(materials, np.int32), (q,)), 2)
        self.add(corners.reshape(-1, 3), faces.reshape(-1, 3), mats)

    def add_heightfield(self, hf: HeightField, materials: np.ndarray) -> None:
        """The ground mesh of `hf`, materials (nx - 1, ny - 1) per cell."""
        nx, ny = hf.heights.shape
        gx = hf.origin[0] + np.arange(nx) * hf.spacing
        gy = hf.origin[1] + np.arange(ny) * hf.spacing
        X, Y = np.meshgrid(gx, gy, indexing="ij")
        verts = np.stack([X, Y, hf.heights], axis=-1).reshape(-1, 3)  # (nx * ny, 3)
        idx = np.arange(nx * ny).reshape(nx, ny)
        v00, v10 = idx[:-1, :-1].ravel(), idx[1:, :-1].ravel()
        v01, v11 = idx[:-1, 1:].ravel(), idx[1:, 1:].ravel()
        faces = np.concatenate([np.stack([v00, v10, v11], 1), np.stack([v00, v11, v01], 1)])
        mats = np.tile(np.asarray(materials, np.int32).ravel(), 2)
        self.add(verts, faces, mats)

    def build(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Vertices (N, 3) float32, faces (F, 3) int32, materials (F,) int32."""
        return (np.concatenate(self._verts).astype(np.float32),
                np.concatenate(self._faces).astype(np.int32),
                np.concatenate(self._mats).astype(np.int32))


def tessellate(tris: np.ndarray, max_edge: float,
               z_range: tuple[float, float] | None = None) -> np.ndarray:
    """Split triangles (F, 3, 3) in four until every edge is <= max_edge metres.

    With `z_range`, triangles entirely below or above it are dropped along the way (only
    the band where occupancy grids can be needs small triangles).
    """
    out = []
    cur = np.asarray(tris, dtype=np.float32)
    for _ in range(24):
        if z_range is not None:
            z = cur[:, :, 2]
            cur = cur[(z.max(axis=1) >= z_range[0]) & (z.min(axis=1) <= z_range[1])]
        if cur.shape[0] == 0:
            break
        edges = np.linalg.norm(cur - np.roll(cur, 1, axis=1), axis=2).max(axis=1)
        small = edges <= max_edge
        out.append(cur[small])
        big = cur[~small]
        a, b, c = big[:, 0], big[:, 1], big[:, 2]
        ab, bc, ca = (a + b) * 0.5, (b + c) * 0.5, (c + a) * 0.5
        cur = np.concatenate([np.stack(t, axis=1) for t in
                              ((a, ab, ca), (ab, b, bc), (ca, bc, c), (ab, bc, ca))])
    return np.concatenate(out) if out else np.zeros((0, 3, 3), np.float32)


def build_raycaster(vertices: np.ndarray, faces: np.ndarray) -> Any:
    """An Open3D `RaycastingScene` of a triangle mesh: (N, 3) float32 vertices in metres,
    (F, 3) vertex indices (Open3D is imported only here, when rays are cast)."""
    import open3d as o3d

    rc = o3d.t.geometry.RaycastingScene()
    rc.add_triangles(o3d.core.Tensor(np.ascontiguousarray(vertices, np.float32)),
                     o3d.core.Tensor(faces.astype(np.uint32)))
    return rc


class RaycastMesh:
    """What a scene dataclass with `vertices` (N, 3), `faces` (F, 3) and a `_raycaster`
    field (None until built) offers the renderers: its triangle count and its Open3D
    `RaycastingScene`, built once. Shared by `Scene` and the shifted world's
    `ShiftedScene`."""

    @property
    def num_triangles(self) -> int:
        """Number of triangles."""
        return int(self.faces.shape[0])

    def raycasting_scene(self) -> Any:
        """The Open3D `RaycastingScene` of the mesh (built once)."""
        if self._raycaster is None:
            self._raycaster = build_raycaster(self.vertices, self.faces)
        return self._raycaster


@dataclass
class Scene(RaycastMesh):
    """A textured triangle scene in odom with its route, ground and lighting."""

    kind: str  # 'indoor' | 'outdoor'
    vertices: np.ndarray  # (N, 3) float32 odom, metres
    faces: np.ndarray  # (F, 3) int32
    face_material: np.ndarray  # (F,) int32 material id per triangle
    face_tu: np.ndarray  # (F, 3) float32 texture axis u (see textures.py)
    face_tv: np.ndarray  # (F, 3) float32 texture axis v
    materials: MaterialTable
    noise: NoiseTile
    path: FilletPath  # the closed driving loop (odom xy)
    ground: HeightField
    light_dir: np.ndarray  # (3,) unit vector towards the light
    ambient: float
    diffuse: float
    sky_horizon: np.ndarray  # (3,) linear RGB of misses at the horizon
    sky_zenith: np.ndarray  # (3,) linear RGB of misses straight up
    fog_density: float  # 1/m, 0 = none
    speed: float  # cruise speed of the base, m/s
    stop_spacing: float  # mean distance between stops, metres
    _raycaster: Any = field(default=None, repr=False)
    _occ_cache: dict = field(default_factory=dict, repr=False)

    def occupancy_triangles(self, max_edge: float, z_range: tuple[float, float]
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Small triangles (F', 3, 3) float32 covering the surfaces in a height band, with
        their bounding boxes lo, hi (F', 3) (cached per arguments)."""
        key = (float(max_edge), float(z_range[0]), float(z_range[1]))
        if key not in self._occ_cache:
            tris = tessellate(self.vertices[self.faces], max_edge, z_range)
            self._occ_cache[key] = (tris, tris.min(axis=1), tris.max(axis=1))
        return self._occ_cache[key]


def assemble_scene(kind: str, mesh: MeshBuilder, mats: MaterialLibrary,
                   rng: np.random.Generator, path: FilletPath, ground: HeightField, *,
                   elevation_deg: tuple[float, float], ambient: float, diffuse: float,
                   sky: tuple[Any, Any], fog: float = 0.0, speed: float = 1.0,
                   stop_spacing: float = 20.0, tile_texels: int = 256) -> Scene:
    """A Scene from a mesh and its materials: texture frames, noise tile and a light at a
    random azimuth with an elevation (degrees) drawn from `elevation_deg`.

    `sky` is the (horizon, zenith) colour of missed rays (linear RGB in [0, 1]).
    """
    verts, faces, face_mat = mesh.build()
    tri = verts[faces].astype(np.float64)  # (F, 3, 3)
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    tu, tv = surface_frames(n)
    el = np.deg2rad(rng.uniform(*elevation_deg))
    az = rng.uniform(0.0, 2 * np.pi)
    light = np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
    noise = NoiseTile(rng, tile_texels)
    return Scene(kind=kind, vertices=verts, faces=faces, face_material=face_mat, face_tu=tu,
                 face_tv=tv, materials=mats.table(), noise=noise, path=path, ground=ground,
                 light_dir=light, ambient=float(ambient), diffuse=float(diffuse),
                 sky_horizon=np.asarray(sky[0], np.float32),
                 sky_zenith=np.asarray(sky[1], np.float32), fog_density=float(fog),
                 speed=float(speed), stop_spacing=float(stop_spacing))


def clear_of_path(path_pts: np.ndarray, center: np.ndarray, half: np.ndarray, yaw: float,
                   clearance: float) -> bool:
    """True when a yawed rectangle (centre (2,), half sizes (2,)) keeps `clearance` metres
    from every path point (P, 2)."""
    d = path_pts - center
    c, s = np.cos(yaw), np.sin(yaw)
    local = np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]], axis=1)
    q = np.maximum(np.abs(local) - half, 0.0)
    return bool(np.min(np.einsum("ij,ij->i", q, q)) >= clearance**2)
