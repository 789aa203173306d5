"""`depth-any-view replay` (ros/replay.py): a tiny synthetic bag played over DDS.

The player runs as a separate process (`python -m depth_any_view.cli replay ...`) on this
test's private ROS_DOMAIN_ID, localhost only (test/conftest.py); the test process
subscribes to every topic the bag holds and to /clock. Checked: every replayable topic
arrives with its type and the recorded header stamps (every image message), /clock starts
at the bag's start and advances monotonically to its last record time, topics without an
installed message package are named on stderr, --loop repeats with the clock jumping back
and stops cleanly on Ctrl-C, and a missing or corrupt bag exits non-zero with one line.
The schedule and QoS choices are also tested on their own, without DDS.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rclpy.qos import DurabilityPolicy, ReliabilityPolicy
from rosbags.interfaces import (
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)

from depth_any_view.bag.reader import BagReader
from depth_any_view.ros.replay import Schedule, message_class, topic_qos

ROOT = Path(__file__).resolve().parent.parent
FRAMES = 3
RATE = 2.0
DELAY_S = 0.5  # the player's wait after its publishers matched the test's subscriptions
WAIT_S = 20.0  # at most this long for discovery (slow on a loaded 2-core machine)
CHILD_TIMEOUT_S = 30.0


# ---------------------------------------------------------------------------- pure parts
def test_schedule_is_anchored_to_the_start_and_does_not_drift() -> None:
    s = Schedule(bag_start_ns=1_000, rate=2.0, start_mono_ns=50_000)
    assert s.due_ns(1_000) == 50_000
    assert s.due_ns(1_000 + 2_000_000_000) == 50_000 + 1_000_000_000  # 2 s of bag in 1 s
    assert s.bag_time_ns(50_000 + 500) == 1_000 + 1_000
    # 10^6 messages 0.1 s apart: the last one is due exactly 50 000 s later (no sum of deltas)
    assert s.due_ns(1_000 + 10**6 * 100_000_000) == 50_000 + 10**6 * 50_000_000
    s.restart(duration_ns=4_000, now_ns=0)  # on time: the next pass follows the last
    assert s.start_mono_ns == 52_000
    s.restart(duration_ns=4_000, now_ns=10**9)  # fell behind: no burst, start from now
    assert s.start_mono_ns == 10**9
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="rate"):
            Schedule(0, bad, 0)


def _qos(reliability: QosReliability, durability: QosDurability, depth: int,
         history: QosHistory = QosHistory.KEEP_LAST) -> Qos:
    """A rosbags offered-QoS record."""
    zero = QosTime(sec=0, nsec=0)
    return Qos(history=history, depth=depth, reliability=reliability, durability=durability,
               deadline=zero, lifespan=zero, liveliness=QosLiveliness.AUTOMATIC,
               liveliness_lease_duration=zero, avoid_ros_namespace_conventions=False)


def test_topic_qos_follows_the_recorded_offers_and_falls_back_by_type() -> None:
    latched = topic_qos("/tf_static", "tf2_msgs/msg/TFMessage",
                        [_qos(QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL, 1)],
                        message_count=3)
    assert latched.durability == DurabilityPolicy.TRANSIENT_LOCAL
    assert latched.reliability == ReliabilityPolicy.RELIABLE and latched.depth == 3
    mixed = topic_qos("/odom", "nav_msgs/msg/Odometry",
                      [_qos(QosReliability.RELIABLE, QosDurability.VOLATILE, 10),
                       _qos(QosReliability.BEST_EFFORT, QosDurability.VOLATILE, 50)])
    assert mixed.reliability == ReliabilityPolicy.BEST_EFFORT and mixed.depth == 50
    assert mixed.durability == DurabilityPolicy.VOLATILE
    # no metadata: images sensor data, /tf_static latched, the rest reliable
    image = topic_qos("/cam/image_raw", "sensor_msgs/msg/Image")
    assert image.reliability == ReliabilityPolicy.BEST_EFFORT
    static = topic_qos("/tf_static", "tf2_msgs/msg/TFMessage")
    assert static.durability == DurabilityPolicy.TRANSIENT_LOCAL
    odom = topic_qos("/odom", "nav_msgs/msg/Odometry")
    assert odom.reliability == ReliabilityPolicy.RELIABLE
    assert odom.durability == DurabilityPolicy.VOLATILE


def test_message_class_imports_by_type_name() -> None:
    from sensor_msgs.msg import Image

    assert message_class("sensor_msgs/msg/Image") is Image
    assert message_class("no_such_package_xyz/msg/Thing") is None
    with pytest.raises(ValueError, match="package/msg/Name"):
        message_class("sensor_msgs/Image")


# ---------------------------------------------------------------------------- over DDS
@pytest.fixture(scope="module")
def bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-frame, 32x32 synthetic bag (MCAP)."""
    from depth_any_view.bag.writer import write_bag
    from depth_any_view.data.synth import generate_frames

    path = tmp_path_factory.mktemp("replay") / "tiny"
    write_bag(path, generate_frames(frames=FRAMES, size=(32, 32), grid_dims=8, seed=1))
    return path


