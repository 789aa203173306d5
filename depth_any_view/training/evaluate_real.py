"""Depth on real photographs (issue 20): Middlebury pairs with true disparity.

`depth-any-view eval-real` runs every pair of data/real_images.py through the same
InferenceEngine as `evaluate` (shipped weights by default) in two settings:
- mono: the left image alone. The network was trained on synthetic metric scenes, and a
  real pair's scale is only nominal (see data/real_images.py), so the scores are
  scale-free: AbsRel after per-image median scaling (`si_abs_rel`) and the Spearman rank
  correlation of predicted and true depth (`spearman`). Baseline: a constant depth, whose
  median-scaled AbsRel is that of median(GT) everywhere and which has no order (Spearman
  undefined, reported as such).
- stereo: the left and right images as a two-camera rectified rig (K of each at the
  image resolution, T_base_cam from rig_poses). Metric AbsRel and delta1 over every pixel
  with ground truth (coverage = fraction that got a prediction). Reference: OpenCV
  StereoSGBM on the same pair (AbsRel / delta1 on its valid pixels, its coverage and
  seconds); its disparity becomes depth with the pair's rig, like the ground truth.
Ground truth only scores. Figures are deterministic for given weights and pairs (the
seconds are not).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from depth_any_view.data.real_images import StereoPair, depth_from_disparity, load_pairs
from depth_any_view.training.metrics import depth_metrics, spearman_correlation

FIGURE = "real_images.png"
PHOTO_FIGURE = "photographs.png"
SGBM_BLOCK = 5  # pixels, StereoSGBM block size
_PNG_METADATA = {"Software": None}  # no library version in the file: same data, same bytes


def _scores(depth: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """Metric and scale-free scores of one depth map against the ground truth (metres)."""
    m = depth_metrics(depth, gt, bins=None)
    s = depth_metrics(depth, gt, bins=None, median_scaling=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        ok = np.isfinite(depth) & (depth > 0) & np.isfinite(gt) & (gt > 0)
        ratio = float(np.median(depth[ok] / gt[ok])) if ok.any() else math.nan
    return {"abs_rel": m["abs_rel"], "delta1": m["delta1"], "rmse": m["rmse"],
            "coverage": m["coverage"], "si_abs_rel": s["abs_rel"], "si_delta1": s["delta1"],
            "spearman": spearman_correlation(depth, gt), "scale_ratio": ratio}


def sgbm_depth(pair: StereoPair, *, block: int = SGBM_BLOCK) -> tuple[np.ndarray, float]:
    """OpenCV StereoSGBM (3-way, colour) on a pair: left depth (H, W) metres, NaN where it
    found no disparity, and the seconds it took. The search covers a quarter of the image
    width (rounded up to 16), chosen without the ground truth."""
    w = pair.size[0]
    num = int(16 * math.ceil(w / 4 / 16))
    sgbm = cv2.StereoSGBM_create(minDisparity=0, numDisparities=num, blockSize=block,
                                 P1=8 * 3 * block ** 2, P2=32 * 3 * block ** 2,
                                 disp12MaxDiff=1, uniquenessRatio=10, speckleWindowSize=100,
                                 speckleRange=2, mode=cv2.STEREO_SGBM_MODE_SGBM_3WAY)
    t0 = time.perf_counter()
    raw = sgbm.compute(np.ascontiguousarray(pair.left), np.ascontiguousarray(pair.right))
    seconds = time.perf_counter() - t0
    disp = np.where(raw > 0, raw.astype(np.float32) / 16.0, np.nan)  # fixed point 4 bits
    return depth_from_disparity(disp, pair.K_left[0, 0], pair.baseline,
                                doffs=pair.doffs), seconds


def evaluate_pair(engine: Any, pair: StereoPair, *, mono_pose: str = "identity"
                  ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Scores of one pair in both settings, and the depth maps (metres) for the figure.

    Args:
        engine: a ready InferenceEngine.
        pair: the stereo pair.
        mono_pose: 'rig' (the left camera's pose of the stereo rig) or 'identity'
            (T_base_cam = I) for the single-camera run.
    """
    from depth_any_view.inference.engine import ViewInput

    gt = pair.depth()
    cam_l, cam_r = pair.cameras()
    T_l, T_r = pair.poses()
    if mono_pose not in ("rig", "identity"):
        raise ValueError(f"mono_pose must be 'rig' or 'identity', got '{mono_pose}'")
    T_mono = T_l if mono_pose == "rig" else np.eye(4)
    mono = engine.infer([ViewInput("left", pair.left, cam_l, T_mono)])
    stereo = engine.infer([ViewInput("left", pair.left, cam_l, T_l),
                           ViewInput("right", pair.right, cam_r, T_r)])
    d_mono = mono.view_depth(0)[0].astype(np.float32)
    d_stereo = stereo.view_depth(0)[0].astype(np.float32)
    d_sgbm, sgbm_s = sgbm_depth(pair)
    const = np.full_like(gt, float(np.nanmedian(gt)))
    w, h = pair.size
    rec: dict[str, Any] = {
        "size": [w, h], "source": pair.source, "calibrated": pair.calibrated,
        "focal_px": float(pair.K_left[0, 0]), "baseline_m": pair.baseline,
        "doffs_px": pair.doffs, "gt_pixels": int(np.isfinite(gt).sum()),
        "gt_depth_range_m": [float(np.nanmin(gt)), float(np.nanmax(gt))],
        "mono": {**_scores(d_mono, gt), "seconds": mono.timings.get("total", math.nan)},
        "constant": _scores(const, gt),
        "stereo": {**_scores(d_stereo, gt), "seconds": stereo.timings.get("total", math.nan)},
        "sgbm": {**_scores(d_sgbm, gt), "seconds": sgbm_s},
    }
    scale = rec["mono"]["scale_ratio"]
    maps = {"gt": gt, "mono": d_mono / scale if np.isfinite(scale) and scale > 0 else d_mono,
            "stereo": d_stereo, "sgbm": d_sgbm}
    return rec, maps


