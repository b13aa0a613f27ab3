# frontend/eval/eval.mk: ReID evaluation: the protocol, distances and re-ranking
# (eval.h), eval-mode features and their files, and matching (features.h)
EVAL_SRCS += frontend/eval/eval.c frontend/eval/eval.h \
	frontend/eval/features.c frontend/eval/match.c frontend/eval/features.h
check_PROGRAMS += tests/test_eval
TESTS += tests/test_eval
tests_test_eval_CFLAGS = $(TEST_CFLAGS)
