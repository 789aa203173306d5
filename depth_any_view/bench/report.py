"""The benchmark's report: bench.json (everything) and bench.md (the tables).

Times in the tables are milliseconds (the JSON keeps seconds); "median / p95" are over the
timed runs after warm-up; ratios are baseline time / project time.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from depth_any_view.bench.common import ms
from depth_any_view.bench.cpu import describe
from depth_any_view.bench.odometry import SOURCE_LABELS
from depth_any_view.bench.stages import STAGE_LABELS


def _clean(value: Any) -> Any:
    """JSON-ready copy: NaN/inf -> None, tuples -> lists, paths -> strings."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _clean(value.item())
    return value


def write_report(result: dict[str, Any], out: Path) -> dict[str, Path]:
    """Write bench.json and bench.md into `out`; returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    js, md = out / "bench.json", out / "bench.md"
    js.write_text(json.dumps(_clean(result), indent=1, sort_keys=False) + "\n")
    md.write_text(report_markdown(result))
    return {"json": js, "markdown": md}


def _f(value: float | None, fmt: str = ".1f") -> str:
    """A number or '-'."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return format(value, fmt)


def _mib(value: float | None) -> str:
    """MiB with no decimals, '-' for None."""
    return _f(value, ".0f")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Markdown table lines."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return lines


def _machine(result: dict[str, Any]) -> list[str]:
    """Machine lines."""
    m = result.get("machine", {})
    gpus = ", ".join(m.get("gpus") or []) or "none"
    return [
        f"- CPU: {m.get('cpu')} ({m.get('usable_cores')} usable), "
        f"{_f(m.get('memory_gib'))} GiB RAM; torch {m.get('torch')} "
        f"({m.get('torch_threads')} threads, {m.get('torch_cpu_capability')}), "
        f"numpy {m.get('numpy')}, Python {m.get('python')}",
        *_isa(result),
        f"- GPU: {gpus}; devices measured: {', '.join(m.get('devices', []))}",
        f"- load average (1/5/15 min) at start {m.get('load_average_1_5_15')}, at end "
        f"{result.get('load_average_end')}; RMW {m.get('rmw_implementation')}, "
        f"ROS_DOMAIN_ID {result.get('ros_domain_id')} (localhost only)",
    ]


def _isa(result: dict[str, Any]) -> list[str]:
    """The vector capability lines: in force in the measuring process and in the node, the
    CPU's flags, the threads (bench/cpu.py)."""
    c = result.get("machine", {}).get("cpu_isa")
    if not c:
        return []
    node = result.get("dds", {}).get("node_cpu")
    if node is None:
        node_text = "node not started in this run"
    else:
        own = node.get("from_diagnostics")
        node_text = (f"the node reported {own} on /diagnostics" if own is not None else
                     "the node reported none on /diagnostics") + \
            (f"; a child started with its environment: torch {node['torch_cpu_capability']}, "
             f"oneDNN {node['onednn_isa']}, numpy {', '.join(node.get('numpy_simd') or [])}"
             if "error" not in node else f"; its environment not probed: {node['error']}")
    threads = (f"torch {c.get('torch_threads')} intra-op / {c.get('torch_interop_threads')} "
               f"inter-op threads on {c.get('usable_cores')} usable cores, OMP_NUM_THREADS "
               f"{c.get('OMP_NUM_THREADS') or 'unset'}, MKL_NUM_THREADS "
               f"{c.get('MKL_NUM_THREADS') or 'unset'}")
    return [f"- vector ISA in force: {describe(c)}", f"- node: {node_text}",
            f"- threads: {threads}"]


def _targets(result: dict[str, Any]) -> list[str]:
    """Targets table."""
    rows = []
    for t in result.get("targets", []):
        verdict = {True: "met", False: "MISSED", None: "not measured"}[t.get("met")]
        rows.append([t["name"], t["target"], verdict, t["text"]])
    return _table(["target", "goal", "verdict", "measured"], rows)


