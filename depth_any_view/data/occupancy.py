"""Ground-truth occupancy labels of a synthetic frame in a VoxelGrid around base_link.

Frames: the grid is axis-aligned in base_link (it moves and turns with the robot); voxel
(i, j, k) has its centre at lower + (index + 0.5) * voxel_size (metres), arrays are
indexed [i, j, k] = [x, y, z]. Labels (uint8): FREE = 0, OCCUPIED = 1, UNKNOWN = 255.

- OCCUPIED is geometric: the voxel contains scene surface, seen or not. Surfaces are the
  scene's triangles near the grid, sampled on a lattice with a spacing of
  `sample_spacing_vox` voxel edges measured in voxel units (so thin z voxels get dense
  samples), plus every back-projected depth pixel. Marking the depth points themselves
  guarantees the invariant "every back-projected ground-truth point inside the grid lies
  in an OCCUPIED voxel"; a point within `point_eps` metres of a voxel face marks both
  voxels, so float round-off in someone else's back-projection cannot break it.
- FREE: some camera's ray passed through the voxel before its hit. Voxel centres are
  projected into every camera once (the grid is fixed in base_link); a voxel is free when
  its centre is in front of the depth at its nearest pixel by a margin (`free_margin` +
  `free_margin_rel` * depth); NaN depth counts as free up to max range.
  OCCUPIED wins over FREE.
- Moving objects (`dynamic`, the frame's `DynamicMesh`) count as surfaces of that frame
  only: their triangles are sampled like the scene's, and the rendered depth already
  stops at them, so space behind them is not FREE and space they left is labelled anew.
- UNKNOWN: everything else (out of view, occluded, beyond range, inside solids).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from depth_any_view.data.parallel import num_threads, submit_all
from depth_any_view.data.scenes import Scene, tessellate
from depth_any_view.data.synth_config import OccupancyConfig
from depth_any_view.geometry.camera import PinholeCamera
from depth_any_view.geometry.grid import FREE, OCCUPIED, UNKNOWN, VoxelGrid
from depth_any_view.geometry.transforms import invert_transform, transform_points

if TYPE_CHECKING:
    from depth_any_view.data.dynamic import DynamicMesh

MAX_SAMPLES_PER_CHUNK = 4_000_000  # surface samples generated at once (memory bound)
OCC_MAX_EDGE = 2.0  # metres: scene triangles are split to this size for sampling
OCC_Z_MARGIN = 5.0  # metres of height band kept around the grid for tilted bases


def lattice_chunks(q: np.ndarray, spacing: float) -> Iterator[list[np.ndarray]]:
    """Points on triangles q (F, 3, 3) every <= `spacing` along two edges, yielded in chunks
    of at most MAX_SAMPLES_PER_CHUNK candidates as coordinate lists [x, y, z], each (M,).

    The lattice q0 + (i / n1) e1 + (j / n2) e2 with i / n1 + j / n2 <= 1 is built from the
    vertex opposite the longest edge, so e1, e2 are the two shorter edges.
    """
    if q.shape[0] == 0:
        return
    edge_len = np.linalg.norm(np.roll(q, -1, axis=1) - np.roll(q, 1, axis=1), axis=2)  # (F, 3)
    apex = np.argmax(edge_len, axis=1)  # vertex k is opposite edge (k+1, k+2)
    order = (apex[:, None] + np.arange(3)[None]) % 3
    q = np.take_along_axis(q, order[:, :, None], axis=1).astype(np.float32)
    e1, e2 = q[:, 1] - q[:, 0], q[:, 2] - q[:, 0]  # (F, 3)
    n1 = np.maximum(np.ceil(np.linalg.norm(e1, axis=1) / spacing), 1).astype(np.int32)
    n2 = np.maximum(np.ceil(np.linalg.norm(e2, axis=1) / spacing), 1).astype(np.int32)
    inv1, inv2 = (1.0 / n1).astype(np.float32), (1.0 / n2).astype(np.float32)
    base = [np.ascontiguousarray(q[:, 0, a]) for a in range(3)]
    d1 = [np.ascontiguousarray(e1[:, a]) for a in range(3)]
    d2 = [np.ascontiguousarray(e2[:, a]) for a in range(3)]
    counts = (n1.astype(np.int64) + 1) * (n2 + 1)
    csum = np.cumsum(counts)
    start = 0
    while start < q.shape[0]:  # chunks of whole triangles
        offset = csum[start - 1] if start else 0
        stop = max(int(np.searchsorted(csum, offset + MAX_SAMPLES_PER_CHUNK, side="right")),
                   start + 1)
        c = counts[start:stop]
        tri = np.repeat(np.arange(start, stop, dtype=np.int32), c)
        k = (np.arange(int(c.sum()), dtype=np.int64)
             - np.repeat(np.cumsum(c) - c, c)).astype(np.int32)  # index within its triangle
        m2 = n2[tri] + 1
        i = k // m2
        a = i * inv1[tri]
        b = (k - i * m2) * inv2[tri]
        keep = np.flatnonzero(a + b <= np.float32(1.0 + 1e-6))
        tri, a, b = tri[keep], a[keep], b[keep]
        yield [base[x][tri] + a * d1[x][tri] + b * d2[x][tri] for x in range(3)]
        start = stop


def lattice_samples(q: np.ndarray, spacing: float) -> np.ndarray:
    """Points (M, 3) float32 on triangles q (F, 3, 3) every <= `spacing` along two edges
    (see `lattice_chunks`)."""
    parts = [np.stack(c, axis=1) for c in lattice_chunks(np.asarray(q), spacing)]
    return np.concatenate(parts) if parts else np.zeros((0, 3), np.float32)


class OccupancyLabeler:
    """Labels a grid fixed in base_link from the scene and the rendered depth of a rig."""

    def __init__(self, grid: VoxelGrid, cameras: Sequence[PinholeCamera], T_base_cam: np.ndarray,
                 *, max_range: float, config: OccupancyConfig | None = None) -> None:
        """Project the voxel centres into every camera once.

        Args:
            grid: the volume, axis-aligned in base_link.
            cameras: V distortion-free cameras of one image size.
            T_base_cam: (V, 4, 4) optical frame -> base_link.
            max_range: metres along z; NaN depth means free up to here.
            config: margins and sampling density (defaults: OccupancyConfig()).
        """
        self.grid = grid
        self.config = config or OccupancyConfig()
        self.max_range = float(max_range)
        self.T_base_cam = np.asarray(T_base_cam, dtype=np.float64)
        self.width, self.height = cameras[0].width, cameras[0].height
        axes = [grid.lower[a] + (np.arange(grid.dims[a]) + 0.5) * grid.voxel_size[a]
                for a in range(3)]  # voxel centre coordinates per axis, metres
        self._views = []  # per camera: voxel ids, pixel ids, centre depth
        for v, cam in enumerate(cameras):
            T_cam_base = invert_transform(self.T_base_cam[v])
            R, t = T_cam_base[:3, :3], T_cam_base[:3, 3]
            # Centres in the camera frame, separably: R c = R_x x + R_y y + R_z z.
            z_cam = (R[2, 0] * axes[0][:, None, None] + R[2, 1] * axes[1][None, :, None]
                     + R[2, 2] * axes[2][None, None, :] + t[2]).reshape(-1)  # (G,)
            cand = np.flatnonzero((z_cam > 0.05) & (z_cam < self.max_range))
            ijk = np.unravel_index(cand, grid.dims)
            centers = np.stack([axes[a][ijk[a]] for a in range(3)], axis=1)  # (M, 3)
            p_cam = centers @ R.T + t
            uv, valid = cam.project(p_cam)
            vox = cand[valid]
            u = np.clip(np.rint(uv[valid, 0]), 0, self.width - 1).astype(np.int64)
            r = np.clip(np.rint(uv[valid, 1]), 0, self.height - 1).astype(np.int64)
            self._views.append((vox, r * self.width + u, p_cam[valid, 2].astype(np.float32)))
        rays = np.stack([c.pixel_rays() for c in cameras])  # (V, H, W, 3)
        self._rays_base = np.einsum("vij,vhwj->vhwi", self.T_base_cam[:, :3, :3], rays)
        self._origins_base = self.T_base_cam[:, :3, 3]  # (V, 3)
        size, lower = grid.voxel_size, np.asarray(grid.lower)
        self._rays_vox = np.ascontiguousarray(
            (self._rays_base / size).reshape(len(cameras), -1, 3).transpose(0, 2, 1),
            dtype=np.float32)  # (V, 3, H*W) pixel rays in voxel units per metre of depth
        self._origin_vox = (self._origins_base - lower) / size  # (V, 3) voxel units
        self._corners = np.array([[x, y, z] for x in (grid.lower[0], grid.upper[0])
                                  for y in (grid.lower[1], grid.upper[1])
                                  for z in (grid.lower[2], grid.upper[2])])  # (8, 3)
        # Farthest grid corner from each camera: deeper pixels cannot land in the grid.
        self._reach = np.linalg.norm(self._corners[None] - self._origins_base[:, None],
                                     axis=2).max(axis=1) + 1e-3  # (V,) metres

    # ------------------------------------------------------------------ FREE
    def free_mask(self, depth: np.ndarray) -> np.ndarray:
        """Voxels (G,) bool whose centre some camera sees in front of its depth (V, H, W):
        z_centre < d - (free_margin + free_margin_rel * d), d the depth at the nearest pixel
        (max range where it is NaN or 0)."""
        cfg = self.config
        free = np.zeros(int(np.prod(self.grid.dims)), bool)
        for v, (vox, pix, z) in enumerate(self._views):
            d = depth[v].reshape(-1)[pix]
            d = np.where(np.isfinite(d) & (d > 0), np.minimum(d, self.max_range),
                         self.max_range).astype(np.float32)
            free[vox[z < d - (cfg.free_margin + cfg.free_margin_rel * d)]] = True
        return free

    # ------------------------------------------------------------------ OCCUPIED
    def _flat(self, idx: np.ndarray) -> np.ndarray:
        """Flat voxel ids (N,) of in-grid indices (N, 3)."""
        nx, ny, nz = self.grid.dims
        return (idx[:, 0] * ny + idx[:, 1]) * nz + idx[:, 2]

    def _cells_to_ids(self, cell: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Flat ids (N,) int64 and in-grid mask (N,) of voxel cells [i, j, k] given as
        floored float coordinates (float math is exact while ids stay below 2**24)."""
        dims = self.grid.dims
        inside = np.ones(cell[0].shape, bool)
        for c, n in zip(cell, dims):
            inside &= (c >= 0) & (c < n)
        if int(np.prod(dims)) > 2**24:
            cell = [c.astype(np.int64) for c in cell]
        flat = (cell[0] * dims[1] + cell[1]) * dims[2] + cell[2]
        return flat.astype(np.int64), inside

    def _voxel_ids(self, q: list[np.ndarray]) -> np.ndarray:
        """Flat ids of the voxels holding points given as coordinates [qx, qy, qz], each (N,)
        in voxel units, plus, for a point within `point_eps` metres of a voxel face, the
        neighbour across it. Works per component on 1-D arrays (the hot path)."""
        dims = self.grid.dims
        cell = [np.floor(c) for c in q]  # exact small integers in float
        flat, inside = self._cells_to_ids(cell)
        out = [flat[inside]]
        if self.config.point_eps > 0 and q[0].size:
            eps = self.config.point_eps / self.grid.voxel_size  # voxel units per axis
            near = np.zeros(q[0].shape, bool)
            for c, k, e in zip(q, cell, eps):
                f = c - k
                near |= (f < e) | (f > 1 - e)
            sel = np.flatnonzero(near)
            idx = np.stack([k[sel] for k in cell], axis=1).astype(np.int64)  # (M, 3)
            frac = np.stack([c[sel] for c in q], axis=1) - idx
            shift = (frac > 1 - eps).astype(np.int64) - (frac < eps).astype(np.int64)
            for bits in range(1, 8):  # every combination of the neighbours across faces
                pick = np.array([(bits >> a) & 1 for a in range(3)], bool)
                cand = idx + np.where(pick, shift, 0)
                ok = np.all((cand >= 0) & (cand < np.asarray(dims)), axis=1)
                out.append(self._flat(cand[ok]))
        return np.concatenate(out)

    def point_voxels(self, points: np.ndarray) -> np.ndarray:
        """Flat ids of the voxels holding points (N, 3) base_link (metres), plus, for a point
        within `point_eps` of a voxel face, the neighbour across it (indexing as
        `VoxelGrid.points_to_index`: floor((p - lower) / voxel_size))."""
        q = (np.asarray(points, np.float64) - np.asarray(self.grid.lower)) / self.grid.voxel_size
        return self._voxel_ids([q[:, 0], q[:, 1], q[:, 2]])

    def depth_voxels(self, depth: np.ndarray, view: int) -> np.ndarray:
        """`point_voxels` of the back-projected depth of one view, computed directly in voxel
        units (float32 when `point_eps` >= 0.1 mm, which covers its round-off)."""
        d = depth[view].reshape(-1)
        sel = np.flatnonzero(d <= self._reach[view])  # NaN compares False
        dtype = np.float32 if self.config.point_eps >= 1e-4 else np.float64
        ds = d[sel].astype(dtype)
        rq, q0 = self._rays_vox[view], self._origin_vox[view]  # (3, H*W), (3,)
        return self._voxel_ids([rq[a][sel].astype(dtype) * ds + dtype(q0[a]) for a in range(3)])

    def _surface_lattice(self, scene: Scene, T_odom_base: np.ndarray) -> np.ndarray:
        """Triangles near the grid (F', 3, 3) in voxel units of base_link."""
        grid = self.grid
        zg = scene.ground.z_range
        band = (zg[0] + grid.lower[2] - OCC_Z_MARGIN, zg[1] + grid.upper[2] + OCC_Z_MARGIN)
        tris, lo, hi = scene.occupancy_triangles(OCC_MAX_EDGE, band)
        T = np.asarray(T_odom_base, dtype=np.float64)
        c_odom = transform_points(T, self._corners)  # (8, 3)
        box_lo, box_hi = c_odom.min(axis=0) - 1e-3, c_odom.max(axis=0) + 1e-3
        near = np.flatnonzero(np.all((hi >= box_lo) & (lo <= box_hi), axis=1))
        return self._in_voxel_units(tris[near], T)

    def _in_voxel_units(self, tris: np.ndarray, T: np.ndarray) -> np.ndarray:
        """Triangles (F, 3, 3) odom -> those touching the grid (F', 3, 3) in voxel units of
        base_link at pose T (4, 4)."""
        grid = self.grid
        # Into voxel units: q = (R^T (p - t) - lower) / voxel_size.
        size = grid.voxel_size
        A = T[:3, :3] / size[None, :]  # (3, 3)
        b = -(T[:3, 3] @ T[:3, :3]) / size - np.asarray(grid.lower) / size
        q = tris.astype(np.float64) @ A + b  # (F', 3, 3) voxel units
        dims = np.asarray(grid.dims, dtype=np.float64)
        return q[np.all((q.max(axis=1) >= 0) & (q.min(axis=1) <= dims), axis=1)]

    def _dynamic_lattice(self, dynamic: DynamicMesh | None, T_odom_base: np.ndarray
                         ) -> np.ndarray:
        """Triangles of the moving objects in the grid (F', 3, 3), voxel units of base_link."""
        if dynamic is None or not dynamic.num_triangles:
            return np.zeros((0, 3, 3))
        tris = tessellate(dynamic.triangles(), OCC_MAX_EDGE)
        return self._in_voxel_units(tris, np.asarray(T_odom_base, dtype=np.float64))

    def surface_points(self, scene: Scene, T_odom_base: np.ndarray,
                       dynamic: DynamicMesh | None = None) -> np.ndarray:
        """Lattice samples (M, 3) in base_link (metres) of the scene surfaces in the grid
        (and of the moving objects in `dynamic`)."""
        q = self._surface_lattice(scene, T_odom_base)
        if dynamic is not None:
            q = np.concatenate([q, self._dynamic_lattice(dynamic, T_odom_base)])
        samples = lattice_samples(q, self.config.sample_spacing_vox)  # (M, 3) voxel units
        return np.asarray(self.grid.lower) + samples * self.grid.voxel_size

    def _lattice_voxels(self, q: np.ndarray) -> np.ndarray:
        """Flat ids of voxels hit by lattice samples of triangles q (F, 3, 3), voxel units."""
        out = [np.zeros(0, np.int64)]
        for comp in lattice_chunks(q, self.config.sample_spacing_vox):
            flat, inside = self._cells_to_ids([np.floor(c) for c in comp])
            out.append(flat[inside])
        return np.concatenate(out)

    # ------------------------------------------------------------------ labels
    def label(self, scene: Scene, T_odom_base: np.ndarray, depth: np.ndarray,
              dynamic: DynamicMesh | None = None) -> np.ndarray:
        """Labels (nx, ny, nz) uint8 for base pose `T_odom_base` and rendered depth
        (V, H, W) metres (NaN = no hit within max range), with the moving objects of
        `dynamic` (rendered into that depth) as surfaces of this frame."""
        q = self._surface_lattice(scene, T_odom_base)
        parts = np.array_split(np.arange(q.shape[0]), num_threads())
        jobs = [lambda part=part: self._lattice_voxels(q[part]) for part in parts]
        if dynamic is not None:
            q_dyn = self._dynamic_lattice(dynamic, T_odom_base)
            jobs.append(lambda: self._lattice_voxels(q_dyn))
        jobs += [lambda v=v: self.depth_voxels(depth, v) for v in range(depth.shape[0])]
        futures = submit_all(jobs)  # voxel ids in parallel threads
        free = self.free_mask(depth)
        occupied = [f.result() for f in futures]
        occ = np.full(int(np.prod(self.grid.dims)), UNKNOWN, np.uint8)
        occ[free] = FREE
        for ids in occupied:  # OCCUPIED wins over FREE
            occ[ids] = OCCUPIED
        return occ.reshape(self.grid.dims)

