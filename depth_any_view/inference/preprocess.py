"""Preprocessing: camera views (uint8 RGB + calibration + extrinsics) to network tensors.

Every per-frame step runs as tensor ops on the engine's device; everything that depends only
on a calibration (undistortion grids, valid-pixel masks, intrinsics at the network size) is
computed once per calibration and cached (`CameraPlan`).

Per view, in order:
1. upload the (H, W, 3) uint8 image (pinned host memory and a non-blocking copy on CUDA);
2. resize to the network's image size (h, w) with an antialiased bilinear filter (in uint8 on
   the CPU, where torch has a fast path; in float on CUDA);
3. for a camera with lens distortion, undistort at the network size with `grid_sample`
   through a cached `cv2.initUndistortRectifyMap` grid of the resized camera, into the
   pinhole camera `P[:, :3]` (scaled to (h, w)). The rectification rotation R is not applied
   (it is the identity for monocular cameras), so depth stays along the optical z axis of the
   input image's frame. Pixels that do not see the raw image are marked invalid;
4. normalise to float in [0, 1] and stack to (1, V, 3, h, w) (channels-last if asked).

Intrinsics follow `PinholeCamera.resized` (pixel centres at integers:
cx' = (cx + 0.5) * sx - 0.5), exactly, in float64 before the float32 upload.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from depth_any_view.geometry.camera import PinholeCamera


@dataclass(frozen=True)
class ViewInput:
    """One camera's image with its calibration, as the engine takes it."""

    name: str  # camera name, e.g. 'front'
    rgb: np.ndarray  # (H, W, 3) uint8 RGB, H x W = camera.height x camera.width
    camera: PinholeCamera  # calibration of `rgb` (from its CameraInfo; may have distortion)
    T_base_cam: np.ndarray  # (4, 4) float64 optical frame -> base_link


@dataclass(frozen=True)
class CameraPlan:
    """What one calibration needs at one network size, computed once and cached."""

    camera: PinholeCamera  # the input camera (raw image, possibly distorted)
    net_camera: PinholeCamera  # distortion-free camera of the network-size image
    undistort_grid: torch.Tensor | None  # (1, h, w, 2) grid_sample coords; None = no distortion
    net_valid: torch.Tensor  # (h, w) bool, network pixels that see the raw image
    input_grid: torch.Tensor | None  # (1, H, W, 2) coords of raw pixels in the network image
    input_valid: torch.Tensor | None  # (H, W) bool, raw pixels that land in the network image

    @property
    def distorted(self) -> bool:
        """True when the image is warped (undistorted) on the way in and out."""
        return self.undistort_grid is not None


@dataclass
class NetworkInput:
    """The network's input for one set of views, on the device."""

    images: torch.Tensor  # (1, V, 3, h, w) float32 RGB in [0, 1]
    K: torch.Tensor  # (1, V, 3, 3) float32 intrinsics of `images`
    T_base_cam: torch.Tensor  # (1, V, 4, 4) float32 optical frame -> base_link
    valid: torch.Tensor  # (V, h, w) bool, pixels that see the raw image
    plans: list[CameraPlan]  # V calibration plans, view order
    names: list[str]  # V camera names, view order
    T_base_cam_np: np.ndarray  # (V, 4, 4) float64, as given


