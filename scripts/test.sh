#!/usr/bin/env bash
# scripts/test.sh - install missing packages, then `make check` twice (and,
# after the first, `make install installcheck` into a temporary DESTDIR):
# a normal build in _build and an -fsanitize=address,undefined build in
# _build-asan (./configure --enable-sanitizers).  Prints the logs of failed
# tests.
set -euo pipefail
# shellcheck source=scripts/common.sh
. "$(dirname "$0")/common.sh"

# check_dir DIR: make check, showing the failed tests' logs on failure.
check_dir() {
  local dir=$1
  hcga_log "make check (in ${dir#"$HCGA_SRC"/})"
  if ! make -C "$dir" -j"$HCGA_JOBS" -s check; then
    local trs
    while IFS= read -r -d '' trs; do
      if grep -q -E '^:test-result: (FAIL|ERROR)' "$trs"; then
        echo "---- ${trs%.trs}.log" >&2
        tail -n 60 "${trs%.trs}.log" >&2
      fi
    done < <(find "$dir" -name '*.trs' -print0)
    echo "test.sh: make check failed in $dir" >&2
    return 1
  fi
}

start=$SECONDS
hcga_setup
hcga_build "$HCGA_SRC/_build"
check_dir "$HCGA_SRC/_build"

# The installed files as a user gets them: a program built with
# `cc $(pkg-config --cflags --libs hcga)` ranks a gallery; man pages open.
inst=$(mktemp -d /tmp/hcga-install.XXXXXX)
hcga_log "make install + installcheck (DESTDIR=$inst)"
make -C "$HCGA_SRC/_build" -s install DESTDIR="$inst" >/dev/null
make -C "$HCGA_SRC/_build" -s installcheck DESTDIR="$inst"
rm -rf "$inst"

# Sanitizers: UBSan aborts on the first report (-fno-sanitize-recover);
# ASan also checks leaks at exit.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
hcga_build "$HCGA_SRC/_build-asan" --enable-sanitizers
check_dir "$HCGA_SRC/_build-asan"
hcga_log "all tests passed ($((SECONDS - start)) s)"
