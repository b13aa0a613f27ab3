#!/usr/bin/env bash
# scripts/run.sh - install missing packages, build in _build, then run the
# main job: the conformance suite on every backend that loads on this
# machine (`hcga --backend NAME conformance`).  Unavailable backends (no GPU,
# no driver) are listed with their reason and skipped.
set -euo pipefail
# shellcheck source=scripts/common.sh
. "$(dirname "$0")/common.sh"

hcga_setup
hcga_build "$HCGA_SRC/_build"
HCGA="$HCGA_SRC/_build/hcga"

hcga_log "hcga backends"
listing=$("$HCGA" backends)
printf '%s\n' "$listing"
# "name: path" is followed by "  ok: N devices" or "  unavailable: reason"
mapfile -t ok_backends < <(printf '%s\n' "$listing" |
  awk '/^[^ ][^:]*: /{name=substr($0, 1, index($0, ":") - 1)} /^  ok: /{print name}')
if ((${#ok_backends[@]} == 0)); then
  echo "run.sh: no usable backend (see the listing above)" >&2
  exit 1
fi
if ! "$HCGA" --help | grep -q '^  conformance '; then
  echo "run.sh: this hcga has no 'conformance' command yet, so the main job cannot run" >&2
  exit 1
fi

failed=()
for be in "${ok_backends[@]}"; do
  hcga_log "hcga --backend $be conformance"
  if ! "$HCGA" --backend "$be" conformance; then
    failed+=("$be")
  fi
done
if ((${#failed[@]})); then
  echo "run.sh: conformance failed on: ${failed[*]}" >&2
  exit 1
fi
hcga_log "conformance passed on: ${ok_backends[*]}"
