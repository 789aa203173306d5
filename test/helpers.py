"""Shared helpers of the tests: a tiny network and the real node as a child process.

Import it as `from helpers import ...`: pytest's default ("prepend") import mode puts the
folder of each test module (this one, `test/`, which has no `__init__.py`) first on
`sys.path`, so this module is found whether the suite runs as `python -m pytest test` or
one file at a time.

- The tiny network: `TINY_MODEL` (a model config of a few thousand parameters at 32x32,
  seconds to build and run on one CPU thread), `tiny_model(**changes)` for a variant, and
  `write_tiny_network(folder, ...)`, which writes the config YAML and seeded random weights
  through the real save path, optionally with the occupancy head's output layer rescaled
  (`occupancy_gain`, `occupancy_bias`) so its probabilities are decided instead of all
  near 0.5.
- The node: `dds_env` (localhost DDS on a private domain), `ros_args`, `start_node` and
  `stop_node` run `python -m depth_any_view.ros.node` through
  `depth_any_view.ros.process.NodeProcess`, the same class the demo and the benchmark use.
"""

from __future__ import annotations

import os
import random
import subprocess
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from depth_any_view.ros.process import (
    NodeProcess,
    localhost_dds_env,
    log_tail,
    node_module_command,
)

ROOT = Path(__file__).resolve().parent.parent  # the repository (the node's working folder)

# The tiny network's config (model/config.py ModelConfig fields); depth range 0.3-20 m,
# a 16x16x8 occupancy grid over the default 25.6 x 25.6 x 4 m volume.
TINY_MODEL: dict[str, Any] = {
    "backbone": "resnet18", "backbone_width": 8, "image_size": [32, 32], "hidden": 32,
    "layers": 2, "heads": 2, "token_stride": 16, "decoder_width": 16, "grid_dims": [16, 16, 8],
    "occ_channels": 8, "occ_stride": 2, "occ_hidden": 8, "occ_blocks": 1,
    "occ_fine_channels": 8, "occ_fine_kernel": 1, "min_depth": 0.3, "max_depth": 20.0}
# The occupancy output layer's weights are multiplied by this in the tests that need
# decided probabilities (random logits are small, so every voxel would sit near 0.5).
OCCUPANCY_GAIN = 30.0


def tiny_model(**changes: Any) -> dict[str, Any]:
    """A copy of TINY_MODEL with `changes` (e.g. grid_dims=[16, 16, 16])."""
    unknown = sorted(set(changes) - set(TINY_MODEL) - {"grid_lower", "grid_upper", "confidence"})
    assert not unknown, f"not a tiny-model field: {unknown}"
    return {**{k: list(v) if isinstance(v, list) else v for k, v in TINY_MODEL.items()},
            **changes}


def write_tiny_model_config(folder: Path, model: Mapping[str, Any] | None = None) -> Path:
    """`folder/model_tiny.yaml` holding `model` (TINY_MODEL by default); returns its path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model_tiny.yaml"
    path.write_text(yaml.safe_dump(dict(TINY_MODEL if model is None else model)))
    return path


def write_tiny_network(folder: Path, model: Mapping[str, Any] | None = None, *,
                       occupancy_gain: float | None = None,
                       occupancy_bias: float | None = None, seed: int = 0) -> dict[str, Path]:
    """Write a tiny model config and its random weights (torch seed `seed`) into `folder`.

    Args:
        folder: where `model_tiny.yaml` and `tiny.safetensors` go (overwritten).
        model: the config (TINY_MODEL by default).
        occupancy_gain: multiply the occupancy output layer's weights by this (e.g.
            OCCUPANCY_GAIN) so its probabilities are confident; None = as initialised.
        occupancy_bias: set that layer's bias (a logit) to this; None = as initialised.
        seed: the same seed and config give the same weights, so a second call with only
            another `occupancy_bias` changes nothing else.

    Returns:
        {'preset': config path, 'weights': weights path}: the node's `preset` and `weights`
        parameters (the weights file also carries the config).
    """
    import torch

    from depth_any_view.model.config import load_model_config
    from depth_any_view.model.network import build_model
    from depth_any_view.model.weights import save_weights

    cfg_path = write_tiny_model_config(folder, model)
    cfg = load_model_config(str(cfg_path))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = build_model(cfg)
    if occupancy_gain is not None or occupancy_bias is not None:
        out_layer = list(net.occupancy_head.children())[-1]  # the layer giving the logits
        assert tuple(out_layer.weight.shape)[0] == 1 and out_layer.bias is not None
        with torch.no_grad():
            if occupancy_gain is not None:
                out_layer.weight.mul_(float(occupancy_gain))
            if occupancy_bias is not None:
                out_layer.bias.fill_(float(occupancy_bias))
    weights = save_weights(net, cfg, Path(folder) / "tiny.safetensors")
    return {"preset": cfg_path, "weights": weights}


# ---------------------------------------------------------------------------- the node
def dds_env(domains: tuple[int, int] = (1, 100)) -> dict[str, str]:
    """Environment of a node process and of the test's own rclpy context: DDS on localhost
    only, a random ROS_DOMAIN_ID in `domains` (inclusive), unbuffered output, and this
    checkout first on PYTHONPATH."""
    env = localhost_dds_env(random.SystemRandom().randint(*domains))
    path = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(PYTHONUNBUFFERED="1", PYTHONPATH=path)
    return env


def _param_text(value: Any) -> str:
    """A parameter value as `-p name:=value` text (YAML: true/false, [a, b])."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_param_text(v) for v in value) + "]"
    return str(value)


