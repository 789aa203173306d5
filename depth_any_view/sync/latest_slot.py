"""A latest-wins hand-over of one item between two threads.

    slot = LatestSlot()
    slot.put(set_a)            # False: the slot was empty
    slot.put(set_b)            # True: set_a was never taken and is replaced (superseded)
    slot.take(timeout=0.1)     # set_b (the slot is empty again); None after the timeout
    slot.close()               # wakes a waiting taker; later takes return at once

The node's executor thread puts each synchronized set here and its inference worker takes
them: when the network is slower than the cameras a waiting set is replaced by the newer
one instead of queueing without bound. Pure Python (no ROS).
"""

from __future__ import annotations

import threading
from typing import Any


class LatestSlot:
    """A hand-over slot of one item between threads: a newer `put` replaces a waiting one."""

    def __init__(self) -> None:
        """Empty, open slot."""
        self._cond = threading.Condition()
        self._item: Any = None
        self._closed = False

    def put(self, item: Any) -> bool:
        """Offer `item`; True when it replaced an item nobody had taken yet."""
        with self._cond:
            replaced = self._item is not None
            self._item = item
            self._cond.notify()
            return replaced

    def take(self, timeout: float) -> Any:
        """The waiting item (emptying the slot), or None after `timeout` seconds / close."""
        with self._cond:
            if self._item is None and not self._closed:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return item

    def close(self) -> None:
        """Wake the taker; later takes return at once."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
