# frontend/vis/vis.mk: pictures (co-parsing strips, ranked lists, training curves)
# drawn with cairo.
VIS_SRCS = frontend/vis/vis.c frontend/vis/vis.h
libhcga_core_la_SOURCES += $(VIS_SRCS)
libhcga_core_la_CFLAGS += $(CAIRO_CFLAGS)
libhcga_core_la_LIBADD += $(CAIRO_LIBS)

check_PROGRAMS += tests/test_vis
TESTS += tests/test_vis
tests_test_vis_CFLAGS = $(TEST_CFLAGS)
tests_test_vis_LDADD = $(LDADD) $(CAIRO_LIBS)
