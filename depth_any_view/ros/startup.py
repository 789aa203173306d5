"""Starting the node: from the command line and parameters to validated settings, the rig
and the pipeline configuration, or one line saying why it cannot start.

    problem = params_file_error(sys.argv)   # a --params-file that cannot be read, or None
    init_rclpy(args)                        # rclpy.init; rcl's own stderr only if it works
    settings = declare_parameters(node)     # every parameter of ros/params.py, validated
    rig = load_rig(settings)                # rig_file, only camera_names in that order
    cfg = pipeline_config(settings)         # the Pipeline's configuration
    sys.exit(run_node(DepthAnyViewNode))    # all of it, spin, shut down: the exit status

Every problem is a StartupError (or the ConfigError it wraps) whose message is the one line
the node prints on stderr before exiting with status 2, before any of its topics exist
(docs/TROUBLESHOOTING.md lists them).
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import rclpy
import yaml
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node

from depth_any_view.config import ConfigError, yaml_error_where
from depth_any_view.geometry.rig import Rig
from depth_any_view.model.weights import WeightsError
from depth_any_view.pipeline import Pipeline, PipelineConfig, resolve_rig_file
from depth_any_view.ros.diagnostics import NodeDiagnostics
from depth_any_view.ros.fastdds import apply_default_profile
from depth_any_view.ros.params import (
    PARAMETERS,
    SPECS,
    ParameterError,
    Settings,
    check_value,
    params_files,
    to_descriptor,
)
from depth_any_view.ros.rig_tf import rig_tf_problem

# Parameters rclpy itself declares or understands; they may appear in parameter files.
ROS_OWN_PARAMETERS = ("use_sim_time", "start_type_description_service")


class StartupError(RuntimeError):
    """The node cannot start; the message is the one line printed before exiting."""


def unknown_parameters(node: Node) -> list[str]:
    """Parameters given to the node (file or command line) that it does not have."""
    overrides = getattr(node, "_parameter_overrides", {})
    return sorted(n for n in overrides if n not in SPECS and n not in ROS_OWN_PARAMETERS
                  and not n.startswith("qos_overrides."))


def declare_parameters(node: Node) -> Settings:
    """Declare every parameter of `PARAMETERS` on `node` and return validated Settings.

    Raises StartupError with one line naming the parameter and its allowed values.
    """
    overrides = getattr(node, "_parameter_overrides", {})  # rclpy keeps them here
    values: dict[str, Any] = {}
    for spec in PARAMETERS:
        try:
            values[spec.name] = node.declare_parameter(spec.name, spec.default,
                                                       to_descriptor(spec)).value
        except (InvalidParameterTypeException, InvalidParameterValueException) as exc:
            given = overrides[spec.name].value if spec.name in overrides else None
            msg = check_value(spec.name, given) if spec.name in overrides else None
            raise StartupError(msg or f"parameter '{spec.name}': "
                                      f"{str(exc).splitlines()[0]}") from None
        if values[spec.name] is None and spec.kind == "string_array":
            values[spec.name] = []  # rclpy reads an empty list override as "not set"
    try:
        return Settings(values)
    except ParameterError as exc:
        raise StartupError(str(exc)) from None


def load_rig(settings: Settings) -> Rig:
    """The rig of `rig_file`, with only `camera_names` in that order.

    Raises ConfigError naming the parameter and the file or camera at fault.
    """
    try:
        full_rig = Rig.from_yaml(resolve_rig_file(settings.rig_file))
    except ConfigError as exc:
        raise ConfigError(f"parameter 'rig_file' ({settings.rig_file!r}): {exc}") from None
    try:
        return full_rig.subset(settings.camera_names)
    except ConfigError as exc:
        raise ConfigError(f"parameter 'camera_names': {exc} (rig_file "
                          f"{settings.rig_file!r})") from None


def pipeline_config(settings: Settings) -> PipelineConfig:
    """The pipeline configuration of the node's parameters: `from_parameters`, as the bag
    evaluation reads them, with the cloud skipped while `publish_points` is off.

    Raises ConfigError / ValueError naming the parameter or field that does not fit.
    """
    cfg = PipelineConfig.from_parameters(settings)
    cfg.points = replace(cfg.points, enabled=bool(settings.publish_points))
    return cfg


def start_pipeline(s: Settings) -> Pipeline:
    """The node's pipeline: the rig (checked for /tf_static when published), the
    configuration, the network (weights, device). Raises StartupError."""
    try:
        rig = load_rig(s)
    except ConfigError as exc:
        raise StartupError(str(exc)) from None
    problem = rig_tf_problem(s.publish_rig_tf, rig)
    if problem is not None:
        raise StartupError(problem)
    try:
        cfg = pipeline_config(s)
    except ValueError as exc:  # ConfigError is one
        raise StartupError(str(exc)) from None
    try:
        return Pipeline(cfg, rig)  # loads the network (weights, device)
    except (ConfigError, WeightsError) as exc:
        raise StartupError(str(exc)) from None


def params_file_error(args: list[str]) -> str | None:
    """Why a `--params-file` among the ROS arguments of `args` cannot be read, or None.

    rcl refuses such a file too, but in words about its parser; this names the file, the
    line and column of a YAML error, or says that the file is missing.
    """
    try:
        files = params_files(args, strict=True)
    except ValueError as exc:
        return str(exc)
    for name in files:
        path = Path(name)
        try:
            data = yaml.safe_load(path.read_text())
        except OSError as exc:
            return f"parameters file '{path}' cannot be read: {exc.strerror or exc}"
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            return (f"parameters file '{path}' is not valid YAML{yaml_error_where(exc)}: "
                    f"{problem}")
        if not isinstance(data, dict):
            return (f"parameters file '{path}' must be a mapping of node names to "
                    "'ros__parameters' (see config/depth_any_view.yaml)")
    return None


def init_rclpy(args: list[str] | None) -> None:
    """`rclpy.init`, holding back what rcl itself writes to stderr meanwhile: replayed when
    it works, dropped when it fails (the exception says the same; the caller prints one
    line)."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no file descriptor (captured stderr)
        rclpy.init(args=args)
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), fd)
        try:
            rclpy.init(args=args)
        finally:
            os.dup2(saved, fd)
            os.close(saved)
        held.seek(0)
        text = held.read()
        if text:
            os.write(fd, text)


