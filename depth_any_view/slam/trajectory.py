"""Trajectory errors against ground truth: alignment, ATE, RPE, tracking jumps, TUM files.

A trajectory is (N, 4, 4) float64 poses T_odom_base (docs/ARCHITECTURE.md: base_link ->
odom, metres) with (N,) int64 stamps in nanoseconds; an estimate and its ground truth are
compared pose by pose (same length, same stamps: associate them first).

- Alignment: `umeyama` (Umeyama 1991) finds the rotation, translation and (optionally)
  scale that map one point set onto another in the least-squares sense. Trajectories are
  aligned in SE(3) without scale (`align_trajectory`): the depth is metric, so a scale
  error is an error, not a gauge freedom.
- ATE (`ate`): RMSE of the position differences after that alignment, metres.
- RPE (`rpe`): over segments of a given travelled length (ground-truth path length,
  metres, as in the KITTI odometry benchmark): for every start pose i, the first pose j at
  least that far along the path; the error of the relative motion
  E = (G_i^-1 G_j)^-1 (P_i^-1 P_j); its translation in % of the distance travelled from i
  to j and its rotation angle in degrees per metre of it, averaged over segments. A
  minimum start distance leaves out the segments of a consumer's start-up.
- Jumps (`detect_jumps`): a tracking failure is a step between consecutive poses whose
  translation differs by more than a threshold (0.5 m) from the true step (or, without
  ground truth, a step longer than the threshold).
- TUM files (`write_tum`, `read_tum`): one pose a line, `stamp tx ty tz qx qy qz qw`
  (seconds, metres, quaternion x y z w), as `evo` and the TUM RGB-D tools read them;
  stamps keep their nanoseconds exactly.

Everything here is numpy only and vectorised over poses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from depth_any_view.geometry.transforms import quat_to_rotmat, rotmat_to_quat

JUMP_THRESHOLD_M = 0.5  # metres: a consecutive step this far off the truth is a failure


def _check_poses(T: np.ndarray, name: str) -> np.ndarray:
    """(N, 4, 4) float64 finite poses; ValueError naming `name` otherwise."""
    T = np.asarray(T, dtype=np.float64)
    if T.ndim != 3 or T.shape[1:] != (4, 4):
        raise ValueError(f"{name} must be (N, 4, 4) poses, got shape {T.shape}")
    if not np.isfinite(T).all():
        raise ValueError(f"{name} holds NaN or inf; drop those poses before comparing")
    return T


def _check_pair(est: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both trajectories checked and of the same length."""
    est, gt = _check_poses(est, "estimate"), _check_poses(gt, "ground truth")
    if est.shape[0] != gt.shape[0]:
        raise ValueError(f"estimate has {est.shape[0]} poses but ground truth "
                         f"{gt.shape[0]}; associate them by stamp first")
    return est, gt


def umeyama(src: np.ndarray, dst: np.ndarray, *, with_scale: bool = False
            ) -> tuple[np.ndarray, np.ndarray, float]:
    """Least-squares similarity dst ~ s R src + t (Umeyama 1991).

    Args:
        src: (N, 3) points; dst: (N, 3) the points they should land on, N >= 1.
        with_scale: also fit the scale s (else s = 1: a rigid SE(3) fit).

    Returns:
        R (3, 3) rotation (det +1), t (3,) translation, s the scale.
    """
    src = np.asarray(src, dtype=np.float64).reshape(-1, 3)
    dst = np.asarray(dst, dtype=np.float64).reshape(-1, 3)
    if src.shape != dst.shape or src.shape[0] == 0:
        raise ValueError(f"umeyama needs two (N, 3) point sets of the same N >= 1, got "
                         f"{src.shape} and {dst.shape}")
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    xs, xd = src - mu_s, dst - mu_d
    cov = xd.T @ xs / src.shape[0]  # (3, 3)
    U, D, Vt = np.linalg.svd(cov)
    S = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        S[2, 2] = -1.0  # a reflection is not a rotation
    R = U @ S @ Vt
    var_s = float(np.mean(np.sum(xs * xs, axis=1)))
    s = float(np.trace(np.diag(D) @ S) / var_s) if with_scale and var_s > 0 else 1.0
    t = mu_d - s * R @ mu_s
    return R, t, s


