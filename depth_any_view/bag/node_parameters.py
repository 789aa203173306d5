"""The node's parameters and topic names, read from its parameters file without ROS.

`load_node_parameters` reads the node's `ros__parameters` from a parameters file
(`config/depth_any_view.yaml`, section `/**/depth_any_view: ros__parameters:`) as ROS
merges them; `NodeTopics` holds the node's input and output topic names those parameters
give, and `load_pipeline_config` turns a parameters file into the pipeline's configuration
and topic names. The commands that run the node's pipeline over a bag (`eval-bag`,
`slam`) read their settings here, so a user's remappings and settings apply to them as to
the node.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from depth_any_view import topics
from depth_any_view.config import (
    ConfigError,
    config_path,
    load_yaml,
    node_name_matches,
    parameter_sections,
)
from depth_any_view.pipeline import PipelineConfig

NODE_NAME = "depth_any_view"  # parameters file section
PARAMETERS_FILE = "depth_any_view.yaml"  # the node's packaged parameters


def load_node_parameters(params_file: Path | str | None = None, *,
                         namespace: str | None = None) -> tuple[dict[str, Any], Path]:
    """The node's `ros__parameters` from a parameters file, and the file's path.

    Every section that applies to the node is read, in file order, later values winning,
    as ROS does: `/**/depth_any_view` (the shipped files' key), `/**`, `depth_any_view`,
    and names with wildcards or namespaces (`config.node_name_matches`). With `namespace`
    (e.g. '/robot1') the node is `<namespace>/depth_any_view` and ROS's rule alone decides;
    without it (the evaluation runs no node) a section for the node in any explicit
    namespace, such as a robot's `/robot1/depth_any_view`, applies too.

    Raises:
        ConfigError: the file is missing, malformed, or has no section for the node.
    """
    path = config_path(PARAMETERS_FILE) if params_file is None else Path(params_file)
    data = load_yaml(path)
    fqn = "/" + "/".join(p for p in [*(namespace or "").split("/"), NODE_NAME] if p)
    values: dict[str, Any] = {}
    found = False
    for name, params in parameter_sections(data):
        if not (node_name_matches(name, fqn) or (
                namespace is None and name.rstrip("/").split("/")[-1] == NODE_NAME)):
            continue
        if not isinstance(params, dict):
            raise ConfigError(f"parameters file '{path}': section '{name}' needs a "
                              f"'ros__parameters' mapping")
        values.update(params)
        found = True
    if not found:
        names = [name for name, _ in parameter_sections(data)]
        raise ConfigError(f"parameters file '{path}' has no 'ros__parameters' section for "
                          f"the node {fqn} (write '/**/{NODE_NAME}:' as its top key); its "
                          f"sections: {names}, its top-level keys: {sorted(map(str, data))}")
    return values, path


@dataclass(frozen=True)
class NodeTopics:
    """The node's input and output topic names (defaults: topics.py, README "Interface")."""

    camera_names: tuple[str, ...]
    camera_prefix: str = topics.CAMERA_PREFIX
    image: str = topics.IMAGE
    camera_info: str = topics.CAMERA_INFO
    depth_image: str = topics.DEPTH_IMAGE
    depth_camera_info: str = topics.DEPTH_CAMERA_INFO
    depth_gt: str = topics.DEPTH_GT  # ground truth beside each camera's topics
    odom: str = topics.ODOM
    points: str = topics.POINTS
    voxels: str = topics.VOXELS
    markers: str = topics.MARKERS
    grid: str = topics.GRID
    occupancy_gt: str = topics.OCCUPANCY_GT

    def camera(self, name: str, topic: str) -> str:
        """<camera_prefix>/<name>/<topic>, absolute (the evaluation has no node namespace)."""
        return topics.absolute(topics.camera_topic(name, topic, self.camera_prefix))

    @classmethod
    def from_parameters(cls, values: Mapping[str, Any],
                        camera_names: list[str]) -> NodeTopics:
        """Topic names from the node's parameters (missing ones keep the defaults)."""
        keys = {"camera_prefix": "camera_topic_prefix", "image": "image_topic",
                "camera_info": "camera_info_topic", "depth_image": "depth_image_topic",
                "depth_camera_info": "depth_camera_info_topic", "odom": "odom_topic",
                "points": "points_topic", "voxels": "voxels_topic",
                "markers": "markers_topic", "grid": "grid_topic"}
        kwargs = {}
        for attr, param in keys.items():
            if param in values:
                if not isinstance(values[param], str) or not values[param].strip("/"):
                    raise ConfigError(f"parameter '{param}' must be a topic name, got "
                                      f"{values[param]!r}")
                kwargs[attr] = values[param]
        names = cls(tuple(camera_names), **kwargs)
        return replace(names, **{a: topics.absolute(getattr(names, a)) for a in
                                 ("odom", "points", "voxels", "markers", "grid")})


def load_pipeline_config(params_file: Path | str | None = None, *,
                         weights: Path | str | None = None, random_init: bool = False,
                         parameters: Mapping[str, Any] | None = None,
                         ) -> tuple[PipelineConfig, NodeTopics, dict[str, Any], Path]:
    """The pipeline configuration and topic names of a run over a bag.

    Args:
        params_file: the node's parameters YAML; None = the packaged
            config/depth_any_view.yaml.
        weights: a .safetensors file (its own model config is used); None = the
            parameters' `weights` (empty: the shipped weights of `preset`).
        random_init: random weights of the parameters' `preset` (plumbing checks only).
        parameters: parameter values replacing the file's (e.g. {'device': 'cpu'}).

    Returns:
        (pipeline config, topic names, parameter values, parameters file path).

    Raises:
        ConfigError: the file is missing or malformed, or a value is invalid.
    """
    values, params_path = load_node_parameters(params_file)
    values.update(parameters or {})
    cfg = PipelineConfig.from_parameters(values)
    if weights is not None:
        cfg.engine = replace(cfg.engine, weights=str(weights), preset=None, random_init=False)
    elif random_init:
        cfg.engine = replace(cfg.engine, weights=None, random_init=True)
    return cfg, NodeTopics.from_parameters(values, cfg.camera_names), values, params_path


__all__ = ["NODE_NAME", "PARAMETERS_FILE", "NodeTopics", "load_node_parameters",
           "load_pipeline_config"]
