"""Tests of depth_any_view.geometry.grid."""

import numpy as np
import pytest

from depth_any_view.config import ConfigError
from depth_any_view.geometry.grid import VoxelGrid


def test_centres_and_indexing_agree():
    grid = VoxelGrid((-1.0, -2.0, 0.0), (1.0, 2.0, 1.0), (4, 8, 2))
    np.testing.assert_allclose(grid.voxel_size, [0.5, 0.5, 0.5])
    c = grid.centers()
    assert c.shape == (4, 8, 2, 3)
    np.testing.assert_allclose(c[0, 0, 0], [-0.75, -1.75, 0.25])
    idx, inside = grid.points_to_index(c.reshape(-1, 3))
    assert inside.all()
    np.testing.assert_array_equal(idx.reshape(4, 8, 2, 3)[3, 5, 1], [3, 5, 1])
    _, inside = grid.points_to_index(np.array([[1.0, 0, 0.5], [np.nan, 0, 0], [0.99, 1.99, 0.99]]))
    assert inside.tolist() == [False, False, True]


def test_dict_roundtrip_and_validation():
    grid = VoxelGrid.cube(16)
    assert VoxelGrid.from_dict(grid.to_dict()) == grid
    with pytest.raises(ConfigError, match="upper > lower"):
        VoxelGrid((0, 0, 0), (1, -1, 1), (2, 2, 2))
    with pytest.raises(ConfigError, match="dims"):
        VoxelGrid.from_dict({"lower": [0, 0, 0], "upper": [1, 1, 1]})