def ros_args(params: Mapping[str, Any]) -> list[str]:
    """`--ros-args -p name:=value ...` for a parameter dict."""
    out = ["--ros-args"]
    for k, v in params.items():
        out += ["-p", f"{k}:={_param_text(v)}"]
    return out


def start_node(env: Mapping[str, str], params: Mapping[str, Any], log: Path) -> NodeProcess:
    """`python -m depth_any_view.ros.node` with `params`, run from the repository, its
    output into `log` (in the test's process group: an interrupted test run ends it too)."""
    return NodeProcess(node_module_command(ros_args(params)), log, env, cwd=ROOT,
                       new_session=False)


def stop_node(node: NodeProcess) -> int | None:
    """SIGINT (a clean shutdown), SIGTERM / SIGKILL only if it hangs; the exit status."""
    return node.stop(interrupt_s=10.0, terminate_s=5.0, kill_s=10.0)


def tail(log: Path, n: int = 40) -> str:
    """The last `n` lines of a log file (failure messages quote it)."""
    return log_tail(log, n)


# ---------------------------------------------------------------------------- a test's graph
class SpinningNode:
    """An rclpy node of the test in a context of its own (on `domain_id`), spun by an
    executor on a daemon thread once `start_spinning` is called: the robot side of the DDS tests.
    Subclasses create their publishers and subscriptions, then call `start_spinning`."""

    def __init__(self, name: str, domain_id: int) -> None:
        import rclpy
        from rclpy.node import Node

        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=int(domain_id))
        self.node = Node(name, context=self.context)
        self.executor: Any = None
        self.thread: threading.Thread | None = None

    def start_spinning(self) -> None:
        """Spin the node on a daemon thread until `close`."""
        from rclpy.executors import SingleThreadedExecutor

        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self) -> None:
        """Spin until the context shuts down."""
        from rclpy.executors import ExternalShutdownException

        try:
            self.executor.spin()
        except ExternalShutdownException:
            pass

    def close(self) -> None:
        """Stop spinning, destroy the node and shut its context down."""
        import rclpy

        if self.executor is not None:
            self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        if self.thread is not None:
            self.thread.join(timeout=5.0)


def run_nodes_to_exit(args: Mapping[str, list[str]], env: Mapping[str, str],
                      timeout_s: float = 120.0) -> dict[str, tuple[int, str, str]]:
    """Start one node per case with its command-line `args`, all at once (start-up
    failures take seconds each), and collect (exit status, stdout, stderr) per case; a
    node still running after `timeout_s` seconds is killed."""
    procs = {name: subprocess.Popen(node_module_command(a), cwd=ROOT, env=dict(env),
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name, a in args.items()}
    results = {}
    for name, proc in procs.items():
        try:
            out, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        results[name] = (proc.returncode, out, err)
    return results


def copy_bag(src: Path, dst: Path, keep: Callable[[str, int, int], bool]) -> Path:
    """A copy (bag directory `dst`, storage file `<dst name>.mcap`, no custom metadata) of
    a bag with the messages for which keep(topic, n, total) is true (n: the message's
    index on its topic); topics without kept messages are left out."""
    from rosbags.rosbag2 import Reader, StoragePlugin, Writer

    from depth_any_view.bag.messages import default_typestore

    ts = default_typestore()
    with Reader(src) as reader:
        seen: dict[str, int] = {}
        chosen = []
        for conn, t, raw in reader.messages():
            n = seen.get(conn.topic, 0)
            seen[conn.topic] = n + 1
            if keep(conn.topic, n, conn.msgcount):
                chosen.append((conn, t, raw))
        with Writer(dst, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
            conns: dict[str, Any] = {}
            for conn, t, raw in chosen:
                if conn.topic not in conns:
                    conns[conn.topic] = writer.add_connection(conn.topic, conn.msgtype,
                                                              typestore=ts)
                writer.write(conns[conn.topic], t, raw)
    return dst
