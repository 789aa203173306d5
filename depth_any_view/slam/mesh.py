"""Scene meshes from depth along a trajectory (TSDF fusion), their distances, a picture.

- `TsdfFusion` integrates colour + depth views along a trajectory into a truncated signed
  distance field with Open3D's voxel block grid (`open3d.t.geometry.VoxelBlockGrid`,
  Curless & Levoy 1996 / Niessner et al. 2013) and extracts a coloured triangle mesh
  (marching cubes). The legacy `ScalableTSDFVolume` of the open3d-cpu 0.20 wheel
  integrates nothing (an empty volume whatever the input), so the tensor API is used.
  A view's pose is T_world_cam = T_world_base T_base_cam (metres); depth is metres along
  z with NaN = unknown; distorted images are undistorted first (slam/odometry.py
  `rectified`).
- `mesh_distances` compares two meshes through points sampled uniformly on each surface
  (area-weighted, seeded) and their distance to the other surface (point to triangle, so
  the figures do not depend on how densely the other mesh was sampled): accuracy (mean
  distance of the estimate's samples to the reference), completeness (the reverse),
  Chamfer distance (their mean) and, per threshold tau, precision / recall / F-score =
  2PR / (P + R) (Knapitsch et al. 2017).
- `render_mesh_png`: Open3D's offscreen renderer needs a display or EGL, absent on a
  headless robot or CI machine, so the picture is the mesh's vertices in their colours,
  drawn with matplotlib from above and obliquely (painter's order).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from depth_any_view.geometry.camera import PinholeCamera
from depth_any_view.slam.odometry import RgbdView, rectified

RENDER_MAX_POINTS = 150_000  # vertices drawn in the picture (a seeded subset beyond this)


@dataclass(frozen=True)
class TsdfSettings:
    """TSDF fusion of the scene mesh (config/slam.yaml `tsdf:`)."""

    voxel_size: float = 0.05  # metres, TSDF voxel edge
    trunc_voxels: float = 3.0  # truncation distance in voxels
    depth_max: float = 12.0  # metres; farther depth is not integrated
    block_resolution: int = 8  # voxels per block edge
    frame_step: int = 2  # integrate every n-th set
    weight_threshold: float = 3.0  # marching cubes keeps voxels seen at least this often

    def __post_init__(self) -> None:
        """Validate every field (ValueError names it and the allowed range)."""
        for name in ("voxel_size", "trunc_voxels", "depth_max", "weight_threshold"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (
                    math.isfinite(v) and v > 0):
                raise ValueError(f"tsdf.{name} must be a finite number > 0, got {v!r}")
        for name in ("block_resolution", "frame_step"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"tsdf.{name} must be an integer >= 1, got {v!r}")


class TsdfFusion:
    """A coloured TSDF volume in one world frame, fed view by view."""

    def __init__(self, settings: TsdfSettings | None = None) -> None:
        """An empty volume on the CPU (imports open3d)."""
        import open3d as o3d

        self.o3d = o3d
        self.settings = s = settings or TsdfSettings()
        f32 = o3d.core.float32
        self.grid = o3d.t.geometry.VoxelBlockGrid(
            attr_names=("tsdf", "weight", "color"), attr_dtypes=(f32, f32, f32),
            attr_channels=((1), (1), (3)), voxel_size=float(s.voxel_size),
            block_resolution=int(s.block_resolution), block_count=4096,
            device=o3d.core.Device("CPU:0"))
        self.views = 0  # views integrated

    def integrate(self, view: RgbdView, T_world_base: np.ndarray) -> None:
        """Integrate one camera's colour and depth seen from base pose T_world_base (4, 4)."""
        o3d = self.o3d
        rgb, depth, K = rectified(view)
        if not np.any(depth > 0):
            return
        T_world_cam = np.asarray(T_world_base, dtype=np.float64) @ np.asarray(
            view.T_base_cam, dtype=np.float64)
        if not np.isfinite(T_world_cam).all():
            raise ValueError(f"camera '{view.name}': the view's pose is not finite")
        s = self.settings
        d = o3d.t.geometry.Image(o3d.core.Tensor(np.ascontiguousarray(depth, np.float32)))
        c = o3d.t.geometry.Image(o3d.core.Tensor(np.ascontiguousarray(rgb, np.float32) / 255.0))
        intrinsic = o3d.core.Tensor(np.asarray(K, dtype=np.float64))
        extrinsic = o3d.core.Tensor(np.linalg.inv(T_world_cam))  # world -> camera
        blocks = self.grid.compute_unique_block_coordinates(
            d, intrinsic, extrinsic, 1.0, float(s.depth_max), float(s.trunc_voxels))
        self.grid.integrate(blocks, d, c, intrinsic, intrinsic, extrinsic, 1.0,
                            float(s.depth_max), float(s.trunc_voxels))
        self.views += 1

    def mesh(self) -> Any:
        """The fused surface as an open3d.geometry.TriangleMesh (vertex colours in [0, 1])."""
        if self.views == 0:
            return self.o3d.geometry.TriangleMesh()
        mesh = self.grid.extract_triangle_mesh(
            weight_threshold=float(self.settings.weight_threshold)).to_legacy()
        return mesh