def node_diagnostics(s: Settings) -> NodeDiagnostics:
    """The /diagnostics counters of a node with settings `s`."""
    return NodeDiagnostics(s.camera_names, latency_window=s.latency_window,
                           input_timeout=s.input_timeout,
                           event_hold=max(5.0, 2.0 * s.diagnostics_period),
                           inference_timeout=s.inference_timeout,
                           image_topics={c: s.camera_topic(c, s.image_topic)
                                         for c in s.camera_names},
                           camera_qos=s.camera_qos, sync_slop=s.sync_slop)


def ready_line(s: Settings, engine: dict[str, Any]) -> str:
    """The log line of a node that started: its cameras, topics, network and sync."""
    return (f"ready: {len(s.camera_names)} cameras ({', '.join(s.camera_names)}) on "
            f"{s.camera_topic_prefix}/<name>/{s.image_topic} ({s.camera_qos} QoS), network "
            f"{engine['preset']} on {engine['device']} ({engine['precision']}, weights "
            f"{engine['weights']}), min_cameras {s.min_cameras}, slop "
            f"{s.sync_slop * 1e3:.0f} ms")


def run_node(make_node: Callable[..., Node], args: list[str] | None = None,
             name: str = "depth_any_view") -> int:
    """Run `make_node(argv=args)` until shutdown: 0, or 2 with one line on stderr (prefixed
    `name`) when it cannot start.

    `rclpy.init`, spin, then `destroy_node` and `try_shutdown` in `finally` (works on Jazzy
    and Kilted alike). Before `rclpy.init`, with Fast DDS and no Fast DDS configuration
    of the user's, the packaged profile is applied to this process (`ros/fastdds.py`); the
    node logs what it uses once it has started.
    """
    problem = params_file_error(sys.argv if args is None else args)
    if problem is not None:
        print(f"{name}: {problem}", file=sys.stderr)
        return 2
    dds = apply_default_profile()
    try:
        init_rclpy(args)
    except Exception as exc:  # noqa: BLE001 - e.g. a --params-file rcl cannot use
        print(f"{name}: cannot initialise ROS: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    node = None
    try:
        node = make_node(argv=args)
        # after start-up: a node that cannot start says one line on stderr, nothing else
        (node.get_logger().warning if dds.warn else node.get_logger().info)(dds.message)
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except StartupError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
