"""Shared pieces of the benchmarks: timing statistics, peak memory, machine facts, growth.

Times are seconds everywhere inside the benchmark (reports convert to milliseconds);
memory is MiB. Nothing here imports rclpy.
"""

from __future__ import annotations

import math
import os
import platform
import random
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

MIB = 1024.0 * 1024.0


def summarize(seconds: Sequence[float]) -> dict[str, float]:
    """Median, p95, mean, min and max of a list of durations in seconds (n >= 1)."""
    values = np.asarray(list(seconds), dtype=np.float64)
    if values.size == 0:
        raise ValueError("summarize needs at least one duration")
    return {"median": float(np.median(values)), "p95": float(np.percentile(values, 95)),
            "mean": float(values.mean()), "min": float(values.min()),
            "max": float(values.max()), "n": int(values.size)}


def time_call(fn: Callable[[int], Any], repeats: int, warmup: int = 1) -> dict[str, float]:
    """Summary (seconds) of `fn(i)` over `repeats` timed calls after `warmup` untimed ones.

    `fn` gets the call number (warm-up calls included), so it can vary stamps or poses.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    i = 0
    for _ in range(max(0, warmup)):
        fn(i)
        i += 1
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t0)
        i += 1
    return summarize(times)


# ---------------------------------------------------------------------------- memory
def _status_kib(field: str, pid: int | str = "self") -> float | None:
    """A kB field of /proc/<pid>/status (VmHWM, VmRSS), None where unreadable."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return float(line.split()[1])
    except OSError:
        return None
    return None


def peak_rss_mib(pid: int | str = "self") -> float | None:
    """Peak resident set size (VmHWM) of a process in MiB; None where unavailable."""
    kib = _status_kib("VmHWM", pid)
    if kib is None and pid == "self":
        try:
            import resource

            kib = float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # kB on Linux
        except (ImportError, OSError):
            return None
    return None if kib is None else kib / 1024.0


def current_rss_mib() -> float | None:
    """Current resident set size of this process in MiB."""
    kib = _status_kib("VmRSS")
    return None if kib is None else kib / 1024.0


def reset_peak_rss() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux `clear_refs` 5); True if done."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


class PeakMemory:
    """Peak RSS (MiB) and, on CUDA, peak allocated memory (MiB) within a `with` block.

    The RSS peak is the process's: where the kernel cannot reset it (`reset` False) it
    includes everything run before the block.
    """

    def __init__(self, device: Any = None) -> None:
        self.cuda = device is not None and str(device).startswith("cuda")
        self.device = device
        self.reset = False
        self.rss_mib: float | None = None
        self.cuda_mib: float | None = None

    def __enter__(self) -> PeakMemory:
        import gc

        gc.collect()
        self.reset = reset_peak_rss()
        if self.cuda:
            import torch

            torch.cuda.synchronize(self.device)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.rss_mib = peak_rss_mib()
        if self.cuda:
            import torch

            torch.cuda.synchronize(self.device)
            self.cuda_mib = torch.cuda.max_memory_allocated(self.device) / MIB

    def as_dict(self) -> dict[str, Any]:
        """{'peak_rss_mib', 'peak_rss_reset', 'cuda_peak_allocated_mib'}."""
        return {"peak_rss_mib": self.rss_mib, "peak_rss_reset": self.reset,
                "cuda_peak_allocated_mib": self.cuda_mib}


# ---------------------------------------------------------------------------- machine
def machine_info(devices: Sequence[str] = (), isa: str = "default") -> dict[str, Any]:
    """What the figures were measured on: CPU, cores, memory, load, torch and its threads,
    GPUs, Python, OS; `cpu_isa`: the vector capability in force (bench/cpu.py, `isa` is
    the --isa asked for)."""
    import torch

    from depth_any_view.bench.cpu import cpu_info
    from depth_any_view.inference.engine import cpu_name

    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = os.cpu_count()
    mem_total = None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem_total = round(float(line.split()[1]) / MIB, 1)  # kB -> GiB
                    break
    except OSError:
        pass
    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        load = None
    info: dict[str, Any] = {
        "cpu": cpu_name(), "logical_cores": os.cpu_count(), "usable_cores": affinity,
        "memory_gib": mem_total, "load_average_1_5_15": load,
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "torch_cpu_capability": _cpu_capability(), "cpu_isa": cpu_info(isa),
        "numpy": np.__version__,
        "python": sys.version.split()[0], "platform": platform.platform(),
        "cuda_available": bool(torch.cuda.is_available()), "gpus": [],
        "rmw_implementation": os.environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp"),
    }
    if torch.cuda.is_available():
        info["cuda"] = torch.version.cuda
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    info["devices"] = list(devices)
    return info


def _cpu_capability() -> str | None:
    """torch's detected CPU vector capability (e.g. AVX512), where torch says."""
    try:
        import torch

        return str(torch.backends.cpu.get_cpu_capability())
    except (AttributeError, RuntimeError):
        return None


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages, None where unavailable."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


# ---------------------------------------------------------------------------- growth
def growth_exponent(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Least-squares slope b of log(y) = a + b log(x): cost grows as x^b (None if < 2
    usable points)."""
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys)
           if x is not None and y is not None and x > 0 and y > 0]
    if len(pts) < 2 or len({p[0] for p in pts}) < 2:
        return None
    lx = np.array([p[0] for p in pts])
    ly = np.array([p[1] for p in pts])
    b = float(np.polyfit(lx, ly, 1)[0])
    return b if math.isfinite(b) else None


def describe_growth(b: float | None, variable: str, per: int = 1,
                    unit: str | None = None) -> str:
    """Words for a growth exponent b of cost ~ variable^b, e.g. 'side^1.90 = pixels^0.95
    (about linear in pixels)'; `per` is the power that turns the variable into `unit`
    (2 for an image side -> pixels, 3 for a grid side -> voxels)."""
    if b is None:
        return "n/a"
    e = b / per
    if e < 0.25:
        shape = "about constant"
    elif e < 0.75:
        shape = "sub-linear"
    elif e < 1.3:
        shape = "about linear"
    elif e < 1.75:
        shape = "super-linear"
    else:
        shape = "about quadratic or worse"
    unit = unit or variable
    if per == 1:
        return f"{variable}^{b:.2f} ({shape} in {unit})"
    return f"{variable}^{b:.2f} = {unit}^{e:.2f} ({shape} in {unit})"


# ---------------------------------------------------------------------------- DDS env
def ros_domain_id() -> int:
    """A random ROS_DOMAIN_ID (1..100) for one benchmark run, never the shell's own (so a
    robot's running system on this machine does not see the benchmark's node)."""
    own = os.environ.get("ROS_DOMAIN_ID", "0")
    choices = [d for d in range(1, 101) if str(d) != own]
    return random.SystemRandom().choice(choices)


def ms(seconds: float | None, digits: int = 2) -> str:
    """Seconds as a millisecond string, '-' for None."""
    if seconds is None or (isinstance(seconds, float) and not math.isfinite(seconds)):
        return "-"
    return f"{seconds * 1e3:.{digits}f}"
