"""slam/trajectory.py's ATE and RPE against evo's (the tool users run on our TUM files).

evo is GPL-3.0: it is a test-only dependency (requirements-test.txt, installed by
`make test`); the package never imports it. The ground truth moves 0.1 m per pose, so a
1 m / 5 m segment ends exactly on a pose and evo's pairing (the pose whose travel is
closest to the length) and ours (the first pose at least that far) pick the same pairs.
"""

from __future__ import annotations

import copy

import numpy as np
from evo.core import metrics
from evo.core.trajectory import PoseTrajectory3D

from depth_any_view.geometry.transforms import make_transform
from depth_any_view.slam.trajectory import ate, rpe, segment_pairs

N = 240  # poses, 0.1 m apart: 23.9 m of travel


def rot(yaw: float, pitch: float = 0.0) -> np.ndarray:
    cy, sy, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
    return np.array([[cy, -sy, 0.0], [sy, cy, 0.0], [0.0, 0.0, 1.0]]) @ np.array(
        [[cp, 0.0, sp], [0.0, 1.0, 0.0], [-sp, 0.0, cp]])


def trajectories() -> tuple[np.ndarray, np.ndarray]:
    """Ground truth on a rising helix (0.1 m steps) with its heading along the path; an
    estimate that drifts in scale and heading with noise, in another start frame."""
    rng = np.random.default_rng(11)
    theta = 0.012 * np.arange(N)
    p = np.stack([8.0 * np.sin(theta), 8.0 * (1.0 - np.cos(theta)), 0.5 * theta], axis=1)
    p *= 0.1 / np.linalg.norm(p[1] - p[0])  # every step 0.1 m
    gt = np.stack([make_transform(rot(t, 0.02 * np.cos(5 * t)), q) for t, q in zip(theta, p)])
    offset = make_transform(rot(0.3), [2.0, -1.0, 0.5])
    est = np.stack([offset @ make_transform(
        rot(t + 0.002 * i + rng.normal(0, 0.004)),
        q * 1.03 + rng.normal(0, 0.02, 3) + [0.0, 0.001 * i, 0.0])
        for i, (t, q) in enumerate(zip(theta, p))])
    return est, gt


def evo_trajectory(T: np.ndarray) -> PoseTrajectory3D:
    return PoseTrajectory3D(poses_se3=list(T), timestamps=np.arange(len(T)) * 0.1)


def test_ate_matches_evo_ape_after_se3_alignment() -> None:
    est, gt = trajectories()
    ref, est_evo = evo_trajectory(gt), evo_trajectory(est)
    aligned = copy.deepcopy(est_evo)
    aligned.align(ref, correct_scale=False)
    ape = metrics.APE(metrics.PoseRelation.translation_part)
    ape.process_data((ref, aligned))
    ours = ate(est, gt)
    assert ours["rmse"] > 0.05  # the case is not trivial
    for ours_key, theirs in (("rmse", metrics.StatisticsType.rmse),
                             ("mean", metrics.StatisticsType.mean),
                             ("max", metrics.StatisticsType.max)):
        np.testing.assert_allclose(ours[ours_key], ape.get_statistic(theirs), rtol=1e-6)


def test_rpe_matches_evo_rpe_over_metre_segments() -> None:
    est, gt = trajectories()
    ref, est_evo = evo_trajectory(gt), evo_trajectory(est)
    for length in (1.0, 5.0):
        i, _, dist = segment_pairs(gt, length)
        np.testing.assert_allclose(dist, length, atol=1e-9)  # segments end on a pose
        ours = rpe(est, gt, length)
        for relation, key, scale in (
                (metrics.PoseRelation.translation_part, "translation_pct", 100.0 / length),
                (metrics.PoseRelation.rotation_angle_deg, "rotation_deg_per_m", 1.0 / length)):
            theirs = metrics.RPE(relation, delta=length, delta_unit=metrics.Unit.meters,
                                 rel_delta_tol=0.01, all_pairs=True,
                                 pairs_from_reference=True)
            theirs.process_data((ref, est_evo))
            assert len(theirs.error) == ours["segments"] == i.size
            np.testing.assert_allclose(
                ours[key], theirs.get_statistic(metrics.StatisticsType.mean) * scale,
                rtol=1e-6)
        assert ours["translation_pct"] > 1.0  # the estimate drifts: not a trivial zero