SETTINGS = ("mono", "constant", "stereo", "sgbm")


def _mean_over_pairs(pairs: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Each setting's scores averaged over the pairs (NaN-aware; NaN if none is finite)."""
    out: dict[str, dict[str, float]] = {}
    for s in SETTINGS:
        keys = next(iter(pairs.values()))[s].keys()
        out[s] = {}
        for k in keys:
            v = np.array([p[s][k] for p in pairs.values()], dtype=np.float64)
            out[s][k] = float(np.mean(v[np.isfinite(v)])) if np.isfinite(v).any() else math.nan
    return out


def evaluate_real(*, weights: str | Path | None = None, pairs: Sequence[str] | None = None,
                  max_width: int = 0, mono_pose: str = "identity",
                  engine_overrides: dict[str, Any] | None = None,
                  keep_maps: bool = False) -> dict[str, Any]:
    """Scores of weights on the real stereo pairs (see the module docstring).

    Args:
        weights: safetensors file; None = the package's shipped weights.
        pairs: pair names (default: every installed one, data.real_images.PAIR_LOADERS).
        max_width: scale pairs down to at most this many pixels wide (0 = as shipped).
        mono_pose: the single camera's T_base_cam: 'rig' or 'identity'.
        engine_overrides: extra EngineConfig fields (device, precision, ...).
        keep_maps: also return the images and depth maps under '_maps' (for the figure).

    Returns:
        {'pairs': {name: {'mono' | 'constant' | 'stereo' | 'sgbm': {'abs_rel', 'delta1',
        'rmse', 'coverage', 'si_abs_rel', 'si_delta1', 'spearman', 'scale_ratio',
        'seconds'}, 'size', 'focal_px', 'baseline_m', ...}}, 'mean': the settings averaged
        over pairs, 'weights', 'engine', 'mono_pose', 'max_width', 'seconds'}.
    """
    from depth_any_view.inference.engine import EngineConfig, InferenceEngine

    t0 = time.perf_counter()
    loaded = load_pairs(pairs, max_width=max_width)
    # a weights file carries its own config: trust it (a preset would refuse other networks)
    engine = InferenceEngine(EngineConfig(weights=str(weights) if weights else None,
                                          preset=None if weights else "lite",
                                          warmup_iters=0, **(engine_overrides or {})))
    recs: dict[str, Any] = {}
    maps: dict[str, Any] = {}
    for pair in loaded:
        recs[pair.name], m = evaluate_pair(engine, pair, mono_pose=mono_pose)
        if keep_maps:
            maps[pair.name] = {**m, "left": pair.left, "right": pair.right}
    result: dict[str, Any] = {"pairs": recs, "mean": _mean_over_pairs(recs),
                              "weights": engine.weights_source, "engine": engine.describe(),
                              "mono_pose": mono_pose, "max_width": max_width,
                              "network_size": list(engine.image_size),
                              "seconds": time.perf_counter() - t0}
    if keep_maps:
        result["_maps"] = maps
        result["_engine"] = engine
    return result


# ---------------------------------------------------------------------------- report
def _fmt(v: Any, nan: str = "n/a") -> str:
    """A figure for a table (3 decimals)."""
    return nan if v is None or not np.isfinite(v) else f"{v:.3f}"


def headline(result: dict[str, Any]) -> str:
    """One line of the main figures, averaged over pairs."""
    m = result["mean"]
    return (f"{len(result['pairs'])} real pair(s): mono si-AbsRel {_fmt(m['mono']['si_abs_rel'])}"
            f" (constant {_fmt(m['constant']['si_abs_rel'])}), Spearman "
            f"{_fmt(m['mono']['spearman'])} (constant: no order); stereo AbsRel "
            f"{_fmt(m['stereo']['abs_rel'])}, delta1 {_fmt(m['stereo']['delta1'])} at "
            f"coverage {_fmt(m['stereo']['coverage'])}; SGBM AbsRel "
            f"{_fmt(m['sgbm']['abs_rel'])}, delta1 {_fmt(m['sgbm']['delta1'])} at coverage "
            f"{_fmt(m['sgbm']['coverage'])}")


def report_markdown(result: dict[str, Any]) -> str:
    """Markdown: the rig of each pair, then one table per pair and the mean."""
    lines = ["# Depth on real photographs (Middlebury pairs)", "",
             f"Weights: `{result['weights']}`; network input {result['network_size'][1]}x"
             f"{result['network_size'][0]} (WxH); single camera pose: {result['mono_pose']}"
             "; pairs " + (f"scaled to at most {result['max_width']} pixels wide."
                           if result["max_width"] else "at their shipped size."),
             "", "| pair | size | rig | f (px) | B (m) | GT depth (m) | GT pixels |",
             "|---|---|---|---|---|---|---|"]
    for name, r in result["pairs"].items():
        rig = "calibrated" if r["calibrated"] else "nominal (60 deg HFOV)"
        lo, hi = r["gt_depth_range_m"]
        lines.append(f"| {name} | {r['size'][0]}x{r['size'][1]} | {rig} | "
                     f"{r['focal_px']:.1f} | {r['baseline_m']:.3f} | {lo:.2f}-{hi:.2f} | "
                     f"{r['gt_pixels']} |")
    labels = {"mono": "network, left image alone", "constant": "constant depth",
              "stereo": "network, two-camera rig", "sgbm": "OpenCV StereoSGBM"}
    head = ["", "| setting | si-AbsRel | Spearman | AbsRel | delta1 | coverage | "
            "scale ratio | seconds |", "|---|---|---|---|---|---|---|---|"]
    for title, block in [*((f"Pair `{n}`", r) for n, r in result["pairs"].items()),
                         ("Mean over pairs", result["mean"])]:
        lines += ["", f"## {title}", *head]
        for s in SETTINGS:
            v = block[s]
            rho = "no order" if s == "constant" else _fmt(v["spearman"])
            lines.append(f"| {labels[s]} | {_fmt(v['si_abs_rel'])} | {rho} | "
                         f"{_fmt(v['abs_rel'])} | {_fmt(v['delta1'])} | {_fmt(v['coverage'])} "
                         f"| {_fmt(v['scale_ratio'])} | {_fmt(v.get('seconds'))} |")
    lines += ["", "si-AbsRel: AbsRel after scaling each prediction by median(GT) / "
              "median(prediction); Spearman: rank correlation of predicted and true depth; "
              "AbsRel / delta1: metric, over GT pixels with a prediction (coverage); scale "
              "ratio: median of prediction / GT; seconds: the engine call (the first call "
              "of a calibration includes its set-up) or SGBM's compute. The mono and "
              "constant rows are scale-free by design; their metric columns only show how "
              "far the scale is off."]
    figs = result.get("figures") or {}
    for key, alt in (("real_images", "real pairs"), ("photographs", "photographs")):
        if key in figs:
            lines += ["", f"![{alt}]({figs[key]})"]
    return "\n".join(lines) + "\n"


def _depth_axes(ax: Any, depth: np.ndarray, lo: float, hi: float, title: str) -> None:
    """One depth map in inverse depth colours (near = bright), NaN grey."""
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("magma").with_extremes(bad="0.6")
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / depth
    ax.imshow(np.ma.masked_invalid(inv), cmap=cmap, vmin=1.0 / hi, vmax=1.0 / lo,
              interpolation="nearest")
    ax.set_title(title, fontsize=8)


def _save_figure(fig: Any, path: str | Path) -> Path:
    """Lay out, write (90 dpi, no library version in the PNG) and close a figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=90, metadata=_PNG_METADATA)
    plt.close(fig)
    return path


def plot_real(result: dict[str, Any], path: str | Path) -> Path:
    """PNG, one row per pair: left, right, GT, mono (median-scaled), stereo, SGBM depth."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    maps = result["_maps"]
    fig, axes = plt.subplots(len(maps), 6, figsize=(16, 2.8 * len(maps)), squeeze=False)
    for row, (name, m) in zip(axes, maps.items()):
        r = result["pairs"][name]
        lo, hi = np.nanpercentile(m["gt"], [1, 99])
        row[0].imshow(m["left"])
        row[0].set_title(f"{name}: left", fontsize=8)
        row[1].imshow(m["right"])
        row[1].set_title("right", fontsize=8)
        _depth_axes(row[2], m["gt"], lo, hi, f"GT depth {lo:.2f}-{hi:.2f} m")
        _depth_axes(row[3], m["mono"], lo, hi, f"mono x{1 / r['mono']['scale_ratio']:.2f}: "
                    f"siAbsRel {_fmt(r['mono']['si_abs_rel'])}, rho "
                    f"{_fmt(r['mono']['spearman'])}")
        _depth_axes(row[4], m["stereo"], lo, hi, f"stereo: AbsRel "
                    f"{_fmt(r['stereo']['abs_rel'])}, d1 {_fmt(r['stereo']['delta1'])}")
        _depth_axes(row[5], m["sgbm"], lo, hi, f"SGBM: AbsRel {_fmt(r['sgbm']['abs_rel'])}, "
                    f"cov {_fmt(r['sgbm']['coverage'])}")
        for ax in row:
            ax.set_axis_off()
    return _save_figure(fig, path)


def plot_photographs(engine: Any, path: str | Path, *, mono_pose: str = "identity"
                     ) -> Path | None:
    """PNG of scikit-image's sample photographs and the network's single-camera depth
    (qualitative: no ground truth; nominal 60 deg camera with T_base_cam from `mono_pose`,
    as in evaluate_pair); None when scikit-image is not installed."""
    from depth_any_view.data.real_images import nominal_intrinsics, rig_poses, sample_photographs
    from depth_any_view.geometry.camera import PinholeCamera
    from depth_any_view.inference.engine import ViewInput

    photos = sample_photographs()
    if not photos:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(photos), figsize=(3.2 * len(photos), 6.0), squeeze=False)
    T = rig_poses(0.0)[0] if mono_pose == "rig" else np.eye(4)
    for col, (name, img) in enumerate(photos.items()):
        h, w = img.shape[:2]
        cam = PinholeCamera(width=w, height=h, K=nominal_intrinsics(w, h))
        depth = engine.infer([ViewInput(name, img, cam, T)]).view_depth(0)[0]
        axes[0, col].imshow(img)
        axes[0, col].set_title(name, fontsize=8)
        lo, hi = np.nanpercentile(depth, [1, 99]) if np.isfinite(depth).any() else (1.0, 2.0)
        _depth_axes(axes[1, col], depth, lo, hi, f"predicted {lo:.1f}-{hi:.1f} m")
        for ax in axes[:, col]:
            ax.set_axis_off()
    return _save_figure(fig, path)


def write_real_report(result: dict[str, Any], out_dir: str | Path, *,
                      photographs: bool = True) -> tuple[Path, Path]:
    """Write `real_images.json`, `real_images.md` and the figures (when the result kept its
    maps) into out_dir; returns the JSON and Markdown paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figs: dict[str, str] = {}
    if "_maps" in result:
        figs["real_images"] = plot_real(result, out / FIGURE).name
        if photographs and "_engine" in result:
            p = plot_photographs(result["_engine"], out / PHOTO_FIGURE,
                                 mono_pose=result["mono_pose"])
            if p is not None:
                figs["photographs"] = p.name
    result["figures"] = figs
    public = {k: v for k, v in result.items() if not k.startswith("_")}
    js = out / "real_images.json"
    clean = json.loads(json.dumps(public, default=float).replace("NaN", "null"))
    js.write_text(json.dumps(clean, indent=2, sort_keys=True))
    md = out / "real_images.md"
    md.write_text(report_markdown(public))
    return js, md
