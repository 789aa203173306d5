"""The report of `depth-any-view slam`: each run scored, its files written and described.

Per run (`ConsumerRun`, slam/consumers.py): ATE RMSE after SE(3) alignment, RPE over the
configured segment lengths (all segments, and steady state after the consumer's start-up),
tracking jumps, consumer milliseconds per set (`evaluate_run`); then a TSDF mesh of that
run's depth along its estimated trajectory (aligned to the ground truth by the ATE's
alignment) against the mesh of ground-truth depth along the true trajectory: Chamfer
distance and F-scores (`write_meshes`). The targets of config/slam.yaml as met or not
(`evaluate_targets`), and the Markdown report (`report_markdown`).

Files: trajectory_gt.tum, trajectory_predicted.tum, trajectory_gt_depth.tum (estimates in
their own odom frame, as `evo_ape tum trajectory_gt.tum trajectory_predicted.tum --align`
reads them), trajectory_top.png, mesh_<run>.ply / .png and mesh_reference.ply / .png.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from depth_any_view.slam.consumers import ConsumerRun
from depth_any_view.slam.odometry import KissIcpOdometry
from depth_any_view.slam.slam_config import SlamConfig, Targets
from depth_any_view.slam.trajectory import (
    ate,
    detect_jumps,
    path_length,
    rpe,
    write_tum,
)

RUN_LABELS = {"predicted": "predicted depth", "gt": "ground-truth depth"}
TUM_FILES = {"truth": "trajectory_gt.tum", "predicted": "trajectory_predicted.tum",
             "gt": "trajectory_gt_depth.tum"}
PLOT_FILE = "trajectory_top.png"
MAX_LISTED_JUMPS = 20  # jump stamps listed in the report


def stats_ms(seconds: list[float]) -> dict[str, float]:
    """Median, p95 and mean of seconds, in milliseconds (NaN when empty)."""
    if not seconds:
        return {"median": math.nan, "p95": math.nan, "mean": math.nan}
    v = np.asarray(seconds) * 1e3
    return {"median": float(np.median(v)), "p95": float(np.percentile(v, 95)),
            "mean": float(v.mean())}


def evaluate_run(run: ConsumerRun, cfg: SlamConfig) -> dict[str, Any]:
    """Trajectory errors of a run against the bag's odometry at its stamps."""
    ev = cfg.evaluation
    out: dict[str, Any] = {
        "backend": run.backend, "depth": run.kind, "sets": len(run.stamps),
        "sets_without_depth": run.missing, "time_ms": stats_ms(run.seconds),
        "input_size": {"median": float(np.median(run.points)) if run.points else math.nan,
                       "unit": "points" if run.backend == "kiss-icp" else "views"}}
    odo = run.odometry
    if isinstance(odo, KissIcpOdometry):
        out["clouds_too_small"] = odo.skipped
    else:
        out["failed_steps"] = odo.failures
        out["cameras_used_median"] = (float(np.median(odo.cameras_used)) if odo.cameras_used
                                      else math.nan)
    have = [i for i, t in enumerate(run.truth) if t is not None]
    out["scored"] = len(have)
    if len(have) < 2:
        out.update(ate=None, rpe={}, rpe_steady={}, jumps=None, distance_m=None)
        return out
    est = np.stack([run.poses[i] for i in have])
    gt = np.stack([run.truth[i] for i in have])
    out["ate"] = ate(est, gt)
    out["distance_m"] = float(path_length(gt)[-1])
    out["rpe"] = {f"{L:g}m": rpe(est, gt, L) for L in ev.segment_lengths}
    out["rpe_steady"] = {f"{L:g}m": rpe(est, gt, L, start_after=ev.steady_state_after_m)
                         for L in ev.segment_lengths}
    jumps = detect_jumps(est, gt, threshold=ev.jump_m)
    out["jumps"] = {"count": int(jumps.size), "threshold_m": ev.jump_m,
                    "stamps_ns": [run.stamps[have[k]] for k in jumps[:MAX_LISTED_JUMPS]]}
    return out



