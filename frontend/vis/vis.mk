# frontend/vis/vis.mk: pictures (co-parsing strips, ranked lists, training curves)
# drawn with cairo.
VIS_SRCS = frontend/vis/vis.c frontend/vis/vis.h
libhcga_la_SOURCES += $(VIS_SRCS)
libhcga_la_CFLAGS += $(CAIRO_CFLAGS)
libhcga_la_LIBADD += $(CAIRO_LIBS)
EXTRA_DIST += frontend/vis/vis.mk

check_PROGRAMS += tests/test_vis
TESTS += tests/test_vis
tests_test_vis_SOURCES = tests/test_vis.c
tests_test_vis_CFLAGS = $(libhcga_la_CFLAGS) $(CHECK_CFLAGS)
tests_test_vis_LDADD = libhcga.la $(CAIRO_LIBS) $(CHECK_LIBS)
