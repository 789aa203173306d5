"""The shifted world: a second procedural world, unlike scenes.py, with a random rig per
sequence, for measuring (and training) generalisation beyond the standard world.

Frames: scenes are built in odom (x, y horizontal, z up, metres). The base starts at the
odom origin with a random heading and stands on the ground (a flat floor indoors, a tilted
plane outdoors: its pitch and roll follow the plane). Cameras come from random_rig.py;
frame conventions of the output are those of docs/ARCHITECTURE.md ("Synthetic frame"):
depth along the optical axis (NaN beyond `max_range`), uint8 RGB, `T_odom_base` of the
base, occupancy labels by data/occupancy.py's OccupancyLabeler in the base_link grid of
config/shifted_world.yaml (the same bounds as config/synth.yaml).

- indoor: one closed room of random size (walls, floor, ceiling as thin slabs), photographs
  hung on the walls, a point lamp below the ceiling.
- outdoor: an open yard on a tilted ground plane out to 300 m, distant halls, towers and
  hills 20-150 m away, a sky with sun disc and clouds.
Both hold free-standing objects of many sizes (spheres, upright and lying cylinders,
boxes, rocks made from subdivided icosahedra, poles with signs, trees, tables, chairs,
shelves with thin legs and boards, wedge ramps) from 0.5 m to ~12 m beyond the rig's
reach, and small clutter on the ground. Materials and lighting are in shifted_render.py.

Sequence `seed` draws rig, motion, scene and pixel noise from four generators of
`np.random.SeedSequence(seed)`, so the same seed gives the same bytes. Its few frames at
`world.fps` show the base standing still, turning on the spot or driving a slow arc.

Written here as shard directories; as rosbag2 by bag/synthetic.py (data/ never imports bag/).
The pieces: shifted_mesh.py (primitives, ground, scene), shifted_motion.py (the base's
motion), shifted_scene.py (building a scene), shifted_render.py (materials, lighting,
rendering); this module makes and writes sequences and gathers their public names.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from depth_any_view.data.frame import Frame
from depth_any_view.data.random_rig import RandomRig, sample_rig
from depth_any_view.data.shifted_config import ShiftedConfig, load_shifted_config
from depth_any_view.data.shifted_mesh import (
    OCC_RADIUS,
    GroundPlane,
    MeshSoup,
    ShiftedScene,
    box_mesh,
    cylinder_mesh,
    rock_mesh,
    sphere_mesh,
    wedge_mesh,
)
from depth_any_view.data.shifted_motion import Motion, plan_motion
from depth_any_view.data.shifted_render import (
    ShiftedRenderer,
)
from depth_any_view.data.shifted_scene import SHIFTED_KINDS, build_shifted_scene
from depth_any_view.geometry.grid import VoxelGrid


@dataclass
class ShiftedSequence:
    """One sequence of the shifted world: its rig, scene, motion and frames (lazily)."""

    seed: int
    rig: RandomRig
    scene: ShiftedScene
    motion: Motion
    grid: VoxelGrid
    config: ShiftedConfig
    _noise_rng: np.random.Generator = field(repr=False, default=None)  # type: ignore

    @property
    def kind(self) -> str:
        """'indoor' | 'outdoor'."""
        return self.scene.kind

    def frames(self) -> Iterator[Frame]:
        """The rendered frames with their ground truth, in order."""
        from depth_any_view.data.occupancy import OccupancyLabeler

        cfg = self.config
        rig = self.rig
        renderer = ShiftedRenderer(self.scene, rig.cameras, rig.T_base_cam,
                                   max_range=cfg.world.max_range,
                                   photo_texels=cfg.texture.photo_texels)
        labeler = OccupancyLabeler(self.grid, rig.cameras, rig.T_base_cam,
                                   max_range=cfg.world.max_range, config=cfg.occupancy)
        K = rig.K
        for j, T in enumerate(self.motion.T_odom_base):
            images, depth = renderer.render(T, self._noise_rng)
            occupancy = labeler.label(self.scene, T, depth)  # type: ignore[arg-type]
            yield Frame(stamp_ns=int(self.motion.stamps_ns[j]), index=j,
                        camera_names=list(rig.names), images=images, depth=depth, K=K.copy(),
                        T_base_cam=rig.T_base_cam.copy(), frame_ids=list(rig.frame_ids),
                        T_odom_base=T.copy(), occupancy=occupancy, grid=self.grid)


def make_sequence(seed: int, *, frames: int, grid_dims: int = 64,
                  config: ShiftedConfig | None = None) -> ShiftedSequence:
    """Sequence `seed` of the shifted world: rig, motion, scene and noise each drawn from one
    generator of `np.random.SeedSequence(seed)` (so the same seed gives the same bytes).

    Args:
        seed: non-negative sequence seed.
        frames: number of frames (>= 1) at `world.fps`.
        grid_dims: occupancy voxels per axis (grid_dims^3) over the configured bounds.
        config: settings (default: config/shifted_world.yaml).
    """
    if int(seed) < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if int(frames) < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    if int(grid_dims) < 1:
        raise ValueError(f"grid_dims must be >= 1 (voxels per axis), got {grid_dims}")
    cfg = config or load_shifted_config()
    rig_rng, motion_rng, scene_rng, noise_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(4))
    rig = sample_rig(rig_rng, cfg.rig)
    kind = "indoor" if scene_rng.random() < cfg.world.indoor_probability else "outdoor"
    ground = GroundPlane()
    if kind == "outdoor":
        slope = math.tan(math.radians(float(scene_rng.uniform(*cfg.scene.yard_slope_deg))))
        a = float(scene_rng.uniform(0, 2 * np.pi))
        ground = GroundPlane(slope * math.cos(a), slope * math.sin(a), 0.0)
    start_ns = int(cfg.world.start_time_s) * 1_000_000_000 + int(seed) * 1_000_000_000
    motion = plan_motion(motion_rng, int(frames), cfg.world.fps, start_ns, ground, cfg)
    scene = build_shifted_scene(scene_rng, motion, rig, kind, ground, cfg)
    grid = VoxelGrid(cfg.grid.lower, cfg.grid.upper, (int(grid_dims),) * 3)
    return ShiftedSequence(int(seed), rig, scene, motion, grid, cfg, noise_rng)


def sequence_name(seed: int) -> str:
    """Directory (or bag) name of sequence `seed` inside an output folder."""
    return f"seq_{int(seed)}"


def write_sequence(out: str | os.PathLike[str], seed: int, *, frames: int,
                   grid_dims: int = 64, config: ShiftedConfig | None = None) -> Path:
    """Write sequence `seed` to `out` as a shard directory (meta.json, frame .npz files and
    the rig as rig.yaml; a rosbag2: bag/synthetic.py `write_shifted_bag`). Returns `out`.

    Raises:
        ValueError: a bad argument (named in the message).
        FileExistsError: `out` exists and is not empty.
    """
    from depth_any_view.data.shards import ShardWriter

    out = Path(out)
    cfg = config or load_shifted_config()
    seq = make_sequence(seed, frames=frames, grid_dims=grid_dims, config=cfg)
    with ShardWriter(out, rig="rig.yaml", seed=int(seed), scene=f"shifted_{seq.kind}",
                     fps=cfg.world.fps, max_range=cfg.world.max_range) as writer:
        seq.rig.write_yaml(out / "rig.yaml")
        for frame in seq.frames():
            writer.write(frame, segment=0, kind=f"shifted_{seq.kind}")
    return out


def _complete(path: Path, frames: int) -> bool:
    """Whether `path` is a finished shard directory of `frames` frames."""
    import json

    meta = path / "meta.json"
    return meta.is_file() and json.loads(meta.read_text(encoding="utf-8")).get(
        "frames") == int(frames)


def sequence_paths(out: str | os.PathLike[str], *, sequences: int, seed: int = 0,
                   progress: bool = True) -> Iterator[tuple[int, Path]]:
    """(seed, `out/seq_<seed>`) for seeds seed, seed + 1, ... (`out` is created), with a
    progress bar over the sequences; shared by the shard and the bag writers."""
    if int(sequences) < 1:
        raise ValueError(f"sequences must be >= 1, got {sequences}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = range(int(seed), int(seed) + int(sequences))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(seeds), desc="shifted", unit="seq")
    try:
        for s in seeds:
            yield s, out / sequence_name(s)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()


def synthesize_shifted(out: str | os.PathLike[str], *, sequences: int, frames: int,
                       seed: int = 0, grid_dims: int = 64, progress: bool = True,
                       config: ShiftedConfig | None = None) -> list[Path]:
    """Write sequences seed, seed + 1, ... into `out/seq_<seed>` as shard directories that
    data.dataset.find_shard_dirs(out) finds (bags: bag/synthetic.py). A finished shard
    directory is kept (an interrupted run resumes). Returns the sequence paths."""
    if int(sequences) < 1:
        raise ValueError(f"sequences must be >= 1, got {sequences}")
    cfg = config or load_shifted_config()
    paths = []
    for s, path in sequence_paths(out, sequences=sequences, seed=seed, progress=progress):
        if not _complete(path, frames):
            if path.exists():
                import shutil

                shutil.rmtree(path)  # an unfinished sequence of an interrupted run
            write_sequence(path, s, frames=frames, grid_dims=grid_dims, config=cfg)
        paths.append(path)
    return paths


__all__ = ["OCC_RADIUS", "SHIFTED_KINDS", "GroundPlane", "MeshSoup", "Motion", "ShiftedScene",
           "ShiftedSequence", "box_mesh", "build_shifted_scene", "cylinder_mesh", "make_sequence",
           "plan_motion", "rock_mesh", "sequence_name", "sequence_paths", "sphere_mesh",
           "synthesize_shifted", "wedge_mesh", "write_sequence"]
