#!/usr/bin/env bash
# Give the venv a tf2_msgs (the node's /tf_static, the bag player's /tf and /tf_static).
# There is no tf2_msgs wheel, but the rosidl toolchain is on the package index as wheels:
# this generates ros_interfaces/tf2_msgs (upstream's interface files) with them and
# Debian's cmake, g++ and make, packs the result as a local wheel, caches that wheel and
# installs it into the venv. Run by scripts/bootstrap.sh; usage: build_tf2_msgs.sh [VENV].
#
#   - a system ROS install that has tf2_msgs (AMENT_PREFIX_PATH, /opt/ros/*): nothing built;
#   - installed and up to date (stamp $VENV/.tf2_msgs): nothing done;
#   - the cached wheel of the same inputs exists: reinstalled (seconds);
#   - else built (about a minute at -j1), cached and installed.
# The cache key covers the interface files, this package's CMakeLists/package.xml, these
# scripts, requirements-tf2.txt, Python, cmake and the compiler, and the ros-* runtime
# wheels the generated code is built against. Cache folder: $DAV_CACHE_DIR, else
# $XDG_CACHE_HOME/depth_any_view or ~/.cache/depth_any_view; TF2_MSGS_REBUILD=1 ignores it.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-${VENV:-.venv}}
VENV=$(cd "$VENV" && pwd)
SRC=ros_interfaces/tf2_msgs
NAME=ros-tf2-msgs
VERSION=0.39.1  # upstream's, whose interface files these are (ros_interfaces/tf2_msgs)
STAMP="$VENV/.tf2_msgs"
PYV=$("$VENV/bin/python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
SITE="$VENV/lib/python$PYV/site-packages"

# A system ROS install's tf2_msgs (a robot): use it, build nothing.
IFS=: read -r -a prefixes <<< "${AMENT_PREFIX_PATH:-}"
for prefix in "${prefixes[@]}" /opt/ros/*; do
  if [ -n "$prefix" ] && [ "$prefix" != "$VENV" ] \
      && [ -e "$prefix/share/ament_index/resource_index/packages/tf2_msgs" ]; then
    echo "bootstrap: tf2_msgs comes from the ROS install at $prefix; not building it"
    exit 0
  fi
done

# The runtime wheels the generated libraries link against and whose interfaces they use.
runtime=()
for pattern in ros_rosidl_runtime_ ros_rosidl_typesupport_ ros_rosidl_generator_ \
    ros_rosidl_dynamic_typesupport ros_rosidl_core_runtime- ros_builtin_interfaces- \
    ros_geometry_msgs- ros_std_msgs- ros_service_msgs- ros_action_msgs- \
    ros_unique_identifier_msgs- ros_fastcdr- ros_rmw- ros_rcutils-; do
  for d in "$SITE/$pattern"*.dist-info; do
    [ -d "$d" ] && runtime+=("$(basename "$d")")
  done
done
tool_versions="python$PYV $(cmake --version 2>/dev/null | head -1) $(c++ --version 2>/dev/null \
  | head -1)"
key=$( { find "$SRC" -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
         sha256sum scripts/build_tf2_msgs.sh scripts/pack_prefix_wheel.py requirements-tf2.txt
         echo "$tool_versions"; printf '%s\n' "${runtime[@]}"; } | sha256sum | cut -c1-16)

if [ "$(cat "$STAMP" 2>/dev/null || true)" = "$key" ] && [ -d "$SITE/tf2_msgs" ]; then
  exit 0
fi

CACHE="${DAV_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/depth_any_view}/tf2_msgs/$key"
export PIP_DISABLE_PIP_VERSION_CHECK=1
wheels=("$CACHE"/*.whl)
if [ "${TF2_MSGS_REBUILD:-0}" = 1 ] || [ ! -f "${wheels[0]}" ]; then
  for tool in cmake c++ make; do
    command -v "$tool" >/dev/null \
      || { echo "bootstrap: building tf2_msgs needs $tool (Debian: cmake g++ make)" >&2; exit 1; }
  done
  echo "bootstrap: building tf2_msgs from ros_interfaces/tf2_msgs (about a minute)"
  start=$(date +%s)
  "$VENV/bin/python" -m pip install -q -r requirements-tf2.txt 2>&1 \
    | grep -v "^WARNING: Location" || true
  work=$(mktemp -d "${TMPDIR:-/tmp}/tf2_msgs.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  log="$work/build.log"
  # Only the venv: a sourced ROS must not lend its packages (their ABI is another's).
  # AMENT_PREFIX_PATH is where ament finds the typesupports; the ros wheels' libraries load
  # from the venv's lib/ (ros_wheels_bootstrapper sets LD_LIBRARY_PATH in the venv's python).
  build_env=(env -u CMAKE_PREFIX_PATH AMENT_PREFIX_PATH="$VENV" PATH="$VENV/bin:$PATH"
             LD_LIBRARY_PATH="$VENV/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")
  if ! { "${build_env[@]}" cmake -S "$SRC" -B "$work/build" -DCMAKE_BUILD_TYPE=Release \
           -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$VENV/bin/python" \
           -DCMAKE_PREFIX_PATH="$VENV" -DCMAKE_INSTALL_PREFIX="$VENV" \
         && "${build_env[@]}" cmake --build "$work/build" -j "${TF2_MSGS_JOBS:-1}" \
         && DESTDIR="$work/stage" "${build_env[@]}" cmake --install "$work/build"; } \
         >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    echo "bootstrap: building tf2_msgs failed (the log's end is above)" >&2
    exit 1
  fi
  rm -rf "$CACHE" && mkdir -p "$CACHE"
  "$VENV/bin/python" scripts/pack_prefix_wheel.py "$work/stage$VENV" --name "$NAME" \
    --version "$VERSION+dav.$key" --package tf2_msgs --out "$CACHE" \
    --summary "tf2_msgs interfaces generated for depth_any_view (ros_interfaces/tf2_msgs)" \
    >/dev/null
  echo "bootstrap: built tf2_msgs in $(( $(date +%s) - start )) s (cached in $CACHE)"
  wheels=("$CACHE"/*.whl)
fi
"$VENV/bin/python" -m pip install -q --no-deps --force-reinstall "${wheels[0]}" 2>&1 \
  | grep -v "^WARNING: Location" || true
"$VENV/bin/python" -c "from tf2_msgs.msg import TFMessage; TFMessage()" \
  || { echo "bootstrap: the built tf2_msgs does not import; remove $CACHE and rerun" >&2
       exit 1; }
echo "$key" > "$STAMP"
echo "bootstrap: tf2_msgs installed into $VENV"
