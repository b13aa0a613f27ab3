/*
 * testutil.h - support shared by the Check unit tests (tests/test_*.c and
 * conformance/test_*.c): the runner every test's main() ends with, a suite
 * with its one test case, fresh temporary directories and their removal, and
 * shell commands whose output goes to a log file.  Built once as
 * tests/libhcgatest.la and linked into each test program, so that the tests
 * hold only what they test.
 */
#ifndef HCGA_TESTUTIL_H
#define HCGA_TESTUTIL_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>

/* Run every test of s (CK_NORMAL output) and free the runner: the exit status
 * for main(), EXIT_FAILURE when any test failed and EXIT_SUCCESS otherwise. */
int hcga_test_run(Suite *s);

/* A suite named name holding one test case of the same name, returned in *tc
 * for the caller to add its tests to. */
Suite *hcga_test_suite(const char *name, TCase **tc);

/* Create a test case named name and add it to s: for a suite of several. */
TCase *hcga_test_tcase(Suite *s, const char *name);

/* Add the tests named (START_TEST names, at least one) to tc in order, as
 * tcase_add_test would one by one: HCGA_ADD_TESTS(tc, test_a, test_b).  (A
 * START_TEST name is a const TTest *: check 0.13 or newer, which configure
 * requires.) */
#define HCGA_ADD_TESTS(tc, ...) hcga_test_add((tc), (const TTest *const[]){__VA_ARGS__, NULL})
void hcga_test_add(TCase *tc, const TTest *const *tests);

/* Make a fresh directory /tmp/<prefix>XXXXXX and leave its path in dir (of
 * size bytes); the test fails when mkdtemp cannot. */
void hcga_test_mkdtemp(char *dir, size_t size, const char *prefix);

/* The source tree: $HCGA_SRCDIR when set, else the one this was built from. */
const char *hcga_test_srcdir(void);

/* `rm -rf` path: system()'s status, 0 when it was removed. */
int hcga_test_rm_rf(const char *path);

/* Run the shell command printf(fmt, ...) with its stdout and stderr appended
 * to <dir>/log: its exit status, or 128 when it did not exit normally. */
int hcga_test_sh(const char *dir, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The per-step losses of a training run's metrics.jsonl (its lines with a
 * "step" and a "loss", in order) into loss[]: how many.  The test fails when
 * the file cannot be opened, a step is out of sequence or there are more than
 * max of them. */
int hcga_test_read_losses(const char *path, double *loss, int max);

/* Pseudo-random numbers for test data, the same sequence on every run:
 * xorshift64 in [0, 1), and a 64-bit LCG in [-1, 1); *state is the generator. */
double hcga_test_urand01(uint64_t *state);
double hcga_test_urand_pm1(uint64_t *state);

/* The cpu backend with one thread, opened through libhcga's loader (the test
 * fails, with the loader's reason, when it cannot be opened); close it with
 * hcga_be_close.  In testutil_be.c: only for tests linked with libhcga. */
struct hcga_be;
struct hcga_be *hcga_test_open_cpu(void);

/* Copy the last lines lines of <dir>/log to stderr (after a failed command). */
void hcga_test_tail_log(const char *dir, int lines);

#endif
