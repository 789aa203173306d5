"""Tests of depth_any_view.data.synth: sequences, shards, determinism, both scene kinds
(and the same sequences as bags, bag/synthetic.py)."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from depth_any_view.bag import synthetic
from depth_any_view.data.dataset import SyntheticShardDataset
from depth_any_view.data.shards import read_meta
from depth_any_view.data.synth import generate_frames, generate_sequence, synthesize
from depth_any_view.data.synth_config import SynthConfig
from depth_any_view.geometry.grid import FREE, OCCUPIED, UNKNOWN

SMALL = dict(size=(64, 64), grid_dims=32, progress=False)


def _config(frames_per_scene=2):
    cfg = SynthConfig()
    return replace(cfg, world=replace(cfg.world, frames_per_scene=frames_per_scene))


@pytest.mark.parametrize("scene", ["indoor", "outdoor"])
def test_both_scene_kinds_render_complete_frames(scene):
    frames = list(generate_frames(frames=2, scene=scene, seed=4, **SMALL))
    assert [f.index for f in frames] == [0, 1]
    assert frames[1].stamp_ns - frames[0].stamp_ns == 100_000_000  # 10 Hz, int64 ns
    f = frames[1]
    assert f.camera_names == ["front", "front_left", "front_right", "back", "back_left",
                              "back_right"]
    assert f.frame_ids[0] == "front_camera_optical"
    assert f.images.shape == (6, 64, 64, 3) and f.images.dtype == np.uint8
    assert f.depth.shape == (6, 64, 64) and f.depth.dtype == np.float32
    assert f.occupancy.shape == (32, 32, 32) and f.occupancy.dtype == np.uint8
    assert f.K.dtype == np.float64 and f.T_base_cam.shape == (6, 4, 4)
    np.testing.assert_allclose(f.K[0, 0, 0], 32.0 / np.tan(np.deg2rad(45.0)))  # hfov 90
    valid = np.isfinite(f.depth)
    assert valid.mean() > (0.95 if scene == "indoor" else 0.5)
    assert np.nanmin(f.depth) > 0.05 and np.nanmax(f.depth) <= 40.0
    labels = set(np.unique(f.occupancy).tolist())
    assert labels == {FREE, OCCUPIED, UNKNOWN}
    # The base stands on the ground: cameras 1.6 m up, below the indoor ceiling.
    assert abs(f.T_odom_base[2, 2]) > 0.95


def test_front_array_uses_its_field_of_view():
    f = next(generate_frames(frames=1, rig="front_array", scene="indoor", seed=1, **SMALL))
    np.testing.assert_allclose(f.K[:, 0, 0], 32.0 / np.tan(np.deg2rad(35.0)))
    assert len(f.camera_names) == 6 and f.camera_names[1] == "front_near"


def test_mixed_sequences_switch_scenes_and_keep_time_running():
    items = list(generate_sequence(frames=5, scene="mixed", seed=3, config=_config(2),
                                   **SMALL))
    assert [i.segment for i in items] == [0, 0, 1, 1, 2]
    assert [i.kind for i in items] == ["indoor", "indoor", "outdoor", "outdoor", "indoor"]
    stamps = np.array([i.frame.stamp_ns for i in items])
    np.testing.assert_array_equal(np.diff(stamps), 100_000_000)
    assert [i.frame.index for i in items] == list(range(5))


def test_same_seed_same_bytes_other_seed_other_scene(tmp_path):
    kw = dict(frames=3, scene="mixed", config=_config(2), **SMALL)
    a = synthesize(tmp_path / "a", seed=7, **kw)
    b = synthesize(tmp_path / "b", seed=7, **kw)
    c = synthesize(tmp_path / "c", seed=8, **kw)
    files = sorted(p.name for p in a.iterdir())
    assert files == ["frame_000000.npz", "frame_000001.npz", "frame_000002.npz", "meta.json"]
    for name in files:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a / files[0]).read_bytes() != (c / files[0]).read_bytes()
    meta = read_meta(a)
    assert meta["frames"] == 3 and meta["rig"] == "surround6" and meta["size"] == [64, 64]
    assert [s["kind"] for s in meta["scenes"]] == ["indoor", "outdoor"]
    assert meta["grid"]["dims"] == [32, 32, 32]
    ds = SyntheticShardDataset(a, temporal=True)
    x = ds[2]
    assert x["images"].shape == (6, 3, 64, 64) and x["images"].dtype == torch.float32
    assert x["depth"].shape == (6, 64, 64) and x["occupancy"].shape == (32, 32, 32)
    torch.testing.assert_close(x["prev_images"], x["images"])  # first frame of scene 2


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match="frames"):
        synthesize(tmp_path / "x", frames=0)
    with pytest.raises(ValueError, match="scene"):
        synthesize(tmp_path / "x", frames=1, scene="forest")
    with pytest.raises(ValueError, match="format"):
        synthetic.synthesize_bag(tmp_path / "x", frames=1, fmt="zip")
    with pytest.raises(ValueError, match="seed"):
        next(generate_frames(frames=1, seed=-1))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(FileExistsError):
        synthesize(tmp_path / "full", frames=1, **SMALL)


def test_bag_formats_go_through_write_bag(tmp_path, monkeypatch):
    calls = []

    def write_bag(path, frames, *, storage="mcap", include_occupancy=True):
        frames = list(frames)
        calls.append((path, storage, len(frames), frames[0].images.shape))
        return len(frames)

    monkeypatch.setattr(synthetic, "write_bag", write_bag)
    out = synthetic.synthesize_bag(tmp_path / "bag", frames=2, fmt="sqlite3", scene="indoor",
                                   **SMALL)
    assert out == tmp_path / "bag"
    assert calls == [(tmp_path / "bag", "sqlite3", 2, (6, 64, 64, 3))]
