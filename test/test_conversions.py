"""Message <-> numpy conversions of the node: byte layouts of cv_bridge and
sensor_msgs_py.point_cloud2 (re-implemented here as references, since neither installs),
CameraInfo, Odometry validation, OccupancyGrid and MarkerArray builders."""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nav_msgs.msg import Odometry
from sensor_msgs.msg import CameraInfo, Image, PointField

from depth_any_view.geometry.camera import PinholeCamera
from depth_any_view.geometry.transforms import make_transform, quat_to_rotmat
from depth_any_view.mapping.fusion import OccupancyGrid2D
from depth_any_view.ros import conversions as C

CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "mono16": 1}


def _random_image(encoding: str, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    dtype = np.uint16 if encoding == "mono16" else np.uint8
    shape = (h, w) if CHANNELS[encoding] == 1 else (h, w, CHANNELS[encoding])
    return rng.integers(0, np.iinfo(dtype).max, size=shape, dtype=dtype)


def _reference_create_cloud(header, fields, points: np.ndarray):
    """sensor_msgs_py.point_cloud2.create_cloud for a structured array (its code path):
    height 1, width N, point_step = itemsize, row_step = itemsize * N, raw bytes."""
    import array
    import sys

    from sensor_msgs.msg import PointCloud2

    buf = array.array("B")
    buf.frombytes(memoryview(points).cast("B"))
    msg = PointCloud2(header=header, height=1, width=points.shape[0], is_dense=False,
                      is_bigendian=sys.byteorder != "little", fields=fields,
                      point_step=points.dtype.itemsize,
                      row_step=points.dtype.itemsize * points.shape[0])
    msg.data = buf
    return msg


# ---------------------------------------------------------------------------- time
@pytest.mark.parametrize("ns", [0, 1, 999_999_999, 1_000_000_000, 1_700_000_000_123_456_789])
def test_stamp_roundtrip(ns: int) -> None:
    t = C.ns_to_stamp(ns)
    assert 0 <= t.nanosec < 1_000_000_000
    assert C.stamp_to_ns(t) == ns
    h = C.make_header(ns, "front_camera_optical")
    assert C.stamp_to_ns(h.stamp) == ns and h.frame_id == "front_camera_optical"


# ---------------------------------------------------------------------------- images
@pytest.mark.parametrize("encoding", list(CHANNELS))
def test_image_roundtrip_with_cv_bridge_layout(encoding: str) -> None:
    rng = np.random.default_rng(0)
    arr = _random_image(encoding, 5, 7, rng)
    msg = C.array_to_image_msg(arr, encoding, C.make_header(42, "cam"))
    itemsize = 2 if encoding == "mono16" else 1
    # cv2_to_imgmsg: C-order rows, no padding, step = width * channels * itemsize.
    assert (msg.height, msg.width, msg.encoding) == (5, 7, encoding)
    assert msg.step == 7 * CHANNELS[encoding] * itemsize
    assert msg.is_bigendian == 0
    assert bytes(msg.data) == np.ascontiguousarray(arr).tobytes()
    back = C.image_msg_to_array(msg)
    np.testing.assert_array_equal(back, arr)
    rgb = C.image_msg_to_rgb(msg)
    assert rgb.shape == (5, 7, 3) and rgb.dtype == np.uint8


def test_rgb_conversion_reorders_and_scales() -> None:
    px = np.array([[[10, 20, 30, 40]]], dtype=np.uint8)  # (1, 1, 4)
    hdr = C.make_header(0, "c")
    assert C.image_msg_to_rgb(C.array_to_image_msg(px[..., :3], "bgr8", hdr)).tolist() == \
        [[[30, 20, 10]]]
    assert C.image_msg_to_rgb(C.array_to_image_msg(px, "bgra8", hdr)).tolist() == \
        [[[30, 20, 10]]]
    assert C.image_msg_to_rgb(C.array_to_image_msg(px, "rgba8", hdr)).tolist() == \
        [[[10, 20, 30]]]
    mono16 = np.array([[0, 65535, 257]], dtype=np.uint16)
    rgb = C.image_msg_to_rgb(C.array_to_image_msg(mono16, "mono16", hdr))
    assert rgb[0, :, 0].tolist() == [0, 255, 1]


def test_padded_and_big_endian_images() -> None:
    arr = np.arange(12, dtype=np.uint16).reshape(3, 4)  # (H, W)
    rows = [arr[r].astype(">u2").tobytes() + b"\xff\xff" for r in range(3)]  # 2 pad bytes
    msg = Image(height=3, width=4, encoding="mono16", is_bigendian=1, step=10)
    msg.data = b"".join(rows)
    np.testing.assert_array_equal(C.image_msg_to_array(msg), arr)


@pytest.mark.parametrize("mutate, field", [
    (lambda m: setattr(m, "encoding", "32FC1"), "'encoding'"),
    (lambda m: setattr(m, "encoding", "yuv422"), "'encoding'"),
    (lambda m: setattr(m, "step", 5), "'step'"),
    (lambda m: setattr(m, "data", bytes(10)), "'data'"),
    (lambda m: setattr(m, "height", 0), "'height'"),
])
def test_bad_images_name_the_field(mutate, field: str) -> None:
    msg = C.array_to_image_msg(np.zeros((4, 6, 3), np.uint8), "rgb8", C.make_header(0, "c"))
    mutate(msg)
    with pytest.raises(C.ImageEncodingError, match=field):
        C.image_msg_to_array(msg)


def test_depth_image_is_32fc1_with_nan_invalid() -> None:
    depth = np.array([[1.5, 0.0, -1.0], [np.inf, np.nan, 20.0]], dtype=np.float64)
    msg = C.depth_to_image_msg(depth, C.make_header(7, "front_camera_optical"))
    assert msg.encoding == "32FC1" and msg.step == 3 * 4 and msg.is_bigendian == 0
    back = C.image_msg_to_depth(msg)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(back), [[False, True, True], [True, True, False]])
    assert back[0, 0] == np.float32(1.5) and back[1, 2] == np.float32(20.0)
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        C.depth_to_image_msg(np.zeros((2, 2, 1)), C.make_header(0, "c"))


