"""sensor_msgs/Image byte layouts <-> numpy arrays, without ROS.

cv_bridge is not installable in this project's venv (README "On a robot"); this module is its
equivalent for the encodings the package meets, written with numpy only so that the bag
layer (rosbags) and the rclpy node share one implementation:

- `image_to_array` reads the fields of an Image message (encoding, height, width, step,
  data, is_bigendian) into an array, honouring row padding (`step`) and byte order, as a
  zero-copy view of `data` whenever the byte order is native;
- `array_to_image_fields` is the inverse with the byte layout of cv_bridge's
  `cv2_to_imgmsg` (C-order rows, no padding, step = len(data) // height, is_bigendian
  from the array's byte order);
- `to_rgb8` and `depth_to_metres` turn arrays into what the network and the metrics take:
  RGB uint8 images and float32 depth in metres along the optical axis, NaN = invalid.

Single-channel arrays are (H, W); multi-channel arrays are (H, W, C).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_IMAGE_BYTES = 1 << 30  # default cap on step * height (1 GiB); guards corrupt headers


class ImageEncodingError(ValueError):
    """An Image's fields cannot be decoded; the message names the field and the fix."""


@dataclass(frozen=True)
class EncodingInfo:
    """The pixel layout of one sensor_msgs/image_encodings name."""

    dtype: np.dtype  # base element type, native byte order
    channels: int  # values per pixel


_U8 = np.dtype(np.uint8)
_U16 = np.dtype(np.uint16)
_F32 = np.dtype(np.float32)

# Encoding names exactly as sensor_msgs/image_encodings.hpp spells them (case-sensitive).
ENCODINGS: dict[str, EncodingInfo] = {
    "rgb8": EncodingInfo(_U8, 3),
    "bgr8": EncodingInfo(_U8, 3),
    "rgba8": EncodingInfo(_U8, 4),
    "bgra8": EncodingInfo(_U8, 4),
    "mono8": EncodingInfo(_U8, 1),
    "mono16": EncodingInfo(_U16, 1),
    "8UC1": EncodingInfo(_U8, 1),
    "8UC3": EncodingInfo(_U8, 3),
    "8UC4": EncodingInfo(_U8, 4),
    "16UC1": EncodingInfo(_U16, 1),
    "32FC1": EncodingInfo(_F32, 1),
}
DEPTH_ENCODINGS = ("16UC1", "32FC1")  # REP 118: millimetres (uint16) or metres (float32)


def encoding_info(encoding: str) -> EncodingInfo:
    """Layout of `encoding`, or ImageEncodingError listing the supported names."""
    info = ENCODINGS.get(encoding) if isinstance(encoding, str) else None
    if info is None:
        raise ImageEncodingError(
            f"Image field 'encoding' is {encoding!r}, which is not supported; use one of "
            f"{', '.join(ENCODINGS)} (convert the image in the driver or with image_proc)")
    return info


def _check_size(height: int, width: int, nbytes: int, max_bytes: int) -> None:
    """Raise ImageEncodingError for a zero-sized image or one larger than `max_bytes`."""
    if height <= 0 or width <= 0:
        raise ImageEncodingError(f"Image fields 'height' and 'width' must be positive, got "
                                 f"{height}x{width} (height x width); the image is empty")
    if nbytes > max_bytes:
        raise ImageEncodingError(
            f"Image of 'height' {height} x 'step' {nbytes // height} bytes is {nbytes} bytes, "
            f"above the limit of {max_bytes} bytes: its 'height' or 'step' field is corrupt")


def image_to_array(encoding: str, height: int, width: int, step: int,
                   data: bytes | bytearray | memoryview | np.ndarray, is_bigendian: int = 0,
                   *, max_bytes: int = MAX_IMAGE_BYTES) -> np.ndarray:
    """The pixels of a sensor_msgs/Image as an array.

    Args:
        encoding: the message's encoding (see ENCODINGS).
        height: rows.
        width: columns.
        step: bytes per row, >= width * channels * bytes per value (padding is skipped).
        data: step * height bytes (bytes, memoryview, array.array or a uint8 ndarray).
        is_bigendian: 1 when multi-byte values are big-endian.
        max_bytes: refuse images whose step * height exceeds this.

    Returns:
        (H, W) for one channel, (H, W, C) otherwise, dtype of the encoding in native byte
        order. A view of `data` when the byte order is native (read-only for bytes input;
        copy before writing), otherwise a byte-swapped copy.
    """
    info = encoding_info(encoding)
    height, width, step = int(height), int(width), int(step)
    if step < 0:
        raise ImageEncodingError(f"Image field 'step' is negative ({step})")
    _check_size(height, width, step * height, max_bytes)
    itemsize = info.dtype.itemsize
    row_bytes = width * info.channels * itemsize
    if step < row_bytes:
        raise ImageEncodingError(
            f"Image field 'step' is {step} bytes but a {encoding} row of width {width} needs "
            f"at least {row_bytes} (width * {info.channels} channels * {itemsize} bytes)")
    if isinstance(data, np.ndarray):
        buf = np.ascontiguousarray(data).reshape(-1).view(np.uint8)  # (nbytes,)
    else:
        buf = np.frombuffer(data, dtype=np.uint8)  # (nbytes,), zero-copy
    if buf.size != step * height:
        raise ImageEncodingError(
            f"Image field 'data' holds {buf.size} bytes but step * height = {step} * {height} "
            f"= {step * height}; the message is truncated or its header is wrong")
    order = ">" if is_bigendian else "<"
    dtype = info.dtype.newbyteorder(order) if itemsize > 1 else info.dtype
    # Strided view straight onto the buffer: row r starts at r * step, padding is skipped.
    arr = np.ndarray(shape=(height, width, info.channels), dtype=dtype, buffer=buf,
                     strides=(step, info.channels * itemsize, itemsize))  # (H, W, C)
    if itemsize > 1 and not dtype.isnative:
        arr = arr.astype(info.dtype)  # byte-swapped copy in native order
    return arr[..., 0] if info.channels == 1 else arr  # (H, W) or (H, W, C)


