"""Tests of the trainer: learning, overfitting, checkpoints/resume, MLflow, DDP, presets."""

from __future__ import annotations

import math
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
import yaml

from depth_any_view.config import ConfigError
from depth_any_view.data.synth import synthesize
from depth_any_view.training.config import TrainConfig, apply_overrides, load_train_config
from depth_any_view.training.metrics import depth_metrics
from depth_any_view.training.trainer import Trainer, cosine_with_warmup

TINY_MODEL = {
    "backbone": "resnet18", "backbone_width": 8, "image_size": [32, 32], "hidden": 16,
    "layers": 2, "heads": 2, "token_stride": 16, "decoder_width": 16,
    "grid_dims": [8, 8, 8], "occ_channels": 4, "occ_hidden": 4, "occ_blocks": 1,
    "occ_fine_channels": 4, "occ_fine_kernel": 1, "plucker_frequencies": 2,
}


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    """Two tiny synthetic sequences (6 views of 32x32, 8^3 grid) as shard directories."""
    root = tmp_path_factory.mktemp("shards")
    synthesize(root / "a", frames=2, size=(32, 32), grid_dims=8, seed=3, scene="indoor",
               progress=False)
    synthesize(root / "b", frames=2, size=(32, 32), grid_dims=8, seed=4, scene="outdoor",
               progress=False)
    return root


@pytest.fixture(scope="module")
def tiny_model_yaml(tmp_path_factory) -> Path:
    """A model YAML small enough to train in seconds."""
    path = tmp_path_factory.mktemp("model") / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY_MODEL))
    return path


def make_cfg(data: Path, model: Path | str, out: Path, **kw) -> TrainConfig:
    """A TrainConfig for the tiny model and data."""
    base = dict(model=str(model), train_data=[str(data)], val_data=[str(data)], batch_size=2,
                epochs=1, lr=2e-3, warmup_steps=0, threads=1, out_dir=str(out),
                mlflow=False, num_workers=0, log_every=1, val_batches=1, seed=0)
    base.update(kw)
    return TrainConfig(**base)


