"""Procedural outdoor scenes: a street-canyon city.

Blocks of buildings of different heights with facade textures, raised sidewalks with
kerbs, an uneven ground with speed-table ramps on the driven streets, parked cars (body,
cabin, wheels), lamps, signs, trees, bins, bollards and loading ramps, closed by a ring of
buildings (odom frame, metres; a numpy Generator fixes the layout).
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


def build_outdoor(rng: np.random.Generator, config: SynthConfig) -> Scene:
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
                    if clear_of_path(path_pts, c2, np.array([length, width]) / 2, yaw,
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
                    if clear_of_path(path_pts, p, np.full(2, radius), 0.0, oc.clearance):
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
        if clear_of_path(path_pts, c, np.array([run, width]) / 2, yaw, oc.clearance):
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
