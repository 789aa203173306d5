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
"""

from __future__ import annotations

import gc
import json
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from depth_any_view.config import ConfigError, config_path, load_yaml

METRICS = ("abs_rel", "rmse", "delta1", "voxel_iou")
LOWER_IS_BETTER = {"abs_rel": True, "rmse": True, "delta1": False, "voxel_iou": False}
METRIC_LABELS = {"abs_rel": "AbsRel", "rmse": "RMSE", "delta1": "δ<1.25",
                 "voxel_iou": "voxel IoU"}
ROLES = ("full", "ablation", "noise")
# Options a variant may not change: every variant gets the same budget, data and seed.
FIXED_OPTIONS = ("out_dir", "max_minutes", "max_steps", "epochs", "batch_size", "train_data",
                 "val_data", "seed")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_VARIANT_KEYS = {"name", "description", "overrides", "reference", "role",
                 "requires_model_field", "not_applicable"}
SIMILAR_SIZE = (0.5, 2.0)  # our delta / reference delta in this range = "similar size"


@dataclass(frozen=True)
class Variant:
    """One row of the ablation table (see config/ablations.yaml for the fields)."""

    name: str
    description: str
    overrides: tuple[str, ...] = ()
    role: str = "ablation"  # full | ablation | noise
    reference_metric: str | None = None  # one of METRICS
    reference_delta: float | None = None  # the reference design's variant - full
    requires_model_field: str | None = None  # ModelConfig field the variant needs
    not_applicable: str = ""  # the reason reported when that field is missing

    @property
    def applicable(self) -> bool:
        """False when the network lacks what the variant removes (nothing is trained)."""
        if not self.requires_model_field:
            return True
        from depth_any_view.model.config import ModelConfig

        return self.requires_model_field in {f.name for f in fields(ModelConfig)}


def load_variants(name_or_path: str | Path = "ablations.yaml") -> list[Variant]:
    """Variants from an ablations YAML (a packaged name or a path); ConfigError on bad ones."""
    path = config_path(str(name_or_path))
    data = load_yaml(path)
    items = data.get("variants")
    if not isinstance(items, list) or not items:
        raise ConfigError(f"'{path}' needs a non-empty 'variants:' list")
    out: list[Variant] = []
    for i, item in enumerate(items):
        where = f"'{path}' variant {i + 1}"
        if not isinstance(item, dict):
            raise ConfigError(f"{where} must be a mapping with name, description, overrides")
        unknown = sorted(set(item) - _VARIANT_KEYS)
        if unknown:
            raise ConfigError(f"{where} has unknown key(s) {unknown}; valid: "
                              f"{sorted(_VARIANT_KEYS)}")
        name = str(item.get("name", ""))
        if not _NAME.match(name):
            raise ConfigError(f"{where}: name {name!r} must be letters, digits, '_' or '-' "
                              "(it becomes a folder name)")
        where = f"'{path}' variant '{name}'"
        overrides = item.get("overrides") or []
        if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
            raise ConfigError(f"{where}: 'overrides' must be a list of 'key=value' strings")
        for o in overrides:
            key = o.split("=", 1)[0].strip()
            if "=" not in o:
                raise ConfigError(f"{where}: override {o!r} must look like key=value")
            if key.split(".")[0] in FIXED_OPTIONS:
                raise ConfigError(f"{where}: override {o!r} changes '{key}', which every "
                                  "variant shares (same budget, data and seed); remove it")
        role = str(item.get("role", "ablation"))
        if role not in ROLES:
            raise ConfigError(f"{where}: role {role!r} must be one of {', '.join(ROLES)}")
        ref = item.get("reference")
        ref_metric = ref_delta = None
        if ref is not None:
            if (not isinstance(ref, dict) or ref.get("metric") not in METRICS
                    or not isinstance(ref.get("delta"), (int, float))):
                raise ConfigError(f"{where}: 'reference' must be {{metric: one of "
                                  f"{', '.join(METRICS)}, delta: a signed number}}")
            ref_metric, ref_delta = str(ref["metric"]), float(ref["delta"])
        req = item.get("requires_model_field")
        out.append(Variant(name=name, description=str(item.get("description", name)).strip(),
                           overrides=tuple(overrides), role=role, reference_metric=ref_metric,
                           reference_delta=ref_delta,
                           requires_model_field=str(req) if req else None,
                           not_applicable=str(item.get("not_applicable", "")).strip()
                           or "not applicable to this network"))
    names = [v.name for v in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"'{path}': variant name(s) {dupes} appear more than once")
    fulls = [v.name for v in out if v.role == "full"]
    if len(fulls) != 1:
        raise ConfigError(f"'{path}': exactly one variant needs 'role: full' (the baseline), "
                          f"found {fulls or 'none'}")
    return out


def select_variants(variants: Sequence[Variant], only: Sequence[str] | None) -> list[Variant]:
    """The variants named in `only` (all when None/empty), in the file's order."""
    if not only:
        return list(variants)
    known = [v.name for v in variants]
    unknown = [n for n in only if n not in known]
    if unknown:
        raise ConfigError(f"--only: unknown variant(s) {unknown}; known: {', '.join(known)}")
    return [v for v in variants if v.name in only]