def _stages(d: dict[str, Any]) -> list[str]:
    """Per-stage table of one device."""
    stages = d["stages"]
    total = sum(v["median"] for v in stages.values())
    rows = []
    for name, v in stages.items():
        share = 100.0 * v["median"] / total if total > 0 else 0.0
        rows.append([f"`{name}`", STAGE_LABELS.get(name, ""), ms(v["median"]), ms(v["p95"]),
                     f"{share:.1f}"])
    rows.append(["**all but forward**", "sum of the medians (p95: sum of p95s)",
                 f"**{ms(d['non_network_median_s'])}**", ms(d["non_network_p95_s"]), ""])
    rows.append(["**set**", "sum of every stage median", f"**{ms(d['set_median_s'])}**", "",
                 "100"])
    c = d["counts"]
    runs = stages["forward"]["n"] if "forward" in stages else "-"
    other = next((v["n"] for k, v in stages.items() if k != "forward"), "-")
    lines = [f"Preset `{d['preset']}` on `{d['device']}` ({d['precision']}), {c['views']} views "
             f"{c['image_width']}x{c['image_height']} -> network "
             f"{c['network_width']}x{c['network_height']}, grid {c['grid_voxels']} voxels. "
             f"Work per set: {c.get('points', '-')} points, {c.get('occupied_voxels', '-')} "
             f"occupied voxels, {c.get('marker_cubes', '-')} marker cubes, "
             f"{c.get('grid_cells', '-')} grid cells. {runs} network runs, the other stages "
             f"{other} runs each, after warm-up.", ""]
    lines += _table(["stage", "what", "median ms", "p95 ms", "% of set"], rows)
    if d.get("skipped"):
        lines += ["", "Skipped: " + "; ".join(f"`{k}` ({v})" for k, v in d["skipped"].items())]
    return lines


def _odometry(o: dict[str, Any]) -> list[str]:
    """The cameras-only odometry table (odometry_source other than topic)."""
    if "rows" not in o:
        return [f"Not measured ({o.get('skipped', 'not run')})."]
    h, w = o["image_size"]
    lines = [f"What `odometry_source` adds to a set in the node (the default `topic` adds "
             f"nothing but a pose lookup): `register` of one set after another along a "
             f"{o['frames']}-frame synthetic drive (0.1 s apart), ground-truth depth at the "
             f"network size {w}x{h}, settings of config/slam.yaml. Not part of the 'all but "
             f"forward' sum above.", ""]
    rows = []
    for source, r in o["rows"].items():
        work = f"{r['points']} points" if "points" in r else f"{r.get('views', '-')} views"
        rows.append([f"`{source}`", SOURCE_LABELS.get(source, ""), work, ms(r["median"]),
                     ms(r["p95"]), str(r["n"])])
    lines += _table(["odometry_source", "what", "work per set", "median ms", "p95 ms",
                     "runs"], rows)
    if o.get("skipped"):
        lines += ["", "Skipped: " + "; ".join(f"`{k}` ({v})" for k, v in o["skipped"].items())]
    return lines


def _training(t: dict[str, Any]) -> list[str]:
    """The training-step table (bench/training.py)."""
    if "rows" not in t:
        return [f"Not measured ({t.get('skipped', 'not run')})."]
    lines = ["One optimizer step of `Trainer.process_batch` (forward under the recipe's "
             "autocast, every loss, backward, clipping, AdamW) on a synthetic batch at the "
             "preset's network size and grid. FLOPs: matrix multiplies, convolutions and "
             "attention of one step, forward and backward (`torch.utils.flop_counter`); the "
             "step time on another device is about FLOPs / the throughput it sustains. Peak "
             "RSS is the process's during the timed steps (model, optimizer state, "
             "activations); on CUDA the peak allocated memory is what the GPU must hold.", ""]
    rows = []
    for r in t["rows"]:
        if "step_s" not in r:
            rows.append([r["preset"], r["device"], "-", str(r["batch_size"]), "-", "-", "-",
                         "-", "-", "-", f"not run: {r.get('error')}"])
            continue
        step = r["step_s"]["median"]
        flops = r["flops_per_step"]
        mem = r["memory"]
        rows.append([r["preset"], r["device"], r["precision"], str(r["batch_size"]),
                     f"{r['views']} x {r['image_size'][1]}x{r['image_size'][0]}, "
                     + "x".join(str(v) for v in r["grid_dims"]),
                     f"{step:.2f} / {r['step_s']['p95']:.2f}", _f(flops / 1e9, ".0f"),
                     _f(flops / step / 1e9 if step > 0 else None, ".0f"),
                     _mib(mem.get("peak_rss_mib")), _mib(mem.get("cuda_peak_allocated_mib")),
                     f"{r['repeats']} (+{r['warmup']})"])
    return lines + _table(["preset", "device", "precision", "batch", "views x network, grid",
                           "step median / p95 s", "GFLOP per step", "GFLOP/s",
                           "peak RSS MiB", "CUDA peak MiB", "runs (+warm-up)"], rows)


