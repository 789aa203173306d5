"""The node's parameter table against config/depth_any_view.yaml, validation, descriptors,
the core configs they give; and the files around the node: RViz config and the Nav2 /
RTAB-Map examples (the launch files: test_launch.py)."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
import yaml

from depth_any_view.ros import params as P

ROOT = Path(__file__).resolve().parent.parent
CONTRACT_TOPICS = {
    "camera_topic_prefix": "/cameras", "image_topic": "image_raw",
    "camera_info_topic": "camera_info", "depth_image_topic": "depth/image",
    "depth_camera_info_topic": "depth/camera_info", "odom_topic": "/odom",
    "points_topic": "/depth_any_view/points",
    "voxels_topic": "/depth_any_view/occupancy/voxels",
    "markers_topic": "/depth_any_view/occupancy/markers",
    "grid_topic": "/depth_any_view/occupancy/grid", "diagnostics_topic": "/diagnostics",
}
CAMERAS = ["front", "front_left", "front_right", "back", "back_left", "back_right"]


# ---------------------------------------------------------------------------- the table
def test_yaml_matches_table_exactly() -> None:
    data = yaml.safe_load((ROOT / "config" / "depth_any_view.yaml").read_text())
    assert list(data) == ["/**/depth_any_view"]  # any namespace (issue 23)
    params = data["/**/depth_any_view"]["ros__parameters"]
    assert list(params) == list(P.PARAMETER_NAMES)  # same names, same order
    for spec in P.PARAMETERS:
        value = params[spec.name]
        assert value == spec.default, spec.name
        assert type(value) is type(spec.default), f"{spec.name}: {value!r} vs {spec.default!r}"


def test_contract_defaults() -> None:
    d = P.defaults()
    assert d["camera_names"] == CAMERAS
    assert d["rig_file"] == "config/rig_surround6.yaml"
    for name, value in CONTRACT_TOPICS.items():
        assert d[name] == value, name
    assert d["camera_qos"] == "sensor_data"
    s = P.Settings(d)
    assert s.camera_topic("front", s.image_topic) == "/cameras/front/image_raw"
    assert s.camera_topic("back", s.depth_camera_info_topic) == "/cameras/back/depth/camera_info"


def test_every_spec_is_described_and_its_default_allowed() -> None:
    for spec in P.PARAMETERS:
        assert len(spec.description) > 10, spec.name
        assert P.check_value(spec.name, P.defaults()[spec.name]) is None, spec.name
        if spec.kind in ("integer", "double"):
            assert spec.minimum is not None and spec.maximum is not None, spec.name
            assert spec.minimum <= spec.default <= spec.maximum, spec.name
    assert P.check_all(P.defaults()) == []


# ---------------------------------------------------------------------------- validation
@pytest.mark.parametrize("name, value, expected", [
    ("sync_slop", 5.0, "parameter 'sync_slop' is 5.0; allowed range [0.0, 1.0] seconds"),
    ("qos_depth", 0, "parameter 'qos_depth' is 0; allowed range [1, 1000]"),
    ("precision", "fp8", "parameter 'precision' is 'fp8'; allowed values: fp32, fp16, bf16"),
    ("occupied_threshold", 0.3, "allowed range [0.5, 0.999]"),
    ("sync_slop", float("nan"), "parameter 'sync_slop' is nan"),
    ("sync_slop", 1, "must be a floating-point number, got int 1 (write 1.0, not 1)"),
    ("publish_points", "yes", "parameter 'publish_points' must be true or false"),
    ("camera_names", [], "'camera_names' is empty"),
    ("camera_names", ["front", "front"], "duplicate"),
    ("camera_names", ["front", "9x"], "invalid name"),
    ("device", "gpu", "allowed values: auto, cpu, cuda, cuda:N"),
    ("odom_topic", " ", "'odom_topic' is empty"),
    ("no_such", 1, "unknown parameter 'no_such'"),
])
def test_check_value_names_parameter_and_range(name: str, value: object, expected: str) -> None:
    err = P.check_value(name, value)
    assert err is not None and expected in err
    assert "\n" not in err


def test_check_value_accepts_good_values() -> None:
    for name, value in (("device", "cuda:1"), ("device", "cpu"), ("sync_slop", 0.0),
                        ("min_cameras", 6), ("camera_names", ["a", "b_2"])):
        assert P.check_value(name, value) is None


@pytest.mark.parametrize("changes, expected", [
    ({"min_cameras": 7}, "parameter 'min_cameras' is 7; allowed range [1, 6]"),
    ({"camera_names": ["front"], "min_cameras": 2}, "allowed range [1, 1]"),
    ({"grid_z_min": 2.0}, "'grid_z_min' (2.0) must be <= grid_z_max"),
    ({"depth_min": 5.0, "depth_max": 2.0}, "'depth_min' (5.0) must be < depth_max"),
    ({"random_init": True, "weights": "w.safetensors"}, "exclude each other"),
])
def test_cross_checks(changes: dict, expected: str) -> None:
    with pytest.raises(P.ParameterError, match=None) as info:
        P.Settings({**P.defaults(), **changes})
    assert expected in str(info.value)


def test_settings_are_immutable_and_updated_validates() -> None:
    s = P.Settings(P.defaults())
    with pytest.raises(AttributeError):
        s.sync_slop = 0.5  # type: ignore[misc]
    with pytest.raises(AttributeError, match="no parameter 'nope'"):
        _ = s.nope
    t = s.updated({"points_stride": 4})
    assert t.points_stride == 4 and s.points_stride == 2
    with pytest.raises(P.ParameterError, match="points_stride"):
        s.updated({"points_stride": 0})
    with pytest.raises(P.ParameterError, match="missing parameter"):
        P.Settings({"sync_slop": 0.02})


# ---------------------------------------------------------------------------- core configs
def test_core_configs_follow_settings() -> None:
    """Settings reach the core through PipelineConfig.from_parameters, the one translation
    the node and the bag evaluation share."""
    from dataclasses import replace

    from depth_any_view.geometry.grid import VoxelGrid
    from depth_any_view.mapping.fusion import FusionConfig
    from depth_any_view.pipeline import PipelineConfig

    s = P.Settings({**P.defaults(), "sync_slop": 0.03, "sync_timeout": 0.2, "min_cameras": 4,
                    "max_staleness": 2.0, "depth_min": 0.5, "depth_max": 30.0,
                    "decay_occupied": 0.5, "occupied_threshold": 0.7})
    cfg = PipelineConfig.from_parameters(s)
    sc = cfg.sync
    assert sc.cameras == tuple(CAMERAS)
    assert (sc.slop_ns, sc.timeout_ns, sc.min_cameras) == (30_000_000, 200_000_000, 4)
    assert sc.max_staleness_ns == 2_000_000_000
    ec = cfg.engine
    ec.validate()
    assert ec.depth_range == (0.5, 30.0) and ec.weights is None and ec.warmup_views == 6
    grid = VoxelGrid((-12.8, -12.8, -0.8), (12.8, 12.8, 3.2), (64, 64, 32))
    fc = FusionConfig.matching(grid, **cfg.fusion)
    assert fc.voxel_size == pytest.approx((0.4, 0.4, 0.125))
    assert fc.decay_occupied_per_s == 0.5 and fc.occupied_threshold == 0.7
    # The table's defaults are the pipeline's own: nothing drifts between the two.
    default = PipelineConfig.from_parameters(P.Settings(P.defaults()))
    bare = PipelineConfig.from_parameters({})
    assert default.sync.max_staleness_ns is None and default.engine.depth_range is None
    assert replace(default, fusion={}) == bare
    assert FusionConfig.matching(grid, **default.fusion) == FusionConfig.matching(grid)


# ---------------------------------------------------------------------------- ROS side
def test_descriptors_carry_description_range_and_read_only() -> None:
    from rcl_interfaces.msg import ParameterType

    d = P.to_descriptor(P.SPECS["sync_slop"])
    assert d.type == ParameterType.PARAMETER_DOUBLE and d.read_only
    assert d.description == P.SPECS["sync_slop"].description
    r = d.floating_point_range[0]
    assert (r.from_value, r.to_value) == (0.0, 1.0)
    d = P.to_descriptor(P.SPECS["points_stride"])
    assert not d.read_only and d.type == ParameterType.PARAMETER_INTEGER
    assert (d.integer_range[0].from_value, d.integer_range[0].to_value) == (1, 64)
    d = P.to_descriptor(P.SPECS["precision"])
    assert "fp32, fp16, bf16" in d.additional_constraints
    assert P.to_descriptor(P.SPECS["camera_names"]).type == \
        ParameterType.PARAMETER_STRING_ARRAY


@pytest.fixture(scope="module")
def ros_context():
    """An rclpy context on a private, localhost-only domain."""
    import rclpy

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
        ctx = rclpy.Context()
        rclpy.init(context=ctx, domain_id=random.SystemRandom().randint(1, 100))
        yield ctx
        rclpy.try_shutdown(context=ctx)


def _declare(ctx, overrides: dict) -> P.Settings:
    from rclpy.node import Node
    from rclpy.parameter import Parameter

    from depth_any_view.ros.startup import declare_parameters

    node = Node("depth_any_view", context=ctx,
                parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])
    try:
        return declare_parameters(node)
    finally:
        node.destroy_node()


@pytest.mark.ros
def test_declare_parameters_on_a_real_node(ros_context) -> None:
    from depth_any_view.ros.startup import StartupError

    s = _declare(ros_context, {"sync_slop": 0.05, "camera_names": ["front", "back"],
                               "min_cameras": 2})
    assert s.sync_slop == 0.05 and s.camera_names == ["front", "back"]
    cases = [({"sync_slop": 5.0}, "parameter 'sync_slop' is 5.0; allowed range [0.0, 1.0]"),
             ({"sync_slop": 1}, "(write 1.0, not 1)"),
             ({"precision": "fp8"}, "allowed values: fp32, fp16, bf16"),
             ({"min_cameras": 9}, "parameter 'min_cameras' is 9; allowed range [1, 6]"),
             ({"qos_depth": 0}, "parameter 'qos_depth' is 0; allowed range [1, 1000]")]
    for overrides, expected in cases:
        with pytest.raises(StartupError) as info:
            _declare(ros_context, overrides)
        assert expected in str(info.value), (overrides, str(info.value))


# ---------------------------------------------------------------------------- rviz, examples
def test_rviz_config_shows_contract_topics() -> None:
    cfg = yaml.safe_load((ROOT / "rviz" / "depth_any_view.rviz").read_text())
    vm = cfg["Visualization Manager"]
    assert vm["Global Options"]["Fixed Frame"] == "odom"
    topics = {d["Topic"]["Value"]: d["Class"] for d in vm["Displays"] if "Topic" in d}
    for cam in CAMERAS:
        assert topics[f"/cameras/{cam}/image_raw"] == "rviz_default_plugins/Image"
        assert topics[f"/cameras/{cam}/depth/image"] == "rviz_default_plugins/Image"
    assert topics["/depth_any_view/points"] == "rviz_default_plugins/PointCloud2"
    assert topics["/depth_any_view/occupancy/markers"] == "rviz_default_plugins/MarkerArray"
    assert topics["/depth_any_view/occupancy/grid"] == "rviz_default_plugins/Map"


def test_nav2_example_takes_points_and_grid() -> None:
    cfg = yaml.safe_load((ROOT / "config" / "examples" / "nav2_costmap_example.yaml").read_text())
    p = cfg["local_costmap"]["local_costmap"]["ros__parameters"]
    vl = p["voxel_layer"]
    src = vl[vl["observation_sources"]]
    assert src["topic"] == "/depth_any_view/points" and src["data_type"] == "PointCloud2"
    assert src["marking"] and src["clearing"]
    assert p["depth_any_view_grid"]["map_topic"] == "/depth_any_view/occupancy/grid"
    assert set(p["plugins"]) >= {"voxel_layer", "depth_any_view_grid"}
    assert p["global_frame"] == "odom" and p["robot_base_frame"] == "base_link"
    node = cfg["/**/depth_any_view"]["ros__parameters"]  # the confidence filter is on
    assert 0.0 < node["min_confidence"] <= 1.0
    assert all(P.check_value(k, v) is None for k, v in node.items())


def test_rtabmap_example_names_depth_topics() -> None:
    text = (ROOT / "config" / "examples" / "rtabmap_example.yaml").read_text()
    cfg = yaml.safe_load(text)
    assert cfg["rtabmap"]["ros__parameters"]["rgbd_cameras"] == len(CAMERAS)
    for cam in CAMERAS:
        assert cfg[f"rgbd_sync_{cam}"]["ros__parameters"]["approx_sync"] is False
    for topic in ("/cameras/front/depth/image", "/cameras/front/camera_info",
                  "/cameras/front/image_raw", "/odom", "/depth_any_view/points"):
        assert topic in text


def test_float_ranges_are_finite() -> None:
    for spec in P.PARAMETERS:
        if spec.kind == "double":
            assert math.isfinite(spec.minimum) and math.isfinite(spec.maximum)
