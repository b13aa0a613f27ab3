#!/bin/sh
# make check: the quick conformance suite on the CPU backend: test, grad and
# badargs modes, and test mode in bf16 and f16 (the ops with half support).
HCGA=${HCGA:-./hcga}
status=0
for mode in test grad badargs; do
    echo "== $HCGA --backend cpu conformance --quick --mode $mode"
    "$HCGA" --backend cpu conformance --quick --mode "$mode" || status=1
done
for dtype in bf16 f16; do
    echo "== $HCGA --backend cpu conformance --quick --mode test --dtype $dtype"
    "$HCGA" --backend cpu conformance --quick --mode test --dtype "$dtype" || status=1
done
exit $status
