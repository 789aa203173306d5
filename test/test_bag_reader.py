"""Tests of bag/reader.py: read back bags written by bag/writer.py, and every failure mode."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import Reader, StoragePlugin, Writer

from depth_any_view.bag.messages import (
    CameraInfoData,
    CloudData,
    ImageData,
    OdometryData,
    TransformData,
    default_typestore,
)
from depth_any_view.bag.reader import BagError, BagReader, StampSets
from depth_any_view.bag.writer import write_bag
from depth_any_view.data.frame import Frame
from depth_any_view.geometry.grid import UNKNOWN, VoxelGrid

GRID_DIMS = 16


@pytest.fixture(scope="module")
def frames() -> list[Frame]:
    """Three frames of the synthetic world (6 views of 32x32, 16^3 grid), with NaN holes."""
    from depth_any_view.data.synth import generate_frames

    out = list(generate_frames(frames=3, size=(32, 32), seed=5, grid_dims=GRID_DIMS))
    for i, f in enumerate(out):
        f.depth[i % f.num_views, :4, :] = np.nan  # some unknown depth in every frame
    return out


@pytest.fixture(scope="module")
def bags(frames: list[Frame], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The frames written once as an MCAP and a sqlite3 bag."""
    root = tmp_path_factory.mktemp("bags")
    out = {}
    for storage in ("mcap", "sqlite3"):
        out[storage] = root / storage
        write_bag(out[storage], frames, storage=storage)
    return out


def assert_same_frame(a: Frame, b: Frame) -> None:
    """Every field of two frames is equal (floats to 1e-9)."""
    assert (a.stamp_ns, a.camera_names, a.frame_ids) == (b.stamp_ns, b.camera_names,
                                                         b.frame_ids)
    assert np.array_equal(a.images, b.images)
    assert np.array_equal(a.depth, b.depth, equal_nan=True)
    assert np.allclose(a.K, b.K, atol=1e-12)
    assert np.allclose(a.T_base_cam, b.T_base_cam, atol=1e-9)
    assert np.allclose(a.T_odom_base, b.T_odom_base, atol=1e-9)
    assert a.grid == b.grid and np.array_equal(a.occupancy, b.occupancy)


def copy_bag(src: Path, dst: Path, keep: Callable[[str, int], bool]) -> None:
    """Copy an MCAP bag message by message, keeping those where keep(topic, ns) holds."""
    ts = default_typestore()
    with Reader(src) as reader, Writer(dst, version=9,
                                       storage_plugin=StoragePlugin.MCAP) as writer:
        conns = {c.id: writer.add_connection(c.topic, c.msgtype, typestore=ts,
                                             offered_qos_profiles=c.ext.offered_qos_profiles)
                 for c in reader.connections}
        for conn, ns, raw in reader.messages():
            if keep(conn.topic, ns):
                writer.write(conns[conn.id], ns, raw)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_read_frames_roundtrip(frames: list[Frame], bags: dict[str, Path], storage: str) -> None:
    with BagReader(bags[storage]) as bag:
        got = list(bag.read_frames())
        assert bag.skipped_sets == 0
    assert len(got) == len(frames) and [f.index for f in got] == [0, 1, 2]
    assert np.isnan(got[0].depth).any() and (got[0].occupancy != UNKNOWN).any()
    for a, b in zip(frames, got):
        assert_same_frame(a, b)


def test_topics_counts_and_times(frames: list[Frame], bags: dict[str, Path]) -> None:
    with BagReader(bags["mcap"]) as bag:
        topics = bag.topics()
        counts = bag.message_counts()
        assert topics["/cameras/front/image_raw"] == "sensor_msgs/msg/Image"
        assert topics["/ground_truth/occupancy"] == "sensor_msgs/msg/PointCloud2"
        assert counts["/tf_static"] == 1 and counts["/odom"] == 3
        assert bag.message_count == sum(counts.values()) == 1 + 3 * (2 + 3 * 6 + 1)
        assert bag.start_ns == frames[0].stamp_ns and bag.end_ns == frames[-1].stamp_ns + 1
        assert bag.camera_names() == frames[0].camera_names
        assert bag.grid() == frames[0].grid


