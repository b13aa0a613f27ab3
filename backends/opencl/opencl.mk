# backends/opencl/opencl.mk - the OpenCL backend plugin (OpenCL 1.2 kernels,
# GEMM and im2col/col2im through CLBlast) and its tests.
#
# The kernel sources stay real files under backends/opencl/kernels/ (plus the
# shared backends/common/kernels/hcga_kmath.h); cl2c.sh turns them into C
# strings at build time (backends/opencl/ocl_kernels_src.c in the build
# tree), so the plugin needs no files at run time.
OCL_KERNEL_SRCS = \
	backends/opencl/kernels/prelude.cl \
	backends/opencl/kernels/untyped.cl \
	backends/opencl/kernels/half.cl \
	backends/common/kernels/hcga_kmath.h \
	backends/opencl/kernels/elementwise.cl \
	backends/opencl/kernels/reduce.cl \
	backends/opencl/kernels/channel.cl \
	backends/opencl/kernels/spatial.cl \
	backends/opencl/kernels/bn.cl \
	backends/opencl/kernels/loss.cl \
	backends/opencl/kernels/conv.cl \
	backends/opencl/kernels/copy.cl
EXTRA_DIST += backends/opencl/cl2c.sh backends/opencl/README.md \
	backends/opencl/lsan.supp \
	$(OCL_KERNEL_SRCS) \
	backends/common/README.md

if HAVE_OPENCL
pkglib_LTLIBRARIES += hcga_backend_opencl.la
hcga_backend_opencl_la_SOURCES = backends/opencl/ocl_backend.c backends/opencl/ocl_ops.c \
	backends/opencl/ocl_blas.c backends/opencl/ocl_internal.h
nodist_hcga_backend_opencl_la_SOURCES = backends/opencl/ocl_kernels_src.c
hcga_backend_opencl_la_CFLAGS = $(AM_CFLAGS) -fvisibility=hidden
hcga_backend_opencl_la_LDFLAGS = -module -avoid-version -no-undefined
hcga_backend_opencl_la_LIBADD = libhcga_contract.la -lclblast -lOpenCL -lm
CLEANFILES += backends/opencl/ocl_kernels_src.c

# $^ holds the sources as found through VPATH (GNU make).
backends/opencl/ocl_kernels_src.c: backends/opencl/cl2c.sh $(OCL_KERNEL_SRCS)
	$(AM_V_GEN)$(MKDIR_P) backends/opencl && \
	$(SHELL) $(srcdir)/backends/opencl/cl2c.sh $@ $(filter-out %.sh,$^)

check_PROGRAMS += tests/test_opencl_ops
TESTS += tests/test_opencl_ops
tests_test_opencl_ops_CFLAGS = $(TEST_CFLAGS)
endif
