"""Topic names, QoS profiles and numpy <-> rosbags message conversion for rosbag2 files.

Builders (`*_msg`) make rosbags message objects of the ROS 2 Kilted typestore from numpy;
parsers (`*_from_msg`) turn deserialised messages back into numpy. Parsers only read
attributes, so they accept rclpy messages as well. Conventions are the package's
(docs/ARCHITECTURE.md): stamps are int64 nanoseconds, transforms 4x4 float64 named
`T_parent_child`, quaternions (x, y, z, w), depth metres along z with NaN = unknown.
Ground-truth occupancy travels as a PointCloud2 of known voxel centres (fields x y z
float32 and `label` uint8: 0 free, 1 occupied; unknown voxels are omitted).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
from rosbags.interfaces import (
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)
from rosbags.typesys import Stores, get_typestore
from rosbags.typesys.store import Typestore

from depth_any_view import topics
from depth_any_view.data.encodings import (
    array_to_image_fields,
    depth_to_metres,
    image_to_array,
    to_rgb8,
)
from depth_any_view.data.point_fields import (
    field_specs,
    is_dense,
    points_from_bytes,
    specs_to_dtype,
)
from depth_any_view.geometry.camera import PinholeCamera
from depth_any_view.geometry.grid import FREE, OCCUPIED, UNKNOWN, VoxelGrid
from depth_any_view.geometry.transforms import make_transform, quat_to_rotmat, rotmat_to_quat

# ------------------------------------------------------------------ names (README "Interface")
BASE_FRAME = "base_link"
ODOM_FRAME = "odom"
TOPIC_ODOM = topics.ODOM
TOPIC_TF = topics.TF
TOPIC_TF_STATIC = topics.TF_STATIC
TOPIC_OCCUPANCY_GT = topics.OCCUPANCY_GT
CAMERA_KINDS = (topics.IMAGE, topics.CAMERA_INFO, topics.DEPTH_GT)  # per camera, GT bags
CUSTOM_GRID = "depth_any_view.grid"  # bag custom_data key: VoxelGrid.to_dict() as JSON
CUSTOM_CAMERAS = "depth_any_view.camera_names"  # bag custom_data key: JSON list, rig order
CUSTOM_FRAMES = "depth_any_view.frames"  # bag custom_data key: number of frames written

IMAGE = "sensor_msgs/msg/Image"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
POINT_CLOUD2 = "sensor_msgs/msg/PointCloud2"
ODOMETRY = "nav_msgs/msg/Odometry"
TF_MESSAGE = "tf2_msgs/msg/TFMessage"


class BagError(RuntimeError):
    """A bag cannot be read or has not the expected content; one line saying what and why."""


def camera_topic(name: str, kind: str) -> str:
    """`/cameras/<name>/<kind>`, e.g. camera_topic('front', 'image_raw')."""
    return topics.camera_topic(name, kind)


@functools.cache
def default_typestore() -> Typestore:
    """The ROS 2 Kilted typestore (the newest ROS 2 store if this rosbags lacks Kilted)."""
    store = getattr(Stores, "ROS2_KILTED", None)
    if store is None:  # enum members are in release order; take the last ROS 2 one
        store = [s for s in Stores if s.name.startswith("ROS2_")][-1]
    return get_typestore(store)


# ------------------------------------------------------------------ QoS (offered profiles)
_UNSPECIFIED = QosTime(0, 0)  # RMW_DURATION_UNSPECIFIED: the middleware default (infinite)


def _qos(depth: int, reliability: QosReliability, durability: QosDurability) -> Qos:
    """A KEEP_LAST profile with default deadline, lifespan and automatic liveliness."""
    return Qos(QosHistory.KEEP_LAST, depth, reliability, durability, _UNSPECIFIED,
               _UNSPECIFIED, QosLiveliness.AUTOMATIC, _UNSPECIFIED, False)


QOS_SENSOR_DATA = _qos(5, QosReliability.BEST_EFFORT, QosDurability.VOLATILE)  # rclpy sensor
QOS_DEFAULT = _qos(10, QosReliability.RELIABLE, QosDurability.VOLATILE)  # rclpy default
QOS_TF = _qos(100, QosReliability.RELIABLE, QosDurability.VOLATILE)  # tf2 broadcaster
# tf2 StaticTransformBroadcaster: `ros2 bag play` re-offers transient-local, i.e. latches.
QOS_TF_STATIC = _qos(1, QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL)


# ------------------------------------------------------------------ stamps and headers
def stamp_to_ns(stamp: Any) -> int:
    """Integer nanoseconds of a builtin_interfaces/Time."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def header_msg(ts: Typestore, stamp_ns: int, frame_id: str) -> Any:
    """std_msgs/Header with the stamp `stamp_ns` (int nanoseconds) and `frame_id`."""
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    stamp = ts.types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec)
    return ts.types["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)


# ------------------------------------------------------------------ transforms
def transform_msg(ts: Typestore, T: np.ndarray) -> Any:
    """geometry_msgs/Transform of a 4x4 transform (metres, quaternion x y z w)."""
    T = np.asarray(T, dtype=np.float64)
    x, y, z = (float(v) for v in T[:3, 3])
    qx, qy, qz, qw = (float(v) for v in rotmat_to_quat(T[:3, :3]))
    return ts.types["geometry_msgs/msg/Transform"](
        translation=ts.types["geometry_msgs/msg/Vector3"](x=x, y=y, z=z),
        rotation=ts.types["geometry_msgs/msg/Quaternion"](x=qx, y=qy, z=qz, w=qw))


def pose_msg(ts: Typestore, T: np.ndarray) -> Any:
    """geometry_msgs/Pose of a 4x4 transform (the child frame's pose in the parent)."""
    tf = transform_msg(ts, T)
    t = tf.translation
    return ts.types["geometry_msgs/msg/Pose"](
        position=ts.types["geometry_msgs/msg/Point"](x=t.x, y=t.y, z=t.z),
        orientation=tf.rotation)


def _quat(q: Any) -> np.ndarray:
    """(4,) x y z w of a geometry_msgs/Quaternion."""
    return np.array([q.x, q.y, q.z, q.w], dtype=np.float64)


def transform_from_msg(msg: Any) -> np.ndarray:
    """4x4 float64 transform of a geometry_msgs/Transform."""
    t = msg.translation
    return make_transform(quat_to_rotmat(_quat(msg.rotation)), [t.x, t.y, t.z])


def pose_from_msg(msg: Any) -> np.ndarray:
    """4x4 float64 transform of a geometry_msgs/Pose."""
    p = msg.position
    return make_transform(quat_to_rotmat(_quat(msg.orientation)), [p.x, p.y, p.z])


def transform_stamped_msg(ts: Typestore, stamp_ns: int, parent: str, child: str,
                          T_parent_child: np.ndarray) -> Any:
    """geometry_msgs/TransformStamped: `child`'s pose in `parent` at `stamp_ns`."""
    return ts.types["geometry_msgs/msg/TransformStamped"](
        header=header_msg(ts, stamp_ns, parent), child_frame_id=child,
        transform=transform_msg(ts, T_parent_child))


def tf_message(ts: Typestore, transforms: list[Any]) -> Any:
    """tf2_msgs/TFMessage holding TransformStamped messages."""
    return ts.types[TF_MESSAGE](transforms=list(transforms))


@dataclass(frozen=True)
class TransformData:
    """One transform of a TFMessage: p_parent = T_parent_child @ p_child."""

    stamp_ns: int  # int64 nanoseconds
    parent: str  # header.frame_id
    child: str  # child_frame_id
    T_parent_child: np.ndarray  # (4, 4) float64


def transforms_from_msg(msg: Any) -> list[TransformData]:
    """The transforms of a tf2_msgs/TFMessage."""
    return [TransformData(stamp_to_ns(t.header.stamp), t.header.frame_id, t.child_frame_id,
                          transform_from_msg(t.transform)) for t in msg.transforms]


# ------------------------------------------------------------------ images
def image_msg(ts: Typestore, stamp_ns: int, frame_id: str, array: np.ndarray,
              encoding: str) -> Any:
    """sensor_msgs/Image of `array` in `encoding` (layout of cv_bridge's cv2_to_imgmsg)."""
    fields = array_to_image_fields(array, encoding)
    data = np.frombuffer(fields.pop("data"), dtype=np.uint8)  # (step * height,)
    return ts.types[IMAGE](header=header_msg(ts, stamp_ns, frame_id), data=data, **fields)


@dataclass(frozen=True)
class ImageData:
    """A decoded sensor_msgs/Image: header and pixels in the message's encoding."""

    stamp_ns: int  # int64 nanoseconds
    frame_id: str  # optical frame
    encoding: str  # e.g. rgb8, 32FC1
    array: np.ndarray  # (H, W) or (H, W, C), the encoding's dtype; may be read-only

    def rgb(self) -> np.ndarray:
        """(H, W, 3) uint8 RGB."""
        return to_rgb8(self.array, self.encoding)

    def depth_metres(self) -> np.ndarray:
        """(H, W) float32 metres along z, NaN = unknown (16UC1 or 32FC1 images)."""
        return depth_to_metres(self.array, self.encoding)


def image_from_msg(msg: Any) -> ImageData:
    """Decode a sensor_msgs/Image (ImageEncodingError names a bad field)."""
    arr = image_to_array(msg.encoding, msg.height, msg.width, msg.step, msg.data,
                         msg.is_bigendian)
    return ImageData(stamp_to_ns(msg.header.stamp), msg.header.frame_id, msg.encoding, arr)


# ------------------------------------------------------------------ camera info
def camera_info_msg(ts: Typestore, stamp_ns: int, frame_id: str, camera: PinholeCamera) -> Any:
    """sensor_msgs/CameraInfo of `camera` (plumb_bob with zero D when distortion-free)."""
    f = camera.camera_info_fields()
    roi = ts.types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0,
                                                        width=0, do_rectify=False)
    return ts.types[CAMERA_INFO](
        header=header_msg(ts, stamp_ns, frame_id), height=f["height"], width=f["width"],
        distortion_model=f["distortion_model"], d=np.asarray(f["d"], dtype=np.float64),
        k=np.asarray(f["k"], dtype=np.float64), r=np.asarray(f["r"], dtype=np.float64),
        p=np.asarray(f["p"], dtype=np.float64), binning_x=0, binning_y=0, roi=roi)


