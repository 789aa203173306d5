"""The rig's extrinsics on /tf_static (parameter `publish_rig_tf`).

    tf = RigTfPublisher(node)        # needs tf2_msgs; TfMessagesMissing says how to get it
    tf.send(rig, stamp_ns)           # base_link -> every camera's optical frame; True if sent
    tf.send(rig, later_ns)           # the same rig again: nothing sent (False)
    tf.close()                       # late joiners no longer get them

One tf2_msgs/TFMessage holds `rig.base_frame` -> `<camera>.frame_id` (translation in
metres, the rig file's rotation) for every camera of the rig, on the absolute topic
/tf_static with tf2_ros's StaticTransformBroadcaster QoS (reliable, transient local, keep
last 1): a subscriber that joins later still gets it, and the message always holds the
whole current set, so a changed rig replaces the old one. tf2_ros itself is not used:
it is not installable in the venv this project runs in (only its messages can be built,
by scripts/build_tf2_msgs.sh); on a robot the same messages come from the ROS install.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from depth_any_view import topics
from depth_any_view.geometry.rig import Rig
from depth_any_view.ros.conversions import transform_stamped
from depth_any_view.ros.qos import tf_static_qos

TF_STATIC_TOPIC = topics.TF_STATIC  # absolute: tf2 listens there whatever the namespace


class TfMessagesMissing(RuntimeError):
    """tf2_msgs does not import; the message says how to install it."""


def tf_message_type() -> type:
    """tf2_msgs.msg.TFMessage, or TfMessagesMissing saying how to get it."""
    try:
        from tf2_msgs.msg import TFMessage
    except ImportError as exc:
        raise TfMessagesMissing(
            f"publish_rig_tf needs tf2_msgs, which does not import ({exc}): run "
            "`bash scripts/bootstrap.sh` (it builds tf2_msgs into .venv), or source a ROS "
            "install that has it, or set publish_rig_tf false") from None
    return TFMessage


def rig_key(rig: Rig) -> tuple[Any, ...]:
    """What /tf_static says about `rig`: (base frame, (frame, 4x4 bytes) per camera)."""
    return (rig.base_frame, tuple((c.frame_id, np.asarray(c.T_base_cam, np.float64).tobytes())
                                  for c in rig.cameras.values()))


def check_rig_frames(rig: Rig) -> str | None:
    """Why `rig` cannot be one tf tree (a frame named twice, or an empty name), or None."""
    frames = [rig.base_frame] + [c.frame_id for c in rig.cameras.values()]
    clash = sorted({f for f in frames if frames.count(f) > 1})
    if clash:
        return (f"publish_rig_tf: frame(s) {clash} appear more than once among the rig's "
                "base_frame and its cameras' frame_id; give every camera its own optical "
                "frame in the rig file")
    if not all(f.strip() for f in frames):
        return "publish_rig_tf: the rig file has an empty base_frame or frame_id"
    return None


def rig_tf_problem(publish: bool, rig: Rig) -> str | None:
    """Why `rig` cannot go on /tf_static when `publish` (parameter publish_rig_tf) is on:
    no tf2_msgs, or clashing frame names; None when it can or `publish` is off."""
    if not publish:
        return None
    try:
        tf_message_type()
    except TfMessagesMissing as exc:
        return str(exc)
    return check_rig_frames(rig)


def rig_tf_message(rig: Rig, stamp_ns: int) -> Any:
    """TFMessage: rig.base_frame -> each camera's optical frame, stamped `stamp_ns`.

    Raises ValueError when the rig is not one tf tree (`check_rig_frames`).
    """
    problem = check_rig_frames(rig)
    if problem is not None:
        raise ValueError(problem)
    return tf_message_type()(transforms=[
        transform_stamped(c.T_base_cam, stamp_ns, rig.base_frame, c.frame_id)
        for c in rig.cameras.values()])


class RigTfPublisher:
    """Publishes a rig on /tf_static; see the module docstring."""

    def __init__(self, node: Any) -> None:
        """Create the /tf_static publisher on `node` (TfMessagesMissing without tf2_msgs)."""
        self._node = node
        self._publisher = node.create_publisher(tf_message_type(), TF_STATIC_TOPIC,
                                                tf_static_qos())
        self._sent: tuple[Any, ...] | None = None  # rig_key of the last message sent

    def send(self, rig: Rig, stamp_ns: int) -> bool:
        """Publish `rig` stamped `stamp_ns` (ns) unless it is the one sent last; True if sent.

        Raises ValueError when two frames of the rig share a name.
        """
        key = rig_key(rig)
        if key == self._sent:
            return False
        self._publisher.publish(rig_tf_message(rig, stamp_ns))
        self._sent = key
        return True

    def close(self) -> None:
        """Destroy the publisher: its transient-local message is no longer offered."""
        if self._publisher is not None:
            self._node.destroy_publisher(self._publisher)
            self._publisher = None


class RigTfSwitch:
    """/tf_static as publish_rig_tf says: a RigTfPublisher while it is on, none while off."""

    def __init__(self, node: Any) -> None:
        """Nothing published until the first `update`."""
        self._node = node
        self._publisher: RigTfPublisher | None = None

    def update(self, publish: bool, rig: Rig, stamp_ns: int) -> bool:
        """Send `rig` stamped `stamp_ns` when `publish` and it changed (True when sent);
        close the publisher when not `publish`."""
        if not publish:
            if self._publisher is not None:
                self._publisher.close()
                self._publisher = None
            return False
        if self._publisher is None:
            self._publisher = RigTfPublisher(self._node)
        return self._publisher.send(rig, stamp_ns)

    def update_and_log(self, publish: bool, rig: Rig, stamp_ns: int, rig_file: str) -> None:
        """`update`, logging on the node what was sent."""
        if self.update(publish, rig, stamp_ns):
            self._node.get_logger().info(
                f"/tf_static: {rig.base_frame} -> "
                f"{', '.join(c.frame_id for c in rig.cameras.values())} (rig_file {rig_file})")
