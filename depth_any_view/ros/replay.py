"""Play a rosbag2's messages over DDS with their recorded timing (`depth-any-view replay`).

For machines without `ros2 bag`: `BagReader` (bag/reader.py) opens the bag, and every
message goes out as the bag's own CDR bytes (`Publisher.publish(bytes)`, as `ros2 bag
play` does), so any type whose Python message package is installed replays without a
hand-written converter and images or clouds are never unpacked. The first message of each
topic is deserialised once with `rclpy.serialization.deserialize_message` to check that
the bag's definition matches the installed one. Topics whose package is missing are
skipped with one warning (e.g. /tf and /tf_static in a venv where scripts/bootstrap.sh has
not built tf2_msgs yet: it has no wheel).

Timing: message i is due at start + (log_i - log_0) / rate on the monotonic clock, so the
schedule never drifts however long each publish takes; lateness is measured against it
and reported at the end. With `clock`, `/clock` (rosgraph_msgs/Clock) carries the bag time
at `clock_hz` and is set to each message's record time just before that message, so a
node with `use_sim_time:=true` runs live. With `loop`, the bag restarts at its end and the
clock jumps back to its start (the node resets its occupancy map on that, by design).

QoS per topic: the bag's offered QoS profiles where recorded (reliability and durability
kept when every recorded publisher agreed, depth the largest); otherwise sensor data for
images and CameraInfo, reliable transient local for /tf_static, reliable depth 10 else.
"""

from __future__ import annotations

import importlib
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rclpy
from rclpy.context import Context
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from rclpy.serialization import deserialize_message
from rclpy.signals import SignalHandlerOptions
from rosgraph_msgs.msg import Clock

from depth_any_view.bag.messages import BagError
from depth_any_view.bag.reader import BagReader

__all__ = ["NODE_NAME", "CLOCK_TOPIC", "ReplayStats", "Schedule", "BagPlayer", "message_class",
           "topic_qos", "replay"]

NODE_NAME = "depth_any_view_replay"
CLOCK_TOPIC = "/clock"
DEFAULT_CLOCK_HZ = 100.0  # /clock publications per second of wall time between messages
DEFAULT_DELAY_S = 1.0  # wait after creating publishers so subscribers discover them
SENSOR_TYPES = frozenset({"sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage",
                          "sensor_msgs/msg/CameraInfo"})  # sensor-data QoS without metadata
TF_STATIC = "/tf_static"
FLUSH_TIMEOUT_S = 2.0  # at most this long for the last messages to leave before exiting
# Best-effort publishers have no acknowledgement to wait for: after the last message the
# player lingers this long, so that subscribers take it before the writer (and the
# shared-memory buffers it lent them) goes away.
LINGER_S = 0.5
DEFAULT_DEPTH = 10  # history depth without metadata (rclpy's usual publisher depth)
MAX_LATCHED = 100  # transient-local history is at most this deep
# rclcpp::ClockQoS: best effort, keep last 1 (what rclpy's TimeSource subscribes with).
CLOCK_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                       reliability=ReliabilityPolicy.BEST_EFFORT,
                       durability=DurabilityPolicy.VOLATILE)


def message_class(msgtype: str) -> type | None:
    """The rclpy message class of `msgtype` ('pkg/msg/Name'), None when pkg is missing.

    Uses `rosidl_runtime_py.utilities.get_message` when installed, else imports `pkg.msg`.
    Raises ValueError for a name that is not of the form pkg/msg/Name.
    """
    parts = msgtype.split("/")
    if len(parts) != 3 or not all(parts) or parts[1] != "msg":
        raise ValueError(f"message type '{msgtype}' is not of the form package/msg/Name")
    try:
        from rosidl_runtime_py.utilities import get_message
    except ImportError:
        get_message = None
    try:
        if get_message is not None:
            return get_message(msgtype)
        return getattr(importlib.import_module(f"{parts[0]}.msg"), parts[2])
    except (ImportError, AttributeError, ValueError):
        return None


def _name(policy: Any) -> str:
    """Enum member name of a rosbags or rclpy QoS policy (they share names and values)."""
    return str(getattr(policy, "name", policy)).upper()


