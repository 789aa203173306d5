"""Record the node's outputs from DDS into an MCAP rosbag2, with arrival times and latency.

`ros2 bag record` needs rosbag2_py, which has no wheel (it comes with a ROS install: README
"On a robot"), so this is the small stand-in the demo and tests use: an rclpy node subscribes to
the given topics with `raw=True` (the CDR bytes exactly as they came over DDS, as `ros2 bag
record` stores them; nothing is deserialised on the hot path, so a MarkerArray of 50 000
cubes costs no Python objects) and rosbags' `Writer` writes those bytes. Each message's
record time is its arrival time on the wall clock (as `ros2 bag record` does).

Type names: the rclpy class of each topic gives its name (`sensor_msgs/msg/Image`), which
must exist in the rosbags typestore the bag is written with (ROS 2 Kilted); the first
message of every topic is deserialised once with that typestore, so a definition that does
not match the installed one is found at once and the topic is left out with a note instead
of producing an unreadable bag.

Timing: for every message the recorder keeps the header stamp (read from the first bytes
of the CDR; the first marker's header for a MarkerArray) and its arrival on the monotonic
clock. Output sets are the distinct header stamps on `set_topic` (the fused point cloud by
default: one per processed set). End-to-end latency of a set is the arrival of its last
output (any recorded topic with that stamp, /diagnostics aside) minus the arrival of the
matching input image on `input_topic`, which the recorder subscribes to as well (its bytes
are not written). That works whatever the stamps are: a replay without /clock keeps the
bag's stamps, so "arrival minus header stamp" (`stamp_age`, also reported) only means
something for live cameras stamped with the current time.
"""

from __future__ import annotations

import math
import struct
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from rosbags.rosbag2 import StoragePlugin, Writer

from depth_any_view.bag.messages import QOS_DEFAULT, QOS_TF_STATIC, default_typestore
from depth_any_view.topics import absolute, camera_topic

__all__ = ["NODE_NAME", "DIAGNOSTICS", "MARKER_ARRAY", "Recorder", "RecordingStats",
           "header_stamp_ns", "msgtype_of", "output_topics", "record"]

NODE_NAME = "depth_any_view_recorder"
DIAGNOSTICS = "diagnostic_msgs/msg/DiagnosticArray"
MARKER_ARRAY = "visualization_msgs/msg/MarkerArray"
# Types whose CDR starts with std_msgs/Header (stamp first); MarkerArray's first marker has one.
HEADER_FIRST = frozenset({"sensor_msgs/msg/Image", "sensor_msgs/msg/CameraInfo",
                          "sensor_msgs/msg/PointCloud2", "nav_msgs/msg/OccupancyGrid",
                          "nav_msgs/msg/Odometry", DIAGNOSTICS, "sensor_msgs/msg/CompressedImage"})
HISTORY_DEPTH = 100  # subscription history: outputs of several sets may queue up


def msgtype_of(cls: type) -> str:
    """'pkg/msg/Name' of an rclpy message class (e.g. sensor_msgs.msg.Image)."""
    return f"{cls.__module__.split('.')[0]}/msg/{cls.__name__}"


def header_stamp_ns(raw: bytes, msgtype: str) -> int | None:
    """Header stamp (int ns) of a CDR message of `msgtype`, without deserialising it.

    Works for the HEADER_FIRST types and MarkerArray (its first marker's stamp); None for
    other types, an empty MarkerArray or bytes too short to hold a stamp.
    """
    if len(raw) < 4:
        return None
    endian = "<" if raw[1] & 1 else ">"  # CDR_LE = 0x0001, CDR_BE = 0x0000
    if msgtype in HEADER_FIRST:
        offset = 4
    elif msgtype == MARKER_ARRAY:
        if len(raw) < 8 or struct.unpack_from(endian + "I", raw, 4)[0] == 0:
            return None
        offset = 8
    else:
        return None
    if len(raw) < offset + 8:
        return None
    sec, nanosec = struct.unpack_from(endian + "iI", raw, offset)
    return sec * 1_000_000_000 + nanosec


def output_topics(parameters: Mapping[str, Any] | None = None) -> dict[str, str]:
    """topic -> message type of every output of the node with these parameter values.

    Missing parameters take the node's defaults (ros/params.py, README "Interface"): per-camera
    depth image and depth CameraInfo, points, occupancy voxels, markers, grid, diagnostics.
    Relative names are made absolute (a node without namespace).
    """
    from depth_any_view.ros.params import SPECS

    values = {name: spec.default for name, spec in SPECS.items()}
    values.update(parameters or {})

    prefix = str(values["camera_topic_prefix"])
    out: dict[str, str] = {}
    for cam in values["camera_names"]:
        for param, msgtype in (("depth_image_topic", "sensor_msgs/msg/Image"),
                               ("depth_camera_info_topic", "sensor_msgs/msg/CameraInfo")):
            out[absolute(camera_topic(cam, str(values[param]), prefix))] = msgtype
    out[absolute(values["points_topic"])] = "sensor_msgs/msg/PointCloud2"
    out[absolute(values["voxels_topic"])] = "sensor_msgs/msg/PointCloud2"
    out[absolute(values["markers_topic"])] = MARKER_ARRAY
    out[absolute(values["grid_topic"])] = "nav_msgs/msg/OccupancyGrid"
    out[absolute(values["diagnostics_topic"])] = DIAGNOSTICS
    return out


