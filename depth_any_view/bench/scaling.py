"""Scaling tables: how each stage's cost grows with views, input size and grid size.

- views 1..V: one engine, the first n cameras of the set;
- input size: camera images and the network input both S x S (the network's
  `image_size` overridden to S), six views;
- occupancy grid: the network grid and the fused map N^3 (`grid_dims` overridden),
  six views at the default input size.

Each row times the stages that depend on the variable (see `*_STAGES`) with few repeats.
The tables show, and the growth is fitted on, the fastest of the timed runs (min): with
few runs on a shared machine the median still carries other processes' load, the minimum
is the stage's own cost. The growth of every stage is fitted as cost ~ variable^b (least
squares in log-log) and said in words relative to the natural unit (views, pixels, voxels).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from depth_any_view.bench.common import describe_growth, growth_exponent
from depth_any_view.bench.stages import bench_stages, make_engine
from depth_any_view.bench.workload import make_workload

LOG = logging.getLogger(__name__)

VIEW_STAGES = ("intake", "decode", "preprocess", "forward", "postprocess", "points",
               "pointcloud2", "depth_msgs")
SIZE_STAGES = VIEW_STAGES
GRID_STAGES = ("forward", "fusion_update", "fusion_outputs", "voxels_msg", "markers",
               "grid_msg")


def _table(variable: str, unit: str, per: int, stages: Sequence[str],
           rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A scaling table with the fitted growth of every stage (and of the sum)."""
    ok = [r for r in rows if "error" not in r]
    growth, words = {}, {}
    for s in (*stages, "non_network", "total"):
        xs = [r["value"] for r in ok if s in r["mins"]]
        ys = [r["mins"][s] for r in ok if s in r["mins"]]
        growth[s] = growth_exponent(xs, ys)
        words[s] = describe_growth(growth[s], variable, per, unit)
    return {"variable": variable, "unit": unit, "stages": [s for s in stages
                                                           if any(s in r.get("mins", {})
                                                                  for r in ok)],
            "rows": rows, "growth": growth, "growth_text": words}


def _row(value: int, result: Any) -> dict[str, Any]:
    """Min, median, p95 and counts of one scaling point (min and median also summed over
    the stages: 'non_network' without the forward pass, 'total' with it)."""
    def with_sums(values: dict[str, float]) -> dict[str, float]:
        out = dict(values)
        out["non_network"] = sum(v for k, v in values.items() if k != "forward")
        out["total"] = sum(values.values())
        return out

    return {"value": value, "mins": with_sums({k: v["min"] for k, v in result.stages.items()}),
            "medians": with_sums(result.medians()),
            "p95": {k: v["p95"] for k, v in result.stages.items()}, "counts": result.counts,
            "runs": min(v["n"] for v in result.stages.values()), "skipped": result.skipped}


def _guard(value: int, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run one scaling point; a failure (e.g. out of memory) becomes an 'error' row."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - one bad point must not end the table
        LOG.warning("scaling point %s failed: %s: %s", value, type(exc).__name__, exc)
        return {"value": value, "error": f"{type(exc).__name__}: {exc}"}


def scale_views(preset: str, device: str, precision: str, views: Sequence[int],
                size: tuple[int, int], *, repeats: int, warmup: int = 1,
                overrides: dict[str, Any] | None = None, seed: int = 0,
                workload_grid: int = 64) -> dict[str, Any]:
    """Stage costs for 1..6 views (the first n cameras of one set)."""
    engine = make_engine(preset, device, precision, overrides=overrides)
    full = make_workload(tuple(size), seed, workload_grid)
    rows = [_guard(n, lambda n=n: _row(n, bench_stages(
        engine, full.subset(n), repeats=repeats, warmup=warmup, only=VIEW_STAGES)))
        for n in views]
    return _table("views", "views", 1, VIEW_STAGES, rows)


def scale_size(preset: str, device: str, precision: str, sizes: Sequence[int], *,
               repeats: int, warmup: int = 1, overrides: dict[str, Any] | None = None,
               seed: int = 0, workload_grid: int = 64) -> dict[str, Any]:
    """Stage costs for S x S camera images and network input, six views."""
    def point(s: int) -> dict[str, Any]:
        engine = make_engine(preset, device, precision,
                             overrides={**(overrides or {}), "image_size": [s, s]})
        return _row(s, bench_stages(engine, make_workload((s, s), seed, workload_grid),
                                    repeats=repeats, warmup=warmup, only=SIZE_STAGES))

    rows = [_guard(s, lambda s=s: point(s)) for s in sizes]
    return _table("side", "pixels", 2, SIZE_STAGES, rows)


def scale_grid(preset: str, device: str, precision: str, grids: Sequence[int],
               size: tuple[int, int], *, repeats: int, warmup: int = 1,
               overrides: dict[str, Any] | None = None, seed: int = 0,
               workload_grid: int = 64) -> dict[str, Any]:
    """Stage costs for an N^3 network grid and fused map, six views."""
    def point(n: int) -> dict[str, Any]:
        engine = make_engine(preset, device, precision,
                             overrides={**(overrides or {}), "grid_dims": [n, n, n]})
        return _row(n, bench_stages(engine, make_workload(tuple(size), seed, workload_grid),
                                    repeats=repeats, warmup=warmup, only=GRID_STAGES))

    rows = [_guard(n, lambda n=n: point(n)) for n in grids]
    return _table("grid side", "voxels", 3, GRID_STAGES, rows)
