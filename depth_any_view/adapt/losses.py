"""Self-supervised losses of adaptation: per-pixel minimum reprojection with auto-masking,
edge-aware smoothness and an anchor to the starting weights (torch).

Sources. Every target view t of a set is reconstructed from each of its sources: the
overlapping cameras of the same set (metric through the calibrated baselines) and the same
camera in the previous / next sets (through the odometry). A source is one row of
`SourceBatch`: its image, intrinsics, validity and `T_src_tgt`, the transform from the
target camera into the source camera at the source's time. The warp is training/warp.py's
`ViewWarp` (the one the training losses use) and the error is its SSIM with an L1 term,
alpha * (1 - SSIM) / 2 + (1 - alpha) * L1, as in training/losses.py `photometric_loss`.

Per-pixel minimum (monodepth2): each target pixel keeps the smallest error over its
sources, so a pixel occluded in one source or outside it is explained by another; pixels no
source sees are left out. Auto-masking: a pixel whose error against an *unwarped* temporal
source (same camera, previous / next set) is already lower than the best warped error
counts with that unwarped error, without gradient (monodepth2's minimum over warped and
unwarped errors): the robot stood still, or the thing moves with the robot. The mean runs
over every pixel some source sees, so masking a pixel never pays.

Spatial and temporal sources are two terms (trainer.py calls this once per group): in one
joint minimum the same camera a frame earlier nearly always wins (same exposure, little
motion), and the overlapping cameras, which carry the metric scale through the calibrated
baselines, would have little say.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from depth_any_view.training.warp import SSIM, ViewWarp

NO_SOURCE = 1e4  # error of a pixel a source does not see (above any real error, <= 1)


@dataclass
class SourceBatch:
    """The sources of a batch's target views, one row per (target, source) pair."""

    target: torch.Tensor  # (P,) long: index of the target view in the flattened (B*V)
    slot: torch.Tensor  # (P,) long: the pair's position among its target's sources
    images: torch.Tensor  # (P, 3, H, W) float in [0, 1]: the source images
    K: torch.Tensor  # (P, 3, 3) float32: source intrinsics at (H, W)
    valid: torch.Tensor  # (P, H, W) bool: source pixels that see the raw image
    T_src_tgt: torch.Tensor  # (P, 4, 4) float32: target camera -> source camera, metres
    temporal: torch.Tensor  # (P,) bool: same camera at another time (auto-masking)

    def select(self, rows: torch.Tensor) -> SourceBatch:
        """The rows where `rows` (P,) bool is true (slot numbers kept)."""
        return SourceBatch(self.target[rows], self.slot[rows], self.images[rows],
                           self.K[rows], self.valid[rows], self.T_src_tgt[rows],
                           self.temporal[rows])

    @property
    def slots(self) -> int:
        """Most sources of one target."""
        return int(self.slot.max().item()) + 1 if self.slot.numel() else 0


def photometric_error(a: torch.Tensor, b: torch.Tensor, ssim: SSIM,
                      alpha: float) -> torch.Tensor:
    """alpha * (1 - SSIM) / 2 + (1 - alpha) * L1 per pixel, (N, 3, H, W) -> (N, H, W)."""
    return alpha * ssim(a, b).mean(1) + (1.0 - alpha) * (a - b).abs().mean(1)


