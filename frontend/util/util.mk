# frontend/util/util.mk: helpers with no hcga dependencies (number parsing, shape
# strings, clocks; the terminal progress line of progress.h), used by every layer.
UTIL_SRCS += frontend/util/util.c frontend/util/util.h \
	frontend/util/progress.c frontend/util/progress.h