def variant_config(base: str, sets: Sequence[str], variant: Variant, out_dir: str | Path, *,
                   minutes: float | None = None, steps: int | None = None) -> Any:
    """The TrainConfig of one variant: base file, then --set, the variant's overrides, the
    budget and out_dir (so no variant can differ in budget or data)."""
    from depth_any_view.training.config import TrainConfig, apply_overrides, load_train_config

    base_cfg = load_train_config(base, list(sets))
    data = apply_overrides(base_cfg.to_dict(), list(variant.overrides))
    if variant.role == "noise":
        data["seed"] = int(base_cfg.seed) + 1
    if minutes is not None:
        data["max_minutes"] = float(minutes)
        data["max_steps"] = int(steps) if steps is not None else 0
    elif steps is not None:
        data["max_steps"] = int(steps)
        data["max_minutes"] = 0.0
    data["out_dir"] = str(Path(out_dir) / variant.name)
    return TrainConfig.from_dict(data, source=f"ablation variant '{variant.name}'")


# ---------------------------------------------------------------------------- metrics
def _num(v: Any) -> float:
    """A metric value as float (None/missing -> NaN; JSON stores NaN as null)."""
    try:
        return math.nan if v is None else float(v)
    except (TypeError, ValueError):
        return math.nan


def headline(result: dict[str, Any]) -> dict[str, float]:
    """AbsRel, RMSE (m), delta1 over all evaluated cameras, and voxel IoU, of an evaluation."""
    d, o = result["depth"], result["occupancy"]
    return {"abs_rel": _num(d.get("abs_rel")), "rmse": _num(d.get("rmse")),
            "delta1": _num(d.get("delta1")), "voxel_iou": _num(o.get("voxel_iou"))}


def pooled_depth(result: dict[str, Any], cameras: Sequence[str]) -> dict[str, float]:
    """AbsRel, RMSE (m) and delta1 of the pixels of some cameras, pooled exactly from the
    per-camera metrics and pixel counts of an evaluation (voxel IoU: that of the result)."""
    d = result["depth"]
    missing = [c for c in cameras if f"count/{c}" not in d]
    if missing:
        raise ValueError(f"camera(s) {missing} were not evaluated (have {result['cameras']})")
    n = [_num(d[f"count/{c}"]) for c in cameras]
    total = sum(x for x in n if math.isfinite(x))
    out = {"voxel_iou": _num(result["occupancy"].get("voxel_iou"))}
    if total <= 0:
        return {**out, "abs_rel": math.nan, "rmse": math.nan, "delta1": math.nan}

    def wmean(key: str, f: Callable[[float], float] = lambda x: x) -> float:
        acc = 0.0
        for c, k in zip(cameras, n):
            if k > 0:
                acc += k * f(_num(d[f"{key}/{c}"]))
        return acc / total

    return {**out, "abs_rel": wmean("abs_rel"), "rmse": math.sqrt(wmean("rmse", lambda x: x * x)),
            "delta1": wmean("delta1")}


