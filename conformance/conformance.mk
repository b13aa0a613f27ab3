# conformance/conformance.mk: the backend conformance suite (`hcga conformance`).
# Its sources go into libhcga.la; see conformance/README.md.
CONF_SRCS += conformance/shapefile.c conformance/shapefile.h

# ---- unit tests ----
check_PROGRAMS += conformance/test_shapefile
TESTS += conformance/test_shapefile
conformance_test_shapefile_SOURCES = conformance/test_shapefile.c conformance/shapefile.c \
	conformance/shapefile.h
conformance_test_shapefile_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
conformance_test_shapefile_LDADD = $(CHECK_LIBS) $(LIBS)
