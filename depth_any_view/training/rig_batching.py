"""Batches of samples from different rigs: resize, pad to a fixed view count, drop views.

Training on randomised rigs (issue 20) mixes shard directories whose camera count, names
and image size differ (the standard six-camera world, the shifted world's random rigs),
so samples cannot be stacked as they are. `RigNormalisedDataset` brings every sample to
one shape before collation:
- images (and the previous frame's) resized to the network's input size with
  antialiasing, K scaled to match (pixel centres at integers, as `resize_views`); an
  image of another aspect ratio is stretched and its K says so (fx != fy), as the
  inference engine does at run time;
- ground-truth depth resized to `depth_size` by nearest neighbour (NaN stays NaN, no
  depth is invented between a near and a far surface);
- a sample with more than `max_views` views keeps a random subset of them (drawn per
  sample, so the weights still see every camera);
- views padded to `max_views` with zero images, identity intrinsics and extrinsics and
  NaN depth, and `view_mask` False for them (the network ignores masked views);
- with `view_dropout` p, each real view is masked with probability p (at least one
  stays), so the weights learn any subset of cameras 1..max_views.
The per-sample randomness comes from a generator seeded by (seed, epoch, index).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from depth_any_view.training.losses import scale_intrinsics

PER_VIEW_KEYS = ("images", "depth", "K", "T_base_cam", "prev_images")


def resize_images(images: torch.Tensor, K: torch.Tensor, size: tuple[int, int]
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """(V, 3, H, W) images -> (V, 3, h, w) and (V, 3, 3) K scaled to match."""
    V, C, H, W = images.shape
    h, w = size
    if (H, W) == (h, w):
        return images, K
    small = F.interpolate(images, size=(h, w), mode="bilinear", align_corners=False,
                          antialias=True)
    return small, scale_intrinsics(K, w / W, h / H)


def resize_depth(depth: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(V, H, W) depth in metres -> (V, h, w) by nearest neighbour (NaN kept)."""
    if tuple(depth.shape[-2:]) == tuple(size):
        return depth
    return F.interpolate(depth[:, None], size=size, mode="nearest-exact")[:, 0]


def pad_views(sample: dict[str, Any], max_views: int) -> dict[str, Any]:
    """Pad every per-view entry to `max_views` and add `view_mask` (True = real view)."""
    V = sample["images"].shape[0]
    if V > max_views:
        raise ValueError(f"a sample has {V} views but max_views is {max_views}; raise the "
                         "training option 'max_views' (the network takes 1 to 8)")
    out = dict(sample)
    mask = sample.get("view_mask", torch.ones(V, dtype=torch.bool))
    extra = max_views - V
    out["view_mask"] = torch.cat([mask, torch.zeros(extra, dtype=torch.bool)])
    if extra == 0:
        return out
    fill = {"images": 0.0, "prev_images": 0.0, "depth": float("nan")}
    for key in PER_VIEW_KEYS:
        if key not in sample:
            continue
        x = sample[key]
        if key in ("K", "T_base_cam"):
            pad = torch.eye(x.shape[-1], dtype=x.dtype).expand(extra, *x.shape[1:])
        else:
            pad = torch.full((extra, *x.shape[1:]), fill[key], dtype=x.dtype)
        out[key] = torch.cat([x, pad])
    return out


def drop_views(view_mask: torch.Tensor, prob: float,
               generator: torch.Generator) -> torch.Tensor:
    """`view_mask` with each True entry turned False with probability `prob`; >= 1 stays."""
    if prob <= 0:
        return view_mask
    coins = torch.rand(view_mask.shape, generator=generator) >= prob
    kept = view_mask & coins
    if not kept.any():  # keep one real view, drawn at random
        real = torch.nonzero(view_mask).flatten()
        pick = real[torch.randint(len(real), (1,), generator=generator)]
        kept = torch.zeros_like(view_mask)
        kept[pick] = True
    return kept


class RigNormalisedDataset(Dataset):
    """Wraps a dataset of per-rig samples into fixed-shape samples (module docstring)."""

    def __init__(self, base: Dataset, *, image_size: tuple[int, int],
                 depth_size: tuple[int, int], max_views: int, view_dropout: float = 0.0,
                 seed: int = 0) -> None:
        """Args: image_size / depth_size (h, w) pixels; max_views padded view count;
        view_dropout probability of masking a real view; seed of the dropout draws."""
        if not 0.0 <= view_dropout < 1.0:
            raise ValueError(f"view_dropout must be in [0, 1), got {view_dropout}")
        self.base = base
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.depth_size = (int(depth_size[0]), int(depth_size[1]))
        self.max_views = int(max_views)
        self.view_dropout = float(view_dropout)
        self.seed = int(seed)
        self._epoch = 0

    @property
    def epoch(self) -> int:
        """The epoch the draws are seeded with; setting it also sets the wrapped one's."""
        return self._epoch

    @epoch.setter
    def epoch(self, value: int) -> None:
        self._epoch = int(value)
        if hasattr(self.base, "epoch"):
            self.base.epoch = int(value)

    def __len__(self) -> int:
        """Number of samples of the wrapped dataset."""
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Sample `index` resized, padded and with views dropped (see the module docstring)."""
        sample = dict(self.base[index])
        sample.pop("camera_names", None)  # names differ between rigs; the mask says enough
        gen = torch.Generator().manual_seed(
            (self.seed * 7_919 + self.epoch * 104_729 + index) % (2**63 - 1))
        V = sample["images"].shape[0]
        if V > self.max_views:
            keep = torch.randperm(V, generator=gen)[:self.max_views].sort().values
            for key in PER_VIEW_KEYS + ("view_mask",):
                if key in sample:
                    sample[key] = sample[key][keep]
        K = sample["K"]
        sample["images"], sample["K"] = resize_images(sample["images"], K, self.image_size)
        if "prev_images" in sample:
            sample["prev_images"], _ = resize_images(sample["prev_images"], K, self.image_size)
        sample["depth"] = resize_depth(sample["depth"], self.depth_size)
        sample = pad_views(sample, self.max_views)
        sample["view_mask"] = drop_views(sample["view_mask"], self.view_dropout, gen)
        # a dropped view's truth must not supervise the output the network leaves undefined
        sample["depth"] = torch.where(sample["view_mask"][:, None, None], sample["depth"],
                                      torch.full_like(sample["depth"], float("nan")))
        return sample
