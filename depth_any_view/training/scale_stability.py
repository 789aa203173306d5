"""Metric scale that holds over time and across cameras, and reprojection angles.

Scale stability (`ScaleStabilityAccumulator`, issue 10: metric scale that holds over time
and across cameras). Per frame f and camera v the scale ratio r_fv is the median of
pred / gt over the camera's valid pixels; the frame's pooled ratio R_f is that median over
all its cameras' valid pixels together.
    ratio_mean          mean over frames of R_f                  target |x - 1| <= 0.03
    ratio_std           standard deviation (ddof 0) over frames of R_f       <= 0.02
    cross_camera_std    std (ddof 0) of r_fv over the cameras of frame f, averaged over
                        frames with at least two cameras                      <= 0.02
    overlap_disagreement  for ordered camera pairs (a, b): a strided subsample of a's pixels
                        is back-projected with a's *predicted* depth into b and projected to
                        its nearest pixel u_b; where the ground truth says both cameras see
                        that surface point (a's true point lands in b within 2 % of b's true
                        depth there), |z_b(point) - pred_b(u_b)| / pred_b(u_b); the median
                        over all pairs, pixels and frames                     <= 0.03
Ground truth only selects and scores pixels, as in every metric here. The overlap median is
read from a histogram (bins of 1e-4 below 1, 0.2 % wide above), so accumulators merge and
memory does not grow with the number of frames.

`angular_reprojection_error`: the angle at which another camera sees a predicted point off
its true position. Inputs may be numpy arrays or torch tensors (float64 numpy inside).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from depth_any_view.geometry.camera import PinholeCamera
from depth_any_view.training.metric_arrays import to_float64, valid_depth


def angular_reprojection_error(pred_depth: Any, gt_depth: Any, K: Any, T_base_cam: Any,
                               T_base_obs: Any, *, K_obs: Any | None = None,
                               obs_size: tuple[int, int] | None = None) -> np.ndarray:
    """Angle (degrees) at which another camera sees a predicted point off its true position.

    For each pixel of camera A with valid predicted and ground-truth depth, back-project
    both depths along the pixel's ray to the predicted point P^ and the true point P in
    base_link. Seen from the optical centre C of an observing camera B, the error is the
    angle between the rays C -> P^ and C -> P:
        angle = atan2(|(P^ - C) x (P - C)|, (P^ - C) . (P - C)).
    It is what a depth error looks like when the point is reprojected into B: about
    (pixel error / focal length) radians. When B is A itself it is 0 (both points lie on
    A's ray), which is why B must be another camera.

    Args:
        pred_depth, gt_depth: (H, W) depth of camera A, metres; NaN / <= 0 invalid.
        K: (3, 3) intrinsics of camera A; T_base_cam: (4, 4) its extrinsics.
        T_base_obs: (4, 4) extrinsics of the observing camera B.
        K_obs, obs_size: optional intrinsics and (width, height) of B; when given, only
            pixels whose true point projects inside B's image count.

    Returns:
        (N,) angles in degrees for the counted pixels (row-major order): valid in both
        depths and with the true point in front of B (z > 0 in B's frame).
    """
    pd, gd = to_float64(pred_depth), to_float64(gt_depth)
    K, T_a, T_b = to_float64(K), to_float64(T_base_cam), to_float64(T_base_obs)
    if pd.shape != gd.shape or pd.ndim != 2:
        raise ValueError(f"pred_depth {pd.shape} and gt_depth {gd.shape} must be (H, W)")
    h, w = pd.shape
    v, u = np.mgrid[0:h, 0:w]
    rays = np.stack([u, v, np.ones_like(u)], axis=-1).reshape(-1, 3) @ np.linalg.inv(K).T
    with np.errstate(invalid="ignore"):
        ok = (np.isfinite(pd) & (pd > 0) & np.isfinite(gd) & (gd > 0)).reshape(-1)
    rays = rays[ok]  # (N, 3), z = 1 in camera A
    p_hat = (rays * pd.reshape(-1)[ok, None]) @ T_a[:3, :3].T + T_a[:3, 3]  # (N, 3) base
    p_true = (rays * gd.reshape(-1)[ok, None]) @ T_a[:3, :3].T + T_a[:3, 3]  # (N, 3) base
    c = T_b[:3, 3]
    a, b = p_hat - c, p_true - c
    R_ob = T_b[:3, :3].T  # base -> observer rotation
    b_obs = b @ R_ob.T  # (N, 3) true point in B's frame
    keep = b_obs[:, 2] > 0
    if K_obs is not None and obs_size is not None:
        uvw = b_obs @ to_float64(K_obs).T
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = uvw[:, :2] / uvw[:, 2:3]
        keep &= ((uv[:, 0] >= -0.5) & (uv[:, 0] <= obs_size[0] - 0.5)
                 & (uv[:, 1] >= -0.5) & (uv[:, 1] <= obs_size[1] - 0.5))
    a, b = a[keep], b[keep]
    cross = np.linalg.norm(np.cross(a, b), axis=1)
    dot = np.einsum("ij,ij->i", a, b)
    return np.degrees(np.arctan2(cross, dot))


# ---------------------------------------------------------------------------- scale stability
SCALE_RATIO_TOLERANCE = 0.03  # target: |ratio_mean - 1| <= this
SCALE_RATIO_STD_MAX = 0.02  # target: ratio_std (over frames) <= this
SCALE_CROSS_CAMERA_STD_MAX = 0.02  # target: cross_camera_std <= this
SCALE_OVERLAP_DISAGREEMENT_MAX = 0.03  # target: overlap_disagreement <= this
SCALE_FIGURES = ("ratio_mean", "ratio_std", "cross_camera_std", "overlap_disagreement")
SCALE_TARGETS: dict[str, tuple[str, float]] = {  # figure -> (comparison, bound)
    "ratio_mean": ("|x - 1| <=", SCALE_RATIO_TOLERANCE),
    "ratio_std": ("<=", SCALE_RATIO_STD_MAX),
    "cross_camera_std": ("<=", SCALE_CROSS_CAMERA_STD_MAX),
    "overlap_disagreement": ("<=", SCALE_OVERLAP_DISAGREEMENT_MAX),
}
OVERLAP_STRIDE = 4  # pixels: every 4th row and column of camera a is projected into b
SAME_SURFACE_TOLERANCE = 0.02  # relative: a's true point within 2 % of b's true depth
# Histogram of the overlap's relative differences: 1e-4 wide below 1, ~0.2 % above, to 1e4.
_OVERLAP_EDGES = np.concatenate([np.linspace(0.0, 1.0, 10001),
                                 np.geomspace(1.0, 1e4, 4001)[1:]])


def scale_targets_met(figures: dict[str, float]) -> dict[str, bool | None]:
    """Whether each scale figure meets its target (None when the figure is NaN / absent)."""
    out: dict[str, bool | None] = {}
    for key, (_, bound) in SCALE_TARGETS.items():
        v = figures.get(key)
        if v is None or not math.isfinite(v):
            out[key] = None
        elif key == "ratio_mean":
            out[key] = abs(v - 1.0) <= bound
        else:
            out[key] = v <= bound
    return out


def _hist_median(counts: np.ndarray, edges: np.ndarray) -> float:
    """Median of histogrammed values (linear within the bin); counts has len(edges) bins,
    the last one for values >= edges[-1] (inf if the median falls there); NaN if empty."""
    n = counts.sum()
    if n == 0:
        return math.nan
    cum = np.cumsum(counts)
    i = int(np.searchsorted(cum, n / 2.0))  # first bin whose cumulative count >= n / 2
    if i >= len(edges) - 1:
        return math.inf
    before = cum[i] - counts[i]
    frac = (n / 2.0 - before) / counts[i]
    return float(edges[i] + frac * (edges[i + 1] - edges[i]))


def _nearest_pixel(cam: PinholeCamera, p_cam: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                       np.ndarray]:
    """Nearest pixel (row (N,), col (N,)) of camera-frame points and whether it is in the
    image with the point in front of the camera (N,)."""
    uv, ok = cam.project(p_cam)
    col = np.clip(np.rint(np.nan_to_num(uv[:, 0])), 0, cam.width - 1).astype(np.int64)
    row = np.clip(np.rint(np.nan_to_num(uv[:, 1])), 0, cam.height - 1).astype(np.int64)
    return row, col, ok


class ScaleStabilityAccumulator:
    """Scale ratios per frame and camera, and cross-camera overlap disagreement.

    See the module docstring for the definitions. `update` takes one synchronized frame;
    `compute` gives the figures, their targets and the per-frame series for a plot.
    """

    def __init__(self, camera_names: Sequence[str], *, stride: int = OVERLAP_STRIDE,
                 same_surface_tolerance: float = SAME_SURFACE_TOLERANCE) -> None:
        """Args:
            camera_names: the V cameras, in the order of the arrays given to `update`.
            stride: pixels between the samples of camera a projected into b (>= 1).
            same_surface_tolerance: relative depth agreement that makes a's true point
                the surface b sees (ground truth, scoring only).
        """
        self.camera_names = list(camera_names)
        if not self.camera_names or len(set(self.camera_names)) != len(self.camera_names):
            raise ValueError(f"camera_names must be unique and non-empty, got {camera_names}")
        if int(stride) < 1:
            raise ValueError(f"stride must be >= 1 pixel, got {stride}")
        if not 0 < float(same_surface_tolerance) < 1:
            raise ValueError("same_surface_tolerance must be a fraction in (0, 1), got "
                             f"{same_surface_tolerance}")
        self.stride = int(stride)
        self.same_surface_tolerance = float(same_surface_tolerance)
        self.reset()

    def reset(self) -> None:
        """Forget everything accumulated."""
        self.stamps: list[float] = []  # per frame: seconds or frame index (x of the plot)
        self.pooled: list[float] = []  # per frame: R_f, NaN without valid pixels
        self.per_camera: list[np.ndarray] = []  # per frame: (V,) r_fv, NaN = no valid pixel
        self.overlap_counts = np.zeros(len(_OVERLAP_EDGES), dtype=np.int64)  # last: overflow

    # ------------------------------------------------------------------ input checks
    def _views(self, x: Any, what: str) -> list[np.ndarray | None]:
        """V float64 (H_v, W_v) arrays (None = camera absent) of an array or a sequence."""
        V = len(self.camera_names)
        if isinstance(x, (np.ndarray, torch.Tensor)):
            x = to_float64(x)
            if x.ndim != 3 or x.shape[0] != V:
                raise ValueError(f"{what} {x.shape} must be (V, H, W) with V = {V} cameras "
                                 f"{self.camera_names}")
            return list(x)
        views = list(x)
        if len(views) != V:
            raise ValueError(f"{what} has {len(views)} views; expected V = {V} cameras "
                             f"{self.camera_names}")
        out: list[np.ndarray | None] = []
        for name, v in zip(self.camera_names, views):
            if v is None:
                out.append(None)
                continue
            a = to_float64(v)
            if a.ndim != 2:
                raise ValueError(f"{what} of camera '{name}' is {a.shape}; expected (H, W)")
            out.append(a)
        return out

    def _cameras(self, K: Any, shapes: list[tuple[int, int] | None]) -> list[PinholeCamera | None]:
        """One camera per view at its depth's size (a PinholeCamera of another size is
        resized; a (3, 3) matrix becomes a distortion-free camera)."""
        if isinstance(K, (np.ndarray, torch.Tensor)):
            K = list(to_float64(K).reshape(-1, 3, 3))
        K = list(K)
        if len(K) != len(self.camera_names):
            raise ValueError(f"K has {len(K)} cameras; expected {len(self.camera_names)} "
                             f"({self.camera_names})")
        cams: list[PinholeCamera | None] = []
        for name, k, shape in zip(self.camera_names, K, shapes):
            if shape is None or k is None:
                cams.append(None)
                continue
            h, w = shape
            if isinstance(k, PinholeCamera):
                cams.append(k if (k.width, k.height) == (w, h) else k.resized(w, h))
                continue
            k = to_float64(k)
            if k.shape != (3, 3):
                raise ValueError(f"K of camera '{name}' is {k.shape}; expected (3, 3)")
            cams.append(PinholeCamera(width=w, height=h, K=k))
        return cams

    # ------------------------------------------------------------------ accumulate
    def update(self, pred: Any, gt: Any, K: Any, T_base_cam: Any, stamp: float) -> None:
        """Add one frame.

        Args:
            pred: predicted depth (V, H, W) metres, or a sequence of V (H_v, W_v) arrays
                (None = camera absent in this frame); NaN / <= 0 = no estimate.
            gt: ground-truth depth, same shapes, metres; NaN / <= 0 = unknown.
            K: (V, 3, 3) pinhole intrinsics of the depth images, or V PinholeCamera
                (distortion applied; resized to the depth's size when they differ).
            T_base_cam: (V, 4, 4) camera optical frame -> base_link.
            stamp: the frame's position on the plot's x axis (seconds or frame index).
        """
        preds, gts = self._views(pred, "pred"), self._views(gt, "gt")
        V = len(self.camera_names)
        shapes: list[tuple[int, int] | None] = []
        for name, p, g in zip(self.camera_names, preds, gts):
            if p is None or g is None:
                shapes.append(None)
            elif p.shape != g.shape:
                raise ValueError(f"camera '{name}': pred {p.shape} and gt {g.shape} must have "
                                 "the same shape (resample the prediction to the ground truth)")
            else:
                shapes.append(p.shape)
        T = to_float64(T_base_cam)
        if T.shape != (V, 4, 4):
            raise ValueError(f"T_base_cam {T.shape} must be (V, 4, 4) with V = {V}")
        cams = self._cameras(K, shapes)
        ratios = np.full(V, np.nan)
        pooled = []
        masks: list[np.ndarray | None] = []
        for v in range(V):  # one vectorised median per camera
            p, g = preds[v], gts[v]
            if p is None or g is None:
                masks.append(None)
                continue
            ok = valid_depth(p) & valid_depth(g)  # (H, W)
            masks.append(ok)
            if ok.any():
                r = p[ok] / g[ok]
                ratios[v] = np.median(r)
                pooled.append(r)
        self.stamps.append(float(stamp))
        self.per_camera.append(ratios)
        self.pooled.append(float(np.median(np.concatenate(pooled))) if pooled else math.nan)
        rel = self._overlap(preds, gts, masks, cams, T)
        if rel.size:
            bins = np.searchsorted(_OVERLAP_EDGES, rel, side="right") - 1  # (N,)
            self.overlap_counts += np.bincount(bins, minlength=len(_OVERLAP_EDGES))

    def _overlap(self, preds: list[np.ndarray | None], gts: list[np.ndarray | None],
                 masks: list[np.ndarray | None], cams: list[PinholeCamera | None],
                 T: np.ndarray) -> np.ndarray:
        """Relative differences (N,) of every ordered camera pair of one frame."""
        s = self.stride
        tol = self.same_surface_tolerance
        out = []
        for a, cam_a in enumerate(cams):
            if cam_a is None:
                continue
            sub = masks[a][s // 2::s, s // 2::s]  # (h, w) strided samples
            rows, cols = np.nonzero(sub)
            if rows.size == 0:
                continue
            rows, cols = rows * s + s // 2, cols * s + s // 2
            uv = np.stack([cols, rows], axis=1).astype(np.float64)  # (N, 2)
            p_hat = cam_a.backproject(uv, preds[a][rows, cols])  # (N, 3) camera a
            p_true = cam_a.backproject(uv, gts[a][rows, cols])  # (N, 3) camera a
            for b, cam_b in enumerate(cams):
                if b == a or cam_b is None:
                    continue
                T_ba = np.linalg.solve(T[b], T[a])  # camera a -> camera b
                R, t = T_ba[:3, :3], T_ba[:3, 3]
                true_b = p_true @ R.T + t  # (N, 3) in b
                hat_b = p_hat @ R.T + t  # (N, 3) in b
                gr, gc, g_in = _nearest_pixel(cam_b, true_b)
                g_b = gts[b][gr, gc]
                with np.errstate(invalid="ignore"):
                    same = g_in & valid_depth(g_b) & (np.abs(true_b[:, 2] - g_b) <= tol * g_b)
                if not same.any():
                    continue
                pr, pc, p_in = _nearest_pixel(cam_b, hat_b)
                d_b = preds[b][pr, pc]
                keep = same & p_in & valid_depth(d_b)
                out.append(np.abs(hat_b[keep, 2] - d_b[keep]) / d_b[keep])
        return np.concatenate(out) if out else np.zeros(0)

    def merge(self, other: ScaleStabilityAccumulator) -> None:
        """Add another accumulator's frames and overlap samples (e.g. from another worker)."""
        if other.camera_names != self.camera_names:
            raise ValueError("cannot merge scale accumulators with different cameras")
        self.stamps += other.stamps
        self.pooled += other.pooled
        self.per_camera += [r.copy() for r in other.per_camera]
        self.overlap_counts += other.overlap_counts

    # ------------------------------------------------------------------ results
    def compute(self) -> dict[str, Any]:
        """The figures over everything accumulated (NaN where nothing was counted).

        Returns:
            {'ratio_mean', 'ratio_std', 'cross_camera_std', 'overlap_disagreement',
            'overlap_pixels', 'frames' (frames with a valid pixel),
            'per_camera': {name: {'ratio_mean', 'ratio_std', 'frames'}},
            'series': {'t': [...], 'pooled': [...], 'per_camera': {name: [...]}} (frames
            ordered by t, NaN where a camera had no valid pixel),
            'targets': {figure: [comparison, bound]}, 'targets_met': {figure: bool | None}}.
        """
        order = np.argsort(np.asarray(self.stamps, dtype=np.float64), kind="stable")
        t = np.asarray(self.stamps, dtype=np.float64)[order]
        pooled = np.asarray(self.pooled, dtype=np.float64)[order]  # (F,)
        per_cam = (np.stack(self.per_camera)[order] if self.per_camera
                   else np.zeros((0, len(self.camera_names))))  # (F, V)
        fin = pooled[np.isfinite(pooled)]
        counts = np.isfinite(per_cam).sum(axis=1)  # (F,) cameras with a ratio
        multi = per_cam[counts >= 2]  # (F', V) frames with >= 2 cameras
        cross = math.nan
        if multi.size:
            cross = float(np.mean(np.nanstd(multi, axis=1)))
        out: dict[str, Any] = {
            "ratio_mean": float(fin.mean()) if fin.size else math.nan,
            "ratio_std": float(fin.std()) if fin.size else math.nan,
            "cross_camera_std": cross,
            "overlap_disagreement": _hist_median(self.overlap_counts, _OVERLAP_EDGES),
            "overlap_pixels": int(self.overlap_counts.sum()),
            "frames": int(fin.size),
        }
        cams = {}
        for v, name in enumerate(self.camera_names):
            r = per_cam[:, v]
            r = r[np.isfinite(r)]
            cams[name] = {"ratio_mean": float(r.mean()) if r.size else math.nan,
                          "ratio_std": float(r.std()) if r.size else math.nan,
                          "frames": int(r.size)}
        out["per_camera"] = cams
        out["series"] = {"t": t.tolist(), "pooled": pooled.tolist(),
                         "per_camera": {name: per_cam[:, v].tolist()
                                        for v, name in enumerate(self.camera_names)}}
        out["targets"] = {k: [c, b] for k, (c, b) in SCALE_TARGETS.items()}
        out["targets_met"] = scale_targets_met(out)
        return out
