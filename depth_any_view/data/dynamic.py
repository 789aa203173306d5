"""Moving objects of the synthetic world: persons and cars crossing near the robot.

Frames and units: odom (x, y horizontal, z up), metres, seconds (from the start of the
scene segment), m/s, radians. A person is a vertical cylinder (radius, height) standing on
the ground, a car a box (length along its heading, width, height) resting on it.

Motion: each object moves at a constant speed along a straight line through a crossing
point; it is there at its crossing time. Crossing points lie on or beside the robot's
route, some metres from where the robot is at that time: persons cross its path (or walk
along it, beside the robot or ahead of it), cars drive past it in the next lane (mostly
oncoming), cross its path farther ahead where a street crosses, or drive ahead of it in
its lane. The object goes back and forth inside the stretch of its line that is free of
static geometry (a piecewise-linear path turning at the ends of the stretch), so it never
enters a wall, a building or furniture.

Placement is drawn from a seeded generator and kept only when a simple clearance test
passes, with rays cast in the static scene: the crossing point is in sight of the route
(so it is not inside anything), the object's cross-section fits there with `margin` to
spare, and rays along its line at several heights and lateral offsets bound the free
stretch. Objects also keep `robot_clearance` from the base_link origin (exact footprint)
and `margin` from each other (footprints as discs) in every frame. An object that finds
no place within `tries` draws is left out.

Rendering: `DynamicWorld.at(t)` gives the objects' meshes at time t (`DynamicMesh`), with
their own small ray casting scene (the static scene stays as built; the renderer keeps the
nearer of the two hits per ray) and texture frames glued to each object, so patterns move
with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from depth_any_view.data.frame import DYNAMIC_KINDS, DynamicState
from depth_any_view.data.scenes import HeightField, MeshBuilder, Scene
from depth_any_view.data.synth_config import DynamicConfig
from depth_any_view.data.textures import (
    MaterialLibrary,
    MaterialTable,
    merge_tables,
    surface_frames,
)

PERSON, CAR = DYNAMIC_KINDS.index("person"), DYNAMIC_KINDS.index("car")
CYLINDER_SEGMENTS = 16  # sides of a person's cylinder
IDS_PER_SEGMENT = 1000  # object ids are segment * IDS_PER_SEGMENT + k
_FAR = 1e3  # metres: a ray that hits nothing counts as free this far
ROUTE_STEP = 0.25  # metres between the route samples that crossing points are taken from


@dataclass(frozen=True)
class MovingObject:
    """One object moving back and forth along a line (odom, metres, seconds)."""

    id: int
    kind: int  # index into DYNAMIC_KINDS
    size: tuple[float, float, float]  # length (along the heading), width, height
    anchor: tuple[float, float]  # crossing point xy, where it is at t_cross
    direction: tuple[float, float]  # unit xy direction of travel at t_cross
    speed: float  # m/s
    t_cross: float  # seconds from the segment start
    lo: float  # free stretch along `direction` relative to the anchor, metres (lo <= 0)
    hi: float  # (hi >= 0)
    material: int  # id in the DynamicWorld's material table

    def motion(self, t: Any) -> tuple[np.ndarray, np.ndarray]:
        """Centres xy (N, 2) and signed speeds along `direction` (N,) at times t (N,) s."""
        t = np.atleast_1d(np.asarray(t, np.float64))
        span = self.hi - self.lo
        d = np.asarray(self.direction)
        if span <= 1e-9:
            return np.broadcast_to(np.asarray(self.anchor), (t.size, 2)).copy(), np.zeros(t.size)
        m = np.mod(-self.lo + self.speed * (t - self.t_cross), 2.0 * span)  # triangle wave
        forward = m < span
        u = self.lo + np.where(forward, m, 2.0 * span - m)
        return np.asarray(self.anchor) + u[:, None] * d, np.where(forward, self.speed,
                                                                  -self.speed)

    def distance(self, xy: np.ndarray, points: np.ndarray) -> np.ndarray:
        """Horizontal distance (N,) metres from points (N, 2) to the footprint centred at
        xy (N, 2) (0 inside)."""
        length, width, _ = self.size
        rel = np.asarray(points, np.float64) - xy
        if self.kind == PERSON:
            return np.maximum(np.linalg.norm(rel, axis=1) - 0.5 * width, 0.0)
        d = np.asarray(self.direction)
        local = np.stack([rel @ d, rel @ np.array([-d[1], d[0]])], axis=1)
        return np.linalg.norm(np.maximum(np.abs(local) - [0.5 * length, 0.5 * width], 0.0),
                              axis=1)

    def discs(self, xy: np.ndarray) -> tuple[np.ndarray, float]:
        """Footprint as discs: centres (N, D, 2) for centres xy (N, 2), and their radius."""
        length, width, _ = self.size
        if self.kind == PERSON:
            return xy[:, None, :], 0.5 * width
        along = np.array([-1.0, 0.0, 1.0]) * length / 3.0
        centres = xy[:, None, :] + along[None, :, None] * np.asarray(self.direction)
        return centres, float(np.hypot(length / 6.0, width / 2.0))


@dataclass
class DynamicMesh:
    """The moving objects at one time: their state and triangles (odom)."""

    state: DynamicState
    vertices: np.ndarray  # (N, 3) float32
    faces: np.ndarray  # (F, 3) int32
    face_material: np.ndarray  # (F,) int32, ids into `materials`
    face_tu: np.ndarray  # (F, 3) float32 texture axes (see textures.py)
    face_tv: np.ndarray  # (F, 3) float32
    face_st: np.ndarray  # (F, 2) float32 texture offsets, metres (glue patterns to objects)
    materials: MaterialTable  # the scene's materials followed by the objects'
    _raycaster: Any = field(default=None, repr=False)

    @property
    def num_triangles(self) -> int:
        """Number of triangles."""
        return int(self.faces.shape[0])

    def triangles(self) -> np.ndarray:
        """Triangle corners (F, 3, 3) float32, odom."""
        return self.vertices[self.faces]

    def raycasting_scene(self) -> Any:
        """An Open3D `RaycastingScene` of these triangles only (built once)."""
        if self._raycaster is None:
            import open3d as o3d

            rc = o3d.t.geometry.RaycastingScene()
            if self.num_triangles:
                rc.add_triangles(o3d.core.Tensor(self.vertices),
                                 o3d.core.Tensor(self.faces.astype(np.uint32)))
            self._raycaster = rc
        return self._raycaster


class DynamicWorld:
    """The moving objects of one scene segment."""

    def __init__(self, objects: list[MovingObject], ground: HeightField,
                 materials: MaterialTable) -> None:
        """Objects on `ground`; `materials` = the scene's table followed by theirs."""
        self.objects = list(objects)
        self.ground = ground
        self.materials = materials

    def __len__(self) -> int:
        """Number of objects."""
        return len(self.objects)

    def state(self, t: float) -> DynamicState:
        """Ids, kinds, box centres, sizes, yaws and velocities at time t (s)."""
        k = len(self.objects)
        xy, v = np.zeros((k, 2)), np.zeros(k)
        for i, obj in enumerate(self.objects):
            p, s = obj.motion(t)
            xy[i], v[i] = p[0], s[0]
        size = np.array([o.size for o in self.objects], np.float64).reshape(k, 3)
        direction = np.array([o.direction for o in self.objects], np.float64).reshape(k, 2)
        g = self.ground.height(xy) if k else np.zeros(0)
        vel = np.zeros((k, 3))
        vel[:, :2] = direction * v[:, None]
        heading = np.arctan2(direction[:, 1], direction[:, 0]) + np.where(v < 0, np.pi, 0.0)
        return DynamicState(id=[o.id for o in self.objects], kind=[o.kind for o in self.objects],
                            center=np.column_stack([xy, g + 0.5 * size[:, 2]]), size=size,
                            yaw=np.arctan2(np.sin(heading), np.cos(heading)), velocity=vel)

    def at(self, t: float) -> DynamicMesh:
        """The objects' state and triangles at time t (s)."""
        state = self.state(t)
        mesh = MeshBuilder()
        counts, centres = [], []
        for obj, c, size, yaw in zip(self.objects, state.center, state.size, state.yaw):
            if obj.kind == PERSON:
                mesh.add_cylinders(np.array([[c[0], c[1], c[2] - 0.5 * size[2]]]),
                                   [0.0, 0.0, 1.0], 0.5 * size[0], size[2], obj.material,
                                   segments=CYLINDER_SEGMENTS)
                counts.append(4 * CYLINDER_SEGMENTS)
            else:
                mesh.add_boxes(c[None], size[None], yaw, obj.material)
                counts.append(12)
            centres.append(c)
        if not self.objects:
            empty3 = np.zeros((0, 3), np.float32)
            return DynamicMesh(state, empty3, np.zeros((0, 3), np.int32), np.zeros(0, np.int32),
                               empty3, empty3, np.zeros((0, 2), np.float32), self.materials)
        verts, faces, mats = mesh.build()
        tri = verts[faces].astype(np.float64)
        n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
        tu, tv = surface_frames(n)
        c = np.repeat(np.asarray(centres), counts, axis=0)  # (F, 3) centre of each face's object
        st = -np.stack([np.einsum("ij,ij->i", c, tu), np.einsum("ij,ij->i", c, tv)], axis=1)
        return DynamicMesh(state, verts, faces, mats, tu, tv, st.astype(np.float32),
                           self.materials)


