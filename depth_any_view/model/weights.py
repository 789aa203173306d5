"""Model weights on disk: safetensors with the ModelConfig they were made with.

A weights file carries its own configuration in the safetensors metadata (`model_config`,
JSON of `asdict(ModelConfig)`), so loading never needs a separate file and a file made for
another preset is detected instead of failing deep inside `load_state_dict`. The package's
shipped weights live in `depth_any_view/weights/` and are found without a path.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from depth_any_view.config import unknown_fields
from depth_any_view.model.config import INIT_ONLY_FIELDS, ModelConfig

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
DEFAULT_WEIGHTS = "lite.safetensors"


class WeightsError(RuntimeError):
    """A weights file is missing, corrupt or made for another model configuration."""


def default_weights_path(preset: str = "lite") -> Path:
    """Path of the package's shipped weights for a preset (may not exist for `paper`)."""
    return WEIGHTS_DIR / f"{preset}.safetensors"


def model_config_to_json(cfg: ModelConfig) -> str:
    """JSON of a ModelConfig (tuples become lists)."""
    return json.dumps(asdict(cfg), sort_keys=True)


def model_config_from_json(text: str) -> ModelConfig:
    """ModelConfig from `model_config_to_json`; unknown keys (newer files) raise."""
    data = json.loads(text)
    unknown = unknown_fields(ModelConfig, data)
    if unknown:
        raise WeightsError(f"weights were made with model options this version does not know: "
                           f"{unknown}; update depth_any_view")
    for f in fields(ModelConfig):
        if isinstance(data.get(f.name), list):
            data[f.name] = tuple(data[f.name])
    return ModelConfig(**data)


def save_weights(model: torch.nn.Module, cfg: ModelConfig, path: str | os.PathLike[str], *,
                 metadata: dict[str, Any] | None = None) -> Path:
    """Write the model's state dict and its config to a safetensors file.

    Args:
        model: the network (unwrapped from DDP/compile).
        cfg: the ModelConfig it was built from.
        path: output `.safetensors` path; parent directories are created.
        metadata: extra string-able entries (e.g. step, command) stored beside the config.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {"model_config": model_config_to_json(cfg), "format": "depth_any_view/1"}
    for k, v in (metadata or {}).items():
        meta[str(k)] = v if isinstance(v, str) else json.dumps(v)
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file(state, str(tmp), metadata=meta)
    tmp.replace(path)  # atomic: a crash never leaves a half-written weights file
    return path


def read_weights_config(path: str | os.PathLike[str]) -> tuple[ModelConfig, dict[str, str]]:
    """The ModelConfig and metadata stored in a weights file, without loading tensors."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file '{path}' does not exist; pass an existing "
                           "--weights/weights path or omit it to use the shipped weights")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"weights file '{path}' is not a valid safetensors file ({exc}); "
                           "re-export or re-download it") from exc
    if "model_config" not in meta:
        raise WeightsError(f"weights file '{path}' has no 'model_config' metadata; it was not "
                           "written by depth_any_view (use model.weights.save_weights)")
    return model_config_from_json(meta["model_config"]), meta


def load_weights(path: str | os.PathLike[str], *,
                 expect: ModelConfig | None = None) -> tuple[dict[str, torch.Tensor],
                                                            ModelConfig, dict[str, str]]:
    """State dict, ModelConfig and metadata of a weights file.

    Args:
        path: the `.safetensors` file.
        expect: if given, the file's config must match it in every architecture field
            (not in INIT_ONLY_FIELDS such as `pretrained`, which only says how training
            started); a mismatch raises WeightsError naming the differing fields.
    """
    cfg, meta = read_weights_config(path)
    if expect is not None:
        diff = [f.name for f in fields(ModelConfig) if f.name not in INIT_ONLY_FIELDS
                and getattr(cfg, f.name) != getattr(expect, f.name)]
        if diff:
            detail = ", ".join(f"{n}: file {getattr(cfg, n)!r} vs wanted {getattr(expect, n)!r}"
                               for n in diff[:6])
            raise WeightsError(f"weights file '{path}' was made for another model "
                               f"configuration ({detail})")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"weights file '{path}' is corrupt ({exc})") from exc
    return state, cfg, meta
