"""N-camera approximate-time synchronizer with explicit time, timeouts and drop accounting.

Pure Python and deterministic: no clock is read inside; the caller passes every time as
integer nanoseconds (`arrival_ns` with each image, `now_ns` to `poll`), so feeding the same
calls in the same order always gives the same sets (bag evaluation relies on it). The ROS
node passes its own clock (sim time under bag replay).

Matching (stated once, see `ApproximateTimeSynchronizer`):
- Each camera has a queue of pending views sorted by stamp, at most `queue_size` long;
  only cameras that have sent CameraInfo take part in sets.
- CameraInfo that belongs with its image: the caller may give each image and CameraInfo
  a `key` (the pipeline gives the (width, height) of both). The last `INFO_HISTORY`
  CameraInfo of each camera are kept; a view gets the one with its stamp (even of another
  size: then the caller reports the mismatch), else the newest with its key (so a
  resolution change whose CameraInfo arrives just after the image waits for it instead of
  being compared with the old size). A view whose key no
  CameraInfo has does not complete a set; once its window is decided (timeout or every
  camera past it) it goes with the camera's latest CameraInfo, and the caller reports the
  mismatch.
- The candidate set of a pivot stamp P takes, for every camera, its newest pending view
  in [P - slop_ns, P]; so no set ever spans more than the slop (max - min <= slop_ns).
- The *anchor* is the oldest pending view, with its window [t0, t0 + slop]. The window
  is decided once it cannot improve: when every camera has sent a stamp beyond it (a
  camera sends its stamps in order, so it will not fill the gap) or when `timeout_ns`
  has passed since the first view of the window arrived. Then the largest candidate
  pivoting in the window (ties: smallest spread, earliest pivot) goes out if it has at
  least `min_cameras` views, listing the absent cameras in `missing`; if not, the anchor
  is dropped and the next one is tried.
- A complete set (every configured camera) goes out as soon as one exists in the queues
  (the earliest, or a tighter one pivoting within the slop of it), without waiting for
  an undecided anchor window; a decided window older than it goes out first.
- Sets come out in stamp order: after a set whose newest view has stamp P, every pending
  view with stamp <= P is dropped (counted) and later arrivals at or before P are late.
- The set stamp is the lower median of its view stamps: always the stamp of one of its
  views (so outputs carry a real input stamp), and robust to one early or late view.
- Choose `slop_ns` below half the fastest camera's frame period; then every window holds
  at most one frame of each camera and the matching is unambiguous.

Every image is accounted for exactly once: used in a set, dropped for a reason
(`DROP_REASONS`), or still queued; `stats()` shows the counts per camera and reason.

Out of sync (`out_of_sync`): a camera missing from most of the last `SET_HISTORY` sets
whose nearest stamp lies at an about constant offset beyond the slop from those sets'
stamps (a driver stamping late, a clock offset) is reported with that offset, instead of
leaving only its `late` / `no_partner` drops to tell.
"""

from __future__ import annotations

import bisect
import statistics
from collections import deque
from dataclasses import dataclass, field
from typing import Any, NamedTuple

DROP_QUEUE_OVERFLOW = "queue_overflow"  # the camera's queue was full; its oldest view went
DROP_LATE = "late"  # stamp at or before the newest view of the last emitted set
DROP_DUPLICATE = "duplicate"  # same camera and stamp as a queued or just-used view
DROP_NO_PARTNER = "no_partner"  # no set within the slop took it (skipped or left alone)
DROP_TIMED_OUT = "timed_out"  # its window timed out with fewer than min_cameras views
DROP_NO_CAMERA_INFO = "no_camera_info"  # the camera had no CameraInfo when it was dropped
DROP_STALE = "stale"  # stamp older than now - max_staleness_ns
DROP_RESET = "reset"  # queued when the synchronizer reset (stamp jump or reset())
DROP_FLUSHED = "flushed"  # still queued when flush() ended the stream
DROP_REASONS = (DROP_QUEUE_OVERFLOW, DROP_LATE, DROP_DUPLICATE, DROP_NO_PARTNER,
                DROP_TIMED_OUT, DROP_NO_CAMERA_INFO, DROP_STALE, DROP_RESET, DROP_FLUSHED)
