"""Per-set cost of the node's cameras-only odometry (`odometry_source`), on a short drive.

The node's default `odometry_source: topic` costs nothing per set (a pose lookup, part of
`intake`). With `kiss_icp` or `open3d_rgbd` it registers every set itself, and that cost
depends on the motion between sets, so one frame repeated would flatter it: this benchmark
renders a short synthetic drive (the workload's sequence, consecutive frames 0.1 s apart),
resamples each frame's ground-truth depth to the network size as `workload.py` does, and
times `register` for one set after another, restarting the odometry when the drive wraps
around. The inputs are those `Pipeline._register` builds: the stride-1 base_link cloud of
every view (KISS-ICP), or one RGB-D view per camera (Open3D). Settings from
config/slam.yaml, the node's too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from depth_any_view.bench.common import time_call
from depth_any_view.bench.workload import SCENE, resample_views

SOURCES = ("kiss_icp", "open3d_rgbd")
SOURCE_LABELS = {
    "kiss_icp": "KISS-ICP on the set's stride-1 base_link cloud",
    "open3d_rgbd": "Open3D RGB-D odometry, every camera against its keyframe image",
}
PERIOD_S = 0.1  # the synthetic sequence's frame period (10 Hz)


@lru_cache(maxsize=2)
def _drive(frames: int, size: tuple[int, int], seed: int,
           image_size: tuple[int, int]) -> tuple[Any, ...]:
    """`frames` consecutive frames at network size: per frame (depth (V, h, w) metres,
    images (V, h, w, 3) uint8, K (V, 3, 3), T_base_cam (V, 4, 4)); cached."""
    from depth_any_view.data.synth import generate_frames
    from depth_any_view.geometry.camera import PinholeCamera

    out = []
    for f in generate_frames(frames=frames, size=tuple(size), seed=seed, scene=SCENE,
                             grid_dims=16):
        cameras = [PinholeCamera(f.width, f.height, f.K[i]) for i in range(f.num_views)]
        depth, K, images = resample_views(f.depth, f.images, cameras, image_size)
        out.append((tuple(f.camera_names), depth, images, K, np.asarray(f.T_base_cam)))
    return tuple(out)


def _register_fn(source: str, drive: Sequence[Any]
                 ) -> tuple[Callable[[int], Any], dict[str, int]]:
    """fn(i) registering the next set of the drive (cycling, with a fresh odometry at each
    start) with `source`, and what one set holds (points or views)."""
    from depth_any_view.geometry.camera import PinholeCamera
    from depth_any_view.mapping.points import depth_to_points
    from depth_any_view.slam.mesh import camera_view
    from depth_any_view.slam.odometry import KissIcpOdometry, RgbdOdometry
    from depth_any_view.slam.slam_config import load_slam_config

    slam = load_slam_config()
    if source == "kiss_icp":
        odo: Any = KissIcpOdometry(slam.kiss_icp)
        inputs = [depth_to_points(d, K, T, img, stride=1)[0] for _, d, img, K, T in drive]
        info = {"points": int(inputs[0].shape[0])}
    elif source == "open3d_rgbd":
        odo = RgbdOdometry(slam.open3d_rgbd)
        inputs = [[camera_view(n, img[v], d[v], PinholeCamera(d.shape[2], d.shape[1], K[v]),
                               T[v]) for v, n in enumerate(names)]
                  for names, d, img, K, T in drive]
        info = {"views": len(inputs[0])}
    else:
        raise ValueError(f"unknown odometry source {source!r}; known: {SOURCES}")
    state = {"step": 0}

    def register(i: int) -> Any:
        k = state["step"] % len(inputs)
        if k == 0:
            odo.reset()
        state["step"] += 1
        return odo.register(inputs[k], (state["step"]) * PERIOD_S)

    return register, info


def bench_odometry(size: tuple[int, int], seed: int, image_size: tuple[int, int], *,
                   repeats: int, warmup: int = 1, frames: int = 10,
                   sources: Sequence[str] = SOURCES) -> dict[str, Any]:
    """Time one set's registration for each cameras-only odometry source.

    Args:
        size: (width, height) of the rendered camera images, pixels.
        seed: the synthetic sequence (the workload's).
        image_size: (h, w) network image size the node registers at.
        repeats: timed sets per source (>= 1), after `warmup` untimed ones.
        frames: length of the drive (>= 2); sets cycle over it.
        sources: which of SOURCES to time.

    Returns:
        {"frames", "image_size", "rows": {source: summary + "points"/"views"}, "skipped":
        {source: why}}; a source whose library fails to import is skipped with the reason.
    """
    if frames < 2:
        raise ValueError(f"the odometry drive needs at least 2 frames, got {frames}")
    drive = _drive(int(frames), tuple(size), int(seed), tuple(image_size))
    rows: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for source in sources:
        try:
            fn, info = _register_fn(source, drive)
        except ImportError as exc:
            skipped[source] = str(exc)
            continue
        rows[source] = {**time_call(fn, repeats, warmup), **info}
    return {"frames": int(frames), "image_size": list(image_size), "rows": rows,
            "skipped": skipped}


__all__ = ["SOURCES", "SOURCE_LABELS", "bench_odometry"]
