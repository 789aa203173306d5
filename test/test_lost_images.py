"""Images DDS lost before the node saw them (ros/lost_images.py): the warning and the counts.
No ROS; the node's use of it is tested over DDS in test_huge_image_dds.py (opt-in: it sends
192 MB images)."""

from __future__ import annotations

from depth_any_view.ros.lost_images import LostImages


def test_the_warning_names_the_camera_the_count_and_the_cause() -> None:
    lost = LostImages()
    text = lost.lost("front", count_change=2)
    assert text.startswith("camera 'front': 2 image message(s) lost by DDS before reaching "
                           "the node (2 so far)")
    assert "max_image_pixels can only refuse images that arrive" in text
    assert "docs/TROUBLESHOOTING.md" in text
    assert "(3 so far)" in lost.lost("front", count_change=1)
    assert "(1 so far)" in lost.lost("back", count_change=1)
    assert lost.total == {"front": 3, "back": 1}