def judge(ours: float, reference: float, spread: float | None = None) -> dict[str, Any]:
    """Whether our delta goes the reference's way, its size ratio, and whether it is within
    the seed-to-seed spread."""
    out: dict[str, Any] = {"ours": ours, "reference": reference, "ratio": math.nan,
                           "same_direction": None, "within_noise": None}
    if not math.isfinite(ours):
        out["text"] = "n/a (no result)"
        return out
    ratio = ours / reference if reference else math.nan
    out["ratio"] = ratio
    same = ours * reference > 0
    out["same_direction"] = bool(same)
    lo, hi = SIMILAR_SIZE
    if ours == 0:
        text = "no: no change"
    elif same:
        size = "similar size" if lo <= ratio <= hi else ("smaller" if ratio < lo else "larger")
        text = f"yes, ×{ratio:.2f} ({size})"
    else:
        text = f"no: opposite (×{ratio:.2f})"
    if spread is not None and math.isfinite(spread):
        out["within_noise"] = bool(abs(ours) <= spread)
        if abs(ours) <= spread:
            text = (f"unclear: Δ within seed noise (±{spread:.4f}); point estimate "
                    + text.replace("yes, ", "same direction, ").replace("no: ", ""))
    out["text"] = text
    return out


# ---------------------------------------------------------------------------- facts
def view_pairs(cfg: Any) -> tuple[int, int] | None:
    """(number of views, number of overlapping (target, source) pairs the photometric and
    consistency losses use) for a variant's training data; None if it cannot be read."""
    from depth_any_view.data.dataset import find_shard_dirs
    from depth_any_view.data.shards import read_meta, read_npz
    from depth_any_view.training.losses import LossConfig
    from depth_any_view.training.warp import neighbour_pairs

    try:
        root = find_shard_dirs(cfg.train_data)[0]
        meta = read_meta(root)
        names = list(meta["camera_names"])
        idx = [names.index(v) for v in cfg.views] if cfg.views else list(range(len(names)))
        T = read_npz(root / meta["files"][0])["T_base_cam"][idx]  # (V, 4, 4)
        loss = LossConfig.from_dict(cfg.loss)
    except (OSError, ValueError, KeyError, IndexError, ConfigError):
        return None
    pairs = loss.neighbour_pairs if loss.neighbour_pairs is not None else \
        neighbour_pairs(T, loss.neighbour_max_angle_deg)
    return len(idx), len(pairs)


def _loss_weights(cfg: Any) -> dict[str, float]:
    """The loss term weights a variant trained with."""
    from depth_any_view.training.losses import LossConfig

    loss = LossConfig.from_dict(cfg.loss)
    return {k[:-7]: float(getattr(loss, k)) for k in ("depth_weight", "photo_weight",
                                                       "cos_weight", "smooth_weight",
                                                       "occupancy_weight")}


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


# ---------------------------------------------------------------------------- the table
def build_table(variants: Sequence[Variant], cfgs: dict[str, Any],
                results: dict[str, dict[str, Any]], settings: dict[str, Any]
                ) -> dict[str, Any]:
    """Rows with metrics, deltas vs the full model, reference verdicts and notes."""
    full = next(v for v in variants if v.role == "full")
    noise = next((v for v in variants if v.role == "noise" and v.name in results), None)
    base = results.get(full.name)
    rows: list[dict[str, Any]] = []
    for v in variants:
        row: dict[str, Any] = {"name": v.name, "description": v.description,
                               "role": v.role, "overrides": list(v.overrides),
                               "reference": ({"metric": v.reference_metric,
                                              "delta": v.reference_delta}
                                             if v.reference_metric else None)}
        if not v.applicable:
            rows.append({**row, "status": "not_applicable", "reason": v.not_applicable})
            continue
        if v.name not in results:
            continue
        res, summary = results[v.name]["eval"], results[v.name]["summary"]
        cams = list(res["cameras"])
        metrics = headline(res)
        row.update(status="done", cameras=cams, metrics=metrics, steps=summary["steps"],
                   minutes=summary["minutes"], notes=[])
        subset = base is not None and set(cams) != set(base["eval"]["cameras"])
        row["subset"] = bool(subset)
        if base is not None and v.name != full.name:
            ref_m = (pooled_depth(base["eval"], cams) if subset
                     else headline(base["eval"]))
            row["baseline"] = ref_m
            row["delta"] = {k: metrics[k] - ref_m[k] for k in METRICS}
            spread = None
            if noise is not None and v.name != noise.name:
                n_m = pooled_depth(results[noise.name]["eval"], cams) if subset else \
                    headline(results[noise.name]["eval"])
                spread = {k: abs(n_m[k] - ref_m[k]) for k in METRICS}
                row["seed_spread"] = spread
            if v.reference_metric:
                k = v.reference_metric
                row["verdict"] = judge(row["delta"][k], float(v.reference_delta or 0.0),
                                       spread[k] if spread else None)
            if subset:
                all6 = headline(base["eval"])
                row["delta_vs_full_all_cameras"] = {k: metrics[k] - all6[k] for k in METRICS}
        row["notes"] = _notes(v, row, cfgs.get(v.name), base, full.name)
        rows.append(row)
    return {"settings": settings, "full": full.name,
            "noise": noise.name if noise else None, "rows": rows}


