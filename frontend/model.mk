# frontend/model.mk: the HCGA network builder, checkpoint I/O and the model commands
MODEL_SRCS += frontend/model.c frontend/model.h frontend/model_io.c frontend/model_io.h
MODEL_SRCS += frontend/model_cli.c frontend/model_cli.h frontend/cmd_forward.c \
	frontend/cmd_compare.c frontend/cmd_bench.c frontend/cmd_shapes.c

# golden test: the model on every loadable backend against the reference PyTorch tensors
check_PROGRAMS += tests/test_golden
TESTS += tests/test_golden
tests_test_golden_SOURCES = tests/test_golden.c
tests_test_golden_CFLAGS = $(libhcga_la_CFLAGS) $(CHECK_CFLAGS)
tests_test_golden_LDADD = libhcga.la $(CHECK_LIBS)
