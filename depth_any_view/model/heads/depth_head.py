"""Depth head: a DPT-like decoder from fused tokens and encoder skips to bounded log-depth.

The fused token grid (1/token_stride) is upsampled 2x at a time; at each level the encoder
feature of that stride (1/16 layer3, 1/8 layer2, 1/4 layer1, 1/2 stem) is projected and
added, then refined by residual conv units (DPT's fusion block). The last level (1/2) is
upsampled to the input resolution and mapped to one logit per pixel; depth is bounded:
    log_depth = log(min) + sigmoid(x) * (log(max) - log(min)),  depth = exp(log_depth).
The 1/8 decoder features (fused across views) are returned too, for the occupancy head.
With `confidence`, a second 1x1 layer on the same last features predicts the Laplacian scale
b of the log-depth error (the expected |log d - log d_true|, a relative error), trained by a
negative log-likelihood beside the L1 term (training/losses.py); b = softplus(x) + b_min.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from depth_any_view.model.camera_encoding import fp32_geometry

SKIP_INDEX = {2: 0, 4: 1, 8: 2, 16: 3, 32: 4}  # stride -> index in the encoder's feature list
MIN_LOG_SCALE = 0.01  # smallest Laplacian scale of log depth (1 % relative error)
CONFIDENCE_SCALE = 0.1  # Laplacian scale (log depth) at which confidence is 0.5


def confidence_from_scale(scale: Tensor) -> Tensor:
    """Confidence in (0, 1] from the Laplacian scale b of log depth: 1 / (1 + b / 0.1).

    b is the expected absolute log-depth error, about the relative depth error: an expected
    10 % error gives 0.5, 2 % gives 0.83, 50 % gives 0.17. Monotone, so thresholding the
    confidence is thresholding the predicted error.
    """
    return 1.0 / (1.0 + scale / CONFIDENCE_SCALE)


def bounded_log_depth(logits: Tensor, min_depth: float, max_depth: float) -> Tensor:
    """log(min) + sigmoid(logits) * (log(max) - log(min)), float32; same shape as logits."""
    lo, hi = math.log(min_depth), math.log(max_depth)
    return lo + torch.sigmoid(logits.float()) * (hi - lo)


def inverse_bounded_log_depth(depth: Tensor, min_depth: float, max_depth: float) -> Tensor:
    """Logits whose `bounded_log_depth` is log(depth); depth is clamped inside the range."""
    lo, hi = math.log(min_depth), math.log(max_depth)
    s = (torch.log(depth.float()) - lo) / (hi - lo)
    return torch.logit(s.clamp(1e-6, 1.0 - 1e-6))


class ResidualConvUnit(nn.Module):
    """x + conv(relu(conv(relu(x)))), two 3x3 convolutions (DPT)."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        """(N, ch, h, w) -> (N, ch, h, w)."""
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


def level_channels(stride: int, width: int) -> int:
    """Decoder channels at a stride: `width` at 1/8 and coarser, halved per 2x finer."""
    return width if stride >= 8 else width * stride // 8


class DepthHead(nn.Module):
    """DPT-like decoder: fused tokens + encoder skips -> per-pixel depth logits."""

    def __init__(self, token_dim: int, encoder_channels: tuple[int, ...], *,
                 token_stride: int, width: int, confidence: bool = False,
                 cost_channels: int = 0, cost_stride: int = 4) -> None:
        """Args: token_dim fused token channels; encoder_channels of the maps at strides
        2, 4, 8, 16, 32; token_stride of the token grid; width channels at 1/8; confidence:
        also predict the Laplacian scale of log depth per pixel; cost_channels of the cost
        volume features added at cost_stride (0 = none)."""
        super().__init__()
        self.token_stride = token_stride
        self.cost_stride = cost_stride
        self.levels = [s for s in (16, 8, 4, 2) if s < token_stride]  # coarse -> fine
        c_tok = level_channels(token_stride, width)
        self.token_proj = nn.Conv2d(token_dim, c_tok, 1)
        self.token_refine = ResidualConvUnit(c_tok)
        self.skip_proj = nn.ModuleDict()
        self.up_proj = nn.ModuleDict()
        self.refine = nn.ModuleDict()
        prev = c_tok
        for s in self.levels:
            c = level_channels(s, width)
            self.up_proj[f"s{s}"] = nn.Conv2d(prev, c, 1)
            self.skip_proj[f"s{s}"] = nn.Conv2d(encoder_channels[SKIP_INDEX[s]], c, 1)
            self.refine[f"s{s}"] = nn.Sequential(ResidualConvUnit(c), ResidualConvUnit(c))
            prev = c
        c_out = max(8, width // 8)
        self.out_conv = nn.Conv2d(prev, c_out, 3, padding=1)
        self.out_logit = nn.Conv2d(c_out, 1, 1)
        nn.init.normal_(self.out_logit.weight, std=1e-3)  # start near the range's midpoint
        nn.init.zeros_(self.out_logit.bias)
        self.out_scale = nn.Conv2d(c_out, 1, 1) if confidence else None
        if self.out_scale is not None:  # start at b ~ 0.3 (a confident guess is learnt)
            nn.init.normal_(self.out_scale.weight, std=1e-3)
            nn.init.constant_(self.out_scale.bias, -1.0)
        self.feature_channels = level_channels(8, width)
        self.cost_proj = None
        if cost_channels:
            if cost_stride > token_stride:
                raise ValueError(f"cost_stride {cost_stride} must not exceed the token stride "
                                 f"{token_stride}")
            self.cost_proj = nn.Conv2d(cost_channels, level_channels(cost_stride, width), 1)
            nn.init.zeros_(self.cost_proj.weight)  # starts as the decoder without the volume
            nn.init.zeros_(self.cost_proj.bias)

    def forward(self, tokens: Tensor, skips: list[Tensor], image_hw: tuple[int, int],
                cost: Tensor | None = None, ground: dict[str, Tensor] | None = None
                ) -> tuple[Tensor, Tensor, Tensor | None]:
        """Decode one batch of views.

        Args:
            tokens: (N, token_dim, H / token_stride, W / token_stride) fused tokens.
            skips: encoder maps [f2, f4, f8, f16, f32], (N, C_i, H / s, W / s).
            image_hw: (H, W) output size in pixels.
            cost: (N, cost_channels, H / cost_stride, W / cost_stride) cost volume
                features, or None (needs a head built with cost_channels).
            ground: ground-plane features per decoder level, {'s8': (N, c8, H/8, W/8), ...}
                (`GroundPlaneEncoder`), added with that level's skip; None = none.

        Returns:
            logits (N, 1, H, W) (float32; map with `bounded_log_depth`), the decoder
            features at 1/8, (N, feature_channels, H / 8, W / 8), and the Laplacian scale of
            log depth (N, 1, H, W) float32 (None without `confidence`).
        """
        x = self.token_proj(tokens)
        if cost is not None and self.cost_stride == self.token_stride:
            x = x + self.cost_proj(cost)
        x = self.token_refine(x)
        feat8 = x
        for s in self.levels:
            key = f"s{s}"
            x = F.interpolate(self.up_proj[key](x), scale_factor=2.0, mode="bilinear",
                              align_corners=False)
            x = x + self.skip_proj[key](skips[SKIP_INDEX[s]])
            if ground is not None and key in ground:
                x = x + ground[key]
            if cost is not None and s == self.cost_stride:
                x = x + self.cost_proj(cost)
            x = self.refine[key](x)
            if s == 8:
                feat8 = x
        x = F.interpolate(x, size=image_hw, mode="bilinear", align_corners=False)
        x = F.relu(self.out_conv(x))
        with fp32_geometry(x):  # the logit layer in float32: bf16 would quantise depth ~1%
            logits = F.conv2d(x.float(), self.out_logit.weight.float(),
                              self.out_logit.bias.float())
            scale = None
            if self.out_scale is not None:
                raw = F.conv2d(x.float(), self.out_scale.weight.float(),
                               self.out_scale.bias.float())
                scale = F.softplus(raw) + MIN_LOG_SCALE
        return logits, feat8, scale
