"""sensor_msgs/PointCloud2 layouts <-> numpy structured arrays, without a message type.

The node (rclpy messages, `ros/conversions.py`) and the bag layer (rosbags messages,
`bag/messages.py`) both pack and read point clouds through these functions, so the two
agree byte for byte with `sensor_msgs_py.point_cloud2` (`create_cloud`, `read_points`):

    specs, big = field_specs(points.dtype)          # one FieldSpec per named dtype field
    dense = is_dense(points)                         # the PointCloud2 `is_dense` rule
    dtype = specs_to_dtype(msg.fields, msg.point_step, msg.is_bigendian)
    points = points_from_bytes(msg.data, msg.height, msg.width, msg.point_step,
                               msg.row_step, dtype)  # (height * width,), row padding skipped

A field is (name, byte offset, datatype code 1..8, count); a field with count > 1 is a
numpy sub-array. `is_dense` is true exactly when no floating-point field holds NaN or inf.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

# sensor_msgs/PointField datatype codes and their numpy types (sensor_msgs_py _DATATYPES).
INT8, UINT8, INT16, UINT16, INT32, UINT32, FLOAT32, FLOAT64 = range(1, 9)
POINT_FIELD_TYPES: dict[int, np.dtype] = {
    INT8: np.dtype(np.int8), UINT8: np.dtype(np.uint8), INT16: np.dtype(np.int16),
    UINT16: np.dtype(np.uint16), INT32: np.dtype(np.int32), UINT32: np.dtype(np.uint32),
    FLOAT32: np.dtype(np.float32), FLOAT64: np.dtype(np.float64),
}
POINT_FIELD_CODES: dict[np.dtype, int] = {dt: code for code, dt in POINT_FIELD_TYPES.items()}


@dataclass(frozen=True)
class FieldSpec:
    """One sensor_msgs/PointField: what a message's `fields` entry holds."""

    name: str
    offset: int  # bytes from the start of the point
    datatype: int  # POINT_FIELD_TYPES code
    count: int  # values (1 = a scalar)


def _is_big(dtype: np.dtype) -> bool:
    """True when a scalar dtype stores big-endian values."""
    return dtype.byteorder == ">" or (dtype.byteorder == "=" and sys.byteorder == "big")


def field_specs(dtype: np.dtype) -> tuple[list[FieldSpec], bool]:
    """The PointFields of a structured dtype and whether they are big-endian.

    Raises ValueError naming a field PointField cannot describe, a dtype without named
    fields, or fields of mixed byte order.
    """
    specs, orders = [], set()
    for name in dtype.names or ():
        sub, offset = dtype.fields[name][:2]
        base, count = (sub.base, int(np.prod(sub.shape))) if sub.shape else (sub, 1)
        code = POINT_FIELD_CODES.get(base.newbyteorder("="))
        if code is None:
            raise ValueError(f"point field '{name}' has dtype {sub}, which PointField cannot "
                             f"describe; use one of {sorted(str(d) for d in POINT_FIELD_CODES)}")
        if base.itemsize > 1:
            orders.add(_is_big(base))
        specs.append(FieldSpec(name, int(offset), code, count))
    if not specs:
        raise ValueError(f"points must be a structured array with named fields, got {dtype}")
    if len(orders) > 1:
        raise ValueError("point fields mix byte orders; use one byte order for all fields")
    return specs, bool(orders and orders.pop())


def is_dense(points: np.ndarray) -> bool:
    """PointCloud2 `is_dense`: True exactly when no floating-point field holds NaN or inf."""
    for name in points.dtype.names or ():
        column = points[name]
        if column.dtype.kind == "f" and not bool(np.all(np.isfinite(column))):
            return False
    return True


def specs_to_dtype(fields: list[Any], point_step: int, is_bigendian: bool = False) -> np.dtype:
    """Structured dtype of PointFields (anything with name, offset, datatype, count) laid
    out in `point_step` bytes (padding kept). Raises ValueError on an unknown datatype."""
    order = ">" if is_bigendian else "<"
    names, formats, offsets = [], [], []
    for f in fields:
        if f.datatype not in POINT_FIELD_TYPES:
            raise ValueError(f"PointCloud2 field '{f.name}' has unknown datatype {f.datatype}; "
                             "valid codes are 1..8 (sensor_msgs/PointField)")
        base = POINT_FIELD_TYPES[f.datatype].newbyteorder(order)
        names.append(f.name)
        formats.append(base if f.count <= 1 else np.dtype((base, (int(f.count),))))
        offsets.append(int(f.offset))
    return np.dtype({"names": names, "formats": formats, "offsets": offsets,
                     "itemsize": int(point_step)})


def _as_bytes(data: Any) -> np.ndarray:
    """A flat uint8 view of a message's `data` (ndarray, bytes or array.array)."""
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    return np.frombuffer(data, dtype=np.uint8)


def points_from_bytes(data: Any, height: int, width: int, point_step: int, row_step: int,
                      dtype: np.dtype) -> np.ndarray:
    """(height * width,) structured array of a PointCloud2's `data`, rows concatenated
    (row padding beyond width * point_step skipped); a view of `data` unless rows are
    padded.

    Raises ValueError when `row_step` is below width * point_step or `data` is truncated.
    """
    buf = _as_bytes(data)  # (nbytes,) uint8
    h, w, step = int(height), int(width), int(point_step)
    row_step = int(row_step) if h > 0 else 0
    if h > 0 and w * step > row_step:
        raise ValueError(f"PointCloud2 'row_step' {row_step} is smaller than width * "
                         f"point_step = {w * step}")
    if buf.size < row_step * h:
        raise ValueError(f"PointCloud2 'data' holds {buf.size} bytes but height * row_step = "
                         f"{row_step * h}; the message is truncated")
    rows = np.ndarray((h, w), dtype=dtype, buffer=buf, strides=(row_step, step))  # (H, W)
    return rows.reshape(-1)
