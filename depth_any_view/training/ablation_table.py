"""The ablation table: each variant's headline metrics, its delta against the full model
and the reference design's, judged, with notes; written as JSON and Markdown."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from depth_any_view.config import ConfigError
from depth_any_view.training.ablation_variants import (
    METRIC_LABELS,
    METRICS,
    SIMILAR_SIZE,
    Variant,
)


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
