"""Tests of depth_any_view.sync.approximate_time: scenarios and hypothesis properties."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from depth_any_view.sync import DROP_REASONS, ApproximateTimeSynchronizer, SyncConfig

MS = 1_000_000
CAMS6 = ("front", "front_left", "front_right", "back", "back_left", "back_right")


def make_sync(cameras=CAMS6, with_info=True, **kw):
    cfg = SyncConfig(cameras=tuple(cameras), **kw)
    sync = ApproximateTimeSynchronizer(cfg)
    if with_info:
        for c in cameras:
            sync.add_camera_info(c, 0, f"info-{c}")
    return sync


def check_accounting(sync, sets, sent):
    """received == used + dropped + queued per camera, and used matches the sets."""
    stats = sync.stats()
    for cam, s in stats["cameras"].items():
        assert s["received"] == sent.get(cam, 0)
        assert s["received"] == s["used"] + sum(s["dropped"].values()) + s["queued"]
        assert s["used"] == sum(cam in st_.views for st_ in sets)


def check_sets(cfg, sets, max_breaks=0):
    """Spread within slop, min_cameras, missing complement, stamp = lower median, order.

    Sets are in stamp order, except for at most `max_breaks` steps back (resets).
    """
    prev_newest = None
    breaks = 0
    for s in sets:
        stamps = sorted(v.stamp_ns for v in s.views.values())
        assert stamps[-1] - stamps[0] <= cfg.slop_ns
        assert s.spread_ns == stamps[-1] - stamps[0]
        assert len(s.views) >= cfg.min_cameras
        assert list(s.views) == [c for c in cfg.cameras if c in s.views]
        assert s.missing == [c for c in cfg.cameras if c not in s.views]
        assert s.stamp_ns == stamps[(len(stamps) - 1) // 2]
        for cam, v in s.views.items():
            assert v.payload[0] == cam and v.payload[1] == v.stamp_ns
        if prev_newest is not None and stamps[0] <= prev_newest:
            breaks += 1
        prev_newest = stamps[-1]
    assert breaks <= max_breaks


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="cameras is empty"):
        SyncConfig(cameras=())
    with pytest.raises(ValueError, match="duplicate"):
        SyncConfig(cameras=("a", "a"))
    with pytest.raises(ValueError, match="slop_ns"):
        SyncConfig(cameras=("a",), slop_ns=-1)
    with pytest.raises(ValueError, match="queue_size"):
        SyncConfig(cameras=("a",), queue_size=0)
    with pytest.raises(ValueError, match=r"min_cameras.*\[1, 2\]"):
        SyncConfig(cameras=("a", "b"), min_cameras=3)
    with pytest.raises(ValueError, match="max_staleness_ns"):
        SyncConfig(cameras=("a",), max_staleness_ns=0)
    with pytest.raises(ValueError, match="timeout_ns"):
        SyncConfig(cameras=("a",), timeout_ns=0.5)


def test_bad_inputs_raise_clear_errors():
    sync = make_sync(("a", "b"))
    with pytest.raises(ValueError, match="unknown camera 'c'.*'a', 'b'"):
        sync.add_image("c", 0, None, 0)
    with pytest.raises(TypeError, match="stamp_ns must be an integer"):
        sync.add_image("a", 1.5, None, 0)
    with pytest.raises(TypeError, match="arrival_ns"):
        sync.add_image("a", 1, None, None)


def test_perfect_stream_gives_complete_sets_at_the_last_arrival():
    sync = make_sync(slop_ns=10 * MS)
    rng = random.Random(0)
    sets, sent = [], {}
    for k in range(10):
        base = 1_000 * MS + k * 100 * MS
        stamps = {c: base + rng.randint(-3, 3) * MS for c in CAMS6}
        order = list(CAMS6)
        rng.shuffle(order)
        for i, c in enumerate(order):
            out = sync.add_image(c, stamps[c], (c, stamps[c]), base + 5 * MS + i)
            sent[c] = sent.get(c, 0) + 1
            # A set comes out exactly when its last view arrives, not before.
            assert len(out) == (1 if i == len(order) - 1 else 0)
            sets += out
    assert len(sets) == 10 and all(s.complete for s in sets)
    assert all(v.info == f"info-{c}" for s in sets for c, v in s.views.items())
    check_sets(sync.config, sets)
    check_accounting(sync, sets, sent)
    assert sum(sync.stats()["dropped"].values()) == 0
    assert sync.stats()["sets_complete"] == 10


def test_dead_camera_gives_partial_sets_after_timeout_only():
    sync = make_sync(slop_ns=10 * MS, timeout_ns=50 * MS, min_cameras=4)
    live = CAMS6[:-1]
    for c in live:
        assert sync.add_image(c, 100 * MS, (c, 100 * MS), 101 * MS) == []
    assert sync.poll(140 * MS) == []  # 39 ms after the first arrival: keep waiting
    out = sync.poll(151 * MS)
    assert len(out) == 1 and out[0].missing == ["back_right"] and len(out[0].views) == 5
    assert out[0].emitted_ns == 151 * MS
    assert sync.stats()["cameras"]["back_right"]["missing_in_sets"] == 1
    # Two dead cameras with min_cameras=5: never a set, every view counted as timed out.
    sync2 = make_sync(slop_ns=10 * MS, timeout_ns=50 * MS, min_cameras=5)
    for c in CAMS6[:4]:
        sync2.add_image(c, 100 * MS, (c, 100 * MS), 101 * MS)
    assert sync2.poll(200 * MS) == []
    assert sync2.stats()["dropped"]["timed_out"] == 4
    check_accounting(sync2, [], dict.fromkeys(CAMS6[:4], 1))


def test_camera_that_stops_and_returns():
    sync = make_sync(("a", "b", "c"), slop_ns=5 * MS, timeout_ns=30 * MS, min_cameras=2)
    sets, sent = [], {}
    for k in range(12):
        t = k * 100 * MS
        present = ("a", "b") if 3 <= k < 7 else ("a", "b", "c")
        for c in present:
            sets += sync.add_image(c, t, (c, t), t + MS)
            sent[c] = sent.get(c, 0) + 1
        sets += sync.poll(t + 50 * MS)
    assert [s.missing for s in sets] == [[]] * 3 + [["c"]] * 4 + [[]] * 5
    check_sets(sync.config, sets)
    check_accounting(sync, sets, sent)


def test_lost_frame_goes_out_as_soon_as_every_camera_moved_on():
    sync = make_sync(("a", "b", "c"), slop_ns=5 * MS, timeout_ns=10_000 * MS, min_cameras=2)
    sync.add_image("a", 0, ("a", 0), 1)
    sync.add_image("b", 0, ("b", 0), 2)  # c's frame at 0 is lost
    assert sync.add_image("a", 100 * MS, ("a", 100 * MS), 3) == []
    assert sync.add_image("b", 100 * MS, ("b", 100 * MS), 4) == []
    out = sync.add_image("c", 100 * MS, ("c", 100 * MS), 5)  # long before the timeout
    assert [s.missing for s in out] == [["c"], []]
    assert [s.stamp_ns for s in out] == [0, 100 * MS]


def test_complete_set_does_not_wait_for_an_undecided_older_view():
    sync = make_sync(("a", "b", "c"), slop_ns=20 * MS, timeout_ns=10_000 * MS)
    for i, (cam, t) in enumerate([("a", 0), ("b", 15), ("a", 25)]):
        assert sync.add_image(cam, t * MS, (cam, t * MS), i) == []
    out = sync.add_image("c", 30 * MS, ("c", 30 * MS), 3)
    assert len(out) == 1 and out[0].complete
    assert {c: v.stamp_ns // MS for c, v in out[0].views.items()} == {"a": 25, "b": 15, "c": 30}
    assert out[0].stamp_ns == 25 * MS  # lower median of 15, 25, 30
    assert sync.stats()["cameras"]["a"]["dropped"]["no_partner"] == 1


def test_camera_at_twice_the_rate_pairs_with_the_nearest_view():
    sync = make_sync(("a", "b", "fast"), slop_ns=15 * MS, min_cameras=3)
    sets, sent = [], {}
    events = []
    for k in range(10):
        t = k * 100 * MS
        events += [("a", t + 2 * MS), ("b", t - 1 * MS)]
    events += [("fast", k * 50 * MS + 3 * MS) for k in range(20)]
    events.sort(key=lambda e: e[1] + 7 * MS)
    for i, (c, s) in enumerate(events):
        sets += sync.add_image(c, s, (c, s), s + 7 * MS + i)
        sent[c] = sent.get(c, 0) + 1
    sets += sync.flush()
    assert len(sets) == 10 and all(s.complete for s in sets)
    assert all(s.views["fast"].stamp_ns % (100 * MS) == 3 * MS for s in sets)
    check_sets(sync.config, sets)
    check_accounting(sync, sets, sent)
    # The odd fast views: 9 dropped once a and b moved on, the last one by flush().
    dropped = sync.stats()["cameras"]["fast"]["dropped"]
    assert dropped["no_partner"] == 9 and dropped["flushed"] == 1


def test_duplicates_late_and_overflow_are_counted():
    sync = make_sync(("a", "b"), slop_ns=5 * MS, queue_size=3, timeout_ns=10**12)
    sync.add_image("a", 10 * MS, ("a", 10 * MS), 0)
    sync.add_image("a", 10 * MS, ("a", 10 * MS), 1)  # duplicate of a queued view
    out = sync.add_image("b", 11 * MS, ("b", 11 * MS), 2)
    assert len(out) == 1
    sync.add_image("b", 11 * MS, ("b", 11 * MS), 3)  # duplicate of a used view
    sync.add_image("a", 9 * MS, ("a", 9 * MS), 4)  # older than the emitted set: late
    for k in range(5):  # b is silent: a's queue overflows
        sync.add_image("a", (100 + k) * MS * 10, ("a", (100 + k) * MS * 10), 5 + k)
    st_ = sync.stats()["cameras"]
    assert st_["a"]["dropped"]["duplicate"] == 1 and st_["b"]["dropped"]["duplicate"] == 1
    assert st_["a"]["dropped"]["late"] == 1
    assert st_["a"]["dropped"]["queue_overflow"] == 2 and st_["a"]["queued"] == 3
    check_accounting(sync, out, {"a": 8, "b": 2})


def test_views_without_camera_info_wait_and_are_counted():
    sync = make_sync(("a", "b"), with_info=False, slop_ns=5 * MS, timeout_ns=50 * MS)
    sync.add_camera_info("a", 0, "info-a")
    assert sync.cameras_without_info() == ["b"]
    # b's image arrives before its CameraInfo: held, then used once the info arrives.
    assert sync.add_image("b", 0, ("b", 0), 0) == []
    assert sync.add_image("a", 0, ("a", 0), 1) == []
    sync.add_camera_info("b", 0, "info-b")
    out = sync.poll(2)
    assert len(out) == 1 and out[0].complete and out[0].views["b"].info == "info-b"
    # A camera that never sends CameraInfo: partial sets after the timeout, its views
    # counted as no_camera_info.
    sync2 = make_sync(("a", "b"), with_info=False, slop_ns=5 * MS, timeout_ns=50 * MS)
    sync2.add_camera_info("a", 0, "info-a")
    sets = []
    for k in range(3):
        t = k * 100 * MS
        sets += sync2.add_image("b", t, ("b", t), t)
        sets += sync2.add_image("a", t, ("a", t), t)
        sets += sync2.poll(t + 60 * MS)
    sets += sync2.flush()
    assert [s.missing for s in sets] == [["b"]] * 3
    assert sync2.stats()["cameras"]["b"]["dropped"]["no_camera_info"] == 3
    check_accounting(sync2, sets, {"a": 3, "b": 3})


def test_looped_bag_resets_and_reports_once():
    sync = make_sync(("a", "b"), slop_ns=5 * MS, backward_jump_ns=500 * MS)
    sets = []
    for loop in range(2):
        for k in range(10):
            t = 10_000 * MS + k * 100 * MS
            arrival = loop * 10**10 + t
            sets += sync.add_image("a", t, ("a", t), arrival)
            sets += sync.add_image("b", t, ("b", t), arrival + 1)
        if loop == 0:
            assert sync.take_reset() is None
    assert len(sets) == 20 and all(s.complete for s in sets)
    assert sync.stats()["cameras"]["a"]["dropped"]["reset"] == 0  # nothing was queued
    event = sync.take_reset()
    assert event is not None and event.camera == "a" and "jumped back 0.900 s" in event.reason
    assert event.previous_stamp_ns == 10_900 * MS and event.stamp_ns == 10_000 * MS
    assert sync.take_reset() is None
    assert sync.stats()["resets"] == 1
    # A small step back (under the threshold) is only a late view, not a reset.
    sync.add_image("a", 10_800 * MS, ("a", 0), 0)
    assert sync.stats()["resets"] == 1 and sync.stats()["dropped"]["late"] == 1


def test_reset_drops_queued_views_and_keeps_camera_info():
    sync = make_sync(("a", "b"), slop_ns=5 * MS)
    sync.add_image("a", 0, ("a", 0), 0)
    sync.reset("odometry reset")
    assert sync.stats()["cameras"]["a"]["dropped"]["reset"] == 1
    assert sync.take_reset().reason == "odometry reset"
    sync.add_image("a", 10, ("a", 10), 1)
    assert len(sync.add_image("b", 10, ("b", 10), 2)) == 1


def test_stale_views_are_dropped():
    sync = make_sync(("a", "b"), slop_ns=5 * MS, max_staleness_ns=200 * MS,
                     timeout_ns=10**12)
    sync.add_image("a", 0, ("a", 0), 300 * MS)  # already 300 ms old on arrival
    sync.add_image("a", 400 * MS, ("a", 400 * MS), 410 * MS)
    assert sync.poll(700 * MS) == []  # 300 ms old by now
    st_ = sync.stats()["cameras"]["a"]
    assert st_["dropped"]["stale"] == 2 and st_["queued"] == 0


def feed(cfg, events, poll_every_ns):
    """Run a synchronizer over (arrival_ns, kind, camera, stamp_ns, uid) events."""
    sync = ApproximateTimeSynchronizer(cfg)
    sets, sent = [], {}
    next_poll = None
    for arrival, kind, cam, stamp, uid in events:
        if next_poll is None:
            next_poll = arrival
        while next_poll <= arrival:
            sets += sync.poll(next_poll)
            next_poll += poll_every_ns
        if kind == "info":
            sync.add_camera_info(cam, stamp, f"info-{cam}")
        else:
            sets += sync.add_image(cam, stamp, (cam, stamp, uid), arrival)
            sent[cam] = sent.get(cam, 0) + 1
    sets += sync.flush()
    return sync, sets, sent


def random_stream(seed, n_cams, n_frames, period_ms, jitter_ms, p_drop, p_dup,
                  max_delay_ms, fast_cam, dead_range, info_late, loop=False):
    """Events of a random multi-camera stream, sorted by arrival (ties by uid).

    With `loop`, the stream is played a second time with the same stamps (a looped bag).
    """
    rng = random.Random(seed)
    cams = [f"c{i}" for i in range(n_cams)]
    events = []
    uid = 0
    for ci, cam in enumerate(cams):
        info_time = rng.randint(0, 3 * period_ms) * MS if info_late else 0
        events.append((info_time, "info", cam, 0, -1))
        rate = 2 if (fast_cam and ci == 0) else 1
        for k in range(n_frames * rate):
            stamp = 10**9 + k * period_ms * MS // rate + rng.randint(-jitter_ms, jitter_ms) * MS
            if rng.random() < p_drop:
                continue
            if dead_range and ci == n_cams - 1 and dead_range[0] <= k // rate < dead_range[1]:
                continue
            copies = 2 if rng.random() < p_dup else 1
            for _ in range(copies):
                arrival = stamp + rng.randint(0, max_delay_ms) * MS
                events.append((arrival, "image", cam, stamp, uid))
                uid += 1
    events.sort(key=lambda e: (e[0], e[4]))
    if loop:
        shift = events[-1][0] + 10**9
        events += [(a + shift, kind, c, s, u + uid if u >= 0 else u)
                   for a, kind, c, s, u in events if kind == "image"]
    return cams, events


stream_params = dict(
    seed=st.integers(0, 10**6), n_cams=st.integers(1, 5), n_frames=st.integers(3, 15),
    period_ms=st.sampled_from([33, 50, 100]), jitter_ms=st.integers(0, 20),
    p_drop=st.sampled_from([0.0, 0.1, 0.3]), p_dup=st.sampled_from([0.0, 0.1]),
    max_delay_ms=st.integers(0, 150), fast_cam=st.booleans(),
    dead=st.sampled_from([None, (2, 6), (0, 100)]), info_late=st.booleans(),
    slop_ms=st.integers(0, 30), queue_size=st.integers(1, 8), timeout_ms=st.integers(1, 200),
    min_frac=st.floats(0.0, 1.0), stale_ms=st.sampled_from([None, 100, 300]),
    loop=st.booleans(),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**stream_params)
def test_property_invariants_and_determinism(seed, n_cams, n_frames, period_ms, jitter_ms,
                                             p_drop, p_dup, max_delay_ms, fast_cam, dead,
                                             info_late, slop_ms, queue_size, timeout_ms,
                                             min_frac, stale_ms, loop):
    cams, events = random_stream(seed, n_cams, n_frames, period_ms, jitter_ms, p_drop, p_dup,
                                 max_delay_ms, fast_cam, dead, info_late, loop)
    cfg = SyncConfig(cameras=tuple(cams), slop_ns=slop_ms * MS, queue_size=queue_size,
                     timeout_ns=timeout_ms * MS, min_cameras=max(1, round(min_frac * n_cams)),
                     max_staleness_ns=None if stale_ms is None else stale_ms * MS,
                     backward_jump_ns=200 * MS)  # above the largest reordering (150 + 40 ms)
    sync, sets, sent = feed(cfg, events, poll_every_ns=10 * MS)
    resets = sync.stats()["resets"]
    stamps = {c: [e[3] for e in events if e[1] == "image" and e[2] == c] for c in sent}
    spans = [max(v) - min(v) for v in stamps.values()]
    if loop and max(spans, default=0) > 390 * MS:  # beyond jump + reordering: must reset
        assert resets >= 1
    assert resets <= (n_cams if loop else 0)
    check_sets(cfg, sets, max_breaks=resets)
    # No view is in two sets; each used view is one that was sent.
    uids = [v.payload[2] for s in sets for v in s.views.values()]
    assert len(uids) == len(set(uids))
    check_accounting(sync, sets, sent)
    assert all(s["queued"] == 0 for s in sync.stats()["cameras"].values())
    assert set(sync.stats()["dropped"]) == set(DROP_REASONS)
    # Deterministic: the same calls give the same sets and counters.
    sync2, sets2, _ = feed(cfg, events, poll_every_ns=10 * MS)
    key = [(s.stamp_ns, s.missing, [(c, v.payload) for c, v in s.views.items()])
           for s in sets]
    key2 = [(s.stamp_ns, s.missing, [(c, v.payload) for c, v in s.views.items()])
            for s in sets2]
    assert key == key2 and sync.stats() == sync2.stats()


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 10**6), n_cams=st.integers(1, 6), n_frames=st.integers(1, 12),
       jitter_ms=st.integers(0, 10), max_delay_ms=st.integers(0, 70))
def test_property_clean_jittered_stream_is_fully_matched(seed, n_cams, n_frames, jitter_ms,
                                                         max_delay_ms):
    """Jitter <= slop/2, no loss, delay + 2 * jitter under the timeout: one complete set
    per frame, whatever the arrival order across cameras."""
    cams, events = random_stream(seed, n_cams, n_frames, 100, jitter_ms, 0.0, 0.0,
                                 max_delay_ms, False, None, False)
    cfg = SyncConfig(cameras=tuple(cams), slop_ns=20 * MS, queue_size=10,
                     timeout_ns=100 * MS, min_cameras=1)
    sync, sets, _ = feed(cfg, events, poll_every_ns=5 * MS)
    assert len(sets) == n_frames and all(s.complete for s in sets)
    assert sum(sync.stats()["dropped"].values()) == 0


# ---------------------------------------------------------------------------- issue 24
def test_each_view_gets_the_camera_info_of_its_size_even_when_it_arrives_after_it():
    """A resolution change: the image of the new size comes before its CameraInfo. The set
    waits for it (instead of pairing the image with the old size), and a switch back to
    the old size takes the CameraInfo with the image's stamp, else the newest that fits."""
    cams = ("a", "b")
    sync = make_sync(cams, with_info=False)
    for c in cams:
        sync.add_camera_info(c, 0, f"{c}-256", key=(256, 256))
    assert len(sync.add_image("a", 0, "a0", 0, key=(256, 256))) == 0
    (s0,) = sync.add_image("b", 0, "b0", 0, key=(256, 256))
    assert {c: v.info for c, v in s0.views.items()} == {"a": "a-256", "b": "b-256"}
    t = 100 * MS  # every camera switches to 257x131; b's CameraInfo comes after its image
    sync.add_camera_info("a", t, "a-257", key=(257, 131))
    assert sync.add_image("a", t, "a1", t, key=(257, 131)) == []
    assert sync.add_image("b", t, "b1", t, key=(257, 131)) == []  # waits for its info
    sync.add_camera_info("b", t, "b-257", key=(257, 131))
    (s1,) = sync.poll(t + 1 * MS)
    assert s1.complete and {c: v.info for c, v in s1.views.items()} == {
        "a": "a-257", "b": "b-257"}
    t2 = 200 * MS  # and back: a's CameraInfo of this stamp, b's newest of 256x256
    sync.add_camera_info("a", t2, "a-256-new", key=(256, 256))
    sync.add_image("a", t2, "a2", t2, key=(256, 256))
    (s2,) = sync.add_image("b", t2, "b2", t2, key=(256, 256))
    assert {c: v.info for c, v in s2.views.items()} == {"a": "a-256-new", "b": "b-256"}
    check_accounting(sync, [s0, s1, s2], {"a": 3, "b": 3})


