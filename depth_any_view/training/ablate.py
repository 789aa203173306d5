"""The reference design's ablations: train every variant alike, evaluate alike, one table.

`depth-any-view ablate --config lite --data data/test --out runs/ablate --minutes 10` reads
the variants from `config/ablations.yaml` (full model; no depth-consistency loss; no
cross-view fusion; 3 views instead of 6; no temporal context where the network has any;
the full model with another seed as a noise reference). Each variant trains from the same
base config with the same budget, seed and data into `<out>/<variant>/` (checkpoint in
`last/`, `train_summary.json`), is evaluated on the same test split with the evaluate
command's code (`<out>/<variant>/eval/metrics.json|md`), and `<out>/ablation.json` +
`<out>/ablation.md` hold one table.

Deltas are variant - full. A variant trained on a camera subset is tested on that subset,
and its deltas are taken against the full model scored on the same cameras (pixels pooled
exactly from the per-camera sums), so both rows score the same pixels; the full model
still sees all six images, which is what the ablation measures.

The variants and their configurations are in ablation_variants.py, the table in
ablation_table.py; this module runs them and gathers the public names.
"""

from __future__ import annotations

import gc
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from depth_any_view.config import ConfigError, config_path
from depth_any_view.training.ablation_table import (
    build_table,
    headline,
    judge,
    pooled_depth,
    table_markdown,
    write_table,
)
from depth_any_view.training.ablation_variants import (
    Variant,
    load_variants,
    select_variants,
    variant_config,
)


# ---------------------------------------------------------------------------- the run
def _read_json(path: Path) -> dict[str, Any]:
    """A JSON file written by this module or write_report."""
    return json.loads(path.read_text())


def _comparable(cfg_dict: dict[str, Any]) -> dict[str, Any]:
    """A training config as stored, minus what may differ between identical protocols."""
    return {k: v for k, v in json.loads(json.dumps(cfg_dict)).items()
            if k not in ("out_dir", "mlflow_uri")}


