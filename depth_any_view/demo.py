"""The README's main job (`make demo`): the whole product, end to end, on one machine.

1. render: a short six-camera sequence from the synthetic world (data/synth.py), written as
   an MCAP rosbag2 on the contract's topics with ground truth (bag/writer.py);
2. offline: `eval-bag` on that bag (bag/evaluate.py, the node's own pipeline without ROS):
   report.json / report.md and figures, the depth and occupancy scores, and the time one
   set takes on this machine, which paces the live stage;
3. live: the real node (`depth_any_view_node`) as a separate process, the bag replayed to
   it over DDS (ros/replay.py) and its outputs recorded (ros/recorder.py) into an MCAP bag;
   checked: one output set per input set, the output rate and the end-to-end latency, and
   the live depth scored against the ground truth;
4. picture (demo_picture.py): `demo.png`, the six views, their predicted and true depth,
   the fused point cloud and the occupancy map from above, predicted against true.
It ends by printing where everything is and the headline figures.

DDS stays on this machine: the demo sets ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and, when
unset, a random ROS_DOMAIN_ID, for itself and the node. Without the shipped weights
(`depth_any_view/weights/lite.safetensors`, made by `depth-any-view train`) the demo says
so and runs a randomly initialised network: every stage still runs, the scores then only
show that the plumbing works.
"""

from __future__ import annotations

import math
import os
import random
import shutil
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from depth_any_view.bench.cpu import cpuinfo_field
from depth_any_view.ros.fastdds import PROFILE_VARIABLE, apply_default_profile
from depth_any_view.ros.process import (
    NodeProcess,
    NodeStartError,
    localhost_dds_env,
    log_tail,
)
from depth_any_view.topics import CAMERA_INFO, IMAGE, ODOM, camera_topic

NODE_EXECUTABLE = "depth_any_view_node"
BAG_DIR = "sequence"  # the rendered input bag, inside the output folder
REPORT_DIR = "report"  # eval-bag report
LIVE_DIR = "node_outputs"  # the node's outputs recorded over DDS
NODE_LOG = "node.log"
PICTURE = "demo.png"
DEFAULT_FRAMES = 30
DEFAULT_SIZE = (256, 256)  # (width, height) pixels
DEFAULT_SEED = 7
DEFAULT_SCENE = "outdoor"
# The demo runs the network on the CPU; in bf16 autocast where the CPU has bf16 instructions
# (avx512_bf16 / AMX): measured ~2x faster forward passes than fp32 on such a 2-core CPU
# with the same AbsRel, delta1 and IoU to the third decimal. Elsewhere bf16 is emulated and
# slow, so fp32.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
# Live pacing: one input set every PACE_MEDIAN x the offline median time per set, plus
# PACE_EXTRA_S. The margin covers the node's slower sets (its latest-wins slot absorbs a
# single slow one); the offline stage runs sets back to back, so on a busy machine its time
# per set is the pessimistic one and the live node, idle between sets, keeps up easily.
PACE_MEDIAN = 2.0
PACE_EXTRA_S = 0.05  # seconds per set for DDS transport and message conversion
NODE_READY_TIMEOUT_S = 240.0  # loading torch and the network on a busy 2-core machine
DISCOVERY_TIMEOUT_S = 30.0
LOG_TAIL_LINES = 25


class DemoError(RuntimeError):
    """A demo stage failed; the message says which and what to look at."""


def _say(text: str) -> None:
    print(f"[demo] {text}", flush=True)


