"""Free-space carving (mapping/carving.py) and what it does to the temporal map (fusion.py).

The scenes are analytic: axis-aligned boxes (a wall, a floor slab, a person-sized box) are
ray cast per pixel into depth maps of pinhole cameras, and the "network" volume is built
from those depth maps: the voxels holding a surface point are occupied (p = 0.9), every
other voxel is unobserved. Free space then comes from carving alone, so what clears a
voxel a moving obstacle left is the ray carving under test.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from depth_any_view.geometry.grid import FREE, OCCUPIED, UNKNOWN, VoxelGrid
from depth_any_view.geometry.transforms import make_transform
from depth_any_view.mapping.carving import DepthViews, carve_mask
from depth_any_view.mapping.fusion import FusionConfig, OccupancyFusion, ghost_voxels, logit

# Least fraction of the voxels a ray traverses that half-voxel sampling finds (a voxel the
# ray crosses for less than half a voxel is found with a probability below 1; measured
# 0.81..0.85 on these single, sparse rays).
COVERAGE = 0.75
PERIOD = 100_000_000  # 10 Hz, nanoseconds
SIZE = 128  # pixels, square images (the lite network size; carving stride 4)
VOXEL = 0.2  # metres
LOWER, UPPER = (-2.0, -4.0, -0.4), (8.0, 4.0, 2.4)  # metres around base_link: 50 x 40 x 14
GRID = VoxelGrid(LOWER, UPPER, (50, 40, 14))
# Optical frame -> base_link rotation of a camera looking along base +x (z fwd, x right,
# y down), and one looking along +y (the left camera).
R_FRONT = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
R_LEFT = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]) @ R_FRONT  # yaw 90
# Camera centres off the voxel lattice, so no sample sits exactly on a voxel face.
T_BASE_CAM = np.stack([make_transform(R_FRONT, [0.31, 0.05, 1.03]),
                       make_transform(R_LEFT, [0.07, 0.29, 1.07])])
K = np.array([[SIZE / 2, 0.0, (SIZE - 1) / 2], [0.0, SIZE / 2, (SIZE - 1) / 2],
              [0.0, 0.0, 1.0]])  # 90 degrees field of view
WALL = ((6.1, -6.0, -0.1), (6.5, 6.0, 2.0))  # (min, max) corners, metres in base_link
FLOOR = ((-2.0, -4.0, -0.5), (8.0, 4.0, -0.1))
PERSON = (0.6, 0.6, 1.7)  # metres: x, y, z extent of a person-sized box
PERSON_X = 2.9  # metres: its front face (seen by the front camera)


def person_box(y: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The person box with its centre at lateral position y (base_link), on the floor."""
    return ((PERSON_X, y - PERSON[1] / 2, -0.1), (PERSON_X + PERSON[0], y + PERSON[1] / 2,
                                                  -0.1 + PERSON[2]))


def render(boxes: list, T_frame_cam: np.ndarray, size: int = SIZE) -> np.ndarray:
    """Depth (V, size, size) metres along z of axis-aligned boxes (in the frame of
    T_frame_cam (V, 4, 4)) seen by pinhole cameras K; NaN where no box is hit."""
    Kc = K.copy()
    Kc[:2] *= size / SIZE
    Kc[:2, 2] = (size - 1) / 2
    v, u = np.mgrid[0:size, 0:size].astype(np.float64)
    rays = np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(Kc).T  # (h, w, 3), z = 1
    out = []
    for T in T_frame_cam:
        d = rays @ T[:3, :3].T  # (h, w, 3) in the frame, per metre of depth
        o = T[:3, 3]
        best = np.full(d.shape[:2], np.inf)
        with np.errstate(divide="ignore", invalid="ignore"):
            for lo, hi in boxes:
                t0 = (np.asarray(lo) - o) / d
                t1 = (np.asarray(hi) - o) / d
                near = np.nanmax(np.minimum(t0, t1), axis=-1)
                far = np.nanmin(np.maximum(t0, t1), axis=-1)
                hit = (far >= near) & (near > 0)
                best = np.where(hit & (near < best), near, best)
        out.append(np.where(np.isfinite(best), best, np.nan))
    return np.stack(out).astype(np.float32)


