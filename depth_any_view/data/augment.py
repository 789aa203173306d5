"""Geometry-aware augmentations of one multi-view training sample (torch).

A sample is the dict a dataset returns for one frame:
    images      (V, 3, H, W) float in [0, 1] (uint8 0..255 is accepted and kept)
    depth       (V, H, W) metres along the optical axis, NaN invalid
    K           (V, 3, 3) intrinsics, pixel centres at integers
    T_base_cam  (V, 4, 4) camera (optical frame) -> base_link
    occupancy   (X, Y, Z) uint8 labels, optional
    camera_names list[str], optional (view k is camera camera_names[k])
    T_odom_base (4, 4), optional
    view_mask   (V,) bool, optional (kept with its view's data when views swap)
Other keys pass through unchanged. Every function returns a new dict (the input is not
modified) and draws its randomness from an optional `torch.Generator`, so a sample is
augmented identically given the same generator state.

- `hflip_sample`: mirrors the whole world about base_link's x-z plane (y -> -y). Each image
  and depth map flips horizontally (camera x -> -x), so the extrinsics become
  T' = diag(1, -1, 1) T diag(-1, 1, 1): still a proper rotation, and a point p seen by a
  camera maps to its mirror image (x, -y, z) seen at pixel u' = W - 1 - u. The occupancy
  flips along y (the grid must be symmetric about y = 0, as the default one is) and views
  swap so that camera names keep matching: the mirrored 'front_left' data becomes view
  'front_right' (names swap 'left' <-> 'right'; cameras without a mirror stay in place).
- `color_jitter`: brightness, contrast, saturation and a light hue rotation about the grey
  axis, per view or shared.
- `sensor_jitter`: what another camera does to the same scene: exposure as a gamma curve,
  a Gaussian blur (defocus, motion) and additive pixel noise, per view.
With a previous frame (`prev_images`, `prev_T_odom_base`, temporal training) the flip
mirrors it too; colour and sensor jitter leave it alone (a camera's exposure changes
between frames as well).
- `rotate_views` / `view_jitter`: rotate a camera about its optical centre by R
  (T' = T @ R, K kept) and resample image (bilinear) and depth (nearest) exactly through
  the homography K R K^-1; depth is recomputed as the z of the same 3D point in the
  rotated camera. Pixels whose source lies outside the image get NaN depth and zero colour.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from depth_any_view.config import ConfigError, dataclass_from_mapping

_MIRROR_BASE = torch.diag(torch.tensor([1.0, -1.0, 1.0, 1.0], dtype=torch.float64))
_MIRROR_CAM = torch.diag(torch.tensor([-1.0, 1.0, 1.0, 1.0], dtype=torch.float64))
_LUMA = (0.299, 0.587, 0.114)
# Per-view tensors that travel with a view's data when flipping swaps left and right views
# (names such as camera_names and frame_ids stay in place: they label the slots).
PER_VIEW_KEYS = ("images", "depth", "K", "T_base_cam", "view_mask", "prev_images")


@dataclass
class AugmentConfig:
    """Probabilities and ranges of the training augmentations."""

    flip_prob: float = 0.5  # probability of mirroring a sample about base_link's x-z plane
    color_prob: float = 0.8  # probability of colour jitter for a sample
    color_per_view: bool = True  # draw colour factors per view (False: one set for all)
    brightness: float = 0.2  # brightness factor drawn from [1 - b, 1 + b]
    contrast: float = 0.2  # contrast factor drawn from [1 - c, 1 + c]
    saturation: float = 0.2  # saturation factor drawn from [1 - s, 1 + s]
    hue_deg: float = 5.0  # hue rotation about the grey axis drawn from [-h, h], degrees
    view_jitter_prob: float = 0.25  # per-view probability of rotating that camera
    view_jitter_deg: float = 15.0  # largest rotation of a jittered camera, degrees
    gamma: float = 0.0  # exposure: gamma drawn log-uniformly from [1/(1+g), 1+g] per view
    blur_prob: float = 0.0  # per-view probability of a Gaussian blur
    blur_sigma: float = 1.5  # largest blur sigma, pixels (drawn uniformly from [0.3, it])
    noise_std: float = 0.0  # largest additive noise std (drawn uniformly per view), 0..1

    def __post_init__(self) -> None:
        """Validate ranges, raising ConfigError that names the field."""
        for name in ("flip_prob", "color_prob", "view_jitter_prob", "blur_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"augment '{name}' must be a probability in [0, 1], "
                                  f"got {getattr(self, name)}")
        for name in ("brightness", "contrast", "saturation"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"augment '{name}' must be in [0, 1), got "
                                  f"{getattr(self, name)}")
        if not 0.0 <= self.hue_deg <= 180.0:
            raise ConfigError(f"augment 'hue_deg' must be in [0, 180] degrees, got "
                              f"{self.hue_deg}")
        if not 0.0 <= self.gamma <= 2.0:
            raise ConfigError(f"augment 'gamma' must be in [0, 2], got {self.gamma}")
        if not 0.3 <= self.blur_sigma <= 10.0:
            raise ConfigError(f"augment 'blur_sigma' must be in [0.3, 10] pixels, got "
                              f"{self.blur_sigma}")
        if not 0.0 <= self.noise_std <= 0.5:
            raise ConfigError(f"augment 'noise_std' must be in [0, 0.5], got {self.noise_std}")
        if not 0.0 <= self.view_jitter_deg < 90.0:
            raise ConfigError(f"augment 'view_jitter_deg' must be in [0, 90) degrees, got "
                              f"{self.view_jitter_deg}")

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> AugmentConfig:
        """Config from a mapping (e.g. the `augment:` section of a YAML file)."""
        return dataclass_from_mapping(cls, data, "augment option(s)")


def _rand(shape: Sequence[int], generator: torch.Generator | None) -> torch.Tensor:
    """Uniform [0, 1) float64 numbers of `shape` from `generator` (CPU)."""
    return torch.rand(tuple(shape), generator=generator, dtype=torch.float64)


def mirror_name(name: str) -> str:
    """Camera name of the mirror position: 'left' <-> 'right' ('front_left' -> 'front_right')."""
    swap = {"left": "right", "right": "left", "Left": "Right", "Right": "Left",
            "LEFT": "RIGHT", "RIGHT": "LEFT"}
    return re.sub(r"left|right|Left|Right|LEFT|RIGHT", lambda m: swap[m.group(0)], name)


def mirror_permutation(camera_names: Sequence[str]) -> list[int]:
    """perm with perm[k] = index of the mirror camera of view k (k itself when absent)."""
    names = list(camera_names)
    if len(set(names)) != len(names):
        raise ValueError(f"camera names {names} contain duplicates, so left <-> right "
                         "mirroring is ambiguous; give each view a unique name")
    index = {n: i for i, n in enumerate(names)}
    # mirror_name is an involution, so with unique names this is a permutation
    return [index.get(mirror_name(n), i) for i, n in enumerate(names)]


def _check_symmetric_grid(grid: Any) -> None:
    """Raise if a grid (VoxelGrid or dict) is not symmetric about y = 0."""
    if grid is None:
        return
    lower = grid["lower"] if isinstance(grid, dict) else getattr(grid, "lower", None)
    upper = grid["upper"] if isinstance(grid, dict) else getattr(grid, "upper", None)
    if lower is None or upper is None:
        return
    if abs(float(lower[1]) + float(upper[1])) > 1e-6:
        raise ValueError(f"cannot flip occupancy: the grid's y range [{lower[1]}, {upper[1]}]"
                         " is not symmetric about 0; use a symmetric grid or flip_prob: 0")


def hflip_sample(sample: dict[str, Any]) -> dict[str, Any]:
    """Mirror a sample about base_link's x-z plane (see the module docstring)."""
    out = dict(sample)
    images = sample["images"]
    width = images.shape[-1]
    out["images"] = torch.flip(images, dims=[-1])
    if "depth" in sample:
        out["depth"] = torch.flip(sample["depth"], dims=[-1])
    K = sample["K"]
    flip_px = torch.tensor([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
                           dtype=torch.float64, device=K.device)
    m_cam = _MIRROR_CAM.to(K.device)
    out["K"] = (flip_px @ K.double() @ m_cam[:3, :3]).to(K.dtype)  # (V, 3, 3)
    T = sample["T_base_cam"]
    m_base = _MIRROR_BASE.to(T.device)
    out["T_base_cam"] = (m_base @ T.double() @ m_cam.to(T.device)).to(T.dtype)  # (V, 4, 4)
    if sample.get("T_odom_base") is not None:
        T_ob = torch.as_tensor(sample["T_odom_base"])
        m_ob = _MIRROR_BASE.to(T_ob.device)
        out["T_odom_base"] = (m_ob @ T_ob.double() @ m_ob).to(T_ob.dtype)
    if sample.get("prev_images") is not None:
        out["prev_images"] = torch.flip(sample["prev_images"], dims=[-1])
    if sample.get("prev_T_odom_base") is not None:
        T_pb = torch.as_tensor(sample["prev_T_odom_base"])
        m_pb = _MIRROR_BASE.to(T_pb.device)
        out["prev_T_odom_base"] = (m_pb @ T_pb.double() @ m_pb).to(T_pb.dtype)
    if sample.get("occupancy") is not None:
        _check_symmetric_grid(sample.get("grid"))
        out["occupancy"] = torch.flip(sample["occupancy"], dims=[-2])  # y axis of (X, Y, Z)
    names = sample.get("camera_names")
    if names:
        perm = torch.tensor(mirror_permutation(names))
        for key in PER_VIEW_KEYS:
            if out.get(key) is not None:
                out[key] = out[key][perm]
    return out


def _to_float_images(images: torch.Tensor) -> torch.Tensor:
    """Images as float in [0, 1] (uint8 is divided by 255)."""
    return images.float() / 255.0 if images.dtype == torch.uint8 else images


def _like_input(result: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """Float images in [0, 1] back to the dtype of `original`."""
    if original.dtype == torch.uint8:
        return (result * 255.0).round().clamp(0, 255).to(torch.uint8)
    return result.to(original.dtype)


def _grey_axis_rotation(angle: torch.Tensor) -> torch.Tensor:
    """Rotations (N, 3, 3) of RGB about the grey axis (1, 1, 1) by `angle` (N,) radians."""
    a = 1.0 / math.sqrt(3.0)
    n = torch.full((3,), a, dtype=torch.float64)
    cross = torch.tensor([[0.0, -a, a], [a, 0.0, -a], [-a, a, 0.0]], dtype=torch.float64)
    c = torch.cos(angle)[:, None, None]
    s = torch.sin(angle)[:, None, None]
    return c * torch.eye(3, dtype=torch.float64) + s * cross + (1 - c) * torch.outer(n, n)


def color_jitter(images: torch.Tensor, *, brightness: float = 0.2, contrast: float = 0.2,
                 saturation: float = 0.2, hue_deg: float = 5.0, per_view: bool = True,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Random brightness, contrast, saturation and hue of images (V, 3, H, W).

    Factors are drawn uniformly from [1 - x, 1 + x] (hue: [-hue_deg, hue_deg] degrees),
    one set per view or shared; applied in that order and clamped to [0, 1].
    """
    x = _to_float_images(images)
    n_views = x.shape[0]
    n = n_views if per_view else 1
    draws = _rand((4, n), generator) * 2.0 - 1.0  # (4, n) in [-1, 1)
    if not per_view:
        draws = draws.expand(4, n_views)
    draws = draws.to(x.device)
    b = (1.0 + brightness * draws[0]).to(x.dtype)[:, None, None, None]
    c = (1.0 + contrast * draws[1]).to(x.dtype)[:, None, None, None]
    s = (1.0 + saturation * draws[2]).to(x.dtype)[:, None, None, None]
    hue = _grey_axis_rotation(draws[3].cpu() * math.radians(hue_deg))  # (V, 3, 3)
    hue = hue.to(device=x.device, dtype=x.dtype)
    luma = torch.tensor(_LUMA, dtype=x.dtype, device=x.device).reshape(1, 3, 1, 1)
    x = (x * b).clamp(0, 1)
    mean = (x * luma).sum(1, keepdim=True).mean(dim=(2, 3), keepdim=True)  # (V, 1, 1, 1)
    x = ((x - mean) * c + mean).clamp(0, 1)
    grey = (x * luma).sum(1, keepdim=True)  # (V, 1, H, W)
    x = ((x - grey) * s + grey).clamp(0, 1)
    x = torch.einsum("vij,vjhw->vihw", hue, x).clamp(0, 1)
    return _like_input(x, images)


def sensor_jitter(images: torch.Tensor, *, gamma: float = 0.0, blur_prob: float = 0.0,
                  blur_sigma: float = 1.5, noise_std: float = 0.0,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Exposure (gamma), Gaussian blur and additive noise of images (V, 3, H, W), per view.

    gamma is drawn log-uniformly from [1/(1+gamma), 1+gamma]; a view is blurred with
    probability blur_prob by a Gaussian of sigma uniform in [0.3, blur_sigma] pixels
    (separable, reflect padding); noise std is uniform in [0, noise_std]. Clamped to [0, 1].
    """
    x = _to_float_images(images)
    V = x.shape[0]
    draws = _rand((4, V), generator).to(x.device)  # gamma, blur coin, sigma, noise std
    if gamma > 0:
        g = torch.exp((draws[0] * 2.0 - 1.0) * math.log1p(gamma)).to(x.dtype)
        x = x.clamp(min=1e-6) ** g[:, None, None, None]
    if blur_prob > 0:
        sigma = 0.3 + draws[2] * (blur_sigma - 0.3)  # (V,)
        radius = int(math.ceil(3.0 * blur_sigma))
        offsets = torch.arange(-radius, radius + 1, dtype=torch.float64, device=x.device)
        kern = torch.exp(-0.5 * (offsets[None] / sigma.double()[:, None]) ** 2)
        kern = (kern / kern.sum(1, keepdim=True)).to(x.dtype)  # (V, 2r+1)
        H, W = x.shape[-2:]
        if radius < min(H, W):
            C = x.shape[1]
            flat = x.reshape(1, V * C, H, W)
            kx = kern.repeat_interleave(C, 0)[:, None, None, :]  # (V*C, 1, 1, 2r+1)
            flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="reflect"), kx,
                            groups=V * C)
            flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="reflect"),
                            kx.transpose(-1, -2), groups=V * C)
            blurred = flat.reshape(V, C, H, W)
            x = torch.where((draws[1] < blur_prob)[:, None, None, None], blurred, x)
    if noise_std > 0:
        std = (draws[3] * noise_std).to(x.dtype)[:, None, None, None]
        gen_dev = generator if x.device.type == "cpu" else None
        x = x + std * torch.randn(x.shape, generator=gen_dev, dtype=x.dtype).to(x.device)
    return _like_input(x.clamp(0, 1), images)


