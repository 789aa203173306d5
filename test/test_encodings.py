"""Tests of data/encodings.py: Image bytes <-> numpy, colour and depth conversion, errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from depth_any_view.data.encodings import (
    ENCODINGS,
    ImageEncodingError,
    array_to_image_fields,
    depth_to_metres,
    image_to_array,
    to_rgb8,
)


def random_image(encoding: str, h: int, w: int, seed: int = 0) -> np.ndarray:
    """A random (H, W[, C]) array of the encoding's dtype (floats finite)."""
    rng = np.random.default_rng(seed)
    info = ENCODINGS[encoding]
    shape = (h, w) if info.channels == 1 else (h, w, info.channels)
    if info.dtype.kind == "f":
        return rng.uniform(-100.0, 100.0, shape).astype(info.dtype)
    return rng.integers(0, np.iinfo(info.dtype).max, shape, endpoint=True, dtype=info.dtype)


def padded_bytes(arr: np.ndarray, pad: int, big_endian: bool, seed: int = 1) -> tuple[bytes,
                                                                                      int]:
    """Message data of `arr` with `pad` garbage bytes after every row; returns (data, step)."""
    dt = arr.dtype.newbyteorder(">" if big_endian else "<")
    rows = np.ascontiguousarray(arr.astype(dt)).reshape(arr.shape[0], -1).view(np.uint8)
    garbage = np.random.default_rng(seed).integers(0, 256, (arr.shape[0], pad), dtype=np.uint8)
    data = np.concatenate([rows, garbage], axis=1)  # (H, step)
    return data.tobytes(), data.shape[1]


@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_roundtrip_every_encoding(encoding: str) -> None:
    arr = random_image(encoding, 5, 7)
    fields = array_to_image_fields(arr, encoding)
    assert fields["encoding"] == encoding and fields["height"] == 5 and fields["width"] == 7
    back = image_to_array(**fields)
    assert back.dtype == ENCODINGS[encoding].dtype and back.shape == arr.shape
    assert np.array_equal(back, arr)


def test_fields_match_cv_bridge_layout() -> None:
    """cv2_to_imgmsg: C-order bytes, step = len(data) // height, is_bigendian from dtype."""
    depth = np.arange(12, dtype=np.float32).reshape(3, 4)
    f = array_to_image_fields(depth, "32FC1")
    assert f["data"] == depth.tobytes() and f["step"] == 16 and f["is_bigendian"] == 0
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)[:, ::-1]  # non-contiguous
    f = array_to_image_fields(rgb, "rgb8")
    assert f["data"] == np.ascontiguousarray(rgb).tobytes() and f["step"] == 9
    big = np.array([[1, 258]], dtype=">u2")
    f = array_to_image_fields(big, "mono16")
    assert f["is_bigendian"] == 1 and f["data"] == b"\x00\x01\x01\x02"


def test_step_padding_is_skipped_without_copy() -> None:
    arr = random_image("rgb8", 4, 3)
    data, step = padded_bytes(arr, pad=5, big_endian=False)
    assert step == 3 * 3 + 5
    buf = np.frombuffer(data, dtype=np.uint8)
    out = image_to_array("rgb8", 4, 3, step, buf)
    assert np.array_equal(out, arr)
    assert np.shares_memory(out, buf)  # zero-copy view onto the message buffer
    out32 = image_to_array("32FC1", 2, 2, 11, padded_bytes(
        np.array([[1.5, -2.0], [np.nan, 4.0]], np.float32), 3, False)[0])
    assert np.array_equal(out32, [[1.5, -2.0], [np.nan, 4.0]], equal_nan=True)


def test_mono16_big_endian() -> None:
    values = np.array([[0, 1, 256], [4660, 65535, 258]], dtype=np.uint16)
    data, step = padded_bytes(values, pad=2, big_endian=True)
    assert data[:2] == b"\x00\x00" and data[2:4] == b"\x00\x01"  # big-endian on the wire
    out = image_to_array("mono16", 2, 3, step, data, is_bigendian=1)
    assert out.dtype == np.uint16 and out.dtype.isnative
    assert np.array_equal(out, values)
    wrong = image_to_array("mono16", 2, 3, step, data, is_bigendian=0)
    assert wrong[0, 1] == 256  # the flag matters


def test_accepts_array_array_and_memoryview() -> None:
    import array

    arr = random_image("mono8", 3, 4)
    assert np.array_equal(image_to_array("mono8", 3, 4, 4, array.array("B", arr.tobytes())),
                          arr)
    assert np.array_equal(image_to_array("8UC1", 3, 4, 4, memoryview(arr.tobytes())), arr)


