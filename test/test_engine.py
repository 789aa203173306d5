"""Tests of inference/engine.py with a tiny network and real weights files on tmp_path."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from depth_any_view.config import ConfigError
from depth_any_view.geometry.camera import PinholeCamera
from depth_any_view.inference import engine as engine_mod
from depth_any_view.inference.engine import (
    EngineConfig,
    InferenceEngine,
    InferenceError,
    benchmark_forward,
    dummy_views,
)
from depth_any_view.inference.preprocess import ViewInput
from depth_any_view.model.config import load_model_config
from depth_any_view.model.network import DepthAnyViewNet
from depth_any_view.model.weights import WeightsError, save_weights

TINY = {"image_size": (32, 32), "hidden": 32, "layers": 1, "grid_dims": (8, 8, 8)}
NAMES = ["front", "front_left", "front_right", "back", "back_left", "back_right"]


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random weights of a tiny 'lite' variant, written with the real save path."""
    cfg = replace(load_model_config("lite"), **TINY)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    return save_weights(DepthAnyViewNet(cfg), cfg, path)


@pytest.fixture(scope="module")
def engine(tiny_weights: Path) -> InferenceEngine:
    """A CPU engine on the tiny weights, depth at the input resolution."""
    return InferenceEngine(EngineConfig(weights=str(tiny_weights), preset="lite",
                                        model_overrides=dict(TINY), device="cpu",
                                        warmup_iters=0))


def _distorted(width: int, height: int) -> PinholeCamera:
    """A plumb_bob camera with mild barrel distortion."""
    f = 0.6 * width
    K = [f, 0, width / 2 - 1.0, 0, f, height / 2 + 1.0, 0, 0, 1]
    return PinholeCamera.from_camera_info(width, height, "plumb_bob",
                                          [-0.2, 0.04, 0.0, 0.001, 0.0], K,
                                          np.eye(3).ravel(), np.zeros(12))


def _views(sizes: list[tuple[int, int]], names: list[str], seed: int = 0,
           distort: bool = False) -> list[ViewInput]:
    """Views of the warm-up ring geometry with random images of the given (H, W) sizes."""
    rng = np.random.default_rng(seed)
    ring = dummy_views(len(sizes), (8, 8))
    views = []
    for name, (h, w), base in zip(names, sizes, ring):
        cam = _distorted(w, h) if distort else PinholeCamera.from_fov(w, h, np.radians(80))
        rgb = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        views.append(ViewInput(name, rgb, cam, base.T_base_cam))
    return views


def _check_prediction(pred, views: list[ViewInput], engine: InferenceEngine) -> None:
    """Shapes, dtypes and cameras of a prediction for `views`."""
    V, (h, w) = len(views), engine.image_size
    assert pred.camera_names == [v.name for v in views]
    assert pred.depth.shape == (V, h, w) and pred.depth.dtype == np.float32
    X, Y, Z = engine.grid.dims
    assert pred.occupancy.shape == (X, Y, Z) and pred.occupancy.dtype == np.float32
    assert pred.observed.shape == (X, Y, Z) and pred.observed.dtype == np.bool_
    assert np.all((pred.occupancy >= 0) & (pred.occupancy <= 1))
    assert pred.grid == engine.grid and pred.T_base_cam.shape == (V, 4, 4)
    assert np.isfinite(pred.depth).mean() > 0.5
    finite = pred.depth[np.isfinite(pred.depth)]
    lo, hi = engine.depth_range
    assert finite.min() >= lo and finite.max() <= hi
    for i, v in enumerate(views):
        assert pred.cameras[i].width == w and pred.cameras[i].height == h
        assert pred.depth_input[i].shape == v.rgb.shape[:2]
        assert pred.depth_input[i].dtype == np.float32
        assert pred.cameras_input[i] is v.camera
    assert set(pred.timings) == {"preprocess", "forward", "postprocess", "total"}
    assert all(t >= 0 for t in pred.timings.values())


def test_six_views_of_one_size(engine: InferenceEngine) -> None:
    views = _views([(48, 64)] * 6, NAMES)
    _check_prediction(engine.infer(views), views, engine)


def test_four_views_of_different_sizes(engine: InferenceEngine) -> None:
    # two cameras missing from the set, the others at different resolutions
    views = _views([(48, 64), (30, 40), (64, 48), (20, 20)], NAMES[:4], seed=1)
    _check_prediction(engine.infer(views), views, engine)


