"""The trainer: AdamW, cosine schedule with warm-up, gradient clipping, AMP, DDP, MLflow.

One method per job, as in monodepth2's trainer: `train`, `run_epoch`, `process_batch`,
`compute_losses`, `validate`, `save`, `load`. Run it with `depth-any-view train --config`
on one process, or with `torchrun --nproc_per_node N -m depth_any_view.cli train ...` for
DistributedDataParallel (gloo on the CPU, nccl on CUDA).

A checkpoint directory holds `model.safetensors` (weights + ModelConfig, see
model/weights.py), `trainer_state.pt` (optimizer, scheduler, scaler, step; loaded with
`weights_only=True`, so nothing in it is executed) and `run_config.yaml` (the exact
training config and command).
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

from depth_any_view.config import ConfigError, dataclass_from_mapping
from depth_any_view.data.augment import AugmentConfig, Augmenter
from depth_any_view.data.dataset import concat_shards
from depth_any_view.model.config import ModelConfig, load_model_config
from depth_any_view.model.network import PreviousSet, build_model
from depth_any_view.model.weights import WeightsError, load_weights, save_weights
from depth_any_view.training.config import TrainConfig
from depth_any_view.training.distributed import (
    DistEnv,
    all_reduce_mean,
    barrier,
    init_distributed,
    select_device,
    shutdown_distributed,
)
from depth_any_view.training.losses import LossConfig, compute_losses
from depth_any_view.training.metrics import DepthMetricAccumulator, VoxelMetricAccumulator
from depth_any_view.training.rig_batching import RigNormalisedDataset, resize_images
from depth_any_view.training.tracking import start_mlflow_run

LOG = logging.getLogger(__name__)


def cosine_with_warmup(step: int, *, warmup: int, total: int, min_ratio: float) -> float:
    """Learning-rate multiplier: linear warm-up to 1, then cosine decay to `min_ratio`."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if total <= warmup:
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def model_config_with(base: ModelConfig, overrides: dict[str, Any]) -> ModelConfig:
    """`base` with some fields changed (YAML lists become tuples); unknown names fail."""
    return dataclass_from_mapping(ModelConfig, overrides, "model field(s)",
                                  where="training option 'model_overrides': ", tuples=True,
                                  base=base)


def init_from_weights(model: torch.nn.Module, path: str | os.PathLike[str]) -> dict[str, int]:
    """Load every tensor of a weights file whose name and shape match the model's.

    For fine-tuning a network that gained a part (a confidence head) from weights without
    it. Raises WeightsError when nothing matches (the file is for another network); returns
    counts of loaded, new (kept at their init) and skipped (shape differs) tensors.
    """
    state, _, _ = load_weights(path)
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not usable:
        raise WeightsError(f"init_weights '{path}' shares no tensor with this network; "
                           "give weights of the same preset")
    model.load_state_dict(usable, strict=False)
    report = {"loaded": len(usable), "new": len(set(own) - set(usable)),
              "skipped": len(set(state) - set(usable))}
    LOG.info("initialised from %s: %d tensors loaded, %d new, %d skipped", path,
             report["loaded"], report["new"], report["skipped"])
    return report


def resize_views(batch: dict[str, Any], size: tuple[int, int]) -> dict[str, Any]:
    """Images (B, V, 3, H, W) (and `prev_images`) resized to `size` (h, w) with
    antialiasing, K scaled to match (pixel centres at integers); other entries unchanged."""
    images = batch["images"]
    B, V, C, H, W = images.shape
    h, w = int(size[0]), int(size[1])
    if (H, W) == (h, w):
        return batch
    out = dict(batch)
    K = batch["K"].reshape(B * V, 3, 3)
    for key in ("images", "prev_images"):
        if key in batch:  # (B*V, 3, H, W) -> (B, V, 3, h, w)
            small, K_small = resize_images(batch[key].reshape(B * V, C, H, W), K, (h, w))
            out[key] = small.reshape(B, V, C, h, w)
    out["K"] = K_small.reshape(B, V, 3, 3)
    return out