@settings(max_examples=60, deadline=None)
@given(encoding=st.sampled_from(list(CHANNELS)), h=st.integers(1, 9), w=st.integers(1, 9),
       pad=st.integers(0, 5), short=st.integers(0, 3), seed=st.integers(0, 1000))
def test_image_property_correct_or_clear_error(encoding: str, h: int, w: int, pad: int,
                                               short: int, seed: int) -> None:
    """Random sizes, row padding and truncation: the exact pixels or an error naming a field."""
    arr = _random_image(encoding, h, w, np.random.default_rng(seed))
    row = np.ascontiguousarray(arr).reshape(h, -1).view(np.uint8)  # (H, row bytes)
    data = np.concatenate([row, np.zeros((h, pad), np.uint8)], axis=1).tobytes()
    msg = Image(height=h, width=w, encoding=encoding, is_bigendian=0,
                step=row.shape[1] + pad)
    msg.data = data[: len(data) - short]
    if short:
        with pytest.raises(C.ImageEncodingError, match="'data'"):
            C.image_msg_to_array(msg)
    else:
        np.testing.assert_array_equal(C.image_msg_to_array(msg), arr)


# ---------------------------------------------------------------------------- CameraInfo
def test_camera_info_roundtrip() -> None:
    cam = PinholeCamera.from_camera_info(
        640, 480, "plumb_bob", [0.1, -0.05, 0.001, 0.002, 0.01],
        [500.0, 0.0, 319.5, 0.0, 505.0, 239.5, 0.0, 0.0, 1.0],
        np.eye(3).ravel().tolist(), [500.0, 0, 319.5, 0, 0, 505.0, 239.5, 0, 0, 0, 1, 0])
    msg = C.camera_to_camera_info(cam, C.make_header(5, "front_camera_optical"))
    assert (msg.width, msg.height, msg.distortion_model) == (640, 480, "plumb_bob")
    back = C.camera_info_to_camera(msg)
    np.testing.assert_allclose(back.K, cam.K)
    np.testing.assert_allclose(back.D, cam.D)
    np.testing.assert_allclose(back.P, cam.P)
    plain = C.camera_to_camera_info(PinholeCamera.from_fov(64, 48, math.pi / 2),
                                    C.make_header(0, "c"))
    assert plain.distortion_model == "plumb_bob" and list(plain.d) == [0.0] * 5


