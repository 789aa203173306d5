"""Procedural materials and textures of the synthetic world (numpy + OpenCV, vectorised).

Texture coordinates: every triangle carries a surface-aligned frame of unit vectors
(tu, tv) in odom (tu horizontal along the surface where possible, tv = n x tu; see
`surface_frames`); a hit point p (odom, metres) has texture coordinates
(s, t) = (p . tu, p . tv) + the material's offset, in metres, so patterns stay glued to the
surface whatever the camera does. A material is a colour pair (a, b), a pattern (checker,
brick, stripes, tiles, blotches or plain) that mixes them with a period in metres, a
per-cell tint (bricks and tiles differ slightly) and fine multi-scale noise from a seeded
periodic noise tile. Every pattern and noise octave fades to its mean where one pixel
covers more than about half its feature (`footprint`, metres per pixel on the surface), a
cheap stand-in for mip-mapping that keeps distant textures from aliasing, so the same
surface point looks the same from every camera. Colours are linear RGB in [0, 1].
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, fields

import cv2
import numpy as np

PLAIN, CHECKER, BRICK, STRIPES, TILES, BLOTCHES = range(6)
PATTERN_NAMES = ("plain", "checker", "brick", "stripes", "tiles", "blotches")

# Fine noise on every surface: feature sizes (metres) and relative weights of the octaves.
NOISE_OCTAVES_M = (3.0, 1.0, 0.3, 0.1, 0.03)
NOISE_OCTAVE_WEIGHTS = (0.3, 0.35, 0.4, 0.45, 0.45)
TEXELS_PER_FEATURE = 4.0  # the noise tile's features are about this many texels wide

Range = tuple[float, float]


@dataclass(frozen=True)
class Palette:
    """How materials of one kind are drawn: HSV ranges, patterns and the second colour."""

    hue: Range  # degrees
    sat: Range
    val: Range
    patterns: tuple[tuple[int, Range, Range], ...]  # (pattern, period_s range, period_t range)
    second: str = "dark"  # dark | light | mortar | other | black: how colour b relates to a
    line: Range = (0.005, 0.015)  # mortar / grout width, metres
    tint: Range = (0.05, 0.15)  # per-cell brightness variation of bricks and tiles
    grain: float = 1.0  # multiplies the fine-noise amplitude
    speckle: Range = (0.06, 0.14)  # brightness amplitude of small random cells (grit)
    speckle_cell: Range = (0.02, 0.06)  # size of those cells, metres


PALETTES: dict[str, Palette] = {
    "wall": Palette((0, 360), (0.03, 0.3), (0.55, 0.9),
                    ((PLAIN, (1, 1), (1, 1)), (STRIPES, (0.08, 0.3), (1, 1)),
                     (TILES, (0.2, 0.5), (0.2, 0.5)), (BLOTCHES, (0.3, 1.2), (0.3, 1.2)))),
    "floor": Palette((15, 45), (0.15, 0.5), (0.35, 0.75),
                     ((CHECKER, (0.3, 0.8), (0.3, 0.8)), (TILES, (0.3, 0.6), (0.3, 0.6)),
                      (BRICK, (0.8, 1.6), (0.1, 0.2))), line=(0.003, 0.01)),
    "ceiling": Palette((0, 360), (0.0, 0.1), (0.7, 0.95),
                       ((TILES, (0.5, 0.7), (0.5, 0.7)), (BLOTCHES, (0.4, 1.0), (0.4, 1.0))),
                       line=(0.01, 0.03)),
    "furniture": Palette((10, 50), (0.2, 0.7), (0.25, 0.8),
                         ((STRIPES, (0.01, 0.04), (1, 1)), (PLAIN, (1, 1), (1, 1)),
                          (CHECKER, (0.1, 0.3), (0.1, 0.3)),
                          (BLOTCHES, (0.05, 0.2), (0.05, 0.2)))),
    "column": Palette((0, 360), (0.0, 0.25), (0.45, 0.85),
                      ((PLAIN, (1, 1), (1, 1)), (BRICK, (0.2, 0.3), (0.06, 0.1)),
                       (BLOTCHES, (0.2, 0.6), (0.2, 0.6))), second="mortar"),
    "facade": Palette((0, 60), (0.1, 0.6), (0.35, 0.85),
                      ((BRICK, (0.2, 0.3), (0.06, 0.09)), (TILES, (1.2, 3.0), (1.5, 3.2)),
                       (BLOTCHES, (0.5, 2.0), (0.5, 2.0)), (STRIPES, (0.3, 1.2), (1, 1))),
                      second="mortar", line=(0.008, 0.2)),
    "road": Palette((0, 360), (0.0, 0.08), (0.18, 0.35),
                    ((BLOTCHES, (0.4, 2.0), (0.4, 2.0)),), second="light", grain=1.6,
                    speckle=(0.12, 0.22), speckle_cell=(0.015, 0.04)),
    "sidewalk": Palette((0, 40), (0.0, 0.15), (0.5, 0.75),
                        ((TILES, (0.3, 0.6), (0.3, 0.6)), (BRICK, (0.2, 0.3), (0.1, 0.15))),
                        line=(0.005, 0.015)),
    "car": Palette((0, 360), (0.3, 0.9), (0.3, 0.9), ((PLAIN, (1, 1), (1, 1)),), grain=0.5,
                   speckle=(0.02, 0.05)),
    "glass": Palette((190, 220), (0.1, 0.3), (0.15, 0.3), ((BLOTCHES, (0.3, 0.8), (0.3, 0.8)),),
                     second="light"),
    "tyre": Palette((0, 360), (0.0, 0.05), (0.05, 0.12), ((PLAIN, (1, 1), (1, 1)),),
                    grain=0.5),
    "pole": Palette((0, 360), (0.0, 0.15), (0.3, 0.65),
                    ((PLAIN, (1, 1), (1, 1)), (STRIPES, (0.2, 0.5), (1, 1)))),
    "tree": Palette((80, 140), (0.4, 0.8), (0.22, 0.5), ((BLOTCHES, (0.1, 0.35), (0.1, 0.35)),),
                    second="dark"),
    "trunk": Palette((18, 35), (0.3, 0.6), (0.2, 0.4), ((STRIPES, (0.03, 0.08), (1, 1)),)),
    "ramp": Palette((40, 60), (0.7, 0.95), (0.7, 0.95), ((STRIPES, (0.2, 0.4), (1, 1)),),
                    second="black"),
    "crate": Palette((20, 40), (0.3, 0.6), (0.4, 0.75),
                     ((BRICK, (0.6, 1.0), (0.08, 0.15)), (STRIPES, (0.02, 0.05), (1, 1))),
                     line=(0.004, 0.01)),
    # Moving objects (dynamic.py): clothes of persons, bodies of driving cars.
    "clothing": Palette((0, 360), (0.2, 0.8), (0.2, 0.85),
                        ((STRIPES, (0.08, 0.3), (1, 1)), (CHECKER, (0.1, 0.3), (0.1, 0.3)),
                         (BLOTCHES, (0.1, 0.4), (0.1, 0.4))), second="other"),
    "vehicle": Palette((0, 360), (0.3, 0.9), (0.3, 0.9),
                       ((BLOTCHES, (0.3, 1.0), (0.3, 1.0)), (STRIPES, (0.3, 0.8), (1, 1))),
                       speckle=(0.04, 0.1)),
}


@dataclass(frozen=True)
class MaterialTable:
    """All materials of a scene as arrays indexed by material id."""

    color_a: np.ndarray  # (M, 3) float32 linear RGB
    color_b: np.ndarray  # (M, 3) float32
    pattern: np.ndarray  # (M,) int8, one of PLAIN .. BLOTCHES
    period: np.ndarray  # (M, 2) float32 pattern period along s and t, metres
    offset: np.ndarray  # (M, 2) float32 texture offset, metres
    line: np.ndarray  # (M,) float32 mortar / grout width, metres
    tint: np.ndarray  # (M,) float32 per-cell brightness variation
    noise_amp: np.ndarray  # (M,) float32 fine-noise amplitude
    speckle: np.ndarray  # (M,) float32 amplitude of random small cells
    speckle_cell: np.ndarray  # (M,) float32 their size, metres
    key: np.ndarray  # (M,) uint32 hash key of the material (per-cell tints)
    kinds: tuple[str, ...]  # (M,) palette name of each material

    def __len__(self) -> int:
        """Number of materials."""
        return int(self.pattern.shape[0])


class MaterialLibrary:
    """Materials drawn from palettes with a seeded generator; `table()` freezes them."""

    def __init__(self, rng: np.random.Generator, noise_amp: Range = (0.15, 0.35)) -> None:
        """Start an empty library drawing from `rng`; `noise_amp` is the fine-noise range."""
        self._rng = rng
        self._noise_amp = noise_amp
        self._rows: list[tuple] = []

    def add(self, kind: str) -> int:
        """Draw one material of palette `kind`; returns its id."""
        if kind not in PALETTES:
            raise KeyError(f"unknown material kind '{kind}'; known: {', '.join(PALETTES)}")
        pal = PALETTES[kind]
        rng = self._rng
        a = _hsv(rng, pal.hue, pal.sat, pal.val)
        if pal.second == "dark":
            b = a * rng.uniform(0.35, 0.65)
        elif pal.second == "light":
            b = a + (1.0 - a) * rng.uniform(0.25, 0.5)
        elif pal.second == "mortar":
            b = np.full(3, rng.uniform(0.55, 0.8))
        elif pal.second == "black":
            b = np.full(3, rng.uniform(0.03, 0.08))
        else:
            b = _hsv(rng, pal.hue, pal.sat, pal.val)
        pattern, ps, pt = pal.patterns[int(rng.integers(len(pal.patterns)))]
        period = (rng.uniform(*ps), rng.uniform(*pt))
        line = min(rng.uniform(*pal.line), 0.25 * min(period))
        self._rows.append((a, b, pattern, period, rng.uniform(0.0, 50.0, 2), line,
                           rng.uniform(*pal.tint), rng.uniform(*self._noise_amp) * pal.grain,
                           int(rng.integers(1, 2**31 - 1)), kind, rng.uniform(*pal.speckle),
                           rng.uniform(*pal.speckle_cell)))
        return len(self._rows) - 1

    def table(self) -> MaterialTable:
        """The materials added so far, as arrays."""
        rows = self._rows
        f32 = np.float32
        return MaterialTable(
            color_a=np.array([r[0] for r in rows], f32).reshape(-1, 3),
            color_b=np.clip(np.array([r[1] for r in rows], f32).reshape(-1, 3), 0.0, 1.0),
            pattern=np.array([r[2] for r in rows], np.int8),
            period=np.array([r[3] for r in rows], f32).reshape(-1, 2),
            offset=np.array([r[4] for r in rows], f32).reshape(-1, 2),
            line=np.array([r[5] for r in rows], f32),
            tint=np.array([r[6] for r in rows], f32),
            noise_amp=np.array([r[7] for r in rows], f32),
            key=np.array([r[8] for r in rows], np.uint32),
            kinds=tuple(r[9] for r in rows),
            speckle=np.array([r[10] for r in rows], f32),
            speckle_cell=np.array([r[11] for r in rows], f32))


def merge_tables(a: MaterialTable, b: MaterialTable) -> MaterialTable:
    """The materials of `a` followed by those of `b` (ids of b shift by len(a))."""
    arrays = {f.name: np.concatenate([getattr(a, f.name), getattr(b, f.name)])
              for f in fields(MaterialTable) if f.name != "kinds"}
    return MaterialTable(kinds=a.kinds + b.kinds, **arrays)


def _hsv(rng: np.random.Generator, hue: Range, sat: Range, val: Range) -> np.ndarray:
    """A random linear-RGB colour (3,) from HSV ranges (hue in degrees)."""
    h = (rng.uniform(*hue) % 360.0) / 360.0
    return np.array(colorsys.hsv_to_rgb(h, rng.uniform(*sat), rng.uniform(*val)))


def hash01(i: np.ndarray, j: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Deterministic pseudo-random values in [0, 1) (float32) of integer cells and keys."""
    h = (np.asarray(i).astype(np.int64).astype(np.uint32) * np.uint32(0x8DA6B343)
         ^ np.asarray(j).astype(np.int64).astype(np.uint32) * np.uint32(0xD8163841)
         ^ np.asarray(key).astype(np.uint32) * np.uint32(0xCB1AB31F))
    h ^= h >> np.uint32(13)
    h *= np.uint32(0x5BD1E995)
    h ^= h >> np.uint32(15)
    return (h >> np.uint32(8)).astype(np.float32) * np.float32(1.0 / (1 << 24))


