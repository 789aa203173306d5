"""Procedural indoor and outdoor scenes as textured triangle meshes (numpy; Open3D for rays).

Frame: every scene is built in odom (x, y horizontal, z up, metres; the ground is near
z = 0). A scene is one triangle soup with a material id per triangle (see textures.py),
a closed driving route through its free space, the ground height field the base drives on,
and its lighting. Layouts are drawn from a numpy Generator, so a seed fixes everything.

- indoor: a ring of rooms and corridors rasterised on a floor plan (walls where free
  cells meet solid ones), floor and ceiling, side rooms behind doors, furniture-like boxes
  (cabinets, tables, crates, pictures) and columns, all kept clear of the route.
- outdoor: a street-canyon city: blocks of buildings of different heights with facade
  textures, raised sidewalks with kerbs, an uneven ground with speed-table ramps on the
  driven streets, parked cars (body, cabin, wheels), lamps, signs, trees, bins, bollards
  and loading ramps, closed by a ring of buildings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from depth_any_view.data.synth_config import SynthConfig
from depth_any_view.data.textures import MaterialLibrary, MaterialTable, NoiseTile, surface_frames
from depth_any_view.data.trajectory import FilletPath

SCENE_KINDS = ("indoor", "outdoor")

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


@dataclass
class Scene:
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
        """Small triangles (F', 3, 3) float32 covering the surfaces in a height band, with
        their bounding boxes lo, hi (F', 3) (cached per arguments)."""
        key = (float(max_edge), float(z_range[0]), float(z_range[1]))
        if key not in self._occ_cache:
            tris = tessellate(self.vertices[self.faces], max_edge, z_range)
            self._occ_cache[key] = (tris, tris.min(axis=1), tris.max(axis=1))
        return self._occ_cache[key]


def build_scene(kind: str, rng: np.random.Generator, config: SynthConfig | None = None
                ) -> Scene:
    """A procedural scene of `kind` ('indoor' | 'outdoor') drawn from `rng`."""
    config = config or SynthConfig()
    if kind == "indoor":
        return _build_indoor(rng, config)
    if kind == "outdoor":
        return _build_outdoor(rng, config)
    raise ValueError(f"scene kind '{kind}' is unknown; use one of {', '.join(SCENE_KINDS)}")


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


def _clear_of_path(path_pts: np.ndarray, center: np.ndarray, half: np.ndarray, yaw: float,
                   clearance: float) -> bool:
    """True when a yawed rectangle (centre (2,), half sizes (2,)) keeps `clearance` metres
    from every path point (P, 2)."""
    d = path_pts - center
    c, s = np.cos(yaw), np.sin(yaw)
    local = np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]], axis=1)
    q = np.maximum(np.abs(local) - half, 0.0)
    return bool(np.min(np.einsum("ij,ij->i", q, q)) >= clearance**2)


# ----------------------------------------------------------------------------- indoor
class _FloorPlan:
    """A raster of region ids (-1 = solid) over the indoor layout, cells of `cell` metres."""

    def __init__(self, lo: np.ndarray, hi: np.ndarray, cell: float) -> None:
        """Solid everywhere in [lo, hi] (xy metres), padded by two cells."""
        self.cell = cell
        self.origin = lo - 2 * cell
        shape = np.ceil((hi - lo) / cell).astype(int) + 4
        self.region = np.full(tuple(shape), -1, np.int32)  # (Nx, Ny)
        self.gx = self.origin[0] + np.arange(shape[0] + 1) * cell  # cell edges, metres
        self.gy = self.origin[1] + np.arange(shape[1] + 1) * cell

    def carve(self, x0: float, y0: float, x1: float, y1: float, region: int) -> None:
        """Mark cells whose centres lie in [x0, x1] x [y0, y1] as free with `region`."""
        c, o = self.cell, self.origin
        i0 = max(int(np.ceil((x0 - o[0]) / c - 0.5)), 1)
        i1 = min(int(np.floor((x1 - o[0]) / c - 0.5)), self.region.shape[0] - 2)
        j0 = max(int(np.ceil((y0 - o[1]) / c - 0.5)), 1)
        j1 = min(int(np.floor((y1 - o[1]) / c - 0.5)), self.region.shape[1] - 2)
        if i1 >= i0 and j1 >= j0:
            self.region[i0:i1 + 1, j0:j1 + 1] = region

    def is_free(self, xy: np.ndarray) -> np.ndarray:
        """Whether points (N, 2) fall in free cells."""
        idx = np.floor((xy - self.origin) / self.cell).astype(np.int64)
        ok = np.all((idx >= 0) & (idx < np.array(self.region.shape)), axis=1)
        out = np.zeros(xy.shape[0], bool)
        out[ok] = self.region[idx[ok, 0], idx[ok, 1]] >= 0
        return out

    def wall(self, value: float, axis: int, upper: bool) -> float:
        """Coordinate (metres) of the cell edge that bounds a carve at `value` on `axis`."""
        k = (value - self.origin[axis]) / self.cell - 0.5
        edges = self.gx if axis == 0 else self.gy
        return float(edges[int(np.floor(k)) + 1] if upper else edges[int(np.ceil(k))])


