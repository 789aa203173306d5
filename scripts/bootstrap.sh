#!/usr/bin/env bash
# Set up everything depth_any_view needs on a fresh Debian machine with Python 3.11:
# Debian packages, a virtual environment in .venv, the ROS 2 wheels, torch (CPU, pinned)
# and the package itself (editable). Safe to run again: it does nothing when up to date.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
STAMP="$VENV/.installed"
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for cand in python3.11 python3; do
    if command -v "$cand" >/dev/null 2>&1; then PY=$cand; break; fi
  done
fi
[ -n "$PY" ] || { echo "bootstrap: no python3.11 found; install Python 3.11" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@";
  else echo "bootstrap: need root for: $*" >&2; return 1; fi
}

# Debian packages: libusb for Open3D; venv/pip support for a bare Debian python3.
APT_PKGS=(libusb-1.0-0)
if ! "$PY" -c "import ensurepip, venv" >/dev/null 2>&1; then
  APT_PKGS+=(python3-venv python3-pip)
fi
missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

hash_inputs() { cat requirements.txt setup.py setup.cfg | sha256sum | cut -d' ' -f1; }
want=$(hash_inputs)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$VENV/bin/python" ]; then
  exit 0
fi

echo "bootstrap: creating $VENV with $("$PY" --version)"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
export PIP_DISABLE_PIP_VERSION_CHECK=1
"$VENV/bin/python" -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
# torch is pinned to the CPU wheel (requirements.txt); an unpinned torch pulls a CUDA build.
"$VENV/bin/python" -m pip install -q -r requirements.txt 2>&1 | grep -v "^WARNING: Location" || true
"$VENV/bin/python" -m pip install -q --no-deps --no-build-isolation -e . 2>&1 \
  | grep -v "^WARNING: Location" || true
"$VENV/bin/python" -c "import torch, open3d, rosbags, rclpy, depth_any_view" \
  || { echo "bootstrap: the environment does not import; see the pip output above" >&2; exit 1; }
echo "$want" > "$STAMP"
echo "bootstrap: ready ($VENV)"
