"""Occupancy head: lift fused image features and predicted depth into a base_link voxel grid.

Every voxel centre of the grid is projected into every view with K and T_base_cam. A view
sees a voxel when the centre is in front of the camera, inside the image and the view is
present (view_mask); `observed` = seen by at least one view (unobserved means unknown, not
free). Two kinds of evidence are gathered, both as masked means / extrema over the views
that see the voxel:
- image features (the depth decoder's fused 1/8 map), bilinearly sampled with grid_sample
  at a coarse level (grid / occ_stride): their mean and variance over views (low variance
  = the views agree, the classic multi-view stereo cue);
- depth cues at full resolution: r = (z_voxel - depth_pred(u, v)) / half voxel diagonal,
  giving "near the predicted surface" exp(-r^2 / 2) (max, mean) and the squashed signed
  distance tanh(r / 2) (min: some view sees through it -> free; max), plus the fraction of
  the present views that see the voxel. These tie occupancy to the predicted depth.
A small 3D conv decoder (residual blocks at the coarse level, trilinear upsampling, one
full-resolution conv with the depth cues) gives one logit per voxel.

The 3D convolutions keep their weights flattened to (out, in, k^3): `Module.to(memory_format=
torch.channels_last)` converts every rank-4 and rank-5 parameter and fails on rank-5 ones,
so a regular Conv3d would stop the whole network from going channels-last.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from depth_any_view.model.camera_encoding import (
    EPS_Z,
    fp32_geometry,
    grid_intrinsics,
    inside_grid,
    project_grid,
)

NUM_CUES = 6  # max surf, mean surf, min sdf, max sdf, view fraction, observed
UNSEEN_R = 50.0  # r given to views that miss a voxel: surf ~ 0, sdf = tanh(25) = 1


class FlatConv3d(nn.Module):
    """3D convolution (stride 1, 'same' padding) with its weight stored as (out, in, k^3)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3, bias: bool = True) -> None:
        super().__init__()
        self.kernel = kernel
        w = torch.empty(out_ch, in_ch, kernel, kernel, kernel)
        nn.init.kaiming_uniform_(w, a=math.sqrt(5))  # nn.Conv3d's default initialisation
        self.weight = nn.Parameter(w.reshape(out_ch, in_ch, kernel ** 3))
        fan_in = in_ch * kernel ** 3
        self.bias = (nn.Parameter(torch.empty(out_ch).uniform_(-1, 1) / math.sqrt(fan_in))
                     if bias else None)

    def forward(self, x: Tensor) -> Tensor:
        """(B, in, X, Y, Z) -> (B, out, X, Y, Z)."""
        k = self.kernel
        w = self.weight.view(self.weight.shape[0], self.weight.shape[1], k, k, k)
        return F.conv3d(x, w, self.bias, padding=k // 2)


class ResBlock3d(nn.Module):
    """x + conv(relu(gn(conv(relu(gn(x)))))) with 3x3x3 convolutions."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        groups = math.gcd(ch, 8)
        self.norm1 = nn.GroupNorm(groups, ch)
        self.conv1 = FlatConv3d(ch, ch, 3)
        self.norm2 = nn.GroupNorm(groups, ch)
        self.conv2 = FlatConv3d(ch, ch, 3)

    def forward(self, x: Tensor) -> Tensor:
        """(B, ch, X, Y, Z) -> (B, ch, X, Y, Z)."""
        h = self.conv1(F.relu(self.norm1(x)))
        return x + self.conv2(F.relu(self.norm2(h)))


def grid_axes(lower: tuple[float, ...], upper: tuple[float, ...],
              dims: tuple[int, ...]) -> list[Tensor]:
    """Voxel centre coordinates along x, y, z: lower + (i + 0.5) * size, metres."""
    return [lo + (torch.arange(n, dtype=torch.float32) + 0.5) * ((hi - lo) / n)
            for lo, hi, n in zip(lower, upper, dims)]


def centers_from_axes(ax: Tensor, ay: Tensor, az: Tensor) -> Tensor:
    """(X*Y*Z, 3) voxel centres, flattened in [i, j, k] order."""
    gx, gy, gz = torch.meshgrid(ax, ay, az, indexing="ij")  # (X, Y, Z) each
    return torch.stack([gx, gy, gz], -1).reshape(-1, 3)  # (X*Y*Z, 3)


def visible(grid: Tensor, z: Tensor, view_mask: Tensor) -> Tensor:
    """(B, V, N) bool: in front of the camera, inside the image, and the view present.

    Args:
        grid: (B, V, N, 2) grid_sample coordinates; z: (B, V, N) metres; view_mask (B, V).
    """
    return (z > EPS_Z) & inside_grid(grid) & view_mask[:, :, None]


class OccupancyHead(nn.Module):
    """Voxel centres -> gathered multi-view features + depth cues -> 3D decoder -> logits."""

    def __init__(self, feature_channels: int, *, grid_lower: tuple[float, ...],
                 grid_upper: tuple[float, ...], grid_dims: tuple[int, ...],
                 channels: int = 32, stride: int = 2, hidden: int = 32, blocks: int = 2,
                 fine_channels: int = 16, fine_kernel: int = 3) -> None:
        """Build the head.

        Args:
            feature_channels: channels of the image feature map it samples.
            grid_lower, grid_upper: grid bounds in base_link, metres; grid_dims: (X, Y, Z).
            channels: image features kept per voxel (a 1x1 conv reduces to it).
            stride: the coarse level is grid_dims / stride; hidden, blocks: its 3D decoder.
            fine_channels, fine_kernel: the full-resolution 3D conv (kernel 1 or 3).
        """
        super().__init__()
        self.dims = tuple(int(d) for d in grid_dims)
        self.stride = int(stride)
        self.coarse_dims = tuple(d // self.stride for d in self.dims)
        size = [(hi - lo) / n for lo, hi, n in zip(grid_lower, grid_upper, self.dims)]
        self.half_diagonal = 0.5 * math.sqrt(sum(s * s for s in size))  # metres
        for name, axes in (("fine", grid_axes(grid_lower, grid_upper, self.dims)),
                           ("coarse", grid_axes(grid_lower, grid_upper, self.coarse_dims))):
            for axis, values in zip("xyz", axes):
                self.register_buffer(f"{name}_{axis}", values, persistent=False)
        self.feat_proj = nn.Conv2d(feature_channels, channels, 1)
        self.coarse_in = FlatConv3d(2 * channels + NUM_CUES, hidden, 1)
        self.coarse_blocks = nn.Sequential(*(ResBlock3d(hidden) for _ in range(blocks)))
        self.coarse_norm = nn.GroupNorm(math.gcd(hidden, 8), hidden)
        # the full-resolution input layer is a 1x1x1 conv over [upsampled coarse, cues];
        # its coarse part runs before the upsampling (they commute), which is cheaper
        self.fine_from_coarse = FlatConv3d(hidden, fine_channels, 1, bias=False)
        self.fine_from_cues = FlatConv3d(NUM_CUES, fine_channels, 1)
        self.fine_conv = FlatConv3d(fine_channels, fine_channels, fine_kernel)
        self.fine_out = FlatConv3d(fine_channels, 1, 1)

    def centers(self, level: str = "fine") -> Tensor:
        """(N, 3) voxel centres in base_link (metres) of the 'fine' or 'coarse' grid."""
        return centers_from_axes(*self.axes(level))

    def axes(self, level: str = "fine") -> list[Tensor]:
        """Voxel centre coordinates along x, y, z of the 'fine' or 'coarse' grid, metres."""
        return [getattr(self, f"{level}_{a}") for a in "xyz"]

    def gather_features(self, feats: Tensor, K: Tensor, T_base_cam: Tensor,
                        view_mask: Tensor, image_hw: tuple[int, int]) -> Tensor:
        """Mean and variance over seeing views of image features at coarse voxel centres.

        Args:
            feats: (B, V, C, h, w) feature maps covering the (H, W) images.

        Returns:
            (B, 2 C, Xc, Yc, Zc) float32, zero where no view sees the voxel.
        """
        B, V, C, h, w = feats.shape
        grid, z = project_grid(self.axes("coarse"), grid_intrinsics(K, image_hw),
                               T_base_cam)  # (B, V, N, 2), (B, V, N)
        seen = visible(grid, z, view_mask).float()  # (B, V, N)
        with fp32_geometry(feats):
            sampled = F.grid_sample(feats.reshape(B * V, C, h, w).float(),
                                    grid.reshape(B * V, 1, -1, 2), mode="bilinear",
                                    padding_mode="border", align_corners=False)  # (B*V,C,1,N)
            sampled = sampled.view(B, V, C, -1) * seen[:, :, None]  # (B, V, C, N)
            count = seen.sum(1)[:, None].clamp_min(1.0)  # (B, 1, N)
            mean = sampled.sum(1) / count  # (B, C, N)
            var = ((sampled * sampled).sum(1) / count - mean * mean).clamp_min(0.0)
        return torch.cat([mean, var], 1).view(B, 2 * C, *self.coarse_dims)

    def depth_cues(self, depth: Tensor, K: Tensor, T_base_cam: Tensor, view_mask: Tensor,
                   ) -> tuple[Tensor, Tensor]:
        """Depth-consistency cues at the fine voxel centres, and the observed mask.

        Args:
            depth: (B, V, H, W) predicted depth, metres (z along the optical axis).

        Returns:
            cues (B, NUM_CUES, X, Y, Z) float32 (zero where unobserved) and
            observed (B, X, Y, Z) bool.
        """
        B, V, H, W = depth.shape
        grid, z = project_grid(self.axes("fine"), grid_intrinsics(K, (H, W)),
                               T_base_cam)  # (B, V, N, 2), (B, V, N)
        seen = visible(grid, z, view_mask)  # (B, V, N)
        with fp32_geometry(depth):
            d = F.grid_sample(depth.reshape(B * V, 1, H, W).float(),
                              grid.reshape(B * V, 1, -1, 2), mode="bilinear",
                              padding_mode="border", align_corners=False)  # (B*V, 1, 1, N)
            r = (z - d.view(B, V, -1)) * (1.0 / self.half_diagonal)  # (B, V, N) half-diagonals
            r = torch.where(seen, r, UNSEEN_R)
            # exp(-r^2 / 2) with the exponent kept >= -80: underflowing and denormal results
            # are 10-25x slower on CPUs; exp(-80) ~ 2e-35 is zero for every purpose here
            surf = torch.exp(-0.5 * (r * r).clamp_max(160.0))  # ~0 for unseen
            sdf = torch.tanh(0.5 * r)  # 1 for unseen
            count = seen.sum(1, dtype=torch.float32)  # (B, N)
            observed = count > 0
            cues = torch.stack([
                surf.amax(1),
                surf.sum(1) / count.clamp_min(1.0),
                sdf.amin(1),
                torch.where(seen, sdf, -1.0).amax(1),
                count / view_mask.sum(1, keepdim=True, dtype=torch.float32).clamp_min(1.0),
                observed.float(),
            ], 1)  # (B, NUM_CUES, N)
            cues = cues * observed[:, None]
        return cues.view(B, NUM_CUES, *self.dims), observed.view(B, *self.dims)

    def forward(self, feats: Tensor, depth: Tensor, K: Tensor, T_base_cam: Tensor,
                view_mask: Tensor) -> tuple[Tensor, Tensor]:
        """Occupancy logits of the grid.

        Args:
            feats: (B, V, C, h, w) fused image features covering the images.
            depth: (B, V, H, W) predicted depth at the input resolution, metres.
            K: (B, V, 3, 3) intrinsics at (H, W); T_base_cam: (B, V, 4, 4) camera -> base.
            view_mask: (B, V) bool, False = view missing (never gathered from).

        Returns:
            logits (B, X, Y, Z) float32 and observed (B, X, Y, Z) bool.
        """
        B, V, C, h, w = feats.shape
        image_hw = (depth.shape[-2], depth.shape[-1])
        f = self.feat_proj(feats.reshape(B * V, C, h, w))  # (B*V, channels, h, w)
        gathered = self.gather_features(f.view(B, V, -1, h, w), K, T_base_cam, view_mask,
                                        image_hw)  # (B, 2 channels, Xc, Yc, Zc)
        cues, observed = self.depth_cues(depth, K, T_base_cam, view_mask)
        coarse_cues = F.avg_pool3d(cues, self.stride) if self.stride > 1 else cues
        x = self.coarse_in(torch.cat([gathered, coarse_cues], 1).to(f.dtype))
        x = self.fine_from_coarse(F.relu(self.coarse_norm(self.coarse_blocks(x))))
        if self.stride > 1:
            x = F.interpolate(x, size=self.dims, mode="trilinear", align_corners=False)
        x = F.relu(x + self.fine_from_cues(cues.to(x.dtype)))  # (B, fine, X, Y, Z)
        x = F.relu(self.fine_conv(x))
        logits = self.fine_out(x)[:, 0]  # (B, X, Y, Z)
        return logits.float(), observed
