#!/bin/sh
# man/check_man.sh - make check: man/hcga.1 must render without a single
# groff warning (-ww: all of them), as a typeset page and as `man` shows it
# on 80-column and wider terminals, and through `man -l` itself when man is
# installed.  Which commands and options the page must describe is
# tests/test_man.c's concern.  Exit 77 (skipped) without groff.
page=${srcdir:-.}/man/hcga.1
if ! command -v groff >/dev/null 2>&1; then
    echo "SKIP: groff is not installed"
    exit 77
fi
status=0
check() {
    what=$1
    shift
    out=$("$@" 2>&1 >/dev/null)
    if [ -n "$out" ]; then
        echo "FAIL: $what:"
        echo "$out"
        status=1
    else
        echo "ok: $what"
    fi
}
check "groff -man -ww -z" groff -man -ww -z "$page"
for ll in 78 100 120; do
    check "groff -man -ww -z -Tutf8 -rLL=${ll}n" groff -man -ww -z -Tutf8 -rLL=${ll}n "$page"
done
if command -v man >/dev/null 2>&1; then
    check "man --warnings -l (MANWIDTH=80)" env MANWIDTH=80 MAN_KEEP_FORMATTING= man --warnings -l "$page"
fi
# no line of the 80-column page is wider than the terminal
wide=$(groff -man -Tascii -P-cbou -rLL=78n "$page" 2>/dev/null | awk 'length > 80')
if [ -n "$wide" ]; then
    echo "FAIL: lines wider than 80 columns:"
    echo "$wide"
    status=1
fi
exit $status