def _notes(v: Variant, row: dict[str, Any], cfg: Any, base: dict[str, Any] | None,
           full_name: str) -> list[str]:
    """Facts that explain a row: training length, active losses, overlap, comparison set."""
    notes: list[str] = []
    if base is not None and v.name != full_name:
        fs = int(base["summary"]["steps"])
        if fs and row["steps"] != fs:
            notes.append(f"trained {row['steps']} steps vs the full model's {fs} "
                         f"({100.0 * (row['steps'] - fs) / fs:+.0f}%) in the same budget")
    if cfg is not None:
        w = _loss_weights(cfg)
        notes.append("loss weights: " + ", ".join(f"{k} {val:g}" for k, val in w.items()))
        vp = view_pairs(cfg)
        if vp is not None:
            n_views, n_pairs = vp
            if n_pairs == 0 and (w["photo"] > 0 or w["cos"] > 0):
                notes.append(f"no two of its {n_views} cameras overlap (0 neighbour pairs): "
                             "the photometric and depth-consistency terms had nothing to "
                             "compare and contributed no gradient")
            else:
                notes.append(f"{n_views} cameras, {n_pairs} overlapping (target, source) "
                             "pairs for the photometric and consistency terms")
    full_cfg = base["summary"].get("train_config", {}) if base is not None else {}
    wcos = float(full_cfg.get("loss", {}).get("cos_weight", 0.0) or 0.0)
    if cfg is not None and wcos > 0 and _loss_weights(cfg)["cos"] == 0:
        ft = base["summary"].get("final_train", {}) if base is not None else {}
        cos, total = ft.get("train/cos"), ft.get("train/total")
        if cos is not None and total:
            notes.append(f"in the full run the consistency term ended at {cos:.4f} "
                         f"(× {wcos:g} = {100.0 * wcos * cos / total:.1f}% of the total "
                         f"loss {total:.4f})")
    if row.get("subset"):
        d6 = row.get("delta_vs_full_all_cameras", {})
        notes.append(f"tested on its {len(row['cameras'])} cameras; deltas are against the "
                     "full model scored on the same cameras (against all six: ΔAbsRel "
                     f"{_d(d6.get('abs_rel'))}, ΔRMSE {_d(d6.get('rmse'))})")
        notes.append("its voxel IoU covers only the voxels its cameras observe, fewer than "
                     "the full model's: ΔIoU is not like for like")
    if v.role == "noise":
        notes.append("same protocol as the full model with the next seed: |its delta| is the "
                     "seed-to-seed spread that an ablation's delta must exceed")
    return notes


def _f(v: Any) -> str:
    """A metric for the table."""
    v = _num(v)
    return "n/a" if not math.isfinite(v) else f"{v:.4f}"


