"""Host -> device copies that do not make the host wait for the device.

A plain `torch.as_tensor(array, device='cuda')` copies from pageable host memory, and
torch then synchronises the stream: the host waits for every kernel queued before it.
The map's per-set uploads (the camera matrices of carving, the sampling affine, the z
weights of the fusion, depth from the host) go through pinned memory with a non-blocking
copy instead, which the caching host allocator recycles once the copy is done. On the
CPU this is `torch.as_tensor`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def to_device(data: Any, device: torch.device | str, dtype: torch.dtype | None = None
              ) -> torch.Tensor:
    """`data` (numpy array, tensor or nested sequence) as a tensor of `dtype` (None: its
    own) on `device`, without a host synchronisation for a host -> CUDA copy. A tensor
    already there (and of that dtype) is returned as it is, not copied."""
    device = torch.device(device)
    if isinstance(data, torch.Tensor) and data.device.type != "cpu":
        return data.to(device=device, dtype=dtype)  # device to device: stays queued
    if isinstance(data, np.ndarray):
        data = np.ascontiguousarray(data)  # torch takes no negative strides
    t = torch.as_tensor(data, dtype=dtype)  # on the host
    if device.type != "cuda":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)
