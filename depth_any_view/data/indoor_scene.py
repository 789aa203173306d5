"""Procedural indoor scenes: a ring of rooms and corridors rasterised on a floor plan.

Walls stand where free cells meet solid ones; floor and ceiling, side rooms behind doors,
furniture-like boxes (cabinets, tables, crates, pictures) and columns, all kept clear of
the route (odom frame, metres; a numpy Generator fixes the layout).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from depth_any_view.data.base_trajectory import FilletPath
from depth_any_view.data.scene_mesh import (
    HeightField,
    MeshBuilder,
    Scene,
    assemble_scene,
    clear_of_path,
)
from depth_any_view.data.synth_config import SynthConfig
from depth_any_view.data.textures import MaterialLibrary


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


def build_indoor(rng: np.random.Generator, config: SynthConfig) -> Scene:
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
        return bool(plan.is_free(pts).all()) and clear_of_path(path_pts, center, half, yaw,
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
