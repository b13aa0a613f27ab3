# frontend/loader.mk: the plugin loader (backend.h) and the command-line entry point.
LOADER_SRCS += frontend/plugin_loader.c frontend/backend.h frontend/commands.h
EXTRA_DIST += frontend/loader.mk
