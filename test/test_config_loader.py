"""The one YAML section -> dataclass loader (config.py `dataclass_from_mapping`) that every
configuration of the package goes through: defaults for what is left out, unknown keys
named with the valid ones, lists to tuples, constructor errors as ConfigError."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from depth_any_view.config import ConfigError, dataclass_from_mapping, unknown_fields


@dataclass
class Section:
    size: float = 1.0  # metres
    window: tuple[int, int] = (2, 3)
    names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.size <= 0:
            raise ValueError(f"size must be > 0 metres, got {self.size}")


def test_defaults_values_and_tuples() -> None:
    assert dataclass_from_mapping(Section, None, "option(s)") == Section()
    got = dataclass_from_mapping(Section, {"size": 2.0, "window": [4, 5], "names": ["a"]},
                                 "option(s)", tuples={"window"})
    assert got == Section(2.0, (4, 5), ["a"])  # only the listed field became a tuple
    got = dataclass_from_mapping(Section, {"names": ["a"]}, "option(s)", tuples=True,
                                 base=Section(size=3.0))
    assert got == Section(3.0, (2, 3), ("a",))


def test_unknown_keys_non_mappings_and_refused_values_name_the_place() -> None:
    assert unknown_fields(Section, {"size": 1, "szie": 2, "b": 3}) == ["b", "szie"]
    with pytest.raises(ConfigError) as info:
        dataclass_from_mapping(Section, {"szie": 2}, "key(s)", where="'x.yaml': ",
                               section="scene")
    assert str(info.value) == ("'x.yaml': unknown key(s) ['szie'] in 'scene'; valid: "
                               "['names', 'size', 'window']")
    with pytest.raises(ConfigError, match="^'x.yaml': section 'scene' must be a mapping, "
                                          "got list$"):
        dataclass_from_mapping(Section, [1], "key(s)", where="'x.yaml': ", section="scene")
    with pytest.raises(ConfigError, match="^loss option.s. must be a mapping, got int$"):
        dataclass_from_mapping(Section, 5, "loss option(s)")
    with pytest.raises(ConfigError, match="^'x.yaml': size must be > 0 metres, got -1$"):
        dataclass_from_mapping(Section, {"size": -1}, "key(s)", where="'x.yaml': ")
    with pytest.raises(ConfigError, match="^size must be > 0 metres"):
        dataclass_from_mapping(Section, {"size": -1}, "option(s)")
