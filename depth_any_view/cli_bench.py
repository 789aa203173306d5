"""`depth-any-view bench`: its options and how it runs (the pinned-ISA re-run included).

Kept apart from cli.py because it is the largest subcommand: a dozen options, a pinned
re-run of itself (`--isa`), the CPU facts alone (`--cpu-info`). Heavy imports happen
inside the functions, as in cli.py, so `--help` stays instant.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from depth_any_view.cli_types import parse_csv, parse_rates, parse_size


def cmd_bench(args: argparse.Namespace) -> int:
    """Per-stage latency, network per preset/device/precision, comparisons, scaling and
    end to end over DDS; writes bench.json and bench.md (see BENCHMARKS.md)."""
    from depth_any_view.bench import cpu

    if args.isa != "default" and not cpu.isa_in_force(args.isa):  # before torch loads
        return cpu.run_pinned(args.isa, list(args.argv))
    try:
        if args.cpu_info:
            return _bench_cpu_info(args)
        return _bench(args)
    except cpu.IsaError as exc:
        print(f"depth-any-view bench: error: {exc}", file=sys.stderr)
        return 3


def _bench_cpu_info(args: argparse.Namespace) -> int:
    """`bench --cpu-info`: the CPU facts of the measuring process and of a child started
    with the node's environment, checked against --isa, into <out>/cpu.json."""
    import json

    from depth_any_view.bench import cpu
    from depth_any_view.bench.common import ros_domain_id
    from depth_any_view.bench.dds import node_env

    cpu.require_isa(args.isa)
    info = {"measuring": cpu.cpu_info(args.isa), "node": cpu.probe(node_env(ros_domain_id()))}
    cpu.check_capability(args.isa, info["node"]["torch_cpu_capability"],
                         "a child started with the node's environment",
                         info["node"]["numpy_simd"])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "cpu.json").write_text(json.dumps(info, indent=1) + "\n")
    node = info["node"]
    print(f"measuring process: {cpu.describe(info['measuring'])}\n"
          f"node environment: torch {node['torch_cpu_capability']}, oneDNN "
          f"{node['onednn_isa']}, numpy {', '.join(node['numpy_simd']) or 'its baseline'}\n"
          f"wrote {out / 'cpu.json'}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    """`bench` in this process (the --isa variables, if any, already in force)."""
    from depth_any_view.bench.run import BenchOptions, run_bench
    from depth_any_view.inference.engine import COMPILE_MODES

    if args.repeats is not None and args.repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {args.repeats}")
    unknown = [m for m in args.compile if m not in COMPILE_MODES]
    if unknown:
        raise ValueError(f"--compile modes must be among {', '.join(COMPILE_MODES)}, got "
                         f"{', '.join(unknown)}")
    changes: dict = {"out": Path(args.out), "devices": args.device,
                     "command": "depth-any-view " + " ".join(sys.argv[1:]),
                     "dds": not args.skip_dds, "scaling": not args.skip_scaling,
                     "odometry": not args.skip_odometry, "training": not args.skip_training,
                     "onnx": not args.skip_onnx,
                     "compile_modes": tuple(args.compile),
                     "threads": args.threads, "size": args.size, "isa": args.isa}
    if args.presets is not None:
        changes["presets"] = args.presets
    if args.repeats is not None:
        changes["repeats"] = args.repeats
    if args.rates is not None:
        changes["dds_rates"] = args.rates
    opts = BenchOptions.quick(**changes) if args.quick else BenchOptions(**changes)
    result = run_bench(opts, progress=print)
    for t in result["targets"]:
        print(f"target {t['target']:>9}: {t['text']}  [{t['name']}]")
    return 0


def add_bench_parser(sub: Any) -> None:
    """Add the `bench` subcommand to the subparsers `sub` of the command line."""
    from depth_any_view.bench.cpu import ISA_CHOICES  # no torch: json, os, subprocess

    p = sub.add_parser("bench", help="benchmarks: stages, network, scaling, DDS end to end")
    p.add_argument("--out", default="output/bench", help="output folder (bench.json, bench.md)")
    p.add_argument("--quick", action="store_true",
                   help="a short run of everything (lite only, few repeats and points)")
    p.add_argument("--skip-dds", action="store_true",
                   help="no end-to-end run of the node over DDS")
    p.add_argument("--skip-scaling", action="store_true", help="no scaling tables")
    p.add_argument("--skip-odometry", action="store_true",
                   help="no cameras-only odometry table (kiss_icp, open3d_rgbd)")
    p.add_argument("--skip-training", action="store_true",
                   help="no training-step table (time, memory and FLOPs per step)")
    p.add_argument("--skip-onnx", action="store_true",
                   help="no ONNX Runtime against torch row (it exports the network once)")
    p.add_argument("--compile", type=parse_csv, default=(), metavar="MODES",
                   help="also time the network under torch.compile in these modes, "
                        "comma-separated: default, reduce-overhead (CUDA graphs), "
                        "max-autotune (compiling takes about a minute per row on a CPU)")
    p.add_argument("--device", type=parse_csv, default=("auto",),
                   help="device(s), comma-separated: auto, cpu, cuda, cuda:N (default auto)")
    p.add_argument("--presets", type=parse_csv, default=None,
                   help="presets for the network table, comma-separated (default lite,paper; "
                        "--quick: lite); the first (lite when listed) runs the stages")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed runs per stage (default 20, --quick 3); a heavy preset on "
                        "the CPU runs its network once")
    p.add_argument("--size", type=parse_size, default=None,
                   help="camera image size WxH (default: 256x256 lite, 512x512 paper)")
    p.add_argument("--rates", type=parse_rates, default=None,
                   help="DDS input rates to climb, Hz (default 1,2,3,4,5,6,8,10,15,20,30)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads, also for the node (0 = torch's default)")
    p.add_argument("--isa", choices=ISA_CHOICES, default="default",
                   help="limit torch's, oneDNN's and MKL's vector instructions for the whole "
                        "run, node included (ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA, "
                        "MKL_ENABLE_INSTRUCTIONS; the bench re-runs itself with them set): "
                        "avx2 measures what an AVX2-only CPU gets; avx512 (without VNNI, "
                        "bf16, AMX); default pins nothing")
    p.add_argument("--cpu-info", action="store_true",
                   help="measure nothing: check --isa and write the CPU facts of the "
                        "measuring process and of the node's environment to <out>/cpu.json")
    p.set_defaults(func=cmd_bench)