def camera_view(name: str, rgb: np.ndarray, depth: np.ndarray, camera: PinholeCamera,
                T_base_cam: np.ndarray, confidence: np.ndarray | None = None) -> RgbdView:
    """An RgbdView whose colour (and confidence) is resized to the depth's size when they
    differ (the camera is taken for the depth's size)."""
    import cv2

    depth = np.asarray(depth, dtype=np.float32)
    h, w = depth.shape
    if (camera.width, camera.height) != (w, h):
        camera = camera.resized(w, h)
    if rgb.shape[:2] != (h, w):
        rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
    if confidence is not None and confidence.shape != (h, w):
        confidence = cv2.resize(np.asarray(confidence, dtype=np.float32), (w, h),
                                interpolation=cv2.INTER_NEAREST)
    return RgbdView(name, rgb, depth, camera, np.asarray(T_base_cam, dtype=np.float64),
                    confidence)


def transform_mesh(mesh: Any, T: np.ndarray) -> Any:
    """The mesh with its vertices mapped by T (4, 4) (in place; returned for chaining)."""
    mesh.transform(np.asarray(T, dtype=np.float64))
    return mesh


def sample_surface(mesh: Any, count: int, seed: int = 0) -> np.ndarray:
    """(count, 3) points uniformly on the mesh's surface (area-weighted, seeded); (0, 3)
    for a mesh without triangles."""
    V = np.asarray(mesh.vertices, dtype=np.float64)
    F = np.asarray(mesh.triangles, dtype=np.int64)
    if F.shape[0] == 0 or count <= 0:
        return np.zeros((0, 3))
    a, b, c = V[F[:, 0]], V[F[:, 1]], V[F[:, 2]]  # (F, 3) each
    area = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)
    total = area.sum()
    if not total > 0:
        return np.zeros((0, 3))
    rng = np.random.default_rng(seed)
    face = rng.choice(F.shape[0], size=int(count), p=area / total)
    r1, r2 = rng.random(int(count)), rng.random(int(count))
    s = np.sqrt(r1)[:, None]
    return (1 - s) * a[face] + s * (1 - r2[:, None]) * b[face] + s * r2[:, None] * c[face]


def surface_distances(points: np.ndarray, mesh: Any) -> np.ndarray:
    """(N,) distance in metres of each point (N, 3) to the nearest point of the mesh's
    surface (its triangles, not samples of them: Open3D's raycasting scene)."""
    import open3d as o3d

    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(mesh))
    query = o3d.core.Tensor(np.ascontiguousarray(points, dtype=np.float32))
    return scene.compute_distance(query).numpy().astype(np.float64)


def mesh_distances(estimate: Any, reference: Any, *, samples: int = 100_000,
                   thresholds: tuple[float, ...] = (0.05, 0.10), seed: int = 0
                   ) -> dict[str, Any]:
    """Accuracy, completeness, Chamfer distance (metres) and F-scores of two meshes.

    Args:
        estimate: the mesh under test; reference: the ground-truth mesh (TriangleMesh).
        samples: surface points drawn on each.
        thresholds: distances tau (metres) of the precision / recall / F-score.
        seed: sampling seed (the same meshes give the same figures).

    Returns:
        accuracy_m, completeness_m, chamfer_m (mean of the two), samples,
        reference_triangles, and 'fscore':
        {f"{tau:.2f}": {precision, recall, fscore}}; NaN when a mesh is empty.
    """
    est = sample_surface(estimate, samples, seed)
    ref = sample_surface(reference, samples, seed + 1)
    out: dict[str, Any] = {"samples": int(samples),
                           "reference_triangles": int(len(reference.triangles))}
    if est.shape[0] == 0 or ref.shape[0] == 0:
        nan = float("nan")
        return {**out, "accuracy_m": nan, "completeness_m": nan, "chamfer_m": nan,
                "fscore": {f"{t:.2f}": {"precision": nan, "recall": nan, "fscore": nan}
                           for t in thresholds}}
    d_est = surface_distances(est, reference)  # estimate -> reference: accuracy, precision
    d_ref = surface_distances(ref, estimate)  # reference -> estimate: completeness, recall
    fs = {}
    for t in thresholds:
        p, r = float(np.mean(d_est < t)), float(np.mean(d_ref < t))
        fs[f"{t:.2f}"] = {"precision": p, "recall": r,
                          "fscore": 2 * p * r / (p + r) if p + r > 0 else 0.0}
    acc, comp = float(d_est.mean()), float(d_ref.mean())
    return {**out, "accuracy_m": acc, "completeness_m": comp, "chamfer_m": 0.5 * (acc + comp),
            "fscore": fs}