def _precision_label(r: dict[str, Any]) -> str:
    """'fp32', or 'fp32 + compile (mode)' with what compiling cost (or that it fell back)."""
    mode = r.get("compile_mode")
    if mode is None:
        return r["precision"]
    if "compiled" not in r:
        return f"{r['precision']} + compile ({mode})"
    if not r["compiled"]:
        return f"{r['precision']} + compile ({mode}): fell back to eager"
    return (f"{r['precision']} + compile ({mode}; compiling "
            f"{_f(r.get('build_and_warmup_s'), '.0f')} s)")


def _forward(result: dict[str, Any]) -> list[str]:
    """Forward table."""
    rows = []
    for r in result.get("forward", []):
        if "total_s" not in r:
            why = r.get("skipped") or r.get("error")
            rows.append([r["preset"], r["device"], _precision_label(r), "-", "-", "-", "-",
                         "-", "-", "-", "-", "-", "-", f"not run: {why}"])
            continue
        mem = r["memory"]
        rows.append([
            r["preset"], r["device"], _precision_label(r),
            f"{r['views']} x {r['input_size'][0]}x{r['input_size'][1]}",
            f"{r['network_size'][0]}x{r['network_size'][1]}",
            "x".join(str(v) for v in r["grid_dims"]),
            ms(r["preprocess_s"]["median"]), ms(r["forward_s"]["median"]),
            ms(r["postprocess_s"]["median"]),
            f"{ms(r['total_s']['median'], 1)} / {ms(r['total_s']['p95'], 1)}",
            _f(r["hz"], ".2f"), _mib(mem.get("peak_rss_mib")),
            _mib(mem.get("cuda_peak_allocated_mib")), f"{r['repeats']} (+{r['warmup']})"])
    return _table(["preset", "device", "precision", "views x input", "network", "grid",
                   "preprocess ms", "forward ms", "postprocess ms", "total median / p95 ms",
                   "sets/s", "peak RSS MiB", "CUDA peak MiB", "runs (+warm-up)"], rows)


def _comparisons(result: dict[str, Any]) -> list[str]:
    """Comparison table."""
    c = result.get("comparisons", {})
    rows = []
    for r in c.get("rows", []):
        same = {True: "yes", False: "NO", None: "n/a"}[r.get("same_output")]
        ratio = r.get("ratio")
        rows.append([r["what"], r["project"], r["baseline"], ms(r["project_s"]["median"], 3),
                     ms(r["baseline_s"]["median"], 3),
                     "-" if ratio is None else f"{ratio:.1f}x", same])
    lines = _table(["comparison", "project", "baseline", "project ms", "baseline ms",
                    "ratio (baseline / project)", "same output"], rows)
    if c.get("skipped"):
        lines += ["", "Skipped: " + "; ".join(f"{k} ({v})" for k, v in c["skipped"].items())]
    return lines


def _isa_side_by_side(d: dict[str, Any]) -> list[str]:
    """The pinned ISA against the default (bench/isa_compare.py): medians over the rounds
    and their ratio."""
    isa = d["isa"]
    spec = d["spec"]
    w = d["workers"]
    lines = [f"Two worker processes, one with `--isa {isa}` pinned (torch "
             f"{w[isa]['torch_cpu_capability']}, numpy {', '.join(w[isa]['numpy_simd'])}) "
             f"and one with none of the variables (torch {w['default']['torch_cpu_capability']}"
             f", numpy {', '.join(w['default']['numpy_simd'])}), the same random-weight "
             f"`{spec['preset']}` engine and set ({spec['size'][0]}x{spec['size'][1]}), timed "
             f"in alternation: {d['rounds']} rounds each (A B B A ...), each round every stage "
             f"{spec['repeats']} times after {spec['warmup']} warm-up. Both see the same load, "
             "so the ratio holds where absolute times do not. Ratio = pinned / default "
             "(> 1: slower pinned).", ""]
    rows = []
    for name, r in [*d["stages"].items(), ("**all but forward**", d["non_network"])]:
        label = name if name.startswith("**") else f"`{name}`"
        ratio = r["ratio"]
        rows.append([label, ms(r["default"]["median"]), ms(r[isa]["median"]),
                     "-" if ratio is None else f"{ratio:.2f}"])
    return lines + _table(["stage", "default median ms", f"{isa} median ms",
                           f"ratio ({isa} / default)"], rows)


