"""Real stereo photographs with true disparity, from installed packages only (issue 20).

Sources (nothing is downloaded):
- Debian `opencv-doc` ships the Middlebury 2006 pair *Aloe* in its examples' data folder
  (`aloeL.jpg`, `aloeR.jpg`, `aloeGT.png`; Debian may gzip them, `.gz` is read too). The
  GT png holds the left view's disparity in whole pixels at the images' resolution
  (scale 1; 0 = unknown), checked photometrically in test/test_real_images.py. No
  calibration ships, so the pair gets a documented *nominal rig*: identical pinhole
  cameras with a 60 deg horizontal field of view (f = W / 2 / tan 30 deg pixels), centred
  principal points and the Middlebury baseline B = 0.16 m.
- `scikit-image` ships the Middlebury 2014 pair *Motorcycle* (`skimage.data.
  stereo_motorcycle`, downsampled 4x) with float disparity (inf or NaN = unknown) and its
  real calibration: f = 994.978 px, cx0 = 311.193 px, cy = 254.877 px, doffs = cx1 - cx0
  = 31.086 px, B = 0.193 m.

Conventions: images are (H, W, 3) uint8 RGB; disparity is float32 pixels of the left
image, d = x_left - x_right on the same row, NaN = unknown. Depth along the left optical
axis is Z = f * B / (d + doffs) metres (doffs = cx_right - cx_left, 0 for the nominal
rig), so every pair is a scene consistent with its rig: with the nominal rig exactly,
up to the one global scale that the unknown real focal length and baseline leave open.
Rig poses follow DESIGN.md: base_link x forward, y left, z up; optical z forward, x
right, y down; the right camera sits B metres along the left camera's optical x axis.
"""

from __future__ import annotations

import gzip
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from depth_any_view.geometry.camera import PinholeCamera

# Where Debian's opencv-doc puts the sample data (first existing one wins).
OPENCV_DOC_DATA_DIRS = (Path("/usr/share/doc/opencv-doc/examples/data"),
                        Path("/usr/share/opencv4/samples/data"),
                        Path("/usr/share/doc/opencv-doc/samples/data"))
NOMINAL_HFOV_DEG = 60.0  # nominal rig: horizontal field of view, degrees
NOMINAL_BASELINE_M = 0.16  # nominal rig: baseline, metres (the Middlebury 2006 one)
CAMERA_HEIGHT_M = 1.4  # rig height above base_link, metres (as config/rig_front_array.yaml)
# Middlebury pairs of opencv-doc: name -> (left, right, GT png, disparity scale of the png)
OPENCV_DOC_PAIRS: dict[str, tuple[str, str, str, float]] = {
    "aloe": ("aloeL.jpg", "aloeR.jpg", "aloeGT.png", 1.0),
}
# Middlebury 2014 Motorcycle as scikit-image ships it (its docstring gives the calibration)
MOTORCYCLE_CALIBRATION = {"f": 994.978, "cx": 311.193, "cy": 254.877, "doffs": 31.086,
                          "baseline": 0.193}
# base_link <- optical rotation of a forward-looking camera (columns: optical x, y, z)
R_BASE_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


class RealDataMissing(FileNotFoundError):
    """A real-image source is not installed; the message says how to install it."""


@dataclass(frozen=True)
class StereoPair:
    """One rectified stereo pair with the left view's true disparity and its rig."""

    name: str  # e.g. 'aloe'
    left: np.ndarray  # (H, W, 3) uint8 RGB
    right: np.ndarray  # (H, W, 3) uint8 RGB
    disparity: np.ndarray  # (H, W) float32 pixels of the left image, NaN = unknown
    K_left: np.ndarray  # (3, 3) pixels
    K_right: np.ndarray  # (3, 3) pixels; cx differs from K_left's by doffs
    baseline: float  # metres, right camera along the left optical +x
    source: str  # where the files came from
    calibrated: bool  # True: the dataset's calibration; False: the nominal rig

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.left.shape[1], self.left.shape[0]

    @property
    def doffs(self) -> float:
        """cx_right - cx_left, pixels."""
        return float(self.K_right[0, 2] - self.K_left[0, 2])

    def depth(self) -> np.ndarray:
        """(H, W) float32 true depth of the left view, metres along z, NaN = unknown."""
        return depth_from_disparity(self.disparity, self.K_left[0, 0], self.baseline,
                                    doffs=self.doffs)

    def cameras(self) -> tuple[PinholeCamera, PinholeCamera]:
        """Distortion-free left and right cameras at the images' size."""
        w, h = self.size
        return (PinholeCamera(width=w, height=h, K=self.K_left),
                PinholeCamera(width=w, height=h, K=self.K_right))

    def poses(self) -> tuple[np.ndarray, np.ndarray]:
        """(4, 4) T_base_cam of the left and right cameras (see rig_poses)."""
        return rig_poses(self.baseline)

    def resized(self, max_width: int) -> StereoPair:
        """The pair scaled down to at most `max_width` pixels wide (itself if narrower).

        Images are area-averaged, disparity is resampled with the nearest pixel and scaled
        by the width ratio (unknown stays unknown), K follows PinholeCamera.resized.
        """
        w, h = self.size
        if max_width <= 0 or w <= max_width:
            return self
        nw, nh = int(max_width), max(1, int(round(h * max_width / w)))
        sx = nw / w
        left = cv2.resize(self.left, (nw, nh), interpolation=cv2.INTER_AREA)
        right = cv2.resize(self.right, (nw, nh), interpolation=cv2.INTER_AREA)
        disp = cv2.resize(self.disparity, (nw, nh), interpolation=cv2.INTER_NEAREST) * sx
        cam_l, cam_r = self.cameras()
        return replace(self, left=left, right=right, disparity=disp.astype(np.float32),
                       K_left=cam_l.resized(nw, nh).K, K_right=cam_r.resized(nw, nh).K)


