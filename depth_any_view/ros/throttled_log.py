"""Warnings that repeat for every bad message, logged at most once per period per key.

    log = ThrottledLog(node.get_logger(), lambda: settings.warn_throttle)
    log.warn(("front", "image"), "camera 'front' image: ...")   # logged
    log.warn(("front", "image"), "camera 'front' image: ...")   # within the period: not
    log.once("odom_frame", "odometry is in frame 'map' ...")    # only ever the first time
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


class ThrottledLog:
    """A ROS logger's warnings and errors, throttled per key; `period` gives the seconds."""

    def __init__(self, logger: Any, period: Callable[[], float]) -> None:
        """`period()` is read at each call, so a runtime parameter change takes effect."""
        self._logger = logger
        self._period = period
        self._last: dict[Any, float] = {}  # key -> time.monotonic() it was last logged
        self._once: set[Any] = set()

    def __len__(self) -> int:
        """How many keys the throttle remembers (one per source and kind of warning)."""
        return len(self._last)

    def warn(self, key: Any, message: str, *, error: bool = False) -> None:
        """A warning (an error with `error`), at most once per period for each key."""
        now = time.monotonic()
        last = self._last.get(key)
        if last is None or now - last >= self._period():
            self._last[key] = now
            if error:
                self._logger.error(message)
            else:
                self._logger.warning(message)

    def once(self, key: Any, message: str) -> None:
        """A warning logged only the first time for `key`."""
        if key not in self._once:
            self._once.add(key)
            self._logger.warning(message)