def _d(v: Any) -> str:
    """A signed delta for the table."""
    v = _num(v)
    return "n/a" if not math.isfinite(v) else f"{v:+.4f}"


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def table_markdown(table: dict[str, Any]) -> str:
    """The ablation table and its notes as Markdown."""
    s = table["settings"]
    sets = f" with `--set {' '.join(s['set'])}`" if s.get("set") else ""
    lines = [
        "# Ablations", "",
        f"Base training config `{s['config']}`{sets}; budget per variant: {s['budget']}; "
        f"seed {s.get('seed')}; trained on {', '.join(s.get('train_data') or ['?'])}; "
        f"tested on {', '.join(s['test_data'])} ({s['test_frames']} frames). "
        "Δ = variant − full model: AbsRel and RMSE (metres) are better lower, δ<1.25 and "
        "voxel IoU higher. \"Same direction?\" compares our Δ of the metric the reference "
        "design reports with its Δ (×: our Δ / reference Δ; similar size = ×"
        f"{SIMILAR_SIZE[0]:g} to ×{SIMILAR_SIZE[1]:g})"
        + (f"; `{table['noise']}` (the full model with the next seed) gives the seed-to-seed "
           "spread, and a Δ inside it is marked as within seed noise." if table.get("noise")
           else "; no seed-noise row was run, so small deltas may be noise."), "",
        "| variant | cameras tested | AbsRel | RMSE (m) | δ<1.25 | voxel IoU | ΔAbsRel | "
        "ΔRMSE | Δδ<1.25 | ΔIoU | reference Δ | same direction? | steps | minutes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in table["rows"]:
        ref = r.get("reference")
        ref_txt = (f"{METRIC_LABELS[ref['metric']]} {ref['delta']:+.3f}" if ref else "—")
        if r["status"] == "not_applicable":
            lines.append(f"| {r['name']} | — | — | — | — | — | — | — | — | — | {ref_txt} | "
                         f"{_cell(r['reason'])} | — | — |")
            continue
        m, d = r["metrics"], r.get("delta", {})
        cams = r["cameras"]
        cam_txt = f"{len(cams)}: {', '.join(cams)} *" if r.get("subset") else f"all {len(cams)}"
        verdict = r.get("verdict", {}).get("text", "—" if not ref else "n/a (no full run)")
        if r["role"] == "full":
            verdict = "baseline"
        elif r["role"] == "noise":
            verdict = "seed spread"
        if r["role"] == "full":
            deltas = ["—"] * 4
        else:
            deltas = [_d(d.get(k)) for k in METRICS]
            deltas[3] += " *" if r.get("subset") and d else ""
        lines.append(f"| {r['name']} | {cam_txt} | {_f(m['abs_rel'])} | {_f(m['rmse'])} | "
                     f"{_f(m['delta1'])} | {_f(m['voxel_iou'])} | {' | '.join(deltas)} | "
                     f"{ref_txt} | {_cell(verdict)} | {r['steps']} | {r['minutes']:.1f} |")
    if any(r.get("subset") for r in table["rows"]):
        lines += ["", "\\* trained and tested on these cameras only; its depth deltas are "
                  "against the full model scored on the same cameras' pixels (the full model "
                  "still sees all six images). Its voxel IoU is over the voxels those cameras "
                  "observe, so ΔIoU is not like for like."]
    lines += ["", "## Variants", ""]
    for r in table["rows"]:
        over = ", ".join(f"`{o}`" for o in r["overrides"]) or "none"
        lines.append(f"- **{r['name']}**: {r['description']} (overrides: {over}).")
        if r["status"] == "not_applicable":
            lines.append(f"  - {r['reason']}; not trained.")
        for note in r.get("notes", []):
            lines.append(f"  - {note}")
    lines.append("")
    return "\n".join(lines)


def _json_safe(x: Any) -> Any:
    """Nested data with non-finite floats as None (JSON has no NaN) and tuples as lists."""
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    return x


def write_table(table: dict[str, Any], out: str | Path) -> tuple[Path, Path]:
    """Write `ablation.json` (NaN as null) and `ablation.md` into `out`; returns both paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    js = out / "ablation.json"
    js.write_text(json.dumps(_json_safe(table), indent=2, allow_nan=False))
    md = out / "ablation.md"
    md.write_text(table_markdown(table))
    return js, md
