# frontend/data.mk: images, synthetic benchmark, datasets, augmentation
DATA_SRCS += frontend/image_io.c frontend/image_io.h frontend/rng.h \
	frontend/synth.c frontend/synth.h
DATA_SRCS += frontend/dataset.c frontend/dataset.h
check_PROGRAMS += tests/test_dataset
TESTS += tests/test_dataset
tests_test_dataset_SOURCES = tests/test_dataset.c
tests_test_dataset_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_test_dataset_LDADD = libhcga.la $(CHECK_LIBS)
