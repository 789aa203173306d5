"""Offline evaluation of a rosbag2 recording through the node's own pipeline (`eval-bag`).

`evaluate_bag` reads a bag (a rosbag2 directory, or one .mcap / .db3 file) with
bag/reader.py and feeds its messages, in record order, into `depth_any_view.pipeline.
Pipeline`: the synchronizer, inference engine, point cloud and occupancy fusion the node
runs, called directly, with the bag's record time as the clock. Nothing waits on a wall
clock, so a run is as fast as the machine allows and two runs on the same bag give the same
figures. Messages that share one record time are fed in a fixed order (CameraInfo,
odometry, images in camera order, then ground truth) whatever the storage returns, and the
sets they complete are processed after the whole group, so MCAP and sqlite3 copies of a bag
evaluate identically.

The feeding loop is `BagFeeder` (also behind `depth-any-view slam`, slam/run.py): it yields
every processed `PipelineResult` with the ground truth of its stamp (`FedSet`), and
`load_pipeline_config` turns a parameters file into the pipeline's configuration, so both
commands run what the node runs.

Topic names and every pipeline setting come from the node's parameters file
(`config/depth_any_view.yaml`, section `/**/depth_any_view: ros__parameters:`), so a user's
remappings and settings apply. The camera extrinsics come from the bag's `/tf_static`
(the recording's own calibration) when it reaches every camera's optical frame, else from
the parameters' `rig_file`.

Ground truth, when the bag has it, is matched by header stamp: `<prefix>/<name>/depth_gt`
(32FC1 metres) per camera for depth (AbsRel, RMSE, delta<1.25, ... overall, per camera, per
range bin), and `/ground_truth/occupancy` (bag/messages.py layout) for occupancy: voxel IoU,
precision and recall of the single-frame network volume and of the fused map, both sampled
onto the ground-truth grid. Depth ground truth also scores scale stability (issue 10,
training/metrics.py ScaleStabilityAccumulator): the median predicted / true depth per set
and camera over time (x = seconds from the bag start), its spread between cameras, and the
disagreement of neighbouring cameras on surface points both see; the ground truth's pixels
use the image's CameraInfo resized to the ground truth's size, and a prediction of another
size is matched to the ground truth by nearest resampling, as for the depth errors. A
processed set waits up to GT_WAIT_NS of record time for its ground truth. Without ground
truth the run still reports coverage and latency.

Outputs (report_dir): report.json, report.md, PNG figures (bag/report.py) and `outputs/`, an
MCAP bag with the node's output topics for every processed set (depth image and CameraInfo
per camera, points, occupancy voxels, markers, grid) plus /tf and /tf_static so RViz or
Foxglove can show it. Bag problems (missing path, corrupt file, missing camera topics,
unexpected message types) raise BagError with one line naming what is missing and what
the bag has.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer
from tqdm import tqdm

from depth_any_view.bag.messages import (
    BASE_FRAME,
    CAMERA_INFO,
    IMAGE,
    ODOMETRY,
    POINT_CLOUD2,
    QOS_DEFAULT,
    QOS_TF,
    QOS_TF_STATIC,
    TF_MESSAGE,
    TOPIC_OCCUPANCY_GT,
    TOPIC_TF,
    TOPIC_TF_STATIC,
    BagError,
    camera_info_msg,
    cloud_from_msg,
    default_typestore,
    header_msg,
    image_from_msg,
    image_msg,
    occupancy_from_points,
    point_cloud_msg,
    pose_msg,
    stamp_to_ns,
    tf_message,
    transform_stamped_msg,
)
from depth_any_view.bag.reader import BagReader
from depth_any_view.bag.report import BirdsEye, FigureData, SamplePanel, to_jsonable, write_report
from depth_any_view.config import (
    ConfigError,
    config_path,
    load_yaml,
    node_name_matches,
    parameter_sections,
)
from depth_any_view.geometry.camera import PinholeCamera
from depth_any_view.geometry.grid import FREE, OCCUPIED, UNKNOWN, VoxelGrid
from depth_any_view.geometry.rig import Rig, RigCamera
from depth_any_view.mapping.fusion import ghost_voxels
from depth_any_view.mapping.points import XYZP_DTYPE, to_xyzrgb
from depth_any_view.pipeline import (
    STAGES,
    Pipeline,
    PipelineConfig,
    PipelineResult,
    height_colors,
    resolve_rig_file,
)
from depth_any_view.sync.approximate_time import SyncedSet
from depth_any_view.training.metrics import (
    DEFAULT_BINS,
    DEPTH_METRICS,
    DepthMetricAccumulator,
    ScaleStabilityAccumulator,
    VoxelMetricAccumulator,
    bin_name,
)
from depth_any_view.training.sparsification import SparsificationAccumulator

NODE_NAME = "depth_any_view"  # parameters file section
PARAMETERS_FILE = "depth_any_view.yaml"  # the node's packaged parameters
GT_WAIT_NS = 1_000_000_000  # record time a processed set waits for its ground truth
GT_KEEP_NS = 3_000_000_000  # unclaimed ground truth recorded this long ago is dropped
DISTANCE_BIN_M = 2.0  # width of the error-vs-distance bins, metres
GHOST_MARGIN_VOXELS = 1  # a fused-occupied voxel this near a true surface is no ghost
OUTPUT_BAG = "outputs"  # output bag directory inside the report directory
RIG_TOLERANCE = (0.01, 0.01)  # metres, radians: bag /tf_static vs rig_file disagreement
# Messages with one record time are fed in this order of roles (then camera order).
ROLE_ORDER = ("camera_info", "odom", "image", "depth_gt", "occupancy_gt")
MARKER_ALPHA = 0.85  # voxel marker opacity, as the node's


# ---------------------------------------------------------------------------- parameters
def load_node_parameters(params_file: Path | str | None = None, *,
                         namespace: str | None = None) -> tuple[dict[str, Any], Path]:
    """The node's `ros__parameters` from a parameters file, and the file's path.

    Every section that applies to the node is read, in file order, later values winning,
    as ROS does: `/**/depth_any_view` (the shipped files' key), `/**`, `depth_any_view`,
    and names with wildcards or namespaces (`config.node_name_matches`). With `namespace`
    (e.g. '/robot1') the node is `<namespace>/depth_any_view` and ROS's rule alone decides;
    without it (the evaluation runs no node) a section for the node in any explicit
    namespace, such as a robot's `/robot1/depth_any_view`, applies too.

    Raises:
        ConfigError: the file is missing, malformed, or has no section for the node.
    """
    path = config_path(PARAMETERS_FILE) if params_file is None else Path(params_file)
    data = load_yaml(path)
    fqn = "/" + "/".join(p for p in [*(namespace or "").split("/"), NODE_NAME] if p)
    values: dict[str, Any] = {}
    found = False
    for name, params in parameter_sections(data):
        if not (node_name_matches(name, fqn) or (
                namespace is None and name.rstrip("/").split("/")[-1] == NODE_NAME)):
            continue
        if not isinstance(params, dict):
            raise ConfigError(f"parameters file '{path}': section '{name}' needs a "
                              f"'ros__parameters' mapping")
        values.update(params)
        found = True
    if not found:
        names = [name for name, _ in parameter_sections(data)]
        raise ConfigError(f"parameters file '{path}' has no 'ros__parameters' section for "
                          f"the node {fqn} (write '/**/{NODE_NAME}:' as its top key); its "
                          f"sections: {names}, its top-level keys: {sorted(map(str, data))}")
    return values, path


def _absolute(topic: str) -> str:
    """A topic name without a namespace is absolute (the evaluation has no node namespace)."""
    return topic if topic.startswith("/") else "/" + topic


@dataclass(frozen=True)
class NodeTopics:
    """The node's input and output topic names (defaults: docs/DESIGN.md)."""

    camera_names: tuple[str, ...]
    camera_prefix: str = "/cameras"
    image: str = "image_raw"
    camera_info: str = "camera_info"
    depth_image: str = "depth/image"
    depth_camera_info: str = "depth/camera_info"
    depth_gt: str = "depth_gt"  # ground truth beside each camera's topics
    odom: str = "/odom"
    points: str = "/depth_any_view/points"
    voxels: str = "/depth_any_view/occupancy/voxels"
    markers: str = "/depth_any_view/occupancy/markers"
    grid: str = "/depth_any_view/occupancy/grid"
    occupancy_gt: str = TOPIC_OCCUPANCY_GT

    def camera(self, name: str, topic: str) -> str:
        """<camera_prefix>/<name>/<topic>, absolute, without doubled slashes."""
        return _absolute(f"{self.camera_prefix.strip('/')}/{name}/{topic.strip('/')}")

    @classmethod
    def from_parameters(cls, values: Mapping[str, Any],
                        camera_names: list[str]) -> NodeTopics:
        """Topic names from the node's parameters (missing ones keep the defaults)."""
        keys = {"camera_prefix": "camera_topic_prefix", "image": "image_topic",
                "camera_info": "camera_info_topic", "depth_image": "depth_image_topic",
                "depth_camera_info": "depth_camera_info_topic", "odom": "odom_topic",
                "points": "points_topic", "voxels": "voxels_topic",
                "markers": "markers_topic", "grid": "grid_topic"}
        kwargs = {}
        for attr, param in keys.items():
            if param in values:
                if not isinstance(values[param], str) or not values[param].strip("/"):
                    raise ConfigError(f"parameter '{param}' must be a topic name, got "
                                      f"{values[param]!r}")
                kwargs[attr] = values[param]
        topics = cls(tuple(camera_names), **kwargs)
        return replace(topics, **{a: _absolute(getattr(topics, a)) for a in
                                  ("odom", "points", "voxels", "markers", "grid")})


def load_pipeline_config(params_file: Path | str | None = None, *,
                         weights: Path | str | None = None, random_init: bool = False,
                         parameters: Mapping[str, Any] | None = None,
                         ) -> tuple[PipelineConfig, NodeTopics, dict[str, Any], Path]:
    """The pipeline configuration and topic names of a run over a bag.

    Args:
        params_file: the node's parameters YAML; None = the packaged
            config/depth_any_view.yaml.
        weights: a .safetensors file (its own model config is used); None = the
            parameters' `weights` (empty: the shipped weights of `preset`).
        random_init: random weights of the parameters' `preset` (plumbing checks only).
        parameters: parameter values replacing the file's (e.g. {'device': 'cpu'}).

    Returns:
        (pipeline config, topic names, parameter values, parameters file path).

    Raises:
        ConfigError: the file is missing or malformed, or a value is invalid.
    """
    values, params_path = load_node_parameters(params_file)
    values.update(parameters or {})
    cfg = PipelineConfig.from_parameters(values)
    if weights is not None:
        cfg.engine = replace(cfg.engine, weights=str(weights), preset=None, random_init=False)
    elif random_init:
        cfg.engine = replace(cfg.engine, weights=None, random_init=True)
    return cfg, NodeTopics.from_parameters(values, cfg.camera_names), values, params_path


# ---------------------------------------------------------------------------- bag checks
@dataclass
class TopicPlan:
    """Which bag topic plays which role, and what the bag lacks (as notes)."""

    roles: dict[str, tuple[str, str]]  # topic -> (role, camera name or '')
    depth_gt_cameras: list[str]  # cameras with a depth ground-truth topic
    occupancy_gt: bool  # the bag has occupancy ground truth
    odometry: bool  # the bag has odometry
    notes: list[str] = field(default_factory=list)


def _topic_list(types: dict[str, str]) -> str:
    """'topic (type), ...' for an error line."""
    return ", ".join(f"{t} ({m})" for t, m in types.items()) or "no topics"


def plan_topics(reader: BagReader, topics: NodeTopics) -> TopicPlan:
    """Map the bag's topics to roles; BagError when a camera topic is missing or mistyped.

    Camera images and CameraInfo are required for every configured camera; odometry and
    ground truth are optional (a wrong type there is a note, not an error).
    """
    have = reader.topics()
    required = {}
    for name in topics.camera_names:
        required[topics.camera(name, topics.image)] = IMAGE
        required[topics.camera(name, topics.camera_info)] = CAMERA_INFO
    missing = [t for t in required if t not in have]
    wrong = [f"{t} is {have[t]} (expected {required[t]})" for t in required
             if t in have and have[t] != required[t]]
    if missing or wrong:
        what = []
        if missing:
            what.append(f"lacks topic(s) {', '.join(missing)}")
        if wrong:
            what.append("has unexpected message type(s): " + "; ".join(wrong))
        raise BagError(f"bag {reader.path} {' and '.join(what)} (cameras from parameter "
                       f"camera_names {list(topics.camera_names)}); it has: {_topic_list(have)}")
    counts = reader.message_counts()
    images = [t for t, m in required.items() if m == IMAGE]
    if not any(counts.get(t, 0) for t in images):
        raise BagError(f"bag {reader.path} has no messages on the camera image topics "
                       f"{', '.join(images)}; nothing to evaluate")
    roles: dict[str, tuple[str, str]] = {}
    plan = TopicPlan(roles, [], False, False)
    for name in topics.camera_names:
        roles[topics.camera(name, topics.image)] = ("image", name)
        roles[topics.camera(name, topics.camera_info)] = ("camera_info", name)
        gt = topics.camera(name, topics.depth_gt)
        if have.get(gt) == IMAGE:
            roles[gt] = ("depth_gt", name)
            plan.depth_gt_cameras.append(name)
        elif gt in have:
            plan.notes.append(f"{gt} is {have[gt]}, not {IMAGE}: no depth scores for {name}")
    optional = ((topics.odom, ODOMETRY, "odom"), (topics.occupancy_gt, POINT_CLOUD2,
                                                  "occupancy_gt"))
    for topic, msgtype, role in optional:
        if have.get(topic) == msgtype:
            roles[topic] = (role, "")
        elif topic in have:
            plan.notes.append(f"{topic} is {have[topic]}, not {msgtype}: ignored")
    plan.odometry = topics.odom in roles
    plan.occupancy_gt = topics.occupancy_gt in roles
    if not plan.odometry:
        plan.notes.append(f"no odometry on {topics.odom}: occupancy is single-frame in "
                          "base_link")
    return plan


def bag_rig(reader: BagReader, topics: NodeTopics) -> Rig:
    """The rig from the bag: optical frame_ids from each camera's first CameraInfo,
    extrinsics from /tf_static (BagError when a camera cannot be reached)."""
    info_topics = {topics.camera(n, topics.camera_info): n for n in topics.camera_names}
    frame_ids: dict[str, str] = {}
    for m in reader.messages(list(info_topics)):
        frame_ids.setdefault(info_topics[m.topic], m.msg.header.frame_id)
        if len(frame_ids) == len(info_topics):
            break
    missing = [n for n in topics.camera_names if n not in frame_ids]
    if missing:
        raise BagError(f"bag {reader.path} has no CameraInfo messages for {missing}")
    statics = reader.static_transforms()
    cams = {n: RigCamera(n, frame_ids[n], reader.static_transform(frame_ids[n], statics))
            for n in topics.camera_names}
    return Rig(BASE_FRAME, cams)


def _rig_difference(a: Rig, b: Rig) -> list[str]:
    """Cameras whose extrinsics differ by more than RIG_TOLERANCE between two rigs."""
    out = []
    for name in a.names:
        if name not in b.cameras:
            continue
        Ta, Tb = a[name].T_base_cam, b[name].T_base_cam
        dt = float(np.linalg.norm(Ta[:3, 3] - Tb[:3, 3]))
        cos = (np.trace(Ta[:3, :3].T @ Tb[:3, :3]) - 1.0) / 2.0
        angle = float(np.arccos(np.clip(cos, -1.0, 1.0)))
        if dt > RIG_TOLERANCE[0] or angle > RIG_TOLERANCE[1]:
            out.append(f"{name} ({dt:.3f} m, {angle:.3f} rad)")
    return out


def choose_rig(reader: BagReader, topics: NodeTopics, cfg: PipelineConfig,
               notes: list[str]) -> tuple[Rig, str]:
    """The bag's /tf_static rig when it reaches every camera, else the rig_file's."""
    try:
        rig = bag_rig(reader, topics)
    except BagError as exc:
        try:
            rig = Rig.from_yaml(resolve_rig_file(cfg.rig_file)).subset(list(topics.camera_names))
        except ConfigError as cfg_exc:
            raise BagError(f"bag {reader.path}: no usable extrinsics: {exc}; and parameter "
                           f"'rig_file': {cfg_exc}") from None
        notes.append(f"extrinsics from rig_file {cfg.rig_file}: the bag's /tf_static does "
                     f"not reach every camera ({exc})")
        return rig, f"rig_file {cfg.rig_file}"
    try:
        file_rig = Rig.from_yaml(resolve_rig_file(cfg.rig_file))
    except ConfigError:
        return rig, "the bag's /tf_static"
    differ = _rig_difference(rig, file_rig)
    if differ:
        notes.append(f"the bag's /tf_static and rig_file {cfg.rig_file} disagree for "
                     f"{', '.join(differ)}; the bag's extrinsics are used")
    return rig, "the bag's /tf_static"


# ---------------------------------------------------------------------------- output bag
class OutputBagWriter:
    """The node's output topics of every processed set, written as an MCAP rosbag2."""

    def __init__(self, path: Path, topics: NodeTopics, rig: Rig, voxel_size: np.ndarray,
                 publish: Mapping[str, bool], marker_max_voxels: int = 50000) -> None:
        """Create the bag (a previous output bag at `path` is replaced).

        Args:
            path: bag directory; an existing directory must be an earlier output bag.
            topics: the node's topic names.
            rig: extrinsics for /tf_static.
            voxel_size: (3,) metres, the fused map's voxel edges (marker cube size).
            publish: the node's publish_depth / _points / _voxels / _markers / _grid flags.
            marker_max_voxels: most voxels in the marker list (highest probability first).
        """
        if path.exists():
            if not (path / "metadata.yaml").is_file():
                raise FileExistsError(f"{path} exists and is not an earlier output bag; "
                                      "choose another report directory or remove it")
            shutil.rmtree(path)
        self.topics, self.rig, self.publish = topics, rig, dict(publish)
        self.marker_max_voxels = int(marker_max_voxels)
        self.voxel_size = [float(v) for v in np.broadcast_to(
            np.asarray(voxel_size, dtype=np.float64), (3,))]
        self.ts = ts = default_typestore()
        self.writer = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
        self.writer.open()
        conns: list[tuple[str, str, Any]] = [(TOPIC_TF_STATIC, TF_MESSAGE, QOS_TF_STATIC),
                                             (TOPIC_TF, TF_MESSAGE, QOS_TF)]
        if self.publish.get("publish_depth", True):
            for n in topics.camera_names:
                conns += [(topics.camera(n, topics.depth_image), IMAGE, QOS_DEFAULT),
                          (topics.camera(n, topics.depth_camera_info), CAMERA_INFO,
                           QOS_DEFAULT)]
        for key, topic, msgtype, qos in (
                ("publish_points", topics.points, POINT_CLOUD2, QOS_DEFAULT),
                ("publish_voxels", topics.voxels, POINT_CLOUD2, QOS_DEFAULT),
                ("publish_markers", topics.markers, "visualization_msgs/msg/MarkerArray",
                 QOS_DEFAULT),
                ("publish_grid", topics.grid, "nav_msgs/msg/OccupancyGrid", QOS_TF_STATIC)):
            if self.publish.get(key, True):
                conns.append((topic, msgtype, qos))
        self.conns = {t: self.writer.add_connection(t, m, typestore=ts, offered_qos_profiles=[q])
                      for t, m, q in conns}
        self._static_written = False
        self.path = path

    def _write(self, topic: str, stamp_ns: int, msg: Any) -> None:
        """Serialise and record one message at `stamp_ns`."""
        conn = self.conns[topic]
        self.writer.write(conn, stamp_ns, self.ts.serialize_cdr(msg, conn.msgtype))

    def write(self, result: PipelineResult, pipeline: Pipeline) -> None:
        """Every output topic of one processed set, all recorded at the set's stamp.

        `pipeline` gives the marker voxels and colour range exactly as the node's markers.
        """
        ts, t, stamp = self.ts, self.topics, result.stamp_ns
        if not self._static_written:
            static = [transform_stamped_msg(ts, stamp, self.rig.base_frame, c.frame_id,
                                            c.T_base_cam) for c in self.rig.cameras.values()]
            self._write(TOPIC_TF_STATIC, stamp, tf_message(ts, static))
            self._static_written = True
        if result.pose is not None:
            tf = transform_stamped_msg(ts, stamp, result.map_frame, self.rig.base_frame,
                                       result.pose)
            self._write(TOPIC_TF, stamp, tf_message(ts, [tf]))
        if self.publish.get("publish_depth", True):
            for name, out in result.cameras.items():
                self._write(t.camera(name, t.depth_image), out.stamp_ns,
                            image_msg(ts, out.stamp_ns, out.frame_id, out.depth, "32FC1"))
                self._write(t.camera(name, t.depth_camera_info), out.stamp_ns,
                            camera_info_msg(ts, out.stamp_ns, out.frame_id, out.camera))
        if self.publish.get("publish_points", True):
            self._write(t.points, stamp, point_cloud_msg(
                ts, stamp, result.points_frame, to_xyzrgb(result.points, result.colors)))
        if result.voxels is None:
            return  # the fusion refused the update: the node publishes no occupancy either
        if self.publish.get("publish_voxels", True):
            cloud = np.empty(result.voxels.shape[0], dtype=XYZP_DTYPE)  # (M,)
            for i, axis in enumerate("xyz"):
                cloud[axis] = result.voxels[:, i]
            cloud["probability"] = result.voxel_probability
            self._write(t.voxels, stamp, point_cloud_msg(ts, stamp, result.map_frame, cloud))
        if self.publish.get("publish_markers", True):
            self._write(t.markers, stamp, self._markers(result, pipeline))
        if self.publish.get("publish_grid", True) and result.grid2d is not None:
            self._write(t.grid, stamp, self._grid(result))

    def _markers(self, result: PipelineResult, pipeline: Pipeline) -> Any:
        """visualization_msgs/MarkerArray: one CUBE_LIST of the occupied voxels (DELETE
        when there are none), coloured by height, as the node publishes it."""
        ts = self.ts
        T = ts.types
        centres, z_range = pipeline.marker_voxels(result, self.marker_max_voxels)
        centres = np.asarray(centres, dtype=np.float64).reshape(-1, 3)  # (M, 3)
        marker_t = T["visualization_msgs/msg/Marker"]
        point_t, color_t = T["geometry_msgs/msg/Point"], T["std_msgs/msg/ColorRGBA"]
        voxel = self.voxel_size
        empty = centres.shape[0] == 0
        rgb = height_colors(centres[:, 2], *z_range).tolist()  # (M, 3)
        marker = marker_t(
            header=header_msg(ts, result.stamp_ns, result.map_frame), ns="occupancy", id=0,
            type=marker_t.CUBE_LIST, action=marker_t.DELETE if empty else marker_t.ADD,
            pose=pose_msg(ts, np.eye(4)),
            scale=T["geometry_msgs/msg/Vector3"](x=voxel[0], y=voxel[1], z=voxel[2]),
            color=color_t(r=1.0, g=1.0, b=1.0, a=MARKER_ALPHA),
            lifetime=T["builtin_interfaces/msg/Duration"](sec=0, nanosec=0),
            frame_locked=False,
            points=[point_t(x=x, y=y, z=z) for x, y, z in centres.tolist()],
            colors=[color_t(r=r, g=g, b=b, a=MARKER_ALPHA) for r, g, b in rgb],
            texture_resource="",
            texture=T["sensor_msgs/msg/CompressedImage"](
                header=header_msg(ts, 0, ""), format="", data=np.zeros(0, np.uint8)),
            uv_coordinates=[], text="", mesh_resource="",
            mesh_file=T["visualization_msgs/msg/MeshFile"](filename="",
                                                           data=np.zeros(0, np.uint8)),
            mesh_use_embedded_materials=False)
        return T["visualization_msgs/msg/MarkerArray"](markers=[marker])

    def _grid(self, result: PipelineResult) -> Any:
        """nav_msgs/OccupancyGrid of the 2D band (100 occupied, 0 free, -1 unknown)."""
        ts, g = self.ts, result.grid2d
        data = np.ascontiguousarray(g.data, dtype=np.int8)  # (height=ny, width=nx)
        origin = np.eye(4)
        origin[:3, 3] = g.origin
        header = header_msg(ts, result.stamp_ns, result.map_frame)
        info = ts.types["nav_msgs/msg/MapMetaData"](
            map_load_time=header.stamp, resolution=float(g.resolution),
            width=int(data.shape[1]), height=int(data.shape[0]), origin=pose_msg(ts, origin))
        return ts.types["nav_msgs/msg/OccupancyGrid"](header=header, info=info,
                                                      data=data.reshape(-1))

    def close(self) -> None:
        """Finish the bag (safe to call twice)."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None


# ---------------------------------------------------------------------------- feeding
@dataclass
class FedSet:
    """One processed set of a bag with the bag's ground truth of its stamp (`BagFeeder`)."""

    result: PipelineResult  # the pipeline's outputs (always `ok`: dropped sets are not fed)
    synced: SyncedSet  # the synchronized set it was processed from
    processed_ns: int  # bag record time (ns) at which the set was processed
    depth_gt: dict[str, np.ndarray] = field(default_factory=dict)  # camera -> (H, W) float32
    # metres along z, NaN = unknown: the ground truth stamped like that camera's image
    # (cameras without one are absent)
    occupancy_gt: np.ndarray | None = None  # (nx, ny, nz) uint8 FREE / OCCUPIED / UNKNOWN
    # on the feeder's occupancy grid, None without it
    odometry: np.ndarray | None = None  # (4, 4) T_odom_base of the bag's odometry at the
    # set's stamp (Pipeline.odometry_at), None when the bag has none close enough
    extra: Any = None  # what the `on_processed` callback returned for this set


@dataclass
class _Waiting:
    """A processed set waiting for its ground truth."""

    fed: FedSet
    deadline_ns: int  # record time after which it goes on with the ground truth it has
    depth_stamps: dict[str, int]  # camera -> image stamp of the depth ground truth expected


ProcessedCallback = Callable[[PipelineResult, SyncedSet, int], Any]


class BagFeeder:
    """The one bag -> Pipeline loop, behind `eval-bag` and `slam` (see the module docstring).

    Every message of the bag's planned topics goes, in record order and with the record
    time as the clock, into the node's `Pipeline`: CameraInfo, images and odometry through
    the node's own calls, then `poll` and `process`. `sets()` yields each processed set with
    the ground truth of its stamp once that has arrived, or after GT_WAIT_NS of record time
    with what has (at the end of the bag: at once), in processing order.

    Whatever must be read from the pipeline right after a set is processed, before it sees
    anything newer (the fused map, the outputs to record), goes into the `on_processed`
    callback; its return value travels with the set as `FedSet.extra`. Sets the pipeline
    drops are counted (`emitted` minus `processed`) and noted, not yielded.
    """

    def __init__(self, reader: BagReader, pipeline: Pipeline, topics: NodeTopics,
                 plan: TopicPlan, *, notes: list[str] | None = None,
                 occupancy_grid: VoxelGrid | None = None) -> None:
        """Prepare the feeding of an open bag.

        Args:
            reader: the open bag.
            pipeline: the node's pipeline to feed (configuration and rig of the run).
            topics: the node's topic names.
            plan: the bag's topics by role (`plan_topics`).
            notes: a list that input problems are appended to (one line for the first of
                each kind; `input_errors` counts them all); None = a new list.
            occupancy_grid: collect the occupancy ground truth as labels on this grid;
                None = leave it out.
        """
        self.reader, self.pipeline, self.topics, self.plan = reader, pipeline, topics, plan
        self.notes: list[str] = notes if notes is not None else []
        self.names = list(topics.camera_names)
        self.occupancy_grid = occupancy_grid
        self.occupancy_enabled = bool(plan.occupancy_gt and occupancy_grid is not None)
        self.input_errors: dict[str, int] = {}
        self.emitted = 0  # sets the synchronizer emitted
        self.processed = 0  # sets the pipeline processed (each one is yielded)
        counts = reader.message_counts()
        self.frames_in_bag = max(counts.get(topics.camera(n, topics.image), 0)
                                 for n in self.names)
        # Ground truth by header stamp: (record time, array), until its set takes it.
        self.gt_depth: dict[tuple[str, int], tuple[int, np.ndarray]] = {}  # (H, W) metres
        self.gt_occ: dict[int, tuple[int, np.ndarray]] = {}  # (nx, ny, nz) labels
        self._waiting: list[_Waiting] = []
        self._on_processed: ProcessedCallback | None = None
        self.rank = {r: i for i, r in enumerate(ROLE_ORDER)}
        self.cam_rank = {n: i for i, n in enumerate(self.names)}

    def note_error(self, key: str, message: str) -> None:
        """Count an input error; the first of each kind becomes a note."""
        if key not in self.input_errors:
            self.notes.append(message)
        self.input_errors[key] = self.input_errors.get(key, 0) + 1

    def sets(self, *, progress: bool = False, desc: str = "bag",
             on_processed: ProcessedCallback | None = None) -> Iterator[FedSet]:
        """Feed the whole bag; yields each processed set with its ground truth.

        Args:
            progress: show a progress bar over the bag's messages.
            desc: the progress bar's label.
            on_processed: called as on_processed(result, synced, record_ns) right after
                each set is processed; its return value becomes `FedSet.extra`.
        """
        topics = list(self.plan.roles)
        counts = self.reader.message_counts()
        bar = tqdm(total=sum(counts.get(t, 0) for t in topics), desc=desc, unit="msg",
                   disable=not progress, dynamic_ncols=True)
        self._on_processed = on_processed
        group: list[Any] = []
        last_ns = None
        try:
            for m in self.reader.messages(topics):
                if group and m.log_ns != last_ns:
                    yield from self._feed(group, last_ns)
                    group = []
                group.append(m)
                last_ns = m.log_ns
                bar.update(1)
            if group:
                yield from self._feed(group, last_ns)
            self._process(self.pipeline.flush(last_ns), last_ns)
            yield from self._settle(None)
        finally:
            bar.close()

    def _feed(self, group: list[Any], now_ns: int) -> Iterator[FedSet]:
        """One record time's messages in canonical order, then process and settle."""
        roles = self.plan.roles
        group = sorted(group, key=lambda m: (self.rank[roles[m.topic][0]],
                                             self.cam_rank.get(roles[m.topic][1], -1)))
        sets = []
        for m in group:
            role, cam = roles[m.topic]
            if role == "image":
                sets += self._image(cam, m)
            elif role == "camera_info":
                err = self.pipeline.add_camera_info(cam, stamp_to_ns(m.msg.header.stamp), m.msg)
                if err is not None:
                    self.note_error(f"camera_info/{cam}", f"{m.topic}: {err}")
            elif role == "odom":
                self._odometry(m)
            elif role == "depth_gt":
                self._depth_gt(cam, m)
            else:
                self._occupancy_gt(m)
        sets += self.pipeline.poll(now_ns)
        self._process(sets, now_ns)
        yield from self._settle(now_ns)

    def _image(self, cam: str, m: Any) -> list[Any]:
        """Decode an image message and queue it in the pipeline (bag time = arrival)."""
        try:
            img = image_from_msg(m.msg)
        except ValueError as exc:
            self.note_error(f"image/{cam}", f"{m.topic} at {m.log_ns} ns: {exc}")
            return []
        return self.pipeline.add_image(cam, img.stamp_ns, img.array, m.log_ns,
                                       encoding=img.encoding, frame_id=img.frame_id or None)

    def _odometry(self, m: Any) -> None:
        """Queue an odometry pose (validated by the pipeline)."""
        p, q = m.msg.pose.pose.position, m.msg.pose.pose.orientation
        err = self.pipeline.add_odometry(stamp_to_ns(m.msg.header.stamp),
                                         ((p.x, p.y, p.z), (q.x, q.y, q.z, q.w)))
        if err is not None:
            self.note_error("odometry", f"{m.topic} at {m.log_ns} ns: {err}")

    def _depth_gt(self, cam: str, m: Any) -> None:
        """Keep a depth ground truth (metres, NaN unknown) until its set takes it."""
        try:
            img = image_from_msg(m.msg)
            self.gt_depth[(cam, img.stamp_ns)] = (m.log_ns, img.depth_metres())
        except ValueError as exc:
            self.note_error(f"depth_gt/{cam}", f"{m.topic} at {m.log_ns} ns: {exc}")

    def _occupancy_gt(self, m: Any) -> None:
        """Keep occupancy labels on the grid; a cloud off the grid turns occupancy off."""
        if not self.occupancy_enabled:
            return
        try:
            cloud = cloud_from_msg(m.msg)
            self.gt_occ[cloud.stamp_ns] = (m.log_ns, occupancy_from_points(
                cloud.points, self.occupancy_grid))
        except ValueError as exc:
            self.occupancy_enabled = False
            self.gt_occ.clear()
            self.notes.append(f"{m.topic} cannot be read ({exc}); occupancy is not scored")

    def _process(self, sets: list[Any], now_ns: int) -> None:
        """Run the pipeline on each set, hand it to the callback and queue it."""
        for synced in sets:
            self.emitted += 1
            result = self.pipeline.process(synced)
            if not result.ok:
                self.note_error(f"dropped/{result.dropped.split(':')[0]}",
                                f"set at {synced.stamp_ns} ns dropped: {result.dropped}")
                continue
            extra = (None if self._on_processed is None
                     else self._on_processed(result, synced, now_ns))
            stamps = {n: o.stamp_ns for n, o in result.cameras.items()
                      if n in self.plan.depth_gt_cameras}
            self._waiting.append(_Waiting(FedSet(result, synced, now_ns, extra=extra),
                                          now_ns + GT_WAIT_NS, stamps))
            self.processed += 1

    def _ready(self, item: _Waiting) -> bool:
        """True when all the ground truth a set expects has arrived."""
        if any((n, s) not in self.gt_depth for n, s in item.depth_stamps.items()):
            return False
        return not self.occupancy_enabled or item.fed.result.stamp_ns in self.gt_occ

    def _complete(self, item: _Waiting) -> FedSet:
        """The set with the ground truth it got (taken out of the stores)."""
        fed = item.fed
        for name, stamp in item.depth_stamps.items():
            entry = self.gt_depth.pop((name, stamp), None)
            if entry is not None:
                fed.depth_gt[name] = entry[1]
        entry = (self.gt_occ.pop(fed.result.stamp_ns, None) if self.occupancy_enabled
                 else None)
        fed.occupancy_gt = None if entry is None else entry[1]
        fed.odometry = (self.pipeline.odometry_at(fed.result.stamp_ns) if self.plan.odometry
                        else None)
        return fed

    def _settle(self, now_ns: int | None) -> Iterator[FedSet]:
        """The sets whose ground truth is in (or overdue; None = end of bag)."""
        keep, done = [], []
        for item in self._waiting:
            if now_ns is None or self._ready(item) or now_ns >= item.deadline_ns:
                done.append(self._complete(item))
            else:
                keep.append(item)
        self._waiting = keep
        if now_ns is not None:  # ground truth nobody claimed within GT_KEEP_NS is dropped
            old = now_ns - GT_KEEP_NS
            for store in (self.gt_depth, self.gt_occ):
                for key in [k for k, (t, _) in store.items() if t < old]:
                    del store[key]
        yield from done


# ---------------------------------------------------------------------------- scoring
@dataclass
class _Pending:
    """What scoring needs of a processed set, taken when it was processed."""

    stamp_ns: int  # set stamp
    depth: dict[str, tuple[int, np.ndarray]]  # camera -> (image stamp, (H, W) metres)
    single: np.ndarray | None  # (nx, ny, nz) float32 network probability on the eval grid
    observed: np.ndarray | None  # (nx, ny, nz) bool, voxels the network observed
    fused: np.ndarray | None  # (nx, ny, nz) float32 fused probability, NaN = unknown
    cameras: dict[str, PinholeCamera] = field(default_factory=dict)  # camera -> the
    # calibration of its input image (its CameraInfo), for the scale overlap
    confidence: dict[str, np.ndarray] = field(default_factory=dict)  # camera -> (H, W)
    # confidence registered with its depth (networks with a confidence head)


def labels_from_probability(prob: np.ndarray, known: np.ndarray, occupied: float,
                            free: float) -> np.ndarray:
    """(nx, ny, nz) uint8 FREE / OCCUPIED / UNKNOWN of probabilities (known voxels only)."""
    out = np.full(prob.shape, UNKNOWN, dtype=np.uint8)
    with np.errstate(invalid="ignore"):
        out[known & (prob >= occupied)] = OCCUPIED
        out[known & (prob <= free)] = FREE
    return out


def image_camera(result: PipelineResult, synced: Any, name: str) -> PinholeCamera:
    """The calibration of a camera's input image in a processed set (its CameraInfo)."""
    pred = result.prediction
    if pred is not None and pred.cameras_input is not None and name in pred.camera_names:
        return pred.cameras_input[pred.index(name)]
    view = synced.views.get(name)
    camera = getattr(getattr(view, "info", None), "camera", None)
    return camera if isinstance(camera, PinholeCamera) else result.cameras[name].camera


def _resample_nearest(depth: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Depth (h, w) resized to `shape` (H, W) by nearest pixel (centre-aligned)."""
    return cv2.resize(depth, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)


def _stage_stats(values: list[float]) -> dict[str, float]:
    """Median, p95 and mean of seconds (NaN when empty)."""
    if not values:
        return {"median": math.nan, "p95": math.nan, "mean": math.nan}
    v = np.asarray(values, dtype=np.float64)
    return {"median": float(np.median(v)), "p95": float(np.percentile(v, 95)),
            "mean": float(v.mean())}


class _Evaluation:
    """One run: feeds the bag into the pipeline (BagFeeder), scores, writes outputs."""

    def __init__(self, reader: BagReader, pipeline: Pipeline, topics: NodeTopics,
                 plan: TopicPlan, out_bag: OutputBagWriter | None, notes: list[str]) -> None:
        self.reader, self.pipeline, self.topics, self.plan = reader, pipeline, topics, plan
        self.out_bag, self.notes = out_bag, notes
        self.names = list(topics.camera_names)
        fcfg = pipeline.fusion.config
        self.occupied, self.free = fcfg.occupied_threshold, fcfg.free_threshold
        self.z_band = (fcfg.grid_z_min, fcfg.grid_z_max)
        self.eval_grid = self._eval_grid()
        hi = float(pipeline.engine.depth_range[1])
        edges = np.arange(0.0, hi, DISTANCE_BIN_M)
        self.fine_bins = [(float(a), float(a + DISTANCE_BIN_M)) for a in edges]
        self.fine_bins[-1] = (self.fine_bins[-1][0], math.inf)
        self.depth_acc = DepthMetricAccumulator(self.names, bins=DEFAULT_BINS)
        self.fine_acc = DepthMetricAccumulator(["all"], bins=self.fine_bins)
        self.single_acc = VoxelMetricAccumulator(self.occupied)
        self.fused_acc = VoxelMetricAccumulator(self.occupied)
        self.scale_acc = (ScaleStabilityAccumulator(plan.depth_gt_cameras)
                          if plan.depth_gt_cameras else None)
        self.gt_known = 0
        self.spars_acc = SparsificationAccumulator()  # AbsRel vs confidence (issue 10)
        self.ghosts: list[int] = []  # per scored set: fused-occupied voxels free in truth
        self.feeder = BagFeeder(reader, pipeline, topics, plan, notes=notes,
                                occupancy_grid=self.eval_grid)
        self._grid_map: tuple[np.ndarray, np.ndarray] | None = None  # eval -> network grid
        self.timings: list[dict[str, float]] = []
        self.valid = dict.fromkeys(self.names, 0)  # pixels with depth, per camera
        self.pixels = dict.fromkeys(self.names, 0)  # depth pixels, per camera
        self.processed = 0
        self.scored_depth_sets = 0
        self.scored_occ_sets = 0
        self.sample_index = self.feeder.frames_in_bag // 2
        self.sample: SamplePanel | None = None
        self.birds_eye: BirdsEye | None = None
        self._sample_pending: _Pending | None = None

    def _eval_grid(self) -> VoxelGrid:
        """The ground truth's grid (bag metadata) when the bag has one, else the network's."""
        engine_grid = self.pipeline.engine.grid
        if not self.plan.occupancy_gt:
            return engine_grid
        grid = self.reader.grid()
        if grid is None:
            self.notes.append("the bag records no occupancy grid in its metadata: ground "
                              "truth is read on the network's grid")
            return engine_grid
        return grid

    @property
    def occ_enabled(self) -> bool:
        """Occupancy is scored (the bag has readable occupancy ground truth)."""
        return self.feeder.occupancy_enabled

    @property
    def emitted(self) -> int:
        """Sets the synchronizer emitted."""
        return self.feeder.emitted

    @property
    def frames_in_bag(self) -> int:
        """Most images on one camera topic."""
        return self.feeder.frames_in_bag

    @property
    def input_errors(self) -> dict[str, int]:
        """Input errors by kind (the first of each is a note)."""
        return self.feeder.input_errors

    # ------------------------------------------------------------------ running
    def run(self, progress: bool) -> float:
        """Feed the bag (BagFeeder) and score every processed set; returns wall seconds."""
        t0 = time.perf_counter()
        for fed in self.feeder.sets(progress=progress, desc="eval-bag",
                                    on_processed=self._processed):
            self._score(fed)
        return time.perf_counter() - t0

    # ------------------------------------------------------------------ processing
    def _processed(self, result: PipelineResult, synced: Any, now_ns: int) -> _Pending:
        """Right after a set is processed: outputs, timings, and what scoring needs of it."""
        self.timings.append(result.timings)
        for name, out in result.cameras.items():
            self.valid[name] += int(np.count_nonzero(np.isfinite(out.depth)))
            self.pixels[name] += int(out.depth.size)
        if self.out_bag is not None:
            self.out_bag.write(result, self.pipeline)
        # the sample: the set in the middle of the bag, or the last one if fewer came
        is_sample = self.processed <= self.sample_index
        item = self._pending(result, synced, is_sample)
        if is_sample:
            self._keep_sample(result, item)
        self.processed += 1
        return item

    def _network_index(self, grid: VoxelGrid) -> tuple[np.ndarray, np.ndarray]:
        """For every eval-grid voxel centre, its network-grid voxel (N, 3) and whether the
        centre lies inside the network grid (N,); computed once."""
        if self._grid_map is None:
            centres = self.eval_grid.centers(np.float64).reshape(-1, 3)  # (N, 3) base_link
            idx, inside = grid.points_to_index(centres)
            self._grid_map = (np.where(inside[:, None], idx, 0), inside)
        return self._grid_map

    def _pending(self, result: PipelineResult, synced: Any, is_sample: bool) -> _Pending:
        """What scoring needs of a result, taken now (the fused map keeps changing)."""
        depth = {n: (o.stamp_ns, o.depth) for n, o in result.cameras.items()
                 if n in self.plan.depth_gt_cameras}
        cameras = {n: image_camera(result, synced, n) for n in depth}
        confidence = {n: result.cameras[n].confidence for n in depth
                      if result.cameras[n].confidence is not None}
        single = observed = fused = None
        if self.occ_enabled or is_sample:
            pred = result.prediction
            idx, inside = self._network_index(pred.grid)
            dims = self.eval_grid.dims
            single = pred.occupancy[idx[:, 0], idx[:, 1], idx[:, 2]].reshape(dims)
            observed = (pred.observed[idx[:, 0], idx[:, 1], idx[:, 2]] & inside).reshape(dims)
            if result.fusion is not None and result.fusion.accepted:
                fused = self.pipeline.fusion.sample(self.eval_grid, result.pose)
            else:
                fused = np.full(dims, np.nan, dtype=np.float32)
        return _Pending(result.stamp_ns, depth, single, observed, fused, cameras, confidence)

    def _keep_sample(self, result: PipelineResult, item: _Pending) -> None:
        """Arrays of the sample set for the panel and the bird's-eye view."""
        names = list(result.cameras)
        self.sample = SamplePanel(
            stamp_ns=result.stamp_ns, cameras=names,
            rgb=[result.cameras[n].rgb.copy() for n in names],
            prediction=[result.cameras[n].depth for n in names],
            ground_truth=[None] * len(names), max_depth=0.0)
        self.birds_eye = BirdsEye(
            grid=self.eval_grid, z_band=self.z_band,
            single=labels_from_probability(item.single, item.observed, self.occupied,
                                           self.free),
            fused=labels_from_probability(item.fused, np.isfinite(item.fused), self.occupied,
                                          self.free), stamp_ns=result.stamp_ns)
        self._sample_pending = item

    # ------------------------------------------------------------------ scoring
    def _score(self, fed: FedSet) -> None:
        """Add one set's depth and occupancy errors to the accumulators."""
        item: _Pending = fed.extra
        preds, gts = {}, {}
        for name, (_, pred) in item.depth.items():
            gt = fed.depth_gt.get(name)
            if gt is None:
                continue
            if pred.shape != gt.shape:
                self.feeder.note_error("depth_size", f"depth at {pred.shape} is compared with "
                                 f"ground truth at {gt.shape} after nearest resampling")
                pred = _resample_nearest(pred, gt.shape)
            preds[name], gts[name] = pred, gt
            conf = item.confidence.get(name)
            if conf is not None:
                if conf.shape != gt.shape:
                    conf = _resample_nearest(conf, gt.shape)
                self.spars_acc.update(pred, gt, conf)
        if preds:
            self._score_depth(preds, gts)
            self._score_scale(item, preds, gts)
            self.scored_depth_sets += 1
        labels = fed.occupancy_gt
        if labels is not None:
            self.single_acc.update(item.single, labels, item.observed)
            known = np.isfinite(item.fused)
            self.fused_acc.update(np.nan_to_num(item.fused, nan=0.0), labels, known)
            if known.any():
                self.ghosts.append(ghost_voxels(item.fused, labels, self.occupied,
                                                margin=GHOST_MARGIN_VOXELS))
            self.gt_known += int(np.count_nonzero(labels != UNKNOWN))
            self.scored_occ_sets += 1
        if item is self._sample_pending:
            names = self.sample.cameras
            self.sample.ground_truth = [gts.get(n) for n in names]
            ref = [g for g in self.sample.ground_truth if g is not None] or \
                  self.sample.prediction
            finite = np.concatenate([r[np.isfinite(r)].ravel() for r in ref])
            self.sample.max_depth = float(np.percentile(finite, 99)) if finite.size else \
                float(self.pipeline.engine.depth_range[1])
            if labels is not None:
                self.birds_eye.ground_truth = labels

    def _score_depth(self, preds: dict[str, np.ndarray], gts: dict[str, np.ndarray]) -> None:
        """Pool one set's depth errors per camera, per range bin and per distance bin."""
        V = len(self.names)
        shapes = {g.shape for g in gts.values()}
        if len(shapes) == 1:
            (H, W), = shapes
            P = np.full((1, V, H, W), np.nan, dtype=np.float32)
            G = np.full((1, V, H, W), np.nan, dtype=np.float32)
            for name in preds:
                v = self.names.index(name)
                P[0, v], G[0, v] = preds[name], gts[name]
            self.depth_acc.update(P, G)
            sel = [self.names.index(n) for n in preds]
            self.fine_acc.update(P[0, sel][:, None], G[0, sel][:, None])  # (B, 1, H, W)
            return
        for name in preds:  # cameras of different sizes: one camera per update
            H, W = gts[name].shape
            P = np.full((1, V, H, W), np.nan, dtype=np.float32)
            G = np.full((1, V, H, W), np.nan, dtype=np.float32)
            v = self.names.index(name)
            P[0, v], G[0, v] = preds[name], gts[name]
            self.depth_acc.update(P, G)
            self.fine_acc.update(preds[name][None, None], gts[name][None, None])

    def _score_scale(self, item: _Pending, preds: dict[str, np.ndarray],
                     gts: dict[str, np.ndarray]) -> None:
        """One set's scale ratios and overlap disagreement (depth at the GT's size)."""
        names = self.scale_acc.camera_names
        rig = self.pipeline.rig
        self.scale_acc.update(
            [preds.get(n) for n in names], [gts.get(n) for n in names],
            [item.cameras.get(n) if n in preds else None for n in names],
            np.stack([rig[n].T_base_cam for n in names]),
            stamp=(item.stamp_ns - self.reader.start_ns) / 1e9)

    # ------------------------------------------------------------------ results
    def scale_result(self) -> dict[str, Any] | None:
        """Scale stability over the scored sets (None without depth ground truth)."""
        return None if self.scale_acc is None else self.scale_acc.compute()

    def depth_result(self) -> dict[str, Any] | None:
        """Depth metrics overall, per camera, per bin and per camera and bin (or None)."""
        if not self.plan.depth_gt_cameras:
            return None
        d = self.depth_acc.compute()
        bins = [bin_name(b) for b in DEFAULT_BINS]
        return {
            "overall": {k: d[k] for k in DEPTH_METRICS},
            "per_camera": {c: {k: d[f"{k}/{c}"] for k in DEPTH_METRICS}
                           for c in self.plan.depth_gt_cameras},
            "per_bin": {b: {k: d[f"{k}/{b}"] for k in DEPTH_METRICS} for b in bins},
            "per_camera_bin": {c: {b: {k: d[f"{k}/{c}/{b}"] for k in DEPTH_METRICS}
                                   for b in bins} for c in self.plan.depth_gt_cameras},
            "sets_scored": self.scored_depth_sets,
        }

    def depth_curve(self) -> dict[str, list[float]] | None:
        """AbsRel, RMSE and pixel count per DISTANCE_BIN_M bin, for the figure."""
        if not self.plan.depth_gt_cameras:
            return None
        d = self.fine_acc.compute()
        names = [bin_name(b) for b in self.fine_bins]
        return {"lower": [b[0] for b in self.fine_bins], "upper": [b[1] for b in self.fine_bins],
                "abs_rel": [d[f"abs_rel/{n}"] for n in names],
                "rmse": [d[f"rmse/{n}"] for n in names],
                "count": [d[f"count/{n}"] for n in names]}

    def occupancy_result(self) -> dict[str, Any] | None:
        """Voxel IoU / precision / recall of the single-frame and fused maps (or None)."""
        if not self.plan.occupancy_gt or not self.occ_enabled:
            return None
        out: dict[str, Any] = {"grid": self.eval_grid.to_dict(),
                               "occupied_threshold": self.occupied,
                               "sets_scored": self.scored_occ_sets}
        for key, acc in (("single_frame", self.single_acc), ("fused", self.fused_acc)):
            m = {k.removeprefix("voxel_"): v for k, v in acc.compute().items()}
            m.pop("frames", None)
            m["coverage"] = m["known"] / self.gt_known if self.gt_known else math.nan
            out[key] = m
        g = self.ghosts
        out["fused"]["ghost_voxels"] = {
            "per_set": list(g), "mean": float(np.mean(g)) if g else math.nan,
            "max": max(g, default=0), "margin_voxels": GHOST_MARGIN_VOXELS}
        return out

    def sparsification_result(self) -> dict[str, Any] | None:
        """The confidence's sparsification curve (None without confidence or ground truth)."""
        return self.spars_acc.compute() if self.spars_acc.conf_count.any() else None


# ---------------------------------------------------------------------------- entry point
def evaluate_bag(bag: Path | str, report_dir: Path | str, *, params_file: Path | str | None = None,
                 weights: Path | str | None = None, random_init: bool = False,
                 progress: bool = True, parameters: Mapping[str, Any] | None = None,
                 output_bag: bool = True) -> dict[str, Any]:
    """Run the node's pipeline over a bag and write the report (see the module docstring).

    Args:
        bag: rosbag2 directory, or one .mcap / .db3 file.
        report_dir: where report.json, report.md, the figures and `outputs/` go (created).
        params_file: the node's parameters YAML; None = the packaged
            config/depth_any_view.yaml.
        weights: a .safetensors file (its own model config is used); None = the parameters'
            `weights` (empty: the shipped weights of `preset`).
        random_init: random weights of the parameters' `preset` (plumbing checks only).
        progress: show a progress bar.
        parameters: parameter values replacing the file's (e.g. {'device': 'cpu'}).
        output_bag: write the node's outputs as an MCAP bag into report_dir/outputs.

    Returns:
        The report as written to report.json (NaN as None), plus 'report_files'
        (name -> path).

    Raises:
        BagError: the bag is missing, corrupt, lacks a camera topic or has unexpected
            message types (one line naming what is wrong and the bag's topics).
        ConfigError: the parameters file is missing or malformed, or a value is invalid.
        WeightsError: the weights are missing, corrupt or do not fit.
    """
    bag, report_dir = Path(bag), Path(report_dir)
    cfg, topics, values, params_path = load_pipeline_config(
        params_file, weights=weights, random_init=random_init, parameters=parameters)
    notes: list[str] = []
    with BagReader(bag) as reader:
        plan = plan_topics(reader, topics)
        notes += plan.notes
        rig, rig_source = choose_rig(reader, topics, cfg, notes)
        pipeline = Pipeline(cfg, rig)
        report_dir.mkdir(parents=True, exist_ok=True)
        publish = {k: bool(values.get(k, True)) for k in
                   ("publish_depth", "publish_points", "publish_voxels", "publish_markers",
                    "publish_grid")}
        out_bag = (OutputBagWriter(report_dir / OUTPUT_BAG, topics, rig,
                                   pipeline.fusion.voxel_size, publish,
                                   int(values.get("marker_max_voxels", 50000)))
                   if output_bag else None)
        run = _Evaluation(reader, pipeline, topics, plan, out_bag, notes)
        try:
            wall = run.run(progress)
        finally:
            if out_bag is not None:
                out_bag.close()
        duration = max(0, reader.end_ns - reader.start_ns) / 1e9
    result = _result(run, bag, params_path, rig_source, wall, duration,
                     None if out_bag is None else out_bag.path)
    figures = FigureData(cameras=list(topics.camera_names), depth_curve=run.depth_curve(),
                         per_camera=_per_camera_figure(run, result),
                         sample=run.sample, birds_eye=run.birds_eye,
                         scale=result["scale"], sparsification=result["sparsification"],
                         ghost_voxels=list(run.ghosts) or None)
    paths = write_report(result, figures, report_dir)
    out = to_jsonable(result)
    out["report_files"] = {k: str(v) for k, v in paths.items()}
    return out


def _per_camera_figure(run: _Evaluation, result: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per-camera bar values: depth errors with GT, valid fraction and sets always."""
    depth = result.get("depth") or {}
    out = {}
    for cam in run.names:
        m = dict((depth.get("per_camera") or {}).get(cam, {}))
        cov = result["coverage"][cam]
        out[cam] = {"abs_rel": m.get("abs_rel", math.nan), "rmse": m.get("rmse", math.nan),
                    "delta1": m.get("delta1", math.nan),
                    "valid_fraction": cov["valid_depth_fraction"], "sets": cov["used"]}
    return out


def _input_notes(stats: dict[str, Any]) -> list[str]:
    """One note per camera and kind of unusable input, with the count and latest reason."""
    notes = []
    errors = stats["last_errors"]
    for cam, c in stats["images"].items():
        if c["rejected"]:
            notes.append(f"{c['rejected']} image(s) of {cam} rejected: "
                         f"{errors.get(f'{cam}/image', '?')}")
    for cam, kinds in stats["views_skipped"].items():
        for kind, n in kinds.items():
            if n:
                notes.append(f"{n} view(s) of {cam} left out ({kind}): "
                             f"{errors.get(f'{cam}/{kind}', '?')}")
    return notes


def _result(run: _Evaluation, bag: Path, params_path: Path, rig_source: str, wall: float,
            duration: float, out_bag: Path | None) -> dict[str, Any]:
    """The report dictionary of a finished run."""
    stats = run.pipeline.stats()
    sync = stats["sync"]
    sets = stats["sets"]
    coverage = {}
    for cam in run.names:
        s = sync["cameras"][cam]
        coverage[cam] = {
            "images": stats["images"][cam]["received"],
            "rejected": stats["images"][cam]["rejected"],
            "used": s["used"], "missing_in_sets": s["missing_in_sets"],
            "skipped": sum(stats["views_skipped"][cam].values()),
            "dropped_by_sync": {k: v for k, v in s["dropped"].items() if v},
            "valid_depth_fraction": (run.valid[cam] / run.pixels[cam] if run.pixels[cam]
                                     else math.nan)}
    n = len(run.timings)
    return {
        "bag": str(bag), "params_file": str(params_path), "rig_source": rig_source,
        "cameras": list(run.names), "frames_in_bag": run.frames_in_bag,
        "bag_duration_s": duration,
        "topics": {"images": [run.topics.camera(c, run.topics.image) for c in run.names],
                   "odometry": run.topics.odom if run.plan.odometry else None},
        "ground_truth": {"depth": list(run.plan.depth_gt_cameras),
                         "occupancy": run.plan.occupancy_gt},
        "engine": {k: v for k, v in run.pipeline.engine.describe().items()
                   if k in ("device", "device_name", "precision", "preset", "weights",
                            "image_size", "grid_dims", "compiled", "output_resolution")},
        "sets": {"emitted": run.emitted, "processed": sets["processed"],
                 "complete": sets["complete"], "partial": sets["partial"],
                 "dropped": dict(sets["dropped"]), "without_odometry": sets["without_odometry"],
                 "fusion_rejected": sets["fusion_rejected"],
                 "scored_depth": run.scored_depth_sets, "scored_occupancy": run.scored_occ_sets},
        "sync": {"dropped": {k: v for k, v in sync["dropped"].items() if v},
                 "resets": sync["resets"]},
        "coverage": coverage,
        "depth": run.depth_result(),
        "occupancy": run.occupancy_result(),
        "scale": run.scale_result(),
        "sparsification": run.sparsification_result(),
        "latency": {stage: _stage_stats([t[stage] for t in run.timings]) for stage in STAGES},
        "throughput": {"sets": n, "wall_s": wall, "sets_per_s": n / wall if wall > 0 else None,
                       "bag_duration_s": duration,
                       "realtime_factor": duration / wall if wall > 0 else None},
        "fusion": {k: v for k, v in stats["fusion"].items()},
        "input_errors": dict(run.input_errors),
        "output_bag": None if out_bag is None else str(out_bag),
        "notes": list(run.notes) + _input_notes(stats),
    }


__all__ = ["BagError", "BagFeeder", "FedSet", "NodeTopics", "OutputBagWriter", "TopicPlan",
           "evaluate_bag", "load_node_parameters", "load_pipeline_config", "plan_topics",
           "choose_rig", "image_camera", "labels_from_probability"]