def hits_volume(depth: np.ndarray, T_base_cam: np.ndarray, grid: VoxelGrid = GRID,
                size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """A depth-only "network" volume on `grid` (base_link): p = 0.9 in the voxels holding a
    back-projected depth point, everything else unobserved."""
    Kc = K.copy()
    Kc[:2] *= size / SIZE
    Kc[:2, 2] = (size - 1) / 2
    v, u = np.mgrid[0:size, 0:size].astype(np.float64)
    rays = np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(Kc).T
    pts = [(rays * depth[i][..., None]) @ T[:3, :3].T + T[:3, 3]
           for i, T in enumerate(T_base_cam)]
    pts = np.concatenate([p.reshape(-1, 3) for p in pts])
    idx, inside = grid.points_to_index(pts)
    observed = np.zeros(grid.dims, bool)
    observed[tuple(idx[inside].T)] = True
    return np.where(observed, 0.9, 0.5).astype(np.float32), observed


def views_of(depth: np.ndarray, size: int = SIZE, valid: np.ndarray | None = None,
             T_base_cam: np.ndarray = T_BASE_CAM) -> DepthViews:
    """DepthViews of depth rendered by `render`."""
    Kc = K.copy()
    Kc[:2] *= size / SIZE
    Kc[:2, 2] = (size - 1) / 2
    return DepthViews(depth, np.stack([Kc] * depth.shape[0]), T_base_cam, valid)


def config(**overrides: object) -> FusionConfig:
    """The test map (nearest resampling: the volume's voxels are the map's)."""
    return FusionConfig(voxel_size=(VOXEL,) * 3, lower=LOWER, upper=UPPER,
                        interpolation="nearest", **overrides)


def index_of(p: tuple[float, float, float]) -> tuple[int, int, int]:
    """Map voxel index (base_link = odom at the identity pose) of a point."""
    idx, inside = GRID.points_to_index(np.asarray([p]))
    assert inside[0]
    return tuple(int(i) for i in idx[0])


# ---------------------------------------------------------------------------- the scenario
def run_crossing(carve: bool, pose: np.ndarray, frames: int = 40) -> dict:
    """A person walks across in front of the robot at 1.2 m/s (from y = +2 m towards -y)
    between the cameras and a wall, in odom with the robot standing at `pose` (whole voxels
    from the origin); returns per-set probabilities of a voxel the person crosses, the
    static voxels and the map."""
    fusion = OccupancyFusion(config(carve_free_space=carve))
    offset = pose[:3, 3]
    T_frame_cam = pose @ T_BASE_CAM
    target = (PERSON_X + 0.05, 0.1, 0.9)  # on the person's front face when it passes y = 0.1
    # The pose moves by whole voxels: map indices are those of the base_link grid.
    probe = index_of(target)
    history, inside, static_seen, static_lost = [], [], None, []
    for k in range(frames):
        y = 2.0 - 1.2 * k * PERIOD / 1e9
        box = person_box(y)
        boxes_frame = [tuple(tuple(np.asarray(c) + offset) for c in b)
                       for b in (WALL, FLOOR, box)]
        depth = render(boxes_frame, T_frame_cam)
        prob, observed = hits_volume(depth, T_BASE_CAM)
        status = fusion.update(prob, observed, GRID, 10**9 + k * PERIOD, pose,
                               views=views_of(depth))
        assert status.accepted and status.reset_reason is None
        assert (status.carved_voxels > 0) == carve
        p = fusion.probability_grid().probability  # (X, Y, Z) NaN unknown
        history.append(float(p[probe]))
        inside.append(abs(y - target[1]) < PERSON[1] / 2 + VOXEL / 2)
        # Static: occupied voxels away from the person's corridor (x 2.7..3.7 m, above the
        # floor) must stay occupied once they are.
        centres = GRID.centers(np.float64)
        corridor = ((centres[..., 0] > 2.6) & (centres[..., 0] < 3.8)
                    & (centres[..., 2] > 0.0))
        occupied = np.nan_to_num(p, nan=0.0) >= fusion.config.occupied_threshold
        if static_seen is None:
            static_seen = occupied & ~corridor
        static_lost.append(int((static_seen & ~occupied).sum()))
        static_seen |= occupied & ~corridor
    return {"p": np.array(history), "inside": np.array(inside), "fusion": fusion,
            "static_lost": static_lost, "static": static_seen, "last_y": y}


@pytest.mark.parametrize("pose", [np.eye(4), make_transform(np.eye(3), [1.0, -0.4, 0.0])],
                         ids=["at_origin", "moved"])
def test_a_voxel_a_person_left_is_free_within_ten_sets_and_walls_stay(pose) -> None:
    run = run_crossing(carve=True, pose=pose)
    p, inside = run["p"], run["inside"]
    cfg = run["fusion"].config
    occupied_sets = np.flatnonzero(inside)
    assert occupied_sets.size >= 4  # the person stood in the voxel for several sets
    assert p[occupied_sets].max() >= cfg.clamp_max - 1e-3  # ... and it was surely occupied
    left = occupied_sets[-1] + 1  # the first set after the person left the voxel
    free_at = left + int(np.flatnonzero(p[left:] <= cfg.free_threshold)[0])
    assert free_at - left < 10, p.round(3)  # free within 10 sets (1 s at 10 Hz)
    assert (p[free_at:] <= cfg.free_threshold).all()  # and it stays free
    # Walls and floor: every static voxel stayed occupied through the whole sequence.
    assert run["static"].sum() > 300
    assert max(run["static_lost"]) == 0
    # No ghost left on the person's path behind it (y > 0.5 m, the person is at y < -2 m).
    fusion = run["fusion"]
    pg = fusion.probability_grid()
    centres = pg.origin + (np.stack(np.indices(fusion.dims), -1) + 0.5) * pg.voxel_size
    rel = centres - pose[:3, 3]
    path = ((rel[..., 0] > 2.7) & (rel[..., 0] < 3.6) & (rel[..., 1] > 0.5)
            & (rel[..., 1] < 2.0) & (rel[..., 2] > 0.1) & (rel[..., 2] < 1.5))
    p_path = np.nan_to_num(pg.probability[path], nan=0.0)
    assert (p_path < cfg.occupied_threshold).all()


def test_without_carving_the_voxel_the_person_left_stays_occupied() -> None:
    run = run_crossing(carve=False, pose=np.eye(4), frames=32)
    # The volume only says where surfaces are: nothing clears the person's old voxel.
    assert run["p"][-1] >= run["fusion"].config.occupied_threshold


def test_ghost_voxels_count_occupied_in_the_map_but_free_in_truth() -> None:
    fused = np.full((4, 3, 2), np.nan, np.float32)
    labels = np.full((4, 3, 2), UNKNOWN, np.uint8)
    fused[0, 0, 0], labels[0, 0, 0] = 0.9, FREE  # ghost
    fused[1, 0, 0], labels[1, 0, 0] = 0.6, FREE  # ghost at the threshold
    fused[2, 0, 0], labels[2, 0, 0] = 0.59, FREE  # not occupied
    fused[3, 0, 0], labels[3, 0, 0] = 0.95, OCCUPIED  # right
    fused[0, 1, 0], labels[0, 1, 0] = 0.95, UNKNOWN  # truth does not know
    labels[1, 1, 0] = FREE  # the map does not know (NaN)
    assert ghost_voxels(fused, labels) == 2
    assert ghost_voxels(fused, labels, occupied_threshold=0.95) == 0
    with pytest.raises(ValueError, match="same grid"):
        ghost_voxels(fused, labels[:2])
    # margin: FREE voxels next to an OCCUPIED one (a surface resampled one voxel off) do
    # not count; (0, 0, 0) and (1, 0, 0) are one voxel from the occupied (0, 1, 0) / (2, 0, 0)
    labels[0, 1, 0] = OCCUPIED
    labels[2, 0, 0] = OCCUPIED
    assert ghost_voxels(fused, labels, margin=1) == 0
    far = np.full((6, 1, 1), FREE, np.uint8)
    far[0] = OCCUPIED
    p_far = np.full((6, 1, 1), 0.9, np.float32)
    assert [ghost_voxels(p_far, far, margin=m) for m in (0, 1, 2, 5)] == [5, 4, 3, 0]
    with pytest.raises(ValueError, match="margin"):
        ghost_voxels(fused, labels, margin=-1)


def test_ghost_voxels_of_the_crossing_fall_with_carving() -> None:
    """Ghosts on the ground-truth grid of the last set: labels from the analytic scene."""
    runs = {carve: run_crossing(carve=carve, pose=np.eye(4), frames=30)
            for carve in (True, False)}
    y = runs[True]["last_y"]
    c = GRID.centers(np.float64)

    def inside(box: tuple) -> np.ndarray:
        lo, hi = np.asarray(box[0]) - VOXEL / 2, np.asarray(box[1]) + VOXEL / 2
        return np.all((c >= lo) & (c <= hi), axis=-1)

    labels = np.full(GRID.dims, FREE, np.uint8)  # the test scene is known everywhere
    labels[inside(WALL) | inside(FLOOR) | inside(person_box(y))] = OCCUPIED
    counts = {(carve, m): ghost_voxels(r["fusion"].sample(GRID, np.eye(4)), labels, margin=m)
              for carve, r in runs.items() for m in (0, 1)}
    assert counts[False, 1] >= 20  # the person's trail
    assert counts[True, 1] <= counts[False, 1] // 5
    assert counts[True, 0] <= counts[False, 0] // 5


# ---------------------------------------------------------------------------- properties
def random_views(rng: np.random.Generator, size: int = 24) -> DepthViews:
    """Two cameras with random orientations and depth 0.3..12 m (some NaN, 0, negative)."""
    Ts = []
    for _ in range(2):
        a, b = rng.uniform(-np.pi, np.pi), rng.uniform(-0.4, 0.4)
        yaw = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
        pitch = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
        Ts.append(make_transform(yaw @ pitch @ R_FRONT, rng.uniform([-1, -1, 0.5],
                                                                     [1, 1, 1.5])))
    depth = rng.uniform(0.3, 12.0, (2, size, size)).astype(np.float32)
    bad = rng.random(depth.shape)
    depth[bad < 0.05] = np.nan
    depth[(bad >= 0.05) & (bad < 0.08)] = 0.0
    depth[(bad >= 0.08) & (bad < 0.1)] = -1.0
    return views_of(depth, size, None, np.stack(Ts))


def surface_voxels(views: DepthViews, T: np.ndarray, origin: np.ndarray) -> set:
    """Flat indices of the voxels holding a valid pixel's surface point (float64)."""
    depth = np.asarray(views.depth, np.float64)
    V, h, w = depth.shape
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    out = set()
    for i in range(V):
        ok = np.isfinite(depth[i]) & (depth[i] > 0)
        if views.valid is not None:
            ok &= np.asarray(views.valid[i])
        rays = np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(views.K[i]).T
        Tw = T @ views.T_base_cam[i]
        pts = (rays * depth[i][..., None])[ok] @ Tw[:3, :3].T + Tw[:3, 3]
        idx = np.floor((pts - origin) / VOXEL).astype(int)
        keep = np.all((idx >= 0) & (idx < GRID.dims), axis=1)
        out |= set(np.ravel_multi_index(tuple(idx[keep].T), GRID.dims).tolist())
    return out


def exact_reference(views: DepthViews, T: np.ndarray, origin: np.ndarray, stride: int,
                    max_range: float, margin: float) -> set:
    """Voxels whose inside the strided rays pass through up to where carving stops, by
    exact traversal (every crossing of a voxel face, float64), without the surface rule:
    the set carving approximates from below."""
    depth = np.asarray(views.depth, np.float64)
    V, h, w = depth.shape
    first = (stride - 1) // 2
    out = set()
    for i in range(V):
        v, u = np.mgrid[first:h:stride, first:w:stride].astype(np.float64)
        z = depth[i, first::stride, first::stride]
        ok = np.isfinite(z) & (z > 0)
        if views.valid is not None:
            ok &= np.asarray(views.valid[i])[first::stride, first::stride]
        rays = (np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(views.K[i]).T)[ok]
        Tw = T @ views.T_base_cam[i]
        d = rays @ Tw[:3, :3].T / VOXEL  # (N, 3) voxels per metre of depth
        o = (Tw[:3, 3] - origin) / VOXEL
        s_end = np.minimum(z[ok] - margin / np.linalg.norm(d, axis=1),
                           max_range / np.linalg.norm(rays, axis=1))
        for dr, se in zip(d, s_end):
            if se <= 0:
                continue
            ts = [np.array([0.0, se])]
            for a in range(3):
                if abs(dr[a]) > 1e-12:
                    lo, hi = sorted((o[a], o[a] + se * dr[a]))
                    ts.append((np.arange(np.ceil(lo), np.floor(hi) + 1) - o[a]) / dr[a])
            t = np.unique(np.concatenate(ts))
            t = t[(t >= 0) & (t <= se)]
            mid = 0.5 * (t[:-1] + t[1:])
            p = np.floor(o + mid[:, None] * dr).astype(int)
            p = p[np.all((p >= 0) & (p < GRID.dims), axis=1)]
            out |= set(np.ravel_multi_index(tuple(p.T), GRID.dims).tolist())
    return out


def carved(views: DepthViews, T: np.ndarray, origin: np.ndarray, **kw: float) -> set:
    """Flat indices carve_mask marks."""
    kw = {"stride": 4, "max_range": 100.0, "margin": 1.0, **kw}
    mask = carve_mask(views, T, origin, np.full(3, VOXEL), GRID.dims, **kw)
    return set(torch.nonzero(mask.reshape(-1)).reshape(-1).tolist())


@pytest.mark.parametrize("seed", range(6))
def test_carving_never_frees_a_surface_voxel_and_follows_the_rays(seed: int) -> None:
    rng = np.random.default_rng(seed)
    views = random_views(rng)
    T = make_transform(np.eye(3), rng.uniform(-0.5, 0.5, 3)) if seed % 2 else np.eye(4)
    origin = np.asarray(LOWER)
    stride = int(rng.integers(1, 5))
    margin = float(rng.choice([0.0, 1.0, 2.5]))
    max_range = float(rng.choice([4.0, 100.0]))
    got = carved(views, T, origin, stride=stride, margin=margin, max_range=max_range)
    surfaces = surface_voxels(views, T, origin)
    assert got and not got & surfaces  # carving never frees a surface voxel
    ref = exact_reference(views, T, origin, stride, max_range, margin)
    # Only voxels the rays pass through before their stopping point (up to float32
    # round-off of a sample within ~1e-5 voxel of a face the ray runs along).
    assert len(got - ref) <= max(2, 0.002 * len(got))
    # Half-voxel steps miss only voxels a ray clips by a corner.
    assert len(got) >= COVERAGE * len(ref - surfaces)


@pytest.mark.parametrize("seed", range(4))
def test_the_gpu_layout_without_host_reads_carves_the_same_voxels(seed: int) -> None:
    """`sync_free` (the layout for CUDA: one block padded to the map's diagonal, nothing
    read back to size groups) marks exactly the voxels of the bucketed CPU layout, with
    invalid, infinite and masked pixels among the rays."""
    rng = np.random.default_rng(seed)
    views = random_views(rng)
    depth = np.array(views.depth)
    depth[0, ::5, ::3] = np.inf
    valid = rng.random(depth.shape) < 0.8
    views = DepthViews(depth, views.K, views.T_base_cam, valid if seed % 2 else None)
    T = make_transform(np.eye(3), rng.uniform(-0.5, 0.5, 3))
    kw = {"stride": int(rng.integers(1, 5)), "max_range": float(rng.choice([4.0, 100.0])),
          "margin": 1.0}
    bucketed = carved(views, T, np.asarray(LOWER), sync_free=False, **kw)
    assert bucketed and carved(views, T, np.asarray(LOWER), sync_free=True, **kw) == bucketed


@pytest.mark.parametrize("order", [(2, 0, 1), (1, 2, 0), (0, 2, 1)])
def test_an_out_buffer_in_another_layout_gets_the_same_voxels(order) -> None:
    """The work volume follows `out`'s memory layout (the map stores z-major): any axis
    order of `out` marks exactly the voxels of the default (x-major) result."""
    rng = np.random.default_rng(3)
    views = random_views(rng)
    T = make_transform(np.eye(3), rng.uniform(-0.5, 0.5, 3))
    kw = {"stride": 2, "max_range": 100.0, "margin": 1.0}
    want = carve_mask(views, T, np.asarray(LOWER), np.full(3, VOXEL), GRID.dims, **kw)
    storage = torch.ones(tuple(GRID.dims[a] for a in order), dtype=torch.bool)
    out = storage.permute(*(order.index(a) for a in range(3)))  # (nx, ny, nz) view
    got = carve_mask(views, T, np.asarray(LOWER), np.full(3, VOXEL), GRID.dims, out=out,
                     **kw)
    assert got.data_ptr() == storage.data_ptr() and got.stride() == out.stride()
    assert torch.count_nonzero(want) > 0 and torch.equal(got, want)


def test_invalid_and_masked_pixels_carve_nothing() -> None:
    rng = np.random.default_rng(1)
    views = random_views(rng)
    T, origin = np.eye(4), np.asarray(LOWER)
    for bad in (np.nan, 0.0, -2.0, np.inf):
        none = DepthViews(np.full_like(views.depth, bad), views.K, views.T_base_cam)
        assert carved(none, T, origin) == set()
    masked = DepthViews(views.depth, views.K, views.T_base_cam,
                        np.zeros(views.depth.shape, bool))
    assert carved(masked, T, origin) == set()
    # Masking pixels is the same as their depth being invalid.
    keep = rng.random(views.depth.shape) < 0.5
    half = DepthViews(views.depth, views.K, views.T_base_cam, keep)
    nan = DepthViews(np.where(keep, views.depth, np.nan), views.K, views.T_base_cam)
    assert carved(half, T, origin, stride=1) == carved(nan, T, origin, stride=1)
    # One view masked entirely: the other view's carving alone.
    one = np.zeros(views.depth.shape, bool)
    one[1] = True
    only = DepthViews(views.depth[1:], views.K[1:], views.T_base_cam[1:])
    assert carved(DepthViews(views.depth, views.K, views.T_base_cam, one), T, origin) == \
        carved(only, T, origin)


def test_max_range_margin_and_map_clipping() -> None:
    # The front camera facing a wall 30 m away, far outside the map (x up to 8 m).
    depth = render([((30.1, -40.0, -10.0), (31.0, 40.0, 10.0))], T_BASE_CAM[:1])
    views = views_of(depth, T_base_cam=T_BASE_CAM[:1])
    origin = np.asarray(LOWER)
    centres = GRID.centers(np.float64).reshape(-1, 3)
    camera = T_BASE_CAM[0, :3, 3]
    full = carved(views, np.eye(4), origin)
    x = centres[sorted(full), 0]
    assert x.max() > UPPER[0] - VOXEL  # clipped at the map's end, not before
    for max_range in (2.0, 5.0):
        near = carved(views, np.eye(4), origin, max_range=max_range)
        dist = np.linalg.norm(centres[sorted(near)] - camera, axis=1)
        assert dist.max() <= max_range + np.sqrt(3) * VOXEL / 2
        assert dist.max() > max_range - 2 * VOXEL
    # A wall at x = 5.1 m straight ahead: along the optical axis carving stops `margin`
    # voxels short of the wall's voxel (x index 35, x in [5.0, 5.2)).
    depth = render([((5.1, -40.0, -10.0), (6.0, 40.0, 10.0))], T_BASE_CAM[:1])
    views = views_of(depth, T_base_cam=T_BASE_CAM[:1])
    row = index_of((0.0, 0.05, 1.03))[1:]  # the optical axis' y, z voxel

    def last_on_axis(margin: float) -> int:
        got = carved(views, np.eye(4), origin, margin=margin, stride=1)
        return max(i for i in range(GRID.dims[0])
                   if np.ravel_multi_index((i, *row), GRID.dims) in got)

    assert last_on_axis(0.0) == 34  # every voxel before the wall's
    assert last_on_axis(1.0) == 34  # the ray still reaches 4.9 m
    assert last_on_axis(3.0) == 32  # 4.5 m: voxel 32 holds [4.4, 4.6)


def test_each_voxel_gets_at_most_one_miss_per_set() -> None:
    depth = render([WALL, FLOOR], T_BASE_CAM)
    twice = np.concatenate([depth, depth])  # every ray cast twice
    views = views_of(twice, T_base_cam=np.concatenate([T_BASE_CAM, T_BASE_CAM]))
    fusion = OccupancyFusion(config())
    empty = np.zeros(GRID.dims, bool)
    status = fusion.update(np.zeros(GRID.dims, np.float32), empty, GRID, 10**9, np.eye(4),
                           views=views)
    assert status.carved_voxels > 1000 and status.observed_voxels == 0
    assert "carved free" in status.message
    pg = fusion.probability_grid()
    np.testing.assert_allclose(pg.probability[pg.known], fusion.config.carve_probability,
                               rtol=1e-5)
    assert pg.known.sum() == status.carved_voxels
    # Repeated sets accumulate down to the clamp, never below.
    for k in range(1, 12):
        fusion.update(np.zeros(GRID.dims, np.float32), empty, GRID, 10**9 + k * PERIOD,
                      np.eye(4), views=views)
    pg = fusion.probability_grid()
    np.testing.assert_allclose(pg.probability[pg.known], fusion.config.clamp_min, rtol=1e-4)


def test_odom_and_base_link_carve_the_same_space() -> None:
    """Carving through a pose in odom gives the voxels of carving in base_link, moved by
    the pose (whole voxels and a quarter turn, so both lattices coincide)."""
    cfg = FusionConfig(voxel_size=(VOXEL,) * 3, lower=(-4.0, -4.0, -0.4),
                       upper=(4.0, 4.0, 2.4), interpolation="nearest")
    grid = VoxelGrid(cfg.lower, cfg.upper, cfg.dims)
    boxes = [((3.1, -3.3, -0.1), (3.5, 3.3, 2.0)), FLOOR]
    depth = render(boxes, T_BASE_CAM)  # the same images in both runs
    empty = np.zeros(grid.dims, bool)
    zeros = np.zeros(grid.dims, np.float32)
    base = OccupancyFusion(cfg)
    assert base.update(zeros, empty, grid, 10**9, None, views=views_of(depth)).frame == \
        "base_link"
    a = 0.5 * np.pi
    pose = make_transform(np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0],
                                    [0.0, 0.0, 1.0]]), [1.4, -0.6, 0.2])
    odom = OccupancyFusion(cfg)
    status = odom.update(zeros, empty, grid, 10**9, pose, views=views_of(depth))
    assert status.frame == "odom"

    def carved_centres(f: OccupancyFusion, T: np.ndarray) -> set:
        pg = f.probability_grid()
        idx = np.argwhere(pg.known & (pg.probability < 0.5))
        c = pg.origin + (idx + 0.5) * pg.voxel_size  # in the map's frame
        back = (c - T[:3, 3]) @ T[:3, :3]  # -> base_link
        return {tuple(v) for v in np.round(back / VOXEL - 0.5).astype(int).tolist()}

    in_base = carved_centres(base, np.eye(4))
    in_odom = carved_centres(odom, pose)
    assert len(in_base) > 500
    assert len(in_base ^ in_odom) <= 0.005 * len(in_base)  # float round-off at faces only
    # Without the views nothing is carved; with carving off neither.
    off = OccupancyFusion(FusionConfig(**{**cfg.__dict__, "carve_free_space": False}))
    assert off.update(zeros, empty, grid, 10**9, pose, views=views_of(depth)).carved_voxels == 0
    plain = OccupancyFusion(cfg)
    assert plain.update(zeros, empty, grid, 10**9, pose).carved_voxels == 0


