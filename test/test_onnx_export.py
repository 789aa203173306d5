"""ONNX export and the ONNX Runtime backend against the torch network (issue 23).

The exported graph must give the torch network's depth, confidence and occupancy within
1e-3 relative on the same inputs: for a tiny network (with a masked view), for a tiny
network with a temporal cost volume (with and without a previous set), and for the shipped
lite weights at two views. The engine with backend onnxruntime gives the torch backend's
Prediction, also for a set with fewer views than exported, and bad options fail with a
line naming the option. Exports go to a per-session cache folder (XDG_CACHE_HOME).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from test_model_network import TINY, net_for, ring_inputs

from depth_any_view.config import ConfigError
from depth_any_view.inference.engine import EngineConfig, InferenceEngine, dummy_views
from depth_any_view.inference.onnx_backend import OnnxNetwork, resolve_providers
from depth_any_view.inference.onnx_export import (
    OUTPUTS,
    PREVIOUS_INPUTS,
    export_onnx,
    parse_hw,
)
from depth_any_view.model.network import PreviousSet

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

RTOL = 1e-3  # relative agreement the issue asks for
CPU = ["CPUExecutionProvider"]


@pytest.fixture(scope="module", autouse=True)
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The engine's export cache in a folder of this module (not ~/.cache)."""
    folder = tmp_path_factory.mktemp("xdg_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(folder))
        yield folder


def assert_close(got: np.ndarray, want: torch.Tensor, name: str) -> None:
    """|got - want| <= RTOL * max|want| (a relative agreement over the tensor)."""
    want = want.detach().float().numpy()
    scale = max(float(np.abs(want).max()), 1e-6)
    err = float(np.abs(got - want).max()) / scale
    assert err <= RTOL, f"{name}: relative error {err:.2e} > {RTOL}"


def run(net: OnnxNetwork, images, K, T, mask, previous=None):
    """The ONNX outputs of one set, as the backend returns them (a ModelOutput)."""
    return net(images, K, T, mask, previous)


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory: pytest.TempPathFactory):
    """A tiny network with a confidence head and its export for three views."""
    model = net_for(replace(TINY, confidence=True))
    path = tmp_path_factory.mktemp("tiny") / "tiny.onnx"
    return model, path, export_onnx(model, path, views=3)


def test_tiny_export_matches_torch_with_and_without_a_masked_view(tiny_export) -> None:
    model, path, spec = tiny_export
    assert spec.outputs == ("depth", "confidence", "occupancy_logits", "occupancy_observed")
    net = OnnxNetwork(path, providers=CPU, threads=1)
    assert net.spec == spec and net.views == 3
    images, K, T = ring_inputs(1, 3)
    for mask in (torch.ones(1, 3, dtype=torch.bool), torch.tensor([[True, False, True]])):
        with torch.inference_mode():
            want = model(images, K, T, mask)
        got = run(net, images, K, T, mask)
        for name in ("depth", "confidence", "occupancy_logits"):
            assert_close(getattr(got, name).numpy(), getattr(want, name), name)
        assert torch.equal(got.occupancy_observed, want.occupancy_observed)
    # fewer views than exported: padded with masked views, cut back
    with torch.inference_mode():
        want = model(images[:, :2], K[:, :2], T[:, :2])
    got = run(net, images[:, :2], K[:, :2], T[:, :2], None)
    assert got.depth.shape == (1, 2, 64, 64)
    assert_close(got.depth.numpy(), want.depth, "depth of 2 of 3 views")
    with pytest.raises(ValueError, match="exported for 3"):
        run(net, *ring_inputs(1, 4), None)


