"""Side-by-side comparisons in the same run, as ratios (baseline time / project time).

- PointCloud2 packing: `xyzrgb_cloud` (one structured numpy array, one byte copy) against
  the per-point Python of ROS 1 / early ROS 2 `sensor_msgs.point_cloud2.create_cloud`
  (`struct.pack_into` per point, PCL colour packed per point with `struct`), which ROS
  tutorials copy;
- image message -> array: `image_msg_to_array` (a zero-copy `np.frombuffer` view) against
  the per-row Python conversion tutorials use without cv_bridge (`list()` of each row);
- depth -> 32FC1 Image message: `depth_to_image_msg` against per-row `struct.pack`;
- MarkerArray: `marker_array_bytes` (serialized with numpy, what the node publishes)
  against the message-object path it replaced (`marker_array_msg`, one Point and one
  ColorRGBA per cube, then rclpy's `serialize_message`, which publishing an object does);
- depth -> points on the CPU: numpy (`depth_to_points`) against torch
  (`depth_to_points_torch`) on the same arrays;
- the network on the CPU: fp32 against bf16 autocast (from the forward table);
- the network on the CPU: ONNX Runtime (the exported graph, CPU provider) against torch
  eager, fp32, timed in alternation in one run (`onnxruntime_ratio`), for the preset and,
  for lite, for the architecture of the shipped `lite_geometry` weights (cost volumes and
  ground embedding, `weights_overrides`).

Every baseline's output is checked to equal the project's (same bytes / same values /
the same message once deserialized), so a ratio never compares different work.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import Any

import numpy as np

from depth_any_view.bench.common import summarize, time_call
from depth_any_view.bench.stages import (
    MARKER_MAX_VOXELS,
    POINTS_STRIDE,
    input_messages,
    ros_available,
)
from depth_any_view.bench.workload import Workload, network_inputs


# ---------------------------------------------------------------------------- baselines
def naive_xyzrgb_cloud(points: np.ndarray, colors: np.ndarray, header: Any) -> Any:
    """PointCloud2 x y z rgb built per point, as the classic `create_cloud` recipe does."""
    import ctypes

    from sensor_msgs.msg import PointCloud2, PointField

    fields = [PointField(name="x", offset=0, datatype=PointField.FLOAT32, count=1),
              PointField(name="y", offset=4, datatype=PointField.FLOAT32, count=1),
              PointField(name="z", offset=8, datatype=PointField.FLOAT32, count=1),
              PointField(name="rgb", offset=12, datatype=PointField.FLOAT32, count=1)]
    rows = []
    for (x, y, z), (r, g, b) in zip(points.tolist(), colors.tolist()):
        rgb = struct.unpack("<f", struct.pack("<I", (r << 16) | (g << 8) | b))[0]
        rows.append([x, y, z, rgb])
    cloud_struct = struct.Struct("<ffff")
    buff = ctypes.create_string_buffer(cloud_struct.size * len(rows))
    offset = 0
    for p in rows:
        cloud_struct.pack_into(buff, offset, *p)
        offset += cloud_struct.size
    return PointCloud2(header=header, height=1, width=len(rows), is_dense=False,
                       is_bigendian=False, fields=fields, point_step=cloud_struct.size,
                       row_step=cloud_struct.size * len(rows), data=buff.raw)


def naive_image_msg_to_array(msg: Any) -> np.ndarray:
    """(H, W, C) uint8 of an 8-bit image message, row by row through Python lists."""
    channels = msg.step // msg.width
    rows = []
    for r in range(msg.height):
        start = r * msg.step
        rows.append(list(msg.data[start:start + msg.width * channels]))
    return np.array(rows, dtype=np.uint8).reshape(msg.height, msg.width, channels)


def naive_depth_to_image_msg(depth: np.ndarray, header: Any) -> Any:
    """32FC1 Image of depth (H, W) metres, packed row by row with `struct` (NaN invalid)."""
    from sensor_msgs.msg import Image

    h, w = depth.shape
    data = bytearray()
    nan = float("nan")
    for row in depth.tolist():
        data += struct.pack(f"<{w}f", *[v if math.isfinite(v) and v > 0 else nan
                                        for v in row])
    return Image(header=header, height=h, width=w, encoding="32FC1", is_bigendian=0,
                 step=4 * w, data=bytes(data))


# ---------------------------------------------------------------------------- comparisons
def _entry(what: str, project: dict[str, float], baseline: dict[str, float], project_name: str,
           baseline_name: str, same: bool | None) -> dict[str, Any]:
    """One comparison row: both summaries and the ratio of medians (None = outputs not
    comparable, e.g. another precision)."""
    ratio = baseline["median"] / project["median"] if project["median"] > 0 else None
    return {"what": what, "project": project_name, "baseline": baseline_name,
            "project_s": project, "baseline_s": baseline, "ratio": ratio,
            "same_output": None if same is None else bool(same)}


def compare_conversions(w: Workload, image_size: tuple[int, int], *, repeats: int,
                        warmup: int = 1) -> dict[str, Any]:
    """The ROS conversion and depth -> points comparisons on one set of `w` (see module
    docstring); ROS ones are skipped (with the reason) without rclpy."""
    import torch

    from depth_any_view.mapping.points import depth_to_points, depth_to_points_torch

    out: dict[str, Any] = {"rows": [], "skipped": {}}
    depth_n, K_n, images_n = network_inputs(w, image_size)
    T = np.array(w.T_base_cam)  # a writable copy (torch.from_numpy below)
    points, colors = depth_to_points(depth_n, K_n, T, images_n, stride=POINTS_STRIDE)
    base_repeats = max(1, min(repeats, 5))  # the per-point baselines are slow

    # numpy vs torch depth -> points on the CPU
    td, tK, tT = torch.from_numpy(depth_n), torch.from_numpy(K_n), torch.from_numpy(T)
    ti = torch.from_numpy(images_n)
    tp, tc = depth_to_points_torch(td, tK, tT, ti, stride=POINTS_STRIDE)
    same = bool(np.allclose(tp.numpy(), points, atol=1e-3) and
                np.array_equal(tc.numpy(), colors))
    out["rows"].append(_entry(
        f"depth -> points, {w.num_views} views {image_size[1]}x{image_size[0]} stride "
        f"{POINTS_STRIDE} (CPU)",
        time_call(lambda i: depth_to_points(depth_n, K_n, T, images_n, stride=POINTS_STRIDE),
                  repeats, warmup),
        time_call(lambda i: depth_to_points_torch(td, tK, tT, ti, stride=POINTS_STRIDE),
                  repeats, warmup),
        "numpy depth_to_points", "torch depth_to_points_torch", same))

    reason = ros_available()
    if reason is not None:
        out["skipped"]["ros"] = reason
        return out
    from depth_any_view.ros import conversions as C

    header = C.make_header(1_000_000_000, "base_link")
    project_cloud = C.xyzrgb_cloud(points, colors, header)
    naive_cloud = naive_xyzrgb_cloud(points, colors, header)
    out["rows"].append(_entry(
        f"PointCloud2 packing, {points.shape[0]} points x y z rgb",
        time_call(lambda i: C.xyzrgb_cloud(points, colors, header), repeats, warmup),
        time_call(lambda i: naive_xyzrgb_cloud(points, colors, header), base_repeats, 1),
        "xyzrgb_cloud (numpy)", "per-point struct.pack_into (create_cloud recipe)",
        bytes(project_cloud.data) == bytes(naive_cloud.data)))

    msgs = input_messages(w, 1_000_000_000)["images"]
    same = all(np.array_equal(C.image_msg_to_array(m), naive_image_msg_to_array(m))
               for m in msgs)
    out["rows"].append(_entry(
        f"Image message -> array, {len(msgs)} x {w.size[0]}x{w.size[1]} rgb8",
        time_call(lambda i: [C.image_msg_to_array(m) for m in msgs], repeats, warmup),
        time_call(lambda i: [naive_image_msg_to_array(m) for m in msgs], base_repeats, 1),
        "image_msg_to_array (frombuffer)", "per-row Python lists", same))

    depth = [np.asarray(w.depth[i]) for i in range(w.num_views)]
    same = all(bytes(C.depth_to_image_msg(d, header).data)
               == bytes(naive_depth_to_image_msg(d, header).data) for d in depth)
    out["rows"].append(_entry(
        f"depth array -> 32FC1 Image message, {len(depth)} x {w.size[0]}x{w.size[1]}",
        time_call(lambda i: [C.depth_to_image_msg(d, header) for d in depth], repeats, warmup),
        time_call(lambda i: [naive_depth_to_image_msg(d, header) for d in depth],
                  base_repeats, 1),
        "depth_to_image_msg (numpy)", "per-row struct.pack", same))
    out["rows"].append(compare_markers(points[:MARKER_MAX_VOXELS], repeats=repeats,
                                       warmup=warmup, base_repeats=base_repeats))
    return out


def naive_marker_array_bytes(centres: np.ndarray, voxel_size: np.ndarray, header: Any, *,
                             z_range: tuple[float, float]) -> bytes:
    """The MarkerArray the way the node built it before: message objects per cube
    (`marker_array_msg`), serialized by rclpy (as `publish` of the object does)."""
    from rclpy.serialization import serialize_message

    from depth_any_view.ros import conversions as C

    return serialize_message(C.marker_array_msg(centres, voxel_size, header,
                                                z_range=z_range))


def same_markers(a: bytes, b: bytes) -> bool:
    """Whether two serialized MarkerArrays deserialize to equal messages (padding bytes
    of CDR are not zeroed, so the bytes themselves may differ)."""
    from rclpy.serialization import deserialize_message
    from visualization_msgs.msg import MarkerArray

    return deserialize_message(bytes(a), MarkerArray) == deserialize_message(bytes(b),
                                                                             MarkerArray)


def compare_markers(centres: np.ndarray, *, repeats: int, warmup: int = 1,
                    base_repeats: int = 3) -> dict[str, Any]:
    """MarkerArray of `centres` (N, 3) metres as cubes of 0.1 m: `marker_array_bytes`
    against `naive_marker_array_bytes`, one comparison row."""
    from depth_any_view.ros import conversions as C

    centres = np.asarray(centres, dtype=np.float32).reshape(-1, 3)
    header = C.make_header(1_000_000_000, "odom")
    size = np.full(3, 0.1)
    z = centres[:, 2] if centres.shape[0] else np.zeros(1)
    z_range = (float(z.min()), float(z.max()) + 1e-3)

    def project(i: int) -> bytes:
        return C.marker_array_bytes(centres, size, header, z_range=z_range)

    def baseline(i: int) -> bytes:
        return naive_marker_array_bytes(centres, size, header, z_range=z_range)

    return _entry(f"MarkerArray, {centres.shape[0]} cubes, serialized for publishing",
                  time_call(project, repeats, warmup), time_call(baseline, base_repeats, 1),
                  "marker_array_bytes (numpy)",
                  "marker_array_msg objects + serialize_message", same_markers(
                      project(0), baseline(0)))


def _eager_rows(forward_rows: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict]:
    """The measured forward rows without torch.compile, by (preset, device, precision)."""
    return {(r["preset"], r["device"], r["precision"]): r for r in forward_rows
            if "forward_s" in r and r.get("compile_mode") is None}


def precision_ratios(forward_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """fp32 / bf16 forward ratios on the CPU per preset, from the forward table rows."""
    out = []
    by = _eager_rows(forward_rows)
    for (preset, device, precision), r in by.items():
        if precision != "bf16" or not device.startswith("cpu"):
            continue
        fp32 = by.get((preset, device, "fp32"))
        if fp32 is None:
            continue
        out.append(_entry(f"network forward, preset {preset}, {r['views']} views, CPU",
                          r["forward_s"], fp32["forward_s"], "bf16 autocast", "fp32", None))
    return out


def compile_ratios(forward_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Eager / torch.compile forward ratios per preset, device, precision and mode (rows
    whose engine fell back to eager are left out)."""
    eager = _eager_rows(forward_rows)
    out = []
    for r in forward_rows:
        if "forward_s" not in r or not r.get("compiled"):
            continue
        base = eager.get((r["preset"], r["device"], r["precision"]))
        if base is None:
            continue
        out.append(_entry(f"network forward, preset {r['preset']}, {r['views']} views, "
                          f"{r['device']}, {r['precision']}", r["forward_s"],
                          base["forward_s"], f"torch.compile ({r['compile_mode']})", "eager",
                          None))
    return out


