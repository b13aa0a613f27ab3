# frontend/graph.mk: computation graph (building, autodiff, planner, executor,
# parameter store, optimizers) and its tests.
GRAPH_SRCS += frontend/graph.c frontend/graph_exec.c frontend/graph_internal.h
