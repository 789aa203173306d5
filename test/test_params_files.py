"""Which sections of a ROS 2 parameters file apply to the node (issue 23), without ROS: the
rcl matching rule (`config.node_name_matches`), nested namespace keys, the node's warning
for a `--params-file` that has no section for it, and the bag evaluation's reader."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from depth_any_view.bag.node_parameters import load_node_parameters
from depth_any_view.config import ConfigError, node_name_matches, parameter_sections
from depth_any_view.ros.params import NODE_SECTION, params_files, unmatched_params_files

ROOT = Path(__file__).resolve().parent.parent
ROOT_NODE, ROBOT1, DEEP = "/depth_any_view", "/robot1/depth_any_view", "/a/b/depth_any_view"


@pytest.mark.parametrize("section, root, robot1, deep", [
    ("/**/depth_any_view", True, True, True),  # the shipped files' key
    ("/**", True, True, True),
    ("depth_any_view", True, False, False),  # the root namespace only (the bug)
    ("/depth_any_view", True, False, False),
    ("/robot1/depth_any_view", False, True, False),
    ("robot1/depth_any_view", False, True, False),
    ("/*/depth_any_view", False, True, False),  # exactly one namespace token
    ("/robot2/depth_any_view", False, False, False),
    ("/**/other_node", False, False, False),
    ("other_node", False, False, False),
])
def test_sections_match_as_ros_matches_them(section: str, root: bool, robot1: bool,
                                            deep: bool) -> None:
    assert [node_name_matches(section, fqn) for fqn in (ROOT_NODE, ROBOT1, DEEP)] == \
        [root, robot1, deep]


def test_nested_namespace_keys_join_like_rcl() -> None:
    data = {"/**": {"ros__parameters": {"a": 1},
                    "depth_any_view": {"ros__parameters": {"b": 2}}},
            "robot1": {"depth_any_view": {"ros__parameters": {"c": 3}}},
            "other": 5}
    assert parameter_sections(data) == [("/**", {"a": 1}), ("/**/depth_any_view", {"b": 2}),
                                        ("robot1/depth_any_view", {"c": 3})]
    assert parameter_sections(None) == [] and parameter_sections([1]) == []


def test_shipped_node_sections_apply_in_every_namespace() -> None:
    for name in ("depth_any_view.yaml", "examples/nav2_costmap_example.yaml"):
        data = yaml.safe_load((ROOT / "config" / name).read_text())
        mine = [s for s, _ in parameter_sections(data) if node_name_matches(s, ROBOT1)]
        assert mine == [NODE_SECTION], name


def test_params_files_are_read_from_the_ros_arguments_only() -> None:
    args = ["prog", "--params-file", "not_ros.yaml", "--ros-args", "-r", "__ns:=/robot1",
            "--params-file", "a.yaml", "-p", "x:=1", "--params-file", "b.yaml", "--",
            "--params-file", "user.yaml", "--ros-args", "--params-file"]
    assert params_files(args) == ["a.yaml", "b.yaml"]


def test_a_file_without_a_section_for_the_node_is_named(tmp_path: Path) -> None:
    root_only = tmp_path / "root_only.yaml"
    root_only.write_text("depth_any_view:\n  ros__parameters:\n    qos_depth: 9\n")
    wildcard = tmp_path / "wildcard.yaml"
    wildcard.write_text("/**:\n  ros__parameters:\n    use_sim_time: true\n")
    other = tmp_path / "other.yaml"
    other.write_text("rtabmap:\n  ros__parameters:\n    a: 1\n")
    missing = tmp_path / "missing.yaml"  # params_file_error's, not this check's
    shipped = ROOT / "config" / "depth_any_view.yaml"
    args = ["--ros-args"] + [a for f in (shipped, root_only, wildcard, other, missing)
                             for a in ("--params-file", str(f))]
    at_root = unmatched_params_files(args, ROOT_NODE)  # only other.yaml misses it
    assert len(at_root) == 1 and str(other) in at_root[0]
    (first, second) = unmatched_params_files(args, ROBOT1)
    assert str(root_only) in first and ROBOT1 in first and "NONE of its values" in first
    assert "'depth_any_view'" in first and f"'{NODE_SECTION}:'" in first
    assert str(other) in second and "'rtabmap'" in second


@pytest.mark.parametrize("key", ["/**/depth_any_view", "depth_any_view",
                                 "/robot1/depth_any_view", "/**"])
def test_evaluation_reads_every_form_of_the_section(tmp_path: Path, key: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({key: {"ros__parameters": {"sync_slop": 0.03}}}))
    values, _ = load_node_parameters(path)
    assert values == {"sync_slop": 0.03}


def test_evaluation_merges_sections_in_file_order_and_honours_a_namespace(
        tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("/**:\n  ros__parameters: {device: cpu, threads: 2}\n"
                    "/**/depth_any_view:\n  ros__parameters: {threads: 3}\n"
                    "depth_any_view:\n  ros__parameters: {qos_depth: 9}\n"
                    "/robot2/depth_any_view:\n  ros__parameters: {min_cameras: 4}\n")
    assert load_node_parameters(path)[0] == {"device": "cpu", "threads": 3, "qos_depth": 9,
                                             "min_cameras": 4}
    assert load_node_parameters(path, namespace="/robot1")[0] == {"device": "cpu",
                                                                  "threads": 3}
    assert load_node_parameters(path, namespace="robot2")[0]["min_cameras"] == 4
    path.write_text("depth_any_view:\n  ros__parameters: {qos_depth: 9}\n")
    with pytest.raises(ConfigError, match="no 'ros__parameters' section for the node "
                                          "/robot1/depth_any_view .write '/\\*\\*/"):
        load_node_parameters(path, namespace="/robot1")
