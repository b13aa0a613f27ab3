# frontend/api/api.mk: libhcga, the installed shared library of the public C
# API (include/hcga/hcga.h).  It holds the API's own files plus the whole
# frontend (libhcga_core.la) and exports exactly the functions the header
# declares with HCGA_API: the list is made from the header at build time
# (frontend/api/hcga.sym), so the header is the one place that says what is
# public; tests/check_exports.sh compares the library's dynamic symbols with
# it.  libhcga.so.0: bump -version-info's first number when a public struct
# or signature changes.
lib_LTLIBRARIES += libhcga.la
libhcga_la_SOURCES = frontend/api/api_internal.h frontend/api/api_model.c frontend/api/api_match.c \
	frontend/api/api_gallery.c
libhcga_la_CFLAGS = $(libhcga_core_la_CFLAGS)
libhcga_la_LIBADD = libhcga_core.la
libhcga_la_LDFLAGS = -version-info 0:0:0 -no-undefined -Wl,-z,defs -export-symbols frontend/api/hcga.sym
libhcga_la_DEPENDENCIES = libhcga_core.la frontend/api/hcga.sym
hcgaincludedir = $(includedir)/hcga
hcgainclude_HEADERS = include/hcga/hcga.h
CLEANFILES += frontend/api/hcga.sym

# every line of the header that starts "HCGA_API <type> name(" declares one export
frontend/api/hcga.sym: $(top_srcdir)/include/hcga/hcga.h
	@$(MKDIR_P) frontend/api
	$(AM_V_GEN)sed -n 's/^HCGA_API [^(]*[ *]\(hcga_[a-z0-9_]*\)(.*/\1/p' $< > $@.tmp && mv $@.tmp $@

pkgconfigdir = $(libdir)/pkgconfig
pkgconfig_DATA = frontend/api/hcga.pc
