"""Write synthetic frames as a rosbag2 (MCAP or sqlite3) on the contract's topics.

One bag holds, for every frame, with the frame's stamp as header stamp and record time:
`/cameras/<name>/camera_info` (plumb_bob, D = 0), `/cameras/<name>/image_raw` (rgb8),
`/cameras/<name>/depth_gt` (32FC1 metres, NaN = unknown), `/odom` (odom -> base_link with
a finite-difference twist), `/tf` (odom -> base_link) and, optionally, the ground-truth
occupancy `/ground_truth/occupancy` (PointCloud2 in base_link, see bag/messages.py).
`/tf_static` (base_link -> every camera's optical frame) is written once, offered
transient-local so that `ros2 bag play` latches it. Camera topics are offered with the
sensor-data QoS. The bag's metadata (custom_data) records the grid and camera names so
that bag/reader.py can rebuild frames without extra arguments.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer

from depth_any_view.bag.messages import (
    BASE_FRAME,
    CAMERA_INFO,
    CUSTOM_CAMERAS,
    CUSTOM_FRAMES,
    CUSTOM_GRID,
    IMAGE,
    ODOM_FRAME,
    ODOMETRY,
    POINT_CLOUD2,
    QOS_DEFAULT,
    QOS_SENSOR_DATA,
    QOS_TF,
    QOS_TF_STATIC,
    TF_MESSAGE,
    TOPIC_OCCUPANCY_GT,
    TOPIC_ODOM,
    TOPIC_TF,
    TOPIC_TF_STATIC,
    camera_info_msg,
    camera_topic,
    default_typestore,
    image_msg,
    occupancy_points,
    odometry_msg,
    point_cloud_msg,
    tf_message,
    transform_stamped_msg,
)
from depth_any_view.data.frame import Frame
from depth_any_view.geometry.camera import PinholeCamera
from depth_any_view.geometry.transforms import rotmat_to_quat

STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}


def rotation_vector(R: np.ndarray) -> np.ndarray:
    """Axis * angle (3,) in radians of a rotation matrix (3, 3), exact near 0 and pi."""
    q = rotmat_to_quat(R)  # (x, y, z, w), w >= 0
    s = float(np.linalg.norm(q[:3]))
    if s < 1e-12:
        return 2.0 * q[:3]
    return q[:3] / s * (2.0 * np.arctan2(s, q[3]))


def finite_difference_twist(before: Frame, now: Frame, after: Frame) -> tuple[np.ndarray,
                                                                               np.ndarray]:
    """Velocity of base_link at `now` from the poses of `before` and `after`.

    A central difference over (before, after); pass `now` as `before` or `after` at the
    ends of a sequence for a one-sided difference. Returns (linear m/s, angular rad/s),
    both (3,) in base_link at `now` (nav_msgs/Odometry's twist frame), zeros when the
    two stamps coincide.
    """
    dt = (after.stamp_ns - before.stamp_ns) * 1e-9  # seconds
    if dt <= 0.0:
        return np.zeros(3), np.zeros(3)
    R_now_t = now.T_odom_base[:3, :3].T
    v_odom = (after.T_odom_base[:3, 3] - before.T_odom_base[:3, 3]) / dt  # (3,) in odom
    R_rel = before.T_odom_base[:3, :3].T @ after.T_odom_base[:3, :3]  # in base_link(before)
    w_before = rotation_vector(R_rel) / dt  # (3,) rad/s in base_link at `before`
    w_now = R_now_t @ before.T_odom_base[:3, :3] @ w_before
    return R_now_t @ v_odom, w_now


class _FrameChecker:
    """Checks that a frame fits the bag's first frame (cameras, extrinsics, grid, stamps)."""

    def __init__(self, first: Frame, names: list[str], include_occupancy: bool) -> None:
        self.names = names
        self.views = [first.camera_names.index(n) for n in names]
        self.frame_ids = [first.frame_ids[v] for v in self.views]
        self.T_base_cam = first.T_base_cam[self.views]  # (V, 4, 4)
        self.grid = first.grid
        self.include_occupancy = include_occupancy
        self.last_stamp: int | None = None

    def views_of(self, frame: Frame) -> list[int]:
        """Indices of the bag's cameras in `frame`, or ValueError naming what differs."""
        missing = [n for n in self.names if n not in frame.camera_names]
        if missing:
            raise ValueError(f"frame {frame.index} has no camera(s) {missing}; it has "
                             f"{frame.camera_names}")
        views = [frame.camera_names.index(n) for n in self.names]
        if [frame.frame_ids[v] for v in views] != self.frame_ids:
            raise ValueError(f"frame {frame.index} changes the cameras' frame_ids; a bag's "
                             f"/tf_static holds one set: {self.frame_ids}")
        if not np.allclose(frame.T_base_cam[views], self.T_base_cam, atol=1e-9):
            raise ValueError(f"frame {frame.index} changes the camera extrinsics T_base_cam; "
                             f"a bag's /tf_static holds one set, write a bag per rig")
        if self.include_occupancy and frame.grid != self.grid:
            raise ValueError(f"frame {frame.index} has occupancy grid {frame.grid.to_dict()} "
                             f"but the first frame has {self.grid.to_dict()}; use one grid")
        if self.last_stamp is not None and frame.stamp_ns <= self.last_stamp:
            raise ValueError(f"frame {frame.index} has stamp {frame.stamp_ns} ns, not after "
                             f"the previous frame's {self.last_stamp} ns; stamps must increase")
        self.last_stamp = frame.stamp_ns
        return views


def _resolve_names(first: Frame, camera_names: Sequence[str] | None) -> list[str]:
    """The cameras to write: `camera_names` in its order, or all of the first frame's."""
    if camera_names is None:
        return list(first.camera_names)
    names = [str(n) for n in camera_names]
    unknown = [n for n in names if n not in first.camera_names]
    if not names or unknown or len(set(names)) != len(names):
        raise ValueError(f"camera_names {names} must be distinct names of the frame's cameras "
                         f"{first.camera_names}")
    return names


def write_bag(path: Path | str, frames: Iterable[Frame], *, storage: str = "mcap",
              include_occupancy: bool = True,
              camera_names: Sequence[str] | None = None) -> int:
    """Write frames as a new rosbag2 directory and return how many frames it holds.

    Args:
        path: the bag directory to create; it must not exist (rosbag2 never overwrites).
        frames: frames in increasing stamp order, all with the same cameras, extrinsics and
            grid (a generator is consumed one frame ahead, never held in memory whole).
        storage: 'mcap' or 'sqlite3'.
        include_occupancy: also write the ground-truth occupancy cloud.
        camera_names: cameras to write, in this order; None = all of the frames' cameras.

    Returns:
        The number of frames written. On any error the partial bag is removed.

    Raises:
        FileExistsError: `path` exists.
        ValueError: bad `storage`, `camera_names`, no frames or inconsistent frames.
    """
    path = Path(path)
    plugin = STORAGES.get(str(storage).lower())
    if plugin is None:
        raise ValueError(f"bag storage '{storage}' is not supported; use 'mcap' or 'sqlite3'")
    if path.exists():
        raise FileExistsError(f"bag path {path} exists already; rosbag2 bags are never "
                              f"overwritten: choose a new path or delete it")
    it = iter(frames)
    first = next(it, None)
    if first is None:
        raise ValueError(f"write_bag got no frames for {path}; nothing to write")
    names = _resolve_names(first, camera_names)
    checker = _FrameChecker(first, names, include_occupancy)
    ts = default_typestore()
    writer = Writer(path, version=9, storage_plugin=plugin)
    count = 0
    try:
        with writer:
            conns = _add_connections(writer, ts, names, include_occupancy)
            stamp0 = first.stamp_ns
            static = [transform_stamped_msg(ts, stamp0, BASE_FRAME, fid, T)
                      for fid, T in zip(checker.frame_ids, checker.T_base_cam)]
            _write(writer, conns[TOPIC_TF_STATIC], ts, stamp0, tf_message(ts, static))
            prev, cur = None, first
            while cur is not None:
                views = checker.views_of(cur)
                nxt = next(it, None)
                linear, angular = finite_difference_twist(prev if prev is not None else cur,
                                                          cur, nxt if nxt is not None else cur)
                _write_frame(writer, conns, ts, cur, names, views, linear, angular,
                             include_occupancy)
                count += 1
                prev, cur = cur, nxt
            writer.set_custom_data(CUSTOM_GRID, json.dumps(first.grid.to_dict()))
            writer.set_custom_data(CUSTOM_CAMERAS, json.dumps(names))
            writer.set_custom_data(CUSTOM_FRAMES, str(count))
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise
    return count


def _add_connections(writer: Writer, ts: Any, names: list[str],
                     include_occupancy: bool) -> dict[str, Any]:
    """Register every topic of the bag with its type and offered QoS; topic -> connection."""
    topics: list[tuple[str, str, Any]] = [(TOPIC_TF_STATIC, TF_MESSAGE, QOS_TF_STATIC),
                                          (TOPIC_TF, TF_MESSAGE, QOS_TF),
                                          (TOPIC_ODOM, ODOMETRY, QOS_DEFAULT)]
    for name in names:
        topics += [(camera_topic(name, "camera_info"), CAMERA_INFO, QOS_SENSOR_DATA),
                   (camera_topic(name, "image_raw"), IMAGE, QOS_SENSOR_DATA),
                   (camera_topic(name, "depth_gt"), IMAGE, QOS_SENSOR_DATA)]
    if include_occupancy:
        topics.append((TOPIC_OCCUPANCY_GT, POINT_CLOUD2, QOS_DEFAULT))
    return {topic: writer.add_connection(topic, msgtype, typestore=ts,
                                         offered_qos_profiles=[qos])
            for topic, msgtype, qos in topics}


def _write(writer: Writer, conn: Any, ts: Any, stamp_ns: int, msg: Any) -> None:
    """Serialise `msg` (CDR) and record it at `stamp_ns`."""
    writer.write(conn, stamp_ns, ts.serialize_cdr(msg, conn.msgtype))


def _write_frame(writer: Writer, conns: dict[str, Any], ts: Any, frame: Frame,
                 names: list[str], views: list[int], linear: np.ndarray, angular: np.ndarray,
                 include_occupancy: bool) -> None:
    """Record every message of one frame, all stamped and recorded at frame.stamp_ns."""
    stamp = frame.stamp_ns
    tf = transform_stamped_msg(ts, stamp, ODOM_FRAME, BASE_FRAME, frame.T_odom_base)
    _write(writer, conns[TOPIC_TF], ts, stamp, tf_message(ts, [tf]))
    _write(writer, conns[TOPIC_ODOM], ts, stamp,
           odometry_msg(ts, stamp, frame.T_odom_base, linear, angular))
    for name, v in zip(names, views):
        fid = frame.frame_ids[v]
        cam = PinholeCamera(width=frame.width, height=frame.height, K=frame.K[v],
                            distortion_model="plumb_bob")
        _write(writer, conns[camera_topic(name, "camera_info")], ts, stamp,
               camera_info_msg(ts, stamp, fid, cam))
        _write(writer, conns[camera_topic(name, "image_raw")], ts, stamp,
               image_msg(ts, stamp, fid, frame.images[v], "rgb8"))  # (H, W, 3)
        _write(writer, conns[camera_topic(name, "depth_gt")], ts, stamp,
               image_msg(ts, stamp, fid, frame.depth[v], "32FC1"))  # (H, W) metres
    if include_occupancy:
        points = occupancy_points(frame.grid, frame.occupancy)  # (N,) known voxel centres
        _write(writer, conns[TOPIC_OCCUPANCY_GT], ts, stamp,
               point_cloud_msg(ts, stamp, BASE_FRAME, points))
