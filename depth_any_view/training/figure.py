"""The results picture of a test frame: six views, predicted and true depth, error, and
predicted vs true occupancy from above (`depth-any-view evaluate --figure PNG`).

Rows, one column per camera: RGB input, predicted depth, ground-truth depth (same colour
scale, metres), absolute relative error |d - d*| / d* (0-50 %); then one row with the
bird's-eye view of the ground-truth occupancy, the network's single-frame occupancy and a
comparison (true positive / false positive / false negative columns). The prediction comes
from the same InferenceEngine the node runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from depth_any_view.data.dataset import find_shard_dirs
from depth_any_view.data.preview import occupancy_topdown
from depth_any_view.data.shards import load_frame, read_meta
from depth_any_view.geometry.camera import PinholeCamera
from depth_any_view.geometry.grid import FREE, OCCUPIED, UNKNOWN

Z_BAND = (0.1, 2.0)  # metres above base_link projected to the bird's-eye view
MAX_REL_ERROR = 0.5  # right end of the error colour scale (50 %)


def _labels(prob: np.ndarray, observed: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """FREE / OCCUPIED / UNKNOWN labels of occupancy probabilities (unobserved: UNKNOWN)."""
    labels = np.where(prob >= threshold, OCCUPIED, FREE).astype(np.uint8)
    labels[~observed] = UNKNOWN
    return labels


def _comparison(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Bird's-eye RGB (ny, nx, 3): occupied in both (green), only predicted (red), only true
    (blue), free in the truth and not predicted occupied (white), unknown (grey)."""
    p = (pred == OCCUPIED).any(axis=2)
    t = (gt == OCCUPIED).any(axis=2)
    known = (gt != UNKNOWN).any(axis=2)
    img = np.full(p.shape + (3,), 150, np.uint8)
    img[known] = (250, 250, 250)
    img[p & t] = (30, 160, 60)
    img[p & ~t & known] = (220, 50, 40)
    img[~p & t] = (40, 90, 220)
    return np.ascontiguousarray(img[::-1, ::-1])


def _band(labels: np.ndarray, grid: Any) -> np.ndarray:
    """The voxels of `labels` inside Z_BAND (others UNKNOWN), for the comparison view."""
    zc = grid.lower[2] + (np.arange(grid.dims[2]) + 0.5) * grid.voxel_size[2]
    out = np.full_like(labels, UNKNOWN)
    band = (zc >= Z_BAND[0]) & (zc <= Z_BAND[1])
    out[:, :, band] = labels[:, :, band]
    return out


def write_results_figure(data: Sequence[str | Path] | str | Path, out: str | Path, *,
                         weights: str | Path | None = None, frame_index: int = 0,
                         random_init: bool = False, max_depth: float = 30.0,
                         engine_overrides: dict[str, Any] | None = None) -> Path:
    """Write the results picture (PNG) of one frame of a shard split.

    Args:
        data: shard directories or folders of them; frames are counted across them in
            sorted order.
        out: PNG path (parents created).
        weights: safetensors file; None = the shipped weights.
        frame_index: which frame of the split (0-based, across directories).
        random_init: an untrained network (for tests).
        max_depth: metres at the far end of the depth colour scale.
        engine_overrides: extra EngineConfig fields (device, precision, ...).

    Returns:
        The PNG path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from depth_any_view.inference.engine import EngineConfig, InferenceEngine, ViewInput

    dirs = find_shard_dirs(data)
    if not dirs:
        raise FileNotFoundError(f"no shard directories under {data}")
    index = int(frame_index)
    for d in dirs:
        meta = read_meta(d)
        if index < int(meta["frames"]):
            break
        index -= int(meta["frames"])
    else:
        raise ValueError(f"frame {frame_index} is past the end of {data}")
    frame = load_frame(d, index, meta)
    engine = InferenceEngine(EngineConfig(weights=str(weights) if weights else None,
                                          preset="lite" if random_init and not weights
                                          else None, random_init=random_init,
                                          warmup_iters=0, **(engine_overrides or {})))
    H, W = frame.depth.shape[1:]
    views = [ViewInput(frame.camera_names[v], frame.images[v],
                       PinholeCamera(width=W, height=H, K=frame.K[v]), frame.T_base_cam[v])
             for v in range(len(frame.camera_names))]
    pred = engine.infer(views)
    depth = np.stack([pred.view_depth(v)[0] for v in range(len(views))])  # (V, H, W)
    gt = frame.depth
    valid = np.isfinite(gt) & (gt > 0) & np.isfinite(depth)
    rel = np.full_like(gt, np.nan)
    rel[valid] = np.abs(depth[valid] - gt[valid]) / gt[valid]

    n = len(views)
    fig = plt.figure(figsize=(2.3 * n, 2.3 * 4 + 3.4), dpi=110)
    gs = fig.add_gridspec(5, n, height_ratios=[1, 1, 1, 1, 1.45], hspace=0.18, wspace=0.05)
    rows = [("RGB", None), ("predicted depth", "depth"), ("true depth", "depth"),
            ("|error| / depth", "error")]
    mappables: dict[str, Any] = {}
    for r, (label, kind) in enumerate(rows):
        for v in range(n):
            ax = fig.add_subplot(gs[r, v])
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.imshow(frame.images[v])
                ax.set_title(frame.camera_names[v], fontsize=9)
            elif kind == "depth":
                img = depth[v] if r == 1 else gt[v]
                mappables["depth"] = ax.imshow(img, cmap="turbo", vmin=0.0, vmax=max_depth)
            else:
                mappables["error"] = ax.imshow(rel[v], cmap="magma", vmin=0.0,
                                               vmax=MAX_REL_ERROR)
            if v == 0:
                ax.set_ylabel(label, fontsize=9)
    fig.colorbar(mappables["depth"], ax=fig.axes[n:3 * n], fraction=0.012, pad=0.01,
                 label="depth (m)")
    fig.colorbar(mappables["error"], ax=fig.axes[3 * n:4 * n], fraction=0.012, pad=0.01,
                 label="relative error")
    grid = pred.grid
    pred_labels = _labels(pred.occupancy, pred.observed)
    bev = [("true occupancy", occupancy_topdown(frame.occupancy, grid, Z_BAND)),
           ("predicted occupancy", occupancy_topdown(pred_labels, grid, Z_BAND)),
           ("green both, red predicted only,\nblue missed, white free, grey unknown",
            _comparison(_band(pred_labels, grid), _band(frame.occupancy, grid)))]
    sub = gs[4, :].subgridspec(1, 3, wspace=0.1)
    extent = (grid.upper[1], grid.lower[1], grid.lower[0], grid.upper[0])  # y left, x up
    for i, (title, img) in enumerate(bev):
        ax = fig.add_subplot(sub[0, i])
        ax.imshow(img, extent=extent, interpolation="nearest")
        ax.plot([0], [0], marker="^", color="orange", markersize=8)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("y (m, left +)", fontsize=8)
        ax.set_ylabel("x (m, forward +)", fontsize=8)
        ax.tick_params(labelsize=7)
    source = Path(str(engine.weights_source)).name
    fig.suptitle(f"{Path(d).name} frame {index}: per-frame network output ({source}), "
                 f"occupancy band {Z_BAND[0]}-{Z_BAND[1]} m",
                 fontsize=10)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, bbox_inches="tight")
    plt.close(fig)
    return out