@dataclass(frozen=True)
class CameraInfoData:
    """A decoded sensor_msgs/CameraInfo."""

    stamp_ns: int  # int64 nanoseconds
    frame_id: str  # optical frame
    camera: PinholeCamera  # size, K, D, R, P


def camera_info_from_msg(msg: Any) -> CameraInfoData:
    """Decode a sensor_msgs/CameraInfo (CalibrationError names a bad field)."""
    cam = PinholeCamera.from_camera_info(msg.width, msg.height, msg.distortion_model, msg.d,
                                         msg.k, msg.r, msg.p)
    return CameraInfoData(stamp_to_ns(msg.header.stamp), msg.header.frame_id, cam)


# ------------------------------------------------------------------ odometry
def odometry_msg(ts: Typestore, stamp_ns: int, T_odom_base: np.ndarray, linear: np.ndarray,
                 angular: np.ndarray, *, frame_id: str = ODOM_FRAME,
                 child_frame_id: str = BASE_FRAME) -> Any:
    """nav_msgs/Odometry: the pose of `child_frame_id` in `frame_id` and its twist.

    Args:
        ts: typestore.
        stamp_ns: header stamp, int nanoseconds.
        T_odom_base: (4, 4) pose of the child frame in the odometry frame.
        linear: (3,) linear velocity in the child frame, metres/second.
        angular: (3,) angular velocity in the child frame, radians/second.
        frame_id: odometry frame.
        child_frame_id: moving frame.
    """
    vec = ts.types["geometry_msgs/msg/Vector3"]
    lx, ly, lz = (float(v) for v in np.asarray(linear).reshape(3))
    ax, ay, az = (float(v) for v in np.asarray(angular).reshape(3))
    twist = ts.types["geometry_msgs/msg/Twist"](linear=vec(x=lx, y=ly, z=lz),
                                                angular=vec(x=ax, y=ay, z=az))
    zeros = np.zeros(36, dtype=np.float64)  # ground truth: no uncertainty given
    return ts.types[ODOMETRY](
        header=header_msg(ts, stamp_ns, frame_id), child_frame_id=child_frame_id,
        pose=ts.types["geometry_msgs/msg/PoseWithCovariance"](pose=pose_msg(ts, T_odom_base),
                                                              covariance=zeros),
        twist=ts.types["geometry_msgs/msg/TwistWithCovariance"](twist=twist,
                                                                covariance=zeros.copy()))


