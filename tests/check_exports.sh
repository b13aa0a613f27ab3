#!/bin/sh
# tests/check_exports.sh - libhcga.so exports exactly the functions that
# include/hcga/hcga.h declares with HCGA_API (all named hcga_*), and its
# SONAME is libhcga.so.<major>.  Run by make check from the build tree.
set -eu
lib=.libs/libhcga.so
hdr=${srcdir:-.}/include/hcga/hcga.h
[ -e "$lib" ] || { echo "check_exports: $lib not built"; exit 1; }
want=$(sed -n 's/^HCGA_API [^(]*[ *]\(hcga_[a-z0-9_]*\)(.*/\1/p' "$hdr" | sort)
have=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TWDBRV]$/ {print $3}' | sed 's/@.*//' | sort -u)
if [ "$want" != "$have" ]; then
  echo "check_exports: libhcga.so's exports differ from hcga.h's HCGA_API functions"
  echo "only in the library:"; printf '%s\n' "$have" | grep -vxF "$want" || true
  echo "only in the header:"; printf '%s\n' "$want" | grep -vxF "$have" || true
  exit 1
fi
if printf '%s\n' "$have" | grep -v '^hcga_' >/dev/null; then
  echo "check_exports: a symbol without the hcga_ prefix"; exit 1
fi
[ "$(printf '%s\n' "$want" | wc -l)" -ge 20 ] || { echo "check_exports: fewer than 20 API functions?"; exit 1; }
soname=$(objdump -p "$lib" | awk '$1 == "SONAME" {print $2}')
case "$soname" in libhcga.so.[0-9]*) ;; *) echo "check_exports: SONAME '$soname'"; exit 1 ;; esac
echo "check_exports: $(printf '%s\n' "$have" | wc -l) symbols, all declared in hcga.h; SONAME $soname"