def _scaling(t: dict[str, Any], title: str) -> list[str]:
    """One scaling table: stages as rows, values as columns, growth at the end."""
    if not t or "rows" not in t:
        return [f"{title}: not measured ({t.get('skipped', 'n/a') if t else 'n/a'})."]
    values = t["rows"]
    runs = min((r["runs"] for r in values if "runs" in r), default="-")
    header = [f"stage (min of {runs} runs, ms)"] + [str(r["value"]) for r in values] + \
        ["grows as"]
    rows = []
    for s in (*t["stages"], "non_network", "total"):
        label = {"non_network": "**all but forward**", "total": "**set**"}.get(s, f"`{s}`")
        cells = [label]
        for r in values:
            cells.append("error" if "error" in r else ms(r["mins"].get(s)))
        cells.append(t["growth_text"].get(s, "n/a"))
        rows.append(cells)
    lines = [f"**{title}**", ""] + _table(header, rows)
    errors = [f"{r['value']}: {r['error']}" for r in values if "error" in r]
    if errors:
        lines += ["", "Failed points: " + "; ".join(errors)]
    return lines


def _markers(m: dict[str, Any] | None) -> str:
    """'due / arrived' MarkerArrays of a DDS step, with the missing ones bold."""
    if not m:
        return "-"
    text = f"{m['due']} / {m['received']}"
    return text if not m["missing"] else f"**{text}** ({m['missing']} missing)"


def _dds(d: dict[str, Any]) -> list[str]:
    """DDS table."""
    if not d or "steps" not in d:
        return [f"Not measured: {d.get('skipped') if d else 'n/a'}."]
    lines = [f"Node: preset `{d['node_parameters'].get('preset')}` on "
             f"`{d['node_parameters'].get('device')}` ({d['node_parameters'].get('precision')}),"
             f" {d['weights']}; {d['views']} cameras {d['images'][0]}x{d['images'][1]} rgb8 + "
             f"CameraInfo + odometry; started in {_f(d.get('startup_s'))} s; node peak RSS "
             f"{_mib(d.get('node_peak_rss_mib'))} MiB.", ""]
    if d.get("error"):
        lines += [f"**Error:** {d['error']}", "", "```", d.get("log_tail", ""), "```", ""]
    rows = []
    for s in d["steps"]:
        lat = s["latency_s"]

        def cell(g: str, lat: dict[str, Any] = lat) -> str:
            v = lat.get(g)
            return "-" if v is None else f"{ms(v['median'], 0)} / {ms(v['p95'], 0)}"

        rows.append([f"{s['rate_hz']:g}", _f(s["achieved_input_hz"], ".2f"),
                     str(s["sets_published"]), str(s["sets_published"] - s["sets_dropped"]),
                     str(s["sets_complete"]), _markers(s.get("markers")),
                     _f(s["output_hz"], ".2f"),
                     cell("depth"), cell("points"), cell("voxels"), cell("markers"),
                     cell("grid"), cell("all"), "yes" if s["keeps_up"] else "**no**"])
    lines += _table(["input Hz", "published Hz", "sets", "processed", "complete",
                     "markers due / arrived", "points Hz",
                     "depth ms", "points ms", "voxels ms", "markers ms", "grid ms",
                     "last output ms", "keeps up"], rows)
    settings = d.get("node_settings") or {}
    if "max_rate_hz" in d:
        lines += ["", f"Highest input rate the node kept up with (processed every set): "
                      f"**{d['max_rate_hz']:g} Hz**; with every output of every set delivered "
                      f"(complete): **{d.get('max_rate_complete_hz', 0.0):g} Hz**. "
                      "'processed': sets whose point cloud arrived (the others were dropped);"
                      " 'complete': sets of which every per-set output arrived (six depth "
                      "images and CameraInfo, points, voxels, grid); the MarkerArray is "
                      "published at most every markers_period "
                      f"({_f(settings.get('markers_period'), 'g')} s of set stamps), so "
                      "'markers due / arrived' counts those the node's rule makes due in the "
                      "step against those that arrived (a rate counts as complete only when "
                      "all due ones did); 'points Hz': arrival rate of the clouds. Latency "
                      "cells: median / p95 from the input stamp to the arrival at the "
                      "subscriber (depth: the last of the six cameras; markers: of the sets "
                      "that had them; last output: last per-set output of complete sets). "
                      "The node spaces large messages "
                      f"{_f(settings.get('publish_spacing'), 'g')} s apart (publish_spacing),"
                      " included in the latencies."]
    spacing = d.get("options", {}).get("camera_spacing_s")
    if spacing is not None:
        lines += ["", f"The six cameras of a set are published {spacing * 1e3:g} ms apart "
                      "(latency counts from the set's stamp, taken before the first)."]
    probe = d.get("burst_probe")
    if probe:
        lines += ["", f"Probe, cameras published back to back at {probe['rate_hz']:g} Hz: "
                      f"{probe['sets_complete']} of {probe['sets_published']} sets complete "
                      f"(sets per output: {probe.get('sets_per_output')})."]
    diag = d.get("node_diagnostics") or {}
    keys = [k for k in diag if "sets dropped" in k or "p50" in k or "p95" in k
            or k.endswith("sets partial")]
    if keys:
        lines += ["", "Node's own /diagnostics at the end: " +
                  ", ".join(f"{k} = {diag[k]}" for k in keys)]
    return lines


