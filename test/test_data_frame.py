"""Tests of depth_any_view.data.frame."""

import numpy as np
import pytest

from depth_any_view.data.frame import Frame
from depth_any_view.geometry.camera import PinholeCamera
from depth_any_view.geometry.grid import UNKNOWN, VoxelGrid
from depth_any_view.geometry.rig import load_rig


def _frame(V=2, H=4, W=5, **override):
    rig = load_rig("surround6")
    cam = PinholeCamera.from_fov(W, H, np.deg2rad(90))
    grid = VoxelGrid.cube(4)
    kwargs = dict(stamp_ns=np.int64(10), index=3, camera_names=rig.names[:V],
                  images=np.zeros((V, H, W, 3), np.uint8),
                  depth=np.full((V, H, W), 2.0, np.float64), K=np.stack([cam.K] * V),
                  T_base_cam=rig.T_base_cams()[:V], frame_ids=["a", "b"][:V],
                  T_odom_base=np.eye(4), occupancy=np.full(grid.dims, UNKNOWN, np.uint8),
                  grid=grid)
    kwargs.update(override)
    return Frame(**kwargs)


def test_frame_normalises_dtypes():
    f = _frame()
    assert f.depth.dtype == np.float32 and f.K.dtype == np.float64
    assert isinstance(f.stamp_ns, int) and f.num_views == 2 and (f.height, f.width) == (4, 5)


@pytest.mark.parametrize("field,value", [
    ("images", np.zeros((2, 4, 5, 3), np.float32)),
    ("depth", np.zeros((2, 5, 4), np.float32)),
    ("K", np.zeros((2, 4, 4))),
    ("T_base_cam", np.zeros((1, 4, 4))),
    ("frame_ids", ["only_one"]),
    ("T_odom_base", np.eye(3)),
    ("occupancy", np.zeros((4, 4, 4), np.int32)),
])
def test_frame_rejects_bad_fields_by_name(field, value):
    with pytest.raises(ValueError, match=field):
        _frame(**{field: value})


def test_points_base_is_depth_along_the_optical_axis():
    f = _frame()
    pts = f.points_base(0)  # (H, W, 3)
    cam_pts = (pts - f.T_base_cam[0][:3, 3]) @ f.T_base_cam[0][:3, :3]  # back to camera
    np.testing.assert_allclose(cam_pts[..., 2], 2.0, atol=1e-9)
    # The optical axis of `front` is base_link +x: the centre pixel lies 2 m ahead.
    centre = f.camera(0).backproject(np.array([[f.camera(0).cx, f.camera(0).cy]]), [2.0])
    np.testing.assert_allclose(centre, [[0.0, 0.0, 2.0]])
