"""The node's health figures and their diagnostic_msgs/DiagnosticArray.

`NodeDiagnostics` collects, thread-safely (image callbacks and the inference worker write,
the diagnostics timer reads): per-camera input rates over a sliding window, bad inputs by
camera and field, dropped sets by reason, inference and end-to-end latency windows, and
the occupancy fusion state. `statuses()` turns them, with the synchronizer's counters,
into plain `Status` records (level, name, message, key/values), and
`to_diagnostic_array` into the message; the records are testable without ROS.

Statuses (hardware_id = the node name):
- `depth_any_view: cameras`: rate per camera (Hz), bad inputs; WARN naming the cameras
  that sent nothing for `input_timeout` seconds or were missing from the last set, and
  the cameras whose input was rejected within the last `input_timeout` seconds (with the
  last message, which names the camera and the field).
- `depth_any_view: synchronizer`: sets complete/partial, dropped images by reason, resets,
  the largest stamp spread of a set; WARN while a camera has sent no image at all (naming
  its topic: a wrong name or a QoS mismatch), while one sends images but no CameraInfo,
  while a camera is out of sync (its stamps a constant offset beyond the slop from the
  others'), and for `event_hold` seconds after a reset (a stamp jump), saying why.
- `depth_any_view: inference`: device, precision, weights, latency p50/p95 (inference and
  end-to-end, seconds), sets processed and dropped by reason; ERROR after failures; WARN
  when no set was processed for `inference_timeout` seconds, and when more than
  `SUPERSEDED_WARN` of the last `OUTCOME_WINDOW` sets were superseded (the network is
  slower than the cameras).

`events()` gives the log lines of changes, once each: a camera going silent for
`input_timeout` seconds (or never sending an image within `startup_grace` seconds), its
images returning, a camera going out of sync and back, and a camera whose images arrive
far below the others' rate (under `SLOW_RATE_FRACTION` of the median of the other
cameras' rates, judged once it has sent images for a whole rate window; typically most of
its images are lost on the way) and back in line (at `SLOW_RATE_RECOVERED` of it). The
`cameras` status names such a camera while it is slow.
- `depth_any_view: occupancy`: frame (odom, or base_link without odometry = WARN),
  resets with the last reason, rejected updates; WARN while odometry is rejected (within
  `input_timeout`) and for `event_hold` seconds after a map reset or a refused update,
  saying why.

"Within the last x seconds" of an event at t means now - x < t <= now (monotonic seconds).
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

OK, WARN, ERROR, STALE = 0, 1, 2, 3
LEVEL_NAMES = {OK: "OK", WARN: "WARN", ERROR: "ERROR", STALE: "STALE"}
PREFIX = "depth_any_view"
# An end-to-end latency outside this range (seconds) means the set stamps do not come from
# the node's clock (a bag replayed without /clock or use_sim_time): not a latency at all.
PLAUSIBLE_END_TO_END_S = (-1.0, 60.0)
OUTCOME_WINDOW = 50  # sets over which the superseded fraction is taken
SUPERSEDED_WARN = 0.5  # inference WARN above this fraction of superseded sets ...
SUPERSEDED_MIN_SETS = 10  # ... once at least this many sets were seen
SLOW_RATE_FRACTION = 0.5  # a camera below this fraction of the others' median rate is slow
SLOW_RATE_RECOVERED = 0.8  # ... and in line again at this fraction (one line each way)
SILENT_PERIODS = 3.0  # a camera is logged as silent after this many of its own periods
#                       without an image (and at least input_timeout): one lost image of a
#                       1.5 Hz camera is not a silence, and logging it would flap


@dataclass
class Status:
    """One diagnostic status: level (OK, WARN, ERROR, STALE), name, message, key/values."""

    level: int
    name: str
    message: str
    values: dict[str, str] = field(default_factory=dict)


class RateMeter:
    """Arrival rate (Hz) over the last `window_s` seconds of a monotonic clock."""

    def __init__(self, window_s: float = 5.0, max_events: int = 1000) -> None:
        """Keep at most `max_events` arrival times within `window_s` seconds."""
        self.window_s = float(window_s)
        self._times: deque[float] = deque(maxlen=max_events)
        self.count = 0  # arrivals ever
        self.first: float | None = None  # monotonic seconds of the first arrival
        self.last: float | None = None  # monotonic seconds of the last arrival

    def tick(self, t: float) -> None:
        """Record one arrival at monotonic time t (seconds)."""
        self._times.append(t)
        self.count += 1
        if self.first is None:
            self.first = t
        self.last = t

    def rate(self, now: float) -> float:
        """Arrivals per second in (now - window_s, now]; 0 with fewer than two."""
        while self._times and self._times[0] <= now - self.window_s:
            self._times.popleft()
        if len(self._times) < 2:
            return 0.0
        span = self._times[-1] - self._times[0]
        return (len(self._times) - 1) / span if span > 0 else 0.0


def percentiles(values: Iterable[float], qs: tuple[float, ...] = (50.0, 95.0)) -> list[float]:
    """Percentiles of `values` (NaN for an empty window)."""
    arr = np.fromiter(values, dtype=np.float64)
    if arr.size == 0:
        return [float("nan")] * len(qs)
    return [float(v) for v in np.percentile(arr, qs)]


class NodeDiagnostics:
    """Thread-safe counters and windows behind /diagnostics (see the module docstring)."""

    def __init__(self, cameras: list[str], *, latency_window: int = 100,
                 input_timeout: float = 1.0, rate_window: float = 5.0,
                 event_hold: float = 5.0, inference_timeout: float = 5.0,
                 image_topics: dict[str, str] | None = None, camera_qos: str = "",
                 sync_slop: float | None = None, startup_grace: float = 5.0) -> None:
        """Track `cameras` (configured order); windows of `latency_window` sets; events
        (resets, refused updates) keep their status at WARN for `event_hold` seconds.

        `inference_timeout`: seconds without a processed set before the inference status
        warns. `image_topics` (camera -> topic), `camera_qos` and `sync_slop` (seconds)
        only make the messages name what to check. `startup_grace`: seconds after start
        before a camera that never sent an image is logged (drivers start slowly).
        """
        self.cameras = list(cameras)
        self.input_timeout = float(input_timeout)
        self.event_hold = float(event_hold)
        self.inference_timeout = float(inference_timeout)
        self.image_topics = dict(image_topics or {})
        self.camera_qos = camera_qos
        self.sync_slop = sync_slop
        self.startup_grace = max(float(startup_grace), self.input_timeout)
        self._outcomes: deque[bool] = deque(maxlen=OUTCOME_WINDOW)  # True = superseded
        self._last_processed: float | None = None  # monotonic seconds
        self._silent: dict[str, str] = {}  # camera -> 'silent' / 'never' (logged)
        self._skewed: set[str] = set()  # cameras logged as out of sync
        self._slow: dict[str, tuple[float, float]] = {}  # camera -> (its Hz, others' Hz)
        self._lock = threading.Lock()
        self._rates = {c: RateMeter(rate_window) for c in self.cameras}
        self._bad = Counter()  # (camera, field) -> count
        self._bad_last: dict[str, str] = {}  # camera -> last bad-input message
        self._bad_time: dict[str, float] = {}  # camera -> monotonic time of the last one
        self._events: dict[str, tuple[float, str]] = {}  # status -> (time, last event)
        self._dropped = Counter()  # reason -> sets dropped after synchronization
        self._inference = deque(maxlen=latency_window)  # seconds
        self._end_to_end = deque(maxlen=latency_window)  # seconds
        self._clock_offset_s: float | None = None  # last implausible end-to-end latency
        self._processed = 0
        self._last_missing: list[str] = []
        self._last_error: str | None = None
        self._errors_since_success = 0
        self._fusion: dict[str, Any] = {}
        self._odometry_note: str | None = None
        self._started = time.monotonic()

    # ------------------------------------------------------------------ writers
    def image_received(self, camera: str, t: float | None = None) -> None:
        """An image of `camera` arrived (monotonic seconds; default now)."""
        with self._lock:
            self._rates[camera].tick(time.monotonic() if t is None else t)

    def bad_input(self, camera: str, field_name: str, message: str,
                  t: float | None = None) -> None:
        """One input of `camera` (or 'odometry') was rejected because of `field_name`, at
        monotonic time t (default now)."""
        with self._lock:
            self._bad[(camera, field_name)] += 1
            self._bad_last[camera] = message
            self._bad_time[camera] = time.monotonic() if t is None else t

    def event(self, status: str, message: str, t: float | None = None) -> None:
        """Something happened that `status` ('synchronizer' or 'occupancy') reports at WARN
        for `event_hold` seconds: a reset, a refused update (monotonic time t, default now)."""
        with self._lock:
            self._events[status] = (time.monotonic() if t is None else t, message)

    def set_dropped(self, reason: str, error: str | None = None) -> None:
        """A synchronized set was dropped before publication, for `reason`."""
        with self._lock:
            self._dropped[reason] += 1
            self._outcomes.append(reason == "superseded")
            if error is not None:
                self._last_error = error
                self._errors_since_success += 1

    def set_processed(self, missing: list[str], inference_s: float, end_to_end_s: float,
                      fusion: dict[str, Any] | None = None, t: float | None = None) -> None:
        """A set was published: the cameras it lacked, its latencies, the fusion state (at
        monotonic time t, default now)."""
        with self._lock:
            self._processed += 1
            self._outcomes.append(False)
            self._last_processed = time.monotonic() if t is None else t
            self._last_missing = list(missing)
            self._inference.append(float(inference_s))
            lo, hi = PLAUSIBLE_END_TO_END_S
            if lo <= float(end_to_end_s) <= hi:
                self._end_to_end.append(float(end_to_end_s))
                self._clock_offset_s = None
            else:
                self._clock_offset_s = float(end_to_end_s)
            self._errors_since_success = 0
            if fusion is not None:
                self._fusion = dict(fusion)

    def odometry_note(self, note: str | None) -> None:
        """Why occupancy is not fused in odom right now (None = it is)."""
        with self._lock:
            self._odometry_note = note

    # ------------------------------------------------------------------ readers
    def rates(self, now: float | None = None) -> dict[str, float]:
        """Input rate (Hz) per camera."""
        now = time.monotonic() if now is None else now
        with self._lock:
            return {c: m.rate(now) for c, m in self._rates.items()}

    def missing_cameras(self, now: float | None = None) -> list[str]:
        """Cameras silent for input_timeout seconds or absent from the last set."""
        now = time.monotonic() if now is None else now
        with self._lock:
            out = []
            for c, m in self._rates.items():
                last = self._started if m.last is None else m.last
                if now - last > self.input_timeout or c in self._last_missing:
                    out.append(c)
            return out

    def _topic(self, camera: str) -> str:
        """The camera's image topic for messages ('its topic' when unknown)."""
        return self.image_topics.get(camera, "its image topic")

    def _never_text(self, cameras: list[str]) -> str:
        """What to check for cameras that never sent an image."""
        topics = ", ".join(self._topic(c) for c in cameras)
        qos = f" camera_qos '{self.camera_qos}'" if self.camera_qos else " camera_qos"
        return (f"no image ever received on {topics}: check the topic name (ros2 topic "
                f"list) and that the publisher's QoS is compatible with{qos}")

    def _silence_limit(self, meter: RateMeter, now: float) -> float:
        """Seconds without an image after which a camera is logged as silent: input_timeout,
        or SILENT_PERIODS of its own period over the rate window if that is longer."""
        rate = meter.rate(now)
        return max(self.input_timeout, SILENT_PERIODS / rate if rate > 0 else 0.0)

    def events(self, now: float | None = None,
               sync_stats: dict[str, Any] | None = None) -> list[tuple[int, str]]:
        """(level, message) log lines of the changes since the last call, each once: a
        camera that went silent or never sent an image (WARN), one whose images came back
        (OK), a camera out of sync (WARN) or back in sync (OK), a camera far below the
        others' rate (WARN) or back in line (OK)."""
        now = time.monotonic() if now is None else now
        out: list[tuple[int, str]] = []
        with self._lock:
            for c, m in self._rates.items():
                state = self._silent.get(c)
                if m.last is None:
                    if state is None and now - self._started > self.startup_grace:
                        self._silent[c] = "never"
                        out.append((WARN, f"camera '{c}': {self._never_text([c])} (for "
                                          f"{now - self._started:.0f} s since start)"))
                elif now - m.last > self._silence_limit(m, now):
                    if state is None:
                        self._silent[c] = "silent"
                        out.append((WARN, f"camera '{c}': no images on {self._topic(c)} for "
                                          f"{now - m.last:.1f} s (input_timeout "
                                          f"{self.input_timeout:g} s): the camera stopped, "
                                          "or its messages are lost on the way"))
                elif state is not None:
                    del self._silent[c]
                    out.append((OK, f"camera '{c}': images arrive again on "
                                    f"{self._topic(c)}"))
            skewed = dict((sync_stats or {}).get("out_of_sync") or {})
            for c in sorted(set(skewed) - self._skewed):
                out.append((WARN, self._skew_text(c, skewed[c])))
            for c in sorted(self._skewed - set(skewed)):
                out.append((OK, f"camera '{c}' is in sync with the other cameras again"))
            self._skewed = set(skewed)
            out += self._rate_events(now)
        return out

    def _rate_events(self, now: float) -> list[tuple[int, str]]:
        """The slow-camera lines of `events` (caller holds the lock): a camera sending
        for a whole rate window, not silent, below SLOW_RATE_FRACTION of the median rate of
        the other cameras that send (WARN, once); back at SLOW_RATE_RECOVERED (OK, once).
        A slow camera that goes silent stays marked, so its return is not a new line."""
        rates = {c: m.rate(now) for c, m in self._rates.items()}
        sending = [c for c, m in self._rates.items()
                   if m.last is not None and c not in self._silent]
        out: list[tuple[int, str]] = []
        for c in sending:
            others = [rates[o] for o in sending if o != c and rates[o] > 0.0]
            first = self._rates[c].first
            if not others or first is None or now - first < self._rates[c].window_s:
                continue
            ref = float(np.median(others))
            if c not in self._slow and rates[c] < SLOW_RATE_FRACTION * ref:
                self._slow[c] = (rates[c], ref)
                out.append((WARN, f"camera '{c}': images arrive at {rates[c]:.2f} Hz on "
                                  f"{self._topic(c)}, far below the other cameras' "
                                  f"{ref:.2f} Hz (median): most of its images are lost on "
                                  "the way (on one machine: its driver needs a Fast DDS "
                                  "profile with a large shared-memory segment, see "
                                  "docs/TROUBLESHOOTING.md) or the camera runs slower; sets "
                                  "without it are partial"))
            elif c in self._slow and rates[c] >= SLOW_RATE_RECOVERED * ref:
                del self._slow[c]
                out.append((OK, f"camera '{c}': images arrive at {rates[c]:.2f} Hz again, "
                                f"in line with the other cameras' {ref:.2f} Hz"))
            elif c in self._slow:
                self._slow[c] = (rates[c], ref)
        return out

    def _skew_text(self, camera: str, offset_ns: int) -> str:
        """Why a camera is out of sync and what to do."""
        slop = "" if self.sync_slop is None else f" (sync_slop {self.sync_slop * 1e3:g} ms)"
        return (f"camera '{camera}' is out of sync: its stamps are {offset_ns / 1e6:+.0f} ms "
                f"from the other cameras'{slop}, so its images are not matched into sets "
                "(dropped as late or no_partner); fix its driver's stamps (exposure time, "
                "clock sync) or raise sync_slop")

    def dropped(self) -> dict[str, int]:
        """Sets dropped after synchronization, by reason."""
        with self._lock:
            return dict(self._dropped)

    @property
    def processed(self) -> int:
        """Sets published so far."""
        with self._lock:
            return self._processed

    def statuses(self, *, sync_stats: dict[str, Any] | None = None,
                 engine: dict[str, Any] | None = None,
                 now: float | None = None) -> list[Status]:
        """The four statuses of the module docstring at monotonic time `now`."""
        now = time.monotonic() if now is None else now
        rates = self.rates(now)
        missing = self.missing_cameras(now)
        with self._lock:
            bad = dict(self._bad)
            bad_last = dict(self._bad_last)
            recent_bad = {c: bad_last[c] for c, t in self._bad_time.items()
                          if now - self.input_timeout < t <= now}
            events = {k: m for k, (t, m) in self._events.items()
                      if now - self.event_hold < t <= now}
            dropped = dict(self._dropped)
            inf = percentiles(self._inference)
            e2e = percentiles(self._end_to_end)
            clock_offset = self._clock_offset_s
            processed = self._processed
            stalled = (None if self._last_processed is None
                       else now - self._last_processed)
            outcomes = list(self._outcomes)
            never = [c for c, m in self._rates.items() if m.count == 0]
            slow = dict(self._slow)
            last_error = self._last_error
            failing = self._errors_since_success
            fusion = dict(self._fusion)
            odom_note = self._odometry_note
        superseded = (sum(outcomes) / len(outcomes)
                      if len(outcomes) >= SUPERSEDED_MIN_SETS else 0.0)
        return [self._cameras_status(rates, missing, bad, bad_last, recent_bad, slow),
                self._sync_status(sync_stats, events.get("synchronizer"), never),
                self._inference_status(engine, inf, e2e, processed, dropped, last_error,
                                       failing, clock_offset, stalled,
                                       (superseded, len(outcomes))),
                self._occupancy_status(fusion, odom_note, recent_bad.get("odometry"),
                                       events.get("occupancy"))]

    # ------------------------------------------------------------------ status builders
    def _cameras_status(self, rates: dict[str, float], missing: list[str],
                        bad: dict[tuple[str, str], int], bad_last: dict[str, str],
                        recent_bad: dict[str, str],
                        slow: dict[str, tuple[float, float]] | None = None) -> Status:
        """Per-camera rates; WARN naming missing cameras, cameras sending bad input and
        cameras far below the others' rate (`slow`: camera -> (its Hz, the others' Hz))."""
        values = {f"{c} rate (Hz)": f"{rates[c]:.2f}" for c in self.cameras}
        for (camera, field_name), n in sorted(bad.items()):
            values[f"{camera} bad {field_name}"] = str(n)
        for camera, msg in sorted(bad_last.items()):
            values[f"{camera} last bad input"] = msg
        parts = []
        if missing:
            parts.append(f"missing cameras: {', '.join(missing)}")
        bad_now = [c for c in self.cameras if c in recent_bad]
        if bad_now:
            parts.append(f"bad input from {', '.join(bad_now)}: "
                         f"{'; '.join(recent_bad[c] for c in bad_now)}")
        slow_now = [c for c in self.cameras if c in (slow or {}) and c not in missing]
        if slow_now:
            parts.append("far below the other cameras' rate (images lost on the way?): "
                         + ", ".join(f"{c} {slow[c][0]:.2f} Hz (others {slow[c][1]:.2f} Hz)"
                                     for c in slow_now))
        if parts:
            return Status(WARN, f"{PREFIX}: cameras", "; ".join(parts), values)
        return Status(OK, f"{PREFIX}: cameras", f"all {len(self.cameras)} cameras publishing",
                      values)

    def _sync_status(self, stats: dict[str, Any] | None, event: str | None = None,
                     never: list[str] | None = None) -> Status:
        """Synchronizer counters: sets complete/partial, drops by reason, resets; WARN
        naming cameras without any image (`never`), without CameraInfo, out of sync."""
        if not stats:
            return Status(STALE, f"{PREFIX}: synchronizer", "no synchronizer statistics")
        values = {"sets complete": str(stats["sets_complete"]),
                  "sets partial": str(stats["sets_partial"]),
                  "resets": str(stats["resets"])}
        for reason, n in stats["dropped"].items():
            values[f"images dropped: {reason}"] = str(n)
        if "max_spread_ns" in stats:
            values["largest set spread (ms)"] = f"{stats['max_spread_ns'] / 1e6:.3f}"
        without_info = [c for c, s in stats["cameras"].items() if not s["has_camera_info"]]
        if stats.get("last_reset"):
            values["last reset"] = str(stats["last_reset"])
        never = [c for c in without_info if c in (never or [])]
        waiting = [c for c in without_info if c not in never]
        skewed = stats.get("out_of_sync") or {}
        for c, offset in skewed.items():
            values[f"{c} out of sync (ms)"] = f"{offset / 1e6:+.1f}"
        parts = []
        if never:
            parts.append(f"no images from: {', '.join(never)} ({self._never_text(never)})")
        if waiting:
            parts.append(f"waiting for CameraInfo of: {', '.join(waiting)}")
        parts += [self._skew_text(c, skewed[c]) for c in sorted(skewed)]
        if parts:
            return Status(WARN, f"{PREFIX}: synchronizer", "; ".join(parts), values)
        if event:
            return Status(WARN, f"{PREFIX}: synchronizer", event, values)
        total = sum(stats["dropped"].values())
        reasons = ", ".join(f"{r} {n}" for r, n in stats["dropped"].items() if n)
        return Status(OK, f"{PREFIX}: synchronizer",
                      f"{stats['sets_complete'] + stats['sets_partial']} sets "
                      f"({stats['sets_partial']} partial), {total} images dropped"
                      + (f" ({reasons})" if reasons else ""), values)

    def _inference_status(self, engine: dict[str, Any] | None, inf: list[float],
                          e2e: list[float], processed: int, dropped: dict[str, int],
                          last_error: str | None, failing: int,
                          clock_offset: float | None = None, stalled: float | None = None,
                          superseded: tuple[float, int] = (0.0, 0)) -> Status:
        """Device, latency percentiles and drops by reason; WARN when no set was processed
        for `inference_timeout` (`stalled`: seconds since the last), when most recent sets
        were superseded (`superseded`: fraction, sets), and when the set stamps are not
        from the node's clock (then there is no end-to-end latency to report)."""
        values = {k: str(v) for k, v in (engine or {}).items()}
        values.update({"inference p50 (s)": f"{inf[0]:.4f}",
                       "inference p95 (s)": f"{inf[1]:.4f}",
                       "end-to-end p50 (s)": f"{e2e[0]:.4f}",
                       "end-to-end p95 (s)": f"{e2e[1]:.4f}",
                       "sets processed": str(processed)})
        for reason, n in sorted(dropped.items()):
            values[f"sets dropped: {reason}"] = str(n)
        if last_error:
            values["last error"] = last_error
        device = (engine or {}).get("device", "?")
        if failing:
            return Status(ERROR, f"{PREFIX}: inference",
                          f"{failing} set(s) failed in a row on {device}: {last_error}", values)
        if processed == 0:
            return Status(WARN, f"{PREFIX}: inference", f"no set processed yet on {device}",
                          values)
        if stalled is not None and stalled > self.inference_timeout:
            return Status(WARN, f"{PREFIX}: inference",
                          f"no set processed for {stalled:.1f} s on {device} "
                          f"(inference_timeout {self.inference_timeout:g} s): see the cameras "
                          "and synchronizer statuses", values)
        fraction, n_sets = superseded
        values["superseded (last sets)"] = f"{fraction * 100:.0f} % of {n_sets}"
        if fraction > SUPERSEDED_WARN:
            return Status(WARN, f"{PREFIX}: inference",
                          f"{fraction * 100:.0f} % of the last {n_sets} sets were superseded "
                          f"(not processed): the network (p50 {inf[0] * 1e3:.0f} ms on "
                          f"{device}) is slower than the cameras; use a GPU or a lighter "
                          "preset, fewer cameras, or a lower camera rate", values)
        if clock_offset is not None:
            text = (f"set stamps are {clock_offset:.3g} s from this node's clock: replaying a "
                    "bag? publish /clock and set use_sim_time:=true (end-to-end latency not "
                    "measured)")
            values["end-to-end"] = text
            return Status(WARN, f"{PREFIX}: inference", f"{device}: {text}", values)
        return Status(OK, f"{PREFIX}: inference",
                      f"{device}: p50 {inf[0] * 1e3:.1f} ms, end-to-end p95 "
                      f"{e2e[1] * 1e3:.1f} ms", values)

    def _occupancy_status(self, fusion: dict[str, Any], odom_note: str | None,
                          odom_rejected: str | None = None,
                          event: str | None = None) -> Status:
        """Fusion frame, resets and rejected updates; WARN without odometry, while odometry
        is rejected, and after a map reset or a refused update."""
        values = {k: str(v) for k, v in fusion.items()}
        if odom_note:
            values["odometry"] = odom_note
        if odom_rejected:
            values["odometry rejected"] = odom_rejected
        parts = [p for p in (odom_note, odom_rejected, event) if p]
        if parts:
            return Status(WARN, f"{PREFIX}: occupancy", "; ".join(parts), values)
        if not fusion:
            return Status(WARN, f"{PREFIX}: occupancy", "no occupancy update yet", values)
        return Status(OK, f"{PREFIX}: occupancy",
                      f"fusing in {fusion.get('frame', '?')}, "
                      f"{fusion.get('known_voxels', 0)} known voxels", values)


def to_diagnostic_array(statuses: list[Status], stamp: Any, hardware_id: str = PREFIX) -> Any:
    """diagnostic_msgs/DiagnosticArray of `statuses` with header stamp `stamp`."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

    msg = DiagnosticArray()
    msg.header.stamp = stamp
    for s in statuses:
        msg.status.append(DiagnosticStatus(
            level=bytes([s.level]), name=s.name, message=s.message, hardware_id=hardware_id,
            values=[KeyValue(key=k, value=v) for k, v in s.values.items()]))
    return msg
