/*
 * test_cli.c - the `hcga` command line: global options, the command table
 * (every listed command must answer --help), `hcga backends`, the exit
 * status 2 with the reason for an unusable --backend, and mixed precision
 * from the command line (`hcga train SOLVER.AMP.ENABLED True` and `hcga
 * bench --amp` on the CPU backend, a bad SOLVER.AMP.DTYPE named in the error).
 *
 * Runs the built ./hcga with HCGA_PLUGIN_PATH pointing at the fake plugins
 * (tests/fake_plugin.c) and the template backend.
 */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hcga_plugin.h"
#include "testutil.h"

#define HCGA_BIN HCGA_BUILDDIR "/hcga"
#define TESTS_LIBS HCGA_BUILDDIR "/tests/.libs"
#define TEMPLATE_LIBS HCGA_BUILDDIR "/plugins/template/.libs"

typedef hcga_test_output run_result;
static run_result res;

/* Run ./hcga with the arguments; its status and output (valid until the next RUN). */
#define RUN(...) (hcga_test_run_program(HCGA_BIN, (const char *const[]){__VA_ARGS__, NULL}, &res), &res)

#define ck_assert_contains(hay, needle)                                                      \
    ck_assert_msg(strstr((hay), (needle)) != NULL, "expected \"%s\" in \"%s\"", (needle), (hay))

START_TEST(test_global_help)
{
    const run_result *r = RUN("--help");
    ck_assert_int_eq(r->status, 0);
    ck_assert_contains(r->out, "usage: hcga [global options] <command> [args]");
    ck_assert_contains(r->out, "--backend NAME");
    ck_assert_contains(r->out, "\ncommands:\n");
    ck_assert_contains(r->out, "  backends ");

    r = RUN("--version");
    ck_assert_int_eq(r->status, 0);
    char abi[64];
    snprintf(abi, sizeof abi, "plugin ABI %d.%d", HCGA_ABI_MAJOR, HCGA_ABI_MINOR);
    ck_assert_contains(r->out, abi);

    hcga_test_run_program(HCGA_BIN, (const char *const[]){NULL}, &res); /* no arguments */
    r = &res;
    ck_assert_int_eq(r->status, 2);
    ck_assert_contains(r->err, "usage: hcga");
}
END_TEST

/* Every command listed by `hcga --help` must answer `--help` and `-h`. */
START_TEST(test_every_command_has_help)
{
    const run_result *r = RUN("--help");
    ck_assert_int_eq(r->status, 0);
    static char help[sizeof res.out];
    memcpy(help, r->out, sizeof help);
    char *p = strstr(help, "\ncommands:\n");
    ck_assert_ptr_nonnull(p);
    p += strlen("\ncommands:\n");
    int ncmd = 0;
    while (strncmp(p, "  ", 2) == 0) {
        char name[64];
        ck_assert_int_eq(sscanf(p, " %63s", name), 1);
        /* the usage line starts with "usage: hcga" and names the command as a word
         * (global options may stand between them: "usage: hcga [--backend B] train ...") */
        char word[80];
        snprintf(word, sizeof word, " %s ", name);
        const char *flags[2] = {"--help", "-h"};
        for (int f = 0; f < 2; f++) {
            r = RUN(name, flags[f]);
            ck_assert_msg(r->status == 0, "hcga %s %s exited %d: %s", name, flags[f], r->status,
                          r->err);
            ck_assert_msg(strncmp(r->out, "usage: hcga ", 12) == 0,
                          "hcga %s %s: output does not start with \"usage: hcga \": %s", name, flags[f],
                          r->out);
            const char *eol = strchr(r->out, '\n');
            char first[512];
            size_t n = eol ? (size_t)(eol - r->out) : strlen(r->out);
            if (n > sizeof first - 2) n = sizeof first - 2;
            memcpy(first, r->out, n);
            first[n] = ' ';
            first[n + 1] = '\0';
            ck_assert_msg(strstr(first, word) != NULL, "hcga %s %s: the usage line does not name the command: %s",
                          name, flags[f], first);
        }
        ncmd++;
        char *nl = strchr(p, '\n');
        ck_assert_ptr_nonnull(nl);
        p = nl + 1;
    }
    ck_assert_int_ge(ncmd, 1);
}
END_TEST

