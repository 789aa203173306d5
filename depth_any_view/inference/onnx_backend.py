"""The engine's ONNX Runtime backend: an exported network run by an InferenceSession.

`OnnxNetwork` is called like the torch network inside the engine (images, K, T_base_cam,
previous set) and returns the same `ModelOutput`, so preprocessing, postprocessing and
everything after the engine are shared by both backends. The file is exported for a fixed
number of views V (onnx_export.py): a set with fewer views is padded with masked views
(the network's `view_mask`: the others' outputs are those of the smaller set) and the
outputs are cut back; a set with more views than V is refused.

Execution providers are ONNX Runtime's names, in priority order (e.g.
`TensorrtExecutionProvider`, `CUDAExecutionProvider`, `CPUExecutionProvider`); short
aliases (`tensorrt`, `cuda`, `cpu`, ...) are accepted. A name ONNX Runtime does not know is
a ConfigError; a known provider that this build or machine lacks (CUDA with the CPU-only
`onnxruntime` wheel) is dropped with a warning, and the CPU provider is always the last
fallback.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from depth_any_view.config import ConfigError
from depth_any_view.inference.onnx_export import (
    ONNX_FORMAT,
    OnnxSpec,
    cache_dir,
    cache_key,
    export_onnx,
)
from depth_any_view.model.config import INIT_ONLY_FIELDS, ModelConfig
from depth_any_view.model.network import DepthAnyViewNet, ModelOutput, PreviousSet
from depth_any_view.model.weights import WeightsError, model_config_from_json

LOG = logging.getLogger(__name__)

CPU_PROVIDER = "CPUExecutionProvider"
PROVIDER_ALIASES = {"cpu": CPU_PROVIDER, "cuda": "CUDAExecutionProvider",
                    "tensorrt": "TensorrtExecutionProvider", "trt": "TensorrtExecutionProvider",
                    "openvino": "OpenVINOExecutionProvider", "rocm": "ROCMExecutionProvider",
                    "migraphx": "MIGraphXExecutionProvider", "dml": "DmlExecutionProvider",
                    "coreml": "CoreMLExecutionProvider"}


def import_onnxruntime() -> Any:
    """The onnxruntime module; ConfigError saying how to install it when it is missing."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise ConfigError("inference option 'backend' is 'onnxruntime' but the onnxruntime "
                          f"package does not import ({exc}); install the pinned one with "
                          "`pip install -r requirements.txt` (onnxruntime-gpu for CUDA / "
                          "TensorRT), or use backend 'torch'") from exc
    return onnxruntime


def resolve_providers(requested: Sequence[str]) -> list[str]:
    """ONNX Runtime provider names to use, in order, ending with the CPU provider.

    Raises ConfigError naming 'onnx_providers' for a name ONNX Runtime does not know;
    known providers missing here are dropped with a warning.
    """
    ort = import_onnxruntime()
    known = ort.get_all_providers()
    available = ort.get_available_providers()
    by_lower = {name.lower(): name for name in known}
    out: list[str] = []
    for name in requested:
        full = PROVIDER_ALIASES.get(str(name).lower(), by_lower.get(str(name).lower()))
        if full is None or full not in known:
            raise ConfigError(f"inference option 'onnx_providers' names {name!r}, which ONNX "
                              f"Runtime {ort.__version__} does not know; use provider names "
                              f"such as CPUExecutionProvider, CUDAExecutionProvider, "
                              f"TensorrtExecutionProvider (or cpu, cuda, tensorrt)")
        if full not in available:
            LOG.warning("inference option 'onnx_providers': %s is not available in this "
                        "onnxruntime build (available: %s); skipping it (install "
                        "onnxruntime-gpu with CUDA / TensorRT for the GPU providers)",
                        full, ", ".join(available))
            continue
        if full not in out:
            out.append(full)
    if CPU_PROVIDER not in out:
        if not out:
            LOG.warning("inference option 'onnx_providers': none of %s is available; "
                        "running on %s", list(requested), CPU_PROVIDER)
        out.append(CPU_PROVIDER)
    return out


