"""Pinhole cameras with lens distortion, built from sensor_msgs/CameraInfo fields.

Conventions (stated once for the package, see docs/ARCHITECTURE.md):
- Optical frame: x right, y down, z forward (REP 103 `_optical` frames, OpenCV).
- Pixel (u, v) = (column, row); the centre of pixel (i, j) is at u = i, v = j, as in OpenCV
  and ROS CameraInfo. Depth is metres along z.
- Distortion models as in ROS: `plumb_bob` (k1 k2 p1 p2 k3), `rational_polynomial`
  (k1 k2 p1 p2 k3 k4 k5 k6) and `equidistant` (fisheye k1 k2 k3 k4). `project` and
  `backproject` work on the raw (distorted) image with K and D; R and P describe the
  rectified image, used by `undistort_rectify_maps`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

DISTORTION_LENGTHS = {"plumb_bob": (5,), "rational_polynomial": (8, 14), "equidistant": (4,),
                      "none": (0,)}


class CalibrationError(ValueError):
    """A camera calibration is unusable; the message names the CameraInfo field."""


def _as_array(values: Any, shape: tuple[int, ...], name: str) -> np.ndarray:
    """Array of `shape` from a flat list or array, or CalibrationError naming `name`."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size != int(np.prod(shape)):
        raise CalibrationError(f"CameraInfo field '{name}' has {arr.size} values, "
                               f"expected {int(np.prod(shape))}")
    arr = arr.reshape(shape)
    if not np.all(np.isfinite(arr)):
        raise CalibrationError(f"CameraInfo field '{name}' holds NaN or inf: {arr.ravel()}")
    return arr