@dataclass(frozen=True)
class OdometryData:
    """A decoded nav_msgs/Odometry."""

    stamp_ns: int  # int64 nanoseconds
    frame_id: str  # odometry frame (odom)
    child_frame_id: str  # moving frame (base_link)
    T_odom_base: np.ndarray  # (4, 4) float64 pose of the child frame in frame_id
    linear: np.ndarray  # (3,) metres/second in the child frame
    angular: np.ndarray  # (3,) radians/second in the child frame


def odometry_from_msg(msg: Any) -> OdometryData:
    """Decode a nav_msgs/Odometry."""
    tw = msg.twist.twist
    return OdometryData(stamp_to_ns(msg.header.stamp), msg.header.frame_id,
                        msg.child_frame_id, pose_from_msg(msg.pose.pose),
                        np.array([tw.linear.x, tw.linear.y, tw.linear.z]),
                        np.array([tw.angular.x, tw.angular.y, tw.angular.z]))


# ------------------------------------------------------------------ point clouds
# Occupancy ground truth: 13 bytes of fields padded to 16 so the floats stay aligned.
OCCUPANCY_DTYPE = np.dtype({"names": ["x", "y", "z", "label"],
                            "formats": [np.float32, np.float32, np.float32, np.uint8],
                            "offsets": [0, 4, 8, 12], "itemsize": 16})