def _rect_samples(center: np.ndarray, half: np.ndarray, yaw: float, n: int = 5) -> np.ndarray:
    """An n x n lattice (n^2, 2) over a yawed rectangle, corners included."""
    a = np.linspace(-1.0, 1.0, n)
    u, v = np.meshgrid(a * half[0], a * half[1], indexing="ij")
    c, s = np.cos(yaw), np.sin(yaw)
    return np.stack([c * u.ravel() - s * v.ravel(), s * u.ravel() + c * v.ravel()], 1) + center


def _build_indoor(rng: np.random.Generator, config: SynthConfig) -> Scene:
    """Rooms and corridors on a ring, with side rooms, furniture and columns."""
    ic = config.indoor
    mats = MaterialLibrary(rng, config.texture.noise_amp)
    na = int(rng.integers(ic.ring_nodes[0], ic.ring_nodes[1] + 1))
    nb = int(rng.integers(ic.ring_nodes[0], ic.ring_nodes[1] + 1))
    xs = np.concatenate([[0.0], np.cumsum(rng.uniform(*ic.node_spacing, na - 1))])
    ys = np.concatenate([[0.0], np.cumsum(rng.uniform(*ic.node_spacing, nb - 1))])
    ring = ([(i, 0) for i in range(na)] + [(na - 1, j) for j in range(1, nb)]
            + [(i, nb - 1) for i in range(na - 2, -1, -1)]
            + [(0, j) for j in range(nb - 2, 0, -1)])  # node lattice indices, counter-clockwise
    nodes = np.array([(xs[i], ys[j]) for i, j in ring])  # (P, 2) route corners and rooms
    P = nodes.shape[0]
    centre = nodes.mean(axis=0)
    margin = ic.room_size[1] + 8.0
    plan = _FloorPlan(nodes.min(axis=0) - margin, nodes.max(axis=0) + margin, ic.cell)
    ceiling = rng.uniform(*ic.ceiling_height)
    region_wall: list[int] = []
    region_floor: list[int] = []
    rooms: list[tuple[np.ndarray, np.ndarray]] = []  # (centre, half size)

    def new_region(kind_wall: str = "wall") -> int:
        region_wall.append(mats.add(kind_wall))
        region_floor.append(mats.add("floor"))
        return len(region_wall) - 1

    corridor = new_region()
    for e in range(P):  # corridors along the ring
        a, b = nodes[e], nodes[(e + 1) % P]
        w = 0.5 * rng.uniform(*ic.corridor_width)
        lo, hi = np.minimum(a, b) - w, np.maximum(a, b) + w
        plan.carve(lo[0], lo[1], hi[0], hi[1], corridor)
        if rng.random() < ic.side_room_probability:  # a side room behind a door
            d = (b - a) / np.linalg.norm(b - a)
            out = np.array([d[1], -d[0]])
            if np.dot(out, (a + b) / 2 - centre) < 0:
                out = -out
            at = a + d * rng.uniform(0.3, 0.7) * np.linalg.norm(b - a)
            door = 0.5 * rng.uniform(1.0, 1.4)
            depth, width = rng.uniform(3.0, 5.0), rng.uniform(3.0, 6.0)
            door_end = at + out * (w + 0.5)
            p0, p1 = at + d * door, door_end - d * door
            plan.carve(min(p0[0], p1[0]), min(p0[1], p1[1]), max(p0[0], p1[0]),
                       max(p0[1], p1[1]), corridor)
            rc = door_end + out * depth / 2
            half = np.abs(out) * depth / 2 + np.abs(d) * width / 2
            r = new_region()
            plan.carve(*(rc - half), *(rc + half), r)
            rooms.append((rc, half))
    for k in range(P):  # rooms on ring nodes (carved last: they own their cells)
        if rng.random() >= ic.room_probability:
            continue
        half = 0.5 * rng.uniform(*ic.room_size, 2)
        offset = rng.uniform(-1.0, 1.0, 2) * np.maximum(half - 1.5, 0.0)
        rc = nodes[k] + offset
        r = new_region()
        plan.carve(*(rc - half), *(rc + half), r)
        rooms.append((rc, half))

    path = FilletPath(nodes, ic.corner_radius)
    path_pts = path.points(0.2)
    mesh = MeshBuilder()
    _indoor_shell(mesh, plan, ceiling, region_wall, region_floor, mats.add("ceiling"))
    _indoor_furniture(mesh, mats, rng, plan, rooms, path_pts, ceiling, ic)
    lc = config.lighting
    return assemble_scene("indoor", mesh, mats, rng, path, HeightField.flat(),
                          elevation_deg=lc.indoor_light_elevation_deg, ambient=lc.indoor_ambient,
                          diffuse=lc.indoor_diffuse, sky=(np.full(3, 0.08), np.full(3, 0.08)),
                          speed=ic.speed, stop_spacing=ic.stop_spacing,
                          tile_texels=config.texture.tile_texels)


