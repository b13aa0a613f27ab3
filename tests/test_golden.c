/*
 * test_golden.c - the model against the reference PyTorch code: runs
 * `hcga --backend B forward` on shared/golden/tiny.* (eval + train outputs,
 * losses, gradients, one Adam step) for every backend that loads, and
 * checks every tensor with `hcga compare` (relative L2 error < 1e-3 per
 * tensor for eval, train, loss and after_step, exact visible_part, 1e-2 for
 * the noisier float32 golden gradients), checks the gradients exactly in f64
 * against central differences, that the comparison catches a model change,
 * and the checkpoint loader's error reporting.
 *
 * The shared folder is $HCGA_SHARED (set by make check), else
 * $(abs_top_srcdir)/../shared.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/backend.h"
#include "config/config.h"
#include "graph/graph.h"
#include "model/model.h"
#include "model/model_io.h"
#include "model/safetensors.h"
#include "testutil.h"

#define MAX_BE 8
static char be_names[MAX_BE][64];
static int n_be;
static char shared[4096];
static char tmpdir[4096];

static const char *hcga_bin(void) { return HCGA_BUILDDIR "/hcga"; }

static void golden_path(char *buf, size_t len, const char *file)
{
    snprintf(buf, len, "%s/golden/%s", shared, file);
}

/* Run a shell command, echo its output, return its exit status. */
static int run(const char *cmd, const char *log)
{
    char full[16384];
    snprintf(full, sizeof full, "%s > '%s' 2>&1", cmd, log);
    int st = system(full);
    FILE *f = fopen(log, "r");
    if (f) {
        char line[1024];
        while (fgets(line, sizeof line, f)) fputs(line, stdout);
        fclose(f);
    }
    fflush(stdout);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int forward(const char *be, const char *out, const char *extra, const char *log)
{
    char cfg[4352], w[4352], in[4352], cmd[16384];
    golden_path(cfg, sizeof cfg, "hrnet_tiny.yml");
    golden_path(w, sizeof w, "tiny.weights.safetensors");
    golden_path(in, sizeof in, "tiny.golden.safetensors");
    snprintf(cmd, sizeof cmd,
             "'%s' --backend %s %s forward --config '%s' --weights '%s' --input '%s' "
             "--output '%s' --mode both --grads --adam-step 3.5e-6 %s",
             hcga_bin(), be, strcmp(be, "cpu") ? "" : "--threads 2", cfg, w, in, out, extra);
    return run(cmd, log);
}

static int compare(const char *a, const char *log)
{
    char ref[4352], cmd[16384];
    golden_path(ref, sizeof ref, "tiny.golden.safetensors");
    /* Gradients: the golden ones are float32 results whose own error against
     * the exact derivative (central differences of an independent float64
     * model) reaches 1.4e-3 (1.8e-2 for spatial_attn.conv2.conv.weight), so
     * they are checked at 1e-2; the exact gradients are checked by
     * test_gradient_matches_finite_differences.  The absolute floor passes
     * tensors that are zero up to rounding (biases of convs feeding a
     * train-mode BN: cls_head.0, spatial_attn.conv1/conv2). */
    snprintf(cmd, sizeof cmd,
             "'%s' compare '%s' '%s' --tol 1e-3 --group-tol grad=1e-2 --atol 1e-6 --ignore input.",
             hcga_bin(), a, ref);
    return run(cmd, log);
}

START_TEST(test_backend_matches_reference)
{
    const char *be = be_names[_i];
    char out[4352], log[4352];
    snprintf(out, sizeof out, "%s/out_%s.safetensors", tmpdir, be);
    snprintf(log, sizeof log, "%s/forward_%s.log", tmpdir, be);
    printf("== backend %s: forward\n", be);
    ck_assert_msg(forward(be, out, "", log) == 0, "hcga --backend %s forward failed (see above)",
                  be);
    snprintf(log, sizeof log, "%s/compare_%s.log", tmpdir, be);
    printf("== backend %s: compare with the reference\n", be);
    ck_assert_msg(compare(out, log) == 0,
                  "backend %s does not match the reference PyTorch outputs (see above)", be);
    /* every golden tensor group is produced: 705 = 3 inputs + 4 eval + 7
     * train + 6 losses + 254 grads + 430 after_step, all checked */
    char err[1024];
    st_file *f = st_load(out, err, sizeof err);
    ck_assert_msg(f != NULL, "%s", err);
    ck_assert_ptr_nonnull(st_find(f, "eval.visible_part"));
    ck_assert_ptr_nonnull(st_find(f, "grad.base.conv1.weight"));
    ck_assert_ptr_nonnull(st_find(f, "after_step.bottleneck_part.running_var"));
    ck_assert_ptr_null(st_find(f, "grad.bottleneck_part.bias")); /* frozen BNNeck bias */
    st_free(f);
}
END_TEST

/* The comparison must be able to fail: a different part threshold (MODEL.T)
 * changes y_part, the part logits' loss and the gradients. */
START_TEST(test_compare_catches_a_model_change)
{
    char out[4352], log[4352];
    snprintf(out, sizeof out, "%s/out_T2.safetensors", tmpdir);
    snprintf(log, sizeof log, "%s/forward_T2.log", tmpdir);
    ck_assert_int_eq(forward("cpu", out, "MODEL.T 2", log), 0);
    snprintf(log, sizeof log, "%s/compare_T2.log", tmpdir);
    ck_assert_int_eq(compare(out, log), 1);
    FILE *f = fopen(log, "r");
    ck_assert_ptr_nonnull(f);
    char line[1024];
    int saw_ypart = 0, saw_eval_fail = 0;
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "FAIL train.y_part", 17)) saw_ypart = 1;
        if (!strncmp(line, "FAIL eval.", 10)) saw_eval_fail = 1;
    }
    fclose(f);
    ck_assert_msg(saw_ypart, "train.y_part should differ with MODEL.T 2");
    ck_assert_msg(!saw_eval_fail, "eval outputs do not depend on MODEL.T");
}
END_TEST

