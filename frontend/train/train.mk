# frontend/train/train.mk: the training run (train.h) and co-parsing (coparse.h)
TRAIN_SRCS += frontend/train/train.c frontend/train/train.h \
	frontend/train/coparse.c frontend/train/coparse.h \
	frontend/train/ddp.c frontend/train/ddp.h
TRAIN_TESTS = tests/test_coparse tests/test_train tests/test_train_backends tests/test_pretrain
check_PROGRAMS += $(TRAIN_TESTS)
TESTS += $(TRAIN_TESTS)
tests_test_coparse_CFLAGS = $(TEST_CFLAGS)
tests_test_pretrain_CFLAGS = $(TEST_CFLAGS)
tests_test_train_CFLAGS = $(TEST_CFLAGS)
tests_test_train_backends_CFLAGS = $(TEST_CFLAGS)

# data-parallel training under mpirun (built when configure found MPI)
if HAVE_MPI
check_PROGRAMS += tests/test_dist_train
TESTS += tests/test_dist_train
tests_test_dist_train_CFLAGS = $(TEST_CFLAGS) -DHCGA_MPIRUN='"$(MPIRUN)"'
endif
