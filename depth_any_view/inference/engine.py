"""The inference engine: weights, device, precision, warm-up and one timed `infer` per set.

The ROS node and the offline bag evaluation call the same `InferenceEngine.infer`. Start-up
order is fixed so that errors come early and clearly: the config is validated (ConfigError
naming the field), the weights are resolved and read (WeightsError: missing, corrupt or made
for another preset), then the device and precision are checked (ConfigError), then the
network is built, optionally compiled, and warmed up.

Weights with a temporal cost volume (`cost_temporal`) match each set against the previous
one: `infer(views, T_odom_base=..., stamp_ns=...)` passes the set's odometry pose, and the
engine keeps the last set's matching features on the device (inference/temporal.py says
when the previous set is not used).

Hot path (`infer`): preprocessing (preprocess.py), the forward pass under
`torch.inference_mode` and autocast, postprocessing (prediction.py), and one device -> host
copy. On CUDA nothing in between synchronises with the host: inputs go through pinned
memory with non-blocking copies, stages are timed with CUDA events, and the only
synchronisation is the wait for the final copy. On the CPU stages are timed with
`time.perf_counter`.

On CUDA the engine enables `cudnn.benchmark` and TF32 matmuls (`float32_matmul_precision`
'high') for the process, the usual settings for fixed-shape inference.
"""

from __future__ import annotations

import logging
import math
import os
import platform
import re
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from depth_any_view.config import ConfigError
from depth_any_view.geometry.camera import PinholeCamera
from depth_any_view.geometry.grid import VoxelGrid
from depth_any_view.inference.prediction import (
    DEPTH_INTERPOLATIONS,
    OUT_OF_RANGE_POLICIES,
    HostCopy,
    Prediction,
    apply_depth_policy,
    resize_depth_to_input,
)
from depth_any_view.inference.preprocess import NetworkInput, Preprocessor, ViewInput, check_views
from depth_any_view.inference.temporal import PreviousSetCache
from depth_any_view.model.config import ModelConfig, load_model_config
from depth_any_view.model.network import DepthAnyViewNet
from depth_any_view.model.weights import WeightsError, default_weights_path, load_weights

LOG = logging.getLogger(__name__)

DEVICES = ("auto", "cuda", "cpu")
PRECISIONS = ("fp32", "fp16", "bf16")
OUTPUT_RESOLUTIONS = ("input", "network")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")
STAGES = ("preprocess", "forward", "postprocess")
AMP_DTYPES = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}
BACKENDS = ("torch", "onnxruntime")


class InferenceError(RuntimeError):
    """The network failed on one set of views (e.g. CUDA out of memory); see `__cause__`."""