# ---------------------------------------------------------------------------- set-up
class RosEnvironment:
    """Sets the demo's DDS environment in os.environ (the node inherits it) and restores
    the previous values on exit: localhost discovery, a random ROS_DOMAIN_ID when none is
    set, and with Fast DDS (unless the user chose a profile or transports) the packaged
    profile `config/fastdds_large_images.xml` (`ros/fastdds.py`): the default 512 KB
    shared-memory segment cannot hold a burst of six images, so best-effort subscribers
    (the node's cameras) would lose most of them; the profile has 32 MB."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.saved: dict[str, str | None] = {}
        self.profile: Path | None = None

    def _set(self, key: str, value: str) -> None:
        self.saved.setdefault(key, os.environ.get(key))
        os.environ[key] = value

    def __enter__(self) -> RosEnvironment:
        domain = os.environ.get("ROS_DOMAIN_ID") or random.SystemRandom().randint(1, 100)
        for key, value in localhost_dds_env(domain).items():
            if os.environ.get(key) != value:
                self._set(key, value)
        self.saved.setdefault(PROFILE_VARIABLE, os.environ.get(PROFILE_VARIABLE))
        self.profile = apply_default_profile().applied
        return self

    def __exit__(self, *exc: object) -> None:
        for key, value in self.saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    @property
    def domain_id(self) -> str:
        return os.environ.get("ROS_DOMAIN_ID", "0")


@dataclass
class Network:
    """Which weights the node and the evaluation run, and the parameters that say so."""

    label: str  # for the terminal and the picture
    random: bool
    weights: str | None  # a .safetensors path (None: shipped or random)
    node_parameters: dict[str, Any] = field(default_factory=dict)  # weights/preset/random_init


def choose_network(out: Path, parameters: Mapping[str, Any], weights: str | None,
                   random_init: bool) -> Network:
    """The network of the demo: --weights, else the preset's shipped weights, else random.

    With a weights file, its own model config (stored in the file) is written to
    `out/weights_model.yaml` and given to the node as `preset`, so any weights file works.
    """
    from depth_any_view.model.weights import default_weights_path, read_weights_config

    if weights is not None and random_init:
        raise ValueError("--weights and --random-init exclude each other; pass one")
    if weights is not None:
        import dataclasses

        import yaml

        cfg, _ = read_weights_config(weights)  # WeightsError when missing or foreign
        model_yaml = out / "weights_model.yaml"
        model_yaml.write_text(yaml.safe_dump(
            {k: list(v) if isinstance(v, tuple) else v
             for k, v in dataclasses.asdict(cfg).items()}, sort_keys=True))
        path = str(Path(weights).resolve())
        return Network(f"weights {path}", False, path,
                       {"weights": path, "preset": str(model_yaml.resolve())})
    if random_init:
        return Network("RANDOM weights (--random-init)", True, None, {"random_init": True})
    preset = str(parameters.get("preset", "lite"))
    given = str(parameters.get("weights", "") or "")
    if given:
        return Network(f"weights {given}", False, given, {})
    shipped = default_weights_path(preset) if preset in ("lite", "paper") else None
    if shipped is not None and shipped.is_file():
        return Network(f"shipped weights {shipped}", False, None, {})
    where = shipped if shipped is not None else f"the weights of preset {preset}"
    _say(f"NOTE: {where} does not exist yet (train it: depth-any-view train --config lite); "
         "running with RANDOM weights: every stage runs, but depth and occupancy are "
         "meaningless, the scores only check the plumbing")
    return Network("RANDOM weights (shipped weights not installed)", True, None,
                   {"random_init": True})


def cpu_has_bf16() -> bool:
    """True when /proc/cpuinfo lists a bf16 instruction set (Linux; False elsewhere)."""
    flags = (cpuinfo_field("flags") or "").split()
    return any(f in flags for f in BF16_CPU_FLAGS)


def demo_parameters() -> dict[str, Any]:
    """The node parameters the demo sets unless told otherwise: CPU, bf16 where fast."""
    return {"device": "cpu", "precision": "bf16" if cpu_has_bf16() else "fp32"}


def _param_text(value: Any) -> str:
    """A parameter value as `-p name:=value` text (YAML)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_param_text(v) for v in value) + "]"
    return str(value)


def node_command(params_file: Path, parameters: Mapping[str, Any]) -> list[str]:
    """The node's command line: the venv's executable (or `python -m`), params file, -p."""
    exe = Path(sys.executable).parent / NODE_EXECUTABLE
    cmd = [str(exe)] if exe.is_file() else [sys.executable, "-m", "depth_any_view.ros.node"]
    cmd += ["--ros-args", "--params-file", str(params_file)]
    for name, value in parameters.items():
        cmd += ["-p", f"{name}:={_param_text(value)}"]
    return cmd


def _log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a log, indented, as the demo's messages quote them."""
    return log_tail(path, lines, indent="    ")


