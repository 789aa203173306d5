"""The demo's picture (`demo.png`): the node's outputs read back and drawn beside the truth.

`read_outputs` reads a bag of the node's outputs (recorded live over DDS, or the offline
evaluation's output bag), scores its depth against the rendered frames' ground truth
(AbsRel, delta1) and decodes its last complete set (`SetOutputs`); `write_picture` draws
that set: the views, their predicted and true depth, the fused point cloud and the
occupancy map from above, predicted against true. The demo's run is demo.py.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from depth_any_view import topics


# ---------------------------------------------------------------------------- outputs
@dataclass
class SetOutputs:
    """One output set of the node, decoded for the picture."""

    stamp_ns: int
    depth: dict[str, np.ndarray]  # camera -> (H, W) float32 metres, NaN = none
    points: np.ndarray | None  # (N, 3) float32 metres in points_frame
    colors: np.ndarray | None  # (N, 3) uint8
    points_frame: str
    grid: np.ndarray | None  # (height, width) int8: 100 occupied, 0 free, -1 unknown
    grid_resolution: float
    grid_origin: np.ndarray  # (3,) metres, corner of cell (0, 0) in grid_frame
    grid_frame: str


def read_outputs(bag: Path, camera_names: list[str], frames_by_stamp: dict[int, Any],
                 values: Mapping[str, Any]) -> tuple[dict[str, float], SetOutputs | None]:
    """Score an output bag's depth against the frames' ground truth (AbsRel, delta1) and
    decode its last complete set for the picture."""
    from rosbags.rosbag2 import Reader

    from depth_any_view.bag.messages import cloud_from_msg, default_typestore, image_from_msg
    from depth_any_view.mapping.points import unpack_rgb
    from depth_any_view.ros.recorder import output_topics
    from depth_any_view.training.metrics import DepthMetricAccumulator

    outputs = output_topics(values)
    depth_name = str(values.get("depth_image_topic", topics.DEPTH_IMAGE)).strip("/")
    depth_topics = {t: c for c in camera_names for t in outputs
                    if t.endswith(f"/{c}/{depth_name}") and outputs[t] == "sensor_msgs/msg/Image"}
    points_topic = topics.absolute(values.get("points_topic", topics.POINTS))
    grid_topic = topics.absolute(values.get("grid_topic", topics.GRID))
    ts = default_typestore()
    depth: dict[int, dict[str, np.ndarray]] = {}
    points: dict[int, Any] = {}
    grids: dict[int, Any] = {}
    with Reader(bag) as reader:
        conns = [c for c in reader.connections
                 if c.topic in depth_topics or c.topic in (points_topic, grid_topic)]
        for conn, _, raw in reader.messages(connections=conns):
            msg = ts.deserialize_cdr(raw, conn.msgtype)
            stamp = int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)
            if conn.topic in depth_topics:
                depth.setdefault(stamp, {})[depth_topics[conn.topic]] = \
                    image_from_msg(msg).depth_metres()
            elif conn.topic == points_topic:
                points[stamp] = cloud_from_msg(msg)
            else:
                grids[stamp] = msg
    acc = DepthMetricAccumulator(camera_names, bins=None)
    scored = 0
    for stamp, views in sorted(depth.items()):
        frame = frames_by_stamp.get(stamp)
        if frame is None or len(views) != len(camera_names):
            continue
        pred = np.stack([views[c] for c in camera_names])  # (V, H, W)
        gt = frame.depth[[frame.camera_names.index(c) for c in camera_names]]
        if pred.shape == gt.shape:
            acc.update(pred, gt)
            scored += 1
    m = acc.compute() if scored else {}
    scores = {"abs_rel": m.get("abs_rel", math.nan), "delta1": m.get("delta1", math.nan),
              "sets_scored": scored}
    complete = [s for s, v in depth.items() if len(v) == len(camera_names) and s in points
                and s in frames_by_stamp]
    if not complete:
        return scores, None
    stamp = max(complete)
    cloud = points[stamp]
    pts = np.stack([cloud.points[a] for a in "xyz"], axis=1).astype(np.float32)  # (N, 3)
    cols = (unpack_rgb(cloud.points["rgb"]) if "rgb" in (cloud.points.dtype.names or ())
            else None)
    grid = grids.get(stamp)
    if grid is None and grids:  # the grid of the nearest earlier set
        earlier = [s for s in grids if s <= stamp]
        grid = grids[max(earlier)] if earlier else None
    out = SetOutputs(stamp, depth[stamp], pts, cols, cloud.frame_id, None, 0.0, np.zeros(3), "")
    if grid is not None:
        info = grid.info
        out.grid = np.asarray(grid.data, dtype=np.int8).reshape(int(info.height),
                                                               int(info.width))
        out.grid_resolution = float(info.resolution)
        p = info.origin.position
        out.grid_origin = np.array([p.x, p.y, p.z], dtype=np.float64)
        out.grid_frame = grid.header.frame_id
    return scores, out


# ---------------------------------------------------------------------------- picture
def _grid_labels_in_base(outputs: SetOutputs, frame: Any, z_band: tuple[float, float]
                         ) -> np.ndarray | None:
    """The node's 2D grid sampled at the centres of the ground-truth grid's columns
    (base_link), as (nx, ny) int8: 100 occupied, 0 free, -1 unknown."""
    from depth_any_view.geometry.transforms import transform_points

    if outputs.grid is None or outputs.grid_resolution <= 0:
        return None
    g = frame.grid
    centres = g.centers(np.float64)[:, :, 0, :].copy()  # (nx, ny, 3) base_link
    centres[..., 2] = 0.5 * (z_band[0] + z_band[1])
    # base_link grid as is; an odom grid through the frame's true pose (the bag's odometry)
    p = centres if outputs.grid_frame == "base_link" else transform_points(frame.T_odom_base,
                                                                            centres)
    ij = np.floor((p[..., :2] - outputs.grid_origin[:2]) / outputs.grid_resolution)
    i, j = ij[..., 0].astype(np.int64), ij[..., 1].astype(np.int64)  # column (x), row (y)
    h, w = outputs.grid.shape
    inside = (i >= 0) & (i < w) & (j >= 0) & (j < h)
    out = np.full(i.shape, -1, dtype=np.int8)
    out[inside] = outputs.grid[j[inside], i[inside]]
    return out


def _topdown_2d(labels: np.ndarray) -> np.ndarray:
    """(nx, ny) int8 (100 / 0 / -1) -> RGB image (ny, nx, 3) as occupancy_topdown draws."""
    img = np.full(labels.shape + (3,), 150, np.uint8)
    img[labels == 0] = (250, 250, 250)
    img[labels >= 50] = (20, 20, 20)
    return np.ascontiguousarray(img[::-1, ::-1])


def _gt_columns(frame: Any, z_band: tuple[float, float]) -> np.ndarray:
    """Ground-truth (nx, ny) int8 of the frame's grid: 100 occupied, 0 free, -1 unknown."""
    from depth_any_view.geometry.grid import OCCUPIED, UNKNOWN

    g = frame.grid
    zc = g.lower[2] + (np.arange(g.dims[2]) + 0.5) * g.voxel_size[2]
    band = (zc >= z_band[0]) & (zc <= z_band[1])
    sel = frame.occupancy[:, :, band]
    out = np.full(sel.shape[:2], -1, np.int8)
    out[(sel != UNKNOWN).any(axis=2)] = 0
    out[(sel == OCCUPIED).any(axis=2)] = 100
    return out


