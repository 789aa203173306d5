"""A camera rig: each camera's optical frame and its pose in base_link.

The rig file is plain YAML a user writes from their calibration (see README):
    base_frame: base_link
    cameras:
      front:
        frame_id: front_camera_optical
        translation: [0.25, 0.0, 1.6]       # metres, optical-frame origin in base_link
        rotation: [-0.5, 0.5, -0.5, 0.5]    # quaternion x y z w, base_link <- optical
Intrinsics are not part of the rig: on a robot they come from each camera's CameraInfo.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from depth_any_view.config import ConfigError, config_path, load_yaml
from depth_any_view.geometry.transforms import (
    make_transform,
    quat_to_rotmat,
    rotmat_to_quat,
)

BUILTIN_RIGS = ("surround6", "front_array", "ring8")
DEFAULT_CAMERA_NAMES = ("front", "front_left", "front_right", "back", "back_left",
                        "back_right")  # the surround rig, README "Interface" order


@dataclass(frozen=True)
class RigCamera:
    """One camera of the rig."""

    name: str  # camera name as used in topics (/cameras/<name>/...)
    frame_id: str  # the optical frame of that camera's images
    T_base_cam: np.ndarray  # (4, 4) optical frame -> base_link

    @property
    def position(self) -> np.ndarray:
        """Optical centre (3,) in base_link, metres."""
        return self.T_base_cam[:3, 3].copy()

    @property
    def forward(self) -> np.ndarray:
        """Unit optical axis (3,) in base_link."""
        return self.T_base_cam[:3, 2].copy()


@dataclass(frozen=True)
class Rig:
    """Named cameras in a fixed order, with their extrinsics in `base_frame`."""

    base_frame: str
    cameras: dict[str, RigCamera] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        """Camera names in rig order."""
        return list(self.cameras)

    def __len__(self) -> int:
        """Number of cameras."""
        return len(self.cameras)

    def __getitem__(self, name: str) -> RigCamera:
        """The camera called `name`, or KeyError listing the rig's cameras."""
        try:
            return self.cameras[name]
        except KeyError:
            raise KeyError(f"camera '{name}' is not in the rig (cameras: "
                           f"{', '.join(self.cameras)})") from None

    def T_base_cams(self) -> np.ndarray:
        """Extrinsics of all cameras in rig order, (V, 4, 4)."""
        return np.stack([c.T_base_cam for c in self.cameras.values()])

    def subset(self, names: list[str] | tuple[str, ...]) -> Rig:
        """A rig with only `names`, in that order (e.g. the `camera_names` parameter)."""
        missing = [n for n in names if n not in self.cameras]
        if missing:
            raise ConfigError(f"camera(s) {missing} not in the rig; the rig has "
                              f"{', '.join(self.cameras)}")
        return Rig(self.base_frame, {n: self.cameras[n] for n in names})

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "rig") -> Rig:
        """Rig from the YAML schema above; ConfigError names the camera and key at fault."""
        base = data.get("base_frame", "base_link")
        cams = data.get("cameras")
        if not isinstance(cams, dict) or not cams:
            raise ConfigError(f"'{source}' needs a non-empty 'cameras' mapping "
                              "(name -> frame_id, translation, rotation)")
        out: dict[str, RigCamera] = {}
        for name, entry in cams.items():
            where = f"'{source}' cameras.{name}"
            if not isinstance(entry, dict):
                raise ConfigError(f"{where} must be a mapping with frame_id, translation, "
                                  "rotation")
            for key in ("frame_id", "translation", "rotation"):
                if key not in entry:
                    raise ConfigError(f"{where} is missing '{key}'")
            t = np.asarray(entry["translation"], dtype=np.float64)
            q = np.asarray(entry["rotation"], dtype=np.float64)
            if t.shape != (3,) or not np.all(np.isfinite(t)):
                raise ConfigError(f"{where}.translation must be 3 finite numbers (metres), "
                                  f"got {entry['translation']}")
            if q.shape != (4,) or not np.all(np.isfinite(q)):
                raise ConfigError(f"{where}.rotation must be a quaternion [x, y, z, w], "
                                  f"got {entry['rotation']}")
            norm = float(np.linalg.norm(q))
            if abs(norm - 1.0) > 1e-3:
                raise ConfigError(f"{where}.rotation has norm {norm:.4f}; give a unit "
                                  "quaternion [x, y, z, w]")
            out[str(name)] = RigCamera(str(name), str(entry["frame_id"]),
                                       make_transform(quat_to_rotmat(q), t))
        return cls(str(base), out)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> Rig:
        """Rig from a YAML file (see the module docstring for the schema)."""
        return cls.from_dict(load_yaml(path), source=str(path))

    def to_dict(self) -> dict[str, Any]:
        """The YAML schema of this rig (translation in metres, quaternion x y z w)."""
        cams = {}
        for c in self.cameras.values():
            q = rotmat_to_quat(c.T_base_cam[:3, :3])
            cams[c.name] = {"frame_id": c.frame_id,
                            "translation": [round(float(v), 9) for v in c.T_base_cam[:3, 3]],
                            "rotation": [round(float(v), 9) for v in q]}
        return {"base_frame": self.base_frame, "cameras": cams}


def load_rig(name_or_path: str | os.PathLike[str]) -> Rig:
    """Rig by built-in name (`surround6`, `front_array`, `ring8`) or by path to a YAML file."""
    name = str(name_or_path)
    if name in BUILTIN_RIGS:
        return Rig.from_yaml(config_path(f"rig_{name}.yaml"))
    return Rig.from_yaml(config_path(name))


def optical_rotation(yaw_rad: float, pitch_rad: float = 0.0) -> np.ndarray:
    """base_link <- optical rotation (3, 3) of a camera looking along yaw, pitched down.

    Yaw is about base_link z (counter-clockwise from x forward), pitch positive looks down.
    """
    # Optical axes expressed in a camera body frame (x fwd, y left, z up):
    # z_opt = x_body, x_opt = -y_body, y_opt = -z_body.
    R_body_opt = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    cy, sy = np.cos(yaw_rad), np.sin(yaw_rad)
    cp, sp = np.cos(pitch_rad), np.sin(pitch_rad)
    R_yaw = np.array([[cy, -sy, 0.0], [sy, cy, 0.0], [0.0, 0.0, 1.0]])
    R_pitch = np.array([[cp, 0.0, sp], [0.0, 1.0, 0.0], [-sp, 0.0, cp]])
    return R_yaw @ R_pitch @ R_body_opt