def surface_frames(normals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Texture axes (tu, tv), each (F, 3) float32, of triangles with unit normals (F, 3).

    tu is horizontal along the surface (z x n) for walls and slopes, world x for surfaces
    within 25 degrees of horizontal; tv = n x tu (vertical on walls).
    """
    n = np.asarray(normals, dtype=np.float64)
    tu = np.cross(np.array([0.0, 0.0, 1.0]), n)  # (F, 3)
    flat = np.abs(n[:, 2]) > 0.9
    tu[flat] = np.array([1.0, 0.0, 0.0]) - n[flat, :1] * n[flat]
    tu /= np.maximum(np.linalg.norm(tu, axis=1, keepdims=True), 1e-12)
    tv = np.cross(n, tu)
    tv /= np.maximum(np.linalg.norm(tv, axis=1, keepdims=True), 1e-12)
    return tu.astype(np.float32), tv.astype(np.float32)


class NoiseTile:
    """A seeded periodic band-limited noise image, sampled bilinearly with wrap-around."""

    def __init__(self, rng: np.random.Generator, texels: int = 256) -> None:
        """Draw white noise and low-pass it in the Fourier domain (so it stays periodic)."""
        if texels < 16:
            raise ValueError(f"texture.tile_texels must be >= 16, got {texels}")
        white = rng.standard_normal((texels, texels))
        f = np.fft.fftfreq(texels)
        k2 = f[:, None] ** 2 + f[None, :] ** 2
        sigma = TEXELS_PER_FEATURE / 2.5  # texels; features are about 4 texels wide
        smooth = np.fft.ifft2(np.fft.fft2(white) * np.exp(-2.0 * np.pi**2 * sigma**2 * k2)).real
        smooth /= 2.2 * smooth.std()
        self.tile = np.clip(smooth, -1.0, 1.0).astype(np.float32)  # (T, T) in [-1, 1]
        self.texels = texels

    def sample(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Noise (N,) float32 in [-1, 1] at coordinates (N,) measured in feature sizes."""
        n = int(u.shape[0])
        if n == 0:
            return np.zeros(0, np.float32)
        cols = 1024  # cv2.remap wants 2D maps of moderate width
        rows = -(-n // cols)
        size = np.float32(self.texels)
        maps = []
        for coord in (u, v):
            m = np.zeros(rows * cols, np.float32)
            x = m[:n]
            np.multiply(coord, np.float32(TEXELS_PER_FEATURE), out=x, casting="unsafe")
            x -= np.floor(x * (1.0 / size)) * size  # wrap into [0, T) (faster than np.mod)
            maps.append(m.reshape(rows, cols))
        out = cv2.remap(self.tile, maps[0], maps[1], cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_WRAP)  # (rows, cols)
        return out.reshape(-1)[:n]


def _fade(x: np.ndarray, lo: float = 0.25, hi: float = 0.5) -> np.ndarray:
    """0 where x <= lo, 1 where x >= hi, linear between (x = pixel size / feature size)."""
    y = (x - np.float32(lo)) * np.float32(1.0 / (hi - lo))
    return np.minimum(np.maximum(y, np.float32(0.0)), np.float32(1.0))


def albedo(table: MaterialTable, noise: NoiseTile, mat: np.ndarray, s: np.ndarray,
           t: np.ndarray, footprint: np.ndarray) -> np.ndarray:
    """Surface colours (N, 3) float32 in [0, 1] of hits.

    Args:
        table: the scene's materials.
        noise: the scene's noise tile.
        mat: material id per hit (N,).
        s, t: texture coordinates per hit (N,), metres (see module docstring).
        footprint: metres on the surface covered by one pixel, per hit (N,).
    """
    f32 = np.float32
    one = f32(1.0)
    s = s.astype(f32) + table.offset[mat, 0]
    t = t.astype(f32) + table.offset[mat, 1]
    footprint = np.maximum(footprint.astype(f32), f32(1e-6))
    n = s.shape[0]
    mix = np.zeros(n, f32)  # 0 -> colour a, 1 -> colour b
    tint = np.ones(n, f32)
    pattern = table.pattern[mat]
    present = np.bincount(pattern, minlength=len(PATTERN_NAMES))
    for pid in np.flatnonzero(present):
        if pid == PLAIN:
            continue
        sel = np.flatnonzero(pattern == pid)
        m = mat[sel]
        ps, pt = table.period[m, 0], table.period[m, 1]
        us, ut = s[sel] / ps, t[sel] / pt
        fp = footprint[sel]
        cell_fade = _fade(fp / np.minimum(ps, pt))
        if pid == CHECKER:
            m01 = (np.floor(us) + np.floor(ut)) % f32(2.0)
            mix[sel] = m01 + (f32(0.5) - m01) * cell_fade
        elif pid == STRIPES:
            m01 = (us - np.floor(us) < 0.5).astype(f32)
            mix[sel] = m01 + (f32(0.5) - m01) * _fade(fp / ps)
        elif pid in (BRICK, TILES):
            row = np.floor(ut)
            su = us + f32(0.5) * (row % f32(2.0)) if pid == BRICK else us
            col = np.floor(su)
            line = table.line[m]
            ws, wt = line / ps, line / pt
            mortar = ((su - col < ws) | (ut - row < wt)).astype(f32)
            cover = ws + wt - ws * wt  # mean mortar fraction
            mix[sel] = mortar + (cover - mortar) * _fade(fp / line, 0.5, 1.0)
            rnd = hash01(col, row, table.key[m]) * f32(2.0) - one
            tint[sel] = one + table.tint[m] * rnd * (one - cell_fade)
        elif pid == BLOTCHES:
            val = noise.sample(us * f32(0.5) + f32(11.3), ut * f32(0.5) + f32(7.1))
            mix[sel] = np.minimum(np.maximum(f32(0.5) + f32(1.3) * val * (one - cell_fade),
                                             f32(0.0)), one)
    detail = np.zeros(n, f32)
    inv_fp = one / footprint
    for k, (lam, w) in enumerate(zip(NOISE_OCTAVES_M, NOISE_OCTAVE_WEIGHTS)):
        active = np.flatnonzero(inv_fp > f32(2.0 / lam))  # features wider than two pixels
        if active.size == 0:
            continue
        weight = np.minimum((inv_fp[active] * f32(lam) - f32(2.0)) * f32(0.5), one) * f32(w)
        shift = f32(17.0 * (k + 1))
        inv_lam = f32(1.0 / lam)
        detail[active] += weight * noise.sample(s[active] * inv_lam + shift,
                                                t[active] * inv_lam - f32(0.5) * shift)
    cell = table.speckle_cell[mat]
    grit = np.flatnonzero(footprint < f32(0.5) * cell)  # cells wider than two pixels
    if grit.size:
        c = cell[grit]
        m = mat[grit]
        rnd = hash01(np.floor(s[grit] / c), np.floor(t[grit] / c), table.key[m] + 1)
        amp = table.speckle[m] * (one - _fade(footprint[grit] / c))
        tint[grit] *= one + amp * (rnd * f32(2.0) - one)
    brightness = tint * (one + table.noise_amp[mat] * f32(2.0) * detail)
    ca = table.color_a[mat]  # (N, 3)
    out = ca + (table.color_b[mat] - ca) * mix[:, None]
    out *= brightness[:, None]
    return np.minimum(np.maximum(out, f32(0.0)), one)
