#!/bin/sh
# tests/check_man3.sh - man/hcga.3 names every function include/hcga/hcga.h
# declares with HCGA_API, and renders without groff warnings.
set -eu
src=${srcdir:-.}
hdr=$src/include/hcga/hcga.h
man=$src/man/hcga.3
missing=
for f in $(sed -n 's/^HCGA_API [^(]*[ *]\(hcga_[a-z0-9_]*\)(.*/\1/p' "$hdr"); do
  grep -q "$f" "$man" || missing="$missing $f"
done
if [ -n "$missing" ]; then
  echo "check_man3: hcga.3 does not describe:$missing"
  exit 1
fi
if command -v groff >/dev/null 2>&1; then
  warn=$(groff -man -ww -z "$man" 2>&1 || true)
  [ -z "$warn" ] || { echo "check_man3: groff warnings:"; echo "$warn"; exit 1; }
fi
echo "check_man3: every HCGA_API function of hcga.h is in hcga.3"
