"""The node's parameters: one table of (name, default, description, range), validation, configs.

`PARAMETERS` is the single source of truth: the node declares exactly these (with a
ParameterDescriptor carrying the description and range), `config/depth_any_view.yaml`
lists exactly these with the same defaults (a test checks it, like nvblox_ros
`node_params.hpp`), and the README's parameter table follows it. Units: metres, seconds,
radians, log-odds per second; a `0` that means "off" or "the model's value" says so.

Parameters marked `runtime` can be changed while the node runs (`ros2 param set`); the
others are read-only after start-up (their descriptor says so and ROS refuses the change).
Validation gives one line naming the parameter and its allowed range or values, both at
start-up (the node exits before it creates any topic) and at runtime (the set is refused
with that line as the reason).

This module needs no ROS (rcl_interfaces is imported only by `to_descriptor`), so the
table and the validation are testable without a ROS graph. The translation of the values
into the core's configs is `depth_any_view.pipeline.PipelineConfig.from_parameters`, the
one the bag evaluation uses too; the defaults shared with the core (`DEFAULT_CAMERA_NAMES`,
`INPUT_ENCODINGS`) are imported from there.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from depth_any_view import topics
from depth_any_view.config import node_name_matches, parameter_sections
from depth_any_view.pipeline import DEFAULT_CAMERA_NAMES, INPUT_ENCODINGS

QOS_CHOICES = ("sensor_data", "reliable", "best_effort", "transient_local", "system_default")
NAME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_]*")  # a camera name is one topic token
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")
# Most cameras one node takes (README "Any number of cameras"): the network accepts any
# number of views with the same weights, but cross-view attention grows with the square of
# the views and the node is tested with 1 to 8. Run a second node for more.
MAX_CAMERAS = 8
LARGE_MESSAGE_BYTES = 64 * 1024  # an output message above this is paced (publish_spacing)


class ParameterError(ValueError):
    """A parameter value is not allowed; the message names it and the allowed range."""


@dataclass(frozen=True)
class ParamSpec:
    """One node parameter: its default (which fixes its type), meaning and allowed values."""

    name: str
    default: bool | int | float | str | list[str]
    description: str  # one line, with the unit
    minimum: float | None = None  # inclusive lower bound (numbers)
    maximum: float | None = None  # inclusive upper bound (numbers)
    choices: tuple[str, ...] | None = None  # allowed strings
    runtime: bool = False  # may change while the node runs
    unit: str = ""  # printed after ranges in error messages

    @property
    def kind(self) -> str:
        """'bool' | 'integer' | 'double' | 'string' | 'string_array' (from the default)."""
        d = self.default
        if isinstance(d, bool):
            return "bool"
        if isinstance(d, int):
            return "integer"
        if isinstance(d, float):
            return "double"
        if isinstance(d, str):
            return "string"
        return "string_array"

    def allowed(self) -> str:
        """Human-readable allowed values, e.g. 'range [0.0, 1.0] seconds'."""
        if self.choices is not None:
            return "values: " + ", ".join(self.choices)
        if self.minimum is not None or self.maximum is not None:
            lo = "-inf" if self.minimum is None else _fmt(self.minimum, self.kind)
            hi = "inf" if self.maximum is None else _fmt(self.maximum, self.kind)
            return f"range [{lo}, {hi}]" + (f" {self.unit}" if self.unit else "")
        return {"bool": "true or false", "string": "a string",
                "string_array": "a list of strings"}.get(self.kind, "a number")


def _fmt(value: float, kind: str) -> str:
    """A bound printed as the parameter's type writes it."""
    return str(int(value)) if kind == "integer" else repr(float(value))


def _p(name: str, default: Any, description: str, minimum: float | None = None,
       maximum: float | None = None, choices: tuple[str, ...] | None = None,
       runtime: bool = False, unit: str = "") -> ParamSpec:
    """Shorthand for the table below."""
    return ParamSpec(name, default, description, minimum, maximum, choices, runtime, unit)