def test_outputs_are_deterministic(engine: InferenceEngine) -> None:
    views = _views([(40, 40)] * 3, NAMES[:3], seed=2)
    a, b = engine.infer(views), engine.infer(views)
    np.testing.assert_array_equal(a.depth, b.depth)
    np.testing.assert_array_equal(a.occupancy, b.occupancy)
    np.testing.assert_array_equal(a.observed, b.observed)
    for x, y in zip(a.depth_input, b.depth_input):
        np.testing.assert_array_equal(x, y)


def test_input_depth_matches_its_camera_info(engine: InferenceEngine) -> None:
    # Each input pixel back-projected with the input camera (distortion included) lands on
    # the network pixel its depth came from (nearest resizing copies depth exactly).
    views = _views([(60, 80), (45, 60)], NAMES[:2], seed=3, distort=True)
    pred = engine.infer(views)
    for i in range(2):
        depth, cam = pred.view_depth(i)
        assert cam is views[i].camera and depth.shape == (cam.height, cam.width)
        info = cam.camera_info_fields()
        assert (info["width"], info["height"]) == (depth.shape[1], depth.shape[0])
        valid = np.isfinite(depth)
        assert valid.mean() > 0.5
        p = cam.depth_to_points(depth)[valid]  # (N, 3) metres in the optical frame
        uv, ok = pred.cameras[i].project(p)
        assert ok.all()
        ui, vi = np.rint(uv[:, 0]).astype(int), np.rint(uv[:, 1]).astype(int)
        on_centre = np.all(np.abs(uv - np.rint(uv)) < 0.45, axis=1)  # away from ties
        np.testing.assert_allclose(pred.depth[i][vi, ui][on_centre], depth[valid][on_centre],
                                   rtol=1e-5)


def test_network_resolution_output_and_images(tiny_weights: Path) -> None:
    eng = InferenceEngine(EngineConfig(weights=str(tiny_weights), preset=None, device="cpu",
                                       warmup_iters=0, output_resolution="network",
                                       return_images=True, channels_last=False))
    views = _views([(32, 32), (64, 64)], NAMES[:2], seed=4)
    pred = eng.infer(views)
    assert pred.depth_input is None and pred.cameras_input is None
    depth, cam = pred.view_depth("front_left")
    assert depth.shape == (32, 32) and cam.width == 32
    assert pred.images.shape == (2, 32, 32, 3) and pred.images.dtype == np.uint8
    np.testing.assert_array_equal(pred.images[0], views[0].rgb)  # same size: unchanged


def test_weights_for_another_preset_are_rejected(tiny_weights: Path) -> None:
    with pytest.raises(WeightsError, match="another model configuration.*image_size"):
        InferenceEngine(EngineConfig(weights=str(tiny_weights), preset="lite", device="cpu",
                                     warmup_iters=0))


def test_corrupt_and_missing_weights_fail_first(tmp_path: Path) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00\x01 not a safetensors file" * 10)
    # device 'cuda' would also fail on a CPU machine: the weights error must come first
    with pytest.raises(WeightsError, match="not a valid safetensors file"):
        InferenceEngine(EngineConfig(weights=str(bad), device="cuda", warmup_iters=0))
    with pytest.raises(WeightsError, match="does not exist"):
        InferenceEngine(EngineConfig(weights=str(tmp_path / "none.safetensors"),
                                     device="cuda", warmup_iters=0))


def test_missing_shipped_weights_say_how_to_proceed(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_mod, "default_weights_path",
                        lambda preset="lite": tmp_path / f"{preset}.safetensors")
    with pytest.raises(WeightsError, match="shipped weights of preset 'lite'.*random_init"):
        InferenceEngine(EngineConfig(device="cpu", warmup_iters=0))


def test_shipped_weights_are_used_by_default(tiny_weights: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_mod, "default_weights_path", lambda preset="lite": tiny_weights)
    eng = InferenceEngine(EngineConfig(preset="lite", model_overrides=dict(TINY), device="cpu",
                                       warmup_iters=0))
    assert eng.weights_source == str(tiny_weights)


def test_random_init_warns_and_is_seeded(caplog: pytest.LogCaptureFixture) -> None:
    cfg = EngineConfig(random_init=True, model_overrides=dict(TINY), device="cpu",
                       warmup_iters=0, seed=5)
    with caplog.at_level(logging.WARNING, logger=engine_mod.__name__):
        a = InferenceEngine(cfg)
    assert "RANDOMLY INITIALISED" in caplog.text and a.weights_source == "random"
    b = InferenceEngine(cfg)
    views = _views([(32, 32)] * 2, NAMES[:2])
    np.testing.assert_array_equal(a.infer(views).depth, b.infer(views).depth)