def test_to_rgb8_conversions() -> None:
    rgb = random_image("rgb8", 3, 4)
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    assert np.array_equal(to_rgb8(bgr, "bgr8"), rgb)
    alpha = np.full((3, 4, 1), 7, np.uint8)
    assert np.array_equal(to_rgb8(np.concatenate([bgr, alpha], axis=2), "bgra8"), rgb)
    assert np.array_equal(to_rgb8(np.concatenate([rgb, alpha], axis=2), "rgba8"), rgb)
    assert to_rgb8(rgb, "rgb8") is rgb
    mono = rgb[..., 0]
    out = to_rgb8(mono, "mono8")
    assert out.shape == (3, 4, 3) and np.all(out == mono[..., None])
    m16 = np.array([[0, 257, 65535, 32896]], np.uint16)
    assert to_rgb8(m16, "mono16")[0, :, 0].tolist() == [0, 1, 255, 128]
    with pytest.raises(ImageEncodingError, match="32FC1"):
        to_rgb8(np.zeros((2, 2), np.float32), "32FC1")


def test_depth_to_metres() -> None:
    mm = np.array([[0, 1000, 65535]], np.uint16)
    m = depth_to_metres(mm, "16UC1")
    assert m.dtype == np.float32
    assert np.isnan(m[0, 0]) and m[0, 1] == pytest.approx(1.0) and m[0, 2] == pytest.approx(65.535)
    f = np.array([[0.0, 2.5, np.inf, -1.0, np.nan]], np.float32)
    out = depth_to_metres(f, "32FC1")
    assert out[0, 1] == np.float32(2.5) and np.isnan(out[0, [0, 2, 3, 4]]).all()
    assert f[0, 0] == 0.0  # input untouched
    with pytest.raises(ImageEncodingError, match="16UC1 or 32FC1"):
        depth_to_metres(np.zeros((2, 2), np.uint8), "mono8")


@pytest.mark.parametrize(("kwargs", "field"), [
    (dict(encoding="yuv422"), "'encoding'"),
    (dict(encoding=None), "'encoding'"),
    (dict(step=8), "'step'"),  # rgb8 width 3 needs 9
    (dict(step=-1), "'step'"),
    (dict(data=bytes(9 * 4 - 1)), "'data'"),
    (dict(data=bytes(9 * 4 + 9)), "'data'"),
    (dict(height=0, data=b""), "'height'"),
    (dict(width=0, step=0, data=b""), "'width'"),
    (dict(max_bytes=35), "above the limit of 35 bytes: its 'height' or 'step' field is "
                         "corrupt"),
])
def test_image_to_array_errors(kwargs: dict, field: str) -> None:
    args = dict(encoding="rgb8", height=4, width=3, step=9, data=bytes(36), is_bigendian=0)
    args.update(kwargs)
    with pytest.raises(ImageEncodingError, match=field):
        image_to_array(**args)


def test_image_encoding_error_is_value_error_listing_supported() -> None:
    with pytest.raises(ValueError, match="rgb8, bgr8"):
        image_to_array("bayer_rggb8", 2, 2, 2, bytes(4))


@pytest.mark.parametrize(("array", "encoding", "match"), [
    (np.zeros((2, 2, 3), np.float32), "rgb8", "dtype uint8"),
    (np.zeros((2, 2), np.uint8), "rgb8", r"\(H, W, 3\)"),
    (np.zeros((2, 2, 3), np.uint8), "mono8", r"\(H, W\)"),
    (np.zeros((2, 2), np.int16), "16UC1", "dtype uint16"),
    (np.zeros((0, 2), np.uint8), "mono8", "'height'"),
    (np.zeros((2, 2), np.uint8), "rgb9", "'encoding'"),
])
def test_array_to_image_fields_errors(array: np.ndarray, encoding: str, match: str) -> None:
    with pytest.raises(ImageEncodingError, match=match):
        array_to_image_fields(array, encoding)


def test_array_to_image_fields_size_limit() -> None:
    with pytest.raises(ImageEncodingError, match="above the limit of 63 bytes"):
        array_to_image_fields(np.zeros((4, 4), np.float32), "32FC1", max_bytes=63)


@settings(max_examples=60, deadline=None)
@given(encoding=st.sampled_from(sorted(ENCODINGS)), h=st.integers(1, 6), w=st.integers(1, 6),
       pad=st.integers(0, 7), big=st.booleans(), seed=st.integers(0, 2**16))
def test_roundtrip_with_padding_and_byte_order(encoding: str, h: int, w: int, pad: int,
                                               big: bool, seed: int) -> None:
    arr = random_image(encoding, h, w, seed)
    data, step = padded_bytes(arr, pad, big, seed + 1)
    out = image_to_array(encoding, h, w, step, data, is_bigendian=int(big))
    assert out.shape == arr.shape and out.dtype == arr.dtype
    assert np.ascontiguousarray(out).tobytes() == arr.tobytes()
    fields = array_to_image_fields(out, encoding)
    assert fields["step"] == step - pad and fields["data"] == arr.tobytes()
    assert np.array_equal(image_to_array(**fields), arr)