# ---------------------------------------------------------------------------- outputs
def write_trajectories(runs: list[ConsumerRun], out: Path) -> dict[str, str]:
    """TUM files of the ground truth and of every run; {name: path}."""
    files = {}
    truth: dict[int, np.ndarray] = {}
    for run in runs:
        for s, t in zip(run.stamps, run.truth):
            if t is not None:
                truth[s] = t
        if run.stamps:
            path = write_tum(out / TUM_FILES[run.kind], np.array(run.stamps),
                             np.stack(run.poses), header=(
                                 f"depth-any-view slam: {run.backend} on "
                                 f"{RUN_LABELS[run.kind]}, T_odom_base of the estimate "
                                 "(odom = base_link at its first set)"))
            files[Path(TUM_FILES[run.kind]).stem] = str(path)
    if truth:
        stamps = sorted(truth)
        path = write_tum(out / TUM_FILES["truth"], np.array(stamps),
                         np.stack([truth[s] for s in stamps]),
                         header="ground truth: the bag's odometry (T_odom_base)")
        files[Path(TUM_FILES["truth"]).stem] = str(path)
    return files


def _aligned_positions(run: ConsumerRun, report: dict[str, Any]) -> np.ndarray:
    """(N, 3) estimated positions mapped into the ground truth's odom frame by the ATE's
    alignment (unaligned without ground truth)."""
    P = np.stack(run.poses)[:, :3, 3] if run.poses else np.zeros((0, 3))
    a = (report["runs"][run.kind].get("ate") or {}).get("alignment")
    if a is None:
        return P
    T = np.asarray(a)
    return P @ T[:3, :3].T + T[:3, 3]