def test_messages_filter_order_and_decode(frames: list[Frame], bags: dict[str, Path]) -> None:
    wanted = ["/odom", "/cameras/back/image_raw", "/cameras/back/camera_info", "/tf_static",
              "/ground_truth/occupancy", "/cameras/back/depth_gt"]
    v = frames[0].camera_names.index("back")
    with BagReader(bags["sqlite3"]) as bag:
        got = list(bag.decoded(wanted))
        late = list(bag.messages(["/odom"], start_ns=frames[1].stamp_ns))
    assert {m.topic for m, _ in got} == set(wanted) and len(got) == 1 + 3 * 5
    times = [m.log_ns for m, _ in got]
    assert times == sorted(times)
    assert [m.log_ns for m in late] == [f.stamp_ns for f in frames[1:]]
    by_topic: dict[str, list] = {}
    for m, data in got:
        by_topic.setdefault(m.topic, []).append(data)
    for i, f in enumerate(frames):
        img = by_topic["/cameras/back/image_raw"][i]
        assert isinstance(img, ImageData) and img.encoding == "rgb8"
        assert img.frame_id == "back_camera_optical" and img.stamp_ns == f.stamp_ns
        assert np.array_equal(img.rgb(), f.images[v])
        dep = by_topic["/cameras/back/depth_gt"][i]
        assert np.array_equal(dep.depth_metres(), f.depth[v], equal_nan=True)
        info = by_topic["/cameras/back/camera_info"][i]
        assert isinstance(info, CameraInfoData) and info.camera.distortion_model == "plumb_bob"
        assert np.allclose(info.camera.K, f.K[v]) and not info.camera.has_distortion
        odom = by_topic["/odom"][i]
        assert isinstance(odom, OdometryData) and odom.child_frame_id == "base_link"
        assert np.allclose(odom.T_odom_base, f.T_odom_base)
        cloud = by_topic["/ground_truth/occupancy"][i]
        assert isinstance(cloud, CloudData) and cloud.frame_id == "base_link"
        assert cloud.points.shape == (int((f.occupancy != UNKNOWN).sum()),)
    (static,) = by_topic["/tf_static"]
    assert all(isinstance(t, TransformData) and t.parent == "base_link" for t in static)
    assert [t.child for t in static] == frames[0].frame_ids


def test_rig_from_tf_static(frames: list[Frame], bags: dict[str, Path]) -> None:
    with BagReader(bags["mcap"]) as bag:
        rig = bag.rig()
    assert rig.names == frames[0].camera_names and rig.base_frame == "base_link"
    assert [c.frame_id for c in rig.cameras.values()] == frames[0].frame_ids
    assert np.allclose(rig.T_base_cams(), frames[0].T_base_cam, atol=1e-9)


@pytest.mark.parametrize(("storage", "suffix"), [("mcap", ".mcap"), ("sqlite3", ".db3")])
def test_single_storage_file(frames: list[Frame], bags: dict[str, Path], storage: str,
                             suffix: str) -> None:
    (file,) = bags[storage].glob(f"*{suffix}")
    with BagReader(bags[storage]) as whole:
        topics = whole.topics()
    with BagReader(file) as bag:
        assert bag.topics() == topics and bag.custom_data() == {}
        with pytest.raises(BagError, match="grid="):
            next(bag.read_frames())
        got = list(bag.read_frames(grid=frames[0].grid))
    for a, b in zip(frames, got):
        assert_same_frame(a, b)


def test_subset_of_cameras(frames: list[Frame], bags: dict[str, Path]) -> None:
    with BagReader(bags["mcap"]) as bag:
        (first, *_) = bag.read_frames(["back_right", "front"])
    assert first.camera_names == ["back_right", "front"]
    assert np.array_equal(first.images[0], frames[0].images[5])
    assert np.array_equal(first.images[1], frames[0].images[0])


def test_missing_camera_topics_are_named(bags: dict[str, Path]) -> None:
    with BagReader(bags["mcap"]) as bag:
        with pytest.raises(BagError) as err:
            next(bag.read_frames(["front", "roof"]))
        with pytest.raises(BagError, match="lacks topic"):
            list(bag.messages(["/not/there"]))
    text = str(err.value)
    assert "/cameras/roof/image_raw" in text and "/cameras/roof/depth_gt" in text
    assert "it has:" in text and "/cameras/front/image_raw" in text
    assert "\n" not in text


def test_wrong_grid_is_refused(bags: dict[str, Path]) -> None:
    other = VoxelGrid.cube(GRID_DIMS, lower=(-5.0, -5.0, -1.0), upper=(5.0, 5.0, 2.0))
    with BagReader(bags["mcap"]) as bag, pytest.raises(BagError, match="not voxel centres"):
        next(bag.read_frames(grid=other))


def test_bag_without_occupancy(frames: list[Frame], tmp_path: Path) -> None:
    write_bag(tmp_path / "bag", frames[:1], include_occupancy=False)
    with BagReader(tmp_path / "bag") as bag:
        (frame,) = bag.read_frames()
    assert np.all(frame.occupancy == UNKNOWN) and frame.grid == frames[0].grid


def test_incomplete_sets_are_skipped(frames: list[Frame], bags: dict[str, Path],
                                     tmp_path: Path) -> None:
    dropped = frames[1].stamp_ns
    copy_bag(next(bags["mcap"].glob("*.mcap")), tmp_path / "holey",
             keep=lambda topic, ns: not (topic == "/cameras/front_left/depth_gt"
                                         and ns == dropped))
    with BagReader(tmp_path / "holey") as bag:
        got = list(bag.read_frames(grid=frames[0].grid))
        assert bag.skipped_sets == 1
    assert [f.stamp_ns for f in got] == [frames[0].stamp_ns, frames[2].stamp_ns]
    assert_same_frame(frames[2], got[1])