def check_onnx_file(path: str | os.PathLike[str]) -> Path:
    """`path` as a Path; ConfigError naming 'onnx_file' and how to make it when missing."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"inference option 'onnx_file' is '{path}', which does not exist; "
                          f"export it with `depth-any-view export --onnx {path} --views N` "
                          "(N = the number of camera_names), or leave onnx_file empty to "
                          "export at start-up (cached)")
    return path


def spec_from_metadata(meta: dict[str, str], path: str) -> OnnxSpec:
    """The OnnxSpec of an exported file's metadata; ConfigError naming 'onnx_file'."""
    if meta.get("format") != ONNX_FORMAT:
        raise ConfigError(f"inference option 'onnx_file': '{path}' was not written by "
                          f"`depth-any-view export` of this version (format "
                          f"{meta.get('format')!r}, expected {ONNX_FORMAT!r}); export it "
                          "again")
    try:
        return OnnxSpec(model_config_from_json(meta["model_config"]), int(meta["views"]),
                        tuple(json.loads(meta["image_size"])),
                        tuple(json.loads(meta["inputs"])), tuple(json.loads(meta["outputs"])))
    except (WeightsError, KeyError, ValueError, TypeError) as exc:
        raise ConfigError(f"inference option 'onnx_file': '{path}' has unreadable model "
                          f"metadata ({exc}); export it again") from exc


def check_spec(spec: OnnxSpec, model_config: ModelConfig, path: str) -> None:
    """ConfigError unless the file was exported from a network of `model_config`."""
    diff = [n for n in vars(model_config) if n not in INIT_ONLY_FIELDS
            and getattr(spec.model_config, n) != getattr(model_config, n)]
    if diff:
        detail = ", ".join(f"{n}: file {getattr(spec.model_config, n)!r} vs weights "
                           f"{getattr(model_config, n)!r}" for n in diff[:4])
        raise ConfigError(f"inference option 'onnx_file': '{path}' was exported from another "
                          f"model configuration than the weights ({detail}); export it "
                          "from these weights with `depth-any-view export --onnx`")


