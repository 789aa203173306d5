"""Finding and reading the package's YAML configuration, in one place.

Config files live in the repository's `config/` folder; a colcon install puts them in
`share/depth_any_view/config`. Every YAML read of the package goes through `load_yaml`, so
a malformed file gives one clear error naming the file and how to fix it.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

PACKAGE_NAME = "depth_any_view"
T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration file is missing or malformed; the message names the file and key."""


def config_dirs() -> list[Path]:
    """Candidate `config/` folders, most specific first.

    `DEPTH_ANY_VIEW_CONFIG_DIR` overrides; then the source checkout beside the package;
    then the ament share directory of an installed package (colcon or pip prefix).
    """
    dirs: list[Path] = []
    env = os.environ.get("DEPTH_ANY_VIEW_CONFIG_DIR")
    if env:
        dirs.append(Path(env))
    dirs.append(Path(__file__).resolve().parent.parent / "config")
    for prefix in (sys.prefix, *os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)):
        if prefix:
            dirs.append(Path(prefix) / "share" / PACKAGE_NAME / "config")
    return dirs


def config_path(name: str) -> Path:
    """Path of a packaged config file such as `rig_surround6.yaml`.

    An existing path (absolute or relative to the working directory) is returned as is.
    Raises ConfigError listing where it looked when the file is not found.
    """
    direct = Path(name).expanduser()
    if direct.is_file():
        return direct
    for d in config_dirs():
        candidate = d / name
        if candidate.is_file():
            return candidate
    looked = ", ".join(str(d) for d in config_dirs())
    raise ConfigError(f"config file '{name}' not found (looked in: {looked}); "
                      "pass an existing path or set DEPTH_ANY_VIEW_CONFIG_DIR")


def yaml_error_where(exc: yaml.YAMLError) -> str:
    """' at line L, column C' (1-based) of a YAML parse error, or '' when it has no mark."""
    mark = getattr(exc, "problem_mark", None)
    return f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""


def load_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML mapping, raising ConfigError that names the file on any problem."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file '{p}': {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"malformed YAML in '{p}'{yaml_error_where(exc)}: "
                          f"{getattr(exc, 'problem', None) or exc}; fix the syntax") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file '{p}' must hold a mapping at the top level, "
                          f"found {type(data).__name__}")
    return data


def require(mapping: dict[str, Any], key: str, source: str) -> Any:
    """`mapping[key]`, or ConfigError naming the missing key and its source file."""
    if key not in mapping:
        raise ConfigError(f"'{source}' is missing the key '{key}'")
    return mapping[key]


# ---------------------------------------------------------------------------- YAML -> dataclass
def unknown_fields(cls: type, data: Mapping[str, Any]) -> list[str]:
    """The keys of `data` that are not fields of the dataclass `cls`, sorted."""
    known = {f.name for f in dataclasses.fields(cls)}
    return sorted(str(k) for k in data if k not in known)


def dataclass_from_mapping(cls: type[T], data: Mapping[str, Any] | None, what: str, *,
                           where: str = "", section: str = "",
                           tuples: bool | Collection[str] = False, base: T | None = None) -> T:
    """The dataclass `cls` from a YAML mapping of some of its fields (the others keep
    their defaults, or `base`'s values); every YAML section of the package is read so.

    Args:
        data: field -> value; None is an empty mapping.
        what: what a key is, for messages ('loss option(s)', 'key(s)').
        where: what the mapping came from, prefixed to messages ("'config/x.yaml': ").
        section: the section's name in that file, for messages (' in <section>').
        tuples: YAML lists become tuples: for every field (True) or for these fields.
        base: a `cls` instance whose other fields are kept (`dataclasses.replace`).

    Raises:
        ConfigError: not a mapping, an unknown key (naming it and the valid ones), or a
            value `cls` refuses (TypeError / ValueError from its constructor, prefixed
            with `where`).
    """
    data = {} if data is None else data
    in_section = f" in '{section}'" if section else ""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}{f'section {section!r}' if section else what} must be a "
                          f"mapping, got "
                          f"{type(data).__name__}")
    unknown = unknown_fields(cls, data)
    if unknown:
        valid = sorted(f.name for f in dataclasses.fields(cls))
        raise ConfigError(f"{where}unknown {what} {unknown}{in_section}; valid: {valid}")
    values = {k: tuple(v) if isinstance(v, list) and (tuples is True or (
        not isinstance(tuples, bool) and k in tuples)) else v for k, v in data.items()}
    try:
        return cls(**values) if base is None else dataclasses.replace(base, **values)
    except (TypeError, ValueError) as exc:  # ConfigError is a ValueError
        if not where and isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{where}{exc}") from None


# ---------------------------------------------------------------------------- ROS parameters files
ROS_PARAMETERS_KEY = "ros__parameters"  # the key under a node's section in a parameters file


def parameter_sections(data: Any) -> list[tuple[str, Any]]:
    """The node sections of a ROS 2 parameters file, in file order: (node name as written,
    what its `ros__parameters` holds).

    Nested keys above `ros__parameters` are namespaces and join with '/', as rcl's YAML
    parser joins them: `robot1: {depth_any_view: {ros__parameters: ...}}` gives
    'robot1/depth_any_view', `/**: {ros__parameters: ...}` gives '/**'.
    """
    sections: list[tuple[str, Any]] = []

    def walk(mapping: dict[Any, Any], prefix: str) -> None:
        for key, value in mapping.items():
            if str(key) == ROS_PARAMETERS_KEY:
                sections.append((prefix, value))
            elif isinstance(value, dict):
                name = str(key) if not prefix else f"{prefix.rstrip('/')}/{str(key).lstrip('/')}"
                walk(value, name)

    if isinstance(data, dict):
        walk(data, "")
    return sections


def node_name_matches(section: str, node_fqn: str) -> bool:
    """Whether a parameters file's section name applies to the node `node_fqn` (fully
    qualified, e.g. '/robot1/depth_any_view'), as rclpy and rclcpp decide it.

    A leading '/' is implied; '/*' stands for one namespace token or name and '/**' for any
    number of them, so '/**/depth_any_view' and '/**' apply to the node in every namespace,
    while 'depth_any_view' applies only at the root namespace ('/depth_any_view').
    """
    name = section if section.startswith("/") else "/" + section
    # rcl's rule: "/*" -> "(/\w+)" (so "/**" -> "(/\w+)*"), then a full regex match
    pattern = r"(/\w+)".join(re.escape(part).replace(r"\*", "*") for part in name.split("/*"))
    try:
        return re.fullmatch(pattern, node_fqn) is not None
    except re.error:
        return False
