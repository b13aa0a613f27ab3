# frontend/data/data.mk: images, synthetic benchmark, datasets, augmentation
DATA_SRCS += frontend/data/image_io.c frontend/data/image_io.h frontend/data/rng.h \
	frontend/data/synth.c frontend/data/synth.h \
	frontend/data/dataset.c frontend/data/dataset.h
check_PROGRAMS += tests/test_dataset
TESTS += tests/test_dataset
tests_test_dataset_CFLAGS = $(TEST_CFLAGS)
