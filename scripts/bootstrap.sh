#!/usr/bin/env bash
# Set up everything depth_any_view needs on a fresh Debian machine with Python 3.11:
# Debian packages, a virtual environment in .venv, the ROS 2 wheels, torch (CPU, pinned),
# the package itself (editable) and tf2_msgs, generated once from ros_interfaces/tf2_msgs
# (scripts/build_tf2_msgs.sh: no wheel of it exists; a ROS install's is used where there is
# one). Safe to run again: it does nothing when up to date.
# `--test` also installs the test-only dependencies (requirements-test.txt; `make test`).
set -euo pipefail
cd "$(dirname "$0")/.."
WITH_TEST=0
if [ "${1:-}" = "--test" ]; then WITH_TEST=1; fi

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

# Debian packages: libusb for Open3D; opencv-doc for its Middlebury stereo pairs with true
# disparity (`depth-any-view eval-real`, issue 20); cmake, g++ and make to generate tf2_msgs
# (and Python's headers for its extension modules); venv/pip support for a bare python3.
APT_PKGS=(libusb-1.0-0 opencv-doc cmake g++ make)
if ! "$PY" -c "import ensurepip, venv" >/dev/null 2>&1; then
  APT_PKGS+=(python3-venv python3-pip)
fi
if ! "$PY" -c "import os, sysconfig, sys
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h')))"; then
  APT_PKGS+=("${PY##*/}-dev")  # e.g. python3.11-dev
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

hash_main=$(cat requirements.txt setup.py setup.cfg | sha256sum | cut -d' ' -f1)
hash_test=$(cat requirements.txt setup.py setup.cfg requirements-test.txt \
  requirements-colcon.txt | sha256sum | cut -d' ' -f1)
want=$hash_main
[ "$WITH_TEST" = 1 ] && want=$hash_test
have=$(cat "$STAMP" 2>/dev/null || true)
# Up to date: the same inputs, or (without --test) a venv that also has the test extras.
if [ -x "$VENV/bin/python" ] && { [ "$have" = "$want" ] || { [ "$WITH_TEST" = 0 ] \
    && [ "$have" = "$hash_test" ]; }; }; then
  exec bash scripts/build_tf2_msgs.sh "$VENV"  # cached: nothing to do when up to date
fi

echo "bootstrap: creating $VENV with $("$PY" --version)"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
export PIP_DISABLE_PIP_VERSION_CHECK=1
"$VENV/bin/python" -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
# torch is pinned to the CPU wheel (requirements.txt); an unpinned torch pulls a CUDA build.
reqs=(-r requirements.txt)
[ "$WITH_TEST" = 1 ] && reqs+=(-r requirements-test.txt)  # one resolve: the pins hold
"$VENV/bin/python" -m pip install -q "${reqs[@]}" 2>&1 | grep -v "^WARNING: Location" || true
"$VENV/bin/python" -m pip install -q --no-deps --no-build-isolation -e . 2>&1 \
  | grep -v "^WARNING: Location" || true
"$VENV/bin/python" -c "import torch, open3d, rosbags, rclpy, onnx, onnxscript, onnxruntime
import depth_any_view" \
  || { echo "bootstrap: the environment does not import; see the pip output above" >&2; exit 1; }
if [ "$WITH_TEST" = 1 ]; then
  "$VENV/bin/python" -c "import evo.core.metrics" \
    || { echo "bootstrap: the test dependencies do not import; see the pip output above" >&2
         exit 1; }
  # colcon beside the venv (it needs setuptools<80): test/test_colcon.py puts it on PYTHONPATH
  rm -rf "$VENV/colcon"
  "$VENV/bin/python" -m pip install -q --target "$VENV/colcon" -r requirements-colcon.txt 2>&1 \
    | grep -v "^WARNING: Location" || true
fi
bash scripts/build_tf2_msgs.sh "$VENV"
echo "$want" > "$STAMP"
echo "bootstrap: ready ($VENV)"
