"""Adaptation settings: one dataclass, read from `config/adapt.yaml` (or a user's file).

`load_adapt_config(path, overrides)` reads the YAML through `depth_any_view.config`
(`load_yaml`), applies `key=value` overrides as `train --set` does, and validates every
field (ConfigError names the field and what it may be).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from depth_any_view.config import ConfigError, config_path, dataclass_from_mapping, load_yaml
from depth_any_view.training.config import apply_overrides
from depth_any_view.training.losses import LossConfig

ADAPT_CONFIG = "adapt.yaml"  # the packaged defaults (config/adapt.yaml)
CAMERAS_ODOMETRY = ("kiss_icp", "open3d_rgbd", "none")  # poses for a bag without odometry


@dataclass
class AdaptConfig:
    """Everything one adaptation run needs besides the bags and the node's parameters."""

    steps: int = 300  # optimizer steps
    batch_sets: int = 1  # synchronized sets per step
    lr: float = 2e-5  # AdamW peak learning rate
    weight_decay: float = 0.0  # AdamW decoupled weight decay
    warmup_steps: int = 10  # linear warm-up steps before the cosine decay
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    grad_clip: float = 1.0  # max global gradient norm; 0 = off
    seed: int = 0  # seeds the set order and torch
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = 0  # torch CPU threads; 0 = torch's default
    holdout_fraction: float = 0.2  # the last part of each bag's sets, never adapted on
    min_sets: int = 3  # fewer sets to adapt on (per run) is an unusable bag
    max_sets: int = 0  # at most this many sets per bag (evenly spaced); 0 = all
    temporal_offsets: list[int] = field(default_factory=lambda: [-1, 1])  # source sets
    neighbour_max_angle_deg: float = 100.0  # overlapping cameras: axes within this, degrees
    cameras_odometry: str = "kiss_icp"  # poses for a bag without odometry (CAMERAS_ODOMETRY)
    spatial_weight: float = 1.0  # per-pixel minimum SSIM + L1 error over overlapping cameras
    temporal_weight: float = 1.0  # the same over the previous / next sets (auto-masked)
    ssim_alpha: float = 0.85  # error = alpha * (1 - SSIM) / 2 + (1 - alpha) * L1
    automask: bool = True  # leave out pixels the unwarped previous/next image explains
    smooth_weight: float = 1e-3  # edge-aware smoothness of mean-normalised inverse depth
    anchor_weight: float = 0.01  # sum of squared differences to the starting weights
    synthetic_data: list[str] = field(default_factory=list)  # shard dirs for supervision
    synthetic_every: int = 0  # a supervised synthetic batch every N steps; 0 = never
    synthetic_batch_size: int = 1  # synthetic samples per supervised batch
    synthetic_weight: float = 1.0  # weight of the supervised synthetic loss
    synthetic_loss: dict[str, Any] = field(default_factory=dict)  # its LossConfig fields
    freeze_batchnorm: bool = True  # BatchNorm keeps its running statistics
    save_every: int = 50  # steps between checkpoints in DIR/checkpoint
    log_every: int = 10  # steps between logged losses
    mlflow: bool = True  # track parameters and losses with MLflow
    mlflow_uri: str = ""  # tracking URI; empty = sqlite in the output directory
    experiment: str = "depth_any_view_adapt"  # MLflow experiment name

    def __post_init__(self) -> None:
        """Validate every field; ConfigError names it and the allowed values."""
        for f in fields(self):  # YAML reads '5e-5' as a string: numbers are converted
            kind = {"float": float, "int": int}.get(str(f.type))
            value = getattr(self, f.name)
            if kind is not None and not isinstance(value, bool):
                try:
                    setattr(self, f.name, kind(value))
                except (TypeError, ValueError):
                    raise ConfigError(f"adapt option '{f.name}' must be a number, got "
                                      f"{value!r} (config/{ADAPT_CONFIG})") from None
        if isinstance(self.synthetic_data, str):
            self.synthetic_data = [self.synthetic_data]
        self.temporal_offsets = [int(v) for v in (self.temporal_offsets or [])]
        self.synthetic_loss = dict(self.synthetic_loss or {})
        checks = [
            ("steps", self.steps >= 1, ">= 1"),
            ("batch_sets", self.batch_sets >= 1, ">= 1"),
            ("lr", self.lr > 0, "> 0"),
            ("weight_decay", self.weight_decay >= 0, ">= 0"),
            ("warmup_steps", self.warmup_steps >= 0, ">= 0"),
            ("min_lr_ratio", 0 <= self.min_lr_ratio <= 1, "in [0, 1]"),
            ("grad_clip", self.grad_clip >= 0, ">= 0"),
            ("threads", self.threads >= 0, ">= 0"),
            ("holdout_fraction", 0 <= self.holdout_fraction < 1, "in [0, 1)"),
            ("min_sets", self.min_sets >= 1, ">= 1"),
            ("max_sets", self.max_sets >= 0, ">= 0 (0 = all)"),
            ("temporal_offsets", 0 not in self.temporal_offsets,
             "a list of non-zero set offsets such as [-1, 1]"),
            ("neighbour_max_angle_deg", 0 <= self.neighbour_max_angle_deg <= 180,
             "in [0, 180] degrees"),
            ("cameras_odometry", self.cameras_odometry in CAMERAS_ODOMETRY,
             f"one of {', '.join(CAMERAS_ODOMETRY)}"),
            ("spatial_weight", self.spatial_weight >= 0, ">= 0"),
            ("temporal_weight", self.temporal_weight >= 0, ">= 0"),
            ("ssim_alpha", 0 <= self.ssim_alpha <= 1, "in [0, 1]"),
            ("smooth_weight", self.smooth_weight >= 0, ">= 0"),
            ("anchor_weight", self.anchor_weight >= 0, ">= 0"),
            ("synthetic_every", self.synthetic_every >= 0, ">= 0 (0 = never)"),
            ("synthetic_batch_size", self.synthetic_batch_size >= 1, ">= 1"),
            ("synthetic_weight", self.synthetic_weight >= 0, ">= 0"),
            ("save_every", self.save_every >= 0, ">= 0 (0 = only at the end)"),
            ("log_every", self.log_every >= 1, ">= 1"),
        ]
        for name, ok, allowed in checks:
            if not ok:
                raise ConfigError(f"adapt option '{name}' = {getattr(self, name)!r} must be "
                                  f"{allowed} (config/{ADAPT_CONFIG})")
        if self.synthetic_every and not self.synthetic_data:
            raise ConfigError("adapt option 'synthetic_every' is set but 'synthetic_data' is "
                              "empty; give shard directories (`depth-any-view synth --format "
                              "shards`) or set 'synthetic_every: 0'")
        if self.spatial_weight == 0 and self.temporal_weight == 0 and not self.synthetic_every:
            raise ConfigError("adapt options 'spatial_weight' and 'temporal_weight' are 0 and "
                              "no synthetic batches are mixed in: nothing would teach the "
                              "network; set one of them > 0")
        LossConfig.from_dict(self.synthetic_loss)  # a bad field fails here, named

    def loss_config(self) -> LossConfig:
        """The LossConfig of the supervised synthetic term."""
        return LossConfig.from_dict(self.synthetic_loss)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (YAML/JSON-safe) of every option."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "adapt config") -> AdaptConfig:
        """Config from a mapping; unknown keys are an error naming them (and the valid ones)."""
        return dataclass_from_mapping(cls, data, "adapt option(s)", where=f"'{source}': ")


def load_adapt_config(path: str | os.PathLike[str] | None = None,
                      overrides: list[str] | None = None) -> AdaptConfig:
    """The adaptation settings of a YAML file (None = config/adapt.yaml) with `key=value`
    overrides (YAML values, e.g. 'steps=20')."""
    source = config_path(ADAPT_CONFIG if path is None else str(path))
    data = apply_overrides(load_yaml(source), overrides or [])
    return AdaptConfig.from_dict(data, source=str(source))


__all__ = ["ADAPT_CONFIG", "CAMERAS_ODOMETRY", "AdaptConfig", "load_adapt_config"]
