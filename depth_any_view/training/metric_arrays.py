"""The metrics' common input: float64 numpy copies of arrays or tensors, valid depth."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def to_float64(x: Any) -> np.ndarray:
    """A float64 numpy copy of an array or tensor."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    return np.array(x, dtype=np.float64)  # a contiguous copy


def valid_depth(x: np.ndarray) -> np.ndarray:
    """Finite and > 0 (valid depth)."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(x) & (x > 0)
