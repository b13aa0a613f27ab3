# man/man.mk: the manual pages hcga(1) and hcga(3) (the C API; tests/check_man3.sh
# checks it against include/hcga/hcga.h), installed under $(mandir), and hcga(1)'s
# checks: tests/test_man.c (every command of frontend/cli/commands.h and every
# option of its --help has its place in the page) and man/check_man.sh (the
# page renders without groff warnings).
dist_man1_MANS = man/hcga.1
dist_man3_MANS = man/hcga.3
TESTS += man/check_man.sh
EXTRA_DIST += man/check_man.sh
