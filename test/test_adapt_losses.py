"""Tests of adapt/losses.py and the source gathering of adapt/trainer.py on synthetic frames
with analytic truth: the true depth explains the views, a wrong scale does not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from depth_any_view.adapt.bag_sets import AdaptSet, BagSets
from depth_any_view.adapt.losses import (
    NO_SOURCE,
    SourceBatch,
    anchor_loss,
    min_reprojection_loss,
)
from depth_any_view.adapt.trainer import gather_sources
from depth_any_view.training.warp import neighbour_pairs


def _set(frame, index: int, *, pose: bool = True) -> AdaptSet:
    """A synthetic frame as an adaptation set (network size = the frame's size)."""
    V, H, W = frame.depth.shape
    return AdaptSet(index=index, stamp_ns=frame.stamp_ns,
                    images=torch.from_numpy(frame.images).permute(0, 3, 1, 2).contiguous(),
                    K=torch.from_numpy(frame.K.astype(np.float32)),
                    valid=torch.ones(V, H, W, dtype=torch.bool),
                    T_base_cam=frame.T_base_cam.copy(),
                    T_odom_base=frame.T_odom_base.copy() if pose else None,
                    image_stamps={n: frame.stamp_ns for n in frame.camera_names},
                    cameras=[])


@pytest.fixture(scope="module")
def frames() -> list:
    """Frames 6, 8 and 10 of the standard world at 64x64: the robot has sped up, so the
    previous and next sets see the scene from 10-15 cm away (parallax of a few pixels)."""
    from depth_any_view.data.synth import generate_frames

    seq = list(generate_frames(frames=11, size=(64, 64), seed=5, scene="indoor",
                               grid_dims=8))
    return [seq[6], seq[8], seq[10]]


def _bag(frames: list, *, pairs: bool = True, poses: bool = True) -> BagSets:
    sets = [_set(f, i, pose=poses) for i, f in enumerate(frames)]
    return BagSets(path=Path("synthetic"), camera_names=frames[0].camera_names, sets=sets,
                   pairs=neighbour_pairs(frames[0].T_base_cam) if pairs else [],
                   rig_source="test", odometry="test", depth_gt_topics={})


def _loss(frames: list, bag: BagSets, scale: float, automask: bool = False) -> float:
    """Loss of the middle frame's views at its true depth times `scale`."""
    mid = frames[1]
    depth = torch.from_numpy(np.nan_to_num(mid.depth, nan=20.0))[None] * scale  # (1,V,H,W)
    images = torch.from_numpy(mid.images).permute(0, 3, 1, 2)[None].float() / 255.0
    K = torch.from_numpy(mid.K.astype(np.float32))[None]
    valid = torch.ones(depth.shape, dtype=torch.bool)
    sources = gather_sources([bag], [(0, 1)], [-1, 1])
    loss, _ = min_reprojection_loss(depth, images, K, valid, sources, automask=automask)
    return float(loss)


@pytest.mark.parametrize("kind", ["spatial", "temporal", "both"])
def test_true_depth_explains_the_views_better_than_a_wrong_scale(frames, kind) -> None:
    """Through the calibrated baselines and through the odometry alike, the true metric
    depth reconstructs the target views best: the loss fixes the scale."""
    bag = _bag(frames, pairs=kind != "temporal")
    offsets_ok = kind != "spatial"
    if not offsets_ok:
        for s in bag.sets:
            s.T_odom_base = None
    true = _loss(frames, bag, 1.0)
    for scale in (0.6, 1.6):
        assert true < 0.85 * _loss(frames, bag, scale), (kind, scale)


def test_sources_of_a_set(frames) -> None:
    """Spatial rows for each camera's ring neighbours, temporal rows for the posed
    neighbour sets only, slots numbered per target."""
    bag = _bag(frames)
    V = len(frames[0].camera_names)
    src = gather_sources([bag], [(0, 1)], [-1, 1])
    n_pairs = len(bag.pairs)
    assert int((~src.temporal).sum()) == n_pairs
    assert int(src.temporal.sum()) == 2 * V
    for v in range(V):
        slots = src.slot[src.target == v].tolist()
        assert slots == list(range(len(slots)))
    # the first set has no previous set: only the next one is a temporal source
    first = gather_sources([bag], [(0, 0)], [-1, 1])
    assert int(first.temporal.sum()) == V
    # without poses: no temporal source at all
    unposed = gather_sources([_bag(frames, poses=False)], [(0, 1)], [-1, 1])
    assert int(unposed.temporal.sum()) == 0
    # a temporal row maps the target camera at t into the same camera at t-1
    row = int(torch.nonzero(src.temporal & (src.target == 0))[0])
    T_expect = (np.linalg.inv(frames[0].T_odom_base @ frames[0].T_base_cam[0])
                @ frames[1].T_odom_base @ frames[1].T_base_cam[0])
    np.testing.assert_allclose(src.T_src_tgt[row].numpy(), T_expect, atol=1e-5)


def test_automask_leaves_out_pixels_the_still_image_explains(frames) -> None:
    """A robot standing still: the previous and next images equal the target, so every
    pixel is explained unwarped and auto-masking leaves all of them out."""
    still = [frames[1], frames[1], frames[1]]
    bag = _bag(still, pairs=False)
    mid = still[1]
    depth = torch.from_numpy(np.nan_to_num(mid.depth, nan=20.0))[None] * 1.5
    images = torch.from_numpy(mid.images).permute(0, 3, 1, 2)[None].float() / 255.0
    K = torch.from_numpy(mid.K.astype(np.float32))[None]
    valid = torch.ones(depth.shape, dtype=torch.bool)
    sources = gather_sources([bag], [(0, 1)], [-1, 1])
    _, off = min_reprojection_loss(depth, images, K, valid, sources, automask=False)
    loss, on = min_reprojection_loss(depth, images, K, valid, sources, automask=True)
    assert off["photo_pixels"] > 0.5
    assert on["photo_pixels"] < 0.01 and on["automasked"] > 0.99
    assert float(loss) == 0.0


def test_minimum_over_sources_and_unseen_pixels() -> None:
    """Each pixel keeps its best source; pixels no source sees are left out; gradients
    reach the depth."""
    H = W = 8
    depth = torch.full((1, 1, H, W), 5.0, requires_grad=True)
    target = torch.rand(1, 1, 3, H, W, generator=torch.Generator().manual_seed(0))
    K = torch.tensor([[[[8.0, 0, 3.5], [0, 8.0, 3.5], [0, 0, 1]]]])
    good = target[0, 0]  # identity warp of the same image: error 0
    bad = 1.0 - target[0, 0]
    eye = torch.eye(4)
    sources = SourceBatch(target=torch.tensor([0, 0]), slot=torch.tensor([0, 1]),
                          images=torch.stack([bad, good]), K=K[0, 0].expand(2, 3, 3),
                          valid=torch.ones(2, H, W, dtype=torch.bool),
                          T_src_tgt=eye.expand(2, 4, 4).clone(),
                          temporal=torch.tensor([False, False]))
    loss, stats = min_reprojection_loss(depth, target, K, torch.ones(1, 1, H, W, dtype=bool),
                                        sources, automask=False)
    assert float(loss.detach()) < 1e-6 and stats["photo_pixels"] == 1.0
    # a source moved 100 m sideways sees nothing: no pixel counts
    far = eye.clone()
    far[0, 3] = 100.0
    gone = SourceBatch(torch.tensor([0]), torch.tensor([0]), good[None], K[0, 0][None],
                       torch.ones(1, H, W, dtype=torch.bool), far[None], torch.tensor([False]))
    loss, stats = min_reprojection_loss(depth, target, K, torch.ones(1, 1, H, W, dtype=bool),
                                        gone, automask=False)
    assert float(loss.detach()) == 0.0 and stats["photo_pixels"] == 0.0
    loss.backward()
    assert depth.grad is not None and NO_SOURCE > 1.0


def test_anchor_is_zero_at_the_start_and_grows_with_the_change() -> None:
    """Sum of squared differences to the starting weights."""
    net = torch.nn.Linear(3, 2)
    start = {n: p.detach().clone() for n, p in net.named_parameters()}
    assert float(anchor_loss(net, start).detach()) == 0.0
    with torch.no_grad():
        net.weight.add_(0.5)
    assert float(anchor_loss(net, start).detach()) == pytest.approx(6 * 0.25)


def test_masking_a_pixel_never_lowers_the_loss_below_the_still_image(frames) -> None:
    """Auto-masked pixels count with their unwarped error over the same pixels: the loss
    with masking is the per-pixel minimum of warped and unwarped errors, never a mean over
    fewer, easier pixels."""
    bag = _bag(frames, pairs=False)
    mid = frames[1]
    images = torch.from_numpy(mid.images).permute(0, 3, 1, 2)[None].float() / 255.0
    K = torch.from_numpy(mid.K.astype(np.float32))[None]
    sources = gather_sources([bag], [(0, 1)], [-1, 1])
    for scale in (0.5, 1.0, 3.0):
        depth = torch.from_numpy(np.nan_to_num(mid.depth, nan=20.0))[None] * scale
        valid = torch.ones(depth.shape, dtype=torch.bool)
        off, s_off = min_reprojection_loss(depth, images, K, valid, sources, automask=False)
        on, s_on = min_reprojection_loss(depth, images, K, valid, sources, automask=True)
        assert float(on) <= float(off) + 1e-7
        assert s_on["photo_pixels"] + s_on["automasked"] * s_off["photo_pixels"] == \
            pytest.approx(s_off["photo_pixels"], abs=1e-6)
    # the wrong scales mask more pixels, yet still cost more than the true depth
    assert _loss(frames, bag, 1.0, automask=True) < _loss(frames, bag, 3.0, automask=True)