S, M = "seconds", "metres"
PARAMETERS: tuple[ParamSpec, ...] = (
    # ---------------------------------------------------------------- cameras and inputs
    _p("camera_names", list(DEFAULT_CAMERA_NAMES),
       f"Cameras to use (1 to {MAX_CAMERAS}), in this order; each needs an entry in "
       "rig_file"),
    _p("rig_file", "config/rig_surround6.yaml",
       "Rig calibration YAML (camera -> base_link extrinsics); a path, or a file name "
       "found in the package's config folder. A change at runtime (a new calibration) "
       "applies from the next set and re-sends /tf_static when publish_rig_tf is on",
       runtime=True),
    _p("publish_rig_tf", False,
       "Publish base_link -> each camera's optical frame of rig_file on /tf_static "
       "(tf2_msgs/TFMessage, transient local, as tf2_ros's StaticTransformBroadcaster), "
       "stamped at start-up and re-sent when the rig changes; off when a "
       "robot_state_publisher already publishes the cameras' frames", runtime=True),
    _p("camera_topic_prefix", topics.CAMERA_PREFIX,
       "Per-camera topics are <camera_topic_prefix>/<name>/<topic>"),
    _p("image_topic", topics.IMAGE,
       f"Input image topic under each camera ({', '.join(INPUT_ENCODINGS)})"),
    _p("camera_info_topic", topics.CAMERA_INFO, "Input CameraInfo topic under each camera"),
    _p("depth_image_topic", topics.DEPTH_IMAGE, "Output depth topic under each camera (32FC1, m)"),
    _p("depth_camera_info_topic", topics.DEPTH_CAMERA_INFO,
       "Output CameraInfo topic under each camera, matching the depth image's size"),
    _p("depth_confidence_topic", topics.DEPTH_CONFIDENCE,
       "Output depth confidence topic under each camera (32FC1, 0..1, the depth's header)"),
    _p("odom_topic", topics.ODOM, "Input nav_msgs/Odometry: pose of base_link in odom"),
    _p("odometry_output_topic", topics.ODOMETRY_OUTPUT,
       "Output nav_msgs/Odometry (odom -> base_link, the set's stamp; velocity in base_link "
       "and covariances from the drift in config/slam.yaml) when odometry_source is "
       "kiss_icp or open3d_rgbd"),
    _p("points_topic", topics.POINTS,
       "Output PointCloud2 in base_link: x y z rgb (float32, PCL packing)"),
    _p("voxels_topic", topics.VOXELS,
       "Output PointCloud2 of occupied voxel centres in odom: x y z probability"),
    _p("markers_topic", topics.MARKERS,
       "Output MarkerArray (CUBE_LIST coloured by height) of occupied voxels"),
    _p("grid_topic", topics.GRID,
       "Output nav_msgs/OccupancyGrid: a height band projected to 2D, -1 = unknown"),
    _p("diagnostics_topic", topics.DIAGNOSTICS, "Output diagnostic_msgs/DiagnosticArray"),
    _p("odom_frame", "odom",
       "Frame of the fused occupancy outputs (base_link comes from rig_file)"),
    _p("camera_qos", "sensor_data", "QoS of the image and CameraInfo subscriptions",
       choices=QOS_CHOICES),
    _p("odom_qos", "sensor_data",
       "QoS of the odometry subscription (best effort matches reliable publishers too)",
       choices=QOS_CHOICES),
    _p("output_qos", "reliable", "QoS of the depth, point cloud, voxel and marker outputs",
       choices=QOS_CHOICES),
    _p("grid_qos", "transient_local",
       "QoS of the occupancy grid (transient_local suits Nav2 and RViz map subscribers)",
       choices=QOS_CHOICES),
    _p("qos_depth", 5, "History depth of the subscriptions and publishers (the "
       "transient-local grid keeps 1)", 1, 1000),
    _p("max_image_pixels", 16_777_216,
       "Images with more pixels (width x height) than this are refused before they are "
       "copied or decoded, with a warning naming the camera and the size", 1,
       1_000_000_000, unit="pixels"),
    # ---------------------------------------------------------------- synchronization
    _p("sync_slop", 0.02,
       "Largest stamp spread within one synchronized set; keep it below half a frame "
       "period", 0.0, 1.0, unit=S),
    _p("sync_queue_size", 10, "Pending images kept per camera", 1, 1000),
    _p("sync_timeout", 0.15,
       "After this long a partial set (>= min_cameras views) goes ahead without the "
       "missing cameras", 0.001, 10.0, unit=S),
    _p("min_cameras", 1, "Fewest views a set may have (at most the number of cameras)",
       1, 64),
    _p("max_staleness", 0.0,
       "Drop images whose stamp is older than now minus this; 0 = off (stamps and the "
       "node clock must share a time base)", 0.0, 3600.0, unit=S),
    _p("sync_poll_period", 0.02, "How often timed-out sets are checked", 0.001, 1.0, unit=S),
    _p("max_stamp_jump", 10.0,
       "A set stamped more than this after the previous set (a clock jump) resets the "
       "occupancy map and the temporal state, with one log line", 0.1, 86400.0, unit=S),
    _p("odom_max_age", 0.2,
       "Odometry used for a set must be stamped within this of the set's stamp; else "
       "occupancy falls back to single-frame base_link", 0.001, 10.0, unit=S),
    _p("odom_reset_timeout", 2.0,
       "During an odometry gap up to this long (set stamps since the last fused set) the "
       "map is held in odom and not fused; a longer gap resets it to single-frame "
       "base_link; 0 = at once", 0.0, 3600.0, unit=S),
    _p("use_odometry", True,
       "Fuse occupancy over time in odom; false = single-frame occupancy in base_link"),
    _p("odometry_source", "topic",
       "Pose for temporal fusion: topic (odom_topic), or cameras only (for robots without "
       "odometry; published on odometry_output_topic): kiss_icp (KISS-ICP on the node's "
       "fused cloud) or open3d_rgbd (Open3D RGB-D odometry per camera; more accurate on "
       "predicted depth); settings in config/slam.yaml",
       choices=("topic", "kiss_icp", "open3d_rgbd")),
    # ---------------------------------------------------------------- inference
    _p("weights", "",
       "Network weights (.safetensors); empty = the shipped weights of the preset"),
    _p("preset", "lite",
       "Model preset (lite, paper) or a model config YAML path the weights must match"),
    _p("random_init", False,
       "Run randomly initialised weights (tests and plumbing only; outputs are "
       "meaningless)"),
    _p("device", "auto", "Inference device: auto, cpu, cuda or cuda:N"),
    _p("precision", "fp32", "Inference precision (autocast; fp16 needs CUDA)",
       choices=("fp32", "fp16", "bf16")),
    _p("compile", False, "torch.compile the network (falls back to eager if it fails)"),
    _p("compile_mode", "default", "torch.compile mode",
       choices=("default", "reduce-overhead", "max-autotune")),
    _p("channels_last", True, "NHWC memory layout for images and convolutions"),
    _p("warmup_iters", 2, "Dummy inferences at start-up (0 = none)", 0, 100),
    _p("threads", 0, "torch CPU threads; 0 = torch's default", 0, 1024),
    _p("backend", "torch",
       "Inference backend: torch (eager, or compiled with compile) or onnxruntime (the "
       "network exported to ONNX and run by ONNX Runtime, fp32; threads sets its threads)",
       choices=("torch", "onnxruntime")),
    _p("onnx_file", "",
       "backend onnxruntime: a file from `depth-any-view export --onnx` for at least as many "
       "views as camera_names; empty = export the weights at start-up (once, cached in "
       "$XDG_CACHE_HOME or ~/.cache/depth_any_view/onnx)"),
    _p("onnx_providers", ["CPUExecutionProvider"],
       "backend onnxruntime: ONNX Runtime execution providers in priority order, e.g. "
       "[TensorrtExecutionProvider, CUDAExecutionProvider, CPUExecutionProvider]; "
       "unavailable ones are skipped with a warning, the CPU is the last fallback"),
    _p("output_resolution", "input",
       "Depth images at each input image's resolution (registered with it) or at the "
       "network's", choices=("input", "network")),
    _p("depth_interpolation", "nearest", "Resizing network depth to the input resolution",
       choices=("nearest", "bilinear")),
    _p("depth_min", 0.0,
       "Lower end of the trusted depth range when depth_max > 0", 0.0, 1000.0, unit=M),
    _p("depth_max", 0.0,
       "Upper end of the trusted depth range; 0 = the model's trained range", 0.0, 1000.0,
       unit=M),
    _p("out_of_range", "nan", "Depth outside the trusted range: NaN or clamped",
       choices=("nan", "clamp")),
    # ---------------------------------------------------------------- outputs
    _p("publish_depth", True, "Publish per-camera depth images and CameraInfo",
       runtime=True),
    _p("depth_encoding", "32FC1", "Encoding of the published depth images: 32FC1 (metres, "
       "NaN invalid) or 16UC1 (millimetres, 0 invalid), the two RTAB-Map and "
       "depth_image_proc read", choices=("32FC1", "16UC1"), runtime=True),
    _p("publish_confidence", False,
       "Publish each depth pixel's confidence (0..1; 0.5 = an expected 10 % depth error) on "
       "depth_confidence_topic; needs weights with a confidence head", runtime=True),
    _p("min_confidence", 0.0,
       "Depth pixels whose confidence is below this become NaN (0 in 16UC1) and are left "
       "out of the point cloud and of free-space carving; 0 = keep all", 0.0, 1.0,
       runtime=True),
    _p("publish_points", True, "Publish the fused point cloud", runtime=True),
    _p("publish_voxels", True, "Publish occupied voxel centres", runtime=True),
    _p("publish_markers", True, "Publish the voxel MarkerArray", runtime=True),
    _p("publish_grid", True, "Publish the 2D occupancy grid", runtime=True),
    _p("points_stride", 2, "Keep every n-th pixel row and column for the point cloud",
       1, 64, runtime=True),
    _p("points_voxel_size", 0.0,
       "Voxel-downsample the point cloud to one point per voxel of this edge; 0 = off",
       0.0, 10.0, runtime=True, unit=M),
    _p("points_max_depth", 0.0,
       "Leave out points deeper than this; 0 = no limit beyond the trusted range",
       0.0, 1000.0, runtime=True, unit=M),
    _p("points_sample", 0,
       "Publish a random subset of at most this many points, another each set; 0 = every "
       "point. For consumers that register every point, such as KISS-ICP's node: from the "
       "same pixel grid in every set they stick when the robot crawls (e.g. 4000)",
       0, 10_000_000, runtime=True),
    _p("marker_max_voxels", 50000, "Most voxels drawn in the MarkerArray (highest "
       "probability first)", 1, 10_000_000, runtime=True),
    _p("markers_period", 1.0,
       "Rebuild and publish the MarkerArray (for RViz) at most this often, in seconds of set "
       "stamps, and at once after a map reset; 0 = every set", 0.0, 3600.0, runtime=True,
       unit=S),
    _p("publish_spacing", 0.002,
       "Least time between two large output messages (depth images, clouds, markers): a "
       "burst can overflow DDS receive buffers on a busy host and reliable topics then arrive "
       "seconds late; 0 = back to back", 0.0, 0.1, runtime=True, unit=S),
    # ---------------------------------------------------------------- occupancy fusion
    _p("occupied_threshold", 0.6, "Fused probability at or above which a voxel is occupied",
       0.5, 0.999, runtime=True),
    _p("free_threshold", 0.4, "Fused probability at or below which a voxel is free",
       0.001, 0.5, runtime=True),
    _p("grid_z_min", 0.1, "Lowest voxel centre of the 2D grid's band, above base_link",
       -10.0, 10.0, runtime=True, unit=M),
    _p("grid_z_max", 1.5, "Highest voxel centre of the 2D grid's band, above base_link",
       -10.0, 10.0, runtime=True, unit=M),
    _p("decay_occupied", 0.0,
       "Log-odds per second occupied voxels lose (moving obstacles fade); 0 = off",
       0.0, 100.0, runtime=True, unit="log-odds/s"),
    _p("decay_free", 0.0, "Log-odds per second free voxels lose; 0 = off", 0.0, 100.0,
       runtime=True, unit="log-odds/s"),
    _p("max_linear_speed", 5.0, "Odometry moving faster than this resets the map (a jump)",
       0.0, 100.0, runtime=True, unit="m/s"),
    _p("max_angular_speed", 3.0, "Odometry turning faster than this resets the map",
       0.0, 100.0, runtime=True, unit="rad/s"),
    _p("fusion_interpolation", "trilinear",
       "Resampling of the network volume into the odom map", choices=("trilinear", "nearest")),
    _p("carve_free_space", True,
       "Carve free space: every voxel a camera ray crosses before its predicted surface gets "
       "a miss, so voxels a moving obstacle left clear", runtime=True),
    _p("carve_probability", 0.35,
       "Probability of one carving miss (its log-odds are added at most once per voxel and "
       "set); lower clears faster", 0.01, 0.49, runtime=True),
    _p("carve_stride", 4,
       "Every n-th pixel row and column of the network-size depth casts a carving ray",
       1, 64, runtime=True),
    _p("carve_max_range", 10.0, "Nothing farther than this from the camera is carved",
       0.1, 1000.0, runtime=True, unit=M),
    _p("carve_margin", 1.0, "A carving ray stops this many voxels short of its surface",
       0.0, 10.0, runtime=True, unit="voxels"),
    # ---------------------------------------------------------------- diagnostics and logs
    _p("diagnostics_period", 1.0, "Period of /diagnostics", 0.05, 60.0, unit=S),
    _p("latency_window", 100, "Sets over which latency percentiles are computed", 1, 100000),
    _p("input_timeout", 1.0,
       "A camera without images for this long is reported missing", 0.01, 60.0, unit=S),
    _p("inference_timeout", 5.0,
       "The inference status goes WARN when no set was processed for this long",
       0.1, 3600.0, unit=S),
    _p("warn_throttle", 5.0, "Repeated warnings about one camera and field are throttled "
       "to one per this period", 0.0, 3600.0, runtime=True, unit=S),
)
PARAMETER_NAMES = tuple(p.name for p in PARAMETERS)
SPECS: dict[str, ParamSpec] = {p.name: p for p in PARAMETERS}
assert len(SPECS) == len(PARAMETERS), "duplicate parameter name in PARAMETERS"


