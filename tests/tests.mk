# tests/tests.mk: loader and CLI tests, with the fake plugins they load.

# ---- fake plugins (tests/fake_plugin.c, one -D variant each) ----
FAKE_PLUGIN_LDFLAGS = -module -avoid-version -no-undefined -rpath /nowhere
check_LTLIBRARIES += tests/hcga_backend_fake_good.la tests/hcga_backend_fake_major.la \
	tests/hcga_backend_fake_size.la tests/hcga_backend_fake_nosym.la \
	tests/hcga_backend_fake_missinglib.la tests/hcga_backend_fake_newminor.la \
	tests/hcga_backend_fake_probefail.la tests/hcga_backend_fake_misnamed.la \
	tests/hcga_backend_fake_caps.la tests/hcga_backend_fake_v11.la \
	tests/hcga_backend_fake_partial.la
tests_hcga_backend_fake_good_la_SOURCES = tests/fake_plugin.c
tests_hcga_backend_fake_good_la_CPPFLAGS = $(AM_CPPFLAGS) -DFAKE_GOOD
tests_hcga_backend_fake_good_la_LDFLAGS = $(FAKE_PLUGIN_LDFLAGS)
tests_hcga_backend_fake_major_la_SOURCES = tests/fake_plugin.c
tests_hcga_backend_fake_major_la_CPPFLAGS = $(AM_CPPFLAGS) -DFAKE_MAJOR
tests_hcga_backend_fake_major_la_LDFLAGS = $(FAKE_PLUGIN_LDFLAGS)
tests_hcga_backend_fake_size_la_SOURCES = tests/fake_plugin.c
tests_hcga_backend_fake_size_la_CPPFLAGS = $(AM_CPPFLAGS) -DFAKE_SIZE
tests_hcga_backend_fake_size_la_LDFLAGS = $(FAKE_PLUGIN_LDFLAGS)
tests_hcga_backend_fake_nosym_la_SOURCES = tests/fake_plugin.c
tests_hcga_backend_fake_nosym_la_CPPFLAGS = $(AM_CPPFLAGS) -DFAKE_NOSYM
tests_hcga_backend_fake_nosym_la_LDFLAGS = $(FAKE_PLUGIN_LDFLAGS)
tests_hcga_backend_fake_newminor_la_SOURCES = tests/fake_plugin.c
tests_hcga_backend_fake_newminor_la_CPPFLAGS = $(AM_CPPFLAGS) -DFAKE_NEWMINOR
tests_hcga_backend_fake_newminor_la_LDFLAGS = $(FAKE_PLUGIN_LDFLAGS)
tests_hcga_backend_fake_probefail_la_SOURCES = tests/fake_plugin.c
tests_hcga_backend_fake_probefail_la_CPPFLAGS = $(AM_CPPFLAGS) -DFAKE_PROBEFAIL
tests_hcga_backend_fake_probefail_la_LDFLAGS = $(FAKE_PLUGIN_LDFLAGS)
tests_hcga_backend_fake_misnamed_la_SOURCES = tests/fake_plugin.c
tests_hcga_backend_fake_misnamed_la_CPPFLAGS = $(AM_CPPFLAGS) -DFAKE_MISNAMED
tests_hcga_backend_fake_misnamed_la_LDFLAGS = $(FAKE_PLUGIN_LDFLAGS)
tests_hcga_backend_fake_caps_la_SOURCES = tests/fake_plugin.c
tests_hcga_backend_fake_caps_la_CPPFLAGS = $(AM_CPPFLAGS) -DFAKE_CAPS
tests_hcga_backend_fake_caps_la_LDFLAGS = $(FAKE_PLUGIN_LDFLAGS)
tests_hcga_backend_fake_v11_la_SOURCES = tests/fake_plugin.c
tests_hcga_backend_fake_v11_la_CPPFLAGS = $(AM_CPPFLAGS) -DFAKE_V11
tests_hcga_backend_fake_v11_la_LDFLAGS = $(FAKE_PLUGIN_LDFLAGS)
tests_hcga_backend_fake_partial_la_SOURCES = tests/fake_plugin.c
tests_hcga_backend_fake_partial_la_CPPFLAGS = $(AM_CPPFLAGS) -DFAKE_PARTIAL
tests_hcga_backend_fake_partial_la_LDFLAGS = $(FAKE_PLUGIN_LDFLAGS)

# fake_missinglib needs a library whose soname (libhcga_does_not_exist.so)
# names no file: build the dependency by hand with that soname and link the
# plugin against the file, so the plugin's DT_NEEDED cannot be found at dlopen.
tests_hcga_backend_fake_missinglib_la_SOURCES = tests/fake_plugin.c
tests_hcga_backend_fake_missinglib_la_CPPFLAGS = $(AM_CPPFLAGS) -DFAKE_MISSINGLIB
# (libtool drops a bare .so from LIBADD when linking a module: hand it to ld.)
tests_hcga_backend_fake_missinglib_la_LDFLAGS = $(FAKE_PLUGIN_LDFLAGS) \
	-Wl,--no-as-needed,tests/libhcga_fake_dep.so
