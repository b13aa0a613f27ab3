# frontend/util/util.mk: helpers with no hcga dependencies (number parsing, shape
# strings, clocks), used by every layer.
UTIL_SRCS += frontend/util/util.c frontend/util/util.h