def defaults() -> dict[str, Any]:
    """Every parameter's default (lists copied), in table order."""
    return {p.name: list(p.default) if isinstance(p.default, list) else p.default
            for p in PARAMETERS}


# ---------------------------------------------------------------------------- validation
def _type_error(spec: ParamSpec, value: Any) -> str | None:
    """Why `value` has the wrong type for `spec`, or None."""
    kind = spec.kind
    if kind == "bool":
        ok = isinstance(value, bool)
    elif kind == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "double":
        ok = isinstance(value, float)
    elif kind == "string":
        ok = isinstance(value, str)
    else:
        ok = isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
    if ok:
        return None
    hint = ""
    if kind == "double" and isinstance(value, int) and not isinstance(value, bool):
        hint = f" (write {float(value)!r}, not {value})"
    return (f"parameter '{spec.name}' must be {_KIND_TEXT[kind]}, got "
            f"{type(value).__name__} {value!r}{hint}")


_KIND_TEXT = {"bool": "true or false", "integer": "an integer", "double": "a floating-point "
              "number", "string": "a string", "string_array": "a list of strings"}


def check_value(name: str, value: Any) -> str | None:
    """Why `value` is not allowed for parameter `name` on its own, or None if it is."""
    spec = SPECS.get(name)
    if spec is None:
        return f"unknown parameter '{name}'"
    err = _type_error(spec, value)
    if err is not None:
        return err
    if spec.kind in ("integer", "double"):
        v = float(value)
        if (not math.isfinite(v) or (spec.minimum is not None and v < spec.minimum)
                or (spec.maximum is not None and v > spec.maximum)):
            return f"parameter '{name}' is {value!r}; allowed {spec.allowed()}"
    if spec.choices is not None and value not in spec.choices:
        return f"parameter '{name}' is {value!r}; allowed {spec.allowed()}"
    if name == "camera_names":
        if not value:
            return "parameter 'camera_names' is empty; list at least one camera name"
        if len(value) > MAX_CAMERAS:
            return (f"parameter 'camera_names' lists {len(value)} cameras {list(value)}; "
                    f"one node takes 1 to {MAX_CAMERAS} (run a second node for the others)")
        bad = [v for v in value if not NAME_PATTERN.fullmatch(v)]
        if bad:
            return (f"parameter 'camera_names' has invalid name(s) {bad}; a name is a letter "
                    "followed by letters, digits or '_'")
        if len(set(value)) != len(value):
            return f"parameter 'camera_names' has duplicate names: {list(value)}"
    if name == "onnx_providers" and not (value and all(v.strip() for v in value)):
        return ("parameter 'onnx_providers' must list at least one ONNX Runtime provider, "
                "e.g. [CPUExecutionProvider]")
    if name == "device" and not DEVICE_PATTERN.fullmatch(value):
        return f"parameter 'device' is {value!r}; allowed values: auto, cpu, cuda, cuda:N"
    if name in ("rig_file", "preset", "image_topic", "camera_info_topic", "depth_image_topic",
                "depth_camera_info_topic", "depth_confidence_topic", "odom_topic",
                "odometry_output_topic",
                "points_topic", "voxels_topic", "markers_topic", "grid_topic",
                "diagnostics_topic", "odom_frame", "camera_topic_prefix") and not value.strip():
        return f"parameter '{name}' is empty; give a value (default {spec.default!r})"
    return None


