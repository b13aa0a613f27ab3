#!/usr/bin/env bash
# scripts/bench_cpu.sh - the CPU benchmark of docs/porting.md and README.md
# ("oneDNN backend"): hcga's onednn and cpu backends and the PyTorch
# reference model (scripts/torch_bench.py on Debian's python3-torch, whose CPU
# convolutions are oneDNN 2.6 too) on the same threads, one after another in
# ONE run, train and eval, for configs/hrnet32.yml at --batch 8; then
# configs/synth_small.yml (the main job's config) on onednn and cpu.
# Training also runs in bf16 mixed precision (rows *-bf16): hcga's --amp
# bf16 against PyTorch's torch.autocast(bfloat16) (scripts/torch_bench.py
# --amp bf16), the like-for-like pair, and against PyTorch in f32.
#
#   scripts/bench_cpu.sh [BUILD_DIR] [THREADS] [ITERS] [WARMUP]
#       defaults: _build 2 2 1
#   BENCH_MODES="eval" (or "train") runs one mode only (default: both).
#   BENCH_AMP=0 leaves out the bf16 rows.
#   The onednn eval runs twice: fused (conv2d_bn_infer, the default) and
#   op by op (HCGA_FUSION=0, row onednn-nf).
#
# Every timing runs under `flock /tmp/hcga-heavy.lock` (one benchmark at a
# time on a shared machine).  Prints one line per run (images/s, wall ms per
# step, and the process CPU time per step where hcga reports it), then the
# ratios.  torch-pw is PyTorch with OMP_WAIT_POLICY=passive and the plugin's
# GOMP_SPINCOUNT (DNN_SPINCOUNT, read from backends/onednn/dnn_shim.c), the
# policy the onednn plugin sets for itself: on a loaded machine GNU OpenMP's
# default spinning costs PyTorch as much as it cost the plugin.  PyTorch is
# needed for the torch rows only (apt-get install python3-torch; it is not
# in scripts/deps.sh: a benchmark-only dependency).
set -u
build=${1:-_build}
threads=${2:-2}
iters=${3:-2}
warmup=${4:-1}
modes=${BENCH_MODES:-train eval}
src=$(cd "$(dirname "$0")/.." && pwd)
hcga="$build/hcga"
py=${PYTHON:-/usr/bin/python3}
lock=/tmp/hcga-heavy.lock
out=$(mktemp -d /tmp/hcga-bench.XXXXXX)
declare -A ips
# the plugin's spin count, read from where it is set
plugin_spin=$(sed -n 's/^#define DNN_SPINCOUNT "\([0-9]*\)".*/\1/p' "$src/backends/onednn/dnn_shim.c")
[[ -n $plugin_spin ]] || { echo "bench_cpu.sh: no DNN_SPINCOUNT in backends/onednn/dnn_shim.c" >&2; exit 2; }

run_hcga() { # backend config mode batch [label HCGA_FUSION amp]
    local be=$1 cfg=$2 mode=$3 batch=$4 label=${5:-$1} fusion=${6:-1} amp=${7:-fp32}
    local f="$out/$label-$(basename "$2" .yml)-$3.txt"
    # --threads N reaches every backend as threads=N
    flock "$lock" env HCGA_FUSION="$fusion" "$hcga" --backend "$be" --threads "$threads" bench --config "$cfg" \
        --batch "$batch" --mode "$mode" --iters "$iters" --warmup "$warmup" --amp "$amp" >"$f" 2>&1
    local v cpu
    v=$(sed -n 's/^time: .*, \([0-9.]*\) images\/s.*/\1/p' "$f" | tail -1)
    cpu=$(sed -n 's/^cpu time: \([0-9.]*\) ms\/iter.*/\1/p' "$f" | tail -1)
    ips["$label $(basename "$cfg" .yml) $mode"]=${v:-NA}
    printf '%-8s %-12s %-5s batch %-3s %10s images/s  (cpu %s ms/step)  %s\n' "$label" "$(basename "$cfg" .yml)" \
        "$mode" "$batch" "${v:-FAILED}" "${cpu:-?}" "$(grep -m1 '^time:' "$f")"
}