static hcga_config *tiny_config(void)
{
    char cfgp[4352], err[1024];
    golden_path(cfgp, sizeof cfgp, "hrnet_tiny.yml");
    hcga_config *c = hcga_config_load(cfgp, 0, NULL, err, sizeof err);
    ck_assert_msg(c != NULL, "%s", err);
    return c;
}

/* Build a state dict from the golden weights with one tensor changed. */
static void write_variant(const char *path, const char *drop, const char *add, int reshape)
{
    char wp[4352], err[1024];
    golden_path(wp, sizeof wp, "tiny.weights.safetensors");
    st_file *f = st_load(wp, err, sizeof err);
    ck_assert_msg(f != NULL, "%s", err);
    st_writer *w = st_writer_new();
    for (int i = 0; i < f->count; i++) {
        const st_tensor *t = &f->tensors[i];
        if (drop && !strcmp(t->name, drop)) continue;
        int64_t shape[8];
        memcpy(shape, t->shape, sizeof shape);
        int ndim = t->ndim;
        if (reshape && !strcmp(t->name, "base.conv1.weight")) {
            shape[2] = shape[3] = 1; /* [64,3,1,1]: a prefix of the data */
        }
        ck_assert_int_eq(st_writer_add(w, t->name, t->dtype, ndim, shape, t->data), 0);
    }
    if (add) {
        float z[2] = {0, 0};
        ck_assert_int_eq(st_writer_add(w, add, ST_F32, 1, (int64_t[]){2}, z), 0);
    }
    ck_assert_int_eq(st_writer_save(w, path, err, sizeof err), 0);
    st_writer_free(w);
    st_free(f);
}

static int load_into_store(const char *path, char *err, size_t err_len)
{
    hcga_be *be = NULL;
    char e2[1024];
    ck_assert_msg(hcga_be_open("cpu", 0, NULL, &be, e2, sizeof e2) == 0, "%s", e2);
    hg_store *s = hg_store_new(be, HCGA_F32);
    hcga_config *c = tiny_config();
    int rc = hcga_model_load_file(c, s, path, 0, err, err_len);
    hcga_config_free(c);
    hg_store_free(s);
    hcga_be_close(be);
    return rc;
}