def _ray_hits(raycaster: Any, origins: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    """Open3D t_hit (N,) of rays (origins, dirs (N, 3)), in units of each dir's length."""
    import open3d as o3d

    rays = np.concatenate([origins, dirs], axis=1).astype(np.float32)
    return raycaster.cast_rays(o3d.core.Tensor(rays))["t_hit"].numpy()


def free_stretch(raycaster: Any, ground: HeightField, free_xy: np.ndarray,
                 anchor: np.ndarray, direction: np.ndarray, size: tuple[float, float, float],
                 margin: float, z_min: float = 0.3) -> tuple[float, float] | None:
    """The clearance test: the free stretch (lo, hi) metres along `direction` (2,) from
    `anchor` (2,) over which an object of `size` (length, width, height) keeps `margin`
    from the static scene, or None when the anchor is out of sight of `free_xy` (2,), a
    point known to be free (on the robot's route), or the object does not fit there. Rays
    run at heights from z_min to the object's top above the ground at the anchor."""
    length, width, height = size
    d = np.array([direction[0], direction[1], 0.0])
    n = np.array([-direction[1], direction[0], 0.0])
    g = float(ground.height(anchor[None])[0])
    g_free = float(ground.height(free_xy[None])[0])
    heights = np.arange(z_min, height - 0.05 + 1e-9, 0.15)
    if heights.size == 0:
        heights = np.array([0.5 * height])
    centre = np.array([anchor[0], anchor[1], g])
    half_w = 0.5 * width + margin
    lateral = np.linspace(-half_w, half_w, 3 if width <= 1.0 else 5)
    # In sight of a free point (so not inside any closed geometry), at two heights.
    look = np.array([min(0.5, height / 2), min(1.2, height - 0.05)])
    o_look = np.column_stack([np.repeat(free_xy[None], 2, 0), g_free + look])
    d_look = centre + look[:, None] * [0, 0, 1] - o_look
    # The cross-section fits: free from the centre line to both sides.
    o_side = centre + heights[:, None] * [0, 0, 1]  # (Hn, 3)
    o_side2 = np.concatenate([o_side, o_side])
    d_side = np.concatenate([np.tile(n * half_w, (heights.size, 1)),
                             np.tile(-n * half_w, (heights.size, 1))])
    # Along the line from every lateral offset and height, both ways (unit directions).
    o_line = (centre + lateral[:, None, None] * n + heights[None, :, None] * [0, 0, 1]
              ).reshape(-1, 3)
    o_line2 = np.concatenate([o_line, o_line])
    d_line = np.concatenate([np.tile(d, (o_line.shape[0], 1)), np.tile(-d, (o_line.shape[0], 1))])
    t = _ray_hits(raycaster, np.concatenate([o_look, o_side2, o_line2]),
                  np.concatenate([d_look, d_side, d_line]))
    n_look, n_side = 2, o_side2.shape[0]
    if np.any(t[:n_look] <= 1.0) or np.any(t[n_look:n_look + n_side] <= 1.0):
        return None
    t_line = np.minimum(t[n_look + n_side:], _FAR).reshape(2, -1)
    reach = 0.5 * length + margin
    hi, lo = float(t_line[0].min()) - reach, -(float(t_line[1].min()) - reach)
    if hi < 0.0 or lo > 0.0:
        return None
    return lo, hi


class _Route:
    """The robot's closed route sampled every ROUTE_STEP metres (odom xy)."""

    def __init__(self, points: np.ndarray) -> None:
        """Points (P, 2) in order around the loop."""
        self.points = points
        t = np.roll(points, -1, axis=0) - np.roll(points, 1, axis=0)
        self.tangent = t / np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-12)

    def ahead(self, xy: np.ndarray, heading: float, dist: float) -> tuple[np.ndarray, float]:
        """The route point `dist` metres (negative: behind) from the one nearest to xy (2,)
        in the direction of travel `heading` (rad), and the route's heading there (rad)."""
        i = int(np.argmin(np.sum((self.points - xy) ** 2, axis=1)))
        sign = 1 if self.tangent[i] @ [np.cos(heading), np.sin(heading)] >= 0 else -1
        k = (i + sign * int(round(dist / ROUTE_STEP))) % self.points.shape[0]
        t = sign * self.tangent[k]
        return self.points[k], float(np.arctan2(t[1], t[0]))


