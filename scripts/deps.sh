#!/usr/bin/env bash
# scripts/deps.sh - the ONE list of Debian packages hcga needs, and an
# installer for the missing ones.  Sourced by scripts/run.sh, scripts/test.sh
# and .ci/run; run it directly to install what is missing:
#     scripts/deps.sh            install missing packages (as root or via sudo)
#     scripts/deps.sh --list     print the list
#     scripts/deps.sh --check    exit 1 and name the missing ones
#
# Why each package is needed (see README.md, "Dependencies"):
HCGA_DEPS=(
  gcc make                          # C11 compiler and make
  autoconf automake libtool pkg-config   # the build system (autoreconf -fi)
  check                             # unit tests (make check)
  libopenblas-dev                   # CPU backend: sgemm/dgemm
  libjansson-dev                    # safetensors JSON header
  libyaml-dev                       # the reference's yacs YAML configs
  libpng-dev libjpeg62-turbo-dev    # dataset images and pseudo labels
  libcairo2-dev libfontconfig-dev   # pictures (hcga parse, ranked lists, curves): text, anti-aliasing
  pocl-opencl-icd ocl-icd-opencl-dev opencl-headers clinfo   # OpenCL backend on the CPU (PoCL)
  libclblast-dev                    # OpenCL backend: GEMM
  libdnnl-dev                       # oneDNN backend (backends/onednn): oneDNN 2.6 convolutions, GEMM, BN on the CPU
  clang libclang-rt-14-dev          # libFuzzer targets
  openmpi-bin libopenmpi-dev        # data-parallel training: mpirun, MPI (tests/test_dist_train)
  python3-numpy python3-pytest      # the Python binding's tests (tests/check_python.sh skips without them)
  man-db groff-base                 # man hcga / man 3 hcga in installcheck; groff checks the man pages
)
# CUDA + cuDNN are not Debian packages: the CUDA backend is built when
# configure finds /usr/local/cuda (or --with-cuda=DIR), skipped otherwise.

hcga_deps_missing() {
  local p missing=()
  if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "deps.sh: no dpkg-query (not Debian?): not checking packages; configure will report what is missing" >&2
    return 0
  fi
  for p in "${HCGA_DEPS[@]}"; do
    if [[ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" != installed ]]; then
      missing+=("$p")
    fi
  done
  ((${#missing[@]} == 0)) || printf '%s\n' "${missing[@]}"
}

hcga_deps_install() {
  local missing
  mapfile -t missing < <(hcga_deps_missing)
  if ((${#missing[@]} == 0)); then
    return 0
  fi
  echo "deps.sh: installing missing packages: ${missing[*]}" >&2
  local sudo=()
  if ((EUID != 0)); then
    if command -v sudo >/dev/null 2>&1; then
      sudo=(sudo)
    else
      echo "deps.sh: not root and no sudo; run as root: apt-get install -y ${missing[*]}" >&2
      return 1
    fi
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -q
  "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  case "${1:-}" in
    --list) printf '%s\n' "${HCGA_DEPS[@]}" ;;
    --check)
      m=$(hcga_deps_missing)
      if [[ -n "$m" ]]; then echo "missing: ${m//$'\n'/ }"; exit 1; fi
      echo "all ${#HCGA_DEPS[@]} packages installed" ;;
    "") hcga_deps_install ;;
    *) echo "usage: scripts/deps.sh [--list|--check]" >&2; exit 2 ;;
  esac
fi