class OnnxNetwork:
    """An exported network in an ONNX Runtime session, called like DepthAnyViewNet."""

    def __init__(self, path: str | os.PathLike[str], *, providers: Sequence[str],
                 threads: int = 0) -> None:
        """Open `path` (see onnx_export.py) with the providers (resolve_providers first).

        Args:
            path: the exported `.onnx` file.
            providers: ONNX Runtime provider names, in priority order.
            threads: intra-op threads; 0 = ONNX Runtime's default.
        """
        ort = import_onnxruntime()
        self.path = str(check_onnx_file(path))
        options = ort.SessionOptions()
        if threads > 0:
            options.intra_op_num_threads = threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(self.path, options, providers=list(providers))
        except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises its own types
            raise ConfigError(f"inference option 'onnx_file': ONNX Runtime cannot open "
                              f"'{self.path}' ({type(exc).__name__}: {exc}); export it again "
                              "with `depth-any-view export --onnx`") from exc
        meta = dict(self.session.get_modelmeta().custom_metadata_map)
        self.spec = spec_from_metadata(meta, self.path)
        self.providers = self.session.get_providers()
        if self.providers[0] != providers[0]:
            LOG.warning("inference option 'onnx_providers': ONNX Runtime could not start %s "
                        "(see its log above); running on %s", providers[0], self.providers[0])

    @property
    def views(self) -> int:
        """V, the view count the file was exported for."""
        return self.spec.views

    def __call__(self, images: Tensor, K: Tensor, T_base_cam: Tensor,
                 view_mask: Tensor | None = None,
                 previous: PreviousSet | None = None) -> ModelOutput:
        """One forward pass; arguments and result as `DepthAnyViewNet.forward`, batch 1."""
        B, n = images.shape[:2]
        V = self.spec.views
        if B != 1:
            raise ValueError(f"the ONNX backend runs one set at a time, got batch {B}")
        if n > V:
            raise ValueError(f"{n} views, but the ONNX model '{self.path}' was exported for "
                             f"{V}; export it with --views {n} or more")
        if tuple(images.shape[-2:]) != tuple(self.spec.image_size):
            raise ValueError(f"images are {tuple(images.shape[-2:])}, but the ONNX model "
                             f"'{self.path}' was exported for {self.spec.image_size}")
        valid = (torch.ones(1, n, dtype=torch.bool) if view_mask is None
                 else view_mask.detach().cpu().bool())
        feed = {"images": _padded(images, V), "K": _padded(K, V, eye=True),
                "T_base_cam": _padded(T_base_cam, V, eye=True),
                "view_mask": _padded(valid, V)}
        if self.spec.temporal:
            feed.update(self._previous_feed(previous, n))
        result = dict(zip(self.spec.outputs, self.session.run(list(self.spec.outputs), feed)))
        device = images.device

        def take(name: str, per_view: bool = True) -> Tensor | None:
            if name not in result:
                return None
            t = torch.from_numpy(result[name])
            return (t[:, :n] if per_view else t).to(device)

        depth = take("depth")
        return ModelOutput(depth=depth, log_depth=torch.log(depth),
                           occupancy_logits=take("occupancy_logits", per_view=False),
                           occupancy_observed=take("occupancy_observed", per_view=False),
                           confidence=take("confidence"),
                           match_features=take("match_features"))

    def _previous_feed(self, previous: PreviousSet | None, n: int) -> dict[str, np.ndarray]:
        """The previous-set inputs; all views invalid when there is none."""
        V, cfg = self.spec.views, self.spec.model_config
        if previous is None:
            H, W = self.spec.image_size
            s = cfg.cost_stride
            return {"prev_match_features": np.zeros((1, V, cfg.match_channels, H // s, W // s),
                                                    np.float32),
                    "prev_K": _padded(torch.eye(3).expand(1, n, 3, 3), V, eye=True),
                    "prev_T_base_cam": _padded(torch.eye(4).expand(1, n, 4, 4), V, eye=True),
                    "T_base_prevbase": np.eye(4, dtype=np.float32)[None],
                    "prev_valid": np.zeros((1, V), bool)}
        return {"prev_match_features": _padded(previous.match_features, V),
                "prev_K": _padded(previous.K, V, eye=True),
                "prev_T_base_cam": _padded(previous.T_base_cam, V, eye=True),
                "T_base_prevbase": previous.T_base_prevbase.detach().cpu().float().numpy(),
                "prev_valid": _padded(previous.valid.detach().cpu().bool(), V)}


def _padded(x: Tensor, views: int, *, eye: bool = False) -> np.ndarray:
    """(1, n, ...) tensor -> (1, views, ...) numpy, padded with zeros (identity matrices)."""
    x = x.detach().cpu()
    x = x.float() if x.dtype != torch.bool else x
    n = x.shape[1]
    if n == views:
        return x.numpy()
    pad = torch.zeros((1, views - n, *x.shape[2:]), dtype=x.dtype)  # (1, V - n, ...)
    if eye:
        pad[:] = torch.eye(x.shape[-1], dtype=x.dtype)
    return torch.cat([x, pad], 1).numpy()


def cached_export(model: DepthAnyViewNet, *, views: int, weights: str) -> Path:
    """The engine's export of `model` for `views` views at its image size, made once.

    Exports live in `onnx_export.cache_dir()` under a digest of the weights, the model
    config, the view count and the torch version; a second start finds the file.
    """
    size = tuple(model.cfg.image_size)
    path = cache_dir() / f"depth_any_view_{views}v_{size[0]}x{size[1]}_" \
                         f"{cache_key(model.cfg, weights, views, size)}.onnx"
    if path.is_file():
        LOG.info("using the cached ONNX export %s", path)
        return path
    LOG.info("exporting the network to ONNX for %d views at %dx%d (once; cached in %s)",
             views, size[0], size[1], path.parent)
    export_onnx(model, path, views=views, image_size=size, source=weights)
    return path
