# backends/cuda/cuda.mk - the CUDA backend plugin (cuDNN convolution and batch
# norm, cuBLAS GEMM, our own kernels for everything else) and its test.
#
# libtool has no CUDA tag: the .cu.lo suffix rule below calls
# backends/cuda/nvcc-lt.sh, which runs nvcc -Xcompiler -fPIC into .libs/X.o
# and writes the X.lo stub libtool's link mode reads.  The kernels form a
# noinst convenience library linked into the plugin; cudart, cuDNN and cuBLAS
# are linked into the plugin only (never into libhcga or the CLI).
CUDA_KERNEL_SRCS = backends/cuda/k_elementwise.cu backends/cuda/k_reduce.cu \
	backends/cuda/k_spatial.cu backends/cuda/k_loss.cu backends/cuda/k_half.cu \
	backends/cuda/k_bnstats.cu
CUDA_KERNEL_HDRS = backends/cuda/cuda_kernels.h backends/cuda/kcommon.cuh \
	backends/common/kernels/hcga_kmath.h
EXTRA_DIST += backends/cuda/nvcc-lt.sh backends/cuda/kcommon.cuh \
	$(CUDA_KERNEL_SRCS)

# The persisted algorithm cache file (algo=cache) is plain C: its test
# builds and runs on every machine, with or without CUDA.
check_PROGRAMS += tests/test_cuda_algo_db
TESTS += tests/test_cuda_algo_db
tests_test_cuda_algo_db_SOURCES = tests/test_cuda_algo_db.c backends/cuda/cuda_algo_db.c \
	backends/cuda/cuda_algo_db.h
tests_test_cuda_algo_db_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/backends/cuda
tests_test_cuda_algo_db_CFLAGS = $(TEST_CFLAGS)
tests_test_cuda_algo_db_LDADD = tests/libhcgatest.la $(CHECK_LIBS) -lm

if HAVE_CUDA
# Fat binary: SASS for Ampere (sm_80, sm_86) and Hopper (sm_90), plus
# compute_90 PTX that newer GPUs JIT-compile.
CUDA_GENCODE = -gencode arch=compute_80,code=sm_80 -gencode arch=compute_86,code=sm_86 \
	-gencode arch=compute_90,code=[sm_90,compute_90]
CUDA_NVCCFLAGS = -std=c++17 -O3 $(CUDA_GENCODE) -Xcompiler -Wall,-Wextra \
	-I$(top_srcdir)/plugins -I$(top_srcdir)/backends/cuda \
	-I$(top_srcdir)/backends/common/kernels $(NVCCFLAGS)

.cu.lo:
	$(AM_V_GEN)$(SHELL) $(top_srcdir)/backends/cuda/nvcc-lt.sh $@ $(NVCC) $(CUDA_NVCCFLAGS) $<

noinst_LTLIBRARIES += libhcga_cuda_kernels.la
libhcga_cuda_kernels_la_SOURCES = $(CUDA_KERNEL_SRCS) backends/cuda/cuda_kernels.h
libhcga_cuda_kernels_la_LIBTOOLFLAGS = --tag=CC
$(libhcga_cuda_kernels_la_OBJECTS): $(CUDA_KERNEL_HDRS) backends/cuda/nvcc-lt.sh
CLEANFILES += backends/cuda/*.lo backends/cuda/.libs/k_*.o

pkglib_LTLIBRARIES += hcga_backend_cuda.la
hcga_backend_cuda_la_SOURCES = backends/cuda/cuda_backend.c backends/cuda/cuda_core.c \
	backends/cuda/cuda_dnn.c backends/cuda/cuda_ops.c backends/cuda/cuda_algo_db.c \
	backends/cuda/cuda_capture.c backends/cuda/cuda_comm.c \
	backends/cuda/cuda_algo_db.h backends/cuda/cuda_internal.h \
	backends/cuda/cuda_impl.h backends/cuda/cuda_kernels.h
hcga_backend_cuda_la_CPPFLAGS = $(AM_CPPFLAGS) -I$(CUDA_HOME)/include
hcga_backend_cuda_la_CFLAGS = $(AM_CFLAGS) -fvisibility=hidden
hcga_backend_cuda_la_LDFLAGS = -module -avoid-version -no-undefined -L$(CUDA_HOME)/lib64 \
	-Wl,-rpath,$(CUDA_HOME)/lib64
if !SANITIZERS
hcga_backend_cuda_la_LDFLAGS += -Wl,--no-undefined
endif
# nvcc's host stubs use thread-safe statics (__cxa_guard_*): libstdc++.
hcga_backend_cuda_la_LIBADD = libhcga_contract.la libhcga_cuda_kernels.la -lcudnn -lcublas -lcudart -lstdc++ -lm
# NCCL (configure: found beside the toolkit or on the system paths): the
# collectives group of the plugin; without it the plugin has none.
if HAVE_NCCL
hcga_backend_cuda_la_CPPFLAGS += -DHCGA_HAVE_NCCL
hcga_backend_cuda_la_LIBADD += -lnccl
endif

# Loads the plugin through the frontend loader: without a usable GPU it must
# report CUDA's own error text and never crash; with one it also compares a
# few ops against the CPU backend.
check_PROGRAMS += tests/test_cuda_backend
TESTS += tests/test_cuda_backend
tests_test_cuda_backend_CPPFLAGS = $(AM_CPPFLAGS) -DHCGA_CUDA_LIBDIR='"$(CUDA_HOME)/lib64"'
tests_test_cuda_backend_CFLAGS = $(TEST_CFLAGS)
if HAVE_NCCL
tests_test_cuda_backend_CPPFLAGS += -DHCGA_TEST_NCCL
endif

# Measurements for scripts/gpu-check.sh (steps nccl1, waitcpu, graph): built
# by make check, never run by it (they need a GPU and print numbers).
check_PROGRAMS += tests/cuda_caps_bench
tests_cuda_caps_bench_CFLAGS = $(TEST_CFLAGS)
endif
