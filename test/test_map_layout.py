"""The map's MarkerArray and OccupancyGrid content, shared by the node and the output bag
(bag/map_layout.py): one CUBE_LIST coloured by height, a DELETE when empty, and the grid's
info and cells."""

from __future__ import annotations

import numpy as np
import pytest

from depth_any_view.bag.map_layout import MARKER_ALPHA, cube_list, grid_layout
from depth_any_view.mapping.fusion import OccupancyGrid2D
from depth_any_view.pipeline import height_colors


def test_cube_list_colours_by_height_and_deletes_when_empty() -> None:
    centres = np.array([[0.0, 1.0, -1.0], [2.0, 3.0, 0.5], [4.0, 5.0, 2.0]])
    cubes = cube_list(centres, np.array([0.2, 0.2, 0.1]), (-1.0, 2.0))
    assert not cubes.delete and cubes.namespace == "occupancy"
    assert cubes.scale == (0.2, 0.2, 0.1) and cubes.color == (1.0, 1.0, 1.0, MARKER_ALPHA)
    np.testing.assert_array_equal(cubes.points, centres)
    assert cubes.colors.dtype == np.float32 and cubes.colors.shape == (3, 4)
    np.testing.assert_array_equal(cubes.colors[:, :3],
                                  height_colors(centres[:, 2], -1.0, 2.0).astype(np.float32))
    assert np.all(cubes.colors[:, 3] == np.float32(MARKER_ALPHA))
    empty = cube_list(np.zeros((0, 3)), 0.1, (0.0, 1.0))
    assert empty.delete and empty.points.shape == (0, 3) and empty.scale == (0.1, 0.1, 0.1)


def test_grid_layout_keeps_cells_and_origin() -> None:
    data = np.full((3, 4), -1, dtype=np.int8)  # (ny, nx)
    data[0, 1], data[2, 3] = 100, 0
    g = grid_layout(OccupancyGrid2D(data, 0.2, np.array([-1.0, -2.0, 0.1]), "odom", 55))
    assert (g.width, g.height, g.resolution) == (4, 3, 0.2)
    np.testing.assert_array_equal(g.origin, [-1.0, -2.0, 0.1])
    np.testing.assert_array_equal(g.data, data)
    with pytest.raises(ValueError, match=r"\(height, width\)"):
        grid_layout(OccupancyGrid2D(np.zeros(4, np.int8), 0.2, np.zeros(3), "odom", 0))
