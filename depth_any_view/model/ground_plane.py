"""Ground-plane embedding: where each pixel's ray meets the ground, from the calibration alone.

A camera's height above the ground and its pitch fix the metric depth of every ground pixel:
a ray with base_link direction d (per metre of optical depth, camera z = 1) from a camera
centre h metres above the ground plane z = `ground_z` meets it at optical depth
    s = h / (-d_z)          (only where d_z < 0: the ray points down),
so its inverse depth is max(0, -d_z / h), continuous across the horizon (0 there and above).
A monocular network trained on one rig learns that rig's ground depths from its images; fed
these maps it can read the ground's metric depth, and the scale of what stands on it, for
any camera height, pitch and lens (GenDepth, Koledić et al. 2023, embeds the same ground
plane for the same reason). base_link stands on the ground in both synthetic worlds (REP 105
base_footprint convention); a robot whose base_link is above its floor sets `ground_z` to
the floor's base_link z (negative).

Channels per pixel, all dimensionless and O(1):
  0  inverse ground depth x GROUND_REF_DEPTH (1 m): 1/s in 1/m, 0 at and above the horizon
  1  the ray's elevation: sin of its angle above the ground plane (-1 down .. 1 up)
  2  camera height above the ground / GROUND_REF_HEIGHT, clipped to [0, 4]
A camera at or below the ground (h <= 0) has no ground in view: channel 0 is 0 everywhere.
Geometry runs in float32 with autocast off, batched, without host synchronisation.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from depth_any_view.model.camera_encoding import camera_directions, cell_centers, fp32_geometry

GROUND_CHANNELS = 3
GROUND_REF_DEPTH = 1.0  # metres: channel 0 is (1 m) / ground depth
GROUND_REF_HEIGHT = 1.0  # metres: channel 2 is height / 1 m
MAX_INVERSE_DEPTH = 10.0  # 1/m: ground nearer than 0.1 m is clipped (a camera on the floor)


def ground_plane_maps(K: Tensor, T_base_cam: Tensor, image_hw: tuple[int, int],
                      grid_hw: tuple[int, int], ground_z: float = 0.0) -> Tensor:
    """Ground-plane embedding of every view at a (h, w) grid over an (H, W) image.

    Args:
        K: (B, V, 3, 3) intrinsics at `image_hw`, pixels.
        T_base_cam: (B, V, 4, 4) camera optical frame -> base_link.
        image_hw: (H, W) the intrinsics refer to.
        grid_hw: (h, w) cells; each takes the ray through its centre (`cell_centers`).
        ground_z: the ground plane's height in base_link, metres.

    Returns:
        (B, V, GROUND_CHANNELS, h, w) float32 (see the module docstring).
    """
    h, w = grid_hw
    B, V = K.shape[:2]
    uv = cell_centers(h, w, image_hw, device=K.device)  # (h*w, 2)
    with fp32_geometry(K):
        d_cam = camera_directions(uv, K.float())  # (B, V, N, 3), z = 1: per metre of depth
        T = T_base_cam.float()
        d = d_cam @ T[..., :3, :3].transpose(-1, -2)  # (B, V, N, 3) in base_link
        height = T[..., 2, 3] - ground_z  # (B, V) metres above the ground
        above = height > 0.0
        safe_h = torch.where(above, height, torch.ones_like(height))[..., None]  # (B, V, 1)
        inv = (-d[..., 2] / safe_h).clamp(min=0.0, max=MAX_INVERSE_DEPTH)  # (B, V, N) 1/m
        inv = torch.where(above[..., None], inv, torch.zeros_like(inv)) * GROUND_REF_DEPTH
        elevation = d[..., 2] / torch.linalg.vector_norm(d, dim=-1)  # sin(angle), (B, V, N)
        rel_h = (height / GROUND_REF_HEIGHT).clamp(0.0, 4.0)[..., None].expand_as(inv)
        maps = torch.stack([inv, elevation, rel_h], 2)  # (B, V, 3, N)
        return maps.view(B, V, GROUND_CHANNELS, h, w)


class GroundPlaneEncoder(nn.Module):
    """Ground-plane maps -> features added to the tokens and to the depth decoder levels.

    One small pointwise MLP per target (tokens at the token stride, and every decoder level);
    each MLP's last layer starts at zero, so a network trained without the embedding gives
    the same outputs until fine-tuning teaches it to use the ground.
    """

    def __init__(self, outputs: dict[str, int], hidden: int = 32, ground_z: float = 0.0) -> None:
        """Args: outputs name -> channels (e.g. {'s16': 128, 's8': 64}); hidden MLP width;
        ground_z the ground plane's height in base_link, metres."""
        super().__init__()
        self.ground_z = float(ground_z)
        self.mlps = nn.ModuleDict()
        for name, ch in outputs.items():
            last = nn.Conv2d(hidden, ch, 1)
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
            self.mlps[name] = nn.Sequential(nn.Conv2d(GROUND_CHANNELS, hidden, 1), nn.GELU(),
                                            last)

    def forward(self, K: Tensor, T_base_cam: Tensor, image_hw: tuple[int, int],
                grids: dict[str, tuple[int, int]]) -> dict[str, Tensor]:
        """Features (B*V, channels, h, w) for every named grid (h, w) of `grids`."""
        out = {}
        for name, hw in grids.items():
            maps = ground_plane_maps(K, T_base_cam, image_hw, hw, self.ground_z)
            out[name] = self.mlps[name](maps.flatten(0, 1))
        return out
