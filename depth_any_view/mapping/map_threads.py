"""torch's intra-op threads for the map's small volumes (see mapping/fusion.py, 'Speed on
the CPU'): a context manager that sets them for a block and restores them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def torch_cpu_threads(threads: int, device: torch.device) -> Iterator[None]:
    """Run torch's CPU ops of the block with `threads` intra-op threads, then restore the
    previous setting (a no-op for `threads` 0 or a CUDA device).

    torch's thread count is process-wide: use it from the one thread that runs torch (the
    node's worker, the bag evaluation, the benchmark).
    """
    if threads <= 0 or device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    if before == threads:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