START_TEST(test_loader_reports_problems_by_name)
{
    char path[4352], err[2048];
    snprintf(path, sizeof path, "%s/missing.safetensors", tmpdir);
    write_variant(path, "base.stage3.0.fuse_layers.2.0.1.1.running_var", NULL, 0);
    ck_assert_int_eq(load_into_store(path, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "1 missing: base.stage3.0.fuse_layers.2.0.1.1.running_var"), "%s", err);

    snprintf(path, sizeof path, "%s/unexpected.safetensors", tmpdir);
    write_variant(path, NULL, "base.extra_head.weight", 0);
    ck_assert_int_eq(load_into_store(path, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "1 unexpected: base.extra_head.weight"), "%s", err);

    snprintf(path, sizeof path, "%s/shape.safetensors", tmpdir);
    write_variant(path, NULL, NULL, 1);
    ck_assert_int_eq(load_into_store(path, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "base.conv1.weight: shape [64,3,1,1] in the file, the model has "
                              "[64,3,3,3]"),
                  "%s", err);

    /* the reference's unused modules and num_batches_tracked are accepted */
    snprintf(path, sizeof path, "%s/nbt.safetensors", tmpdir);
    write_variant(path, NULL, "base.bn1.num_batches_tracked", 0);
    ck_assert_msg(load_into_store(path, err, sizeof err) == 0, "%s", err);
}
END_TEST

/* The parameter list matches the reference's state dict exactly (names and
 * shapes), minus the unused modules. */
START_TEST(test_param_names_match_reference)
{
    char wp[4352], err[1024];
    golden_path(wp, sizeof wp, "tiny.weights.safetensors");
    st_file *f = st_load(wp, err, sizeof err);
    ck_assert_msg(f != NULL, "%s", err);
    hcga_config *c = tiny_config();
    int np = 0;
    hcga_model_param *p = hcga_model_param_list(c, 6, &np, err, sizeof err);
    ck_assert_msg(p != NULL, "%s", err);
    int used = 0;
    for (int i = 0; i < f->count; i++) used += !hcga_model_ignored_name(f->tensors[i].name);
    ck_assert_int_eq(np, used);
    for (int i = 0; i < np; i++) {
        const st_tensor *t = st_find(f, p[i].name);
        ck_assert_msg(t != NULL, "%s is not in the reference state dict", p[i].name);
        ck_assert_int_eq(t->ndim, p[i].ndim);
        for (int d = 0; d < t->ndim; d++) ck_assert_int_eq(t->shape[d], p[i].shape[d]);
        int running = strstr(p[i].name, ".running_") != NULL;
        ck_assert_msg(running == ((p[i].flags & HG_BUFFER) != 0), "%s flags", p[i].name);
    }
    free(p);
    hcga_config_free(c);
    st_free(f);
}
END_TEST


/* ---- the whole model's gradient against central differences (f64) ---- */

