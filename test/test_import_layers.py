"""The package's import graph has no cycle, and the core never imports upward.

Every module of `depth_any_view/` is parsed with `ast` (nothing is imported) and every
`import` statement in it counts, wherever it stands: at module level, inside a function
(the CLI's lazy `cmd_*` imports), under `if TYPE_CHECKING:` or in a `try:`. A lazy import
only hides a cycle until the function runs; it still means the two modules cannot be read,
tested or moved apart, so it counts like any other.

Edges: `import depth_any_view.a.b` and `from depth_any_view.a import b` (when `b` is a
submodule) point at `depth_any_view.a.b`; `from depth_any_view.a import name` (when `name`
is not a submodule) points at `depth_any_view.a` (its `__init__.py`). Relative imports are
resolved against the importing module's package. Importing a submodule is not counted as
importing the packages above it: an `__init__.py` that re-exports its own submodules would
otherwise close a cycle with each of them.

Cycles are looked for between modules (`from depth_any_view.a.b import name` points at
`a.b`). Layers (docs/ARCHITECTURE.md, "Layers and the one pipeline"): the core packages in
`CORE` may import each other and the `FOUNDATION` (config.py, topics.py, which import
nothing else of the package), never a package or module of `UPPER`; the failure names the
file and line of each such import. Every top-level module or package is in one of the
three lists, so a new one is placed on purpose. The core, the foundation, the pipeline,
bag/ and slam/ import no ROS 2 package (rclpy or messages), not even lazily.

slam/ holds two layers. Its consumer library (`SLAM_LIBRARY`: odometry, TSDF mesh,
trajectory metrics, their settings) sits beside the core: it imports only the core,
config.py and itself, and the pipeline runs it (cameras-only odometry). The `slam` command
(`SLAM_COMMAND`) sits above the pipeline, beside bag/: it feeds bags through the pipeline
into that library. So everything the pipeline imports, directly or not, is the core,
config.py or the slam library; every module of slam/ is in one of the two lists.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "depth_any_view"
PACKAGE_DIR = Path(__file__).resolve().parents[1] / PACKAGE

# The core: the algorithms, usable and testable on their own.
CORE = ("geometry", "model", "inference", "mapping", "sync", "data", "training")
# Above the core: what wires it to bags, SLAM consumers, ROS, benchmarks and the command line.
UPPER = ("slam", "bag", "adapt", "ros", "bench", "pipeline", "overlap", "cli", "cli_bench",
         "cli_types", "demo", "demo_picture")
# Below everything: facts every layer may read (config files, default topic names); they
# import nothing of the package but each other.
FOUNDATION = ("config", "topics")
# What must import and run without ROS 2 (no rclpy, no message package), lazily included:
# the core, the foundation, the pipeline and its two-thread runner, the bag layer, adapt/ and
# slam/ (docs/ARCHITECTURE.md).
ROS_FREE = (*CORE, *FOUNDATION, "pipeline", "overlap", "bag", "adapt", "slam")
ROS_PACKAGES = ("rclpy", "builtin_interfaces", "diagnostic_msgs", "geometry_msgs",
                "nav_msgs", "rcl_interfaces", "rosgraph_msgs", "sensor_msgs", "std_msgs",
                "tf2_msgs", "visualization_msgs")
# slam/ in two layers (module names inside slam/; the package itself counts as library).
SLAM_LIBRARY = ("trajectory", "odometry", "odometry_estimate", "mesh", "slam_config")
SLAM_COMMAND = ("slam_command", "consumers", "slam_report")  # above the pipeline, beside bag/


def module_name(path: Path, root: Path = PACKAGE_DIR) -> str:
    """`depth_any_view/bag/reader.py` -> `depth_any_view.bag.reader`; a package: its name."""
    parts = [PACKAGE, *path.relative_to(root).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def find_modules(root: Path = PACKAGE_DIR) -> dict[str, Path]:
    """Every module of the package by dotted name."""
    return {module_name(path, root): path for path in sorted(root.rglob("*.py"))}


def _resolve_relative(importer: str, is_package: bool, level: int, module: str | None) -> str:
    """The absolute name of `from <'.' * level><module> import ...` written in `importer`."""
    base = importer.split(".")
    if not is_package:
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def import_edges(
    name: str, path: Path, modules: dict[str, Path]
) -> list[tuple[str, int]]:
    """The package modules that `name` imports, each with the line of its import statement."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    edges: list[tuple[str, int]] = []

    def add(target: str, line: int) -> None:
        # The deepest existing module of a dotted name (`a.b.c` where c is a class -> `a.b`).
        while target and target not in modules:
            target = target.rpartition(".")[0]
        if target and target != name and (target, line) not in edges:
            edges.append((target, line))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == PACKAGE or alias.name.startswith(PACKAGE + "."):
                    add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                source = _resolve_relative(name, is_package, node.level, node.module)
            else:
                source = node.module or ""
            if source != PACKAGE and not source.startswith(PACKAGE + "."):
                continue
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                add(submodule if submodule in modules else source, node.lineno)
    return edges


