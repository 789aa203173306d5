"""Image reconstruction quality: PSNR and SSIM (the latter with a torch convolution).

Inputs may be numpy arrays or torch tensors.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from depth_any_view.training.metric_arrays import to_float64


def psnr(pred: Any, target: Any, *, mask: Any | None = None, max_val: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB, 10 log10(max_val^2 / MSE), over `mask` if given.

    pred and target have equal shapes; mask broadcasts against them. Identical images give
    +inf; an empty mask gives NaN.
    """
    p, t = to_float64(pred), to_float64(target)
    if p.shape != t.shape:
        raise ValueError(f"pred {p.shape} and target {t.shape} must have the same shape")
    sq = (p - t) ** 2
    if mask is not None:
        m = np.broadcast_to(to_float64(mask) > 0, sq.shape)
        if not m.any():
            return math.nan
        mse = float(sq[m].mean())
    else:
        mse = float(sq.mean())
    return math.inf if mse == 0 else 10.0 * math.log10(max_val ** 2 / mse)


def _gaussian_window(size: int, sigma: float) -> torch.Tensor:
    """Normalised 1-D Gaussian (size,) in float64."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def ssim_map(pred: Any, target: Any, *, max_val: float = 1.0, window: int = 11,
             sigma: float = 1.5) -> np.ndarray:
    """Per-pixel SSIM (Wang et al. 2004) of images (..., C, H, W), averaged over channels.

    Gaussian window (11 x 11, sigma 1.5, reflect padding), K1 = 0.01, K2 = 0.03.
    Returns (..., H, W).
    """
    p = torch.as_tensor(to_float64(pred))
    t = torch.as_tensor(to_float64(target))
    if p.shape != t.shape or p.ndim < 3:
        raise ValueError(f"pred {tuple(p.shape)} and target {tuple(t.shape)} must be equal "
                         "shapes (..., C, H, W)")
    lead, (c, h, w) = p.shape[:-3], p.shape[-3:]
    x = p.reshape(-1, c, h, w)  # (N, C, H, W)
    y = t.reshape(-1, c, h, w)  # (N, C, H, W)
    g = _gaussian_window(window, sigma)
    kernel = (g[:, None] * g[None, :]).expand(c, 1, window, window).contiguous()
    pad = window // 2
    mode = "reflect" if min(h, w) > pad else "replicate"

    def blur(z: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(z, (pad, pad, pad, pad), mode=mode), kernel, groups=c)

    c1, c2 = (0.01 * max_val) ** 2, (0.03 * max_val) ** 2
    mu_x, mu_y = blur(x), blur(y)
    s_xx = blur(x * x) - mu_x ** 2
    s_yy = blur(y * y) - mu_y ** 2
    s_xy = blur(x * y) - mu_x * mu_y
    s = ((2 * mu_x * mu_y + c1) * (2 * s_xy + c2)
         / ((mu_x ** 2 + mu_y ** 2 + c1) * (s_xx + s_yy + c2)))  # (N, C, H, W)
    return s.mean(dim=1).reshape(*lead, h, w).numpy()


def ssim(pred: Any, target: Any, *, mask: Any | None = None, max_val: float = 1.0) -> float:
    """Mean SSIM of images (..., C, H, W) over pixels where `mask` (..., H, W) is true."""
    s = ssim_map(pred, target, max_val=max_val)
    if mask is None:
        return float(s.mean())
    m = np.broadcast_to(to_float64(mask) > 0, s.shape)
    return float(s[m].mean()) if m.any() else math.nan
