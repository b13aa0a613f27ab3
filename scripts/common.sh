# shellcheck shell=bash
# scripts/common.sh - shared set-up for scripts/run.sh and scripts/test.sh:
# install missing packages, regenerate the build system, configure and build
# out of tree under the clone (_build, _build-asan).  Sourced, not run.

HCGA_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HCGA_JOBS=${HCGA_JOBS:-$(nproc 2>/dev/null || echo 2)}
# shellcheck source=scripts/deps.sh
. "$HCGA_SRC/scripts/deps.sh"

hcga_log() { printf '== %s: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

hcga_autoreconf() {
  # Several builds may share one checkout: serialise autoreconf.
  if [[ ! -x "$HCGA_SRC/configure" ]]; then
    hcga_log "autoreconf -fi"
    if command -v flock >/dev/null 2>&1; then
      (cd "$HCGA_SRC" && flock "${TMPDIR:-/tmp}/hcga-autoreconf.lock" autoreconf -fi)
    else
      (cd "$HCGA_SRC" && autoreconf -fi)
    fi
  fi
}

# hcga_build DIR [configure args...]: configure (once) and make in DIR.
hcga_build() {
  local dir=$1
  shift
  mkdir -p "$dir"
  if [[ ! -f "$dir/Makefile" ]]; then
    hcga_log "configure $* (in ${dir#"$HCGA_SRC"/})"
    (cd "$dir" && "$HCGA_SRC/configure" -q "$@")
  fi
  hcga_log "make -j$HCGA_JOBS (in ${dir#"$HCGA_SRC"/})"
  make -C "$dir" -j"$HCGA_JOBS" -s
}

hcga_setup() {
  hcga_deps_install
  hcga_autoreconf
}
