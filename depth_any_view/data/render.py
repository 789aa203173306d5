"""Ray-cast rendering of a scene into the rig's cameras: RGB images and z-depth (Open3D).

Frames: rays start in each camera's optical frame (x right, y down, z forward) as the
undistorted pixel rays scaled to z = 1 (pixel centres at integer u, v), are rotated into
base_link with `T_base_cam` and into odom with `T_odom_base`, and are cast without
normalising, so Open3D's `t_hit` is the depth along the optical axis directly (metres).
Depth farther than `max_range` (or no hit at all) is NaN; such surfaces are still drawn.
Moving objects (`dynamic`, a `DynamicMesh`) are cast in their own small scene per frame and
the nearer of the two hits is kept per ray; their primitive ids follow the static ones.

Shading: albedo from the procedural textures (textures.py) at the hit's texture
coordinates, times Lambert lighting ambient + diffuse * max(0, n . l) with the triangle
normal turned towards the camera; outdoors a distance haze fades colours towards the
horizon and missed rays show a sky gradient. Images are uint8 RGB.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from depth_any_view.data.parallel import num_threads, run_all
from depth_any_view.data.scenes import Scene
from depth_any_view.data.textures import albedo
from depth_any_view.geometry.camera import PinholeCamera

if TYPE_CHECKING:
    from depth_any_view.data.dynamic import DynamicMesh


class Renderer:
    """Renders one scene into a fixed set of cameras rigidly mounted on base_link."""

    def __init__(self, scene: Scene, cameras: Sequence[PinholeCamera], T_base_cam: np.ndarray,
                 *, max_range: float, noise_std: float = 0.0) -> None:
        """Precompute the camera rays in base_link.

        Args:
            scene: what to render.
            cameras: V distortion-free cameras, all of the same image size.
            T_base_cam: (V, 4, 4) optical frame -> base_link.
            max_range: metres along the optical axis; farther depth becomes NaN.
            noise_std: Gaussian pixel noise in 0-255 units (0 = none).
        """
        sizes = {(c.width, c.height) for c in cameras}
        if len(sizes) != 1:
            raise ValueError(f"all cameras must share one image size, got {sorted(sizes)}")
        T_base_cam = np.asarray(T_base_cam, dtype=np.float64)
        if T_base_cam.shape != (len(cameras), 4, 4):
            raise ValueError(f"T_base_cam must be (V={len(cameras)}, 4, 4), got "
                             f"{T_base_cam.shape}")
        if max_range <= 0:
            raise ValueError(f"max_range must be > 0 metres, got {max_range}")
        self.scene = scene
        self.width, self.height = sizes.pop()
        self.num_views = len(cameras)
        self.max_range = float(max_range)
        self.noise_std = float(noise_std)
        rays = np.stack([c.pixel_rays() for c in cameras])  # (V, H, W, 3), z = 1
        R = T_base_cam[:, :3, :3]
        self._rays_base = np.einsum("vij,vhwj->vhwi", R, rays).reshape(-1, 3).astype(
            np.float32)  # (V*H*W, 3)
        self._origins_base = T_base_cam[:, :3, 3]  # (V, 3)
        self._ray_len = np.linalg.norm(rays, axis=-1).reshape(-1).astype(np.float32)
        # A pixel covers about depth / f metres across the ray (any pixel of a pinhole).
        pix = np.array([1.0 / np.sqrt(c.fx * c.fy) for c in cameras])  # (V,) 1 / f
        self._inv_f = np.repeat(pix, self.width * self.height).astype(np.float32)  # (V*H*W,)

    def cast(self, T_odom_base: np.ndarray, dynamic: DynamicMesh | None = None
             ) -> dict[str, np.ndarray]:
        """Cast every pixel's ray; returns origins (N, 3), directions (N, 3), t_hit (N,)
        (= depth along z, inf on a miss), primitive ids (N,) and normals (N, 3), N = V*H*W.
        With `dynamic`, hits on its triangles have ids num_triangles + their index."""
        T = np.asarray(T_odom_base, dtype=np.float64)
        R, t = T[:3, :3], T[:3, 3]
        n = self._rays_base.shape[0]
        hw = self.width * self.height
        rays = np.empty((n, 6), np.float32)
        np.matmul(self._rays_base, R.T.astype(np.float32), out=rays[:, 3:])
        origins = self._origins_base @ R.T + t  # (V, 3)
        rays.reshape(self.num_views, hw, 6)[:, :, :3] = origins[:, None, :]
        import open3d as o3d

        tensor = o3d.core.Tensor.from_numpy(rays)
        ans = self.scene.raycasting_scene().cast_rays(tensor)
        out = {"origins": rays[:, :3], "dirs": rays[:, 3:], "t_hit": ans["t_hit"].numpy(),
               "primitive_ids": ans["primitive_ids"].numpy(),
               "normals": ans["primitive_normals"].numpy()}
        if dynamic is not None and dynamic.num_triangles:
            dyn = dynamic.raycasting_scene().cast_rays(tensor)
            t_dyn = dyn["t_hit"].numpy()
            near = np.flatnonzero(t_dyn < out["t_hit"])
            out["t_hit"][near] = t_dyn[near]
            out["primitive_ids"][near] = (dyn["primitive_ids"].numpy()[near]
                                          + np.uint32(self.scene.num_triangles))
            out["normals"][near] = dyn["primitive_normals"].numpy()[near]
        return out

    def render(self, T_odom_base: np.ndarray, rng: np.random.Generator | None = None,
               dynamic: DynamicMesh | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Images (V, H, W, 3) uint8 RGB and depth (V, H, W) float32 metres (NaN = none)
        seen from base pose `T_odom_base` (4, 4); `rng` draws the pixel noise, if any;
        `dynamic` adds moving objects at their pose of this frame."""
        ray = self.cast(T_odom_base, dynamic)
        t_hit = ray["t_hit"]
        n = t_hit.shape[0]
        shape = (self.num_views, self.height, self.width)
        depth = np.where(t_hit <= self.max_range, t_hit, np.nan).astype(np.float32)  # inf > r
        colour = np.empty((n, 3), np.float32)
        # Shading is pixel-independent: chunks run in threads (numpy and OpenCV release
        # the GIL), with identical results for any number of threads.
        bounds = np.linspace(0, n, 2 * num_threads() + 1).astype(np.int64)
        run_all([lambda a=a, b=b: self._shade(ray, colour, a, b, dynamic)
                 for a, b in zip(bounds[:-1], bounds[1:])])
        img = colour * np.float32(255.0)
        if self.noise_std > 0:
            rng = rng if rng is not None else np.random.default_rng(0)
            img += rng.normal(0.0, self.noise_std, img.shape).astype(np.float32)
        images = np.clip(img + 0.5, 0.0, 255.0).astype(np.uint8).reshape(*shape, 3)
        return images, depth.reshape(shape)

    def _shade(self, ray: dict[str, np.ndarray], colour: np.ndarray, a: int, b: int,
               dynamic: DynamicMesh | None = None) -> None:
        """Write the colours of rays [a, b) into `colour` (N, 3)."""
        sc = self.scene
        f32 = np.float32
        t_hit = ray["t_hit"][a:b]
        hit = np.isfinite(t_hit)
        # Shade every ray (misses as hits at t = 0 on face 0) and paint the sky over misses
        # afterwards: cheaper than gathering the hits when most rays hit.
        th = np.where(hit, t_hit, f32(0.0))
        face = np.where(hit, ray["primitive_ids"][a:b], 0).astype(np.int64)
        d = ray["dirs"][a:b]
        p = ray["origins"][a:b] + d * th[:, None]  # (n, 3) hit points in odom
        normal = ray["normals"][a:b]
        dn = np.einsum("ij,ij->i", d, normal)
        ray_len = self._ray_len[a:b]
        cos_inc = np.abs(dn) / ray_len
        footprint = th * self._inv_f[a:b] / np.maximum(cos_inc, f32(0.2))  # metres per pixel
        if dynamic is None:
            s = np.einsum("ij,ij->i", p, sc.face_tu[face])
            t = np.einsum("ij,ij->i", p, sc.face_tv[face])
            col = albedo(sc.materials, sc.noise, sc.face_material[face], s, t, footprint)
        else:
            mat, tu, tv, st = _face_data(sc, dynamic, face)
            s = np.einsum("ij,ij->i", p, tu) + st[:, 0]
            t = np.einsum("ij,ij->i", p, tv) + st[:, 1]
            col = albedo(dynamic.materials, sc.noise, mat, s, t, footprint)
        n_dot_l = (normal @ sc.light_dir.astype(f32)) * np.where(dn > 0, f32(-1.0), f32(1.0))
        col *= (f32(sc.ambient) + f32(sc.diffuse) * np.maximum(n_dot_l, f32(0.0)))[:, None]
        if sc.fog_density > 0:
            fog = f32(1.0) - np.exp(f32(-sc.fog_density) * th * ray_len)  # along the ray
            col += (sc.sky_horizon - col) * fog[:, None]
        miss = np.flatnonzero(~hit)
        if miss.size:
            dm = d[miss]
            up = np.sqrt(np.clip(dm[:, 2] / np.linalg.norm(dm, axis=1), 0.0, 1.0))
            col[miss] = sc.sky_horizon + (sc.sky_zenith - sc.sky_horizon) * up[:, None]
        colour[a:b] = col


def _face_data(scene: Scene, dynamic: DynamicMesh, face: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Material ids (n,), texture axes tu, tv (n, 3) and texture offsets (n, 2) of faces
    (n,) numbered as in `Renderer.cast` (static first, then the dynamic ones)."""
    f_static = scene.num_triangles
    dyn = np.flatnonzero(face >= f_static)
    fs = np.where(face >= f_static, 0, face)
    mat, tu, tv = scene.face_material[fs], scene.face_tu[fs], scene.face_tv[fs]
    st = np.zeros((face.shape[0], 2), np.float32)
    if dyn.size:
        fd = face[dyn] - f_static
        mat[dyn], tu[dyn], tv[dyn] = (dynamic.face_material[fd], dynamic.face_tu[fd],
                                      dynamic.face_tv[fd])
        st[dyn] = dynamic.face_st[fd]
    return mat, tu, tv, st