def _tf_stamps(msgs: list[Any]) -> list[int]:
    """The stamps of every transform of tf2_msgs/TFMessage messages, in order (ns)."""
    return [t.header.stamp.sec * 10**9 + t.header.stamp.nanosec
            for m in msgs for t in m.transforms]


@pytest.fixture(scope="module")
def recorded(bag: Path) -> dict[str, Any]:
    """What the bag holds: topic -> type, topic -> header stamps (ns), record-time range,
    and the stamps of the transforms on /tf and /tf_static."""
    stamps: dict[str, list[int]] = defaultdict(list)
    tf: dict[str, list[Any]] = defaultdict(list)
    with BagReader(bag) as reader:
        types = reader.topics()
        for m in reader.messages():
            header = getattr(m.msg, "header", None)
            if header is not None:
                stamps[m.topic].append(header.stamp.sec * 10**9 + header.stamp.nanosec)
            if m.topic in ("/tf", "/tf_static"):
                tf[m.topic].append(m.msg)
        log = [m.log_ns for m in reader.messages()]
    return {"types": types, "stamps": dict(stamps), "first_ns": min(log), "last_ns": max(log),
            "tf_stamps": {topic: _tf_stamps(msgs) for topic, msgs in tf.items()},
            "tf_counts": {topic: len(msgs) for topic, msgs in tf.items()}}


class Listener:
    """Subscribes (best effort, so it matches any publisher) to the bag's topics + /clock."""

    def __init__(self, types: dict[str, str]) -> None:
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from rclpy.qos import HistoryPolicy, QoSProfile
        from rosgraph_msgs.msg import Clock

        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.messages: dict[str, list[Any]] = defaultdict(list)
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = Node("test_replay_listener", context=self.context)
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=200,
                         reliability=ReliabilityPolicy.BEST_EFFORT,
                         durability=DurabilityPolicy.VOLATILE)
        self.classes = {t: message_class(ty) for t, ty in types.items()}
        for topic, cls in [*self.classes.items(), ("/clock", Clock)]:
            if cls is not None:
                self.node.create_subscription(cls, topic, self._callback(topic), qos)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _callback(self, topic: str) -> Any:
        def store(msg: Any) -> None:
            with self.lock:
                self.messages[topic].append(msg)
        return store

    def _spin(self) -> None:
        try:
            while self.context.ok() and not self.stopping.is_set():
                self.executor.spin_once(timeout_sec=0.05)
        except Exception:  # noqa: BLE001 - shutdown while spinning
            pass

    def take(self) -> dict[str, list[Any]]:
        """Everything received so far (and clear)."""
        with self.lock:
            out, self.messages = dict(self.messages), defaultdict(list)
        return out

    def count(self, topic: str) -> int:
        """Messages received on `topic` since the last `take`."""
        with self.lock:
            return len(self.messages.get(topic, []))

    def close(self) -> None:
        """Stop spinning, destroy the node, shut its context down."""
        import rclpy

        self.stopping.set()
        self.thread.join(timeout=5)
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


@pytest.fixture(scope="module")
def listener(recorded: dict[str, Any]) -> Iterator[Listener]:
    """One subscriber node for the module's DDS tests."""
    sub = Listener(recorded["types"])
    try:
        yield sub
    finally:
        sub.close()


def _ignore_sigint() -> None:
    """In the child before exec: SIGINT ignored, as a shell starts its background jobs."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _player(bag: Path, *extra: str, background: bool = False) -> subprocess.Popen:
    """The replay command as a child process on this test's DDS domain (`background`: it
    starts with SIGINT ignored, as from `cmd &` in a script)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    return subprocess.Popen([sys.executable, "-m", "depth_any_view.cli", "replay", str(bag),
                             "--rate", str(RATE), "--delay", str(DELAY_S),
                             "--wait-subscribers", str(WAIT_S), *extra],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=_ignore_sigint if background else None)