def test_missing_tf_static_is_named(frames: list[Frame], bags: dict[str, Path],
                                    tmp_path: Path) -> None:
    copy_bag(next(bags["mcap"].glob("*.mcap")), tmp_path / "notf",
             keep=lambda topic, ns: topic != "/tf_static")
    with BagReader(tmp_path / "notf") as bag, \
            pytest.raises(BagError, match="no /tf_static path from 'base_link' to 'front_"):
        next(bag.read_frames(grid=frames[0].grid))


def test_unknown_message_type(tmp_path: Path) -> None:
    ts = default_typestore()
    string_t = ts.types["std_msgs/msg/String"]
    with Writer(tmp_path / "bag", version=9) as writer:
        conn = writer.add_connection("/cameras/front/image_raw", "std_msgs/msg/String",
                                     typestore=ts)
        writer.write(conn, 5, ts.serialize_cdr(string_t(data="hi"), "std_msgs/msg/String"))
    with BagReader(tmp_path / "bag") as bag:
        (msg,) = bag.messages()
        assert msg.msg.data == "hi"
        with pytest.raises(BagError, match="no numpy decoder for message type std_msgs/msg/"):
            msg.decode()
        with pytest.raises(BagError, match="expected sensor_msgs/msg/Image"):
            bag.camera_topics(["front"], ("image_raw",))


def test_bad_image_in_bag_names_topic(tmp_path: Path) -> None:
    ts = default_typestore()
    from depth_any_view.bag.messages import header_msg

    image = ts.types["sensor_msgs/msg/Image"](
        header=header_msg(ts, 7, "cam"), height=4, width=4, encoding="rgb8", is_bigendian=0,
        step=12, data=np.zeros(40, np.uint8))  # 8 bytes short
    with Writer(tmp_path / "bag", version=9) as writer:
        conn = writer.add_connection("/cameras/front/image_raw", "sensor_msgs/msg/Image",
                                     typestore=ts)
        writer.write(conn, 7, ts.serialize_cdr(image, "sensor_msgs/msg/Image"))
    with BagReader(tmp_path / "bag") as bag:
        (msg,) = bag.messages()
        with pytest.raises(BagError, match=r"/cameras/front/image_raw at 7 ns: Image field "
                                           r"'data' holds 40 bytes"):
            msg.decode()


def test_missing_path_and_not_a_bag(tmp_path: Path) -> None:
    with pytest.raises(BagError, match="does not exist"):
        BagReader(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BagError, match="no metadata.yaml"):
        BagReader(tmp_path / "empty")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(BagError, match=r"not \.mcap or \.db3"):
        BagReader(tmp_path / "notes.txt")


def test_use_before_open(bags: dict[str, Path]) -> None:
    bag = BagReader(bags["mcap"])
    with pytest.raises(BagError, match="not open"):
        bag.topics()
    bag.open()
    assert "/odom" in bag.topics()
    bag.close()
    bag.close()  # closing twice is harmless


@pytest.mark.parametrize("name", ["garbage.mcap", "garbage.db3"])
def test_corrupt_file(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"\x89MCAP0\r\n" + bytes(range(256)) * 4)
    with pytest.raises(BagError, match=f"cannot read bag .*{name}"):
        with BagReader(path) as bag:
            list(bag.messages())


def test_truncated_mcap(bags: dict[str, Path], tmp_path: Path) -> None:
    src = next(bags["mcap"].glob("*.mcap"))
    data = src.read_bytes()
    (tmp_path / "cut.mcap").write_bytes(data[: len(data) // 2])
    with pytest.raises(BagError, match="cut.mcap"):
        with BagReader(tmp_path / "cut.mcap") as bag:
            list(bag.messages())


def test_corrupt_metadata(bags: dict[str, Path], tmp_path: Path) -> None:
    shutil.copytree(bags["sqlite3"], tmp_path / "bag")
    (tmp_path / "bag" / "metadata.yaml").write_text("rosbag2_bagfile_information: [1, 2\n")
    with pytest.raises(BagError, match="cannot read bag"):
        BagReader(tmp_path / "bag").open()



def test_stamp_sets_group_and_bound_memory() -> None:
    sets = StampSets(size=2, max_pending=3)
    assert sets.add(10, "a", 1) is None
    assert sets.add(20, "a", 2) is None
    assert sets.add(10, "b", 3) == {"a": 1, "b": 3}
    for stamp in range(30, 90, 10):  # "b" fell silent: only the newest 3 stay pending
        assert sets.add(stamp, "a", stamp) is None
        assert len(sets.pending) <= 3
    assert sorted(sets.pending) == [60, 70, 80] and sets.skipped == 4  # 20, 30, 40, 50
    assert sets.add(80, "b", 0) == {"a": 80, "b": 0}
    assert sets.skipped == 6 and not sets.pending  # 60 and 70 were stale
