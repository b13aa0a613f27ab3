# frontend/model/model.mk: the HCGA network builder (model.h), state dicts and
# graph values in and out of safetensors (model_io.h), training checkpoints
# (checkpoint.h) and the safetensors reader/writer itself.
MODEL_SRCS += frontend/model/model.c frontend/model/model.h \
	frontend/model/model_io.c frontend/model/model_io.h \
	frontend/model/checkpoint.c frontend/model/checkpoint.h \
	frontend/model/safetensors.c frontend/model/safetensors.h
EXTRA_DIST += frontend/model/model.mk

check_PROGRAMS += tests/test_safetensors
TESTS += tests/test_safetensors
tests_test_safetensors_SOURCES = tests/test_safetensors.c
tests_test_safetensors_CFLAGS = $(libhcga_la_CFLAGS) $(CHECK_CFLAGS)
tests_test_safetensors_LDADD = libhcga.la $(CHECK_LIBS)

# golden test: the model on every loadable backend against the reference PyTorch tensors
check_PROGRAMS += tests/test_golden
TESTS += tests/test_golden
tests_test_golden_SOURCES = tests/test_golden.c
tests_test_golden_CFLAGS = $(libhcga_la_CFLAGS) $(CHECK_CFLAGS)
tests_test_golden_LDADD = libhcga.la $(CHECK_LIBS)
