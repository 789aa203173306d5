"""Settings of the shifted world, read from `config/shifted_world.yaml` (one dataclass per
section).

Lengths are metres, angles degrees, times seconds, speeds m/s. A `(lo, hi)` pair is a range
each sequence draws its value from with its seeded generator (integer ranges inclusive).
Every field's default equals the packaged YAML, so `ShiftedConfig()` works without the
file; `load_shifted_config` reads a YAML, rejecting unknown keys with a ConfigError naming
the section and key. The grid and occupancy sections share their dataclasses (and
defaults) with config/synth.yaml, so both worlds label occupancy alike.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from typing import Any

from depth_any_view.config import ConfigError, config_path, load_yaml, unknown_fields
from depth_any_view.data.synth_config import (
    GridConfig,
    OccupancyConfig,
    _grid_section,
    _section,
)

Range = tuple[float, float]


@dataclass(frozen=True)
class ShiftedWorldConfig:
    """Sequence-level settings."""

    fps: float = 10.0  # frame rate, Hz; stamps are int64 nanoseconds
    start_time_s: int = 1_800_000_000  # stamp of frame 0, seconds since the epoch
    max_range: float = 40.0  # metres along the optical axis; farther depth is NaN
    indoor_probability: float = 0.45  # a sequence is a room (else a yard or field)
    image_noise_std: Range = (0.0, 3.0)  # Gaussian pixel noise, 0-255 units


@dataclass(frozen=True)
class RigSamplerConfig:
    """Ranges of the random rigs (random_rig.py)."""

    cameras: Range = (1, 8)  # cameras per rig, inclusive integers
    height: Range = (0.3, 2.5)  # metres, optical centre above base_link
    height_jitter: float = 0.15  # metres, per-camera spread around the mount height
    pitch_deg: Range = (-20.0, 10.0)  # optical axis above (+) or below (-) the horizon
    hfov_deg: Range = (60.0, 120.0)  # horizontal field of view per camera
    width: Range = (160, 640)  # pixels, one image size per rig
    height_px: Range = (120, 480)  # pixels
    aspects: tuple[float, ...] = (1.3333333, 1.7777778, 1.5, 1.25, 1.0)  # width / height
    mount_radius: Range = (0.0, 0.4)  # metres from base_link's z axis
    yaw_jitter: float = 0.4  # fraction of the even yaw spacing a camera may move
    stereo_probability: float = 0.35  # the first two cameras form a parallel forward pair
    baseline: Range = (0.05, 0.5)  # metres between the stereo pair's optical centres
    stereo_yaw_deg: Range = (-30.0, 30.0)  # heading of the stereo pair


@dataclass(frozen=True)
class SceneConfig:
    """What a shifted scene holds."""

    room_size: Range = (3.0, 14.0)  # indoor room edge lengths, metres
    room_height: Range = (2.2, 4.5)
    yard_slope_deg: Range = (0.0, 5.0)  # outdoor ground: a tilted plane
    objects: Range = (6, 22)  # free-standing objects
    object_size: Range = (0.15, 2.5)  # their largest extent, metres
    object_distance: Range = (0.5, 12.0)  # gap from the rig's reach to an object's surface
    clutter: Range = (10, 50)  # small items on the ground
    clutter_size: Range = (0.05, 0.3)
    furniture: Range = (0, 6)  # tables, chairs, shelves
    poles: Range = (0, 6)
    ramps: Range = (0, 3)  # wedge slopes standing on the ground
    ramp_slope_deg: Range = (5.0, 25.0)
    distant: Range = (3, 12)  # outdoor structures far away
    distant_distance: Range = (20.0, 150.0)


@dataclass(frozen=True)
class ShiftedLightingConfig:
    """Blinn-Phong shading with one sun (outdoor) or lamp (indoor), shadows optional."""

    ambient: Range = (0.1, 0.45)  # times the sky (or room) colour
    sun_elevation_deg: Range = (5.0, 85.0)
    sun_intensity: Range = (0.6, 1.4)
    tint: float = 0.35  # largest per-channel change of the light colour
    specular: Range = (0.0, 0.6)  # a material's strength is drawn from this range
    shininess: Range = (8.0, 96.0)
    shadows: bool = True  # cast shadow rays towards the light
    exposure: Range = (0.7, 1.4)
    gamma: Range = (1.8, 2.4)  # display gamma applied to the linear colour


@dataclass(frozen=True)
class ShiftedTextureConfig:
    """Material kinds and their sizes."""

    photo_probability: float = 0.3  # a scikit-image sample photograph
    stripe_probability: float = 0.2
    checker_probability: float = 0.2
    flat_probability: float = 0.1  # else procedural noise
    scale: Range = (0.3, 4.0)  # texture repeats per metre
    photo_texels: int = 128  # photographs are resampled to this size


@dataclass(frozen=True)
class ShiftedTrajectoryConfig:
    """The short motion of a sequence: standing, turning on the spot or driving an arc."""

    still_probability: float = 0.25
    turn_probability: float = 0.25
    speed: Range = (0.2, 1.2)  # m/s when driving
    yaw_rate_deg: Range = (-25.0, 25.0)  # deg/s


@dataclass(frozen=True)
class ShiftedConfig:
    """All settings of the shifted world."""

    world: ShiftedWorldConfig = field(default_factory=ShiftedWorldConfig)
    rig: RigSamplerConfig = field(default_factory=RigSamplerConfig)
    grid: GridConfig = field(default_factory=GridConfig)
    occupancy: OccupancyConfig = field(default_factory=OccupancyConfig)
    scene: SceneConfig = field(default_factory=SceneConfig)
    lighting: ShiftedLightingConfig = field(default_factory=ShiftedLightingConfig)
    texture: ShiftedTextureConfig = field(default_factory=ShiftedTextureConfig)
    trajectory: ShiftedTrajectoryConfig = field(default_factory=ShiftedTrajectoryConfig)

    def __post_init__(self) -> None:
        """Check the values that would break generation, naming the key."""
        r = self.rig
        checks = [
            (self.world.fps > 0, "world.fps must be > 0"),
            (self.world.max_range > 0, "world.max_range must be > 0 (metres)"),
            (1 <= r.cameras[0] and r.cameras[1] <= 8, "rig.cameras must lie in [1, 8]"),
            (0 < r.hfov_deg[0] and r.hfov_deg[1] < 180, "rig.hfov_deg must lie in (0, 180)"),
            (r.width[0] >= 8 and r.height_px[0] >= 8, "rig.width/height_px must be >= 8 px"),
            (len(r.aspects) >= 1 and min(r.aspects) > 0, "rig.aspects must be > 0"),
            (r.baseline[0] > 0, "rig.baseline must be > 0 (metres)"),
            (self.texture.photo_texels >= 8, "texture.photo_texels must be >= 8"),
            (self.scene.object_distance[0] >= 0, "scene.object_distance must be >= 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"shifted world config: {message}")
        for section in fields(self):
            obj = getattr(self, section.name)
            for f in fields(obj):
                value = getattr(obj, f.name)
                if (isinstance(value, tuple) and len(value) == 2 and f.name != "aspects"
                        and value[0] > value[1]):
                    raise ConfigError(f"shifted world config: {section.name}.{f.name} is a "
                                      f"range [lo, hi] with lo <= hi, got {list(value)}")


def load_shifted_config(path: str | os.PathLike[str] | None = None) -> ShiftedConfig:
    """Read `config/shifted_world.yaml` (or `path`) into a ShiftedConfig.

    Raises:
        ConfigError: the file is missing or malformed, or names an unknown key.
    """
    source = config_path("shifted_world.yaml") if path is None else config_path(str(path))
    data = load_yaml(source)
    sections = {f.name: f for f in fields(ShiftedConfig)}
    unknown = unknown_fields(ShiftedConfig, data)
    if unknown:
        raise ConfigError(f"'{source}' has unknown section(s) {unknown}; known: "
                          f"{', '.join(sections)}")
    kwargs: dict[str, Any] = {}
    for name in sections:
        cls = type(getattr(ShiftedConfig(), name))
        raw = data.get(name)
        if name == "grid" and raw is not None:
            kwargs[name] = _grid_section(raw, source)
            continue
        aspects = None
        if name == "rig" and isinstance(raw, dict) and "aspects" in raw:
            raw = dict(raw)
            aspects = raw.pop("aspects")
            if not isinstance(aspects, list) or not aspects:
                raise ConfigError(f"'{source}' rig.aspects must be a list of width / height "
                                  f"ratios, got {aspects}")
        kwargs[name] = _section(cls, raw, name, source)
        if aspects is not None:
            kwargs[name] = replace(kwargs[name], aspects=tuple(float(a) for a in aspects))
    return ShiftedConfig(**kwargs)
