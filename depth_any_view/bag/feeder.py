"""The one bag -> Pipeline loop: a bag's messages into the node's pipeline, in record order.

`BagFeeder` reads a bag (bag/reader.py) and feeds its messages, in record order, into
`depth_any_view.pipeline.Pipeline`: the synchronizer, inference engine, point cloud and
occupancy fusion the node runs, called directly, with the bag's record time as the clock.
Nothing waits on a wall clock, so a run is as fast as the machine allows and two runs on
the same bag give the same results. Messages that share one record time are fed in a fixed
order (CameraInfo, odometry, images in camera order, then ground truth) whatever the
storage returns, and the sets they complete are processed after the whole group, so MCAP
and sqlite3 copies of a bag are fed identically.

It yields every processed `PipelineResult` with the ground truth of its stamp (`FedSet`),
matched by header stamp: `<prefix>/<name>/depth_gt` per camera and `/ground_truth/
occupancy` (bag/messages.py layout). A processed set waits up to GT_WAIT_NS of record time
for its ground truth. `eval-bag` (bag/evaluate.py) and `depth-any-view slam`
(slam/slam_command.py) both feed bags through it, so both run what the node runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from depth_any_view.bag.messages import (
    cloud_from_msg,
    image_from_msg,
    occupancy_from_points,
    stamp_to_ns,
)
from depth_any_view.bag.node_parameters import NodeTopics
from depth_any_view.bag.reader import BagReader
from depth_any_view.bag.topic_plan import TopicPlan
from depth_any_view.geometry.camera import PinholeCamera
from depth_any_view.geometry.grid import VoxelGrid
from depth_any_view.pipeline import Pipeline, PipelineResult
from depth_any_view.sync.approximate_time import SyncedSet

GT_WAIT_NS = 1_000_000_000  # record time a processed set waits for its ground truth
GT_KEEP_NS = 3_000_000_000  # unclaimed ground truth recorded this long ago is dropped
# Messages with one record time are fed in this order of roles (then camera order).
ROLE_ORDER = ("camera_info", "odom", "image", "depth_gt", "occupancy_gt")


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


def image_camera(result: PipelineResult, synced: Any, name: str) -> PinholeCamera:
    """The calibration of a camera's input image in a processed set (its CameraInfo)."""
    pred = result.prediction
    if pred is not None and pred.cameras_input is not None and name in pred.camera_names:
        return pred.cameras_input[pred.index(name)]
    view = synced.views.get(name)
    camera = getattr(getattr(view, "info", None), "camera", None)
    return camera if isinstance(camera, PinholeCamera) else result.cameras[name].camera


__all__ = ["GT_KEEP_NS", "GT_WAIT_NS", "ROLE_ORDER", "BagFeeder", "FedSet",
           "ProcessedCallback", "image_camera"]
