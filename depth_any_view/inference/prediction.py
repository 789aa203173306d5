"""The engine's result (`Prediction`) and the postprocessing that produces it.

Postprocessing runs on the engine's device: the depth policy (NaN outside the valid
undistorted area and outside the trusted depth range), the resize of each view's depth back
to its input resolution, and the occupancy probabilities. `HostCopy` then makes the single
device -> host copy of a frame (pinned buffers and non-blocking copies on CUDA, one
synchronisation at the end).

Depth is metres along the optical z axis with NaN where there is no estimate
(docs/ARCHITECTURE.md). Network-size depth belongs to a distortion-free camera
(`Prediction.cameras`); input-size depth is registered pixel for pixel with the input image
and belongs to the input camera, distortion included (`Prediction.cameras_input`), so its
CameraInfo is the input's CameraInfo.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from depth_any_view.geometry.camera import PinholeCamera
from depth_any_view.geometry.grid import VoxelGrid
from depth_any_view.inference.preprocess import CameraPlan

DEPTH_INTERPOLATIONS = ("nearest", "bilinear")
OUT_OF_RANGE_POLICIES = ("nan", "clamp")
# Bilinear resizing keeps a pixel when at least this fraction of its interpolation weight
# falls on valid depth (the rest of the weight is renormalised away).
MIN_VALID_WEIGHT = 0.5


@dataclass
class Prediction:
    """Depth for every view and the occupancy volume of one synchronized set."""

    camera_names: list[str]  # V camera names, the order of the input views
    depth: np.ndarray  # (V, h, w) float32 metres along z at the network size, NaN = invalid
    cameras: list[PinholeCamera]  # V distortion-free cameras of `depth` (network size)
    occupancy: np.ndarray  # (X, Y, Z) float32 occupancy probability in `grid`
    observed: np.ndarray  # (X, Y, Z) bool, voxels inside some view's frustum
    grid: VoxelGrid  # the occupancy volume in base_link, indexed [i, j, k] = [x, y, z]
    T_base_cam: np.ndarray  # (V, 4, 4) float64 optical frame -> base_link
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage and 'total'
    depth_input: list[np.ndarray] | None = None  # V arrays (H_i, W_i) float32, input size
    cameras_input: list[PinholeCamera] | None = None  # V input cameras of `depth_input`
    images: np.ndarray | None = None  # (V, h, w, 3) uint8 network-input RGB, when asked
    confidence: np.ndarray | None = None  # (V, h, w) float32 in (0, 1], NaN where depth is;
    #                                       None when the network has no confidence head
    confidence_input: list[np.ndarray] | None = None  # V arrays (H_i, W_i), input size
    occupancy_device: torch.Tensor | None = None  # `occupancy` still on the engine's GPU (CUDA
    #   only), so that a fusion on the same device takes it without a host round trip
    observed_device: torch.Tensor | None = None  # `observed` likewise

    @property
    def num_views(self) -> int:
        """Number of views V."""
        return len(self.camera_names)

    def index(self, name: str) -> int:
        """Position of a camera name in this prediction; KeyError lists the present names."""
        try:
            return self.camera_names.index(name)
        except ValueError:
            raise KeyError(f"camera '{name}' is not in this prediction (views: "
                           f"{self.camera_names})") from None

    def view_depth(self, view: int | str) -> tuple[np.ndarray, PinholeCamera]:
        """Depth (H, W) float32 metres to publish for a view and the camera of its CameraInfo.

        The input-size depth when the engine produced it, otherwise the network-size depth.
        """
        i = self.index(view) if isinstance(view, str) else int(view)
        if self.depth_input is not None and self.cameras_input is not None:
            return self.depth_input[i], self.cameras_input[i]
        return self.depth[i], self.cameras[i]

    def view_confidence(self, view: int | str) -> np.ndarray | None:
        """Confidence (H, W) float32 in (0, 1] registered with `view_depth` (NaN where the
        depth is NaN), or None when the network predicts none."""
        if self.confidence is None:
            return None
        i = self.index(view) if isinstance(view, str) else int(view)
        if self.confidence_input is not None:
            return self.confidence_input[i]
        return self.confidence[i]


def apply_depth_policy(depth: torch.Tensor, valid: torch.Tensor, *, min_depth: float,
                       max_depth: float, out_of_range: str = "nan") -> torch.Tensor:
    """Depth with NaN where it is not trusted.

    Args:
        depth: (V, h, w) metres.
        valid: (V, h, w) bool, pixels that see the raw image (False -> NaN).
        min_depth: metres, lower end of the trusted range.
        max_depth: metres, upper end of the trusted range.
        out_of_range: 'nan' sets depth outside [min_depth, max_depth] to NaN, 'clamp'
            clamps it into the range.

    Returns:
        (V, h, w) float32 metres.
    """
    depth = depth.float()
    if out_of_range == "clamp":
        depth = depth.clamp(min_depth, max_depth)
        keep = valid & torch.isfinite(depth)
    elif out_of_range == "nan":
        keep = valid & (depth >= min_depth) & (depth <= max_depth)  # NaN compares False
    else:
        raise ValueError(f"out_of_range must be one of {OUT_OF_RANGE_POLICIES}, "
                         f"got '{out_of_range}'")
    return torch.where(keep, depth, torch.full_like(depth, float("nan")))


def _sample(x: torch.Tensor, plan: CameraPlan, size: tuple[int, int], mode: str) -> torch.Tensor:
    """(1, C, h, w) -> (1, C, H, W) at the raw input pixels (grid for distorted cameras)."""
    if plan.input_grid is not None:
        return F.grid_sample(x, plan.input_grid, mode=mode, padding_mode="zeros",
                             align_corners=False)
    if mode == "nearest":
        return F.interpolate(x, size=size, mode="nearest-exact")
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def resize_depth_to_input(depth: torch.Tensor, plan: CameraPlan, *,
                          mode: str = "nearest") -> torch.Tensor:
    """One view's network-size depth resized to (registered with) its input image.

    Args:
        depth: (h, w) metres, NaN = invalid.
        plan: the view's camera plan (with input maps for a distorted camera).
        mode: 'nearest' picks the nearest network pixel (centre-exact), 'bilinear'
            interpolates valid depth only (weights renormalised; NaN where less than
            MIN_VALID_WEIGHT of the weight is valid).

    Returns:
        (H, W) float32 metres at the input camera's resolution, NaN = invalid.
    """
    size = (plan.camera.height, plan.camera.width)
    if plan.distorted and plan.input_grid is None:
        raise ValueError("the camera plan has no input maps; build the Preprocessor with "
                         "input_maps=True to resize depth of a distorted camera")
    d = depth.float()[None, None]  # (1, 1, h, w)
    if mode == "nearest":
        out = _sample(d, plan, size, "nearest")[0, 0]  # (H, W)
        if plan.input_grid is not None:  # outside the network image the grid reads zeros
            out = torch.where(plan.input_valid, out, torch.full_like(out, float("nan")))
        return out
    if mode != "bilinear":
        raise ValueError(f"depth interpolation must be one of {DEPTH_INTERPOLATIONS}, "
                         f"got '{mode}'")
    ok = torch.isfinite(d)
    both = torch.cat([torch.where(ok, d, torch.zeros_like(d)), ok.float()], dim=1)  # (1,2,h,w)
    s = _sample(both, plan, size, "bilinear")[0]  # (2, H, W)
    weight = s[1]
    keep = weight >= MIN_VALID_WEIGHT
    if plan.input_valid is not None:
        keep = keep & plan.input_valid
    return torch.where(keep, s[0] / weight.clamp_min(1e-6),
                       torch.full_like(weight, float("nan")))


class HostCopy:
    """Device -> host copies of one frame, finished by one `wait()` (one sync on CUDA)."""

    def __init__(self, device: torch.device) -> None:
        """Args: device: the device the tensors live on."""
        self.cuda = torch.device(device).type == "cuda"
        self._pending: list[torch.Tensor] = []

    def add(self, t: torch.Tensor) -> torch.Tensor:
        """Queue a copy of `t`; returns the host tensor (valid only after `wait`)."""
        t = t.detach()
        if not self.cuda:
            return t.contiguous()
        host = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
        host.copy_(t, non_blocking=True)
        self._pending.append(host)
        return host

    def wait(self, event: torch.cuda.Event | None = None) -> None:
        """Block until every queued copy has landed (synchronises on `event` if given)."""
        if self.cuda:
            if event is None:
                torch.cuda.current_stream().synchronize()
            else:
                event.synchronize()
        self._pending.clear()