def import_graph(root: Path = PACKAGE_DIR) -> dict[str, list[tuple[str, int]]]:
    """Module -> [(imported module, line), ...] for every module of the package."""
    modules = find_modules(root)
    return {name: import_edges(name, path, modules) for name, path in modules.items()}


def find_cycles(graph: dict[str, list[tuple[str, int]]]) -> list[list[str]]:
    """One cycle (as a closed path `a -> b -> ... -> a`) per strongly connected component."""
    successors = {name: sorted({target for target, _ in edges}) for name, edges in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def strongconnect(start: str) -> None:  # Tarjan, iterative (no recursion limit)
        work = [(start, iter(successors[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(successors[child])))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(sorted(component))

    for name in sorted(successors):
        if name not in index:
            strongconnect(name)

    cycles = []
    for component in sorted(components):
        # The shortest way back to the component's first module, found breadth-first.
        members = set(component)
        first = component[0]
        parents: dict[str, str] = {}
        frontier = [first]
        found = None
        while frontier and found is None:
            following = []
            for node in frontier:
                for child in successors[node]:
                    if child == first:
                        found = node
                        break
                    if child in members and child not in parents:
                        parents[child] = node
                        following.append(child)
                if found is not None:
                    break
            frontier = following
        path = [first]
        node = found
        while node != first:
            path.insert(1, node)
            node = parents[node]
        cycles.append([*path, first])
    return cycles


def layer(name: str) -> str:
    """`depth_any_view.bag.reader` -> `bag`; `depth_any_view.cli` -> `cli`."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def upward_imports(graph: dict[str, list[tuple[str, int]]], modules: dict[str, Path],
                   root: Path = PACKAGE_DIR) -> list[str]:
    """`file:line: importer imports target` for each import from the core into an upper layer."""
    found = []
    for name, edges in sorted(graph.items()):
        if layer(name) not in CORE:
            continue
        for target, line in edges:
            if layer(target) in UPPER:
                relative = modules[name].relative_to(root.parent)
                found.append(f"{relative}:{line}: {name} imports {target}")
    return found


def slam_part(name: str) -> str | None:
    """'library' or 'command' for a module of slam/ (None outside slam/ or unlisted)."""
    parts = name.split(".")
    if parts[1:2] != ["slam"]:
        return None
    if len(parts) == 2 or parts[2] in SLAM_LIBRARY:
        return "library"
    return "command" if parts[2] in SLAM_COMMAND else None


def below_pipeline(name: str) -> bool:
    """The core, the foundation and slam/'s consumer library: what the pipeline may import."""
    return layer(name) in (*CORE, *FOUNDATION) or slam_part(name) == "library"


def pipeline_imports(graph: dict[str, list[tuple[str, int]]], modules: dict[str, Path],
                     root: Path = PACKAGE_DIR) -> list[str]:
    """`file:line: importer imports target` for each import, reached from the pipeline
    (directly or through any chain of imports), of a module not below the pipeline."""
    start = sorted(name for name in graph if layer(name) == "pipeline")
    seen, frontier, found = set(start), list(start), []
    while frontier:
        name = frontier.pop(0)
        for target, line in graph[name]:
            if layer(target) == "pipeline" or below_pipeline(target):
                if target not in seen:
                    seen.add(target)
                    frontier.append(target)
            else:
                relative = modules[name].relative_to(root.parent)
                found.append(f"{relative}:{line}: {name} imports {target}")
    return found


def ros_imports(root: Path = PACKAGE_DIR) -> list[str]:
    """`file:line: module imports package` for each import of a ROS 2 package (rclpy or a
    message package) in a module of a `ROS_FREE` layer, lazy imports included."""
    found = []
    for name, path in sorted(find_modules(root).items()):
        if layer(name) not in ROS_FREE:
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                targets = [node.module or ""]
            else:
                continue
            for target in targets:
                if target.split(".")[0] in ROS_PACKAGES:
                    relative = path.relative_to(root.parent)
                    found.append(f"{relative}:{node.lineno}: {name} imports {target}")
    return found


def test_every_module_has_a_layer():
    """A new top-level module or package is placed on purpose (CORE, UPPER or FOUNDATION)."""
    unplaced = sorted({layer(name) for name in find_modules()} - {""}
                      - set(CORE) - set(UPPER) - set(FOUNDATION))
    assert not unplaced, (f"{unplaced}: add each to CORE, UPPER or FOUNDATION in "
                          "test/test_import_layers.py (and to docs/ARCHITECTURE.md)")


def test_the_foundation_imports_only_itself():
    modules = find_modules()
    found = [f"{modules[name].relative_to(PACKAGE_DIR.parent)}:{line}: {name} imports {target}"
             for name, edges in sorted(import_graph().items()) if layer(name) in FOUNDATION
             for target, line in edges if layer(target) not in FOUNDATION]
    assert not found, "the foundation imports the package above it:\n" + "\n".join(found)


def test_the_core_the_pipeline_and_bags_run_without_ros():
    found = ros_imports()
    assert not found, "ROS 2 imports outside ros/, bench/ and the demo:\n" + "\n".join(found)


def test_the_graph_sees_the_package():
    graph = import_graph()
    # Sanity: every layer is there, and known imports are found (a parser that sees nothing
    # would pass the two tests below).
    assert {layer(name) for name in graph} >= set(CORE) | set(UPPER)
    assert ("depth_any_view.geometry.camera", 3) in graph["depth_any_view.geometry"]
    # A function-level import counts (the CLI imports each subcommand's module lazily).
    assert any(target == "depth_any_view.demo" for target, _ in graph["depth_any_view.cli"])


def test_no_import_cycle():
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_core_imports_nothing_above_it():
    modules = find_modules()
    found = upward_imports(import_graph(), modules)
    assert not found, "the core imports upward:\n" + "\n".join(found)


def test_every_slam_module_is_library_or_command():
    unlisted = [name for name in find_modules() if layer(name) == "slam"
                and slam_part(name) is None]
    assert not unlisted, (f"{unlisted}: add each to SLAM_LIBRARY (the pipeline may use it; "
                          "it imports only the core) or SLAM_COMMAND (above the pipeline)")


def test_the_pipeline_imports_only_the_core_and_the_slam_library():
    """The pipeline sits above slam/'s consumer library and below the `slam` command."""
    modules = find_modules()
    found = pipeline_imports(import_graph(), modules)
    assert not found, ("the pipeline reaches above the core and the slam library:\n"
                       + "\n".join(found))


def test_the_slam_library_imports_only_the_core():
    modules = find_modules()
    found = [f"{modules[name].relative_to(PACKAGE_DIR.parent)}:{line}: {name} imports {target}"
             for name, edges in sorted(import_graph().items())
             if slam_part(name) == "library"
             for target, line in edges if not below_pipeline(target)]
    assert not found, "slam/'s consumer library imports upward:\n" + "\n".join(found)


def _write(root: Path, files: dict[str, str]) -> Path:
    package = root / PACKAGE
    for relative, text in files.items():
        path = package / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return package


def test_the_checks_fail_on_a_cycle_and_an_upward_import(tmp_path):
    """The checker itself, on a small package: relative, lazy and submodule imports."""
    package = _write(tmp_path, {
        "__init__.py": "",
        "data/__init__.py": "",
        "data/synth.py": "def f():\n    from ..bag import writer\n",
        "bag/__init__.py": "",
        "bag/writer.py": "from depth_any_view.data.encodings import encode\n",
        "data/encodings.py": "from . import synth\nencode = None\n",
        "cli.py": "import depth_any_view.bag.writer\n",
    })
    graph = import_graph(package)
    assert graph["depth_any_view.data.synth"] == [("depth_any_view.bag.writer", 2)]
    assert graph["depth_any_view.bag.writer"] == [("depth_any_view.data.encodings", 1)]
    assert graph["depth_any_view.data.encodings"] == [("depth_any_view.data.synth", 1)]
    assert find_cycles(graph) == [[
        "depth_any_view.bag.writer", "depth_any_view.data.encodings",
        "depth_any_view.data.synth", "depth_any_view.bag.writer",
    ]]
    found = upward_imports(graph, find_modules(package), package)
    assert found == [
        "depth_any_view/data/synth.py:2: depth_any_view.data.synth imports "
        "depth_any_view.bag.writer"
    ]


def test_the_layer_checks_fail_on_unplaced_foundation_and_ros_imports(tmp_path):
    package = _write(tmp_path, {
        "__init__.py": "", "config.py": "from depth_any_view.data import synth\n",
        "data/__init__.py": "",
        "data/synth.py": "def f():\n    from sensor_msgs.msg import Image\n",
        "bag/__init__.py": "", "bag/writer.py": "import rclpy.node\n",
        "ros/__init__.py": "", "ros/node.py": "import rclpy\n",
    })
    assert ros_imports(package) == [
        "depth_any_view/bag/writer.py:1: depth_any_view.bag.writer imports rclpy.node",
        "depth_any_view/data/synth.py:2: depth_any_view.data.synth imports sensor_msgs.msg"]
    graph = import_graph(package)
    assert graph["depth_any_view.config"] == [("depth_any_view.data.synth", 1)]
    assert layer("depth_any_view.config") in FOUNDATION
    assert layer("depth_any_view.data.synth") not in FOUNDATION


@pytest.mark.parametrize("statement, target", [
    ("from depth_any_view.bag import writer", "depth_any_view.bag.writer"),
    ("from depth_any_view.bag.writer import BagWriter", "depth_any_view.bag.writer"),
    ("from depth_any_view.bag import BagWriter", "depth_any_view.bag"),
    ("import depth_any_view.bag.writer as w", "depth_any_view.bag.writer"),
    ("from .. import cli", "depth_any_view.cli"),
    ("from ..bag.writer import BagWriter", "depth_any_view.bag.writer"),
])
def test_import_forms(tmp_path, statement, target):
    package = _write(tmp_path, {
        "__init__.py": "", "cli.py": "", "bag/__init__.py": "", "bag/writer.py": "",
        "data/__init__.py": "", "data/synth.py": f"if True:\n    {statement}\n",
    })
    assert import_graph(package)["depth_any_view.data.synth"] == [(target, 2)]


def test_the_pipeline_check_follows_chains_through_the_slam_library(tmp_path):
    package = _write(tmp_path, {
        "__init__.py": "", "config.py": "",
        "pipeline.py": ("from depth_any_view.slam.odometry import Odometry\n"
                        "def make():\n    from depth_any_view.slam import slam_command\n"),
        "slam/__init__.py": "",
        "slam/odometry.py": "from depth_any_view import config\nOdometry = None\n",
        "slam/mesh.py": "from depth_any_view.bag.reader import BagReader\n",
        "slam/slam_command.py": "from depth_any_view.slam.mesh import BagReader\n",
        "bag/__init__.py": "", "bag/reader.py": "BagReader = None\n",
    })
    graph = import_graph(package)
    modules = find_modules(package)
    assert pipeline_imports(graph, modules, package) == [
        "depth_any_view/pipeline.py:3: depth_any_view.pipeline imports "
        "depth_any_view.slam.slam_command"]
    graph["depth_any_view.slam.odometry"].append(("depth_any_view.slam.mesh", 1))
    assert pipeline_imports(graph, modules, package)[-1] == (
        "depth_any_view/slam/mesh.py:1: depth_any_view.slam.mesh imports "
        "depth_any_view.bag.reader")
