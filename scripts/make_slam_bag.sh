#!/usr/bin/env bash
# Render the held-out SLAM sequence of issue 11 as an MCAP rosbag2 (deterministic): seed
# 9200 (no training, validation or test split uses it), an outdoor street drive of 200
# frames (20 s at 10 Hz, from rest to 3 m/s, about 50 m) from six 256x256 cameras, with
# ground-truth depth per camera, /odom (the ground truth trajectory) and occupancy.
# Usage: scripts/make_slam_bag.sh [OUT=output/slam/seq_9200] [FRAMES=200] [SCENE=outdoor]
# Then:  depth-any-view slam output/slam/seq_9200 --report output/slam/report
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-output/slam/seq_9200}
FRAMES=${2:-200}
SCENE=${3:-outdoor}
DAV=${DAV:-.venv/bin/depth-any-view}
if [ -f "$OUT/metadata.yaml" ]; then
  echo "$OUT exists already (rosbag2 bags are never overwritten); remove it to render again"
  exit 0
fi
mkdir -p "$(dirname "$OUT")"
"$DAV" synth --out "$OUT" --frames "$FRAMES" --size 256x256 --seed 9200 --scene "$SCENE" \
  --format mcap --quiet