def _remove_previous(path: Path) -> None:
    """Remove an earlier demo bag (a directory with metadata.yaml) at `path`."""
    if path.exists():
        if not (path.is_dir() and (path / "metadata.yaml").is_file()):
            raise FileExistsError(f"{path} exists and is not a bag of an earlier demo; choose "
                                  "another --out or remove it")
        shutil.rmtree(path)


# ---------------------------------------------------------------------------- live stage
@dataclass
class LiveResult:
    """What the live stage measured (see ros/recorder.py RecordingStats)."""

    stats: Any  # RecordingStats
    rate: float  # replay speed factor
    input_sets: int  # sets in the bag
    replay_s: float  # seconds of replay
    node_exit: int | None  # the node's exit status after SIGINT


def set_period(median_s: float | None) -> float:
    """Seconds between input sets that the node keeps up with, from the offline median
    time per set (seconds; None or NaN when unknown: 0.5 s assumed)."""
    median = median_s if median_s is not None and math.isfinite(median_s) else 0.5
    return PACE_MEDIAN * median + PACE_EXTRA_S


def pace(bag_period_s: float, need_s: float) -> float:
    """Replay speed factor so one input set (bag_period_s apart in the bag) comes every
    need_s seconds, at most real time (1.0), two significant digits, rounded down."""
    rate = min(1.0, bag_period_s / need_s) if need_s > 0 else 1.0
    digits = 1 - int(math.floor(math.log10(rate)))
    return max(math.floor(rate * 10 ** digits) / 10 ** digits, 10 ** -digits)


def run_live(bag: Path, out: Path, params_file: Path, node_parameters: Mapping[str, Any],
             camera_names: list[str], rate: float, input_sets: int, per_set_s: float,
             bag_period_s: float) -> LiveResult:
    """Start the node, record its outputs, replay the bag to it over DDS, drain, stop."""
    import rclpy
    from rclpy.context import Context
    from rclpy.node import Node
    from rclpy.signals import SignalHandlerOptions

    from depth_any_view.bag.reader import BagReader
    from depth_any_view.ros.recorder import Recorder, output_topics
    from depth_any_view.ros.replay import BagPlayer

    live_bag = out / LIVE_DIR
    _remove_previous(live_bag)
    log = out / NODE_LOG
    values = dict(node_parameters)
    inputs = [camera_topic(c, k) for c in camera_names for k in (IMAGE, CAMERA_INFO)]
    inputs.append(ODOM)
    cmd = node_command(params_file, values)
    _say(f"starting the node: {' '.join(cmd)}")
    _say(f"  (log: {log})")
    # One rclpy context (one DDS participant) for the recorder and the player.
    context = Context()
    rclpy.init(context=context, signal_handler_options=SignalHandlerOptions.NO)
    node = recorder = player_node = None
    exit_status = None
    try:
        node = NodeProcess(cmd, log, tail_lines=LOG_TAIL_LINES, tail_indent="    ")
        recorder = Recorder(live_bag, output_topics(_file_and(params_file, values)),
                            input_topic=inputs[0], context=context).start()
        t0 = time.monotonic()
        try:
            node.wait_ready(NODE_READY_TIMEOUT_S)
        except NodeStartError as exc:
            raise DemoError(str(exc)) from None
        _say(f"the node is ready ({time.monotonic() - t0:.1f} s); waiting for its topics")
        missing = recorder.wait_for_publishers(DISCOVERY_TIMEOUT_S)
        if missing:
            raise DemoError(f"the node's topics {missing} were not discovered within "
                            f"{DISCOVERY_TIMEOUT_S:.0f} s (DDS on localhost, ROS_DOMAIN_ID "
                            f"{os.environ.get('ROS_DOMAIN_ID')}); last lines of {log}:\n"
                            f"{_log_tail(log)}")
        with BagReader(bag) as reader:
            player_node = Node("depth_any_view_demo_replay", context=context,
                               start_parameter_services=False)
            player = BagPlayer(reader, player_node, rate=rate, topics=inputs,
                               warn=lambda text: _say(text))
            # every input needs the node's subscription (the first image the recorder's too)
            waiting = _wait_subscribers(player, {inputs[0]: 2}, DISCOVERY_TIMEOUT_S)
            if waiting:
                _say(f"WARNING: no subscriber yet on {', '.join(waiting)}; playing anyway")
            _say(f"replaying {input_sets} sets at rate {rate:g} (one set every "
                 f"{bag_period_s / rate:.2f} s) to the node over DDS, recording its outputs"
                 " ...")
            t1 = time.monotonic()
            player.play(delay_s=1.0)
            replay_s = time.monotonic() - t1
            # the player stays until the outputs are in: a publisher destroyed at once can
            # take its last (best-effort) messages with it
            quiet = max(10.0, 6.0 * per_set_s)
            done = recorder.wait_for_sets(input_sets, timeout_s=max(30.0, 4 * quiet),
                                          quiet_s=quiet)
            if not done:
                _say(f"outputs drained: {len(recorder.output_stamps())} of {input_sets} sets "
                     f"came (no output for {quiet:.0f} s)")
            time.sleep(0.5)  # the last set's occupancy messages follow its cloud
        exit_status = node.stop()
        if exit_status not in (0, -signal.SIGINT):
            _say(f"the node exited with status {exit_status}; see {log}")
    finally:
        if node is not None and exit_status is None:
            exit_status = node.stop()
        stats = recorder.close() if recorder is not None else None
        if player_node is not None:
            player_node.destroy_node()
        rclpy.try_shutdown(context=context)
    return LiveResult(stats, rate, input_sets, replay_s, exit_status)


