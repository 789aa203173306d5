"""Generate synthetic six-camera sequences: frames in memory or training shards.

A sequence is split into segments of `world.frames_per_scene` frames; each segment has its
own procedural scene (indoor or outdoor; 'mixed' alternates, starting from the seed's
parity) and its own trajectory, all drawn from `np.random.SeedSequence([seed, segment])`,
so the same arguments give the same bytes. Stamps (int64 ns) and frame indices run on
across segments at `world.fps`. Intrinsics come from the rig's horizontal field of view in
`config/synth.yaml` (`PinholeCamera.from_fov`), extrinsics from the rig file; the
occupancy grid is `grid_dims`^3 voxels over the configured base_link bounds. Frame
conventions are those of docs/ARCHITECTURE.md ("Synthetic frame").

With `dynamic`, each segment also gets moving persons and cars (dynamic.py), drawn from a
fourth generator of the same SeedSequence: the static world, trajectory and image noise
are those of the same seed without them, which stays byte-identical to before.

The same frames as a rosbag2: bag/synthetic.py (data/ never imports bag/).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from depth_any_view.data.base_trajectory import plan_trajectory
from depth_any_view.data.dynamic import IDS_PER_SEGMENT, plan_dynamic
from depth_any_view.data.frame import Frame
from depth_any_view.data.occupancy import OccupancyLabeler
from depth_any_view.data.render import Renderer
from depth_any_view.data.scenes import build_scene
from depth_any_view.data.shards import ShardWriter
from depth_any_view.data.synth_config import SynthConfig, load_synth_config
from depth_any_view.geometry.camera import PinholeCamera
from depth_any_view.geometry.grid import VoxelGrid
from depth_any_view.geometry.rig import Rig, load_rig

SCENES = ("mixed", "indoor", "outdoor")


@dataclass(frozen=True)
class SegmentFrame:
    """A generated frame with the scene segment it belongs to."""

    segment: int  # scene segment number, from 0
    kind: str  # 'indoor' | 'outdoor'
    frame: Frame


def scene_kind(scene: str, seed: int, segment: int) -> str:
    """The scene kind of a segment: fixed, or for 'mixed' alternating from seed parity."""
    if scene == "mixed":
        return ("outdoor", "indoor")[(seed + segment) % 2]
    return scene


def make_cameras(rig: Rig, rig_name: str, size: tuple[int, int],
                 config: SynthConfig) -> list[PinholeCamera]:
    """Distortion-free cameras of size (width, height) with the rig's configured hfov."""
    hfov = math.radians(config.cameras.hfov_for(rig_name))
    return [PinholeCamera.from_fov(size[0], size[1], hfov) for _ in rig.names]


def check_args(frames: int, size: tuple[int, int], seed: int, scene: str,
               grid_dims: int) -> None:
    """ValueError naming a bad argument and its allowed values."""
    if int(frames) < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"size must be (width, height) >= 1 pixel, got {size}")
    if int(seed) < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if scene not in SCENES:
        raise ValueError(f"scene '{scene}' is unknown; use one of {', '.join(SCENES)}")
    if int(grid_dims) < 1:
        raise ValueError(f"grid_dims must be >= 1 (voxels per axis), got {grid_dims}")


