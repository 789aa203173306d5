"""Tests of depth_any_view.data.shards: npz files, meta.json and frame roundtrips."""

import json

import numpy as np
import pytest

from depth_any_view.data.frame import Frame
from depth_any_view.data.shards import (
    ShardWriter,
    frame_segments,
    load_frame,
    read_meta,
    read_npz,
    write_npz,
)
from depth_any_view.geometry.grid import VoxelGrid


def make_frame(index: int, rng: np.random.Generator, V: int = 2, H: int = 6, W: int = 8,
               n: int = 4) -> Frame:
    """A small random Frame (no rendering)."""
    depth = rng.uniform(1, 5, (V, H, W)).astype(np.float32)
    depth[:, 0, 0] = np.nan
    T = np.tile(np.eye(4), (V, 1, 1))
    T[:, 0, 3] = np.arange(V)
    return Frame(stamp_ns=1_700_000_000_000_000_000 + index * 100_000_000, index=index,
                 camera_names=[f"cam{v}" for v in range(V)],
                 images=rng.integers(0, 256, (V, H, W, 3), dtype=np.uint8), depth=depth,
                 K=np.tile(np.array([[4.0, 0, 3.5], [0, 4.0, 2.5], [0, 0, 1]]), (V, 1, 1)),
                 T_base_cam=T, frame_ids=[f"cam{v}_optical" for v in range(V)],
                 T_odom_base=np.eye(4),
                 occupancy=rng.choice(np.array([0, 1, 255], np.uint8), (n, n, n)),
                 grid=VoxelGrid.cube(n))


def test_write_npz_is_deterministic_and_loadable(tmp_path):
    arrays = {"a": np.arange(12.0).reshape(3, 4), "b": np.int64(7)}
    write_npz(tmp_path / "x.npz", arrays)
    write_npz(tmp_path / "y.npz", arrays)
    assert (tmp_path / "x.npz").read_bytes() == (tmp_path / "y.npz").read_bytes()
    back = read_npz(tmp_path / "x.npz")
    np.testing.assert_array_equal(back["a"], arrays["a"])
    assert int(back["b"]) == 7
    with np.load(tmp_path / "x.npz") as data:  # plain numpy reads it too
        assert sorted(data.files) == ["a", "b"]


def test_shard_roundtrip_and_meta(tmp_path):
    rng = np.random.default_rng(0)
    frames = [make_frame(i, rng) for i in range(5)]
    root = tmp_path / "shard"
    with ShardWriter(root, rig="surround6", seed=3, scene="mixed", fps=10.0,
                     max_range=40.0) as writer:
        for f in frames:
            writer.write(f, segment=0 if f.index < 3 else 1,
                         kind="outdoor" if f.index < 3 else "indoor")
    meta = read_meta(root)
    assert meta["frames"] == 5 and meta["size"] == [8, 6] and meta["seed"] == 3
    assert meta["camera_names"] == ["cam0", "cam1"]
    assert meta["scenes"] == [{"segment": 0, "kind": "outdoor", "first": 0, "count": 3},
                              {"segment": 1, "kind": "indoor", "first": 3, "count": 2}]
    assert meta["labels"] == {"free": 0, "occupied": 1, "unknown": 255}
    np.testing.assert_array_equal(frame_segments(meta), [0, 0, 0, 1, 1])
    for f in frames:
        g = load_frame(root, f.index, meta)
        assert g.stamp_ns == f.stamp_ns and g.index == f.index and g.grid == f.grid
        assert g.frame_ids == f.frame_ids
        for key in ("images", "depth", "K", "T_base_cam", "T_odom_base", "occupancy"):
            a, b = getattr(g, key), getattr(f, key)
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)


def test_writer_refuses_non_empty_output_and_mixed_frames(tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file.txt").write_text("x")
    with pytest.raises(FileExistsError, match="busy"):
        ShardWriter(tmp_path / "busy", rig="r", seed=0, scene="mixed", fps=10, max_range=40)
    rng = np.random.default_rng(1)
    writer = ShardWriter(tmp_path / "new", rig="r", seed=0, scene="mixed", fps=10,
                         max_range=40)
    writer.write(make_frame(0, rng))
    with pytest.raises(ValueError, match="differs"):
        writer.write(make_frame(1, rng, W=10))


def test_read_meta_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="meta.json"):
        read_meta(tmp_path)
    (tmp_path / "meta.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match="format"):
        read_meta(tmp_path)
    (tmp_path / "meta.json").write_text(json.dumps({"format": "depth_any_view.shards",
                                                    "version": 99}))
    with pytest.raises(ValueError, match="version"):
        read_meta(tmp_path)
