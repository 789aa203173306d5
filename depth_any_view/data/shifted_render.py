"""Materials and ray-cast rendering of the shifted world (Open3D `RaycastingScene`).

Frames: camera rays start in each optical frame (x right, y down, z forward) as the
undistorted pixel rays with z = 1, are turned into base_link by `T_base_cam` and into odom
by `T_odom_base`, and are cast unnormalised, so a hit's `t_hit` is its depth along the
optical axis in metres. Depth beyond `max_range` (or a miss) is NaN; such surfaces are
still drawn. Images are uint8 RGB.

Unlike render.py this renderer uses: per-material patterns (flat colour, value noise,
stripes, checkers or a scikit-image sample photograph) on world-aligned triplanar texture
axes, faded to their mean colour where a texel gets smaller than a pixel; Blinn-Phong
shading with a coloured sun (outdoor) or a point lamp with distance fall-off (indoor), hard
shadows by a second ray cast towards the light, a sky with a sun disc and clouds, and a
random exposure and display gamma.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from depth_any_view.data.shifted_config import ShiftedLightingConfig, ShiftedTextureConfig

FLAT, NOISE, STRIPES, CHECKER, PHOTO = range(5)  # material kinds
PHOTO_NAMES = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry",
               "hubble_deep_field", "colorwheel", "retina", "brick", "grass", "gravel")
NOISE_TEXELS = 64  # side of the periodic value-noise tile
SHADOW_EPS = 2e-3  # metres (plus 1e-3 of the depth) a shadow ray starts off its surface


@functools.lru_cache(maxsize=4)
def sample_photos(texels: int) -> np.ndarray:
    """scikit-image's sample photographs (they ship in its wheel) resampled to
    (P, texels, texels, 3) float32 linear RGB in [0, 1]; grey ones are repeated to RGB."""
    import cv2
    import skimage.data

    out = []
    for name in PHOTO_NAMES:
        img = np.asarray(getattr(skimage.data, name)())
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        img = cv2.resize(np.ascontiguousarray(img[:, :, :3]), (texels, texels),
                         interpolation=cv2.INTER_AREA)
        out.append((img.astype(np.float32) / 255.0) ** 2.2)  # sRGB-ish -> linear
    return np.stack(out)


@dataclass(frozen=True)
class MaterialSet:
    """M materials as arrays (colours linear RGB in [0, 1], scales in repeats per metre)."""

    kind: np.ndarray  # (M,) int32 FLAT | NOISE | STRIPES | CHECKER | PHOTO
    colour_a: np.ndarray  # (M, 3) float32
    colour_b: np.ndarray  # (M, 3) float32 second colour of noise, stripes, checkers
    scale: np.ndarray  # (M,) float32 repeats per metre
    angle: np.ndarray  # (M,) float32 radians, stripe direction in the texture plane
    photo: np.ndarray  # (M,) int32 index into sample_photos (PHOTO only)
    specular: np.ndarray  # (M,) float32 Blinn-Phong strength
    shininess: np.ndarray  # (M,) float32 Blinn-Phong exponent

    def __len__(self) -> int:
        """Number of materials M."""
        return int(self.kind.shape[0])


def random_colours(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 3) float32 colours: random hue, saturation and value, some nearly grey."""
    hue = rng.uniform(0.0, 1.0, n)
    sat = rng.uniform(0.0, 1.0, n) ** 1.5
    val = rng.uniform(0.08, 0.95, n)
    k = (hue[:, None] * 6.0 + np.array([5.0, 3.0, 1.0])[None]) % 6.0  # (n, 3)
    rgb = val[:, None] * (1.0 - sat[:, None] * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0))
    return rgb.astype(np.float32)


def draw_materials(rng: np.random.Generator, n: int, texture: ShiftedTextureConfig,
                   lighting: ShiftedLightingConfig) -> MaterialSet:
    """`n` random materials (kinds with the configured probabilities)."""
    p = np.array([texture.flat_probability, 0.0, texture.stripe_probability,
                  texture.checker_probability, texture.photo_probability])
    p[NOISE] = max(0.0, 1.0 - p.sum())
    kind = rng.choice(5, size=n, p=p / p.sum()).astype(np.int32)
    lo, hi = np.log(texture.scale[0]), np.log(texture.scale[1])
    return MaterialSet(
        kind=kind, colour_a=random_colours(rng, n), colour_b=random_colours(rng, n),
        scale=np.exp(rng.uniform(lo, hi, n)).astype(np.float32),
        angle=rng.uniform(0.0, np.pi, n).astype(np.float32),
        photo=rng.integers(0, len(PHOTO_NAMES), n).astype(np.int32),
        specular=rng.uniform(*lighting.specular, n).astype(np.float32),
        shininess=rng.uniform(*lighting.shininess, n).astype(np.float32))


