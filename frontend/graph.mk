# frontend/graph.mk
