"""Which bag topic feeds which camera, and the rig a run over a bag uses.

`plan_topics` maps a bag's topics to their roles (each configured camera's images and
CameraInfo, odometry, depth and occupancy ground truth) and raises BagError with one line
naming what is missing or mistyped and what the bag has. `choose_rig` takes the camera
extrinsics from the bag's `/tf_static` (the recording's own calibration) when it reaches
every camera's optical frame, else from the parameters' `rig_file`, and notes where the
two disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from depth_any_view.bag.messages import (
    BASE_FRAME,
    CAMERA_INFO,
    IMAGE,
    ODOMETRY,
    POINT_CLOUD2,
    BagError,
)
from depth_any_view.bag.node_parameters import NodeTopics
from depth_any_view.bag.reader import BagReader
from depth_any_view.config import ConfigError
from depth_any_view.geometry.rig import Rig, RigCamera
from depth_any_view.pipeline import PipelineConfig, resolve_rig_file

RIG_TOLERANCE = (0.01, 0.01)  # metres, radians: bag /tf_static vs rig_file disagreement


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


__all__ = ["RIG_TOLERANCE", "TopicPlan", "bag_rig", "choose_rig", "plan_topics"]