def test_precision_and_device_errors_are_clear(tiny_weights: Path) -> None:
    with pytest.raises(ConfigError, match="'fp16'.*CPU"):
        InferenceEngine(EngineConfig(weights=str(tiny_weights), preset=None, device="cpu",
                                     precision="fp16", warmup_iters=0))
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="'device' is 'cuda' but CUDA is not available"):
            InferenceEngine(EngineConfig(weights=str(tiny_weights), preset=None,
                                         device="cuda", warmup_iters=0))


@pytest.mark.parametrize(("field", "value", "allowed"), [
    ("precision", "fp8", "fp32, fp16, bf16"),
    ("device", "tpu", "auto, cuda, cuda:N, cpu"),
    ("output_resolution", "full", "input, network"),
    ("depth_interpolation", "cubic", "nearest, bilinear"),
    ("warmup_iters", -1, "integer >= 0"),
    ("depth_range", (5.0, 1.0), "0 <= min < max"),
    ("compile_mode", "fast", "reduce-overhead"),
])
def test_config_validation_names_field_and_values(field: str, value: object,
                                                  allowed: str) -> None:
    with pytest.raises(ConfigError, match=f"'{field}'.*{allowed}"):
        EngineConfig(**{field: value}).validate()


def test_config_conflicts_and_unknown_overrides(tiny_weights: Path) -> None:
    with pytest.raises(ConfigError, match="'random_init' and 'weights'"):
        EngineConfig(weights=str(tiny_weights), random_init=True).validate()
    with pytest.raises(ConfigError, match="unknown ModelConfig field.*'hiden'"):
        InferenceEngine(EngineConfig(random_init=True, model_overrides={"hiden": 3},
                                     device="cpu", warmup_iters=0))


