# conformance/conformance.mk: the backend conformance suite (`hcga conformance`).
# Its sources go into libhcga_cli.la (the program's commands); see conformance/README.md.
AM_CPPFLAGS += -DHCGA_PKGDATADIR='"$(pkgdatadir)"'
CONF_SRCS += conformance/shapefile.c conformance/shapefile.h \
	conformance/conformance.h conformance/conf_internal.h conformance/conformance.c \
	conformance/harness.c conformance/test_mode.c conformance/grad.c conformance/perf.c \
	conformance/badargs.c conformance/repro.c conformance/report.c \
	conformance/cmd_conformance.c
# `hcga shapes` writes shape files from the model's graphs: it needs the whole
# library, so it is not in CONF_SRCS (which test_conformance links on its own).
CLI_SRCS += conformance/cmd_shapes.c

# Shape files, installed under $(pkgdatadir)/shapes.
conformance_shapesdir = $(pkgdatadir)/shapes
dist_conformance_shapes_DATA = conformance/shapes/quick.txt conformance/shapes/edge.txt \
	conformance/shapes/hcga_w32_b2.txt conformance/shapes/hcga_tiny_b2.txt
EXTRA_DIST += conformance/README.md

# ---- unit tests ----
check_PROGRAMS += conformance/test_shapefile
TESTS += conformance/test_shapefile
conformance_test_shapefile_SOURCES = conformance/test_shapefile.c conformance/shapefile.c \
	conformance/shapefile.h
conformance_test_shapefile_CFLAGS = $(TEST_CFLAGS)
conformance_test_shapefile_LDADD = tests/libhcgatest.la $(CHECK_LIBS) $(LIBS)

# The harness can fail: a backend with planted bugs, loaded by test_conformance.
check_LTLIBRARIES += conformance/hcga_backend_broken.la
conformance_hcga_backend_broken_la_SOURCES = conformance/broken_plugin.c
conformance_hcga_backend_broken_la_LDFLAGS = -module -avoid-version -no-undefined -rpath /nowhere
conformance_hcga_backend_broken_la_LIBADD = -lm

check_PROGRAMS += conformance/test_conformance
TESTS += conformance/test_conformance
conformance_test_conformance_SOURCES = conformance/test_conformance.c $(CONF_SRCS) \
	frontend/backend/plugin_loader.c frontend/util/progress.c
conformance_test_conformance_CFLAGS = $(TEST_CFLAGS)
conformance_test_conformance_LDADD = tests/libhcgatest.la $(CHECK_LIBS) $(LIBS)

# make check: `hcga conformance --quick` in test and grad modes on the CPU and on
# every other backend that `hcga backends` reports ok (skipped otherwise).
TESTS += conformance/check_cpu.sh conformance/check_backends.sh
EXTRA_DIST += conformance/check_cpu.sh conformance/check_backends.sh \
	conformance/broken_plugin.c
