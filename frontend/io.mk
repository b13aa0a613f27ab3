# frontend/io.mk: safetensors reader/writer, yacs-style configuration, `hcga config`.
IO_SRCS += frontend/safetensors.c frontend/safetensors.h

check_PROGRAMS += tests/test_safetensors
TESTS += tests/test_safetensors
tests_test_safetensors_SOURCES = tests/test_safetensors.c
tests_test_safetensors_CFLAGS = $(libhcga_la_CFLAGS) $(CHECK_CFLAGS)
tests_test_safetensors_LDADD = libhcga.la $(CHECK_LIBS)
