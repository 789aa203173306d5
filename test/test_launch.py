"""The launch files (issue 23): their boolean arguments, the node and player they build.

Three layers: `launch_bool` on its own (pure Python); the launch files run against minimal
stand-ins for the launch API, which always runs (launch and launch_ros are not installable
from the package index); and the launch files' description functions run by the real
launch / launch_ros, where they are importable (on a robot, or with their sources on
PYTHONPATH) and skipped with the reason where they are not. Nothing is started.
"""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import yaml

from depth_any_view.ros.launch_args import launch_bool
from depth_any_view.ros.params import unmatched_params_files

ROOT = Path(__file__).resolve().parent.parent
NODE_LAUNCH = ROOT / "launch" / "depth_any_view.launch.py"
REPLAY_LAUNCH = ROOT / "launch" / "replay.launch.py"
SHIPPED = ROOT / "config" / "depth_any_view.yaml"


# ---------------------------------------------------------------------------- launch_bool
@pytest.mark.parametrize("text, expected", [
    ("true", True), ("True", True), ("TRUE", True), (" true ", True), ("1", True),
    ("false", False), ("False", False), ("FALSE", False), ("0", False), ("fAlSe\n", False),
])
def test_launch_bool_accepts_true_and_false_in_any_case(text: str, expected: bool) -> None:
    assert launch_bool(text, "use_sim_time") is expected


@pytest.mark.parametrize("text", ["", "yes", "on", "2", "truee", "none"])
def test_launch_bool_refuses_anything_else_naming_the_argument(text: str) -> None:
    with pytest.raises(ValueError) as info:
        launch_bool(text, "use_sim_time")
    assert str(info.value) == (f"launch argument 'use_sim_time' is {text!r}; use true or "
                               "false (any case), or 1 or 0")


# ---------------------------------------------------------------------------- stand-ins
def _fake_launch_modules() -> dict[str, types.ModuleType]:
    """Minimal stand-ins for launch / launch_ros that record what the files build."""

    class Recorder:
        def __init__(self, *args, **kwargs):
            self.args, self.kwargs = args, kwargs

    class LaunchConfiguration(Recorder):
        def perform(self, context):
            return context[self.args[0]]

    class FindPackagePrefix(Recorder):
        def perform(self, context):
            return "/opt/robot_ws/install/depth_any_view"

    class PathJoinSubstitution(Recorder):
        def perform(self, context):
            return "/".join(p if isinstance(p, str) else p.perform(context)
                            for p in self.args[0])

    def recorder(name: str) -> type:
        return type(name, (Recorder,), {})

    mods = {}
    for name, attrs in {
        "launch": {"LaunchDescription": recorder("LaunchDescription")},
        "launch.actions": {n: recorder(n) for n in (
            "DeclareLaunchArgument", "OpaqueFunction", "EmitEvent", "ExecuteProcess",
            "IncludeLaunchDescription", "RegisterEventHandler")},
        "launch.event_handlers": {"OnProcessExit": recorder("OnProcessExit")},
        "launch.events": {"Shutdown": recorder("Shutdown")},
        "launch.launch_description_sources": {
            "PythonLaunchDescriptionSource": recorder("PythonLaunchDescriptionSource")},
        "launch.substitutions": {"LaunchConfiguration": LaunchConfiguration,
                                 "PathJoinSubstitution": PathJoinSubstitution},
        "launch_ros": {},
        "launch_ros.actions": {"Node": recorder("Node")},
        "launch_ros.substitutions": {"FindPackageShare": recorder("FindPackageShare"),
                                     "FindPackagePrefix": FindPackagePrefix},
    }.items():
        mod = types.ModuleType(name)
        for k, v in attrs.items():
            setattr(mod, k, v)
        mods[name] = mod
    return mods


