"""Tests of depth_any_view/bench: the quick mode at tiny sizes, the parts it is made of.

Structure and sanity only (every figure present, positive and finite, the baselines equal
to the project's conversions, the report written); never speed: that is what the
benchmark itself is for.
"""

from __future__ import annotations

import json
import math
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from depth_any_view.bench import common, cpu
from depth_any_view.bench.compare import compile_ratios, precision_ratios
from depth_any_view.bench.dds import DdsOptions, expected_groups, marker_expectation
from depth_any_view.bench.odometry import SOURCES as ODOMETRY_SOURCES
from depth_any_view.bench.odometry import bench_odometry
from depth_any_view.bench.report import _precision_label
from depth_any_view.bench.run import (
    BenchOptions,
    evaluate_targets,
    node_capability_mismatch,
    run_bench,
)
from depth_any_view.bench.stages import MARKER_MAX_VOXELS, STAGES
from depth_any_view.bench.training import bench_training_step, training_batch
from depth_any_view.cli import build_parser, main

TINY = {"image_size": [32, 32], "hidden": 32, "layers": 1, "grid_dims": [8, 8, 8]}
SIZE = (64, 48)  # (width, height) of the synthetic cameras


def _tiny(out: Path, **changes: Any) -> BenchOptions:
    """The quick mode at tiny sizes (network, images, grids, scaling points)."""
    base = dict(out=out, presets=("lite",), devices=("cpu",), model_overrides=dict(TINY),
                size=SIZE, repeats=2, warmup=1, workload_grid=16, scaling_views=(1, 6),
                scaling_sizes=(32, 64), scaling_grids=(8, 16), scaling_repeats=1,
                threads=1, dds_rates=(2.0, 5.0), dds_step_s=1.0, dds_min_sets=3,
                dds_drain_s=1.5, onnx=False, command="test")  # onnx: its own test
    base.update(changes)
    return BenchOptions.quick(**base)


def _positive(summary: dict[str, float], what: str) -> None:
    """A timing summary with finite, positive, ordered figures."""
    for key in ("median", "p95", "mean", "min", "max"):
        assert math.isfinite(summary[key]) and summary[key] > 0, (what, key, summary)
    assert summary["min"] <= summary["median"] <= summary["p95"] <= summary["max"], what
    assert summary["n"] >= 1


