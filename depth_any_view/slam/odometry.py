"""Odometry consumers of the node's output: KISS-ICP on the fused cloud, Open3D RGB-D.

Both estimate T_odom_base (4, 4), base_link -> odom in metres, where `odom` is base_link
at the first registered set (the estimate starts at the identity). Neither ever sees the
robot's own odometry: that is the ground truth they are scored against.

- `KissIcpOdometry` wraps KISS-ICP (kiss-icp, MIT, Vizzo et al. 2023), a LiDAR odometry
  that registers one point cloud per frame against a local voxel map: the six-view fused
  cloud of the node in base_link is a 360-degree pseudo-LiDAR scan taken at one instant,
  so motion compensation (deskew) is off and every point gets the set's time.
- `RgbdOdometry` runs Open3D's RGB-D odometry (Steinbruecker et al. 2011 / Park et al. 2017,
  `open3d.pipelines.odometry.compute_rgbd_odometry`) per camera between each set and the
  keyframe (the last set that had moved `keyframe_m` metres or turned `keyframe_deg`
  degrees from the keyframe before it, so that small steps do not add up their errors:
  on two 200-frame drives, 0.5 m keyframes cut the RPE over 10 m by 19-45 % with
  predicted depth and by 59-86 % with exact depth), maps each camera's motion into
  base_link through its extrinsics
  (T_base_key_base_cur = T_base_cam T_cam_key_cam_cur T_base_cam^-1), discards the
  cameras that diverged (a step beyond `max_step_m` / `max_step_deg`) and combines the
  others robustly: the cameras whose translation lies within `inlier_m` (plus 10 % of
  the step) of the median translation are averaged (translation mean, rotation as the
  normalised mean of sign-aligned quaternions). When no camera succeeds the step is
  predicted with constant velocity, counted as a failure, and the set becomes the keyframe.

Settings come from config/slam.yaml (`kiss_icp:` and `open3d_rgbd:`, read by
slam/slam_config.py `load_slam_config`). kiss_icp and open3d are imported when a consumer is
built, so this module imports with numpy alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from depth_any_view.geometry.camera import PinholeCamera
from depth_any_view.geometry.transforms import quat_to_rotmat, rotmat_to_quat

MIN_POINTS = 100  # fewer points than this in a cloud: no registration (constant velocity)
RGBD_METHODS = ("color", "hybrid")


def _positive(owner: str, name: str, value: Any, *, allow_zero: bool = False) -> None:
    """ValueError naming `owner.name` unless value is a finite number > 0 (or >= 0)."""
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(value) and (value >= 0 if allow_zero else value > 0))
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{owner}.{name} must be a finite number {bound}, got {value!r}")


def _check_pose_step(stamp_s: float, last: float | None, owner: str) -> float:
    """The stamp as float seconds; ValueError when it is not after the previous one."""
    stamp = float(stamp_s)
    if not math.isfinite(stamp):
        raise ValueError(f"{owner}: stamp must be finite seconds, got {stamp_s!r}")
    if last is not None and stamp <= last:
        raise ValueError(f"{owner}: stamp {stamp:.9f} s is not after the previous "
                         f"{last:.9f} s; call reset() when the input restarts")
    return stamp


# ---------------------------------------------------------------------------- KISS-ICP
@dataclass(frozen=True)
class KissIcpSettings:
    """KISS-ICP's settings (kiss_icp.config.KISSConfig fields) for a pseudo-LiDAR cloud."""

    max_range: float = 20.0  # metres from base_link; farther points are left out
    min_range: float = 0.3  # metres; nearer points are left out
    voxel_size: float | None = 0.4  # metres, local map voxel; None = max_range / 100
    max_points_per_voxel: int = 20  # points kept per map voxel
    deskew: bool = False  # motion compensation within a scan (off: one capture instant)
    max_num_iterations: int = 30  # ICP iterations per frame (KISS-ICP's default: 500)
    convergence_criterion: float = 1e-3  # ICP stops below this update norm
    max_num_threads: int = 0  # registration threads; 0 = all cores
    initial_threshold: float = 2.0  # metres, adaptive correspondence threshold at start
    min_motion_th: float = 0.1  # metres; smaller motions do not adapt the threshold
    fixed_threshold: float | None = None  # metres; set = no adaptive threshold
    sample_points: int = 4000  # a seeded random subset of this many in-range points per
    #                            cloud (0 = every point): breaks the pixel-grid lock, see
    #                            KissIcpOdometry.register
    sample_seed: int = 0  # seed of that subset's generator (re-seeded by reset())
    drift_per_m: float = 0.5  # expected 1-sigma position error per metre travelled, for the
    #                           published covariances (slam/odometry_estimate.py)
    drift_rad_per_m: float = 0.01  # expected 1-sigma rotation error per metre, radians

    def __post_init__(self) -> None:
        """Validate every field (ValueError names it and the allowed range)."""
        owner = "kiss_icp"
        _positive(owner, "max_range", self.max_range)
        _positive(owner, "min_range", self.min_range, allow_zero=True)
        if self.min_range >= self.max_range:
            raise ValueError(f"{owner}.min_range ({self.min_range} m) must be below "
                             f"max_range ({self.max_range} m)")
        for name in ("voxel_size", "fixed_threshold"):
            if getattr(self, name) is not None:
                _positive(owner, name, getattr(self, name))
        for name in ("max_points_per_voxel", "max_num_iterations"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{owner}.{name} must be an integer >= 1, got {v!r}")
        for name in ("sample_points", "sample_seed"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{owner}.{name} must be an integer >= 0, got {v!r}")
        if 0 < self.sample_points < MIN_POINTS:
            raise ValueError(f"{owner}.sample_points must be 0 (every point) or at least "
                             f"{MIN_POINTS}, got {self.sample_points}")
        v = self.max_num_threads
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"{owner}.max_num_threads must be an integer >= 0 (0 = all "
                             f"cores), got {v!r}")
        if not isinstance(self.deskew, bool):
            raise ValueError(f"{owner}.deskew must be true or false, got {self.deskew!r}")
        _positive(owner, "convergence_criterion", self.convergence_criterion)
        _positive(owner, "drift_per_m", self.drift_per_m, allow_zero=True)
        _positive(owner, "drift_rad_per_m", self.drift_rad_per_m, allow_zero=True)
        _positive(owner, "initial_threshold", self.initial_threshold)
        _positive(owner, "min_motion_th", self.min_motion_th, allow_zero=True)

    @property
    def map_voxel_size(self) -> float:
        """The local map's voxel edge, metres (KISS-ICP's default: max_range / 100)."""
        return float(self.voxel_size) if self.voxel_size is not None else self.max_range / 100.0

    def kiss_config(self) -> Any:
        """The kiss_icp.config.KISSConfig of these settings."""
        from kiss_icp.config import KISSConfig
        from kiss_icp.config.config import (
            AdaptiveThresholdConfig,
            DataConfig,
            MappingConfig,
            RegistrationConfig,
        )

        return KISSConfig(
            data=DataConfig(max_range=self.max_range, min_range=self.min_range,
                            deskew=self.deskew),
            registration=RegistrationConfig(max_num_iterations=self.max_num_iterations,
                                            convergence_criterion=self.convergence_criterion,
                                            max_num_threads=self.max_num_threads),
            mapping=MappingConfig(voxel_size=self.map_voxel_size,
                                  max_points_per_voxel=self.max_points_per_voxel),
            adaptive_threshold=AdaptiveThresholdConfig(
                fixed_threshold=self.fixed_threshold, initial_threshold=self.initial_threshold,
                min_motion_th=self.min_motion_th))


class KissIcpOdometry:
    """KISS-ICP fed with one base_link cloud per set; gives T_odom_base per set."""

    def __init__(self, settings: KissIcpSettings | None = None) -> None:
        """Build the odometry (imports kiss_icp; ImportError says how to install it)."""
        try:
            from kiss_icp.kiss_icp import KissICP
        except ImportError as exc:  # pragma: no cover - kiss-icp is a pinned dependency
            raise ImportError(f"KISS-ICP is not installed ({exc}); pip install "
                              "kiss-icp==1.3.0 (requirements.txt)") from None
        self.settings = settings or KissIcpSettings()
        self._factory = KissICP
        self.reset()

    def reset(self) -> None:
        """Forget the map and the pose: the next cloud starts a new odom frame."""
        self._kiss = self._factory(self.settings.kiss_config())
        self._rng = np.random.default_rng(self.settings.sample_seed)
        self._last_stamp: float | None = None
        self.frames = 0  # clouds given
        self.skipped = 0  # clouds with fewer than MIN_POINTS points (pose predicted)

    @property
    def pose(self) -> np.ndarray:
        """The latest T_odom_base (4, 4), a copy."""
        return np.array(self._kiss.last_pose, dtype=np.float64)

    @property
    def last_stamp(self) -> float | None:
        """Stamp of the last registered cloud, seconds (None before the first)."""
        return self._last_stamp

    def register(self, points: np.ndarray, stamp_s: float) -> np.ndarray:
        """Register one cloud; returns T_odom_base (4, 4) at its stamp.

        Args:
            points: (N, 3) metres in base_link (any float dtype; NaN / inf rows are
                dropped). With fewer than MIN_POINTS finite points the pose is predicted
                with constant velocity and the cloud is not added to the map.
            stamp_s: the set's stamp, seconds; must increase from call to call.

        With `sample_points` set, KISS-ICP gets a random subset of the points within
        [min_range, max_range]. A depth camera's cloud comes from the same pixel grid in
        every set: along a plane parallel to the motion (the ground, a facade) the same
        pixels give nearly the same base_link points, so point-to-point ICP is pulled
        towards standing still. A different random subset each set breaks that grid
        lock (issue 11, config/slam.yaml) and registers fewer points.
        """
        self._last_stamp = _check_pose_step(stamp_s, self._last_stamp, "KissIcpOdometry")
        p = np.asarray(points, dtype=np.float64)
        if p.ndim != 2 or p.shape[1] != 3:
            raise ValueError(f"KissIcpOdometry.register: points must be (N, 3) metres, got "
                             f"shape {p.shape}")
        p = p[np.isfinite(p).all(axis=1)]
        n = self.settings.sample_points
        if n and p.shape[0] > n:
            s = self.settings
            r2 = np.einsum("ij,ij->i", p, p)
            p = p[(r2 >= s.min_range ** 2) & (r2 <= s.max_range ** 2)]  # as KISS-ICP would
            if p.shape[0] > n:
                p = p[self._rng.choice(p.shape[0], n, replace=False)]
        p = np.ascontiguousarray(p)
        self.frames += 1
        if p.shape[0] < MIN_POINTS:
            self.skipped += 1
            kiss = self._kiss
            kiss.last_pose = kiss.last_pose @ kiss.last_delta
            return self.pose
        self._kiss.register_frame(p, np.zeros(p.shape[0], dtype=np.float64))
        return self.pose


# ---------------------------------------------------------------------------- Open3D RGB-D
@dataclass(frozen=True)
class RgbdOdometrySettings:
    """Open3D RGB-D odometry per camera and how the cameras are combined."""

    method: str = "color"  # 'color' (photometric) or 'hybrid' (photometric + depth)
    depth_min: float = 0.3  # metres; depth outside [depth_min, depth_max] is left out
    depth_max: float = 30.0
    depth_diff_max: float = 0.1  # metres, largest depth difference of a correspondence
    iterations: tuple[int, ...] = (20, 10, 5)  # per pyramid level, coarse to fine
    inlier_m: float = 0.1  # metres: cameras this close to the median step are averaged
    min_cameras: int = 1  # fewer agreeing cameras: the step is a failure
    max_step_m: float = 2.0  # metres; a camera's step longer than this is discarded
    max_step_deg: float = 30.0  # degrees; a camera's step turning more is discarded
    keyframe_m: float = 0.5  # metres from the keyframe before the set becomes the next;
    #                          0 = every set registers against the previous one
    keyframe_deg: float = 15.0  # degrees turned from the keyframe: likewise
    drift_per_m: float = 0.02  # expected 1-sigma position error per metre travelled, for
    #                            the published covariances (slam/odometry_estimate.py)
    drift_rad_per_m: float = 0.005  # expected 1-sigma rotation error per metre, radians
    min_confidence: float = 0.0  # depth pixels of a view less confident than this are left
    #                              out (0 = none; views without confidence keep every pixel)

    def __post_init__(self) -> None:
        """Validate every field (ValueError names it and the allowed values)."""
        owner = "open3d_rgbd"
        c = self.min_confidence
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not 0.0 <= c < 1.0:
            raise ValueError(f"{owner}.min_confidence must be a number in [0, 1) (0 = every "
                             f"pixel), got {c!r}")
        if self.method not in RGBD_METHODS:
            raise ValueError(f"{owner}.method must be one of {', '.join(RGBD_METHODS)}, got "
                             f"{self.method!r}")
        _positive(owner, "depth_min", self.depth_min, allow_zero=True)
        _positive(owner, "depth_max", self.depth_max)
        if self.depth_min >= self.depth_max:
            raise ValueError(f"{owner}.depth_min ({self.depth_min} m) must be below "
                             f"depth_max ({self.depth_max} m)")
        _positive(owner, "depth_diff_max", self.depth_diff_max)
        _positive(owner, "inlier_m", self.inlier_m)
        _positive(owner, "max_step_m", self.max_step_m)
        _positive(owner, "max_step_deg", self.max_step_deg)
        _positive(owner, "keyframe_m", self.keyframe_m, allow_zero=True)
        _positive(owner, "keyframe_deg", self.keyframe_deg)
        _positive(owner, "drift_per_m", self.drift_per_m, allow_zero=True)
        _positive(owner, "drift_rad_per_m", self.drift_rad_per_m, allow_zero=True)
        it = tuple(self.iterations)
        if not it or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in it):
            raise ValueError(f"{owner}.iterations must be a list of integers >= 1 (per "
                             f"pyramid level), got {self.iterations!r}")
        object.__setattr__(self, "iterations", it)
        v = self.min_cameras
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{owner}.min_cameras must be an integer >= 1, got {v!r}")