static uint64_t sm64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double normal(uint64_t *s)
{
    double u1 = ((double)(sm64(s) >> 11) + 1.0) * 0x1.0p-53, u2 = (double)(sm64(s) >> 11) * 0x1.0p-53;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static double run_loss(hg_exec *ex, hg_graph *g)
{
    ck_assert_msg(hg_exec_run(ex) == 0, "%s", hg_exec_error(ex));
    double l;
    ck_assert_int_eq(hg_exec_read(ex, hg_find(g, "loss.total"), &l, HCGA_F64), 0);
    return l;
}

static void set_in(hg_exec *ex, const st_file *f, const char *name)
{
    const st_tensor *t = st_find(f, name);
    ck_assert_ptr_nonnull(t);
    if (t->dtype == ST_I64) {
        int64_t *b = malloc(t->numel * sizeof *b);
        ck_assert_int_eq(st_to_i64(t, b), 0);
        ck_assert_int_eq(hg_exec_set_input(ex, name, b, HCGA_I64), 0);
        free(b);
    } else {
        double *b = malloc(t->numel * sizeof *b);
        ck_assert_int_eq(st_to_f64(t, b), 0);
        ck_assert_int_eq(hg_exec_set_input(ex, name, b, HCGA_F64), 0);
        free(b);
    }
}

/* d loss / d theta along a random direction for one parameter tensor,
 * from the graph's gradient and from (L(theta + e v) - L(theta - e v)) / 2e,
 * in f64 on the CPU backend: checks the model's backward (every op path:
 * stem, fuse chains, upsampling, incre heads, attention, part pooling with
 * the 1/T threshold, BNNeck, classifiers, all five losses) independently of
 * the float32 noise of the golden gradients. */
START_TEST(test_gradient_matches_finite_differences)
{
    static const char *const names[] = {
        "base.conv1.weight", "base.bn1.weight", "base.layer1.0.downsample.0.weight",
        "base.layer1.3.conv2.weight", "base.transition1.1.0.0.weight",
        "base.stage2.0.fuse_layers.0.1.0.weight", "base.stage3.0.fuse_layers.2.0.0.0.weight",
        "base.stage4.0.fuse_layers.3.0.1.1.weight", "base.stage4.0.fuse_layers.0.3.1.bias",
        "base.stage4.0.branches.3.0.conv2.weight", "base.transition3.3.0.1.bias",
        "base.incre_modules.0.0.bn1.bias", "base.incre_modules.3.0.conv3.weight",
        "base.cls_head.0.weight", "base.cls_head.1.weight", "base.spatial_attn.conv1.conv.weight",
        "base.spatial_attn.conv2.bn.weight", "base.spatial_attn.conv2.conv.weight",
        "base.part_cls_layer.weight", "base.part_cls_layer.bias", "bottleneck_part.weight",
        "bottleneck_global.weight", "classifier_part.weight", "classifier_fore.weight"};
    char err[2048], wp[4352], ip[4352];
    golden_path(wp, sizeof wp, "tiny.weights.safetensors");
    golden_path(ip, sizeof ip, "tiny.golden.safetensors");
    hcga_be *be = NULL;
    ck_assert_msg(hcga_be_open("cpu", 0, "threads=2", &be, err, sizeof err) == 0, "%s", err);
    hg_store *s = hg_store_new(be, HCGA_F64);
    hcga_config *c = tiny_config();
    ck_assert_msg(hcga_model_load_file(c, s, wp, 0, err, sizeof err) == 0, "%s", err);
    st_file *in = st_load(ip, err, sizeof err);
    ck_assert_msg(in != NULL, "%s", err);
    hg_graph *g = hcga_model_build(c, HCGA_MODEL_TRAIN, 4, 6, HCGA_F64, err, sizeof err);
    ck_assert_msg(g != NULL, "%s", err);
    hg_exec *ex = hg_exec_new(g, s, err, sizeof err);
    ck_assert_msg(ex != NULL, "%s", err);
    set_in(ex, in, "input.images");
    set_in(ex, in, "input.pids");
    set_in(ex, in, "input.parsing");
    run_loss(ex, g);
    uint64_t seed = 12345;
    int bad = 0;
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        hg_store_entry *se = hg_store_get(s, names[k]);
        ck_assert_msg(se != NULL, "%s", names[k]);
        int64_t n = 1;
        for (int d = 0; d < se->ndim; d++) n *= se->shape[d];
        double *th = malloc((size_t)n * sizeof *th), *v = malloc((size_t)n * sizeof *v),
               *gr = malloc((size_t)n * sizeof *gr), *tp = malloc((size_t)n * sizeof *tp);
        /* the gradient at theta (the previous runs left theta unchanged) */
        run_loss(ex, g);
        ck_assert_int_eq(hg_exec_read(ex, hg_grad(g, hg_find(g, names[k])), gr, HCGA_F64), 0);
        ck_assert_int_eq(hg_store_read(s, se, th, HCGA_F64), 0);
        double rms = 0, dd = 0;
        for (int64_t i = 0; i < n; i++) rms += th[i] * th[i];
        rms = sqrt(rms / (double)n);
        if (rms < 1e-2) rms = 1e-2;
        for (int64_t i = 0; i < n; i++) {
            v[i] = rms * normal(&seed);
            dd += gr[i] * v[i];
        }
        /* central differences at a relative step of 1e-6, and 1e-7 when that
         * one disagrees: a perturbation of the stem moves every activation, so
         * the larger step may cross a ReLU kink or the 1/T threshold of a part
         * probability (a jump), which a smaller step avoids */
        double fd = 0, tol = 1e-5 * fabs(dd) + 1e-6;
        for (double e = 1e-6; e > 0.5e-7; e /= 10) {
            for (int64_t i = 0; i < n; i++) tp[i] = th[i] + e * v[i];
            ck_assert_int_eq(hg_store_write(s, se, tp, HCGA_F64), 0);
            double lp = run_loss(ex, g);
            for (int64_t i = 0; i < n; i++) tp[i] = th[i] - e * v[i];
            ck_assert_int_eq(hg_store_write(s, se, tp, HCGA_F64), 0);
            double lm = run_loss(ex, g);
            ck_assert_int_eq(hg_store_write(s, se, th, HCGA_F64), 0);
            fd = (lp - lm) / (2 * e);
            if (fabs(fd - dd) <= tol) break;
        }
        printf("fd %-48s graph %+.10e  central difference %+.10e  %s\n", names[k], dd, fd,
               fabs(fd - dd) <= tol ? "ok" : "MISMATCH");
        fflush(stdout);
        bad += !(fabs(fd - dd) <= tol);
        free(th), free(v), free(gr), free(tp);
    }
    ck_assert_msg(bad == 0, "%d parameter tensors have a gradient unlike the central difference", bad);
    hg_exec_free(ex);
    hcga_model_graph_free(g);
    st_free(in);
    hcga_config_free(c);
    hg_store_free(s);
    hcga_be_close(be);
}
END_TEST

