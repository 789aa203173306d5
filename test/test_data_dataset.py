"""Tests of depth_any_view.data.dataset: tensors from shards, views, temporal pairs."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from depth_any_view.data.dataset import SyntheticShardDataset, concat_shards, find_shard_dirs
from depth_any_view.data.frame import Frame
from depth_any_view.data.shards import ShardWriter
from depth_any_view.geometry.grid import VoxelGrid


def make_frame(index: int, rng: np.random.Generator, V: int = 2, H: int = 6, W: int = 8,
               n: int = 4) -> Frame:
    """A small random Frame (no rendering); depth pixel (0, 0) is NaN."""
    depth = rng.uniform(1, 5, (V, H, W)).astype(np.float32)
    depth[:, 0, 0] = np.nan
    T = np.tile(np.eye(4), (V, 1, 1))
    T[:, 0, 3] = np.arange(V)
    T_odom = np.eye(4)
    T_odom[0, 3] = index
    return Frame(stamp_ns=1_700_000_000_000_000_000 + index * 100_000_000, index=index,
                 camera_names=[f"cam{v}" for v in range(V)],
                 images=rng.integers(0, 256, (V, H, W, 3), dtype=np.uint8), depth=depth,
                 K=np.tile(np.array([[4.0, 0, 3.5], [0, 4.0, 2.5], [0, 0, 1]]), (V, 1, 1)),
                 T_base_cam=T, frame_ids=[f"cam{v}_optical" for v in range(V)],
                 T_odom_base=T_odom,
                 occupancy=rng.choice(np.array([0, 1, 255], np.uint8), (n, n, n)),
                 grid=VoxelGrid.cube(n))


def _write(root, n=5, boundary=3, seed=0, **kw):
    rng = np.random.default_rng(seed)
    frames = [make_frame(i, rng, **kw) for i in range(n)]
    with ShardWriter(root, rig="r", seed=seed, scene="mixed", fps=10.0,
                     max_range=40.0) as writer:
        for f in frames:
            writer.write(f, segment=int(f.index >= boundary))
    return frames


def test_samples_have_documented_shapes_and_dtypes(tmp_path):
    frames = _write(tmp_path / "s")
    ds = SyntheticShardDataset(tmp_path / "s")
    assert len(ds) == 5 and ds.camera_names == ["cam0", "cam1"] and ds.image_size == (8, 6)
    x = ds[1]
    expected = {"images": ((2, 3, 6, 8), torch.float32), "depth": ((2, 6, 8), torch.float32),
                "K": ((2, 3, 3), torch.float32), "T_base_cam": ((2, 4, 4), torch.float32),
                "T_odom_base": ((4, 4), torch.float32),
                "occupancy": ((4, 4, 4), torch.uint8), "stamp_ns": ((), torch.int64),
                "index": ((), torch.int64)}
    assert set(x) == set(expected)
    for key, (shape, dtype) in expected.items():
        assert tuple(x[key].shape) == shape and x[key].dtype == dtype, key
    f = frames[1]
    np.testing.assert_allclose(x["images"].numpy(),
                               f.images.transpose(0, 3, 1, 2).astype(np.float32) / 255.0)
    assert 0.0 <= x["images"].min() and x["images"].max() <= 1.0
    assert torch.isnan(x["depth"][:, 0, 0]).all()
    np.testing.assert_array_equal(x["occupancy"].numpy(), f.occupancy)
    assert int(x["stamp_ns"]) == f.stamp_ns
    batch = next(iter(DataLoader(ds, batch_size=2)))
    assert batch["images"].shape == (2, 2, 3, 6, 8)
    with pytest.raises(IndexError):
        ds[5]


def test_views_and_temporal(tmp_path):
    frames = _write(tmp_path / "s")
    ds = SyntheticShardDataset(tmp_path / "s", views=["cam1"], temporal=True)
    x = ds[4]
    assert x["images"].shape == (1, 3, 6, 8)
    np.testing.assert_array_equal(x["T_base_cam"][0].numpy(), frames[4].T_base_cam[1])
    np.testing.assert_allclose(x["prev_images"].numpy()[0],
                               frames[3].images[1].transpose(2, 0, 1) / 255.0, atol=1e-6)
    # The first frame of each scene has no predecessor: it uses itself.
    assert [ds.previous_index(i) for i in range(5)] == [0, 0, 1, 3, 3]
    first = ds[3]
    torch.testing.assert_close(first["prev_images"], first["images"])
    torch.testing.assert_close(first["prev_T_odom_base"], first["T_odom_base"])
    assert float(ds[2]["prev_T_odom_base"][0, 3]) == 1.0  # pose of frame 1
    assert SyntheticShardDataset(tmp_path / "s", views=[1, 0]).camera_names == ["cam1", "cam0"]
    with pytest.raises(ValueError, match="front"):
        SyntheticShardDataset(tmp_path / "s", views=["front"])
    with pytest.raises(ValueError, match="out of range"):
        SyntheticShardDataset(tmp_path / "s", views=[2])


def test_concat_shards(tmp_path):
    _write(tmp_path / "all" / "a", n=3)
    _write(tmp_path / "all" / "b", n=4, seed=1)
    ds = concat_shards([tmp_path / "all" / "a", tmp_path / "all" / "b"], temporal=True)
    assert len(ds) == 7 and ds[6]["prev_images"].shape == (2, 3, 6, 8)
    assert [p.name for p in find_shard_dirs(tmp_path / "all")] == ["a", "b"]
    assert len(concat_shards(tmp_path / "all")) == 7
    _write(tmp_path / "odd", n=2, W=10)
    with pytest.raises(ValueError, match="odd"):
        concat_shards([tmp_path / "all", tmp_path / "odd"])
    with pytest.raises(FileNotFoundError, match="no shard"):
        concat_shards([tmp_path / "all" / "a" / "nothing"])


def test_dataset_does_not_import_open3d():
    code = ("import sys; import depth_any_view.data.dataset; "
            "assert 'open3d' not in sys.modules, 'open3d imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
