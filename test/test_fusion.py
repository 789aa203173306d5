"""Tests of depth_any_view.mapping.fusion on synthetic sequences with analytic truth."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from depth_any_view.geometry.grid import FREE, OCCUPIED, UNKNOWN, VoxelGrid
from depth_any_view.geometry.transforms import make_transform, transform_points
from depth_any_view.mapping.carving import DepthViews
from depth_any_view.mapping.fusion import (
    FusionConfig,
    OccupancyFusion,
    pose_to_transform,
)

S = 1_000_000_000  # one second in nanoseconds
GRID = VoxelGrid((-6.4, -6.4, -0.4), (6.4, 6.4, 2.8), (64, 64, 16))  # 0.2 m voxels


def rotz(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def scene_truth(p: np.ndarray, box_x: float = 2.0) -> np.ndarray:
    """Occupied in odom: a wall slab x in [6.0, 6.2) and a 1 m box at x in [box_x, +1]."""
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    wall = (x >= 6.0) & (x < 6.2) & (np.abs(y) <= 4.0) & (z >= 0.0) & (z <= 2.0)
    box = ((x >= box_x) & (x <= box_x + 1.0) & (y >= -1.0) & (y <= 0.0) & (z >= 0.0)
           & (z <= 1.0))
    return wall | box


def frame_volume(T_odom_base, rng=None, flip=0.0, visible=1.0, box_x=2.0):
    """Network-like (probability, observed) on GRID at a pose: 0.8 / 0.2 with noise."""
    truth = scene_truth(transform_points(T_odom_base, GRID.centers(np.float64)), box_x)
    p = np.where(truth, 0.8, 0.2)
    obs = np.ones(GRID.dims, dtype=bool)
    if rng is not None:
        p = np.where(rng.random(p.shape) < flip, 1.0 - p, p)
        obs = rng.random(p.shape) < visible
    return p.astype(np.float32), obs


def map_truth(fusion: OccupancyFusion, box_x: float = 2.0) -> np.ndarray:
    """Analytic occupancy at the centres of the fusion map's voxels (its frame = odom)."""
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in fusion.dims], indexing="ij"), -1)
    return scene_truth(fusion.origin + (idx + 0.5) * fusion.voxel_size, box_x)


def iou(pred: np.ndarray, truth: np.ndarray) -> float:
    return float((pred & truth).sum() / max((pred | truth).sum(), 1))


def pose(k: int) -> np.ndarray:
    """Robot moving forward 0.1 m, sideways 0.03 m and turning 0.03 rad per frame."""
    return make_transform(rotz(0.03 * k), [0.1 * k, 0.03 * k, 0.0])