def write_picture(path: Path, frame: Any, outputs: SetOutputs, *, title: str, subtitle: str,
                  warning: str | None, z_band: tuple[float, float],
                  trajectory: np.ndarray | None = None) -> Path:
    """The demo picture: views, predicted and true depth, cloud and occupancy from above."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from depth_any_view.geometry.transforms import invert_transform, transform_points

    names = list(frame.camera_names)
    V = len(names)
    gt_all = frame.depth[np.isfinite(frame.depth)]
    vmax = float(np.percentile(gt_all, 97)) if gt_all.size else 30.0
    vmax = max(5.0, math.ceil(vmax / 5.0) * 5.0)
    depth_cmap = plt.get_cmap("turbo_r").with_extremes(bad="0.25", over="#30123b")
    fig = plt.figure(figsize=(2.55 * V + 0.9, 14.6), dpi=100, facecolor="white")
    gs = fig.add_gridspec(4, 4 * V + 1, height_ratios=[1, 1, 1, 1.9],
                          width_ratios=[1] * (4 * V) + [0.22], hspace=0.22, wspace=0.25,
                          left=0.035, right=0.965, top=0.88 if warning else 0.9, bottom=0.035)
    depth_axes = []
    for v, name in enumerate(names):
        cols = slice(4 * v, 4 * v + 4)
        pred = outputs.depth.get(name)
        for r, (img, label) in enumerate(((frame.images[v], "camera"),
                                          (pred, "predicted depth"),
                                          (frame.depth[v], "true depth"))):
            ax = fig.add_subplot(gs[r, cols])
            if img is None:
                ax.text(0.5, 0.5, "no output", ha="center", va="center")
            elif r == 0:
                ax.imshow(img)
            else:
                im = ax.imshow(np.ma.masked_invalid(img), cmap=depth_cmap, vmin=0.0, vmax=vmax,
                               interpolation="nearest")
                depth_axes.append(ax)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name.replace("_", " "), fontsize=12, fontweight="bold")
            if v == 0:
                ax.set_ylabel(label, fontsize=11)
    cax = fig.add_subplot(gs[1:3, 4 * V])
    cb = fig.colorbar(im, cax=cax, extend="max")
    cb.set_label("depth along the optical axis (m); grey = no estimate", fontsize=9)

    # ---- bottom row: the cloud and the occupancy from above (base_link: x up, y left)
    g = frame.grid
    extent = (g.upper[1], g.lower[1], g.lower[0], g.upper[0])
    width = 4 * V // 4
    panels = [fig.add_subplot(gs[3, i * width:(i + 1) * width]) for i in range(4)]
    ax = panels[0]
    if outputs.points is not None and outputs.points.size:
        p = outputs.points
        if outputs.points_frame not in ("base_link", ""):
            p = transform_points(invert_transform(frame.T_odom_base), p.astype(np.float64))
        inside = ((p[:, 0] > g.lower[0]) & (p[:, 0] < g.upper[0]) & (p[:, 1] > g.lower[1])
                  & (p[:, 1] < g.upper[1]) & (p[:, 2] < g.upper[2]))
        ground = inside & (p[:, 2] < z_band[0])
        above = inside & ~ground
        ax.scatter(p[ground, 1], p[ground, 0], c="0.8", s=0.6, linewidths=0,
                   rasterized=True)
        order = np.flatnonzero(above)[np.argsort(p[above, 2])]  # high points drawn last
        sc = ax.scatter(p[order, 1], p[order, 0], c=p[order, 2], cmap="plasma",
                        vmin=z_band[0], vmax=g.upper[2], s=1.5, linewidths=0,
                        rasterized=True)
        cax = ax.inset_axes([0.04, 0.56, 0.035, 0.4])
        cb = fig.colorbar(sc, cax=cax)
        cb.set_label("height (m)", fontsize=7)
        cb.ax.tick_params(labelsize=7)
    ax.set_xlim(g.upper[1], g.lower[1])
    ax.set_ylim(g.lower[0], g.upper[0])
    ax.set_aspect("equal")
    count = 0 if outputs.points is None else len(outputs.points)
    ax.set_title(f"fused point cloud from above ({count} points)", fontsize=10)
    gt = _gt_columns(frame, z_band)
    pred = _grid_labels_in_base(outputs, frame, z_band)
    ax = panels[1]
    ax.imshow(_topdown_2d(gt), extent=extent, interpolation="nearest")
    ax.set_title(f"true occupancy, {z_band[0]:g}-{z_band[1]:g} m above ground", fontsize=10)
    ax = panels[2]
    if pred is not None:
        ax.imshow(_topdown_2d(pred), extent=extent, interpolation="nearest")
    ax.set_title("predicted, fused over time (node's occupancy grid)", fontsize=10)
    ax = panels[3]
    if pred is not None:
        hit = (gt == 100) & (pred >= 50)
        false_alarm = (pred >= 50) & (gt == 0)
        miss = (gt == 100) & (pred < 50)
        img = np.full(gt.shape + (3,), 0.6)
        img[(gt == 0) | (pred == 0)] = (0.97, 0.97, 0.97)
        img[false_alarm] = (0.93, 0.35, 0.2)
        img[miss] = (0.2, 0.45, 0.85)
        img[hit] = (0.1, 0.6, 0.25)
        ax.imshow(np.ascontiguousarray(img[::-1, ::-1]), extent=extent,
                  interpolation="nearest")
        ax.legend(handles=[Patch(color=(0.1, 0.6, 0.25), label="occupied, found"),
                           Patch(color=(0.2, 0.45, 0.85), label="occupied, missed"),
                           Patch(color=(0.93, 0.35, 0.2), label="predicted, free in truth")],
                  loc="lower left", fontsize=8, framealpha=0.85)
    ax.set_title("predicted vs true occupancy", fontsize=10)
    for ax in panels:
        ax.plot([0.0], [0.0], marker="^", color="tab:red", markersize=9, markeredgecolor="w")
        if trajectory is not None and len(trajectory):
            ax.plot(trajectory[:, 1], trajectory[:, 0], color="tab:orange", lw=1.2, alpha=0.9)
        ax.set_xlabel("y (m, left +)", fontsize=8)
        ax.tick_params(labelsize=7)
    panels[0].set_ylabel("x (m, forward +)", fontsize=8)
    legend = [Patch(color=(0.08, 0.08, 0.08), label="occupied"),
              Patch(facecolor=(0.98, 0.98, 0.98), edgecolor="0.5", label="free"),
              Patch(color=(0.59, 0.59, 0.59), label="unknown"),
              Line2D([], [], color="tab:orange", label="path so far"),
              Line2D([], [], marker="^", color="tab:red", ls="", label="robot")]
    panels[1].legend(handles=legend, loc="lower left", fontsize=8, framealpha=0.85)
    fig.suptitle(title, fontsize=17, fontweight="bold", y=0.985)
    fig.text(0.5, 0.947, subtitle, ha="center", va="center", fontsize=11)
    if warning:
        fig.text(0.5, 0.919, warning, ha="center", va="center", fontsize=11,
                 color="white", fontweight="bold",
                 bbox={"facecolor": "#c0392b", "edgecolor": "none", "pad": 4})
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)
    return path


__all__ = ["SetOutputs", "read_outputs", "write_picture"]
