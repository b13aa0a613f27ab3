# frontend/dist/dist.mk: the ranks of a data-parallel run (MPI when configure
# found it; a single rank otherwise), below training and evaluation.
DIST_SRCS += frontend/dist/dist.c frontend/dist/dist.h