def _check_common(result: dict[str, Any], out: Path) -> None:
    """Everything but the DDS part."""
    m = result["machine"]
    assert m["cpu"] and m["logical_cores"] >= 1 and m["torch"] and m["torch_threads"] >= 1
    isa = m["cpu_isa"]  # what the vector units ran: this process's torch, oneDNN's, threads
    assert isa["torch_cpu_capability"] == m["torch_cpu_capability"] == cpu.torch_capability()
    assert isa["isa"] == "default" and isa["torch_threads"] == 1 and isa["usable_cores"] >= 1
    assert isa["model"] and set(isa["isa_env"]) == set(cpu.ISA_VARIABLES)
    if "avx2" in isa["flags"]:  # an x86 CPU with oneDNN: its start-up line was read
        assert isa["onednn_isa"] and "unknown" not in isa["onednn_isa"]
    stages = result["stages"]["cpu"]
    assert list(stages["stages"]) == [s for s in STAGES if s in stages["stages"]]
    assert set(STAGES) - {"publish"} <= set(stages["stages"]) | set(stages["skipped"])
    for name, summary in stages["stages"].items():
        _positive(summary, name)
    assert stages["counts"]["points"] > 0 and stages["counts"]["occupied_voxels"] > 0
    assert stages["counts"]["synchronized_sets"] >= 1
    assert 0 < stages["counts"]["marker_cubes"] <= MARKER_MAX_VOXELS
    if "markers" in stages["stages"]:  # the node's path: serialized bytes
        assert stages["counts"]["marker_bytes"] > 0
    if "publish" in stages["stages"]:
        assert "large_messages" in stages["counts"]  # none over 64 KiB at tiny sizes
    assert 0 < stages["non_network_median_s"] < stages["set_median_s"]
    assert stages["memory"]["peak_rss_mib"] > 0

    rows = {(r["preset"], r["precision"]): r for r in result["forward"]}
    fp32 = rows[("lite", "fp32")]
    for key in ("preprocess_s", "forward_s", "postprocess_s", "total_s"):
        _positive(fp32[key], key)
    assert fp32["network_size"] == [32, 32] and fp32["grid_dims"] == [8, 8, 8]
    assert fp32["hz"] > 0 and fp32["memory"]["peak_rss_mib"] > 0
    assert "skipped" in rows[("lite", "fp16")]  # not on the CPU, and the row says why

    comps = result["comparisons"]["rows"]
    assert len(comps) >= 4
    if not result["comparisons"]["skipped"]:
        assert any(c["what"].startswith("MarkerArray") for c in comps)
    for c in comps:
        assert c["ratio"] is not None and math.isfinite(c["ratio"]) and c["ratio"] > 0, c
        assert c["same_output"] in (True, None), c  # a baseline must do the same work

    for key, values in (("views", (1, 6)), ("size", (32, 64)), ("grid", (8, 16))):
        table = result["scaling"][key]
        assert [r["value"] for r in table["rows"]] == list(values)
        for r in table["rows"]:
            assert "error" not in r, r
            for key in ("mins", "medians"):
                assert all(math.isfinite(v) and v > 0 for k, v in r[key].items()
                           if k != "decode"), (key, r)
            assert r["mins"]["total"] <= r["medians"]["total"]
        assert table["growth"]["total"] is not None and math.isfinite(table["growth"]["total"])
        assert table["growth_text"]["total"] != "n/a"

    odo = result["odometry"]
    assert odo["frames"] == 4 and odo["image_size"] == [32, 32] and not odo["skipped"]
    assert list(odo["rows"]) == list(ODOMETRY_SOURCES)
    for source, summary in odo["rows"].items():
        _positive(summary, source)
    assert odo["rows"]["kiss_icp"]["points"] > 1000  # stride-1 cloud of six 32x32 views
    assert odo["rows"]["open3d_rgbd"]["views"] == 6

    train = result["training"]["rows"]
    assert [(r["preset"], r["batch_size"]) for r in train] == [("lite", 4)]  # the recipe's
    _positive(train[0]["step_s"], "training step")
    assert train[0]["image_size"] == [32, 32] and train[0]["grid_dims"] == [8, 8, 8]
    assert train[0]["flops_per_step"] > 0 and train[0]["memory"]["peak_rss_mib"] > 0

    names = [t["name"] for t in result["targets"]]
    assert len(names) == 3 and all(t["text"] for t in result["targets"])
    assert result["targets"][0]["met"] in (True, False)
    assert result["targets"][2]["met"] is None  # no GPU target without CUDA

    js = json.loads((out / "bench.json").read_text())
    assert js["stages"]["cpu"]["stages"]["forward"]["median"] > 0
    md = (out / "bench.md").read_text()
    assert "| `kiss_icp` |" in md and "| `open3d_rgbd` |" in md  # the odometry table
    assert f"- vector ISA in force: {isa['model']}: torch dispatches to " in md
    assert "- threads: torch 1 intra-op" in md
    for heading in ("## Targets", "## Per-stage latency", "## Cameras-only odometry",
                    "## Training step", "## Network forward",
                    "## Comparisons", "## Scaling", "## End to end over DDS", "## Memory"):
        assert heading in md


def test_quick_bench_without_dds(tmp_path: Path) -> None:
    result = run_bench(_tiny(tmp_path, dds=False))
    _check_common(result, tmp_path)
    assert result["dds"] == {"skipped": "--skip-dds"}
    assert result["targets"][1]["met"] is None
    assert "not measured" in result["targets"][1]["text"]


