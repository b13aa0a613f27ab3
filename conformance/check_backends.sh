#!/bin/sh
# make check: the quick conformance suite (test, grad and badargs modes, test
# mode in bf16 and f16) on every backend other than cpu that `hcga backends`
# reports ok.  Exit 77 (skip) with the reasons when there is none.
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
    # bf16 is mandatory on the ops with half support; f16 may be skipped with
    # the backend's reason (a device without 16-bit floats)
    for dtype in bf16 f16; do
        echo "== $HCGA --backend $be conformance --quick --mode test --dtype $dtype"
        "$HCGA" --backend "$be" conformance --quick --mode test --dtype "$dtype" || status=1
    done
done
exit $status