def topic_qos(topic: str, msgtype: str, offered: Sequence[Any] = (),
              message_count: int = 1) -> QoSProfile:
    """The QoS to publish `topic` with, from the bag's offered profiles (rosbags `Qos`).

    Reliable / transient local only when every recorded publisher offered it (as `ros2 bag
    play` adapts); keep last with the largest recorded depth (KEEP_ALL -> MAX_LATCHED);
    transient-local topics keep up to `message_count` (<= MAX_LATCHED) messages so late
    joiners get every static transform. Without profiles: see the module docstring.
    """
    profiles = [q for q in offered if hasattr(q, "reliability")]
    if profiles:
        reliable = all(_name(q.reliability) == "RELIABLE" for q in profiles)
        latched = all(_name(q.durability) == "TRANSIENT_LOCAL" for q in profiles)
        depths = [MAX_LATCHED if _name(q.history) == "KEEP_ALL" else int(q.depth)
                  for q in profiles]
        depth = max([1, *depths])
    elif topic == TF_STATIC:
        reliable, latched, depth = True, True, 1
    elif msgtype in SENSOR_TYPES:
        base = qos_profile_sensor_data
        return QoSProfile(history=base.history, depth=base.depth,
                          reliability=base.reliability, durability=base.durability)
    else:
        reliable, latched, depth = True, False, DEFAULT_DEPTH
    if latched:
        depth = min(max(depth, int(message_count)), MAX_LATCHED)
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=depth,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


class Schedule:
    """Maps bag record time to monotonic wall time: due = start + (log - bag_start) / rate.

    All times are int nanoseconds; `start_mono_ns` is on `time.monotonic_ns()`.
    """

    def __init__(self, bag_start_ns: int, rate: float, start_mono_ns: int) -> None:
        if not (math.isfinite(rate) and rate > 0.0):
            raise ValueError(f"replay rate must be a positive number, got {rate}")
        self.bag_start_ns = int(bag_start_ns)
        self.rate = float(rate)
        self.start_mono_ns = int(start_mono_ns)

    def due_ns(self, log_ns: int) -> int:
        """Monotonic time at which the message recorded at `log_ns` is due."""
        return self.start_mono_ns + round((int(log_ns) - self.bag_start_ns) / self.rate)

    def bag_time_ns(self, mono_ns: int) -> int:
        """Bag time that corresponds to monotonic time `mono_ns`."""
        return self.bag_start_ns + round((int(mono_ns) - self.start_mono_ns) * self.rate)

    def restart(self, duration_ns: int, now_ns: int) -> None:
        """Start the next pass `duration_ns` of bag time after this one (never before now,
        so a player that fell behind does not burst)."""
        self.start_mono_ns = max(self.start_mono_ns + round(duration_ns / self.rate),
                                 int(now_ns))


@dataclass
class ReplayStats:
    """What a replay did; lags in seconds (how late a message went out vs its schedule)."""

    messages: int = 0  # messages published (all passes)
    passes: int = 0  # completed passes through the bag
    per_topic: dict[str, int] = field(default_factory=dict)
    clock_messages: int = 0
    max_lag_s: float = 0.0
    final_lag_s: float = 0.0  # lateness of the last message published
    wall_s: float = 0.0
    skipped_topics: dict[str, str] = field(default_factory=dict)  # topic -> reason

    def summary(self, bag: Path | str, rate: float, interrupted: bool = False) -> str:
        """One line for the terminal."""
        how = "stopped by Ctrl-C after" if interrupted else "replayed"
        return (f"replay {bag}: {how} {self.messages} messages on {len(self.per_topic)} topics "
                f"({self.passes} full pass(es), {self.clock_messages} /clock) in "
                f"{self.wall_s:.2f} s at rate {rate:g}; behind schedule at the end "
                f"{self.final_lag_s * 1e3:.1f} ms, at most {self.max_lag_s * 1e3:.1f} ms")


@dataclass
class _Topic:
    """One replayed topic: its publisher and whether its first message was checked."""

    msgtype: str
    cls: type
    publisher: Publisher
    checked: bool = False