@pytest.mark.parametrize("mutate, field", [
    (lambda m: m.k.__setitem__(0, float("nan")), "'k'"),
    (lambda m: m.k.__setitem__(0, 0.0), "'k'"),
    (lambda m: setattr(m, "width", 0), "'width'"),
    (lambda m: setattr(m, "distortion_model", "fisheye62"), "'distortion_model'"),
    (lambda m: setattr(m, "d", [0.1, 0.2]), "'d'"),
])
def test_bad_camera_info_names_the_field(mutate, field: str) -> None:
    msg = C.camera_to_camera_info(PinholeCamera.from_fov(64, 48, math.pi / 2),
                                  C.make_header(0, "c"))
    mutate(msg)
    with pytest.raises(C.CalibrationError, match=field):
        C.camera_info_to_camera(msg)


def test_camera_info_default_message_is_rejected() -> None:
    with pytest.raises(C.CalibrationError):
        C.camera_info_to_camera(CameraInfo())


# ---------------------------------------------------------------------------- odometry
def _odom(p, q) -> Odometry:
    msg = Odometry()
    msg.pose.pose.position.x, msg.pose.pose.position.y, msg.pose.pose.position.z = p
    o = msg.pose.pose.orientation
    o.x, o.y, o.z, o.w = q
    return msg


def test_odometry_to_transform_and_back() -> None:
    q = np.array([0.1, -0.2, 0.3, 0.9])
    q /= np.linalg.norm(q)
    T = C.odometry_to_transform(_odom((1.0, 2.0, 0.5), q))
    np.testing.assert_allclose(T, make_transform(quat_to_rotmat(q), [1.0, 2.0, 0.5]),
                               atol=1e-12)
    np.testing.assert_allclose(C.pose_to_matrix(C.matrix_to_pose(T)), T, atol=1e-12)


@pytest.mark.parametrize("p, q, field", [
    ((float("nan"), 0.0, 0.0), (0.0, 0.0, 0.0, 1.0), "'pose.pose.position'"),
    ((0.0, 0.0, 0.0), (0.0, 0.0, float("inf"), 1.0), "'pose.pose.orientation'"),
    ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 0.5), "not a unit quaternion"),
    ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 0.0), "not a unit quaternion"),
])
def test_bad_odometry_names_the_field(p, q, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        C.odometry_to_transform(_odom(p, q))


# ---------------------------------------------------------------------------- point clouds
def test_xyzrgb_cloud_is_byte_compatible_with_create_cloud() -> None:
    rng = np.random.default_rng(1)
    pts = rng.normal(size=(50, 3)).astype(np.float32)
    rgb = rng.integers(0, 256, size=(50, 3), dtype=np.uint8)
    header = C.make_header(123, "base_link")
    msg = C.xyzrgb_cloud(pts, rgb, header)
    fields = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1)
              for i, n in enumerate("x y z rgb".split())]
    assert list(msg.fields) == fields
    ref = _reference_create_cloud(header, fields, _structured(pts, rgb))
    for attr in ("height", "width", "point_step", "row_step", "is_bigendian", "fields"):
        assert getattr(msg, attr) == getattr(ref, attr), attr
    assert bytes(msg.data) == bytes(ref.data)
    assert msg.is_dense  # no NaN
    # PCL packing: the float's bits are (r << 16) | (g << 8) | b.
    r, g, b = (int(v) for v in rgb[3])
    assert struct.unpack_from("<I", bytes(msg.data), 3 * 16 + 12)[0] == (r << 16) | (g << 8) | b
    back_pts, back_rgb = C.xyzrgb_from_cloud(msg)
    np.testing.assert_array_equal(back_pts, pts)
    np.testing.assert_array_equal(back_rgb, rgb)


def _structured(pts: np.ndarray, rgb: np.ndarray) -> np.ndarray:
    """Reference structured array built field by field with the PCL packing in Python."""
    out = np.zeros(pts.shape[0], dtype=C.XYZRGB_DTYPE)
    out["x"], out["y"], out["z"] = pts.T
    packed = [(int(r) << 16) | (int(g) << 8) | int(b) for r, g, b in rgb]
    out["rgb"] = np.array(packed, dtype=np.uint32).view(np.float32)
    return out


def test_cloud_is_dense_only_without_nan() -> None:
    pts = np.array([[0.0, 1.0, 2.0], [np.nan, 0.0, 0.0]], dtype=np.float32)
    msg = C.xyzrgb_cloud(pts, np.zeros((2, 3), np.uint8), C.make_header(0, "base_link"))
    assert not msg.is_dense
    empty = C.xyzrgb_cloud(np.zeros((0, 3)), np.zeros((0, 3), np.uint8),
                           C.make_header(0, "base_link"))
    assert empty.width == 0 and empty.height == 1 and empty.row_step == 0


