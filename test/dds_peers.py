"""Processes beside the node for the DDS delivery test (test_dds_delivery.py): run as a script.

    python test/dds_peers.py cameras --sets 6 --rate 1.0 --size 640x480
        six camera drivers (rgb8 images, CameraInfo) and odometry, publishing `sets` sets
        at `rate` Hz once the node subscribes; prints the stamps (JSON) and exits.
    python test/dds_peers.py consumer --sets 6 --timeout 60
        a consumer of the node's outputs: a RELIABLE depth-10 and a BEST_EFFORT subscriber
        to every depth image and depth CameraInfo, and /diagnostics; prints 'ready' once it
        has discovered the node's publishers, then JSON of the stamps received per QoS and
        topic and the node's last synchronizer figures when every topic has `sets` stamps
        and the node reports `sets` sets, or at the timeout.

Each runs in a process of its own with the environment the test gives it, so its Fast DDS
configuration is exactly that environment's (Fast DDS reads its profile once per process).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
CAMERAS = ["front", "front_left", "front_right", "back", "back_left", "back_right"]


def _stamp_ns(header: Any) -> int:
    """Header stamp as integer nanoseconds."""
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def cameras(sets: int, rate: float, width: int, height: int) -> int:
    """Six camera drivers with the default publisher QoS (RELIABLE, depth 10)."""
    import rclpy
    from nav_msgs.msg import Odometry
    from rclpy.node import Node
    from sensor_msgs.msg import CameraInfo, Image

    rig = yaml.safe_load((ROOT / "config" / "rig_surround6.yaml").read_text())
    rclpy.init()
    node = Node("fake_camera_drivers")
    images = {c: node.create_publisher(Image, f"/cameras/{c}/image_raw", 10) for c in CAMERAS}
    infos = {c: node.create_publisher(CameraInfo, f"/cameras/{c}/camera_info", 10)
             for c in CAMERAS}
    odom = node.create_publisher(Odometry, "/odom", 10)
    deadline = time.monotonic() + 120.0
    while any(p.get_subscription_count() == 0 for p in images.values()):
        if time.monotonic() > deadline:
            print("the node never subscribed to the cameras", file=sys.stderr)
            return 1
        time.sleep(0.05)
    time.sleep(1.0)  # the node's side of the matching
    yy, xx = np.mgrid[0:height, 0:width]  # (H, W)
    base = np.stack([xx * 255 // width, yy * 255 // height, (xx + yy) % 256],
                    axis=-1).astype(np.uint8)  # (H, W, 3)
    f = 0.5 * width  # focal length (px): a 90 degree lens
    stamps = []
    start = time.monotonic()
    for i in range(sets):
        now = time.time_ns()
        stamp = rclpy.time.Time(nanoseconds=now).to_msg()
        for c in CAMERAS:
            img = Image(width=width, height=height, encoding="rgb8", step=3 * width)
            img.header.stamp = stamp
            img.header.frame_id = rig["cameras"][c]["frame_id"]
            img.data = np.roll(base, 7 * i, axis=1).tobytes()
            info = CameraInfo(width=width, height=height, distortion_model="plumb_bob",
                              d=[0.0] * 5, k=[f, 0.0, width / 2, 0.0, f, height / 2, 0.0, 0.0,
                                              1.0],
                              r=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
                              p=[f, 0.0, width / 2, 0.0, 0.0, f, height / 2, 0.0, 0.0, 0.0,
                                 1.0, 0.0])
            info.header = img.header
            infos[c].publish(info)
            images[c].publish(img)
        pose = Odometry(child_frame_id="base_link")
        pose.header.stamp = stamp
        pose.header.frame_id = "odom"
        pose.pose.pose.position.x = 0.1 * i
        pose.pose.pose.orientation.w = 1.0
        odom.publish(pose)
        stamps.append(now)
        time.sleep(max(0.0, start + (i + 1) / rate - time.monotonic()))
    print(json.dumps(stamps), flush=True)
    time.sleep(2.0)  # a reliable writer answers the last repair requests
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


def consumer(sets: int, timeout: float) -> int:
    """RELIABLE depth-10 and BEST_EFFORT subscribers to the depth outputs (module docstring)."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image

    rclpy.init()
    node = Node("fake_consumer")
    got: dict[str, dict[str, set[int]]] = {"reliable": {}, "best_effort": {}}
    sync: dict[str, str] = {}

    def store(kind: str, topic: str, msg: Any) -> None:
        got[kind].setdefault(topic, set()).add(_stamp_ns(msg.header))

    def on_diagnostics(msg: Any) -> None:
        for status in msg.status:
            if status.name.endswith(": synchronizer"):
                sync.clear()
                sync.update({kv.key: kv.value for kv in status.values})

    topics = {f"/cameras/{c}/depth/{k}": t for c in CAMERAS
              for k, t in (("image", Image), ("camera_info", CameraInfo))}
    subs = [node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 10)]
    for kind, reliability in (("reliable", ReliabilityPolicy.RELIABLE),
                              ("best_effort", ReliabilityPolicy.BEST_EFFORT)):
        qos = QoSProfile(depth=10, reliability=reliability)
        subs += [node.create_subscription(t, topic, lambda m, k=kind, n=topic: store(k, n, m),
                                          qos) for topic, t in topics.items()]
    deadline = time.monotonic() + timeout
    while any(node.count_publishers(t) == 0 for t in topics) and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    print("ready", flush=True)

    def done() -> bool:
        complete = all(len(got[k].get(t, ())) >= sets for k in got for t in topics)
        node_sets = int(sync.get("sets complete", 0)) + int(sync.get("sets partial", 0))
        return complete and node_sets >= sets

    while not done() and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    print(json.dumps({"received": {k: {t: sorted(s) for t, s in d.items()}
                                   for k, d in got.items()},
                      "synchronizer": sync}), flush=True)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


def main() -> int:
    """`cameras` or `consumer` (module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="role", required=True)
    cam = sub.add_parser("cameras")
    cam.add_argument("--sets", type=int, required=True)
    cam.add_argument("--rate", type=float, required=True, help="sets per second")
    cam.add_argument("--size", default="640x480", help="WIDTHxHEIGHT (pixels)")
    con = sub.add_parser("consumer")
    con.add_argument("--sets", type=int, required=True)
    con.add_argument("--timeout", type=float, required=True, help="seconds")
    args = parser.parse_args()
    if args.role == "cameras":
        width, height = (int(v) for v in args.size.split("x"))
        return cameras(args.sets, args.rate, width, height)
    return consumer(args.sets, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
