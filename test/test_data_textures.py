"""Tests of depth_any_view.data.textures."""

from dataclasses import replace

import numpy as np

from depth_any_view.data.textures import (
    BRICK,
    PALETTES,
    MaterialLibrary,
    NoiseTile,
    albedo,
    hash01,
    surface_frames,
)


def test_hash_is_deterministic_uniform_and_signed_safe():
    i = np.arange(-500, 500)
    a = hash01(i, i * 3, np.full(i.shape, 7))
    b = hash01(i, i * 3, np.full(i.shape, 7))
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and a.min() >= 0 and a.max() < 1
    assert 0.4 < a.mean() < 0.6
    assert not np.array_equal(a, hash01(i, i * 3, np.full(i.shape, 8)))


def test_surface_frames_are_orthonormal_and_tangent():
    rng = np.random.default_rng(0)
    n = rng.normal(size=(200, 3))
    n = np.concatenate([n, [[0, 0, 1], [0, 0, -1], [1, 0, 0]]])
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    tu, tv = surface_frames(n)
    for a, b in ((tu, tv), (tu, n), (tv, n)):
        np.testing.assert_allclose(np.sum(a * b, axis=1), 0.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(tu, axis=1), 1.0, atol=1e-5)
    walls = np.abs(n[:, 2]) < 0.9
    np.testing.assert_allclose(tu[walls, 2], 0.0, atol=1e-6)  # horizontal along walls


def test_noise_tile_is_periodic_and_bounded():
    tile = NoiseTile(np.random.default_rng(1), texels=64)
    u = np.linspace(0, 40, 500).astype(np.float32)
    v = np.linspace(3, 9, 500).astype(np.float32)
    period = 64 / 4.0  # texels / texels per feature
    a, b = tile.sample(u, v), tile.sample(u + period, v - 2 * period)
    np.testing.assert_allclose(a, b, atol=1e-3)
    assert np.abs(a).max() <= 1.0 and a.std() > 0.05


def test_albedo_is_textured_near_and_averaged_far():
    rng = np.random.default_rng(2)
    lib = MaterialLibrary(rng)
    mats = [lib.add(kind) for kind in PALETTES for _ in range(3)]
    table = lib.table()
    noise = NoiseTile(rng)
    s, t = np.meshgrid(np.linspace(0, 3, 300), np.linspace(0, 3, 300))
    s, t = s.ravel().astype(np.float32), t.ravel().astype(np.float32)
    for m in mats:
        mat = np.full(s.shape, m)
        near = albedo(table, noise, mat, s, t, np.full(s.shape, 0.005, np.float32))
        far = albedo(table, noise, mat, s, t, np.full(s.shape, 5.0, np.float32))
        assert near.dtype == np.float32 and near.shape == (s.size, 3)
        assert 0.0 <= near.min() and near.max() <= 1.0
        # Detail when a pixel is small; flat when a pixel covers many pattern periods.
        assert near.std(axis=0).max() > 3 * far.std(axis=0).max() + 1e-3, table.kinds[m]
    again = albedo(table, noise, np.full(s.shape, mats[0]), s, t, np.full(s.shape, 0.01))
    first = albedo(table, noise, np.full(s.shape, mats[0]), s, t, np.full(s.shape, 0.01))
    np.testing.assert_array_equal(again, first)


def test_brick_pattern_has_mortar_lines():
    lib = MaterialLibrary(np.random.default_rng(3))
    for _ in range(50):
        m = lib.add("facade")
        if lib.table().pattern[m] == BRICK:
            break
    table = lib.table()
    assert table.pattern[m] == BRICK
    # Without noise, grit and tints the pattern alone decides between colours a and b.
    zero = np.zeros(len(table), np.float32)
    table = replace(table, noise_amp=zero, speckle=zero, tint=zero)
    t = np.linspace(0, 1, 2000, dtype=np.float32)
    col = albedo(table, NoiseTile(np.random.default_rng(0)), np.full(t.shape, m),
                 np.full(t.shape, 0.05, np.float32), t, np.full(t.shape, 1e-4, np.float32))
    mortar = (np.linalg.norm(col - table.color_b[m], axis=1)
              < np.linalg.norm(col - table.color_a[m], axis=1))
    expected = table.line[m] / table.period[m, 1]  # mortar fraction along t
    assert abs(mortar.mean() - expected) < 0.01
    runs = np.count_nonzero(np.diff(mortar.astype(int)) == 1)  # one mortar run per brick row
    assert abs(runs - 1.0 / table.period[m, 1]) <= 1