def _wait_subscribers(player: Any, expected: Mapping[str, int], timeout_s: float) -> list[str]:
    """Wait until each replayed topic has its expected number of subscribers (1 unless
    given); returns the topics still short of it after `timeout_s` seconds."""
    deadline = time.monotonic() + timeout_s
    while True:
        short = [t for t, topic in sorted(player.topics.items())
                 if topic.publisher.get_subscription_count() < expected.get(t, 1)]
        if not short or time.monotonic() >= deadline:
            return short
        time.sleep(0.05)


def _file_and(params_file: Path, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The node's parameter values: the file's section, then the overrides."""
    from depth_any_view.bag.node_parameters import load_node_parameters

    values, _ = load_node_parameters(params_file)
    values.update(overrides)
    return values


# ---------------------------------------------------------------------------- the demo
def _fmt(value: Any, fmt: str, scale: float = 1.0) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return format(float(value) * scale, fmt)


def run_demo(out: Path, *, frames: int = DEFAULT_FRAMES, seed: int = DEFAULT_SEED,
             size: tuple[int, int] = DEFAULT_SIZE, rate: float | None = None,
             weights: str | None = None, random_init: bool = False, skip_live: bool = False,
             params_file: Path | str | None = None,
             parameters: Mapping[str, Any] | None = None,
             scene: str = DEFAULT_SCENE) -> int:
    """Render, evaluate offline, run the node live over DDS, draw; returns an exit code.

    Args:
        out: output folder (created): the bag, report/, node_outputs/, node.log, demo.png.
        frames: frames of the sequence (10 Hz).
        seed: scene and trajectory seed.
        size: image (width, height) in pixels.
        rate: replay speed factor of the live stage; None = paced from the offline stage's
            time per set so that the node keeps up.
        weights: a .safetensors file; None = the shipped weights (random when missing).
        random_init: run a randomly initialised network.
        skip_live: only the offline stages (no node, no DDS).
        params_file: the node's parameters YAML (default config/depth_any_view.yaml).
        parameters: parameter values replacing the file's (and the demo's CPU defaults).
        scene: 'outdoor', 'indoor' or 'mixed'.

    Raises:
        ValueError, FileExistsError, ConfigError, WeightsError, BagError: bad arguments.
    """
    if frames < 2:
        raise ValueError(f"--frames must be at least 2, got {frames}")
    if rate is not None and not (math.isfinite(rate) and rate > 0):
        raise ValueError(f"--rate must be a positive number, got {rate}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with RosEnvironment(out) as env:
        return _run(out, env, frames=frames, seed=seed, size=size, rate=rate, weights=weights,
                    random_init=random_init, skip_live=skip_live, params_file=params_file,
                    parameters=parameters, scene=scene)


def _run(out: Path, env: RosEnvironment, *, frames: int, seed: int, size: tuple[int, int],
         rate: float | None, weights: str | None, random_init: bool, skip_live: bool,
         params_file: Path | str | None, parameters: Mapping[str, Any] | None,
         scene: str) -> int:
    """run_demo inside its DDS environment."""
    from depth_any_view.bag.evaluate import evaluate_bag
    from depth_any_view.bag.node_parameters import load_node_parameters
    from depth_any_view.bag.report import format_headline, headline
    from depth_any_view.bag.writer import write_bag
    from depth_any_view.config import config_path
    from depth_any_view.data.synth import generate_frames
    from depth_any_view.demo_picture import read_outputs, write_picture

    t_start = time.monotonic()
    params_path = (Path(params_file) if params_file is not None
                   else config_path("depth_any_view.yaml"))
    file_values, _ = load_node_parameters(params_path)
    demo_defaults = demo_parameters()
    if params_file is not None:  # a user's file decides device and precision itself
        demo_defaults = {k: v for k, v in demo_defaults.items() if k not in file_values}
    merged = {**demo_defaults, **(parameters or {})}
    network = choose_network(out, {**file_values, **merged}, weights, random_init)
    node_parameters = {**merged, **network.node_parameters}
    values = {**file_values, **node_parameters}
    camera_names = [str(c) for c in values.get("camera_names") or []]
    z_band = (float(values.get("grid_z_min", 0.1)), float(values.get("grid_z_max", 1.5)))

    # ---- 1. render
    bag = out / BAG_DIR
    _remove_previous(bag)
    _say(f"1/4 rendering {frames} frames of 6 cameras at {size[0]}x{size[1]} ({scene}, seed "
         f"{seed}) ...")
    t0 = time.monotonic()
    rendered = list(generate_frames(frames=frames, rig="surround6", size=size, seed=seed,
                                    scene=scene, grid_dims=64, progress=True))
    write_bag(bag, rendered, storage="mcap", camera_names=camera_names or None)
    camera_names = camera_names or list(rendered[0].camera_names)
    render_s = time.monotonic() - t0
    stamps = [f.stamp_ns for f in rendered]
    period_s = float(np.median(np.diff(stamps))) / 1e9
    _say(f"    wrote {bag} ({frames} sets, {render_s:.1f} s)")

    # ---- 2. offline evaluation (the node's pipeline without ROS)
    _say(f"2/4 offline evaluation of the bag with the node's pipeline ({network.label}) ...")
    t0 = time.monotonic()
    if not skip_live:  # the live stage records the outputs: no offline copy (a stale one goes)
        _remove_previous(out / REPORT_DIR / "outputs")
    eval_params = {k: v for k, v in node_parameters.items()
                   if k not in ("weights", "preset", "random_init")}
    result = evaluate_bag(bag, out / REPORT_DIR, params_file=params_path,
                          weights=network.weights, random_init=network.random,
                          progress=True, parameters=eval_params, output_bag=skip_live)
    eval_s = time.monotonic() - t0
    head = headline(result)
    lat = (result.get("latency") or {}).get("total") or {}
    need_s = set_period(lat.get("median"))
    _say(f"    {result['throughput']['sets']} sets in {eval_s:.1f} s; one set takes "
         f"{_fmt(lat.get('median'), '.0f', 1e3)} ms (p95 {_fmt(lat.get('p95'), '.0f', 1e3)}"
         f" ms) here")

    # ---- 3. live: the node over DDS
    live = None
    if not skip_live:
        live_rate = rate if rate is not None else pace(period_s, need_s)
        how = "--rate" if rate is not None else (
            f"paced to the offline time per set: one set every {need_s:.2f} s")
        _say(f"3/4 live: the node over DDS (localhost, ROS_DOMAIN_ID {env.domain_id}), "
             f"replay rate {live_rate:g} ({how})")
        if env.profile is not None:
            _say(f"    Fast DDS profile {env.profile}: 32 MB shared memory for the image "
                 "bursts")
        try:
            live = run_live(bag, out, params_path, node_parameters, camera_names, live_rate,
                            frames, need_s, period_s)
        except DemoError as exc:
            print(f"depth-any-view demo: error: {exc}", file=sys.stderr, flush=True)
            return 1
    else:
        _say("3/4 live stage skipped (--skip-live)")

    # ---- 4. picture
    _say("4/4 drawing the picture ...")
    frames_by_stamp = {f.stamp_ns: f for f in rendered}
    source = out / LIVE_DIR if live is not None else Path(result.get("output_bag") or "")
    live_scores, shown = (read_outputs(source, camera_names, frames_by_stamp, values)
                          if source.is_dir() else ({}, None))
    picture = None
    if shown is not None:
        frame = frames_by_stamp[shown.stamp_ns]
        T_base_odom = np.linalg.inv(frame.T_odom_base)
        traj = np.array([(T_base_odom @ f.T_odom_base)[:3, 3] for f in rendered
                         if f.stamp_ns <= shown.stamp_ns])
        origin = "the live node over DDS" if live is not None else "the offline pipeline"
        title = "depth_any_view: six cameras in, depth, points and occupancy out"
        subtitle = (f"set {frame.index + 1} of {frames} at t = "
                    f"{(shown.stamp_ns - stamps[0]) / 1e9:.1f} s, outputs of {origin}  |  "
                    f"AbsRel {_fmt(head.get('abs_rel'), '.3f')}   delta1 "
                    f"{_fmt(head.get('delta1'), '.3f')}   voxel IoU "
                    f"{_fmt(head.get('iou'), '.3f')}")
        if live is not None:
            s = live.stats
            subtitle += (f"   |   {_fmt(s.output_rate_hz, '.1f')} Hz, latency "
                         f"{_fmt(s.latency_median_s, '.0f', 1e3)} ms")
        warning = ("RANDOM WEIGHTS (untrained network): the predictions are meaningless, "
                   "this picture shows the plumbing" if network.random else None)
        picture = write_picture(out / PICTURE, frame, shown, title=title, subtitle=subtitle,
                                warning=warning, z_band=z_band, trajectory=traj)

    # ---- summary
    total_s = time.monotonic() - t_start
    files = result.get("report_files", {})
    print(flush=True)
    _say(f"done in {total_s:.0f} s ({network.label})")
    _say(f"  report:        {files.get('markdown', out / REPORT_DIR / 'report.md')}")
    for name in ("sample_panel", "birds_eye", "per_camera", "error_vs_distance"):
        if name in files:
            _say(f"                 {files[name]}")
    _say(f"  picture:       {picture if picture is not None else 'none (no outputs)'}")
    _say(f"  input bag:     {bag} (MCAP, {frames} sets of {len(camera_names)} cameras + "
         f"ground truth)")
    if live is not None:
        _say(f"  node outputs:  {out / LIVE_DIR} (MCAP, recorded over DDS); node log: "
             f"{out / NODE_LOG}")
    _say(f"  offline:       {format_headline(head)}")
    status = 0
    if live is not None:
        s = live.stats
        _say(f"  live over DDS: {s.input_sets} input sets -> {s.output_sets} output sets "
             f"(bag: {live.input_sets}), node output {_fmt(s.output_rate_hz, '.2f')} Hz at "
             f"replay rate {live.rate:g}, end-to-end latency median "
             f"{_fmt(s.latency_median_s, '.0f', 1e3)} ms, p95 "
             f"{_fmt(s.latency_p95_s, '.0f', 1e3)} ms")
        _say(f"                 live depth AbsRel {_fmt(live_scores.get('abs_rel'), '.3f')}, "
             f"delta1 {_fmt(live_scores.get('delta1'), '.3f')} over "
             f"{live_scores.get('sets_scored', 0)} sets")
        for note in s.notes:
            _say(f"  note: {note}")
        if s.output_sets == 0:
            print(f"depth-any-view demo: error: the node published no outputs; see "
                  f"{out / NODE_LOG}:\n{_log_tail(out / NODE_LOG)}", file=sys.stderr)
            status = 1
        elif s.output_sets < live.input_sets:
            _say(f"  WARNING: {live.input_sets - s.output_sets} sets gave no output: the node "
                 f"did not keep up at rate {live.rate:g} (or DDS lost input); try a lower "
                 "--rate")
    if network.random:
        _say("  (RANDOM weights: the scores above check the plumbing, not the network)")
    return status
