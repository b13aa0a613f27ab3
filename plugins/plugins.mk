# plugins/plugins.mk: the plugin SDK.  hcga_plugin.h is installed (Makefile.am);
# the template backend is built by `make check` only, so it keeps compiling
# against the header, and is never installed or loaded by default.
check_LTLIBRARIES += plugins/template/hcga_backend_template.la
plugins_template_hcga_backend_template_la_SOURCES = plugins/template/template_backend.c
plugins_template_hcga_backend_template_la_LDFLAGS = -module -avoid-version -no-undefined -rpath /nowhere
plugins_template_hcga_backend_template_la_LIBADD = libhcga_contract.la
EXTRA_DIST += plugins/README.md plugins/template/README.md