START_TEST(test_usage_errors)
{
    const run_result *r = RUN("frobnicate");
    ck_assert_int_eq(r->status, 2);
    ck_assert_contains(r->err, "unknown command 'frobnicate'");
    r = RUN("--device", "x", "backends");
    ck_assert_int_eq(r->status, 2);
    ck_assert_contains(r->err, "--device: 'x' is not a device index");
    r = RUN("--threads", "0", "backends");
    ck_assert_int_eq(r->status, 2);
    r = RUN("--bogus", "backends");
    ck_assert_int_eq(r->status, 2);
    ck_assert_contains(r->err, "--bogus");
    r = RUN("backends", "extra");
    ck_assert_int_eq(r->status, 2);
    ck_assert_contains(r->err, "unexpected argument 'extra'");
    r = RUN("--backend");
    ck_assert_int_eq(r->status, 2);
    ck_assert_contains(r->err, "needs a value");
}
END_TEST

START_TEST(test_unusable_backend_exit_2)
{
    const run_result *r = RUN("--backend", "nope", "backends");
    ck_assert_int_eq(r->status, 2);
    ck_assert_contains(r->err, "backend 'nope': no plugin file hcga_backend_nope.so found in");
    ck_assert_str_eq(r->out, "");

    r = RUN("--backend", "fake_major", "backends");
    ck_assert_int_eq(r->status, 2);
    ck_assert_contains(r->err, TESTS_LIBS "/hcga_backend_fake_major.so");
    ck_assert_contains(r->err, "ABI major 2, hcga expects 1");

    r = RUN("--backend", "fake_missinglib", "backends");
    ck_assert_int_eq(r->status, 2);
    ck_assert_contains(r->err, "libhcga_does_not_exist.so: cannot open shared object file");

    r = RUN("--backend", "fake_probefail", "backends");
    ck_assert_int_eq(r->status, 2);
    ck_assert_contains(r->err, "unavailable: fake driver is missing");

    r = RUN("--backend", "fake_good", "--device", "1", "backends");
    ck_assert_int_eq(r->status, 2);
    ck_assert_contains(r->err, "device 1 does not exist");

    /* help never needs the backend */
    r = RUN("--backend", "nope", "backends", "--help");
    ck_assert_int_eq(r->status, 0);

    r = RUN("--backend", "fake_good", "backends");
    ck_assert_int_eq(r->status, 0);
}
END_TEST

START_TEST(test_backends_listing)
{
    const run_result *r = RUN("backends");
    ck_assert_msg(r->status == 0, "exit %d: %s", r->status, r->err);
    char tmpl[1024];
    snprintf(tmpl, sizeof tmpl,
             "template: " TEMPLATE_LIBS "/hcga_backend_template.so\n"
             "  ok: 1 device\n"
             "  device 0: template backend (host memory)\n"
             "    version: template plugin 0.1, ABI %d.%d\n"
             "    memory: not reported\n",
             HCGA_ABI_MAJOR, HCGA_ABI_MINOR);
    ck_assert_contains(r->out, tmpl);
    ck_assert_contains(r->out, "fake_good: " TESTS_LIBS "/hcga_backend_fake_good.so\n"
                               "  ok: 1 device\n"
                               "  device 0: fake device\n"
                               "    version: fake 1.2.3\n"
                               "    memory: 3.0 GiB total, 1.0 GiB free\n");
    ck_assert_contains(r->out, "fake_probefail: " TESTS_LIBS "/hcga_backend_fake_probefail.so\n"
                               "  unavailable: fake driver is missing (libfakedrv.so.1 not loaded)\n");
    ck_assert_contains(r->out, "fake_size: " TESTS_LIBS "/hcga_backend_fake_size.so\n"
                               "  unavailable: incompatible plugin: sizeof(hcga_tensor)");
    ck_assert_contains(r->out, "fake_nosym: " TESTS_LIBS "/hcga_backend_fake_nosym.so\n"
                               "  unavailable: not an hcga plugin: no symbol hcga_plugin_descriptor_v1");
}
END_TEST

