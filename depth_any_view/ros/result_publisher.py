"""A processed set's outputs as messages on the node's publishers.

    outputs = ResultPublisher(node, settings, pipeline)   # creates every output publisher
    outputs.publish(result, settings)                     # depth, confidence, odometry,
                                                          # points, voxels, markers, grid

Every message carries the set's stamp: a depth image and its CameraInfo the input image's
header, the cloud the set's base frame, the map outputs the map frame.

Pacing: large messages (depth images, clouds, markers: over `LARGE_MESSAGE_BYTES`) go out
at least `publish_spacing` seconds apart. Published back to back, a set's 2.5-4 MB of them
can overflow the receive buffers of Fast DDS's default transports on a busy host; a
reliable reader then gets the lost samples only when the writer repairs them, up to
seconds later (BENCHMARKS.md has the measurement). The MarkerArray (RViz only) is rebuilt
and published at most every `markers_period` seconds of set stamps, serialized with numpy
(`marker_array_bytes`).
"""

from __future__ import annotations

import time
from typing import Any

from nav_msgs.msg import OccupancyGrid, Odometry
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from visualization_msgs.msg import MarkerArray

from depth_any_view.pipeline import Pipeline, PipelineResult
from depth_any_view.ros.conversions import (
    array_to_image_msg,
    camera_to_camera_info,
    depth_to_image_msg,
    make_header,
    marker_array_bytes,
    occupancy_grid_msg,
    odometry_msg,
    voxel_cloud,
    xyzrgb_cloud,
)
from depth_any_view.ros.params import LARGE_MESSAGE_BYTES, Settings
from depth_any_view.ros.qos import qos_profile


def payload_bytes(msg: Any) -> int:
    """Bytes of a message's bulk data: serialized bytes, or an Image's / PointCloud2's
    `data` (0 for other messages)."""
    if isinstance(msg, (bytes, bytearray)):
        return len(msg)
    return len(getattr(msg, "data", b""))


class ResultPublisher:
    """The node's output publishers and the messages of each PipelineResult on them."""

    def __init__(self, node: Any, s: Settings, pipeline: Pipeline) -> None:
        """Create every output publisher of `s` on `node`; `pipeline` gives the frames and
        the map's marker voxels."""
        self._pipeline = pipeline
        out_qos = qos_profile(s.output_qos, s.qos_depth)
        self.depth: dict[str, Any] = {}
        self.depth_info: dict[str, Any] = {}
        self.confidence: dict[str, Any] = {}
        for name in s.camera_names:
            self.depth[name] = node.create_publisher(
                Image, s.camera_topic(name, s.depth_image_topic), out_qos)
            self.confidence[name] = node.create_publisher(
                Image, s.camera_topic(name, s.depth_confidence_topic), out_qos)
            self.depth_info[name] = node.create_publisher(
                CameraInfo, s.camera_topic(name, s.depth_camera_info_topic), out_qos)
        self.points = node.create_publisher(PointCloud2, s.points_topic, out_qos)
        self.voxels = node.create_publisher(PointCloud2, s.voxels_topic, out_qos)
        self.markers = node.create_publisher(MarkerArray, s.markers_topic, out_qos)
        self.grid = node.create_publisher(OccupancyGrid, s.grid_topic, qos_profile(s.grid_qos, 1))
        self.odometry = None  # the cameras-only odometry's poses (/odom is not read then)
        if s.odometry_source != "topic":
            self.odometry = node.create_publisher(Odometry, s.odometry_output_topic, out_qos)
        self._markers_stamp_ns: int | None = None  # set stamp of the last MarkerArray
        self._last_large = 0.0  # time.monotonic() of the last large message published

    def publish(self, result: PipelineResult, s: Settings) -> None:
        """Publish the outputs of a processed set (`result.ok`) that `s` switches on."""
        if s.publish_depth:
            for name, out in result.cameras.items():  # the input image's header
                header = make_header(out.stamp_ns, out.frame_id)
                self._send(self.depth[name], depth_to_image_msg(out.depth, header,
                                                                s.depth_encoding), s)
                self.depth_info[name].publish(camera_to_camera_info(out.camera, header))
        if s.publish_confidence:
            for name, out in result.cameras.items():  # same header as the depth image
                if out.confidence is not None:
                    header = make_header(out.stamp_ns, out.frame_id)
                    self._send(self.confidence[name], array_to_image_msg(
                        out.confidence, "32FC1", header), s)
        if self.odometry is not None and result.odometry is not None:
            self.odometry.publish(odometry_msg(  # whether or not it fuses occupancy
                result.odometry, make_header(result.stamp_ns, self._pipeline.cfg.odom_frame),
                self._pipeline.rig.base_frame))
        if s.publish_points:
            self._send(self.points, xyzrgb_cloud(
                result.points, result.colors, make_header(result.stamp_ns, result.points_frame)),
                s)
        if result.voxels is not None:  # else the fusion refused the update (a jump, ...)
            self._publish_occupancy(result, s)

    def _publish_occupancy(self, result: PipelineResult, s: Settings) -> None:
        """Voxels, markers and the 2D grid of the fused map, in the result's map frame."""
        header = make_header(result.stamp_ns, result.map_frame)
        if s.publish_voxels:
            self._send(self.voxels, voxel_cloud(result.voxels, result.voxel_probability,
                                                header), s)
        if s.publish_markers and self.markers_due(result, s.markers_period):
            centres, z_range = self._pipeline.marker_voxels(result, s.marker_max_voxels)
            self._send(self.markers, marker_array_bytes(
                centres, self._pipeline.fusion.voxel_size, header, z_range=z_range), s)
            self._markers_stamp_ns = result.stamp_ns
        if s.publish_grid and result.grid2d is not None:
            self.grid.publish(occupancy_grid_msg(result.grid2d, header))

    def markers_due(self, result: PipelineResult, period: float) -> bool:
        """Whether this set's MarkerArray is due: `period` seconds of stamps after the last
        one (0 = every set), at once after a map reset or a stamp going backwards."""
        last = self._markers_stamp_ns
        fusion = result.fusion
        if last is None or period <= 0 or result.stamp_ns < last or (
                fusion is not None and fusion.reset_reason is not None):
            return True
        return result.stamp_ns - last >= round(period * 1e9)

    def _send(self, publisher: Any, msg: Any, s: Settings) -> None:
        """Publish `msg` (a message or serialized bytes); a large one at least
        `publish_spacing` seconds after the previous large one (see the module docstring).
        """
        if payload_bytes(msg) > LARGE_MESSAGE_BYTES and s.publish_spacing > 0:
            wait = self._last_large + s.publish_spacing - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            publisher.publish(msg)
            self._last_large = time.monotonic()
            return
        publisher.publish(msg)
