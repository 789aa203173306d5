"""Benchmarks of depth_any_view (`depth-any-view bench`, BENCHMARKS.md).

- `stages`: per-stage latency of one synchronized set, the network per preset / device /
  precision, peak memory;
- `compare`: the project's conversions against the per-point / per-row Python baselines,
  numpy vs torch depth -> points, fp32 vs bf16;
- `scaling`: views 1..6, input size, occupancy grid size, with fitted growth;
- `dds`: the node in another process over DDS: latency per output and the highest input
  rate it keeps up with;
- `cpu`: the CPU it ran on (model, vector flags, torch's capability, oneDNN's ISA, numpy's
  targets, threads) and `--isa` pinning; `isa_compare`: the pinned ISA against the
  default, alternated in two worker processes;
- `run`: one run of everything (`BenchOptions`, `run_bench`); `report`: bench.json and
  bench.md.
"""
