#!/bin/sh
# make check: the quick conformance suite (test, grad and badargs modes) on every
# backend other than cpu that `hcga backends` reports ok.  Exit 77 (skip) with
# the reasons when there is none.
HCGA=${HCGA:-./hcga}
list=$("$HCGA" backends) || { echo "'$HCGA backends' failed"; exit 99; }
# "name: path" lines, each followed by "  ok: ..." or "  unavailable: reason"
ok=$(printf '%s\n' "$list" | awk '
    /^[^ ]/ { name = $0; sub(/:.*/, "", name); next }
    /^  ok/ { if (name != "cpu") print name; next }
    /^  unavailable: / { r = $0; sub(/^  unavailable: /, "", r);
                         print "skip " name ": " r > "/dev/stderr" }')
if [ -z "$ok" ]; then
    echo "SKIP: no backend other than cpu is available (reasons above)"
    exit 77
fi
status=0
for be in $ok; do
    for mode in test grad badargs; do
        echo "== $HCGA --backend $be conformance --quick --mode $mode"
        "$HCGA" --backend "$be" conformance --quick --mode "$mode" || status=1
    done
done
exit $status