def test_voxel_cloud_fields_and_roundtrip() -> None:
    centres = np.array([[0.1, 0.2, 0.3], [1.0, -1.0, 0.5]], dtype=np.float32)
    prob = np.array([0.7, 0.95], dtype=np.float32)
    msg = C.voxel_cloud(centres, prob, C.make_header(9, "odom"))
    assert [f.name for f in msg.fields] == ["x", "y", "z", "probability"]
    assert [f.offset for f in msg.fields] == [0, 4, 8, 12] and msg.point_step == 16
    arr = C.cloud_to_structured(msg)
    np.testing.assert_array_equal(arr["probability"], prob)
    np.testing.assert_array_equal(arr["z"], centres[:, 2])
    with pytest.raises(ValueError, match="same length"):
        C.voxel_cloud(centres, prob[:1], C.make_header(0, "odom"))


def test_cloud_to_structured_reads_padded_organised_clouds() -> None:
    dtype = np.dtype({"names": ["x", "i"], "formats": ["<f4", "<u2"], "offsets": [0, 8],
                      "itemsize": 12})
    arr = np.zeros((2, 3), dtype=dtype)  # (height, width)
    arr["x"] = np.arange(6).reshape(2, 3)
    arr["i"] = np.arange(6).reshape(2, 3) * 10
    msg = C.structured_to_cloud(arr.reshape(-1), C.make_header(0, "base_link"))
    msg.height, msg.width = 2, 3
    rows = [arr[r].tobytes() + b"\0" * 4 for r in range(2)]  # 4 bytes of row padding
    msg.row_step = 3 * 12 + 4
    msg.data = b"".join(rows)
    back = C.cloud_to_structured(msg)
    np.testing.assert_array_equal(back["x"], np.arange(6))
    np.testing.assert_array_equal(back["i"], np.arange(6) * 10)
    assert [f.datatype for f in msg.fields] == [PointField.FLOAT32, PointField.UINT16]


def test_structured_to_cloud_refuses_undescribable_fields() -> None:
    bad = np.zeros(2, dtype=[("x", "<f4"), ("c", "<c8")])
    with pytest.raises(ValueError, match="'c'"):
        C.structured_to_cloud(bad, C.make_header(0, "base_link"))
    with pytest.raises(ValueError, match="structured"):
        C.structured_to_cloud(np.zeros(3, np.float32), C.make_header(0, "base_link"))


# ---------------------------------------------------------------------------- occupancy
def test_occupancy_grid_layout() -> None:
    data = np.full((3, 4), -1, dtype=np.int8)  # (ny, nx)
    data[0, 1], data[2, 3] = 100, 0
    g = OccupancyGrid2D(data, 0.2, np.array([-1.0, -2.0, 0.1]), "odom", 55)
    msg = C.occupancy_grid_msg(g, C.make_header(55, "odom"))
    assert (msg.info.width, msg.info.height) == (4, 3)
    assert msg.info.resolution == pytest.approx(0.2)
    assert (msg.info.origin.position.x, msg.info.origin.position.y) == (-1.0, -2.0)
    assert msg.info.origin.orientation.w == 1.0
    assert list(msg.data)[1] == 100 and list(msg.data)[2 * 4 + 3] == 0  # row-major, y rows
    np.testing.assert_array_equal(C.occupancy_grid_to_array(msg), data)
    assert msg.header.frame_id == "odom" and C.stamp_to_ns(msg.header.stamp) == 55


def test_marker_array_cube_list_coloured_by_height() -> None:
    centres = np.array([[0.0, 0.0, -0.5], [1.0, 0.0, 1.0], [2.0, 0.0, 2.5]])
    ma = C.marker_array_msg(centres, np.array([0.2, 0.2, 0.1]), C.make_header(3, "odom"),
                            z_range=(-0.5, 2.5))
    (m,) = ma.markers
    assert m.type == m.CUBE_LIST and m.action == m.ADD and m.header.frame_id == "odom"
    assert (m.scale.x, m.scale.y, m.scale.z) == (0.2, 0.2, 0.1)
    assert len(m.points) == 3 and len(m.colors) == 3
    assert m.points[2].z == 2.5
    low, high = m.colors[0], m.colors[2]
    assert low.b > low.r and high.r > high.b  # blue at the bottom, red at the top
    empty = C.marker_array_msg(np.zeros((0, 3)), 0.2, C.make_header(3, "odom"), z_range=(0, 1))
    assert empty.markers[0].action == empty.markers[0].DELETE



