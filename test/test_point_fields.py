"""One PointCloud2 packing for the node and the bags (data/point_fields.py): the rclpy
message of ros/conversions.py and the rosbags message of bag/messages.py carry the same
fields, bytes and `is_dense` for the same array, and read back to it."""

from __future__ import annotations

import numpy as np
import pytest

from depth_any_view.bag.messages import cloud_from_msg, default_typestore, point_cloud_msg
from depth_any_view.data.point_fields import FLOAT32, UINT8, field_specs, is_dense

PADDED = np.dtype({"names": ["x", "y", "z", "label"], "formats": ["<f4", "<f4", "<f4", "u1"],
                   "offsets": [0, 4, 8, 12], "itemsize": 16})
NORMALS = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("n", "<f4", (3,))])
BIG = np.dtype([("x", ">f4"), ("i", ">u2"), ("c", "u1")])


@pytest.mark.parametrize("dtype", [PADDED, NORMALS, BIG], ids=["padded", "subarray", "big"])
@pytest.mark.parametrize("bad", [None, np.nan, np.inf])
def test_node_and_bag_pack_a_cloud_alike(dtype: np.dtype, bad: float | None) -> None:
    pytest.importorskip("rclpy")
    from depth_any_view.ros import conversions as C

    points = np.zeros(5, dtype)
    points["x"] = np.arange(5)
    if bad is not None:
        points["x"][2] = bad
    ros = C.structured_to_cloud(points, C.make_header(7, "base_link"))
    bag = point_cloud_msg(default_typestore(), 7, "base_link", points)
    assert ros.is_dense == bag.is_dense == (bad is None) == is_dense(points)
    assert ros.is_bigendian == bag.is_bigendian == (dtype is BIG)
    assert bytes(ros.data) == bag.data.tobytes()
    assert [(f.name, f.offset, f.datatype, f.count) for f in ros.fields] == [
        (f.name, f.offset, f.datatype, f.count) for f in bag.fields]
    for msg in (ros, bag):
        for read in (C.cloud_to_structured(msg), cloud_from_msg(msg).points):
            np.testing.assert_array_equal(read["x"], points["x"])


def test_field_specs_and_refusals() -> None:
    specs, big = field_specs(PADDED)
    assert [(s.name, s.offset, s.datatype, s.count) for s in specs] == [
        ("x", 0, FLOAT32, 1), ("y", 4, FLOAT32, 1), ("z", 8, FLOAT32, 1),
        ("label", 12, UINT8, 1)] and not big
    assert field_specs(NORMALS)[0][-1].count == 3
    with pytest.raises(ValueError, match="'c'.*PointField cannot describe"):
        field_specs(np.dtype([("x", "<f4"), ("c", "<c8")]))
    with pytest.raises(ValueError, match="mix byte orders"):
        field_specs(np.dtype([("x", "<f4"), ("y", ">f4")]))
    with pytest.raises(ValueError, match="structured array"):
        field_specs(np.dtype(np.float32))
