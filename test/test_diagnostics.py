"""Diagnostics of the node: rates, latency percentiles, statuses and their message."""

from __future__ import annotations

import math
import threading

import pytest

from depth_any_view.ros.diagnostics import (
    ERROR,
    OK,
    STALE,
    WARN,
    NodeDiagnostics,
    RateMeter,
    percentiles,
    to_diagnostic_array,
)

CAMS = ["front", "back"]


def _sync_stats(has_info: bool = True) -> dict:
    cams = {c: {"has_camera_info": has_info} for c in CAMS}
    return {"cameras": cams, "dropped": {"late": 2, "no_partner": 1}, "sets_complete": 5,
            "sets_partial": 1, "resets": 0, "last_reset": None}


def test_rate_meter_counts_arrivals_in_the_window() -> None:
    m = RateMeter(window_s=2.0)
    for i in range(21):
        m.tick(10.0 + 0.1 * i)  # 10 Hz for 2 s
    assert m.rate(12.0) == pytest.approx(10.0, rel=0.06)
    assert m.rate(20.0) == 0.0  # everything left the window
    assert m.count == 21 and m.last == pytest.approx(12.0)


def test_percentiles() -> None:
    assert percentiles(range(101)) == [50.0, 95.0]
    assert all(math.isnan(v) for v in percentiles([]))


def test_statuses_ok_when_all_cameras_publish() -> None:
    d = NodeDiagnostics(CAMS, input_timeout=1.0)
    for i in range(11):
        for c in CAMS:
            d.image_received(c, t=100.0 + 0.1 * i)
    d.set_processed([], 0.05, 0.08, {"frame": "odom", "known_voxels": 12})
    cams, sync, inf, occ = d.statuses(sync_stats=_sync_stats(), engine={"device": "cpu"},
                                      now=101.05)
    assert cams.level == OK and cams.values["front rate (Hz)"] == "10.00"
    assert sync.level == OK and sync.values["images dropped: late"] == "2"
    assert inf.level == OK and inf.values["device"] == "cpu"
    assert float(inf.values["inference p50 (s)"]) == pytest.approx(0.05)
    assert occ.level == OK and "odom" in occ.message


def test_stamps_from_another_clock_are_not_a_latency() -> None:
    d = NodeDiagnostics(CAMS)
    d.set_processed([], 0.05, 0.08)
    d.set_processed([], 0.05, 9.6e7)  # a bag's stamps against the wall clock, no /clock
    _, _, inf, _ = d.statuses(sync_stats=_sync_stats(), engine={"device": "cpu"})
    assert inf.level == WARN and "use_sim_time:=true" in inf.message
    assert float(inf.values["end-to-end p95 (s)"]) == pytest.approx(0.08)  # not polluted
    d.set_processed([], 0.05, 0.09)  # the clocks agree again
    _, _, inf, _ = d.statuses(sync_stats=_sync_stats(), engine={"device": "cpu"})
    assert inf.level == OK and "end-to-end" not in inf.values


def test_statuses_warn_and_error() -> None:
    d = NodeDiagnostics(CAMS, input_timeout=0.5)
    d.image_received("front", t=100.0)
    d.image_received("back", t=98.0)  # silent for 2 s at now=100
    d.bad_input("front", "image", "camera 'front' image: Image field 'step' ...")
    d.set_dropped("inference_error", "InferenceError: out of memory")
    d.odometry_note("no odometry on /odom")
    cams, sync, inf, occ = d.statuses(sync_stats=_sync_stats(has_info=False), now=100.1)
    assert cams.level == WARN and cams.message == "missing cameras: back"
    assert cams.values["front bad image"] == "1"
    assert sync.level == WARN and "front, back" in sync.message
    assert inf.level == ERROR and "out of memory" in inf.message
    assert occ.level == WARN and occ.message == "no odometry on /odom"
    assert d.statuses(now=100.1)[1].level == STALE
    d.set_processed(["back"], 0.1, 0.2)
    assert d.statuses(now=100.1)[2].level == OK  # a success clears the error
    assert d.missing_cameras(now=100.1) == ["back"]


def test_diagnostics_are_thread_safe() -> None:
    d = NodeDiagnostics(CAMS)

    def writer() -> None:
        for _ in range(2000):
            d.image_received("front")
            d.set_processed([], 0.01, 0.02)

    threads = [threading.Thread(target=writer) for _ in range(3)]
    for t in threads:
        t.start()
    for _ in range(50):
        d.statuses()
    for t in threads:
        t.join()
    assert d.processed == 6000


