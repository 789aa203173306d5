"""Pieces of the node that run without DDS traffic: the latest-wins hand-over slot and
the start-up error path of the constructor (see test_node_integration.py for the rest)."""

from __future__ import annotations

import random
import threading
import time

import pytest

from depth_any_view.ros.node import LatestSlot


def test_latest_slot_keeps_only_the_newest_item() -> None:
    slot = LatestSlot()
    assert slot.put(1) is False
    assert slot.put(2) is True  # 1 was never taken: replaced
    assert slot.take(0.01) == 2
    assert slot.take(0.01) is None


def test_latest_slot_wakes_a_waiting_taker_and_close() -> None:
    slot = LatestSlot()
    got = []
    t = threading.Thread(target=lambda: got.append(slot.take(5.0)))
    t.start()
    time.sleep(0.05)
    slot.put("set")
    t.join(2.0)
    assert got == ["set"]
    t = threading.Thread(target=lambda: got.append(slot.take(5.0)))
    t0 = time.monotonic()
    t.start()
    slot.close()
    t.join(2.0)
    assert got[-1] is None and time.monotonic() - t0 < 2.0


@pytest.mark.ros
def test_constructor_refuses_bad_parameters_before_creating_topics() -> None:
    import rclpy
    from rclpy.parameter import Parameter

    from depth_any_view.ros.node import DepthAnyViewNode, StartupError

    def no_topics(self, settings):  # start-up errors must come before any topic exists
        raise AssertionError("topics created before the start-up error")

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
        mp.setattr(DepthAnyViewNode, "_create_topics", no_topics)
        ctx = rclpy.Context()
        rclpy.init(context=ctx, domain_id=random.SystemRandom().randint(1, 100))
        try:
            for overrides, expected in (
                    ({"camera_names": ["front", "left_wing"]}, "parameter 'camera_names': "
                                                               "camera(s) ['left_wing']"),
                    ({"rig_file": "no_such_rig.yaml"}, "parameter 'rig_file'"),
                    ({"weights": "/nonexistent.safetensors"}, "does not exist"),
                    ({"random_init": True, "device": "cuda:7"}, "'device' is 'cuda:7'")):
                with pytest.raises(StartupError) as info:
                    DepthAnyViewNode(context=ctx, parameter_overrides=[
                        Parameter(k, value=v) for k, v in overrides.items()])
                assert expected in str(info.value)
        finally:
            rclpy.try_shutdown(context=ctx)