@dataclass
class EngineConfig:
    """How to run the network; every field is validated by `validate`."""

    weights: str | None = None  # .safetensors path; None = the shipped weights of `preset`
    preset: str | None = "lite"  # preset the weights must match; None = trust the file's config
    model_overrides: dict[str, Any] = field(default_factory=dict)  # ModelConfig fields to replace
    device: str = "auto"  # auto | cuda | cuda:N | cpu
    precision: str = "fp32"  # fp32 | fp16 | bf16 (autocast; fp16 only on CUDA)
    channels_last: bool = True  # NHWC memory layout for images and convolution weights
    compile: bool = False  # torch.compile the network; falls back to eager with a warning
    compile_mode: str = "default"  # default | reduce-overhead (CUDA graphs) | max-autotune
    warmup_iters: int = 2  # dummy forward passes at start (0 = none)
    warmup_views: int = 6  # views per warm-up pass (the rig's number of cameras)
    threads: int = 0  # torch CPU threads (torch.set_num_threads); 0 = torch's default
    output_resolution: str = "input"  # input (depth registered with each image) | network
    depth_interpolation: str = "nearest"  # nearest | bilinear, resizing depth to the input
    depth_range: tuple[float, float] | None = None  # metres trusted; None = model's range
    out_of_range: str = "nan"  # nan | clamp: depth outside depth_range
    return_images: bool = False  # also return the (V, h, w, 3) uint8 network-input images
    random_init: bool = False  # random weights (tests, before trained weights exist)
    seed: int = 0  # torch seed for random_init
    backend: str = "torch"  # torch (eager / compiled) | onnxruntime (the exported graph)
    onnx_file: str | None = None  # onnxruntime: an exported .onnx (`depth-any-view export`);
    #                               None = export the weights at start-up (cached)
    onnx_providers: tuple[str, ...] = ("CPUExecutionProvider",)  # onnxruntime: execution
    #                               providers in priority order (CUDA, TensorRT where present)

    def validate(self) -> None:
        """Raise ConfigError naming the field and its allowed values on any bad setting."""
        def bad(name: str, allowed: str) -> ConfigError:
            return ConfigError(f"inference option '{name}' is {getattr(self, name)!r}; "
                               f"allowed: {allowed}")

        if self.weights is not None and not isinstance(self.weights, str | os.PathLike):
            raise bad("weights", "a path to a .safetensors file, or None for the shipped ones")
        if self.preset is not None and (not isinstance(self.preset, str) or not self.preset):
            raise bad("preset", "'lite', 'paper', a model config path, or None")
        if not isinstance(self.model_overrides, dict):
            raise bad("model_overrides", "a mapping of ModelConfig field -> value")
        if not isinstance(self.device, str) or not (
                self.device in DEVICES or re.fullmatch(r"cuda:\d+", self.device)):
            raise bad("device", "auto, cuda, cuda:N, cpu")
        if self.precision not in PRECISIONS:
            raise bad("precision", ", ".join(PRECISIONS))
        if self.compile_mode not in COMPILE_MODES:
            raise bad("compile_mode", ", ".join(COMPILE_MODES))
        if self.output_resolution not in OUTPUT_RESOLUTIONS:
            raise bad("output_resolution", ", ".join(OUTPUT_RESOLUTIONS))
        if self.depth_interpolation not in DEPTH_INTERPOLATIONS:
            raise bad("depth_interpolation", ", ".join(DEPTH_INTERPOLATIONS))
        if self.out_of_range not in OUT_OF_RANGE_POLICIES:
            raise bad("out_of_range", ", ".join(OUT_OF_RANGE_POLICIES))
        for name, low in (("warmup_iters", 0), ("warmup_views", 1), ("threads", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise bad(name, f"an integer >= {low}")
        for name in ("channels_last", "compile", "return_images", "random_init"):
            if not isinstance(getattr(self, name), bool):
                raise bad(name, "true or false")
        if self.depth_range is not None:
            try:
                lo, hi = (float(v) for v in self.depth_range)
            except (TypeError, ValueError):
                raise bad("depth_range", "[min, max] metres with 0 <= min < max, or None") \
                    from None
            if not (math.isfinite(lo) and math.isfinite(hi) and 0.0 <= lo < hi):
                raise bad("depth_range", "[min, max] metres with 0 <= min < max, or None")
        if self.backend not in BACKENDS:
            raise bad("backend", ", ".join(BACKENDS))
        if self.onnx_file is not None and not isinstance(self.onnx_file, str | os.PathLike):
            raise bad("onnx_file", "a path to an exported .onnx file, or None to export")
        if (isinstance(self.onnx_providers, str) or not self.onnx_providers
                or not all(isinstance(p, str) and p for p in self.onnx_providers)):
            raise bad("onnx_providers", "a non-empty list of ONNX Runtime provider names, "
                      "e.g. [CUDAExecutionProvider, CPUExecutionProvider]")
        if self.backend == "onnxruntime" and (self.precision != "fp32" or self.compile):
            raise ConfigError(f"inference option 'backend' is 'onnxruntime', which runs the "
                              f"exported float32 graph: set precision 'fp32' (is "
                              f"{self.precision!r}) and compile false (is {self.compile}), "
                              "or use backend 'torch'")
        if self.random_init and self.weights is not None:
            raise ConfigError("inference options 'random_init' and 'weights' exclude each "
                              "other: drop 'weights' to run random weights, or 'random_init' "
                              "to load the file")
        if self.random_init and self.preset is None:
            raise ConfigError("inference option 'random_init' needs 'preset' (e.g. 'lite') to "
                              "know which network to build")


# ---------------------------------------------------------------------------- start-up steps
def expected_model_config(cfg: EngineConfig) -> ModelConfig | None:
    """The preset's ModelConfig with `model_overrides` applied (None when preset is None)."""
    if cfg.preset is None:
        if cfg.model_overrides:
            raise ConfigError("inference option 'model_overrides' needs 'preset' to apply to")
        return None
    base = load_model_config(cfg.preset)
    known = {f.name for f in fields(ModelConfig)}
    unknown = sorted(set(cfg.model_overrides) - known)
    if unknown:
        raise ConfigError(f"inference option 'model_overrides' has unknown ModelConfig "
                          f"field(s) {unknown}; known: {sorted(known)}")
    overrides = {k: tuple(v) if isinstance(v, list) else v
                 for k, v in cfg.model_overrides.items()}
    return replace(base, **overrides) if overrides else base


def resolve_weights(cfg: EngineConfig) -> tuple[dict[str, torch.Tensor] | None, ModelConfig,
                                                dict[str, str], str]:
    """State dict (None for random_init), ModelConfig, file metadata and a source label.

    Raises WeightsError when the file is missing, corrupt or made for another preset.
    """
    expected = expected_model_config(cfg)
    if cfg.random_init:
        assert expected is not None  # validate() requires a preset for random_init
        return None, expected, {}, "random"
    if cfg.weights is None:
        preset = cfg.preset or "lite"
        path = default_weights_path(preset)
        if not path.is_file():
            raise WeightsError(f"the shipped weights of preset '{preset}' are not installed "
                               f"({path}); pass weights=<file.safetensors> (from "
                               "`depth-any-view train`), or random_init=True to run with "
                               "random weights for testing")
    else:
        path = Path(cfg.weights).expanduser()
    state, model_cfg, meta = load_weights(path, expect=expected)
    return state, model_cfg, meta, str(path)


def resolve_device(name: str) -> torch.device:
    """torch.device for 'auto' | 'cuda' | 'cuda:N' | 'cpu'; ConfigError if CUDA is missing."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = (f"built with CUDA {torch.version.cuda}, but no GPU is visible"
                     if torch.version.cuda else "built without CUDA (a CPU-only wheel)")
            raise ConfigError(f"inference option 'device' is '{name}' but CUDA is not "
                              f"available (torch {torch.__version__} is {build}); use "
                              "device 'auto' or 'cpu'")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"inference option 'device' is '{name}' but only "
                              f"{torch.cuda.device_count()} CUDA device(s) are visible")
    return device


def resolve_amp_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for a precision on a device (None = fp32); ConfigError if unsupported."""
    dtype = AMP_DTYPES[precision]
    if dtype is None:
        return None
    if device.type == "cpu":
        if dtype == torch.float16:
            raise ConfigError("inference option 'precision' is 'fp16', which the CPU does not "
                              "support; use 'bf16' (if this CPU supports it) or 'fp32' on the "
                              "CPU, or fp16 on a CUDA device")
        try:  # functional probe: autocast to bf16 must work for convolutions and matmuls
            with torch.inference_mode(), torch.autocast("cpu", dtype=dtype):
                x = torch.ones(1, 2, 4, 4)
                y = torch.nn.functional.conv2d(x, torch.ones(2, 2, 1, 1)) @ torch.ones(4, 4)
            ok = y.dtype == dtype
        except RuntimeError:
            ok = False
        if not ok:
            raise ConfigError("inference option 'precision' is 'bf16' but this torch build / "
                              "CPU cannot autocast to bfloat16; use 'fp32'")
    elif dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"inference option 'precision' is 'bf16' but "
                          f"{torch.cuda.get_device_name(device)} does not support bfloat16; "
                          "use 'fp16' or 'fp32'")
    return dtype


def dummy_views(num_views: int, image_size: tuple[int, int], seed: int = 0) -> list[ViewInput]:
    """A ring of `num_views` outward-looking 90-degree cameras with random images."""
    h, w = image_size
    rng = np.random.default_rng(seed)
    camera = PinholeCamera.from_fov(w, h, math.radians(90.0))
    R_base_opt = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    views = []
    for i in range(num_views):
        yaw = 2.0 * math.pi * i / num_views
        c, s = math.cos(yaw), math.sin(yaw)
        T = np.eye(4)
        T[:3, :3] = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ R_base_opt
        T[:3, 3] = [0.2 * c, 0.2 * s, 1.5]
        rgb = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        views.append(ViewInput(f"warmup_{i}", rgb, camera, T))
    return views


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux) and its logical core count."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores"