class BagPlayer:
    """Publishes an open bag's messages from `node` on their schedule (see module docstring).

    Args:
        bag: an open BagReader.
        node: the rclpy node that owns the publishers.
        rate: playback speed factor (2.0 = twice as fast).
        loop: restart at the end of the bag until interrupted.
        clock: publish /clock with the bag time.
        clock_hz: /clock publications per second of wall time while waiting.
        topics: replay only these topics (None = every topic the bag holds).
        warn: where one-line warnings go.
    """

    def __init__(self, bag: BagReader, node: Node, *, rate: float = 1.0, loop: bool = False,
                 clock: bool = False, clock_hz: float = DEFAULT_CLOCK_HZ,
                 topics: Sequence[str] | None = None,
                 warn: Callable[[str], None] | None = None) -> None:
        if not (math.isfinite(clock_hz) and clock_hz > 0.0):
            raise ValueError(f"clock_hz must be a positive number, got {clock_hz}")
        Schedule(0, rate, 0)  # validates rate
        self.bag, self.node, self.rate, self.loop = bag, node, float(rate), bool(loop)
        self.clock_period_ns = round(1e9 / clock_hz)
        self.warn = warn if warn is not None else (lambda text: print(text, file=sys.stderr))
        self.stats = ReplayStats()
        self.stop_event = threading.Event()  # set from another thread to stop early
        if topics is not None:
            bag.require_topics(topics)
        wanted = None if topics is None else set(topics)
        self.connections = [c for c in bag.reader.connections
                            if wanted is None or c.topic in wanted]
        self.topics = self._make_publishers()
        self.connections = [c for c in self.connections if c.topic in self.topics]
        if not self.topics:
            raise BagError(f"bag {bag.path}: none of its topics can be replayed ("
                           + "; ".join(f"{t}: {r}" for t, r in
                                       self.stats.skipped_topics.items()) + ")")
        self.clock_pub = node.create_publisher(Clock, CLOCK_TOPIC, CLOCK_QOS) if clock else None
        self._last_clock_ns: int | None = None

    def _make_publishers(self) -> dict[str, _Topic]:
        """One publisher per topic; skipped topics are recorded and warned about once."""
        by_topic: dict[str, list[Any]] = {}
        for conn in self.connections:
            by_topic.setdefault(conn.topic, []).append(conn)
        counts = self.bag.message_counts()
        out: dict[str, _Topic] = {}
        for topic, conns in sorted(by_topic.items()):
            types = sorted({c.msgtype for c in conns})
            if len(types) > 1:
                raise BagError(f"bag {self.bag.path}: topic {topic} is recorded with several "
                               f"types {types}; replay it with --topics excluding it")
            cls = message_class(types[0])
            if cls is None:
                package = types[0].split("/")[0]
                self.stats.skipped_topics[topic] = (f"{types[0]} is not installed (Python "
                                                    f"package {package})")
                continue
            offered = [q for c in conns
                       for q in (getattr(c.ext, "offered_qos_profiles", None) or [])]
            qos = topic_qos(topic, types[0], offered, counts.get(topic, 1))
            out[topic] = _Topic(types[0], cls, self.node.create_publisher(cls, topic, qos))
        if self.stats.skipped_topics:
            self.warn(f"replay: skipping {', '.join(self.stats.skipped_topics)}: "
                      + "; ".join(sorted(set(self.stats.skipped_topics.values())))
                      + " (install the message package to replay them)")
        return out

    def wait_for_subscribers(self, timeout_s: float) -> list[str]:
        """Wait up to `timeout_s` seconds until every replayed topic (and /clock) has a
        matched subscriber; returns the topics still without one (then warned about)."""
        pubs = {name: t.publisher for name, t in self.topics.items()}
        if self.clock_pub is not None:
            pubs[CLOCK_TOPIC] = self.clock_pub
        deadline = time.monotonic() + max(float(timeout_s), 0.0)
        while True:
            waiting = [n for n, p in sorted(pubs.items()) if p.get_subscription_count() == 0]
            if not waiting or time.monotonic() >= deadline or self.stop_event.is_set():
                break
            time.sleep(0.05)
        if waiting:
            self.warn(f"replay: no subscriber after {timeout_s:g} s on {', '.join(waiting)}; "
                      f"playing anyway")
        return waiting

    # ------------------------------------------------------------------ reading
    def _raw_messages(self) -> Iterator[tuple[Any, int, bytes]]:
        """(connection, record time ns, CDR bytes) in record order; BagError when damaged."""
        gen = self.bag.reader.messages(connections=self.connections)
        while True:
            try:
                conn, log_ns, raw = next(gen)
            except StopIteration:
                return
            except Exception as exc:  # damaged chunks surface while iterating
                first = str(exc).strip().splitlines()
                raise BagError(f"bag {self.bag.path} is damaged: {type(exc).__name__}: "
                               f"{first[0] if first else ''}") from exc
            yield conn, int(log_ns), raw if isinstance(raw, bytes) else bytes(raw)

    def _check(self, topic: _Topic, name: str, raw: bytes, log_ns: int) -> None:
        """Deserialise a topic's first message: the bag's definition must match ours."""
        try:
            deserialize_message(raw, topic.cls)
        except Exception as exc:
            raise BagError(f"bag {self.bag.path}: the {topic.msgtype} on {name} at {log_ns} ns "
                           f"does not deserialise with the installed definition "
                           f"({type(exc).__name__}: {exc}); was it recorded with another "
                           f"ROS distribution?") from exc
        topic.checked = True

    # ------------------------------------------------------------------ timing
    def _publish_clock(self, bag_ns: int) -> None:
        """Publish /clock = bag_ns (int nanoseconds)."""
        if self.clock_pub is None:
            return
        msg = Clock()
        msg.clock.sec, msg.clock.nanosec = divmod(int(bag_ns), 1_000_000_000)
        self.clock_pub.publish(msg)
        self._last_clock_ns = int(bag_ns)
        self.stats.clock_messages += 1

    def _wait_until(self, due_ns: int, schedule: Schedule, limit_ns: int) -> None:
        """Sleep until monotonic `due_ns`, publishing /clock (<= limit_ns) meanwhile."""
        while not self.stop_event.is_set():
            now = time.monotonic_ns()
            if now >= due_ns:
                return
            if self.clock_pub is not None:  # republished while paused: late joiners see it
                bag_ns = min(schedule.bag_time_ns(now), limit_ns)
                self._publish_clock(max(bag_ns, self._last_clock_ns or bag_ns))
                step = min(due_ns - now, self.clock_period_ns)
            else:
                step = min(due_ns - now, 100_000_000)  # wake to notice stop_event
            time.sleep(step * 1e-9)

    def flush(self, timeout_s: float = FLUSH_TIMEOUT_S) -> bool:
        """Wait until every publisher has sent (best effort) or had acknowledged (reliable)
        what it was given, at most `timeout_s` seconds in all, then linger LINGER_S (within
        that time) when a best-effort publisher has subscribers; True when all did.

        rmw_fastrtps publishes asynchronously by default: without this, the last messages
        of a bag can still sit in the writer's queue when the node is destroyed, and a
        subscriber never sees them; a best-effort message that has left can still be lost
        when the writer goes before the subscriber has taken it.
        """
        deadline = time.monotonic() + timeout_s
        publishers = [t.publisher for t in self.topics.values()]
        if self.clock_pub is not None:
            publishers.append(self.clock_pub)
        done = True
        for publisher in publishers:
            left = max(deadline - time.monotonic(), 0.0)
            done = publisher.wait_for_all_acked(Duration(nanoseconds=round(left * 1e9))) and done
        best_effort = any(p.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT
                          and p.get_subscription_count() > 0 for p in publishers)
        if best_effort:
            time.sleep(min(LINGER_S, max(deadline - time.monotonic(), 0.0)))
        return done

    def play(self, delay_s: float = DEFAULT_DELAY_S) -> ReplayStats:
        """Replay (each pass, or until `stop_event`); returns the statistics.

        `delay_s` seconds pass first so that subscribers discover the publishers (the
        clock, if any, already stands at the bag's start meanwhile). KeyboardInterrupt
        propagates; `stats` then holds what was done.
        """
        if not (math.isfinite(delay_s) and delay_s >= 0.0):
            raise ValueError(f"replay delay must be >= 0 seconds, got {delay_s}")
        first_ns = self.bag.start_ns
        duration_ns = max(self.bag.end_ns - first_ns, 0)
        t0 = time.monotonic_ns()
        if self.clock_pub is not None:
            self._publish_clock(first_ns)
        schedule = Schedule(first_ns, self.rate, t0 + round(delay_s * 1e9))
        self._wait_until(schedule.start_mono_ns, schedule, first_ns)
        try:
            while not self.stop_event.is_set():
                if self.stats.passes and self.clock_pub is not None:
                    self._publish_clock(first_ns)  # loop: the clock jumps back
                published = self.stats.messages
                for conn, log_ns, raw in self._raw_messages():
                    self._wait_until(schedule.due_ns(log_ns), schedule, log_ns)
                    if self.stop_event.is_set():
                        break
                    topic = self.topics[conn.topic]
                    if not topic.checked:
                        self._check(topic, conn.topic, raw, log_ns)
                    if self._last_clock_ns is not None and log_ns > self._last_clock_ns:
                        self._publish_clock(log_ns)
                    topic.publisher.publish(raw)
                    lag_s = max(time.monotonic_ns() - schedule.due_ns(log_ns), 0) * 1e-9
                    self.stats.final_lag_s = lag_s
                    self.stats.max_lag_s = max(self.stats.max_lag_s, lag_s)
                    self.stats.messages += 1
                    self.stats.per_topic[conn.topic] = self.stats.per_topic.get(conn.topic,
                                                                                0) + 1
                else:
                    if self.stats.messages == published:
                        raise BagError(f"bag {self.bag.path} has no messages on the replayed "
                                       f"topics {', '.join(self.topics)}")
                    self.stats.passes += 1
                    if not self.loop:
                        break
                    schedule.restart(duration_ns, time.monotonic_ns())
        finally:
            self.stats.wall_s = (time.monotonic_ns() - t0) * 1e-9
        return self.stats


