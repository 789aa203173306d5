"""Read rosbag2 recordings (a bag directory, or one .mcap / .db3 file) into numpy.

`BagReader` wraps rosbags' `AnyReader` (a context manager): it lists topics and types,
yields messages of chosen topics in record-time order (`BagMessage`, whose `decode()`
gives the numpy form from bag/messages.py: images, CameraInfo as PinholeCamera, depth,
odometry, TF, point clouds), rebuilds the camera rig from `/tf_static`, and regroups the
contract's topics into `Frame`s (`read_frames`) for bags with exact shared header stamps,
as bag/writer.py writes them; recorded robot bags go through sync/ instead. Every failure
(missing path, corrupt file, missing topics, undecodable messages) is a `BagError` with
one line naming the bag, the topic and what to do.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
from rosbags.highlevel import AnyReader

from depth_any_view.bag.messages import (
    BASE_FRAME,
    CAMERA_INFO,
    CAMERA_KINDS,
    CUSTOM_CAMERAS,
    CUSTOM_GRID,
    IMAGE,
    ODOMETRY,
    POINT_CLOUD2,
    TF_MESSAGE,
    TOPIC_OCCUPANCY_GT,
    TOPIC_ODOM,
    TOPIC_TF_STATIC,
    BagError,
    CameraInfoData,
    CloudData,
    ImageData,
    OdometryData,
    TransformData,
    camera_topic,
    decode,
    default_typestore,
    occupancy_from_points,
)
from depth_any_view.data.frame import Frame
from depth_any_view.geometry.grid import UNKNOWN, VoxelGrid
from depth_any_view.geometry.rig import DEFAULT_CAMERA_NAMES, Rig, RigCamera

__all__ = ["BagError", "BagMessage", "BagReader", "StampSets", "DEFAULT_CAMERA_NAMES",
           "BAG_SUFFIXES"]

BAG_SUFFIXES = (".mcap", ".db3")  # single storage files AnyReader opens without metadata
MAX_PENDING_SETS = 32  # incomplete stamp sets read_frames holds before dropping the oldest
_CAMERA_IMAGE = re.compile(r"^/cameras/([^/]+)/image_raw$")
_EXPECTED_TYPES = {"image_raw": IMAGE, "camera_info": CAMERA_INFO, "depth_gt": IMAGE}


def _one_line(exc: BaseException) -> str:
    """An exception as one short line: type and first line of its message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


@dataclass(frozen=True)
class BagMessage:
    """One deserialised message of a bag."""

    topic: str
    msgtype: str  # e.g. sensor_msgs/msg/Image
    log_ns: int  # record time, int64 nanoseconds
    msg: Any  # rosbags message object

    def decode(self) -> Any:
        """Numpy form (bag/messages.py `decode`); BagError names the topic on failure."""
        try:
            return decode(self.msgtype, self.msg)
        except BagError as exc:
            raise BagError(f"topic {self.topic}: {exc}") from None
        except (ValueError, TypeError) as exc:
            raise BagError(f"topic {self.topic} at {self.log_ns} ns: {exc}") from exc


class StampSets:
    """Groups messages by exact header stamp into sets of `size` keyed messages.

    A set is returned once complete; older incomplete sets are then dropped (messages
    arrive in record order), and at most `max_pending` incomplete sets are held, so a
    topic that falls silent costs bounded memory. Dropped sets are counted in `skipped`.
    """

    def __init__(self, size: int, max_pending: int | None = None) -> None:
        self.size = size
        self.max_pending = MAX_PENDING_SETS if max_pending is None else max_pending
        self.pending: dict[int, dict[Any, Any]] = {}  # stamp ns -> {key: message}
        self.skipped = 0

    def add(self, stamp_ns: int, key: Any, item: Any) -> dict[Any, Any] | None:
        """Add one message; returns its set when that set is now complete."""
        slot = self.pending.setdefault(stamp_ns, {})
        slot[key] = item
        if len(slot) < self.size:
            while len(self.pending) > self.max_pending:
                del self.pending[min(self.pending)]
                self.skipped += 1
            return None
        stale = [s for s in self.pending if s < stamp_ns]
        for s in stale:
            del self.pending[s]
        self.skipped += len(stale)
        return self.pending.pop(stamp_ns)


