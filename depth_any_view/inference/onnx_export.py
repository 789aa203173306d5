"""ONNX export of DepthAnyViewNet for a fixed view count and image size.

The exported graph is the network's own `forward`, wrapped so that plain tensors go in and
out (ONNX carries no dataclasses), traced by torch's `torch.export`-based exporter
(`dynamo=True`, which needs `onnxscript`; the legacy TorchScript exporter gives wrong
depth for this network). Shapes are static: batch 1 (the engine runs one set at a time),
`views` views and one image size, which is what TensorRT and OpenVINO prefer.

Inputs (float32 unless said):
    images      (1, V, 3, H, W) RGB in [0, 1]
    K           (1, V, 3, 3) pinhole intrinsics at (H, W), pixels
    T_base_cam  (1, V, 4, 4) camera optical frame -> base_link, metres
    view_mask   (1, V) bool, False = no image for that view (padding; its inputs are
                ignored, and the other views' outputs equal those of a set without it)
  with a temporal cost volume (`cost_temporal`), the previous set, which the graph always
  takes; `prev_valid` all False means "no previous set" and gives exactly the outputs of
  the network run without one:
    prev_match_features  (1, V, C, H/s, W/s) the previous run's `match_features` output
    prev_K               (1, V, 3, 3), prev_T_base_cam (1, V, 4, 4): that set's cameras
    T_base_prevbase      (1, 4, 4) previous base_link -> current base_link (odometry)
    prev_valid           (1, V) bool, False = no previous view (first set, reset, missing)
Outputs:
    depth               (1, V, H, W) metres along the optical axis
    confidence          (1, V, H, W) in (0, 1], only for weights with a confidence head
    occupancy_logits    (1, X, Y, Z) logits of P(occupied), grid in base_link
    occupancy_observed  (1, X, Y, Z) bool, voxel seen by at least one view
    match_features      (1, V, C, H/s, W/s), only with `cost_temporal`: feed it back as
                        `prev_match_features` with the next set

The model file carries its own description in its metadata (`depth_any_view` format,
model config JSON, views, image size, input and output names), which the ONNX Runtime
backend (onnx_backend.py) checks before it runs a file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from depth_any_view.model.config import ModelConfig
from depth_any_view.model.network import DepthAnyViewNet, PreviousSet
from depth_any_view.model.weights import model_config_to_json

LOG = logging.getLogger(__name__)

ONNX_FORMAT = "depth_any_view-onnx/1"  # bump when inputs, outputs or metadata change
OPSET = 18
INPUTS = ("images", "K", "T_base_cam", "view_mask")
PREVIOUS_INPUTS = ("prev_match_features", "prev_K", "prev_T_base_cam", "T_base_prevbase",
                   "prev_valid")
OUTPUTS = ("depth", "confidence", "occupancy_logits", "occupancy_observed", "match_features")


def is_temporal(cfg: ModelConfig) -> bool:
    """True when the network matches against the previous set (takes PREVIOUS_INPUTS)."""
    return bool(cfg.cost_volume and cfg.cost_temporal)


def parse_hw(text: str) -> tuple[int, int]:
    """'HxW' (pixels, multiples of 32) -> (H, W); ValueError with the expected form."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"size {text!r} is not HxW in pixels, e.g. 128x128") from None
    if h <= 0 or w <= 0 or h % 32 or w % 32:
        raise ValueError(f"size {text!r}: height and width must be positive multiples of 32")
    return h, w


@dataclass(frozen=True)
class OnnxSpec:
    """What one exported file takes and returns (written to, and read from, its metadata)."""

    model_config: ModelConfig
    views: int  # V, fixed
    image_size: tuple[int, int]  # (H, W) pixels, fixed
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]

    @property
    def temporal(self) -> bool:
        """True when the file takes the previous set."""
        return "prev_valid" in self.inputs

    def metadata(self, source: str) -> dict[str, str]:
        """ONNX metadata_props of the file; `source` names the weights it was made from."""
        return {"format": ONNX_FORMAT, "model_config": model_config_to_json(self.model_config),
                "views": str(self.views), "image_size": json.dumps(list(self.image_size)),
                "inputs": json.dumps(list(self.inputs)),
                "outputs": json.dumps(list(self.outputs)),
                "weights": source, "torch": torch.__version__}