def test_fusion_beats_every_single_frame_on_noisy_partial_volumes():
    rng = np.random.default_rng(0)
    cfg = FusionConfig.matching(GRID)
    fused = OccupancyFusion(cfg)
    single_ious, fused_ious = [], []
    for k in range(12):
        p, obs = frame_volume(pose(k), rng, flip=0.25, visible=0.6)
        single = OccupancyFusion(cfg)
        assert single.update(p, obs, GRID, S + k * S // 10, pose(k)).accepted
        single_ious.append(iou(single.labels() == OCCUPIED, map_truth(single)))
        status = fused.update(p, obs, GRID, S + k * S // 10, pose(k))
        assert status.accepted and status.reset_reason is None and status.frame == "odom"
        fused_ious.append(iou(fused.labels() == OCCUPIED, map_truth(fused)))
    assert fused_ious[-1] > 3.0 * max(single_ious)
    assert fused_ious[-1] > fused_ious[3] > fused_ious[0]
    # Free space gets the same benefit.
    truth = map_truth(fused)
    assert iou(fused.labels() == FREE, ~truth) > iou(single.labels() == FREE, ~map_truth(single))


def test_static_voxels_stay_put_in_odom_while_the_robot_moves():
    cfg = FusionConfig.matching(GRID, interpolation="nearest")
    fusion = OccupancyFusion(cfg)
    truth_box = None
    for k, dx in enumerate([0.0, 0.2, 0.6, 1.0, 1.4]):  # whole voxels, no rotation
        T = make_transform(np.eye(3), [dx, -0.4, 0.0])
        p, obs = frame_volume(T)
        status = fusion.update(p, obs, GRID, S + k * S // 10, T)
        centres, probs = fusion.occupied_voxels()
        assert (probs >= cfg.occupied_threshold).all()
        # Exactly the analytic voxels inside the current map, at the same odom positions.
        np.testing.assert_array_equal(fusion.labels() == OCCUPIED, map_truth(fusion))
        box = {tuple(c) for c in np.round(centres, 3).tolist() if c[0] < 5.0}
        truth_box = box if truth_box is None else truth_box
        assert box == truth_box and len(box) == 5 * 5 * 5
    assert status.shift_voxels == (2, 0, 0)
    # Rotation and sub-voxel translation: still within a voxel of the box (trilinear).
    fusion = OccupancyFusion(FusionConfig.matching(GRID))
    for k in range(6):
        T = make_transform(rotz(0.1 * k), [0.13 * k, 0.07 * k, 0.0])
        fusion.update(*frame_volume(T), GRID, S + k * S // 10, T)
    centres, _ = fusion.occupied_voxels()
    near_box = centres[centres[:, 0] < 5.0]
    assert len(near_box) > 100
    assert (near_box[:, 0] > 1.8).all() and (near_box[:, 0] < 3.2).all()
    assert (near_box[:, 1] > -1.2).all() and (near_box[:, 1] < 0.2).all()
    assert iou(fusion.labels() == OCCUPIED, map_truth(fusion)) > 0.6


def test_map_shift_keeps_cells_at_their_odom_position_and_drops_leavers():
    fusion = OccupancyFusion(FusionConfig.matching(GRID, interpolation="nearest"))
    T0 = np.eye(4)
    fusion.update(*frame_volume(T0), GRID, S, T0)
    before = fusion.probability_grid()
    T1 = make_transform(np.eye(3), [1.0, -0.6, 0.2])  # +5, -3, +1 voxels in 1 s
    status = fusion.update(np.zeros(GRID.dims, np.float32), np.zeros(GRID.dims, bool), GRID,
                           2 * S, T1)
    assert status.shift_voxels == (5, -3, 1) and status.observed_voxels == 0
    after = fusion.probability_grid()
    np.testing.assert_allclose(after.origin - before.origin, [1.0, -0.6, 0.2], atol=1e-9)
    # Same odom cell: after[i, j, k] == before[i + 5, j - 3, k + 1].
    np.testing.assert_array_equal(after.probability[:-5, 3:, :-1],
                                  before.probability[5:, :-3, 1:])
    assert np.isnan(after.probability[-5:]).all()  # entered the map: unknown
    assert np.isnan(after.probability[:, :3]).all()


def test_stamp_backwards_resets_and_duplicate_is_rejected():
    fusion = OccupancyFusion(FusionConfig.matching(GRID))
    for k in range(3):
        fusion.update(*frame_volume(pose(k)), GRID, 10 * S + k * S // 10, pose(k))
    dup = fusion.update(*frame_volume(pose(2)), GRID, 10 * S + 2 * S // 10, pose(2))
    assert not dup.accepted and "duplicate stamp" in dup.rejected_reason
    p, obs = frame_volume(pose(0))
    obs[:, :, :] = False
    obs[:10] = True  # a looped bag starts again: only a slab is seen
    status = fusion.update(p, obs, GRID, 9 * S, pose(0))
    assert status.accepted and "backwards by 1.200 s" in status.reset_reason
    assert fusion.stats()["resets"] == 1 and fusion.stamp_ns == 9 * S
    known = fusion.probability_grid().known
    assert known.sum() == status.observed_voxels == 10 * 64 * 16  # nothing stale survived


def test_invalid_poses_are_rejected_with_the_reason_and_leave_the_map_alone():
    fusion = OccupancyFusion(FusionConfig.matching(GRID))
    fusion.update(*frame_volume(np.eye(4)), GRID, S, np.eye(4))
    known = fusion.probability_grid().known.sum()
    vol = frame_volume(np.eye(4))
    cases = [
        (([0.0, np.nan, 0.0], [0, 0, 0, 1.0]), "NaN or inf"),
        (([0.0, 0.0, 0.0], [0, 0, 0, 1.2]), "not normalised"),
        (([0.0, 0.0, np.inf], [0, 0, 0, 1.0]), "NaN or inf"),
        (np.diag([1.0, 2.0, 1.0, 1.0]), "not a rigid transform"),
        (np.full((4, 4), np.nan), "NaN or inf"),
    ]
    for k, (bad, why) in enumerate(cases):
        status = fusion.update(*vol, GRID, S + (k + 1) * S // 10, bad)
        assert not status.accepted and why in status.rejected_reason
        assert "rejected" in status.message
    assert fusion.probability_grid().known.sum() == known
    assert fusion.stats()["rejected"] == len(cases) and fusion.stats()["resets"] == 0
    # A valid (position, quaternion) pose is accepted and equals the matrix form.
    T = pose_to_transform(([1.0, 2.0, 0.0], [0.0, 0.0, np.sin(0.2), np.cos(0.2)]))
    np.testing.assert_allclose(T[:3, :3], rotz(0.4), atol=1e-12)
    assert fusion.update(*vol, GRID, 2 * S, ([0.1, 0.0, 0.0], [0, 0, 0, 1.0])).accepted


def test_odometry_jumps_reset():
    fusion = OccupancyFusion(FusionConfig.matching(GRID, max_linear_speed=2.0,
                                                   max_angular_speed=1.0))
    fusion.update(*frame_volume(np.eye(4)), GRID, S, np.eye(4))
    ok = fusion.update(*frame_volume(pose(1)), GRID, S + S // 10, pose(1))
    assert ok.reset_reason is None
    far = make_transform(np.eye(3), [12.0, 0.0, 0.0])
    status = fusion.update(*frame_volume(far), GRID, S + 2 * S // 10, far)
    assert status.accepted and "jumped 11.90 m in 0.100 s" in status.reset_reason
    turned = make_transform(rotz(1.5), [12.0, 0.0, 0.0])
    status = fusion.update(*frame_volume(turned), GRID, S + 3 * S // 10, turned)
    assert "turned 1.50 rad" in status.reset_reason
    # The same turn spread over 2 s is plausible.
    slow = make_transform(rotz(1.5 + 1.5), [12.0, 0.0, 0.0])
    assert fusion.update(*frame_volume(slow), GRID, S + 23 * S // 10, slow).reset_reason is None
    assert fusion.stats()["resets"] == 2


def test_without_odometry_single_frame_in_base_link_then_odometry_returns():
    fusion = OccupancyFusion(FusionConfig.matching(GRID))
    p, obs = frame_volume(np.eye(4))
    s1 = fusion.update(p, obs, GRID, S, None)
    assert s1.frame == "base_link" and fusion.frame == "base_link"
    np.testing.assert_allclose(fusion.origin, GRID.lower)
    np.testing.assert_array_equal(fusion.labels() == OCCUPIED, scene_truth(GRID.centers()))
    # A second frame replaces the first (no memory without odometry).
    obs2 = np.zeros_like(obs)
    obs2[:32] = True
    fusion.update(p, obs2, GRID, S + S // 10, None)
    assert fusion.probability_grid().known.sum() == obs2.sum()
    # Odometry comes back: the map resets and fuses in odom.
    s3 = fusion.update(p, obs, GRID, S + 2 * S // 10, np.eye(4))
    assert s3.frame == "odom" and "odometry available" in s3.reset_reason
    s4 = fusion.update(p, obs, GRID, S + 3 * S // 10, None)
    assert s4.frame == "base_link" and "odometry lost" in s4.reset_reason


def test_decay_clears_voxels_no_longer_seen_occupied():
    cfg = FusionConfig.matching(GRID, interpolation="nearest", decay_occupied_per_s=2.0,
                                decay_free_per_s=2.0)
    fusion = OccupancyFusion(cfg)
    still = OccupancyFusion(FusionConfig.matching(GRID, interpolation="nearest"))
    T = np.eye(4)
    for k in range(3):
        for f in (fusion, still):
            f.update(*frame_volume(T), GRID, S + k * S // 10, T)
    box_cell = (45, 27, 3)  # odom centre (2.7, -0.9, 0.3): inside the box
    assert fusion.labels()[box_cell] == OCCUPIED
    # The box is no longer seen (out of view) for 2.5 s: decay forgets it, no decay keeps it.
    p, obs = frame_volume(T)
    obs[40:55] = False
    for k in range(3, 28):
        for f in (fusion, still):
            f.update(p, obs, GRID, S + k * S // 10, T)
    assert fusion.labels()[box_cell] == UNKNOWN and np.isnan(
        fusion.probability_grid().probability[box_cell])
    assert still.labels()[box_cell] == OCCUPIED
    # Observed voxels are refreshed every frame and survive the decay.
    assert fusion.labels()[62, 30, 3] == OCCUPIED  # the wall at x = 6.1 m
    # A moving obstacle: the box moves 3 m; its old place is seen free and clears after
    # four frames (three saturate the belief at logit(0.98) = 3.9, each free one is -1.39).
    moving = OccupancyFusion(FusionConfig.matching(GRID, interpolation="nearest"))
    for k in range(5):
        moving.update(*frame_volume(T), GRID, S + k * S // 10, T)
    for k in range(5, 9):
        moving.update(*frame_volume(T, box_x=-1.0), GRID, S + k * S // 10, T)
    assert moving.labels()[box_cell] == FREE
    assert moving.labels()[30, 27, 3] == OCCUPIED  # odom (-0.3, -0.9, 0.3): new place


def test_carved_free_space_decays_back_to_unknown_when_no_longer_seen():
    """A carved voxel left unobserved returns to unknown at decay_free_per_s; without the
    depth (views None) an update carves nothing, whatever the configuration says."""
    K = np.array([[16.0, 0.0, 15.5], [0.0, 16.0, 15.5], [0.0, 0.0, 1.0]])  # 32 px, 90 deg
    R = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])  # looks along +x
    views = DepthViews(np.full((1, 32, 32), 5.0, np.float32), K[None],
                       make_transform(R, [0.03, 0.05, 1.03])[None])
    cfg = FusionConfig.matching(GRID, interpolation="nearest", decay_free_per_s=2.0,
                                carve_stride=1)  # every pixel of the tiny image
    fusion = OccupancyFusion(cfg)
    nothing = np.zeros(GRID.dims, bool)
    zeros = np.zeros(GRID.dims, np.float32)
    T = np.eye(4)
    status = fusion.update(zeros, nothing, GRID, S, T, views=views)
    assert status.carved_voxels > 100 and status.observed_voxels == 0
    cell = (45, 32, 7)  # odom centre (2.7, 0.1, 1.1): on the optical axis, 2.7 m ahead
    assert fusion.probability_grid().probability[cell] == pytest.approx(0.35)  # one miss
    assert fusion.labels()[cell] == FREE  # 0.35 <= free_threshold 0.4
    for k in range(1, 8):  # each set: decay +0.2, miss -0.62
        fusion.update(zeros, nothing, GRID, S + k * S // 10, T, views=views)
    assert fusion.probability_grid().probability[cell] < 0.06
    # Not seen any more: -3.1 at +2 per second is back to unknown within 2 s.
    for k in range(4, 25):
        assert fusion.update(zeros, nothing, GRID, S + k * S // 10, T).carved_voxels == 0
    assert fusion.labels()[cell] == UNKNOWN and fusion.stats()["known_voxels"] == 0


def test_occupancy_grid_projection_cells_and_band():
    cfg = FusionConfig.matching(GRID, interpolation="nearest", grid_z_min=0.1, grid_z_max=1.5)
    fusion = OccupancyFusion(cfg)
    T = make_transform(np.eye(3), [0.4, 0.2, 0.0])
    p, obs = frame_volume(T)
    obs[:20] = False  # x < -2.4 m relative to the robot: never seen
    # An overhang at 2.4 m height (above the band) over the free cell at odom (0.9, 0.9).
    overhang = tuple(GRID.points_to_index(np.array([[0.5, 0.7, 2.5]]))[0][0])
    p[overhang] = 0.9
    fusion.update(p, obs, GRID, S, T)
    grid = fusion.occupancy_grid()
    assert grid.data.dtype == np.int8 and grid.data.shape == (64, 64)  # (ny, nx)
    assert grid.resolution == pytest.approx(0.2) and grid.frame == "odom"
    np.testing.assert_allclose(grid.origin, [0.4 - 6.4, 0.2 - 6.4, 0.1])

    def cell(x, y):
        i = int(np.floor((x - grid.origin[0]) / grid.resolution))
        j = int(np.floor((y - grid.origin[1]) / grid.resolution))
        return grid.data[j, i]  # row = y, column = x

    assert cell(2.5, -0.5) == 100  # the box
    assert cell(6.1, 3.0) == 100  # the wall
    assert cell(0.9, 0.9) == 0  # free floor band, overhang above the band ignored
    assert cell(1.5, 2.5) == 0
    assert cell(-3.0, 0.0) == -1  # never observed
    assert set(np.unique(grid.data).tolist()) == {-1, 0, 100}
    # Widening the band to include the overhang marks that cell occupied.
    tall = fusion.occupancy_grid(z_max=2.6)
    i = int(np.floor((0.9 - tall.origin[0]) / 0.2))
    j = int(np.floor((0.9 - tall.origin[1]) / 0.2))
    assert tall.data[j, i] == 100


def test_probability_grid_and_sample_back_to_base_link():
    fusion = OccupancyFusion(FusionConfig.matching(GRID, interpolation="nearest"))
    T = make_transform(np.eye(3), [0.6, 0.0, 0.0])
    p, obs = frame_volume(T)
    obs[:, :, 8:] = False
    fusion.update(p, obs, GRID, S, T)
    pg = fusion.probability_grid()
    assert pg.probability.dtype == np.float32 and pg.frame == "odom" and pg.stamp_ns == S
    assert np.isnan(pg.probability[~pg.known]).all()
    assert np.isfinite(pg.probability[pg.known]).all()
    back = fusion.sample(GRID, T)  # same pose: the volume comes back exactly
    np.testing.assert_allclose(back[obs], np.clip(p[obs], 0.05, 0.95), atol=1e-5)
    assert np.isnan(back[~obs]).all()


def test_config_and_input_validation():
    with pytest.raises(ValueError, match="voxel_size x and y must be equal"):
        FusionConfig(voxel_size=(0.2, 0.3, 0.2))
    with pytest.raises(ValueError, match="p_min"):
        FusionConfig(p_min=0.0)
    with pytest.raises(ValueError, match="interpolation"):
        FusionConfig(interpolation="cubic")
    with pytest.raises(ValueError, match="clamp_min < 0.5 < clamp_max"):
        FusionConfig(clamp_min=0.6)
    with pytest.raises(ValueError, match="unknown FusionConfig fields"):
        FusionConfig.matching(GRID, resolution=0.1)
    assert FusionConfig().dims == (128, 128, 20)
    fusion = OccupancyFusion(FusionConfig.matching(GRID))
    with pytest.raises(ValueError, match="match the grid dims"):
        fusion.update(np.zeros((4, 4, 4)), np.zeros((4, 4, 4), bool), GRID, S, np.eye(4))
    p, obs = frame_volume(np.eye(4))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fusion.update(p * 3.0, obs, GRID, S, np.eye(4))
    with pytest.raises(TypeError, match="stamp_ns"):
        fusion.update(p, obs, GRID, 1.5, np.eye(4))
    # NaN probabilities count as unobserved.
    p[:10] = np.nan
    status = fusion.update(p, obs, GRID, S, np.eye(4))
    assert status.observed_voxels < obs.sum()
    fusion.reset("test")
    assert fusion.stats()["known_voxels"] == 0 and fusion.stats()["last_reset_reason"] == "test"


def test_64_cubed_updates_along_a_moving_path_are_accepted():
    """A 64^3 volume fused over a smooth path: every update accepted, both interpolations.

    Speed is measured by the benchmark command, not asserted here.
    """
    grid = VoxelGrid.cube(64)
    rng = np.random.default_rng(0)
    p = torch.from_numpy(rng.random(grid.dims).astype(np.float32))
    obs = torch.from_numpy(rng.random(grid.dims) < 0.6)
    for interp in ("nearest", "trilinear"):
        fusion = OccupancyFusion(FusionConfig.matching(grid, interpolation=interp))
        for k in range(4):
            T = make_transform(rotz(0.01 * k), [0.05 * k, 0.01 * k, 0.0])
            status = fusion.update(p, obs, grid, S + k * S // 10, T)
            assert status.accepted, (interp, k, status.message)


def test_map_work_runs_with_cpu_threads_and_restores_torch_threads(monkeypatch):
    """Updates and queries run torch with config.cpu_threads (1 by default) intra-op
    threads and give torch its own setting back; the thread count never changes results."""
    import depth_any_view.mapping.fusion as fusion_module

    seen_threads = []
    real_grid_sample = fusion_module.F.grid_sample

    def recording_grid_sample(*args, **kwargs):
        seen_threads.append(torch.get_num_threads())
        return real_grid_sample(*args, **kwargs)

    monkeypatch.setattr(fusion_module.F, "grid_sample", recording_grid_sample)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        maps = {n: OccupancyFusion(FusionConfig.matching(GRID, cpu_threads=n)) for n in (0, 1)}
        rng = np.random.default_rng(3)
        for k in range(6):
            p, obs = frame_volume(pose(k), rng, flip=0.2, visible=0.7)
            for f in maps.values():
                assert f.update(p, obs, GRID, S + k * S // 10, pose(k)).accepted
                assert torch.get_num_threads() == 2
        assert seen_threads == [2, 1] * 6  # cpu_threads 0 leaves torch's setting alone
        a, b = maps[0], maps[1]
        assert torch.equal(a._log_odds, b._log_odds) and torch.equal(a._known, b._known)
        arrays = {"occupied_voxels": lambda f: f.occupied_voxels(),
                  "labels": lambda f: (f.labels(),),
                  "occupancy_grid": lambda f: (f.occupancy_grid().data,),
                  "probability_grid": lambda f: (f.probability_grid().probability,
                                                 f.probability_grid().known),
                  "sample": lambda f: (f.sample(GRID, pose(5)),)}
        for query, get in arrays.items():
            for x, y in zip(get(a), get(b)):
                np.testing.assert_array_equal(x, y)
            assert torch.get_num_threads() == 2, query
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError, match="cpu_threads"):
        FusionConfig(cpu_threads=-1)


def test_probability_grid_is_a_snapshot_and_inputs_are_not_modified():
    """Buffers are reused between updates: what a query returned and the caller's volume
    stay as they were."""
    fusion = OccupancyFusion(FusionConfig.matching(GRID))
    p, obs = frame_volume(np.eye(4))
    p[:, :, :2] = np.nan
    p_in, obs_in = p.copy(), obs.copy()
    fusion.update(p, obs, GRID, S, np.eye(4))
    np.testing.assert_array_equal(p, p_in)
    np.testing.assert_array_equal(obs, obs_in)
    first = fusion.probability_grid()
    known = first.known.copy()
    for k in range(1, 4):  # whole-voxel moves: the map shifts through its spare buffer
        T = make_transform(np.eye(3), [0.2 * k, 0.0, 0.0])
        fusion.update(*frame_volume(T), GRID, S + k * S // 10, T)
    np.testing.assert_array_equal(first.known, known)
    assert fusion.probability_grid().known.sum() > known.sum()


def _tilt(roll: float, pitch: float) -> np.ndarray:
    cr, sr, cp, sp = np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch)
    Rx = np.array([[1.0, 0, 0], [0, cr, -sr], [0, sr, cr]])
    Ry = np.array([[cp, 0, sp], [0, 1.0, 0], [-sp, 0, cp]])
    return Ry @ Rx


@pytest.mark.parametrize("interp", ["trilinear", "nearest"])
def test_separable_fast_path_matches_the_3d_resampling(monkeypatch, interp):
    """Yaw-only poses (any z, off-lattice xy) take the separable x, y then z path and give
    the general 3D grid_sample's map, update after update; a slight tilt (2D odometry on a
    slope) takes it too, within its x, y tolerance; a steep tilt takes the 3D path."""
    import depth_any_view.mapping.fusion as fusion_module

    grid = VoxelGrid((-6.4, -6.4, -0.8), (6.4, 6.4, 3.2), (32, 32, 40))  # 0.4 x 0.4 x 0.1
    rng = np.random.default_rng(3)
    cfg = FusionConfig.matching(grid, interpolation=interp, carve_free_space=False)
    fast, general = OccupancyFusion(cfg), OccupancyFusion(cfg)
    poses = [make_transform(rotz(0.37 * k), [0.13 * k, -0.07 * k, 0.031 * k])
             for k in range(5)]
    for k, T in enumerate(poses):
        p = rng.random(grid.dims).astype(np.float32)
        obs = rng.random(grid.dims) < 0.7
        assert fast.update(p, obs, grid, S + k * S // 10, T).accepted
        monkeypatch.setattr(fusion_module, "SEPARABLE_TOLERANCE_VOXELS", -1.0)  # never
        assert general.update(p, obs, grid, S + k * S // 10, T).accepted
        monkeypatch.undo()
        a, b = fast.probability_grid(), general.probability_grid()
        np.testing.assert_array_equal(a.known, b.known)
        np.testing.assert_allclose(a.probability[a.known], b.probability[b.known],
                                   atol=2e-5)
    assert fast.separable_updates == 5 and general.separable_updates == 0

    # a smooth field on a slope (pitch 0.3 deg, roll 0.2 deg): the same map up to the
    # sub-voxel x, y shift the separable path allows
    c = grid.centers(np.float64)
    smooth = (0.5 + 0.4 * np.sin(c[..., 0] / 1.7) * np.cos(c[..., 1] / 2.3)
              * np.cos(c[..., 2] / 1.1)).astype(np.float32)
    obs = np.ones(grid.dims, dtype=bool)
    fast, general = OccupancyFusion(cfg), OccupancyFusion(cfg)
    for k in range(3):
        T = make_transform(rotz(0.2 * k) @ _tilt(0.0035, 0.0052), [0.3 * k, 0.1 * k, 0.02])
        fast.update(smooth, obs, grid, S + k * S // 10, T)
        monkeypatch.setattr(fusion_module, "SEPARABLE_TOLERANCE_VOXELS", -1.0)
        general.update(smooth, obs, grid, S + k * S // 10, T)
        monkeypatch.undo()
    assert fast.separable_updates == 3
    a, b = fast.probability_grid(), general.probability_grid()
    both = a.known & b.known
    assert both.sum() > 0.8 * a.known.sum()
    diff = np.abs(a.probability[both] - b.probability[both])
    # close everywhere but where a voxel's observed weight sits at the observed_fraction
    # boundary (map edges) or, nearest, where the x, y shift crosses a rounding boundary
    assert np.mean(diff < 0.05) > 0.99
    assert np.median(diff) < 1e-3
    fast.update(smooth, obs, grid, S + 4 * S // 10,
                make_transform(_tilt(0.0, 0.1), [0.9, 0.3, 0.0]))  # 5.7 deg: 3D path
    assert fast.separable_updates == 3


@pytest.mark.parametrize("nearest", [False, True])
def test_z_taps_interpolate_each_column_at_its_own_shift(nearest):
    """The tilted separable path's z step: map voxel k of column (i, j) is read at source
    index k + offset[i, j] (linear or nearest), zero beyond the padded source, for offsets
    that put columns past the bottom and the top."""
    grid = VoxelGrid((-1.6, -1.2, 0.0), (1.6, 1.2, 1.0), (8, 6, 10))
    fusion = OccupancyFusion(FusionConfig.matching(grid, carve_free_space=False))
    rng = np.random.default_rng(11)
    C, X, Y, Z = 2, 8, 6, 10
    W = rng.random((C, Z + 2, X, Y)).astype(np.float32)
    W[:, 0] = W[:, -1] = 0.0  # the zero pads of the real buffer
    offset = rng.uniform(-3.0, 4.0, size=(X, Y))
    out = fusion._z_taps(torch.as_tensor(W), offset, nearest).numpy()
    padded = np.concatenate([np.zeros((C, 8, X, Y)), W, np.zeros((C, 8, X, Y))], axis=1)
    u = np.arange(Z)[:, None, None] + offset[None] + 8  # (Z, X, Y) index into `padded`
    ii, jj = np.meshgrid(np.arange(X), np.arange(Y), indexing="ij")
    if nearest:
        expected = padded[:, np.rint(u).astype(int), ii, jj]
    else:
        lo = np.floor(u).astype(int)
        f = u - lo
        expected = padded[:, lo, ii, jj] * (1 - f) + padded[:, lo + 1, ii, jj] * f
    np.testing.assert_allclose(out, expected, atol=1e-6)


@pytest.mark.parametrize("interp", ["trilinear", "nearest"])
def test_tilted_separable_z_shifts_match_the_per_voxel_gather(monkeypatch, interp):
    """Tilted poses with equal map and source z voxels take the per-column z shifts; on a
    smooth field they give the per-voxel gather's map up to the shifts' z error (at most
    Z_TAPS_TOLERANCE_VOXELS / 2 of a voxel)."""
    import depth_any_view.mapping.fusion as fusion_module

    grid = VoxelGrid((-6.4, -6.4, -0.8), (6.4, 6.4, 3.2), (32, 32, 40))  # 0.4 x 0.4 x 0.1
    c = grid.centers(np.float64)
    smooth = (0.5 + 0.4 * np.sin(c[..., 0] / 1.7) * np.cos(c[..., 1] / 2.3)
              * np.cos(c[..., 2] / 0.7)).astype(np.float32)
    obs = np.ones(grid.dims, dtype=bool)
    cfg = FusionConfig.matching(grid, interpolation=interp, carve_free_space=False)
    taps, gather = OccupancyFusion(cfg), OccupancyFusion(cfg)
    calls = []
    original = OccupancyFusion._z_taps
    monkeypatch.setattr(OccupancyFusion, "_z_taps",
                        lambda self, *a: calls.append(1) or original(self, *a))
    for k in range(4):  # tilt up to 0.019 rad: about 1.5 z voxels across the map
        T = make_transform(rotz(0.3 * k) @ _tilt(0.004 * k, 0.005 * k),
                           [0.17 * k, -0.05 * k, 0.33 * k - 0.4])
        assert taps.update(smooth, obs, grid, S + k * S // 10, T).accepted
        with monkeypatch.context() as m:
            m.setattr(fusion_module, "Z_TAPS_TOLERANCE_VOXELS", -1.0)  # never: gather
            assert gather.update(smooth, obs, grid, S + k * S // 10, T).accepted
    assert len(calls) == 3  # the level first pose slices without either
    assert taps.separable_updates == gather.separable_updates == 4
    a, b = taps.probability_grid(), gather.probability_grid()
    assert np.mean(a.known != b.known) < 1e-3  # only at the observed_fraction boundary
    both = a.known & b.known
    diff = np.abs(a.probability[both] - b.probability[both])
    assert np.median(diff) < 1e-4 and np.quantile(diff, 0.999) < 0.02


def test_device_tensor_input_is_used_in_place_and_equals_numpy_input():
    """The pipeline hands the engine's device tensors straight to a fusion on the same
    device: a tensor input gives the same map as the numpy one (here on the CPU)."""
    rng = np.random.default_rng(5)
    p = rng.random(GRID.dims).astype(np.float32)
    obs = rng.random(GRID.dims) < 0.6
    cfg = FusionConfig.matching(GRID)
    a, b = OccupancyFusion(cfg), OccupancyFusion(cfg)
    for k in range(3):
        a.update(p, obs, GRID, S + k * S // 10, pose(k))
        b.update(torch.from_numpy(p), torch.from_numpy(obs), GRID, S + k * S // 10, pose(k))
    np.testing.assert_array_equal(a.probability_grid().known, b.probability_grid().known)
    np.testing.assert_array_equal(np.nan_to_num(a.probability_grid().probability),
                                  np.nan_to_num(b.probability_grid().probability))
    bad = p.copy()
    bad[0, 0, 0] = 2.0
    with pytest.raises(ValueError, match=r"\[0, 1\]"):  # host tensors are still checked
        b.update(torch.from_numpy(bad), torch.ones(GRID.dims, dtype=torch.bool), GRID,
                 S + 5 * S // 10, pose(5))


def test_uploads_keep_values_and_return_device_tensors_as_they_are():
    """The map's host -> device helper: numpy and host tensors arrive with their values
    (cast when asked); a tensor already on the device is not copied."""
    from depth_any_view.mapping.upload import to_device

    a = np.arange(6, dtype=np.float64).reshape(2, 3)[:, ::-1]  # not contiguous
    t = to_device(a, "cpu", torch.float32)
    assert t.dtype == torch.float32 and np.array_equal(t.numpy(), a)
    mask = to_device(np.array([True, False]), torch.device("cpu"))
    assert mask.dtype == torch.bool and mask.tolist() == [True, False]
    same = torch.ones(3)
    assert to_device(same, "cpu").data_ptr() == same.data_ptr()


def test_the_map_stays_z_major_and_its_queries_agree():
    """The map is stored z-major (the update's resampled volumes are (C, Z, X, Y)), through
    shifts, decay and resets; the voxel list, labels and probability grid agree with each
    other, whatever the storage order."""
    cfg = FusionConfig.matching(GRID, decay_occupied_per_s=0.5, decay_free_per_s=0.5)
    fusion = OccupancyFusion(cfg)
    rng = np.random.default_rng(5)

    def z_major() -> bool:
        return (fusion._log_odds.permute(2, 0, 1).is_contiguous()
                and fusion._known.permute(2, 0, 1).is_contiguous())

    for k in range(5):
        T = make_transform(rotz(0.05 * k), [0.45 * k, 0.1 * k, 0.0])  # shifts every set
        assert fusion.update(*frame_volume(T, rng, flip=0.1, visible=0.8), GRID,
                             S + k * S // 10, T).accepted
        assert z_major()
    grid = fusion.probability_grid()
    assert grid.probability.flags.c_contiguous and grid.known.flags.c_contiguous
    centres, probs = fusion.occupied_voxels()
    want = grid.known & (grid.probability >= cfg.occupied_threshold)
    assert 0 < len(centres) == int(want.sum())
    index = np.floor((centres - fusion.origin) / fusion.voxel_size).astype(int)
    got = np.zeros_like(want)
    got[tuple(index.T)] = True
    np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(probs, grid.probability[tuple(index.T)], rtol=1e-6)
    np.testing.assert_array_equal(fusion.labels() == OCCUPIED, want)
    fusion.reset("test")
    assert z_major() and not fusion.probability_grid().known.any()