def _indoor_shell(mesh: MeshBuilder, plan: _FloorPlan, ceiling: float, region_wall: list[int],
                  region_floor: list[int], ceiling_mat: int) -> None:
    """Walls where free cells meet solid ones, floor and ceiling over free cells."""
    region, gx, gy = plan.region, plan.gx, plan.gy
    free = region >= 0
    wall_mat = np.asarray(region_wall, np.int32)
    floor_mat = np.asarray(region_floor, np.int32)
    # Walls normal to x between cells (i, j) and (i + 1, j).
    ii, jj = np.nonzero(free[:-1, :] != free[1:, :])
    side = np.where(free[ii, jj], region[ii, jj], region[ii + 1, jj])
    x = gx[ii + 1]
    y0, y1 = gy[jj], gy[jj + 1]
    z0, z1 = np.zeros_like(x), np.full_like(x, ceiling)
    corners = np.stack([np.stack([x, y0, z0], 1), np.stack([x, y1, z0], 1),
                        np.stack([x, y1, z1], 1), np.stack([x, y0, z1], 1)], axis=1)
    mesh.add_quads(corners, wall_mat[side])
    # Walls normal to y between cells (i, j) and (i, j + 1).
    ii, jj = np.nonzero(free[:, :-1] != free[:, 1:])
    side = np.where(free[ii, jj], region[ii, jj], region[ii, jj + 1])
    y = gy[jj + 1]
    x0, x1 = gx[ii], gx[ii + 1]
    z0, z1 = np.zeros_like(y), np.full_like(y, ceiling)
    corners = np.stack([np.stack([x0, y, z0], 1), np.stack([x1, y, z0], 1),
                        np.stack([x1, y, z1], 1), np.stack([x0, y, z1], 1)], axis=1)
    mesh.add_quads(corners, wall_mat[side])
    # Floor and ceiling, one quad per free cell.
    ii, jj = np.nonzero(free)
    x0, x1, y0, y1 = gx[ii], gx[ii + 1], gy[jj], gy[jj + 1]
    for z, mat in ((0.0, floor_mat[region[ii, jj]]), (ceiling, ceiling_mat)):
        zz = np.full_like(x0, z)
        corners = np.stack([np.stack([x0, y0, zz], 1), np.stack([x1, y0, zz], 1),
                            np.stack([x1, y1, zz], 1), np.stack([x0, y1, zz], 1)], axis=1)
        mesh.add_quads(corners, mat)


