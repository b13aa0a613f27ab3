/*
 * testutil.c - the support shared by the Check unit tests; see testutil.h.
 */
#include "testutil.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

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

/* The rest of the temporary file fd (from its start) into buf, NUL-terminated. */
static void read_back(int fd, char *buf, size_t len)
{
    lseek(fd, 0, SEEK_SET);
    size_t used = 0;
    ssize_t n;
    while (used + 1 < len && (n = read(fd, buf + used, len - 1 - used)) > 0) used += (size_t)n;
    buf[used] = '\0';
    close(fd);
}

void hcga_test_run_program(const char *bin, const char *const *args, hcga_test_output *res)
{
    char out_tmpl[] = "/tmp/hcga_test_out_XXXXXX", err_tmpl[] = "/tmp/hcga_test_err_XXXXXX";
    int fo = mkstemp(out_tmpl), fe = mkstemp(err_tmpl);
    ck_assert_msg(fo >= 0 && fe >= 0, "cannot create the output files of %s", bin);
    unlink(out_tmpl);
    unlink(err_tmpl);
    char *argv[64];
    int n = 0;
    argv[n++] = (char *)bin;
    for (int i = 0; args[i]; i++) {
        ck_assert_int_lt(n, 62);
        argv[n++] = (char *)args[i];
    }
    argv[n] = NULL;
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) dup2(devnull, 0);
        dup2(fo, 1);
        dup2(fe, 2);
        execv(bin, argv);
        _exit(127);
    }
    int st = 0;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    res->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    read_back(fo, res->out, sizeof res->out);
    read_back(fe, res->err, sizeof res->err);
}
