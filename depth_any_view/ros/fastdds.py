"""The Fast DDS profile of the package's own processes: large images without a user's profile.

    choice = apply_default_profile()   # first thing in main(), before rclpy.init
    ...                                # then log choice.message (a warning if choice.warn)

Why: with Fast DDS's defaults every participant gets a 512 KB shared-memory segment, and
a publisher's large samples live in its own segment until every reader has taken them. A
burst of six 640x480 images (0.9 MB each) or of the node's six depth images (1.2 MB each)
overflows it, and best-effort readers (the node's cameras, many consumers) lose most of
them (figures in docs/TROUBLESHOOTING.md). `config/fastdds_large_images.xml` gives the
participant a 32 MB segment. `FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA` does not help on one machine
under `ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`: rmw_fastrtps then replaces the builtin
transports with its own (a 512 KB segment again), and Fast DDS reads that variable only
for builtin transports.

What `apply_default_profile` does, with Fast DDS as the RMW (RMW_IMPLEMENTATION unset or
rmw_fastrtps_*): when the user chose nothing (neither FASTDDS_DEFAULT_PROFILES_FILE nor
the deprecated FASTRTPS_DEFAULT_PROFILES_FILE is set, FASTDDS_BUILTIN_TRANSPORTS is not
set, and there is no DEFAULT_FASTDDS_PROFILES.xml in the working folder, which Fast DDS
would load), it sets FASTDDS_DEFAULT_PROFILES_FILE to the packaged profile in this
process's environment. Otherwise it changes nothing and says what the process uses; a
profiles variable set to the empty string keeps Fast DDS's defaults (an opt-out; it is
removed from the environment, as Fast DDS would report an empty path as an error).

The publisher's segment is the one that matters for delivery: the camera drivers need the
same profile (README, "Camera drivers on the same machine"); consumers of the node's
outputs need nothing.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path

from depth_any_view.config import ConfigError, config_path

PROFILE_FILE = "fastdds_large_images.xml"  # in config/: SHM segment 32 MB, UDPv4
PROFILE_VARIABLE = "FASTDDS_DEFAULT_PROFILES_FILE"
OLD_PROFILE_VARIABLE = "FASTRTPS_DEFAULT_PROFILES_FILE"  # deprecated, still read by Fast DDS 3
TRANSPORTS_VARIABLE = "FASTDDS_BUILTIN_TRANSPORTS"
WORKING_FOLDER_PROFILE = "DEFAULT_FASTDDS_PROFILES.xml"  # Fast DDS loads it from the cwd
HELP = "docs/TROUBLESHOOTING.md, 'DDS on localhost'"


@dataclass
class ProfileChoice:
    """What a process uses for Fast DDS, and the one line that says so."""

    applied: Path | None  # the packaged profile set by apply_default_profile, else None
    message: str  # for the log
    warn: bool = False  # log it as a warning (large images may be lost)


def uses_fastdds(environ: MutableMapping[str, str]) -> bool:
    """True when rclpy will load Fast DDS: RMW_IMPLEMENTATION unset or empty (the default
    RMW of Jazzy and Kilted) or one of the rmw_fastrtps_* implementations."""
    rmw = environ.get("RMW_IMPLEMENTATION", "").strip()
    return rmw == "" or rmw.startswith("rmw_fastrtps")


def packaged_profile() -> Path:
    """Absolute path of `config/fastdds_large_images.xml` (source tree or installed share).

    Raises:
        ConfigError: the file is not found (names where it looked).
    """
    return config_path(PROFILE_FILE).resolve()


def apply_default_profile(environ: MutableMapping[str, str] | None = None,
                          cwd: Path | None = None) -> ProfileChoice:
    """Set FASTDDS_DEFAULT_PROFILES_FILE to the packaged profile in `environ` (default
    os.environ) when the user chose no Fast DDS configuration (module docstring); call it
    before rclpy.init. `cwd` (default the working folder) is where Fast DDS looks for
    DEFAULT_FASTDDS_PROFILES.xml. Returns what the process uses."""
    env = os.environ if environ is None else environ
    folder = Path.cwd() if cwd is None else Path(cwd)
    if not uses_fastdds(env):
        return ProfileChoice(None, f"RMW {env['RMW_IMPLEMENTATION']}: no Fast DDS profile "
                                   "applied")
    for name in (PROFILE_VARIABLE, OLD_PROFILE_VARIABLE):
        if name not in env:
            continue
        if env[name].strip():
            return ProfileChoice(None, f"Fast DDS profile from {name}: {env[name]} (yours; "
                                       "its publishers need a shared-memory segment that "
                                       f"holds a set of large images, see {HELP})")
        del env[name]  # Fast DDS would report an error for an empty path
        return ProfileChoice(None, f"Fast DDS defaults ({name} is set but empty): six "
                                   "cameras' images and the depth outputs may be lost on "
                                   f"the way (512 KB shared-memory segment); see {HELP}",
                             warn=True)
    if TRANSPORTS_VARIABLE in env:
        local = env.get("ROS_AUTOMATIC_DISCOVERY_RANGE", "").strip().upper() == "LOCALHOST"
        note = (f"; with ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST rmw_fastrtps replaces the "
                f"builtin transports, so {TRANSPORTS_VARIABLE} has no effect: unset it to get "
                f"the packaged profile (see {HELP})" if local else "")
        return ProfileChoice(None, f"Fast DDS transports from {TRANSPORTS_VARIABLE}="
                                   f"{env[TRANSPORTS_VARIABLE]} (yours; no packaged profile "
                                   f"applied){note}", warn=local)
    if (folder / WORKING_FOLDER_PROFILE).is_file():
        return ProfileChoice(None, f"Fast DDS profile {folder / WORKING_FOLDER_PROFILE} (in "
                                   "the working folder, loaded by Fast DDS itself)")
    try:
        profile = packaged_profile()
    except ConfigError as exc:
        return ProfileChoice(None, f"Fast DDS defaults: {exc}; six cameras' images may be "
                                   f"lost on the way (see {HELP})", warn=True)
    env[PROFILE_VARIABLE] = str(profile)
    return ProfileChoice(profile, f"Fast DDS profile {profile} ({PROFILE_VARIABLE} was not "
                                  "set): a 32 MB shared-memory segment for the depth "
                                  "outputs; set FASTDDS_DEFAULT_PROFILES_FILE to use your own")