def _run_with_stand_ins(path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The entities of `path`'s generate_launch_description, built with the stand-ins."""
    source = path.read_text()
    for name, mod in _fake_launch_modules().items():
        monkeypatch.setitem(sys.modules, name, mod)
    namespace: dict = {"__name__": path.stem.replace(".", "_")}
    exec(compile(source, str(path), "exec"), namespace)  # noqa: S102 - our own file
    return namespace["generate_launch_description"]().args[0]


def _declared(entities: list[Any]) -> dict[str, dict]:
    return {e.args[0]: e.kwargs for e in entities
            if type(e).__name__ == "DeclareLaunchArgument"}


def _opaque(entities: list[Any]) -> Any:
    (opaque,) = [e for e in entities if type(e).__name__ == "OpaqueFunction"]
    return opaque.kwargs["function"]


def test_node_launch_arguments_and_nodes_with_stand_ins(monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    entities = _run_with_stand_ins(NODE_LAUNCH, monkeypatch)
    declared = _declared(entities)
    assert set(declared) == {"params_file", "weights", "use_sim_time", "namespace", "rviz"}
    assert declared["rviz"]["default_value"] == "false"
    assert declared["use_sim_time"]["default_value"] == "false"
    assert declared["weights"]["default_value"] == ""
    assert all("choices" not in kw for kw in declared.values())  # True, TRUE, 1 pass
    assert declared["params_file"]["default_value"].args[0][1:] == ["config",
                                                                    "depth_any_view.yaml"]
    nodes = _opaque(entities)
    base = {"weights": "", "use_sim_time": "false", "rviz": "false"}
    for weights, expect_override in (("", False), ("/w/lite.safetensors", True)):
        (node,) = nodes({**base, "weights": weights})
        assert node.kwargs["executable"] == "depth_any_view_node"
        assert node.kwargs["name"] == "depth_any_view"
        overrides = node.kwargs["parameters"][1]
        assert ("weights" in overrides) == expect_override
        assert overrides["use_sim_time"] is False
    for text, expected in (("True", True), ("TRUE", True), ("1", True), ("False", False)):
        node, rviz = nodes({**base, "use_sim_time": text, "rviz": "tRUE"})
        assert node.kwargs["parameters"][1]["use_sim_time"] is expected
        assert rviz.kwargs["executable"] == "rviz2"
        assert rviz.kwargs["parameters"] == [{"use_sim_time": expected}]
    with pytest.raises(ValueError, match="launch argument 'use_sim_time' is 'maybe'"):
        nodes({**base, "use_sim_time": "maybe"})


def test_replay_launch_loop_takes_any_case_with_stand_ins(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    entities = _run_with_stand_ins(REPLAY_LAUNCH, monkeypatch)
    declared = _declared(entities)
    assert all("choices" not in kw for kw in declared.values())
    player = _opaque(entities)
    base = {"bag": "/bags/run1", "rate": "0.5", "delay": "5.0"}
    for text, looped in (("True", True), ("TRUE", True), ("1", True), ("false", False),
                         ("False", False)):
        process, _on_exit = player({**base, "loop": text})
        cmd = process.kwargs["cmd"]
        assert cmd[0] == "/opt/robot_ws/install/depth_any_view/lib/depth_any_view/depth-any-view"
        assert cmd[1:4] == ["replay", "/bags/run1", "--clock"]
        assert ("--loop" in cmd) is looped
    with pytest.raises(ValueError, match="launch argument 'loop' is 'sometimes'"):
        player({**base, "loop": "sometimes"})


# ---------------------------------------------------------------------------- real launch
def _real_launch() -> types.ModuleType:
    """The launch package, or a skip saying why it is not here (this repository's own
    launch/ folder imports as an empty namespace package, hence the attribute check)."""
    reason = ("launch / launch_ros (ROS 2) are not importable: they do not install from the "
              "package index; this runs on a robot or with their sources on PYTHONPATH")
    try:
        import launch
        import launch_ros.actions  # noqa: F401
        from launch import LaunchContext  # noqa: F401
    except ImportError:
        pytest.skip(reason)
    return launch


def _describe(path: Path, args: dict[str, str]) -> tuple[Any, list[Any]]:
    """(context, the actions of the file's OpaqueFunction) with `args` as launch arguments,
    the declared defaults filled in as `ros2 launch` fills them."""
    launch = _real_launch()
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.launch_description_sources import (
        get_launch_description_from_python_launch_file,
    )

    description = get_launch_description_from_python_launch_file(str(path))
    context = launch.LaunchContext()
    context.launch_configurations.update(args)
    actions: list[Any] = []
    for entity in description.entities:
        if isinstance(entity, DeclareLaunchArgument):
            entity.visit(context)
        elif isinstance(entity, OpaqueFunction):
            actions += entity.visit(context) or []
    return context, actions


def _node_parameters(context: Any, node: Any) -> tuple[list[str], dict[str, Any]]:
    """(its --params-file paths, the values launch_ros writes for its dict parameters)."""
    node._perform_substitutions(context)
    files = [p for p, is_file in node._Node__expanded_parameter_arguments if is_file]
    values: dict[str, Any] = {}
    for f in files:
        if Path(f).name.startswith("launch_params_"):  # launch_ros's file for dicts
            for section in yaml.safe_load(Path(f).read_text()).values():
                values.update(section["ros__parameters"])
    return files, values


@pytest.mark.parametrize("use_sim_time, expected", [("True", True), ("true", True),
                                                    ("FALSE", False), ("0", False)])
def test_real_launch_starts_the_namespaced_node_on_the_shipped_file(
        use_sim_time: str, expected: bool) -> None:
    context, actions = _describe(NODE_LAUNCH, {
        "params_file": str(SHIPPED), "namespace": "robot1", "use_sim_time": use_sim_time,
        "rviz": "False"})
    (node,) = actions
    files, values = _node_parameters(context, node)
    assert node.expanded_node_namespace == "/robot1"
    assert node.node_name == "/robot1/depth_any_view"
    assert files[0] == str(SHIPPED) and values == {"use_sim_time": expected}
    args = ["--ros-args"] + [a for f in files for a in ("--params-file", f)]
    assert unmatched_params_files(args, node.node_name) == []  # every file reaches it


def test_real_launch_refuses_a_non_boolean_and_starts_rviz() -> None:
    with pytest.raises(ValueError, match="launch argument 'use_sim_time' is 'maybe'"):
        _describe(NODE_LAUNCH, {"params_file": str(SHIPPED), "use_sim_time": "maybe"})
    _, actions = _describe(NODE_LAUNCH, {"params_file": str(SHIPPED), "rviz": "TRUE"})
    assert [a.node_executable for a in actions] == ["depth_any_view_node", "rviz2"]


def test_real_replay_launch_loops_on_true_in_any_case(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    _real_launch()
    prefix = tmp_path / "install"  # an ament prefix holding only the package's marker
    marker = prefix / "share" / "ament_index" / "resource_index" / "packages"
    marker.mkdir(parents=True)
    (marker / "depth_any_view").write_text("")
    monkeypatch.setenv("AMENT_PREFIX_PATH", os.pathsep.join(
        [str(prefix), os.environ.get("AMENT_PREFIX_PATH", "")]).rstrip(os.pathsep))
    from launch.utilities import perform_substitutions

    for text, looped in (("True", True), ("false", False)):
        context, actions = _describe(REPLAY_LAUNCH, {"bag": "/bags/run1", "loop": text,
                                                     "params_file": str(SHIPPED)})
        player = actions[0]
        cmd = [perform_substitutions(context, part) for part in player.cmd]
        assert cmd[0] == str(prefix / "lib" / "depth_any_view" / "depth-any-view")
        assert cmd[1:4] == ["replay", "/bags/run1", "--clock"]
        assert ("--loop" in cmd) is looped