def test_a_view_no_camera_info_fits_goes_with_the_latest_once_its_window_times_out():
    """No CameraInfo of the image's size ever comes: after the timeout the set goes out
    with the camera's latest CameraInfo, so the caller can name the mismatch."""
    sync = make_sync(("a", "b"), with_info=False, timeout_ns=100 * MS)
    sync.add_camera_info("a", 0, "a-64", key=(64, 48))
    sync.add_camera_info("b", 0, "b-32", key=(32, 48))
    sync.add_image("a", 0, "a0", 0, key=(64, 48))
    assert sync.add_image("b", 0, "b0", 0, key=(64, 48)) == []
    assert sync.poll(50 * MS) == []
    (s,) = sync.poll(100 * MS)
    assert s.complete and s.views["b"].info == "b-32"


@pytest.mark.parametrize("skew_ms", [30, -30])
def test_a_camera_with_a_constant_skew_beyond_the_slop_is_out_of_sync(skew_ms):
    """One camera stamps 30 ms off the others (slop 20 ms, 10 Hz): it is never matched,
    and `out_of_sync` names it with its offset; the in-sync cameras are not named."""
    cams = ("a", "b", "c")
    sync = make_sync(cams, slop_ns=20 * MS, timeout_ns=150 * MS, min_cameras=2)
    sets = []
    for i in range(12):
        t = (1000 + 100 * i) * MS
        for c in cams:
            stamp = t + (skew_ms * MS if c == "c" else 0)
            sets += sync.add_image(c, stamp, c, t + 5 * MS)
        sets += sync.poll(t + 60 * MS)
    assert len(sets) >= 10 and all("c" not in s.views for s in sets)
    assert sync.out_of_sync() == {"c": skew_ms * MS}
    assert sync.stats()["out_of_sync"] == {"c": skew_ms * MS}


