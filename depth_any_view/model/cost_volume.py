"""Plane-sweep cost volumes: depth the network measures by matching calibrated views.

For every reference view, a low-resolution feature grid (1/`stride` of the image) is swept
through `hypotheses` fronto-parallel planes at depths uniform in inverse depth between
`min_depth` and `max_depth` (metres along the reference optical axis). Each plane point is
projected into source views with the calibrated intrinsics and extrinsics, the sources'
features are sampled there (bilinear) and compared with the reference feature by a
group-wise correlation (MVSNet / ManyDepth style). Where the views overlap, the depth with
the best match is triangulated, hence metric for any rig, lens and world.

Sources are the other views of the same set (spatial) and, when given, the views of the
previous set moved by the base's pose change (temporal, ManyDepth-style). For each
reference view the `neighbours` sources with the most evidence are kept, evidence = the
fraction of (pixel, hypothesis) samples that land inside the source image, in front of it,
times a baseline weight min(1, baseline / `min_baseline`): a camera that did not move (a
robot standing still) or barely moved (turning in place about a nearby axis) measures
nothing and gets weight ~0, as does the view itself and a missing (masked) view. Samples
outside a source count zero. The correlation is averaged over the kept sources with those
weights per sample, and the summed weight per hypothesis is returned as an extra channel,
so the network knows where the volume says nothing (a single camera, no overlap, no
motion) and falls back on its monocular cues.

With a photometric window (`cost_photometric`), the same sweep also compares the raw
images: grey levels at 1/2 of the image (carried beside the matching features, packed by
`pixel_unshuffle` to the feature grid, so the previous set's cache carries them too) are
warped per hypothesis into the reference view and compared by zero-mean normalised
cross-correlation over a `photo_window`-pixel box, then averaged to the feature grid. It
needs no training to measure: on the shifted world's stereo pairs at the network's 128 px it
finds the true plane for most textured pixels, where untrained features match at chance,
and it is invariant to each camera's gain and offset (exposure differences).

Conventions: optical frames (x right, y down, z forward), pixel centres at integer u, v,
feature cell (i, j) centred at pixel ((j + 0.5) W / w - 0.5, (i + 0.5) H / h - 0.5)
(camera_encoding.cell_centers); `T_base_cam` maps camera points into base_link. Geometry
runs in float32 with autocast off; everything stays batched on the input's device with no
host synchronisation (neighbour selection is a `topk`, not a Python branch).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from depth_any_view.model.camera_encoding import (
    EPS_Z,
    camera_directions,
    cell_centers,
    fp32_geometry,
    grid_intrinsics,
    inside_grid,
)

SOFT_ARGMIN_SCALE = 10.0  # cosine correlations in [-1, 1] -> softmax logits over the planes
PHOTO_STRIDE = 2  # the photometric sweep runs at 1/2 of the image
PHOTO_MIN_VAR = 1e-4  # grey-level variance floor of the NCC (std 0.01 of the [0, 1] range)


@dataclass
class SourceViews:
    """Views to match against, all in the current base_link frame.

    `T_base_src` maps each source camera's points into the *current* base_link: for the
    views of the current set it is their `T_base_cam`; for a previous set it is
    T_base_prevbase @ T_prevbase_cam (the base's motion, from odometry).
    """

    features: Tensor  # (B, S, C, h, w) matching features (normalised per group)
    K: Tensor  # (B, S, 3, 3) intrinsics at the image resolution (H, W), pixels
    T_base_src: Tensor  # (B, S, 4, 4) source optical frame -> current base_link
    valid: Tensor  # (B, S) bool: False = missing view, never matched


def inverse_depth_hypotheses(min_depth: float, max_depth: float, count: int) -> Tensor:
    """(count,) depths in metres, uniform in inverse depth, nearest first."""
    if not 0.0 < min_depth < max_depth or count < 2:
        raise ValueError(f"need 0 < min_depth < max_depth and >= 2 hypotheses, got "
                         f"{min_depth}, {max_depth}, {count}")
    inv = torch.linspace(1.0 / min_depth, 1.0 / max_depth, count, dtype=torch.float64)
    return (1.0 / inv).float()


def pair_transforms(T_base_ref: Tensor, T_base_src: Tensor) -> Tensor:
    """T_src_ref for every (reference, source) pair: (B, V, 4, 4), (B, S, 4, 4) -> (B, V, S, 4, 4).

    Rigid inverse written out (R^T, -R^T t), float32.
    """
    with fp32_geometry(T_base_src):
        Ts = T_base_src.float()
        R_t = Ts[..., :3, :3].transpose(-1, -2)  # (B, S, 3, 3)
        t = Ts[..., :3, 3:]  # (B, S, 3, 1)
        T_src_base = torch.cat([torch.cat([R_t, -R_t @ t], -1), Ts[..., 3:, :]], -2)
        return T_src_base[:, None] @ T_base_ref.float()[:, :, None]  # (B, V, S, 4, 4)


def sweep_coordinates(K_ref: Tensor, K_src: Tensor, T_src_ref: Tensor, depths: Tensor,
                      uv: Tensor, image_hw: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Where reference pixels at each hypothesis depth land in each source.

    Args:
        K_ref: (B, V, 3, 3) reference intrinsics at `image_hw`, pixels.
        K_src: (B, V, S, 3, 3) the source of each pair's intrinsics at `image_hw`.
        T_src_ref: (B, V, S, 4, 4) reference optical frame -> source optical frame.
        depths: (D,) hypothesis depths, metres along the reference optical axis.
        uv: (N, 2) reference pixel coordinates (e.g. `cell_centers` of the feature grid).
        image_hw: (H, W) the intrinsics refer to.

    Returns:
        grid (B, V, S, D, N, 2) `grid_sample` coordinates in the source (align_corners
        False; finite, far outside where the point is not seen), inside (B, V, S, D, N)
        bool: in front of the source and inside its image.
    """
    with fp32_geometry(K_ref):
        d_ref = camera_directions(uv, K_ref)  # (B, V, N, 3), z = 1
        Kg = grid_intrinsics(K_src, image_hw)  # (B, V, S, 3, 3)
        M = Kg @ T_src_ref[..., :3, :3]  # (B, V, S, 3, 3)
        a = d_ref[:, :, None] @ M.transpose(-1, -2)  # (B, V, S, N, 3): per metre of depth
        b = (Kg @ T_src_ref[..., :3, 3:])[..., 0]  # (B, V, S, 3)
        q = depths.view(1, 1, 1, -1, 1, 1) * a[:, :, :, None] + b[:, :, :, None, None]
        z = q[..., 2]  # (B, V, S, D, N)
        in_front = z > EPS_Z
        inv_z = 1.0 / torch.where(in_front, z, torch.full_like(z, EPS_Z))
        grid = q[..., :2] * inv_z[..., None]
        return grid, in_front & inside_grid(grid)


def box_matrix(n: int, window: int, factor: int, device: torch.device) -> Tensor:
    """(n / factor, n) row-normalised band: row i averages the `window` pixels centred on
    coarse cell i (cut at the border), so `box_matrix @ x` is a strided box mean."""
    start = torch.arange(0, n, factor, device=device) + factor // 2 - window // 2  # (m,)
    p = torch.arange(n, device=device)
    band = ((p[None] >= start[:, None]) & (p[None] < start[:, None] + window)).float()
    return band / band.sum(1, keepdim=True)


def cell_box_means(x: Tensor, window: int, factor: int) -> Tensor:
    """Means over window x window pixel boxes centred on each cell of a grid `factor` times
    coarser: (N, C, h * factor, w * factor) -> (N, C, h, w), boxes cut at the border (the
    mean of the pixels inside). Two banded matrix products (CPU pooling at these sizes is
    several times slower); `window` and `factor` even, so the box is centred on the cell."""
    hp, wp = x.shape[-2:]
    rows = box_matrix(hp, window, factor, x.device)  # (h, hp)
    cols = box_matrix(wp, window, factor, x.device)  # (w, wp)
    return rows @ (x.float() @ cols.transpose(0, 1))


def grey_levels(images: Tensor, factor: int) -> Tensor:
    """(N, 3, H, W) RGB in [0, 1] -> (N, factor^2, H / (2 factor), W / (2 factor)): the grey
    image at 1/PHOTO_STRIDE, packed by pixel_unshuffle onto the 1/(2 factor) feature grid."""
    grey = F.avg_pool2d(images.float().mean(1, keepdim=True), PHOTO_STRIDE)
    return F.pixel_unshuffle(grey, factor)


def normalised_cross_correlation(ref: Tensor, warped: Tensor, window: int,
                                 factor: int) -> Tensor:
    """ZNCC of reference grey images with their warped sources per hypothesis, in [-1, 1],
    over window x window boxes centred on the cells of a grid `factor` times coarser.

    Args:
        ref: (N, 1, h * factor, w * factor) grey levels; warped: (N, k, D, h * factor,
            w * factor) k sources warped per plane.
        window, factor: box side in pixels and grid stride (both even).

    Returns:
        (N, k, D, h, w); 0 where either patch is flat (variance below PHOTO_MIN_VAR).
    """
    N, k, D, hp, wp = warped.shape
    flat = warped.reshape(N, k * D, hp, wp)
    ref_stats = cell_box_means(torch.cat([ref, ref * ref], 1), window, factor)
    mr, var_r = ref_stats[:, :1], ref_stats[:, 1:] - ref_stats[:, :1] ** 2
    stats = cell_box_means(torch.cat([flat, flat * flat, flat * ref], 1), window, factor)
    ms, ms2, mrs = stats.chunk(3, 1)
    var_s = ms2 - ms * ms
    cov = mrs - mr * ms
    textured = (var_r > PHOTO_MIN_VAR) & (var_s > PHOTO_MIN_VAR)
    ncc = cov * torch.rsqrt(var_r.clamp(min=PHOTO_MIN_VAR) * var_s.clamp(min=PHOTO_MIN_VAR))
    ncc = torch.where(textured, ncc.clamp(-1.0, 1.0), torch.zeros_like(ncc))
    return ncc.view(N, k, D, *ncc.shape[-2:])


class PlaneSweepCostVolume(nn.Module):
    """Group-wise correlation over depth hypotheses against the best-overlapping sources.

    Output per reference view, at the feature grid: the weighted mean correlation per group
    and hypothesis (groups * hypotheses channels), with `photo_window` the weighted mean
    photometric NCC at every second plane ((hypotheses + 1) // 2 channels), and the mean
    matching weight (one channel: how much the volume can say at that cell).
    """

    SELECT_CELLS = 8  # pairs are ranked on an 8 x 8 grid of pixels ...
    SELECT_EVERY = 4  # ... and every 4th hypothesis (overlap is smooth in both)

    def __init__(self, channels: int, *, groups: int, hypotheses: int, min_depth: float,
                 max_depth: float, neighbours: int, min_baseline: float,
                 photo_window: int = 0, photo_factor: int = 2) -> None:
        """Args: channels of the matching features (divisible by groups); hypotheses
        planes between min_depth and max_depth metres; neighbours sources kept per view;
        min_baseline metres at which a pair gets full weight; photo_window: NCC box side in
        pixels at 1/2 of the image (0 = no photometric sweep); photo_factor: the feature
        grid's stride over the grey images' (cost stride / 2), whose pixel_unshuffle'd
        photo_factor^2 channels follow the matching features."""
        super().__init__()
        if channels % groups:
            raise ValueError(f"cost volume channels ({channels}) must be divisible by "
                             f"groups ({groups})")
        if photo_window and (photo_window < 2 or photo_window % 2 or photo_factor % 2):
            raise ValueError(f"photometric window and factor must be even and >= 2, got "
                             f"{photo_window}, {photo_factor}")
        self.channels, self.groups = channels, groups
        self.neighbours = int(neighbours)
        self.min_baseline = float(min_baseline)
        self.photo_window, self.photo_factor = int(photo_window), int(photo_factor)
        self.register_buffer("depths", inverse_depth_hypotheses(min_depth, max_depth,
                                                                hypotheses), persistent=False)
        self.photo_channels = (hypotheses + 1) // 2 if photo_window else 0  # every 2nd plane
        self.out_channels = groups * hypotheses + self.photo_channels + 1

    def pair_weights(self, K: Tensor, T_src_ref: Tensor, ref_valid: Tensor,
                     src: SourceViews, image_hw: tuple[int, int],
                     same_view: Tensor | None) -> Tensor:
        """(B, V, S) evidence of each pair: overlap fraction x baseline weight, 0 if unusable.

        Overlap is the fraction of (pixel, hypothesis) samples of a coarse sweep that land
        inside the source; baseline weight min(1, |t_src_ref| / min_baseline).
        """
        n = self.SELECT_CELLS
        uv = cell_centers(n, n, image_hw, device=K.device)  # (n*n, 2)
        depths = self.depths[self.SELECT_EVERY // 2::self.SELECT_EVERY]
        B, V, S = T_src_ref.shape[:3]
        K_src = src.K.float()[:, None].expand(B, V, S, 3, 3)
        _, inside = sweep_coordinates(K, K_src, T_src_ref, depths, uv, image_hw)
        overlap = inside.float().mean(dim=(-1, -2))  # (B, V, S)
        baseline = torch.linalg.vector_norm(T_src_ref[..., :3, 3], dim=-1)  # (B, V, S) m
        w = overlap * (baseline / self.min_baseline).clamp(max=1.0)
        usable = ref_valid[:, :, None] & src.valid[:, None, :]
        if same_view is not None:
            usable = usable & ~same_view
        return torch.where(usable, w, torch.zeros_like(w))

    def forward(self, ref_features: Tensor, K: Tensor, T_base_cam: Tensor, valid: Tensor,
                sources: SourceViews, image_hw: tuple[int, int],
                same_view: Tensor | None = None) -> Tensor:
        """Cost volume features of every reference view.

        Args:
            ref_features: (B, V, C, h, w) matching features of the reference views (with
                `photo_window`, followed by photo_factor^2 `grey_levels` channels).
            K: (B, V, 3, 3) at `image_hw`; T_base_cam: (B, V, 4, 4); valid: (B, V) bool.
            sources: the views to match against (S of them), laid out as ref_features.
            image_hw: (H, W) the intrinsics refer to.
            same_view: (V, S) bool, True where a source is the reference view itself.

        Returns:
            (B, V, out_channels, h, w) float32.
        """
        B, V, _, h, w = ref_features.shape
        C = self.channels
        S = sources.features.shape[1]
        D, G, N = self.depths.shape[0], self.groups, h * w
        k = min(self.neighbours, S)
        with fp32_geometry(ref_features):
            K = K.float()
            T_src_ref = pair_transforms(T_base_cam, sources.T_base_src)  # (B, V, S, 4, 4)
            pair_w = self.pair_weights(K, T_src_ref, valid, sources, image_hw,
                                       None if same_view is None else same_view[None])
            top_w, idx = pair_w.topk(k, dim=-1)  # (B, V, k)
            b_idx = torch.arange(B, device=idx.device)[:, None, None]  # (B, 1, 1)
            T_k = T_src_ref.gather(2, idx[..., None, None].expand(B, V, k, 4, 4))
            K_k = sources.K.float()[b_idx, idx]  # (B, V, k, 3, 3)
            uv = cell_centers(h, w, image_hw, device=K.device)  # (N, 2)
            grid, inside = sweep_coordinates(K, K_k, T_k, self.depths, uv, image_hw)
            src_all = sources.features[b_idx, idx].float()  # (B, V, k, C (+ r^2), h, w)
            src_k = src_all[:, :, :, :C]
            sampled = F.grid_sample(src_k.flatten(0, 2), grid.flatten(0, 2).clamp(-2.0, 2.0),
                                    mode="bilinear", padding_mode="zeros",
                                    align_corners=False)  # (B*V*k, C, D, N)
            sampled = sampled.view(B, V, k, G, C // G, D, N)
            ref = ref_features[:, :, :C].float().reshape(B, V, 1, G, C // G, 1, N)
            corr = (sampled * ref).sum(4)  # (B, V, k, G, D, N)
            wts = inside.float() * top_w[..., None, None]  # (B, V, k, D, N)
            total = wts.sum(2)  # (B, V, D, N)
            cost = (corr * wts[:, :, :, None]).sum(2) / total[:, :, None].clamp(min=1e-6)
            evidence = total.mean(2, keepdim=True)  # (B, V, 1, N)
            parts = [cost.reshape(B, V, G * D, h, w)]
            if self.photo_window:
                parts.append(self.photometric(ref_features[:, :, C:], src_all[:, :, :, C:],
                                              K, K_k, T_k, top_w, image_hw))
            parts.append(evidence.view(B, V, 1, h, w))
            return torch.cat(parts, 2)

    def photometric(self, ref_grey: Tensor, src_grey: Tensor, K: Tensor, K_k: Tensor,
                    T_k: Tensor, top_w: Tensor, image_hw: tuple[int, int]) -> Tensor:
        """Weighted mean NCC of the kept sources at every 2nd plane, (B, V, D', h, w).

        Args: ref_grey (B, V, r^2, h, w) and src_grey (B, V, k, r^2, h, w) packed grey
        levels (`grey_levels`); K (B, V, 3, 3), K_k (B, V, k, 3, 3), T_k (B, V, k, 4, 4)
        the kept pairs' geometry; top_w (B, V, k) their weights.
        """
        B, V, k = top_w.shape
        depths = self.depths[::2]
        r, D = self.photo_factor, depths.shape[0]
        h, w = ref_grey.shape[-2:]
        hp, wp = h * r, w * r
        ref = F.pixel_shuffle(ref_grey.float().flatten(0, 1), r)  # (B*V, 1, hp, wp)
        src = F.pixel_shuffle(src_grey.float().flatten(0, 2), r)  # (B*V*k, 1, hp, wp)
        uv = cell_centers(hp, wp, image_hw, device=K.device)  # (hp*wp, 2)
        grid, inside = sweep_coordinates(K, K_k, T_k, depths, uv, image_hw)
        warped = F.grid_sample(src, grid.flatten(0, 2).clamp(-2.0, 2.0), mode="bilinear",
                               padding_mode="zeros", align_corners=False)  # (BVk, 1, D, N)
        ncc = normalised_cross_correlation(ref, warped.view(B * V, k, D, hp, wp),
                                           self.photo_window, r)  # (B*V, k, D, h, w)
        # a pair's weight at a cell: the share of its box's pixels that land in the source
        seen = cell_box_means(inside.float().view(B * V, k * D, hp, wp), self.photo_window, r)
        wts = seen.view(B, V, k, D, h, w) * top_w[..., None, None, None]
        total = wts.sum(2)  # (B, V, D, h, w)
        return (ncc.view(B, V, k, D, h, w) * wts).sum(2) / total.clamp(min=1e-6)


@dataclass
class CostVolumeOutput:
    """What the cost volume found, before the network's convolutions."""

    features: Tensor  # (B*V, out_channels, h, w) for the tokens and the decoder
    depth: Tensor  # (B, V, h, w) metres: soft-argmin of the matching cost over the planes
    evidence: Tensor  # (B, V, h, w) in [0, 1]: mean matching weight (0 = nothing matched)


class CostVolumeEncoder(nn.Module):
    """Matching features from the encoder, the sweep, and the cost -> decoder features.

    `match` projects the encoder's map at the cost stride to `channels` matching features,
    L2-normalised per group (so correlations are cosine similarities in [-1, 1]); the swept
    cost plus evidence goes through two 3x3 convolutions to `out_channels` features that
    the network adds to its tokens and to its depth decoder at the cost stride.
    The volume's own depth, the soft-argmin over the planes of the group-mean correlation
    (times SOFT_ARGMIN_SCALE), is returned too: a training loss on it (training/losses.py,
    `cost_weight`) teaches the matching features directly, instead of only through the
    zero-initialised layers that feed the volume into the network.
    """

    def __init__(self, in_channels: int, out_channels: int, *, channels: int, groups: int,
                 hypotheses: int, min_depth: float, max_depth: float, neighbours: int,
                 min_baseline: float, photo_window: int = 0, photo_factor: int = 2) -> None:
        super().__init__()
        self.groups = groups
        self.photo_factor = photo_factor if photo_window else 0
        self.match = nn.Conv2d(in_channels, channels, 1)
        self.sweep = PlaneSweepCostVolume(channels, groups=groups, hypotheses=hypotheses,
                                          min_depth=min_depth, max_depth=max_depth,
                                          neighbours=neighbours, min_baseline=min_baseline,
                                          photo_window=photo_window, photo_factor=photo_factor)
        learned = groups * hypotheses + 1  # correlations + evidence
        self.encode = nn.Sequential(
            nn.Conv2d(learned, out_channels, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1), nn.ReLU(inplace=True))
        # the photometric NCC joins the first convolution through its own zero-initialised
        # layer: weights trained without it load and give the same outputs until it learns
        self.photo_encode = None
        if photo_window:
            self.photo_encode = nn.Conv2d(self.sweep.photo_channels, out_channels, 3, padding=1)
            nn.init.zeros_(self.photo_encode.weight)
            nn.init.zeros_(self.photo_encode.bias)
        self.out_channels = out_channels

    def encode_cost(self, cost: Tensor) -> Tensor:
        """(N, sweep.out_channels, h, w) -> (N, out_channels, h, w) features."""
        GD, P = cost.shape[1] - 1 - self.sweep.photo_channels, self.sweep.photo_channels
        x = self.encode[0](torch.cat([cost[:, :GD], cost[:, -1:]], 1))
        if self.photo_encode is not None:
            x = x + self.photo_encode(cost[:, GD:GD + P])
        return self.encode[3](self.encode[2](self.encode[1](x)))

    def soft_argmin_depth(self, cost: Tensor) -> Tensor:
        """(B, V, sweep.out_channels, h, w) sweep output -> (B, V, h, w) depth in metres, the
        expectation of inverse depth under softmax(SOFT_ARGMIN_SCALE * mean correlation)."""
        B, V, _, h, w = cost.shape
        D = self.sweep.depths.shape[0]
        corr = cost[:, :, :self.groups * D].float().view(B, V, self.groups, D, h, w).mean(2)
        prob = torch.softmax(corr * SOFT_ARGMIN_SCALE, dim=2)
        inv = (prob * (1.0 / self.sweep.depths).view(1, 1, D, 1, 1)).sum(2)
        return 1.0 / inv

    def match_features(self, feature_map: Tensor, images: Tensor | None = None) -> Tensor:
        """(N, in_channels, h, w) encoder map -> (N, channels, h, w) float32, unit per group;
        with the photometric sweep, followed by the (N, 3, H, W) `images`' packed
        `grey_levels` (photo_factor^2 more channels)."""
        x = self.match(feature_map).float()
        N, C, h, w = x.shape
        x = F.normalize(x.view(N, self.groups, C // self.groups, h, w), dim=2).view(N, C, h, w)
        if not self.photo_factor:
            return x
        if images is None:
            raise ValueError("the photometric cost volume needs the images beside the features")
        return torch.cat([x, grey_levels(images, self.photo_factor)], 1)

    def forward(self, match: Tensor, K: Tensor, T_base_cam: Tensor, valid: Tensor,
                image_hw: tuple[int, int], previous: SourceViews | None = None
                ) -> CostVolumeOutput:
        """Cost features, depth and evidence of every view.

        Args:
            match: (B, V, C, h, w) matching features of the current set.
            K, T_base_cam: (B, V, 3, 3), (B, V, 4, 4); valid: (B, V) bool.
            previous: the previous set's views moved into the current base_link, or None.

        Returns:
            CostVolumeOutput (features (B * V, out_channels, h, w)).
        """
        B, V = match.shape[:2]
        same = torch.eye(V, dtype=torch.bool, device=match.device)  # (V, V)
        sources = SourceViews(match, K, T_base_cam, valid)
        if previous is not None:
            sources = SourceViews(torch.cat([match, previous.features.to(match.dtype)], 1),
                                  torch.cat([K, previous.K], 1),
                                  torch.cat([T_base_cam, previous.T_base_src], 1),
                                  torch.cat([valid, previous.valid], 1))
            same = torch.cat([same, torch.zeros_like(same)], 1)  # (V, 2V)
        cost = self.sweep(match, K, T_base_cam, valid, sources, image_hw, same)
        return CostVolumeOutput(features=self.encode_cost(cost.flatten(0, 1).to(match.dtype)),
                                depth=self.soft_argmin_depth(cost),
                                evidence=cost[:, :, -1].float())