def check_all(values: Mapping[str, Any]) -> list[str]:
    """Every problem with a full set of values: each value alone, then combinations."""
    errors = [e for e in (check_value(n, values[n]) for n in PARAMETER_NAMES if n in values)
              if e is not None]
    missing = [n for n in PARAMETER_NAMES if n not in values]
    if missing:
        errors.append(f"missing parameter(s) {missing}")
    if errors:
        return errors
    v = values
    if v["min_cameras"] > len(v["camera_names"]):
        errors.append(f"parameter 'min_cameras' is {v['min_cameras']}; allowed range [1, "
                      f"{len(v['camera_names'])}] (the number of camera_names)")
    if v["grid_z_min"] > v["grid_z_max"]:
        errors.append(f"parameter 'grid_z_min' ({v['grid_z_min']}) must be <= grid_z_max "
                      f"({v['grid_z_max']})")
    if v["depth_max"] > 0.0 and not v["depth_min"] < v["depth_max"]:
        errors.append(f"parameter 'depth_min' ({v['depth_min']}) must be < depth_max "
                      f"({v['depth_max']}) when depth_max > 0")
    if v["backend"] == "onnxruntime" and (v["precision"] != "fp32" or v["compile"]):
        errors.append(f"parameter 'backend' is 'onnxruntime', which runs the exported float32 "
                      f"graph: set precision fp32 (is {v['precision']!r}) and compile false "
                      f"(is {str(v['compile']).lower()}), or use backend torch")
    if v["random_init"] and v["weights"]:
        errors.append("parameters 'random_init' and 'weights' exclude each other: clear "
                      "'weights' to run random weights, or set random_init false")
    return errors


