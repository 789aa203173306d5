"""The multi-view depth + occupancy network (torch only).

`DepthAnyViewNet` (network.py) = shared ResNet (resnet.py) or EfficientNet-Lite0
(efficientnet.py) encoder, each with its input normalisation, + Plücker camera-ray
embedding (camera_encoding.py) + alternating within-view / cross-view transformer
(fusion.py) + depth and occupancy heads (heads/). `ModelConfig` and the `lite` / `paper`
presets are in config.py; weights on disk in weights.py.
"""

from depth_any_view.model.config import ModelConfig, load_model_config
from depth_any_view.model.network import (
    DepthAnyViewNet,
    ModelOutput,
    build_model,
    count_parameters,
    describe,
)

__all__ = ["DepthAnyViewNet", "ModelConfig", "ModelOutput", "build_model", "count_parameters",
           "describe", "load_model_config"]