def test_diagnostic_array_message() -> None:
    from builtin_interfaces.msg import Time

    d = NodeDiagnostics(CAMS)
    msg = to_diagnostic_array(d.statuses(sync_stats=_sync_stats()), Time(sec=3), "depth_any_view")
    assert msg.header.stamp.sec == 3
    assert [s.name for s in msg.status] == ["depth_any_view: cameras",
                                            "depth_any_view: synchronizer",
                                            "depth_any_view: inference",
                                            "depth_any_view: occupancy"]
    assert all(s.hardware_id == "depth_any_view" for s in msg.status)
    assert msg.status[1].level == bytes([OK])
    assert {kv.key for kv in msg.status[1].values} >= {"sets complete", "sets partial"}


# ---------------------------------------------------------------------------- issue 24
TOPICS = {c: f"/cameras/{c}/image_raw" for c in CAMS}


def test_no_images_at_all_is_not_called_waiting_for_camera_info() -> None:
    d = NodeDiagnostics(CAMS, image_topics=TOPICS, camera_qos="sensor_data")
    d.image_received("front", t=100.0)  # front sends images without CameraInfo, back nothing
    sync = d.statuses(sync_stats=_sync_stats(has_info=False), now=100.1)[1]
    assert sync.level == WARN and sync.message == (
        "no images from: back (no image ever received on /cameras/back/image_raw: check the "
        "topic name (ros2 topic list) and that the publisher's QoS is compatible with "
        "camera_qos 'sensor_data'); waiting for CameraInfo of: front")


def test_a_camera_out_of_sync_is_named_in_the_status_and_logged_once() -> None:
    d = NodeDiagnostics(CAMS, sync_slop=0.02)
    skewed = {**_sync_stats(), "out_of_sync": {"back": 30_000_000}}
    sync = d.statuses(sync_stats=skewed)[1]
    assert sync.level == WARN and sync.message.startswith(
        "camera 'back' is out of sync: its stamps are +30 ms from the other cameras' "
        "(sync_slop 20 ms)")
    assert sync.values["back out of sync (ms)"] == "+30.0"
    assert d.events(sync_stats=skewed) == [(WARN, sync.message)]
    assert d.events(sync_stats=skewed) == []  # once
    assert d.events(sync_stats=_sync_stats()) == [
        (OK, "camera 'back' is in sync with the other cameras again")]


def test_a_camera_going_silent_and_returning_is_logged_once_each() -> None:
    d = NodeDiagnostics(CAMS, input_timeout=0.5, image_topics=TOPICS, startup_grace=5.0)
    start = d._started
    for c in CAMS:
        d.image_received(c, t=start + 1.0)
    assert d.events(now=start + 1.2) == []
    d.image_received("front", t=start + 1.6)
    (event,) = d.events(now=start + 1.7)  # back: silent for 0.7 s
    assert event == (WARN, "camera 'back': no images on /cameras/back/image_raw for 0.7 s "
                           "(input_timeout 0.5 s): the camera stopped, or its messages are "
                           "lost on the way")
    d.image_received("front", t=start + 2.0)
    assert d.events(now=start + 2.1) == []  # said once
    for c in CAMS:
        d.image_received(c, t=start + 3.0)
    assert d.events(now=start + 3.1) == [(OK, "camera 'back': images arrive again on "
                                              "/cameras/back/image_raw")]


def test_one_lost_image_of_a_slow_camera_is_not_a_silence() -> None:
    """A 1.5 Hz camera that loses one image (1.33 s without one, over input_timeout 1 s)
    logs nothing; three of its periods without an image are a silence, logged once."""
    d = NodeDiagnostics(CAMS, input_timeout=1.0, image_topics=TOPICS, startup_grace=5.0)
    start = d._started
    period = 1.0 / 1.5
    for i in range(6):
        for c in CAMS:
            d.image_received(c, t=start + i * period)
    last = start + 5 * period
    d.image_received("front", t=last + period)
    assert d.events(now=last + 2 * period - 0.01) == []  # one image of 'back' lost
    d.image_received("back", t=last + 2 * period)
    assert d.events(now=last + 2 * period + 0.01) == []  # nothing to take back either
    for k in range(3, 10):
        d.image_received("front", t=last + k * period)
    # three periods of its measured rate (1.1-1.5 Hz with the lost image) without 'back'
    (event,) = d.events(now=last + 9.1 * period)
    assert event[0] == WARN and event[1].startswith("camera 'back': no images on")


