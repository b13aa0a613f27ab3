/*
 * test_pretrain.c - issue 17's pieces end to end on tiny data with the built
 * ./hcga: `hcga synth --hard` (different images, synth.txt, the default
 * benchmark unchanged by the option's existence), `hcga pretrain` (a
 * backbone file with the ImageNet HRNet's names, no part classifier, equal to
 * the pretraining checkpoint's base.* tensors; same-seed --eval-data
 * refused), MODEL.PRETRAIN_PATH loading it in `hcga train` (every tensor),
 * the per-part IoU in metrics.jsonl, and `hcga parse --eval` on the stored
 * labels and with --weights (plus its errors).
 */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "model/safetensors.h"
#include "testutil.h"

#define HCGA_BIN HCGA_BUILDDIR "/hcga"

typedef hcga_test_output run_result;
static run_result res;

/* Run ./hcga with the arguments; its status and output (valid until the next RUN). */
#define RUN(...) (hcga_test_run_program(HCGA_BIN, (const char *const[]){__VA_ARGS__, NULL}, &res), &res)
#define ck_assert_contains(hay, needle) \
    ck_assert_msg(strstr((hay), (needle)) != NULL, "expected \"%s\" in \"%s\"", (needle), (hay))

START_TEST(test_synth_hard)
{
    char dir[] = "/tmp/hcga_test_hard_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char a[128], b[128], h[128], p2[256];
    snprintf(a, sizeof a, "%s/a", dir);
    snprintf(b, sizeof b, "%s/b", dir);
    snprintf(h, sizeof h, "%s/h", dir);
#define SMALL "--ids", "6", "--cams", "2", "--per-cam", "2", "--distractors", "1", "--seed", "4"
    const run_result *r = RUN("synth", "--out", a, SMALL);
    ck_assert_msg(r->status == 0, "%s", r->err);
    r = RUN("synth", "--out", b, SMALL);
    ck_assert_msg(r->status == 0, "%s", r->err);
    r = RUN("synth", "--out", h, SMALL, "--hard");
    ck_assert_msg(r->status == 0, "%s", r->err);
    ck_assert_contains(r->out, ", hard");
#undef SMALL
    /* deterministic; --hard changes the pictures but not the file list */
    snprintf(p2, sizeof p2, "%s/synth.txt", h);
    FILE *f = fopen(p2, "r");
    ck_assert_ptr_nonnull(f);
    char txt[256] = "";
    size_t n = fread(txt, 1, sizeof txt - 1, f);
    txt[n] = '\0';
    fclose(f);
    ck_assert_contains(txt, "seed 4\n");
    ck_assert_contains(txt, "hard 1\n");
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cd %s && for f in bounding_box_train/*.jpg; do cmp -s $f ../b/$f || exit 1; done", a);
    ck_assert_msg(system(cmd) == 0, "the same seed gave other files");
    snprintf(cmd, sizeof cmd, "cd %s && n=0; for f in bounding_box_train/*.jpg; do cmp -s $f ../h/$f || n=$((n+1)); done; test $n -gt 0", a);
    ck_assert_msg(system(cmd) == 0, "--hard gave the same images");
    r = RUN("synth", "--out", h, "--hard", "extra");
    ck_assert_int_eq(r->status, 2);
    ck_assert_int_eq(hcga_test_rm_rf(dir), 0);
}
END_TEST

START_TEST(test_pretrain_load_parse_eval)
{
    char dir[] = "/tmp/hcga_test_pretrain_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char pre[128], bench[128], w[160], run[128], cfg[1024], ck[256], metrics[256];
    snprintf(pre, sizeof pre, "%s/pre", dir);
    snprintf(bench, sizeof bench, "%s/bench", dir);
    snprintf(w, sizeof w, "%s/backbone.safetensors", dir);
    snprintf(run, sizeof run, "%s/run", dir);
    snprintf(cfg, sizeof cfg, "%s/configs/hrnet_tiny.yml", HCGA_SRCDIR);
    const run_result *r = RUN("synth", "--out", pre, "--hard", "--ids", "8", "--cams", "2", "--per-cam", "3",
                              "--distractors", "1", "--seed", "7");
    ck_assert_msg(r->status == 0, "%s", r->err);
    r = RUN("synth", "--out", bench, "--ids", "8", "--cams", "2", "--per-cam", "3", "--distractors", "1", "--seed",
            "8");
    ck_assert_msg(r->status == 0, "%s", r->err);

#define SMALLB "SOLVER.IMS_PER_BATCH", "8", "DATALOADER.NUM_INSTANCE", "2", "SOLVER.EVAL_PERIOD", "100"
    /* a pretraining set made with the benchmark's seed is refused */
    r = RUN("--threads", "2", "pretrain", "--config", cfg, "--data", pre, "--eval-data", pre, "--out", w, SMALLB);
    ck_assert_int_eq(r->status, 2);
    ck_assert_contains(r->err, "same seed 7");
    r = RUN("pretrain", "--data", pre);
    ck_assert_int_eq(r->status, 2);
    ck_assert_contains(r->err, "--out");
    r = RUN("--threads", "2", "pretrain", "--config", cfg, "--data", pre, "--eval-data", bench, "--out", w,
            "SOLVER.MAX_EPOCHS", "1", SMALLB);
    ck_assert_msg(r->status == 0, "pretrain exited %d: %s", r->status, r->err);
    ck_assert_contains(r->out, "backbone tensors; load it with MODEL.PRETRAIN_PATH");

    /* the file: backbone tensors under the ImageNet names, equal to the checkpoint's base.* */
    char err[512];
    snprintf(ck, sizeof ck, "%s.run/checkpoint.safetensors", w);
    st_file *fw = st_load(w, err, sizeof err), *fc = st_load(ck, err, sizeof err);
    ck_assert_msg(fw && fc, "%s", err);
    ck_assert_int_gt(fw->count, 10);
    ck_assert_ptr_nonnull(st_find(fw, "conv1.weight"));
    ck_assert_ptr_nonnull(st_find(fw, "stage4.0.fuse_layers.3.0.0.0.weight"));
    ck_assert_ptr_nonnull(st_find(fw, "cls_head.0.weight")); /* the layers of the feature map F */
    ck_assert_ptr_nonnull(st_find(fw, "spatial_attn.conv1.conv.weight"));
    ck_assert_ptr_nonnull(st_find(fw, "part_cls_layer.weight")); /* the part head CLUSTERING.AL guided uses */
    for (int i = 0; i < fw->count; i++) {
        const st_tensor *t = &fw->tensors[i];
        ck_assert_msg(strncmp(t->name, "base.", 5) &&
                          strncmp(t->name, "classifier", 10) && strncmp(t->name, "bottleneck", 10),
                      "unexpected tensor %s", t->name);
        char full[300];
        snprintf(full, sizeof full, "base.%s", t->name);
        const st_tensor *c = st_find(fc, full);
        ck_assert_msg(c && c->nbytes == t->nbytes && !memcmp(c->data, t->data, t->nbytes), "%s differs", t->name);
    }
    ck_assert_str_eq(st_meta(fw, "hcga_pretrain_synth_seed"), "7");
    char nload[64];
    snprintf(nload, sizeof nload, "pretrained backbone: %d tensors from ", fw->count);
    st_free(fw);
    st_free(fc);

    /* loaded by MODEL.PRETRAIN_PATH (every tensor), per-part IoU logged */
    r = RUN("--threads", "2", "train", "--config", cfg, "--data", bench, "--output", run, "--max-steps", "1",
            "MODEL.PRETRAIN_PATH", w, "CLUSTERING.AL", "kmeans_border", SMALLB);
    ck_assert_msg(r->status == 0, "train exited %d: %s", r->status, r->err);
    ck_assert_contains(r->out, nload);
    ck_assert_contains(r->out, "pseudo-label IoU:");
    snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", run);
    FILE *f = fopen(metrics, "r");
    ck_assert_ptr_nonnull(f);
    char line[4096];
    int found = 0;
    while (fgets(line, sizeof line, f)) found |= strstr(line, "\"coparse_round\": 1") && strstr(line, "\"iou\": [");
    fclose(f);
    ck_assert_msg(found, "metrics.jsonl has no per-part IoU for round 1");
    r = RUN("train", "--config", cfg, "--data", bench, "--output", run, "--max-steps", "1", "MODEL.PRETRAIN_PATH",
            metrics, SMALLB);
    ck_assert_int_ne(r->status, 0);
    ck_assert_contains(r->err, "MODEL.PRETRAIN_PATH");
    /* guided: refused without a pretrained part head, run with one */
    r = RUN("train", "--config", cfg, "--data", bench, "--output", run, "--max-steps", "1", "CLUSTERING.AL", "guided",
            SMALLB);
    ck_assert_int_ne(r->status, 0);
    ck_assert_contains(r->err, "CLUSTERING.AL guided names the clusters with the part head, which must be pretrained");
    r = RUN("--threads", "2", "train", "--config", cfg, "--data", bench, "--output", run, "--max-steps", "1",
            "MODEL.PRETRAIN_PATH", w, "CLUSTERING.AL", "guided", SMALLB);
    ck_assert_msg(r->status == 0, "train (guided) exited %d: %s", r->status, r->err);
    ck_assert_contains(r->out, "co-parsing round 1 (guided, epoch 1)");
    ck_assert_contains(r->out, "pseudo-label IoU:");

    /* parse --eval: the stored labels, then a co-parsing with the weights */
    r = RUN("parse", "--eval", "--config", cfg, "--data", bench);
    ck_assert_msg(r->status == 0, "parse --eval exited %d: %s", r->status, r->err);
    ck_assert_contains(r->out, "label maps against the ground-truth masks: IoU background ");
    ck_assert_contains(r->out, "mIoU(parts) ");
    snprintf(ck, sizeof ck, "%s/checkpoint.safetensors", run);
    r = RUN("--threads", "2", "parse", "--eval", "--weights", ck, "--data", bench, "CLUSTERING.AL", "dfc",
            "DFC.EPOCH", "3");
    ck_assert_msg(r->status == 0, "parse --eval --weights exited %d: %s", r->status, r->err);
    ck_assert_contains(r->out, "DFC co-parsing of 4 identities");
    ck_assert_contains(r->out, "mIoU(parts) ");
    ck_assert_contains(r->out, "s per identity");
    r = RUN("parse", "--eval", "--weights", ck, "--data", bench, "CLUSTERING.AL", "kmeans_edges");
    ck_assert_int_eq(r->status, 2);
    ck_assert_contains(r->err, "CLUSTERING.AL 'kmeans_edges' does not co-parse");
    r = RUN("parse", "--eval", "--config", cfg, "--data", bench, "DATASETS.PSEUDO_LABEL_SUBDIR", "nothing_here");
    ck_assert_int_eq(r->status, 1);
    ck_assert_contains(r->err, "nothing_here");
#undef SMALLB
    ck_assert_int_eq(hcga_test_rm_rf(dir), 0);
}
END_TEST

int main(void)
{
    TCase *tc;
    Suite *s = hcga_test_suite("pretrain", &tc);
    tcase_set_timeout(tc, 300);
    HCGA_ADD_TESTS(tc, test_synth_hard, test_pretrain_load_parse_eval);
    return hcga_test_run(s);
}
