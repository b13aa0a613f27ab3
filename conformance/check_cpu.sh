#!/bin/sh
# make check: the quick conformance suite on the CPU backend: test, grad and badargs modes.
HCGA=${HCGA:-./hcga}
status=0
for mode in test grad badargs; do
    echo "== $HCGA --backend cpu conformance --quick --mode $mode"
    "$HCGA" --backend cpu conformance --quick --mode "$mode" || status=1
done
exit $status
