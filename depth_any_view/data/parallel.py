"""One shared thread pool for the synthetic world's numpy work (shading, labelling).

numpy ufuncs, fancy indexing and OpenCV release the GIL on large arrays, so independent
chunks of pixels or voxels run in parallel threads. Results never depend on the number of
threads: every job writes its own slice or returns its own ids.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

_POOL: ThreadPoolExecutor | None = None


def num_threads() -> int:
    """Worker threads to use: the CPUs this process may run on (at least 1, at most 16)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 16))


def submit_all(jobs: Sequence[Callable[[], Any]]) -> list[Future]:
    """Start every job (in the calling thread when only one thread is available)."""
    global _POOL
    if num_threads() == 1:
        out = []
        for job in jobs:
            f: Future = Future()
            f.set_result(job())
            out.append(f)
        return out
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=num_threads(), thread_name_prefix="synth")
    return [_POOL.submit(job) for job in jobs]


def run_all(jobs: Sequence[Callable[[], Any]]) -> list[Any]:
    """Results of every job, in order (exceptions re-raised)."""
    return [f.result() for f in submit_all(jobs)]
