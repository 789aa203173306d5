"""Tests of bag/writer.py: tiny bags on tmp_path, checked with rosbags' own reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rosbags.highlevel import AnyReader
from rosbags.interfaces import QosDurability, QosReliability

from depth_any_view.bag.writer import finite_difference_twist, rotation_vector, write_bag
from depth_any_view.data.frame import Frame
from depth_any_view.geometry.grid import UNKNOWN, VoxelGrid
from depth_any_view.geometry.transforms import make_transform, quat_to_rotmat

NAMES = ["front", "front_left", "front_right", "back", "back_left", "back_right"]
T0 = 1_700_000_000_000_000_000  # ns


def yaw(rad: float) -> np.ndarray:
    """Rotation (3, 3) about z by `rad`."""
    return quat_to_rotmat([0.0, 0.0, np.sin(rad / 2), np.cos(rad / 2)])


def make_frames(n: int = 3, views: int = 2, size: int = 32, seed: int = 0,
                poses: list[np.ndarray] | None = None) -> list[Frame]:
    """Frames with random images, depth with NaN holes, and random occupancy on 16^3."""
    rng = np.random.default_rng(seed)
    grid = VoxelGrid.cube(16)
    optical = quat_to_rotmat([-0.5, 0.5, -0.5, 0.5])  # base_link <- optical, looking along x
    T_base_cam = np.stack([make_transform(yaw(2 * np.pi * v / views) @ optical,
                                          [0.2 * v, 0.1, 1.5]) for v in range(views)])
    K = np.stack([[[30.0 + v, 0.0, 15.5], [0.0, 31.0, 15.25], [0.0, 0.0, 1.0]]
                  for v in range(views)])
    frames = []
    for i in range(n):
        depth = rng.uniform(0.5, 30.0, (views, size, size)).astype(np.float32)
        depth[depth > 25.0] = np.nan
        T = poses[i] if poses is not None else make_transform(yaw(0.1 * i), [0.5 * i, 0.2, 0])
        frames.append(Frame(
            stamp_ns=T0 + i * 100_000_000, index=i, camera_names=NAMES[:views],
            images=rng.integers(0, 256, (views, size, size, 3), dtype=np.uint8), depth=depth,
            K=K, T_base_cam=T_base_cam, frame_ids=[f"{n}_camera_optical" for n in NAMES[:views]],
            T_odom_base=T, occupancy=rng.choice(np.array([0, 1, 255], np.uint8), (16, 16, 16)),
            grid=grid))
    return frames


def read_all(path: Path) -> tuple[dict, dict[str, list[tuple[int, object]]]]:
    """(topics info, topic -> [(record ns, message)]) read with rosbags' AnyReader."""
    out: dict[str, list[tuple[int, object]]] = {}
    with AnyReader([path]) as reader:
        topics = dict(reader.topics)
        for conn, ns, raw in reader.messages():
            out.setdefault(conn.topic, []).append((ns, reader.deserialize(raw, conn.msgtype)))
    return topics, out


