/*
 * testutil.c - the support shared by the Check unit tests; see testutil.h.
 */
#include "testutil.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

int hcga_test_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

Suite *hcga_test_suite(const char *name, TCase **tc)
{
    Suite *s = suite_create(name);
    *tc = hcga_test_tcase(s, name);
    return s;
}

TCase *hcga_test_tcase(Suite *s, const char *name)
{
    TCase *tc = tcase_create(name);
    suite_add_tcase(s, tc);
    return tc;
}

void hcga_test_add(TCase *tc, const TTest *const *tests)
{
    for (; *tests; tests++) tcase_add_test(tc, *tests);
}

void hcga_test_mkdtemp(char *dir, size_t size, const char *prefix)
{
    int n = snprintf(dir, size, "/tmp/%sXXXXXX", prefix);
    ck_assert_msg(n > 0 && (size_t)n < size, "temporary directory name for %s too long", prefix);
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

const char *hcga_test_srcdir(void)
{
    const char *s = getenv("HCGA_SRCDIR");
    return s ? s : HCGA_SRCDIR;
}

int hcga_test_rm_rf(const char *path)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    return system(cmd);
}

int hcga_test_sh(const char *dir, const char *fmt, ...)
{
    char cmd[8192], full[8600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    snprintf(full, sizeof full, "%s >>%s/log 2>&1", cmd, dir);
    int st = system(full);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

int hcga_test_read_losses(const char *path, double *loss, int max)
{
    char line[1024];
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        const char *st = strstr(line, "\"step\": "), *lo = strstr(line, "\"loss\": ");
        if (!st || !lo) continue;
        ck_assert_int_eq(atoi(st + 8), n + 1);
        ck_assert_int_lt(n, max);
        loss[n++] = strtod(lo + 8, NULL);
    }
    fclose(f);
    return n;
}

double hcga_test_urand01(uint64_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return (double)(*state >> 11) / 9007199254740992.0;
}

double hcga_test_urand_pm1(uint64_t *state)
{
    *state = *state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(*state >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

void hcga_test_tail_log(const char *dir, int lines)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "tail -n %d %s/log >&2", lines, dir);
    if (system(cmd)) {
        /* nothing more to show */
    }
}
