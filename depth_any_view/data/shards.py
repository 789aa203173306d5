"""Training shards: a directory of one compressed `.npz` per frame plus `meta.json`.

Layout of a shard directory (numpy only to read; no Open3D):
    meta.json            format, version, rig, camera_names, frame_ids, size [W, H], grid,
                         seed, scene, fps, max_range, frames, files, scenes, labels
    frame_000000.npz     images (V, H, W, 3) uint8 RGB, depth (V, H, W) float32 metres
    frame_000001.npz     along z (NaN = none), K (V, 3, 3) float64, T_base_cam (V, 4, 4),
    ...                  T_odom_base (4, 4), occupancy (nx, ny, nz) uint8, stamp_ns,
                         index and segment (int64 scalars)
Sequences with moving objects (`synth --dynamic`) also store per frame their state in odom
(see `DynamicState`): dynamic_id (K,) int32, dynamic_kind (K,) uint8, dynamic_center,
dynamic_size, dynamic_velocity (K, 3) float64, dynamic_yaw (K,) float64, and meta.json
gains `dynamic` {kinds, frame}; without them files are exactly as before.
Frames follow docs/ARCHITECTURE.md ("Synthetic frame"). `scenes` lists the segments
(one scene each) as {segment, kind, first, count}; the frame before the first of a
segment belongs to another scene. Archives are written with fixed zip timestamps, so the
same frames give byte-identical files.
"""

from __future__ import annotations

import json
import os
import zipfile
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from depth_any_view.data.frame import DYNAMIC_KINDS, DynamicState, Frame
from depth_any_view.geometry.grid import FREE, OCCUPIED, UNKNOWN, VoxelGrid

SHARD_FORMAT = "depth_any_view.shards"
SHARD_VERSION = 1
META_NAME = "meta.json"
ARRAY_KEYS = ("images", "depth", "K", "T_base_cam", "T_odom_base", "occupancy")
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def frame_name(index: int) -> str:
    """File name of frame `index` inside a shard directory."""
    return f"frame_{index:06d}.npz"


def write_npz(path: str | os.PathLike[str], arrays: dict[str, np.ndarray],
              compresslevel: int = 1) -> None:
    """Write arrays as a deflate-compressed .npz (loadable with np.load), deterministically."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED,
                         compresslevel=compresslevel) as zf:
        for key, value in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            try:
                info.compress_level = compresslevel  # Python >= 3.13
            except AttributeError:
                info._compresslevel = compresslevel  # Python 3.11 / 3.12
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asarray(value), allow_pickle=False)
    os.replace(tmp, path)


def read_npz(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """All arrays of a .npz (no pickles)."""
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def frame_arrays(frame: Frame, segment: int = 0) -> dict[str, np.ndarray]:
    """The per-frame arrays stored in a shard file."""
    out = {k: getattr(frame, k) for k in ARRAY_KEYS}
    out["stamp_ns"] = np.int64(frame.stamp_ns)
    out["index"] = np.int64(frame.index)
    out["segment"] = np.int64(segment)
    if frame.dynamic is not None:
        out.update(frame.dynamic.arrays())
    return out


class ShardWriter:
    """Writes frames into a new shard directory; `close()` writes meta.json.

    Compression runs in one background thread (zlib releases the GIL), overlapping with the
    rendering of the next frame; at most two frames wait in memory.
    """

    def __init__(self, root: str | os.PathLike[str], *, rig: str, seed: int, scene: str,
                 fps: float, max_range: float, compresslevel: int = 1) -> None:
        """Create `root` (it must not exist or be empty).

        Raises:
            FileExistsError: `root` exists and is not an empty directory.
        """
        self.root = Path(root)
        if self.root.exists() and (not self.root.is_dir() or any(self.root.iterdir())):
            raise FileExistsError(f"shard output '{self.root}' exists and is not empty; remove "
                                  "it or choose another --out")
        self.root.mkdir(parents=True, exist_ok=True)
        self.compresslevel = compresslevel
        self._meta: dict[str, Any] = {"format": SHARD_FORMAT, "version": SHARD_VERSION,
                                      "rig": str(rig), "seed": int(seed), "scene": str(scene),
                                      "fps": float(fps), "max_range": float(max_range)}
        self._files: list[str] = []
        self._scenes: list[dict[str, Any]] = []
        self._pool = ThreadPoolExecutor(max_workers=1)
        self._pending: list[Future] = []

    def write(self, frame: Frame, *, segment: int = 0, kind: str = "") -> Path:
        """Write one frame of scene segment `segment` (of scene kind `kind`)."""
        if not self._files:
            self._meta.update(camera_names=list(frame.camera_names),
                              frame_ids=list(frame.frame_ids), size=[frame.width, frame.height],
                              grid=frame.grid.to_dict())
        elif (list(frame.camera_names) != self._meta["camera_names"]
              or [frame.width, frame.height] != self._meta["size"]
              or frame.grid.to_dict() != self._meta["grid"]):
            raise ValueError(f"frame {frame.index} differs from the shard's first frame in "
                             "cameras, image size or grid; write it to another shard")
        if frame.dynamic is not None:
            self._meta["dynamic"] = {"kinds": list(DYNAMIC_KINDS), "frame": "odom"}
        name = frame_name(len(self._files))
        while len(self._pending) >= 2:
            self._pending.pop(0).result()  # re-raises a failed write
        self._pending.append(self._pool.submit(write_npz, self.root / name,
                                               frame_arrays(frame, segment), self.compresslevel))
        if not self._scenes or self._scenes[-1]["segment"] != segment:
            self._scenes.append({"segment": int(segment), "kind": str(kind),
                                 "first": len(self._files), "count": 0})
        self._scenes[-1]["count"] += 1
        self._files.append(name)
        return self.root / name

    def close(self) -> Path:
        """Finish pending writes and write meta.json; returns the shard directory."""
        try:
            for future in self._pending:
                future.result()
        finally:
            self._pending.clear()
            self._pool.shutdown(wait=True)
        meta = dict(self._meta, frames=len(self._files), files=self._files, scenes=self._scenes,
                    labels={"free": FREE, "occupied": OCCUPIED, "unknown": UNKNOWN})
        (self.root / META_NAME).write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n",
                                           encoding="utf-8")
        return self.root

    def __enter__(self) -> ShardWriter:
        """Context manager: close() on exit."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Write meta.json even when generation stopped early (it lists what was written)."""
        self.close()