def stamp(msg: object) -> int:
    """Header stamp of a message in ns."""
    s = msg.header.stamp  # type: ignore[attr-defined]
    return s.sec * 1_000_000_000 + s.nanosec


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_bag_content_matches_frames(tmp_path: Path, storage: str) -> None:
    frames = make_frames(n=3, views=2)
    path = tmp_path / "bag"
    assert write_bag(path, frames, storage=storage) == 3
    suffix = ".mcap" if storage == "mcap" else ".db3"
    assert (path / f"bag{suffix}").is_file() and (path / "metadata.yaml").is_file()
    topics, msgs = read_all(path)
    expected = {"/tf_static": "tf2_msgs/msg/TFMessage", "/tf": "tf2_msgs/msg/TFMessage",
                "/odom": "nav_msgs/msg/Odometry",
                "/ground_truth/occupancy": "sensor_msgs/msg/PointCloud2"}
    for name in NAMES[:2]:
        expected |= {f"/cameras/{name}/image_raw": "sensor_msgs/msg/Image",
                     f"/cameras/{name}/camera_info": "sensor_msgs/msg/CameraInfo",
                     f"/cameras/{name}/depth_gt": "sensor_msgs/msg/Image"}
    assert {t: info.msgtype for t, info in topics.items()} == expected
    assert len(msgs["/tf_static"]) == 1
    for topic, items in msgs.items():
        assert len(items) == (1 if topic == "/tf_static" else 3), topic
        for i, (ns, msg) in enumerate(items):  # record time = header stamp = frame stamp
            assert ns == frames[i].stamp_ns
            if hasattr(msg, "header"):
                assert stamp(msg) == frames[i].stamp_ns

    for v, name in enumerate(NAMES[:2]):
        fid = frames[0].frame_ids[v]
        for i, f in enumerate(frames):
            img = msgs[f"/cameras/{name}/image_raw"][i][1]
            assert (img.encoding, img.height, img.width, img.step) == ("rgb8", 32, 32, 96)
            assert img.header.frame_id == fid and img.is_bigendian == 0
            assert np.array_equal(img.data.reshape(32, 32, 3), f.images[v])
            dep = msgs[f"/cameras/{name}/depth_gt"][i][1]
            assert (dep.encoding, dep.step, dep.header.frame_id) == ("32FC1", 128, fid)
            got = dep.data.view(np.float32).reshape(32, 32)
            assert np.array_equal(got, f.depth[v], equal_nan=True)
            assert np.isnan(got).any()
            info = msgs[f"/cameras/{name}/camera_info"][i][1]
            assert info.header.frame_id == fid and (info.width, info.height) == (32, 32)
            assert info.distortion_model == "plumb_bob" and np.all(info.d == 0)
            assert len(info.d) == 5
            assert np.allclose(info.k.reshape(3, 3), f.K[v])
            assert np.allclose(info.r.reshape(3, 3), np.eye(3))
            assert np.allclose(info.p.reshape(3, 4), np.hstack([f.K[v], np.zeros((3, 1))]))

    static = msgs["/tf_static"][0][1].transforms
    assert [t.child_frame_id for t in static] == frames[0].frame_ids
    for v, t in enumerate(static):
        assert t.header.frame_id == "base_link"
        tr, q = t.transform.translation, t.transform.rotation
        T = make_transform(quat_to_rotmat([q.x, q.y, q.z, q.w]), [tr.x, tr.y, tr.z])
        assert np.allclose(T, frames[0].T_base_cam[v], atol=1e-12)

    for i, f in enumerate(frames):
        odom = msgs["/odom"][i][1]
        assert (odom.header.frame_id, odom.child_frame_id) == ("odom", "base_link")
        p, q = odom.pose.pose.position, odom.pose.pose.orientation
        T = make_transform(quat_to_rotmat([q.x, q.y, q.z, q.w]), [p.x, p.y, p.z])
        assert np.allclose(T, f.T_odom_base, atol=1e-12)
        (tf,) = msgs["/tf"][i][1].transforms
        assert (tf.header.frame_id, tf.child_frame_id) == ("odom", "base_link")
        assert tf.transform.translation.x == pytest.approx(f.T_odom_base[0, 3])

        cloud = msgs["/ground_truth/occupancy"][i][1]
        assert cloud.header.frame_id == "base_link" and cloud.height == 1 and cloud.is_dense
        assert [(fl.name, fl.offset, fl.datatype, fl.count) for fl in cloud.fields] == [
            ("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1), ("label", 12, 2, 1)]
        known = f.occupancy != UNKNOWN
        assert cloud.width == known.sum() and cloud.row_step == cloud.width * cloud.point_step
        rows = cloud.data.reshape(cloud.width, cloud.point_step)
        xyz = rows[:, :12].copy().view(np.float32)  # (N, 3)
        labels = rows[:, 12]
        expect_xyz = f.grid.centers()[known]  # (N, 3) in the same C order
        assert np.allclose(xyz, expect_xyz) and np.array_equal(labels, f.occupancy[known])


def test_qos_metadata(tmp_path: Path) -> None:
    write_bag(tmp_path / "bag", make_frames(n=2, views=2))
    with AnyReader([tmp_path / "bag"]) as reader:
        qos = {c.topic: c.ext.offered_qos_profiles for c in reader.connections}
    (static,) = qos["/tf_static"]
    assert static.durability == QosDurability.TRANSIENT_LOCAL
    assert static.reliability == QosReliability.RELIABLE and static.depth == 1
    for kind in ("image_raw", "camera_info", "depth_gt"):
        (cam,) = qos[f"/cameras/front/{kind}"]
        assert cam.reliability == QosReliability.BEST_EFFORT
        assert cam.durability == QosDurability.VOLATILE
    (tf,) = qos["/tf"]
    assert tf.durability == QosDurability.VOLATILE and tf.reliability == QosReliability.RELIABLE
    text = (tmp_path / "bag" / "metadata.yaml").read_text()
    assert "durability: transient_local" in text and "version: 9" in text


def test_twist_from_finite_differences(tmp_path: Path) -> None:
    # Straight line at 2 m/s along odom x with the base yawed by 30 degrees.
    psi = np.pi / 6
    line = [make_transform(yaw(psi), [0.2 * i, 0.0, 0.0]) for i in range(3)]
    write_bag(tmp_path / "line", make_frames(n=3, views=1, poses=line))
    _, msgs = read_all(tmp_path / "line")
    for _, odom in msgs["/odom"]:  # one-sided at the ends, central inside: all exact
        lin, ang = odom.twist.twist.linear, odom.twist.twist.angular
        assert np.allclose([lin.x, lin.y, lin.z], yaw(psi).T @ [2.0, 0.0, 0.0])
        assert np.allclose([ang.x, ang.y, ang.z], 0.0)
    # Turning on the spot at 0.5 rad/s.
    spin = [make_transform(yaw(0.05 * i), [1.0, 2.0, 0.0]) for i in range(3)]
    write_bag(tmp_path / "spin", make_frames(n=3, views=1, poses=spin))
    _, msgs = read_all(tmp_path / "spin")
    for _, odom in msgs["/odom"]:
        lin, ang = odom.twist.twist.linear, odom.twist.twist.angular
        assert np.allclose([lin.x, lin.y, lin.z], 0.0, atol=1e-12)
        assert np.allclose([ang.x, ang.y, ang.z], [0.0, 0.0, 0.5])
    single = make_frames(n=1, views=1)[0]
    assert np.allclose(finite_difference_twist(single, single, single), 0.0)


def test_rotation_vector() -> None:
    axis = np.array([1.0, -2.0, 0.5]) / np.linalg.norm([1.0, -2.0, 0.5])
    for angle in (0.0, 1e-9, 0.3, 3.1, np.pi):
        c, s = np.cos(angle), np.sin(angle)
        x = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
        R = np.eye(3) + s * x + (1 - c) * x @ x  # Rodrigues
        rv = rotation_vector(R)
        assert np.linalg.norm(rv) == pytest.approx(angle, abs=1e-9)
        if angle > 1e-6:
            assert abs(abs(rv @ axis) - angle) < 1e-9


def test_camera_subset_and_no_occupancy(tmp_path: Path) -> None:
    frames = make_frames(n=2, views=3)
    write_bag(tmp_path / "bag", frames, storage="sqlite3", include_occupancy=False,
              camera_names=["front_right", "front"])
    topics, msgs = read_all(tmp_path / "bag")
    assert "/ground_truth/occupancy" not in topics
    assert not any(t.startswith("/cameras/front_left/") for t in topics)
    static = msgs["/tf_static"][0][1].transforms
    assert [t.child_frame_id for t in static] == ["front_right_camera_optical",
                                                  "front_camera_optical"]
    img = msgs["/cameras/front_right/image_raw"][1][1]
    assert np.array_equal(img.data.reshape(32, 32, 3), frames[1].images[2])


def test_generator_input_and_synthetic_world(tmp_path: Path) -> None:
    from depth_any_view.data.synth import generate_frames

    gen = generate_frames(frames=2, size=(32, 24), seed=3, grid_dims=16)
    assert write_bag(tmp_path / "bag", gen) == 2
    topics, msgs = read_all(tmp_path / "bag")
    assert len([t for t in topics if t.endswith("/image_raw")]) == 6
    img = msgs["/cameras/back_left/image_raw"][0][1]
    assert (img.width, img.height, img.header.frame_id) == (32, 24, "back_left_camera_optical")


def test_refuses_existing_path(tmp_path: Path) -> None:
    path = tmp_path / "bag"
    path.mkdir()
    (path / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="exists already"):
        write_bag(path, make_frames(n=1))
    assert (path / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(storage="rosbag1"), "'mcap' or 'sqlite3'"),
    (dict(camera_names=["front", "nope"]), "camera_names"),
    (dict(camera_names=["front", "front"]), "distinct"),
])
def test_bad_arguments(tmp_path: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        write_bag(tmp_path / "bag", make_frames(n=1), **kwargs)
    assert not (tmp_path / "bag").exists()


def test_no_frames(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no frames"):
        write_bag(tmp_path / "bag", [])
    assert not (tmp_path / "bag").exists()


def test_inconsistent_frames_leave_no_partial_bag(tmp_path: Path) -> None:
    frames = make_frames(n=3)
    frames[2].stamp_ns = frames[1].stamp_ns
    with pytest.raises(ValueError, match="stamps must increase"):
        write_bag(tmp_path / "a", frames)
    assert not (tmp_path / "a").exists()
    frames = make_frames(n=2)
    frames[1].T_base_cam = frames[1].T_base_cam.copy()
    frames[1].T_base_cam[0, 0, 3] += 0.1
    with pytest.raises(ValueError, match="extrinsics"):
        write_bag(tmp_path / "b", frames)
    frames = make_frames(n=2)
    frames[1].grid = VoxelGrid.cube(16, lower=(-1.0, -1.0, -1.0), upper=(1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="grid"):
        write_bag(tmp_path / "c", frames)
    assert not any(tmp_path.iterdir())


def test_occupancy_points_padding_bytes_are_zero():
    """The structured record has 3 padding bytes; written bags must not carry stale memory."""
    import numpy as np

    from depth_any_view.bag.messages import occupancy_points
    from depth_any_view.geometry.grid import VoxelGrid

    grid = VoxelGrid((-1.0, -1.0, -1.0), (1.0, 1.0, 1.0), (4, 4, 4))
    junk = np.full(4096, 0xAB, np.uint8)  # leave non-zero memory for the allocator to reuse
    del junk
    labels = np.zeros((4, 4, 4), np.uint8)
    raw = occupancy_points(grid, labels).tobytes()
    records = np.frombuffer(raw, np.uint8).reshape(-1, 16)
    assert records.shape[0] == 64 and not records[:, 13:].any()