class Settings(Mapping[str, Any]):
    """A validated, immutable set of parameter values with attribute access."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        """Validate `values` (every parameter); ParameterError with the first problem."""
        clean = {n: (list(values[n]) if SPECS[n].kind == "string_array" else values[n])
                 for n in PARAMETER_NAMES if n in values}
        errors = check_all(clean)
        if errors:
            raise ParameterError(errors[0])
        object.__setattr__(self, "_values", clean)

    def __getitem__(self, name: str) -> Any:
        """The value of parameter `name`."""
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        """Parameter names in table order."""
        return iter(self._values)

    def __len__(self) -> int:
        """Number of parameters."""
        return len(self._values)

    def __getattr__(self, name: str) -> Any:
        """`settings.sync_slop` reads parameter 'sync_slop'."""
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"no parameter '{name}'") from None

    def __setattr__(self, name: str, value: Any) -> None:
        """Settings are immutable; use `updated`."""
        raise AttributeError("Settings are immutable; use updated(...)")

    def updated(self, changes: Mapping[str, Any]) -> Settings:
        """A new Settings with `changes` applied (validated together with the rest)."""
        return Settings({**self._values, **changes})

    def camera_topic(self, camera: str, topic: str) -> str:
        """<camera_topic_prefix>/<camera>/<topic>, without doubled slashes."""
        return topics.camera_topic(camera, topic, self.camera_topic_prefix)


# ---------------------------------------------------------------------------- parameters files
NODE_SECTION = "/**/depth_any_view"  # the shipped files' top key: the node in any namespace


def params_files(args: Sequence[str], strict: bool = False) -> list[str]:
    """The files given with `--params-file` among the ROS arguments of `args`, in order.

    Raises:
        ValueError: `strict` and a `--params-file` ends the arguments without a file name.
    """
    files: list[str] = []
    in_ros = False
    for i, arg in enumerate(args):
        if arg == "--ros-args":
            in_ros = True
        elif arg == "--":
            in_ros = False
        elif in_ros and arg == "--params-file":
            if i + 1 < len(args):
                files.append(args[i + 1])
            elif strict:
                raise ValueError("--params-file needs a file name")
    return files


def unmatched_params_files(args: Sequence[str], node_fqn: str) -> list[str]:
    """One warning per `--params-file` in `args` that has no section for the node
    `node_fqn` (e.g. '/robot1/depth_any_view'), so that ROS applies none of its values.

    The classic case: a file whose top key is `depth_any_view:` applies only at the root
    namespace, and a node started with a namespace silently runs on its defaults.
    Unreadable files are left to `startup.params_file_error` (and to rcl).
    """
    warnings = []
    for path in params_files(args):
        try:
            data = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError):
            continue
        names = [name for name, _ in parameter_sections(data)]
        if any(node_name_matches(name, node_fqn) for name in names):
            continue
        found = ", ".join(repr(n) for n in names) if names else "none"
        warnings.append(
            f"parameters file '{path}' has no section for this node ({node_fqn}), so NONE of "
            f"its values apply (its sections: {found}); a top key '{NODE_SECTION}:' applies "
            f"in every namespace, '{node_fqn}:' to this node only")
    return warnings


# ---------------------------------------------------------------------------- ROS descriptors
def to_descriptor(spec: ParamSpec) -> Any:
    """rcl_interfaces/ParameterDescriptor of a spec: description, range, read-only flag."""
    from rcl_interfaces.msg import (
        FloatingPointRange,
        IntegerRange,
        ParameterDescriptor,
        ParameterType,
    )

    types = {"bool": ParameterType.PARAMETER_BOOL, "integer": ParameterType.PARAMETER_INTEGER,
             "double": ParameterType.PARAMETER_DOUBLE, "string": ParameterType.PARAMETER_STRING,
             "string_array": ParameterType.PARAMETER_STRING_ARRAY}
    desc = ParameterDescriptor(name=spec.name, type=types[spec.kind],
                               description=spec.description, read_only=not spec.runtime)
    extra = []
    if spec.choices is not None or spec.kind in ("integer", "double"):
        extra.append("allowed " + spec.allowed())
    if not spec.runtime:
        extra.append("set at start-up only")
    desc.additional_constraints = "; ".join(extra)
    lo = -math.inf if spec.minimum is None else spec.minimum
    hi = math.inf if spec.maximum is None else spec.maximum
    if spec.kind == "double" and (spec.minimum is not None or spec.maximum is not None):
        desc.floating_point_range = [FloatingPointRange(from_value=float(lo), to_value=float(hi),
                                                        step=0.0)]
    if spec.kind == "integer" and spec.minimum is not None and spec.maximum is not None:
        desc.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=1)]
    return desc