def _raise_interrupt(signum: int, frame: Any) -> None:
    """SIGTERM handler: stop like Ctrl-C (launch sends SIGINT, then SIGTERM)."""
    raise KeyboardInterrupt


def _ignore_stop_signals() -> None:
    """Once stopping: a second Ctrl-C, or the SIGTERM launch sends after its SIGINT, must
    not break off the clean-up with a traceback (SIGKILL still ends a hung process)."""
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)


def replay(bag_path: Path | str, *, rate: float = 1.0, loop: bool = False,
           clock: bool = False, delay_s: float = DEFAULT_DELAY_S,
           wait_subscribers_s: float = 0.0, clock_hz: float = DEFAULT_CLOCK_HZ,
           topics: Sequence[str] | None = None) -> int:
    """Replay a bag over DDS from a node of its own; the `replay` command. Returns 0, also
    when stopped by Ctrl-C / SIGINT or SIGTERM (the summary says so): a user's stop is no
    failure, and launch reports a non-zero exit as an error (`replay.launch.py loop:=true`
    ends only that way). Real failures raise.

    With `wait_subscribers_s` > 0 the player first waits (at most that many seconds) until
    every replayed topic has a subscriber, as a recorder of all topics needs; then it waits
    `delay_s` seconds (discovery of the subscribers' side) and plays.

    Raises:
        BagError: missing, corrupt or unplayable bag (one line).
        ValueError: bad rate, delay or clock rate.
    """
    Schedule(0, rate, 0)  # bad arguments fail before ROS starts
    for label, value in (("delay", delay_s), ("wait for subscribers", wait_subscribers_s)):
        if not (math.isfinite(value) and value >= 0.0):
            raise ValueError(f"replay {label} must be >= 0 seconds, got {value}")
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_interrupt)
        # A shell starts background jobs with SIGINT ignored, and Python then keeps it
        # ignored: Ctrl-C (or launch's SIGINT) must stop the replay wherever it started.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return _replay(bag_path, rate=rate, loop=loop, clock=clock, delay_s=delay_s,
                       wait_subscribers_s=wait_subscribers_s, clock_hz=clock_hz,
                       topics=topics)
    except KeyboardInterrupt:  # before playing (opening the bag, starting ROS) or after
        _ignore_stop_signals()
        print(f"replay {bag_path}: stopped by Ctrl-C", flush=True)
        return 0


