"""A torch Dataset over training shards (numpy + torch only; Open3D is not needed).

Each sample is a dict of tensors (V views, H x W pixels, nx x ny x nz voxels):
    images       (V, 3, H, W) float32 RGB in [0, 1]
    depth        (V, H, W) float32 metres along the optical axis, NaN = invalid
    K            (V, 3, 3) float32 pinhole intrinsics
    T_base_cam   (V, 4, 4) float32 optical frame -> base_link
    T_odom_base  (4, 4) float32 base_link -> odom
    occupancy    (nx, ny, nz) uint8, 0 free, 1 occupied, 255 unknown (grid in base_link)
    stamp_ns     () int64, index () int64
and with `temporal=True` also the previous frame of the same scene (the first frame of a
scene uses itself):
    prev_images       (V, 3, H, W) float32
    prev_T_odom_base  (4, 4) float32
Frame conventions as in docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset

from depth_any_view.data.shards import META_NAME, frame_segments, read_meta, read_npz
from depth_any_view.geometry.grid import VoxelGrid


def _images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """(V, H, W, 3) uint8 -> (V, 3, H, W) float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)


class SyntheticShardDataset(Dataset):
    """The frames of one shard directory as dicts of tensors (see the module docstring)."""

    def __init__(self, root: str | os.PathLike[str], *, views: Sequence[str | int] | None = None,
                 temporal: bool = False) -> None:
        """Open a shard directory.

        Args:
            root: directory with meta.json and the frame .npz files.
            views: camera names (or indices) to keep, in this order; None = all.
            temporal: also return the previous frame's images and pose.
        """
        self.root = Path(root)
        self.meta = read_meta(self.root)
        names = list(self.meta["camera_names"])
        if views is None:
            self.view_index = list(range(len(names)))
        else:
            self.view_index = []
            for v in views:
                if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
                    if not 0 <= int(v) < len(names):
                        raise ValueError(f"view index {v} out of range for {len(names)} cameras "
                                         f"in '{self.root}' ({', '.join(names)})")
                    self.view_index.append(int(v))
                elif v in names:
                    self.view_index.append(names.index(v))
                else:
                    raise ValueError(f"view '{v}' is not a camera of shard '{self.root}'; it has "
                                     f"{', '.join(names)}")
        self.temporal = bool(temporal)
        self.files = [self.root / f for f in self.meta["files"]]
        missing = [str(f) for f in self.files if not f.is_file()]
        if missing:
            raise FileNotFoundError(f"shard '{self.root}' lists {len(missing)} missing frame "
                                    f"file(s), e.g. {missing[0]}; regenerate it")
        self._segments = frame_segments(self.meta)

    @property
    def camera_names(self) -> list[str]:
        """Names of the returned views, in order."""
        return [self.meta["camera_names"][i] for i in self.view_index]

    @property
    def grid(self) -> VoxelGrid:
        """The occupancy grid of every sample (base_link)."""
        return VoxelGrid.from_dict(self.meta["grid"])

    @property
    def image_size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        w, h = self.meta["size"]
        return int(w), int(h)

    def __len__(self) -> int:
        """Number of frames."""
        return len(self.files)

    def previous_index(self, i: int) -> int:
        """Index of the frame before `i` in the same scene, or `i` at a scene's start."""
        return i - 1 if i > 0 and self._segments[i - 1] == self._segments[i] else i

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        """Sample `i` as a dict of tensors."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"sample {i} out of range for {len(self)} frames in '{self.root}'")
        i = i % len(self)
        arr = read_npz(self.files[i])
        v = self.view_index
        out: dict[str, torch.Tensor] = {
            "images": _images_to_tensor(arr["images"][v]),
            "depth": torch.from_numpy(np.ascontiguousarray(arr["depth"][v], np.float32)),
            "K": torch.from_numpy(arr["K"][v].astype(np.float32)),
            "T_base_cam": torch.from_numpy(arr["T_base_cam"][v].astype(np.float32)),
            "T_odom_base": torch.from_numpy(arr["T_odom_base"].astype(np.float32)),
            "occupancy": torch.from_numpy(np.ascontiguousarray(arr["occupancy"], np.uint8)),
            "stamp_ns": torch.tensor(int(arr["stamp_ns"]), dtype=torch.int64),
            "index": torch.tensor(int(arr["index"]), dtype=torch.int64),
        }
        if self.temporal:
            j = self.previous_index(i)
            prev = arr if j == i else read_npz(self.files[j])
            out["prev_images"] = _images_to_tensor(prev["images"][v])
            out["prev_T_odom_base"] = torch.from_numpy(prev["T_odom_base"].astype(np.float32))
        return out


def find_shard_dirs(roots: Sequence[str | os.PathLike[str]] | str | os.PathLike[str]
                    ) -> list[Path]:
    """Shard directories under `roots`: each root is a shard directory itself, or a folder
    whose immediate subdirectories are (sorted by name)."""
    if isinstance(roots, (str, os.PathLike)):
        roots = [roots]
    found: list[Path] = []
    for root in roots:
        root = Path(root)
        if (root / META_NAME).is_file():
            found.append(root)
            continue
        subs = sorted(p for p in root.iterdir() if (p / META_NAME).is_file()) \
            if root.is_dir() else []
        if not subs:
            raise FileNotFoundError(f"'{root}' holds no shard directory (no {META_NAME} in it "
                                    "or its subdirectories)")
        found.extend(subs)
    return found


def concat_shards(roots: Sequence[str | os.PathLike[str]] | str | os.PathLike[str], *,
                  views: Sequence[str | int] | None = None, temporal: bool = False,
                  same_rig: bool = True) -> ConcatDataset:
    """Several shard directories as one dataset (see `find_shard_dirs` for `roots`).

    Args:
        same_rig: require the same cameras and image size everywhere (False for mixed-rig
            training, where training/rig_batching.py brings samples to one shape); the
            occupancy grid must match either way.

    Raises:
        ValueError: the shards differ in returned cameras, image size or grid dims (their
            samples could not be batched together).
    """
    datasets = [SyntheticShardDataset(p, views=views, temporal=temporal)
                for p in find_shard_dirs(roots)]
    ref = datasets[0]
    if not same_rig:
        for ds in datasets[1:]:
            if ds.grid.dims != ref.grid.dims:
                raise ValueError(f"shard '{ds.root}' has occupancy grid {ds.grid.dims} but "
                                 f"'{ref.root}' has {ref.grid.dims}; regenerate it with the "
                                 "same grid")
        return ConcatDataset(datasets)
    key: Any = (ref.camera_names, ref.image_size, ref.grid.dims)
    for ds in datasets[1:]:
        other = (ds.camera_names, ds.image_size, ds.grid.dims)
        if other != key:
            raise ValueError(f"shard '{ds.root}' has cameras/size/grid {other} but "
                             f"'{ref.root}' has {key}; train on matching shards or pass views")
    return ConcatDataset(datasets)
