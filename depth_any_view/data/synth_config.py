"""Settings of the synthetic world, read from `config/synth.yaml` (one dataclass per section).

Lengths are metres, angles degrees, times seconds, speeds m/s. A `(lo, hi)` pair is a range
each scene draws its value from with its seeded generator. Every field's default equals the
packaged YAML, so `SynthConfig()` works without the file; `load_synth_config` reads a YAML,
rejecting unknown keys with a ConfigError that names the section and key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from typing import Any

from depth_any_view.config import (
    ConfigError,
    config_path,
    dataclass_from_mapping,
    load_yaml,
    unknown_fields,
)

Range = tuple[float, float]


@dataclass(frozen=True)
class WorldConfig:
    """Sequence-level settings."""

    fps: float = 10.0  # frame rate, Hz; stamps are int64 nanoseconds
    start_time_s: int = 1_700_000_000  # stamp of frame 0, seconds since the epoch
    max_range: float = 40.0  # metres along the optical axis; farther depth is NaN
    frames_per_scene: int = 300  # a new scene every this many frames
    image_noise_std: float = 0.0  # Gaussian pixel noise, 0-255 units


@dataclass(frozen=True)
class CameraConfig:
    """Synthetic intrinsics: a horizontal field of view per rig (square pixels, centred)."""

    hfov_deg: dict[str, float] = field(
        default_factory=lambda: {"surround6": 90.0, "front_array": 70.0})
    default_hfov_deg: float = 90.0  # for rigs not listed (e.g. given by path)

    def hfov_for(self, rig: str) -> float:
        """Horizontal field of view in degrees for a rig name or path."""
        return float(self.hfov_deg.get(str(rig), self.default_hfov_deg))


@dataclass(frozen=True)
class GridConfig:
    """Bounds of the ground-truth occupancy volume in base_link, metres."""

    lower: tuple[float, float, float] = (-12.8, -12.8, -0.8)
    upper: tuple[float, float, float] = (12.8, 12.8, 3.2)


@dataclass(frozen=True)
class OccupancyConfig:
    """How ground-truth labels are derived from the scene and the rendered depth."""

    free_margin: float = 0.05  # metres a voxel centre must lie in front of the depth
    free_margin_rel: float = 0.02  # plus this fraction of the depth
    sample_spacing_vox: float = 0.35  # surface sample spacing in voxel edges
    point_eps: float = 0.001  # metres: depth points this close to a voxel face mark both


@dataclass(frozen=True)
class LightingConfig:
    """Lambert shading: ambient + diffuse * max(0, n . l) with one directional light."""

    outdoor_ambient: float = 0.35
    outdoor_diffuse: float = 0.8
    indoor_ambient: float = 0.5
    indoor_diffuse: float = 0.55
    sun_elevation_deg: Range = (30.0, 70.0)
    indoor_light_elevation_deg: Range = (55.0, 80.0)
    fog_density: float = 0.006  # outdoor haze, 1/m


@dataclass(frozen=True)
class TextureConfig:
    """Procedural texture detail."""

    tile_texels: int = 256  # size of the periodic noise tile
    noise_amp: Range = (0.15, 0.35)  # relative amplitude of the fine multi-scale noise


@dataclass(frozen=True)
class IndoorConfig:
    """Rooms and corridors on a ring, furniture, columns."""

    cell: float = 0.25  # floor-plan raster, metres
    ring_nodes: tuple[int, int] = (2, 4)  # nodes per side of the ring
    node_spacing: Range = (7.0, 11.0)
    room_size: Range = (4.5, 8.0)
    room_probability: float = 0.7
    side_room_probability: float = 0.5
    corridor_width: Range = (1.8, 3.0)
    ceiling_height: Range = (2.6, 3.4)
    furniture_per_room: tuple[int, int] = (3, 7)
    column_probability: float = 0.5
    clearance: float = 0.9  # metres between the path and any obstacle
    speed: float = 1.0  # cruise speed, m/s
    corner_radius: float = 0.8  # path fillet radius at turns, metres
    stop_spacing: float = 15.0  # mean distance between stops, metres


@dataclass(frozen=True)
class OutdoorConfig:
    """A street canyon city: blocks of buildings, kerbs, cars, poles, ramps, uneven ground."""

    blocks: tuple[int, int] = (2, 3)  # inner blocks per axis (plus an outer ring)
    block_size: Range = (20.0, 38.0)
    road_width: Range = (7.0, 10.0)
    sidewalk_width: Range = (2.5, 4.0)
    kerb_height: float = 0.15
    building_height: Range = (6.0, 30.0)
    lot_width: Range = (8.0, 18.0)
    ground_amplitude: float = 0.12  # metres
    ground_wavelength: Range = (25.0, 60.0)
    ramps: tuple[int, int] = (1, 3)  # speed tables on the driven streets
    ramp_height: Range = (0.15, 0.4)
    heightfield_spacing: float = 0.5
    lane_offset: float = 1.5  # metres right of the street centre
    cars_per_100m: float = 9.0
    props_per_100m: float = 7.0
    loading_ramps: tuple[int, int] = (2, 6)
    clearance: float = 1.2
    speed: float = 3.0
    corner_radius: float = 4.5
    stop_spacing: float = 60.0


@dataclass(frozen=True)
class TrajectoryConfig:
    """Speed profile and attitude of the base."""

    accel: float = 0.8  # m/s^2
    lateral_accel: float = 0.6  # m/s^2, caps the speed in turns
    stop_duration: Range = (1.0, 3.0)  # seconds
    footprint: tuple[float, float] = (1.0, 0.7)  # wheelbase, track (metres)


@dataclass(frozen=True)
class DynamicConfig:
    """Moving objects (persons as cylinders, cars as boxes) crossing near the robot.

    Each object moves at constant speed along a straight line through a crossing point a
    few metres ahead of (or, for cars, beside) the robot, back and forth inside the stretch
    of that line that is free of static geometry (piecewise-linear, turning at its ends).
    """

    enabled: bool = False  # `synth --dynamic` turns them on
    indoor_persons: int = 3  # per scene
    outdoor_persons: int = 3
    outdoor_cars: int = 1
    person_radius: float = 0.25  # metres
    person_height: float = 1.7
    person_speed: Range = (1.0, 1.4)  # m/s
    car_length: float = 4.2  # metres
    car_width: float = 1.8
    car_height: float = 1.5
    car_speed: Range = (3.5, 4.5)  # m/s
    ahead: Range = (3.0, 10.0)  # metres ahead of the robot where persons cross its path
    car_offset: Range = (2.3, 3.5)  # metres left of the robot: the next (oncoming) lane
    margin: float = 0.25  # metres kept from static geometry
    robot_clearance: float = 1.0  # metres kept between an object and the base_link origin
    tries: int = 60  # placement attempts per object before it is left out


@dataclass(frozen=True)
class SynthConfig:
    """All settings of the synthetic world."""

    world: WorldConfig = field(default_factory=WorldConfig)
    cameras: CameraConfig = field(default_factory=CameraConfig)
    grid: GridConfig = field(default_factory=GridConfig)
    occupancy: OccupancyConfig = field(default_factory=OccupancyConfig)
    lighting: LightingConfig = field(default_factory=LightingConfig)
    texture: TextureConfig = field(default_factory=TextureConfig)
    indoor: IndoorConfig = field(default_factory=IndoorConfig)
    outdoor: OutdoorConfig = field(default_factory=OutdoorConfig)
    trajectory: TrajectoryConfig = field(default_factory=TrajectoryConfig)
    dynamic: DynamicConfig = field(default_factory=DynamicConfig)

    def __post_init__(self) -> None:
        """Check the values that would break generation, naming the key."""
        checks = [
            (self.world.fps > 0, "world.fps must be > 0"),
            (self.world.max_range > 0, "world.max_range must be > 0 (metres)"),
            (self.world.frames_per_scene >= 1, "world.frames_per_scene must be >= 1"),
            (self.occupancy.sample_spacing_vox > 0, "occupancy.sample_spacing_vox must be > 0"),
            (self.indoor.speed > 0 and self.outdoor.speed > 0, "indoor/outdoor.speed must be > 0"),
            (self.trajectory.accel > 0, "trajectory.accel must be > 0"),
            (self.trajectory.lateral_accel > 0, "trajectory.lateral_accel must be > 0"),
            (self.indoor.ring_nodes[0] >= 2, "indoor.ring_nodes must start at >= 2"),
            (self.outdoor.blocks[0] >= 1, "outdoor.blocks must start at >= 1"),
            (all(0 <= n <= 100 for n in (self.dynamic.indoor_persons,
                                         self.dynamic.outdoor_persons, self.dynamic.outdoor_cars)),
             "dynamic.indoor_persons, outdoor_persons and outdoor_cars must be in [0, 100]"),
            (min(self.dynamic.person_radius, self.dynamic.person_height, self.dynamic.car_length,
                 self.dynamic.car_width, self.dynamic.car_height) > 0,
             "dynamic person and car sizes must be > 0 (metres)"),
            (self.dynamic.person_speed[0] > 0 and self.dynamic.car_speed[0] > 0,
             "dynamic.person_speed and car_speed must be > 0 (m/s)"),
            (self.dynamic.margin >= 0 and self.dynamic.robot_clearance >= 0,
             "dynamic.margin and robot_clearance must be >= 0 (metres)"),
            (self.dynamic.tries >= 1, "dynamic.tries must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"synth config: {message}")
        for section in fields(self):
            obj = getattr(self, section.name)
            for f in fields(obj):
                value = getattr(obj, f.name)
                if (isinstance(value, tuple) and len(value) == 2 and f.name not in ("footprint",)
                        and value[0] > value[1]):
                    raise ConfigError(f"synth config: {section.name}.{f.name} is a range "
                                      f"[lo, hi] with lo <= hi, got {list(value)}")


def _section(cls: type, data: Any, name: str, source: str) -> Any:
    """Dataclass `cls` from a YAML mapping; unknown keys raise ConfigError naming them."""
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, list) and len(value) != 2:
                raise ConfigError(f"'{source}' {name}.{key} needs 2 values, got {value}")
    return dataclass_from_mapping(cls, data, "key(s)", where=f"'{source}': ", section=name,
                                  tuples=True)


def load_synth_config(path: str | os.PathLike[str] | None = None) -> SynthConfig:
    """Read `config/synth.yaml` (or `path`) into a SynthConfig.

    Raises:
        ConfigError: the file is missing or malformed, or names an unknown key.
    """
    source = config_path("synth.yaml") if path is None else config_path(str(path))
    data = load_yaml(source)
    sections = {f.name: f for f in fields(SynthConfig)}
    unknown = unknown_fields(SynthConfig, data)
    if unknown:
        raise ConfigError(f"'{source}' has unknown section(s) {unknown}; known: "
                          f"{', '.join(sections)}")
    kwargs = {}
    for name in sections:
        cls = type(getattr(SynthConfig(), name))
        raw = data.get(name)
        if name == "grid" and raw is not None:
            kwargs[name] = _grid_section(raw, source)
            continue
        kwargs[name] = _section(cls, raw, name, source)
    return SynthConfig(**kwargs)


def _grid_section(raw: Any, source: str) -> GridConfig:
    """GridConfig from {'lower': [x, y, z], 'upper': [x, y, z]}; ConfigError names a bad key."""
    if not isinstance(raw, dict):
        raise ConfigError(f"'{source}' section 'grid' must be a mapping with lower, upper")
    unknown = sorted(set(raw) - {"lower", "upper"})
    if unknown:
        raise ConfigError(f"'{source}' section 'grid' has unknown key(s) {unknown}; "
                          "known keys: lower, upper (dims come from --grid)")
    out = {}
    for key, value in raw.items():
        if not isinstance(value, (list, tuple)) or len(value) != 3:
            raise ConfigError(f"'{source}' grid.{key} needs 3 numbers (x, y, z metres), "
                              f"got {value}")
        out[key] = tuple(float(x) for x in value)
    return replace(GridConfig(), **out)
