"""End to end over DDS: the real node in another process, cameras in, every output out.

The node (`python -m depth_any_view.ros.node`) starts as a subprocess with a parameters
file written into the output folder; this process plays six synthetic cameras (Image +
CameraInfo, stamped with the wall clock like a live driver) and odometry at a rate, and
subscribes to every output. Subscriptions are raw (`raw=True`): only the header stamp is
read from the serialized bytes, so measuring costs almost nothing and the latency is the
node's: arrival at the subscriber minus the input set's stamp, per output.

Rates go up a ladder (e.g. 1, 2, 3, 4, 5, 6, 8, 10 Hz); at each, N sets are published on a
fixed schedule, then the outputs are drained. The node keeps up with a rate when it
processed every published set, i.e. every set's point cloud arrived (none dropped: the
node's latest-wins hand-over replaces a set still waiting when the network is slower than
the cameras). The ladder stops at the first rate the node does not keep up with; the
highest one it kept up with is `max_rate_hz`. Separately, a set is complete when every
per-set output arrived (`SET_GROUPS`: depth images and CameraInfo of every camera, points,
voxels, grid). The MarkerArray is not a per-set output: the node publishes it at most every
`markers_period` seconds of set stamps (1 s by default), so each step checks it per period
instead (`marker_expectation`: the node's rule replayed over the processed sets) and
reports how many were due, arrived, and their rate. A step is `all_complete` when every
set is complete and every due MarkerArray arrived; `max_rate_complete_hz` is the highest
rate where that held: what DDS delivered, large depth images included. Outputs a node
parameter turns off (`publish_depth`, `publish_points`, ...) are not expected.

The six cameras of a set are published `camera_spacing_s` apart (4 ms; unsynchronised
drivers spread further): published back to back from one process, six 256x256 rgb8 images
(1.2 MB) overflow Fast DDS's UDP send path on the loopback and whole images are lost, so
sets arrive partial. A probe step after the ladder publishes back to back at the lowest
rate and reports how many sets still arrive complete.

DDS stays on this machine: ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and a ROS_DOMAIN_ID of
this run for both processes.
"""

from __future__ import annotations

import logging
import os
import struct
import subprocess
import threading
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from depth_any_view import topics
from depth_any_view.bench.common import peak_rss_mib, summarize
from depth_any_view.bench.workload import Workload, pose_on_track
from depth_any_view.ros.process import NodeProcess, localhost_dds_env, node_module_command
from depth_any_view.topics import camera_topic

LOG = logging.getLogger(__name__)

OUTPUT_GROUPS = ("depth", "depth_info", "points", "voxels", "markers", "grid")
SET_GROUPS = ("depth", "depth_info", "points", "voxels", "grid")  # one per processed set
GROUP_SWITCH = {"depth": "publish_depth", "depth_info": "publish_depth",  # node parameters
                "points": "publish_points", "voxels": "publish_voxels",
                "markers": "publish_markers", "grid": "publish_grid"}
NODE_CAPABILITY_KEY = "inference: cpu_capability"  # in the node's /diagnostics (CPU device)
DEFAULT_RATES = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0, 30.0)


@dataclass
class DdsOptions:
    """What the end-to-end run uses; times in seconds, rates in Hz."""

    preset: str = "lite"  # preset name or model config YAML path
    device: str = "cpu"
    precision: str = "fp32"
    weights: str | None = None  # None: the shipped weights if installed, else random
    rates: tuple[float, ...] = DEFAULT_RATES
    step_s: float = 5.0  # publishing time per rate
    min_sets: int = 6  # sets per rate at least
    drain_s: float = 3.0  # wait this long without new outputs before ending a step
    startup_timeout_s: float = 240.0  # node start: imports, network, warm-up
    target_hz: float = 5.0
    camera_spacing_s: float = 0.004  # between two cameras' publications (see module doc)
    burst_probe: bool = True  # one extra step with the cameras published back to back
    node_params: dict[str, Any] = field(default_factory=dict)  # extra node parameters


