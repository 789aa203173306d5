"""Input normalisation belongs to the encoder: the shipped ResNet weights give what they gave.

The reference numbers were recorded with the code before the normalisation moved from the
network into the encoder (commit 3dd3cf9): the shipped `lite` weights on a seeded random
six-view input, summarised as mean log depth over 2x2 quadrants of every view, mean
confidence per view and the occupancy logits pooled to 2x2x2. Any change to the ResNet's
normalisation (e.g. TF's (255 x - 127) / 128) moves them by far more than the tolerance.
"""

import math

import torch
import torch.nn.functional as F

from depth_any_view.model.network import DepthAnyViewNet
from depth_any_view.model.normalization import IMAGENET_MEAN, IMAGENET_STD
from depth_any_view.model.weights import default_weights_path, load_weights

LOG_DEPTH_2X2 = [0.70076, 0.79193, 0.75120, 0.81137, 0.01878, 0.69332, -0.02511, 0.72727,
                 0.69769, 0.21587, 0.70445, 0.19256, 0.75704, 0.75611, 0.70431, 0.79016,
                 0.04336, 0.69238, 0.06365, 0.68271, 0.70889, 0.14250, 0.72399, 0.08796]
CONFIDENCE = [0.42752, 0.44870, 0.43313, 0.42528, 0.43557, 0.44575]
OCCUPANCY_2X2X2 = [7.51705, 7.54880, 5.79556, 5.30879, 6.71445, 6.52337, 6.57465, 7.40665]


def seeded_ring(V: int = 6, size: int = 128) -> tuple[torch.Tensor, ...]:
    """Random images (seed 0) and V outward-looking 90 deg cameras 1.6 m high."""
    images = torch.rand(1, V, 3, size, size, generator=torch.Generator().manual_seed(0))
    f = size / 2.0
    K = torch.tensor([[f, 0.0, f - 0.5], [0.0, f, f - 0.5], [0.0, 0.0, 1.0]]).expand(1, V, 3, 3)
    R = torch.tensor([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    T = torch.eye(4).repeat(1, V, 1, 1)
    for v in range(V):
        c, s = math.cos(2 * math.pi * v / V), math.sin(2 * math.pi * v / V)
        T[:, v, :3, :3] = torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ R
        T[:, v, :3, 3] = torch.tensor([0.25 * c, 0.25 * s, 1.6])
    return images, K, T


def test_shipped_resnet_weights_give_the_recorded_outputs():
    state, cfg, _ = load_weights(default_weights_path("lite"))
    assert cfg.backbone == "resnet18"
    net = DepthAnyViewNet(cfg).eval()
    net.load_state_dict(state)
    with torch.inference_mode():
        out = net(*seeded_ring())
    got = {"log depth": F.adaptive_avg_pool2d(out.log_depth[0], 2).flatten(),
           "confidence": out.confidence[0].mean(dim=(1, 2)),
           "occupancy": F.adaptive_avg_pool3d(out.occupancy_logits, 2).flatten()}
    want = {"log depth": LOG_DEPTH_2X2, "confidence": CONFIDENCE, "occupancy": OCCUPANCY_2X2X2}
    for name, value in got.items():
        assert torch.allclose(value, torch.tensor(want[name]), atol=2e-4), name


def test_resnet_encoder_normalises_with_imagenet_mean_and_std():
    state, cfg, _ = load_weights(default_weights_path("lite"))
    norm = DepthAnyViewNet(cfg).encoder.normalize
    x = torch.rand(2, 3, 8, 8)
    want = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(
        1, 3, 1, 1)
    assert torch.equal(norm(x), want)
    assert IMAGENET_MEAN == (0.485, 0.456, 0.406) and IMAGENET_STD == (0.229, 0.224, 0.225)
