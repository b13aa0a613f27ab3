# frontend/train/train.mk: the training run (train.h) and co-parsing (coparse.h)
TRAIN_SRCS += frontend/train/train.c frontend/train/train.h \
	frontend/train/coparse.c frontend/train/coparse.h
EXTRA_DIST += frontend/train/train.mk
check_PROGRAMS += tests/test_coparse
TESTS += tests/test_coparse
tests_test_coparse_SOURCES = tests/test_coparse.c
tests_test_coparse_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_test_coparse_LDADD = libhcga.la $(CHECK_LIBS)
check_PROGRAMS += tests/test_train
TESTS += tests/test_train
tests_test_train_SOURCES = tests/test_train.c
tests_test_train_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_test_train_LDADD = libhcga.la $(CHECK_LIBS)
check_PROGRAMS += tests/test_train_backends
TESTS += tests/test_train_backends
tests_test_train_backends_SOURCES = tests/test_train_backends.c
tests_test_train_backends_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_test_train_backends_LDADD = libhcga.la $(CHECK_LIBS) -lm
