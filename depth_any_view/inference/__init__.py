"""Inference: one engine for the ROS node and the offline bag evaluation.

- `preprocess.py`: views (uint8 RGB, PinholeCamera, T_base_cam) -> network tensors on the
  device (resize with exact intrinsics, undistortion, normalisation, stacking);
- `engine.py`: weights, device, precision, compile, warm-up and the timed `infer`;
- `prediction.py`: the `Prediction` result and the postprocessing that fills it.
"""

from depth_any_view.inference.engine import (
    EngineConfig,
    InferenceEngine,
    InferenceError,
    benchmark_forward,
)
from depth_any_view.inference.prediction import Prediction
from depth_any_view.inference.preprocess import ViewInput

__all__ = ["EngineConfig", "InferenceEngine", "InferenceError", "Prediction", "ViewInput",
           "benchmark_forward"]
