"""The node's output topics of a run over a bag, written as an MCAP rosbag2.

`OutputBagWriter` records, for every processed set, what the node publishes for it (depth
image and CameraInfo per camera, points, occupancy voxels, markers, grid, each under the
node's publish_* flag) plus /tf and /tf_static, so RViz or Foxglove can show a run over a
bag (`eval-bag` writes it as `outputs/` in its report directory).
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer

from depth_any_view.bag.map_layout import MARKER_ALPHA, cube_list, grid_layout
from depth_any_view.bag.messages import (
    CAMERA_INFO,
    IMAGE,
    POINT_CLOUD2,
    QOS_DEFAULT,
    QOS_TF,
    QOS_TF_STATIC,
    TF_MESSAGE,
    TOPIC_TF,
    TOPIC_TF_STATIC,
    camera_info_msg,
    default_typestore,
    header_msg,
    image_msg,
    point_cloud_msg,
    pose_msg,
    tf_message,
    transform_stamped_msg,
)
from depth_any_view.bag.node_parameters import NodeTopics
from depth_any_view.geometry.rig import Rig
from depth_any_view.mapping.points import XYZP_DTYPE, to_xyzrgb
from depth_any_view.pipeline import Pipeline, PipelineResult


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
        when there are none), coloured by height, as the node publishes it (map_layout.py)."""
        ts = self.ts
        T = ts.types
        centres, z_range = pipeline.marker_voxels(result, self.marker_max_voxels)
        cubes = cube_list(centres, self.voxel_size, z_range)
        marker_t = T["visualization_msgs/msg/Marker"]
        point_t, color_t = T["geometry_msgs/msg/Point"], T["std_msgs/msg/ColorRGBA"]
        r, g, b, a = cubes.color if not cubes.delete else (0.0, 0.0, 0.0, 0.0)
        marker = marker_t(
            header=header_msg(ts, result.stamp_ns, result.map_frame), ns=cubes.namespace,
            id=0, type=marker_t.CUBE_LIST,
            action=marker_t.DELETE if cubes.delete else marker_t.ADD,
            pose=pose_msg(ts, np.eye(4)),
            scale=T["geometry_msgs/msg/Vector3"](x=cubes.scale[0], y=cubes.scale[1],
                                                 z=cubes.scale[2]),
            color=color_t(r=r, g=g, b=b, a=a),
            lifetime=T["builtin_interfaces/msg/Duration"](sec=0, nanosec=0),
            frame_locked=False,
            points=[point_t(x=x, y=y, z=z) for x, y, z in cubes.points.tolist()],
            colors=[color_t(r=r, g=g, b=b, a=a) for r, g, b, a in cubes.colors.tolist()],
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
        ts, g = self.ts, grid_layout(result.grid2d)
        origin = np.eye(4)
        origin[:3, 3] = g.origin
        header = header_msg(ts, result.stamp_ns, result.map_frame)
        info = ts.types["nav_msgs/msg/MapMetaData"](
            map_load_time=header.stamp, resolution=g.resolution, width=g.width,
            height=g.height, origin=pose_msg(ts, origin))
        return ts.types["nav_msgs/msg/OccupancyGrid"](header=header, info=info,
                                                      data=g.data.reshape(-1))

    def close(self) -> None:
        """Finish the bag (safe to call twice)."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None


__all__ = ["MARKER_ALPHA", "OutputBagWriter"]