class _StageTimer:
    """Stage boundaries: CUDA events on CUDA (read after the final sync), perf_counter else."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.marks: list[tuple[str, Any]] = []

    def mark(self, name: str) -> Any:
        """Record a boundary named after the stage it ends ('start' for the first)."""
        if self.cuda:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
        else:
            ev = time.perf_counter()
        self.marks.append((name, ev))
        return ev

    def seconds(self) -> dict[str, float]:
        """Seconds per stage; on CUDA only after the last event has completed."""
        out = {}
        for (_, a), (name, b) in zip(self.marks[:-1], self.marks[1:]):
            out[name] = a.elapsed_time(b) / 1e3 if self.cuda else b - a
        return out


# ---------------------------------------------------------------------------- the engine
class InferenceEngine:
    """The network on one device, ready to `infer` sets of views (see module docstring)."""

    def __init__(self, cfg: EngineConfig | None = None) -> None:
        """Validate, load weights, check the device, build, compile and warm up.

        Raises:
            ConfigError: a bad option (names the field), an unavailable device or precision.
            WeightsError: missing, corrupt or mismatched weights (before anything else runs).
        """
        self.cfg = cfg = cfg or EngineConfig()
        cfg.validate()
        state, self.model_config, self.weights_meta, self.weights_source = resolve_weights(cfg)
        self.device = resolve_device(cfg.device)
        self.amp_dtype = resolve_amp_dtype(cfg.precision, self.device)
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            torch.set_float32_matmul_precision("high")
        mc = self.model_config
        self.grid = VoxelGrid(tuple(mc.grid_lower), tuple(mc.grid_upper), tuple(mc.grid_dims))
        self.image_size: tuple[int, int] = (int(mc.image_size[0]), int(mc.image_size[1]))
        lo, hi = cfg.depth_range if cfg.depth_range is not None else (mc.min_depth,
                                                                      mc.max_depth)
        self.depth_range = (float(lo), float(hi))

        if state is None:
            LOG.warning("*** depth_any_view is running with RANDOMLY INITIALISED weights "
                        "(random_init=True, preset '%s'): its depth and occupancy are "
                        "meaningless; for tests and plumbing only ***", cfg.preset)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(cfg.seed)
                model = DepthAnyViewNet(mc)
        else:
            model = DepthAnyViewNet(mc)
            try:
                model.load_state_dict(state)
            except RuntimeError as exc:
                raise WeightsError(f"weights file '{self.weights_source}' does not fit the "
                                   f"network built from its config: {exc}") from exc
        model = model.to(self.device).eval()
        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        for p in model.parameters():
            p.requires_grad_(False)
        self.model = model
        self.temporal = bool(mc.cost_volume and mc.cost_temporal)
        self.previous = PreviousSetCache()
        self.onnx = self._open_onnx(model) if cfg.backend == "onnxruntime" else None
        self._forward_fn = model
        self.compiled = False
        if cfg.compile:
            self._try_compile()
        self.preprocessor = Preprocessor(self.image_size, self.device,
                                         channels_last=cfg.channels_last,
                                         input_maps=cfg.output_resolution == "input")
        self.warmup_seconds = self.warmup(cfg.warmup_iters, cfg.warmup_views)
        LOG.info("inference engine ready: %s", self.describe())

    # ------------------------------------------------------------------ set-up helpers
    def _open_onnx(self, model: DepthAnyViewNet) -> Any:
        """The ONNX Runtime network: `onnx_file`, or an export of `model` (cached).

        Providers and the file are checked before anything is exported; ConfigError names
        the option (onnx_providers, onnx_file) and says how to fix it.
        """
        from depth_any_view.inference.onnx_backend import (
            OnnxNetwork,
            cached_export,
            check_onnx_file,
            check_spec,
            resolve_providers,
        )

        cfg = self.cfg
        providers = resolve_providers(cfg.onnx_providers)
        if cfg.onnx_file:
            path = check_onnx_file(cfg.onnx_file)
        else:
            source = (f"random:{cfg.preset}:{cfg.seed}" if cfg.random_init
                      else self.weights_source)
            path = cached_export(model, views=cfg.warmup_views, weights=source)
        net = OnnxNetwork(path, providers=providers, threads=cfg.threads)
        check_spec(net.spec, self.model_config, str(path))
        if tuple(net.spec.image_size) != self.image_size or net.views < cfg.warmup_views:
            raise ConfigError(f"inference option 'onnx_file': '{path}' was exported for "
                              f"{net.views} views at {net.spec.image_size}, but this engine "
                              f"runs up to {cfg.warmup_views} views at {self.image_size}; "
                              f"export it with `depth-any-view export --onnx {path} --views "
                              f"{cfg.warmup_views}`")
        return net

    def _try_compile(self) -> None:
        """Wrap the network in torch.compile; stay eager with a warning if that fails."""
        try:
            self._forward_fn = torch.compile(self.model, mode=self.cfg.compile_mode)
            self.compiled = True
        except Exception as exc:  # noqa: BLE001 - any compile failure degrades to eager
            LOG.warning("torch.compile is not available (%s: %s); running the network eagerly",
                        type(exc).__name__, exc)
            self._forward_fn = self.model
            self.compiled = False

    def _autocast(self) -> Any:
        """The autocast context of the configured precision (no-op for fp32)."""
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _run_network(self, inp: NetworkInput, previous: Any = None) -> Any:
        """Forward pass; a failing compiled network falls back to eager once, with a warning."""
        if self.onnx is not None:
            return self.onnx(inp.images, inp.K, inp.T_base_cam, None, previous)
        with self._autocast():
            if not self.compiled:
                return self._forward_fn(inp.images, inp.K, inp.T_base_cam, None, previous)
            try:
                return self._forward_fn(inp.images, inp.K, inp.T_base_cam, None, previous)
            except Exception as exc:  # noqa: BLE001 - decide below whether compile is to blame
                out = self.model(inp.images, inp.K, inp.T_base_cam, None,
                                 previous)  # raises if eager fails
                LOG.warning("the compiled network failed (%s: %s) where the eager one works; "
                            "torch.compile is now off for this engine", type(exc).__name__, exc)
                self._forward_fn = self.model
                self.compiled = False
                return out

    def warmup(self, iters: int, num_views: int) -> float:
        """Run `iters` full inferences on dummy views; returns the seconds it took."""
        t0 = time.perf_counter()
        if iters > 0:
            views = dummy_views(num_views, self.image_size)
            for _ in range(iters):
                self.infer(views)
        return time.perf_counter() - t0

    def describe(self) -> dict[str, Any]:
        """Device, precision, preset, weights and options, for logs and diagnostics."""
        if self.device.type == "cuda":
            name = torch.cuda.get_device_name(self.device)
        else:
            name = f"{cpu_name()} ({torch.get_num_threads()} torch threads)"
        out: dict[str, Any] = {
            "device": str(self.device), "device_name": name,
            "precision": self.cfg.precision, "preset": self.cfg.preset,
            "weights": self.weights_source, "image_size": list(self.image_size),
            "grid_dims": list(self.grid.dims), "channels_last": self.cfg.channels_last,
            "compiled": self.compiled, "output_resolution": self.cfg.output_resolution,
            "backend": self.cfg.backend, "torch": torch.__version__}
        if self.device.type == "cpu":  # the vector unit torch's kernels dispatch to
            out["cpu_capability"] = str(torch.backends.cpu.get_cpu_capability())
        if self.onnx is not None:
            out.update(onnx_file=self.onnx.path, onnx_providers=list(self.onnx.providers))
        return out

    # ------------------------------------------------------------------ the hot path
    def infer(self, views: Sequence[ViewInput], *, T_odom_base: np.ndarray | None = None,
              stamp_ns: int | None = None) -> Prediction:
        """Depth for every view and the occupancy volume of one set of views.

        Args:
            views: 1..N views in any order and of any sizes (missing cameras are simply left
                out; the network takes any number of views).
            T_odom_base: (4, 4) pose of base_link in odom at this set (odometry), for
                weights with a temporal cost volume; None = do not match against the
                previous set (and forget it).
            stamp_ns: the set's stamp, int nanoseconds (a stamp going backwards forgets
                the previous set).

        Returns:
            A Prediction (numpy arrays on the host) with per-stage timings in seconds.

        Raises:
            ValueError: a view is malformed (names the view and the field).
            InferenceError: the device work failed (e.g. CUDA out of memory); the set can be
                dropped and the next one tried.
        """
        t_start = time.perf_counter()
        check_views(views)
        timer = _StageTimer(self.device)
        # the caller's thread may have another current CUDA device (e.g. a ROS worker thread)
        on_device = torch.cuda.device(self.device) if timer.cuda else nullcontext()
        try:
            with on_device, torch.inference_mode():
                timer.mark("start")
                inp = self.preprocessor(views)
                previous = (self.previous.previous_for(inp.names, T_odom_base, stamp_ns)
                            if self.temporal else None)
                timer.mark("preprocess")
                out = self._run_network(inp, previous)
                if self.temporal:
                    self.previous.store(inp.names, out.match_features, inp.K, inp.T_base_cam,
                                        T_odom_base, stamp_ns)
                timer.mark("forward")
                host, copies = self._postprocess(inp, out)
                last = timer.mark("postprocess")
                copies.wait(last if timer.cuda else None)  # the one host synchronisation
        except Exception as exc:
            self.previous.reset()
            names = [v.name for v in views]
            raise InferenceError(f"inference failed on {len(views)} view(s) {names} on "
                                 f"{self.device} ({self.cfg.precision}): "
                                 f"{type(exc).__name__}: {exc}") from exc
        t_host = time.perf_counter()
        pred = self._to_prediction(inp, host, views)
        timings = timer.seconds()
        if timer.cuda:  # host-side assembly after the synchronisation
            timings["postprocess"] += time.perf_counter() - t_host
        timings["total"] = time.perf_counter() - t_start
        pred.timings = timings
        return pred

    def _postprocess(self, inp: NetworkInput, out: Any) -> tuple[dict[str, Any], HostCopy]:
        """Depth policy, input-size depth, probabilities; queue the device -> host copies."""
        lo, hi = self.depth_range
        depth = apply_depth_policy(out.depth[0], inp.valid, min_depth=lo, max_depth=hi,
                                   out_of_range=self.cfg.out_of_range)  # (V, h, w)
        copies = HostCopy(self.device)
        occupancy = torch.sigmoid(out.occupancy_logits[0].float())  # (X, Y, Z)
        observed = out.occupancy_observed[0].bool()  # (X, Y, Z)
        host: dict[str, Any] = {
            "depth": copies.add(depth),
            "occupancy": copies.add(occupancy),
            "observed": copies.add(observed),
        }
        if copies.cuda:  # kept on the device for the fusion (not copies: no wait needed)
            host["occupancy_device"], host["observed_device"] = occupancy, observed
        conf = None
        if getattr(out, "confidence", None) is not None:  # NaN where the depth is NaN
            # depth * 0 is 0 where the depth is finite and NaN where not (NaN, inf): two
            # elementwise ops instead of isfinite + where (~7x slower on the CPU)
            conf = depth.mul(0.0).add_(out.confidence[0].float())
            host["confidence"] = copies.add(conf)
        if self.cfg.output_resolution == "input":
            host["depth_input"] = [
                copies.add(resize_depth_to_input(depth[i], plan,
                                                 mode=self.cfg.depth_interpolation))
                for i, plan in enumerate(inp.plans)]
            if conf is not None:
                host["confidence_input"] = [
                    copies.add(resize_depth_to_input(conf[i], plan,
                                                     mode=self.cfg.depth_interpolation))
                    for i, plan in enumerate(inp.plans)]
        if self.cfg.return_images:
            rgb = (inp.images[0].float() * 255.0).round_().clamp_(0, 255).to(torch.uint8)
            host["images"] = copies.add(rgb.permute(0, 2, 3, 1))  # (V, h, w, 3)
        return host, copies

    def _to_prediction(self, inp: NetworkInput, host: dict[str, Any],
                       views: Sequence[ViewInput]) -> Prediction:
        """Numpy views of the landed host tensors, wrapped in a Prediction."""
        pred = Prediction(
            camera_names=list(inp.names),
            depth=host["depth"].numpy(),
            cameras=[p.net_camera for p in inp.plans],
            occupancy=host["occupancy"].numpy(),
            observed=host["observed"].numpy(),
            grid=self.grid,
            T_base_cam=inp.T_base_cam_np)
        if "depth_input" in host:
            pred.depth_input = [t.numpy() for t in host["depth_input"]]
            pred.cameras_input = [v.camera for v in views]
        if "images" in host:
            pred.images = np.ascontiguousarray(host["images"].numpy())
        if "confidence" in host:
            pred.confidence = host["confidence"].numpy()
        if "confidence_input" in host:
            pred.confidence_input = [t.numpy() for t in host["confidence_input"]]
        pred.occupancy_device = host.get("occupancy_device")
        pred.observed_device = host.get("observed_device")
        return pred


def benchmark_forward(engine: InferenceEngine, views: Sequence[ViewInput],
                      iters: int = 20, *, warmup: int = 2) -> dict[str, Any]:
    """Median and p95 seconds per stage of `engine.infer(views)` over `iters` runs.

    Args:
        engine: a ready engine.
        views: the set to run repeatedly.
        iters: timed runs (>= 1).
        warmup: untimed runs first.

    Returns:
        {'preprocess' | 'forward' | 'postprocess' | 'total': {'median', 'p95', 'mean'}
        (seconds), 'iters', 'num_views', 'engine' (engine.describe())}.
    """
    if iters < 1:
        raise ValueError(f"benchmark iters must be >= 1, got {iters}")
    for _ in range(max(0, warmup)):
        engine.infer(views)
    runs = [engine.infer(views).timings for _ in range(iters)]
    result: dict[str, Any] = {}
    for stage in (*STAGES, "total"):
        values = np.array([r[stage] for r in runs], dtype=np.float64)
        result[stage] = {"median": float(np.median(values)),
                         "p95": float(np.percentile(values, 95)),
                         "mean": float(values.mean())}
    result.update(iters=iters, num_views=len(views), engine=engine.describe())
    return result