def point_cloud_msg(ts: Typestore, stamp_ns: int, frame_id: str, points: np.ndarray) -> Any:
    """An unorganised (height 1) sensor_msgs/PointCloud2 of a structured array (N,).

    Each named field of `points` becomes a PointField (count 1, or the sub-array length)
    at its byte offset; point_step is the dtype's itemsize; `is_dense` is true when no
    floating-point field holds NaN or inf (`data/point_fields.py`, byte-compatible with
    sensor_msgs_py.point_cloud2.create_cloud).
    """
    points = np.ascontiguousarray(points)
    if points.ndim != 1:
        raise ValueError(f"point_cloud_msg needs a 1-D structured array, got {points.dtype} "
                         f"with shape {points.shape}")
    specs, big = field_specs(points.dtype)
    field_t = ts.types["sensor_msgs/msg/PointField"]
    fields = [field_t(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count)
              for f in specs]
    data = points.view(np.uint8).reshape(-1)  # (N * point_step,)
    return ts.types[POINT_CLOUD2](
        header=header_msg(ts, stamp_ns, frame_id), height=1, width=int(points.shape[0]),
        fields=fields, is_bigendian=big, point_step=points.dtype.itemsize,
        row_step=points.dtype.itemsize * int(points.shape[0]), data=data,
        is_dense=is_dense(points))


@dataclass(frozen=True)
class CloudData:
    """A decoded sensor_msgs/PointCloud2 as a structured array of its fields."""

    stamp_ns: int  # int64 nanoseconds
    frame_id: str  # frame of the points
    points: np.ndarray  # (height * width,) structured, one named field per PointField


