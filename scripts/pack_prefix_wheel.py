"""Pack an installed ROS interface package (a cmake install prefix) into a wheel.

Used by scripts/build_tf2_msgs.sh: the prefix holds what `cmake --install` laid out
(`lib/pythonX.Y/site-packages/<pkg>/`, `lib/lib<pkg>__rosidl_*.so`, `include/<pkg>/`,
`share/<pkg>/`, `share/ament_index/...`). The wheel lays it into a venv the way the
`ros-*` message wheels do (ros-geometry-msgs): the Python package in site-packages, the
rest under the venv's prefix (the wheel's `.data/data/`), where the ros wheels' start-up
hook puts `lib/` on the library path. pip then reinstalls it in seconds and uninstalls it
cleanly.

    python scripts/pack_prefix_wheel.py PREFIX --name ros-tf2-msgs --version 0.39.1+x \
        --package tf2_msgs --out DIR
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import sys
import sysconfig
import zipfile
from pathlib import Path

GENERATOR = "depth_any_view pack_prefix_wheel"


def _record_hash(data: bytes) -> str:
    """The RECORD form of a file's hash: sha256=<urlsafe base64, no padding>."""
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def wheel_tag() -> str:
    """This interpreter's wheel tag, e.g. cp311-cp311-linux_x86_64 (the package holds
    extension modules built for it)."""
    impl = f"cp{sys.version_info.major}{sys.version_info.minor}"
    platform = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    return f"{impl}-{impl}-{platform}"


def pack(prefix: Path, *, name: str, version: str, package: str, out: Path,
         summary: str) -> Path:
    """Write the wheel of `package` installed under `prefix` into `out`; returns its path.

    Raises SystemExit naming what is missing when the prefix is not an installed package.
    """
    py = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = prefix / "lib" / py / "site-packages"
    if not (site / package / "__init__.py").is_file():
        raise SystemExit(f"pack_prefix_wheel: {site / package} has no __init__.py; run "
                         "`cmake --install` into the prefix first")
    dist = name.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    data = f"{dist}-{version}.data/data"
    files: list[tuple[str, Path]] = []  # (name in the wheel, file)
    for path in sorted((site / package).rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            files.append((path.relative_to(site).as_posix(), path))
    for top in ("include", "lib", "share"):
        for path in sorted((prefix / top).rglob("*")):
            rel = path.relative_to(prefix)
            if not path.is_file() or rel.parts[:2] == ("lib", py):
                continue  # the Python package is above; egg-info and caches are dropped
            files.append((f"{data}/{rel.as_posix()}", path))
    tag = wheel_tag()
    meta = {
        f"{info}/METADATA": (f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                             f"Summary: {summary}\nLicense: BSD-3-Clause\n"),
        f"{info}/WHEEL": (f"Wheel-Version: 1.0\nGenerator: {GENERATOR}\n"
                          f"Root-Is-Purelib: false\nTag: {tag}\n"),
        f"{info}/top_level.txt": f"{package}\n",
    }
    out.mkdir(parents=True, exist_ok=True)
    wheel = out / f"{dist}-{version}-{tag}.whl"
    record: list[str] = []
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for arcname, path in files:
            blob = path.read_bytes()
            info_z = zipfile.ZipInfo(arcname)
            info_z.external_attr = (path.stat().st_mode & 0o777 | 0o100000) << 16
            info_z.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info_z, blob)
            record.append(f"{arcname},{_record_hash(blob)},{len(blob)}")
        for arcname, text in meta.items():
            blob = text.encode()
            zf.writestr(arcname, blob)
            record.append(f"{arcname},{_record_hash(blob)},{len(blob)}")
        record.append(f"{info}/RECORD,,")
        zf.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return wheel


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring; prints the wheel's path."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("prefix", type=Path, help="cmake install prefix holding the package")
    ap.add_argument("--name", required=True, help="distribution name, e.g. ros-tf2-msgs")
    ap.add_argument("--version", required=True, help="version, e.g. 0.39.1+local")
    ap.add_argument("--package", required=True, help="Python package, e.g. tf2_msgs")
    ap.add_argument("--out", type=Path, required=True, help="folder for the wheel")
    ap.add_argument("--summary", default="ROS interfaces generated with the rosidl wheels")
    a = ap.parse_args(argv)
    print(pack(a.prefix, name=a.name, version=a.version, package=a.package, out=a.out,
               summary=a.summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
