"""Runtime parameter changes: checked on the executor thread, applied by the worker.

    params = RuntimeParameters(settings, rig)
    params.check(changes)          # None, or why the change is refused (start-up only, ...)
    params.accept(changes)         # the new settings (and rig, for rig_file); errors logged
    s = params.apply(pipeline)     # worker, before each set: the pipeline gets what changed

The executor thread replaces `settings` and `rig` as whole objects; the worker compares
them by identity with what it last applied, so neither thread waits for the other and the
pipeline is only reconfigured between sets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from depth_any_view.config import ConfigError
from depth_any_view.geometry.rig import Rig
from depth_any_view.pipeline import Pipeline
from depth_any_view.ros.params import SPECS, Settings
from depth_any_view.ros.rig_tf import rig_tf_problem
from depth_any_view.ros.startup import load_rig, pipeline_config


def parameter_changes(params: list[Any]) -> dict[str, Any]:
    """Name -> value of the node's own parameters among rclpy Parameter objects."""
    return {p.name: p.value for p in params if p.name in SPECS}


class RuntimeParameters:
    """The node's current settings and rig, and the ones its pipeline runs with."""

    def __init__(self, settings: Settings, rig: Rig) -> None:
        """Start from the settings and rig the pipeline was built with."""
        self.settings = settings
        self.rig = rig  # replaced by a runtime change of rig_file
        self._applied = settings  # the settings the pipeline runs with
        self._applied_rig = rig  # the rig the pipeline runs with

    def check(self, changes: dict[str, Any]) -> str | None:
        """Why `changes` cannot be applied (start-up only, out of range, a bad rig_file,
        a rig /tf_static cannot carry), or None."""
        for name in changes:
            if not SPECS[name].runtime:
                return (f"parameter '{name}' can only be set at start-up; restart the node "
                        "with the new value")
        try:
            wanted = self.settings.updated(changes)
            pipeline_config(wanted)
            rig = load_rig(wanted) if "rig_file" in changes else self.rig
        except ValueError as exc:  # ParameterError and ConfigError are ValueErrors
            return str(exc)
        return rig_tf_problem(wanted.publish_rig_tf, rig)

    def accept(self, changes: dict[str, Any]) -> str | None:
        """Record checked `changes`; the worker applies them before its next set. Returns
        an error when the rig file changed since it was checked (the rig is kept)."""
        s = self.settings.updated(changes)
        error = None
        if "rig_file" in changes:
            try:
                self.rig = load_rig(s)  # the worker hands it to the pipeline
            except ConfigError as exc:  # the file changed since it was checked
                error = f"{exc}; keeping the previous rig"
        self.settings = s
        return error

    def apply(self, pipeline: Pipeline,
              before_change: Callable[[], None] | None = None) -> Settings:
        """The current settings, pushed into `pipeline` first if they changed (worker);
        `before_change` runs first then (the node waits for its second worker to be idle,
        as the map and the publishing read these settings)."""
        s, rig = self.settings, self.rig
        if s is not self._applied:
            if before_change is not None:
                before_change()
            self._applied = s
            cfg = pipeline_config(s)  # validated by check
            pipeline.reconfigure(points=cfg.points, fusion=cfg.fusion,
                                 min_confidence=cfg.min_confidence,
                                 rig=None if rig is self._applied_rig else rig)
            self._applied_rig = rig
        return s
