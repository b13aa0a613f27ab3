# man/man.mk: the manual page hcga(1), installed under $(man1dir), and its
# checks: tests/test_man.c (every command of frontend/cli/commands.h and every
# option of its --help has its place in the page) and man/check_man.sh (the
# page renders without groff warnings).
dist_man1_MANS = man/hcga.1
TESTS += man/check_man.sh
EXTRA_DIST += man/check_man.sh
