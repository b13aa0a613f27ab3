/*
 * test_amp_train.c - mixed-precision training (SOLVER.AMP.*) end to end on
 * the CPU backend and a small synthetic dataset:
 *   - 20 steps of configs/hrnet_tiny.yml in bf16 follow the f32 run: the
 *     per-step losses agree within 2e-2 relative at every step (the
 *     measured differences are printed);
 *   - fp16 with an absurd initial loss scale (1e30 overflows f16): the
 *     first step is skipped and logged (stdout and metrics.jsonl), no
 *     parameter changes, Adam does not count it, the scale backs off;
 *   - the fp16 loss scaler's state (scale, good steps, skipped steps) is in
 *     the checkpoint, so an interrupted and resumed fp16 run ends with the
 *     same bits as an uninterrupted one.
 */
#include <check.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/backend.h"
#include "graph/graph.h"
#include "model/safetensors.h"
#include "train/train.h"
#include "testutil.h"

#define STEPS 20
static char tmpdir[256];
static char srcdir[1024];

/* Run a shell command in the test's directory: its exit status, output appended to tmpdir/log. */
#define run(...) hcga_test_sh(tmpdir, __VA_ARGS__)

static void dump_log(void)
{
    hcga_test_tail_log(tmpdir, 30);
}

static int grep_file(const char *pattern, const char *path)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "grep -q -F -- '%s' '%s'", pattern, path);
    return system(cmd) == 0;
}

static void setup(void)
{
    snprintf(srcdir, sizeof srcdir, "%s", hcga_test_srcdir());
    hcga_test_mkdtemp(tmpdir, sizeof tmpdir, "hcga_test_amp_");
}

static void teardown(void)
{
    hcga_test_rm_rf(tmpdir); /* a leftover directory fails no test */
}

/* 40 identities: 20 steps of 8 images (test_train_backends' setting) */
static void synth_big(void)
{
    ck_assert_int_eq(run("./hcga synth --out %s/data --ids 40 --cams 3 --per-cam 3 --distractors 2 --seed 4", tmpdir),
                     0);
}

/* 12 identities: a few steps an epoch */
static void synth_small(void)
{
    ck_assert_int_eq(run("./hcga synth --out %s/data --ids 12 --cams 2 --per-cam 3 --distractors 2 --seed 3", tmpdir),
                     0);
}

/* per-step losses of metrics.jsonl ("step" lines, in order) */
static int read_losses(const char *dir, double *loss, int max)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s/metrics.jsonl", tmpdir, dir);
    return hcga_test_read_losses(path, loss, max);
}

#define TINY "--config %s/configs/hrnet_tiny.yml --data %s/data --seed 5 SOLVER.IMS_PER_BATCH 8 " \
             "DATALOADER.NUM_INSTANCE 2 CLUSTERING.AL band SOLVER.LOG_PERIOD 1000"

START_TEST(bf16_follows_f32)
{
    synth_big();
    const char *names[2] = {"f32", "bf16"};
    const char *amp[2] = {"", "SOLVER.AMP.ENABLED True SOLVER.AMP.DTYPE bf16"};
    double loss[2][STEPS];
    for (int k = 0; k < 2; k++) {
        int rc = run("./hcga --backend cpu --threads 2 train " TINY " --output %s/%s --max-steps %d %s", srcdir, tmpdir,
                     tmpdir, names[k], STEPS, amp[k]);
        if (rc) dump_log();
        ck_assert_int_eq(rc, 0);
        ck_assert_int_eq(read_losses(names[k], loss[k], STEPS), STEPS);
    }
    char log[600];
    snprintf(log, sizeof log, "%s/log", tmpdir);
    ck_assert(grep_file("precision bf16 mixed", log));
    ck_assert(grep_file("precision fp32 (no mixed precision", log));
    double worst = 0;
    int at = 0, differ = 0;
    printf("bf16 vs f32, relative loss difference per step:");
    for (int i = 0; i < STEPS; i++) {
        double rel = fabs(loss[1][i] - loss[0][i]) / fabs(loss[0][i]);
        printf(" %.2e", rel);
        if (rel > worst) worst = rel, at = i + 1;
        differ += rel > 0;
    }
    printf("\nbf16 vs f32: %d steps, worst relative loss difference %.3g (step %d)\n", STEPS, worst, at);
    for (int i = 0; i < STEPS; i++) {
        double rel = fabs(loss[1][i] - loss[0][i]) / fabs(loss[0][i]);
        ck_assert_msg(rel < 2e-2, "step %d: bf16 loss %.9g, f32 %.9g (relative %.3g >= 2e-2)", i + 1, loss[1][i],
                      loss[0][i], rel);
    }
    ck_assert_msg(differ > STEPS / 2, "bf16 losses equal the f32 ones: did the convolutions run in bf16?");
}
END_TEST