def _indoor_furniture(mesh: MeshBuilder, mats: MaterialLibrary, rng: np.random.Generator,
                      plan: _FloorPlan, rooms: list[tuple[np.ndarray, np.ndarray]],
                      path_pts: np.ndarray, ceiling: float, ic: Any) -> None:
    """Cabinets, tables, crates and pictures in rooms, and columns in large rooms."""
    boxes: list[tuple[np.ndarray, np.ndarray, float, int]] = []  # centre, size, yaw, mat
    cylinders: list[tuple[np.ndarray, float, float, int]] = []  # base, radius, height, mat

    def fits(center: np.ndarray, half: np.ndarray, yaw: float) -> bool:
        pts = _rect_samples(center, half + 0.02, yaw)
        return bool(plan.is_free(pts).all()) and _clear_of_path(path_pts, center, half, yaw,
                                                                 ic.clearance)

    for rc, half in rooms:
        lo, hi = rc - half, rc + half
        count = int(rng.integers(ic.furniture_per_room[0], ic.furniture_per_room[1] + 1))
        placed, tries = 0, 0
        while placed < count and tries < 40 * count:
            tries += 1
            kind = rng.choice(["cabinet", "table", "crates", "picture"], p=[0.35, 0.25, 0.25,
                                                                            0.15])
            side = int(rng.integers(4))  # 0: x-, 1: x+, 2: y-, 3: y+
            if kind in ("cabinet", "picture"):
                length = rng.uniform(0.6, 2.0)
                depth = rng.uniform(0.35, 0.7) if kind == "cabinet" else 0.04
                height = rng.uniform(0.6, 2.1) if kind == "cabinet" else rng.uniform(0.4, 1.0)
                z0 = 0.0 if kind == "cabinet" else rng.uniform(1.0, 1.6)
                axis, sign = side // 2, (-1, 1)[side % 2]
                c = rng.uniform(lo, hi)
                wall = plan.wall((hi if sign > 0 else lo)[axis], axis, sign > 0)
                c[axis] = wall - sign * (depth / 2 + 0.01)
                size_xy = np.array([length, depth]) if axis == 1 else np.array([depth, length])
                behind = _rect_samples(c, size_xy / 2, 0.0)
                behind[:, axis] = wall + sign * 0.1  # there must be a wall behind it
                if not fits(c, size_xy / 2, 0.0) or plan.is_free(behind).any():
                    continue
                mat = mats.add("furniture" if kind == "cabinet" else "facade")
                boxes.append((np.array([c[0], c[1], z0 + height / 2]),
                              np.array([size_xy[0], size_xy[1], height]), 0.0, mat))
            elif kind == "table":
                size = np.array([rng.uniform(1.0, 1.8), rng.uniform(0.6, 1.0)])
                yaw = float(rng.choice([0.0, np.pi / 2]) + rng.normal(0.0, 0.1))
                c = rng.uniform(lo + 0.6, hi - 0.6)
                if not fits(c, size / 2, yaw):
                    continue
                h = rng.uniform(0.72, 0.78)
                mat = mats.add("furniture")
                boxes.append((np.array([c[0], c[1], h - 0.02]), np.array([*size, 0.04]), yaw,
                              mat))
                R = np.array([[np.cos(yaw), -np.sin(yaw)], [np.sin(yaw), np.cos(yaw)]])
                for sx in (-1, 1):
                    for sy in (-1, 1):
                        leg = c + R @ (np.array([sx, sy]) * (size / 2 - 0.06))
                        boxes.append((np.array([leg[0], leg[1], (h - 0.04) / 2]),
                                      np.array([0.05, 0.05, h - 0.04]), yaw, mat))
            else:  # a stack of crates
                s = rng.uniform(0.3, 0.6)
                yaw = rng.uniform(0.0, np.pi / 2)
                c = rng.uniform(lo + 0.4, hi - 0.4)
                if not fits(c, np.full(2, s / 2), yaw):
                    continue
                z = 0.0
                for _ in range(int(rng.integers(1, 4))):
                    ss = s * rng.uniform(0.8, 1.0)
                    boxes.append((np.array([c[0], c[1], z + ss / 2]), np.full(3, ss),
                                  yaw + rng.normal(0.0, 0.15), mats.add("crate")))
                    z += ss
            placed += 1
        if min(half) * 2 > 6.0 and rng.random() < ic.column_probability:
            mat = mats.add("column")
            round_ = rng.random() < 0.5
            r = rng.uniform(0.15, 0.3)
            along = int(np.argmax(half))
            for f in np.linspace(-0.6, 0.6, int(rng.integers(2, 4))):
                c = rc.copy()
                c[along] += f * half[along]
                c[1 - along] += rng.uniform(-0.5, 0.5) * half[1 - along]
                if not fits(c, np.full(2, r), 0.0):
                    continue
                if round_:
                    cylinders.append((np.array([c[0], c[1], 0.0]), r, ceiling, mat))
                else:
                    boxes.append((np.array([c[0], c[1], ceiling / 2]),
                                  np.array([2 * r, 2 * r, ceiling]), 0.0, mat))
    if boxes:
        mesh.add_boxes(np.array([b[0] for b in boxes]), np.array([b[1] for b in boxes]),
                       np.array([b[2] for b in boxes]), np.array([b[3] for b in boxes]))
    if cylinders:
        mesh.add_cylinders(np.array([c[0] for c in cylinders]), [0.0, 0.0, 1.0],
                           np.array([c[1] for c in cylinders]),
                           np.array([c[2] for c in cylinders]),
                           np.array([c[3] for c in cylinders]), segments=16)