def align_trajectory(est: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """T_gt_est (4, 4): the rigid motion that best maps the estimate's positions onto the
    ground truth's (Umeyama without scale); apply it as T_gt_est @ est[i]."""
    est, gt = _check_pair(est, gt)
    R, t, _ = umeyama(est[:, :3, 3], gt[:, :3, 3])
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, t
    return T


def ate(est: np.ndarray, gt: np.ndarray, *, align: bool = True) -> dict[str, float | list]:
    """Absolute trajectory error (positions) after SE(3) alignment.

    Returns:
        rmse, mean, median, max (metres) over the poses, and 'alignment' (4, 4) T_gt_est as
        nested lists (the identity when `align` is false).
    """
    est, gt = _check_pair(est, gt)
    T = align_trajectory(est, gt) if align else np.eye(4)
    p = est[:, :3, 3] @ T[:3, :3].T + T[:3, 3]  # (N, 3) aligned positions
    err = np.linalg.norm(p - gt[:, :3, 3], axis=1)  # (N,)
    return {"rmse": float(np.sqrt(np.mean(err**2))), "mean": float(err.mean()),
            "median": float(np.median(err)), "max": float(err.max()),
            "alignment": T.tolist()}


def path_length(T: np.ndarray) -> np.ndarray:
    """(N,) distance travelled along the positions of T (N, 4, 4) up to each pose, metres."""
    T = _check_poses(T, "trajectory")
    steps = np.linalg.norm(np.diff(T[:, :3, 3], axis=0), axis=1)  # (N-1,)
    return np.concatenate([[0.0], np.cumsum(steps)])


def relative(T: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """(K, 4, 4) relative motions T_i^-1 T_j for index arrays i, j (K,)."""
    Ti, Tj = T[i], T[j]
    Ri_t = np.transpose(Ti[:, :3, :3], (0, 2, 1))  # (K, 3, 3)
    out = np.tile(np.eye(4), (len(i), 1, 1))
    out[:, :3, :3] = Ri_t @ Tj[:, :3, :3]
    out[:, :3, 3] = np.einsum("kab,kb->ka", Ri_t, Tj[:, :3, 3] - Ti[:, :3, 3])
    return out


def rotation_angle(R: np.ndarray) -> np.ndarray:
    """(K,) rotation angles in radians of rotations R (K, 3, 3)."""
    cos = (np.trace(R, axis1=-2, axis2=-1) - 1.0) / 2.0
    return np.arccos(np.clip(cos, -1.0, 1.0))


def segment_pairs(gt: np.ndarray, length: float, *, start_after: float = 0.0
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Segments of `length` metres of travel along the ground truth.

    Returns:
        i (K,), j (K,) start and end indices (j the first pose at least `length` further
        along the path than i) and their travelled distance (K,) metres; only starts at
        least `start_after` metres from the first pose.
    """
    if not length > 0:
        raise ValueError(f"RPE segment length must be > 0 metres, got {length}")
    d = path_length(gt)
    i = np.arange(d.size)
    j = np.searchsorted(d, d + float(length) - 1e-9, side="left")  # first d[j] >= d[i] + L
    keep = (j < d.size) & (d >= float(start_after))
    i, j = i[keep], j[keep]
    return i, j, d[j] - d[i]


def rpe(est: np.ndarray, gt: np.ndarray, length: float, *, start_after: float = 0.0
        ) -> dict[str, float | int]:
    """Relative pose error over `length`-metre segments of ground-truth travel.

    Args:
        est, gt: (N, 4, 4) associated poses.
        length: segment length, metres travelled.
        start_after: leave out segments starting before this distance from the first
            pose (a consumer's start-up), metres.

    Returns:
        segments (count), translation_pct (mean of |t_err| / distance * 100),
        translation_pct_median, translation_pct_max, rotation_deg_per_m (mean of the
        angle of the rotation error / distance); NaN without segments.
    """
    est, gt = _check_pair(est, gt)
    i, j, dist = segment_pairs(gt, length, start_after=start_after)
    out: dict[str, float | int] = {"length_m": float(length), "start_after_m": float(start_after),
                                   "segments": int(i.size)}
    if i.size == 0:
        return {**out, "translation_pct": float("nan"), "translation_pct_median": float("nan"),
                "translation_pct_max": float("nan"), "rotation_deg_per_m": float("nan")}
    Eg, Ee = relative(gt, i, j), relative(est, i, j)
    E = relative(np.concatenate([Eg, Ee]), np.arange(i.size), np.arange(i.size) + i.size)
    t_pct = np.linalg.norm(E[:, :3, 3], axis=1) / dist * 100.0
    r_deg = np.degrees(rotation_angle(E[:, :3, :3])) / dist
    return {**out, "translation_pct": float(t_pct.mean()),
            "translation_pct_median": float(np.median(t_pct)),
            "translation_pct_max": float(t_pct.max()), "rotation_deg_per_m": float(r_deg.mean())}


def detect_jumps(est: np.ndarray, gt: np.ndarray | None = None, *,
                 threshold: float = JUMP_THRESHOLD_M) -> np.ndarray:
    """Indices k (M,) of poses whose step from pose k-1 is a tracking jump.

    With ground truth: the estimated step's translation differs from the true step's by
    more than `threshold` metres (in the frame of pose k-1, so a constant heading offset
    does not count). Without: the step itself is longer than `threshold`.
    """
    est = _check_poses(est, "estimate")
    if est.shape[0] < 2:
        return np.zeros(0, dtype=np.int64)
    k = np.arange(1, est.shape[0])
    step = relative(est, k - 1, k)[:, :3, 3]  # (N-1, 3)
    if gt is not None:
        est, gt = _check_pair(est, gt)
        step = step - relative(gt, k - 1, k)[:, :3, 3]
    return k[np.linalg.norm(step, axis=1) > float(threshold)].astype(np.int64)


def relative_to_first(T: np.ndarray) -> np.ndarray:
    """Poses (N, 4, 4) expressed in the frame of the first: T_0^-1 T_i."""
    T = _check_poses(T, "trajectory")
    return relative(T, np.zeros(T.shape[0], dtype=np.int64), np.arange(T.shape[0]))


# ---------------------------------------------------------------------------- TUM files
def _stamp_text(stamp_ns: int) -> str:
    """Seconds with all nine decimals of an int nanosecond stamp ('-' kept for < 0)."""
    sign = "-" if stamp_ns < 0 else ""
    sec, nsec = divmod(abs(int(stamp_ns)), 1_000_000_000)
    return f"{sign}{sec}.{nsec:09d}"


def _parse_stamp(text: str) -> int:
    """Integer nanoseconds of a seconds field ('1700000000.100000000', '1.7e9', '12')."""
    if "e" in text.lower():
        return int(round(float(text) * 1e9))
    sign = -1 if text.startswith("-") else 1
    whole, _, frac = text.lstrip("+-").partition(".")
    return sign * (int(whole or "0") * 1_000_000_000 + int((frac + "0" * 9)[:9]))


def write_tum(path: Path | str, stamps_ns: np.ndarray, T: np.ndarray, *,
              header: str | None = None) -> Path:
    """Write poses (N, 4, 4) with stamps (N,) int ns as a TUM trajectory file; returns it.

    `header` becomes comment lines starting with '#'.
    """
    T = _check_poses(T, "trajectory")
    stamps = np.asarray(stamps_ns, dtype=np.int64).reshape(-1)
    if stamps.size != T.shape[0]:
        raise ValueError(f"{stamps.size} stamps for {T.shape[0]} poses")
    lines = [f"# {h}" for h in (header or "").splitlines()]
    lines.append("# timestamp tx ty tz qx qy qz qw")
    for stamp, pose in zip(stamps.tolist(), T):
        q = rotmat_to_quat(pose[:3, :3])
        values = " ".join(f"{v:.9f}" for v in (*pose[:3, 3], *q))
        lines.append(f"{_stamp_text(stamp)} {values}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def read_tum(path: Path | str) -> tuple[np.ndarray, np.ndarray]:
    """Stamps (N,) int64 ns and poses (N, 4, 4) of a TUM trajectory file.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a line that is not 8 numbers (named with its line number).
    """
    path = Path(path)
    stamps, poses = [], []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.replace(",", " ").split()
        try:
            if len(parts) != 8:
                raise ValueError(f"{len(parts)} fields")
            stamp = _parse_stamp(parts[0])
            v = np.array([float(x) for x in parts[1:]])
        except ValueError as exc:
            raise ValueError(f"{path}:{n}: a TUM line is 'stamp tx ty tz qx qy qz qw' "
                             f"(8 numbers), got {line!r} ({exc})") from None
        q = v[3:] / np.linalg.norm(v[3:])
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = quat_to_rotmat(q), v[:3]
        stamps.append(stamp)
        poses.append(T)
    poses_arr = np.asarray(poses, dtype=np.float64).reshape(-1, 4, 4)
    return np.asarray(stamps, dtype=np.int64), poses_arr


__all__ = ["JUMP_THRESHOLD_M", "align_trajectory", "ate", "detect_jumps", "path_length",
           "read_tum", "relative", "relative_to_first", "rotation_angle", "rpe",
           "segment_pairs", "umeyama", "write_tum"]