def triplanar_axes(normals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Texture axes tu, tv (F, 3) float32 of faces with normals (F, 3): the two world axes
    orthogonal to the normal's largest component (s = p . tu, t = p . tv, metres)."""
    eye = np.eye(3, dtype=np.float32)
    dom = np.argmax(np.abs(normals), axis=1)  # 0: x, 1: y, 2: z
    u_axis = np.where(dom == 0, 1, 0)  # x-facing: (y, z); y-facing: (x, z); z: (x, y)
    v_axis = np.where(dom == 2, 1, 2)
    return eye[u_axis], eye[v_axis]


def _bilinear_tile(tile: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Periodic bilinear lookup of a (T, T) tile at texel coordinates u, v (n,)."""
    T = tile.shape[0]
    fu, fv = np.floor(u), np.floor(v)
    au, av = (u - fu).astype(np.float32), (v - fv).astype(np.float32)
    i0, j0 = fu.astype(np.int64) % T, fv.astype(np.int64) % T
    i1, j1 = (i0 + 1) % T, (j0 + 1) % T
    top = tile[j0, i0] * (1 - au) + tile[j0, i1] * au
    bottom = tile[j1, i0] * (1 - au) + tile[j1, i1] * au
    return top * (1 - av) + bottom * av


def albedo(mats: MaterialSet, noise_tile: np.ndarray, photos: np.ndarray, mat: np.ndarray,
           s: np.ndarray, t: np.ndarray, footprint: np.ndarray) -> np.ndarray:
    """Albedo (n, 3) float32 of hits with material ids `mat` (n,) at texture coordinates
    s, t (n,) metres; `footprint` (n,) metres per pixel fades patterns finer than a pixel
    to their mean colour."""
    sc = mats.scale[mat]
    u, v = s * sc, t * sc  # repeats
    kind = mats.kind[mat]
    a, b = mats.colour_a[mat], mats.colour_b[mat]
    out = a.copy()
    mean = a.copy()
    sel = np.flatnonzero(kind == NOISE)
    if sel.size:
        T = noise_tile.shape[0]
        n = (0.65 * _bilinear_tile(noise_tile, u[sel] * 8.0, v[sel] * 8.0)
             + 0.35 * _bilinear_tile(noise_tile, u[sel] * 8.0 * 4.3 + T / 3, v[sel] * 8.0 * 4.3))
        out[sel] = a[sel] + (b[sel] - a[sel]) * n[:, None]
        mean[sel] = 0.5 * (a[sel] + b[sel])
    sel = np.flatnonzero(kind == STRIPES)
    if sel.size:
        ang = mats.angle[mat[sel]]
        w = u[sel] * np.cos(ang) + v[sel] * np.sin(ang)
        out[sel] = np.where(((w - np.floor(w)) < 0.5)[:, None], a[sel], b[sel])
        mean[sel] = 0.5 * (a[sel] + b[sel])
    sel = np.flatnonzero(kind == CHECKER)
    if sel.size:
        odd = (np.floor(u[sel]) + np.floor(v[sel])).astype(np.int64) % 2 == 1
        out[sel] = np.where(odd[:, None], a[sel], b[sel])
        mean[sel] = 0.5 * (a[sel] + b[sel])
    sel = np.flatnonzero(kind == PHOTO)
    if sel.size:
        P = photos.shape[1]
        i = np.floor((u[sel] - np.floor(u[sel])) * P).astype(np.int64).clip(0, P - 1)
        j = np.floor((1.0 - (v[sel] - np.floor(v[sel]))) * P).astype(np.int64).clip(0, P - 1)
        pid = mats.photo[mat[sel]]
        out[sel] = photos[pid, j, i]
        mean[sel] = photos.mean(axis=(1, 2))[pid]
    # A pattern period shorter than ~2 pixels aliases: fade it to its mean colour.
    fade = np.clip(footprint * sc * 2.0 - 0.5, 0.0, 1.0).astype(np.float32)
    fade[kind == PHOTO] = np.clip(footprint[kind == PHOTO] * sc[kind == PHOTO] * 64.0 - 1.0,
                                  0.0, 1.0)
    return out + (mean - out) * fade[:, None]


@dataclass(frozen=True)
class Lighting:
    """One light and the sky of a scene (odom; colours linear RGB)."""

    kind: str  # 'sun' (direction) | 'lamp' (point)
    vector: np.ndarray  # (3,) unit direction towards the sun, or the lamp position (metres)
    colour: np.ndarray  # (3,) light colour times intensity
    ambient: np.ndarray  # (3,) ambient colour
    falloff: float  # lamp: metres at which the intensity halves (sun: unused)
    sky_horizon: np.ndarray  # (3,)
    sky_zenith: np.ndarray  # (3,)
    cloud_colour: np.ndarray  # (3,)
    cloudiness: float  # 0 clear .. 1 overcast
    exposure: float
    gamma: float
    shadows: bool
    noise_std: float  # Gaussian pixel noise, 0-255 units


def sky_colour(light: Lighting, noise_tile: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    """Colours (n, 3) of missed rays with directions (n, 3) (odom, any length)."""
    d = dirs / np.linalg.norm(dirs, axis=1, keepdims=True)
    up = np.clip(d[:, 2], 0.0, 1.0)[:, None]
    col = light.sky_horizon + (light.sky_zenith - light.sky_horizon) * np.sqrt(up)
    if light.cloudiness > 0:  # clouds on a plane above: lookup at (x, y) / z
        z = np.maximum(d[:, 2], 0.05)
        c = _bilinear_tile(noise_tile, d[:, 0] / z * 6.0, d[:, 1] / z * 6.0)
        cover = np.clip((c - (1.0 - light.cloudiness)) * 3.0, 0.0, 1.0) * np.sqrt(up[:, 0])
        col = col + (light.cloud_colour - col) * cover[:, None]
    if light.kind == "sun":
        disc = np.clip((d @ light.vector - 0.9990) / 0.0005, 0.0, 1.0)
        col = col + disc[:, None] * light.colour * 3.0
    return col.astype(np.float32)


class ShiftedRenderer:
    """Renders a ShiftedScene into a rig of same-size cameras rigidly mounted on base_link."""

    def __init__(self, scene: Any, cameras: list[Any], T_base_cam: np.ndarray, *,
                 max_range: float, photo_texels: int = 128) -> None:
        """Precompute the pixel rays in base_link.

        Args:
            scene: a shifted_world.ShiftedScene.
            cameras: V distortion-free PinholeCameras of one image size.
            T_base_cam: (V, 4, 4) optical frame -> base_link.
            max_range: metres along the optical axis; farther depth becomes NaN.
            photo_texels: resolution of the photograph textures.
        """
        sizes = {(c.width, c.height) for c in cameras}
        if len(sizes) != 1:
            raise ValueError(f"all cameras must share one image size, got {sorted(sizes)}")
        self.scene = scene
        self.width, self.height = sizes.pop()
        self.num_views = len(cameras)
        self.max_range = float(max_range)
        T_base_cam = np.asarray(T_base_cam, np.float64)
        rays = np.stack([c.pixel_rays() for c in cameras])  # (V, H, W, 3), z = 1
        self._rays_base = np.einsum("vij,vhwj->vhwi", T_base_cam[:, :3, :3], rays).reshape(
            -1, 3)  # (N, 3)
        self._origins_base = np.repeat(T_base_cam[:, :3, 3], self.width * self.height,
                                       axis=0)  # (N, 3)
        self._ray_len = np.linalg.norm(rays, axis=-1).reshape(-1).astype(np.float32)  # (N,)
        inv_f = np.array([1.0 / np.sqrt(c.fx * c.fy) for c in cameras])  # (V,)
        self._inv_f = np.repeat(inv_f, self.width * self.height).astype(np.float32)  # (N,)
        self._photos = sample_photos(photo_texels)

    def render(self, T_odom_base: np.ndarray, rng: np.random.Generator
               ) -> tuple[np.ndarray, np.ndarray]:
        """Images (V, H, W, 3) uint8 RGB and depth (V, H, W) float32 metres along z (NaN =
        none within max range) from base pose `T_odom_base` (4, 4); `rng` draws pixel noise."""
        import open3d as o3d

        sc, light = self.scene, self.scene.lighting
        T = np.asarray(T_odom_base, np.float64)
        dirs = (self._rays_base @ T[:3, :3].T).astype(np.float32)  # (N, 3) odom, z-depth scaled
        origins = (self._origins_base @ T[:3, :3].T + T[:3, 3]).astype(np.float32)
        rays = o3d.core.Tensor.from_numpy(np.ascontiguousarray(np.concatenate([origins, dirs],
                                                                              axis=1)))
        ans = sc.raycasting_scene().cast_rays(rays)
        t_hit = ans["t_hit"].numpy()  # (N,) depth along z, inf on a miss
        shape = (self.num_views, self.height, self.width)
        depth = np.where(t_hit <= self.max_range, t_hit, np.nan).astype(np.float32)
        colour = np.empty((t_hit.shape[0], 3), np.float32)
        hit = np.flatnonzero(np.isfinite(t_hit))
        miss = np.flatnonzero(~np.isfinite(t_hit))
        if miss.size:
            colour[miss] = sky_colour(light, sc.noise_tile, dirs[miss])
        if hit.size:
            colour[hit] = self._shade(hit, origins, dirs, t_hit,
                                      ans["primitive_ids"].numpy()[hit].astype(np.int64),
                                      ans["primitive_normals"].numpy()[hit])
        img = np.clip(colour * np.float32(light.exposure), 0.0, 1.0) ** np.float32(
            1.0 / light.gamma) * np.float32(255.0)
        if light.noise_std > 0:
            img += rng.normal(0.0, light.noise_std, img.shape).astype(np.float32)
        images = np.clip(img + 0.5, 0.0, 255.0).astype(np.uint8).reshape(*shape, 3)
        return images, depth.reshape(shape)

    def _shade(self, hit: np.ndarray, origins: np.ndarray, dirs: np.ndarray,
               t_hit: np.ndarray, face: np.ndarray, normal: np.ndarray) -> np.ndarray:
        """Linear colours (n, 3) of the hit rays `hit` (n,)."""
        import open3d as o3d

        sc, light = self.scene, self.scene.lighting
        th = t_hit[hit]
        d = dirs[hit]
        p = origins[hit] + d * th[:, None]  # (n, 3) odom
        d_unit = d / np.linalg.norm(d, axis=1, keepdims=True)
        dn = np.einsum("ij,ij->i", d_unit, normal)
        n = normal * np.where(dn > 0, -1.0, 1.0).astype(np.float32)[:, None]  # towards camera
        cos_inc = np.abs(dn)
        footprint = th * self._ray_len[hit] * self._inv_f[hit] / np.maximum(cos_inc, 0.2)
        mat = sc.face_material[face]
        col = albedo(sc.materials, sc.noise_tile, self._photos, mat,
                     np.einsum("ij,ij->i", p, sc.face_tu[face]),
                     np.einsum("ij,ij->i", p, sc.face_tv[face]), footprint)
        if light.kind == "sun":
            to_light = np.broadcast_to(light.vector.astype(np.float32), p.shape)
            power = np.ones(p.shape[0], np.float32)
            shadow_dir, t_max = to_light, np.inf
        else:
            delta = (light.vector[None] - p).astype(np.float32)
            dist = np.linalg.norm(delta, axis=1)
            to_light = delta / np.maximum(dist, 1e-6)[:, None]
            power = (1.0 / (1.0 + (dist / light.falloff) ** 2)).astype(np.float32)
            shadow_dir, t_max = delta, 1.0  # t = 1 reaches the lamp
        n_dot_l = np.einsum("ij,ij->i", n, to_light)
        lit = n_dot_l > 0
        if light.shadows and lit.any():
            idx = np.flatnonzero(lit)
            start = p[idx] + n[idx] * (SHADOW_EPS + 1e-3 * th[idx])[:, None]
            sd = shadow_dir[idx] if shadow_dir.shape[0] == p.shape[0] else shadow_dir
            sd = np.broadcast_to(sd, start.shape)
            srays = o3d.core.Tensor.from_numpy(np.ascontiguousarray(
                np.concatenate([start, sd], axis=1), dtype=np.float32))
            blocked = sc.raycasting_scene().cast_rays(srays)["t_hit"].numpy() < t_max
            lit[idx[blocked]] = False
        vis = (lit * power).astype(np.float32)
        half = to_light - d_unit
        half /= np.maximum(np.linalg.norm(half, axis=1, keepdims=True), 1e-6)
        spec = (sc.materials.specular[mat] * np.maximum(np.einsum("ij,ij->i", n, half), 0.0)
                ** sc.materials.shininess[mat])
        diffuse = np.maximum(n_dot_l, 0.0) * vis
        shaded = col * (light.ambient[None] + diffuse[:, None] * light.colour[None])
        return (shaded + (spec * vis)[:, None] * light.colour[None]).astype(np.float32)