# ----------------------------------------------------------------------------- outdoor
def _intervals(sizes: np.ndarray, gap: float) -> np.ndarray:
    """Consecutive [start, end] intervals (N, 2) of the given sizes separated by `gap`."""
    starts = np.concatenate([[0.0], np.cumsum(sizes[:-1] + gap)])
    return np.stack([starts, starts + sizes], axis=1)


def _split(rng: np.random.Generator, lo: float, hi: float, widths: tuple[float, float]
           ) -> list[tuple[float, float]]:
    """Cut [lo, hi] into pieces of random widths in `widths` (the last absorbs the rest)."""
    cuts = [lo]
    while hi - cuts[-1] > widths[1]:
        cuts.append(cuts[-1] + rng.uniform(*widths))
    if hi - cuts[-1] < 0.5 * widths[0] and len(cuts) > 1:
        cuts.pop()
    cuts.append(hi)
    return list(zip(cuts[:-1], cuts[1:]))


def _build_outdoor(rng: np.random.Generator, config: SynthConfig) -> Scene:
    """A street-canyon city with a rectangular loop along its inner streets."""
    oc = config.outdoor
    mats = MaterialLibrary(rng, config.texture.noise_amp)
    nbx = int(rng.integers(oc.blocks[0], oc.blocks[1] + 1)) + 2  # plus the outer ring
    nby = int(rng.integers(oc.blocks[0], oc.blocks[1] + 1)) + 2
    road = rng.uniform(*oc.road_width)
    walk = rng.uniform(*oc.sidewalk_width)
    bx = _intervals(rng.uniform(*oc.block_size, nbx), road)  # (nbx, 2) blocks along x
    by = _intervals(rng.uniform(*oc.block_size, nby), road)
    cx = 0.5 * (bx[:-1, 1] + bx[1:, 0])  # (nbx - 1,) centre lines of roads along y
    cy = 0.5 * (by[:-1, 1] + by[1:, 0])
    i0, i1 = np.sort(rng.choice(cx.size, 2, replace=False))  # roads of the loop
    j0, j1 = np.sort(rng.choice(cy.size, 2, replace=False))
    o = oc.lane_offset
    route = np.array([[cx[i0] - o, cy[j0] - o], [cx[i1] + o, cy[j0] - o],
                      [cx[i1] + o, cy[j1] + o], [cx[i0] - o, cy[j1] + o]])
    path = FilletPath(route, oc.corner_radius)
    path_pts = path.points(0.25)
    lo = np.array([bx[0, 0], by[0, 0]]) - 12.0
    hi = np.array([bx[-1, 1], by[-1, 1]]) + 12.0

    # Ground: smooth unevenness + raised sidewalks (kerbs) + speed tables on the route.
    sp = oc.heightfield_spacing
    gxs = lo[0] + np.arange(int(np.ceil((hi[0] - lo[0]) / sp)) + 1) * sp
    gys = lo[1] + np.arange(int(np.ceil((hi[1] - lo[1]) / sp)) + 1) * sp
    X, Y = np.meshgrid(gxs, gys, indexing="ij")
    Z = np.zeros_like(X)
    for _ in range(3):
        lam = rng.uniform(*oc.ground_wavelength)
        th = rng.uniform(0, 2 * np.pi)
        Z += (oc.ground_amplitude / 3) * np.sin(2 * np.pi / lam * (np.cos(th) * X + np.sin(th)
                                                                   * Y) + rng.uniform(0, 6.3))

    def in_blocks(px: np.ndarray, py: np.ndarray) -> np.ndarray:
        inx = np.zeros(px.shape, bool)
        iny = np.zeros(py.shape, bool)
        for a, b in bx:
            inx |= (px >= a) & (px <= b)
        for a, b in by:
            iny |= (py >= a) & (py <= b)
        return inx & iny

    Z += oc.kerb_height * in_blocks(X, Y)
    ramp_mask = np.zeros(X.shape, bool)
    n_ramps = int(rng.integers(oc.ramps[0], oc.ramps[1] + 1))
    for _ in range(n_ramps):
        e = int(rng.integers(4))
        a, b = route[e], route[(e + 1) % 4]
        horizontal = abs(b[0] - a[0]) > abs(b[1] - a[1])  # the edge runs along x
        s_lo, s_hi = sorted((a[0], b[0]) if horizontal else (a[1], b[1]))
        rise, flat, h = rng.uniform(2.5, 4.0), rng.uniform(2.0, 4.0), rng.uniform(*oc.ramp_height)
        free_len = s_hi - s_lo - 2 * (road + 8.0) - 2 * rise - flat
        if free_len <= 0:
            continue
        start = s_lo + road + 8.0 + rng.uniform(0.0, free_len)
        centre_line = cy[j0] if (horizontal and e == 0) else cy[j1] if horizontal else (
            cx[i1] if e == 1 else cx[i0])
        along, across = (X, Y) if horizontal else (Y, X)
        u = along - start
        prof = np.clip(np.minimum(u / rise, (2 * rise + flat - u) / rise), 0.0, 1.0) * h
        on_road = np.abs(across - centre_line) < road / 2
        Z += np.where(on_road, prof, 0.0)
        ramp_mask |= on_road & (prof > 0)
    ground = HeightField((float(lo[0]), float(lo[1])), sp, Z)

    mesh = MeshBuilder()
    road_mat = mats.add("road")
    ramp_mat = mats.add("ramp")
    walk_mats = np.array([mats.add("sidewalk") for _ in range(nbx * nby)]).reshape(nbx, nby)
    ccx, ccy = (X[:-1, :-1] + X[1:, 1:]) / 2, (Y[:-1, :-1] + Y[1:, 1:]) / 2  # cell centres
    cell_bx = np.clip(np.searchsorted(bx[:, 0], ccx, side="right") - 1, 0, nbx - 1)
    cell_by = np.clip(np.searchsorted(by[:, 0], ccy, side="right") - 1, 0, nby - 1)
    cell_mat = np.where(in_blocks(ccx, ccy), walk_mats[cell_bx, cell_by], road_mat)
    cell_ramp = ramp_mask[:-1, :-1] & ramp_mask[1:, 1:]
    mesh.add_heightfield(ground, np.where(cell_ramp, ramp_mat, cell_mat))

    # Buildings: lots inside each block (inset by the sidewalk), plus an enclosing ring.
    b_centers, b_sizes, b_mats = [], [], []
    bottom = ground.z_range[0] - 3.0
    for (x0, x1) in bx:
        for (y0, y1) in by:
            for (lx0, lx1) in _split(rng, x0 + walk, x1 - walk, oc.lot_width):
                for (ly0, ly1) in _split(rng, y0 + walk, y1 - walk, oc.lot_width):
                    inset = rng.uniform(0.0, 0.8, 4) * (rng.random(4) < 0.5)
                    ax0, ax1 = lx0 + inset[0], lx1 - inset[1]
                    ay0, ay1 = ly0 + inset[2], ly1 - inset[3]
                    top = rng.uniform(*oc.building_height)
                    b_centers.append([(ax0 + ax1) / 2, (ay0 + ay1) / 2, (top + bottom) / 2])
                    b_sizes.append([ax1 - ax0, ay1 - ay0, top - bottom])
                    b_mats.append(mats.add("facade"))
    W = 10.0
    for (x0, x1, y0, y1) in ((lo[0] - W, lo[0], lo[1] - W, hi[1] + W),
                             (hi[0], hi[0] + W, lo[1] - W, hi[1] + W),
                             (lo[0], hi[0], lo[1] - W, lo[1]), (lo[0], hi[0], hi[1], hi[1] + W)):
        top = rng.uniform(15.0, 35.0)
        b_centers.append([(x0 + x1) / 2, (y0 + y1) / 2, (top + bottom) / 2])
        b_sizes.append([x1 - x0, y1 - y0, top - bottom])
        b_mats.append(mats.add("facade"))
    mesh.add_boxes(np.array(b_centers), np.array(b_sizes), 0.0, np.array(b_mats))
    _street_objects(mesh, mats, rng, oc, bx, by, cx, cy, road, walk, ground, path_pts)
    lc = config.lighting
    sky_h = np.array([0.78, 0.84, 0.9]) + rng.uniform(-0.05, 0.05, 3)
    sky_z = np.array([0.32, 0.5, 0.82]) + rng.uniform(-0.05, 0.05, 3)
    return assemble_scene("outdoor", mesh, mats, rng, path, ground,
                          elevation_deg=lc.sun_elevation_deg, ambient=lc.outdoor_ambient,
                          diffuse=lc.outdoor_diffuse, sky=(sky_h, sky_z), fog=lc.fog_density,
                          speed=oc.speed, stop_spacing=oc.stop_spacing,
                          tile_texels=config.texture.tile_texels)