def onnxruntime_ratio(preset: str, w: Workload, *, repeats: int, warmup: int = 1,
                      overrides: dict[str, Any] | None = None,
                      threads: int = 0, label: str = "") -> dict[str, Any] | None:
    """Forward of the preset's network: torch eager / ONNX Runtime (CPUExecutionProvider),
    CPU fp32, one set of `w`; the two engines run in alternation (each round times one
    forward of each, so both see the same load); `threads` for both (0 = their defaults).
    The base drives 0.3 m per set, 0.1 s apart, so a network with a temporal cost volume
    matches against its previous set as in the node. `label` names the configuration in
    the row (e.g. the weights whose architecture `overrides` give). None when onnxruntime
    is not installed."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return None
    from depth_any_view.bench.stages import make_engine, views_of

    views = views_of(w)
    engines = {b: make_engine(preset, "cpu", "fp32", overrides=overrides, threads=threads,
                              backend=b) for b in ("torch", "onnxruntime")}
    times: dict[str, list[float]] = {b: [] for b in engines}
    preds: dict[str, Any] = {}
    for i in range(warmup + repeats):
        pose = np.eye(4)
        pose[0, 3] = 0.3 * i
        for b, engine in engines.items():
            preds[b] = engine.infer(views, T_odom_base=pose, stamp_ns=(i + 1) * 100_000_000)
            if i >= warmup:
                times[b].append(float(preds[b].timings["forward"]))
    same = bool(np.allclose(preds["onnxruntime"].depth, preds["torch"].depth, rtol=1e-3,
                            equal_nan=True))
    what = f"network forward, preset {preset}{f' ({label})' if label else ''}"
    return _entry(f"{what}, {len(views)} views, CPU fp32, {threads or 'default'} thread(s)",
                  summarize(times["onnxruntime"]), summarize(times["torch"]),
                  "ONNX Runtime (CPUExecutionProvider)", "torch eager", same)


def weights_overrides(weights: str | Path, preset: str) -> dict[str, Any]:
    """The ModelConfig fields in which a weights file's network differs from the preset's
    (e.g. the cost volumes and ground embedding of lite_geometry.safetensors), so a
    random-weight engine of the preset with them has that network's architecture."""
    from dataclasses import fields

    from depth_any_view.model.config import INIT_ONLY_FIELDS, load_model_config
    from depth_any_view.model.weights import read_weights_config

    theirs, _ = read_weights_config(weights)
    base = load_model_config(preset)
    return {f.name: getattr(theirs, f.name) for f in fields(base)
            if f.name not in INIT_ONLY_FIELDS
            and getattr(theirs, f.name) != getattr(base, f.name)}


