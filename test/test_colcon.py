"""The package built by colcon as a robot builds it (issue 23), checked in its install space.

The repository's tracked files are copied into a scratch workspace (`src/depth_any_view`)
and built with colcon from the package index (test-only: `scripts/bootstrap.sh --test`
puts it in `<venv>/colcon`, or set DEPTH_ANY_VIEW_COLCON to such a folder), with and without
`--symlink-install`. Checked: the executables in `lib/depth_any_view/`, the launch, config
and rviz files and the ament index marker in `share/`, that the package imported after
`source install/setup.bash` is the workspace's, and that the installed node finds its
shipped weights, rig and parameters file: started namespaced from an unrelated folder, it
becomes ready and stops with exit status 0 on Ctrl-C.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, dds_env, stop_node, tail

from depth_any_view.ros.process import NodeProcess

pytestmark = [pytest.mark.ros, pytest.mark.slow]

PACKAGE = "depth_any_view"
EXECUTABLES = ("depth_any_view_node", "depth-any-view")
READY_TIMEOUT_S = 180.0
BUILD_TIMEOUT_S = 300.0
NODE_READY = "]: ready: "  # the node's own line (the engine logs "... engine ready:")


def _colcon_path() -> Path:
    """The folder holding colcon (`colcon_core`), or a skip saying how to get it."""
    path = Path(os.environ.get("DEPTH_ANY_VIEW_COLCON") or Path(sys.prefix) / "colcon")
    if not (path / "colcon_core").is_dir():
        pytest.skip(f"colcon is not installed for the tests (no colcon_core in {path}): "
                    "`bash scripts/bootstrap.sh --test` installs requirements-colcon.txt "
                    "there, or set DEPTH_ANY_VIEW_COLCON to such a folder")
    return path


def _tracked_files() -> list[str]:
    """The repository's tracked files (what a user's clone holds)."""
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
    return [f for f in out.stdout.decode().split("\0") if f and (ROOT / f).is_file()]


def _sourced(ws: Path, command: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """`command` in bash after `source install/setup.bash`, as a robot's shell runs it."""
    script = f"source {shlex.quote(str(ws / 'install' / 'setup.bash'))} && {command}"
    return subprocess.run(["bash", "-c", script], cwd=ws.parent, env=env, capture_output=True,
                          text=True, timeout=120)


def _robot_env() -> dict[str, str]:
    """This machine's DDS settings, the venv's python first, no ROS or repository paths."""
    env = dds_env(domains=(231, 232))
    for name in ("PYTHONPATH", "AMENT_PREFIX_PATH", "CMAKE_PREFIX_PATH", "COLCON_PREFIX_PATH"):
        env.pop(name, None)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["COLCON_PYTHON_EXECUTABLE"] = sys.executable  # setup.bash's own python
    return env


@pytest.fixture(scope="module", params=["--symlink-install", "copy"])
def workspace(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
              ) -> Path:
    """A built colcon workspace: src/depth_any_view (a copy), build/, install/, log/."""
    colcon = _colcon_path()
    ws = tmp_path_factory.mktemp("ws") / "ws"
    src = ws / "src" / PACKAGE
    for rel in _tracked_files():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, src / rel)
    env = _robot_env()
    env["PYTHONPATH"] = str(colcon)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # else `setup.py install` warns on stderr
    cmd = [sys.executable, "-m", "colcon", "build", "--event-handlers", "console_direct-"]
    if request.param != "copy":
        cmd.append(request.param)
    done = subprocess.run(cmd, cwd=ws, env=env, capture_output=True, text=True,
                          timeout=BUILD_TIMEOUT_S)
    assert done.returncode == 0, f"colcon build failed:\n{done.stdout}\n{done.stderr}"
    assert "1 package finished" in done.stdout, done.stdout
    assert "stderr output" not in done.stdout, f"the build wrote to stderr:\n{done.stdout}"
    return ws


def test_install_space_has_executables_share_files_and_index_marker(workspace: Path) -> None:
    prefix = workspace / "install" / PACKAGE
    for name in EXECUTABLES:
        exe = prefix / "lib" / PACKAGE / name
        assert exe.is_file() and os.access(exe, os.X_OK), exe
        assert exe.read_text().startswith(f"#!{sys.executable}"), exe
    share = prefix / "share" / PACKAGE
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / PACKAGE).is_file()
    assert (share / "package.xml").is_file()
    for folder, pattern in (("launch", "*.launch.py"), ("config", "*.yaml"),
                            ("config", "*.xml"), ("config/examples", "*.yaml"),
                            ("rviz", "*.rviz")):
        shipped = sorted(p.name for p in (ROOT / folder).glob(pattern))
        assert shipped, (folder, pattern)
        assert sorted(p.name for p in (share / folder).glob(pattern)) == shipped


def test_sourced_workspace_imports_its_own_package(workspace: Path) -> None:
    probe = ("python -c 'import depth_any_view, depth_any_view.config as c; "
             "from depth_any_view.model.weights import default_weights_path as w; "
             "print(depth_any_view.__file__); print(w()); "
             "print(c.config_path(\"depth_any_view.yaml\"))'")
    done = _sourced(workspace, probe, _robot_env())
    assert done.returncode == 0, done.stderr
    module, weights, params = (Path(line).resolve() for line in done.stdout.split())
    for path in (module, weights, params):
        assert path.is_relative_to(workspace.resolve()), (path, workspace)
    assert weights.is_file() and weights.suffix == ".safetensors"


def test_installed_node_starts_namespaced_on_its_shipped_files(workspace: Path,
                                                               tmp_path: Path) -> None:
    prefix = workspace / "install" / PACKAGE
    params = prefix / "share" / PACKAGE / "config" / "depth_any_view.yaml"
    node_cmd = shlex.join([str(prefix / "lib" / PACKAGE / "depth_any_view_node"), "--ros-args",
                           "-r", "__ns:=/robot1", "--params-file", str(params),
                           "-p", "threads:=1", "-p", "warmup_iters:=0", "-p", "device:=cpu"])
    script = f"source {shlex.quote(str(workspace / 'install' / 'setup.bash'))} && exec {node_cmd}"
    log = tmp_path / "node.log"
    node = NodeProcess(["bash", "-c", script], log, _robot_env(), cwd=tmp_path,
                       new_session=False)
    try:
        node.wait_ready(READY_TIMEOUT_S, marker=NODE_READY)
    finally:
        status = stop_node(node)
    text = log.read_text(errors="replace")
    ready = next(line for line in text.splitlines() if NODE_READY in line)
    assert "[robot1.depth_any_view]" in ready, ready
    weights = ready.split(", weights ", 1)[1].split(")", 1)[0]
    assert Path(weights).resolve().is_relative_to(workspace.resolve()), ready
    assert "has no section for this node" not in text, text
    assert status == 0 and "Traceback" not in text, tail(log)