class ExportedForward(nn.Module):
    """The network's forward with tensors in and a tuple of tensors out (see module doc)."""

    def __init__(self, model: DepthAnyViewNet, outputs: tuple[str, ...]) -> None:
        super().__init__()
        self.model = model
        self.outputs = outputs
        self.temporal = is_temporal(model.cfg)

    def forward(self, images: Tensor, K: Tensor, T_base_cam: Tensor, view_mask: Tensor,
                *previous: Tensor) -> tuple[Tensor, ...]:
        """ModelOutput fields named by `outputs`, in that order."""
        prev = None
        if self.temporal:
            feats, pK, pT, motion, pvalid = previous
            pvalid = pvalid.bool()
            # views without a previous image may hold anything: make them finite and
            # harmless (their pair weight is 0 inside the cost volume)
            feats = torch.where(pvalid[..., None, None, None], feats, torch.zeros_like(feats))
            pK = torch.where(pvalid[..., None, None], pK, torch.eye(3, device=pK.device))
            pT = torch.where(pvalid[..., None, None], pT, torch.eye(4, device=pT.device))
            prev = PreviousSet(feats, pK, pT, motion, pvalid)
        out = self.model(images, K, T_base_cam, view_mask, prev)
        return tuple(getattr(out, name) for name in self.outputs)