def nominal_intrinsics(width: int, height: int, hfov_deg: float = NOMINAL_HFOV_DEG
                       ) -> np.ndarray:
    """(3, 3) K of the nominal rig: square pixels, f = W / 2 / tan(hfov / 2), centred."""
    f = 0.5 * width / math.tan(math.radians(hfov_deg) / 2.0)
    return np.array([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0],
                     [0.0, 0.0, 1.0]])


def depth_from_disparity(disparity: np.ndarray, focal: float, baseline: float, *,
                         doffs: float = 0.0) -> np.ndarray:
    """Depth Z = focal * baseline / (d + doffs), metres; NaN where d is unknown or d + doffs
    <= 0 (a point at or beyond infinity).

    Args:
        disparity: (H, W) pixels, NaN / inf = unknown.
        focal: pixels.
        baseline: metres.
        doffs: cx_right - cx_left, pixels.
    """
    d = np.asarray(disparity, dtype=np.float64) + doffs
    with np.errstate(divide="ignore", invalid="ignore"):
        z = focal * baseline / d
    return np.where(np.isfinite(d) & (d > 0), z, np.nan).astype(np.float32)


def decode_middlebury_png(raw: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Disparity (H, W) float32 pixels from a Middlebury GT png (value = d * scale,
    0 = unknown -> NaN)."""
    if raw.ndim == 3:
        raw = raw[..., 0]
    d = raw.astype(np.float32) / float(scale)
    return np.where(raw > 0, d, np.float32(np.nan)).astype(np.float32)


def rig_poses(baseline: float, height: float = CAMERA_HEIGHT_M
              ) -> tuple[np.ndarray, np.ndarray]:
    """(4, 4) T_base_cam of a parallel, forward-looking pair: the left camera `height` metres
    above base_link's origin, the right one `baseline` metres along its optical +x (which
    is base_link -y)."""
    T_left = np.eye(4)
    T_left[:3, :3] = R_BASE_OPTICAL
    T_left[:3, 3] = [0.0, 0.0, height]
    T_right = T_left.copy()
    T_right[:3, 3] = T_left[:3, 3] + R_BASE_OPTICAL @ np.array([baseline, 0.0, 0.0])
    return T_left, T_right


# ---------------------------------------------------------------------------- sources
def opencv_data_dir(candidates: Sequence[Path] = OPENCV_DOC_DATA_DIRS) -> Path:
    """The folder of opencv-doc's sample data; RealDataMissing naming the install command."""
    for d in candidates:
        if (d / "aloeL.jpg").is_file() or (d / "aloeL.jpg.gz").is_file():
            return d
    raise RealDataMissing("the OpenCV sample data (Middlebury stereo pairs) is not installed "
                          f"(looked in {', '.join(str(d) for d in candidates)}); install it "
                          "with `apt-get install opencv-doc` (scripts/bootstrap.sh does)")


def read_image(path: Path, flags: int = cv2.IMREAD_UNCHANGED) -> np.ndarray:
    """An image file, or its Debian-gzipped `.gz` twin; colour comes back as RGB."""
    path = Path(path)
    gz = path.with_name(path.name + ".gz")
    if path.is_file():
        data = path.read_bytes()
    elif gz.is_file():
        data = gzip.decompress(gz.read_bytes())
    else:
        raise RealDataMissing(f"{path} (or {gz.name}) is missing; reinstall opencv-doc")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if img is None:
        raise ValueError(f"{path} is not a readable image")
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return img


