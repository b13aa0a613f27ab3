# backends/onednn/onednn.mk - the oneDNN backend plugin (oneDNN 2.6 C API on
# the CPU, plain C with OpenMP for the rest), built when configure finds
# libdnnl (apt-get install libdnnl-dev).  `make check` runs its conformance
# through conformance/check_backends.sh (every backend `hcga backends`
# reports ok) and its unit test.
EXTRA_DIST += backends/onednn/README.md tests/check_onednn_avx2.sh

if HAVE_ONEDNN
# Two modules: hcga loads the shim hcga_backend_onednn.so (links neither
# oneDNN nor OpenMP), which sets OMP_WAIT_POLICY=passive before it loads the
# implementation hcga_onednn_impl.so from its own directory (dnn_shim.c
# says why).  The loader only looks at hcga_backend_*.so files.
pkglib_LTLIBRARIES += hcga_backend_onednn.la hcga_onednn_impl.la
hcga_backend_onednn_la_SOURCES = backends/onednn/dnn_shim.c backends/onednn/dnn_internal.h
hcga_backend_onednn_la_CFLAGS = $(AM_CFLAGS) -fvisibility=hidden
hcga_backend_onednn_la_LDFLAGS = -module -avoid-version -no-undefined
hcga_onednn_impl_la_SOURCES = backends/onednn/dnn_backend.c backends/onednn/dnn_prims.c \
	backends/onednn/dnn_blocked.c backends/onednn/dnn_blocked.h backends/onednn/dnn_act.c \
	backends/onednn/dnn_plain.c backends/onednn/dnn_plain_k.h backends/onednn/dnn_internal.h
hcga_onednn_impl_la_CFLAGS = $(AM_CFLAGS) $(ONEDNN_CFLAGS) $(OPENMP_CFLAGS) -fvisibility=hidden \
	-fno-math-errno -ftree-vectorize -fvect-cost-model=dynamic -funswitch-loops
hcga_onednn_impl_la_LDFLAGS = -module -avoid-version -no-undefined $(OPENMP_CFLAGS)
hcga_onednn_impl_la_LIBADD = libhcga_contract.la $(ONEDNN_LIBS) -lm

check_PROGRAMS += tests/test_onednn_ops
TESTS += tests/test_onednn_ops tests/check_onednn_avx2.sh
tests_test_onednn_ops_CFLAGS = $(TEST_CFLAGS)
endif
