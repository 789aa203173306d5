"""A picture of one synthetic frame: the six views, their depth, and occupancy from above.

Used by `depth-any-view preview` and the demo so a person can see what the world looks
like. Rendering uses matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from depth_any_view.geometry.grid import OCCUPIED, UNKNOWN, VoxelGrid


def occupancy_topdown(occupancy: np.ndarray, grid: VoxelGrid,
                      z_band: tuple[float, float] = (0.1, 2.0)) -> np.ndarray:
    """Bird's-eye RGB image (ny, nx, 3) uint8 of a label grid (nx, ny, nz), x up, y left.

    A column is occupied (black) if any voxel in the height band (metres, base_link) is
    OCCUPIED, free (white) if any voxel in the band is known and none occupied, else
    unknown (grey).
    """
    zc = grid.lower[2] + (np.arange(grid.dims[2]) + 0.5) * grid.voxel_size[2]
    band = (zc >= z_band[0]) & (zc <= z_band[1])
    sel = occupancy[:, :, band]  # (nx, ny, nb)
    occ = (sel == OCCUPIED).any(axis=2)
    known = (sel != UNKNOWN).any(axis=2)
    img = np.full(occ.shape + (3,), 150, np.uint8)
    img[known] = (250, 250, 250)
    img[occ] = (20, 20, 20)
    # Rows: +x (forward) at the top; columns: +y (left) on the left, as seen from above.
    return np.ascontiguousarray(img[::-1, ::-1])  # rows: x descending, cols: y descending


def write_preview(frame, path: Path, *, trajectory: Sequence | None = None,
                  max_depth: float = 30.0) -> Path:
    """Write a PNG with RGB views (top row), depth (middle row) and occupancy (bottom).

    Args:
        frame: a `depth_any_view.data.frame.Frame`.
        path: PNG path; parent directories are created.
        trajectory: optional frames up to this one, drawn as the path in the top view.
        max_depth: metres at the far end of the depth colour map.

    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from depth_any_view.geometry.transforms import invert_transform, transform_points

    views = len(frame.camera_names)
    fig = plt.figure(figsize=(2.6 * views, 8.4), dpi=110)
    gs = fig.add_gridspec(3, views, height_ratios=[1, 1, 1.35])
    for v, name in enumerate(frame.camera_names):
        ax = fig.add_subplot(gs[0, v])
        ax.imshow(frame.images[v])
        ax.set_title(name, fontsize=9)
        ax.axis("off")
        ax = fig.add_subplot(gs[1, v])
        depth = np.ma.masked_invalid(frame.depth[v])
        ax.imshow(depth, cmap="turbo_r", vmin=0.0, vmax=max_depth)
        ax.axis("off")
        if v == 0:
            ax.set_title(f"ground-truth depth (0-{max_depth:.0f} m)", fontsize=8, loc="left")
    ax = fig.add_subplot(gs[2, : max(1, views // 2)])
    grid = frame.grid
    top = occupancy_topdown(frame.occupancy, grid)
    ax.imshow(top, extent=(grid.upper[1], grid.lower[1], grid.lower[0], grid.upper[0]))
    for v in range(views):
        pos = frame.T_base_cam[v][:3, 3]
        fwd = frame.T_base_cam[v][:3, 2]
        ax.arrow(pos[1], pos[0], 1.5 * fwd[1], 1.5 * fwd[0], color="tab:red", width=0.08)
    if trajectory:
        T_base_odom = invert_transform(frame.T_odom_base)
        path_odom = np.stack([f.T_odom_base[:3, 3] for f in trajectory])
        p = transform_points(T_base_odom, path_odom)
        ax.plot(p[:, 1], p[:, 0], color="tab:blue", lw=1.5)
    ax.set_xlabel("y (m, left +)")
    ax.set_ylabel("x (m, forward +)")
    ax.set_title("occupancy 0.1-2.0 m above ground (black occupied, white free, grey unknown)",
                 fontsize=8)
    ax = fig.add_subplot(gs[2, max(1, views // 2):])
    points = []
    for v in range(views):
        d = frame.depth[v]
        H, W = d.shape
        u, vv = np.meshgrid(np.arange(W), np.arange(H))
        ok = np.isfinite(d)
        K = frame.K[v]
        x = (u[ok] - K[0, 2]) / K[0, 0] * d[ok]
        y = (vv[ok] - K[1, 2]) / K[1, 1] * d[ok]
        p_base = transform_points(frame.T_base_cam[v], np.column_stack([x, y, d[ok]]))
        points.append(np.column_stack([p_base, frame.images[v][ok] / 255.0]))
    pts = np.concatenate(points)[:: max(1, sum(len(p) for p in points) // 60000)]
    ax.scatter(pts[:, 1], pts[:, 0], c=pts[:, 3:6], s=0.3, linewidths=0)
    ax.set_xlim(grid.upper[1], grid.lower[1])
    ax.set_ylim(grid.lower[0], grid.upper[0])
    ax.set_aspect("equal")
    ax.set_title("back-projected ground-truth depth, base_link, from above", fontsize=8)
    fig.suptitle(f"synthetic frame {frame.index}  stamp {frame.stamp_ns / 1e9:.2f} s", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
