"""Property-based tests (hypothesis) of the synchronizer (sync/approximate_time.py) under
adversarial input: random stamps (duplicates, out of order, jumps back and forward, zero,
negative, huge), random arrival orders and clocks that go backwards, cameras at other
rates, CameraInfo arriving late, interleaved polls, flushes, resets and invalid calls.

Every call either works or raises the documented error (ValueError for an unknown camera,
TypeError for a stamp that is not integer nanoseconds) without changing any state; after
every call the queues are bounded and every image is accounted for; every set holds views
of one instant (its stamps within the slop, each view exactly the payload sent with that
camera and stamp, none used twice). test_approximate_time.py has the scenario tests and
the properties of realistic streams.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from depth_any_view.sync import ApproximateTimeSynchronizer, SyncConfig

MS = 1_000_000
SETTINGS = dict(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Checked:
    """A synchronizer with a model of what was sent, checking invariants after each call."""

    def __init__(self, cfg: SyncConfig) -> None:
        self.cfg = cfg
        self.sync = ApproximateTimeSynchronizer(cfg)
        self.sent: dict[int, tuple[str, int]] = {}  # uid -> (camera, stamp)
        self.received = dict.fromkeys(cfg.cameras, 0)
        self.with_info: set[str] = set()
        self.used_uids: set[int] = set()
        self.used_views: set[tuple[str, int]] = set()
        self.sets = []
        self.uid = 0

    def image(self, cam: str, stamp: int, arrival: int) -> None:
        self.uid += 1
        self.sent[self.uid] = (cam, stamp)
        self.received[cam] += 1
        self._check_sets(self.sync.add_image(cam, stamp, (cam, stamp, self.uid), arrival),
                         arrival)

    def info(self, cam: str, stamp: int) -> None:
        self.sync.add_camera_info(cam, stamp, f"info-{cam}")
        self.with_info.add(cam)
        self._check_invariants()

    def poll(self, now: int) -> None:
        self._check_sets(self.sync.poll(now), now)

    def flush(self, now: int | None) -> None:
        out = self.sync.flush(now)
        self._check_sets(out, now)
        assert all(q == 0 for q in self.sync.queued().values())

    def _check_sets(self, sets, now: int | None) -> None:
        for s in sets:
            stamps = sorted(v.stamp_ns for v in s.views.values())
            assert stamps[-1] - stamps[0] <= self.cfg.slop_ns
            assert s.spread_ns == stamps[-1] - stamps[0]
            assert len(s.views) >= self.cfg.min_cameras
            assert s.stamp_ns == stamps[(len(stamps) - 1) // 2]
            assert list(s.views) == [c for c in self.cfg.cameras if c in s.views]
            assert s.missing == [c for c in self.cfg.cameras if c not in s.views]
            if now is not None:
                assert s.emitted_ns == now
            for cam, v in s.views.items():
                p_cam, p_stamp, uid = v.payload
                assert (p_cam, p_stamp) == (cam, v.stamp_ns) == self.sent[uid]  # no mix-up
                assert cam in self.with_info and v.info == f"info-{cam}"
                assert uid not in self.used_uids  # no view in two sets
                assert (cam, v.stamp_ns) not in self.used_views or self.sync.stats()["resets"]
                self.used_uids.add(uid)
                self.used_views.add((cam, v.stamp_ns))
            self.sets.append(s)
        self._check_invariants()

    def _check_invariants(self) -> None:
        stats = self.sync.stats()
        for cam, s in stats["cameras"].items():
            assert s["queued"] <= self.cfg.queue_size
            assert s["received"] == self.received[cam]
            assert s["received"] == s["used"] + sum(s["dropped"].values()) + s["queued"]
        assert sum(s["used"] for s in stats["cameras"].values()) == len(self.used_uids)
        assert 0 <= stats["max_spread_ns"] <= self.cfg.slop_ns


# ---------------------------------------------------------------------------- adversarial calls
STAMP_KINDS = ["grid", "grid", "grid", "duplicate", "back", "far_back", "far_forward", "zero",
               "negative", "huge"]
BAD_CALLS = ["unknown_camera", "float_stamp", "bool_stamp", "str_stamp", "none_arrival",
             "float_now"]


def _bad_call(sync: ApproximateTimeSynchronizer, kind: str, cam: str, now: int):
    """(expected error type, a call that must raise it) for one kind of invalid call."""
    return {
        "unknown_camera": (ValueError, lambda: sync.add_image("nope", 1, None, now)),
        "float_stamp": (TypeError, lambda: sync.add_image(cam, 1.5, None, now)),
        "bool_stamp": (TypeError, lambda: sync.add_image(cam, True, None, now)),
        "str_stamp": (TypeError, lambda: sync.add_image(cam, "1", None, now)),
        "none_arrival": (TypeError, lambda: sync.add_image(cam, 1, None, None)),
        "float_now": (TypeError, lambda: sync.poll(float(now))),
    }[kind]


@st.composite
def operations(draw):
    """A list of synchronizer calls: images, CameraInfo, polls, flushes, resets, bad calls."""
    ops = []
    for _ in range(draw(st.integers(1, 60))):
        kind = draw(st.sampled_from(["image"] * 4 + ["burst"] * 3 + ["info", "poll", "poll",
                                                                    "flush", "reset", "bad"]))
        if kind == "image":
            ops.append(("image", draw(st.integers(0, 3)), draw(st.sampled_from(STAMP_KINDS)),
                        draw(st.integers(-2, 12)), draw(st.integers(-300, 300))))
        elif kind == "burst":  # one frame of every camera, in a random order
            frame = draw(st.integers(-2, 12))
            for ci in draw(st.permutations(range(4))):
                ops.append(("image", ci, "grid", frame, draw(st.integers(-5, 30))))
        elif kind == "info":
            ops.append(("info", draw(st.integers(0, 3))))
        elif kind == "poll":
            ops.append(("poll", draw(st.integers(-500, 500))))
        elif kind == "flush":
            ops.append(("flush", draw(st.booleans())))
        elif kind == "reset":
            ops.append(("reset",))
        else:
            ops.append(("bad", draw(st.sampled_from(BAD_CALLS))))
    return ops


@settings(**SETTINGS)
@given(ops=operations(), n_cams=st.integers(1, 4), slop_ms=st.integers(0, 30),
       queue_size=st.integers(1, 6), timeout_ms=st.integers(1, 200),
       min_frac=st.floats(0.0, 1.0), stale_ms=st.sampled_from([None, 50, 1000]),
       jump_ms=st.sampled_from([100, 1000]), seed=st.integers(0, 2**31),
       info_first=st.booleans())
def test_any_call_sequence_keeps_the_invariants(ops, n_cams, slop_ms, queue_size, timeout_ms,
                                                min_frac, stale_ms, jump_ms, seed,
                                                info_first) -> None:
    rng = random.Random(seed)
    cams = [f"cam{i}" for i in range(n_cams)]
    cfg = SyncConfig(cameras=tuple(cams), slop_ns=slop_ms * MS, queue_size=queue_size,
                     timeout_ns=timeout_ms * MS, min_cameras=max(1, round(min_frac * n_cams)),
                     max_staleness_ns=None if stale_ms is None else stale_ms * MS,
                     backward_jump_ns=jump_ms * MS)
    c = Checked(cfg)
    now = 10**12  # the caller's clock; it may step back (sim time, a looped bag)
    last_stamp = {cam: 10**12 for cam in cams}
    for cam in cams if info_first else []:
        c.info(cam, now)
    for op in ops:
        if op[0] == "image":
            _, ci, kind, frame, delta_ms = op
            cam = cams[ci % n_cams]
            stamp = {"grid": 10**12 + frame * 50 * MS + rng.randint(-3, 3) * MS,
                     "duplicate": last_stamp[cam], "back": last_stamp[cam] - 120 * MS,
                     "far_back": last_stamp[cam] - 5 * 10**9,
                     "far_forward": last_stamp[cam] + 100 * 10**9, "zero": 0,
                     "negative": -7 * 10**9, "huge": 2**62}[kind]
            last_stamp[cam] = stamp
            now += delta_ms * MS
            c.image(cam, stamp, now)
        elif op[0] == "info":
            c.info(cams[op[1] % n_cams], now)
        elif op[0] == "poll":
            now += op[1] * MS
            c.poll(now)
        elif op[0] == "flush":
            c.flush(now if op[1] else None)
        elif op[0] == "reset":
            c.sync.reset("test reset")
            c._check_invariants()
        else:
            before = c.sync.stats()
            error, call = _bad_call(c.sync, op[1], cams[0], now)
            with pytest.raises(error, match="camera|nanoseconds"):
                call()
            assert c.sync.stats() == before  # a refused call changes nothing
    c.flush(None)
    stats = c.sync.stats()
    assert stats["sets_complete"] + stats["sets_partial"] == len(c.sets)


# ---------------------------------------------------------------------------- arrival orders
def _interleave(rng: random.Random, streams: dict[str, list]) -> list:
    """A random merge of per-camera lists that keeps each camera's own order."""
    pos = dict.fromkeys(streams, 0)
    out = []
    while True:
        left = [c for c in streams if pos[c] < len(streams[c])]
        if not left:
            return out
        cam = rng.choice(left)
        out.append(streams[cam][pos[cam]])
        pos[cam] += 1