# ---------------------------------------------------------------------------- helpers
def node_env(domain_id: int) -> dict[str, str]:
    """The node's environment: this process's (the --isa pinning variables included), DDS
    on localhost in the run's domain, this package first on PYTHONPATH, unbuffered."""
    env = localhost_dds_env(domain_id)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def header_stamp_ns(data: bytes, sequence_first: bool = False) -> int:
    """Header stamp (ns) of a serialized message whose first field is a std_msgs/Header,
    or (sequence_first) whose first field is a sequence of such messages (MarkerArray).

    CDR: 4 bytes of encapsulation (byte 1: 0 big endian, 1 little endian), then the
    fields; int32 sec and uint32 nanosec start the Header.
    """
    if len(data) < 16:
        raise ValueError(f"serialized message of {len(data)} bytes is too short for a header")
    order = "<" if data[1] & 1 else ">"
    offset = 8 if sequence_first else 4
    sec, nanosec = struct.unpack_from(order + "iI", data, offset)
    return sec * 1_000_000_000 + nanosec


def node_setting(opts: DdsOptions, name: str) -> Any:
    """The value of node parameter `name` in this run: `opts.node_params`, else its
    default."""
    from depth_any_view.ros.params import SPECS

    return opts.node_params.get(name, SPECS[name].default)


def expected_groups(opts: DdsOptions) -> tuple[str, ...]:
    """The per-set output groups the node publishes with this run's parameters."""
    return tuple(g for g in SET_GROUPS if node_setting(opts, GROUP_SWITCH[g]))


def marker_expectation(processed: list[int], received: list[int], last_before: int | None,
                       period_s: float) -> dict[str, Any]:
    """Which MarkerArrays the node published for a step, by its rule (`_markers_due` in
    ros/node.py): a set's markers are due `period_s` seconds of stamps after the last
    published ones (0 = every set). Replayed over the stamps (ns) of the processed sets and
    of the markers received (a set whose markers arrived was processed; its markers were
    published, due by the rule or after a map reset), from the last marker stamp before
    the step (`last_before`, None = none yet).

    Returns {'due', 'received', 'missing', 'extra'} counts and 'missing_stamps'.
    """
    got = set(received)
    period_ns = round(float(period_s) * 1e9)
    last, due, missing, extra = last_before, 0, [], 0
    for s in sorted(set(processed) | got):
        by_rule = last is None or period_ns <= 0 or s < last or s - last >= period_ns
        if by_rule:
            due += 1
            if s not in got:
                missing.append(s)  # published (by the rule) and lost, or not published
        elif s in got:
            extra += 1  # e.g. at once after a map reset
        if by_rule or s in got:
            last = s
    return {"due": due, "received": len(got), "missing": len(missing), "extra": extra,
            "missing_stamps": missing}


def node_parameters(opts: DdsOptions) -> tuple[dict[str, Any], str]:
    """The node's parameters for this run and a label of the weights used."""
    from depth_any_view.model.weights import default_weights_path

    params: dict[str, Any] = {"preset": opts.preset, "device": opts.device,
                              "precision": opts.precision}
    if opts.weights:
        params["weights"] = str(opts.weights)
        label = str(opts.weights)
    elif not Path(opts.preset).suffix and default_weights_path(opts.preset).is_file():
        label = f"shipped {opts.preset} weights"
    else:
        params["random_init"] = True
        label = "random weights (speed does not depend on them)"
    params.update(opts.node_params)
    return params, label


