"""The adaptation loop: AdamW on the self-supervised losses, checkpoints, resume, MLflow.

One method per job, as in training/trainer.py: `batch` (the sets and sources of a step),
`compute_losses`, `process_batch`, `run`, `save`, `load`. Which sets a step takes depends on
the seed and the step alone (a permutation of the adaptable sets per epoch), and nothing
else draws random numbers, so a run resumed from a checkpoint (`load`) continues with the
same batches and, on the CPU, the same weights bit for bit as a run that never stopped.

A checkpoint directory holds `model.safetensors` (weights + ModelConfig, step in the
metadata), `start.safetensors` (the weights adaptation started from: the anchor, and the
"before" of the report), `adapt_state.pt` (optimizer, scheduler, step, loss history;
loaded with `weights_only=True`) and `adapt_config.yaml` (the settings and command).
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from tqdm import tqdm

from depth_any_view.adapt.bag_sets import AdaptSet, BagSets
from depth_any_view.adapt.config import AdaptConfig
from depth_any_view.adapt.losses import SourceBatch, anchor_loss, min_reprojection_loss
from depth_any_view.model.config import ModelConfig
from depth_any_view.model.network import DepthAnyViewNet, PreviousSet
from depth_any_view.model.weights import load_weights, save_weights
from depth_any_view.training.losses import compute_losses, smoothness_loss
from depth_any_view.training.tracking import start_mlflow_run
from depth_any_view.training.trainer import collate_samples, cosine_with_warmup, resize_views

LOG = logging.getLogger(__name__)

CHECKPOINT = "checkpoint"  # checkpoint folder inside the output directory
STATE_FILE = "adapt_state.pt"
START_WEIGHTS = "start.safetensors"


def _inverse(T: np.ndarray) -> np.ndarray:
    """Inverse of a rigid (4, 4) transform, float64."""
    out = np.eye(4)
    out[:3, :3] = T[:3, :3].T
    out[:3, 3] = -T[:3, :3].T @ T[:3, 3]
    return out


def posed_neighbour(bag: BagSets, index: int, offset: int) -> AdaptSet | None:
    """The adaptable set `offset` away from adaptable set `index` when both have poses."""
    usable = bag.adapt_sets
    j = index + offset
    if not 0 <= j < len(usable):
        return None
    a, b = usable[index], usable[j]
    return b if a.T_odom_base is not None and b.T_odom_base is not None else None


def gather_sources(bags: list[BagSets], picks: list[tuple[int, int]],
                   temporal_offsets: list[int], device: torch.device | str = "cpu"
                   ) -> SourceBatch:
    """Every (target view, source) row of a batch of adaptable sets (bag, set index):
    the overlapping cameras of the same set, then the same camera in the sets
    `temporal_offsets` away (when both sets have poses)."""
    rows: list[tuple[int, int, torch.Tensor, torch.Tensor, torch.Tensor, np.ndarray,
                     bool]] = []
    for pos, (b, i) in enumerate(picks):
        bag = bags[b]
        cur = bag.adapt_sets[i]
        V = cur.images.shape[0]
        for v in range(V):
            slot = 0
            T_t = cur.T_base_cam[v]
            for t, u in bag.pairs:
                if t != v:
                    continue
                rows.append((pos * V + v, slot, cur.images[u], cur.K[u], cur.valid[u],
                             _inverse(cur.T_base_cam[u]) @ T_t, False))
                slot += 1
            for offset in temporal_offsets:
                other = posed_neighbour(bag, i, offset)
                if other is None:
                    continue
                T = (_inverse(other.T_base_cam[v]) @ _inverse(other.T_odom_base)
                     @ cur.T_odom_base @ T_t)  # target camera -> source camera
                rows.append((pos * V + v, slot, other.images[v], other.K[v],
                             other.valid[v], T, True))
                slot += 1
    dev = torch.device(device)
    if not rows:
        h, w = bags[picks[0][0]].sets[0].images.shape[-2:]
        return SourceBatch(torch.zeros(0, dtype=torch.long, device=dev),
                           torch.zeros(0, dtype=torch.long, device=dev),
                           torch.zeros(0, 3, h, w, device=dev),
                           torch.zeros(0, 3, 3, device=dev),
                           torch.zeros(0, h, w, dtype=torch.bool, device=dev),
                           torch.zeros(0, 4, 4, device=dev),
                           torch.zeros(0, dtype=torch.bool, device=dev))
    return SourceBatch(
        target=torch.tensor([r[0] for r in rows], dtype=torch.long, device=dev),
        slot=torch.tensor([r[1] for r in rows], dtype=torch.long, device=dev),
        images=torch.stack([r[2] for r in rows]).to(dev).float() / 255.0,  # (P, 3, H, W)
        K=torch.stack([r[3] for r in rows]).to(dev),  # (P, 3, 3)
        valid=torch.stack([r[4] for r in rows]).to(dev),  # (P, H, W)
        T_src_tgt=torch.from_numpy(np.stack([r[5] for r in rows]).astype(np.float32)
                                   ).to(dev),  # (P, 4, 4)
        temporal=torch.tensor([r[6] for r in rows], dtype=torch.bool, device=dev))


class Adapter:
    """Adapts a network to a robot's sets (see the module docstring)."""

    def __init__(self, cfg: AdaptConfig, bags: list[BagSets], model_cfg: ModelConfig,
                 start_state: dict[str, torch.Tensor], out_dir: Path | str, *,
                 device: torch.device | str = "cpu", command: str | None = None) -> None:
        """Build the network from the starting weights, the optimizer and the schedule.

        Args:
            cfg: adaptation settings.
            bags: the bags' sets (bag_sets.read_bag_sets).
            model_cfg: the starting weights' model configuration.
            start_state: the starting weights (also the anchor).
            out_dir: the run's output directory (checkpoints, MLflow store).
            device: where the network trains.
            command: the command line, recorded in checkpoints.
        """
        self.cfg, self.bags, self.model_cfg = cfg, bags, model_cfg
        self.out_dir = Path(out_dir)
        self.device = torch.device(device)
        self.command = command or " ".join(sys.argv)
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        self.model = DepthAnyViewNet(model_cfg)
        self.model.load_state_dict(start_state)
        self.model.to(self.device)
        self.start = {n: p.detach().clone() for n, p in self.model.named_parameters()}
        self.start_state = {k: v.detach().clone() for k, v in start_state.items()}
        decay, no_decay = [], []
        for name, p in self.model.named_parameters():
            (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": cfg.weight_decay},
             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: cosine_with_warmup(
                s, warmup=cfg.warmup_steps, total=cfg.steps, min_ratio=cfg.min_lr_ratio))
        self.items = [(b, s.index) for b, bag in enumerate(bags) for s in bag.adapt_sets
                      if self._has_source(bag, s.index)]
        if not self.items:
            raise ValueError("no set has a source to compare with (no overlapping cameras "
                             "and no posed neighbour set); nothing to adapt on")
        self.synthetic = None
        if cfg.synthetic_every:
            from depth_any_view.data.dataset import concat_shards

            self.synthetic = concat_shards(cfg.synthetic_data)
            self.synthetic_loss = cfg.loss_config()
        self.step = 0
        self.history: list[dict[str, float]] = []
        self._mlflow: Any = None

    # ------------------------------------------------------------------ sources
    def _neighbour(self, bag: BagSets, index: int, offset: int) -> AdaptSet | None:
        """The adaptable set `offset` away from set `index` when both have poses."""
        return posed_neighbour(bag, index, offset)

    def _has_source(self, bag: BagSets, index: int) -> bool:
        """True when set `index` has an overlapping camera or a posed neighbour set."""
        return bool(bag.pairs) or any(self._neighbour(bag, index, o) is not None
                                      for o in self.cfg.temporal_offsets)

    def batch(self, step: int) -> list[tuple[int, int]]:
        """(bag, set index) of the sets of a step: a seeded permutation per epoch."""
        n, k = len(self.items), self.cfg.batch_sets
        out = []
        for pos in range(step * k, step * k + k):
            epoch, i = divmod(pos, n)
            order = np.random.default_rng([self.cfg.seed, epoch]).permutation(n)
            out.append(self.items[int(order[i])])
        return out

    def _previous(self, picks: list[tuple[int, int]], K: torch.Tensor,
                  T_base_cam: torch.Tensor) -> PreviousSet | None:
        """The previous set of each picked set for a temporal cost volume (else None)."""
        if not (self.model_cfg.cost_volume and self.model_cfg.cost_temporal):
            return None
        prev_images, motion, valid = [], [], []
        for b, i in picks:
            bag = self.bags[b]
            cur, prev = bag.adapt_sets[i], self._neighbour(bag, i, -1)
            src = prev if prev is not None else cur
            prev_images.append(src.images)
            if prev is None:
                motion.append(np.eye(4))
            else:  # previous base -> current base
                motion.append(_inverse(cur.T_odom_base) @ prev.T_odom_base)
            valid.append(prev is not None)
        images = torch.stack(prev_images).to(self.device).float() / 255.0  # (B, V, 3, H, W)
        with torch.no_grad():
            feats = self.model.match_features(images)
        V = images.shape[1]
        mask = torch.tensor(valid, device=self.device)[:, None].expand(-1, V)  # (B, V)
        return PreviousSet(feats, K, T_base_cam,
                           torch.from_numpy(np.stack(motion).astype(np.float32)).to(self.device),
                           mask)

    # ------------------------------------------------------------------ one step
    def _train_mode(self) -> None:
        """Training mode; BatchNorm keeps its statistics when `freeze_batchnorm`."""
        self.model.train()
        if self.cfg.freeze_batchnorm:
            for m in self.model.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.eval()

    def compute_losses(self, picks: list[tuple[int, int]]) -> dict[str, torch.Tensor]:
        """Every enabled term of one step (unweighted) and their weighted 'total'."""
        cfg = self.cfg
        sets = [self.bags[b].adapt_sets[i] for b, i in picks]
        images = torch.stack([s.images for s in sets]).to(self.device).float() / 255.0
        K = torch.stack([s.K for s in sets]).to(self.device)  # (B, V, 3, 3)
        T = torch.from_numpy(np.stack([s.T_base_cam for s in sets]).astype(np.float32)
                             ).to(self.device)  # (B, V, 4, 4)
        valid = torch.stack([s.valid for s in sets]).to(self.device)  # (B, V, H, W)
        out = self.model(images, K, T, None, self._previous(picks, K, T))
        depth = out.depth.float()  # (B, V, H, W) metres
        terms: dict[str, torch.Tensor] = {}
        total = depth.sum() * 0.0
        if cfg.spatial_weight > 0 or cfg.temporal_weight > 0:
            sources = gather_sources(self.bags, picks, self.cfg.temporal_offsets,
                                     self.device)
            for name, weight, rows in (("spatial", cfg.spatial_weight, ~sources.temporal),
                                       ("temporal", cfg.temporal_weight, sources.temporal)):
                if weight <= 0:
                    continue
                photo, stats = min_reprojection_loss(
                    depth, images, K, valid, sources.select(rows), ssim_alpha=cfg.ssim_alpha,
                    automask=cfg.automask, min_depth=self.model_cfg.min_depth)
                terms[f"photo_{name}"] = photo
                total = total + weight * photo
                terms.update({f"{k}_{name}": torch.tensor(v) for k, v in stats.items()})
        if cfg.smooth_weight > 0:
            terms["smooth"] = smoothness_loss(depth, images, self.model_cfg.min_depth)
            total = total + cfg.smooth_weight * terms["smooth"]
        if cfg.anchor_weight > 0:
            terms["anchor"] = anchor_loss(self.model, self.start)
            total = total + cfg.anchor_weight * terms["anchor"]
        if self.synthetic is not None and self.step % cfg.synthetic_every == 0:
            terms["synthetic"] = self._synthetic_loss()
            total = total + cfg.synthetic_weight * terms["synthetic"]
        terms["total"] = total
        return terms

    def _synthetic_loss(self) -> torch.Tensor:
        """The supervised loss of one synthetic batch (drawn by seed and step)."""
        rng = np.random.default_rng([self.cfg.seed, self.step, 1])
        idx = rng.choice(len(self.synthetic), size=self.cfg.synthetic_batch_size,
                         replace=len(self.synthetic) < self.cfg.synthetic_batch_size)
        batch = collate_samples([self.synthetic[int(i)] for i in idx])
        batch = {k: (v.to(self.device) if isinstance(v, torch.Tensor) else v)
                 for k, v in batch.items()}
        batch = resize_views(batch, self.model_cfg.image_size)
        out = self.model(batch["images"], batch["K"], batch["T_base_cam"], None, None)
        outputs = {k: v for k, v in vars(out).items() if torch.is_tensor(v)}
        return compute_losses(outputs, batch, self.synthetic_loss)["total"]

    def process_batch(self) -> dict[str, float]:
        """One optimizer step; returns its terms, gradient norm and learning rate."""
        self._train_mode()
        picks = self.batch(self.step)
        terms = self.compute_losses(picks)
        self.optimizer.zero_grad(set_to_none=True)
        terms["total"].backward()
        grad_norm = (torch.nn.utils.clip_grad_norm_(self.model.parameters(),
                                                    self.cfg.grad_clip)
                     if self.cfg.grad_clip > 0 else torch.zeros(()))
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        values = {k: float(v.detach()) for k, v in terms.items()}
        values["grad_norm"] = float(grad_norm)
        values["lr"] = float(self.scheduler.get_last_lr()[0])
        values["step"] = float(self.step)
        return values

    # ------------------------------------------------------------------ tracking
    def _start_tracking(self) -> None:
        """Open an MLflow run (training/tracking.py: a local SQLite store in the output
        directory by default)."""
        if not self.cfg.mlflow:
            return
        flat = {f"adapt.{k}": v for k, v in self.cfg.to_dict().items()}
        flat.update({f"model.{k}": v for k, v in asdict(self.model_cfg).items()})
        flat["bags"] = [str(b.path) for b in self.bags]
        flat["resumed_at_step"] = self.step
        self._mlflow = start_mlflow_run(self.out_dir, self.cfg.experiment, self.cfg.mlflow_uri,
                                        flat)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Log finite scalars to MLflow (when tracking)."""
        if self._mlflow is not None:
            self._mlflow.log_metrics({k: float(v) for k, v in metrics.items()
                                      if np.isfinite(v)}, step=step)

    def end_tracking(self) -> None:
        """Close the MLflow run (safe to call twice)."""
        if self._mlflow is not None:
            self._mlflow.end_run()
            self._mlflow = None

    # ------------------------------------------------------------------ the loop
    def run(self, progress: bool = True) -> list[dict[str, float]]:
        """Adapt until `steps`; checkpoints every `save_every` steps and at the end.

        Returns the loss history (one entry per step since the start, resumed ones too).
        The MLflow run stays open for the caller's final figures (`end_tracking`).
        """
        self._start_tracking()
        t0 = time.monotonic()
        bar = tqdm(total=self.cfg.steps, initial=self.step, desc="adapt", unit="step",
                   disable=not progress, dynamic_ncols=True)
        try:
            while self.step < self.cfg.steps:
                values = self.process_batch()
                values["seconds"] = time.monotonic() - t0
                self.history.append(values)
                bar.update(1)
                if self.step % self.cfg.log_every == 0 or self.step == 1:
                    bar.set_postfix({k: f"{values[k]:.4f}" for k in
                                     ("total", "photo_spatial", "photo_temporal")
                                     if k in values})
                    self.log_metrics({f"adapt/{k}": v for k, v in values.items()
                                      if k not in ("step", "seconds")}, self.step)
                if self.cfg.save_every and self.step % self.cfg.save_every == 0:
                    self.save(self.out_dir / CHECKPOINT)
        finally:
            bar.close()
        self.save(self.out_dir / CHECKPOINT)
        return self.history

    # ------------------------------------------------------------------ checkpoints
    def save(self, directory: Path | str) -> Path:
        """Write weights, starting weights, optimizer state and settings to `directory`."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_weights(self.model, self.model_cfg, directory / "model.safetensors",
                     metadata={"step": self.step, "command": self.command})
        start = directory / START_WEIGHTS
        if not start.is_file():
            first = DepthAnyViewNet(self.model_cfg)
            first.load_state_dict(self.start_state)
            save_weights(first, self.model_cfg, start, metadata={"role": "start"})
        state = {"optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict(), "step": self.step,
                 "history": self.history}
        tmp = directory / (STATE_FILE + ".tmp")
        torch.save(state, tmp)
        tmp.replace(directory / STATE_FILE)
        run = {"command": self.command, "adapt": self.cfg.to_dict(), "step": self.step,
               "bags": [str(b.path) for b in self.bags]}
        (directory / "adapt_config.yaml").write_text(yaml.safe_dump(run, sort_keys=False))
        return directory

    def load(self, directory: Path | str) -> None:
        """Continue from `save`: weights, optimizer, scheduler, step and history."""
        directory = checkpoint_dir(directory)
        state_dict, _, _ = load_weights(directory / "model.safetensors", expect=self.model_cfg)
        self.model.load_state_dict(state_dict)
        state = torch.load(directory / STATE_FILE, map_location=self.device, weights_only=True)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])
        self.history = [dict(h) for h in state["history"]]


def checkpoint_dir(path: Path | str) -> Path:
    """The checkpoint folder of `--resume PATH` (an output directory or its checkpoint);
    FileNotFoundError naming what is missing."""
    path = Path(path)
    for candidate in (path / CHECKPOINT, path):
        if (candidate / STATE_FILE).is_file() and (candidate / START_WEIGHTS).is_file():
            return candidate
    raise FileNotFoundError(f"cannot resume from '{path}': no {STATE_FILE} and "
                            f"{START_WEIGHTS} there or in '{path / CHECKPOINT}'; give the "
                            "--out directory of an earlier `depth-any-view adapt` run")


__all__ = ["CHECKPOINT", "START_WEIGHTS", "STATE_FILE", "Adapter", "checkpoint_dir",
           "gather_sources", "posed_neighbour"]