@pytest.mark.slow
@pytest.mark.parametrize("geometry", [False, True], ids=["learned", "photometric+ground"])
def test_temporal_export_takes_the_previous_set_or_none(tmp_path: Path, geometry: bool) -> None:
    cfg = replace(TINY, cost_volume=True, cost_temporal=True, cost_hypotheses=8,
                  cost_channels=8, cost_groups=2, cost_photometric=geometry,
                  cost_photo_window=6, ground_embedding=geometry)
    model = net_for(cfg)
    torch.nn.init.normal_(model.cost_tokens.weight, std=0.5)  # zero at init: the cost
    #                                                           volume would change nothing
    if geometry:  # the same for the photometric and ground-plane layers
        torch.nn.init.normal_(model.cost.photo_encode.weight, std=0.5)
        for mlp in model.ground.mlps.values():
            torch.nn.init.normal_(mlp[-1].weight, std=0.5)
    spec = export_onnx(model, tmp_path / "temporal.onnx", views=2)
    assert spec.inputs[-len(PREVIOUS_INPUTS):] == PREVIOUS_INPUTS and spec.temporal
    assert spec.outputs[-1] == "match_features"
    net = OnnxNetwork(tmp_path / "temporal.onnx", providers=CPU, threads=1)
    images, K, T = ring_inputs(1, 2, seed=1)
    with torch.inference_mode():
        first = model(images, K, T)
        motion = torch.eye(4)[None].clone()
        motion[0, 0, 3] = -0.4  # the base drove 0.4 m forward
        prev = PreviousSet(first.match_features, K, T, motion, torch.ones(1, 2, dtype=torch.bool))
        images2 = images.roll(3, dims=-1)
        second = model(images2, K, T, None, prev)
    got_first = run(net, images, K, T, None)  # no previous set: prev_valid all False
    got_second = run(net, images2, K, T, None, prev)
    for got, want in ((got_first, first), (got_second, second)):
        for name in ("depth", "occupancy_logits", "match_features"):
            assert_close(getattr(got, name).numpy(), getattr(want, name), name)
    # the previous set really is used (else the check above proves nothing)
    with torch.inference_mode():
        alone = model(images2, K, T)
    assert not torch.allclose(alone.depth, second.depth, rtol=RTOL)


@pytest.fixture(scope="module")
def engines() -> tuple[InferenceEngine, InferenceEngine]:
    """The shipped lite weights on both backends, for two views (one cached export)."""
    common = dict(warmup_iters=0, warmup_views=2, threads=1)
    return (InferenceEngine(EngineConfig(**common)),
            InferenceEngine(EngineConfig(**common, backend="onnxruntime")))


def test_lite_weights_export_matches_torch(engines) -> None:
    torch_engine, onnx_engine = engines
    model, net = torch_engine.model, onnx_engine.onnx
    assert net.spec.outputs == tuple(n for n in OUTPUTS if n != "match_features")
    H, W = torch_engine.image_size
    images = torch.rand(1, 2, 3, H, W, generator=torch.Generator().manual_seed(5))
    _, K, T = ring_inputs(1, 2, size=W)
    with torch.inference_mode():
        want = model(images, K, T)
    got = run(net, images, K, T, None)
    for name in ("depth", "confidence", "occupancy_logits"):
        assert_close(getattr(got, name).numpy(), getattr(want, name), name)
    agree = (got.occupancy_observed == want.occupancy_observed).float().mean()
    assert agree > 0.999  # voxel centres exactly on an image border may flip


def test_engine_onnxruntime_gives_the_torch_prediction(engines) -> None:
    torch_engine, onnx_engine = engines
    assert onnx_engine.describe()["backend"] == "onnxruntime"
    assert onnx_engine.describe()["onnx_providers"] == CPU
    views = dummy_views(2, (96, 160), seed=4)
    for subset in (views, views[1:]):  # a full set and one camera missing
        a, b = torch_engine.infer(subset), onnx_engine.infer(subset)
        assert b.camera_names == a.camera_names
        np.testing.assert_allclose(b.depth, a.depth, rtol=RTOL)
        for da, db in zip(a.depth_input, b.depth_input):
            assert db.shape == da.shape == (96, 160)
            np.testing.assert_allclose(db, da, rtol=RTOL)
        np.testing.assert_allclose(b.confidence, a.confidence, rtol=RTOL, atol=1e-5)
        np.testing.assert_allclose(b.occupancy, a.occupancy, atol=1e-3)
        assert set(b.timings) == set(a.timings)


