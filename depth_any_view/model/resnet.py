"""ResNet-18/34/50 feature encoder with torchvision's parameter names.

The modules are named exactly as in `torchvision.models.resnet*` (conv1, bn1, layer1..layer4,
BasicBlock/Bottleneck with conv1/bn1/conv2/bn2(/conv3/bn3) and downsample.0/.1), so an
ImageNet state dict from torchvision loads with `load_state_dict(sd, strict=False)` after
dropping its `fc.*` entries (or `load_imagenet_state_dict`). The classifier (avgpool, fc) is
left out: the encoder returns the multi-scale feature maps. torchvision is not imported.
`width` scales every stage (64 = torchvision); the ResNet-50 bottleneck is v1.5 (stride on
the 3x3 conv), as in torchvision. The encoder owns its input normalisation
(`normalize`: ImageNet mean and std, as torchvision's weights expect).
"""

from __future__ import annotations

from torch import Tensor, nn

from depth_any_view.model.normalization import IMAGENET_MEAN, IMAGENET_STD, ImageNormalization

# (block kind, blocks per stage) of each supported depth
ARCHS: dict[str, tuple[str, tuple[int, int, int, int]]] = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
}


def conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias (torchvision's `conv3x3`)."""
    return nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)


def conv1x1(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution without bias (torchvision's `conv1x1`)."""
    return nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (ResNet-18/34)."""

    expansion = 1

    def __init__(self, in_ch: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_ch, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        """Residual block output, (N, planes, H/stride, W/stride)."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (strided) -> 1x1 bottleneck with expansion 4 (ResNet-50, v1.5)."""

    expansion = 4

    def __init__(self, in_ch: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv1x1(in_ch, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        """Residual block output, (N, 4 * planes, H/stride, W/stride)."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNetEncoder(nn.Module):
    """ResNet trunk returning features at strides 2, 4, 8, 16 and 32.

    Attributes:
        channels: output channels of the five returned maps, (stem, layer1..layer4).
        normalize: RGB in [0, 1] -> the input `forward` expects (ImageNet mean / std).
    """

    def __init__(self, arch: str = "resnet18", width: int = 64,
                 zero_init_residual: bool = True) -> None:
        """Build the trunk.

        Args:
            arch: 'resnet18', 'resnet34' or 'resnet50'.
            width: stem channels; stage i has width * 2**i planes (64 = torchvision).
            zero_init_residual: start every residual branch at zero (last BN gamma = 0),
                which helps training from scratch; ImageNet weights overwrite it.
        """
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"unknown backbone '{arch}'; use one of {sorted(ARCHS)}")
        kind, counts = ARCHS[arch]
        block = BasicBlock if kind == "basic" else Bottleneck
        self.arch = arch
        self.normalize = ImageNormalization(IMAGENET_MEAN, IMAGENET_STD)
        self.conv1 = nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self._in_ch = width
        self.layer1 = self._make_layer(block, width, counts[0], 1)
        self.layer2 = self._make_layer(block, width * 2, counts[1], 2)
        self.layer3 = self._make_layer(block, width * 4, counts[2], 2)
        self.layer4 = self._make_layer(block, width * 8, counts[3], 2)
        e = block.expansion
        self.channels: tuple[int, ...] = (width, width * e, width * 2 * e, width * 4 * e,
                                          width * 8 * e)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.zeros_(m.bn3.weight)
                elif isinstance(m, BasicBlock):
                    nn.init.zeros_(m.bn2.weight)

    def _make_layer(self, block: type[BasicBlock] | type[Bottleneck], planes: int,
                    blocks: int, stride: int) -> nn.Sequential:
        """One stage of `blocks` residual blocks; the first may stride and project."""
        downsample = None
        if stride != 1 or self._in_ch != planes * block.expansion:
            downsample = nn.Sequential(conv1x1(self._in_ch, planes * block.expansion, stride),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self._in_ch, planes, stride, downsample)]
        self._in_ch = planes * block.expansion
        layers += [block(self._in_ch, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> list[Tensor]:
        """Feature maps of a normalised image batch.

        Args:
            x: (N, 3, H, W) images through `self.normalize`, H and W multiples of 32.

        Returns:
            [f2, f4, f8, f16, f32]: (N, channels[i], H / s, W / s) for s = 2, 4, 8, 16, 32.
        """
        f2 = self.relu(self.bn1(self.conv1(x)))
        f4 = self.layer1(self.maxpool(f2))
        f8 = self.layer2(f4)
        f16 = self.layer3(f8)
        f32 = self.layer4(f16)
        return [f2, f4, f8, f16, f32]

    def load_imagenet_state_dict(self, state_dict: dict[str, Tensor]) -> None:
        """Load a torchvision ResNet state dict, ignoring its classifier (`fc.*`).

        Raises:
            RuntimeError: naming missing or unexpected keys or mismatched shapes (e.g. the
                checkpoint is another depth, or the width is not 64).
        """
        trunk = {k: v for k, v in state_dict.items() if not k.startswith("fc.")}
        self.load_state_dict(trunk, strict=True)