def generate_sequence(*, frames: int, rig: str = "surround6",
                      size: tuple[int, int] = (256, 256), seed: int = 0, scene: str = "mixed",
                      grid_dims: int = 64, progress: bool = False,
                      config: SynthConfig | None = None, dynamic: bool | None = None
                      ) -> Iterator[SegmentFrame]:
    """Frames with their scene segment (see `generate_frames` for the arguments)."""
    check_args(frames, size, seed, scene, grid_dims)
    cfg = config or load_synth_config()
    dynamic = cfg.dynamic.enabled if dynamic is None else bool(dynamic)
    rig_obj = load_rig(rig)
    cameras = make_cameras(rig_obj, rig, size, cfg)
    T_base_cam = rig_obj.T_base_cams()  # (V, 4, 4)
    K = np.stack([c.K for c in cameras])  # (V, 3, 3)
    names = rig_obj.names
    frame_ids = [rig_obj[n].frame_id for n in names]
    grid = VoxelGrid(cfg.grid.lower, cfg.grid.upper, (grid_dims,) * 3)
    labeler = OccupancyLabeler(grid, cameras, T_base_cam, max_range=cfg.world.max_range,
                               config=cfg.occupancy)
    per_scene = cfg.world.frames_per_scene
    start_ns = int(cfg.world.start_time_s) * 1_000_000_000
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=frames, desc="synth", unit="frame")
    try:
        for segment in range(math.ceil(frames / per_scene)):
            first = segment * per_scene
            count = min(per_scene, frames - first)
            kind = scene_kind(scene, seed, segment)
            # spawn(4)[:3] equals spawn(3): the fourth generator leaves the others unchanged.
            scene_rng, traj_rng, noise_rng, dynamic_rng = (
                np.random.default_rng(s) for s in np.random.SeedSequence([seed, segment]).spawn(4))
            world = build_scene(kind, scene_rng, cfg)
            tc = cfg.trajectory
            traj = plan_trajectory(
                world.path, world.ground.height, frames=count, fps=cfg.world.fps,
                start_ns=start_ns + round(first * 1e9 / cfg.world.fps), speed=world.speed,
                accel=tc.accel, lateral_accel=tc.lateral_accel, stop_spacing=world.stop_spacing,
                stop_duration=tc.stop_duration, footprint=tc.footprint, rng=traj_rng)
            renderer = Renderer(world, cameras, T_base_cam, max_range=cfg.world.max_range,
                                noise_std=cfg.world.image_noise_std)
            movers = None
            if dynamic:
                movers = plan_dynamic(world, traj.T_odom_base, cfg.world.fps, dynamic_rng,
                                      cfg.dynamic, noise_amp=cfg.texture.noise_amp,
                                      first_id=segment * IDS_PER_SEGMENT)
            for j in range(count):
                T = traj.T_odom_base[j]
                dyn = movers.at(j / cfg.world.fps) if movers is not None else None
                images, depth = renderer.render(T, noise_rng, dynamic=dyn)
                occupancy = labeler.label(world, T, depth, dynamic=dyn)
                yield SegmentFrame(segment, kind, Frame(
                    stamp_ns=int(traj.stamps_ns[j]), index=first + j, camera_names=list(names),
                    images=images, depth=depth, K=K.copy(), T_base_cam=T_base_cam.copy(),
                    frame_ids=list(frame_ids), T_odom_base=T, occupancy=occupancy, grid=grid,
                    dynamic=dyn.state if dyn is not None else None))
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()


def generate_frames(*, frames: int, rig: str = "surround6", size: tuple[int, int] = (256, 256),
                    seed: int = 0, scene: str = "mixed", grid_dims: int = 64,
                    progress: bool = False, config: SynthConfig | None = None,
                    dynamic: bool | None = None) -> Iterator[Frame]:
    """Synthetic frames one by one.

    Args:
        frames: number of frames (at `world.fps`, 10 Hz by default).
        rig: rig name ('surround6', 'front_array') or path to a rig YAML.
        size: (width, height) of every image, pixels.
        seed: non-negative seed of scenes, trajectories and noise.
        scene: 'indoor', 'outdoor' or 'mixed' (alternating per segment).
        grid_dims: occupancy voxels per axis (grid_dims^3).
        progress: show a tqdm progress bar.
        config: world settings (default: config/synth.yaml).
        dynamic: add moving persons and cars (dynamic.py); None = `dynamic.enabled` of the
            config (off by default). Frames then carry their states in `Frame.dynamic`.
    """
    for item in generate_sequence(frames=frames, rig=rig, size=size, seed=seed, scene=scene,
                                  grid_dims=grid_dims, progress=progress, config=config,
                                  dynamic=dynamic):
        yield item.frame


def synthesize(out: Path, *, frames: int, rig: str = "surround6",
               size: tuple[int, int] = (256, 256), seed: int = 0,
               scene: str = "mixed", grid_dims: int = 64, progress: bool = True,
               config: SynthConfig | None = None, dynamic: bool | None = None) -> Path:
    """Generate a sequence into `out` as a shard directory (a rosbag2:
    bag/synthetic.py `synthesize_bag`). Other arguments as in `generate_frames`. Returns
    `out`.

    Raises:
        ValueError: a bad argument (named in the message).
        FileExistsError: `out` exists and is not an empty directory.
    """
    out = Path(out)
    check_args(frames, size, seed, scene, grid_dims)
    cfg = config or load_synth_config()
    load_rig(rig)  # a bad rig name fails here, before anything is written
    with ShardWriter(out, rig=rig, seed=seed, scene=scene, fps=cfg.world.fps,
                     max_range=cfg.world.max_range) as writer:
        for item in generate_sequence(frames=frames, rig=rig, size=size, seed=seed,
                                      scene=scene, grid_dims=grid_dims, progress=progress,
                                      config=cfg, dynamic=dynamic):
            writer.write(item.frame, segment=item.segment, kind=item.kind)
    return out
