"""Training configuration: one dataclass, read from `config/train_*.yaml`.

A YAML file holds the top-level options plus `loss:` (LossConfig) and `augment:`
(AugmentConfig) sections; `model` names a preset (`lite`, `paper`) or a model YAML, and
`model_overrides` changes single ModelConfig fields (e.g. `fusion: false` for an ablation).
Command-line `--set key=value` pairs override any top-level or dotted key.
A file with `base: <name>` holds only what it changes from that training config (sections
merge key by key); the stages of the shipped weights are written so
(`config/train_lite_*.yaml`, each on the stage before it).
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from depth_any_view.config import ConfigError, config_path, dataclass_from_mapping, load_yaml


@dataclass
class TrainConfig:
    """Everything a training run needs; one comment per field."""

    model: str = "lite"  # model preset name or path to a model YAML
    model_overrides: dict[str, Any] = field(default_factory=dict)  # ModelConfig field changes
    init_weights: str = ""  # safetensors to start from (fine-tuning): tensors whose name and
    #                         shape match are loaded, new ones (e.g. a new head) keep their init
    train_data: list[str] = field(default_factory=list)  # shard directories for training
    val_data: list[str] = field(default_factory=list)  # shard directories for validation
    views: list[str] | None = None  # camera subset (e.g. 3 of 6 for an ablation); None = all
    temporal: bool = False  # feed the previous frame too (only where the model uses it)
    mixed_rigs: bool = False  # shard dirs may differ in cameras and size: samples are
    #                           resized, padded to max_views and masked (rig_batching.py)
    max_views: int = 8  # mixed_rigs: views per padded sample (1..8)
    depth_size: tuple[int, int] = (256, 256)  # mixed_rigs: ground-truth depth (h, w), pixels
    view_dropout: float = 0.0  # mixed_rigs: probability of masking each real view
    batch_size: int = 8  # samples per step (per process under DDP)
    epochs: int = 60  # passes over the training data
    max_steps: int = 0  # stop after this many optimizer steps; 0 = run all epochs
    max_minutes: float = 0.0  # wall-clock budget in minutes; 0 = unlimited
    lr: float = 1e-4  # AdamW peak learning rate
    betas: tuple[float, float] = (0.9, 0.999)  # AdamW betas
    weight_decay: float = 1e-4  # AdamW decoupled weight decay
    warmup_steps: int = 500  # linear warm-up steps before the cosine decay
    min_lr_ratio: float = 0.01  # cosine decays to lr * min_lr_ratio
    grad_clip: float = 1.0  # max global gradient norm; 0 disables clipping
    amp: str = "auto"  # auto (bf16/fp16 autocast on CUDA, off on CPU) | off | bf16 | fp16
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    num_workers: int = 0  # DataLoader worker processes
    threads: int = 0  # torch CPU threads; 0 = torch default
    seed: int = 0  # seeds torch, the sampler and augmentations
    out_dir: str = "runs/lite"  # checkpoints, run config and MLflow store go here
    log_every: int = 10  # steps between logged losses
    eval_every: int = 0  # steps between validations; 0 = once per epoch
    save_every: int = 0  # steps between checkpoints; 0 = once per epoch
    val_batches: int = 0  # batches per validation; 0 = the whole validation set
    mlflow: bool = True  # track params, losses, metrics and sample images with MLflow
    mlflow_uri: str = ""  # tracking URI; empty = a local file store in out_dir/mlruns
    experiment: str = "depth_any_view"  # MLflow experiment name
    loss: dict[str, Any] = field(default_factory=dict)  # LossConfig fields
    augment: dict[str, Any] = field(default_factory=dict)  # AugmentConfig fields

    def __post_init__(self) -> None:
        """Validate ranges, raising ConfigError that names the option and allowed values."""
        if isinstance(self.train_data, str):
            self.train_data = [self.train_data]
        if isinstance(self.val_data, str):
            self.val_data = [self.val_data]
        self.betas = tuple(float(b) for b in self.betas)  # type: ignore[assignment]
        try:
            self.depth_size = tuple(int(v) for v in self.depth_size)  # type: ignore[assignment]
        except (TypeError, ValueError):
            self.depth_size = ()  # type: ignore[assignment]
        checks = [("batch_size", self.batch_size >= 1, ">= 1"),
                  ("epochs", self.epochs >= 1, ">= 1"),
                  ("max_steps", self.max_steps >= 0, ">= 0"),
                  ("lr", self.lr > 0, "> 0"),
                  ("weight_decay", self.weight_decay >= 0, ">= 0"),
                  ("warmup_steps", self.warmup_steps >= 0, ">= 0"),
                  ("min_lr_ratio", 0 <= self.min_lr_ratio <= 1, "in [0, 1]"),
                  ("grad_clip", self.grad_clip >= 0, ">= 0"),
                  ("betas", len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
                   "two values in [0, 1)"),
                  ("amp", self.amp in ("auto", "off", "bf16", "fp16"),
                   "one of auto, off, bf16, fp16"),
                  ("num_workers", self.num_workers >= 0, ">= 0"),
                  ("log_every", self.log_every >= 1, ">= 1"),
                  ("max_views", 1 <= self.max_views <= 8, "in 1..8"),
                  ("depth_size", len(self.depth_size) == 2 and min(self.depth_size) >= 1,
                   "two positive integers [h, w]"),
                  ("view_dropout", 0.0 <= self.view_dropout < 1.0, "in [0, 1)")]
        for name, ok, allowed in checks:
            if not ok:
                raise ConfigError(f"training option '{name}' = {getattr(self, name)!r} "
                                  f"must be {allowed}")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (YAML/JSON-safe) of every option."""
        d = asdict(self)
        d["betas"] = list(self.betas)
        d["depth_size"] = list(self.depth_size)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "training config") -> TrainConfig:
        """Config from a mapping; unknown keys are an error naming them."""
        return dataclass_from_mapping(cls, data, "training option(s)", where=f"'{source}': ")