def load_opencv_pair(name: str, data_dir: Path | None = None) -> StereoPair:
    """A Middlebury pair of opencv-doc (OPENCV_DOC_PAIRS) with the nominal rig."""
    if name not in OPENCV_DOC_PAIRS:
        raise ValueError(f"unknown opencv-doc pair '{name}'; known: {sorted(OPENCV_DOC_PAIRS)}")
    d = data_dir or opencv_data_dir()
    fl, fr, fgt, scale = OPENCV_DOC_PAIRS[name]
    left = read_image(d / fl, cv2.IMREAD_COLOR)
    right = read_image(d / fr, cv2.IMREAD_COLOR)
    disp = decode_middlebury_png(read_image(d / fgt, cv2.IMREAD_UNCHANGED), scale)
    if not left.shape == right.shape or left.shape[:2] != disp.shape:
        raise ValueError(f"pair '{name}' in {d}: left {left.shape}, right {right.shape} and "
                         f"GT {disp.shape} differ in size")
    K = nominal_intrinsics(left.shape[1], left.shape[0])
    return StereoPair(name, left, right, disp, K, K.copy(), NOMINAL_BASELINE_M,
                      source=f"opencv-doc {d}", calibrated=False)


def load_motorcycle() -> StereoPair:
    """Middlebury 2014 Motorcycle from scikit-image, with its real calibration."""
    try:
        from skimage import data as skdata
    except ImportError as exc:
        raise RealDataMissing("scikit-image is not installed (pip install scikit-image; it "
                              "is in requirements.txt)") from exc
    left, right, disp = skdata.stereo_motorcycle()
    disp = np.where(np.isfinite(disp), disp, np.nan).astype(np.float32)  # inf = unknown
    c = MOTORCYCLE_CALIBRATION
    K_left = np.array([[c["f"], 0.0, c["cx"]], [0.0, c["f"], c["cy"]], [0.0, 0.0, 1.0]])
    K_right = K_left.copy()
    K_right[0, 2] += c["doffs"]
    return StereoPair("motorcycle", np.ascontiguousarray(left), np.ascontiguousarray(right),
                      disp, K_left, K_right, c["baseline"], source="scikit-image "
                      "skimage.data.stereo_motorcycle", calibrated=True)


PAIR_LOADERS = {"aloe": lambda: load_opencv_pair("aloe"), "motorcycle": load_motorcycle}


def load_pairs(names: Sequence[str] | None = None, *, max_width: int = 0) -> list[StereoPair]:
    """The named pairs (default: all of PAIR_LOADERS), scaled to at most `max_width` pixels
    wide (0 = as shipped). An explicitly named pair whose source is missing raises
    RealDataMissing; by default a missing scikit-image only drops Motorcycle."""
    wanted = list(names) if names else list(PAIR_LOADERS)
    unknown = [n for n in wanted if n not in PAIR_LOADERS]
    if unknown:
        raise ValueError(f"unknown pair(s) {unknown}; known: {sorted(PAIR_LOADERS)}")
    pairs = []
    for n in wanted:
        try:
            pairs.append(PAIR_LOADERS[n]().resized(max_width))
        except RealDataMissing:
            if names or n == "aloe":
                raise
    return pairs


def photometric_error(left: np.ndarray, right: np.ndarray, disparity: np.ndarray, *,
                      offset: float = 0.0) -> float:
    """Mean absolute colour difference (0-255) between left pixel x and right pixel
    x - (d + offset) on the same row (bilinear), over pixels with known disparity that
    land inside the right image."""
    h, w = disparity.shape
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    known = np.isfinite(disparity)
    map_x = xs - np.where(known, disparity, 0.0).astype(np.float32) - np.float32(offset)
    ok = known & (map_x >= 0) & (map_x <= w - 1)
    warped = cv2.remap(right.astype(np.float32), map_x, ys, cv2.INTER_LINEAR)  # (H, W, 3)
    diff = np.abs(warped - left.astype(np.float32)).mean(axis=-1)  # (H, W)
    return float(diff[ok].mean()) if ok.any() else math.nan


def sample_photographs(names: Sequence[str] = ("astronaut", "coffee", "chelsea", "rocket")
                       ) -> dict[str, np.ndarray]:
    """scikit-image's sample photographs (no ground truth; for qualitative figures), as
    (H, W, 3) uint8 RGB; {} when scikit-image is not installed."""
    try:
        from skimage import data as skdata
    except ImportError:
        return {}
    out = {}
    for n in names:
        img = np.asarray(getattr(skdata, n)())
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        out[n] = np.ascontiguousarray(img[..., :3]).astype(np.uint8)
    return out
