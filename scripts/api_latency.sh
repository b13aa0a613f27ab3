#!/usr/bin/env bash
# scripts/api_latency.sh - libhcga's deployment numbers in one run on the
# same threads: hcga_extract's single-image latency and batch-32 throughput
# (examples/extract_bench, HRNet-W32 at 256x128, cpu backend) beside the
# PyTorch reference model's eval forward (scripts/torch_bench.py --device cpu,
# Debian's python3-torch, as shipped and with OMP_WAIT_POLICY=passive, the
# policy hcga's plugins leave OpenMP in: see README "oneDNN backend"),
# alternated twice so that both see the same machine; then hcga_search over 1k, 10k and 100k galleries
# (examples/search_bench).  The W32 checkpoint is made once (one training
# step on a small synthetic set) under $HCGA_RUN_DIR/api-bench.
#   scripts/api_latency.sh [THREADS]        (default 2; build in _build first)
set -euo pipefail
. "$(dirname "$0")/common.sh"
T=${1:-2}
B="$HCGA_SRC/_build"
RUN=${HCGA_RUN_DIR:-$HCGA_SRC/_run}/api-bench
[[ -x "$B/examples/extract_bench" && -x "$B/examples/search_bench" ]] ||
  make -C "$B" -s examples/extract_bench examples/search_bench
CK="$RUN/w32/checkpoint.safetensors"
if [[ ! -f "$CK" ]]; then
  hcga_log "a W32 checkpoint for the benchmark (1 training step) in $RUN"
  "$B/hcga" synth --out "$RUN/data" --ids 12 --cams 2 --per-cam 3 --seed 3 >/dev/null
  "$B/hcga" --threads "$T" train --config "$HCGA_SRC/configs/hrnet32.yml" --data "$RUN/data" \
    --output "$RUN/w32" --max-steps 1 SOLVER.IMS_PER_BATCH 8 DATALOADER.NUM_INSTANCE 2 \
    CLUSTERING.AL band SOLVER.EVAL_PERIOD 1000 TEST.WITH_ARM True >/dev/null
fi
py=${PYTHON:-/usr/bin/python3}
"$py" -c 'import torch' 2>/dev/null || { echo "api_latency.sh: $py has no torch (apt-get install python3-torch, or PYTHON=...)" >&2; exit 1; }
torch_eval() { # policy batch iters warmup
  if [[ $1 == passive ]]; then
    OMP_WAIT_POLICY=passive "$py" "$HCGA_SRC/scripts/torch_bench.py" --device cpu --threads "$T" --mode eval --batch "$2" --iters "$3" --warmup "$4"
  else
    "$py" "$HCGA_SRC/scripts/torch_bench.py" --device cpu --threads "$T" --mode eval --batch "$2" --iters "$3" --warmup "$4"
  fi
}
for round in 1 2; do
  hcga_log "round $round: hcga_extract (batch 1, batch 32), $T threads"
  "$B/examples/extract_bench" "$CK" --threads "$T" --batch 32 --iters 5 --warmup 1
  for policy in default passive; do
    hcga_log "round $round: PyTorch eval forward (batch 1, batch 32), $T threads, OpenMP wait policy $policy"
    torch_eval "$policy" 1 10 2
    torch_eval "$policy" 32 5 1
  done
done
hcga_log "hcga_search, $T threads"
"$B/examples/search_bench" "$CK" --threads "$T" --queries 100 --sizes 1000,10000,100000
