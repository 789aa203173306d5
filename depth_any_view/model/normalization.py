"""Input normalisation of an image encoder: RGB in [0, 1] -> what its weights expect.

Each encoder owns one (`encoder.normalize`), because pretrained weights fix it: the ResNets
use ImageNet's per-channel mean and std (torchvision's convention), EfficientNet-Lite uses
TensorFlow's (255 x - 127) / 128 (efficientnet.py). The constants are non-persistent
buffers: they follow `.to(device)` but are not weights, so files never carry them.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torchvision's ImageNet RGB mean, images in [0, 1]
IMAGENET_STD = (0.229, 0.224, 0.225)  # torchvision's ImageNet RGB std


class ImageNormalization(nn.Module):
    """(x - mean) / std per RGB channel, for images in [0, 1]."""

    def __init__(self, mean: tuple[float, float, float],
                 std: tuple[float, float, float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: Tensor) -> Tensor:
        """Normalised images, (N, 3, H, W) -> (N, 3, H, W)."""
        return (images - self.mean) / self.std

    def extra_repr(self) -> str:
        """The constants, so that `print(model)` shows which convention is used."""
        return (f"mean={tuple(round(v, 4) for v in self.mean.flatten().tolist())}, "
                f"std={tuple(round(v, 4) for v in self.std.flatten().tolist())}")
