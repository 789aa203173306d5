"""config/slam.yaml: the settings of the SLAM consumers, their scoring and targets.

`load_slam_config` is the one place config/slam.yaml is read; the node's pipeline reads it
for its cameras-only odometry (`odometry_source`), `depth-any-view slam` (slam/slam_command.py) and
the odometry benchmark for everything. It imports only the settings' own modules, so the
pipeline can read it without the runner above it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from depth_any_view.config import ConfigError, config_path, dataclass_from_mapping, load_yaml
from depth_any_view.slam.mesh import TsdfSettings
from depth_any_view.slam.odometry import KissIcpSettings, RgbdOdometrySettings

SLAM_CONFIG = "slam.yaml"  # packaged settings (config/)


@dataclass(frozen=True)
class MeshEvalSettings:
    """How two meshes are compared (config/slam.yaml `mesh_eval:`)."""

    samples: int = 100_000  # surface points drawn on each mesh
    thresholds: tuple[float, ...] = (0.05, 0.10)  # metres, F-score distances
    seed: int = 0  # sampling seed

    def __post_init__(self) -> None:
        """Validate every field (ValueError names it)."""
        if isinstance(self.samples, bool) or not isinstance(self.samples, int) or \
                self.samples < 1:
            raise ValueError(f"mesh_eval.samples must be an integer >= 1, got {self.samples!r}")
        th = tuple(self.thresholds)
        if not th or any(not isinstance(t, (int, float)) or not t > 0 for t in th):
            raise ValueError(f"mesh_eval.thresholds must be a list of distances > 0 metres, "
                             f"got {self.thresholds!r}")
        object.__setattr__(self, "thresholds", tuple(float(t) for t in th))


@dataclass(frozen=True)
class EvaluationSettings:
    """Trajectory error settings (config/slam.yaml `evaluation:`)."""

    segment_lengths: tuple[float, ...] = (1.0, 10.0)  # metres travelled per RPE segment
    steady_state_after_m: float = 1.0  # steady-state RPE: segments starting after this
    jump_m: float = 0.5  # metres off the true step: a tracking failure

    def __post_init__(self) -> None:
        """Validate every field (ValueError names it)."""
        lengths = tuple(self.segment_lengths)
        if not lengths or any(not isinstance(v, (int, float)) or not v > 0 for v in lengths):
            raise ValueError(f"evaluation.segment_lengths must be a list of lengths > 0 "
                             f"metres, got {self.segment_lengths!r}")
        object.__setattr__(self, "segment_lengths", tuple(float(v) for v in lengths))
        for name in ("steady_state_after_m", "jump_m"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not (
                    math.isfinite(v) and v >= 0 and (name != "jump_m" or v > 0)):
                raise ValueError(f"evaluation.{name} must be a finite number of metres "
                                 f"({'> 0' if name == 'jump_m' else '>= 0'}), got {v!r}")


@dataclass(frozen=True)
class Targets:
    """The issue's targets (config/slam.yaml `targets:`)."""

    rpe_translation_max_pct: float = 2.0  # steady-state RPE translation, predicted depth
    rpe_ratio_max: float = 2.0  # predicted-depth RPE / ground-truth-depth RPE
    max_jumps: int = 0  # tracking failures allowed

    def __post_init__(self) -> None:
        """Validate every field (ValueError names it)."""
        for name in ("rpe_translation_max_pct", "rpe_ratio_max"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise ValueError(f"targets.{name} must be a number > 0, got {v!r}")
        if isinstance(self.max_jumps, bool) or not isinstance(self.max_jumps, int) or \
                self.max_jumps < 0:
            raise ValueError(f"targets.max_jumps must be an integer >= 0, got "
                             f"{self.max_jumps!r}")


@dataclass(frozen=True)
class SlamConfig:
    """Everything config/slam.yaml sets (see that file for each value)."""

    node_parameters: dict[str, Any] = field(default_factory=dict)  # over the params file
    kiss_icp: KissIcpSettings = field(default_factory=KissIcpSettings)
    open3d_rgbd: RgbdOdometrySettings = field(default_factory=RgbdOdometrySettings)
    tsdf: TsdfSettings = field(default_factory=TsdfSettings)
    mesh_eval: MeshEvalSettings = field(default_factory=MeshEvalSettings)
    evaluation: EvaluationSettings = field(default_factory=EvaluationSettings)
    targets: Targets = field(default_factory=Targets)
    path: str = ""  # the file it came from


_SECTIONS = {"kiss_icp": KissIcpSettings, "open3d_rgbd": RgbdOdometrySettings,
             "tsdf": TsdfSettings, "mesh_eval": MeshEvalSettings,
             "evaluation": EvaluationSettings, "targets": Targets}
_TUPLE_FIELDS = {"iterations", "thresholds", "segment_lengths"}


def load_slam_config(path: Path | str | None = None) -> SlamConfig:
    """Read config/slam.yaml (or `path`); sections and keys left out keep their defaults.

    Raises:
        ConfigError: the file is missing or malformed, a section or key is unknown, or a
            value is out of range (the message names the file, section and key).
    """
    file = config_path(SLAM_CONFIG if path is None else str(path))
    data = load_yaml(file)
    unknown = sorted(set(data) - set(_SECTIONS) - {"node_parameters"})
    if unknown:
        raise ConfigError(f"{file}: unknown section(s) {unknown}; known: "
                          f"{sorted(_SECTIONS) + ['node_parameters']}")
    node = data.get("node_parameters") or {}
    if not isinstance(node, dict):
        raise ConfigError(f"{file}: 'node_parameters' must be a mapping of node parameter "
                          f"names to values, got {type(node).__name__}")
    built: dict[str, Any] = {"node_parameters": dict(node), "path": str(file)}
    for name, cls in _SECTIONS.items():
        built[name] = dataclass_from_mapping(cls, data.get(name) or {}, "key(s)",
                                             where=f"{file}: ", section=name,
                                             tuples=_TUPLE_FIELDS)
    return SlamConfig(**built)


__all__ = ["EvaluationSettings", "MeshEvalSettings", "SLAM_CONFIG", "SlamConfig", "Targets",
           "load_slam_config"]