def cost_volume_ratio(preset: str, w: Workload, *, repeats: int, warmup: int = 1,
                      overrides: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Forward with the preset's cost volumes (spatial, and temporal against a previous set
    0.3 m behind; photometric too where configured) and ground-plane embedding / the same
    network without any of them (issue 20's budget: at most 1.5x), CPU fp32, in one run;
    None when the preset has no cost volume."""
    from depth_any_view.bench.stages import make_engine, views_of
    from depth_any_view.inference.engine import EngineConfig, expected_model_config

    mc = expected_model_config(EngineConfig(preset=preset,
                                            model_overrides=dict(overrides or {})))
    if mc is None or not mc.cost_volume:
        return None  # decided from the config: no network is built for nothing
    with_cv = make_engine(preset, "cpu", "fp32", overrides=overrides)
    views = views_of(w)
    step_m = np.eye(4)

    def forward(engine: Any, i: int) -> float:
        step_m[0, 3] = 0.3 * i  # the base drives 0.3 m per set, 0.1 s apart
        pred = engine.infer(views, T_odom_base=step_m.copy(), stamp_ns=(i + 1) * 100_000_000)
        return float(pred.timings["forward"])

    with_s = [forward(with_cv, i) for i in range(warmup + repeats)][warmup:]
    plain = make_engine(preset, "cpu", "fp32",
                        overrides={**(overrides or {}), "cost_volume": False,
                                   "cost_temporal": False, "cost_photometric": False,
                                   "ground_embedding": False})
    plain_s = [forward(plain, i) for i in range(warmup + repeats)][warmup:]
    extras = "".join([", photometric NCC" if mc.cost_photometric else "",
                      "; ground-plane embedding" if mc.ground_embedding else ""])
    what = (f"network forward, preset {preset}, {len(views)} views, CPU fp32: cost volumes "
            f"({'spatial + temporal' if mc.cost_temporal else 'spatial'}, 1/{mc.cost_stride}, "
            f"{mc.cost_hypotheses} planes{extras})")
    return _entry(what, summarize(plain_s), summarize(with_s), "without cost volumes",
                  "with cost volumes" + (" and ground plane" if mc.ground_embedding else ""),
                  None)