def report_markdown(result: dict[str, Any]) -> str:
    """The Markdown report of a benchmark result."""
    lines = ["# depth_any_view benchmark", "",
             f"Run {result.get('started')}, {_f(result.get('duration_s'), '.0f')} s: "
             f"`{result.get('command')}`", ""]
    lines += _machine(result) + [""]
    for note in result.get("notes", []):
        lines += [f"> {note}", ""]
    lines += ["## Targets", ""] + _targets(result) + [""]
    lines += ["## Per-stage latency of one synchronized set", ""]
    for d in result.get("stages", {}).values():
        lines += _stages(d) + [""]
    lines += ["## Cameras-only odometry per set", ""] + _odometry(result.get("odometry", {}))
    lines += ["", "## Network forward per preset, device and precision", ""]
    lines += ["Engine timings of `InferenceEngine.infer` (six views, random weights: speed "
              "does not depend on them); sets/s = 1 / total median; peak RSS is the "
              "process's during the measurement.", ""]
    lines += _forward(result) + [""]
    lines += ["## Training step per preset and device", ""]
    lines += _training(result.get("training", {})) + [""]
    lines += ["## Comparisons in the same run", ""] + _comparisons(result) + [""]
    if "isa_side_by_side" in result:
        lines += ["## Pinned ISA against the default, alternated in one run", ""]
        lines += _isa_side_by_side(result["isa_side_by_side"]) + [""]
    lines += ["## Scaling", ""]
    sc = result.get("scaling", {})
    if "skipped" in sc:
        lines += [f"Not measured ({sc['skipped']}).", ""]
    else:
        for key, title in (("views", "Number of views (input size fixed)"),
                           ("size", "Input size S x S (camera images and network input)"),
                           ("grid", "Occupancy grid N^3 (network grid and fused map)")):
            lines += _scaling(sc.get(key, {}), title) + [""]
    lines += ["## End to end over DDS", ""] + _dds(result.get("dds", {})) + [""]
    mem = result.get("memory", {})
    lines += ["## Memory", "",
              f"- benchmark process peak RSS: {_mib(mem.get('bench_peak_rss_mib'))} MiB",
              f"- node process peak RSS (DDS run): {_mib(mem.get('node_peak_rss_mib'))} MiB",
              "- per forward configuration: see the forward table", ""]
    return "\n".join(lines)