def plan_dynamic(scene: Scene, T_odom_base: np.ndarray, fps: float, rng: np.random.Generator,
                 config: DynamicConfig, *, noise_amp: tuple[float, float] = (0.15, 0.35),
                 first_id: int = 0) -> DynamicWorld:
    """Moving objects for a scene segment whose base poses are T_odom_base (N, 4, 4) at
    `fps` Hz (frame j at t = j / fps seconds), drawn from `rng`.

    Indoors `config.indoor_persons` persons; outdoors `outdoor_cars` cars (placed first:
    they need the most room) and `outdoor_persons` persons. Ids run from `first_id`.
    """
    cfg = config
    T = np.asarray(T_odom_base, np.float64).reshape(-1, 4, 4)
    robot_xy = T[:, :2, 3]
    heading = np.arctan2(T[:, 1, 0], T[:, 0, 0])
    times = np.arange(T.shape[0]) / float(fps)
    if scene.kind == "indoor":
        kinds = [PERSON] * cfg.indoor_persons
    else:
        kinds = [CAR] * cfg.outdoor_cars + [PERSON] * cfg.outdoor_persons
    lib = MaterialLibrary(rng, noise_amp)
    base = len(scene.materials)
    raycaster = scene.raycasting_scene()
    route = _Route(scene.path.points(ROUTE_STEP))
    placed: list[MovingObject] = []
    placed_discs: list[tuple[np.ndarray, float]] = []
    for kind in kinds:
        material = base + lib.add("vehicle" if kind == CAR else "clothing")
        if kind == CAR:
            size = (cfg.car_length, cfg.car_width, cfg.car_height)
            min_span, z_min = 3.0 * cfg.car_length, 0.45
        else:
            size = (2.0 * cfg.person_radius, 2.0 * cfg.person_radius, cfg.person_height)
            min_span, z_min = 2.0, 0.3
        for _ in range(cfg.tries):
            j = int(rng.integers(T.shape[0]))
            if kind == CAR:
                mode = rng.random()
                if mode < 0.6:  # in the next lane, mostly oncoming
                    along = rng.uniform(-2.0, cfg.ahead[1])
                    turn = np.pi if rng.random() < 0.7 else 0.0
                    side = rng.uniform(*cfg.car_offset)
                elif mode < 0.85:  # across the robot's path ahead (where a street crosses)
                    along = rng.uniform(0.8, 2.0) * cfg.ahead[1]
                    turn = rng.choice([-0.5, 0.5]) * np.pi
                    side = rng.uniform(-1.0, 1.0)
                else:  # ahead in the robot's lane, driving away
                    along = rng.uniform(0.8, 1.6) * cfg.ahead[1]
                    turn, side = 0.0, rng.uniform(-0.3, 0.3)
                turn += rng.normal(0.0, 0.03)
                speed = rng.uniform(*cfg.car_speed)
            else:
                along = rng.uniform(*cfg.ahead)
                mode = rng.random()
                if mode < 0.45:  # across the robot's path
                    turn = rng.choice([-0.5, 0.5]) * np.pi + rng.normal(0.0, 0.3)
                    side = rng.uniform(-1.0, 1.0)
                elif mode < 0.75:  # along it, towards the robot or away, beside its path
                    turn = (np.pi if rng.random() < 0.5 else 0.0) + rng.normal(0.0, 0.15)
                    side = rng.choice([-1.0, 1.0]) * rng.uniform(1.2, 2.5)
                else:  # on its path ahead of or behind the robot, walking away from it
                    along *= rng.choice([-1.0, 1.0])
                    turn = (np.pi if along < 0 else 0.0) + rng.normal(0.0, 0.1)
                    side = rng.uniform(-0.3, 0.3)
                speed = rng.uniform(*cfg.person_speed)
            on_route, h = route.ahead(robot_xy[j], heading[j], along)
            ang = h + turn
            anchor = on_route + side * np.array([-np.sin(h), np.cos(h)])
            direction = np.array([np.cos(ang), np.sin(ang)])
            stretch = free_stretch(raycaster, scene.ground, on_route, anchor, direction, size,
                                   cfg.margin, z_min)
            if stretch is None or stretch[1] - stretch[0] < min_span:
                continue
            obj = MovingObject(id=first_id + len(placed), kind=kind, size=size,
                               anchor=(float(anchor[0]), float(anchor[1])),
                               direction=(float(direction[0]), float(direction[1])),
                               speed=float(speed), t_cross=float(times[j]), lo=stretch[0],
                               hi=stretch[1], material=material)
            xy, _ = obj.motion(times)
            if obj.distance(xy, robot_xy).min() < cfg.robot_clearance:
                continue
            discs, radius = obj.discs(xy)  # (N, D, 2)
            if any((np.linalg.norm(discs[:, :, None] - other[:, None, :], axis=3) - radius
                    - r_other).min() < cfg.margin for other, r_other in placed_discs):
                continue
            placed.append(obj)
            placed_discs.append((discs, radius))
            break
    return DynamicWorld(placed, scene.ground, merge_tables(scene.materials, lib.table()))