class _Rig:
    """The cameras, odometry and output subscribers in one rclpy node of this process."""

    def __init__(self, w: Workload, domain_id: int) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from nav_msgs.msg import OccupancyGrid, Odometry
        from rclpy.executors import SingleThreadedExecutor
        from sensor_msgs.msg import CameraInfo, Image, PointCloud2
        from visualization_msgs.msg import MarkerArray

        from depth_any_view.ros import conversions as C
        from depth_any_view.ros.qos import qos_profile

        self.C = C
        self.w = w
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=int(domain_id))
        self.node = rclpy.create_node("depth_any_view_bench", context=self.context)
        q_in = qos_profile("reliable", 10)
        self.pub_image = [self.node.create_publisher(Image, camera_topic(n, topics.IMAGE), q_in)
                          for n in w.names]
        self.pub_info = [self.node.create_publisher(CameraInfo,
                                                    camera_topic(n, topics.CAMERA_INFO), q_in)
                         for n in w.names]
        self.pub_odom = self.node.create_publisher(Odometry, topics.ODOM, q_in)
        self.lock = threading.Lock()
        self.arrivals: dict[str, dict[int, int]] = defaultdict(dict)  # topic -> stamp -> ns
        self.last_arrival = time.monotonic()
        self.diagnostics: dict[str, str] = {}
        self.topics: dict[str, str] = {}  # topic -> output group
        q_out = qos_profile("reliable", 20)
        subs = [(topics.POINTS, PointCloud2, "points", False),
                (topics.VOXELS, PointCloud2, "voxels", False),
                (topics.MARKERS, MarkerArray, "markers", True),
                (topics.GRID, OccupancyGrid, "grid", False)]
        for n in w.names:
            subs.append((camera_topic(n, topics.DEPTH_IMAGE), Image, "depth", False))
            subs.append((camera_topic(n, topics.DEPTH_CAMERA_INFO), CameraInfo, "depth_info",
                         False))
        self.subs = []
        for topic, mtype, group, seq in subs:
            self.topics[topic] = group
            self.subs.append(self.node.create_subscription(
                mtype, topic, lambda data, t=topic, s=seq: self._on_output(t, data, s), q_out,
                raw=True))
        self.subs.append(self.node.create_subscription(
            DiagnosticArray, "/diagnostics", self._on_diagnostics, 10))
        self.infos = [C.camera_to_camera_info(c, C.make_header(0, f))
                      for c, f in zip(w.cameras, w.frame_ids)]
        self.images = [C.array_to_image_msg(np.ascontiguousarray(w.images[i]), "rgb8",
                                            C.make_header(0, w.frame_ids[i]))
                       for i in range(w.num_views)]
        self.odom = Odometry(child_frame_id="base_link")
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()
        self.t_start = time.monotonic()
        self.spacing_s = 0.0  # seconds between two cameras' publications

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException

        try:
            self.executor.spin()
        except (ExternalShutdownException, Exception):  # noqa: BLE001 - shutting down
            pass

    def _on_output(self, topic: str, data: bytes, sequence_first: bool) -> None:
        now = time.time_ns()
        try:
            stamp = header_stamp_ns(data, sequence_first)
        except (ValueError, struct.error):
            return
        with self.lock:
            self.arrivals[topic].setdefault(stamp, now)
            self.last_arrival = time.monotonic()

    def _on_diagnostics(self, msg: Any) -> None:
        values = {}
        for status in msg.status:
            short = status.name.split(":")[-1].strip()
            values[f"{short}: message"] = status.message
            values.update({f"{short}: {kv.key}": kv.value for kv in status.values})
        with self.lock:
            self.diagnostics.update(values)

    def subscribed(self) -> bool:
        """True when the node subscribes to every camera."""
        return all(p.get_subscription_count() > 0 for p in self.pub_image)

    def publish_set(self) -> int:
        """One synchronized set: CameraInfo + Image per camera and odometry, stamped now."""
        stamp = time.time_ns()
        sec, nanosec = divmod(stamp, 1_000_000_000)
        for info, img, p_info, p_img in zip(self.infos, self.images, self.pub_info,
                                            self.pub_image):
            for m in (info, img):
                m.header.stamp.sec, m.header.stamp.nanosec = sec, nanosec
            p_info.publish(info)
            p_img.publish(img)
            if self.spacing_s > 0:
                time.sleep(self.spacing_s)
        self.odom.header = self.C.make_header(stamp, "odom")
        T = pose_on_track(self.w.T_odom_base, 1, period_s=time.monotonic() - self.t_start)
        self.odom.pose.pose = self.C.matrix_to_pose(T)
        self.pub_odom.publish(self.odom)
        return stamp

    def outputs_of(self, stamps: list[int]) -> dict[str, dict[int, int]]:
        """Per output group: stamp -> arrival ns of the group's last topic (all its topics
        arrived), for the given stamps."""
        with self.lock:
            arrivals = {t: dict(v) for t, v in self.arrivals.items()}
        by_group: dict[str, dict[int, int]] = {}
        for group in OUTPUT_GROUPS:
            topics = [t for t, g in self.topics.items() if g == group]
            got = {}
            for s in stamps:
                times = [arrivals.get(t, {}).get(s) for t in topics]
                if all(x is not None for x in times):
                    got[s] = max(times)
            by_group[group] = got
        return by_group

    def marker_stamps(self) -> list[int]:
        """Stamps (ns) of every MarkerArray received so far."""
        with self.lock:
            return [s for t, g in self.topics.items() if g == "markers"
                    for s in self.arrivals.get(t, {})]

    def close(self) -> None:
        import rclpy

        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self.thread.join(timeout=5.0)


