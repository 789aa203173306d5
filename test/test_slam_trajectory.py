"""Tests of slam/trajectory.py: alignment, ATE, RPE, jumps and TUM files on hand-made cases."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from depth_any_view.geometry.transforms import quat_to_rotmat
from depth_any_view.slam.trajectory import (
    align_trajectory,
    ate,
    detect_jumps,
    path_length,
    read_tum,
    relative_to_first,
    rpe,
    umeyama,
    write_tum,
)


def pose(x: float, y: float = 0.0, z: float = 0.0, yaw: float = 0.0) -> np.ndarray:
    """A (4, 4) pose at (x, y, z) turned by yaw radians about z."""
    T = np.eye(4)
    c, s = math.cos(yaw), math.sin(yaw)
    T[:2, :2] = [[c, -s], [s, c]]
    T[:3, 3] = (x, y, z)
    return T


def random_rigid(rng: np.random.Generator) -> np.ndarray:
    """A random (4, 4) rigid transform."""
    q = rng.normal(size=4)
    T = np.eye(4)
    T[:3, :3] = quat_to_rotmat(q / np.linalg.norm(q))
    T[:3, 3] = rng.uniform(-20, 20, size=3)
    return T


def straight_line(step: float, n: int = 11) -> np.ndarray:
    """n poses along x, `step` metres apart."""
    return np.stack([pose(step * i) for i in range(n)])


# ---------------------------------------------------------------------------- alignment
def test_umeyama_recovers_a_known_rigid_motion_and_scale() -> None:
    rng = np.random.default_rng(3)
    src = rng.uniform(-5, 5, size=(50, 3))
    T = random_rigid(rng)
    dst = src @ T[:3, :3].T + T[:3, 3]
    R, t, s = umeyama(src, dst)
    np.testing.assert_allclose(R, T[:3, :3], atol=1e-9)
    np.testing.assert_allclose(t, T[:3, 3], atol=1e-9)
    assert s == 1.0
    R2, t2, s2 = umeyama(src, 1.7 * dst, with_scale=True)
    np.testing.assert_allclose(R2, T[:3, :3], atol=1e-9)
    assert s2 == pytest.approx(1.7, abs=1e-9)
    np.testing.assert_allclose(t2, 1.7 * T[:3, 3], atol=1e-8)
    assert np.linalg.det(R) == pytest.approx(1.0)


def test_align_trajectory_undoes_a_rigid_motion_of_the_estimate() -> None:
    rng = np.random.default_rng(4)
    gt = np.stack([pose(i * 0.7, math.sin(i) * 2, 0.1 * i, yaw=0.2 * i) for i in range(20)])
    T = random_rigid(rng)
    est = T @ gt  # the same trajectory in another frame
    A = align_trajectory(est, gt)
    np.testing.assert_allclose(A, np.linalg.inv(T), atol=1e-9)
    e = ate(est, gt)
    assert e["rmse"] == pytest.approx(0.0, abs=1e-9) and e["max"] < 1e-8
    assert ate(est, gt, align=False)["rmse"] > 1.0  # without alignment the frames differ


def test_ate_of_a_scaled_line_matches_the_hand_computed_value() -> None:
    # Estimate steps 1.1 m where the truth steps 1 m. The best rigid fit only shifts it by
    # -0.5 m, leaving residuals 0.5 - 0.1 i (i = 0..10): RMSE = sqrt(1.1 / 11) = sqrt(0.1).
    gt, est = straight_line(1.0), straight_line(1.1)
    e = ate(est, gt)
    assert e["rmse"] == pytest.approx(math.sqrt(0.1), abs=1e-9)
    assert e["max"] == pytest.approx(0.5, abs=1e-9)
    assert e["mean"] == pytest.approx(3.0 / 11.0, abs=1e-9)  # (2 * 1.5) / 11
    # the same estimate started anywhere else gives the same figures
    moved = ate(random_rigid(np.random.default_rng(5)) @ est, gt)
    assert moved["rmse"] == pytest.approx(e["rmse"], abs=1e-9)


# ---------------------------------------------------------------------------- RPE
def test_rpe_of_a_scaled_line_is_ten_percent_over_every_length() -> None:
    gt, est = straight_line(1.0), straight_line(1.1)
    for length, segments in ((1.0, 10), (10.0, 1), (2.0, 9)):
        r = rpe(est, gt, length)
        assert r["segments"] == segments
        assert r["translation_pct"] == pytest.approx(10.0, abs=1e-9)
        assert r["rotation_deg_per_m"] == pytest.approx(0.0, abs=1e-9)
    assert rpe(est, gt, 11.0)["segments"] == 0
    assert math.isnan(rpe(est, gt, 11.0)["translation_pct"])


def test_rpe_rotation_and_translation_match_a_hand_computed_turn() -> None:
    # Truth: x = 0, 1, 2 without turning. Estimate: the first step also turns by 0.1 rad,
    # the second goes 1 m straight ahead in the turned heading.
    a = 0.1
    gt = np.stack([pose(0), pose(1), pose(2)])
    est = np.stack([pose(0), pose(1, yaw=a), pose(1 + math.cos(a), math.sin(a), yaw=a)])
    one = rpe(est, gt, 1.0)
    assert one["segments"] == 2
    assert one["translation_pct"] == pytest.approx(0.0, abs=1e-9)
    # segment 0-1 is off by 0.1 rad over 1 m, segment 1-2 is exact: mean 0.05 rad/m
    assert one["rotation_deg_per_m"] == pytest.approx(math.degrees(a) / 2, abs=1e-9)
    two = rpe(est, gt, 2.0)
    assert two["segments"] == 1
    # E = (Rz(a), (cos a - 1, sin a, 0)): |t| = 2 sin(a / 2) over 2 m
    assert two["translation_pct"] == pytest.approx(2 * math.sin(a / 2) / 2 * 100, abs=1e-9)
    assert two["rotation_deg_per_m"] == pytest.approx(math.degrees(a) / 2, abs=1e-9)


def test_rpe_start_after_leaves_out_the_start_up_and_uses_travelled_distance() -> None:
    # The robot stands still for 3 poses, then moves 0.5 m per pose; the estimate misses the
    # first moving step entirely (start-up), then is exact.
    xs = [0, 0, 0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    gt = np.stack([pose(x) for x in xs])
    est = np.stack([pose(max(x - 0.5, 0.0)) for x in xs])
    np.testing.assert_allclose(path_length(gt), [0, 0, 0, 0.5, 1, 1.5, 2, 2.5, 3])
    all_ = rpe(est, gt, 1.0)
    steady = rpe(est, gt, 1.0, start_after=0.5)
    assert all_["segments"] == 7 and steady["segments"] == 4
    assert all_["translation_pct"] > 0 and steady["translation_pct"] == pytest.approx(0.0)


def test_mismatched_trajectories_are_refused_with_a_clear_error() -> None:
    with pytest.raises(ValueError, match="associate them by stamp"):
        ate(straight_line(1.0, 5), straight_line(1.0, 6))
    with pytest.raises(ValueError, match="NaN"):
        bad = straight_line(1.0, 5)
        bad[2, 0, 3] = np.nan
        rpe(bad, straight_line(1.0, 5), 1.0)
    with pytest.raises(ValueError, match="segment length"):
        rpe(straight_line(1.0), straight_line(1.0), 0.0)


# ---------------------------------------------------------------------------- jumps
def test_a_jump_is_found_against_the_truth_and_without_it() -> None:
    gt = straight_line(0.3, 12)
    est = gt.copy()
    est[7:, 0, 3] += 0.8  # one step 0.8 m too long, the rest follows
    assert detect_jumps(est, gt).tolist() == [7]
    assert detect_jumps(gt, gt).tolist() == []
    # small drift (0.05 m per step) is no jump; a fast robot's long true steps are none
    drift = np.stack([pose(0.35 * i) for i in range(12)])
    assert detect_jumps(drift, gt).tolist() == []
    fast = straight_line(0.9, 5)
    assert detect_jumps(fast, fast).tolist() == []
    # without ground truth only the step length counts
    assert detect_jumps(est).tolist() == [7]
    assert detect_jumps(fast).tolist() == [1, 2, 3, 4]
    assert detect_jumps(est, gt, threshold=1.0).tolist() == []


def test_relative_to_first_starts_at_the_identity() -> None:
    T = np.stack([pose(5, 2, yaw=1.0), pose(6, 2, yaw=1.0), pose(6, 4, yaw=0.5)])
    R = relative_to_first(T)
    np.testing.assert_allclose(R[0], np.eye(4), atol=1e-12)
    np.testing.assert_allclose(T[0] @ R, T, atol=1e-12)


# ---------------------------------------------------------------------------- TUM
def test_tum_files_round_trip_stamps_exactly_and_poses(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    T = np.stack([random_rigid(rng) for _ in range(5)])
    stamps = np.array([1_700_000_000_000_000_001, 1_700_000_000_100_000_000,
                       1_700_000_000_200_000_007, 1_700_000_001_000_000_000, 5], np.int64)
    path = write_tum(tmp_path / "t.tum", stamps, T, header="a test\ntwo lines")
    text = path.read_text().splitlines()
    assert text[0] == "# a test" and text[1] == "# two lines"
    assert text[3].split()[0] == "1700000000.000000001" and len(text[3].split()) == 8
    s2, T2 = read_tum(path)
    assert s2.tolist() == stamps.tolist()
    np.testing.assert_allclose(T2, T, atol=1e-8)


def test_tum_reader_accepts_other_writers_and_names_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "other.tum"
    path.write_text("# from another tool\n1.5 1 2 3 0 0 0 1\n1.6e0 1 2 3 0 0 1 0\n\n")
    stamps, T = read_tum(path)
    assert stamps.tolist() == [1_500_000_000, 1_600_000_000]
    np.testing.assert_allclose(T[1][:3, :3], np.diag([-1.0, -1.0, 1.0]), atol=1e-12)
    path.write_text("1.0 1 2 3 0 0 0 1\n2.0 1 2 3 0 0 1\n")
    with pytest.raises(ValueError, match=r"other\.tum:2: a TUM line"):
        read_tum(path)