def test_cosine_with_warmup_shape():
    f = [cosine_with_warmup(s, warmup=10, total=110, min_ratio=0.1) for s in range(120)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert f[10] == pytest.approx(1.0) and f[60] == pytest.approx(0.55)
    assert f[110] == pytest.approx(0.1) and f[119] == pytest.approx(0.1)
    assert all(a >= b - 1e-12 for a, b in zip(f[10:], f[11:]))


def test_train_config_validation_and_overrides(tmp_path):
    with pytest.raises(ConfigError, match="unknown training option"):
        TrainConfig.from_dict({"learning_rate": 1.0})
    with pytest.raises(ConfigError, match="'lr'"):
        TrainConfig(lr=-1.0)
    with pytest.raises(ConfigError, match="'amp'"):
        TrainConfig(amp="fp8")
    data = apply_overrides({"loss": {"cos_weight": 0.5}}, ["loss.cos_weight=0", "epochs=3"])
    assert data == {"loss": {"cos_weight": 0}, "epochs": 3}
    # YAML 1.1 reads 5e-5 as a string; an override means the number (TrainConfig takes it)
    data = apply_overrides({}, ["lr=5e-5", "min_lr_ratio=1E-2", "experiment=1e5run"])
    assert data == {"lr": 5e-5, "min_lr_ratio": 0.01, "experiment": "1e5run"}
    assert TrainConfig.from_dict({"lr": data["lr"]}).lr == pytest.approx(5e-5)
    cfg = load_train_config("lite", ["max_steps=5"])
    assert cfg.max_steps == 5 and cfg.model == "lite"
    assert load_train_config("paper").lr == pytest.approx(1e-4)
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides({}, ["epochs"])


def test_steps_decrease_the_loss_on_a_tiny_batch(tiny_data, tiny_model_yaml, tmp_path):
    cfg = make_cfg(tiny_data / "a", tiny_model_yaml, tmp_path, loss={"photo_weight": 0.0})
    trainer = Trainer(cfg)
    batch = next(iter(trainer.train_loader))
    totals = [trainer.process_batch(batch)["total"] for _ in range(6)]
    assert all(math.isfinite(t) for t in totals)
    assert totals[-1] < totals[0]
    assert trainer.step == 6


@pytest.mark.slow
def test_overfitting_one_sample_drives_abs_rel_below_005(tiny_data, tiny_model_yaml, tmp_path):
    # Two views keep it quick; the fit is measured with the same (training-mode) forward
    # pass the optimizer sees, on the training sample itself.
    cfg = make_cfg(tiny_data / "a", tiny_model_yaml, tmp_path, batch_size=1, lr=1e-2,
                   grad_clip=0.0, weight_decay=0.0, views=["front", "back"],
                   loss={"photo_weight": 0.0, "cos_weight": 0.0, "smooth_weight": 0.0,
                         "occupancy_weight": 0.0})
    trainer = Trainer(cfg)
    batch = trainer.train_set[0]
    batch = {k: (v[None] if torch.is_tensor(v) else v) for k, v in batch.items()}
    first = depth_metrics(trainer._forward(batch, trainer.model)["depth"].detach(),
                          batch["depth"], bins=None)["abs_rel"]
    for _ in range(1000):
        trainer.process_batch(batch)
    with torch.no_grad():
        out = trainer._forward(trainer._to_device(batch), trainer.model)
    metrics = depth_metrics(out["depth"], batch["depth"], bins=None)
    assert first > 0.3 and metrics["abs_rel"] < 0.05, (first, metrics)


def test_checkpoint_resume_restores_everything_and_mlflow_logs(tiny_data, tiny_model_yaml,
                                                                tmp_path):
    cfg = make_cfg(tiny_data, tiny_model_yaml, tmp_path / "run", mlflow=True, max_steps=2)
    trainer = Trainer(cfg, command="pytest")
    trainer.train()
    ckpt = tmp_path / "run" / "last"
    assert (ckpt / "model.safetensors").is_file() and (ckpt / "trainer_state.pt").is_file()
    run = yaml.safe_load((ckpt / "run_config.yaml").read_text())
    assert run["command"] == "pytest" and run["step"] == 2
    assert run["model"]["hidden"] == TINY_MODEL["hidden"]

    other = Trainer(make_cfg(tiny_data, tiny_model_yaml, tmp_path / "run2", max_steps=4,
                             epochs=5))
    other.load(ckpt)
    assert other.step == 2
    for a, b in zip(trainer.model.state_dict().values(), other.model.state_dict().values()):
        torch.testing.assert_close(a, b)
    sa, sb = trainer.optimizer.state_dict(), other.optimizer.state_dict()
    assert sa["param_groups"][0]["lr"] == pytest.approx(sb["param_groups"][0]["lr"])
    torch.testing.assert_close(sa["state"][0]["exp_avg"], sb["state"][0]["exp_avg"])
    assert trainer.scheduler.state_dict() == other.scheduler.state_dict()
    other.train()  # continues from step 2 up to max_steps
    assert other.step == 4

    import mlflow

    client = mlflow.tracking.MlflowClient(f"sqlite:///{(tmp_path / 'run' / 'mlflow.db')}")
    exp = client.get_experiment_by_name("depth_any_view")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1
    history = client.get_metric_history(runs[0].info.run_id, "train/total")
    assert len(history) >= 1 and runs[0].data.params["model.hidden"] == "16"
    assert "val/abs_rel" in runs[0].data.metrics
    artifacts = [a.path for a in client.list_artifacts(runs[0].info.run_id, "samples")]
    assert artifacts and artifacts[0].endswith(".png")


def test_ablation_overrides_reach_the_model(tiny_data, tiny_model_yaml, tmp_path):
    cfg = make_cfg(tiny_data, tiny_model_yaml, tmp_path, model_overrides={"fusion": False},
                   views=["front", "front_left", "front_right"])
    trainer = Trainer(cfg)
    assert trainer.model_cfg.fusion is False
    assert trainer.camera_names == ["front", "front_left", "front_right"]
    batch = next(iter(trainer.train_loader))
    assert batch["images"].shape[1] == 3
    with pytest.raises(ConfigError, match="model_overrides"):
        Trainer(make_cfg(tiny_data, tiny_model_yaml, tmp_path, model_overrides={"width": 3}))


def test_fine_tuning_adds_a_confidence_head_that_learns(tiny_data, tiny_model_yaml, tmp_path):
    base = Trainer(make_cfg(tiny_data, tiny_model_yaml, tmp_path / "base", max_steps=1))
    base.train()
    weights = tmp_path / "base" / "last" / "model.safetensors"
    cfg = make_cfg(tiny_data, tiny_model_yaml, tmp_path / "conf", max_steps=12,
                   init_weights=str(weights), model_overrides={"confidence": True},
                   loss={"photo_weight": 0, "cos_weight": 0, "smooth_weight": 0,
                         "occupancy_weight": 0, "confidence_weight": 1.0})
    tuned = Trainer(cfg)
    assert tuned.init_report["new"] == 2 and tuned.init_report["skipped"] == 0  # w and b
    start = tuned.model.state_dict()
    for name, value in base.model.state_dict().items():
        assert torch.equal(start[name], value), name  # every old tensor is loaded
    scale_before = tuned.model.depth_head.out_scale.bias.detach().clone()
    batch = next(iter(tuned.train_loader))
    losses = [tuned.process_batch(batch)["confidence"] for _ in range(12)]
    assert losses[-1] < losses[0]  # the NLL falls: the scale learns the depth's error
    assert not torch.equal(tuned.model.depth_head.out_scale.bias, scale_before)
    with pytest.raises(ConfigError, match="no confidence head"):
        Trainer(make_cfg(tiny_data, tiny_model_yaml, tmp_path / "x", max_steps=1,
                         loss={"confidence_weight": 0.1}))
    with pytest.raises(Exception, match="shares no tensor"):
        from depth_any_view.training.trainer import init_from_weights
        init_from_weights(torch.nn.Linear(2, 2), weights)


def test_pretrained_efficientnet_encoder_starts_from_imagenet(tiny_data, tiny_model_yaml,
                                                              tmp_path):
    from depth_any_view.model.efficientnet import imagenet_state_dict

    cfg = make_cfg(tiny_data / "a", tiny_model_yaml, tmp_path, max_steps=1,
                   model_overrides={"backbone": "efficientnet_lite0", "pretrained": True})
    trainer = Trainer(cfg)
    imagenet = imagenet_state_dict()
    for name, value in trainer.model.encoder.state_dict().items():
        assert torch.equal(value, imagenet[name]), name
    trainer.train()
    assert trainer.step == 1
    moved = trainer.model.encoder.state_dict()["_blocks.15._project_conv.weight"]
    assert not torch.equal(moved, imagenet["_blocks.15._project_conv.weight"])


@pytest.mark.slow
def test_paper_preset_trains_a_few_steps_at_reduced_size(tiny_data, tmp_path):
    cfg = make_cfg(tiny_data, "paper", tmp_path, max_steps=2, batch_size=1,
                   model_overrides={"image_size": [32, 32], "grid_dims": [8, 8, 8],
                                    "layers": 2})
    trainer = Trainer(cfg)
    assert trainer.model_cfg.backbone == "resnet50"
    trainer.train()
    assert trainer.step == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, cfg_dict: dict, out_dir: str) -> None:
    """One torchrun-like process: env:// rendezvous on localhost, train, dump weights."""
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
                       "RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank)})
    torch.set_num_threads(1)
    trainer = Trainer(TrainConfig(**cfg_dict))
    try:
        trainer.train()
        flat = torch.cat([p.detach().flatten() for p in trainer.model.parameters()])
        np.save(Path(out_dir) / f"rank{rank}.npy", flat.numpy())
    finally:
        trainer.close()


@pytest.mark.slow
def test_ddp_two_processes_keep_identical_weights(tiny_data, tiny_model_yaml, tmp_path):
    cfg = make_cfg(tiny_data, tiny_model_yaml, tmp_path / "ddp", max_steps=3, batch_size=1,
                   val_data=[])
    cfg_dict = cfg.to_dict()
    mp.spawn(_ddp_worker, args=(2, _free_port(), cfg_dict, str(tmp_path)), nprocs=2,
             join=True)
    w0, w1 = np.load(tmp_path / "rank0.npy"), np.load(tmp_path / "rank1.npy")
    np.testing.assert_array_equal(w0, w1)
    assert (tmp_path / "ddp" / "last" / "model.safetensors").is_file()  # rank 0 saved
