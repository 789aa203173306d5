"""Tests of training/rig_batching.py and mixed-rig, temporal cost-volume training."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml

from depth_any_view.config import ConfigError
from depth_any_view.data.augment import AugmentConfig, Augmenter, sensor_jitter
from depth_any_view.data.dataset import concat_shards
from depth_any_view.data.synth import synthesize
from depth_any_view.training.config import TrainConfig
from depth_any_view.training.rig_batching import (
    RigNormalisedDataset,
    drop_views,
    pad_views,
    resize_depth,
    resize_images,
)
from depth_any_view.training.trainer import Trainer

TINY_COST_MODEL = {
    "backbone": "resnet18", "backbone_width": 8, "image_size": [32, 32], "hidden": 16,
    "layers": 2, "heads": 2, "token_stride": 16, "decoder_width": 16,
    "grid_dims": [8, 8, 8], "occ_channels": 4, "occ_hidden": 4, "occ_blocks": 1,
    "occ_fine_channels": 4, "occ_fine_kernel": 1, "plucker_frequencies": 2,
    "cost_volume": True, "cost_temporal": True, "cost_hypotheses": 8, "cost_channels": 8,
    "cost_groups": 2,
}


@pytest.fixture(scope="module")
def two_rigs(tmp_path_factory) -> Path:
    """A six-camera 32x32 sequence and a three-camera 48x32 front-array sequence."""
    root = tmp_path_factory.mktemp("rigs")
    synthesize(root / "a", frames=2, size=(32, 32), grid_dims=8, seed=3, scene="indoor",
               progress=False)
    synthesize(root / "b", frames=2, size=(48, 32), grid_dims=8, seed=4, scene="outdoor",
               rig="front_array", progress=False)
    return root


def test_resize_scales_intrinsics_and_keeps_nan_depth():
    images = torch.rand(2, 3, 40, 80)
    K = torch.tensor([[40.0, 0.0, 39.5], [0.0, 40.0, 19.5], [0.0, 0.0, 1.0]]).expand(2, 3, 3)
    small, K2 = resize_images(images, K, (20, 20))
    assert small.shape == (2, 3, 20, 20)
    assert K2[0, 0, 0] == pytest.approx(10.0) and K2[0, 1, 1] == pytest.approx(20.0)
    assert K2[0, 0, 2] == pytest.approx(9.5) and K2[0, 1, 2] == pytest.approx(9.5)
    depth = torch.full((2, 40, 80), 3.0)
    depth[:, :, :40] = float("nan")
    d = resize_depth(depth, (20, 20))
    assert torch.isnan(d[:, :, :10]).all() and (d[:, :, 10:] == 3.0).all()


def test_padding_masks_the_added_views_and_dropout_keeps_one():
    sample = {"images": torch.rand(3, 3, 8, 8), "depth": torch.rand(3, 8, 8),
              "K": torch.eye(3).expand(3, 3, 3), "T_base_cam": torch.eye(4).expand(3, 4, 4)}
    out = pad_views(sample, 5)
    assert out["view_mask"].tolist() == [True, True, True, False, False]
    assert out["images"].shape == (5, 3, 8, 8) and torch.isnan(out["depth"][3:]).all()
    assert torch.equal(out["K"][4], torch.eye(3))
    with pytest.raises(ValueError, match="max_views"):
        pad_views(sample, 2)
    gen = torch.Generator().manual_seed(0)
    for _ in range(50):
        kept = drop_views(out["view_mask"], 0.9, gen)
        assert 1 <= int(kept.sum()) <= 3 and not kept[3:].any()
    assert torch.equal(drop_views(out["view_mask"], 0.0, gen), out["view_mask"])


def test_mixed_rigs_dataset_gives_one_shape(two_rigs):
    with pytest.raises(ValueError, match="cameras/size/grid"):
        concat_shards([two_rigs])
    base = concat_shards([two_rigs], temporal=True, same_rig=False)
    ds = RigNormalisedDataset(base, image_size=(32, 32), depth_size=(16, 16), max_views=8,
                              view_dropout=0.5, seed=1)
    shapes = set()
    for i in range(len(ds)):
        s = ds[i]
        shapes.add((tuple(s["images"].shape), tuple(s["prev_images"].shape),
                    tuple(s["depth"].shape), tuple(s["K"].shape)))
        dropped = ~s["view_mask"]
        assert torch.isnan(s["depth"][dropped]).all()
        assert s["view_mask"].any()
    assert shapes == {((8, 3, 32, 32), (8, 3, 32, 32), (8, 16, 16), (8, 3, 3))}
    # the front-array rig has 3 views: padding masks the other 5
    b = ds[len(ds) - 1]
    assert not b["view_mask"][3:].any()
    # six views into four slots: a random subset of four, none padded
    four = RigNormalisedDataset(base, image_size=(32, 32), depth_size=(16, 16), max_views=4)
    s = four[0]
    assert s["images"].shape[0] == 4 and s["view_mask"].all()


def test_sensor_jitter_changes_images_within_range_and_is_seeded():
    images = torch.rand(3, 3, 24, 24)
    a = sensor_jitter(images, gamma=0.5, blur_prob=1.0, blur_sigma=2.0, noise_std=0.05,
                      generator=torch.Generator().manual_seed(0))
    b = sensor_jitter(images, gamma=0.5, blur_prob=1.0, blur_sigma=2.0, noise_std=0.05,
                      generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a.min() >= 0 and a.max() <= 1
    assert (a - images).abs().mean() > 0.01
    blurred = sensor_jitter(images, blur_prob=1.0, blur_sigma=2.0,
                            generator=torch.Generator().manual_seed(0))
    assert blurred.std() < images.std() * 0.8  # blur removes the white noise's variance
    with pytest.raises(ConfigError, match="noise_std"):
        AugmentConfig(noise_std=0.9)


def test_flip_mirrors_the_previous_frame_too():
    T = torch.eye(4)
    T[1, 3] = 0.7
    sample = {"images": torch.rand(1, 3, 4, 6), "prev_images": torch.rand(1, 3, 4, 6),
              "K": torch.eye(3)[None], "T_base_cam": torch.eye(4)[None],
              "T_odom_base": torch.eye(4), "prev_T_odom_base": T}
    out = Augmenter(AugmentConfig(flip_prob=1.0, color_prob=0.0, view_jitter_prob=0.0))(
        sample, torch.Generator().manual_seed(0))
    assert torch.equal(out["prev_images"], torch.flip(sample["prev_images"], dims=[-1]))
    assert out["prev_T_odom_base"][1, 3] == pytest.approx(-0.7)


def test_mixed_rig_temporal_cost_volume_training_learns(two_rigs, tmp_path):
    model = tmp_path / "tiny_cost.yaml"
    model.write_text(yaml.safe_dump(TINY_COST_MODEL))
    base = dict(model=str(model), train_data=[str(two_rigs)], val_data=[str(two_rigs)],
                batch_size=4, epochs=1, max_steps=40, lr=2e-3, warmup_steps=0, threads=1,
                out_dir=str(tmp_path / "run"), mlflow=False, num_workers=0, log_every=1,
                val_batches=1, seed=0, temporal=True, mixed_rigs=True, depth_size=[16, 16],
                view_dropout=0.3,
                loss={"photo_weight": 0.0, "cos_weight": 0.0, "smooth_weight": 0.0},
                augment={"flip_prob": 0.5, "view_jitter_prob": 0.0, "gamma": 0.3,
                         "blur_prob": 0.3, "noise_std": 0.02})
    with pytest.raises(ConfigError, match="photo_weight"):
        Trainer(TrainConfig(**{**base, "loss": {}}))
    trainer = Trainer(TrainConfig(**base))
    batch = next(iter(trainer.train_loader))  # one fixed batch of two rigs
    first = trainer.process_batch(batch)["depth"]
    for _ in range(15):
        last = trainer.process_batch(batch)["depth"]
    assert math.isfinite(last) and last < 0.8 * first
    metrics = trainer.validate()
    assert math.isfinite(metrics["abs_rel"])
    assert trainer.model.cost.match.weight.grad is not None


def test_cost_loss_teaches_the_matching_features(two_rigs, tmp_path):
    """With loss.cost_weight the cost volume's own depth is supervised: the term is logged,
    falls on a fixed batch, and reaches the matching projection at once (the volume's
    zero-initialised way into the network gives it no gradient at the first step)."""
    model = tmp_path / "tiny_cost.yaml"
    model.write_text(yaml.safe_dump({**TINY_COST_MODEL, "cost_temporal": False}))
    base = dict(model=str(model), train_data=[str(two_rigs)], batch_size=4, epochs=1,
                max_steps=40, lr=2e-3, warmup_steps=0, threads=1, out_dir=str(tmp_path / "r"),
                mlflow=False, num_workers=0, log_every=1, seed=0, mixed_rigs=True,
                depth_size=[16, 16],
                loss={"photo_weight": 0.0, "cos_weight": 0.0, "smooth_weight": 0.0,
                      "occupancy_weight": 0.0, "depth_weight": 0.0, "cost_weight": 1.0,
                      "cost_min_evidence": 0.05})
    trainer = Trainer(TrainConfig(**base))
    batch = next(iter(trainer.train_loader))
    first = trainer.process_batch(batch)
    assert "cost" in first and first["cost"] > 0
    assert trainer.model.cost.match.weight.grad.abs().sum() > 0
    for _ in range(15):
        last = trainer.process_batch(batch)["cost"]
    assert last < first["cost"]
    with pytest.raises(ConfigError, match="cost_weight"):
        Trainer(TrainConfig(**{**base, "model": "lite",
                               "model_overrides": {"image_size": [32, 32]}}))