def test_a_camera_that_never_sends_is_logged_after_the_startup_grace() -> None:
    d = NodeDiagnostics(CAMS, image_topics=TOPICS, camera_qos="reliable", startup_grace=5.0)
    start = d._started
    d.image_received("front", t=start + 0.5)
    assert all(c != "back" for c in (m for _, m in d.events(now=start + 4.0)))
    events = [m for _, m in d.events(now=start + 5.5)]
    assert [m for m in events if m.startswith("camera 'back'")] == [
        "camera 'back': no image ever received on /cameras/back/image_raw: check the topic "
        "name (ros2 topic list) and that the publisher's QoS is compatible with camera_qos "
        "'reliable' (for 6 s since start)"]


def test_inference_warns_after_a_stall_and_when_most_sets_are_superseded() -> None:
    d = NodeDiagnostics(CAMS, inference_timeout=5.0)
    d.set_processed([], 0.05, 0.08, t=100.0)
    assert d.statuses(now=104.0)[2].level == OK
    inf = d.statuses(now=110.0)[2]
    assert inf.level == WARN and inf.message.startswith(
        "no set processed for 10.0 s on ? (inference_timeout 5 s)")
    for i in range(30):  # 9 of every 10 sets replaced by a newer one before the worker ran
        if i % 10 == 0:
            d.set_processed([], 0.05, 0.08, t=110.0 + i * 0.1)
        else:
            d.set_dropped("superseded")
    inf = d.statuses(now=113.0)[2]
    assert inf.level == WARN and inf.message.startswith(
        "87 % of the last 31 sets were superseded (not processed)"), inf.message
    for _ in range(40):
        d.set_processed([], 0.05, 0.08, t=113.0)
    assert d.statuses(now=113.1)[2].level == OK


def _feed(d: NodeDiagnostics, rates_hz: dict[str, float], t0: float, t1: float) -> None:
    """Images of each camera at its rate (Hz) in [t0, t1) (monotonic seconds)."""
    for camera, hz in rates_hz.items():
        n = int(round((t1 - t0) * hz))
        for i in range(n):
            d.image_received(camera, t=t0 + i / hz)


def test_a_camera_far_below_the_others_rate_is_logged_once_and_its_recovery_once() -> None:
    cams = ["front", "left", "back"]
    d = NodeDiagnostics(cams, rate_window=5.0, input_timeout=1.0, startup_grace=1.0,
                        image_topics={c: f"/cameras/{c}/image_raw" for c in cams})
    start = d._started
    _feed(d, {"front": 10.0, "left": 10.0, "back": 2.0}, start, start + 4.0)
    assert d.events(now=start + 4.0) == []  # back has not sent for a whole window yet
    _feed(d, {"front": 10.0, "left": 10.0, "back": 2.0}, start + 4.0, start + 8.0)
    (event,) = d.events(now=start + 8.0)
    assert event == (WARN, "camera 'back': images arrive at 2.00 Hz on /cameras/back/image_raw, "
                           "far below the other cameras' 10.00 Hz (median): most of its images "
                           "are lost on the way (on one machine: its driver needs a Fast DDS "
                           "profile with a large shared-memory segment, see "
                           "docs/TROUBLESHOOTING.md) or the camera runs slower; sets without "
                           "it are partial")
    cameras = d.statuses(now=start + 8.0)[0]
    assert cameras.level == WARN and cameras.message == (
        "far below the other cameras' rate (images lost on the way?): back 2.00 Hz (others "
        "10.00 Hz)")
    _feed(d, {"front": 10.0, "left": 10.0, "back": 2.0}, start + 8.0, start + 12.0)
    assert d.events(now=start + 12.0) == []  # said once
    _feed(d, {"front": 10.0, "left": 10.0, "back": 6.0}, start + 12.0, start + 17.0)
    assert d.events(now=start + 17.0) == []  # 6 Hz: not yet in line (below 80 %)
    _feed(d, {"front": 10.0, "left": 10.0, "back": 9.0}, start + 17.0, start + 22.0)
    assert d.events(now=start + 22.0) == [
        (OK, "camera 'back': images arrive at 9.00 Hz again, in line with the other cameras' "
             "10.00 Hz")]
    assert d.statuses(now=start + 22.0)[0].level == OK


def test_a_camera_somewhat_slower_than_the_others_or_alone_is_not_called_slow() -> None:
    d = NodeDiagnostics(["front", "back"], rate_window=5.0, startup_grace=1.0)
    start = d._started
    _feed(d, {"front": 10.0, "back": 6.0}, start, start + 12.0)
    assert d.events(now=start + 12.0) == []
    single = NodeDiagnostics(["front"], rate_window=5.0, startup_grace=1.0)
    _feed(single, {"front": 1.0}, single._started, single._started + 12.0)
    assert single.events(now=single._started + 12.0) == []
