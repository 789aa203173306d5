"""The CPU a benchmark runs on, and pinning the vector instructions its libraries may use.

What the figures depend on: the CPU model, its vector-unit flags (/proc/cpuinfo), the
capability torch's own kernels dispatch to (`torch.backends.cpu.get_cpu_capability()`),
the ISA oneDNN (convolutions) picked, numpy's SIMD dispatch targets, the BLAS kernels, and
the threads.

Pinning (`bench --isa avx2`) limits the dispatch so that a machine with AVX-512 measures
what an AVX2-only machine gets: `ATEN_CPU_CAPABILITY` (torch's kernels),
`ONEDNN_MAX_CPU_ISA` (oneDNN), `MKL_ENABLE_INSTRUCTIONS` (MKL's GEMMs), `OPENBLAS_CORETYPE`
(numpy's OpenBLAS) and `NPY_DISABLE_CPU_FEATURES` (numpy's own loops: the mapping and
messages around the network). All are read once, when the libraries load, so they must
be in the environment before torch and numpy are imported: the benchmark runs its
measuring part in a child process started with them (`pinned_env`), and the node it
starts over DDS inherits them. Nothing is assumed: torch's capability and numpy's targets
are read back in the measuring process (`check_capability`), in a child with the node's
environment, and (torch's) from the node's /diagnostics; oneDNN's ISA from its verbose
start-up line in a child started with the same environment (`probe`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# --isa choice -> environment of the libraries that read it once, when they load;
# "default" pins nothing (the environment as it is). numpy's part is `numpy_disable`.
ISA_ENV: dict[str, dict[str, str]] = {
    "default": {},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
             "MKL_ENABLE_INSTRUCTIONS": "AVX2", "OPENBLAS_CORETYPE": "Haswell"},
    # AVX-512 without VNNI, bf16 or AMX (oneDNN's AVX512_CORE, numpy's Skylake-X level);
    # OpenBLAS is left to choose: its variable forces kernels rather than capping them
    "avx512": {"ATEN_CPU_CAPABILITY": "avx512", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE",
               "MKL_ENABLE_INSTRUCTIONS": "AVX512"},
}
ISA_CHOICES = tuple(ISA_ENV)
NUMPY_VARIABLE = "NPY_DISABLE_CPU_FEATURES"  # numpy's runtime-dispatched SIMD targets off
ISA_VARIABLES = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS",
                 "OPENBLAS_CORETYPE", NUMPY_VARIABLE)
# numpy dispatch targets above each choice (numpy 2.x names, then 1.x names)
NUMPY_ABOVE = {"avx2": ("X86_V4", "AVX512F", "AVX512CD", "AVX512_KNL", "AVX512_KNM",
                        "AVX512_SKX", "AVX512_CLX", "AVX512_CNL", "AVX512_ICL", "AVX512_SPR"),
               "avx512": ("AVX512_CLX", "AVX512_CNL", "AVX512_ICL", "AVX512_SPR")}
# what torch.backends.cpu.get_cpu_capability() must say under each pinned choice
EXPECTED_CAPABILITY = {"avx2": "AVX2", "avx512": "AVX512"}
# /proc/cpuinfo flags that decide which kernels run (reported when present)
VECTOR_FLAGS = ("sse4_2", "avx", "fma", "f16c", "avx2", "avx_vnni", "avx512f", "avx512dq",
                "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "avx512_fp16",
                "amx_tile", "amx_bf16", "amx_int8")
KEY_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile")  # said when absent, too
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
PROBE_TIMEOUT_S = 120.0  # a child importing torch on a loaded core


class IsaError(RuntimeError):
    """The vector capability in force is not the one asked for."""


def cpuinfo_field(field: str, cpuinfo: str | None = None) -> str | None:
    """The value of the first line of /proc/cpuinfo (or of the `cpuinfo` text) that starts
    with `field` ('model name', 'flags'); None where there is none or it is unreadable."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
    for line in cpuinfo.splitlines():
        if line.startswith(field):
            return line.split(":", 1)[1].strip()
    return None


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo ('unknown' where unreadable)."""
    return cpuinfo_field("model name") or "unknown"


def cpu_flags(cpuinfo: str | None = None) -> list[str]:
    """The `VECTOR_FLAGS` the CPU has, in that order (from /proc/cpuinfo's first 'flags'
    line, or `cpuinfo` text); [] where unreadable."""
    have = set((cpuinfo_field("flags", cpuinfo) or "").split())
    return [f for f in VECTOR_FLAGS if f in have]


def isa_env(environ: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """The pinning variables as set in `environ` (default os.environ), None = unset."""
    env = os.environ if environ is None else environ
    return {k: env.get(k) for k in ISA_VARIABLES}


def _numpy_dispatch() -> tuple[list[str], dict[str, bool]]:
    """numpy's runtime-dispatch targets and the CPU features it found in this process
    (([], {}) where this numpy does not expose them)."""
    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    except ImportError:
        return [], {}
    return list(__cpu_dispatch__), dict(__cpu_features__)


def numpy_disable(isa: str) -> str:
    """NPY_DISABLE_CPU_FEATURES for `isa`: the dispatch targets of this numpy above it
    (numpy warns about names it does not dispatch, so only those are named)."""
    targets, _ = _numpy_dispatch()
    return " ".join(t for t in targets if t in NUMPY_ABOVE.get(isa, ()))


def numpy_simd() -> list[str]:
    """numpy's dispatch targets in use in this process (e.g. ['X86_V3', 'X86_V4'])."""
    targets, features = _numpy_dispatch()
    return [t for t in targets if features.get(t)]


