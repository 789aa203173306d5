"""The `adapt` subcommand's arguments and handler; cli.py only registers them.

Nothing heavy is imported until the command runs, so `depth-any-view --help` stays instant.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def cmd_adapt(args: argparse.Namespace) -> int:
    """Fine-tune on a robot's unlabelled bags; weights, checkpoint, MLflow run and report."""
    from depth_any_view.adapt.run import adapt_bags
    from depth_any_view.bag.messages import BagError
    from depth_any_view.model.weights import WeightsError

    overrides = list(args.set or [])
    if args.device:
        overrides.append(f"device={args.device}")
    try:
        result = adapt_bags(args.bags, args.out, params_file=args.params, weights=args.weights,
                            steps=args.steps, resume=args.resume, config=args.config,
                            overrides=overrides, progress=not args.quiet,
                            command=" ".join(["depth-any-view", *args.argv]))
    except (BagError, WeightsError) as exc:
        print(f"depth-any-view adapt: error: {exc}", file=sys.stderr)
        return 2
    held = result.get("holdout")
    if held is not None:
        b, a = held["before"], held["after"]
        print(f"held-out AbsRel {b['abs_rel']:.4f} -> {a['abs_rel']:.4f}, scale ratio "
              f"{b['scale_ratio']:.3f} -> {a['scale_ratio']:.3f} ({held['sets']} sets)")
    else:
        print("no depth ground truth in the bags: nothing held out was scored")
    print(f"weights: {result['weights']}")
    print(f"report: {result['report_files'].get('markdown', Path(args.out) / 'report.md')}")
    return 0


def add_adapt_parser(sub: argparse._SubParsersAction) -> None:
    """Register `adapt` on the command's subparsers."""
    p = sub.add_parser("adapt", help="self-supervised fine-tuning on a robot's own "
                       "unlabelled bags (photometric, no ground truth)")
    p.add_argument("bags", nargs="+", metavar="BAG",
                   help="rosbag2 directories or .mcap / .db3 files of the robot")
    p.add_argument("--out", required=True,
                   help="output directory: model.safetensors, report, checkpoint (created)")
    p.add_argument("--params", default=None,
                   help="node parameters YAML: topics, camera_names, rig_file "
                   "(default: config/depth_any_view.yaml)")
    p.add_argument("--weights", default=None,
                   help="starting weights (default: the parameters' / shipped ones)")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps (config: steps)")
    p.add_argument("--resume", default=None, metavar="DIR",
                   help="continue an earlier run from its --out directory")
    p.add_argument("--config", default=None,
                   help="adaptation settings YAML (default: config/adapt.yaml)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="change one adaptation setting, e.g. --set lr=1e-5 (repeatable)")
    p.add_argument("--device", default=None, help="auto | cpu | cuda (config: device)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_adapt)
