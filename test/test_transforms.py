"""Tests of depth_any_view.geometry.transforms."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from depth_any_view.geometry.transforms import (
    invert_transform,
    is_rotation,
    make_transform,
    quat_to_rotmat,
    rotmat_to_quat,
    transform_points,
)

quats = st.lists(st.floats(-1, 1, allow_nan=False), min_size=4, max_size=4).filter(
    lambda q: np.linalg.norm(q) > 0.1)


@settings(max_examples=200, deadline=None)
@given(quats)
def test_quaternion_roundtrip(q):
    R = quat_to_rotmat(q)
    assert is_rotation(R)
    q2 = rotmat_to_quat(R)
    qn = np.asarray(q) / np.linalg.norm(q)
    assert min(np.abs(q2 - qn).max(), np.abs(q2 + qn).max()) < 1e-9


def test_known_rotation_and_inverse():
    R = quat_to_rotmat([0, 0, np.sin(np.pi / 4), np.cos(np.pi / 4)])  # +90 deg about z
    np.testing.assert_allclose(R @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    T = make_transform(R, [1.0, 2.0, 3.0])
    p = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    np.testing.assert_allclose(transform_points(T, p), [[1, 3, 3], [1, 2, 4]], atol=1e-12)
    np.testing.assert_allclose(transform_points(invert_transform(T), transform_points(T, p)), p,
                               atol=1e-12)
    np.testing.assert_allclose(invert_transform(T) @ T, np.eye(4), atol=1e-12)


def test_degenerate_quaternion_raises():
    with pytest.raises(ValueError, match="quaternion"):
        quat_to_rotmat([0, 0, 0, 0])
    with pytest.raises(ValueError, match="quaternion"):
        quat_to_rotmat([np.nan, 0, 0, 1])
