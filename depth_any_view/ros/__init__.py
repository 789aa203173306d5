"""ROS 2 adapter: the rclpy node, message conversions, parameters, QoS and diagnostics.

The only part of the package that imports rclpy and message packages; the core never
imports it. Run the node with `depth_any_view_node` or `python -m depth_any_view.ros.node`.
"""