@dataclass
class RgbdView:
    """One camera's colour and depth of a set, with its calibration and extrinsics."""

    name: str  # camera name (consecutive sets are matched by it)
    rgb: np.ndarray  # (H, W, 3) uint8
    depth: np.ndarray  # (H, W) float32 metres along z, NaN = unknown
    camera: PinholeCamera  # calibration of `rgb` and `depth` (same size)
    T_base_cam: np.ndarray = field(default_factory=lambda: np.eye(4))  # (4, 4)
    confidence: np.ndarray | None = None  # (H, W) 0..1 of the depth (None: no confidence)


def rectified(view: RgbdView, min_confidence: float = 0.0
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rgb (H, W, 3) uint8, depth (H, W) float32 with 0 = unknown, K (3, 3)) of a
    distortion-free pinhole image of the view (undistorted when it has distortion).

    Depth pixels whose confidence is below min_confidence (or NaN) become unknown when the
    view has a confidence.

    Raises:
        ValueError: shapes do not match, or a rectification rotation R is set (stereo
            rectification changes depth along z; give the unrectified camera).
    """
    cam = view.camera
    rgb = np.asarray(view.rgb)
    depth = np.asarray(view.depth, dtype=np.float32)
    if rgb.shape != (cam.height, cam.width, 3) or rgb.dtype != np.uint8:
        raise ValueError(f"camera '{view.name}': rgb must be ({cam.height}, {cam.width}, 3) "
                         f"uint8 for its {cam.width}x{cam.height} calibration, got "
                         f"{rgb.shape} {rgb.dtype}")
    if depth.shape != (cam.height, cam.width):
        raise ValueError(f"camera '{view.name}': depth must be ({cam.height}, {cam.width}) "
                         f"for its calibration, got {depth.shape}")
    keep = np.isfinite(depth) & (depth > 0)
    if view.confidence is not None and min_confidence > 0:
        confidence = np.asarray(view.confidence)
        if confidence.shape != depth.shape:
            raise ValueError(f"camera '{view.name}': confidence must be {depth.shape} like "
                             f"its depth, got {confidence.shape}")
        keep &= confidence >= min_confidence  # NaN compares False: left out
    depth = np.where(keep, depth, np.float32(0.0))
    distorted = cam.distortion_model != "none" and bool(np.any(cam.D != 0))
    if not distorted:
        return np.ascontiguousarray(rgb), np.ascontiguousarray(depth), cam.K
    if not np.allclose(cam.R, np.eye(3), atol=1e-9):
        raise ValueError(f"camera '{view.name}': a rectification rotation R is set; RGB-D "
                         "odometry and TSDF fusion need the unrectified camera (R = I)")
    map1, map2 = cam.undistort_rectify_maps()
    rgb = cv2.remap(rgb, map1, map2, cv2.INTER_LINEAR)
    depth = cv2.remap(depth, map1, map2, cv2.INTER_NEAREST)
    return rgb, depth, cam.P[:, :3].copy()


def mean_rotation(R: np.ndarray) -> np.ndarray:
    """(3, 3) normalised mean of rotations R (K, 3, 3) as sign-aligned quaternions."""
    q = np.stack([rotmat_to_quat(r) for r in R])  # (K, 4)
    q = q * np.where(q @ q[0] < 0, -1.0, 1.0)[:, None]
    m = q.mean(axis=0)
    return quat_to_rotmat(m / np.linalg.norm(m))


def combine_steps(steps: np.ndarray, inlier_m: float) -> tuple[np.ndarray, int]:
    """One base step (4, 4) of per-camera steps (K, 4, 4) and how many were averaged.

    The cameras within inlier_m + 10 % of its length of the median translation are
    averaged (translation mean, rotation `mean_rotation`).
    """
    t = steps[:, :3, 3]
    med = np.median(t, axis=0)
    near = np.linalg.norm(t - med, axis=1) <= inlier_m + 0.1 * np.linalg.norm(med)
    if not near.any():
        near = np.linalg.norm(t - med, axis=1) == np.linalg.norm(t - med, axis=1).min()
    out = np.eye(4)
    out[:3, :3] = mean_rotation(steps[near, :3, :3])
    out[:3, 3] = t[near].mean(axis=0)
    return out, int(near.sum())


class RgbdOdometry:
    """Open3D RGB-D odometry per camera, combined into one base_link pose per set."""

    def __init__(self, settings: RgbdOdometrySettings | None = None) -> None:
        """Build the odometry (imports open3d)."""
        import open3d as o3d

        self.o3d = o3d
        self.settings = s = settings or RgbdOdometrySettings()
        odo = o3d.pipelines.odometry
        self._option = odo.OdometryOption(o3d.utility.IntVector(list(s.iterations)),
                                          s.depth_diff_max, s.depth_min, s.depth_max)
        self._jacobian = (odo.RGBDOdometryJacobianFromHybridTerm() if s.method == "hybrid"
                          else odo.RGBDOdometryJacobianFromColorTerm())
        self.reset()

    def reset(self) -> None:
        """Forget the keyframe and the pose: the next set starts a new odom frame."""
        self._keyframe: dict[str, tuple[Any, tuple]] = {}  # camera -> (RGBDImage, intrinsics)
        self._T_key = np.eye(4)  # T_odom_base of the keyframe
        self._pose = np.eye(4)
        self._delta = np.eye(4)  # the last step, base_link of the set before -> this set
        self._last_stamp: float | None = None
        self.frames = 0  # sets given
        self.failures = 0  # steps no camera (or fewer than min_cameras) could estimate
        self.keyframes = 0  # sets that became the keyframe (the first one included)
        self.cameras_used: list[int] = []  # cameras averaged per step

    @property
    def pose(self) -> np.ndarray:
        """The latest T_odom_base (4, 4), a copy."""
        return self._pose.copy()

    @property
    def last_stamp(self) -> float | None:
        """Stamp of the last registered set, seconds (None before the first)."""
        return self._last_stamp

    def _rgbd(self, view: RgbdView) -> tuple[Any, tuple]:
        """Open3D RGBDImage (intensity + metres) of a view and its intrinsics key."""
        o3d = self.o3d
        rgb, depth, K = rectified(view, self.settings.min_confidence)
        image = o3d.geometry.RGBDImage.create_from_color_and_depth(
            o3d.geometry.Image(rgb), o3d.geometry.Image(depth), depth_scale=1.0,
            depth_trunc=self.settings.depth_max, convert_rgb_to_intensity=True)
        key = (view.camera.width, view.camera.height, float(K[0, 0]), float(K[1, 1]),
               float(K[0, 2]), float(K[1, 2]))
        return image, key

    def _plausible(self, step: np.ndarray) -> bool:
        """A camera's base step within max_step_m and max_step_deg (else it diverged)."""
        s = self.settings
        cos = (np.trace(step[:3, :3]) - 1.0) / 2.0
        angle = math.degrees(math.acos(min(1.0, max(-1.0, cos))))
        return bool(np.linalg.norm(step[:3, 3]) <= s.max_step_m and angle <= s.max_step_deg)

    def register(self, views: Sequence[RgbdView], stamp_s: float) -> np.ndarray:
        """Register one set of views against the keyframe; returns T_odom_base (4, 4).

        Args:
            views: the set's cameras (any subset; a camera is used when it is also in the
                keyframe with the same calibration).
            stamp_s: the set's stamp, seconds; must increase from call to call.
        """
        self._last_stamp = _check_pose_step(stamp_s, self._last_stamp, "RgbdOdometry")
        o3d = self.o3d
        current = {v.name: (self._rgbd(v), np.asarray(v.T_base_cam, dtype=np.float64))
                   for v in views}
        self.frames += 1
        new_key = self.frames == 1
        if not new_key:
            # Predicted motion from the keyframe to this set: constant velocity.
            guess = np.linalg.inv(self._T_key) @ self._pose @ self._delta
            steps = []
            for name, ((image, key), T_bc) in current.items():
                kept = self._keyframe.get(name)
                if kept is None or kept[1] != key:
                    continue
                T_cb = np.linalg.inv(T_bc)
                intr = o3d.camera.PinholeCameraIntrinsic(key[0], key[1], *key[2:])
                ok, T, _ = o3d.pipelines.odometry.compute_rgbd_odometry(
                    image, kept[0], intr, T_cb @ guess @ T_bc, self._jacobian, self._option)
                step = T_bc @ np.asarray(T) @ T_cb  # T_basekey_basecur
                if ok and np.isfinite(step).all() and self._plausible(step):
                    steps.append(step)
            used = 0
            if len(steps) >= self.settings.min_cameras:
                from_key, used = combine_steps(np.stack(steps), self.settings.inlier_m)
            if used < self.settings.min_cameras:
                pose = self._pose @ self._delta  # constant velocity
                self.failures += 1
                new_key = True  # start again from this set
            else:
                pose = self._T_key @ from_key
                new_key = self._moved_on(from_key)
            self.cameras_used.append(used)
            self._delta = np.linalg.inv(self._pose) @ pose
            self._pose = pose
        if new_key:
            self._keyframe = {n: img for n, (img, _) in current.items()}
            self._T_key = self._pose.copy()
            self.keyframes += 1
        return self.pose

    def _moved_on(self, from_key: np.ndarray) -> bool:
        """Whether a set `from_key` (T_basekey_basecur) away becomes the next keyframe."""
        s = self.settings
        cos = (np.trace(from_key[:3, :3]) - 1.0) / 2.0
        angle = math.degrees(math.acos(min(1.0, max(-1.0, cos))))
        return bool(np.linalg.norm(from_key[:3, 3]) >= s.keyframe_m or angle >= s.keyframe_deg)


__all__ = ["KissIcpOdometry", "KissIcpSettings", "MIN_POINTS", "RgbdOdometry",
           "RgbdOdometrySettings", "RgbdView", "combine_steps", "mean_rotation", "rectified"]