@pytest.mark.ros
@pytest.mark.slow
def test_quick_bench_with_dds(tmp_path: Path) -> None:
    lines: list[str] = []
    result = run_bench(_tiny(tmp_path, scaling=False, odometry=False, training=False),
                       progress=lines.append)
    dds = result["dds"]
    assert "error" not in dds, dds.get("log_tail")
    assert dds["node_exit_status"] == 0
    assert dds["node_parameters"]["random_init"] is True
    assert Path(dds["node_parameters"]["preset"]).is_file()  # the tiny model's YAML
    assert dds["steps"], "no rate was measured"
    first = dds["steps"][0]
    assert first["sets_published"] >= 3 and first["achieved_input_hz"] > 0
    assert first["sets_complete"] >= 1
    for group, summary in first["latency_s"].items():
        if summary is not None:
            _positive(summary, group)
    rates = (0.0, *[s["rate_hz"] for s in dds["steps"]])
    assert dds["max_rate_hz"] in rates and dds["max_rate_complete_hz"] in rates
    assert dds["max_rate_complete_hz"] <= dds["max_rate_hz"]
    assert dds["node_settings"]["markers_period"] == 1.0
    assert "markers" not in dds["expected_outputs"]  # per period, not per set
    for s in dds["steps"]:
        assert s["sets_complete"] <= s["sets_published"] - s["sets_dropped"]
        assert s["keeps_up"] == (s["sets_dropped"] == 0)
        m = s["markers"]
        assert m["period_s"] == 1.0 and m["due"] >= 1
        assert m["received"] == s["sets_per_output"]["markers"] == m["due"] - m["missing"] \
            + m["extra"]
        assert m["received"] <= s["sets_published"] - s["sets_dropped"]
        assert s["all_complete"] == (s["sets_complete"] == s["sets_published"]
                                     and m["missing"] == 0)
    assert dds["node_peak_rss_mib"] > 0
    own = result["machine"]["torch_cpu_capability"]  # the node ran what the bench ran
    assert dds["node_cpu"]["from_diagnostics"] == dds["node_cpu"]["torch_cpu_capability"] == own
    assert "burst_probe" in dds
    assert result["targets"][1]["met"] in (True, False)
    assert any("dds:" in line for line in lines)
    assert "Highest input rate the node kept up with" in (tmp_path / "bench.md").read_text()


# ---------------------------------------------------------------------------- parts
def test_header_stamp_of_serialized_messages() -> None:
    pytest.importorskip("rclpy")
    from rclpy.serialization import serialize_message
    from visualization_msgs.msg import Marker, MarkerArray

    from depth_any_view.bench.dds import header_stamp_ns
    from depth_any_view.ros import conversions as C

    stamp = 1_700_000_123_456_789_012
    img = C.depth_to_image_msg(np.ones((3, 4), np.float32), C.make_header(stamp, "cam"))
    assert header_stamp_ns(serialize_message(img)) == stamp
    markers = MarkerArray(markers=[Marker(header=C.make_header(stamp, "odom"))])
    assert header_stamp_ns(serialize_message(markers), sequence_first=True) == stamp
    big = b"\x00\x00\x00\x00" + struct.pack(">iI", 12, 34) + bytes(8)  # CDR big endian
    assert header_stamp_ns(big) == 12 * 1_000_000_000 + 34
    with pytest.raises(ValueError, match="too short"):
        header_stamp_ns(b"\x00\x01\x00\x00")


def test_markers_due_per_period_as_the_node() -> None:
    ms = 1_000_000
    sets = [k * 200 * ms for k in range(11)]  # 5 Hz for 2 s
    every = marker_expectation(sets, sets[::5], None, 1.0)  # due at 0, 1 and 2 s
    assert (every["due"], every["received"], every["missing"], every["extra"]) == (3, 3, 0, 0)
    lost = marker_expectation(sets, [0, 2000 * ms], None, 1.0)
    assert lost["missing"] == 1 and lost["missing_stamps"] == [1000 * ms]
    anchored = marker_expectation(sets[:4], [], -500 * ms, 1.0)  # last one before the step
    assert anchored["due"] == 1 and anchored["missing_stamps"] == [600 * ms]
    reset = marker_expectation(sets[:6], [0, 400 * ms, 1400 * ms], None, 1.0)
    assert reset["extra"] == 1 and reset["due"] == 2 and reset["missing"] == 0
    assert marker_expectation(sets[:3], sets[:3], None, 0.0)["due"] == 3  # 0 = every set
    assert marker_expectation([], [], None, 1.0)["due"] == 0


