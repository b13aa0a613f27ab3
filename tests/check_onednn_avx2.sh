#!/bin/sh
# tests/check_onednn_avx2.sh - the oneDNN backend's unit test again with
# oneDNN limited to AVX2 (ONEDNN_MAX_CPU_ISA=AVX2): on an AVX-512 machine
# the plugin keeps training's activations in nChw16c, on AVX2 in nChw8c
# (backends/onednn/dnn_act.c), and oneDNN picks other kernels; both paths
# must give the bits the plain path gives.  Skipped where the machine has
# no AVX2 (oneDNN then keeps no blocked activations at all).
set -eu
if ! grep -qw avx2 /proc/cpuinfo 2>/dev/null; then
  echo "check_onednn_avx2: SKIP (no AVX2 on this machine)"
  exit 77
fi
ONEDNN_MAX_CPU_ISA=AVX2 exec ./tests/test_onednn_ops
