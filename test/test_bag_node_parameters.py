"""Tests of bag/node_parameters.py: the node's parameters read from its parameters file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from depth_any_view.bag.node_parameters import load_node_parameters
from depth_any_view.config import ConfigError

CAMERAS = ["front", "front_left", "front_right", "back", "back_left", "back_right"]


def test_parameters_file_sections(tmp_path: Path) -> None:
    values, path = load_node_parameters(None)
    assert path.name == "depth_any_view.yaml" and values["camera_names"] == CAMERAS
    bad = tmp_path / "params_bad.yaml"
    bad.write_text(yaml.safe_dump({"other_node": {"ros__parameters": {"a": 1}}}))
    with pytest.raises(ConfigError,
                       match="no .ros__parameters. section for the node /depth_any_view"):
        load_node_parameters(bad)
    bad.write_text(yaml.safe_dump({"depth_any_view": {"parameters": {"a": 1}}}))
    with pytest.raises(ConfigError, match="ros__parameters"):
        load_node_parameters(bad)
