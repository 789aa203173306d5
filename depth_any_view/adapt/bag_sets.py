"""A robot's bag as synchronized sets for adaptation: images, calibration and poses only.

`read_bag_sets` reads one bag with the reader, topic plan and rig choice of `eval-bag`
(bag/reader.py, bag/topic_plan.py): the node's parameters file names the topics and
cameras, the extrinsics come from the bag's `/tf_static` or the parameters' `rig_file`.
Images, CameraInfo and odometry (and nothing else: ground-truth topics are never read)
go, in record order, into the node's own synchronizer (`Pipeline.add_*`, `poll`,
`flush`), so the sets are the ones the node would form. Each complete set is brought to
the network's input by the engine's `Preprocessor` (resize, undistortion, intrinsics at
the network size) and kept as uint8 images.

Poses (T_odom_base at each set's stamp) come from the bag's odometry topic
(`Pipeline.odometry_at`, looked up once the odometry after the stamp has been read); a bag
without one gets them from the cameras-only odometry (`cameras_odometry`: the pipeline's
KISS-ICP or Open3D RGB-D odometry on the starting network's depth), or none.

The last `holdout_fraction` of each bag's sets is held out: never adapted on (nor used as
a source), scored before and after where the bag has depth ground truth (evaluate.py).
An unusable bag (a camera without CameraInfo or images, too few sets, no overlapping
cameras and no odometry) raises BagError with one line saying what is missing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from depth_any_view.adapt.config import AdaptConfig
from depth_any_view.bag.feeder import ROLE_ORDER
from depth_any_view.bag.messages import BagError, image_from_msg, stamp_to_ns
from depth_any_view.bag.node_parameters import NodeTopics
from depth_any_view.bag.reader import BagReader
from depth_any_view.bag.topic_plan import choose_rig, plan_topics
from depth_any_view.data.encodings import ImageEncodingError, to_rgb8
from depth_any_view.geometry.camera import PinholeCamera
from depth_any_view.inference.engine import InferenceEngine
from depth_any_view.inference.preprocess import Preprocessor, ViewInput
from depth_any_view.pipeline import Pipeline, PipelineConfig
from depth_any_view.sync.approximate_time import SyncedSet
from depth_any_view.training.warp import neighbour_pairs

ADAPT_ROLES = ("image", "camera_info", "odom")  # the only topics adaptation reads


@dataclass
class AdaptSet:
    """One synchronized set at the network's input size."""

    index: int  # position among the bag's complete sets (record order)
    stamp_ns: int  # the set's stamp, int nanoseconds
    images: torch.Tensor  # (V, 3, h, w) uint8 RGB at the network size (undistorted)
    K: torch.Tensor  # (V, 3, 3) float32 intrinsics of `images`, pixels
    valid: torch.Tensor  # (V, h, w) bool: network pixels that see the raw image
    T_base_cam: np.ndarray  # (V, 4, 4) float64 optical frame -> base_link
    T_odom_base: np.ndarray | None  # (4, 4) float64 pose at the stamp; None = unknown
    image_stamps: dict[str, int]  # camera -> header stamp of its image in the set
    cameras: list[PinholeCamera]  # V calibrations of the raw images (CameraInfo)
    holdout: bool = False  # True: never adapted on, scored only


@dataclass
class BagSets:
    """A bag's sets and what the run needs to know about it."""

    path: Path
    camera_names: list[str]
    sets: list[AdaptSet]  # every complete set, record order (held-out ones last)
    pairs: list[tuple[int, int]]  # overlapping (target, source) view indices of the rig
    rig_source: str  # where the extrinsics came from
    odometry: str  # where the poses came from ('topic /odom', 'kiss_icp', 'none')
    depth_gt_topics: dict[str, str]  # camera -> its depth ground-truth topic (not read here)
    partial_sets: int = 0  # synchronized sets left out because a camera was missing
    notes: list[str] = field(default_factory=list)

    @property
    def adapt_sets(self) -> list[AdaptSet]:
        """The sets adaptation may use (not held out)."""
        return [s for s in self.sets if not s.holdout]

    @property
    def holdout_sets(self) -> list[AdaptSet]:
        """The held-out sets, record order."""
        return [s for s in self.sets if s.holdout]


def _view_input(name: str, view: Any, T_base_cam: np.ndarray) -> tuple[ViewInput | None, str]:
    """A synchronized view as the engine's input, or (None, why it cannot be used)."""
    camera = getattr(view.info, "camera", None)
    if camera is None:
        return None, getattr(view.info, "error", None) or f"camera '{name}': no CameraInfo"
    payload = view.payload
    h, w = payload.array.shape[:2]
    if (camera.width, camera.height) != (w, h):
        return None, (f"camera '{name}' CameraInfo is {camera.width}x{camera.height} but its "
                      f"image is {w}x{h}")
    try:
        rgb = to_rgb8(payload.array, payload.encoding)  # (H, W, 3) uint8
    except ImageEncodingError as exc:
        return None, f"camera '{name}' image: {exc}"
    return ViewInput(name, rgb, camera, T_base_cam), ""


