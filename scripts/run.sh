#!/usr/bin/env bash
# scripts/run.sh - the main job on a fresh clone: install missing packages,
# build in _build, generate the default synthetic occluded-ReID benchmark,
# train the small default config (configs/synth_small.yml) on the CPU
# backend and evaluate it, printing Rank-1 / mAP for ARM and global-only
# matching.  Extra arguments are passed to `hcga train` (e.g. KEY VALUE
# overrides such as SOLVER.MAX_EPOCHS 4).
#   HCGA_RUN_DIR   where the data and the run go (default: _run under the clone)
#   HCGA_BACKEND   backend to train on (default: cpu)
set -euo pipefail
# shellcheck source=scripts/common.sh
. "$(dirname "$0")/common.sh"

start=$SECONDS
hcga_setup
hcga_build "$HCGA_SRC/_build"
HCGA="$HCGA_SRC/_build/hcga"
RUN=${HCGA_RUN_DIR:-$HCGA_SRC/_run}
BACKEND=${HCGA_BACKEND:-cpu}

hcga_log "hcga backends"
"$HCGA" backends

if [[ ! -d "$RUN/synth/bounding_box_train" ]]; then
  hcga_log "hcga synth --out $RUN/synth (default benchmark, seed 1)"
  "$HCGA" synth --out "$RUN/synth"
fi

hcga_log "hcga --backend $BACKEND train --config configs/synth_small.yml"
rm -rf "$RUN/train"
"$HCGA" --backend "$BACKEND" train --config "$HCGA_SRC/configs/synth_small.yml" \
  --data "$RUN/synth" --output "$RUN/train" "$@"

hcga_log "hcga test (ARM, then global-only matching) on the final checkpoint"
"$HCGA" --backend "$BACKEND" test --weights "$RUN/train/checkpoint.safetensors" --data "$RUN/synth" --arm
"$HCGA" --backend "$BACKEND" test --weights "$RUN/train/checkpoint.safetensors" --data "$RUN/synth" --global
hcga_log "main job done in $((SECONDS - start)) s (metrics: $RUN/train/metrics.jsonl)"
