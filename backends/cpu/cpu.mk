# backends/cpu/cpu.mk - the reference CPU backend plugin (pthreads + OpenBLAS),
# its unit test and a perf probe.
pkglib_LTLIBRARIES += hcga_backend_cpu.la
hcga_backend_cpu_la_SOURCES = backends/cpu/cpu_backend.c backends/cpu/cpu_ops.c \
	backends/cpu/cpu_pool.c backends/cpu/cpu_internal.h backends/cpu/cpu_ops.h \
	backends/cpu/cpu_kernels.h
hcga_backend_cpu_la_CFLAGS = $(AM_CFLAGS) $(OPENBLAS_CFLAGS) -fvisibility=hidden \
	-fvect-cost-model=dynamic -fno-math-errno
hcga_backend_cpu_la_LDFLAGS = -module -avoid-version -no-undefined
hcga_backend_cpu_la_LIBADD = libhcga_contract.la $(OPENBLAS_LIBS) -lpthread -lm

# Unit test: loads the plugin through the real loader (libhcga).
check_PROGRAMS += tests/test_cpu_ops
TESTS += tests/test_cpu_ops
tests_test_cpu_ops_CFLAGS = $(TEST_CFLAGS)

# Perf probe (not a test): backends/cpu/cpu_perf [threads] [reps] [plugin.so]
check_PROGRAMS += backends/cpu/cpu_perf
backends_cpu_cpu_perf_SOURCES = backends/cpu/cpu_perf.c
backends_cpu_cpu_perf_CFLAGS = $(AM_CFLAGS) $(OPENBLAS_CFLAGS)
backends_cpu_cpu_perf_LDADD = $(OPENBLAS_LIBS) -ldl -lm