def random_rotations(n: int, max_deg: float,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """n rotations (n, 3, 3) float64 about uniform random axes by angles in [0, max_deg]."""
    axis = torch.randn((n, 3), generator=generator, dtype=torch.float64)
    axis = axis / axis.norm(dim=1, keepdim=True).clamp_min(1e-12)
    angle = _rand((n,), generator) * math.radians(max_deg)
    k = torch.zeros((n, 3, 3), dtype=torch.float64)
    k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -axis[:, 2], axis[:, 1], -axis[:, 0]
    k = k - k.transpose(1, 2)  # skew-symmetric cross-product matrices
    s = torch.sin(angle)[:, None, None]
    c = torch.cos(angle)[:, None, None]
    return torch.eye(3, dtype=torch.float64) + s * k + (1 - c) * (k @ k)  # Rodrigues


def rotate_views(images: torch.Tensor, depth: torch.Tensor | None, K: torch.Tensor,
                 T_base_cam: torch.Tensor, R: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Rotate cameras about their optical centres and resample what they see.

    Args:
        images: (V, 3, H, W); depth: (V, H, W) metres or None; K: (V, 3, 3) (kept).
        T_base_cam: (V, 4, 4) camera -> base_link.
        R: (V, 3, 3) rotation of each camera: p_old = R @ p_new (new frame in old frame).

    Returns:
        images (bilinear, zero outside), depth (nearest, z of the same 3D point in the new
        camera, NaN outside) and T_base_cam' = T_base_cam @ [R 0; 0 1].
    """
    v, _, h, w = images.shape
    dev = images.device
    Kd = K.double().to(dev)
    Rd = R.double().to(dev)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64, device=dev),
                            torch.arange(w, dtype=torch.float64, device=dev), indexing="ij")
    pix = torch.stack([xs, ys, torch.ones_like(xs)]).reshape(3, -1)  # (3, H*W)
    rays_new = torch.linalg.inv(Kd) @ pix  # (V, 3, H*W), z = 1 in the new camera
    rays_old = Rd @ rays_new  # (V, 3, H*W) same rays in the old camera
    rz = rays_old[:, 2]  # (V, H*W)
    uvw = Kd @ rays_old  # (V, 3, H*W)
    rz_safe = torch.where(rz > 1e-9, rz, torch.ones_like(rz))
    u = uvw[:, 0] / rz_safe
    vv = uvw[:, 1] / rz_safe
    inside = ((rz > 1e-9) & (u >= -0.5) & (u <= w - 0.5) & (vv >= -0.5) & (vv <= h - 0.5))
    grid = torch.stack([u * 2.0 / max(w - 1, 1) - 1.0, vv * 2.0 / max(h - 1, 1) - 1.0], -1)
    grid = grid.clamp(-2.0, 2.0).reshape(v, h, w, 2).float()  # (V, H, W, 2)
    inside = inside.reshape(v, h, w)  # (V, H, W)
    x = _to_float_images(images).float()
    warped = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)
    warped = warped * inside[:, None].to(warped.dtype)
    out_images = _like_input(warped, images)
    out_depth = None
    if depth is not None:
        d = depth.float()
        d = torch.where(d > 0, d, torch.full_like(d, math.nan))
        d_old = F.grid_sample(d[:, None], grid, mode="nearest", padding_mode="border",
                              align_corners=True)[:, 0]  # (V, H, W)
        z_new = d_old.double() / rz_safe.reshape(v, h, w)
        out_depth = torch.where(inside, z_new, torch.full_like(z_new, math.nan))
        out_depth = out_depth.to(depth.dtype if depth.is_floating_point() else torch.float32)
    R4 = torch.eye(4, dtype=torch.float64, device=T_base_cam.device).repeat(v, 1, 1)
    R4[:, :3, :3] = Rd.to(T_base_cam.device)
    T_new = (T_base_cam.double() @ R4).to(T_base_cam.dtype)
    return out_images, out_depth, T_new


def view_jitter(sample: dict[str, Any], *, prob: float = 0.25, max_deg: float = 15.0,
                generator: torch.Generator | None = None) -> dict[str, Any]:
    """Rotate each camera with probability `prob` by up to `max_deg` degrees (see above)."""
    out = dict(sample)
    v = sample["images"].shape[0]
    chosen = _rand((v,), generator) < prob  # (V,)
    R = random_rotations(v, max_deg, generator)
    if not bool(chosen.any()):
        return out
    idx = torch.nonzero(chosen)[:, 0]
    depth = sample.get("depth")
    imgs, dep, T = rotate_views(sample["images"][idx], None if depth is None else depth[idx],
                                sample["K"][idx], sample["T_base_cam"][idx], R[idx])
    out["images"] = sample["images"].clone()
    out["images"][idx] = imgs
    if depth is not None:
        out["depth"] = depth.clone()
        out["depth"][idx] = dep
    out["T_base_cam"] = sample["T_base_cam"].clone()
    out["T_base_cam"][idx] = T
    return out


class Augmenter:
    """Random flip, colour jitter, sensor jitter and view jitter of a sample, in that order."""

    def __init__(self, cfg: AugmentConfig | None = None) -> None:
        self.cfg = cfg or AugmentConfig()

    def __call__(self, sample: dict[str, Any],
                 generator: torch.Generator | None = None) -> dict[str, Any]:
        """Augmented copy of `sample`; deterministic for a given generator state."""
        cfg = self.cfg
        coins = _rand((2,), generator)  # flip, colour
        out = dict(sample)
        if coins[0] < cfg.flip_prob:
            out = hflip_sample(out)
        if coins[1] < cfg.color_prob:
            out["images"] = color_jitter(out["images"], brightness=cfg.brightness,
                                         contrast=cfg.contrast, saturation=cfg.saturation,
                                         hue_deg=cfg.hue_deg, per_view=cfg.color_per_view,
                                         generator=generator)
        if cfg.gamma > 0 or cfg.blur_prob > 0 or cfg.noise_std > 0:
            out["images"] = sensor_jitter(out["images"], gamma=cfg.gamma,
                                          blur_prob=cfg.blur_prob, blur_sigma=cfg.blur_sigma,
                                          noise_std=cfg.noise_std, generator=generator)
        if cfg.view_jitter_prob > 0 and cfg.view_jitter_deg > 0:
            out = view_jitter(out, prob=cfg.view_jitter_prob, max_deg=cfg.view_jitter_deg,
                              generator=generator)
        return out