_EXPONENT_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def apply_overrides(data: dict[str, Any], pairs: list[str]) -> dict[str, Any]:
    """Apply `key=value` strings (dotted keys for sections, YAML values) to a mapping."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"override '{pair}' must look like key=value (e.g. epochs=2)")
        key, raw = pair.split("=", 1)
        value = yaml.safe_load(raw)
        if isinstance(value, str) and _EXPONENT_NUMBER.fullmatch(value.strip()):
            value = float(value)  # YAML 1.1 reads 5e-5 (no dot) as a string
        parts = key.strip().split(".")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{pair}': '{part}' is not a section")
        node[parts[-1]] = value
    return out


BASE_KEY = "base"  # a training config names the config it changes (see load_train_yaml)


def train_config_path(name_or_path: str | os.PathLike[str]) -> Path:
    """`config/train_<name>.yaml` for a name without '.yaml' (e.g. 'lite'), else the path.
    Raises ConfigError saying where it looked when the file is not there."""
    name = str(name_or_path)
    if not name.endswith((".yaml", ".yml")) and os.sep not in name:
        name = f"train_{name}.yaml"
    return config_path(name)


def merge_sections(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`base` with `changes` on top: mappings (loss, augment, model_overrides) merge key by
    key, any other value is replaced."""
    out = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_sections(out[key], value)
        else:
            out[key] = value
    return out


def load_train_yaml(name_or_path: str | os.PathLike[str],
                    _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The options of a training config file with its `base:` resolved.

    A file with `base: <name or path>` holds only what it changes: its keys go on top of
    the base's (`merge_sections`), which may have a base of its own. Raises ConfigError
    naming the file when a base is missing or the chain of bases comes back to a file.
    """
    path = train_config_path(name_or_path).resolve()
    if path in _chain:
        loop = " -> ".join(p.name for p in (*_chain, path))
        raise ConfigError(f"training config '{path}': its 'base' chain loops ({loop}); "
                          "a config cannot be its own base")
    data = load_yaml(path)
    if BASE_KEY not in data:
        return data
    base = data.pop(BASE_KEY)
    if not isinstance(base, str) or not base.strip():
        raise ConfigError(f"training config '{path}': '{BASE_KEY}' must name a training "
                          f"config (e.g. 'lite' or a path), got {base!r}")
    try:
        base_path = train_config_path(base)
    except ConfigError as exc:
        raise ConfigError(f"training config '{path}': its base '{base}': {exc}") from None
    return merge_sections(load_train_yaml(base_path, (*_chain, path)), data)


def load_train_config(name_or_path: str | os.PathLike[str],
                      overrides: list[str] | None = None) -> TrainConfig:
    """Training config from `config/train_<name>.yaml` (a name without '.yaml', e.g. 'lite',
    'lite_confidence') or a path, its `base:` resolved, with `key=value` overrides."""
    path = train_config_path(name_or_path)
    data = apply_overrides(load_train_yaml(path), overrides or [])
    return TrainConfig.from_dict(data, source=str(path))