def _train_variant(cfg: Any, vdir: Path, command: str, log: Callable[[str], None]
                   ) -> dict[str, Any]:
    """Train one variant and write `train_summary.json`; returns the summary."""
    from depth_any_view.training.trainer import Trainer

    if (vdir / "last").exists():
        log(f"    '{vdir / 'last'}' is from an unfinished run: training again from scratch "
            "(a continued run would not get the same budget)")
    trainer = Trainer(cfg, command=command)
    t0 = time.monotonic()
    try:
        last = trainer.train()
    finally:
        trainer.close()
    minutes = (time.monotonic() - t0) / 60.0
    summary = {"steps": int(trainer.step), "minutes": minutes,
               "weights": str(vdir / "last" / "model.safetensors"),
               "train_config": _comparable(cfg.to_dict()),
               "model_config": json.loads(json.dumps(asdict(trainer.model_cfg))),
               "final_train": {k: float(v) for k, v in last.items()
                               if k.startswith("train/") and math.isfinite(float(v))}}
    del trainer
    gc.collect()
    vdir.mkdir(parents=True, exist_ok=True)
    (vdir / "train_summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
    return summary


def _expected_frames(dirs: Sequence[Path], max_frames: int) -> int:
    """Frames evaluate_split will score on these shard directories."""
    from depth_any_view.data.shards import read_meta

    total = sum(int(read_meta(d)["frames"]) for d in dirs)
    return min(total, max_frames) if max_frames else total


def run_ablation(data: Sequence[str | Path] | str | Path, out: str | Path, *,
                 config: str = "lite", sets: Sequence[str] = (), minutes: float | None = None,
                 steps: int | None = None, only: Sequence[str] | None = None,
                 resume: bool = False, ablations: str | Path = "ablations.yaml",
                 max_frames: int = 0, progress: bool = True,
                 log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train and evaluate the selected variants; write `ablation.json` and `ablation.md`.

    Args:
        data: test split: shard directories or folders of them (e.g. data/test).
        out: output folder; each variant goes to out/<name>/.
        config: base training config (lite, paper or a YAML path).
        sets: `key=value` overrides applied to the base config of every variant.
        minutes: wall-clock training budget per variant, minutes (None: the config's).
        steps: optimizer-step budget per variant (None: the config's).
        only: variant names to run (None: all); finished variants already in `out` with
            the same protocol still appear in the table.
        resume: keep variants whose training (and evaluation) is already in `out`.
        ablations: the variants YAML (packaged name or path).
        max_frames: evaluate at most this many test frames (0 = all).
        progress: progress bars for training and evaluation.
        log: where progress lines go (default: print).

    Returns:
        The table as written to ablation.json.
    """
    from depth_any_view.data.dataset import find_shard_dirs
    from depth_any_view.data.shards import read_meta
    from depth_any_view.model.config import load_model_config
    from depth_any_view.training.evaluate import evaluate_split, write_report
    from depth_any_view.training.losses import LossConfig
    from depth_any_view.training.trainer import model_config_with

    say = log or (lambda s: print(s, flush=True))
    if minutes is not None and not minutes > 0:
        raise ConfigError(f"--minutes must be > 0, got {minutes}")
    if steps is not None and not steps > 0:
        raise ConfigError(f"--steps must be > 0, got {steps}")
    if isinstance(data, (str, Path)):
        data = [data]
    for d in data:
        if not Path(d).exists():
            raise FileNotFoundError(f"test split '{d}' does not exist; make it with "
                                    "`depth-any-view synth --format shards --out "
                                    f"{d}/seq_0 --seed 1000` or scripts/make_datasets.sh")
    test_dirs = find_shard_dirs(list(data))
    test_cams = list(read_meta(test_dirs[0])["camera_names"])
    out = Path(out)
    variants = load_variants(ablations)
    selected = {v.name for v in select_variants(variants, only)}
    full = next(v for v in variants if v.role == "full")

    # Every config is built and checked before anything trains (fail fast, not at hour 3).
    cfgs: dict[str, Any] = {}
    for v in variants:
        if not v.applicable:
            continue
        cfg = variant_config(config, sets, v, out, minutes=minutes, steps=steps)
        model_config_with(load_model_config(cfg.model), cfg.model_overrides)
        LossConfig.from_dict(cfg.loss)
        bad = [c for c in (cfg.views or []) if c not in test_cams]
        if bad:
            raise ConfigError(f"variant '{v.name}' uses camera(s) {bad} that the test split "
                              f"'{test_dirs[0]}' lacks (it has {', '.join(test_cams)})")
        cfgs[v.name] = cfg
    if selected & set(cfgs):
        first = cfgs[next(n for n in cfgs if n in selected)]
        find_shard_dirs(first.train_data)  # a missing training split fails here, early
        if first.val_data:
            find_shard_dirs(first.val_data)
    budget = (f"{minutes:g} min" if minutes is not None else "") + \
        (" / " if minutes is not None and steps is not None else "") + \
        (f"{steps} steps" if steps is not None else "")
    if not budget:
        c = cfgs.get(full.name)
        budget = (f"config budget: {c.max_minutes:g} min, {c.max_steps} steps (0 = none)"
                  if c else "config budget")
    expected = _expected_frames(test_dirs, max_frames)
    if full.name not in selected and not (out / full.name / "train_summary.json").is_file():
        say(f"note: '{full.name}' is not selected and has no finished run in '{out}': deltas "
            f"will be n/a (add {full.name} to --only)")

    results: dict[str, dict[str, Any]] = {}
    todo = [v for v in variants if v.name in selected and v.applicable]
    for i, v in enumerate(todo, start=1):
        cfg = cfgs[v.name]
        vdir = out / v.name
        summary_path = vdir / "train_summary.json"
        eval_dir = vdir / "eval"
        tag = f"[{i}/{len(todo)}] {v.name}"
        summary = None
        if summary_path.is_file():
            if not resume:
                raise FileExistsError(f"'{vdir}' already holds a finished run of '{v.name}'; "
                                      "pass --resume to keep it, or delete it or choose "
                                      "another --out")
            summary = _read_json(summary_path)
            _check_protocol(v.name, summary, cfg)
        if summary is None:
            say(f"{tag}: training ({budget}) -> {vdir}")
            summary = _train_variant(
                cfg, vdir, f"depth-any-view ablate --config {config} (variant {v.name})", say)
            say(f"{tag}: trained {summary['steps']} steps in {summary['minutes']:.1f} min")
        result = None
        if (eval_dir / "metrics.json").is_file() and resume:
            result = _read_json(eval_dir / "metrics.json")
            if (result.get("shard_dirs") != [str(d) for d in test_dirs]
                    or result.get("frames") != expected):
                result = None
            else:
                say(f"{tag}: finished earlier (--resume), keeping its evaluation")
        if result is None:
            say(f"{tag}: evaluating on {', '.join(str(d) for d in data)}"
                + (f" (cameras {', '.join(cfg.views)})" if cfg.views else ""))
            result = evaluate_split(test_dirs, weights=summary["weights"], views=cfg.views,
                                    max_frames=max_frames, progress=progress,
                                    engine_overrides={"device": cfg.device,
                                                      "threads": cfg.threads})
            write_report(result, eval_dir, title=f"Ablation '{v.name}' on "
                         f"{', '.join(str(d) for d in data)}")
            result = _read_json(eval_dir / "metrics.json")
        m = headline(result)
        say(f"{tag}: AbsRel {m['abs_rel']:.4f}, RMSE {m['rmse']:.4f} m, "
            f"delta1 {m['delta1']:.4f}, voxel IoU {m['voxel_iou']:.4f}")
        results[v.name] = {"summary": summary, "eval": result}

    # Finished variants of the same protocol from earlier calls (e.g. another --only).
    for v in variants:
        if v.name in results or v.name not in cfgs:
            continue
        sp, ep = out / v.name / "train_summary.json", out / v.name / "eval" / "metrics.json"
        if sp.is_file() and ep.is_file():
            summary, result = _read_json(sp), _read_json(ep)
            if (_comparable(summary.get("train_config", {})) == _comparable(cfgs[v.name]
                                                                             .to_dict())
                    and result.get("shard_dirs") == [str(d) for d in test_dirs]):
                results[v.name] = {"summary": summary, "eval": result}
            else:
                say(f"note: '{out / v.name}' ran with another protocol or test split; "
                    "left out of the table")

    table = build_table(variants, cfgs, results, settings={
        "config": config, "set": list(sets), "minutes": minutes, "steps": steps,
        "budget": budget, "seed": cfgs[full.name].seed if full.name in cfgs else None,
        "train_data": list(cfgs[full.name].train_data) if full.name in cfgs else [],
        "test_data": [str(d) for d in data], "test_frames": expected,
        "ablations": str(config_path(str(ablations)))})
    js, md = write_table(table, out)
    say(f"wrote {js} and {md}")
    return table


def _check_protocol(name: str, summary: dict[str, Any], cfg: Any) -> None:
    """A kept (--resume) run must have trained with exactly this variant's config."""
    old = _comparable(summary.get("train_config", {}))
    new = _comparable(cfg.to_dict())
    if old != new:
        diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        shown = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in diff[:4])
        raise ConfigError(f"--resume: the finished run of '{name}' trained with another "
                          f"config ({shown}); delete '{Path(cfg.out_dir)}' or use another "
                          "--out so every variant shares one protocol")


__all__ = ["Variant", "build_table", "headline", "judge", "load_variants", "pooled_depth",
           "run_ablation", "select_variants", "table_markdown", "variant_config",
           "write_table"]
