"""Camera images that DDS lost before the node saw them: count them and say so.

An image larger than a best-effort transport can deliver (an 8000x8000 rgb8 frame is 192 MB,
some 3000 UDP fragments: one lost fragment loses it) never reaches the image callback, so
`max_image_pixels` cannot refuse it there and, before this, nothing was logged. Fast DDS
reports it to the subscription as a lost message (rclpy's `message_lost` QoS event); the
node turns that into one throttled warning naming the camera and a `bad image_lost` count
in /diagnostics.

Memory: Fast DDS keeps the buffer of the partly assembled image in the subscription for
reuse (rmw_fastrtps's PREALLOCATED_WITH_REALLOC history), one buffer per camera topic the
size of the largest image it began to receive; more oversized images do not add to it
(BENCHMARKS.md, "An 8000x8000 image over DDS"). Giving it back needs readers that allocate
each sample on their own (`historyMemoryPolicy` DYNAMIC, with RMW_FASTRTPS_USE_QOS_FROM_XML=1)
and a new subscription after the loss; measured, that returned the memory but DYNAMIC
readers cost the node two thirds of its sets under load, so it is not done.

`subscribe_reporting_losses` makes a subscription with that event; the node calls
`LostImages.lost` from it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rclpy.event_handler import SubscriptionEventCallbacks, UnsupportedEventTypeError
from rclpy.node import Node

HELP = "docs/TROUBLESHOOTING.md, 'DDS on localhost'"


@dataclass
class LostImages:
    """Images lost by DDS per camera, over the node's life."""

    total: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def lost(self, camera: str, count_change: int) -> str:
        """Record `count_change` newly lost images of `camera` (the event's
        total_count_change) and return the warning to log."""
        with self._lock:
            self.total[camera] = self.total.get(camera, 0) + max(int(count_change), 0)
            n = self.total[camera]
        return (f"camera '{camera}': {count_change} image message(s) lost by DDS before "
                f"reaching the node ({n} so far): an image larger than the transport "
                "delivers best-effort (max_image_pixels can only refuse images that "
                "arrive) or a publisher whose shared-memory segment is full "
                f"(see {HELP})")


def subscribe_reporting_losses(node: Node, msg_type: Any, topic: str,
                               callback: Callable[[Any], None], qos: Any,
                               on_lost: Callable[[Any], None]) -> Any:
    """`node.create_subscription(msg_type, topic, callback, qos)` whose lost messages
    (rclpy's QoSMessageLostInfo) go to `on_lost`, where the RMW reports them; a plain
    subscription where it does not."""
    try:
        events = SubscriptionEventCallbacks(message_lost=on_lost)
        return node.create_subscription(msg_type, topic, callback, qos,
                                        event_callbacks=events)
    except UnsupportedEventTypeError:  # this RMW does not report lost messages
        return node.create_subscription(msg_type, topic, callback, qos)