static void find_backends(void)
{
    static hcga_plugin_entry e[32];
    int n = hcga_plugins_scan(e, 32);
    n_be = 0;
    snprintf(be_names[n_be++], sizeof be_names[0], "cpu"); /* must work: fails the test if not */
    for (int i = 0; i < n && n_be < MAX_BE; i++) {
        if (!strcmp(e[i].name, "opencl") || !strcmp(e[i].name, "cuda") || !strcmp(e[i].name, "onednn")) {
            if (e[i].ok)
                snprintf(be_names[n_be++], sizeof be_names[0], "%s", e[i].name);
            else
                printf("golden: skipping backend %s: %s\n", e[i].name, e[i].reason);
        }
    }
}

int main(void)
{
    const char *env = getenv("HCGA_SHARED");
    snprintf(shared, sizeof shared, "%s", env && *env ? env : HCGA_SRCDIR "/../shared");
    char probe[4352];
    golden_path(probe, sizeof probe, "tiny.golden.safetensors");
    struct stat sb;
    if (stat(probe, &sb) != 0) {
        printf("test_golden: %s not found (set HCGA_SHARED): skipped\n", probe);
        return 77;
    }
    snprintf(tmpdir, sizeof tmpdir, "%s", "/tmp/hcga_golden_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    find_backends();

    Suite *s = suite_create("golden");
    TCase *tc = tcase_create("backends");
    tcase_set_timeout(tc, 900);
    tcase_add_loop_test(tc, test_backend_matches_reference, 0, n_be);
    tcase_add_test(tc, test_compare_catches_a_model_change);
    suite_add_tcase(s, tc);
    TCase *tl = tcase_create("loader");
    tcase_set_timeout(tl, 120);
    tcase_add_test(tl, test_param_names_match_reference);
    tcase_add_test(tl, test_loader_reports_problems_by_name);
    TCase *tf = tcase_create("finite_differences");
    tcase_set_timeout(tf, 600);
    tcase_add_test(tf, test_gradient_matches_finite_differences);
    suite_add_tcase(s, tf);
    suite_add_tcase(s, tl);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    /* leave the outputs for inspection only when something failed */
    if (!failed) {
        if (hcga_test_rm_rf(tmpdir) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    } else {
        printf("test_golden: outputs kept in %s\n", tmpdir);
    }
    return failed ? 1 : 0;
}
