"""Tests of depth_any_view.data.augment: rig-aware flip, colour jitter, view jitter."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from depth_any_view.config import ConfigError
from depth_any_view.data.augment import (
    AugmentConfig,
    Augmenter,
    color_jitter,
    hflip_sample,
    mirror_name,
    mirror_permutation,
    random_rotations,
    rotate_views,
    view_jitter,
)
from depth_any_view.geometry.rig import load_rig, optical_rotation
from depth_any_view.geometry.transforms import make_transform

H, W = 12, 16
K_NP = np.array([[9.0, 0.0, 8.3], [0.0, 9.5, 5.1], [0.0, 0.0, 1.0]])  # off-centre principal point


def _sample(seed: int = 0) -> dict:
    rig = load_rig("surround6")
    gen = torch.Generator().manual_seed(seed)
    v = len(rig)
    return {"images": torch.rand(v, 3, H, W, generator=gen),
            "depth": torch.rand(v, H, W, generator=gen) * 10 + 1,
            "K": torch.tensor(K_NP).expand(v, 3, 3).clone(),
            "T_base_cam": torch.tensor(rig.T_base_cams()),
            "occupancy": torch.randint(0, 2, (4, 6, 3), generator=gen).to(torch.uint8),
            "T_odom_base": torch.tensor(make_transform(optical_rotation(0.3), [1.0, 2.0, 0.0])),
            "view_mask": torch.tensor([True, False, True, True, True, True]),
            "camera_names": rig.names}


def _backproject(K: torch.Tensor, T: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
    """base_link points (H, W, 3) of a depth map."""
    v, u = torch.meshgrid(torch.arange(H, dtype=torch.float64),
                          torch.arange(W, dtype=torch.float64), indexing="ij")
    rays = torch.stack([u, v, torch.ones_like(u)], -1) @ torch.linalg.inv(K.double()).T
    p = rays * depth.double()[..., None]
    return p @ T[:3, :3].double().T + T[:3, 3].double()


def _project(K: torch.Tensor, T: torch.Tensor, p_base: torch.Tensor):
    """Pixel (..., 2) and depth (...) of base_link points in a camera."""
    Ti = torch.linalg.inv(T.double())
    p = p_base @ Ti[:3, :3].T + Ti[:3, 3]
    uvw = p @ K.double().T
    return uvw[..., :2] / uvw[..., 2:], p[..., 2]


def test_mirror_names_and_permutation():
    assert mirror_name("front_left") == "front_right"
    assert mirror_name("back_right") == "back_left"
    assert mirror_name("front") == "front"
    names = load_rig("surround6").names
    perm = mirror_permutation(names)
    assert [names[p] for p in perm] == [mirror_name(n) for n in names]
    assert mirror_permutation(["left_cam", "centre"]) == [0, 1]  # no partner: stays
    with pytest.raises(ValueError, match="duplicates"):
        mirror_permutation(["front_left", "front_right", "front_right"])


def test_hflip_point_projects_to_mirrored_pixel_and_geometry_is_consistent():
    s = _sample()
    f = hflip_sample(s)
    names = s["camera_names"]
    perm = mirror_permutation(names)
    for k in range(len(names)):
        src = perm[k]  # new view k holds the mirrored data of old view src
        assert torch.linalg.det(f["T_base_cam"][k, :3, :3]).item() == pytest.approx(1.0)
        assert torch.equal(f["images"][k], torch.flip(s["images"][src], dims=[-1]))
        # back-projecting the new depth with the new calibration gives the mirrored points
        p_old = _backproject(s["K"][src], s["T_base_cam"][src], s["depth"][src])
        p_new = _backproject(f["K"][k], f["T_base_cam"][k], f["depth"][k])
        mirrored = torch.flip(p_old, dims=[1]) * torch.tensor([1.0, -1.0, 1.0],
                                                              dtype=torch.float64)
        assert torch.allclose(p_new, mirrored, atol=1e-9)
    # a base_link point seen by front_left lands at the mirrored pixel of the new front_right
    a, b = names.index("front_left"), names.index("front_right")
    p = torch.tensor([2.0, 3.0, 1.0], dtype=torch.float64)
    uv, z = _project(s["K"][a], s["T_base_cam"][a], p)
    uv2, z2 = _project(f["K"][b], f["T_base_cam"][b], p * torch.tensor([1.0, -1.0, 1.0]))
    assert z.item() > 0 and z2.item() == pytest.approx(z.item())
    assert uv2[0].item() == pytest.approx(W - 1 - uv[0].item())
    assert uv2[1].item() == pytest.approx(uv[1].item())
    # the surround rig is mirror-symmetric: after the swap every view is back in its slot
    assert torch.allclose(f["T_base_cam"], s["T_base_cam"], atol=1e-8)
    assert torch.equal(f["occupancy"], torch.flip(s["occupancy"], dims=[1]))
    assert torch.linalg.det(f["T_odom_base"][:3, :3]).item() == pytest.approx(1.0)
    assert f["camera_names"] == names
    assert f["view_mask"].tolist() == s["view_mask"][perm].tolist()  # follows the data
    assert not f["view_mask"][names.index("front_right")]
    assert torch.equal(hflip_sample(f)["images"], s["images"])  # an involution


def test_hflip_rejects_asymmetric_grid():
    s = _sample()
    s["grid"] = {"lower": [-5.0, -2.0, 0.0], "upper": [5.0, 6.0, 2.0], "dims": [4, 6, 3]}
    with pytest.raises(ValueError, match="symmetric"):
        hflip_sample(s)


def test_color_jitter_deterministic_bounded_and_neutral():
    imgs = _sample()["images"]
    a = color_jitter(imgs, generator=torch.Generator().manual_seed(5))
    b = color_jitter(imgs, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and not torch.allclose(a, imgs)
    assert a.min() >= 0 and a.max() <= 1
    same = color_jitter(imgs, brightness=0, contrast=0, saturation=0, hue_deg=0)
    assert torch.allclose(same, imgs, atol=1e-6)
    grey = torch.full((2, 3, H, W), 0.4)
    hue_only = color_jitter(grey, brightness=0, contrast=0, saturation=0.5, hue_deg=30)
    assert torch.allclose(hue_only, grey, atol=1e-6)  # grey has no hue or saturation
    twins = imgs[:1].expand(3, 3, H, W)
    shared = color_jitter(twins, per_view=False, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(shared[0], shared[2])
    per_view = color_jitter(twins, per_view=True, generator=torch.Generator().manual_seed(1))
    assert not torch.allclose(per_view[0], per_view[2])
    as_uint8 = color_jitter((imgs * 255).round().to(torch.uint8))
    assert as_uint8.dtype == torch.uint8


def _wall(K: np.ndarray, T: np.ndarray, x_wall: float = 5.0):
    """Depth (H, W) and image (3, H, W) of the textured wall x = x_wall."""
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    rays = (np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(K).T) @ T[:3, :3].T
    d = (x_wall - T[0, 3]) / rays[..., 0]
    p = T[:3, 3] + d[..., None] * rays
    img = np.stack([0.5 + 0.3 * np.sin(1.5 * p[..., 1]), 0.5 + 0.3 * np.cos(1.2 * p[..., 2]),
                    0.5 + 0.2 * np.sin(p[..., 1] + p[..., 2])])
    return torch.tensor(d), torch.tensor(img, dtype=torch.float32)


def test_view_jitter_matches_reprojection_with_new_extrinsic():
    T = make_transform(optical_rotation(0.0), [0.0, 0.0, 1.5])  # wall is fronto-parallel
    depth, img = _wall(K_NP, T)
    yaw, pitch = math.radians(12), math.radians(-6)
    R = torch.tensor(optical_rotation(yaw, pitch) @ optical_rotation(0.0).T)  # in base axes
    R_cam = torch.tensor(T[:3, :3]).T @ R @ torch.tensor(T[:3, :3])  # same rotation, camera axes
    K = torch.tensor(K_NP)
    imgs, dep, T_new = rotate_views(img[None], depth[None], K[None], torch.tensor(T)[None],
                                    R_cam[None])
    assert torch.allclose(T_new[0, :3, 3], torch.tensor(T[:3, 3]))
    assert torch.allclose(T_new[0, :3, :3], torch.tensor(optical_rotation(yaw, pitch)))
    # depth and image everywhere equal a rendering with the new extrinsic
    exp_depth, exp_img = _wall(K_NP, T_new[0].numpy())
    valid = torch.isfinite(dep[0])
    assert 0.5 * H * W < valid.sum() < H * W  # part of the view now looks outside the old one
    assert torch.allclose(dep[0][valid], exp_depth[valid], rtol=1e-9)
    assert (imgs[0][:, ~valid] == 0).all()
    assert (imgs[0][:, valid] - exp_img[:, valid]).abs().mean() < 0.01
    # a wall point projects with the new extrinsic to a pixel holding its depth
    p = torch.tensor([5.0, -0.3, 1.2], dtype=torch.float64)
    uv, z = _project(K, T_new[0], p)
    col, row = (int(round(c)) for c in uv.tolist())
    uv_old, _ = _project(K, torch.tensor(T), p)
    assert uv.sub(uv_old).abs().max() > 1.0  # the point really moved in the image
    assert dep[0, row, col].item() == pytest.approx(z.item(), rel=0.02)
    assert dep[0, row, col].item() == pytest.approx(exp_depth[row, col].item(), rel=1e-9)


def test_view_jitter_probability_and_determinism():
    s = _sample()
    assert view_jitter(s, prob=0.0)["images"] is s["images"]
    a = view_jitter(s, prob=1.0, max_deg=15, generator=torch.Generator().manual_seed(2))
    b = view_jitter(s, prob=1.0, max_deg=15, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a["images"], b["images"])
    assert torch.equal(a["depth"].isnan(), b["depth"].isnan())
    assert not torch.allclose(a["T_base_cam"], s["T_base_cam"])
    assert torch.equal(a["K"], s["K"])
    R = random_rotations(50, 15.0, torch.Generator().manual_seed(0))
    angles = torch.rad2deg(torch.arccos(((R.diagonal(dim1=1, dim2=2).sum(-1) - 1) / 2)
                                        .clamp(-1, 1)))
    assert angles.max() <= 15.0 + 1e-6 and angles.max() > 10.0
    eye = torch.eye(3, dtype=torch.float64).expand(50, 3, 3)
    assert torch.allclose(R @ R.transpose(1, 2), eye)


def test_augmenter_combines_and_is_deterministic():
    s = _sample()
    original = {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in s.items()}
    aug = Augmenter(AugmentConfig(flip_prob=0.5, color_prob=1.0, view_jitter_prob=0.5))
    a = aug(s, torch.Generator().manual_seed(7))
    b = aug(s, torch.Generator().manual_seed(7))
    c = aug(s, torch.Generator().manual_seed(8))
    for key in ("images", "K", "T_base_cam", "occupancy"):
        assert torch.equal(a[key], b[key])
        assert torch.equal(s[key], original[key])  # input untouched
    assert torch.equal(a["depth"].nan_to_num(-1), b["depth"].nan_to_num(-1))
    assert not torch.equal(a["images"], c["images"])
    off = Augmenter(AugmentConfig(flip_prob=0, color_prob=0, view_jitter_prob=0))
    same = off(s, torch.Generator().manual_seed(7))
    assert all(torch.equal(same[k], s[k]) for k in ("images", "depth", "K", "T_base_cam"))
    flips = Augmenter(AugmentConfig(flip_prob=1.0, color_prob=0, view_jitter_prob=0))(s)
    assert torch.equal(flips["images"], hflip_sample(s)["images"])


def test_augment_config_validation():
    with pytest.raises(ConfigError, match="flip_prob"):
        AugmentConfig(flip_prob=1.5)
    with pytest.raises(ConfigError, match="view_jitter_deg"):
        AugmentConfig(view_jitter_deg=120.0)
    with pytest.raises(ConfigError, match="unknown augment option"):
        AugmentConfig.from_dict({"flip": 0.5})
    assert AugmentConfig.from_dict({"hue_deg": 0.0}).hue_deg == 0.0