def example_inputs(cfg: ModelConfig, views: int, image_size: tuple[int, int],
                   *, seed: int = 0) -> tuple[Tensor, ...]:
    """Inputs of the exported graph for a ring of outward-looking 90-degree cameras.

    Returns (images, K, T_base_cam, view_mask) plus, for a temporal network, a previous
    set (the same cameras 0.3 m behind, all valid) with zero matching features.
    """
    H, W = image_size
    gen = torch.Generator().manual_seed(seed)
    images = torch.rand(1, views, 3, H, W, generator=gen)  # (1, V, 3, H, W)
    f = 0.5 * W / math.tan(math.radians(45.0))
    K = torch.tensor([[f, 0.0, (W - 1) / 2], [0.0, f, (H - 1) / 2], [0.0, 0.0, 1.0]])
    K = K.expand(1, views, 3, 3).clone()  # (1, V, 3, 3)
    R_base_opt = torch.tensor([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    T = torch.eye(4).repeat(1, views, 1, 1)  # (1, V, 4, 4)
    for i in range(views):  # per view, not per pixel
        yaw = 2.0 * math.pi * i / views
        c, s = math.cos(yaw), math.sin(yaw)
        Rz = torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        T[0, i, :3, :3] = Rz @ R_base_opt
        T[0, i, :3, 3] = torch.tensor([0.2 * c, 0.2 * s, 1.5])
    mask = torch.ones(1, views, dtype=torch.bool)
    if not is_temporal(cfg):
        return images, K, T, mask
    s = cfg.cost_stride
    feats = torch.zeros(1, views, cfg.match_channels, H // s, W // s)
    motion = torch.eye(4)[None].clone()  # (1, 4, 4)
    motion[0, 0, 3] = 0.3
    return images, K, T, mask, feats, K.clone(), T.clone(), motion, mask.clone()


def onnx_spec(model: DepthAnyViewNet, views: int, image_size: tuple[int, int]) -> OnnxSpec:
    """The inputs and outputs an export of `model` has (outputs probed with one forward)."""
    cfg = model.cfg
    with torch.inference_mode():
        probe = model(*example_inputs(cfg, views, image_size)[:4])
    temporal = is_temporal(cfg)
    outputs = tuple(n for n in OUTPUTS if getattr(probe, n) is not None
                    and (n != "match_features" or temporal))
    inputs = INPUTS + (PREVIOUS_INPUTS if temporal else ())
    return OnnxSpec(cfg, views, tuple(image_size), inputs, outputs)


# the exporter's chatty loggers -> the level they keep during an export
EXPORTER_LOGGERS = {"onnxscript": logging.WARNING, "onnx_ir": logging.WARNING,
                    "torch.onnx": logging.WARNING,
                    "torch.onnx._internal.exporter._registration": logging.ERROR}


@contextmanager
def quiet_exporter() -> Iterator[None]:
    """Hide the exporter's per-pass INFO lines and its notes on torchvision ops."""
    loggers = {logging.getLogger(name): level for name, level in EXPORTER_LOGGERS.items()}
    saved = {lg: lg.level for lg in loggers}
    for lg, level in loggers.items():
        lg.setLevel(max(level, lg.getEffectiveLevel()))
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*LeafSpec", category=FutureWarning)
            yield
    finally:
        for lg, level in saved.items():
            lg.setLevel(level)


def export_onnx(model: DepthAnyViewNet, path: str | os.PathLike[str], *, views: int,
                image_size: tuple[int, int] | None = None, source: str = "") -> OnnxSpec:
    """Write `model` as one self-contained ONNX file for `views` views at `image_size`.

    Args:
        model: the network (any ModelConfig); it is exported from a CPU float32 copy.
        path: output `.onnx` file (weights inside it); parent folders are created and the
            file is replaced atomically.
        views: V, 1 or more.
        image_size: (H, W) pixels, multiples of 32; None = the model's `image_size`.
        source: what the weights are (a path), stored in the metadata.

    Returns:
        The OnnxSpec written to the file's metadata.
    """
    if isinstance(views, bool) or not isinstance(views, int) or views < 1:
        raise ValueError(f"views must be an integer >= 1, got {views!r}")
    size = tuple(image_size or model.cfg.image_size)
    if size[0] % 32 or size[1] % 32:
        raise ValueError(f"image size {size} must be a multiple of 32")
    net = DepthAnyViewNet(model.cfg)
    net.load_state_dict({k: v.detach().float().cpu() for k, v in model.state_dict().items()})
    net = net.eval().requires_grad_(False)
    spec = onnx_spec(net, views, size)
    args = example_inputs(net.cfg, views, size)
    with quiet_exporter():
        program = torch.onnx.export(ExportedForward(net, spec.outputs).eval(), args, dynamo=True,
                                    opset_version=OPSET, input_names=list(spec.inputs),
                                    output_names=list(spec.outputs), verbose=False)
    program.model.metadata_props.update(spec.metadata(source))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    program.save(str(tmp), external_data=False)
    tmp.replace(path)  # atomic: a reader never sees a half-written file
    LOG.info("exported ONNX model %s (%d views at %dx%d, outputs %s)", path, views, size[0],
             size[1], ", ".join(spec.outputs))
    return spec


def cache_dir() -> Path:
    """Folder of the engine's cached exports: $XDG_CACHE_HOME (or ~/.cache)/depth_any_view/onnx."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "depth_any_view" / "onnx"


def cache_key(cfg: ModelConfig, weights: str, views: int, image_size: tuple[int, int]) -> str:
    """Digest naming a cached export: weights identity, config, shape, exporter versions.

    `weights` is a file path (its bytes are hashed) or any other identity string (e.g.
    'random:lite:0' for randomly initialised weights).
    """
    h = hashlib.sha256()
    path = Path(weights)
    if path.is_file():
        with path.open("rb") as f:
            h.update(hashlib.file_digest(f, "sha256").digest())
    else:
        h.update(weights.encode())
    h.update(model_config_to_json(cfg).encode())
    h.update(f"{views}:{image_size[0]}x{image_size[1]}:{ONNX_FORMAT}:{OPSET}".encode())
    h.update(torch.__version__.encode())
    return h.hexdigest()[:24]
