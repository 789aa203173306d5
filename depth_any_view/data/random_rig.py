"""Random camera rigs for the shifted world: 1 to 8 pinhole cameras drawn from a Generator.

Frames (REP 103): base_link has x forward, y left, z up; each camera's optical frame has
z forward (the optical axis), x right, y down. `T_base_cam` (4, 4) maps optical-frame
points into base_link. A camera is placed by its yaw (radians about base_link z, 0 =
forward, positive to the left), pitch (radians, positive = optical axis above the
horizon), no roll, and its optical centre in base_link (metres). All cameras of a rig share
one image size; intrinsics are distortion-free with square pixels and centred principal
point (`PinholeCamera.from_fov`).

Layout: cameras sit on a circle of `mount_radius` around base_link's z axis at unevenly
spaced yaws (even spacing from a random start, each moved by up to `yaw_jitter` of the
spacing), at heights around one mount height. With `stereo_probability` (and two or more
cameras) cameras 0 and 1 are a stereo-like pair: identical rotation, intrinsics and height,
optical centres `baseline` metres apart along their common x axis (camera 0 on the left).
Ranges come from `config/shifted_world.yaml` (section `rig`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from depth_any_view.data.shifted_config import RigSamplerConfig
from depth_any_view.geometry.camera import PinholeCamera
from depth_any_view.geometry.rig import Rig, RigCamera


def optical_rotation(yaw: float, pitch: float) -> np.ndarray:
    """Rotation (3, 3) optical frame -> base_link of a camera looking along `yaw`, `pitch`
    (radians); its columns are the optical x (right), y (down) and z (forward) axes."""
    cy, sy, cp, sp = math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch)
    forward = np.array([cp * cy, cp * sy, sp])
    right = np.array([sy, -cy, 0.0])
    down = np.cross(forward, right)
    return np.stack([right, down, forward], axis=1)


@dataclass(frozen=True)
class RandomRig:
    """A drawn rig: names, optical frame ids, extrinsics and intrinsics of V cameras."""

    names: list[str]  # V camera names, rig order
    frame_ids: list[str]  # V optical frame ids
    T_base_cam: np.ndarray  # (V, 4, 4) float64 optical frame -> base_link
    cameras: list[PinholeCamera]  # V distortion-free cameras of one size
    stereo: tuple[int, int] | None  # indices of the parallel pair (left, right), or None
    baseline: float  # metres between the pair's optical centres (0 without a pair)

    @property
    def num_views(self) -> int:
        """Number of cameras V."""
        return len(self.names)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of every image, pixels."""
        return self.cameras[0].width, self.cameras[0].height

    @property
    def K(self) -> np.ndarray:
        """Intrinsics (V, 3, 3) float64."""
        return np.stack([c.K for c in self.cameras])

    @property
    def reach(self) -> float:
        """Largest horizontal distance of an optical centre from base_link's z axis, m."""
        return float(np.linalg.norm(self.T_base_cam[:, :2, 3], axis=1).max())

    @property
    def hfov(self) -> list[float]:
        """Horizontal field of view of each camera, radians."""
        return [2.0 * math.atan(0.5 * c.width / c.fx) for c in self.cameras]

    def to_rig(self, base_frame: str = "base_link") -> Rig:
        """The extrinsics as a geometry.rig.Rig."""
        return Rig(base_frame, {n: RigCamera(n, f, T.copy()) for n, f, T in
                                zip(self.names, self.frame_ids, self.T_base_cam)})

    def to_dict(self) -> dict[str, Any]:
        """The rig YAML schema of README "Rig calibration" (translation metres,
        quaternion x y z w)."""
        return self.to_rig().to_dict()

    def write_yaml(self, path: str | os.PathLike[str]) -> Path:
        """Write the rig file the node's `rig_file` parameter reads; returns the path."""
        path = Path(path)
        header = ("# Random rig of the shifted world (depth_any_view/data/random_rig.py).\n"
                  f"# Intrinsics (not part of a rig file): {self.size[0]}x{self.size[1]} px, "
                  "hfov deg " + ", ".join(f"{n} {math.degrees(h):.1f}"
                                          for n, h in zip(self.names, self.hfov)) + "\n")
        text = yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)
        path.write_text(header + text, encoding="utf-8")
        return path