def _replay(bag_path: Path | str, *, rate: float, loop: bool, clock: bool, delay_s: float,
            wait_subscribers_s: float, clock_hz: float, topics: Sequence[str] | None) -> int:
    """`replay` once the signals are set: open the bag, start ROS, play, clean up."""
    with BagReader(bag_path) as bag:
        context = Context()
        rclpy.init(context=context, signal_handler_options=SignalHandlerOptions.NO)
        node = None
        player = None
        try:
            node = Node(NODE_NAME, context=context, start_parameter_services=False)
            player = BagPlayer(bag, node, rate=rate, loop=loop, clock=clock,
                               clock_hz=clock_hz, topics=topics)
            if wait_subscribers_s > 0.0:
                player.wait_for_subscribers(wait_subscribers_s)
            stats = player.play(delay_s)
            if not player.flush():
                player.warn(f"replay: some messages were still unsent or unacknowledged "
                            f"{FLUSH_TIMEOUT_S:g} s after the last one")
            print(stats.summary(bag.path, rate), flush=True)
            return 0
        except KeyboardInterrupt:
            _ignore_stop_signals()
            if player is not None:
                print(player.stats.summary(bag.path, rate, interrupted=True), flush=True)
            return 0
        finally:
            if node is not None:
                node.destroy_node()
            rclpy.try_shutdown(context=context)