# ---------------------------------------------------------------------------- the run
def _step(rig: _Rig, rate: float, opts: DdsOptions, proc: subprocess.Popen) -> dict[str, Any]:
    """Publish at `rate` for the step's sets, drain, and measure."""
    n = max(int(opts.min_sets), int(round(rate * opts.step_s)))
    stamps: list[int] = []
    lateness = []
    t0 = time.monotonic()
    for k in range(n):
        due = t0 + k / rate
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        lateness.append(max(0.0, time.monotonic() - due))
        stamps.append(rig.publish_set())
    span = time.monotonic() - t0
    achieved = (n - 1) / span if span > 0 and n > 1 else rate
    end = time.monotonic()
    want = expected_groups(opts)
    while proc.poll() is None:
        groups, markers = _delivered(rig, stamps, opts)
        if all(len(groups[g]) == n for g in want) and markers["missing"] == 0:
            break
        with rig.lock:
            quiet = time.monotonic() - max(rig.last_arrival, end)
        if quiet > opts.drain_s or time.monotonic() - end > 10 * opts.drain_s + 30:
            break
        time.sleep(0.05)
    groups, markers = _delivered(rig, stamps, opts)
    want = expected_groups(opts)
    complete = [s for s in stamps if all(s in groups[g] for g in want)]
    produced = [s for s in stamps if any(s in groups[g] for g in OUTPUT_GROUPS)]
    processed = _processed(groups, stamps, want)
    latency = {}
    for g in OUTPUT_GROUPS:
        lat = [(groups[g][s] - s) / 1e9 for s in stamps if s in groups[g]]
        latency[g] = summarize(lat) if lat else None
    last = [(max(groups[g][s] for g in want) - s) / 1e9 for s in complete] if want else []
    latency["all"] = summarize(last) if last else None  # per-set outputs (not markers)
    rate_group = next((g for g in ("points", *want) if g in want), "points")
    arrivals = sorted(groups[rate_group].values())
    out_span = (arrivals[-1] - arrivals[0]) / 1e9 if len(arrivals) > 1 else None
    keeps_up = len(processed) == n
    return {"rate_hz": rate, "achieved_input_hz": achieved, "sets_published": n,
            "sets_produced": len(produced), "sets_complete": len(complete),
            "sets_per_output": {g: len(groups[g]) for g in OUTPUT_GROUPS},
            "expected_outputs": list(want), "sets_dropped": n - len(processed),
            "sets_incomplete": n - len(complete), "keeps_up": keeps_up,
            "all_complete": len(complete) == n and markers["missing"] == 0,
            "markers": markers,
            "output_hz": (len(arrivals) - 1) / out_span if out_span else None,
            "output_hz_of": rate_group,
            "publish_lateness_s": summarize(lateness), "latency_s": latency}


def _processed(groups: dict[str, dict[int, int]], stamps: list[int],
               want: tuple[str, ...]) -> list[int]:
    """Stamps the node processed: its point cloud arrived (or, with points off, any per-set
    output)."""
    if "points" in want:
        return [s for s in stamps if s in groups["points"]]
    return [s for s in stamps if any(s in groups[g] for g in want)]


def _delivered(rig: _Rig, stamps: list[int],
               opts: DdsOptions) -> tuple[dict[str, dict[int, int]], dict[str, Any]]:
    """Per group: stamp -> arrival ns (`_Rig.outputs_of`), and the MarkerArrays of the
    step against those due (`marker_expectation`, plus 'period_s', 'hz' and
    'complete')."""
    groups = rig.outputs_of(stamps)
    period = float(node_setting(opts, "markers_period"))
    received = sorted(groups["markers"])
    if node_setting(opts, "publish_markers"):
        before = [s for s in rig.marker_stamps() if stamps and s < stamps[0]]
        markers = marker_expectation(_processed(groups, stamps, expected_groups(opts)),
                                     received, max(before) if before else None, period)
    else:
        markers = {"due": 0, "received": len(received), "missing": 0,
                   "extra": len(received), "missing_stamps": []}
    span = (received[-1] - received[0]) / 1e9 if len(received) > 1 else 0.0
    markers.update(period_s=period, hz=(len(received) - 1) / span if span > 0 else None,
                   complete=markers["missing"] == 0)
    return groups, markers


