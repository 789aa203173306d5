"""`depth-any-view bench`: every measurement of the benchmark in one run, then the report.

Order: machine facts; per-stage latency of one set (stage preset, each device); the
network forward per preset x device x precision (the heavy ones with fewer repeats);
side-by-side comparisons; scaling tables; end to end over DDS; targets; bench.json and
bench.md in the output folder (report.py).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from depth_any_view.bench import common
from depth_any_view.bench.dds import (
    DEFAULT_RATES,
    NODE_CAPABILITY_KEY,
    DdsOptions,
    node_env,
    run_dds,
)
from depth_any_view.bench.workload import make_workload

LOG = logging.getLogger(__name__)

DEFAULT_INPUT = {"lite": (256, 256), "paper": (512, 512)}  # (width, height) per preset
NON_NETWORK_TARGET_S = 0.015  # issue 7: everything but the forward pass, lite, CPU
DDS_TARGET_HZ = 5.0  # issue 7: the node keeps up end to end over DDS (lite, CPU)
GEOMETRY_WEIGHTS = "lite_geometry.safetensors"  # shipped beside lite: its network is timed too
GPU_TARGET = {"preset": "paper", "size": (512, 512), "precision": "bf16", "hz": 30.0}


@dataclass
class BenchOptions:
    """Everything a benchmark run can change; defaults are the full run."""

    out: Path = Path("output/bench")
    presets: tuple[str, ...] = ("lite", "paper")
    devices: tuple[str, ...] = ("auto",)  # auto, cpu, cuda, cuda:N
    precisions: tuple[str, ...] | None = None  # None: every one the device supports
    repeats: int = 20  # timed runs per stage and light forward
    warmup: int = 2  # untimed runs first
    heavy_repeats: int = 1  # timed forwards of a heavy preset on the CPU (paper)
    size: tuple[int, int] | None = None  # camera images (W, H); None: DEFAULT_INPUT
    stage_preset: str = "lite"  # preset of the stage table, scaling and DDS
    model_overrides: dict[str, Any] = field(default_factory=dict)  # every preset (tests)
    scaling: bool = True
    scaling_views: tuple[int, ...] = (1, 2, 3, 4, 5, 6)
    scaling_sizes: tuple[int, ...] = (128, 192, 256, 384, 512)
    scaling_grids: tuple[int, ...] = (32, 48, 64, 96, 128)
    scaling_repeats: int = 2
    odometry: bool = True  # time the cameras-only odometry sources (kiss_icp, open3d_rgbd)
    odometry_frames: int = 10  # length of their synthetic drive
    training: bool = True  # one training step per preset and device (time, memory, FLOPs)
    onnx: bool = True  # ONNX Runtime against torch eager (exports the network once, cached)
    compile_modes: tuple[str, ...] = ()  # torch.compile modes with a forward row of their own
    dds: bool = True
    dds_rates: tuple[float, ...] = DEFAULT_RATES
    dds_step_s: float = 5.0
    dds_min_sets: int = 6
    dds_drain_s: float = 3.0
    dds_node_params: dict[str, Any] = field(default_factory=dict)
    threads: int = 0  # torch CPU threads (0 = torch's default)
    isa: str = "default"  # vector ISA pinned (bench/cpu.py); must be in the environment
    isa_rounds: int = 6  # pinned ISA vs default, alternated rounds (bench/isa_compare.py)
    seed: int = 0
    workload_grid: int = 64  # ground-truth occupancy voxels per axis of the synthetic frame
    command: str = ""

    @classmethod
    def quick(cls, **changes: Any) -> BenchOptions:
        """A short run that exercises everything (a minute or two on a small CPU)."""
        base = cls(presets=("lite",), repeats=3, warmup=1, heavy_repeats=1,
                   scaling_views=(1, 3, 6), scaling_sizes=(128, 256), scaling_grids=(32, 64),
                   scaling_repeats=1, odometry_frames=4, isa_rounds=2,
                   dds_rates=(1.0, 2.0, 5.0), dds_step_s=2.0, dds_min_sets=3, dds_drain_s=2.0)
        return replace(base, **changes)

    def input_size(self, preset: str) -> tuple[int, int]:
        """Camera image size (W, H) for a preset."""
        if self.size is not None:
            return tuple(self.size)
        if preset in DEFAULT_INPUT and not self.model_overrides.get("image_size"):
            return DEFAULT_INPUT[preset]
        from depth_any_view.model.config import load_model_config

        h, w = self.model_overrides.get("image_size") or load_model_config(preset).image_size
        return int(w), int(h)


def resolve_devices(devices: tuple[str, ...]) -> list[str]:
    """Concrete device names ('auto' -> cuda when available, else cpu), no duplicates."""
    from depth_any_view.inference.engine import resolve_device

    out = []
    for d in devices:
        name = str(resolve_device(d))
        if name == "cuda":
            name = "cuda:0"
        if name not in out:
            out.append(name)
    return out


def device_precisions(device: str, wanted: tuple[str, ...] | None
                      ) -> list[tuple[str, str | None]]:
    """(precision, None) for each usable precision, (precision, why not) for the others."""
    import torch

    from depth_any_view.config import ConfigError
    from depth_any_view.inference.engine import PRECISIONS, resolve_amp_dtype

    out = []
    for p in wanted or PRECISIONS:
        try:
            resolve_amp_dtype(p, torch.device(device))
            out.append((p, None))
        except ConfigError as exc:
            out.append((p, str(exc)))
    return out


def _heavy(preset: str, device: str) -> bool:
    """A preset too slow for many repeats on this device (paper on the CPU)."""
    return device.startswith("cpu") and preset != "lite" and "lite" not in Path(preset).stem


def _model_yaml(preset: str, overrides: dict[str, Any], out: Path) -> str:
    """The preset itself, or a model config YAML of the preset with overrides (for the
    node, which takes a preset or a path)."""
    if not overrides:
        return preset
    from depth_any_view.model.config import load_model_config

    cfg = {k: list(v) if isinstance(v, tuple) else v
           for k, v in asdict(load_model_config(preset)).items()}
    cfg.update({k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()})
    path = out / f"model_{Path(preset).stem}_bench.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=True))
    return str(path)


def _forward_row(preset: str, device: str, precision: str, engine: Any, fwd: dict[str, Any],
                 size: tuple[int, int], views: int) -> dict[str, Any]:
    """One row of the forward table."""
    total = fwd["total"]["median"]
    return {"preset": preset, "device": device, "device_name": engine.describe()["device_name"],
            "precision": precision, "views": views, "input_size": list(size),
            "network_size": [engine.image_size[1], engine.image_size[0]],
            "grid_dims": list(engine.grid.dims),
            "preprocess_s": fwd["preprocess"], "forward_s": fwd["forward"],
            "postprocess_s": fwd["postprocess"], "total_s": fwd["total"],
            "hz": 1.0 / total if total > 0 else None, "repeats": fwd["repeats"],
            "warmup": fwd["warmup"], "memory": fwd["memory"]}


def run_bench(opts: BenchOptions, progress: Callable[[str], None] | None = None
              ) -> dict[str, Any]:
    """Run the benchmark into `opts.out`; returns the result (also written as bench.json
    and bench.md there). The engine's and the pipeline's logging is quietened for the run
    and restored afterwards."""
    from depth_any_view.bench.stages import quiet_loggers

    with quiet_loggers("depth_any_view.inference.engine", "depth_any_view.pipeline"):
        return _run_bench(opts, progress)


def _run_bench(opts: BenchOptions, progress: Callable[[str], None] | None = None
              ) -> dict[str, Any]:
    """`run_bench` without the logging set-up."""
    from depth_any_view.bench import cpu, report
    from depth_any_view.bench.compare import (
        compare_conversions,
        compile_ratios,
        cost_volume_ratio,
        onnxruntime_ratio,
        precision_ratios,
        weights_overrides,
    )
    from depth_any_view.bench.scaling import scale_grid, scale_size, scale_views
    from depth_any_view.bench.stages import (
        LocalPublishers,
        bench_forward,
        bench_stages,
        make_engine,
        ros_available,
        views_of,
    )

    cpu.require_isa(opts.isa)
    t_start = time.perf_counter()
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    say = progress or (lambda text: None)

    def step(text: str) -> None:
        say(f"[{time.perf_counter() - t_start:6.1f} s] {text}")

    if opts.threads > 0:
        import torch

        torch.set_num_threads(opts.threads)
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    domain_id = common.ros_domain_id()
    devices = resolve_devices(opts.devices)
    result: dict[str, Any] = {
        "version": 1, "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": opts.command or " ".join(sys.argv),
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opts).items()},
        "machine": common.machine_info(devices, opts.isa), "ros_domain_id": domain_id,
        "stages": {}, "odometry": {}, "forward": [], "comparisons": {}, "scaling": {}, "dds": {},
        "notes": []}
    no_ros = ros_available()
    if no_ros:
        result["notes"].append(f"ROS stages and DDS skipped: {no_ros}")
    sp = opts.stage_preset if opts.stage_preset in opts.presets else opts.presets[0]
    size = opts.input_size(sp)
    step(f"synthetic frame {size[0]}x{size[1]}")
    w = make_workload(size, opts.seed, opts.workload_grid)

    # ---- per-stage latency, and the forward rows of the stage preset in fp32
    publishers = None if no_ros else LocalPublishers(w.names, domain_id)
    stage_engines = {}
    try:
        for device in devices:
            step(f"stages: {sp} on {device}")
            engine = make_engine(sp, device, "fp32", overrides=opts.model_overrides)
            stage_engines[device] = engine
            with common.PeakMemory(engine.device) as mem:
                r = bench_stages(engine, w, repeats=opts.repeats, warmup=opts.warmup,
                                 publishers=publishers)
            d = r.as_dict()
            d.update(preset=sp, device=device, precision="fp32", memory=mem.as_dict(),
                     engine=engine.describe())
            result["stages"][device] = d
            fwd = {**r.forward, **{s: r.stages[s] for s in ("preprocess", "forward",
                                                             "postprocess")}}
            result["forward"].append(_forward_row(sp, device, "fp32", engine, fwd, size,
                                                  w.num_views))
    finally:
        if publishers is not None:
            publishers.close()

    # ---- cameras-only odometry (odometry_source kiss_icp / open3d_rgbd), CPU
    if opts.odometry:
        step(f"odometry: kiss_icp, open3d_rgbd on a {opts.odometry_frames}-frame drive")
        from depth_any_view.bench.odometry import bench_odometry

        result["odometry"] = bench_odometry(
            size, opts.seed, next(iter(stage_engines.values())).image_size,
            repeats=opts.repeats, warmup=opts.warmup, frames=opts.odometry_frames)
    else:
        result["odometry"] = {"skipped": "--skip-odometry"}

    # ---- the network per preset, device, precision
    for device in devices:
        for preset in opts.presets:
            p_size = opts.input_size(preset)
            pw = make_workload(p_size, opts.seed, opts.workload_grid)
            for precision, why_not in device_precisions(device, opts.precisions):
                for mode in (None, *opts.compile_modes):
                    if preset == sp and precision == "fp32" and mode is None:
                        continue  # measured with the stages
                    label = {"preset": preset, "device": device, "precision": precision,
                             "compile_mode": mode}
                    if why_not:
                        result["forward"].append({**label, "skipped": why_not})
                        continue
                    heavy = _heavy(preset, device)
                    if heavy and mode is not None:
                        result["forward"].append({**label, "skipped": "compiling a heavy "
                                                  "preset on the CPU takes minutes"})
                        continue
                    reps = opts.heavy_repeats if heavy else opts.repeats
                    warm = 1 if heavy else max(opts.warmup, 1 if mode is None else 2)
                    what = "" if mode is None else f" compile {mode}"
                    step(f"forward: {preset} {device} {precision}{what} ({reps} runs)")
                    try:
                        t_build = time.perf_counter()
                        engine = make_engine(preset, device, precision,
                                             overrides=opts.model_overrides,
                                             compile=mode is not None,
                                             compile_mode=mode or "default")
                        fwd = bench_forward(engine, views_of(pw), reps, warm)
                        build_s = time.perf_counter() - t_build - fwd["total"]["mean"] * reps
                    except Exception as exc:  # noqa: BLE001 - e.g. out of memory: say so
                        result["forward"].append({**label,
                                                  "error": f"{type(exc).__name__}: {exc}"})
                        continue
                    row = _forward_row(preset, device, precision, engine, fwd, p_size,
                                       pw.num_views)
                    if mode is not None:  # compiled: did it stay compiled, what it cost
                        row.update(compile_mode=mode, compiled=engine.compiled,
                                   build_and_warmup_s=build_s)
                    result["forward"].append(row)
                    del engine

    # ---- comparisons (CPU)
    step("comparisons")
    net_size = next(iter(stage_engines.values())).image_size
    result["comparisons"] = compare_conversions(w, net_size, repeats=opts.repeats,
                                                warmup=opts.warmup)
    result["comparisons"]["rows"].extend(precision_ratios(result["forward"]))
    result["comparisons"]["rows"].extend(compile_ratios(result["forward"]))
    cv_row = cost_volume_ratio(sp, w, repeats=opts.repeats, warmup=opts.warmup,
                               overrides=opts.model_overrides)
    if cv_row is not None:  # the "ratio" is how much the volumes cost (>1 = slower)
        result["comparisons"]["rows"].append(cv_row)
    ort_row = onnxruntime_ratio(sp, w, repeats=opts.repeats, warmup=opts.warmup,
                                overrides=opts.model_overrides,
                                threads=opts.threads) if opts.onnx else None
    if ort_row is not None:  # > 1: ONNX Runtime is faster than torch eager
        result["comparisons"]["rows"].append(ort_row)
        from depth_any_view.model.weights import default_weights_path

        geometry = default_weights_path("lite").with_name(GEOMETRY_WEIGHTS)
        if sp == "lite" and not opts.model_overrides and geometry.is_file():
            # the same side by side for the network with cost volumes (issue 20, stage 6)
            ort_row = onnxruntime_ratio(sp, w, repeats=opts.repeats, warmup=opts.warmup,
                                        overrides=weights_overrides(geometry, sp),
                                        threads=opts.threads,
                                        label=f"architecture of {geometry.name}")
            result["comparisons"]["rows"].append(ort_row)

    # ---- the pinned ISA against the default, alternated in two worker processes
    if opts.isa != "default" and opts.isa_rounds > 0:
        from depth_any_view.bench.isa_compare import side_by_side

        step(f"isa side by side: {opts.isa} against default, {opts.isa_rounds} rounds")
        spec = {"preset": sp, "size": list(size), "seed": opts.seed,
                "workload_grid": opts.workload_grid, "overrides": opts.model_overrides,
                "threads": opts.threads, "repeats": max(1, min(opts.repeats, 5)),
                "warmup": max(1, opts.warmup)}
        result["isa_side_by_side"] = side_by_side(opts.isa, spec, rounds=opts.isa_rounds,
                                                  progress=step)

    # ---- scaling
    device = devices[0]
    if opts.scaling:
        kw = {"repeats": opts.scaling_repeats, "warmup": 1, "overrides": opts.model_overrides,
              "seed": opts.seed, "workload_grid": opts.workload_grid}
        step(f"scaling: views {list(opts.scaling_views)}")
        result["scaling"]["views"] = scale_views(sp, device, "fp32", opts.scaling_views, size,
                                                 **kw)
        step(f"scaling: input size {list(opts.scaling_sizes)}")
        result["scaling"]["size"] = scale_size(sp, device, "fp32", opts.scaling_sizes, **kw)
        step(f"scaling: grid {list(opts.scaling_grids)}")
        result["scaling"]["grid"] = scale_grid(sp, device, "fp32", opts.scaling_grids, size,
                                               **kw)
    else:
        result["scaling"] = {"skipped": "--skip-scaling"}

    # ---- one training step per preset and device (after the forward rows: the
    # process keeps the memory a paper step takes, which would swell their peak RSS)
    if opts.training:
        from depth_any_view.bench.training import bench_training_step, training_batch

        rows = []
        for device in devices:
            for preset in opts.presets:
                heavy = _heavy(preset, device)
                batch = training_batch(preset, heavy)
                step(f"training step: {preset} {device}, batch {batch}")
                try:
                    rows.append(bench_training_step(
                        preset, device, batch_size=batch, overrides=opts.model_overrides,
                        repeats=1 if heavy else max(1, min(opts.repeats, 5)),
                        warmup=0 if heavy else 1, seed=opts.seed, threads=opts.threads))
                except Exception as exc:  # noqa: BLE001 - e.g. out of memory: say so, go on
                    rows.append({"preset": preset, "device": device, "batch_size": batch,
                                 "error": f"{type(exc).__name__}: {exc}"})
        result["training"] = {"rows": rows}
    else:
        result["training"] = {"skipped": "--skip-training"}

    # ---- end to end over DDS
    if not opts.dds:
        result["dds"] = {"skipped": "--skip-dds"}
    elif no_ros:
        result["dds"] = {"skipped": no_ros}
    else:
        step(f"dds: node ({sp}, {device}) with six {size[0]}x{size[1]} cameras")
        params = {"threads": opts.threads} if opts.threads > 0 else {}
        params.update(opts.dds_node_params)
        dds_opts = DdsOptions(preset=_model_yaml(sp, opts.model_overrides, out),
                              device=device, precision="fp32", rates=tuple(opts.dds_rates),
                              step_s=opts.dds_step_s, min_sets=opts.dds_min_sets,
                              drain_s=opts.dds_drain_s, target_hz=DDS_TARGET_HZ,
                              node_params=params)
        try:  # a child started as the node will be
            node_cpu = cpu.probe(node_env(domain_id))
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
            if opts.isa != "default":  # nothing to check the pinning with: stop
                raise cpu.IsaError(f"--isa {opts.isa}: {exc}") from exc
            node_cpu = {"error": str(exc)}
        else:
            cpu.check_capability(opts.isa, node_cpu["torch_cpu_capability"],
                                 "a child started with the node's environment",
                                 node_cpu["numpy_simd"])
        result["dds"] = run_dds(w, dds_opts, out, domain_id, progress=step)
        result["dds"]["node_cpu"] = node_cpu
        node_cpu["from_diagnostics"] = result["dds"].get("node_diagnostics", {}).get(
            NODE_CAPABILITY_KEY)  # what the node itself reported

    result["memory"] = {"bench_peak_rss_mib": common.peak_rss_mib(),
                        "node_peak_rss_mib": result["dds"].get("node_peak_rss_mib")}
    result["targets"] = evaluate_targets(result, sp)
    result["load_average_end"] = common.load_average()
    result["duration_s"] = time.perf_counter() - t_start
    wrong = node_capability_mismatch(result)
    if wrong is not None:
        result["notes"].append(f"ERROR: {wrong}")
    paths = report.write_report(result, out)
    result["files"] = {k: str(v) for k, v in paths.items()}
    step(f"wrote {paths['json']} and {paths['markdown']}")
    if wrong is not None:
        raise cpu.IsaError(f"{wrong} (the report is written: {paths['markdown']})")
    return result


def node_capability_mismatch(result: dict[str, Any]) -> str | None:
    """Why the node ran with another CPU capability than the measuring process (what it
    reported on /diagnostics), or None when they agree or the node reported none."""
    node = result.get("dds", {}).get("node_cpu", {}).get("from_diagnostics")
    own = result["machine"]["torch_cpu_capability"]
    if node is None or node == own:
        return None
    return f"the node reported CPU capability {node} on /diagnostics, the measuring process {own}"


def evaluate_targets(result: dict[str, Any], stage_preset: str) -> list[dict[str, Any]]:
    """The issue's targets against the measurements: met, or missed by how much."""
    out = []
    cpu = next((d for k, d in result["stages"].items() if k.startswith("cpu")), None)
    if cpu is not None:
        measured = cpu["non_network_median_s"]
        c = cpu["counts"]
        out.append(_target(
            f"everything but the network forward, {stage_preset}, {c['views']} views "
            f"{c['image_width']}x{c['image_height']}, CPU (sum of stage medians)",
            "<= 15 ms", measured * 1e3, NON_NETWORK_TARGET_S * 1e3, "ms", lower_better=True))
    else:
        out.append({"name": "everything but the network forward on the CPU", "target": "<= 15 ms",
                    "met": None, "text": "not measured (no CPU stage table in this run)"})
    dds = result.get("dds", {})
    if "max_rate_hz" in dds:
        top = dds.get("target", {}).get("ladder_top_hz")
        t = _target(f"node processes every set end to end over DDS ({stage_preset}, "
                    f"{dds['options']['device']}, six {dds['images'][0]}x{dds['images'][1]} "
                    "cameras)", f">= {DDS_TARGET_HZ:g} Hz", dds["max_rate_hz"], DDS_TARGET_HZ,
                    "Hz", lower_better=False)
        if top is not None and dds["max_rate_hz"] >= top:
            t["text"] += f" (the top of the ladder, {top:g} Hz: the limit is higher)"
        t["text"] += (f"; every output of every set delivered up to "
                      f"{dds.get('max_rate_complete_hz', 0.0):g} Hz")
        out.append(t)
    else:
        why = dds.get("skipped") or dds.get("error", "n/a")
        out.append({"name": "node keeps up end to end over DDS",
                    "target": f">= {DDS_TARGET_HZ:g} Hz", "met": None,
                    "text": f"not measured: {why}"})
    g = GPU_TARGET
    rows = [r for r in result["forward"] if r.get("preset") == g["preset"]
            and str(r.get("device", "")).startswith("cuda")
            and r.get("precision") == g["precision"] and "total_s" in r
            and tuple(r["network_size"]) == g["size"]]
    row = max(rows, key=lambda r: r["hz"] or 0.0) if rows else None  # eager or compiled
    name = (f"{g['preset']} preset {g['size'][0]}x{g['size'][1]} {g['precision']} on a GPU "
            "(engine: preprocess + forward + postprocess)")
    if row is None:
        out.append({"name": name, "target": f">= {g['hz']:g} Hz", "met": None,
                    "text": "not measured: no CUDA device in this run"})
    else:
        t = _target(name, f">= {g['hz']:g} Hz", row["hz"], g["hz"], "Hz", lower_better=False)
        if row.get("compile_mode"):
            t["text"] += f" (torch.compile, mode {row['compile_mode']})"
        out.append(t)
    return out


def _target(name: str, target: str, measured: float, limit: float, unit: str, *,
            lower_better: bool) -> dict[str, Any]:
    """A target row with 'met' and how far off it is (absolute and as a factor)."""
    met = measured <= limit if lower_better else measured >= limit
    if met:
        text = f"met: {measured:.1f} {unit}"
    elif lower_better:
        text = (f"missed by {measured - limit:.1f} {unit}: {measured:.1f} {unit} is "
                f"{measured / limit:.1f}x the target")
    else:
        factor = f"{limit / measured:.1f}x short" if measured > 0 else "nothing kept up with"
        text = f"missed by {limit - measured:.1f} {unit}: {measured:.1f} {unit} ({factor})"
    return {"name": name, "target": target, "measured": measured, "unit": unit, "met": met,
            "text": text}