def read_meta(root: str | os.PathLike[str]) -> dict[str, Any]:
    """meta.json of a shard directory.

    Raises:
        FileNotFoundError: no meta.json (not a shard directory, or generation never ended).
        ValueError: it is not a depth_any_view shard or has a newer version.
    """
    path = Path(root) / META_NAME
    if not path.is_file():
        raise FileNotFoundError(f"'{root}' is not a shard directory (no {META_NAME}); create "
                                "one with `depth-any-view synth --out DIR --format shards`")
    meta = json.loads(path.read_text(encoding="utf-8"))
    if meta.get("format") != SHARD_FORMAT:
        raise ValueError(f"'{path}' has format {meta.get('format')!r}, expected "
                         f"{SHARD_FORMAT!r}")
    if int(meta.get("version", 0)) > SHARD_VERSION:
        raise ValueError(f"'{path}' is shard version {meta['version']}; this package reads up "
                         f"to {SHARD_VERSION}, update depth_any_view")
    return meta


def frame_segments(meta: dict[str, Any]) -> np.ndarray:
    """Scene segment id of every frame (N,) int64, from meta['scenes']."""
    seg = np.zeros(int(meta["frames"]), np.int64)
    for entry in meta.get("scenes", []):
        seg[entry["first"]: entry["first"] + entry["count"]] = entry["segment"]
    return seg


def load_frame(root: str | os.PathLike[str], i: int, meta: dict[str, Any] | None = None
               ) -> Frame:
    """Frame `i` of a shard directory as a Frame (numpy only)."""
    meta = meta or read_meta(root)
    arrays = read_npz(Path(root) / meta["files"][i])
    return Frame(stamp_ns=int(arrays["stamp_ns"]), index=int(arrays["index"]),
                 camera_names=meta["camera_names"], images=arrays["images"],
                 depth=arrays["depth"], K=arrays["K"], T_base_cam=arrays["T_base_cam"],
                 frame_ids=meta["frame_ids"], T_odom_base=arrays["T_odom_base"],
                 occupancy=arrays["occupancy"], grid=VoxelGrid.from_dict(meta["grid"]),
                 dynamic=DynamicState.from_arrays(arrays))