def _roundtrip(ma: Any) -> Any:
    """A MarkerArray as a subscriber gets it (float32 colours, float64 points)."""
    from rclpy.serialization import deserialize_message, serialize_message
    from visualization_msgs.msg import MarkerArray

    return deserialize_message(serialize_message(ma), MarkerArray)


@pytest.mark.parametrize("n, frame", [(0, "odom"), (1, "odom"), (2, "map"), (5, "o"),
                                      (1000, "base_link")])
def test_marker_array_bytes_deserialize_to_marker_array_msg(n: int, frame: str) -> None:
    """The numpy-spliced CDR is the message marker_array_msg builds, for list lengths and
    frame names that shift the alignment of the points."""
    from rclpy.serialization import deserialize_message
    from visualization_msgs.msg import MarkerArray

    rng = np.random.default_rng(n)
    centres = (rng.random((n, 3)) * 20.0 - 10.0).astype(np.float32)  # (N, 3) metres
    header = C.make_header(1_700_000_000_123_456_789, frame)
    size = np.array([0.4, 0.4, 0.0625])
    data = C.marker_array_bytes(centres, size, header, z_range=(-0.8, 3.2))
    assert isinstance(data, bytes)
    got = deserialize_message(data, MarkerArray)
    want = _roundtrip(C.marker_array_msg(centres, size, header, z_range=(-0.8, 3.2)))
    assert got == want
    (m,) = got.markers
    assert len(m.points) == n and len(m.colors) == n
    if n:
        assert C._FAST_MARKERS is True  # the numpy path was used, not the fallback
        np.testing.assert_array_equal([[p.x, p.y, p.z] for p in m.points[-2:]],
                                      centres[-2:].astype(np.float64))
    else:
        assert m.action == m.DELETE


def test_marker_array_bytes_falls_back_when_the_splice_check_fails(monkeypatch) -> None:
    """Where rclpy's serialization does not match the splice, the bytes are rclpy's own."""
    from rclpy.serialization import deserialize_message
    from visualization_msgs.msg import MarkerArray

    monkeypatch.setattr(C, "_FAST_MARKERS", False)
    centres = np.array([[0.0, 0.0, 0.5], [1.0, 2.0, 3.0]])
    header = C.make_header(7, "odom")
    got = deserialize_message(C.marker_array_bytes(centres, 0.2, header, z_range=(0, 1)),
                              MarkerArray)
    assert got == _roundtrip(C.marker_array_msg(centres, 0.2, header, z_range=(0, 1)))
    monkeypatch.setattr(C, "_FAST_MARKERS", None)  # the check runs again and passes here
    assert C._fast_markers_ok() is True


def test_depth_in_both_slam_encodings_decodes_to_the_same_metres() -> None:
    rng = np.random.default_rng(3)
    depth = rng.uniform(0.3, 60.0, (24, 32)).astype(np.float32)  # metres
    depth[0, :4] = [np.nan, 0.0, -1.0, 70.0]  # no estimate, invalid, beyond 16 bits of mm
    header = C.make_header(7, "front_camera_optical")
    f32 = C.depth_to_image_msg(depth, header, "32FC1")
    u16 = C.depth_to_image_msg(depth, header, "16UC1")
    assert (f32.encoding, u16.encoding) == ("32FC1", "16UC1")
    assert u16.step == 32 * 2 and len(u16.data) == 24 * 32 * 2 and u16.header == header
    # As RTAB-Map / depth_image_proc read them: 16UC1 millimetres (0 = none), 32FC1 metres.
    mm = np.frombuffer(bytes(u16.data), dtype="<u2").reshape(24, 32)
    assert list(mm[0, :4]) == [0, 0, 0, 0]
    metres_u16 = C.image_msg_to_depth(u16)
    metres_f32 = C.image_msg_to_depth(f32)
    both = np.isfinite(metres_u16)
    assert both.sum() == depth.size - 4 and np.isnan(metres_f32[0, :3]).all()
    assert np.abs(metres_u16[both] - metres_f32[both]).max() < 0.001  # rounding: < 1 mm
    with pytest.raises(ValueError, match="32FC1 or 16UC1"):
        C.depth_to_image_msg(depth, header, "16SC1")