@settings(**SETTINGS)
@given(seed=st.integers(0, 2**31), n_cams=st.integers(1, 6), n_frames=st.integers(1, 12),
       slop_ms=st.integers(2, 30), p_loss=st.sampled_from([0.0, 0.2, 0.5]))
def test_any_interleaving_of_in_order_cameras_gives_one_set_per_instant(
        seed, n_cams, n_frames, slop_ms, p_loss) -> None:
    """Cameras that each send in stamp order, interleaved at random, arriving at one instant
    with no timeout: exactly one set per instant any camera saw, holding exactly the views
    sent for it, in instant order (nothing is mixed up, nothing dropped)."""
    rng = random.Random(seed)
    cams = [f"cam{i}" for i in range(n_cams)]
    slop = slop_ms * MS
    spacing = 2 * slop + MS  # instants farther apart than a window plus jitter
    streams = {c: [] for c in cams}
    for k in range(n_frames):
        for c in cams:
            if rng.random() >= p_loss:
                stamp = 10**9 + k * spacing + rng.randint(0, slop // 2)
                streams[c].append((c, stamp, k))
    cfg = SyncConfig(cameras=tuple(cams), slop_ns=slop, queue_size=n_frames + 1,
                     timeout_ns=10**12, min_cameras=1)
    checked = Checked(cfg)
    for c in cams:
        checked.info(c, 0)
    frames_of_uid = {}
    for cam, stamp, k in _interleave(rng, streams):
        checked.image(cam, stamp, 0)
        frames_of_uid[checked.uid] = k
    checked.flush(0)
    seen = sorted({k for s in streams.values() for _, _, k in s})
    got = [{frames_of_uid[v.payload[2]] for v in s.views.values()} for s in checked.sets]
    assert got == [{k} for k in seen]
    for s, k in zip(checked.sets, seen):
        assert sorted(v.payload[:2] for v in s.views.values()) == sorted(
            (c, st_) for c in cams for c2, st_, k2 in streams[c] if k2 == k and c2 == c)
    assert sum(sum(s["dropped"].values()) for s in checked.sync.stats()["cameras"].values()) == 0


@settings(**SETTINGS)
@given(seed=st.integers(0, 2**31), n_cams=st.integers(2, 6), n_frames=st.integers(2, 15),
       p_dup=st.sampled_from([0.0, 0.3]), p_swap=st.sampled_from([0.0, 0.3]),
       fast=st.sampled_from([1, 2, 3]), max_delay_ms=st.integers(0, 250),
       timeout_ms=st.sampled_from([30, 150]), min_frac=st.floats(0.0, 1.0))
def test_late_reordered_duplicated_and_fast_cameras_never_mix_instants(
        seed, n_cams, n_frames, p_dup, p_swap, fast, max_delay_ms, timeout_ms,
        min_frac) -> None:
    """10 Hz frames, camera 0 at `fast` times the rate, duplicates, swapped neighbours and
    random network delays, polled every 10 ms: every set holds views of one instant only
    and no camera's image of one instant is used twice."""
    rng = random.Random(seed)
    cams = [f"cam{i}" for i in range(n_cams)]
    period = 100 * MS
    events = []  # (arrival, tie, cam, stamp, instant label)
    for ci, cam in enumerate(cams):
        rate = fast if ci == 0 else 1
        sends = []
        for j in range(n_frames * rate):
            stamp = 10**9 + j * period // rate + rng.randint(0, 4) * MS
            label = (j / rate)  # a frame instant, or one in between for the fast camera
            sends.append((stamp, label))
            if rng.random() < p_dup:
                sends.append((stamp, label))
        for i in range(len(sends) - 1):
            if rng.random() < p_swap:
                sends[i], sends[i + 1] = sends[i + 1], sends[i]
        for i, (stamp, label) in enumerate(sends):
            send_time = 10**9 + (i // (2 if p_dup else 1)) * period // rate
            arrival = max(stamp, send_time) + rng.randint(0, max_delay_ms) * MS
            events.append((arrival, rng.random(), cam, stamp, label))
    events.sort()
    cfg = SyncConfig(cameras=tuple(cams), slop_ns=20 * MS, queue_size=8,
                     timeout_ns=timeout_ms * MS, min_cameras=max(1, round(min_frac * n_cams)))
    checked = Checked(cfg)
    for cam in cams:
        checked.info(cam, 0)
    labels = {}
    next_poll = events[0][0]
    for arrival, _, cam, stamp, label in events:
        while next_poll <= arrival:
            checked.poll(next_poll)
            next_poll += 10 * MS
        checked.image(cam, stamp, arrival)
        labels[checked.uid] = label
    checked.flush(None)
    for s in checked.sets:
        instants = {labels[v.payload[2]] for v in s.views.values()}
        assert len(instants) == 1, instants
    stats = checked.sync.stats()
    sent_dups = len(events) - len({(e[2], e[3]) for e in events})
    assert sum(stats["dropped"].values()) >= sent_dups  # every extra copy was dropped
