"""The core's Python logging (`depth_any_view.*`) on a ROS node's logger.

    bridge = CoreLogBridge(node.get_logger())   # from now on core records go to ROS
    bridge.close()                              # the core logger as it was before

The core logs with Python's `logging` (no ROS); inside the node its records belong in the
node's log (rosout, the console format of ROS), each prefixed with the logger's name.
"""

from __future__ import annotations

import logging
from typing import Any

CORE_LOGGER = "depth_any_view"  # the core's loggers are this one's children


class RosLogHandler(logging.Handler):
    """Forwards Python log records to a ROS logger at the matching severity."""

    def __init__(self, logger: Any) -> None:
        super().__init__()
        self._logger = logger

    def emit(self, record: logging.LogRecord) -> None:
        """Log `record` at the matching ROS severity."""
        msg = f"[{record.name}] {record.getMessage()}"
        if record.levelno >= logging.ERROR:
            self._logger.error(msg)
        elif record.levelno >= logging.WARNING:
            self._logger.warning(msg)
        elif record.levelno >= logging.INFO:
            self._logger.info(msg)
        else:
            self._logger.debug(msg)


class CoreLogBridge:
    """Sends the core logger's records (INFO and above) to `ros_logger` until `close`."""

    def __init__(self, ros_logger: Any) -> None:
        """Attach a RosLogHandler to the core logger, which then stops propagating."""
        core_log = logging.getLogger(CORE_LOGGER)
        self._handler = RosLogHandler(ros_logger)
        self._saved = (core_log.level, core_log.propagate)
        core_log.addHandler(self._handler)
        core_log.setLevel(logging.INFO)
        core_log.propagate = False

    def close(self) -> None:
        """Restore the core logger as it was before this bridge."""
        core_log = logging.getLogger(CORE_LOGGER)
        core_log.removeHandler(self._handler)
        core_log.setLevel(self._saved[0])
        core_log.propagate = self._saved[1]
