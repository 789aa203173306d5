"""QoS profiles by name."""

from __future__ import annotations

import pytest
from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

from depth_any_view.ros.params import QOS_CHOICES
from depth_any_view.ros.qos import diagnostics_qos, qos_profile


@pytest.mark.parametrize("name, reliability, durability", [
    ("sensor_data", ReliabilityPolicy.BEST_EFFORT, DurabilityPolicy.VOLATILE),
    ("reliable", ReliabilityPolicy.RELIABLE, DurabilityPolicy.VOLATILE),
    ("best_effort", ReliabilityPolicy.BEST_EFFORT, DurabilityPolicy.VOLATILE),
    ("transient_local", ReliabilityPolicy.RELIABLE, DurabilityPolicy.TRANSIENT_LOCAL),
])
def test_profiles(name: str, reliability, durability) -> None:
    q = qos_profile(name, 7)
    assert (q.reliability, q.durability, q.depth) == (reliability, durability, 7)


def test_every_choice_builds_and_bad_input_is_refused() -> None:
    for name in QOS_CHOICES:
        assert qos_profile(name, 1).depth == 1
    with pytest.raises(ValueError, match="unknown"):
        qos_profile("fast", 5)
    with pytest.raises(ValueError, match="depth"):
        qos_profile("reliable", 0)
    assert diagnostics_qos().reliability == ReliabilityPolicy.RELIABLE