class _SetCollector:
    """Feeds a bag's images, CameraInfo and odometry into a Pipeline's synchronizer and
    turns each complete set into an AdaptSet (poses once the odometry after it is in)."""

    def __init__(self, pipeline: Pipeline, preprocessor: Preprocessor, names: list[str],
                 *, topic_odometry: bool, cameras_odometry: bool) -> None:
        self.pipeline, self.preprocessor, self.names = pipeline, preprocessor, names
        self.topic_odometry, self.cameras_odometry = topic_odometry, cameras_odometry
        self.wait_ns = pipeline.cfg.odom_max_age_ns  # odometry after a stamp still counts
        self.waiting: list[SyncedSet] = []
        self.sets: list[AdaptSet] = []
        self.partial = 0
        self.errors: dict[str, str] = {}  # first message of each kind of unusable set

    def add(self, synced: list[SyncedSet], now_ns: int | None) -> None:
        """Queue new sets; finish those whose odometry window has passed (None: all)."""
        self.waiting += synced
        keep = []
        for s in self.waiting:
            if now_ns is None or s.stamp_ns + self.wait_ns <= now_ns:
                self._finish(s)
            else:
                keep.append(s)
        self.waiting = keep

    def _finish(self, synced: SyncedSet) -> None:
        """One synchronized set -> AdaptSet (complete sets with usable views only)."""
        if not synced.complete:
            self.partial += 1
            self.errors.setdefault("partial", f"set at {synced.stamp_ns} ns lacks "
                                   f"{synced.missing}")
            return
        rig = self.pipeline.rig
        views = []
        for name in self.names:
            built, why = _view_input(name, synced.views[name], rig[name].T_base_cam)
            if built is None:
                self.errors.setdefault(f"view/{name}", why)
                return
            views.append(built)
        pose = None
        if self.cameras_odometry:
            result = self.pipeline.process(synced)  # the starting network's depth -> odometry
            if result.ok and result.odometry is not None:
                pose = np.asarray(result.odometry.pose, dtype=np.float64)
        elif self.topic_odometry:
            pose = self.pipeline.odometry_at(synced.stamp_ns)
        inp = self.preprocessor(views)
        images = (inp.images[0].float() * 255.0).round().clamp(0, 255).to(torch.uint8)
        self.sets.append(AdaptSet(
            index=len(self.sets), stamp_ns=int(synced.stamp_ns),
            images=images.contiguous().cpu(),  # (V, 3, h, w)
            K=inp.K[0].float().cpu().clone(),  # (V, 3, 3)
            valid=inp.valid.cpu().clone(),  # (V, h, w)
            T_base_cam=inp.T_base_cam_np.copy(),  # (V, 4, 4)
            T_odom_base=pose,
            image_stamps={n: int(synced.views[n].payload.stamp_ns) for n in self.names},
            cameras=[v.camera for v in views]))


def _check_calibration_topics(reader: BagReader, topics: NodeTopics) -> None:
    """BagError naming a camera whose CameraInfo or image topic holds no message."""
    counts = reader.message_counts()
    for name in topics.camera_names:
        for kind, topic in (("CameraInfo", topics.camera(name, topics.camera_info)),
                            ("images", topics.camera(name, topics.image))):
            if not counts.get(topic, 0):
                raise BagError(f"bag {reader.path} has no {kind} for camera '{name}' (topic "
                               f"{topic} is empty): adapt needs every camera's images and "
                               f"calibration; record {topic} or drop '{name}' from "
                               "camera_names")


def _subsample(sets: list[AdaptSet], max_sets: int) -> list[AdaptSet]:
    """At most `max_sets` evenly spaced sets (0 = all), renumbered."""
    if not max_sets or len(sets) <= max_sets:
        return sets
    keep = np.unique(np.linspace(0, len(sets) - 1, max_sets).round().astype(int))
    out = [sets[i] for i in keep]
    for i, s in enumerate(out):
        s.index = i
    return out