/* mixed precision on the CPU backend: two bf16 training steps of the tiny
 * config, a one-iteration bf16 bench, and the errors for bad values */
START_TEST(test_amp_train_and_bench)
{
    char dir[] = "/tmp/hcga_test_cli_amp_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char data[128], out[128], cfg[1024];
    snprintf(data, sizeof data, "%s/data", dir);
    snprintf(out, sizeof out, "%s/run", dir);
    snprintf(cfg, sizeof cfg, "%s/configs/hrnet_tiny.yml", HCGA_SRCDIR);
    const run_result *r = RUN("synth", "--out", data, "--ids", "12", "--cams", "2", "--per-cam", "3",
                              "--distractors", "2", "--seed", "3");
    ck_assert_msg(r->status == 0, "synth: %s", r->err);
#define TRAIN_TINY "--backend", "cpu", "--threads", "2", "train", "--config", cfg, "--data", data, "--output", out, \
                   "SOLVER.IMS_PER_BATCH", "8", "DATALOADER.NUM_INSTANCE", "2", "CLUSTERING.AL", "band"
    r = RUN(TRAIN_TINY, "--max-steps", "2", "SOLVER.AMP.ENABLED", "True");
    ck_assert_msg(r->status == 0, "hcga train SOLVER.AMP.ENABLED True exited %d: %s", r->status, r->err);
    ck_assert_contains(r->out, "hcga train: precision bf16 mixed");
    ck_assert_contains(r->out, "stopped after 2 optimizer steps (--max-steps)");

    r = RUN(TRAIN_TINY, "--max-steps", "2", "SOLVER.AMP.ENABLED", "True", "SOLVER.AMP.DTYPE", "fp8");
    ck_assert_int_eq(r->status, 2);
    ck_assert_contains(r->err, "SOLVER.AMP.DTYPE: 'fp8' is not supported (bf16 or fp16)");
    r = RUN(TRAIN_TINY, "--max-steps", "2", "SOLVER.AMP.BACKOFF_FACTOR", "1.5");
    ck_assert_int_eq(r->status, 2);
    ck_assert_contains(r->err, "SOLVER.AMP.BACKOFF_FACTOR");
#undef TRAIN_TINY

    r = RUN("--backend", "cpu", "--threads", "2", "bench", "--config", cfg, "--batch", "4", "--iters", "1",
            "--warmup", "0", "--classes", "8", "--amp", "bf16");
    ck_assert_msg(r->status == 0, "hcga bench --amp bf16 exited %d: %s", r->status, r->err);
    ck_assert_contains(r->out, "precision: bf16");
    ck_assert_contains(r->out, "summary: precision bf16, ");
    ck_assert_contains(r->out, "images/s, peak device memory ");
    r = RUN("--backend", "cpu", "bench", "--config", cfg, "--amp", "fp8");
    ck_assert_int_eq(r->status, 2);
    ck_assert_contains(r->err, "--amp 'fp8': expected fp32, bf16 or fp16");
    ck_assert_int_eq(hcga_test_rm_rf(dir), 0);
}
END_TEST

static Suite *cli_suite(void)
{
    TCase *tc;
    Suite *s = hcga_test_suite("cli", &tc);
    /* `hcga backends` also probes the build tree's OpenCL/CUDA plugins */
    tcase_set_timeout(tc, 300);
    HCGA_ADD_TESTS(tc, test_global_help, test_every_command_has_help, test_usage_errors,
                   test_unusable_backend_exit_2, test_backends_listing, test_amp_train_and_bench);
    return s;
}

int main(void)
{
    setenv("HCGA_PLUGIN_PATH", TESTS_LIBS ":" TEMPLATE_LIBS, 1);
    return hcga_test_run(cli_suite());
}
