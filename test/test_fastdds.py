"""The Fast DDS profile the node and the player apply when the user chose none (ros/fastdds.py).

No ROS: `apply_default_profile` only reads and writes an environment mapping. The delivery
it buys is tested over DDS in test_dds_delivery.py.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from depth_any_view.ros.fastdds import (
    PROFILE_VARIABLE,
    apply_default_profile,
    packaged_profile,
)

ROOT = Path(__file__).resolve().parent.parent
NS = {"dds": "http://www.eprosima.com"}


def test_the_packaged_profile_gives_a_large_shared_memory_segment_and_udp() -> None:
    path = packaged_profile()
    assert path == (ROOT / "config" / "fastdds_large_images.xml").resolve()
    root = ET.parse(path).getroot()
    kinds = {d.findtext("dds:transport_id", namespaces=NS): d
             for d in root.iterfind(".//dds:transport_descriptor", NS)}
    shm = [d for d in kinds.values() if d.findtext("dds:type", namespaces=NS) == "SHM"]
    udp = [d for d in kinds.values() if d.findtext("dds:type", namespaces=NS) == "UDPv4"]
    assert len(shm) == 1 and len(udp) == 1
    # a set of six 640x480 rgb8 images (5.5 MB) and of six 640x480 depth images (7.4 MB)
    assert int(shm[0].findtext("dds:segment_size", namespaces=NS)) >= 4 * 6 * 640 * 480 * 4
    # not bound to one interface: keeping DDS local is ROS_AUTOMATIC_DISCOVERY_RANGE's job
    assert udp[0].find("dds:interfaceWhiteList", NS) is None
    participant = root.find(".//dds:participant", NS)
    assert participant.get("is_default_profile") == "true"
    used = [t.text for t in participant.iterfind(".//dds:userTransports/dds:transport_id", NS)]
    assert sorted(used) == sorted(kinds)
    assert participant.findtext(".//dds:useBuiltinTransports", namespaces=NS) == "false"


@pytest.mark.parametrize("rmw", [None, "", "rmw_fastrtps_cpp", "rmw_fastrtps_dynamic_cpp"])
def test_applied_with_fast_dds_when_the_user_chose_nothing(rmw: str | None,
                                                           tmp_path: Path) -> None:
    env = {} if rmw is None else {"RMW_IMPLEMENTATION": rmw}
    choice = apply_default_profile(env, cwd=tmp_path)
    assert choice.applied == packaged_profile() and not choice.warn
    assert env[PROFILE_VARIABLE] == str(packaged_profile())
    assert choice.message.startswith(f"Fast DDS profile {packaged_profile()} (")
    assert "set FASTDDS_DEFAULT_PROFILES_FILE to use your own" in choice.message


@pytest.mark.parametrize("name", ["FASTDDS_DEFAULT_PROFILES_FILE",
                                  "FASTRTPS_DEFAULT_PROFILES_FILE"])
def test_a_users_profile_is_kept_and_named(name: str, tmp_path: Path) -> None:
    env = {name: "/robot/dds.xml"}
    choice = apply_default_profile(env, cwd=tmp_path)
    assert env == {name: "/robot/dds.xml"} and choice.applied is None and not choice.warn
    assert choice.message.startswith(f"Fast DDS profile from {name}: /robot/dds.xml (yours;")


def test_an_empty_profile_variable_opts_out_with_a_warning(tmp_path: Path) -> None:
    env = {"FASTDDS_DEFAULT_PROFILES_FILE": ""}
    choice = apply_default_profile(env, cwd=tmp_path)
    assert env == {} and choice.applied is None  # Fast DDS calls an empty path an error
    assert choice.warn and "may be lost" in choice.message
    assert "docs/TROUBLESHOOTING.md" in choice.message


def test_builtin_transports_are_kept_and_called_ineffective_under_localhost(
        tmp_path: Path) -> None:
    env = {"FASTDDS_BUILTIN_TRANSPORTS": "LARGE_DATA", "ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET"}
    choice = apply_default_profile(env, cwd=tmp_path)
    assert PROFILE_VARIABLE not in env and choice.applied is None and not choice.warn
    assert "FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA (yours" in choice.message
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    choice = apply_default_profile(env, cwd=tmp_path)
    assert PROFILE_VARIABLE not in env and choice.warn
    assert "has no effect: unset it to get the packaged profile" in choice.message


def test_a_profile_in_the_working_folder_is_left_to_fast_dds(tmp_path: Path) -> None:
    (tmp_path / "DEFAULT_FASTDDS_PROFILES.xml").write_text("<dds/>")
    env: dict[str, str] = {}
    choice = apply_default_profile(env, cwd=tmp_path)
    assert env == {} and choice.applied is None and not choice.warn
    assert str(tmp_path / "DEFAULT_FASTDDS_PROFILES.xml") in choice.message


def test_other_rmw_implementations_are_left_alone(tmp_path: Path) -> None:
    env = {"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}
    choice = apply_default_profile(env, cwd=tmp_path)
    assert env == {"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"} and choice.applied is None
    assert "rmw_cyclonedds_cpp" in choice.message