def test_a_map_over_two_to_the_24_voxels_carves_exact_voxel_indices() -> None:
    """The flat voxel index is composed in floating point: a map whose bordered work volume
    holds more than 2^24 voxels (102 x 702 x 702) uses float64, so the voxels carved near
    its far corner (flat indices above 2^24) are those of a small map around that corner,
    moved by whole voxels (float32 would round the index by a voxel or two there)."""
    depth = render([WALL, FLOOR], T_BASE_CAM)
    views = views_of(depth)
    small_dims = (50, 40, 14)
    big_dims = (100, 700, 700)
    shift = np.array(big_dims) - np.array(small_dims)  # the small map in the far corner
    origin = np.asarray(LOWER)
    small = carve_mask(views, np.eye(4), origin, np.full(3, VOXEL), small_dims, stride=2)
    big = carve_mask(views, np.eye(4), origin - shift * VOXEL, np.full(3, VOXEL), big_dims,
                     stride=2)
    corner = big[shift[0]:, shift[1]:, shift[2]:]  # the small map's voxels
    assert int(small.sum()) > 1000
    # The same up to float32 round-off of the samples at a voxel face (positions of ~200
    # voxels against ~20); a float32 index (spacing 2 above 2^24) would move about half.
    assert int((corner ^ small).sum()) <= 0.002 * int(small.sum())


