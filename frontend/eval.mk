# frontend/eval.mk: ReID evaluation (protocol, ARM, re-ranking)
EVAL_SRCS += frontend/eval.c frontend/eval.h
check_PROGRAMS += tests/test_eval
TESTS += tests/test_eval
tests_test_eval_SOURCES = tests/test_eval.c
tests_test_eval_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_test_eval_LDADD = libhcga.la $(CHECK_LIBS)
