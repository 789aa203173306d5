"""The ablation variants: read from config/ablations.yaml, selected, and turned into each
variant's training configuration (same budget, data and seed for all; see ablate.py)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, fields
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
