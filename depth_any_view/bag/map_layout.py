"""What the map's MarkerArray and OccupancyGrid say, without a message type.

The node (rclpy messages, `ros/conversions.py`) and the output bag of `eval-bag` (rosbags
messages, `bag/output_bag.py`) build both messages from these, so the two carry the same:

    cubes = cube_list(centres, voxel_size, z_range)   # one CUBE_LIST marker
    grid = grid_layout(result.grid2d)                # OccupancyGrid info and cells

The marker list is one CUBE_LIST (namespace `occupancy`, id 0) of voxel centres (metres,
the map frame) coloured by height with MARKER_ALPHA; with no voxels it is a DELETE of the
list, so RViz clears the previous ones. The grid's origin is the corner of cell (0, 0),
axis-aligned, cells 100 occupied, 0 free, -1 unknown, row-major from the origin's y.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from depth_any_view.mapping.fusion import OccupancyGrid2D
from depth_any_view.pipeline import height_colors

MARKER_NAMESPACE = "occupancy"
MARKER_ALPHA = 0.85  # voxel marker opacity


@dataclass(frozen=True)
class CubeList:
    """The one CUBE_LIST marker of the map's MarkerArray."""

    namespace: str
    delete: bool  # no voxels: DELETE the list (its colour then stays unset)
    scale: tuple[float, float, float]  # metres, the voxel edges
    color: tuple[float, float, float, float]  # RGBA of the marker (white, alpha)
    points: np.ndarray  # (N, 3) float64 voxel centres, metres
    colors: np.ndarray  # (N, 4) float32 RGBA per cube, coloured by height


def cube_list(centres: np.ndarray, voxel_size: np.ndarray, z_range: tuple[float, float], *,
              namespace: str = MARKER_NAMESPACE, alpha: float = MARKER_ALPHA) -> CubeList:
    """The CUBE_LIST of voxel centres (N, 3) metres, coloured by height over `z_range`."""
    centres = np.asarray(centres, dtype=np.float64).reshape(-1, 3)  # (N, 3)
    size = np.broadcast_to(np.asarray(voxel_size, dtype=np.float64), (3,))
    rgba = np.empty((centres.shape[0], 4), dtype=np.float32)  # (N, 4)
    rgba[:, :3] = height_colors(centres[:, 2], *z_range)
    rgba[:, 3] = np.float32(alpha)
    return CubeList(namespace=namespace, delete=centres.shape[0] == 0,
                    scale=(float(size[0]), float(size[1]), float(size[2])),
                    color=(1.0, 1.0, 1.0, float(alpha)), points=centres, colors=rgba)


@dataclass(frozen=True)
class GridLayout:
    """A nav_msgs/OccupancyGrid's info and cells."""

    resolution: float  # metres per cell
    width: int  # cells along x
    height: int  # cells along y
    origin: np.ndarray  # (3,) float64 metres, the corner of cell (0, 0) in the map frame
    data: np.ndarray  # (height, width) int8: 100 occupied, 0 free, -1 unknown


def grid_layout(grid: OccupancyGrid2D) -> GridLayout:
    """The OccupancyGrid of a 2D projection; ValueError when its cells are not 2D."""
    data = np.ascontiguousarray(grid.data, dtype=np.int8)  # (ny, nx)
    if data.ndim != 2:
        raise ValueError(f"grid data must be (height, width) int8, got shape {data.shape}")
    return GridLayout(resolution=float(grid.resolution), width=int(data.shape[1]),
                      height=int(data.shape[0]),
                      origin=np.asarray(grid.origin, dtype=np.float64).reshape(3), data=data)
