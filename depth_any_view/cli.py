"""The `depth-any-view` command: one entry point, one subcommand per job.

Heavy imports (torch, Open3D) happen inside each subcommand so `--help` stays instant.
Every subcommand exits non-zero with one clear line on bad input.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from depth_any_view.cli_bench import add_bench_parser
from depth_any_view.cli_types import parse_size
from depth_any_view.config import ConfigError


def cmd_synth(args: argparse.Namespace) -> int:
    """Generate a synthetic six-camera sequence as training shards or a rosbag2, or with
    --world shifted N shifted-world sequences (random rigs) into OUT/seq_<seed>."""
    # Shards are written by data/, bags by bag/synthetic.py (with the same arguments).
    bag = {} if args.format == "shards" else {"fmt": args.format}
    if args.world == "shifted":
        if args.dynamic:
            raise SystemExit("synth: --dynamic is not available with --world shifted")
        if bag:
            from depth_any_view.bag.synthetic import synthesize_shifted_bags as write_shifted
        else:
            from depth_any_view.data.shifted_world import synthesize_shifted as write_shifted
        paths = write_shifted(Path(args.out), sequences=args.sequences, frames=args.frames,
                              seed=args.seed, grid_dims=args.grid, progress=not args.quiet,
                              **bag)
        print(f"wrote {len(paths)} shifted sequences of {args.frames} frames to {args.out}")
        return 0
    if bag:
        from depth_any_view.bag.synthetic import synthesize_bag as write
    else:
        from depth_any_view.data.synth import synthesize as write
    out = write(Path(args.out), frames=args.frames, rig=args.rig, size=args.size,
                seed=args.seed, scene=args.scene, grid_dims=args.grid,
                progress=not args.quiet, dynamic=args.dynamic, **bag)
    print(f"wrote {args.frames} frames to {out}")
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    """Write a PNG of one synthetic frame: views, depth and occupancy from above."""
    from depth_any_view.data.preview import write_preview
    from depth_any_view.data.synth import generate_frames

    frames = list(generate_frames(frames=args.frame + 1, rig=args.rig, size=args.size,
                                  seed=args.seed, scene=args.scene, grid_dims=args.grid))
    path = write_preview(frames[-1], Path(args.out), trajectory=frames)
    print(f"wrote {path}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Train the network from a YAML config (single process or under torchrun)."""
    from depth_any_view.training.config import load_train_config
    from depth_any_view.training.trainer import Trainer

    cfg = load_train_config(args.config, args.set)
    trainer = Trainer(cfg, command="depth-any-view " + " ".join(sys.argv[1:]))
    try:
        if args.resume:
            trainer.load(args.resume)
        metrics = trainer.train()
    finally:
        trainer.close()
    if trainer.env.is_main:
        shown = {k: round(v, 4) for k, v in metrics.items()
                 if "/" not in k or k.startswith("train/")}
        print(f"trained {trainer.step} steps; checkpoint: {trainer.out_dir / 'last'}")
        print(f"final metrics: {shown}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Depth and occupancy metrics of weights on a synthetic split (JSON + Markdown)."""
    from depth_any_view.training.evaluate import evaluate_split, report_markdown, write_report

    result = evaluate_split(args.data, weights=args.weights, views=args.views,
                            random_init=args.random_init, max_frames=args.max_frames,
                            progress=not args.quiet, odometry=not args.no_odometry,
                            engine_overrides={"device": args.device,
                                              "precision": args.precision})
    js, md = write_report(result, args.out, title=f"Evaluation on {', '.join(args.data)}")
    print(report_markdown(result, title=f"Evaluation on {', '.join(args.data)}"))
    print(f"wrote {js} and {md}")
    if args.figure:
        from depth_any_view.training.figure import write_results_figure

        png = write_results_figure(args.data, args.figure, weights=args.weights,
                                   frame_index=args.figure_frame,
                                   random_init=args.random_init,
                                   engine_overrides={"device": args.device,
                                                     "precision": args.precision})
        print(f"wrote {png}")
    return 0


def cmd_eval_real(args: argparse.Namespace) -> int:
    """Depth on real Middlebury pairs, mono and stereo, against StereoSGBM (JSON, MD, PNG)."""
    from depth_any_view.data.real_images import RealDataMissing
    from depth_any_view.training.evaluate_real import evaluate_real, headline, write_real_report

    try:
        result = evaluate_real(weights=args.weights, pairs=args.pairs, max_width=args.max_width,
                               mono_pose=args.mono_pose, keep_maps=True,
                               engine_overrides={"device": args.device,
                                                 "precision": args.precision})
    except RealDataMissing as exc:
        print(f"depth-any-view eval-real: error: {exc}", file=sys.stderr)
        return 2
    js, md = write_real_report(result, args.out, photographs=not args.no_photographs)
    print(headline(result))
    print(f"wrote {js}, {md} and {', '.join(result['figures'].values()) or 'no figure'}")
    return 0


def cmd_ablate(args: argparse.Namespace) -> int:
    """Train and evaluate the reference design's ablations alike; one table (JSON + MD)."""
    from depth_any_view.training.ablate import run_ablation, table_markdown

    only = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else None
    table = run_ablation(args.data, args.out, config=args.config, sets=args.set,
                         minutes=args.minutes, steps=args.steps, only=only,
                         resume=args.resume, ablations=args.ablations,
                         max_frames=args.max_frames, progress=not args.quiet)
    print(table_markdown(table))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The README's main job: render a bag, evaluate it, run the node on it over DDS, draw."""
    from depth_any_view.bag.messages import BagError
    from depth_any_view.demo import run_demo
    from depth_any_view.model.weights import WeightsError

    try:
        return run_demo(Path(args.out), frames=args.frames, seed=args.seed, size=args.size,
                        rate=args.rate, weights=args.weights, random_init=args.random_init,
                        skip_live=args.skip_live, params_file=args.params, scene=args.scene)
    except (BagError, WeightsError) as exc:
        print(f"depth-any-view demo: error: {exc}", file=sys.stderr)
        return 2


def cmd_replay(args: argparse.Namespace) -> int:
    """Publish a bag over DDS with its recorded timing (and /clock), like `ros2 bag play`;
    with Fast DDS and no Fast DDS configuration of the user's, through the packaged
    profile (`ros/fastdds.py`: a publisher of six cameras' images needs it)."""
    from depth_any_view.ros.fastdds import apply_default_profile

    dds = apply_default_profile()
    print(f"depth-any-view replay: {dds.message}", file=sys.stderr if dds.warn else sys.stdout,
          flush=True)
    try:
        from depth_any_view.ros.replay import replay
    except KeyboardInterrupt:  # Ctrl-C while rclpy imports: a user's stop, not a failure
        print("depth-any-view replay: stopped by Ctrl-C", file=sys.stderr)
        return 0
    except ImportError as exc:
        print(f"depth-any-view replay: error: needs ROS 2 rclpy and rosgraph_msgs "
              f"(pip install ros-rclpy ros-rosgraph-msgs ros-rmw-fastrtps-cpp): {exc}",
              file=sys.stderr)
        return 2
    from depth_any_view.bag.messages import BagError

    try:
        return replay(args.bag, rate=args.rate, loop=args.loop, clock=args.clock,
                      delay_s=args.delay, wait_subscribers_s=args.wait_subscribers,
                      topics=args.topics)
    except BagError as exc:
        print(f"depth-any-view replay: error: {exc}", file=sys.stderr)
        return 2


def cmd_eval_bag(args: argparse.Namespace) -> int:
    """Run the node's pipeline over a bag offline; report figures, plots and an output bag."""
    from depth_any_view.bag.evaluate import evaluate_bag
    from depth_any_view.bag.messages import BagError
    from depth_any_view.bag.report import format_headline, headline
    from depth_any_view.model.weights import WeightsError

    overrides = {"device": args.device} if args.device else None
    try:
        result = evaluate_bag(args.bag, args.report, params_file=args.params,
                              weights=args.weights, random_init=args.random_init,
                              progress=not args.quiet, parameters=overrides,
                              output_bag=not args.no_output_bag)
    except (BagError, WeightsError) as exc:
        print(f"depth-any-view eval-bag: error: {exc}", file=sys.stderr)
        return 2
    print(format_headline(headline(result)))
    files = result.get("report_files", {})
    print(f"report: {files.get('markdown', Path(args.report) / 'report.md')}")
    for name, path in sorted(files.items()):
        if name != "markdown":
            print(f"  {name}: {path}")
    return 0


def cmd_slam(args: argparse.Namespace) -> int:
    """The node's output into a SLAM consumer (KISS-ICP or Open3D RGB-D) over a bag, scored
    against the bag's odometry; report, TUM trajectories, plot and meshes
    (slam/slam_command.py)."""
    from depth_any_view.bag.messages import BagError
    from depth_any_view.model.weights import WeightsError
    from depth_any_view.slam.slam_command import run_slam
    from depth_any_view.slam.slam_report import RUN_LABELS

    overrides = {"device": args.device} if args.device else None
    try:
        result = run_slam(args.bag, args.report, backend=args.backend, depth=args.depth,
                          params_file=args.params, weights=args.weights,
                          random_init=args.random_init, parameters=overrides,
                          slam_config=args.config, meshes=not args.no_mesh,
                          progress=not args.quiet)
    except (BagError, WeightsError) as exc:
        print(f"depth-any-view slam: error: {exc}", file=sys.stderr)
        return 2

    def num(value: object, spec: str) -> str:
        return "n/a" if value is None else format(value, spec)

    for kind, run in result["runs"].items():
        rpe = "  ".join(f"RPE {k} {num(v.get('translation_pct'), '.2f')} %"
                        for k, v in (run.get("rpe_steady") or {}).items())
        mesh = run.get("mesh") or {}
        f5 = ((mesh.get("fscore") or {}).get("0.05") or {}).get("fscore")
        print(f"{result['backend']} on {RUN_LABELS[kind]}: ATE "
              f"{num((run.get('ate') or {}).get('rmse'), '.3f')} m  {rpe} (steady)  jumps "
              f"{num((run.get('jumps') or {}).get('count'), 'd')}  "
              f"{num(run['time_ms']['median'], '.1f')} ms/set  Chamfer "
              f"{num(mesh.get('chamfer_m'), '.3f')} m  F@5cm {num(f5, '.3f')}")
    for t in result["targets"]:
        met = {True: "met", False: "NOT met", None: "n/a"}[t["met"]]
        print(f"target {met:>7}: {t['text']}")
    print(f"report: {result['files']['markdown']}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Export the network to one ONNX file for a fixed view count and image size."""
    from depth_any_view.inference.onnx_export import export_onnx, parse_hw
    from depth_any_view.model.network import DepthAnyViewNet
    from depth_any_view.model.weights import WeightsError, default_weights_path, load_weights

    if args.views < 1:
        raise ValueError(f"--views must be >= 1, got {args.views}")
    size = parse_hw(args.size) if args.size else None
    path = Path(args.weights).expanduser() if args.weights else default_weights_path("lite")
    try:
        state, cfg, _ = load_weights(path)
    except WeightsError as exc:
        print(f"depth-any-view export: error: {exc}", file=sys.stderr)
        return 2
    model = DepthAnyViewNet(cfg)
    model.load_state_dict(state)
    spec = export_onnx(model.eval(), args.onnx, views=args.views, image_size=size,
                       source=str(path))
    H, W = spec.image_size
    print(f"wrote {args.onnx}: {spec.views} views at {H}x{W} from {path}\n"
          f"  inputs:  {', '.join(spec.inputs)}\n  outputs: {', '.join(spec.outputs)}")
    if spec.temporal:
        print("  temporal cost volume: feed match_features back as prev_match_features "
              "with the next set; prev_valid all false = no previous set")
    return 0


def _add_world_args(p: argparse.ArgumentParser, frames: int) -> None:
    """Options shared by the commands that render the synthetic world."""
    p.add_argument("--frames", type=int, default=frames, help="number of frames (10 Hz)")
    p.add_argument("--rig", default="surround6",
                   help="rig name (surround6, front_array) or path to a rig YAML")
    p.add_argument("--size", type=parse_size, default=(256, 256), help="image size WxH")
    p.add_argument("--seed", type=int, default=0, help="random seed (scene and trajectory)")
    p.add_argument("--scene", choices=["mixed", "indoor", "outdoor"], default="mixed",
                   help="scene family; mixed alternates by seed")
    p.add_argument("--grid", type=int, default=64, help="occupancy grid voxels per axis (N^3)")


def _add_pipeline_arguments(p: argparse.ArgumentParser) -> None:
    """The options of a command that runs the node's pipeline over a bag (eval-bag, slam):
    --params, --weights, --random-init, --device."""
    p.add_argument("--params", default=None,
                   help="node parameters YAML (default: config/depth_any_view.yaml)")
    p.add_argument("--weights", default=None,
                   help="safetensors weights (default: the parameters' / shipped ones)")
    p.add_argument("--random-init", action="store_true",
                   help="untrained network (checks the plumbing, not the figures)")
    p.add_argument("--device", default=None, help="override the parameters' device")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with all subcommands."""

    parser = argparse.ArgumentParser(
        prog="depth-any-view",
        description="Multi-view depth and occupancy for a calibrated camera rig (ROS 2).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("synth", help="generate a synthetic six-camera sequence")
    p.add_argument("--out", required=True, help="output directory (shards) or bag path")
    p.add_argument("--format", choices=["shards", "mcap", "sqlite3"], default="shards",
                   help="training shards (npz) or a rosbag2 (MCAP or sqlite3)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--dynamic", action="store_true", default=None,
                   help="add moving persons and cars crossing near the robot (default: "
                   "dynamic.enabled in config/synth.yaml, off)")
    p.add_argument("--world", choices=["standard", "shifted"], default="standard",
                   help="standard: the six-camera world of config/synth.yaml; shifted: the "
                   "second world of config/shifted_world.yaml with a random rig per sequence "
                   "(sequence i has seed SEED+i and goes to OUT/seq_<seed>; --rig, --size, "
                   "--scene do not apply)")
    p.add_argument("--sequences", type=int, default=1,
                   help="shifted world: number of sequences (seeds SEED .. SEED+N-1)")
    _add_world_args(p, frames=20)
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("preview", help="write a PNG of one synthetic frame")
    p.add_argument("--out", required=True, help="PNG path")
    p.add_argument("--frame", type=int, default=0, help="which frame of the sequence")
    _add_world_args(p, frames=1)
    p.set_defaults(func=cmd_preview)

    p = sub.add_parser("train", help="train the network (torchrun for several processes)")
    p.add_argument("--config", default="lite",
                   help="training config: lite, paper or a YAML path (config/train_*.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config option, e.g. --set max_steps=100 "
                        "--set loss.cos_weight=0 (repeatable)")
    p.add_argument("--resume", default=None, help="checkpoint directory to resume from")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="metrics of weights on a synthetic shard split")
    p.add_argument("--weights", default=None,
                   help="safetensors weights (default: the shipped lite weights)")
    p.add_argument("--data", nargs="+", required=True,
                   help="shard directories or folders of them (e.g. data/test)")
    p.add_argument("--out", default="output/evaluate", help="where metrics.json/.md go")
    p.add_argument("--views", nargs="+", default=None, help="camera subset")
    p.add_argument("--max-frames", type=int, default=0, help="stop after N frames (0 = all)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"])
    p.add_argument("--no-odometry", action="store_true",
                   help="do not give the network the frames' true poses (as /odom would): "
                        "a temporal cost volume then never sees the previous frame")
    p.add_argument("--random-init", action="store_true",
                   help="evaluate an untrained network (baseline)")
    p.add_argument("--figure", default=None, metavar="PNG",
                   help="also write the results picture of one frame (views, depth, error, "
                        "occupancy from above)")
    p.add_argument("--figure-frame", type=int, default=0,
                   help="frame of the split for --figure (0-based, across sequences)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("eval-real", help="depth on real Middlebury stereo pairs (opencv-doc, "
                       "scikit-image): one camera, two cameras, StereoSGBM")
    p.add_argument("--weights", default=None,
                   help="safetensors weights (default: the shipped lite weights)")
    p.add_argument("--out", default="output/eval_real",
                   help="where real_images.json/.md and the figures go")
    p.add_argument("--pairs", nargs="+", default=None,
                   help="pair names (default: all installed: aloe, motorcycle)")
    p.add_argument("--max-width", type=int, default=0,
                   help="scale pairs down to at most this many pixels wide (0 = as shipped)")
    p.add_argument("--mono-pose", choices=["identity", "rig"], default="identity",
                   help="T_base_cam of the single-camera run: identity, or the stereo rig's "
                   "left camera")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"])
    p.add_argument("--no-photographs", action="store_true",
                   help="skip the figure of scikit-image's photographs")
    p.set_defaults(func=cmd_eval_real)

    p = sub.add_parser("ablate", help="train + evaluate the ablations (config/ablations.yaml)")
    p.add_argument("--config", default="lite",
                   help="base training config of every variant: lite, paper or a YAML path")
    p.add_argument("--data", nargs="+", required=True,
                   help="test split: shard directories or folders of them (e.g. data/test)")
    p.add_argument("--out", default="runs/ablate",
                   help="output folder: <out>/<variant>/ and ablation.json/.md")
    p.add_argument("--minutes", type=float, default=None,
                   help="training budget per variant, minutes (default: the config's)")
    p.add_argument("--steps", type=int, default=None,
                   help="training budget per variant, optimizer steps (default: the config's)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a base config option for every variant (repeatable)")
    p.add_argument("--only", default=None, metavar="NAME[,NAME...]",
                   help="run only these variants (comma-separated)")
    p.add_argument("--resume", action="store_true",
                   help="keep variants already trained (and evaluated) in --out")
    p.add_argument("--ablations", default="ablations.yaml",
                   help="variants YAML (default: config/ablations.yaml)")
    p.add_argument("--max-frames", type=int, default=0,
                   help="evaluate at most N test frames (0 = all)")
    p.add_argument("--quiet", action="store_true",
                   help="no evaluation progress bars (training keeps its own)")
    p.set_defaults(func=cmd_ablate)

    p = sub.add_parser("replay", help="publish a bag over DDS with its timing (and /clock)")
    p.add_argument("bag", help="rosbag2 directory or .mcap / .db3 file")
    p.add_argument("--rate", type=float, default=1.0, help="playback speed factor")
    p.add_argument("--loop", action="store_true", help="restart at the end until Ctrl-C")
    p.add_argument("--clock", action="store_true",
                   help="publish /clock with the bag time (for use_sim_time:=true)")
    p.add_argument("--delay", type=float, default=1.0,
                   help="seconds to wait before playing, so subscribers discover the topics")
    p.add_argument("--wait-subscribers", type=float, default=0.0, metavar="SECONDS",
                   help="first wait (at most SECONDS) until every topic has a subscriber")
    p.add_argument("--topics", nargs="+", default=None, help="replay only these topics")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("eval-bag", help="run the node's pipeline over a rosbag2 and report")
    p.add_argument("bag", help="rosbag2 directory or .mcap / .db3 file")
    p.add_argument("--report", required=True, help="report directory (created)")
    _add_pipeline_arguments(p)
    p.add_argument("--no-output-bag", action="store_true",
                   help="skip writing the node's outputs as an MCAP bag")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_eval_bag)

    from depth_any_view.adapt.command import add_adapt_parser

    add_adapt_parser(sub)

    p = sub.add_parser("slam", help="feed the node's output to KISS-ICP / Open3D RGB-D "
                       "odometry over a bag and score trajectory and mesh")
    p.add_argument("bag", help="rosbag2 directory or .mcap / .db3 file (its /odom is the "
                   "ground truth, never given to the consumer)")
    p.add_argument("--report", required=True, help="report directory (created)")
    p.add_argument("--backend", choices=["kiss-icp", "open3d-rgbd"], default="kiss-icp",
                   help="consumer: KISS-ICP on the fused cloud, or Open3D RGB-D odometry "
                   "per camera")
    p.add_argument("--depth", choices=["predicted", "gt", "both"], default="both",
                   help="depth fed to the consumer: the node's, the bag's ground truth, or "
                   "both side by side")
    _add_pipeline_arguments(p)
    p.add_argument("--config", default=None,
                   help="consumer settings YAML (default: config/slam.yaml)")
    p.add_argument("--no-mesh", action="store_true", help="skip the TSDF meshes")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_slam)

    add_bench_parser(sub)

    p = sub.add_parser(
        "export", help="export the network to ONNX (TensorRT, OpenVINO, ONNX Runtime)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Export the network to one self-contained ONNX file (opset 18) with "
                    "static\nshapes: batch 1, --views views, one image size.\n\n"
                    "inputs:  images (1,V,3,H,W) float32 RGB in [0,1]; K (1,V,3,3) pixels at "
                    "(H,W);\n         T_base_cam (1,V,4,4) optical frame -> base_link, m; "
                    "view_mask (1,V) bool\n         (false = no image: pad a smaller set)\n"
                    "outputs: depth (1,V,H,W) m along the optical axis; confidence (1,V,H,W) "
                    "when the\n         weights have it; occupancy_logits (1,X,Y,Z); "
                    "occupancy_observed (1,X,Y,Z) bool\n\n"
                    "Weights with a temporal cost volume (cost_temporal) also take the "
                    "previous set:\nprev_match_features, prev_K, prev_T_base_cam, "
                    "T_base_prevbase (1,4,4: previous base_link\n-> current, from odometry) "
                    "and prev_valid (1,V) bool, and also return match_features\nto feed back "
                    "with the next set; prev_valid all false = no previous set (first set,\n"
                    "reset), which gives exactly the network run without one.")
    p.add_argument("--onnx", required=True, metavar="OUT", help="output .onnx file")
    p.add_argument("--views", type=int, default=6,
                   help="number of camera views V (the node's camera_names; default 6)")
    p.add_argument("--size", default=None, metavar="HxW",
                   help="network input height x width in pixels, multiples of 32 "
                        "(default: the weights' image_size)")
    p.add_argument("--weights", default=None,
                   help="safetensors weights (default: the shipped "
                        "depth_any_view/weights/lite.safetensors)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("demo", help="the end-to-end demo of the README")
    p.add_argument("--out", default="output/demo", help="output directory")
    p.add_argument("--frames", type=int, default=30, help="number of frames (10 Hz)")
    p.add_argument("--seed", type=int, default=7, help="random seed")
    p.add_argument("--size", type=parse_size, default=(256, 256), help="image size WxH")
    p.add_argument("--scene", choices=["mixed", "indoor", "outdoor"], default="outdoor",
                   help="scene family of the synthetic sequence")
    p.add_argument("--rate", type=float, default=None,
                   help="replay speed factor of the live stage (default: paced from the "
                        "offline time per set so that the node keeps up)")
    p.add_argument("--weights", default=None,
                   help="safetensors weights (default: the shipped lite weights; random "
                        "weights, said loudly, while they are not installed)")
    p.add_argument("--random-init", action="store_true",
                   help="untrained network (checks the plumbing, not the figures)")
    p.add_argument("--params", default=None,
                   help="node parameters YAML (default: config/depth_any_view.yaml, run on "
                        "the CPU, in bf16 where the CPU has bf16 instructions)")
    p.add_argument("--skip-live", action="store_true",
                   help="offline stages only: no node, no DDS")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # to re-run it (bench --isa)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return int(func(args) or 0)
    except (ConfigError, FileExistsError, FileNotFoundError, ValueError) as exc:
        print(f"depth-any-view {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"depth-any-view {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