def _expect(array: np.ndarray, encoding: str) -> EncodingInfo:
    """Check that `array` has the dtype and channel count of `encoding`."""
    info = encoding_info(encoding)
    arr = np.asarray(array)
    channels = 1 if arr.ndim == 2 else (arr.shape[2] if arr.ndim == 3 else -1)
    if channels != info.channels:
        want = "(H, W)" if info.channels == 1 else f"(H, W, {info.channels})"
        raise ImageEncodingError(f"a {encoding} image must be an array of shape {want}, got "
                                 f"{arr.shape}")
    if arr.dtype.kind != info.dtype.kind or arr.dtype.itemsize != info.dtype.itemsize:
        raise ImageEncodingError(f"a {encoding} image must have dtype {info.dtype.name}, got "
                                 f"{arr.dtype}; convert it with astype() first")
    return info


def array_to_image_fields(array: np.ndarray, encoding: str, *,
                          max_bytes: int = MAX_IMAGE_BYTES) -> dict[str, Any]:
    """The fields of a sensor_msgs/Image holding `array`, laid out as cv2_to_imgmsg does.

    Args:
        array: (H, W) or (H, W, C) with the dtype of `encoding` (either byte order).
        encoding: the encoding to label the image with (see ENCODINGS).
        max_bytes: refuse arrays larger than this.

    Returns:
        {'height', 'width', 'encoding', 'is_bigendian', 'step', 'data'} with `data` the
        C-order bytes of the array (no row padding) and step = width * C * itemsize.
    """
    _expect(array, encoding)
    arr = np.asarray(array)
    height, width = int(arr.shape[0]), int(arr.shape[1])
    _check_size(height, width, arr.nbytes, max_bytes)
    order = arr.dtype.byteorder
    big = order == ">" or (order == "=" and sys.byteorder == "big")
    data = np.ascontiguousarray(arr).tobytes()
    return {"height": height, "width": width, "encoding": encoding,
            "is_bigendian": int(big and arr.dtype.itemsize > 1),
            "step": len(data) // height, "data": data}


def to_rgb8(array: np.ndarray, encoding: str) -> np.ndarray:
    """An (H, W, 3) uint8 RGB image from an image array of `encoding`.

    bgr/bgra are reordered, alpha is dropped, mono is replicated to three channels and
    mono16/16UC1 is scaled to 8 bits by 255/65535 (as cv_bridge's cvtColor does). 8UC3 and
    8UC4 carry no channel order and are taken as RGB(A). rgb8 input is returned as is
    (sharing memory); 32FC1 is refused because it is not a colour image.
    """
    info = _expect(array, encoding)
    arr = np.asarray(array)
    if encoding == "32FC1":
        raise ImageEncodingError("a 32FC1 image holds float values (e.g. depth), not colour; "
                                 "use depth_to_metres for depth images")
    if info.channels == 1:
        if info.dtype == _U16:
            # Rounded 255/65535 scaling in integers: (x * 255 + 32767) // 65535.
            arr = ((arr.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
        return np.repeat(arr[..., None], 3, axis=2)  # (H, W, 3)
    if encoding in ("rgb8", "8UC3"):
        return arr
    if encoding in ("rgba8", "8UC4"):
        return np.ascontiguousarray(arr[..., :3])  # (H, W, 3)
    return np.ascontiguousarray(arr[..., 2::-1])  # bgr8 / bgra8 -> (H, W, 3) RGB


def depth_to_metres(array: np.ndarray, encoding: str) -> np.ndarray:
    """(H, W) float32 depth in metres along z with NaN where invalid (a new array).

    16UC1 is millimetres (0 = no reading); 32FC1 is metres, passed through with 0, negative
    and non-finite values (REP 118's +-Inf for out-of-range) made NaN.
    """
    if encoding not in DEPTH_ENCODINGS:
        raise ImageEncodingError(f"depth images must be encoded {' or '.join(DEPTH_ENCODINGS)} "
                                 f"(REP 118), got {encoding!r}")
    _expect(array, encoding)
    arr = np.asarray(array)
    if encoding == "16UC1":
        metres = arr.astype(np.float32) * np.float32(0.001)
        return np.where(arr == 0, np.float32(np.nan), metres)
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(arr) & (arr > 0)
    return np.where(valid, arr, np.float32(np.nan)).astype(np.float32, copy=False)
