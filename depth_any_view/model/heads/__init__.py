"""Prediction heads of DepthAnyViewNet and the factory that builds them from a ModelConfig.

One file per head (as dust3r's `heads/`): `depth_head.py` (DPT-like per-view depth decoder)
and `occupancy_head.py` (voxel lifting + 3D decoder).
"""

from __future__ import annotations

from torch import nn

from depth_any_view.model.config import ModelConfig
from depth_any_view.model.heads.depth_head import (
    DepthHead,
    bounded_log_depth,
    confidence_from_scale,
    inverse_bounded_log_depth,
    level_channels,
)
from depth_any_view.model.heads.occupancy_head import OccupancyHead

HEADS = ("depth", "occupancy")


def cost_feature_channels(cfg: ModelConfig) -> int:
    """Channels of the cost volume features the depth head takes (0 without the volume)."""
    return level_channels(cfg.cost_stride, cfg.decoder_width) if cfg.cost_volume else 0


def head_factory(kind: str, cfg: ModelConfig, in_channels: int | tuple[int, ...]) -> nn.Module:
    """Build a head.

    Args:
        kind: 'depth' or 'occupancy'.
        cfg: the network's configuration.
        in_channels: for 'depth' the encoder's channels at strides (2, 4, 8, 16, 32);
            for 'occupancy' the channels of the feature map it samples.
    """
    if kind == "depth":
        if not isinstance(in_channels, tuple) or len(in_channels) != 5:
            raise ValueError("the depth head needs the 5 encoder channel counts "
                             "(strides 2, 4, 8, 16, 32) as in_channels")
        return DepthHead(cfg.hidden, in_channels, token_stride=cfg.token_stride,
                         width=cfg.decoder_width, confidence=cfg.confidence,
                         cost_channels=cost_feature_channels(cfg),
                         cost_stride=cfg.cost_stride)
    if kind == "occupancy":
        if not isinstance(in_channels, int):
            raise ValueError("the occupancy head needs one int: its feature map's channels")
        return OccupancyHead(in_channels, grid_lower=cfg.grid_lower, grid_upper=cfg.grid_upper,
                             grid_dims=cfg.grid_dims, channels=cfg.occ_channels,
                             stride=cfg.occ_stride, hidden=cfg.occ_hidden,
                             blocks=cfg.occ_blocks, fine_channels=cfg.occ_fine_channels,
                             fine_kernel=cfg.occ_fine_kernel)
    raise ValueError(f"unknown head '{kind}'; use one of {HEADS}")


__all__ = ["HEADS", "DepthHead", "OccupancyHead", "bounded_log_depth", "confidence_from_scale",
           "cost_feature_channels", "head_factory", "inverse_bounded_log_depth",
           "level_channels"]
