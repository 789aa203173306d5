"""What happens to inputs and sets, as /diagnostics counts and throttled log lines.

    outcomes = Outcomes(diag, log, pipeline)
    outcomes.bad_input("front", "image", "camera 'front' image: ...")  # counted, warned
    if outcomes.set_result(result):               # views left out, a dropped set: reported
        ...publish...
        outcomes.set_published(result, settings, latency_s)   # map events, timings

The pipeline names a view it left out (`PipelineResult.skipped`) and a set it dropped
(`PipelineResult.dropped`, "<reason>: <detail>") in words; the kind of each is read back
here, in this one place: a skipped view's kind is the `last_errors` key
("<camera>/<kind>") that `Pipeline.process` filed the same message under.
"""

from __future__ import annotations

import time
from typing import Any

from depth_any_view.pipeline import DROP_INFERENCE, Pipeline, PipelineResult, one_line
from depth_any_view.ros.diagnostics import NodeDiagnostics
from depth_any_view.ros.lost_images import LostImages
from depth_any_view.ros.params import Settings
from depth_any_view.ros.throttled_log import ThrottledLog

INFERENCE_STAGES = ("preprocess", "forward", "postprocess")  # PipelineResult.timings keys


def skip_kinds(result: PipelineResult, last_errors: dict[str, str]) -> dict[str, str]:
    """Camera -> kind of each view `result` left out (camera_info, size, encoding; 'view'
    when no `last_errors` entry holds its message)."""
    errors = list(last_errors.items())
    return {name: next((k.split("/", 1)[1] for k, v in errors
                        if v == message and k.startswith(f"{name}/")), "view")
            for name, message in result.skipped.items()}


def drop_reason(result: PipelineResult) -> tuple[str, str]:
    """(reason, detail) of a dropped set: `DROP_BAD_INPUT` or `DROP_INFERENCE`, and the
    rest of `result.dropped`."""
    reason, _, detail = (result.dropped or "").partition(": ")
    return reason, detail


class Outcomes:
    """Counts bad inputs and set outcomes in `diag` and logs them through `log`."""

    def __init__(self, diag: NodeDiagnostics, log: ThrottledLog, pipeline: Pipeline) -> None:
        self.diag = diag
        self._log = log
        self._pipeline = pipeline
        self._fusion_stats_at = -float("inf")  # monotonic time the map statistics were read
        self._lost = LostImages()  # images DDS lost before the callbacks, per camera

    def bad_input(self, source: str, field_name: str, message: str) -> None:
        """Count and (throttled) report a rejected input of `source` (camera or odometry)."""
        message = one_line(message)
        self.diag.bad_input(source, field_name, message)
        self._log.warn((source, field_name), f"{message} (dropped)")

    def images_lost(self, camera: str, info: Any) -> None:
        """DDS lost images of `camera` before its callback (rclpy's QoSMessageLostInfo), e.g.
        one too large to deliver (ros/lost_images.py)."""
        self.bad_input(camera, "image_lost", self._lost.lost(camera, info.total_count_change))

    def set_result(self, result: PipelineResult) -> bool:
        """Report the set's views left out and, when it gave no outputs, why; True when
        it has outputs to publish."""
        for name, kind in skip_kinds(result, self._pipeline.last_errors).items():
            self.bad_input(name, kind, result.skipped[name])
        if result.ok:
            return True
        reason, detail = drop_reason(result)
        if reason == DROP_INFERENCE:
            self.diag.set_dropped(reason, detail)
            self._log.warn("inference", f"inference failed, set dropped: {detail}", error=True)
        else:
            self.diag.set_dropped(reason)
        return False

    def set_published(self, result: PipelineResult, s: Settings, latency_s: float) -> None:
        """Record a published set: map events, the odometry note, cameras missing from it,
        its inference time and `latency_s` (set stamp to now)."""
        if result.voxels is None:  # the fusion refused the update (a jump, a stale stamp)
            self._log.warn("occupancy", result.fusion_message)
        fusion = result.fusion
        if fusion is not None and fusion.reset_reason is not None:
            self.diag.event("occupancy", f"map reset: {fusion.reset_reason}")
        elif fusion is not None and not fusion.accepted:
            self.diag.event("occupancy", fusion.message)
        note = result.odometry_note
        self.diag.odometry_note(None if note is None else f"{note} (odometry topic "
                                                          f"{s.odom_topic})")
        inference_s = sum(result.timings.get(k, 0.0) for k in INFERENCE_STAGES)
        # The map's statistics count its known voxels (a GPU sync): once per diagnostics
        # period is what the diagnostics show, not every set.
        now = time.monotonic()
        stats = None
        if now - self._fusion_stats_at >= s.diagnostics_period:
            stats, self._fusion_stats_at = self._pipeline.fusion.stats(), now
        self.diag.set_processed([c for c in s.camera_names if c not in result.cameras],
                                inference_s, latency_s, stats)