def plot_trajectories(runs: list[ConsumerRun], report: dict[str, Any], out: Path) -> Path:
    """Top view of the ground truth and every run (aligned); returns the PNG path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 8), dpi=100)
    truth = {s: t for run in runs for s, t in zip(run.stamps, run.truth) if t is not None}
    if truth:
        G = np.stack([truth[s] for s in sorted(truth)])[:, :3, 3]
        ax.plot(G[:, 0], G[:, 1], color="black", lw=2.0, label="ground truth (/odom)")
        ax.plot(G[0, 0], G[0, 1], "o", color="black", ms=6)
    styles = {"gt": dict(color="tab:blue", ls="--"), "predicted": dict(color="tab:orange")}
    for run in runs:
        P = _aligned_positions(run, report)
        if not len(P):
            continue
        r = report["runs"][run.kind]
        ate_txt = f", ATE {r['ate']['rmse']:.2f} m" if r.get("ate") else ""
        ax.plot(P[:, 0], P[:, 1], lw=1.5, label=f"{run.backend}, {RUN_LABELS[run.kind]}"
                f"{ate_txt}", **styles[run.kind])
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel("x (m, odom)")
    ax.set_ylabel("y (m, odom)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=9)
    ax.set_title("Trajectories from above (estimates aligned in SE(3), no scale)")
    fig.tight_layout()
    path = out / PLOT_FILE
    fig.savefig(path)
    plt.close(fig)
    return path


def write_meshes(runs: list[ConsumerRun], reference: Any, report: dict[str, Any],
            cfg: SlamConfig, out: Path) -> dict[str, str]:
    """Extract, align, write, draw and compare the meshes; {name: path}."""
    from depth_any_view.slam.mesh import (
        mesh_distances,
        render_mesh_png,
        transform_mesh,
        write_mesh_ply,
    )

    files: dict[str, str] = {}
    ref_mesh = None
    truth = {s: t for run in runs for s, t in zip(run.stamps, run.truth) if t is not None}
    G = (np.stack([truth[s] for s in sorted(truth)])[:, :3, 3] if truth
         else np.zeros((0, 3)))
    if reference is not None:
        ref_mesh = reference.mesh()
        files["mesh_reference"] = str(write_mesh_ply(ref_mesh, out / "mesh_reference.ply"))
        files["mesh_reference_png"] = str(render_mesh_png(
            ref_mesh, out / "mesh_reference.png", trajectory=G,
            title="Reference: ground-truth depth along the true trajectory (TSDF)"))
        report["mesh_reference"] = {"triangles": len(ref_mesh.triangles),
                                    "views": reference.views}
    for run in runs:
        if run.tsdf is None:
            continue
        r = report["runs"][run.kind]
        mesh = run.tsdf.mesh()
        a = (r.get("ate") or {}).get("alignment")
        if a is not None:
            transform_mesh(mesh, np.asarray(a))
        name = f"mesh_{run.kind}"
        files[name] = str(write_mesh_ply(mesh, out / f"{name}.ply"))
        files[f"{name}_png"] = str(render_mesh_png(
            mesh, out / f"{name}.png", trajectory=_aligned_positions(run, report),
            title=f"{RUN_LABELS[run.kind].capitalize()} along the {run.backend} trajectory "
                  "(TSDF, aligned)"))
        entry: dict[str, Any] = {"triangles": len(mesh.triangles), "views": run.tsdf.views,
                                 "aligned": a is not None}
        if ref_mesh is not None and a is not None:
            me = cfg.mesh_eval
            entry.update(mesh_distances(mesh, ref_mesh, samples=me.samples,
                                        thresholds=me.thresholds, seed=me.seed))
        r["mesh"] = entry
    return files


def evaluate_targets(report: dict[str, Any], t: Targets) -> list[dict[str, Any]]:
    """The issue's targets as met / not met (None: not measurable) with their figures."""
    out: list[dict[str, Any]] = []
    pred, gt = report["runs"].get("predicted"), report["runs"].get("gt")
    if pred is None:
        return out
    for key, r in sorted((pred.get("rpe_steady") or {}).items(), key=lambda kv: float(
            kv[0].removesuffix("m"))):
        value = r.get("translation_pct")
        ok = None if value is None or not math.isfinite(value) else value <= \
            t.rpe_translation_max_pct
        out.append({"name": f"rpe_{key}_translation", "target": f"<= "
                    f"{t.rpe_translation_max_pct:g} %", "value": value, "met": ok,
                    "text": f"steady-state RPE over {key} with predicted depth: "
                            f"{_fmt(value, '.2f')} % (target <= {t.rpe_translation_max_pct:g}"
                            " %)"})
        ref = ((gt or {}).get("rpe_steady") or {}).get(key, {}).get("translation_pct")
        ratio = (value / ref if value is not None and ref and math.isfinite(value)
                 and math.isfinite(ref) and ref > 0 else None)
        out.append({"name": f"rpe_{key}_ratio", "target": f"<= {t.rpe_ratio_max:g} x",
                    "value": ratio, "met": None if ratio is None else ratio <= t.rpe_ratio_max,
                    "text": f"steady-state RPE over {key}, predicted / ground-truth depth: "
                            f"{_fmt(value, '.2f')} % / {_fmt(ref, '.2f')} % = "
                            f"{_fmt(ratio, '.2f')} x (target <= {t.rpe_ratio_max:g} x)"})
    jumps = (pred.get("jumps") or {}).get("count")
    out.append({"name": "tracking_failures", "target": f"<= {t.max_jumps}", "value": jumps,
                "met": None if jumps is None else jumps <= t.max_jumps,
                "text": f"tracking failures (steps > {report['evaluation']['jump_m']:g} m "
                        f"off the true step) with predicted depth: {_fmt(jumps, 'd')} "
                        f"(target <= {t.max_jumps})"})
    return out