def test_a_stopped_camera_or_one_at_half_rate_is_not_out_of_sync():
    cams = ("a", "b", "c", "d")
    sync = make_sync(cams, slop_ns=20 * MS, timeout_ns=150 * MS, min_cameras=2)
    for i in range(16):
        t = (1000 + 100 * i) * MS
        for c in cams:
            if (c == "c" and i >= 4) or (c == "d" and i % 2):  # c stops, d runs at 5 Hz
                continue
            sync.add_image(c, t, c, t + 5 * MS)
        sync.poll(t + 60 * MS)
    assert sync.out_of_sync() == {}


def test_a_camera_info_of_the_images_own_stamp_but_another_size_is_not_masked():
    """A driver publishing a CameraInfo of the wrong size with each image: the view gets
    that CameraInfo (the caller reports the mismatch), not an older one that fits."""
    sync = make_sync(("a",), with_info=False)
    sync.add_camera_info("a", 0, "a-64", key=(64, 48))
    (s0,) = sync.add_image("a", 0, "a0", 0, key=(64, 48))
    sync.add_camera_info("a", 100 * MS, "a-32", key=(32, 48))
    (s1,) = sync.add_image("a", 100 * MS, "a1", 100 * MS, key=(64, 48))
    assert (s0.views["a"].info, s1.views["a"].info) == ("a-64", "a-32")