def test_warmup_runs_at_the_configured_number_of_views(tiny_weights: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    infer = InferenceEngine.infer

    def counting(self: InferenceEngine, views: list[ViewInput]):
        calls.append(len(views))
        return infer(self, views)

    monkeypatch.setattr(InferenceEngine, "infer", counting)
    eng = InferenceEngine(EngineConfig(weights=str(tiny_weights), preset=None, device="cpu",
                                       warmup_iters=3, warmup_views=5))
    assert calls == [5, 5, 5] and eng.warmup_seconds > 0


def test_forward_failure_becomes_inference_error(engine: InferenceEngine) -> None:
    views = _views([(32, 32)] * 2, NAMES[:2])

    def oom(*args: object) -> None:
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    engine._forward_fn = oom
    try:
        with pytest.raises(InferenceError, match="out of memory") as info:
            engine.infer(views)
        assert isinstance(info.value.__cause__, RuntimeError)
    finally:
        engine._forward_fn = engine.model
    assert engine.infer(views).depth.shape[0] == 2  # the next set goes through


def test_compile_failures_fall_back_to_eager(tiny_weights: Path, monkeypatch: pytest.MonkeyPatch,
                                             caplog: pytest.LogCaptureFixture) -> None:
    def broken_compiled(model: torch.nn.Module, **kwargs: object):
        def run(*args: object) -> None:
            raise RuntimeError("inductor: no working C++ compiler")
        return run

    cfg = EngineConfig(weights=str(tiny_weights), preset=None, device="cpu", compile=True,
                       warmup_iters=1, warmup_views=2)
    monkeypatch.setattr(torch, "compile", broken_compiled)
    with caplog.at_level(logging.WARNING, logger=engine_mod.__name__):
        eng = InferenceEngine(cfg)
    assert not eng.compiled and "compiled network failed" in caplog.text

    def no_compile(model: torch.nn.Module, **kwargs: object) -> None:
        raise RuntimeError("torch.compile is not supported on this platform")

    monkeypatch.setattr(torch, "compile", no_compile)
    eng = InferenceEngine(cfg)
    assert not eng.compiled
    assert eng.infer(_views([(32, 32)], NAMES[:1])).depth.shape == (1, 32, 32)


def test_bf16_on_cpu_when_supported(tiny_weights: Path, engine: InferenceEngine) -> None:
    try:
        eng = InferenceEngine(EngineConfig(weights=str(tiny_weights), preset=None,
                                           device="cpu", precision="bf16", warmup_iters=0))
    except ConfigError as exc:
        pytest.skip(f"bf16 autocast unsupported here: {exc}")
    views = _views([(40, 40)] * 3, NAMES[:3], seed=6)
    pred, ref = eng.infer(views), engine.infer(views)
    assert pred.depth.dtype == np.float32 and pred.occupancy.dtype == np.float32
    both = np.isfinite(pred.depth) & np.isfinite(ref.depth)
    assert both.mean() > 0.5
    rel = np.abs(pred.depth[both] - ref.depth[both]) / ref.depth[both]
    assert np.median(rel) < 0.05


def test_benchmark_forward_reports_median_and_p95(engine: InferenceEngine) -> None:
    result = benchmark_forward(engine, _views([(32, 32)] * 2, NAMES[:2]), iters=3, warmup=0)
    for stage in ("preprocess", "forward", "postprocess", "total"):
        assert 0 <= result[stage]["median"] <= result[stage]["p95"]
    assert result["iters"] == 3 and result["num_views"] == 2
    assert result["engine"]["device"] == "cpu"
    with pytest.raises(ValueError, match="iters"):
        benchmark_forward(engine, [], iters=0)


def test_confidence_head_gives_confidence_registered_with_depth(tmp_path: Path) -> None:
    cfg = replace(load_model_config("lite"), **TINY, confidence=True)
    torch.manual_seed(1)
    path = save_weights(DepthAnyViewNet(cfg), cfg, tmp_path / "conf.safetensors")
    eng = InferenceEngine(EngineConfig(weights=str(path), preset="lite",
                                       model_overrides={**TINY, "confidence": True},
                                       device="cpu", warmup_iters=0))
    views = _views([(48, 64), (40, 40)], NAMES[:2], distort=True)
    pred = eng.infer(views)
    assert pred.confidence.shape == pred.depth.shape and pred.confidence.dtype == np.float32
    assert np.array_equal(np.isnan(pred.confidence), np.isnan(pred.depth))
    ok = np.isfinite(pred.confidence)
    assert np.all((pred.confidence[ok] > 0) & (pred.confidence[ok] <= 1))
    for i, v in enumerate(views):
        conf = pred.view_confidence(v.name)
        assert conf.shape == v.rgb.shape[:2]
        assert np.array_equal(np.isnan(conf), np.isnan(pred.view_depth(i)[0]))


def test_no_confidence_without_the_head(tmp_path: Path) -> None:
    cfg = replace(load_model_config("lite"), **TINY, confidence=False)
    path = save_weights(DepthAnyViewNet(cfg), cfg, tmp_path / "plain.safetensors")
    eng = InferenceEngine(EngineConfig(weights=str(path), preset=None, device="cpu",
                                       warmup_iters=0))
    pred = eng.infer(_views([(48, 64)], NAMES[:1]))
    assert pred.confidence is None and pred.view_confidence(0) is None


def test_temporal_cost_volume_uses_the_previous_set_only_when_it_may(tmp_path: Path) -> None:
    """Weights with cost_temporal: the previous set changes depth when the base moved and a
    pose is given; no pose, a stamp going backwards or a long gap leaves it out."""
    over = {**TINY, "cost_volume": True, "cost_temporal": True, "cost_hypotheses": 8,
            "cost_channels": 8, "cost_groups": 2}
    cfg = replace(load_model_config("lite"), **over)
    torch.manual_seed(2)
    net = DepthAnyViewNet(cfg)
    for m in (net.cost_tokens, net.depth_head.cost_proj):  # zero at init: make them count
        torch.nn.init.normal_(m.weight, std=0.3)
    torch.nn.init.normal_(net.depth_head.out_logit.weight, std=0.5)
    path = save_weights(net, cfg, tmp_path / "temporal.safetensors")
    eng = InferenceEngine(EngineConfig(weights=str(path), preset="lite", model_overrides=over,
                                       device="cpu", warmup_iters=0))
    assert eng.temporal
    views = _views([(32, 32)], NAMES[:1])
    alone = eng.infer(views).depth
    moved = np.eye(4)
    moved[0, 3] = 0.5  # the base drove 0.5 m forward between the sets
    eng.infer(views, T_odom_base=np.eye(4), stamp_ns=1_000_000_000)
    assert eng.previous.has_previous
    second = eng.infer(views, T_odom_base=moved, stamp_ns=1_100_000_000).depth
    assert np.nanmax(np.abs(second - alone)) > 1e-3
    back = eng.infer(views, T_odom_base=np.eye(4), stamp_ns=1_000_000_000).depth  # loop
    np.testing.assert_allclose(back, alone, atol=1e-5)
    late = eng.infer(views, T_odom_base=moved, stamp_ns=5_000_000_000).depth  # 4 s later
    np.testing.assert_allclose(late, alone, atol=1e-5)
    eng.infer(views)  # no pose: the previous set is forgotten
    assert not eng.previous.has_previous