def test_the_engine_reuses_its_cached_export(engines, onnx_cache: Path) -> None:
    files = sorted((onnx_cache / "depth_any_view" / "onnx").glob("*.onnx"))
    assert [f.name.split("_")[3] for f in files] == ["2v"]
    again = InferenceEngine(EngineConfig(warmup_iters=0, warmup_views=2, threads=1,
                                         backend="onnxruntime"))
    assert again.onnx.path == str(files[0])


@pytest.mark.parametrize("changes, message", [
    ({"backend": "onnx"}, "inference option 'backend' is 'onnx'; allowed: torch, onnxruntime"),
    ({"onnx_file": "/nonexistent/model.onnx"},
     "inference option 'onnx_file' is '/nonexistent/model.onnx', which does not exist"),
    ({"onnx_providers": ("CudaProvider",)},
     "inference option 'onnx_providers' names 'CudaProvider'"),
    ({"precision": "bf16"}, "set precision 'fp32'"),
])
def test_bad_backend_options_name_the_option(changes: dict, message: str) -> None:
    cfg = EngineConfig(**{"warmup_iters": 0, "backend": "onnxruntime", **changes})
    with pytest.raises(ConfigError) as info:
        InferenceEngine(cfg)
    assert message in str(info.value)


def test_an_export_of_another_network_is_refused(tiny_export) -> None:
    cfg = EngineConfig(warmup_iters=0, backend="onnxruntime", onnx_file=str(tiny_export[1]))
    with pytest.raises(ConfigError, match="exported from another model configuration"):
        InferenceEngine(cfg)


def test_missing_providers_fall_back_to_the_cpu(caplog: pytest.LogCaptureFixture) -> None:
    assert resolve_providers(["cpu"]) == CPU
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("CUDA is present: nothing to fall back from")
    assert resolve_providers(["cuda", "TensorrtExecutionProvider"]) == CPU
    assert "CUDAExecutionProvider is not available" in caplog.text


def test_parse_size() -> None:
    assert parse_hw("96x128") == (96, 128)
    for bad in ("96", "100x128", "x", "0x32"):
        with pytest.raises(ValueError):
            parse_hw(bad)


def test_cli_export_writes_a_file_the_backend_runs(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    from helpers import write_tiny_network

    from depth_any_view.cli import main
    from depth_any_view.model.network import DepthAnyViewNet
    from depth_any_view.model.weights import load_weights

    weights = write_tiny_network(tmp_path, seed=2)["weights"]
    out = tmp_path / "tiny.onnx"
    assert main(["export", "--onnx", str(out), "--views", "1", "--size", "64x96",
                 "--weights", str(weights)]) == 0
    assert "1 views at 64x96" in capsys.readouterr().out
    net = OnnxNetwork(out, providers=CPU, threads=1)
    assert (net.views, net.spec.image_size) == (1, (64, 96))
    state, cfg, _ = load_weights(weights)
    model = DepthAnyViewNet(cfg).eval()
    model.load_state_dict(state)
    images, K, T = ring_inputs(1, 1, size=64)
    images = torch.nn.functional.pad(images, (16, 16))  # (1, 1, 3, 64, 96)
    K = K.clone()
    K[..., 0, 2] += 16
    with torch.inference_mode():
        want = model(images, K, T)
    got = run(net, images, K, T, None)
    assert_close(got.depth.numpy(), want.depth, "depth")
    assert main(["export", "--onnx", str(out), "--size", "100x96"]) == 2
    assert main(["export", "--onnx", str(out), "--weights", str(tmp_path / "no.st")]) == 2
    assert "does not exist" in capsys.readouterr().err