def _street_objects(mesh: MeshBuilder, mats: MaterialLibrary, rng: np.random.Generator,
                    oc: Any, bx: np.ndarray, by: np.ndarray, cx: np.ndarray, cy: np.ndarray,
                    road: float, walk: float, ground: HeightField, path_pts: np.ndarray
                    ) -> None:
    """Parked cars along kerbs, props on sidewalks and loading ramps against facades."""
    # Street segments between intersections: (start, end, direction (2,), centre line point).
    segments = []
    for c in cx:  # roads along y
        for (y0, y1) in by:
            segments.append((np.array([c, y0]), np.array([c, y1])))
    for c in cy:  # roads along x
        for (x0, x1) in bx:
            segments.append((np.array([x0, c]), np.array([x1, c])))
    tyre = mats.add("tyre")
    bodies, cabins, wheels = [], [], []
    for a, b in segments:
        d = (b - a) / np.linalg.norm(b - a)
        n = np.array([-d[1], d[0]])
        seg_len = float(np.linalg.norm(b - a))
        for side in (-1.0, 1.0):
            u = rng.uniform(1.0, 4.0)
            while u < seg_len - 3.0:
                length = rng.uniform(3.8, 4.8)
                if rng.random() < oc.cars_per_100m * (length + 2.0) / 100.0:
                    width = rng.uniform(1.7, 1.9)
                    c2 = a + d * (u + length / 2) + n * side * (road / 2 - 1.05)
                    yaw = float(np.arctan2(d[1], d[0]) + (np.pi if side < 0 else 0.0)
                                + rng.normal(0.0, 0.03))
                    if _clear_of_path(path_pts, c2, np.array([length, width]) / 2, yaw,
                                      oc.clearance):
                        g = float(ground.height(c2[None])[0])
                        hb, hc = rng.uniform(0.55, 0.75), rng.uniform(0.4, 0.55)
                        body_mat = mats.add("car")
                        fwd = np.array([np.cos(yaw), np.sin(yaw)])
                        bodies.append(([*c2, g + 0.25 + hb / 2], [length, width, hb], yaw,
                                       body_mat))
                        cc = c2 - fwd * length * rng.uniform(0.0, 0.1)
                        cabins.append(([*cc, g + 0.25 + hb + hc / 2],
                                       [length * rng.uniform(0.45, 0.6), width - 0.15, hc], yaw,
                                       mats.add("glass")))
                        lat = np.array([-fwd[1], fwd[0]])
                        for sx in (-1, 1):
                            for sy in (-1, 1):
                                p = c2 + fwd * sx * length * 0.32 + lat * sy * (width / 2 + 0.02)
                                wheels.append(([*p, g + 0.32], [*(-lat * sy), 0.0]))
                u += length + rng.uniform(0.5, 4.0)
    if bodies:
        for group in (bodies, cabins):
            mesh.add_boxes(np.array([g[0] for g in group]), np.array([g[1] for g in group]),
                           np.array([g[2] for g in group]), np.array([g[3] for g in group]))
        mesh.add_cylinders(np.array([w[0] for w in wheels]), np.array([w[1] for w in wheels]),
                           0.32, 0.22, tyre, segments=12)

    # Props along the kerb side of every sidewalk.
    pole_mat, trunk_mat = mats.add("pole"), mats.add("trunk")
    boxes, cyls, blobs = [], [], []
    step = 100.0 / max(oc.props_per_100m, 1e-3)
    for (x0, x1) in bx:
        for (y0, y1) in by:
            edges = [(np.array([x0, y0]), np.array([x1, y0]), np.array([0.0, 1.0])),
                     (np.array([x1, y0]), np.array([x1, y1]), np.array([-1.0, 0.0])),
                     (np.array([x1, y1]), np.array([x0, y1]), np.array([0.0, -1.0])),
                     (np.array([x0, y1]), np.array([x0, y0]), np.array([1.0, 0.0]))]
            for a, b, inward in edges:
                d = (b - a) / np.linalg.norm(b - a)
                u = rng.uniform(1.0, step)
                while u < np.linalg.norm(b - a) - 1.0:
                    p = a + d * u + inward * 0.6
                    g = float(ground.height(p[None])[0])
                    kind = rng.choice(["lamp", "sign", "tree", "bin", "bollard"],
                                      p=[0.3, 0.2, 0.25, 0.1, 0.15])
                    radius = {"lamp": 0.1, "sign": 0.35, "tree": 1.8, "bin": 0.35,
                              "bollard": 0.1}[kind]
                    if _clear_of_path(path_pts, p, np.full(2, radius), 0.0, oc.clearance):
                        if kind == "lamp":
                            h = rng.uniform(4.5, 7.0)
                            cyls.append((p, g, rng.uniform(0.07, 0.12), h, pole_mat))
                            arm = p - inward * 0.6
                            boxes.append(([*arm, g + h], [1.2 * abs(inward[0]) + 0.12,
                                                          1.2 * abs(inward[1]) + 0.12, 0.12],
                                          pole_mat))
                        elif kind == "sign":
                            h = rng.uniform(2.2, 2.8)
                            cyls.append((p, g, 0.04, h, pole_mat))
                            boxes.append(([*p, g + h - 0.3], [0.6 * abs(d[0]) + 0.04,
                                                              0.6 * abs(d[1]) + 0.04, 0.5],
                                          mats.add("ramp" if rng.random() < 0.5 else "car")))
                        elif kind == "tree":
                            h = rng.uniform(2.0, 3.0)
                            cyls.append((p, g, rng.uniform(0.12, 0.2), h + 0.5, trunk_mat))
                            r = rng.uniform(1.2, 1.8)
                            blobs.append(([*p, g + h + r * 0.7], [r, r, r * 0.9],
                                          mats.add("tree")))
                        elif kind == "bin":
                            boxes.append(([*p, g + 0.45], [0.5, 0.5, 0.9], mats.add("car")))
                        else:
                            cyls.append((p, g, rng.uniform(0.08, 0.12), rng.uniform(0.8, 1.0),
                                         pole_mat))
                    u += step * rng.uniform(0.5, 1.5)
    # Loading ramps against facades (on the sidewalk, rising towards the building).
    n_ramps = int(rng.integers(oc.loading_ramps[0], oc.loading_ramps[1] + 1))
    for _ in range(n_ramps):
        (x0, x1), (y0, y1) = bx[rng.integers(len(bx))], by[rng.integers(len(by))]
        side = int(rng.integers(4))
        run, width, rise = min(rng.uniform(1.2, 2.0), walk - 0.3), rng.uniform(1.5, 3.0), \
            rng.uniform(0.3, 0.7)
        if side == 0:
            c, yaw = np.array([rng.uniform(x0 + 3, x1 - 3), y0 + walk - run / 2]), np.pi / 2
        elif side == 1:
            c, yaw = np.array([rng.uniform(x0 + 3, x1 - 3), y1 - walk + run / 2]), -np.pi / 2
        elif side == 2:
            c, yaw = np.array([x0 + walk - run / 2, rng.uniform(y0 + 3, y1 - 3)]), 0.0
        else:
            c, yaw = np.array([x1 - walk + run / 2, rng.uniform(y0 + 3, y1 - 3)]), np.pi
        if _clear_of_path(path_pts, c, np.array([run, width]) / 2, yaw, oc.clearance):
            g = float(ground.height(c[None])[0])
            mesh.add_wedges(np.array([[c[0], c[1], g - 0.05]]), [run, width, rise + 0.05], yaw,
                            mats.add("ramp"))
    if boxes:
        mesh.add_boxes(np.array([b[0] for b in boxes]), np.array([b[1] for b in boxes]), 0.0,
                       np.array([b[2] for b in boxes]))
    if cyls:
        mesh.add_cylinders(np.array([[c[0][0], c[0][1], c[1] - 0.1] for c in cyls]),
                           [0.0, 0.0, 1.0], np.array([c[2] for c in cyls]),
                           np.array([c[3] + 0.1 for c in cyls]), np.array([c[4] for c in cyls]))
    if blobs:
        mesh.add_blobs(np.array([b[0] for b in blobs]), np.array([b[1] for b in blobs]),
                       np.array([b[2] for b in blobs]))