def run_dds(w: Workload, opts: DdsOptions, out_dir: Path, domain_id: int,
            progress: Any = None) -> dict[str, Any]:
    """Start the node, climb the rate ladder, stop the node; see the module docstring.

    Returns {'max_rate_hz', 'steps', 'node_peak_rss_mib', ...}; on a node that does not
    start, {'error', 'log_tail'}.
    """
    say = progress or (lambda text: None)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    params, weights_label = node_parameters(opts)
    params_file = out_dir / "dds_node_params.yaml"
    params_file.write_text(yaml.safe_dump({"/**/depth_any_view": {"ros__parameters": params}},
                                          sort_keys=True))
    log = out_dir / "dds_node.log"
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"  # this process's rclpy too
    env = node_env(domain_id)
    result: dict[str, Any] = {"options": {**asdict(opts), "rates": list(opts.rates)},
                              "node_parameters": params, "weights": weights_label,
                              "domain_id": domain_id, "images": list(w.size),
                              "views": w.num_views, "steps": [],
                              "node_settings": {k: node_setting(opts, k) for k in (
                                  "markers_period", "publish_spacing", "marker_max_voxels")},
                              "expected_outputs": list(expected_groups(opts))}
    t_launch = time.monotonic()
    node = NodeProcess(node_module_command(["--ros-args", "--params-file", str(params_file)]),
                       log, env, new_session=False, tail_lines=30)
    proc = node.proc
    rig = None
    try:
        rig = _Rig(w, domain_id)
        rig.spacing_s = opts.camera_spacing_s
        deadline = time.monotonic() + opts.startup_timeout_s
        while proc.poll() is None and not rig.subscribed() and time.monotonic() < deadline:
            time.sleep(0.1)
        if proc.poll() is not None or not rig.subscribed():
            raise RuntimeError(f"the node did not subscribe to the cameras within "
                               f"{opts.startup_timeout_s:.0f} s (exit status {proc.poll()})")
        # warm-up: one set at a time until outputs come back
        warm: list[int] = []
        while time.monotonic() < deadline and proc.poll() is None:
            warm.append(rig.publish_set())
            t = time.monotonic()
            while time.monotonic() - t < 2.0:
                if rig.outputs_of(warm)["points"]:
                    break
                time.sleep(0.05)
            if rig.outputs_of(warm)["points"]:
                break
        if not rig.outputs_of(warm)["points"]:
            raise RuntimeError(f"no output from the node within {opts.startup_timeout_s:.0f} s "
                               f"of starting it (exit status {proc.poll()})")
        result["startup_s"] = time.monotonic() - t_launch
        time.sleep(opts.drain_s)
        say(f"dds: node ready after {result['startup_s']:.1f} s")
        best, best_complete, complete_so_far = 0.0, 0.0, True
        for rate in opts.rates:
            step = _step(rig, float(rate), opts, proc)
            result["steps"].append(step)
            lat = step["latency_s"]["all"]
            lat_text = "-" if lat is None else f"{lat['median'] * 1e3:.0f} ms"
            say(f"dds: {rate:g} Hz: {step['sets_complete']}/{step['sets_published']} sets "
                f"complete, latency median {lat_text}")
            if proc.poll() is not None:
                raise RuntimeError(f"the node exited during the {rate:g} Hz step "
                                   f"(status {proc.returncode})")
            if not step["keeps_up"]:
                break
            best = float(rate)
            complete_so_far = complete_so_far and step["all_complete"]
            if complete_so_far:
                best_complete = float(rate)
            time.sleep(min(opts.drain_s, 1.0))
        result["max_rate_hz"] = best
        result["max_rate_complete_hz"] = best_complete
        if opts.burst_probe and opts.camera_spacing_s > 0 and proc.poll() is None:
            time.sleep(min(opts.drain_s, 1.0))
            rig.spacing_s = 0.0
            probe = _step(rig, float(min(opts.rates)), opts, proc)
            rig.spacing_s = opts.camera_spacing_s
            result["burst_probe"] = probe
            say(f"dds: back-to-back cameras at {probe['rate_hz']:g} Hz: "
                f"{probe['sets_complete']}/{probe['sets_published']} sets complete")
        result["node_peak_rss_mib"] = peak_rss_mib(proc.pid)
        with rig.lock:
            result["node_diagnostics"] = dict(rig.diagnostics)
    except RuntimeError as exc:
        result["error"] = str(exc)
        result["log_tail"] = node.tail()
    finally:
        if rig is not None:
            rig.close()
        node.stop(interrupt_s=15.0)
    result["node_exit_status"] = node.returncode
    result["log"] = str(log)
    tgt = opts.target_hz
    best = result.get("max_rate_hz")
    if best is not None:
        result["target"] = {"target_hz": tgt, "met": best >= tgt,
                            "shortfall_hz": max(0.0, tgt - best),
                            "ladder_top_hz": float(max(opts.rates))}
    return result