INFO_HISTORY = 8  # CameraInfo kept per camera (to match each image with its own)
SET_HISTORY = 16  # emitted sets kept for the out-of-sync check
STAMP_HISTORY = 32  # received stamps kept per camera for the out-of-sync check
MIN_SKEW_SETS = 4  # sets a camera must be missing from before it is called out of sync


@dataclass(frozen=True)
class SyncConfig:
    """Settings of the synchronizer; all times are integer nanoseconds."""

    cameras: tuple[str, ...]  # camera names, in output order
    slop_ns: int = 20_000_000  # max stamp spread inside one set (20 ms)
    queue_size: int = 10  # pending views kept per camera; older ones are dropped
    timeout_ns: int = 150_000_000  # wait this long after a window's first arrival
    min_cameras: int = 1  # fewest views a partial set may have
    max_staleness_ns: int | None = None  # drop views with stamp < now - this; None = off
    # (needs stamps and the caller's clock in one time base, e.g. sim time or synced clocks)
    backward_jump_ns: int = 1_000_000_000  # a camera's stamp going back more than this resets

    def __post_init__(self) -> None:
        """Validate every field; ValueError names the field and the allowed range."""
        cams = tuple(str(c) for c in self.cameras)
        if not cams:
            raise ValueError("SyncConfig.cameras is empty; give at least one camera name")
        if len(set(cams)) != len(cams):
            raise ValueError(f"SyncConfig.cameras has duplicate names: {list(cams)}")
        object.__setattr__(self, "cameras", cams)
        for name, minimum in (("slop_ns", 0), ("queue_size", 1), ("timeout_ns", 1),
                              ("backward_jump_ns", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"SyncConfig.{name} must be an integer >= {minimum}, "
                                 f"got {value!r}")
        if (isinstance(self.min_cameras, bool) or not isinstance(self.min_cameras, int)
                or not 1 <= self.min_cameras <= len(cams)):
            raise ValueError(f"SyncConfig.min_cameras must be an integer in [1, {len(cams)}] "
                             f"(the number of cameras), got {self.min_cameras!r}")
        stale = self.max_staleness_ns
        if stale is not None and (isinstance(stale, bool) or not isinstance(stale, int)
                                  or stale <= 0):
            raise ValueError(f"SyncConfig.max_staleness_ns must be a positive integer or "
                             f"None (off), got {stale!r}")


class SyncedView(NamedTuple):
    """One camera's view in a set: its own stamp, the image payload and its CameraInfo."""

    stamp_ns: int
    payload: Any
    info: Any


@dataclass
class SyncedSet:
    """A synchronized set of views; `stamp_ns` is the lower median of the view stamps."""

    stamp_ns: int  # reference stamp of the set (lower median of the view stamps)
    views: dict[str, SyncedView]  # camera -> view, in configured camera order
    missing: list[str]  # configured cameras absent from this set, in configured order
    emitted_ns: int  # the caller's time when the set was formed (for latency figures)

    @property
    def complete(self) -> bool:
        """True when every configured camera is in the set."""
        return not self.missing

    @property
    def spread_ns(self) -> int:
        """Newest minus oldest view stamp in nanoseconds (never above the slop)."""
        stamps = [v.stamp_ns for v in self.views.values()]
        return max(stamps) - min(stamps)


@dataclass(frozen=True)
class SyncReset:
    """Why the synchronizer reset: the reason and, for a stamp jump, where it happened."""

    reason: str  # human-readable cause, for the node's log line
    camera: str | None = None  # camera whose stamp jumped back, if that was the cause
    stamp_ns: int | None = None  # the new (earlier) stamp
    previous_stamp_ns: int | None = None  # that camera's newest stamp before the jump


@dataclass
class _Pending:
    """A queued view: stamp, payload and the caller's time of arrival."""

    stamp_ns: int
    payload: Any
    arrival_ns: int
    key: Any = None  # matched against the CameraInfo keys (None: any CameraInfo)


@dataclass
class _CameraState:
    """Per-camera queue, CameraInfo and counters."""

    queue: list[_Pending] = field(default_factory=list)  # sorted by stamp
    info: Any = None
    info_stamp_ns: int | None = None  # stamp of the latest CameraInfo
    has_info: bool = False
    infos: deque = field(default_factory=lambda: deque(maxlen=INFO_HISTORY))  # (stamp,
    #   key, info) of the latest CameraInfo, oldest first
    recent_stamps: deque = field(default_factory=lambda: deque(maxlen=STAMP_HISTORY))
    newest_stamp_ns: int | None = None  # newest stamp received since the last reset
    last_used_stamp_ns: int | None = None
    received: int = 0
    used: int = 0
    missing_in_sets: int = 0
    infos_received: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DROP_REASONS, 0))


