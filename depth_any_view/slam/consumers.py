"""What the consumers of `depth-any-view slam` are given per set, and what they give.

Per processed set (`FedSet`, bag/feeder.py), a consumer gets one kind of depth:

- `kiss-icp`: the fused base_link cloud of the set: the node's `/depth_any_view/points`
  for predicted depth; for the bag's ground-truth depth (`<prefix>/<name>/depth_gt`) the
  same cloud built the same way (`GroundTruthCloud`: `depth_to_points` on the same pixel
  grid: the node's `points_stride` on network-size pixels, i.e. the stride scaled to the
  ground truth's size, the same depth limits and voxel filter).
- `open3d-rgbd`: RGB-D views, colour + depth + CameraInfo of each camera
  (`predicted_views`, `ground_truth_views`).

`ConsumerRun` is one consumer fed with one kind of depth, with the poses it gave, the
bag's odometry at the same stamps and its timings (scored by slam/slam_report.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from depth_any_view.bag.feeder import FedSet, image_camera
from depth_any_view.geometry.camera import PinholeCamera
from depth_any_view.mapping.points import depth_to_points, voxel_downsample
from depth_any_view.pipeline import Pipeline, PipelineResult
from depth_any_view.slam.mesh import camera_view
from depth_any_view.slam.odometry import RgbdView


# ---------------------------------------------------------------------------- inputs
class GroundTruthCloud:
    """The fused base_link cloud of ground-truth depth, sampled like the node's cloud.

    The node back-projects network-size depth every `points_stride` pixels; here the
    ground truth (at its own, usually the input, size) is back-projected with its own
    camera every `points_stride * gt_width / network_width` pixels, with the node's depth
    limits and voxel filter, so both clouds have the same density and coverage.
    """

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self._rays: dict[tuple, np.ndarray] = {}  # (camera, K, D, size) -> (H, W, 3) rays

    def _camera_rays(self, name: str, camera: PinholeCamera) -> np.ndarray:
        """Undistorted z = 1 rays of a camera, cached while its calibration is the same."""
        key = (name, camera.width, camera.height, camera.K.tobytes(), camera.D.tobytes())
        rays = self._rays.get(key)
        if rays is None:
            rays = self._rays[key] = camera.pixel_rays().astype(np.float32)
        return rays

    def cloud(self, fed: FedSet) -> np.ndarray | None:
        """(N, 3) float64 metres in base_link, or None when no camera has ground truth."""
        result, pc = fed.result, self.pipeline.cfg.points
        net_w = result.prediction.depth.shape[2] if result.prediction is not None else None
        parts = []
        for name, gt in fed.depth_gt.items():
            if name not in result.cameras:
                continue
            h, w = gt.shape
            camera = image_camera(result, fed.synced, name)
            if (camera.width, camera.height) != (w, h):
                camera = camera.resized(w, h)
            stride = max(1, int(round(pc.stride * w / net_w))) if net_w else pc.stride
            T = self.pipeline.rig[name].T_base_cam[None]
            max_depth = pc.max_depth if pc.max_depth > 0 else float("inf")
            p, _ = depth_to_points(gt[None], camera.K[None], T, stride=stride,
                                   min_depth=pc.min_depth, max_depth=max_depth,
                                   rays=self._camera_rays(name, camera)[None])
            parts.append(p)
        if not parts:
            return None
        points = np.concatenate(parts)
        if pc.voxel_size > 0:
            points, _ = voxel_downsample(points, np.zeros((len(points), 3), np.uint8),
                                         pc.voxel_size)
        return points.astype(np.float64)


def predicted_views(result: PipelineResult, rig: Any) -> list[RgbdView]:
    """The node's depth output of every camera as RGB-D views (colour at the depth's size,
    with the depth's confidence when the network has a confidence head)."""
    return [camera_view(n, o.rgb, o.depth, o.camera, rig[n].T_base_cam, o.confidence)
            for n, o in result.cameras.items()]


def ground_truth_views(fed: FedSet, rig: Any) -> list[RgbdView]:
    """The bag's ground-truth depth of every camera that has it, as RGB-D views."""
    out = []
    for name, gt in fed.depth_gt.items():
        if name in fed.result.cameras:
            camera = image_camera(fed.result, fed.synced, name)
            out.append(camera_view(name, fed.result.cameras[name].rgb, gt, camera,
                                   rig[name].T_base_cam))
    return out


# ---------------------------------------------------------------------------- one run
@dataclass
class ConsumerRun:
    """One consumer fed with one kind of depth, and what it gave."""

    kind: str  # 'predicted' | 'gt'
    backend: str
    odometry: Any  # KissIcpOdometry | RgbdOdometry
    tsdf: Any = None  # TsdfFusion of this depth along this run's estimate (its odom frame)
    stamps: list[int] = field(default_factory=list)  # set stamps, ns
    poses: list[np.ndarray] = field(default_factory=list)  # (4, 4) T_odom_base estimates
    truth: list[np.ndarray | None] = field(default_factory=list)  # bag odometry per stamp
    seconds: list[float] = field(default_factory=list)  # consumer time per set
    points: list[int] = field(default_factory=list)  # cloud size (kiss-icp) / views
    missing: int = 0  # sets without this depth (ground truth absent)
    tsdf_seconds: float = 0.0  # time spent integrating this run's TSDF

    def step(self, stamp_ns: int, inputs: Any, truth: np.ndarray | None) -> np.ndarray:
        """Give the consumer one set's cloud or views; returns its T_odom_base."""
        t0 = time.perf_counter()
        pose = self.odometry.register(inputs, stamp_ns / 1e9)
        self.seconds.append(time.perf_counter() - t0)
        self.stamps.append(int(stamp_ns))
        self.poses.append(pose)
        self.truth.append(truth)
        self.points.append(int(len(inputs)))
        return pose


__all__ = ["ConsumerRun", "GroundTruthCloud", "ground_truth_views", "predicted_views"]
