"""QoS profiles of the node's subscriptions and publishers, by name (parameters `*_qos`).

- `sensor_data`: best effort, volatile, keep last (rclpy's `qos_profile_sensor_data`, as
  in ros2/demos `talker_qos.py`). A best-effort subscriber matches both best-effort
  drivers and reliable publishers such as `ros2 bag play`, so it is the camera default.
- `reliable`: reliable, volatile, keep last; what RViz and most consumers ask for.
- `best_effort`: best effort, volatile, keep last.
- `transient_local`: reliable, transient local, keep last: late joiners get the last
  message (like map_server's map). A transient-local publisher matches volatile and
  transient-local subscribers alike, so it suits the occupancy grid (Nav2 static layer).
- `system_default`: the RMW's defaults with the given depth.
"""

from __future__ import annotations

from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
    qos_profile_system_default,
)

from depth_any_view.ros.params import QOS_CHOICES


def qos_profile(name: str, depth: int) -> QoSProfile:
    """The QoS profile called `name` (see the module docstring) with history `depth`."""
    if name not in QOS_CHOICES:
        raise ValueError(f"QoS '{name}' is unknown; use one of {', '.join(QOS_CHOICES)}")
    if int(depth) < 1:
        raise ValueError(f"QoS depth must be >= 1, got {depth}")
    if name == "sensor_data":
        base = qos_profile_sensor_data
        return QoSProfile(history=base.history, depth=int(depth), reliability=base.reliability,
                          durability=base.durability)
    if name == "system_default":
        base = qos_profile_system_default
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=int(depth),
                          reliability=base.reliability, durability=base.durability)
    reliability = (ReliabilityPolicy.BEST_EFFORT if name == "best_effort"
                   else ReliabilityPolicy.RELIABLE)
    durability = (DurabilityPolicy.TRANSIENT_LOCAL if name == "transient_local"
                  else DurabilityPolicy.VOLATILE)
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=int(depth),
                      reliability=reliability, durability=durability)


def diagnostics_qos() -> QoSProfile:
    """QoS of /diagnostics: reliable, volatile, depth 10 (as diagnostic_updater uses)."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def tf_static_qos() -> QoSProfile:
    """QoS of /tf_static: reliable, transient local, keep last 1, as tf2_ros's
    StaticTransformBroadcaster (StaticBroadcasterQoS), so late joiners get the transforms."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)