@dataclass(frozen=True)
class PinholeCamera:
    """A calibrated camera: image size, intrinsics K, distortion D, rectification R, P."""

    width: int  # pixels
    height: int  # pixels
    K: np.ndarray  # (3, 3) intrinsics of the raw image
    D: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (n,) distortion coefficients
    distortion_model: str = "none"  # plumb_bob | rational_polynomial | equidistant | none
    R: np.ndarray = field(default_factory=lambda: np.eye(3))  # (3, 3) rectification rotation
    P: np.ndarray | None = None  # (3, 4) projection of the rectified image; None = [K | 0]

    def __post_init__(self) -> None:
        """Validate every field and normalise arrays, raising CalibrationError by field."""
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise CalibrationError(f"CameraInfo 'width'/'height' must be positive, got "
                                   f"{self.width}x{self.height}")
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))
        K = _as_array(self.K, (3, 3), "k")
        if K[0, 0] <= 0 or K[1, 1] <= 0:
            raise CalibrationError(f"CameraInfo field 'k' has a non-positive focal length "
                                   f"(fx={K[0, 0]}, fy={K[1, 1]}); the camera is not calibrated")
        if not np.allclose(K[2], [0.0, 0.0, 1.0]):
            raise CalibrationError(f"CameraInfo field 'k' must end with row [0, 0, 1], "
                                   f"got {K[2].tolist()}")
        model = self.distortion_model or "none"
        D = np.asarray(self.D, dtype=np.float64).ravel()
        if model not in DISTORTION_LENGTHS:
            raise CalibrationError(
                f"CameraInfo field 'distortion_model' is '{model}', supported: "
                f"{', '.join(m for m in DISTORTION_LENGTHS if m != 'none')} (or empty)")
        if D.size == 0 and model in ("plumb_bob", "rational_polynomial"):
            D = np.zeros(DISTORTION_LENGTHS[model][0])  # drivers often send an empty D
        if D.size not in DISTORTION_LENGTHS[model]:
            raise CalibrationError(
                f"CameraInfo field 'd' has {D.size} coefficients but distortion_model "
                f"'{model}' needs {' or '.join(map(str, DISTORTION_LENGTHS[model]))}")
        if not np.all(np.isfinite(D)):
            raise CalibrationError(f"CameraInfo field 'd' holds NaN or inf: {D.tolist()}")
        R = _as_array(self.R, (3, 3), "r")
        if np.allclose(R, 0.0):
            R = np.eye(3)  # an all-zero R means "not set" in many drivers
        P = None if self.P is None else _as_array(self.P, (3, 4), "p")
        if P is None or P[0, 0] <= 0 or P[1, 1] <= 0:
            P = np.hstack([K, np.zeros((3, 1))])  # uncalibrated P: use the raw intrinsics
        object.__setattr__(self, "K", K)
        object.__setattr__(self, "D", D)
        object.__setattr__(self, "distortion_model", model)
        object.__setattr__(self, "R", R)
        object.__setattr__(self, "P", P)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_camera_info(cls, width: int, height: int, distortion_model: str, d: Any,
                         k: Any, r: Any, p: Any) -> PinholeCamera:
        """Camera from the fields of a sensor_msgs/CameraInfo (flat arrays as in the msg).

        Besides the checks of every PinholeCamera, a principal point (cx, cy) outside the
        image (cx < 0 or > width, cy < 0 or > height, pixels) is refused: in a CameraInfo
        it means a corrupt or mixed-up calibration (CalibrationError names the field).
        """
        cam = cls(width=width, height=height, K=k, D=d, distortion_model=distortion_model,
                  R=r, P=p)
        for name, value, size in (("cx", cam.cx, cam.width), ("cy", cam.cy, cam.height)):
            if not 0.0 <= value <= size:
                raise CalibrationError(
                    f"CameraInfo field 'k' has principal point {name} = {value:g} pixels, "
                    f"outside the {cam.width}x{cam.height} image (0 to {size}); k is "
                    "[fx, 0, cx, 0, fy, cy, 0, 0, 1]: check the calibration")
        return cam

    @classmethod
    def from_intrinsics(cls, width: int, height: int, fx: float, fy: float, cx: float,
                        cy: float) -> PinholeCamera:
        """Distortion-free camera from focal lengths and principal point in pixels."""
        K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
        return cls(width=width, height=height, K=K)

    @classmethod
    def from_fov(cls, width: int, height: int, hfov_rad: float) -> PinholeCamera:
        """Distortion-free camera with square pixels and a horizontal field of view (rad)."""
        if not 0.0 < hfov_rad < np.pi:
            raise CalibrationError(f"horizontal field of view must be in (0, pi) rad, "
                                   f"got {hfov_rad}")
        f = 0.5 * width / np.tan(0.5 * hfov_rad)
        return cls.from_intrinsics(width, height, f, f, (width - 1) / 2.0, (height - 1) / 2.0)

    # ------------------------------------------------------------------ properties
    @property
    def fx(self) -> float:
        """Focal length along x in pixels."""
        return float(self.K[0, 0])

    @property
    def fy(self) -> float:
        """Focal length along y in pixels."""
        return float(self.K[1, 1])

    @property
    def cx(self) -> float:
        """Principal point column in pixels."""
        return float(self.K[0, 2])

    @property
    def cy(self) -> float:
        """Principal point row in pixels."""
        return float(self.K[1, 2])

    @property
    def has_distortion(self) -> bool:
        """True when any distortion coefficient is non-zero."""
        return self.distortion_model != "none" and bool(np.any(self.D != 0.0))

    # ------------------------------------------------------------------ distortion
    def distort_normalized(self, xy: np.ndarray) -> np.ndarray:
        """Apply lens distortion to normalised image coordinates (N, 2) -> (N, 2)."""
        xy = np.asarray(xy, dtype=np.float64)
        if not self.has_distortion:
            return xy
        x, y = xy[:, 0], xy[:, 1]
        if self.distortion_model == "equidistant":
            k1, k2, k3, k4 = self.D
            r = np.hypot(x, y)
            theta = np.arctan(r)
            t2 = theta * theta
            theta_d = theta * (1 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4))))
            scale = np.where(r > 1e-12, theta_d / np.maximum(r, 1e-12), 1.0)
            return xy * scale[:, None]
        d = np.zeros(14)
        d[: self.D.size] = self.D
        k1, k2, p1, p2, k3, k4, k5, k6 = d[:8]
        r2 = x * x + y * y
        radial = (1 + r2 * (k1 + r2 * (k2 + r2 * k3))) / (1 + r2 * (k4 + r2 * (k5 + r2 * k6)))
        xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
        return np.stack([xd, yd], axis=1)

    def undistort_pixels(self, uv: np.ndarray) -> np.ndarray:
        """Normalised, undistorted coordinates (N, 2) of raw pixel positions (N, 2)."""
        uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
        if not self.has_distortion:
            return (uv - [self.cx, self.cy]) / [self.fx, self.fy]
        pts = uv.reshape(-1, 1, 2)
        if self.distortion_model == "equidistant":
            out = cv2.fisheye.undistortPoints(pts, self.K, self.D,
                                              criteria=(cv2.TERM_CRITERIA_COUNT
                                                        | cv2.TERM_CRITERIA_EPS, 30, 1e-10))
        else:
            out = cv2.undistortPoints(pts, self.K, self.D, None, None, None,
                                      (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50,
                                       1e-12))
        return out.reshape(-1, 2)

    # ------------------------------------------------------------------ projection
    def project(self, p_cam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixels of camera-frame points.

        Args:
            p_cam: points (N, 3) in the optical frame, metres.

        Returns:
            uv (N, 2) raw-image pixel coordinates and valid (N,) bool: in front of the
            camera (z > 0) and inside the image (pixel centres at integers).
        """
        p = np.asarray(p_cam, dtype=np.float64).reshape(-1, 3)
        z = p[:, 2]
        front = z > 1e-9
        safe_z = np.where(front, z, 1.0)
        xy = p[:, :2] / safe_z[:, None]
        xy_d = self.distort_normalized(xy)
        uv = xy_d * [self.fx, self.fy] + [self.cx, self.cy]
        uv[:, 0] += self.K[0, 1] * xy_d[:, 1]  # skew, zero for almost every camera
        inside = ((uv[:, 0] >= -0.5) & (uv[:, 0] < self.width - 0.5)
                  & (uv[:, 1] >= -0.5) & (uv[:, 1] < self.height - 0.5))
        return uv, front & inside & np.all(np.isfinite(uv), axis=1)

    def backproject(self, uv: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """Camera-frame points (N, 3) of raw pixels (N, 2) at depths (N,) along z (metres)."""
        xy = self.undistort_pixels(uv)
        z = np.asarray(depth, dtype=np.float64).reshape(-1)
        return np.concatenate([xy * z[:, None], z[:, None]], axis=1)

    def pixel_rays(self) -> np.ndarray:
        """Rays (H, W, 3) through every pixel centre, undistorted, scaled to z = 1."""
        u, v = np.meshgrid(np.arange(self.width, dtype=np.float64),
                           np.arange(self.height, dtype=np.float64))
        uv = np.stack([u.ravel(), v.ravel()], axis=1)  # (H*W, 2)
        xy = self.undistort_pixels(uv)
        rays = np.concatenate([xy, np.ones((xy.shape[0], 1))], axis=1)
        return rays.reshape(self.height, self.width, 3)  # (H, W, 3)

    def depth_to_points(self, depth: np.ndarray) -> np.ndarray:
        """Camera-frame points (H, W, 3) of a depth image (H, W) in metres; NaN stays NaN."""
        depth = np.asarray(depth)
        if depth.shape != (self.height, self.width):
            raise CalibrationError(f"depth image is {depth.shape[1]}x{depth.shape[0]} but the "
                                   f"CameraInfo says {self.width}x{self.height}")
        return self.pixel_rays() * depth[..., None]

    # ------------------------------------------------------------------ images
    def undistort_rectify_maps(self) -> tuple[np.ndarray, np.ndarray]:
        """cv2.remap maps (H, W) float32 from the rectified image (R, P) to the raw image."""
        size = (self.width, self.height)
        newK = self.P[:, :3]
        if self.distortion_model == "equidistant":
            return cv2.fisheye.initUndistortRectifyMap(self.K, self.D, self.R, newK, size,
                                                       cv2.CV_32FC1)
        D = self.D if self.distortion_model != "none" else None
        return cv2.initUndistortRectifyMap(self.K, D, self.R, newK, size, cv2.CV_32FC1)

    def resized(self, width: int, height: int) -> PinholeCamera:
        """The same camera for the image resized to width x height (pixel-centre exact)."""
        sx, sy = width / self.width, height / self.height
        S = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])
        return PinholeCamera(width=width, height=height, K=S @ self.K, D=self.D.copy(),
                             distortion_model=self.distortion_model, R=self.R.copy(),
                             P=S @ self.P)

    def camera_info_fields(self) -> dict[str, Any]:
        """The fields of a sensor_msgs/CameraInfo for this camera (flat float lists)."""
        model = "plumb_bob" if self.distortion_model == "none" else self.distortion_model
        D = np.zeros(5) if self.distortion_model == "none" else self.D
        return {"width": self.width, "height": self.height, "distortion_model": model,
                "d": D.astype(float).tolist(), "k": self.K.ravel().tolist(),
                "r": self.R.ravel().tolist(), "p": self.P.ravel().tolist()}