run_torch() { # mode batch [name plugin-policy amp]
    local mode=$1 batch=$2 name=${3:-torch} f="$out/${3:-torch}-$1.txt" envp=() ampa=()
    [[ -n ${4:-} ]] && envp=(OMP_WAIT_POLICY=passive GOMP_SPINCOUNT="$plugin_spin")
    [[ ${5:-fp32} != fp32 ]] && ampa=(--amp "$5")
    flock "$lock" env OMP_NUM_THREADS="$threads" "${envp[@]}" "$py" "$src/scripts/torch_bench.py" --device cpu \
        --threads "$threads" --batch "$batch" --mode "$mode" --iters "$iters" --warmup "$warmup" "${ampa[@]}" \
        >"$f" 2>&1
    local v
    # images/s from ms/step: torch_bench.py prints images/s with one decimal only
    v=$(sed -n 's/.* images\/s (\([0-9.]*\) ms\/step).*/\1/p' "$f" | tail -1)
    [[ -n $v ]] && v=$(awk -v b="$batch" -v ms="$v" 'BEGIN { printf "%.3f", b * 1000 / ms }')
    ips["$name hrnet32 $mode"]=${v:-NA}
    printf '%-8s %-12s %-5s batch %-3s %10s images/s  %s\n' "$name" hrnet32 "$mode" "$batch" "${v:-FAILED}" \
        "$(tail -1 "$f")"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "NA" || b == "NA" || b == 0) print "n/a"; else printf "%.2fx", a / b }'; }

echo "threads $threads, iters $iters, warmup $warmup, $(date -u '+%Y-%m-%d %H:%M UTC'), load $(cut -d' ' -f1-3 /proc/loadavg)"
for mode in $modes; do
    run_hcga onednn "$src/configs/hrnet32.yml" "$mode" 8
    # eval op by op (no conv2d_bn_infer fusion), to show what the fused op gives
    [[ $mode == eval ]] && run_hcga onednn "$src/configs/hrnet32.yml" "$mode" 8 onednn-nf 0
    run_hcga cpu "$src/configs/hrnet32.yml" "$mode" 8
    run_torch "$mode" 8
    # the same with the OpenMP wait policy the onednn plugin sets for itself
    run_torch "$mode" 8 torch-pw plugin
    if [[ $mode == train && ${BENCH_AMP:-1} != 0 ]]; then
        run_hcga onednn "$src/configs/hrnet32.yml" train 8 onednn-bf16 1 bf16
        run_torch train 8 torch-bf16 "" bf16
        run_torch train 8 torch-pw-bf16 plugin bf16
    fi
done
for mode in $modes; do
    run_hcga onednn "$src/configs/synth_small.yml" "$mode" 16
    run_hcga cpu "$src/configs/synth_small.yml" "$mode" 16
done
echo "ratios (images/s):"
for mode in $modes; do
    echo "  hrnet32 $mode: onednn/torch $(ratio "${ips[onednn hrnet32 $mode]}" "${ips[torch hrnet32 $mode]}"), onednn/torch-passive $(ratio "${ips[onednn hrnet32 $mode]}" "${ips[torch-pw hrnet32 $mode]}"), cpu/torch $(ratio "${ips[cpu hrnet32 $mode]}" "${ips[torch hrnet32 $mode]}"), onednn/cpu $(ratio "${ips[onednn hrnet32 $mode]}" "${ips[cpu hrnet32 $mode]}")"
    if [[ $mode == train && ${BENCH_AMP:-1} != 0 ]]; then
        b=${ips[onednn-bf16 hrnet32 train]}
        echo "  hrnet32 train bf16: onednn-bf16/torch-bf16 $(ratio "$b" "${ips[torch-bf16 hrnet32 train]}"), onednn-bf16/torch-passive-bf16 $(ratio "$b" "${ips[torch-pw-bf16 hrnet32 train]}"), onednn-bf16/torch(f32) $(ratio "$b" "${ips[torch hrnet32 train]}"), onednn-bf16/onednn(f32) $(ratio "$b" "${ips[onednn hrnet32 train]}")"
    fi
    [[ $mode == eval ]] && echo "  hrnet32 eval: onednn fused/op-by-op $(ratio "${ips[onednn hrnet32 eval]}" "${ips[onednn-nf hrnet32 eval]}"), onednn-op-by-op/torch-passive $(ratio "${ips[onednn-nf hrnet32 eval]}" "${ips[torch-pw hrnet32 eval]}")"
    echo "  synth_small $mode: onednn/cpu $(ratio "${ips[onednn synth_small $mode]}" "${ips[cpu synth_small $mode]}")"
done
echo "logs: $out"