def test_expected_outputs_follow_node_parameters() -> None:
    assert "markers" not in expected_groups(DdsOptions())
    assert set(expected_groups(DdsOptions())) == {"depth", "depth_info", "points", "voxels",
                                                  "grid"}
    off = DdsOptions(node_params={"publish_depth": False, "publish_grid": False})
    assert expected_groups(off) == ("points", "voxels")


def test_markers_stage_is_the_nodes_path() -> None:
    pytest.importorskip("rclpy")
    from depth_any_view.bench import stages
    from depth_any_view.ros import conversions as C
    from depth_any_view.ros import result_publisher

    assert stages.LARGE_MESSAGE_BYTES is result_publisher.LARGE_MESSAGE_BYTES  # one constant
    assert stages.MARKERS_PERIOD_S == 1.0
    header = C.make_header(5, "cam")
    big = C.depth_to_image_msg(np.ones((256, 256), np.float32), header)
    small = C.depth_to_image_msg(np.ones((4, 4), np.float32), header)
    msgs = {"depth": {"a": (big, None), "b": (small, None)}, "markers": bytes(70_000),
            "points": small}
    assert stages.large_messages(msgs) == 2
    assert stages.payload_bytes(b"abc") == 3 and stages.payload_bytes(object()) == 0


def test_baselines_do_the_same_work() -> None:
    pytest.importorskip("rclpy")
    from depth_any_view.bench.compare import (
        compare_markers,
        naive_depth_to_image_msg,
        naive_image_msg_to_array,
        naive_marker_array_bytes,
        naive_xyzrgb_cloud,
        same_markers,
    )
    from depth_any_view.ros import conversions as C

    rng = np.random.default_rng(0)
    header = C.make_header(5, "base_link")
    pts = rng.normal(size=(50, 3)).astype(np.float32)
    rgb = rng.integers(0, 256, (50, 3), dtype=np.uint8)
    assert bytes(naive_xyzrgb_cloud(pts, rgb, header).data) == \
        bytes(C.xyzrgb_cloud(pts, rgb, header).data)
    image = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    msg = C.array_to_image_msg(image, "rgb8", header)
    assert np.array_equal(naive_image_msg_to_array(msg), image)
    depth = rng.uniform(0.5, 9, (4, 6)).astype(np.float32)
    depth[0, 0], depth[1, 1] = np.nan, 0.0
    assert bytes(naive_depth_to_image_msg(depth, header).data) == \
        bytes(C.depth_to_image_msg(depth, header).data)
    centres = rng.normal(size=(40, 3))
    size = np.full(3, 0.2)
    fast = C.marker_array_bytes(centres, size, header, z_range=(-1.0, 1.0))
    assert same_markers(naive_marker_array_bytes(centres, size, header, z_range=(-1.0, 1.0)),
                        fast)
    assert not same_markers(naive_marker_array_bytes(centres[:-1], size, header,
                                                     z_range=(-1.0, 1.0)), fast)
    row = compare_markers(centres, repeats=1, warmup=0, base_repeats=1)
    assert row["same_output"] is True and row["ratio"] > 0


def test_summaries_and_growth() -> None:
    s = common.summarize([0.3, 0.1, 0.2])
    assert s["median"] == pytest.approx(0.2) and s["min"] == 0.1 and s["n"] == 3
    with pytest.raises(ValueError, match="at least one"):
        common.summarize([])
    calls = []
    t = common.time_call(calls.append, repeats=3, warmup=2)
    assert calls == [0, 1, 2, 3, 4] and t["n"] == 3
    with pytest.raises(ValueError, match="repeats"):
        common.time_call(calls.append, repeats=0)
    xs = [1, 2, 4, 8]
    assert common.growth_exponent(xs, [3 * x**2 for x in xs]) == pytest.approx(2.0)
    assert common.growth_exponent([1], [1]) is None
    assert "linear in pixels" in common.describe_growth(2.0, "side", 2, "pixels")
    assert "quadratic" in common.describe_growth(2.1, "views")