def _image_size(rng: np.random.Generator, cfg: RigSamplerConfig) -> tuple[int, int]:
    """(width, height) pixels: a width in range, an aspect from the list, both clipped to
    their ranges and rounded to multiples of 4."""
    aspect = float(cfg.aspects[int(rng.integers(len(cfg.aspects)))])
    w = float(rng.uniform(cfg.width[0], cfg.width[1]))
    h = float(np.clip(w / aspect, cfg.height_px[0], cfg.height_px[1]))
    w = float(np.clip(h * aspect, cfg.width[0], cfg.width[1]))

    def snap(x: float, lo: float, hi: float) -> int:
        return int(np.clip(4 * round(x / 4), 4 * math.ceil(lo / 4), 4 * math.floor(hi / 4)))

    return snap(w, *cfg.width), snap(h, *cfg.height_px)


def sample_rig(rng: np.random.Generator, config: RigSamplerConfig | None = None) -> RandomRig:
    """A random rig drawn from `rng` within the ranges of `config` (see the module doc)."""
    cfg = config or RigSamplerConfig()
    V = int(rng.integers(int(cfg.cameras[0]), int(cfg.cameras[1]) + 1))
    width, height = _image_size(rng, cfg)
    stereo = V >= 2 and bool(rng.random() < cfg.stereo_probability)
    mount_h = float(rng.uniform(*cfg.height))
    radius = float(rng.uniform(*cfg.mount_radius))
    n_free = V - 2 if stereo else V
    spacing = 2 * math.pi / max(n_free + (1 if stereo else 0), 1)
    start = float(rng.uniform(0.0, 2 * math.pi))
    yaws = [start + k * spacing + float(rng.uniform(-1.0, 1.0)) * cfg.yaw_jitter * spacing
            for k in range(1 if stereo else 0, n_free + (1 if stereo else 0))]
    pitches = np.radians(rng.uniform(*cfg.pitch_deg, size=V))
    hfovs = np.radians(rng.uniform(*cfg.hfov_deg, size=V))
    heights = np.clip(mount_h + rng.uniform(-1.0, 1.0, size=V) * cfg.height_jitter,
                      cfg.height[0], cfg.height[1])
    T = np.tile(np.eye(4), (V, 1, 1))
    baseline = 0.0
    names: list[str] = []
    if stereo:
        baseline = float(rng.uniform(*cfg.baseline))
        yaw0 = math.radians(float(rng.uniform(*cfg.stereo_yaw_deg)))
        yaws = [yaw0, yaw0] + [y - start + yaw0 for y in yaws]  # the rest spread from the pair
        pitches[1], hfovs[1], heights[1] = pitches[0], hfovs[0], heights[0]
        names = ["stereo_left", "stereo_right"]
    names += [f"cam{k}" for k in range(len(names), V)]
    for v in range(V):
        R = optical_rotation(yaws[v], float(pitches[v]))
        centre = np.array([radius * math.cos(yaws[v]), radius * math.sin(yaws[v]), heights[v]])
        T[v, :3, :3] = R
        T[v, :3, 3] = centre
    if stereo:  # the pair's centres straddle the mount point along their common x (right)
        mid = T[0, :3, 3].copy()
        T[0, :3, 3] = mid - 0.5 * baseline * T[0, :3, 0]
        T[1, :3, 3] = mid + 0.5 * baseline * T[0, :3, 0]
    cameras = [PinholeCamera.from_fov(width, height, float(h)) for h in hfovs]
    if stereo:
        cameras[1] = cameras[0]
    return RandomRig(names=names, frame_ids=[f"{n}_optical" for n in names], T_base_cam=T,
                     cameras=cameras, stereo=(0, 1) if stereo else None, baseline=baseline)