def _message_class(msgtype: str) -> type:
    """The rclpy class of 'pkg/msg/Name'; ValueError naming the package when missing."""
    import importlib

    pkg, kind, name = msgtype.split("/")
    try:
        return getattr(importlib.import_module(f"{pkg}.{kind}"), name)
    except (ImportError, AttributeError):
        raise ValueError(f"message type {msgtype} is not installed (pip install "
                         f"ros-{pkg.replace('_', '-')})") from None


def _bag_qos(msgtype: str) -> Any:
    """Offered QoS written to the bag for a recorded topic (what `ros2 bag play` re-offers)."""
    if msgtype == "nav_msgs/msg/OccupancyGrid":
        return QOS_TF_STATIC  # reliable transient local, as the node's grid
    return QOS_DEFAULT  # the node's other outputs are reliable (parameter output_qos)


def _percentile(values: Sequence[float], q: float) -> float:
    """q-th percentile of seconds (NaN when empty)."""
    return float(np.percentile(np.asarray(values, np.float64), q)) if values else math.nan


@dataclass
class RecordingStats:
    """What a recording holds; times in seconds, rates in Hz."""

    path: str  # the bag directory
    counts: dict[str, int]  # topic -> messages written
    input_sets: int  # distinct stamps received on the input topic
    output_sets: int  # distinct stamps received on the set topic
    matched_sets: int  # output sets whose input was seen (they have a latency)
    output_rate_hz: float  # output sets per second between the first and last set
    input_rate_hz: float  # input sets per second between the first and last input
    latency_median_s: float  # set done (last output) - input arrival
    latency_p95_s: float
    latency_max_s: float
    stamp_age_median_s: float  # set topic arrival (wall) - header stamp: live stamps only
    duration_s: float  # first to last message written
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the terminal."""
        total = sum(self.counts.values())
        return (f"recorded {total} messages on {len(self.counts)} topics into {self.path}: "
                f"{self.output_sets} output sets for {self.input_sets} input sets, "
                f"{self.output_rate_hz:.2f} Hz, latency median "
                f"{self.latency_median_s * 1e3:.0f} ms, p95 {self.latency_p95_s * 1e3:.0f} ms")


class Recorder:
    """Subscribes to `topics` over DDS and writes them to an MCAP rosbag2 (module docstring).

    Args:
        path: bag directory to create (must not exist, as rosbag2 never overwrites).
        topics: topic -> message type ('pkg/msg/Name'); None = the node's default outputs.
        input_topic: an input image topic whose arrival times anchor the latency (its
            messages are not written); None = no latency.
        set_topic: the topic with one message per output set; None = the points topic when
            recorded, else the first non-diagnostics topic.
        reliable: subscribe reliable (matches the node's reliable outputs and the
            transient-local grid) or best effort (matches any publisher, may lose messages).
        context: an initialised rclpy Context to use; None = a private one (shut down on
            close).
    Use as a context manager, or call `start()` and `close()`.
    """

    def __init__(self, path: Path | str, topics: Mapping[str, str] | None = None, *,
                 input_topic: str | None = None, set_topic: str | None = None,
                 reliable: bool = True, context: Context | None = None,
                 node_name: str = NODE_NAME) -> None:
        self.path = Path(path)
        if self.path.exists():
            raise FileExistsError(f"recording path {self.path} exists already; rosbag2 bags are "
                                  "never overwritten: choose a new path or delete it")
        self.topics = dict(output_topics() if topics is None else topics)
        if not self.topics:
            raise ValueError("Recorder needs at least one topic to record")
        self.classes = {t: _message_class(m) for t, m in self.topics.items()}
        self.ts = default_typestore()
        for topic, msgtype in self.topics.items():
            if msgtype_of(self.classes[topic]) != msgtype:
                raise ValueError(f"topic {topic}: rclpy class {msgtype_of(self.classes[topic])} "
                                 f"does not match the message type {msgtype}")
            if msgtype not in self.ts.fielddefs:
                raise ValueError(f"topic {topic}: message type {msgtype} is unknown to the "
                                 "rosbags typestore; it cannot be written to a bag")
        stamped = [t for t, m in self.topics.items() if m != DIAGNOSTICS]
        if set_topic is None:
            points = [t for t in stamped if t.endswith("/points")]
            set_topic = points[0] if points else (stamped[0] if stamped else None)
        if set_topic is not None and set_topic not in self.topics:
            raise ValueError(f"set_topic {set_topic} is not among the recorded topics")
        self.set_topic = set_topic
        self.input_topic = input_topic
        self.reliable = bool(reliable)
        self.node_name = node_name
        self._own_context = context is None
        self.context = context
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.counts = dict.fromkeys(self.topics, 0)
        self.notes: list[str] = []
        self._checked: set[str] = set()
        self._bad: set[str] = set()
        self._set_arrival: dict[int, int] = {}  # set stamp -> monotonic ns of last output
        self._set_first: dict[int, int] = {}  # set stamp -> monotonic ns on the set topic
        self._set_wall: dict[int, int] = {}  # set stamp -> wall ns on the set topic
        self._input_arrival: dict[int, int] = {}  # input stamp -> monotonic ns
        self._last_message_ns = 0  # monotonic ns of the latest recorded message
        self._first_wall = self._last_wall = 0
        self.writer: Writer | None = None
        self.node: Node | None = None
        self.executor: SingleThreadedExecutor | None = None
        self._thread: threading.Thread | None = None
        self._conns: dict[str, Any] = {}
        self.closed_stats: RecordingStats | None = None

    # ------------------------------------------------------------------ life cycle
    def start(self) -> Recorder:
        """Open the bag, create the subscriptions and spin them in a background thread."""
        if self._own_context:
            self.context = Context()
            rclpy.init(context=self.context, signal_handler_options=SignalHandlerOptions.NO)
        self.writer = Writer(self.path, version=9, storage_plugin=StoragePlugin.MCAP)
        self.writer.open()
        self._conns = {t: self.writer.add_connection(t, m, typestore=self.ts,
                                                     offered_qos_profiles=[_bag_qos(m)])
                       for t, m in self.topics.items()}
        self.node = Node(self.node_name, context=self.context, start_parameter_services=False)
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=HISTORY_DEPTH,
                         reliability=(ReliabilityPolicy.RELIABLE if self.reliable
                                      else ReliabilityPolicy.BEST_EFFORT),
                         durability=DurabilityPolicy.VOLATILE)
        for topic, cls in self.classes.items():
            self.node.create_subscription(cls, topic, self._callback(topic), qos, raw=True)
        if self.input_topic is not None:
            from sensor_msgs.msg import Image

            sensor = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=HISTORY_DEPTH,
                                reliability=ReliabilityPolicy.BEST_EFFORT,
                                durability=DurabilityPolicy.VOLATILE)
            self.node.create_subscription(Image, self.input_topic, self._on_input, sensor,
                                          raw=True)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, name="depth_any_view_recorder",
                                        daemon=True)
        self._thread.start()
        return self

    def __enter__(self) -> Recorder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _spin(self) -> None:
        """Executor loop until close (or the context shuts down)."""
        try:
            while not self._stop.is_set() and self.context.ok():
                self.executor.spin_once(timeout_sec=0.05)
        except (ExternalShutdownException, KeyboardInterrupt):
            pass

    def close(self) -> RecordingStats:
        """Stop spinning, finish the bag, destroy the node; returns the final statistics."""
        if self.closed_stats is not None:
            return self.closed_stats
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10.0)
        if self.executor is not None:
            self.executor.shutdown()
        if self.node is not None:
            self.node.destroy_node()
        if self._own_context and self.context is not None:
            rclpy.try_shutdown(context=self.context)
        with self._lock:
            if self.writer is not None:
                self.writer.close()
                self.writer = None
        self.closed_stats = self.stats()
        return self.closed_stats

    # ------------------------------------------------------------------ callbacks
    def _callback(self, topic: str) -> Any:
        msgtype = self.topics[topic]
        tracked = msgtype != DIAGNOSTICS

        def on_message(raw: bytes) -> None:
            mono, wall = time.monotonic_ns(), time.time_ns()
            raw = bytes(raw)
            if topic not in self._checked and not self._check(topic, msgtype, raw):
                return
            stamp = header_stamp_ns(raw, msgtype) if tracked else None
            with self._lock:
                if self.writer is None or topic in self._bad:
                    return
                self.writer.write(self._conns[topic], wall, raw)
                self.counts[topic] += 1
                self._last_message_ns = mono
                self._first_wall = self._first_wall or wall
                self._last_wall = wall
                if stamp is not None:
                    self._set_arrival[stamp] = max(self._set_arrival.get(stamp, 0), mono)
                    if topic == self.set_topic and stamp not in self._set_first:
                        self._set_first[stamp] = mono
                        self._set_wall[stamp] = wall
        return on_message

    def _check(self, topic: str, msgtype: str, raw: bytes) -> bool:
        """The first message of a topic must deserialise with the bag's typestore."""
        try:
            self.ts.deserialize_cdr(raw, msgtype)
        except Exception as exc:  # noqa: BLE001 - any failure means an unreadable bag
            with self._lock:
                self._bad.add(topic)
                self.notes.append(f"{topic}: the received {msgtype} does not deserialise with "
                                  f"the bag's (Kilted) definition ({type(exc).__name__}: "
                                  f"{exc}); topic not recorded")
            self._checked.add(topic)
            return False
        self._checked.add(topic)
        return True

    def _on_input(self, raw: bytes) -> None:
        mono = time.monotonic_ns()
        stamp = header_stamp_ns(bytes(raw[:16]), "sensor_msgs/msg/Image")
        if stamp is not None:
            with self._lock:
                self._input_arrival.setdefault(stamp, mono)

    # ------------------------------------------------------------------ queries
    def wait_for_publishers(self, timeout_s: float, topics: Sequence[str] | None = None
                            ) -> list[str]:
        """Wait up to `timeout_s` seconds until each topic has a publisher; returns the
        topics still without one."""
        wanted = list(self.topics if topics is None else topics)
        deadline = time.monotonic() + max(float(timeout_s), 0.0)
        while True:
            missing = [t for t in wanted if self.node.count_publishers(t) == 0]
            if not missing or time.monotonic() >= deadline:
                return missing
            time.sleep(0.05)

    def output_stamps(self) -> list[int]:
        """Header stamps (ns) of the output sets received so far, sorted."""
        with self._lock:
            return sorted(self._set_first)

    def input_stamps(self) -> list[int]:
        """Header stamps (ns) of the input images received so far, sorted."""
        with self._lock:
            return sorted(self._input_arrival)

    def idle_s(self) -> float:
        """Seconds since the last recorded message (inf before the first)."""
        with self._lock:
            last = self._last_message_ns
        return math.inf if last == 0 else (time.monotonic_ns() - last) / 1e9

    def wait_for_sets(self, count: int, timeout_s: float, quiet_s: float = math.inf) -> bool:
        """Wait until `count` output sets arrived (True), or no message came for `quiet_s`
        seconds, or `timeout_s` passed (False)."""
        deadline = time.monotonic() + max(float(timeout_s), 0.0)
        while True:
            if len(self.output_stamps()) >= count:
                return True
            if time.monotonic() >= deadline or self.idle_s() >= quiet_s:
                return False
            time.sleep(0.05)

    def latencies(self) -> dict[int, float]:
        """Set stamp -> seconds from the input's arrival to the set's last output."""
        with self._lock:
            return {s: (self._set_arrival[s] - self._input_arrival[s]) / 1e9
                    for s in self._set_first if s in self._input_arrival}

    def stats(self) -> RecordingStats:
        """The statistics so far (see RecordingStats)."""
        lat = list(self.latencies().values())
        with self._lock:
            outs = sorted(self._set_first.values())
            ins = sorted(self._input_arrival.values())
            ages = [(self._set_wall[s] - s) / 1e9 for s in self._set_wall]
            counts = dict(self.counts)
            duration = (self._last_wall - self._first_wall) / 1e9 if self._first_wall else 0.0
            notes = list(self.notes)

        def rate(t: list[int]) -> float:
            return (len(t) - 1) / ((t[-1] - t[0]) / 1e9) if len(t) > 1 and t[-1] > t[0] \
                else math.nan

        return RecordingStats(
            path=str(self.path), counts=counts, input_sets=len(ins), output_sets=len(outs),
            matched_sets=len(lat), output_rate_hz=rate(outs), input_rate_hz=rate(ins),
            latency_median_s=_percentile(lat, 50), latency_p95_s=_percentile(lat, 95),
            latency_max_s=max(lat) if lat else math.nan,
            stamp_age_median_s=_percentile(ages, 50), duration_s=duration, notes=notes)


def record(path: Path | str, topics: Mapping[str, str] | None = None, *,
           duration_s: float | None = None, input_topic: str | None = None,
           stop: threading.Event | None = None) -> RecordingStats:
    """Record `topics` (default: the node's outputs) into an MCAP bag at `path` for
    `duration_s` seconds, until `stop` is set, or until Ctrl-C; returns the statistics."""
    if duration_s is not None and not (math.isfinite(duration_s) and duration_s > 0):
        raise ValueError(f"recording duration must be a positive number of seconds, got "
                         f"{duration_s}")
    stop = stop or threading.Event()
    deadline = math.inf if duration_s is None else time.monotonic() + duration_s
    recorder = Recorder(path, topics, input_topic=input_topic).start()
    try:
        while not stop.is_set() and time.monotonic() < deadline:
            stop.wait(0.1)
    except KeyboardInterrupt:
        pass
    return recorder.close()