def test_targets_say_by_how_much() -> None:
    result = {"stages": {"cpu": {"non_network_median_s": 0.030,
                                 "counts": {"views": 6, "image_width": 256,
                                            "image_height": 256}}},
              "dds": {"max_rate_hz": 3.0, "max_rate_complete_hz": 2.0,
                      "options": {"device": "cpu"}, "images": [256, 256],
                      "target": {"ladder_top_hz": 30.0}},
              "forward": [{"preset": "paper", "device": "cuda:0", "precision": "bf16",
                           "total_s": {"median": 0.025}, "network_size": [512, 512],
                           "hz": 40.0}]}
    cpu, dds, gpu = evaluate_targets(result, "lite")
    assert cpu["met"] is False and "missed by 15.0 ms" in cpu["text"] and "2.0x" in cpu["text"]
    assert dds["met"] is False and "missed by 2.0 Hz" in dds["text"]
    assert "delivered up to 2 Hz" in dds["text"]
    assert gpu["met"] is True and "40.0 Hz" in gpu["text"]
    # a compiled row that is faster decides the GPU target, and says so
    fast = {**result["forward"][0], "total_s": {"median": 0.02}, "hz": 50.0,
            "compile_mode": "reduce-overhead", "compiled": True}
    result["forward"].append(fast)
    gpu = evaluate_targets(result, "lite")[2]
    assert "50.0 Hz" in gpu["text"] and "reduce-overhead" in gpu["text"]


def test_compile_rows_compare_with_eager_and_say_when_they_fell_back() -> None:
    eager = {"preset": "lite", "device": "cpu", "precision": "fp32", "views": 6,
             "forward_s": {"median": 0.10}}
    compiled = {**eager, "forward_s": {"median": 0.125}, "compile_mode": "default",
                "compiled": True, "build_and_warmup_s": 68.0}
    fell_back = {**compiled, "precision": "bf16", "compiled": False}
    rows = compile_ratios([eager, compiled, fell_back])
    assert len(rows) == 1 and rows[0]["ratio"] == pytest.approx(0.8)  # slower: ratio < 1
    assert rows[0]["project"] == "torch.compile (default)" and rows[0]["baseline"] == "eager"
    assert precision_ratios([eager, compiled]) == []  # compiled rows never pose as eager
    assert _precision_label(compiled) == "fp32 + compile (default; compiling 68 s)"
    assert _precision_label(fell_back).endswith("fell back to eager")
    assert _precision_label(eager) == "fp32"


def test_training_step_counts_the_work_of_the_whole_batch() -> None:
    """Twice the batch is twice the FLOPs of a step (the counter sees forward and backward
    of every sample), and the recipe's autocast and batch are used unless overridden."""
    one = bench_training_step("lite", "cpu", batch_size=1, overrides=TINY, repeats=1,
                              warmup=0, threads=1)
    two = bench_training_step("lite", "cpu", batch_size=2, overrides=TINY, repeats=1,
                              warmup=0, threads=1, amp="off")
    assert one["precision"] == "bf16" and two["precision"] == "fp32"  # train_lite.yaml: bf16
    assert 1.8 < two["flops_per_step"] / one["flops_per_step"] < 2.2
    assert one["parameters"] == two["parameters"] > 0 and one["views"] == 6
    assert training_batch("lite", heavy=False) == 4 and training_batch("paper", heavy=True) == 1
    with pytest.raises(ValueError, match="batch_size and repeats"):
        bench_training_step("lite", "cpu", batch_size=0, overrides=TINY)


def test_odometry_bench_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="at least 2 frames"):
        bench_odometry((64, 48), 0, (32, 32), repeats=1, frames=1)
    with pytest.raises(ValueError, match="unknown odometry source"):
        bench_odometry((64, 48), 0, (32, 32), repeats=1, frames=2, sources=("gps",))


