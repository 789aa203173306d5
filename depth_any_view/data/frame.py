"""One synchronized six-camera frame of the synthetic world with all its ground truth.

Conventions (docs/ARCHITECTURE.md, "Synthetic frame"): camera frames are optical frames
(x right, y down, z forward); pixel (u, v) = (column, row) with pixel centres at integers;
depth is metres along the optical axis with NaN where nothing was hit within range;
`T_base_cam` maps camera points into base_link and `T_odom_base` base_link into odom;
stamps are int64 nanoseconds; occupancy labels FREE=0, OCCUPIED=1, UNKNOWN=255 live in
`grid`, an axis-aligned VoxelGrid in base_link indexed [i, j, k] = [x, y, z].
Sequences made with moving objects (`synth --dynamic`) carry their states per frame in
`dynamic` (odom); otherwise it is None.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from depth_any_view.geometry.camera import PinholeCamera
from depth_any_view.geometry.grid import VoxelGrid
from depth_any_view.geometry.transforms import transform_points

DYNAMIC_KINDS = ("person", "car")  # codes of DynamicState.kind


@dataclass
class DynamicState:
    """The moving objects of one frame, K of them, in odom (metres, radians, m/s).

    An object is a box of `size` (length along its heading, width, height; a person is a
    vertical cylinder of diameter size[0] = size[1]) centred at `center`, turned by `yaw`
    about z, moving with `velocity`. Ids are unique within a sequence.
    """

    id: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))  # (K,) int32
    kind: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint8))  # (K,) DYNAMIC_KINDS
    center: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # (K, 3) float64
    size: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # (K, 3) float64
    yaw: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (K,) float64
    velocity: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # (K, 3) float64

    def __post_init__(self) -> None:
        """Normalise dtypes and check shapes, raising ValueError naming the field."""
        self.id = np.asarray(self.id, np.int32).reshape(-1)
        k = self.id.shape[0]
        self.kind = np.asarray(self.kind, np.uint8).reshape(-1)
        self.yaw = np.asarray(self.yaw, np.float64).reshape(-1)
        for name in ("center", "size", "velocity"):
            setattr(self, name, np.asarray(getattr(self, name), np.float64).reshape(-1, 3))
        for name in ("kind", "center", "size", "yaw", "velocity"):
            if getattr(self, name).shape[0] != k:
                raise ValueError(f"DynamicState.{name} has {getattr(self, name).shape[0]} "
                                 f"entries for {k} ids")
        if k and int(self.kind.max()) >= len(DYNAMIC_KINDS):
            raise ValueError(f"DynamicState.kind must index {DYNAMIC_KINDS}, got "
                             f"{sorted(set(self.kind.tolist()))}")

    def __len__(self) -> int:
        """Number of objects K."""
        return int(self.id.shape[0])

    def arrays(self) -> dict[str, np.ndarray]:
        """The state as arrays named dynamic_<field> (as stored in shards)."""
        return {f"dynamic_{k}": getattr(self, k) for k in DYNAMIC_FIELDS}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> DynamicState | None:
        """The state stored by `arrays()`, or None when `arrays` has none."""
        if "dynamic_id" not in arrays:
            return None
        return cls(**{k: arrays[f"dynamic_{k}"] for k in DYNAMIC_FIELDS})


DYNAMIC_FIELDS = ("id", "kind", "center", "size", "yaw", "velocity")


@dataclass
class Frame:
    """A synthetic frame: V views with depth, intrinsics, extrinsics, pose and occupancy."""

    stamp_ns: int  # int64 nanoseconds
    index: int  # frame number in its sequence
    camera_names: list[str]  # V names, rig order
    images: np.ndarray  # (V, H, W, 3) uint8 RGB
    depth: np.ndarray  # (V, H, W) float32 metres along z, NaN = no hit within max range
    K: np.ndarray  # (V, 3, 3) float64 pinhole intrinsics (no distortion)
    T_base_cam: np.ndarray  # (V, 4, 4) float64 optical frame -> base_link
    frame_ids: list[str]  # V optical frame ids
    T_odom_base: np.ndarray  # (4, 4) float64 ground-truth base_link -> odom
    occupancy: np.ndarray  # (nx, ny, nz) uint8 FREE / OCCUPIED / UNKNOWN in `grid`
    grid: VoxelGrid  # the occupancy volume in base_link
    dynamic: DynamicState | None = None  # moving objects (odom), None = a static world

    def __post_init__(self) -> None:
        """Normalise dtypes and check shapes, raising ValueError naming the field."""
        self.stamp_ns = int(self.stamp_ns)
        self.index = int(self.index)
        self.camera_names = [str(n) for n in self.camera_names]
        self.frame_ids = [str(n) for n in self.frame_ids]
        V = len(self.camera_names)
        images = np.asarray(self.images)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[0] != V \
                or images.shape[3] != 3:
            raise ValueError(f"Frame.images must be (V={V}, H, W, 3) uint8 RGB, got "
                             f"{images.shape} {images.dtype}")
        H, W = images.shape[1:3]
        self.images = images
        self.depth = np.asarray(self.depth, dtype=np.float32)
        if self.depth.shape != (V, H, W):
            raise ValueError(f"Frame.depth must be (V, H, W) = {(V, H, W)}, got "
                             f"{self.depth.shape}")
        self.K = np.asarray(self.K, dtype=np.float64)
        if self.K.shape != (V, 3, 3):
            raise ValueError(f"Frame.K must be (V, 3, 3) = {(V, 3, 3)}, got {self.K.shape}")
        self.T_base_cam = np.asarray(self.T_base_cam, dtype=np.float64)
        if self.T_base_cam.shape != (V, 4, 4):
            raise ValueError(f"Frame.T_base_cam must be {(V, 4, 4)}, got "
                             f"{self.T_base_cam.shape}")
        if len(self.frame_ids) != V:
            raise ValueError(f"Frame.frame_ids has {len(self.frame_ids)} entries for {V} views")
        self.T_odom_base = np.asarray(self.T_odom_base, dtype=np.float64)
        if self.T_odom_base.shape != (4, 4):
            raise ValueError(f"Frame.T_odom_base must be (4, 4), got {self.T_odom_base.shape}")
        occ = np.asarray(self.occupancy)
        if occ.dtype != np.uint8 or occ.shape != tuple(self.grid.dims):
            raise ValueError(f"Frame.occupancy must be {tuple(self.grid.dims)} uint8 (the grid's "
                             f"dims), got {occ.shape} {occ.dtype}")
        self.occupancy = occ
        if self.dynamic is not None and not isinstance(self.dynamic, DynamicState):
            raise ValueError(f"Frame.dynamic must be a DynamicState or None, got "
                             f"{type(self.dynamic).__name__}")

    @property
    def num_views(self) -> int:
        """Number of views V."""
        return len(self.camera_names)

    @property
    def height(self) -> int:
        """Image height in pixels."""
        return int(self.images.shape[1])

    @property
    def width(self) -> int:
        """Image width in pixels."""
        return int(self.images.shape[2])

    def camera(self, view: int) -> PinholeCamera:
        """The distortion-free PinholeCamera of view `view`."""
        return PinholeCamera(width=self.width, height=self.height, K=self.K[view])

    def points_base(self, view: int) -> np.ndarray:
        """Back-projected depth of one view in base_link, (H, W, 3) metres; NaN stays NaN."""
        p_cam = self.camera(view).depth_to_points(self.depth[view])  # (H, W, 3)
        return transform_points(self.T_base_cam[view], p_cam)
