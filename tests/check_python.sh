#!/bin/sh
# tests/check_python.sh - make check: the Python binding (python/hcga) on the
# library of this build tree.  Runs python/tests with pytest against
# .libs/libhcga.so.0 and the build's plugins, using the build's ./hcga to
# make the synthetic benchmark, train a tiny model and save `hcga test`'s
# features in a temporary directory.  Skips (77) only when there is no
# python3, or no python3 with numpy and pytest (scripts/deps.sh installs
# python3-numpy and python3-pytest, so CI runs it).  $PYTHON picks the
# interpreter; otherwise the first of python3 on PATH and /usr/bin/python3
# that has both.
set -u
srcdir=$(cd "${srcdir:-.}" && pwd)
build=$(pwd)
lib=$build/.libs/libhcga.so.0
[ -e "$lib" ] || { echo "check_python: $lib not built"; exit 1; }

py=
seen=
for cand in ${PYTHON:-} python3 /usr/bin/python3; do
    command -v "$cand" >/dev/null 2>&1 || continue
    seen="$seen $cand"
    if "$cand" -c 'import numpy, pytest' >/dev/null 2>&1; then
        py=$cand
        break
    fi
done
if [ -z "$py" ]; then
    if [ -z "$seen" ]; then
        echo "check_python: SKIP: no python3"
    else
        for cand in $seen; do
            why=$("$cand" -c 'import numpy, pytest' 2>&1 | tail -n 1)
            echo "check_python: SKIP: $cand: $why"
        done
        echo "check_python: install python3-numpy python3-pytest (scripts/deps.sh)"
    fi
    exit 77
fi

HCGA_LIBRARY=$lib
HCGA_PLUGIN_PATH=$build/.libs
HCGA_BIN=$build/hcga
HCGA_CONFIG=$srcdir/configs/hrnet_tiny.yml
PYTHONPATH=$srcdir/python${PYTHONPATH:+:$PYTHONPATH}
PYTHONDONTWRITEBYTECODE=1 # nothing written into the source tree
export HCGA_LIBRARY HCGA_PLUGIN_PATH HCGA_BIN HCGA_CONFIG PYTHONPATH PYTHONDONTWRITEBYTECODE

# An --enable-sanitizers library needs the ASan runtime loaded first: preload
# it into Python (whose own allocations are not ours to leak-check).
asan=$(ldd "$lib" 2>/dev/null | awk '$1 ~ /^libasan\.so/ {print $3; exit}')
if [ -n "$asan" ]; then
    LD_PRELOAD=$asan${LD_PRELOAD:+:$LD_PRELOAD}
    ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0
    export LD_PRELOAD ASAN_OPTIONS
    echo "check_python: sanitizer build: LD_PRELOAD=$LD_PRELOAD ASAN_OPTIONS=$ASAN_OPTIONS"
fi

echo "check_python: $py ($("$py" -c 'import sys, numpy, pytest; print(sys.version.split()[0], "numpy", numpy.__version__, "pytest", pytest.__version__)'))"
cd "${TMPDIR:-/tmp}" || exit 1 # pytest's own files (rootdir, cache) stay out of both trees
exec "$py" -m pytest -v -s -p no:cacheprovider "$srcdir/python/tests"