def _finish(proc: subprocess.Popen, timeout: float = CHILD_TIMEOUT_S) -> tuple[int, str, str]:
    """Wait for the child (killing it past `timeout`); (exit status, stdout, stderr)."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate(timeout=10)
        pytest.fail(f"replay did not finish within {timeout} s: {out} {err}")
    return proc.returncode, out, err


def _ns(t: Any) -> int:
    """builtin_interfaces/Time -> int nanoseconds."""
    return int(t.sec) * 10**9 + int(t.nanosec)


@pytest.mark.ros
def test_replay_publishes_every_topic_with_its_stamps_and_clock(
        bag: Path, recorded: dict[str, Any], listener: Listener) -> None:
    listener.take()
    proc = _player(bag, "--clock")
    try:
        rc, out, err = _finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert rc == 0, err
    assert "replayed" in out and "behind schedule" in out
    replayable = {t for t, cls in listener.classes.items() if cls is not None}
    expected = {t: len(v) for t, v in recorded["stamps"].items()} | recorded["tf_counts"]
    stamped = [t for t in replayable if t in expected]
    deadline = time.monotonic() + 5.0  # the last messages may still be in flight, on any
    while (any(listener.count(t) < expected[t] for t in stamped)  # topic
           and time.monotonic() < deadline):
        time.sleep(0.05)
    got = listener.take()
    for topic in set(recorded["types"]) - replayable:  # e.g. /tf without tf2_msgs
        assert topic in err
    for topic in replayable:
        msgs = got.get(topic, [])
        assert msgs, f"nothing arrived on {topic}"
        assert all(isinstance(m, listener.classes[topic]) for m in msgs)
        if topic in ("/tf", "/tf_static"):
            assert _tf_stamps(msgs) == recorded["tf_stamps"][topic], topic
        elif topic in recorded["stamps"]:
            assert [_ns(m.header.stamp) for m in msgs] == recorded["stamps"][topic], topic
    if message_class("tf2_msgs/msg/TFMessage") is not None:  # scripts/bootstrap.sh built it
        assert {"/tf", "/tf_static"} <= replayable and "/tf" not in err
        static = got["/tf_static"][0].transforms
        assert len(static) == 6 and {t.header.frame_id for t in static} == {"base_link"}
    images = [t for t, ty in recorded["types"].items() if ty == "sensor_msgs/msg/Image"]
    assert len(images) == 12
    assert sum(len(got[t]) for t in images) == FRAMES * len(images)
    image = got["/cameras/front/image_raw"][0]
    assert (image.width, image.height, image.encoding) == (32, 32, "rgb8")
    assert len(image.data) == 32 * 32 * 3
    clock = [_ns(m.clock) for m in got["/clock"]]
    assert len(clock) >= FRAMES
    assert all(b >= a for a, b in zip(clock, clock[1:])), "the clock went backwards"
    assert clock[0] == recorded["first_ns"] and clock[-1] == recorded["last_ns"]


@pytest.mark.ros
def test_loop_repeats_with_the_clock_jumping_back_and_stops_on_ctrl_c(
        bag: Path, recorded: dict[str, Any], listener: Listener) -> None:
    listener.take()
    # Started as a background job (SIGINT ignored on entry): Ctrl-C must still stop it.
    proc = _player(bag, "--clock", "--loop", background=True)
    topic = "/cameras/front/image_raw"
    try:
        deadline = time.monotonic() + WAIT_S + 15.0
        while listener.count(topic) < 3 * FRAMES and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        rc, out, err = _finish(proc, timeout=15.0)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    got = listener.take()
    assert len(got[topic]) >= 3 * FRAMES, "--loop did not repeat the bag"
    stamps = [_ns(m.header.stamp) for m in got[topic]]
    assert stamps[:2 * FRAMES] == recorded["stamps"][topic] * 2
    clock = [_ns(m.clock) for m in got["/clock"]]
    jumps = [b for a, b in zip(clock, clock[1:]) if b < a]
    assert len(jumps) >= 2 and set(jumps) == {recorded["first_ns"]}
    assert rc == 0, err  # a user's stop is no failure: launch would print an error
    assert "stopped by Ctrl-C" in out and "Traceback" not in err


@pytest.mark.ros
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stop_while_waiting_to_play_exits_0_without_a_traceback(
        bag: Path, listener: Listener, sig: signal.Signals) -> None:
    """replay.launch.py stopped with Ctrl-C (launch sends SIGINT, then SIGTERM) before the
    bag started: exit status 0, the summary, no traceback."""
    proc = _player(bag, "--clock", "--delay", "120")  # its node waits, publishers up
    try:
        deadline = time.monotonic() + WAIT_S + 15.0
        while (listener.node.count_publishers("/cameras/front/image_raw") == 0
               and time.monotonic() < deadline):
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        assert listener.node.count_publishers("/cameras/front/image_raw") > 0
        time.sleep(0.5)
        proc.send_signal(sig)
        rc, out, err = _finish(proc, timeout=15.0)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert rc == 0, err
    assert "stopped by Ctrl-C" in out and "Traceback" not in out + err


def test_missing_corrupt_or_incomplete_bags_exit_with_one_line(bag: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "metadata.yaml").write_bytes((bag / "metadata.yaml").read_bytes())
    for storage in bag.glob("*.mcap"):
        data = storage.read_bytes()
        (broken / storage.name).write_bytes(data[: len(data) // 3])  # truncated
    cases = [(tmp_path / "nope", (), "does not exist"), (broken, (), "bag"),
             (bag, ("--topics", "/no/such/topic"), "lacks topic(s) /no/such/topic")]
    for path, extra, words in cases:
        proc = _player(path, *extra)
        try:
            rc, out, err = _finish(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
        lines = err.strip().splitlines()
        assert rc == 2 and len(lines) == 1, err
        assert lines[0].startswith("depth-any-view replay: error:") and words in lines[0]
        assert str(path) in lines[0]