def collate_samples(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack per-sample tensors into a batch; non-tensor entries keep the first sample's."""
    out: dict[str, Any] = {}
    for key, value in samples[0].items():
        if isinstance(value, torch.Tensor):
            out[key] = torch.stack([s[key] for s in samples])
        else:
            out[key] = value
    return out


class AugmentedDataset(Dataset):
    """Applies an Augmenter to each sample with a generator seeded by (seed, epoch, index)."""

    def __init__(self, base: Dataset, augmenter: Augmenter | None, seed: int,
                 camera_names: list[str] | None = None) -> None:
        self.base = base
        self.augmenter = augmenter
        self.seed = seed
        self.camera_names = camera_names  # lets the flip swap left/right cameras
        self.epoch = 0

    def __len__(self) -> int:
        """Number of samples of the wrapped dataset."""
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, Any]:
        """The augmented sample (deterministic for a given seed, epoch and index)."""
        sample = self.base[index]
        if self.augmenter is None:
            return sample
        if self.camera_names is not None:
            sample = {**sample, "camera_names": list(self.camera_names)}
        gen = torch.Generator().manual_seed(
            (self.seed * 1_000_003 + self.epoch * 10_007 + index) % (2**63 - 1))
        return self.augmenter(sample, generator=gen)


def _autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for an `amp` option on a device (None = full precision)."""
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if amp == "bf16" else torch.float16


class Trainer:
    """Trains DepthAnyViewNet on synthetic shards with the configured losses."""

    def __init__(self, cfg: TrainConfig, *, command: str | None = None) -> None:
        self.cfg = cfg
        self.command = command or " ".join(sys.argv)
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = select_device(cfg.device, local_rank)
        self.env: DistEnv = init_distributed(self.device)
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed % (2**32))

        self.model_cfg: ModelConfig = model_config_with(load_model_config(cfg.model),
                                                        cfg.model_overrides)
        # a fresh network; with the model's `pretrained`, its encoder starts from ImageNet
        self.model = build_model(self.model_cfg).to(self.device)
        if self.model_cfg.pretrained:
            LOG.info("encoder %s initialised from its ImageNet weights", self.model_cfg.backbone)
        if cfg.init_weights:
            self.init_report = init_from_weights(self.model, cfg.init_weights)
        self.ddp_model: torch.nn.Module = self.model
        if self.env.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp_model = torch.nn.parallel.DistributedDataParallel(self.model,
                                                                       device_ids=ids)
        self.loss_cfg = LossConfig.from_dict(cfg.loss)
        if self.loss_cfg.confidence_weight > 0 and not self.model_cfg.confidence:
            raise ConfigError(f"loss 'confidence_weight' is {self.loss_cfg.confidence_weight} "
                              f"but model '{cfg.model}' has no confidence head; add "
                              "'confidence: true' to the model (or model_overrides) or set "
                              "'loss.confidence_weight: 0'")
        self.amp_dtype = _autocast_dtype(cfg.amp, self.device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)

        if not cfg.train_data:
            raise ConfigError("training option 'train_data' is empty; give shard directories "
                              "made with `depth-any-view synth --format shards`")
        if self.loss_cfg.cost_weight > 0 and not self.model_cfg.cost_volume:
            raise ConfigError(f"loss 'cost_weight' is {self.loss_cfg.cost_weight} but model "
                              f"'{cfg.model}' has no cost volume; add 'cost_volume: true' to "
                              "the model (or model_overrides) or set 'loss.cost_weight: 0'")
        if cfg.mixed_rigs and (self.loss_cfg.photo_weight > 0 or self.loss_cfg.cos_weight > 0):
            raise ConfigError("training option 'mixed_rigs' needs 'loss.photo_weight: 0' and "
                              "'loss.cos_weight: 0' (their view pairs are chosen per batch, "
                              "and a mixed batch has a rig per sample)")
        same_rig = not cfg.mixed_rigs
        train_base = concat_shards(cfg.train_data, views=cfg.views, temporal=cfg.temporal,
                                   same_rig=same_rig)
        augmenter = Augmenter(AugmentConfig.from_dict(cfg.augment)) if cfg.augment else None
        self.camera_names = (self._first_names(train_base) if same_rig
                             else [f"view{i}" for i in range(cfg.max_views)])
        self.train_set = AugmentedDataset(train_base, augmenter, cfg.seed,
                                          self.camera_names if same_rig else None)
        self.val_set = (concat_shards(cfg.val_data, views=cfg.views, temporal=cfg.temporal,
                                      same_rig=same_rig)
                        if cfg.val_data else None)
        if cfg.mixed_rigs:
            shape = dict(image_size=self.model_cfg.image_size, depth_size=cfg.depth_size,
                         max_views=cfg.max_views)
            self.train_set = RigNormalisedDataset(self.train_set, **shape,
                                                  view_dropout=cfg.view_dropout, seed=cfg.seed)
            if self.val_set is not None:
                self.val_set = RigNormalisedDataset(self.val_set, **shape)
        self.sampler = (DistributedSampler(self.train_set, num_replicas=self.env.world_size,
                                           rank=self.env.rank, shuffle=True, seed=cfg.seed,
                                           drop_last=True)
                        if self.env.enabled else None)
        gen = torch.Generator().manual_seed(cfg.seed)
        self.train_loader = DataLoader(
            self.train_set, batch_size=cfg.batch_size, shuffle=self.sampler is None,
            sampler=self.sampler, num_workers=cfg.num_workers, collate_fn=collate_samples,
            drop_last=len(self.train_set) >= cfg.batch_size * self.env.world_size,
            pin_memory=self.device.type == "cuda", generator=gen,
            persistent_workers=cfg.num_workers > 0)

        decay, no_decay = [], []
        for name, p in self.model.named_parameters():
            (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": cfg.weight_decay},
             {"params": no_decay, "weight_decay": 0.0}],
            lr=cfg.lr, betas=cfg.betas, fused=self.device.type == "cuda")
        steps_per_epoch = max(1, len(self.train_loader))
        self.total_steps = cfg.max_steps or cfg.epochs * steps_per_epoch
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: cosine_with_warmup(
                s, warmup=cfg.warmup_steps, total=self.total_steps, min_ratio=cfg.min_lr_ratio))
        self.step = 0
        self.epoch = 0
        self.out_dir = Path(cfg.out_dir)
        self.history: list[dict[str, float]] = []
        self._mlflow = None
        self._start_time = time.monotonic()

    @staticmethod
    def _first_names(dataset: Dataset) -> list[str]:
        """Camera names (in view order) of the first shard directory of a dataset."""
        first = dataset.datasets[0] if hasattr(dataset, "datasets") else dataset
        if hasattr(first, "camera_names"):
            return list(first.camera_names)
        return [f"view{i}" for i in range(first[0]["images"].shape[0])]

    # ------------------------------------------------------------------ tracking
    def _start_tracking(self) -> None:
        """Open an MLflow run (training/tracking.py) on the main process."""
        if not (self.cfg.mlflow and self.env.is_main):
            return
        flat = {f"train.{k}": v for k, v in self.cfg.to_dict().items()
                if k not in ("loss", "augment", "model_overrides")}
        flat.update({f"model.{k}": v for k, v in asdict(self.model_cfg).items()})
        flat.update({f"loss.{k}": v for k, v in asdict(self.loss_cfg).items()})
        self._mlflow = start_mlflow_run(self.out_dir, self.cfg.experiment, self.cfg.mlflow_uri,
                                        flat)

    def _log(self, metrics: dict[str, float], step: int) -> None:
        """Log scalar metrics to MLflow (names sanitised) on the main process."""
        if self._mlflow is not None:
            clean = {k.replace("<", "lt").replace("+", "plus"): float(v)
                     for k, v in metrics.items() if np.isfinite(v)}
            self._mlflow.log_metrics(clean, step=step)

    # ------------------------------------------------------------------ steps
    def _to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Move the batch to the device and resize its images (and K) to the network size.

        Ground-truth depth keeps its resolution: the depth loss and the metrics compare
        the prediction upsampled to it.
        """
        nb = self.device.type == "cuda"
        batch = {k: (v.to(self.device, non_blocking=nb) if isinstance(v, torch.Tensor) else v)
                 for k, v in batch.items()}
        return resize_views(batch, self.model_cfg.image_size)

    def _forward(self, batch: dict[str, Any], model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """Run the network on a batch under autocast; returns its outputs as a dict."""
        ctx = (torch.autocast(self.device.type, dtype=self.amp_dtype)
               if self.amp_dtype is not None else nullcontext())
        previous = self._previous_set(batch)
        with ctx:
            out = model(batch["images"], batch["K"], batch["T_base_cam"],
                        batch.get("view_mask"), previous)
        return {k: (v.float() if torch.is_tensor(v) and v.is_floating_point() else v)
                for k, v in vars(out).items()}

    def _previous_set(self, batch: dict[str, Any]) -> PreviousSet | None:
        """The batch's previous frame as a PreviousSet (temporal cost volume), else None.

        Its matching features come from the network itself without gradient (the same
        weights learn from the current frame's side); the base's motion comes from the
        ground-truth poses, as odometry gives it at run time. A scene's first frame is its
        own previous frame: zero motion, which the volume ignores (the no-previous case).
        """
        if not (self.model_cfg.cost_temporal and "prev_images" in batch):
            return None
        with torch.no_grad():
            feats = self.model.match_features(batch["prev_images"])
        T_cur = batch["T_odom_base"].double()
        T_prev = batch["prev_T_odom_base"].double()
        motion = (torch.linalg.inv(T_cur) @ T_prev).float()  # (B, 4, 4) prev -> current base
        mask = batch.get("view_mask")
        if mask is None:
            mask = torch.ones(feats.shape[:2], dtype=torch.bool, device=feats.device)
        return PreviousSet(feats, batch["K"], batch["T_base_cam"], motion, mask)

    def compute_losses(self, outputs: dict[str, torch.Tensor],
                       batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Every enabled loss term and their weighted 'total' (losses.compute_losses)."""
        return compute_losses(outputs, batch, self.loss_cfg)

    def process_batch(self, batch: dict[str, Any]) -> dict[str, float]:
        """One optimizer step on a batch; returns the loss terms as floats."""
        self.ddp_model.train()
        batch = self._to_device(batch)
        outputs = self._forward(batch, self.ddp_model)
        losses = self.compute_losses(outputs, batch)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(losses["total"]).backward()
        if self.cfg.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(),
                                                       self.cfg.grad_clip)
        else:
            grad_norm = torch.zeros(())
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.step += 1
        # One host sync per logged step, not per term: stack, then transfer once.
        names = list(losses)
        values = torch.stack([losses[n].detach().float() for n in names] + [grad_norm.float()])
        values = all_reduce_mean(values, self.env).cpu().tolist()
        out = dict(zip(names + ["grad_norm"], values))
        out["lr"] = self.scheduler.get_last_lr()[0]
        return out

    def _out_of_budget(self) -> bool:
        """True once max_steps or max_minutes is reached."""
        if self.cfg.max_steps and self.step >= self.cfg.max_steps:
            return True
        minutes = (time.monotonic() - self._start_time) / 60.0
        return bool(self.cfg.max_minutes and minutes >= self.cfg.max_minutes)

    def run_epoch(self) -> dict[str, float]:
        """One pass over the training data (or until the budget ends); mean losses."""
        if self.sampler is not None:
            self.sampler.set_epoch(self.epoch)
        self.train_set.epoch = self.epoch
        sums: dict[str, float] = {}
        count = 0
        bar = tqdm(self.train_loader, desc=f"epoch {self.epoch}", leave=False,
                   disable=not self.env.is_main, dynamic_ncols=True)
        for batch in bar:
            terms = self.process_batch(batch)
            count += 1
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v
            if self.step % self.cfg.log_every == 0 or count == 1:
                bar.set_postfix({k: f"{v:.3f}" for k, v in terms.items()
                                 if k in ("total", "depth", "photo", "occupancy")})
                self._log({f"train/{k}": v for k, v in terms.items()}, self.step)
            if self.cfg.eval_every and self.step % self.cfg.eval_every == 0:
                self.validate()
            if self.cfg.save_every and self.step % self.cfg.save_every == 0:
                self.save(self.out_dir / "last")
            if self._out_of_budget():
                break
        self.epoch += 1
        return {k: v / max(1, count) for k, v in sums.items()}

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Depth and voxel metrics on the validation set (main process); {} without one."""
        if self.val_set is None or not self.env.is_main:
            return {}
        self.model.eval()
        loader = DataLoader(self.val_set, batch_size=self.cfg.batch_size, shuffle=False,
                            collate_fn=collate_samples, num_workers=0)
        depth_acc = DepthMetricAccumulator(self.camera_names)
        voxel_acc = VoxelMetricAccumulator()
        for i, batch in enumerate(loader):
            if self.cfg.val_batches and i >= self.cfg.val_batches:
                break
            batch = self._to_device(batch)
            out = self._forward(batch, self.model)
            pred = out["depth"]
            gt = batch["depth"]
            if pred.shape[-2:] != gt.shape[-2:]:
                pred = torch.nn.functional.interpolate(
                    pred, size=gt.shape[-2:], mode="bilinear", align_corners=False)
            depth_acc.update(pred.cpu(), gt.cpu())
            if i == 0:
                self._log_sample_image(batch, pred)
            prob = torch.sigmoid(out["occupancy_logits"])
            voxel_acc.update(prob.cpu(), batch["occupancy"].cpu(),
                             out["occupancy_observed"].cpu())
        metrics = {**depth_acc.compute(), **voxel_acc.compute()}
        headline = {f"val/{k}": metrics[k] for k in ("abs_rel", "rmse", "delta1", "voxel_iou")
                    if k in metrics}
        self._log(headline, self.step)
        self.history.append({"step": float(self.step), **headline})
        return metrics

    def _log_sample_image(self, batch: dict[str, Any], pred: torch.Tensor) -> None:
        """PNG of the first validation sample (RGB | prediction | truth per view) to MLflow."""
        if self._mlflow is None:
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        images = batch["images"][0].permute(0, 2, 3, 1).float().cpu().numpy()  # (V, h, w, 3)
        p, g = pred[0].float().cpu().numpy(), batch["depth"][0].float().cpu().numpy()
        V = images.shape[0]
        vmax = float(np.nanpercentile(g, 95)) if np.isfinite(g).any() else 30.0
        fig, axes = plt.subplots(3, V, figsize=(2.0 * V, 6.0), squeeze=False)
        depth_kw = {"cmap": "turbo_r", "vmin": 0, "vmax": vmax}
        for v in range(V):
            for row, (img, kw) in enumerate([(images[v].clip(0, 1), {}), (p[v], depth_kw),
                                             (g[v], depth_kw)]):
                axes[row, v].imshow(img, **kw)
                axes[row, v].axis("off")
            axes[0, v].set_title(self.camera_names[v] if v < len(self.camera_names) else "",
                                 fontsize=8)
        fig.suptitle(f"step {self.step}: RGB / predicted depth / ground truth (0-{vmax:.0f} m)",
                     fontsize=9)
        fig.tight_layout()
        path = self.out_dir / "samples" / f"val_step{self.step:07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=80)
        plt.close(fig)
        self._mlflow.log_artifact(str(path), artifact_path="samples")

    # ------------------------------------------------------------------ checkpoints
    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write weights, trainer state and the run config to a directory (main process)."""
        directory = Path(directory)
        if not self.env.is_main:
            return directory
        directory.mkdir(parents=True, exist_ok=True)
        save_weights(self.model, self.model_cfg, directory / "model.safetensors",
                     metadata={"step": self.step, "epoch": self.epoch,
                               "command": self.command})
        state = {"optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict(),
                 "scaler": self.scaler.state_dict(),
                 "step": self.step, "epoch": self.epoch}
        torch.save(state, directory / "trainer_state.pt")
        run = {"command": self.command, "train": self.cfg.to_dict(),
               "model": asdict(self.model_cfg), "step": self.step}
        (directory / "run_config.yaml").write_text(yaml.safe_dump(run, sort_keys=False))
        return directory

    def load(self, directory: str | os.PathLike[str]) -> None:
        """Resume from `save`: weights, optimizer, scheduler, scaler and step."""
        directory = Path(directory)
        state_dict, _, _ = load_weights(directory / "model.safetensors", expect=self.model_cfg)
        self.model.load_state_dict(state_dict)
        path = directory / "trainer_state.pt"
        if not path.is_file():
            raise FileNotFoundError(f"cannot resume: '{path}' is missing")
        state = torch.load(path, map_location=self.device, weights_only=True)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.epoch = int(state["epoch"])

    # ------------------------------------------------------------------ the loop
    def train(self) -> dict[str, float]:
        """Train until the epochs or the budget run out; returns the last metrics."""
        self._start_tracking()
        self._start_time = time.monotonic()
        last: dict[str, float] = {}
        try:
            while self.epoch < self.cfg.epochs and not self._out_of_budget():
                losses = self.run_epoch()
                last = {f"train/{k}": v for k, v in losses.items()}
                if not self.cfg.eval_every:
                    last.update(self.validate())
                if not self.cfg.save_every:
                    self.save(self.out_dir / "last")
            self.save(self.out_dir / "last")
            if self._mlflow is not None:
                self._mlflow.log_artifact(str(self.out_dir / "last" / "run_config.yaml"))
            barrier(self.env)  # every rank leaves the group together (close)
        finally:
            if self._mlflow is not None:
                self._mlflow.end_run()
        return last

    def close(self) -> None:
        """Leave the process group (DDP)."""
        shutdown_distributed()