def _check_int(value: Any, name: str) -> int:
    """`value` as an int, or TypeError naming the argument (stamps are integer ns)."""
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(f"{name} must be an integer number of nanoseconds, got {value!r}")
    return int(value)


class ApproximateTimeSynchronizer:
    """Matches the views of N cameras into sets whose stamps lie within a slop.

    Feed images with `add_image`, CameraInfo with `add_camera_info`, and call `poll`
    regularly (e.g. from a timer) so timed-out windows go ahead; `flush` ends a stream.
    Memory is bounded by `queue_size` views per configured camera.
    """

    def __init__(self, config: SyncConfig) -> None:
        """Create an empty synchronizer for `config.cameras`."""
        self.config = config
        self._cams: dict[str, _CameraState] = {c: _CameraState() for c in config.cameras}
        self._watermark_ns: int | None = None  # newest stamp of the last emitted set
        self._sets_complete = 0
        self._sets_partial = 0
        self._max_spread_ns = 0  # largest stamp spread of an emitted set (<= slop_ns)
        self._resets = 0
        self._last_reset: SyncReset | None = None
        self._pending_reset: SyncReset | None = None
        self._recent_sets: deque[tuple[int, frozenset[str]]] = deque(maxlen=SET_HISTORY)

    # ------------------------------------------------------------------ inputs
    def add_camera_info(self, camera: str, stamp_ns: int, info: Any, *,
                        key: Any = None) -> None:
        """Store a CameraInfo of `camera`; each view of a set gets the one that belongs
        with it (its stamp and `key`, else the newest with its key; see the module
        docstring). `key`: e.g. the (width, height) it describes; None matches any image.

        Queued images of a camera without CameraInfo wait (up to the timeout and queue
        size) and become usable when it arrives; call `poll` afterwards to match them.
        """
        state = self._state(camera)
        state.info_stamp_ns = _check_int(stamp_ns, "stamp_ns")
        state.info = info
        state.has_info = True
        state.infos_received += 1
        state.infos.append((state.info_stamp_ns, key, info))

    def add_image(self, camera: str, stamp_ns: int, payload: Any,
                  arrival_ns: int, *, key: Any = None) -> list[SyncedSet]:
        """Queue one image and return the sets that became ready (usually 0 or 1).

        Args:
            camera: one of `config.cameras`.
            stamp_ns: header stamp of the image, integer nanoseconds.
            payload: anything (message, array); returned unchanged in the set.
            arrival_ns: the caller's clock when the image arrived; also used as "now" for
                timeouts and staleness in this call.
            key: matched against the keys of the camera's CameraInfo (e.g. the image's
                (width, height)); None matches any CameraInfo.

        Returns:
            Sets formed by this call, oldest first.
        """
        state = self._state(camera)
        stamp_ns = _check_int(stamp_ns, "stamp_ns")
        arrival_ns = _check_int(arrival_ns, "arrival_ns")
        state.received += 1
        prev = state.newest_stamp_ns
        if prev is not None and stamp_ns < prev - self.config.backward_jump_ns:
            self.reset(f"camera '{camera}' stamp jumped back {(prev - stamp_ns) / 1e9:.3f} s "
                       "(looped bag or clock reset)", camera=camera, stamp_ns=stamp_ns,
                       previous_stamp_ns=prev)
            prev = None
        state.newest_stamp_ns = stamp_ns if prev is None else max(prev, stamp_ns)
        state.recent_stamps.append(stamp_ns)
        reason = self._admission_drop(state, stamp_ns, arrival_ns)
        if reason is not None:
            state.dropped[reason] += 1
        else:
            keys = [p.stamp_ns for p in state.queue]
            state.queue.insert(bisect.bisect_right(keys, stamp_ns),
                               _Pending(stamp_ns, payload, arrival_ns, key))
            if len(state.queue) > self.config.queue_size:
                self._drop(camera, state.queue.pop(0), DROP_QUEUE_OVERFLOW)
        return self._match(arrival_ns, force=False)

    def poll(self, now_ns: int) -> list[SyncedSet]:
        """Emit the sets whose windows timed out by `now_ns` (and any now complete)."""
        return self._match(_check_int(now_ns, "now_ns"), force=False)

    def flush(self, now_ns: int | None = None) -> list[SyncedSet]:
        """End of stream: emit every remaining set with >= min_cameras views, drop the rest.

        `now_ns` (default: the newest arrival seen) is used for staleness and as the
        sets' `emitted_ns`. Afterwards every queue is empty, so the counters add up.
        """
        if now_ns is None:
            arrivals = [p.arrival_ns for s in self._cams.values() for p in s.queue]
            now_ns = max(arrivals, default=0)
        sets = self._match(_check_int(now_ns, "now_ns"), force=True)
        for camera, state in self._cams.items():
            while state.queue:
                self._drop(camera, state.queue.pop(0), DROP_FLUSHED)
        return sets

    def reset(self, reason: str, *, camera: str | None = None, stamp_ns: int | None = None,
              previous_stamp_ns: int | None = None) -> None:
        """Drop every queued view (counted as 'reset') and forget stamps; keep CameraInfo.

        Called internally when a camera's stamp jumps back by more than
        `backward_jump_ns`; the node may call it too (e.g. on a clock jump). The event is
        reported by `take_reset()` and counted in `stats()['resets']`.
        """
        for cam, state in self._cams.items():
            while state.queue:
                self._drop(cam, state.queue.pop(0), DROP_RESET)
            state.newest_stamp_ns = None
            state.last_used_stamp_ns = None
            state.recent_stamps.clear()
        self._watermark_ns = None
        self._recent_sets.clear()
        self._resets += 1
        self._last_reset = SyncReset(reason, camera, stamp_ns, previous_stamp_ns)
        self._pending_reset = self._last_reset

    def take_reset(self) -> SyncReset | None:
        """The reset that happened since the last call (for one log line), else None."""
        event, self._pending_reset = self._pending_reset, None
        return event

    # ------------------------------------------------------------------ queries
    def cameras_without_info(self) -> list[str]:
        """Configured cameras that have not sent any CameraInfo yet."""
        return [c for c, s in self._cams.items() if not s.has_info]

    def out_of_sync(self) -> dict[str, int]:
        """Cameras whose stamps are off the sets' by an about constant offset beyond the
        slop, with that offset in integer nanoseconds (positive: the camera's stamps are
        later). See the module docstring; a stopped camera (offsets that grow) or one at
        another rate is not reported."""
        sets = list(self._recent_sets)
        if len(sets) < MIN_SKEW_SETS:
            return {}
        stamps = sorted(s for s, _ in sets)
        period = statistics.median(b - a for a, b in zip(stamps, stamps[1:]))
        slop = self.config.slop_ns
        out: dict[str, int] = {}
        for camera, state in self._cams.items():
            missed = [s for s, missing in sets if camera in missing]
            seen = list(state.recent_stamps)
            if len(missed) < max(MIN_SKEW_SETS, len(sets) // 2) or not seen:
                continue
            offsets = [min(seen, key=lambda t, s=s: abs(t - s)) - s for s in missed]
            skew = int(statistics.median(offsets))
            if (all(abs(o) > slop and (o > 0) == (skew > 0) for o in offsets)
                    and max(offsets) - min(offsets) <= max(slop, 1)
                    and abs(skew) < period / 2):
                out[camera] = skew
        return out

    def queued(self) -> dict[str, int]:
        """Number of pending views per camera."""
        return {c: len(s.queue) for c, s in self._cams.items()}

    def stats(self) -> dict[str, Any]:
        """Counters: per camera received/used/queued/dropped-by-reason, totals, resets and
        `max_spread_ns`, the largest stamp spread of a set so far (never above the slop),
        and `out_of_sync` (camera -> stamp offset in ns, see `out_of_sync`).

        For every camera, received == used + sum(dropped.values()) + queued.
        """
        cams = {}
        for c, s in self._cams.items():
            cams[c] = {"received": s.received, "used": s.used, "queued": len(s.queue),
                       "dropped": dict(s.dropped), "missing_in_sets": s.missing_in_sets,
                       "camera_infos": s.infos_received, "has_camera_info": s.has_info,
                       "camera_info_stamp_ns": s.info_stamp_ns}
        dropped_total = dict.fromkeys(DROP_REASONS, 0)
        for s in self._cams.values():
            for reason, n in s.dropped.items():
                dropped_total[reason] += n
        return {"cameras": cams, "dropped": dropped_total,
                "sets_complete": self._sets_complete, "sets_partial": self._sets_partial,
                "max_spread_ns": self._max_spread_ns, "resets": self._resets,
                "last_reset": None if self._last_reset is None else self._last_reset.reason,
                "out_of_sync": self.out_of_sync()}

    # ------------------------------------------------------------------ internals
    def _state(self, camera: str) -> _CameraState:
        """State of a configured camera, or ValueError listing the configured names."""
        try:
            return self._cams[camera]
        except KeyError:
            raise ValueError(f"unknown camera '{camera}'; configured cameras: "
                             f"{list(self.config.cameras)}") from None

    def _admission_drop(self, state: _CameraState, stamp_ns: int,
                        arrival_ns: int) -> str | None:
        """Reason to refuse a new view at arrival, or None to queue it."""
        if state.last_used_stamp_ns == stamp_ns:
            return DROP_DUPLICATE
        if self._watermark_ns is not None and stamp_ns <= self._watermark_ns:
            return DROP_LATE
        if any(p.stamp_ns == stamp_ns for p in state.queue):
            return DROP_DUPLICATE
        stale = self.config.max_staleness_ns
        if stale is not None and stamp_ns < arrival_ns - stale:
            return DROP_STALE
        return None

    @staticmethod
    def _matches(state: _CameraState, pending: _Pending) -> bool:
        """Whether the camera has a CameraInfo whose key fits the view's."""
        return state.has_info and (pending.key is None or any(
            k is None or k == pending.key for _, k, _ in state.infos))

    @staticmethod
    def _info_for(state: _CameraState, pending: _Pending) -> Any:
        """The CameraInfo of a view: the newest with its stamp (one with its key first;
        one of another size is the image's own and its mismatch is reported), else the
        newest with its key, else the camera's latest."""
        fits = [pending.key is None or k is None or k == pending.key for _, k, _ in state.infos]
        same_stamp = [(fit, i) for fit, (s, _, i) in zip(fits, state.infos)
                      if s == pending.stamp_ns]
        if same_stamp:
            own = [i for fit, i in same_stamp if fit]
            return own[-1] if own else same_stamp[-1][1]
        fitting = [i for fit, (_, _, i) in zip(fits, state.infos) if fit]
        return fitting[-1] if fitting else state.info

    def _drop(self, camera: str, pending: _Pending, reason: str) -> None:
        """Count one dropped view; views without a CameraInfo that fits them count as
        such."""
        state = self._cams[camera]
        if not self._matches(state, pending) and reason in (DROP_NO_PARTNER, DROP_TIMED_OUT,
                                                            DROP_QUEUE_OVERFLOW):
            reason = DROP_NO_CAMERA_INFO
        state.dropped[reason] += 1

    def _drop_stale(self, now_ns: int) -> None:
        """Drop queued views older than now - max_staleness_ns."""
        stale = self.config.max_staleness_ns
        if stale is None:
            return
        for camera, state in self._cams.items():
            while state.queue and state.queue[0].stamp_ns < now_ns - stale:
                self._drop(camera, state.queue.pop(0), DROP_STALE)

    def _candidate(self, pivot_ns: int, keys: dict[str, list[int]],
                   views: dict[str, list[_Pending]]) -> dict[str, _Pending]:
        """For every usable camera (keys: the stamps of its `views`, sorted), its newest
        view in [pivot - slop, pivot]."""
        chosen: dict[str, _Pending] = {}
        lo = pivot_ns - self.config.slop_ns
        for camera, stamps in keys.items():
            i = bisect.bisect_right(stamps, pivot_ns) - 1
            if i >= 0 and stamps[i] >= lo:
                chosen[camera] = views[camera][i]
        return chosen

    def _match(self, now_ns: int, force: bool) -> list[SyncedSet]:
        """Form every set that is ready at `now_ns` (all windows if `force`)."""
        self._drop_stale(now_ns)
        out: list[SyncedSet] = []
        slop = self.config.slop_ns
        n_cams = len(self._cams)
        while True:
            # Views of cameras with CameraInfo (a decided window takes them), and those
            # with a CameraInfo that fits them (only these complete a set early).
            views = {c: s.queue for c, s in self._cams.items() if s.has_info and s.queue}
            if not views:
                return out
            keys = {c: [p.stamp_ns for p in v] for c, v in views.items()}  # sorted stamps
            fitting = {c: [p for p in v if self._matches(self._cams[c], p)]
                       for c, v in views.items()}
            fitting = {c: v for c, v in fitting.items() if v}
            # Anchor: oldest pending usable view (ties: configured camera order).
            anchor_cam = min(keys, key=lambda c: (keys[c][0], self.config.cameras.index(c)))
            t0 = keys[anchor_cam][0]
            window_end = t0 + slop
            settled = all(s.newest_stamp_ns is not None and s.newest_stamp_ns > window_end
                          for s in self._cams.values())
            first_arrival = min(p.arrival_ns for c in views for p in views[c]
                                if p.stamp_ns <= window_end)
            timed_out = now_ns - first_arrival >= self.config.timeout_ns
            decidable = force or settled or timed_out
            complete = self._best_complete(fitting) if len(fitting) == n_cams else None
            if complete is not None and (not decidable or min(
                    p.stamp_ns for p in complete.values()) <= window_end):
                out.append(self._emit(complete, now_ns))
                continue
            if not decidable:
                return out
            pivots = sorted({t for v in keys.values() for t in v if t <= window_end})
            candidates = [(pv, self._candidate(pv, keys, views)) for pv in pivots]
            _, best = min(candidates, key=lambda x: (-len(x[1]), self._spread(x[1]), x[0]))
            if len(best) >= self.config.min_cameras:
                out.append(self._emit(best, now_ns))
            else:
                reason = (DROP_NO_PARTNER if settled else DROP_TIMED_OUT if timed_out
                          else DROP_FLUSHED)
                self._drop(anchor_cam, self._cams[anchor_cam].queue.pop(0), reason)

    def _best_complete(self, views: dict[str, list[_Pending]]) -> dict[str, _Pending] | None:
        """The earliest complete candidate of `views` (per camera, sorted by stamp), or a
        tighter one pivoting within the slop of it."""
        keys = {c: [p.stamp_ns for p in v] for c, v in views.items()}
        complete = []
        for pv in sorted({t for v in keys.values() for t in v}):
            if complete and pv > complete[0][0] + self.config.slop_ns:
                break
            cand = self._candidate(pv, keys, views)
            if len(cand) == len(self._cams):
                complete.append((pv, cand))
        if not complete:
            return None
        return min(complete, key=lambda x: (self._spread(x[1]), x[0]))[1]

    @staticmethod
    def _spread(chosen: dict[str, _Pending]) -> int:
        """Stamp spread of a candidate set in nanoseconds."""
        stamps = [p.stamp_ns for p in chosen.values()]
        return max(stamps) - min(stamps)

    def _emit(self, chosen: dict[str, _Pending], now_ns: int) -> SyncedSet:
        """Turn a candidate into a SyncedSet, then drop everything up to its newest stamp."""
        ids = {id(p) for p in chosen.values()}
        newest = max(p.stamp_ns for p in chosen.values())
        views: dict[str, SyncedView] = {}
        missing: list[str] = []
        for camera, state in self._cams.items():
            if camera in chosen:
                p = chosen[camera]
                views[camera] = SyncedView(p.stamp_ns, p.payload, self._info_for(state, p))
                state.used += 1
                state.last_used_stamp_ns = p.stamp_ns
            else:
                missing.append(camera)
                state.missing_in_sets += 1
            keep = []
            for p in state.queue:
                if id(p) in ids:
                    continue
                if p.stamp_ns <= newest:
                    self._drop(camera, p, DROP_NO_PARTNER)
                else:
                    keep.append(p)
            state.queue = keep
        self._watermark_ns = newest
        stamps = sorted(v.stamp_ns for v in views.values())
        self._recent_sets.append((stamps[(len(stamps) - 1) // 2], frozenset(missing)))
        self._max_spread_ns = max(self._max_spread_ns, stamps[-1] - stamps[0])
        if missing:
            self._sets_partial += 1
        else:
            self._sets_complete += 1
        return SyncedSet(stamp_ns=stamps[(len(stamps) - 1) // 2], views=views,
                         missing=missing, emitted_ns=now_ns)
