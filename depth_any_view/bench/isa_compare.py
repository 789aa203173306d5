"""A pinned vector ISA against the default, side by side in one run (`bench --isa avx2`).

torch, oneDNN and numpy read their dispatch variables once, when they load, so one
process cannot time both: two worker processes do, one started with the ISA pinned
(`cpu.pinned_env`) and one with none of the variables. Each builds the same random-weight
engine and synthetic set; then they are timed in alternation, round after round (A B B A
...), each round `bench_stages` of one set (every stage of the node but `publish`), so
both see the same load and a ratio holds on a busy machine where absolute times do not.
Times are seconds; a ratio is the pinned ISA's median / the default's (> 1: slower).

    python -m depth_any_view.bench.isa_compare   # a worker: JSON lines on stdin/stdout
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from depth_any_view.bench import cpu
from depth_any_view.bench.common import summarize

WORKER_TAG = "ISA_WORKER "  # prefix of the worker's protocol lines on stdout
START_TIMEOUT_S = 300.0  # importing torch and building the engine on a loaded core


def unpinned_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """`base` (default os.environ) without any pinning variable: torch's own choice."""
    env = {k: v for k, v in (os.environ if base is None else base).items()
           if k not in cpu.ISA_VARIABLES}
    return cpu.pinned_env("default", env)


class Worker:
    """One worker process: `spec` at start, then `round()` -> stage medians (s)."""

    def __init__(self, isa: str, spec: dict[str, Any]) -> None:
        self.isa = isa
        env = unpinned_env() if isa == "default" else cpu.pinned_env(isa)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "depth_any_view.bench.isa_compare"], env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.info = self._ask(spec)  # capability, numpy targets, engine facts

    def _ask(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send one JSON line, return the worker's JSON reply (RuntimeError if it died)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()
        for line in self.proc.stdout:
            if line.startswith(WORKER_TAG):
                reply = json.loads(line[len(WORKER_TAG):])
                if "error" in reply:
                    raise RuntimeError(f"isa {self.isa} worker: {reply['error']}")
                return reply
        raise RuntimeError(f"isa {self.isa} worker exited (status {self.proc.wait()})")

    def round(self) -> dict[str, float]:
        """One round of every stage; {stage: median seconds}."""
        return self._ask({"round": True})["medians"]

    def close(self) -> None:
        """End the worker (closing its stdin ends its loop)."""
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def side_by_side(isa: str, spec: dict[str, Any], *, rounds: int = 6,
                 progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Time `spec`'s set with `isa` pinned and with the default, alternated.

    Args:
        isa: the pinned choice (avx2, avx512).
        spec: {'preset', 'size' (W, H), 'seed', 'workload_grid', 'overrides', 'threads',
            'repeats' (timed runs per stage per round), 'warmup'}.
        rounds: rounds per worker (>= 1), in the order A B B A A B ...
    Returns:
        {'isa', 'rounds', 'workers': {isa: facts}, 'stages': {stage: {'default',
        isa, 'ratio'}}, 'non_network': {...}} with summaries over the rounds.
    """
    if isa == "default" or isa not in cpu.ISA_CHOICES:
        raise ValueError(f"side_by_side needs a pinned isa ({', '.join(cpu.ISA_CHOICES[1:])})"
                         f", got {isa!r}")
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    say = progress or (lambda text: None)
    workers: dict[str, Worker] = {}
    try:
        for name in ("default", isa):
            workers[name] = Worker(name, spec)
        cpu.check_capability(isa, workers[isa].info["torch_cpu_capability"],
                             f"the {isa} worker", workers[isa].info["numpy_simd"])
        runs: dict[str, list[dict[str, float]]] = {"default": [], isa: []}
        for r in range(rounds):
            order = ("default", isa) if r % 2 == 0 else (isa, "default")
            for name in order:
                runs[name].append(workers[name].round())
            say(f"isa side by side: round {r + 1}/{rounds}")
    finally:
        for w in workers.values():
            w.close()
    stages = [s for s in runs["default"][0] if s in runs[isa][0]]
    out: dict[str, Any] = {"isa": isa, "rounds": rounds, "spec": spec,
                           "workers": {k: w.info for k, w in workers.items()}, "stages": {}}

    def row(values: dict[str, list[float]]) -> dict[str, Any]:
        a, b = summarize(values["default"]), summarize(values[isa])
        return {"default": a, isa: b,
                "ratio": b["median"] / a["median"] if a["median"] > 0 else None}

    for s in stages:
        out["stages"][s] = row({k: [m[s] for m in v] for k, v in runs.items()})
    out["non_network"] = row({k: [sum(m[s] for s in stages if s != "forward") for m in v]
                              for k, v in runs.items()})
    return out


# ---------------------------------------------------------------------------- worker
def _worker() -> int:
    """Serve rounds: the first line is the spec, then one line per round; EOF ends."""
    from depth_any_view.bench.stages import bench_stages, make_engine, quiet_loggers
    from depth_any_view.bench.workload import make_workload

    def reply(message: dict[str, Any]) -> None:
        print(WORKER_TAG + json.dumps(message), flush=True)

    lines = iter(sys.stdin)
    try:
        spec = json.loads(next(lines))
        if spec.get("threads", 0) > 0:
            import torch

            torch.set_num_threads(int(spec["threads"]))
        with quiet_loggers("depth_any_view.inference.engine", "depth_any_view.pipeline"):
            engine = make_engine(spec["preset"], "cpu", "fp32", overrides=spec["overrides"])
        w = make_workload(tuple(spec["size"]), spec["seed"], spec["workload_grid"])
    except Exception as exc:  # noqa: BLE001 - the parent reports it
        reply({"error": f"{type(exc).__name__}: {exc}"})
        return 1
    reply({**cpu.probe_here(), "pid": os.getpid(), "isa_env": cpu.isa_env(),
           "network_size": list(engine.image_size)})
    for _ in lines:
        try:
            with quiet_loggers("depth_any_view.inference.engine", "depth_any_view.pipeline"):
                r = bench_stages(engine, w, repeats=spec["repeats"], warmup=spec["warmup"])
            reply({"medians": r.medians()})
        except Exception as exc:  # noqa: BLE001 - the parent reports it
            reply({"error": f"{type(exc).__name__}: {exc}"})
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(_worker())
