"""Building one shifted-world scene: the indoor room or the outdoor yard, its objects and
clutter placed clear of the rig, and its lighting (see data/shifted_world.py)."""

from __future__ import annotations

import math

import numpy as np

from depth_any_view.data.random_rig import RandomRig
from depth_any_view.data.shifted_config import ShiftedConfig
from depth_any_view.data.shifted_mesh import (
    GroundPlane,
    MeshSoup,
    ShiftedScene,
    box_mesh,
    cylinder_mesh,
    rock_mesh,
    sphere_mesh,
    wedge_mesh,
)
from depth_any_view.data.shifted_motion import Motion
from depth_any_view.data.shifted_render import (
    PHOTO,
    Lighting,
    draw_materials,
    triplanar_axes,
)

SHIFTED_KINDS = ("indoor", "outdoor")
NEAR_TILE = 5.0  # metres, ground tiles out to +/- 40 m; beyond, four big quads
GROUND_EXTENT = 300.0  # metres, half-size of the outdoor ground
MATERIALS = 160  # materials drawn per scene (objects pick from them)


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