tests_hcga_backend_fake_missinglib_la_DEPENDENCIES = tests/libhcga_fake_dep.so
tests/libhcga_fake_dep.so: tests/fake_dep.c
	@$(MKDIR_P) tests
	$(AM_V_CCLD)$(CC) -shared -fPIC -Wl,-soname,libhcga_does_not_exist.so -o $@ $(srcdir)/tests/fake_dep.c
CLEANFILES += tests/libhcga_fake_dep.so
EXTRA_DIST += tests/fake_dep.c tests/mpi-lsan.supp

# ---- the support library and the defaults of the Check tests ----
# tests/testutil.c: the runner, temporary directories and logged shell commands
# shared by tests/test_*.c and conformance/test_*.c.  Every Check test compiles
# with TEST_CFLAGS; one that names no _LDADD of its own links with automake's
# default LDADD below (no other program relies on the default).
check_LTLIBRARIES += tests/libhcgatest.la
tests_libhcgatest_la_SOURCES = tests/testutil.c tests/testutil_be.c tests/testutil.h
tests_libhcgatest_la_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
TEST_CFLAGS = $(libhcga_core_la_CFLAGS) $(CHECK_CFLAGS)
LDADD = tests/libhcgatest.la libhcga_cli.la libhcga_core.la $(CHECK_LIBS) -lm

# ---- tests ----
check_PROGRAMS += tests/test_loader tests/test_cli
TESTS += tests/test_loader tests/test_cli
tests_test_loader_CFLAGS = $(TEST_CFLAGS)
# the optional ABI 1.2 groups through the loader (fake_caps, fake_v11,
# fake_partial) and the cpu backend's reference graph capture
check_PROGRAMS += tests/test_loader_caps tests/test_cpu_capture
TESTS += tests/test_loader_caps tests/test_cpu_capture
tests_test_loader_caps_CFLAGS = $(TEST_CFLAGS)
tests_test_cpu_capture_CFLAGS = $(TEST_CFLAGS)
tests_test_cli_CFLAGS = $(TEST_CFLAGS)
tests_test_cli_LDADD = tests/libhcgatest.la $(CHECK_LIBS)

# ---- mixed precision (SOLVER.AMP.*, graph autocast, loss scaling) ----
check_PROGRAMS += tests/test_amp_graph tests/test_amp_train
TESTS += tests/test_amp_graph tests/test_amp_train
tests_test_amp_graph_CFLAGS = $(TEST_CFLAGS)
tests_test_amp_train_CFLAGS = $(TEST_CFLAGS)

# ---- the public C API (libhcga.so, include/hcga/hcga.h) ----
# test_api links the installed-to-be library and, for its checks only,
# libhcga_core (JPEG decoding, the features file of hcga test);
# check_exports.sh compares libhcga.so's dynamic symbols with the header,
# check_man3.sh the header with man/hcga.3.
check_PROGRAMS += tests/test_api
TESTS += tests/test_api tests/check_exports.sh tests/check_man3.sh
tests_test_api_CFLAGS = $(TEST_CFLAGS)
tests_test_api_LDADD = tests/libhcgatest.la libhcga_core.la libhcga.la $(CHECK_LIBS) -lm
EXTRA_DIST += tests/check_exports.sh tests/check_man3.sh

# ---- the Python binding (python/: ctypes over libhcga.so.0) ----
# check_python.sh runs python/tests with pytest on this tree's library and
# ./hcga; it skips (77) only without python3 + numpy + pytest.
TESTS += tests/check_python.sh
EXTRA_DIST += tests/check_python.sh python/pyproject.toml python/README.md python/.gitignore \
	python/hcga/__init__.py python/tests/test_hcga.py

# ---- the terminal progress line ----
# test_progress: the formatting of frontend/util/progress.c, compiled in (it
# needs nothing else).
check_PROGRAMS += tests/test_progress
TESTS += tests/test_progress
tests_test_progress_SOURCES = tests/test_progress.c frontend/util/progress.c frontend/util/progress.h
tests_test_progress_CFLAGS = $(TEST_CFLAGS)
tests_test_progress_LDADD = tests/libhcgatest.la $(CHECK_LIBS) -lm

# ---- the manual page ----
# test_man: man/hcga.1 against the command table (frontend/cli/commands.h) and
# each command's --help (it runs the built ./hcga); man/check_man.sh (in
# man/man.mk) renders the page with groff -ww.
check_PROGRAMS += tests/test_man
TESTS += tests/test_man
tests_test_man_CFLAGS = $(TEST_CFLAGS)
tests_test_man_LDADD = tests/libhcgatest.la $(CHECK_LIBS)
EXTRA_tests_test_man_DEPENDENCIES = hcga$(EXEEXT)

# ---- image readers on damaged files (frontend/data/image_io.c) ----
check_PROGRAMS += tests/test_image_io
TESTS += tests/test_image_io
tests_test_image_io_CFLAGS = $(TEST_CFLAGS)
tests_test_image_io_LDADD = $(LDADD) $(JPEG_LIBS)