def read_bag_sets(path: Path | str, cfg: PipelineConfig, topics: NodeTopics,
                  adapt: AdaptConfig, engine: InferenceEngine, *,
                  progress: bool = True) -> BagSets:
    """The sets of one bag for adaptation (see the module docstring).

    Args:
        path: rosbag2 directory, or one .mcap / .db3 file.
        cfg: the node's pipeline configuration (parameters file).
        topics: the node's topic names.
        adapt: the adaptation settings (hold-out, set limits, cameras-only odometry).
        engine: the starting network (its input size and preprocessing; for the
            cameras-only odometry, its depth).
        progress: show a progress bar over the bag's messages.

    Raises:
        BagError: the bag is unusable (one line: what is missing and what to record).
    """
    path = Path(path)
    notes: list[str] = []
    with BagReader(path) as reader:
        plan = plan_topics(reader, topics)
        _check_calibration_topics(reader, topics)
        roles = {t: r for t, r in plan.roles.items() if r[0] in ADAPT_ROLES}
        rig, rig_source = choose_rig(reader, topics, cfg, notes)
        source = "topic" if plan.odometry else adapt.cameras_odometry
        run_cfg = replace(cfg, odometry_source=source if source in ("kiss_icp", "open3d_rgbd")
                          else "topic")
        pipeline = Pipeline(run_cfg, rig, engine=engine)
        preprocessor = Preprocessor(engine.image_size, torch.device("cpu"),
                                    channels_last=False, input_maps=False)
        names = list(topics.camera_names)
        collector = _SetCollector(pipeline, preprocessor, names, topic_odometry=plan.odometry,
                                  cameras_odometry=source in ("kiss_icp", "open3d_rgbd"))
        rank = {r: i for i, r in enumerate(ROLE_ORDER)}
        cam_rank = {n: i for i, n in enumerate(names)}
        counts = reader.message_counts()
        bar = tqdm(total=sum(counts.get(t, 0) for t in roles), desc=f"read {path.name}",
                   unit="msg", disable=not progress, dynamic_ncols=True)
        group: list[Any] = []
        last_ns: int | None = None

        def feed(messages: list[Any], now_ns: int) -> None:
            """One record time's messages in the feeder's fixed order, then poll."""
            ready = []
            for m in sorted(messages, key=lambda m: (rank[roles[m.topic][0]],
                                                     cam_rank.get(roles[m.topic][1], -1))):
                role, cam = roles[m.topic]
                if role == "camera_info":
                    pipeline.add_camera_info(cam, stamp_to_ns(m.msg.header.stamp), m.msg)
                elif role == "odom":
                    p, q = m.msg.pose.pose.position, m.msg.pose.pose.orientation
                    pipeline.add_odometry(stamp_to_ns(m.msg.header.stamp),
                                          ((p.x, p.y, p.z), (q.x, q.y, q.z, q.w)))
                else:
                    try:
                        img = image_from_msg(m.msg)
                    except ValueError as exc:
                        collector.errors.setdefault(f"image/{cam}", f"{m.topic}: {exc}")
                        continue
                    ready += pipeline.add_image(cam, img.stamp_ns, img.array, m.log_ns,
                                                encoding=img.encoding,
                                                frame_id=img.frame_id or None)
            collector.add(ready + pipeline.poll(now_ns), now_ns)

        try:
            for m in reader.messages(list(roles)):
                if group and m.log_ns != last_ns:
                    feed(group, last_ns)
                    group = []
                group.append(m)
                last_ns = m.log_ns
                bar.update(1)
            if group:
                feed(group, last_ns)
            collector.add(pipeline.flush(last_ns), None)
        finally:
            bar.close()
    sets = _subsample(collector.sets, adapt.max_sets)
    n_hold = int(math.floor(len(sets) * adapt.holdout_fraction))
    for s in sets[len(sets) - n_hold:] if n_hold else []:
        s.holdout = True
    if collector.partial:
        notes.append(f"{collector.partial} synchronized set(s) left out: a camera was missing "
                     f"({collector.errors.get('partial', '')})")
    notes += [why for key, why in collector.errors.items() if key != "partial"]
    odometry = (f"topic {topics.odom}" if plan.odometry
                else adapt.cameras_odometry if source != "none" else "none")
    T = sets[0].T_base_cam if sets else np.stack([rig[n].T_base_cam for n in names])
    out = BagSets(path=path, camera_names=names, sets=sets,
                  pairs=neighbour_pairs(T, adapt.neighbour_max_angle_deg),
                  rig_source=rig_source, odometry=odometry,
                  depth_gt_topics={n: topics.camera(n, topics.depth_gt)
                                   for n in plan.depth_gt_cameras},
                  partial_sets=collector.partial, notes=notes)
    check_usable(out, adapt)
    return out


def check_usable(bag: BagSets, adapt: AdaptConfig) -> None:
    """BagError (one line) when a bag cannot teach anything: too few sets, or neither
    overlapping cameras nor poses to compare a view with."""
    usable = bag.adapt_sets
    if len(usable) < adapt.min_sets:
        held = len(bag.holdout_sets)
        why = f"; {bag.notes[0]}" if bag.notes else ""
        raise BagError(f"bag {bag.path} gives {len(usable)} complete synchronized set(s) to "
                       f"adapt on ({held} more held out); adapt needs at least "
                       f"{adapt.min_sets} (adapt option 'min_sets'): record a longer bag with "
                       f"every camera of {bag.camera_names}{why}")
    posed = sum(s.T_odom_base is not None for s in usable)
    if not bag.pairs and not bag.odometry.startswith("topic"):
        raise BagError(f"bag {bag.path}: no two cameras of {bag.camera_names} overlap "
                       f"(optical axes within neighbour_max_angle_deg "
                       f"{adapt.neighbour_max_angle_deg}) and the bag has no odometry: nothing "
                       "fixes the metric scale; record the odometry topic (odom_topic) or "
                       "use overlapping cameras")
    if not bag.pairs and posed < 2:
        raise BagError(f"bag {bag.path}: no two cameras overlap and only {posed} set(s) have "
                       f"an odometry pose ({bag.odometry}); adapt needs overlapping cameras "
                       "or odometry along the bag")


__all__ = ["ADAPT_ROLES", "AdaptSet", "BagSets", "check_usable", "read_bag_sets"]