/* a trainable parameter's host copy */
typedef struct snap {
    int n;
    char **name;
    float **v;
    int64_t *len;
} snap;

static void snap_take(hg_store *s, snap *out)
{
    memset(out, 0, sizeof *out);
    int cnt = hg_store_count(s);
    out->name = calloc((size_t)cnt, sizeof *out->name);
    out->v = calloc((size_t)cnt, sizeof *out->v);
    out->len = calloc((size_t)cnt, sizeof *out->len);
    for (int i = 0; i < cnt; i++) {
        hg_store_entry *e = hg_store_at(s, i);
        if (!(e->flags & HG_TRAINABLE)) continue;
        int64_t n = 1;
        for (int d = 0; d < e->ndim; d++) n *= e->shape[d];
        out->name[out->n] = e->name;
        out->len[out->n] = n;
        out->v[out->n] = malloc(sizeof(float) * (size_t)n);
        ck_assert_int_eq(hg_store_read(s, e, out->v[out->n], HCGA_F32), 0);
        out->n++;
    }
}

static void snap_free(snap *s)
{
    for (int i = 0; i < s->n; i++) free(s->v[i]);
    free(s->name);
    free(s->v);
    free(s->len);
}

START_TEST(fp16_overflow_step_skipped)
{
    synth_small();
    char cfgp[1200], data[300], out[300], err[1024] = "";
    snprintf(cfgp, sizeof cfgp, "%s/configs/hrnet_tiny.yml", srcdir);
    snprintf(data, sizeof data, "%s/data", tmpdir);
    snprintf(out, sizeof out, "%s/skip", tmpdir);
    const char *kv[] = {"SOLVER.IMS_PER_BATCH", "8", "DATALOADER.NUM_INSTANCE", "2", "CLUSTERING.AL", "band",
                        "SOLVER.AMP.ENABLED", "True", "SOLVER.AMP.DTYPE", "fp16", "SOLVER.AMP.INIT_SCALE", "1e30"};
    const int nkv = (int)(sizeof kv / sizeof kv[0]);
    char *over[sizeof kv / sizeof kv[0]];
    for (int i = 0; i < nkv; i++) over[i] = strdup(kv[i]);
    hcga_train_opts o;
    memset(&o, 0, sizeof o);
    o.config = cfgp;
    o.data = data;
    o.output = out;
    o.seed = 5;
    o.max_steps = 1;
    o.dtype = HCGA_F32;
    o.n_over = nkv;
    o.over = over;
    o.threads = 2;
    hcga_train_run r;
    memset(&r, 0, sizeof r);
    ck_assert_int_eq(hcga_train_setup(&r, &o), 0);
    ck_assert_int_eq(r.amp.enabled, 1);
    ck_assert_int_eq(r.amp.dtype, HCGA_F16);
    ck_assert(r.loss_scale == 1e30);
    hcga_be *be = NULL;
    ck_assert_msg(hcga_be_open("cpu", 0, "threads=2", &be, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(hcga_train_build(&r, be), 0);
    snap before, after;
    snap_take(r.store, &before);
    ck_assert_int_gt(before.n, 100);
    int stop = 0;
    ck_assert_int_eq(hcga_train_epoch(&r, 1, &stop), 0);
    ck_assert_int_eq(stop, 1); /* --max-steps 1: the skipped step counts */
    ck_assert_int_eq(r.amp_skipped, 1);
    ck_assert_int_eq(r.adam_step, 0); /* Adam never ran */
    ck_assert(r.loss_scale == 1e30 * 0.5);
    ck_assert_int_eq(r.amp_good_steps, 0);
    snap_take(r.store, &after);
    ck_assert_int_eq(after.n, before.n);
    for (int i = 0; i < before.n; i++) {
        ck_assert_str_eq(after.name[i], before.name[i]);
        ck_assert_msg(memcmp(after.v[i], before.v[i], sizeof(float) * (size_t)before.len[i]) == 0,
                      "%s changed in a skipped step", before.name[i]);
        ck_assert_ptr_null(hg_store_get(r.store, before.name[i])->v.buf); /* no Adam state either */
    }
    snap_free(&before);
    snap_free(&after);
    ck_assert_int_eq(hcga_train_checkpoint(&r, 1, 1), 0);
    hcga_train_free(&r); /* closes metrics.jsonl */
    for (int i = 0; i < nkv; i++) free(over[i]);

    char path[600];
    snprintf(path, sizeof path, "%s/metrics.jsonl", out);
    ck_assert(grep_file("\"skipped_step\": 1, \"reason\": \"gradients have Inf/NaN\", \"loss_scale\": 1e+30", path));
    ck_assert(!grep_file("\"step\": ", path));
    snprintf(path, sizeof path, "%s/checkpoint.safetensors", out);
    st_file *f = st_load(path, err, sizeof err);
    ck_assert_msg(f != NULL, "%s", err);
    ck_assert_str_eq(st_meta(f, "adam_step"), "0");
    ck_assert_str_eq(st_meta(f, "amp_skipped_steps"), "1");
    ck_assert_str_eq(st_meta(f, "amp_good_steps"), "0");
    ck_assert(strtod(st_meta(f, "amp_loss_scale"), NULL) == 1e30 * 0.5);
    st_free(f);

    /* the command line logs each skipped step on stdout */
    int rc = run("./hcga --backend cpu --threads 2 train " TINY " --output %s/cli --max-steps 2 "
                 "SOLVER.AMP.ENABLED True SOLVER.AMP.DTYPE fp16 SOLVER.AMP.INIT_SCALE 1e30",
                 srcdir, tmpdir, tmpdir);
    if (rc) dump_log();
    ck_assert_int_eq(rc, 0);
    snprintf(path, sizeof path, "%s/log", tmpdir);
    ck_assert(grep_file("step 1 skipped: gradients have Inf/NaN at loss scale 1e+30", path));
    ck_assert(grep_file("step 2 skipped: gradients have Inf/NaN at loss scale 5e+29", path));
    ck_assert(grep_file("stopped after 0 optimizer steps and 2 skipped ones", path));
    ck_assert(grep_file("precision fp16 mixed", path));
}
END_TEST

/* fp16 with a scale that grows every 2 good steps: stop after epoch 1 and
 * resume, or run both epochs at once: the same bits and loss-scaler state */
START_TEST(fp16_resume_exact)
{
    synth_small();
#define FP16ARGS TINY " SOLVER.AMP.ENABLED True SOLVER.AMP.DTYPE fp16 SOLVER.AMP.GROWTH_INTERVAL 2 " \
                      "SOLVER.EVAL_PERIOD 100 TEST.IMS_PER_BATCH 8"
    int rc = run("./hcga --backend cpu --threads 2 train " FP16ARGS " --output %s/full SOLVER.MAX_EPOCHS 2", srcdir,
                 tmpdir, tmpdir);
    if (rc) dump_log();
    ck_assert_int_eq(rc, 0);
    rc = run("./hcga --backend cpu --threads 2 train " FP16ARGS " --output %s/part SOLVER.MAX_EPOCHS 1", srcdir,
             tmpdir, tmpdir);
    if (rc) dump_log();
    ck_assert_int_eq(rc, 0);
    rc = run("./hcga --backend cpu --threads 2 train --resume --data %s/data --output %s/part SOLVER.MAX_EPOCHS 2",
             tmpdir, tmpdir);
    if (rc) dump_log();
    ck_assert_int_eq(rc, 0);
    char pa[600], pb[600], err[1024];
    snprintf(pa, sizeof pa, "%s/full/checkpoint.safetensors", tmpdir);
    snprintf(pb, sizeof pb, "%s/part/checkpoint.safetensors", tmpdir);
    st_file *a = st_load(pa, err, sizeof err), *b = st_load(pb, err, sizeof err);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    const char *keys[] = {"epoch", "adam_step", "amp_loss_scale", "amp_good_steps", "amp_skipped_steps"};
    for (int k = 0; k < 5; k++) {
        ck_assert_ptr_nonnull(st_meta(a, keys[k]));
        ck_assert_ptr_nonnull(st_meta(b, keys[k]));
        ck_assert_str_eq(st_meta(a, keys[k]), st_meta(b, keys[k]));
    }
    printf("fp16 resume: adam_step %s, loss scale %s, good steps %s, skipped %s\n", st_meta(a, "adam_step"),
           st_meta(a, "amp_loss_scale"), st_meta(a, "amp_good_steps"), st_meta(a, "amp_skipped_steps"));
    /* the scaler moved: the test would not see a lost state otherwise */
    ck_assert(strtod(st_meta(a, "amp_loss_scale"), NULL) != 65536.0);
    ck_assert_int_eq(a->count, b->count);
    for (int i = 0; i < a->count; i++) {
        const st_tensor *x = &a->tensors[i], *y = st_find(b, x->name);
        ck_assert_msg(y != NULL, "%s missing after resume", x->name);
        ck_assert_uint_eq(x->nbytes, y->nbytes);
        ck_assert_msg(memcmp(x->data, y->data, x->nbytes) == 0, "%s differs after resume", x->name);
    }
    st_free(a);
    st_free(b);
}
END_TEST

int main(void)
{
    setenv("HCGA_PLUGIN_PATH", HCGA_BUILDDIR "/.libs", 0);
    TCase *tc;
    Suite *s = hcga_test_suite("amp_train", &tc);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 1800);
    HCGA_ADD_TESTS(tc, bf16_follows_f32, fp16_overflow_step_skipped, fp16_resume_exact);
    return hcga_test_run(s);
}
