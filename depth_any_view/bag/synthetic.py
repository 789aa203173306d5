"""The synthetic worlds as rosbag2: `depth-any-view synth --format mcap|sqlite3`.

data/synth.py and data/shifted_world.py make the frames and write training shards; this
module writes the same frames as bags with bag/writer.py `write_bag`, so data/ never
imports bag/ (bag/ sits above data/). A shifted-world bag gets its random rig beside it as
`<bag>.rig.yaml` and node parameters naming it and its cameras as `<bag>.params.yaml` (for
`depth-any-view eval-bag <bag> --params <bag>.params.yaml`).
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from depth_any_view.bag.writer import write_bag
from depth_any_view.data.shifted_config import ShiftedConfig, load_shifted_config
from depth_any_view.data.shifted_world import make_sequence, sequence_paths
from depth_any_view.data.synth import check_args, generate_frames
from depth_any_view.data.synth_config import SynthConfig, load_synth_config
from depth_any_view.geometry.rig import load_rig

FORMATS = ("mcap", "sqlite3")  # rosbag2 storages (`synth --format`, besides 'shards')


def _check_format(fmt: str) -> None:
    """ValueError naming a format that is not a rosbag2 storage."""
    if fmt not in FORMATS:
        raise ValueError(f"format '{fmt}' is unknown; use one of {', '.join(FORMATS)}")


def synthesize_bag(out: Path, *, frames: int, rig: str = "surround6",
                   size: tuple[int, int] = (256, 256), fmt: str = "mcap", seed: int = 0,
                   scene: str = "mixed", grid_dims: int = 64, progress: bool = True,
                   config: SynthConfig | None = None, dynamic: bool | None = None) -> Path:
    """Generate a sequence of the standard world into the rosbag2 `out` ('mcap' |
    'sqlite3'). Other arguments as in data/synth.py `generate_frames`. Returns `out`.

    Raises:
        ValueError: a bad argument (named in the message).
        FileExistsError: `out` exists.
    """
    out = Path(out)
    _check_format(fmt)
    check_args(frames, size, seed, scene, grid_dims)
    cfg = config or load_synth_config()
    load_rig(rig)  # a bad rig name fails here, before anything is written
    write_bag(out, generate_frames(frames=frames, rig=rig, size=size, seed=seed, scene=scene,
                                   grid_dims=grid_dims, progress=progress, config=cfg,
                                   dynamic=dynamic), storage=fmt)
    return out


def write_shifted_bag(out: str | os.PathLike[str], seed: int, *, frames: int,
                      fmt: str = "mcap", grid_dims: int = 64,
                      config: ShiftedConfig | None = None) -> Path:
    """Write sequence `seed` of the shifted world as the rosbag2 `out` ('mcap' | 'sqlite3')
    with `<out>.rig.yaml` and `<out>.params.yaml` beside it. Returns `out`.

    Raises:
        ValueError: a bad argument (named in the message).
        FileExistsError: `out` exists.
    """
    _check_format(fmt)
    out = Path(out)
    cfg = config or load_shifted_config()
    seq = make_sequence(seed, frames=frames, grid_dims=grid_dims, config=cfg)
    write_bag(out, seq.frames(), storage=fmt)
    rig_file = seq.rig.write_yaml(out.with_name(out.name + ".rig.yaml")).resolve()
    params = {"/**/depth_any_view": {"ros__parameters": {"rig_file": str(rig_file),
                                                         "camera_names": list(seq.rig.names)}}}
    out.with_name(out.name + ".params.yaml").write_text(
        "# Node parameters for this bag's rig: depth-any-view eval-bag BAG --params THIS\n"
        + yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    return out


def synthesize_shifted_bags(out: str | os.PathLike[str], *, sequences: int, frames: int,
                            seed: int = 0, fmt: str = "mcap", grid_dims: int = 64,
                            progress: bool = True, config: ShiftedConfig | None = None
                            ) -> list[Path]:
    """Write sequences seed, seed + 1, ... of the shifted world as bags `out/seq_<seed>`
    (`write_shifted_bag`). Returns the bag paths."""
    if int(sequences) < 1:
        raise ValueError(f"sequences must be >= 1, got {sequences}")
    cfg = config or load_shifted_config()
    return [write_shifted_bag(path, s, frames=frames, fmt=fmt, grid_dims=grid_dims, config=cfg)
            for s, path in sequence_paths(out, sequences=sequences, seed=seed,
                                          progress=progress)]


__all__ = ["FORMATS", "synthesize_bag", "synthesize_shifted_bags", "write_shifted_bag"]