def min_reprojection_loss(depth: torch.Tensor, images: torch.Tensor, K: torch.Tensor,
                          valid: torch.Tensor, sources: SourceBatch, *, ssim_alpha: float = 0.85,
                          automask: bool = True, min_depth: float = 1e-3
                          ) -> tuple[torch.Tensor, dict[str, float]]:
    """Per-pixel minimum photometric error of every target view over its sources.

    Args:
        depth: (B, V, H, W) predicted depth, metres.
        images: (B, V, 3, H, W) target images in [0, 1] at the depth's size.
        K: (B, V, 3, 3) target intrinsics at (H, W).
        valid: (B, V, H, W) bool, target pixels that see the raw image.
        sources: the (target, source) rows (targets index the flattened B*V views).
        ssim_alpha: SSIM weight of the error.
        automask: leave out pixels an unwarped temporal source explains better.
        min_depth: metres; depths below are not warped.

    Returns:
        (mean over the pixels some source sees of the minimum error, auto-masked pixels
        counting with their unwarped error (no gradient); 0 with a graph when none is seen,
        {'photo_pixels': fraction of target pixels counted, 'automasked': fraction of
        pixels with a source that auto-masking left out}).
    """
    b, v, h, w = depth.shape
    n = b * v
    flat_depth = depth.float().reshape(n, h, w)  # (B*V, H, W)
    flat_img = images.float().reshape(n, 3, h, w)  # (B*V, 3, H, W)
    flat_K = K.float().reshape(n, 3, 3)
    if sources.target.numel() == 0:
        return flat_depth.sum() * 0.0, {"photo_pixels": 0.0, "automasked": 0.0}
    tgt = sources.target
    d_t = flat_depth[tgt]  # (P, H, W)
    warp = ViewWarp(h, w, min_depth=min_depth).to(depth.device)(
        d_t, flat_K[tgt], sources.K.float(), sources.T_src_tgt.float())
    warped = F.grid_sample(sources.images.float(), warp.grid, mode="bilinear",
                           padding_mode="border", align_corners=True)  # (P, 3, H, W)
    with torch.no_grad():
        src_ok = F.grid_sample(sources.valid[:, None].float(), warp.grid, mode="nearest",
                               padding_mode="zeros", align_corners=True)[:, 0] > 0.5
        sees = warp.in_view & src_ok & torch.isfinite(d_t) & (d_t > min_depth)  # (P, H, W)
    ssim = SSIM().to(depth.device)
    target_img = flat_img[tgt]  # (P, 3, H, W)
    err = photometric_error(warped, target_img, ssim, ssim_alpha)  # (P, H, W)
    err = torch.where(sees, err, torch.full_like(err, NO_SOURCE))
    slots = sources.slots
    table = torch.full((n, slots, h, w), NO_SOURCE, dtype=err.dtype, device=err.device)
    table = table.index_put((tgt, sources.slot), err)  # (B*V, S, H, W)
    best = table.min(dim=1).values  # (B*V, H, W)
    seen = (best < NO_SOURCE) & valid.reshape(n, h, w)  # pixels some source sees
    counted = seen
    value = best
    if automask and bool(sources.temporal.any()):
        with torch.no_grad():
            sel = sources.temporal.nonzero().flatten()
            ident = photometric_error(sources.images[sel].float(), target_img[sel], ssim,
                                      ssim_alpha)  # (T, H, W)
            ident = torch.where(sources.valid[sel], ident, torch.full_like(ident, NO_SOURCE))
            id_table = torch.full((n, slots, h, w), NO_SOURCE, dtype=err.dtype,
                                  device=err.device)
            id_table[tgt[sel], sources.slot[sel]] = ident
            identity_best = id_table.min(dim=1).values  # (B*V, H, W)
            counted = seen & (best < identity_best)
        # a masked pixel counts with its (constant) unwarped error, as in monodepth2: making
        # a pixel masked never lowers the loss below what the still image explains
        value = torch.where(counted, best, identity_best)
    loss = torch.where(seen, value, torch.zeros_like(value)).sum() / seen.sum().clamp_min(1)
    stats = {"photo_pixels": float(counted.float().mean()),
             "automasked": float((seen & ~counted).sum() / seen.sum().clamp_min(1))}
    return loss, stats


def anchor_loss(model: torch.nn.Module, start: dict[str, torch.Tensor]) -> torch.Tensor:
    """Sum of squared differences of the trainable weights to the starting ones."""
    terms = [((p - start[name]) ** 2).sum() for name, p in model.named_parameters()
             if p.requires_grad]
    return torch.stack(terms).sum() if terms else torch.zeros(())


__all__ = ["NO_SOURCE", "SourceBatch", "anchor_loss", "min_reprojection_loss",
           "photometric_error"]