def _fmt(value: Any, spec: str) -> str:
    """A number formatted, or 'n/a'."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return format(value, spec)


def report_markdown(r: dict[str, Any]) -> str:
    """The Markdown report of a run_slam result (JSON values)."""
    depths = ", ".join(RUN_LABELS[k] for k in r["depth"])
    lines = [f"# SLAM integration: {r['backend']} on {depths}",
             "", f"Bag `{r['bag']}`: {r['sets']['processed']} sets processed "
             f"({r['frames_in_bag']} frames); parameters `{r['params_file']}` with "
             f"{r['node_parameters']}; consumer settings `{r['slam_config']}`; "
             f"extrinsics from {r['rig_source']}.", "",
             f"Network: {r['engine'].get('preset') or ''} {r['engine'].get('weights') or ''} "
             f"on {r['engine'].get('device')}; pipeline {_fmt(r['pipeline_ms']['median'], '.0f')}"
             f" ms per set (median). The bag's odometry is the ground truth and is never given "
             f"to the consumer.", "", "## Targets", ""]
    for t in r.get("targets", []):
        mark = {True: "met", False: "NOT met", None: "not measured"}[t["met"]]
        lines.append(f"- **{mark}**: {t['text']}")
    ev = r["evaluation"]
    lines += ["", "## Trajectory", "",
              f"ATE after SE(3) alignment (Umeyama, no scale). RPE over segments of ground-"
              f"truth travel; steady state: segments starting after "
              f"{ev['steady_state_after_m']:g} m. A jump: a step more than {ev['jump_m']:g} m "
              "off the true step.", ""]
    head = ["run", "sets", "distance (m)", "ATE RMSE (m)"]
    lengths = [f"{L:g}m" for L in ev["segment_lengths_m"]]
    for L in lengths:
        head += [f"RPE {L} (%)", f"RPE {L} steady (%)", f"RPE {L} steady (deg/m)"]
    head += ["jumps", "consumer ms (median / p95)"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for kind, run in r["runs"].items():
        row = [RUN_LABELS[kind], str(run["sets"]), _fmt(run.get("distance_m"), ".1f"),
               _fmt((run.get("ate") or {}).get("rmse"), ".3f")]
        for L in lengths:
            a = (run.get("rpe") or {}).get(L) or {}
            s = (run.get("rpe_steady") or {}).get(L) or {}
            row += [_fmt(a.get("translation_pct"), ".2f"), _fmt(s.get("translation_pct"), ".2f"),
                    _fmt(s.get("rotation_deg_per_m"), ".3f")]
        row += [_fmt((run.get("jumps") or {}).get("count"), "d"),
                f"{_fmt(run['time_ms']['median'], '.1f')} / {_fmt(run['time_ms']['p95'], '.1f')}"]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", f"![trajectories]({PLOT_FILE})", ""]
    meshes = {k: v["mesh"] for k, v in r["runs"].items() if v.get("mesh")}
    if meshes:
        lines += ["## Mesh", "", "TSDF fusion of each run's depth along its estimated "
                  "trajectory (aligned), against the mesh of ground-truth depth along the true "
                  "trajectory; distances between points sampled on both surfaces.", ""]
        taus = sorted({k for m in meshes.values() for k in (m.get("fscore") or {})})
        head = ["run", "triangles", "accuracy (m)", "completeness (m)", "Chamfer (m)",
                *[f"F-score @ {float(k) * 100:g} cm" for k in taus]]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for kind, m in meshes.items():
            row = [RUN_LABELS[kind], str(m["triangles"]), _fmt(m.get("accuracy_m"), ".3f"),
                   _fmt(m.get("completeness_m"), ".3f"), _fmt(m.get("chamfer_m"), ".3f"),
                   *[_fmt(((m.get("fscore") or {}).get(k) or {}).get("fscore"), ".3f")
                     for k in taus]]
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
        for kind in meshes:
            lines.append(f"![mesh {kind}](mesh_{kind}.png)")
        if r.get("mesh_reference"):
            lines.append("![reference mesh](mesh_reference.png)")
        lines.append("")
    lines += ["## Files", ""]
    for name, path in sorted(r.get("files", {}).items()):
        lines.append(f"- {name}: `{Path(path).name}`")
    if r.get("evo"):
        lines += ["", "Check with evo (GPL-3.0, not used by the package):", ""]
        lines += [f"    {c}" for c in r["evo"]]
    if r.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {n}" for n in r["notes"]]
    return "\n".join(lines) + "\n"



__all__ = ["MAX_LISTED_JUMPS", "PLOT_FILE", "RUN_LABELS", "TUM_FILES", "evaluate_run",
           "evaluate_targets", "plot_trajectories", "report_markdown", "stats_ms",
           "write_meshes", "write_trajectories"]