def isa_variables(isa: str) -> dict[str, str]:
    """Every variable `isa` sets (torch, oneDNN, MKL, OpenBLAS, numpy); {} for default."""
    if isa not in ISA_ENV:
        raise ValueError(f"isa must be one of {', '.join(ISA_CHOICES)}, got {isa!r}")
    out = dict(ISA_ENV[isa])
    if isa != "default":
        out[NUMPY_VARIABLE] = numpy_disable(isa)
    return out


def pinned_env(isa: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """`base` (default os.environ) with the variables of `isa` set; 'default' changes
    nothing. The package's root leads PYTHONPATH, so a child imports this very code."""
    env = dict(os.environ if base is None else base)
    env.update(isa_variables(isa))
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def isa_in_force(isa: str, environ: Mapping[str, str] | None = None) -> bool:
    """True when `environ` (default os.environ) already holds every variable of `isa`."""
    env = os.environ if environ is None else environ
    return all(env.get(k) == v for k, v in isa_variables(isa).items())


def torch_capability() -> str | None:
    """torch's CPU vector capability in this process (e.g. 'AVX2', 'AVX512')."""
    try:
        import torch

        return str(torch.backends.cpu.get_cpu_capability())
    except (AttributeError, RuntimeError):
        return None


def check_capability(isa: str, reported: str | None, where: str,
                     numpy_found: list[str] | None = None) -> None:
    """Raise IsaError unless `reported` (torch's capability in `where`) is what `isa` pins
    and numpy uses no dispatch target above it (`numpy_found`, None = not checked);
    'default' pins nothing and accepts anything."""
    want = EXPECTED_CAPABILITY.get(isa)
    if want is None:
        return
    if reported != want:
        raise IsaError(
            f"--isa {isa}: torch reports CPU capability {reported} in {where}, not {want} "
            f"(pinning variables there: {ISA_ENV[isa]}; a CPU without {want} cannot run it, "
            "and the variables only act when set before torch is imported)")
    above = [t for t in numpy_found or () if t in NUMPY_ABOVE[isa]]
    if above:
        raise IsaError(f"--isa {isa}: numpy dispatches to {', '.join(above)} in {where} "
                       f"({NUMPY_VARIABLE} must name them before numpy is imported)")


def require_isa(isa: str) -> None:
    """Raise unless this process runs with `isa` pinned: its variables in the environment
    and torch reporting its capability (ValueError for an unknown choice, IsaError else)."""
    if not isa_in_force(isa):
        raise IsaError(f"isa {isa} needs {isa_variables(isa)} in the environment before "
                       "torch and numpy are imported: run `depth-any-view bench --isa ...` "
                       "(it starts the measuring process with them)")
    check_capability(isa, torch_capability(), "the measuring process", numpy_simd())


def threads_info() -> dict[str, Any]:
    """Threads that set the CPU work: torch's intra- and inter-op threads, the usable cores
    (affinity) and OMP_NUM_THREADS / MKL_NUM_THREADS as set."""
    import torch

    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    return {"torch_threads": torch.get_num_threads(),
            "torch_interop_threads": torch.get_num_interop_threads(),
            "usable_cores": usable, **{k: os.environ.get(k) for k in THREAD_VARIABLES}}


def parse_onednn_isa(text: str) -> str | None:
    """The ISA from oneDNN's verbose start-up lines ('onednn_verbose,...,cpu,isa:<ISA>')."""
    for line in text.splitlines():
        if line.startswith(("onednn_verbose", "dnnl_verbose")) and ",isa:" in line:
            return line.split(",isa:", 1)[1].strip()
    return None


_PROBE = """
import json, os, torch
x = torch.zeros(1, 32, 64, 64)  # large enough that torch hands the convolution to oneDNN
torch.nn.functional.conv2d(x, torch.zeros(32, 32, 3, 3))
from depth_any_view.bench.cpu import probe_here
print("PROBE " + json.dumps({**probe_here(), "pid": os.getpid()}), flush=True)
"""


def probe_here() -> dict[str, Any]:
    """This process's torch capability, numpy targets, BLAS kernels and torch threads."""
    import torch

    return {"torch_cpu_capability": torch_capability(), "numpy_simd": numpy_simd(),
            "blas": blas_info(), "torch_threads": torch.get_num_threads()}


def blas_info() -> list[str]:
    """The BLAS libraries loaded here and the kernels they picked, e.g. 'openblas
    Haswell' (threadpoolctl; [] without it)."""
    try:
        import threadpoolctl
    except ImportError:
        return []
    return sorted({f"{i.get('internal_api')} {i.get('architecture') or ''}".strip()
                   for i in threadpoolctl.threadpool_info() if i.get("user_api") == "blas"})


def probe(env: Mapping[str, str] | None = None, timeout_s: float = PROBE_TIMEOUT_S
          ) -> dict[str, Any]:
    """Start a Python child with `env` (default os.environ), run one oneDNN convolution
    with ONEDNN_VERBOSE=1, and return what it saw: {'torch_cpu_capability', 'onednn_isa'
    (None when oneDNN printed none), 'numpy_simd', 'blas', 'torch_threads', 'isa_env'}."""
    child = dict(os.environ if env is None else env, ONEDNN_VERBOSE="1")
    root = str(Path(__file__).resolve().parents[2])  # the probe imports this module
    child["PYTHONPATH"] = os.pathsep.join(p for p in (root, child.get("PYTHONPATH")) if p)
    run = subprocess.run([sys.executable, "-c", _PROBE], env=child, capture_output=True,
                         text=True, timeout=timeout_s, check=False)
    line = next((ln for ln in run.stdout.splitlines() if ln.startswith("PROBE ")), None)
    if run.returncode != 0 or line is None:
        raise RuntimeError(f"CPU probe exited with status {run.returncode}: "
                           f"{(run.stderr or run.stdout)[-800:]}")
    out = json.loads(line[len("PROBE "):])
    out["onednn_isa"] = parse_onednn_isa(run.stdout)
    out["isa_env"] = isa_env(child)
    return out


def cpu_info(isa: str = "default") -> dict[str, Any]:
    """What this process's figures run on: model, vector flags, torch's capability (this
    process), oneDNN's ISA (a child with this environment), threads, the pinning
    variables in force and the --isa asked for."""
    try:
        onednn = probe()["onednn_isa"]
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        onednn = f"unknown ({exc})"
    return {"model": cpu_model(), "flags": cpu_flags(), "isa": isa,
            "torch_cpu_capability": torch_capability(), "onednn_isa": onednn,
            "numpy_simd": numpy_simd(), "blas": blas_info(), "isa_env": isa_env(),
            **threads_info()}


def describe(info: Mapping[str, Any]) -> str:
    """One line of `cpu_info`: 'AMD EPYC; torch AVX2, oneDNN Intel AVX2; ...'."""
    env = {k: v for k, v in (info.get("isa_env") or {}).items() if v is not None}
    pinned = (f"pinned by --isa {info['isa']}" if info.get("isa", "default") != "default"
              else "not pinned (--isa default)")
    if env:
        pinned += " (" + ", ".join(f"{k}={v}" for k, v in env.items()) + ")"
    flags = info.get("flags") or []
    lacks = [f for f in KEY_FLAGS if f not in flags]
    return (f"{info.get('model')}: torch dispatches to {info.get('torch_cpu_capability')}, "
            f"oneDNN to {info.get('onednn_isa')}, numpy to "
            f"{', '.join(info.get('numpy_simd') or []) or 'its baseline'}, BLAS "
            f"{', '.join(info.get('blas') or []) or 'unknown'}; {pinned}; the CPU has "
            f"{', '.join(flags) or 'no listed vector flags'}"
            + (f" (not {', '.join(lacks)})" if lacks else ""))


def run_pinned(isa: str, argv: list[str]) -> int:
    """Run `depth-any-view <argv>` in a child with `isa` pinned (its output goes where
    this process's goes); returns the child's exit status."""
    env = pinned_env(isa)
    return subprocess.run([sys.executable, "-m", "depth_any_view.cli", *argv], env=env,
                          check=False).returncode
