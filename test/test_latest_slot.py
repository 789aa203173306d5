"""The latest-wins hand-over slot between the node's executor thread and its inference
worker (sync/latest_slot.py; no ROS)."""

from __future__ import annotations

import threading
import time

from depth_any_view.sync.latest_slot import LatestSlot


def test_latest_slot_keeps_only_the_newest_item() -> None:
    slot = LatestSlot()
    assert slot.put(1) is False
    assert slot.put(2) is True  # 1 was never taken: replaced
    assert slot.take(0.01) == 2
    assert slot.take(0.01) is None


def test_latest_slot_wakes_a_waiting_taker_and_close() -> None:
    slot = LatestSlot()
    got = []
    t = threading.Thread(target=lambda: got.append(slot.take(5.0)))
    t.start()
    time.sleep(0.05)
    slot.put("set")
    t.join(2.0)
    assert got == ["set"]
    t = threading.Thread(target=lambda: got.append(slot.take(5.0)))
    t0 = time.monotonic()
    t.start()
    slot.close()
    t.join(2.0)
    assert got[-1] is None and time.monotonic() - t0 < 2.0