def test_carving_config_and_input_validation() -> None:
    for field, value, match in (("carve_probability", 0.5, r"carve_probability.*\(0, 0.5\)"),
                                ("carve_probability", 0.0, "carve_probability"),
                                ("carve_stride", 0, "carve_stride must be an integer >= 1"),
                                ("carve_stride", 2.0, "carve_stride"),
                                ("carve_max_range", 0.0, "carve_max_range must be a finite"),
                                ("carve_max_range", float("inf"), "carve_max_range"),
                                ("carve_margin", -1.0, "carve_margin"),
                                ("carve_free_space", "yes", "carve_free_space must be true")):
        with pytest.raises(ValueError, match=match):
            FusionConfig(**{field: value})
    cfg = FusionConfig(carve_probability=0.3)
    assert cfg.carve_log_odds == pytest.approx(logit(0.3))
    depth = np.ones((2, 8, 8), np.float32)
    with pytest.raises(ValueError, match=r"DepthViews.K must be \(V, 3, 3\)"):
        DepthViews(depth, np.eye(3), T_BASE_CAM)
    with pytest.raises(ValueError, match="DepthViews.T_base_cam"):
        DepthViews(depth, np.stack([K, K]), T_BASE_CAM[:1])
    with pytest.raises(ValueError, match="DepthViews.valid"):
        DepthViews(depth, np.stack([K, K]), T_BASE_CAM, np.ones((2, 8, 7), bool))
    with pytest.raises(ValueError, match=r"DepthViews.depth must be \(V, h, w\)"):
        DepthViews(depth[0], np.stack([K, K]), T_BASE_CAM)
    fusion = OccupancyFusion(config())
    with pytest.raises(TypeError, match="DepthViews"):
        fusion.update(np.zeros(GRID.dims, np.float32), np.zeros(GRID.dims, bool), GRID, 1,
                      None, views=depth)
    views = views_of(np.ones((2, 8, 8), np.float32), 8)
    with pytest.raises(ValueError, match="call update first"):
        fusion.carve(views, np.eye(4))
    zeros, empty = np.zeros(GRID.dims, np.float32), np.zeros(GRID.dims, bool)
    fusion.update(zeros, empty, GRID, 1, np.eye(4))
    with pytest.raises(ValueError, match="pass the pose of its last update"):
        fusion.carve(views, None)
    assert fusion.carve(views, np.eye(4)) > 0
    with pytest.raises(ValueError, match="stride"):
        carve_mask(views, np.eye(4), np.zeros(3), np.full(3, VOXEL), GRID.dims, stride=0)
