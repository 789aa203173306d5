#!/usr/bin/env bash
# Generate the synthetic training, validation and held-out test splits (deterministic).
# Each sequence is one seed (one scene layout); splits never share seeds:
#   train: seeds 1000-1599 (even: indoor, odd: outdoor), 10 frames each (600 layouts)
#   val:   seeds 8000-8005, 10 frames each
#   test:  seeds 9000-9007 (held out; 4 indoor, 4 outdoor), 10 frames each
#   test_dynamic: seed 9100 (held out; outdoor with moving persons and a car, --dynamic),
#          20 frames
#   shifted_test: the shifted world (config/shifted_world.yaml: other scenes, materials and
#          lighting, a random rig of 1-8 cameras and image size per sequence), seeds 9500-9523,
#          4 frames each: a fixed generalisation test split, NEVER used for training
#   shifted_train: the shifted world, seeds 20000-20599, 4 frames each (600 rigs and scenes;
#          stages 5 and 6 of the lite weights saw the first 293)
# Usage: scripts/make_datasets.sh [OUT_DIR=data] [SIZE=256x256]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-data}
SIZE=${2:-256x256}
DAV=${DAV:-.venv/bin/depth-any-view}
gen() {  # split seed scene frames [extra synth options]
  local dir="$OUT/$1/seq_$2"
  [ -f "$dir/meta.json" ] && return 0
  rm -rf "$dir"
  "$DAV" synth --out "$dir" --frames "$4" --size "$SIZE" --seed "$2" --scene "$3" --quiet \
    --format shards "${@:5}" >/dev/null
}
for s in $(seq 1000 1599); do gen train "$s" "$([ $((s % 2)) = 0 ] && echo indoor || echo outdoor)" 10; done
for s in $(seq 8000 8005); do gen val "$s" "$([ $((s % 2)) = 0 ] && echo indoor || echo outdoor)" 10; done
for s in $(seq 9000 9007); do gen test "$s" "$([ $((s % 2)) = 0 ] && echo indoor || echo outdoor)" 10; done
gen test_dynamic 9100 outdoor 20 --dynamic
gen_shifted() {  # split first_seed sequences frames (finished sequences are kept)
  "$DAV" synth --world shifted --out "$OUT/$1" --seed "$2" --sequences "$3" --frames "$4" \
    --quiet --format shards >/dev/null
}
gen_shifted shifted_test 9500 24 4
gen_shifted shifted_train 20000 600 4
echo "datasets in $OUT: $(ls "$OUT/train" | wc -l) train, $(ls "$OUT/val" | wc -l) val, $(ls "$OUT/test" | wc -l) test, $(ls "$OUT/test_dynamic" | wc -l) dynamic test, $(ls "$OUT/shifted_test" | wc -l) shifted test, $(ls "$OUT/shifted_train" | wc -l) shifted train sequences"
