"""Two threads, two stages: the network of set N + 1 runs while set N is fused and published.

Use: `runner = TwoStageRunner(first, second, on_error)`, then `runner.put(item)` from any
thread; `first(item)` runs on the first thread (the network), its result is handed to
`second(result)` on the second thread (the map and the messages); `runner.close()` stops
both. The node builds one with `Pipeline.infer` as the first stage and `Pipeline.finish`
plus publishing as the second, so on a 2-core CPU one core runs the forward of the newest
set while the other fuses and publishes the previous one (and the publishing's pacing
sleeps no longer hold the network up).

What it guarantees:
- Latest wins at the input: `put` replaces an item the first stage has not taken yet (it
  returns True then, so the caller can count it as superseded); nothing queues up.
- Bounded: between the stages there is a hand-over slot of one. When the second stage is
  still busy with set N and set N + 1 is waiting in the slot, the first stage waits before
  handing over set N + 2, so at most three sets are in flight (one in each stage, one in
  the slot) and memory never grows.
- Order: one thread runs the second stage, taking the slot's items in the order the first
  stage put them, and the first stage handles its items one at a time in `put` order, so
  outputs are never reordered.
- An exception in either stage goes to `on_error(stage, item, exc)` ('first' / 'second')
  and the loop goes on with the next item.
- `wait_idle()` (from the first stage, e.g. before applying new settings that the second
  stage reads) returns once the second stage has finished everything handed to it.

`concurrency()` reports the most stages seen working at the same instant (2 once they have
overlapped) and the seconds both worked at once: what the overlap bought, measured.
Pure Python threading; no ROS.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from depth_any_view.sync.latest_slot import LatestSlot

STAGES = ("first", "second")
_EMPTY = object()  # the slot's "nothing waiting" (None is a valid item)


class TwoStageRunner:
    """Runs `first` and `second` on two threads over a latest-wins input (module docstring).

    Args:
        first: stage one, item -> hand-over value (the network); runs on thread one.
        second: stage two, the hand-over value -> None (fusion, publishing); thread two.
        on_error: called as on_error(stage, item, exc) when a stage raises ('first' with
            the input item, 'second' with the hand-over value); runs on that stage's
            thread. None: the error is dropped silently.
        name: thread name prefix.
        poll_s: how often idle threads look at the stop flag, seconds.
    """

    def __init__(self, first: Callable[[Any], Any], second: Callable[[Any], None],
                 on_error: Callable[[str, Any, BaseException], None] | None = None, *,
                 name: str = "stage", poll_s: float = 0.1) -> None:
        self._first, self._second, self._on_error = first, second, on_error
        self._poll_s = float(poll_s)
        self._input = LatestSlot()
        self._cond = threading.Condition()  # guards the hand-over slot and the counters
        self._handed: Any = _EMPTY
        self._second_busy = False
        self._stop = threading.Event()
        self._active = 0  # stages working now
        self._max_active = 0
        self._both_since: float | None = None
        self._both_s = 0.0
        self._threads = [threading.Thread(target=self._run_first, name=f"{name}_first",
                                          daemon=True),
                         threading.Thread(target=self._run_second, name=f"{name}_second",
                                          daemon=True)]
        for t in self._threads:
            t.start()

    # ------------------------------------------------------------------ callers
    def put(self, item: Any) -> bool:
        """Offer an input (not None); True when it replaced one stage one had not taken."""
        if item is None:
            raise ValueError("TwoStageRunner.put needs an item, got None")
        return self._input.put(item)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until the second stage has finished every value handed to it (call it
        from the first stage, or with nothing being put); False on timeout or close."""
        with self._cond:
            return self._cond.wait_for(
                lambda: self._stop.is_set() or (self._handed is _EMPTY
                                                and not self._second_busy), timeout) \
                and not self._stop.is_set()

    def is_alive(self) -> bool:
        """Both threads are running."""
        return all(t.is_alive() for t in self._threads)

    def concurrency(self) -> dict[str, float]:
        """{'max_active': most stages working at one instant, 'overlap_s': seconds both
        stages worked at the same time} since start."""
        with self._cond:
            both = self._both_s
            if self._both_since is not None:
                both += time.perf_counter() - self._both_since
            return {"max_active": self._max_active, "overlap_s": both}

    def close(self, timeout: float = 10.0) -> None:
        """Stop both threads (the stage running now finishes first) and join them."""
        self._stop.set()
        self._input.close()
        with self._cond:
            self._cond.notify_all()
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout)

    # ------------------------------------------------------------------ threads
    def _busy(self, delta: int) -> None:
        """Count a stage starting (+1) or ending (-1) its work; caller holds _cond."""
        now = time.perf_counter()
        if self._active == 2 and self._both_since is not None:
            self._both_s += now - self._both_since
            self._both_since = None
        self._active += delta
        self._max_active = max(self._max_active, self._active)
        if self._active == 2:
            self._both_since = now

    def _report(self, stage: str, item: Any, exc: BaseException) -> None:
        """Hand a stage's exception to on_error (its own errors are not re-raised)."""
        if self._on_error is None:
            return
        try:
            self._on_error(stage, item, exc)
        except Exception:  # noqa: BLE001 - the loop must go on
            pass

    def _run_first(self) -> None:
        """Thread one: take the newest input, run stage one, hand its value over."""
        while not self._stop.is_set():
            item = self._input.take(timeout=self._poll_s)
            if item is None:
                continue
            with self._cond:
                self._busy(+1)
            try:
                value = self._first(item)
            except Exception as exc:  # noqa: BLE001 - reported, the next item is tried
                value = _EMPTY
                self._report("first", item, exc)
            with self._cond:
                self._busy(-1)
                if value is _EMPTY:
                    continue
                # bounded: wait while the previous value still waits for stage two
                self._cond.wait_for(lambda: self._handed is _EMPTY or self._stop.is_set())
                if self._stop.is_set():
                    return
                self._handed = value
                self._cond.notify_all()

    def _run_second(self) -> None:
        """Thread two: take the handed-over values in order and run stage two."""
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._handed is not _EMPTY or self._stop.is_set(),
                                    self._poll_s)
                if self._stop.is_set():
                    return
                if self._handed is _EMPTY:
                    continue
                value, self._handed = self._handed, _EMPTY
                self._second_busy = True
                self._busy(+1)
                self._cond.notify_all()  # the slot is free: stage one may hand over
            try:
                self._second(value)
            except Exception as exc:  # noqa: BLE001 - reported, the next value is taken
                self._report("second", value, exc)
            finally:
                with self._cond:
                    self._second_busy = False
                    self._busy(-1)
                    self._cond.notify_all()