class BagReader:
    """Numpy access to a rosbag2 bag; use as `with BagReader(path) as bag: ...`."""

    def __init__(self, path: Path | str) -> None:
        """Check that `path` is a bag directory or a .mcap/.db3 file (BagError if not)."""
        self.path = Path(path)
        if not self.path.exists():
            raise BagError(f"bag {self.path} does not exist; give a rosbag2 directory or a "
                           f"{' / '.join(BAG_SUFFIXES)} file")
        if self.path.is_file() and self.path.suffix not in BAG_SUFFIXES:
            raise BagError(f"bag {self.path} is a file but not {' or '.join(BAG_SUFFIXES)}; "
                           f"give a rosbag2 directory or its storage file")
        if self.path.is_dir() and not (self.path / "metadata.yaml").exists():
            raise BagError(f"bag directory {self.path} has no metadata.yaml; it is not a "
                           f"rosbag2 bag (or give its .mcap / .db3 file directly)")
        self._reader: AnyReader | None = None
        self.skipped_sets = 0  # incomplete stamp sets dropped by completed read_frames runs

    # ------------------------------------------------------------------ lifetime
    def open(self) -> None:
        """Open the bag; BagError with the reason when it is corrupt or unreadable."""
        if self._reader is not None:
            return
        try:
            reader = AnyReader([self.path], default_typestore=default_typestore())
            reader.open()
        except Exception as exc:  # rosbags raises many types for damaged files
            raise BagError(f"cannot read bag {self.path} (damaged, or not a rosbag2 bag): "
                           f"{_one_line(exc)}") from exc
        self._reader = reader

    def close(self) -> None:
        """Close the bag (safe to call twice)."""
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()

    def __enter__(self) -> BagReader:
        """Open on entering a `with` block."""
        self.open()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        """Close on leaving the `with` block."""
        self.close()

    @property
    def reader(self) -> AnyReader:
        """The open rosbags AnyReader."""
        if self._reader is None:
            raise BagError(f"bag {self.path} is not open; use `with BagReader(path) as bag:`")
        return self._reader

    # ------------------------------------------------------------------ what is inside
    def topics(self) -> dict[str, str]:
        """Topic name -> message type (e.g. sensor_msgs/msg/Image), sorted by name."""
        return {name: info.msgtype or "?" for name, info in sorted(self.reader.topics.items())}

    def message_counts(self) -> dict[str, int]:
        """Topic name -> number of messages."""
        return {name: info.msgcount for name, info in sorted(self.reader.topics.items())}

    @property
    def message_count(self) -> int:
        """Total number of messages."""
        return int(self.reader.message_count)

    @property
    def start_ns(self) -> int:
        """Record time of the first message, int nanoseconds."""
        return int(self.reader.start_time)

    @property
    def end_ns(self) -> int:
        """Record time just after the last message, int nanoseconds."""
        return int(self.reader.end_time)

    def custom_data(self) -> dict[str, str]:
        """The bag's metadata custom_data (bag directories only; {} otherwise)."""
        out: dict[str, str] = {}
        for sub in self.reader.readers:
            meta = getattr(getattr(sub, "storage", None), "metadata", None)
            out.update(getattr(meta, "custom", None) or {})
        return out

    def grid(self) -> VoxelGrid | None:
        """The occupancy grid that bag/writer.py recorded in the metadata, if any."""
        text = self.custom_data().get(CUSTOM_GRID)
        if text is None:
            return None
        try:
            return VoxelGrid.from_dict(json.loads(text))
        except (ValueError, TypeError) as exc:
            raise BagError(f"bag {self.path} metadata '{CUSTOM_GRID}' is unreadable: "
                           f"{_one_line(exc)}") from exc

    def camera_names(self) -> list[str]:
        """Camera names: the writer's recorded order, else every /cameras/<name>/image_raw
        (contract order first, then alphabetical)."""
        text = self.custom_data().get(CUSTOM_CAMERAS)
        if text is not None:
            return [str(n) for n in json.loads(text)]
        found = [m.group(1) for t in self.topics() if (m := _CAMERA_IMAGE.match(t))]
        known = [n for n in DEFAULT_CAMERA_NAMES if n in found]
        return known + sorted(n for n in found if n not in known)

    def require_topics(self, topics: Iterable[str], types: dict[str, str] | None = None) -> None:
        """BagError naming every missing topic (and wrong type), listing the bag's topics."""
        have = self.topics()
        topics = list(topics)
        missing = [t for t in topics if t not in have]
        if missing:
            raise BagError(f"bag {self.path} lacks topic(s) {', '.join(missing)}; it has: "
                           f"{', '.join(have) or 'no topics'}")
        wrong = [f"{t} is {have[t]} (expected {types[t]})" for t in topics
                 if types and t in types and have[t] != types[t]]
        if wrong:
            raise BagError(f"bag {self.path}: {'; '.join(wrong)}")

    def camera_topics(self, camera_names: Sequence[str],
                      kinds: Sequence[str] = ("image_raw", "camera_info")
                      ) -> dict[str, dict[str, str]]:
        """name -> {kind: topic} for the cameras; BagError lists missing topics."""
        table = {n: {k: camera_topic(n, k) for k in kinds} for n in camera_names}
        wanted = [t for per in table.values() for t in per.values()]
        self.require_topics(wanted, {camera_topic(n, k): _EXPECTED_TYPES[k]
                                     for n in camera_names for k in kinds
                                     if k in _EXPECTED_TYPES})
        return table

    # ------------------------------------------------------------------ messages
    def messages(self, topics: Iterable[str] | None = None, *, start_ns: int | None = None,
                 stop_ns: int | None = None) -> Iterator[BagMessage]:
        """Messages of `topics` (None = all) in record-time order, within [start, stop)."""
        if topics is None:
            conns = list(self.reader.connections)
        else:
            topics = list(topics)
            self.require_topics(topics)
            wanted = set(topics)
            conns = [c for c in self.reader.connections if c.topic in wanted]
        gen = self.reader.messages(connections=conns, start=start_ns, stop=stop_ns)
        while True:
            try:
                conn, log_ns, raw = next(gen)
            except StopIteration:
                return
            except Exception as exc:  # damaged chunks surface while iterating
                raise BagError(f"bag {self.path} is damaged: {_one_line(exc)}") from exc
            try:
                msg = self.reader.deserialize(raw, conn.msgtype)
            except Exception as exc:
                raise BagError(f"cannot deserialise a {conn.msgtype} on {conn.topic} at "
                               f"{log_ns} ns in {self.path}: {_one_line(exc)}") from exc
            yield BagMessage(conn.topic, conn.msgtype, int(log_ns), msg)

    def decoded(self, topics: Iterable[str] | None = None, **kwargs: Any
                ) -> Iterator[tuple[BagMessage, Any]]:
        """(message, numpy form) pairs of `topics`, as `messages` yields them."""
        for m in self.messages(topics, **kwargs):
            yield m, m.decode()

    # ------------------------------------------------------------------ transforms and rig
    def static_transforms(self) -> dict[str, TransformData]:
        """child frame -> its latest /tf_static transform ({} when the bag has none)."""
        if TOPIC_TF_STATIC not in self.topics():
            return {}
        self.require_topics([TOPIC_TF_STATIC], {TOPIC_TF_STATIC: TF_MESSAGE})
        out: dict[str, TransformData] = {}
        for _, transforms in self.decoded([TOPIC_TF_STATIC]):
            out.update({t.child: t for t in transforms})
        return out

    def static_transform(self, frame_id: str, statics: dict[str, TransformData] | None = None,
                         base_frame: str = BASE_FRAME) -> np.ndarray:
        """T_base_frame (4, 4) composed along the /tf_static chain from `frame_id` up."""
        statics = self.static_transforms() if statics is None else statics
        T = np.eye(4)
        frame = frame_id
        for _ in range(64):  # a longer chain means a cycle
            if frame == base_frame:
                return T
            if frame not in statics:
                raise BagError(f"bag {self.path} has no /tf_static path from '{base_frame}' to "
                               f"'{frame_id}' (stuck at '{frame}'; static frames: "
                               f"{', '.join(sorted(statics)) or 'none'})")
            t = statics[frame]
            T = t.T_parent_child @ T
            frame = t.parent
        raise BagError(f"bag {self.path}: /tf_static has a cycle above '{frame_id}'")

    def rig(self, camera_names: Sequence[str] | None = None,
            base_frame: str = BASE_FRAME) -> Rig:
        """The camera rig: frame_ids from each camera's first CameraInfo, extrinsics from
        /tf_static."""
        names = list(camera_names) if camera_names is not None else self.camera_names()
        topics = self.camera_topics(names, ("camera_info",))
        info_topic = {per["camera_info"]: n for n, per in topics.items()}
        frame_ids: dict[str, str] = {}
        for m in self.messages(info_topic):
            frame_ids.setdefault(info_topic[m.topic], m.msg.header.frame_id)
            if len(frame_ids) == len(names):
                break
        statics = self.static_transforms()
        cams = {n: RigCamera(n, frame_ids[n], self.static_transform(frame_ids[n], statics,
                                                                     base_frame))
                for n in names if n in frame_ids}
        missing = [n for n in names if n not in cams]
        if missing:
            raise BagError(f"bag {self.path} has no CameraInfo messages for {missing}")
        return Rig(base_frame, cams)

    # ------------------------------------------------------------------ frames
    def read_frames(self, camera_names: Sequence[str] | None = None, *,
                    grid: VoxelGrid | None = None) -> Iterator[Frame]:
        """Frames regrouped from a ground-truth bag by exact header stamp.

        Needs, per camera, image_raw, camera_info and depth_gt, plus /odom and /tf_static;
        `/ground_truth/occupancy` is optional (all UNKNOWN without it). Sets missing a
        message are skipped and counted in `skipped_sets` (at most MAX_PENDING_SETS
        incomplete sets are held at a time). Images become RGB, depth metres
        with NaN, K the CameraInfo's K (distortion is not applied: GT bags have none).

        Args:
            camera_names: cameras in view order; None = `camera_names()`.
            grid: the occupancy grid; None = the one recorded in the bag's metadata.
        """
        names = list(camera_names) if camera_names is not None else self.camera_names()
        if not names:
            raise BagError(f"bag {self.path} has no /cameras/<name>/image_raw topics; it has: "
                           f"{', '.join(self.topics()) or 'no topics'}")
        per_camera = self.camera_topics(names, CAMERA_KINDS)
        self.require_topics([TOPIC_ODOM, TOPIC_TF_STATIC],
                            {TOPIC_ODOM: ODOMETRY, TOPIC_TF_STATIC: TF_MESSAGE})
        grid = grid if grid is not None else self.grid()
        if grid is None:
            raise BagError(f"bag {self.path} records no occupancy grid in its metadata; pass "
                           f"grid=VoxelGrid(...) (the grid the frames were generated with)")
        roles: dict[str, tuple[str, str]] = {t: (n, k) for n, per in per_camera.items()
                                             for k, t in per.items()}
        roles[TOPIC_ODOM] = ("", "odom")
        if TOPIC_OCCUPANCY_GT in self.topics():
            self.require_topics([TOPIC_OCCUPANCY_GT], {TOPIC_OCCUPANCY_GT: POINT_CLOUD2})
            roles[TOPIC_OCCUPANCY_GT] = ("", "occupancy")
        statics = self.static_transforms()
        extrinsics: dict[str, np.ndarray] = {}
        sets = StampSets(len(roles))
        index = 0
        for m, data in self.decoded(roles):
            slot = sets.add(data.stamp_ns, roles[m.topic], data)
            if slot is None:
                continue
            for fid in (slot[(n, "image_raw")].frame_id for n in names):
                if fid not in extrinsics:
                    extrinsics[fid] = self.static_transform(fid, statics)
            yield self._frame(data.stamp_ns, index, names, slot, extrinsics, grid)
            index += 1
        self.skipped_sets += sets.skipped + len(sets.pending)  # after the whole bag

    def _frame(self, stamp_ns: int, index: int, names: list[str],
               slot: dict[tuple[str, str], Any], extrinsics: dict[str, np.ndarray],
               grid: VoxelGrid) -> Frame:
        """Assemble one Frame from a complete set of decoded messages."""
        images: list[ImageData] = [slot[(n, "image_raw")] for n in names]
        infos: list[CameraInfoData] = [slot[(n, "camera_info")] for n in names]
        depths: list[ImageData] = [slot[(n, "depth_gt")] for n in names]
        sizes = {n: im.array.shape[:2] for n, im in zip(names, images)}
        if len(set(sizes.values())) != 1:
            raise BagError(f"bag {self.path} at {stamp_ns} ns: cameras differ in image size "
                           f"(H, W) {sizes}; read_frames needs one size")
        for n, im, info, d in zip(names, images, infos, depths):
            shape = (info.camera.height, info.camera.width)
            if shape != im.array.shape[:2] or d.array.shape[:2] != im.array.shape[:2]:
                raise BagError(f"bag {self.path} camera {n} at {stamp_ns} ns: image "
                               f"{im.array.shape[:2]}, depth_gt {d.array.shape[:2]} and "
                               f"CameraInfo {shape} (H, W) disagree")
        try:
            rgb = np.stack([im.rgb() for im in images])  # (V, H, W, 3)
            depth = np.stack([d.depth_metres() for d in depths])  # (V, H, W)
        except ValueError as exc:
            raise BagError(f"bag {self.path} at {stamp_ns} ns: {exc}") from exc
        odom: OdometryData = slot[("", "odom")]
        cloud: CloudData | None = slot.get(("", "occupancy"))
        if cloud is None:
            occupancy = np.full(grid.dims, UNKNOWN, dtype=np.uint8)  # (nx, ny, nz)
        else:
            try:
                occupancy = occupancy_from_points(cloud.points, grid)  # (nx, ny, nz)
            except ValueError as exc:
                raise BagError(f"bag {self.path} {TOPIC_OCCUPANCY_GT} at {stamp_ns} ns: "
                               f"{exc}") from exc
        return Frame(stamp_ns=stamp_ns, index=index, camera_names=list(names), images=rgb,
                     depth=depth, K=np.stack([i.camera.K for i in infos]),
                     T_base_cam=np.stack([extrinsics[im.frame_id] for im in images]),
                     frame_ids=[im.frame_id for im in images], T_odom_base=odom.T_odom_base,
                     occupancy=occupancy, grid=grid)