def test_cli_bench_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["bench", "--quick", "--skip-dds", "--device", "cpu",
                                      "--presets", "lite,paper", "--repeats", "4",
                                      "--rates", "5,1", "--size", "128x96"])
    assert args.device == ("cpu",) and args.presets == ("lite", "paper")
    assert args.repeats == 4 and args.rates == (1.0, 5.0) and args.size == (128, 96)
    assert main(["bench", "--repeats", "0", "--skip-dds"]) == 2
    assert "--repeats must be >= 1" in capsys.readouterr().err
    args = build_parser().parse_args(["bench", "--compile", "default,reduce-overhead"])
    assert args.compile == ("default", "reduce-overhead")
    assert main(["bench", "--compile", "fastest", "--skip-dds"]) == 2
    assert "--compile modes must be among default" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "--rates", "fast"])
    assert build_parser().parse_args(["bench"]).isa == "default"
    assert build_parser().parse_args(["bench", "--isa", "avx2"]).isa == "avx2"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "--isa", "sse2"])


def test_onnxruntime_ratio_measures_both_backends_in_one_run(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from depth_any_view.bench.compare import onnxruntime_ratio
    from depth_any_view.bench.workload import make_workload

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # the export's cache
    row = onnxruntime_ratio("lite", make_workload((48, 32), 0, 8), repeats=2, warmup=1,
                            overrides=TINY, threads=1)
    assert row["project"] == "ONNX Runtime (CPUExecutionProvider)"
    assert row["baseline"] == "torch eager" and row["same_output"] is True
    assert row["project_s"]["n"] == row["baseline_s"]["n"] == 2
    assert row["ratio"] > 0 and math.isfinite(row["ratio"])
    # a network with a temporal cost volume: both backends match against the previous set
    row = onnxruntime_ratio("lite", make_workload((48, 32), 0, 8), repeats=2, warmup=1,
                            overrides={**TINY, "cost_volume": True, "cost_temporal": True,
                                       "cost_hypotheses": 8}, threads=1, label="geometry")
    assert "preset lite (geometry)" in row["what"] and row["same_output"] is True


def test_weights_overrides_give_the_shipped_geometry_network():
    from depth_any_view.bench.compare import weights_overrides
    from depth_any_view.model.weights import default_weights_path

    path = default_weights_path("lite").with_name("lite_geometry.safetensors")
    over = weights_overrides(path, "lite")
    assert {k: over.get(k) for k in ("cost_volume", "cost_temporal", "cost_photometric",
                                     "ground_embedding")} == dict.fromkeys(
        ("cost_volume", "cost_temporal", "cost_photometric", "ground_embedding"), True)
    assert weights_overrides(default_weights_path("lite"), "lite") == {}


def test_cost_volume_ratio_measures_both_networks_in_one_run():
    from depth_any_view.bench.compare import cost_volume_ratio
    from depth_any_view.bench.workload import make_workload

    w = make_workload((48, 32), 0, 8)
    assert cost_volume_ratio("lite", w, repeats=1, warmup=0,
                             overrides={**TINY, "cost_volume": False}) is None
    row = cost_volume_ratio("lite", w, repeats=2, warmup=1,
                            overrides={**TINY, "cost_volume": True, "cost_temporal": True,
                                       "cost_hypotheses": 8})
    assert row["project"] == "without cost volumes" and "spatial + temporal" in row["what"]
    assert row["project_s"]["n"] == row["baseline_s"]["n"] == 2
    assert row["ratio"] > 0 and math.isfinite(row["ratio"])
    # the photometric sweep and the ground plane are measured with it (and off in the other)
    row = cost_volume_ratio("lite", w, repeats=1, warmup=0,
                            overrides={**TINY, "cost_volume": True, "cost_hypotheses": 8,
                                       "cost_photometric": True, "ground_embedding": True})
    assert "photometric NCC; ground-plane embedding" in row["what"]
    assert row["baseline"] == "with cost volumes and ground plane"


# ---------------------------------------------------------------------------- --isa
def _unpinned(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process's environment without any pinning variable (as a user's shell)."""
    for name in cpu.ISA_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_cpu_facts_are_read_from_cpuinfo_and_onednn() -> None:
    text = "processor\t: 0\nflags\t\t: fpu sse4_2 avx avx2 fma amx_tile avx512f\nflags: x\n"
    assert cpu.cpu_flags(text) == ["sse4_2", "avx", "fma", "avx2", "avx512f", "amx_tile"]
    assert cpu.cpu_flags("model name : x\n") == []
    lines = ("onednn_verbose,v1,info,oneDNN v3.12.0 (commit 80afa71)\n"
             "onednn_verbose,v1,info,cpu,isa:Intel AVX2\nonednn_verbose,v1,info,gpu,x\n")
    assert cpu.parse_onednn_isa(lines) == "Intel AVX2"
    assert cpu.parse_onednn_isa("dnnl_verbose,info,cpu,isa:Intel AVX-512\n") == "Intel AVX-512"
    assert cpu.parse_onednn_isa("no oneDNN here\n") is None
    info = {"model": "M", "flags": ["avx2"], "isa": "avx2", "torch_cpu_capability": "AVX2",
            "onednn_isa": "Intel AVX2", "numpy_simd": ["X86_V3"], "blas": ["openblas Haswell"],
            "isa_env": {"ATEN_CPU_CAPABILITY": "avx2", "OPENBLAS_CORETYPE": None}}
    assert cpu.describe(info) == (
        "M: torch dispatches to AVX2, oneDNN to Intel AVX2, numpy to X86_V3, BLAS openblas "
        "Haswell; pinned by --isa avx2 (ATEN_CPU_CAPABILITY=avx2); the CPU has avx2 (not "
        "avx512f, avx512_bf16, amx_tile)")


def test_isa_pinning_needs_the_environment_before_torch(monkeypatch, tmp_path) -> None:
    _unpinned(monkeypatch)
    env = cpu.pinned_env("avx2", {"PATH": "/bin"})
    assert env["ATEN_CPU_CAPABILITY"] == "avx2" and env["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    assert env["MKL_ENABLE_INSTRUCTIONS"] == "AVX2" and env["PATH"] == "/bin"
    assert env["OPENBLAS_CORETYPE"] == "Haswell"
    assert cpu.isa_in_force("avx2", env) and not cpu.isa_in_force("avx2", {"PATH": "/bin"})
    assert cpu.pinned_env("default", {"A": "1"})["A"] == "1" and cpu.isa_in_force("default")
    with pytest.raises(ValueError, match="isa must be one of default, avx2, avx512"):
        cpu.pinned_env("sse", {})
    cpu.check_capability("avx2", "AVX2", "here")
    cpu.check_capability("default", "AVX512", "here")
    with pytest.raises(cpu.IsaError, match="torch reports CPU capability AVX512 in the node"):
        cpu.check_capability("avx2", "AVX512", "the node")
    cpu.check_capability("avx2", "AVX2", "here", ["X86_V3"])
    with pytest.raises(cpu.IsaError, match="numpy dispatches to X86_V4 in the node"):
        cpu.check_capability("avx2", "AVX2", "the node", ["X86_V3", "X86_V4"])
    # in this process torch is loaded already: run_bench refuses before measuring anything
    with pytest.raises(cpu.IsaError, match="before torch and numpy are imported"):
        run_bench(_tiny(tmp_path, isa="avx2"))
    assert not (tmp_path / "bench.json").exists()
    with pytest.raises(ValueError, match="isa must be one of"):
        run_bench(_tiny(tmp_path, isa="neon"))


def test_node_reporting_another_capability_is_an_error() -> None:
    result = {"machine": {"torch_cpu_capability": "AVX2"},
              "dds": {"node_cpu": {"from_diagnostics": "AVX512"}}}
    assert "node reported CPU capability AVX512" in node_capability_mismatch(result)
    result["dds"]["node_cpu"]["from_diagnostics"] = "AVX2"
    assert node_capability_mismatch(result) is None
    assert node_capability_mismatch({"machine": {"torch_cpu_capability": "AVX2"},
                                     "dds": {"skipped": "--skip-dds"}}) is None


@pytest.mark.skipif("avx2" not in cpu.cpu_flags(), reason="needs an x86 CPU with AVX2")
def test_bench_isa_avx2_pins_the_measuring_process_and_the_node(monkeypatch, tmp_path) -> None:
    """`bench --isa avx2` from a process with torch loaded and nothing pinned: the bench
    re-runs itself with the variables set; there torch and oneDNN dispatch to AVX2, and so
    do they in a child started with the node's environment."""
    _unpinned(monkeypatch)
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    monkeypatch.setenv("ROS_DOMAIN_ID", str(common.ros_domain_id()))
    assert main(["bench", "--isa", "avx2", "--cpu-info", "--out", str(tmp_path)]) == 0
    info = json.loads((tmp_path / "cpu.json").read_text())
    for where in ("measuring", "node"):
        assert info[where]["torch_cpu_capability"] == "AVX2", where
        assert "AVX2" in info[where]["onednn_isa"] and "512" not in info[where]["onednn_isa"]
        assert info[where]["isa_env"] == cpu.isa_variables("avx2")
        assert "X86_V3" in info[where]["numpy_simd"]  # numpy: AVX2 (x86-64-v3), nothing above
        assert not any("512" in t or t == "X86_V4" for t in info[where]["numpy_simd"])
    assert "X86_V4" in cpu.isa_variables("avx2")["NPY_DISABLE_CPU_FEATURES"].split()
    assert info["measuring"]["isa"] == "avx2" and info["measuring"]["model"] == cpu.cpu_model()
    assert info["node"]["pid"] != os.getpid()


@pytest.mark.skipif("avx2" not in cpu.cpu_flags() or "avx512f" in cpu.cpu_flags(),
                    reason="needs an x86 CPU with AVX2 and without AVX-512")
def test_bench_isa_the_cpu_lacks_fails_loudly(monkeypatch, tmp_path, capfd) -> None:
    _unpinned(monkeypatch)
    assert main(["bench", "--isa", "avx512", "--cpu-info", "--out", str(tmp_path)]) == 3
    assert "torch reports CPU capability AVX2 in the measuring process" in capfd.readouterr().err


@pytest.mark.skipif("avx2" not in cpu.cpu_flags(), reason="needs an x86 CPU with AVX2")
def test_isa_side_by_side_alternates_a_pinned_and_a_default_worker(monkeypatch) -> None:
    from depth_any_view.bench.isa_compare import side_by_side

    _unpinned(monkeypatch)
    spec = {"preset": "lite", "size": list(SIZE), "seed": 0, "workload_grid": 16,
            "overrides": TINY, "threads": 1, "repeats": 1, "warmup": 1}
    lines: list[str] = []
    d = side_by_side("avx2", spec, rounds=2, progress=lines.append)
    assert d["workers"]["avx2"]["torch_cpu_capability"] == "AVX2"
    assert d["workers"]["default"]["torch_cpu_capability"] == cpu.torch_capability()
    assert d["workers"]["avx2"]["pid"] != d["workers"]["default"]["pid"] != os.getpid()
    assert d["workers"]["default"]["isa_env"] == dict.fromkeys(cpu.ISA_VARIABLES)
    assert {"forward", "fusion_update", "fusion_carve"} <= set(d["stages"])
    for r in (*d["stages"].values(), d["non_network"]):
        assert r["default"]["n"] == r["avx2"]["n"] == 2
        assert r["ratio"] == pytest.approx(r["avx2"]["median"] / r["default"]["median"])
    assert len(lines) == 2 and lines[-1].endswith("round 2/2")
    from depth_any_view.bench.report import _isa_side_by_side

    md = "\n".join(_isa_side_by_side(d))
    assert "| stage | default median ms | avx2 median ms | ratio (avx2 / default) |" in md
    assert f"| `forward` | {common.ms(d['stages']['forward']['default']['median'])} |" in md
    with pytest.raises(ValueError, match="needs a pinned isa"):
        side_by_side("default", spec)
