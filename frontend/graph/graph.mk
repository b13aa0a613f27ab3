# frontend/graph/graph.mk: computation graph (building, autodiff, planner, executor,
# parameter store, optimizers) and its tests.
GRAPH_SRCS += frontend/graph/graph.c frontend/graph/graph_exec.c frontend/graph/graph_internal.h \
	frontend/graph/graph.h

check_PROGRAMS += tests/test_graph tests/test_planner tests/test_fusion
TESTS += tests/test_graph tests/test_planner tests/test_fusion
tests_test_graph_CFLAGS = $(TEST_CFLAGS)
tests_test_planner_CFLAGS = $(TEST_CFLAGS)
tests_test_fusion_CFLAGS = $(TEST_CFLAGS)
