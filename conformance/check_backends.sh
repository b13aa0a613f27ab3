#!/bin/sh
# make check: the quick conformance suite (test and grad modes in f32 and f64,
# badargs mode, test mode in bf16 and f16) on every backend other than cpu that `hcga backends`
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
    # test and grad in f32 and f64 (f64 is where a backend's own f64 path,
    # e.g. onednn's plain C, is exercised)
    for mode in test grad; do
        echo "== $HCGA --backend $be conformance --quick --mode $mode --dtype both"
        "$HCGA" --backend "$be" conformance --quick --mode "$mode" --dtype both || status=1
    done
    echo "== $HCGA --backend $be conformance --quick --mode badargs"
    "$HCGA" --backend "$be" conformance --quick --mode badargs || status=1
    # bf16 is mandatory on the ops with half support; f16 may be skipped with
    # the backend's reason (a device without 16-bit floats)
    for dtype in bf16 f16; do
        echo "== $HCGA --backend $be conformance --quick --mode test --dtype $dtype"
        "$HCGA" --backend "$be" conformance --quick --mode test --dtype "$dtype" || status=1
    done
done
exit $status