def cloud_from_msg(msg: Any) -> CloudData:
    """Decode a sensor_msgs/PointCloud2 into a structured array (rows of an organised cloud
    are concatenated; row padding beyond width * point_step is skipped)."""
    dtype = specs_to_dtype(list(msg.fields), int(msg.point_step), bool(msg.is_bigendian))
    points = points_from_bytes(msg.data, msg.height, msg.width, msg.point_step, msg.row_step,
                               dtype)  # (height * width,)
    return CloudData(stamp_to_ns(msg.header.stamp), msg.header.frame_id, points)


# ------------------------------------------------------------------ occupancy ground truth
def occupancy_points(grid: VoxelGrid, labels: np.ndarray) -> np.ndarray:
    """Structured (N,) OCCUPANCY_DTYPE of every known (FREE or OCCUPIED) voxel centre."""
    labels = np.asarray(labels)
    if labels.shape != tuple(grid.dims):
        raise ValueError(f"occupancy labels have shape {labels.shape} but the grid's dims are "
                         f"{tuple(grid.dims)}")
    known = (labels == FREE) | (labels == OCCUPIED)  # (nx, ny, nz)
    centres = grid.centers(np.float32)[known]  # (N, 3)
    # zeros, not empty: the record's 3 padding bytes go into the bag (same data, same bytes)
    out = np.zeros(centres.shape[0], dtype=OCCUPANCY_DTYPE)
    out["x"], out["y"], out["z"] = centres[:, 0], centres[:, 1], centres[:, 2]
    out["label"] = labels[known]
    return out


def occupancy_from_points(points: np.ndarray, grid: VoxelGrid) -> np.ndarray:
    """Dense (nx, ny, nz) uint8 labels from a cloud of voxel centres with a `label` field.

    Voxels without a point are UNKNOWN. Raises ValueError when a point is not at a voxel
    centre of `grid` (the cloud was written for another grid).
    """
    names = points.dtype.names or ()
    missing = [n for n in ("x", "y", "z", "label") if n not in names]
    if missing:
        raise ValueError(f"occupancy cloud lacks the field(s) {missing}; it has {list(names)}")
    xyz = np.stack([points["x"], points["y"], points["z"]], axis=1).astype(np.float64)  # (N, 3)
    idx, inside = grid.points_to_index(xyz)
    centres = np.asarray(grid.lower) + (idx + 0.5) * grid.voxel_size  # (N, 3)
    tol = 1e-3 * float(np.min(grid.voxel_size)) + 1e-5
    off_centre = ~inside | np.any(np.abs(centres - xyz) > tol, axis=1)
    if np.any(off_centre):
        bad = int(np.count_nonzero(off_centre))
        raise ValueError(f"{bad} of {len(xyz)} occupancy points are not voxel centres of the "
                         f"grid {grid.to_dict()}; pass the grid the bag was written with")
    labels = np.full(grid.dims, UNKNOWN, dtype=np.uint8)  # (nx, ny, nz)
    labels[idx[:, 0], idx[:, 1], idx[:, 2]] = points["label"].astype(np.uint8)
    return labels


# ------------------------------------------------------------------ dispatch by type
DECODERS = {
    IMAGE: image_from_msg,
    CAMERA_INFO: camera_info_from_msg,
    ODOMETRY: odometry_from_msg,
    TF_MESSAGE: transforms_from_msg,
    POINT_CLOUD2: cloud_from_msg,
}


def decode(msgtype: str, msg: Any) -> Any:
    """Numpy form of a deserialised message: ImageData, CameraInfoData, OdometryData,
    list[TransformData] or CloudData. BagError for a type without a decoder."""
    decoder = DECODERS.get(msgtype)
    if decoder is None:
        raise BagError(f"no numpy decoder for message type {msgtype}; decodable types: "
                       f"{', '.join(DECODERS)}")
    return decoder(msg)