def write_mesh_ply(mesh: Any, path: Path | str) -> Path:
    """Write a mesh as binary PLY (vertex colours kept); returns the path.

    Raises:
        OSError: Open3D could not write the file.
    """
    import open3d as o3d

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not o3d.io.write_triangle_mesh(str(path), mesh, write_ascii=False,
                                      print_progress=False) and len(mesh.vertices):
        raise OSError(f"Open3D could not write the mesh to {path}")
    if not path.exists():  # Open3D writes nothing for an empty mesh: an empty PLY then
        path.write_text("ply\nformat ascii 1.0\nelement vertex 0\nelement face 0\n"
                        "property list uchar int vertex_indices\nend_header\n")
    return path


def _project(points: np.ndarray, azimuth_deg: float, elevation_deg: float
             ) -> tuple[np.ndarray, np.ndarray]:
    """Orthographic view of points (N, 3): screen (N, 2) and depth (N,) (larger = nearer)."""
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    right = np.array([-math.sin(az), math.cos(az), 0.0])
    toward = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az),
                       math.sin(el)])  # from the scene to the viewer
    up = np.cross(toward, right)
    return np.stack([points @ right, points @ up], axis=1), points @ toward


def render_mesh_png(mesh: Any, path: Path | str, *, title: str = "",
                    trajectory: np.ndarray | None = None, seed: int = 0) -> Path:
    """A PNG of the mesh's coloured vertices from above and obliquely; returns the path.

    Args:
        mesh: open3d TriangleMesh (vertex colours in [0, 1]; grey without).
        path: the PNG to write.
        title: the figure's title.
        trajectory: optional (N, 3) positions (metres, mesh frame) drawn on top.
        seed: which vertices are drawn when there are more than RENDER_MAX_POINTS.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    V = np.asarray(mesh.vertices, dtype=np.float64)
    C = (np.asarray(mesh.vertex_colors, dtype=np.float64) if mesh.has_vertex_colors()
         else np.full(V.shape, 0.6))
    if V.shape[0] > RENDER_MAX_POINTS:
        keep = np.random.default_rng(seed).choice(V.shape[0], RENDER_MAX_POINTS, replace=False)
        V, C = V[keep], C[keep]
    fig, axes = plt.subplots(1, 2, figsize=(14, 7), dpi=100)
    for ax, (az, el, name) in zip(axes, ((0.0, 90.0, "from above (x right, y up)"),
                                         (-60.0, 35.0, "oblique"))):
        ax.set_facecolor("white")
        if V.shape[0]:
            if el == 90.0:
                xy, depth = V[:, :2], V[:, 2]
            else:
                xy, depth = _project(V, az, el)
            order = np.argsort(depth)  # far first, near drawn last
            ax.scatter(xy[order, 0], xy[order, 1], c=np.clip(C[order], 0, 1), s=2.0,
                       marker=".", linewidths=0, rasterized=True)
            if trajectory is not None and len(trajectory):
                tr = np.asarray(trajectory, dtype=np.float64).reshape(-1, 3)
                txy = tr[:, :2] if el == 90.0 else _project(tr, az, el)[0]
                ax.plot(txy[:, 0], txy[:, 1], color="crimson", lw=1.5, label="trajectory")
                ax.legend(loc="upper right", fontsize=8)
        else:
            ax.text(0.5, 0.5, "empty mesh", ha="center", va="center", transform=ax.transAxes)
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_title(name, fontsize=10)
        if el == 90.0:
            ax.set_xlabel("x (m)")
            ax.set_ylabel("y (m)")
        else:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(title or "TSDF mesh", fontsize=11)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


__all__ = ["TsdfFusion", "TsdfSettings", "camera_view", "mesh_distances", "render_mesh_png",
           "sample_surface", "surface_distances", "transform_mesh", "write_mesh_ply"]
