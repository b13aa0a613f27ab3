#!/usr/bin/env bash
# scripts/run.sh - the main job on a fresh clone: install missing packages,
# build in _build, generate the default synthetic occluded-ReID benchmark,
# train the small default config (configs/synth_small.yml) on the CPU
# backend from a backbone pretrained once on a separate synthetic set (hcga
# synth --hard --seed 1001, other identities, then hcga pretrain, the
# stand-in for ImageNet pretraining, kept in $HCGA_RUN_DIR/pretrain and
# reused), co-parsing with CLUSTERING.AL guided at the paper's pixel-loss
# weight 0.1 (docs/training.md; HCGA_PRETRAIN=none: from scratch with the
# config's DFC co-parsing and pixel loss 1.0, as before), and evaluate it,
# printing Rank-1 / mAP for ARM and global-only matching and the pseudo
# labels' IoU against the ground-truth parts.  Extra arguments are passed to `hcga train` (e.g. KEY VALUE
# overrides such as SOLVER.MAX_EPOCHS 4).
#   HCGA_RUN_DIR   where the data and the run go (default: _run under the clone)
#   HCGA_BACKEND   backend to train on (default: cpu)
#   HCGA_PRETRAIN  auto (default: hcga pretrain's backbone, made in
#                  $HCGA_RUN_DIR/pretrain on first use), a backbone file for
#                  MODEL.PRETRAIN_PATH made by hcga pretrain, or none (from
#                  scratch, DFC, pixel loss 1.0)
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

PRETRAIN=${HCGA_PRETRAIN:-auto}
[[ "$PRETRAIN" == auto ]] && PRETRAIN=$RUN/pretrain/backbone.safetensors
if [[ "$PRETRAIN" == "$RUN/pretrain/backbone.safetensors" && ! -f "$PRETRAIN" ]]; then
  if [[ ! -d "$RUN/pretrain/synth/bounding_box_train" ]]; then
    hcga_log "hcga synth --hard --seed 1001 --out $RUN/pretrain/synth (pretraining set, other identities)"
    "$HCGA" synth --hard --seed 1001 --out "$RUN/pretrain/synth"
  fi
  hcga_log "hcga --backend $BACKEND pretrain --config configs/pretrain_small.yml (once; reused by later runs)"
  pstart=$SECONDS
  "$HCGA" --backend "$BACKEND" pretrain --config "$HCGA_SRC/configs/pretrain_small.yml" \
    --data "$RUN/pretrain/synth" --eval-data "$RUN/synth" --out "$PRETRAIN"
  hcga_log "pretraining done in $((SECONDS - pstart)) s"
fi
PRE=()
[[ "$PRETRAIN" != none ]] &&
  PRE=(MODEL.PRETRAIN_PATH "$PRETRAIN" CLUSTERING.AL guided SOLVER.PARSING_LOSS_WEIGHT 0.1)

hcga_log "hcga --backend $BACKEND train --config configs/synth_small.yml ${PRE[*]}"
rm -rf "$RUN/train"
tstart=$SECONDS
"$HCGA" --backend "$BACKEND" train --config "$HCGA_SRC/configs/synth_small.yml" \
  --data "$RUN/synth" --output "$RUN/train" "${PRE[@]}" "$@"

hcga_log "hcga test (ARM, then global-only matching) on the final checkpoint"
"$HCGA" --backend "$BACKEND" test --weights "$RUN/train/checkpoint.safetensors" --data "$RUN/synth" --arm
"$HCGA" --backend "$BACKEND" test --weights "$RUN/train/checkpoint.safetensors" --data "$RUN/synth" --global
hcga_log "hcga parse --eval: the last round's pseudo labels against the ground-truth parts"
"$HCGA" parse --eval --config "$HCGA_SRC/configs/synth_small.yml" --data "$RUN/synth"
hcga_log "main job done in $((SECONDS - start)) s, $((SECONDS - tstart)) s from training on (metrics: $RUN/train/metrics.jsonl)"