def calibration_key(camera: PinholeCamera) -> bytes:
    """A digest that is equal exactly when two calibrations are equal (cache key)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{camera.width}x{camera.height}:{camera.distortion_model}".encode())
    for arr in (camera.K, camera.D, camera.R, camera.P):
        h.update(np.ascontiguousarray(arr, dtype=np.float64).tobytes())
    return h.digest()


def pixel_grid_coords(u: np.ndarray, v: np.ndarray, width: int, height: int) -> np.ndarray:
    """grid_sample coordinates (..., 2) (align_corners=False) of pixel positions u, v."""
    return np.stack([(2.0 * u + 1.0) / width - 1.0, (2.0 * v + 1.0) / height - 1.0], axis=-1)


def _inside(u: np.ndarray, v: np.ndarray, width: int, height: int) -> np.ndarray:
    """Positions that fall on an image of width x height (pixel centres at integers)."""
    return (np.isfinite(u) & np.isfinite(v) & (u >= -0.5) & (u <= width - 0.5)
            & (v >= -0.5) & (v <= height - 0.5))


def make_camera_plan(camera: PinholeCamera, image_size: tuple[int, int],
                     device: torch.device, *, input_maps: bool) -> CameraPlan:
    """Undistortion grids, valid masks and network-size intrinsics for one calibration.

    Args:
        camera: the input camera.
        image_size: network (h, w) in pixels.
        device: where the grids and masks live.
        input_maps: also build the map from raw input pixels into the network image (needed
            to resize depth back to the input resolution for a distorted camera).
    """
    h, w = image_size
    resized = camera.resized(w, h)
    if not camera.has_distortion:
        valid = torch.ones((h, w), dtype=torch.bool, device=device)
        return CameraPlan(camera, resized, None, valid, None, None)
    # Undistort at the network size: maps from the rectified (h, w) image into the resized
    # raw image; R = I keeps the optical frame (see the module docstring).
    map_u, map_v = replace(resized, R=np.eye(3)).undistort_rectify_maps()  # (h, w) each
    net_valid = _inside(map_u, map_v, w, h)
    grid = pixel_grid_coords(map_u.astype(np.float64), map_v.astype(np.float64), w, h)
    net_K = resized.P[:, :3].copy()
    net_camera = PinholeCamera(width=w, height=h, K=net_K)
    input_grid = input_valid = None
    if input_maps:
        H, W = camera.height, camera.width
        u, v = np.meshgrid(np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64))
        xy = camera.undistort_pixels(np.stack([u.ravel(), v.ravel()], axis=1))  # (H*W, 2)
        un = net_K[0, 0] * xy[:, 0] + net_K[0, 1] * xy[:, 1] + net_K[0, 2]
        vn = net_K[1, 1] * xy[:, 1] + net_K[1, 2]
        inside = _inside(un, vn, w, h)
        # A raw pixel is valid when it lands on a network pixel that itself sees the image.
        ui = np.clip(np.rint(np.nan_to_num(un)), 0, w - 1).astype(np.int64)
        vi = np.clip(np.rint(np.nan_to_num(vn)), 0, h - 1).astype(np.int64)
        ok = (inside & net_valid[vi, ui]).reshape(H, W)
        coords = pixel_grid_coords(np.nan_to_num(un, nan=-2.0 * w),
                                   np.nan_to_num(vn, nan=-2.0 * h), w, h)
        input_grid = torch.from_numpy(coords.reshape(1, H, W, 2).astype(np.float32)).to(device)
        input_valid = torch.from_numpy(ok).to(device)
    return CameraPlan(
        camera=camera, net_camera=net_camera,
        undistort_grid=torch.from_numpy(grid[None].astype(np.float32)).to(device),  # (1,h,w,2)
        net_valid=torch.from_numpy(net_valid).to(device),
        input_grid=input_grid, input_valid=input_valid)


def check_views(views: Sequence[ViewInput]) -> None:
    """Raise ValueError naming the view and field when a view cannot be used."""
    if len(views) == 0:
        raise ValueError("no views given: infer() needs at least one ViewInput")
    names = [v.name for v in views]
    if len(set(names)) != len(names):
        raise ValueError(f"camera names must be unique within a set, got {names}")
    for v in views:
        if not isinstance(v.camera, PinholeCamera):
            raise ValueError(f"view '{v.name}': camera must be a PinholeCamera, got "
                             f"{type(v.camera).__name__}")
        rgb = v.rgb
        if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 \
                or rgb.shape[2] != 3:
            desc = (f"{rgb.shape} {rgb.dtype}" if isinstance(rgb, np.ndarray)
                    else type(rgb).__name__)
            raise ValueError(f"view '{v.name}': rgb must be an (H, W, 3) uint8 RGB array "
                             f"(decode it with depth_any_view.data.encodings), got {desc}")
        if rgb.shape[:2] != (v.camera.height, v.camera.width):
            raise ValueError(f"view '{v.name}': image is {rgb.shape[1]}x{rgb.shape[0]} but "
                             f"its CameraInfo says {v.camera.width}x{v.camera.height}; "
                             "use the CameraInfo published with this image")
        T = np.asarray(v.T_base_cam)
        if T.shape != (4, 4) or not np.all(np.isfinite(T)):
            raise ValueError(f"view '{v.name}': T_base_cam must be a finite (4, 4) transform, "
                             f"got shape {T.shape}")


class Preprocessor:
    """Turns a set of `ViewInput`s into a `NetworkInput` on one device (see module doc)."""

    def __init__(self, image_size: tuple[int, int], device: torch.device, *,
                 channels_last: bool = True, input_maps: bool = True,
                 cache_size: int = 64) -> None:
        """Args:
            image_size: network (h, w) in pixels.
            device: device of the output tensors.
            channels_last: lay the images out channels-last (NHWC strides).
            input_maps: build the raw-pixel -> network maps for distorted cameras.
            cache_size: calibrations kept (least recently used ones are dropped).
        """
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.device = torch.device(device)
        self.channels_last = bool(channels_last)
        self.input_maps = bool(input_maps)
        self.cache_size = int(cache_size)
        self._plans: OrderedDict[bytes, CameraPlan] = OrderedDict()
        self._cuda = self.device.type == "cuda"

    def plan(self, camera: PinholeCamera) -> CameraPlan:
        """The cached plan of a calibration, built on first use."""
        key = calibration_key(camera)
        plan = self._plans.get(key)
        if plan is None:
            plan = make_camera_plan(camera, self.image_size, self.device,
                                    input_maps=self.input_maps)
            self._plans[key] = plan
            while len(self._plans) > self.cache_size:
                self._plans.popitem(last=False)
        else:
            self._plans.move_to_end(key)
        return plan

    def upload(self, array: np.ndarray) -> torch.Tensor:
        """Host array -> device tensor (pinned staging and a non-blocking copy on CUDA)."""
        array = np.ascontiguousarray(array)
        if not self._cuda:
            return torch.from_numpy(array)
        src = torch.from_numpy(array)
        staging = torch.empty(src.shape, dtype=src.dtype, pin_memory=True)
        staging.copy_(src)
        # The caching host allocator keeps `staging` alive until the copy has run.
        return staging.to(self.device, non_blocking=True)

    def _resize(self, rgb: torch.Tensor) -> torch.Tensor:
        """(n, H, W, 3) uint8 on the device -> (n, 3, h, w) float32 in [0, 1]."""
        x = rgb.permute(0, 3, 1, 2)  # (n, 3, H, W), channels-last strides
        same = tuple(x.shape[-2:]) == self.image_size
        if x.device.type == "cpu":
            if not same:  # torch's uint8 antialiased path is ~10-30x faster on the CPU
                x = F.interpolate(x, size=self.image_size, mode="bilinear", antialias=True,
                                  align_corners=False)
            return x.float().div_(255.0)
        x = x.float().div_(255.0)
        if not same:
            x = F.interpolate(x, size=self.image_size, mode="bilinear", antialias=True,
                              align_corners=False)
        return x

    def __call__(self, views: Sequence[ViewInput]) -> NetworkInput:
        """Network input of a set of views (any number >= 1, any sizes); see module doc."""
        check_views(views)
        V = len(views)
        h, w = self.image_size
        plans = [self.plan(v.camera) for v in views]
        groups: dict[tuple[int, int], list[int]] = {}
        for i, v in enumerate(views):
            groups.setdefault(v.rgb.shape[:2], []).append(i)
        per_view: list[torch.Tensor | None] = [None] * V
        for idx in groups.values():
            host = views[idx[0]].rgb[None] if len(idx) == 1 else np.stack(
                [views[i].rgb for i in idx])  # (n, H, W, 3)
            x = self._resize(self.upload(host))  # (n, 3, h, w)
            for j, i in enumerate(idx):
                xi = x[j:j + 1]
                grid = plans[i].undistort_grid
                if grid is not None:
                    xi = F.grid_sample(xi, grid, mode="bilinear", padding_mode="zeros",
                                       align_corners=False)
                per_view[i] = xi
        single = len(groups) == 1 and not any(p.distorted for p in plans)
        images = x if single else torch.cat(per_view, dim=0)  # (V, 3, h, w)
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        images = images.contiguous(memory_format=fmt)
        T_np = np.stack([np.asarray(v.T_base_cam, dtype=np.float64) for v in views])  # (V,4,4)
        K_np = np.stack([p.net_camera.K for p in plans])  # (V, 3, 3)
        packed = np.concatenate([K_np.reshape(V, 9), T_np.reshape(V, 16)], axis=1)  # (V, 25)
        packed_t = self.upload(packed.astype(np.float32))
        K = packed_t[:, :9].reshape(1, V, 3, 3).contiguous()  # (1, V, 3, 3)
        T = packed_t[:, 9:].reshape(1, V, 4, 4).contiguous()  # (1, V, 4, 4)
        valid = torch.stack([p.net_valid for p in plans])  # (V, h, w)
        return NetworkInput(images=images.unsqueeze(0),  # (1, V, 3, h, w)
                            K=K, T_base_cam=T, valid=valid, plans=plans,
                            names=[v.name for v in views], T_base_cam_np=T_np)
