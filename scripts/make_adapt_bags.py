"""Write the bags of the adaptation measurement (README, "Adapting to your robot").

Sequence SEED of the shifted world, rendered for ADAPT + EVAL frames as one bag
(`<out>/seq<SEED>_full`, with `<...>.params.yaml` and `<...>.rig.yaml` beside it), then
split by frame: the first ADAPT frames without any ground-truth topic
(`seq<SEED>_adapt<ADAPT>`: what a robot records) and the last EVAL frames with ground truth
(`seq<SEED>_eval<EVAL>`: for `eval-bag`). `/tf_static` goes into both.

    python scripts/make_adapt_bags.py OUT [--seed 31009] [--adapt 200] [--eval 100]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from rosbags.rosbag2 import Reader, StoragePlugin, Writer

from depth_any_view.bag.messages import TOPIC_OCCUPANCY_GT, TOPIC_TF_STATIC, default_typestore
from depth_any_view.bag.synthetic import write_shifted_bag

GROUND_TRUTH = ("/depth_gt", TOPIC_OCCUPANCY_GT)  # topic endings a robot's bag lacks


def split(full: Path, out: Path, keep: Callable[[str, int], bool]) -> Path:
    """Copy the messages of `full` for which keep(topic, index on its topic) holds."""
    ts = default_typestore()
    with Reader(full) as reader, Writer(out, version=9,
                                        storage_plugin=StoragePlugin.MCAP) as writer:
        seen: dict[str, int] = {}
        conns = {}
        for conn, stamp, raw in reader.messages():
            n = seen.get(conn.topic, 0)
            seen[conn.topic] = n + 1
            if not keep(conn.topic, n):
                continue
            if conn.topic not in conns:
                conns[conn.topic] = writer.add_connection(conn.topic, conn.msgtype,
                                                          typestore=ts)
            writer.write(conns[conn.topic], stamp, raw)
    return out


def main() -> None:
    """Render, then split (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for the bags (created)")
    parser.add_argument("--seed", type=int, default=31009, help="shifted-world sequence")
    parser.add_argument("--adapt", type=int, default=200, help="frames to adapt on")
    parser.add_argument("--eval", type=int, default=100, help="frames to evaluate on")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    full = args.out / f"seq{args.seed}_full"
    if not full.exists():
        write_shifted_bag(full, args.seed, frames=args.adapt + args.eval, grid_dims=16)
    first = args.adapt
    split(full, args.out / f"seq{args.seed}_adapt{args.adapt}",
          lambda t, n: t == TOPIC_TF_STATIC or (n < first and not t.endswith(GROUND_TRUTH)))
    split(full, args.out / f"seq{args.seed}_eval{args.eval}",
          lambda t, n: t == TOPIC_TF_STATIC or n >= first)
    print(f"wrote {full}, its params file {full}.params.yaml and the split bags in {args.out}")


if __name__ == "__main__":
    main()
