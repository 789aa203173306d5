"""Property-based tests (hypothesis) of the node's message conversions (ros/conversions.py).

Random sizes, encodings, steps, byte orders, data lengths, stamps, calibrations, poses and
point-cloud layouts give either the exact result, checked against an independent reference
written here (row by row, point by point), or the documented error type whose message
names a field that really is wrong: never another exception and never a silently wrong
array. The messages are built without ROS's field checks (they are off by default), just
as a buggy driver's message arrives over DDS.
"""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from nav_msgs.msg import Odometry
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField

from depth_any_view.data.encodings import ENCODINGS, MAX_IMAGE_BYTES
from depth_any_view.geometry.transforms import quat_to_rotmat
from depth_any_view.pipeline import QUATERNION_TOLERANCE
from depth_any_view.ros import conversions as C

pytestmark = pytest.mark.ros  # rclpy message classes
SETTINGS = dict(max_examples=120, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
UNKNOWN_ENCODINGS = ["yuv422", "RGB8", "", "bayer_rggb8", "16SC1", "64FC1"]
MIN_STAMP_NS = -(2**31) * 10**9  # builtin_interfaces/Time: int32 sec, nanosec < 1e9
MAX_STAMP_NS = (2**31 - 1) * 10**9 + 999_999_999


def _named(exc: BaseException, fields: set[str]) -> bool:
    """True when the error message names (quoted) at least one of `fields`."""
    text = str(exc)
    return any(f"'{f}'" in text for f in fields)


# ---------------------------------------------------------------------------- images
def _reference_decode(encoding: str, h: int, w: int, step: int, data: bytes,
                      big: bool) -> np.ndarray:
    """Pixels row by row with struct-free numpy reads of each row's used bytes."""
    info = ENCODINGS[encoding]
    dtype = info.dtype.newbyteorder(">" if big else "<")
    row_bytes = w * info.channels * info.dtype.itemsize
    rows = [np.frombuffer(data[r * step: r * step + row_bytes], dtype=dtype)
            .astype(info.dtype).reshape(w, info.channels) for r in range(h)]
    arr = np.stack(rows) if rows else np.zeros((0, w, info.channels), info.dtype)
    return arr[..., 0] if info.channels == 1 else arr


@st.composite
def image_messages(draw):
    """An Image whose fields are each right or wrong (and the wrong ones, by name)."""
    known = list(ENCODINGS)
    encoding = draw(st.sampled_from(known + UNKNOWN_ENCODINGS))
    enormous = draw(st.integers(0, 9)) == 0
    if enormous:  # a corrupt header: far more pixels than any camera has
        h, w = draw(st.integers(20_000, 2**31)), draw(st.integers(20_000, 2**31))
    else:
        h, w = draw(st.integers(0, 7)), draw(st.integers(0, 7))
    info = ENCODINGS.get(encoding)
    row_bytes = w * (info.channels * info.dtype.itemsize if info else 3)
    step = draw(st.one_of(st.just(row_bytes), st.integers(row_bytes, row_bytes + 5),
                          st.integers(max(0, row_bytes - 3), row_bytes), st.integers(0, 64)))
    size = step * h
    if size <= 4096:
        length = draw(st.one_of(st.just(size), st.integers(max(0, size - 3), size + 3)))
    else:
        length = draw(st.integers(0, 64))
    data = draw(st.binary(min_size=length, max_size=length))
    big = draw(st.booleans())
    msg = Image(height=h, width=w, encoding=encoding, is_bigendian=int(big), step=step)
    msg.data = data
    wrong: set[str] = set()
    if info is None:
        wrong.add("encoding")
    if h <= 0:
        wrong.add("height")
    if w <= 0:
        wrong.add("width")
    if step * h > MAX_IMAGE_BYTES:
        wrong.update({"height", "step"})
    if info is not None and step < row_bytes:
        wrong.add("step")
    if len(data) != step * h:
        wrong.add("data")
    return msg, wrong


@settings(**SETTINGS)
@given(case=image_messages(), restrict=st.booleans())
def test_image_is_decoded_exactly_or_refused_naming_a_wrong_field(case, restrict: bool) -> None:
    msg, wrong = case
    allowed = C.INPUT_ENCODINGS if restrict else None
    if restrict and msg.encoding not in C.INPUT_ENCODINGS:
        wrong = wrong | {"encoding"}
    if wrong:
        with pytest.raises(C.ImageEncodingError) as info:
            C.image_msg_to_array(msg, allowed=allowed)
        assert _named(info.value, wrong), (str(info.value), wrong)
        return
    arr = C.image_msg_to_array(msg, allowed=allowed)
    ref = _reference_decode(msg.encoding, msg.height, msg.width, msg.step, bytes(msg.data),
                            bool(msg.is_bigendian))
    assert arr.dtype == ref.dtype and arr.dtype.isnative
    np.testing.assert_array_equal(arr, ref)
    if msg.encoding in C.INPUT_ENCODINGS:
        rgb = C.image_msg_to_rgb(msg)
        assert rgb.shape == (msg.height, msg.width, 3) and rgb.dtype == np.uint8
        order = {"rgb8": [0, 1, 2], "rgba8": [0, 1, 2], "bgr8": [2, 1, 0], "bgra8": [2, 1, 0]}
        if msg.encoding in order:
            np.testing.assert_array_equal(rgb, ref[..., order[msg.encoding]])
        elif msg.encoding == "mono8":
            assert all(np.array_equal(rgb[..., c], ref) for c in range(3))


@st.composite
def image_arrays(draw):
    """An array of an encoding's dtype and channels in either byte order."""
    encoding = draw(st.sampled_from(list(ENCODINGS)))
    info = ENCODINGS[encoding]
    h, w = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    shape = (h, w) if info.channels == 1 else (h, w, info.channels)
    n = int(np.prod(shape))
    raw = draw(st.binary(min_size=n * info.dtype.itemsize, max_size=n * info.dtype.itemsize))
    order = draw(st.sampled_from(["<", ">"])) if info.dtype.itemsize > 1 else "|"
    arr = np.frombuffer(raw, dtype=info.dtype.newbyteorder(order)).reshape(shape)
    return encoding, arr


@settings(**SETTINGS)
@given(case=image_arrays())
def test_image_message_roundtrip_keeps_every_value(case) -> None:
    encoding, arr = case
    msg = C.array_to_image_msg(arr, encoding, C.make_header(1, "cam"))
    assert msg.step * msg.height == len(msg.data)
    assert msg.step == arr.shape[1] * arr.dtype.itemsize * (arr.shape[2] if arr.ndim == 3 else 1)
    back = C.image_msg_to_array(msg, allowed=None)
    assert back.dtype.isnative and back.shape == arr.shape
    if arr.dtype.kind == "f":  # compare bits: NaN payloads survive too
        np.testing.assert_array_equal(back.view(np.uint32), arr.astype(back.dtype).view(np.uint32))
    else:
        np.testing.assert_array_equal(back, arr)


@settings(**SETTINGS)
@given(values=st.lists(st.floats(width=32, allow_nan=True, allow_infinity=True), min_size=1,
                       max_size=30), w=st.integers(1, 6))
def test_depth_image_keeps_valid_metres_and_marks_the_rest_nan(values, w: int) -> None:
    h = max(1, len(values) // w)
    depth = np.resize(np.asarray(values, np.float32), (h, w))
    back = C.image_msg_to_depth(C.depth_to_image_msg(depth, C.make_header(3, "cam")))
    valid = np.isfinite(depth) & (depth > 0)
    np.testing.assert_array_equal(np.isnan(back), ~valid)
    np.testing.assert_array_equal(back[valid], depth[valid])


# ---------------------------------------------------------------------------- stamps
@settings(**SETTINGS)
@given(ns=st.one_of(st.integers(MIN_STAMP_NS, MAX_STAMP_NS), st.integers(-(2**70), 2**70)))
def test_stamp_roundtrip_is_exact_or_refused(ns: int) -> None:
    if MIN_STAMP_NS <= ns <= MAX_STAMP_NS:
        stamp = C.ns_to_stamp(ns)
        assert 0 <= stamp.nanosec < 10**9
        assert C.stamp_to_ns(stamp) == ns
        assert C.stamp_to_ns(C.make_header(ns, "f").stamp) == ns
    else:  # a builtin_interfaces/Time cannot hold it: no silent int32 wrap-around
        with pytest.raises(ValueError, match="stamp"):
            C.ns_to_stamp(ns)


# ---------------------------------------------------------------------------- CameraInfo
finite = st.floats(-1e4, 1e4, allow_nan=False)
odd = st.sampled_from([float("nan"), float("inf"), -float("inf"), 0.0, -1.0])
MODELS = {"plumb_bob": (5,), "rational_polynomial": (8, 14), "equidistant": (4,),
          "none": (0,), "": (0,)}


@st.composite
def camera_infos(draw):
    """A CameraInfo with each field right or wrong, and the names of the wrong ones."""
    wrong: set[str] = set()
    width, height = draw(st.integers(0, 4000)), draw(st.integers(0, 3000))
    if width == 0 or height == 0:
        wrong.update({"width", "height"})
    fx, fy = draw(st.floats(0.1, 5000)), draw(st.floats(0.1, 5000))
    cx = draw(st.one_of(st.floats(0, width), finite))  # mostly in the image
    cy = draw(st.one_of(st.floats(0, height), finite))
    k = [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]
    k_fault = draw(st.sampled_from([None, None, "value", "focal", "last_row", "zero"]))
    if k_fault == "value":
        k[draw(st.integers(0, 8))] = draw(odd)
    elif k_fault == "focal":
        k[draw(st.sampled_from([0, 4]))] = draw(st.sampled_from([0.0, -2.0, float("nan")]))
    elif k_fault == "last_row":
        k[8] = draw(st.sampled_from([0.0, 2.0]))
    elif k_fault == "zero":
        k = [0.0] * 9
    kk = np.asarray(k).reshape(3, 3)
    if (not np.all(np.isfinite(kk)) or kk[0, 0] <= 0 or kk[1, 1] <= 0
            or not np.allclose(kk[2], [0, 0, 1])
            or not (0 <= kk[0, 2] <= width and 0 <= kk[1, 2] <= height)):  # cx, cy in the
        wrong.add("k")  # image (issue 24)
    model = draw(st.sampled_from(list(MODELS) + ["fisheye62", "PLUMB_BOB"]))
    n_d = draw(st.one_of(st.sampled_from([0, 4, 5, 8, 14]), st.integers(0, 16)))
    d = draw(st.lists(st.floats(-1, 1), min_size=n_d, max_size=n_d))
    if d and draw(st.integers(0, 5)) == 0:
        d[draw(st.integers(0, len(d) - 1))] = draw(odd.filter(math.isnan))
    if model not in MODELS:
        wrong.add("distortion_model")
    else:
        lengths = MODELS[model]
        empty_ok = model in ("plumb_bob", "rational_polynomial")
        if not (len(d) in lengths or (empty_ok and not d)) or not np.all(np.isfinite(d)):
            wrong.add("d")
    r = draw(st.sampled_from(["eye", "zeros", "nan"]))
    r_vals = {"eye": np.eye(3).ravel().tolist(), "zeros": [0.0] * 9,
              "nan": [float("nan")] + [0.0] * 8}[r]
    if r == "nan":
        wrong.add("r")
    p = draw(st.sampled_from(["k", "zeros", "inf"]))
    p_vals = {"k": [fx, 0, k[2], 0, 0, fy, k[5], 0, 0, 0, 1, 0], "zeros": [0.0] * 12,
              "inf": [float("inf")] + [0.0] * 11}[p]
    if p == "inf":
        wrong.add("p")
    msg = CameraInfo(width=width, height=height, distortion_model=model)
    msg.d = [float(v) for v in d]
    msg.k = np.asarray(k, np.float64)
    msg.r = np.asarray(r_vals, np.float64)
    msg.p = np.asarray(p_vals, np.float64)
    return msg, wrong


@settings(**SETTINGS)
@given(case=camera_infos())
def test_camera_info_gives_its_camera_or_names_a_wrong_field(case) -> None:
    msg, wrong = case
    if wrong:
        with pytest.raises(C.CalibrationError) as info:
            C.camera_info_to_camera(msg)
        assert _named(info.value, wrong), (str(info.value), wrong)
        return
    cam = C.camera_info_to_camera(msg)
    assert (cam.width, cam.height) == (msg.width, msg.height)
    np.testing.assert_array_equal(cam.K, np.asarray(msg.k).reshape(3, 3))
    if len(msg.d):
        np.testing.assert_array_equal(cam.D, np.asarray(msg.d))
    else:
        assert not np.any(cam.D)
    back = C.camera_info_to_camera(C.camera_to_camera_info(cam, C.make_header(0, "c")))
    np.testing.assert_array_equal(back.K, cam.K)
    if cam.D.size:
        np.testing.assert_array_equal(back.D, cam.D)
    else:  # a camera without distortion is written as plumb_bob with zero coefficients
        assert not np.any(back.D)
    assert (back.width, back.height) == (cam.width, cam.height)


# ---------------------------------------------------------------------------- odometry
any_float = st.one_of(st.floats(-1e6, 1e6), st.sampled_from([float("nan"), float("inf"),
                                                             -float("inf"), 1e300]))


@pytest.mark.filterwarnings("error::RuntimeWarning")
@settings(**SETTINGS)
@given(p=st.tuples(any_float, any_float, any_float),
       q=st.one_of(st.tuples(any_float, any_float, any_float, any_float),
                   st.tuples(st.floats(-1, 1), st.floats(-1, 1), st.floats(-1, 1),
                             st.floats(-1, 1))),
       normalise=st.booleans())
def test_odometry_gives_a_rigid_pose_or_names_the_field(p, q, normalise: bool) -> None:
    q = np.asarray(q, np.float64)
    if normalise and np.all(np.isfinite(q)) and np.all(np.abs(q) < 1e100):
        if np.linalg.norm(q) > 1e-6:
            q = q / np.linalg.norm(q)
    msg = Odometry()
    pos, ori = msg.pose.pose.position, msg.pose.pose.orientation
    pos.x, pos.y, pos.z = (float(v) for v in p)
    ori.x, ori.y, ori.z, ori.w = (float(v) for v in q)
    wrong = set()
    if not np.all(np.isfinite(p)):
        wrong.add("pose.pose.position")
    with np.errstate(over="ignore", invalid="ignore"):
        norm = float(np.linalg.norm(q))
    if not np.all(np.isfinite(q)) or not abs(norm - 1.0) <= QUATERNION_TOLERANCE:
        wrong.add("pose.pose.orientation")  # closer to unit length: normalised (issue 24)
    if wrong:
        with pytest.raises(ValueError) as info:
            C.odometry_to_transform(msg)
        assert _named(info.value, wrong), (str(info.value), wrong)
        return
    T = C.odometry_to_transform(msg)
    assert T.shape == (4, 4) and np.all(np.isfinite(T))
    np.testing.assert_array_equal(T[:3, 3], np.asarray(p, np.float64))
    np.testing.assert_allclose(T[:3, :3], quat_to_rotmat(q / norm), atol=1e-9)
    np.testing.assert_allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-9)
    np.testing.assert_array_equal(T[3], [0, 0, 0, 1])


# ---------------------------------------------------------------------------- point clouds
@settings(**SETTINGS)
@given(n=st.integers(0, 40), seed=st.integers(0, 2**31), nan_every=st.integers(0, 7))
def test_coloured_cloud_roundtrip(n: int, seed: int, nan_every: int) -> None:
    rng = np.random.default_rng(seed)
    pts = rng.normal(0, 10, (n, 3)).astype(np.float32)
    if nan_every and n:
        pts[::nan_every, 1] = np.nan
    rgb = rng.integers(0, 256, (n, 3), dtype=np.uint8)
    msg = C.xyzrgb_cloud(pts, rgb, C.make_header(5, "base_link"))
    assert msg.width == n and msg.row_step == msg.point_step * n == len(msg.data)
    assert msg.is_dense == bool(np.all(np.isfinite(pts)))
    back_pts, back_rgb = C.xyzrgb_from_cloud(msg)
    np.testing.assert_array_equal(back_pts, pts)
    np.testing.assert_array_equal(back_rgb, rgb)


_SCALARS = {PointField.INT8: "b", PointField.UINT8: "B", PointField.INT16: "h",
            PointField.UINT16: "H", PointField.INT32: "i", PointField.UINT32: "I",
            PointField.FLOAT32: "f", PointField.FLOAT64: "d"}


@st.composite
def point_clouds(draw):
    """A PointCloud2 with random fields, steps and data length (possibly inconsistent)."""
    n_fields = draw(st.integers(1, 3))
    fields, offset = [], 0
    for i in range(n_fields):
        datatype = draw(st.sampled_from(list(_SCALARS) + [0, 9]))
        offset = draw(st.integers(0, offset + 8))
        fields.append(PointField(name=f"f{i}", offset=offset, datatype=datatype, count=1))
    h, w = draw(st.integers(0, 3)), draw(st.integers(0, 4))
    point_step = draw(st.integers(0, 24))
    row_step = draw(st.one_of(st.just(point_step * w), st.integers(0, 100)))
    size = row_step * h
    length = draw(st.one_of(st.just(size), st.integers(0, size + 8)))
    msg = PointCloud2(height=h, width=w, fields=fields, is_bigendian=draw(st.booleans()),
                      point_step=point_step, row_step=row_step, is_dense=False)
    msg.data = draw(st.binary(min_size=length, max_size=length))
    return msg


def _overlap(fields) -> bool:
    """True when two fields share bytes."""
    spans = sorted((f.offset, f.offset + struct.calcsize(_SCALARS[f.datatype])) for f in fields)
    return any(b0 < a1 for (_, a1), (b0, _) in zip(spans, spans[1:]))


@settings(**SETTINGS)
@given(msg=point_clouds())
def test_any_point_cloud_is_read_exactly_or_refused(msg) -> None:
    order = ">" if msg.is_bigendian else "<"
    fields = list(msg.fields)
    ok = (all(f.datatype in _SCALARS for f in fields)
          and all(f.offset + struct.calcsize(_SCALARS[f.datatype]) <= msg.point_step
                  for f in fields)
          and len({f.name for f in fields}) == len(fields) and not _overlap(fields)
          and msg.row_step >= msg.point_step * msg.width
          and len(msg.data) >= msg.row_step * msg.height)
    if not ok:
        try:
            arr = C.cloud_to_structured(msg)
        except ValueError:
            return
        # numpy may accept overlapping fields; the values must then still be right
        assume(all(f.datatype in _SCALARS for f in fields))
    else:
        arr = C.cloud_to_structured(msg)
    assert arr.shape == (msg.height * msg.width,)
    data = bytes(msg.data)
    for r in range(msg.height):
        for c in range(msg.width):
            base = r * msg.row_step + c * msg.point_step
            for f in fields:
                fmt = order + _SCALARS[f.datatype]
                (want,) = struct.unpack_from(fmt, data, base + f.offset)
                got = arr[f.name][r * msg.width + c]
                assert (got == want) or (math.isnan(want) and math.isnan(got)), f.name


@settings(**SETTINGS)
@given(n=st.integers(0, 30), seed=st.integers(0, 2**31))
def test_voxel_cloud_roundtrip(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-20, 20, (n, 3)).astype(np.float32)
    prob = rng.uniform(0, 1, n).astype(np.float32)
    arr = C.cloud_to_structured(C.voxel_cloud(centres, prob, C.make_header(0, "odom")))
    np.testing.assert_array_equal(np.stack([arr["x"], arr["y"], arr["z"]], axis=1), centres)
    np.testing.assert_array_equal(arr["probability"], prob)
