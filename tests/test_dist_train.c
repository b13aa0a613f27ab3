/* Data-parallel training under mpirun (docs/distributed.md), on the cpu
 * backend with two ranks on this machine:
 *  - equivalence: 2 ranks train exactly like one process computing as two
 *    ranks would (hcga train --as-ranks 2), step losses and checkpoint to
 *    1e-9 relative in f64, with MODEL.SYNC_BN True and False;
 *  - co-parsing shared out across the ranks writes the single process's labels;
 *  - kill -9 of a rank in epoch 2, then --resume: the last checkpoint is
 *    intact and the resumed run ends with the tensors of an uninterrupted
 *    one, bit for bit; --resume with one process continues too;
 *  - a rank that hangs makes the job stop within the deadline, naming it;
 *  - refusals: a global batch that does not split into whole identities, a
 *    single-process command under mpirun.
 * Built only when configure found MPI; Open MPI runs as root in CI through
 * OMPI_ALLOW_RUN_AS_ROOT{,_CONFIRM}, set here. */
#include <check.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "model/safetensors.h"
#include "testutil.h"

static char tmpdir[256];
static char srcdir[1024];

#define run(...) hcga_test_sh(tmpdir, __VA_ARGS__)
#define MPIRUN HCGA_MPIRUN " -np 2 --oversubscribe"

/* the tiny model, 4 identities x 2 images a step (2 identities per rank),
 * a checkpoint every epoch, no evaluation */
#define BASE_ARGS                                                                                        \
    "--config %s/configs/hrnet_tiny.yml --data %s/data --seed 7 SOLVER.IMS_PER_BATCH 8 "                 \
    "DATALOADER.NUM_INSTANCE 2 SOLVER.CHECKPOINT_PERIOD 1 SOLVER.EVAL_PERIOD 100 SOLVER.LOG_PERIOD 1 " \
    "TEST.IMS_PER_BATCH 8"

/* Biases of convolutions that feed a batch norm: their gradient is zero in
 * exact arithmetic, so what they hold after Adam is rounding noise made
 * lr-sized (Adam divides m by sqrt(v) of the same noise); two summation
 * orders give different noise.  Every other tensor is compared. */
#define ZERO_GRAD_BIASES(pre)                                                                          \
    "--ignore " pre "base.cls_head.0.bias --ignore " pre "base.spatial_attn.conv1.conv.bias --ignore " pre \
    "base.spatial_attn.conv2.conv.bias "
#define IGNORE_ZERO_GRAD                                                                               \
    ZERO_GRAD_BIASES("") ZERO_GRAD_BIASES("optimizer.exp_avg.") ZERO_GRAD_BIASES("optimizer.exp_avg_sq.")

static void setup(void)
{
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    setenv("OMPI_MCA_rmaps_base_oversubscribe", "1", 1);
    /* containers often forbid the cross-process memory copies (ptrace) */
    setenv("OMPI_MCA_btl_vader_single_copy_mechanism", "none", 1);
    snprintf(srcdir, sizeof srcdir, "%s", hcga_test_srcdir());
    /* sanitizer builds: Open MPI's own allocations live until exit; full
     * stacks (no fast unwinding: Open MPI has no frame pointers) let the
     * suppressions name its libraries */
    setenv("OMPI_MCA_mca_base_component_disable_dlclose", "1", 1);
    char opt[1400];
    snprintf(opt, sizeof opt, "use_tls=0:suppressions=%s/tests/mpi-lsan.supp", srcdir);
    setenv("LSAN_OPTIONS", opt, 1);
    const char *asan = getenv("ASAN_OPTIONS");
    if (!asan || !strstr(asan, "fast_unwind_on_malloc")) {
        snprintf(opt, sizeof opt, "%s%sfast_unwind_on_malloc=0", asan ? asan : "", asan && *asan ? ":" : "");
        setenv("ASAN_OPTIONS", opt, 1);
    }
    hcga_test_mkdtemp(tmpdir, sizeof tmpdir, "hcga_test_dist_");
    ck_assert_int_eq(run("./hcga synth --out %s/data --ids 12 --cams 2 --per-cam 3 --distractors 2 --seed 3",
                         tmpdir),
                     0);
}

static void teardown(void)
{
    hcga_test_rm_rf(tmpdir);
}

static void expect_ok(int rc)
{
    if (rc) hcga_test_tail_log(tmpdir, 40);
    ck_assert_int_eq(rc, 0);
}

/* `steps` steps in f64 on 2 ranks and in one process as 2 ranks: the same
 * step losses and the same checkpoint, to 1e-9 relative. */
static void equivalence(const char *backend, const char *sync, int steps)
{
    expect_ok(run("./hcga --backend %s --threads 1 train " BASE_ARGS " CLUSTERING.AL band MODEL.SYNC_BN %s "
                  "--dtype f64 --max-steps %d --as-ranks 2 --output %s/one",
                  backend, srcdir, tmpdir, sync, steps, tmpdir));
    expect_ok(run(MPIRUN " ./hcga --backend %s --threads 1 train " BASE_ARGS " CLUSTERING.AL band MODEL.SYNC_BN %s "
                         "--dtype f64 --max-steps %d --output %s/two",
                  backend, srcdir, tmpdir, sync, steps, tmpdir));
    char p1[512], p2[512];
    snprintf(p1, sizeof p1, "%s/one/metrics.jsonl", tmpdir);
    snprintf(p2, sizeof p2, "%s/two/metrics.jsonl", tmpdir);
    double l1[32], l2[32];
    int n1 = hcga_test_read_losses(p1, l1, 32), n2 = hcga_test_read_losses(p2, l2, 32);
    ck_assert_int_eq(n1, steps);
    ck_assert_int_eq(n2, steps);
    for (int i = 0; i < steps; i++)
        ck_assert_msg(fabs(l1[i] - l2[i]) <= 1e-9 * fabs(l1[i]), "%s, SYNC_BN %s, step %d: loss %.17g on 2 ranks, "
                      "%.17g in one process", backend, sync, i + 1, l2[i], l1[i]);
    expect_ok(run("./hcga compare %s/two/checkpoint.safetensors %s/one/checkpoint.safetensors --tol 1e-9 "
                  IGNORE_ZERO_GRAD, tmpdir, tmpdir));
    /* exactly those nine were left out (the log holds this test's commands only) */
    expect_ok(run("grep -q '^compare: .*, 9 ignored,' %s/log", tmpdir));
}

START_TEST(test_equivalence_sync_bn)
{
    equivalence("cpu", "True", 10);
}
END_TEST

START_TEST(test_equivalence_per_rank_bn)
{
    equivalence("cpu", "False", 10);
}
END_TEST

/* the same on the OpenCL backend (PoCL), 4 steps with SyncBN, when it loads */
START_TEST(test_equivalence_opencl)
{
    if (run("./hcga --backend opencl backends")) {
        fprintf(stderr, "test_equivalence_opencl: the opencl backend does not load here; not run\n");
        return;
    }
    equivalence("opencl", "True", 4);
}
END_TEST

static st_file *load_ck(const char *dir)
{
    char path[600], err[1024];
    snprintf(path, sizeof path, "%s/%s/checkpoint.safetensors", tmpdir, dir);
    st_file *f = st_load(path, err, sizeof err);
    ck_assert_msg(f != NULL, "%s", err);
    return f;
}

/* every tensor of the two runs' checkpoints, bit for bit (the metadata may
 * differ: a resumed run's config came from its checkpoint) */
static void same_tensors(const char *da, const char *db)
{
    st_file *a = load_ck(da), *b = load_ck(db);
    ck_assert_str_eq(st_meta(a, "epoch"), st_meta(b, "epoch"));
    ck_assert_str_eq(st_meta(a, "adam_step"), st_meta(b, "adam_step"));
    ck_assert_int_eq(a->count, b->count);
    for (int i = 0; i < a->count; i++) {
        const st_tensor *x = &a->tensors[i], *y = st_find(b, x->name);
        ck_assert_msg(y != NULL, "%s missing in %s", x->name, db);
        ck_assert_uint_eq(x->nbytes, y->nbytes);
        ck_assert_msg(memcmp(x->data, y->data, x->nbytes) == 0, "%s differs between %s and %s", x->name, da, db);
    }
    st_free(a);
    st_free(b);
}

/* The rank's number of a process started by mpirun (OMPI_COMM_WORLD_RANK
 * in its environment), or -1. */
static int rank_of(int pid)
{
    char path[64], buf[65536];
    snprintf(path, sizeof path, "/proc/%d/environ", pid);
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    for (size_t i = 0; i < n; i += strlen(buf + i) + 1)
        if (!strncmp(buf + i, "OMPI_COMM_WORLD_RANK=", 21)) return atoi(buf + i + 21);
    return -1;
}

/* pids[r] = the process of rank r (r < max) among the children of the
 * mpirun whose pid is in pidfile; how many were found. */
static int rank_pids(const char *pidfile, int *pids, int max)
{
    char cmd[700];
    snprintf(cmd, sizeof cmd, "pgrep -P \"$(cat %s)\"", pidfile);
    FILE *f = popen(cmd, "r");
    ck_assert_ptr_nonnull(f);
    int n = 0, pid;
    while (fscanf(f, "%d", &pid) == 1) {
        int r = rank_of(pid);
        if (r >= 0 && r < max) pids[r] = pid, n++;
    }
    pclose(f);
    return n;
}

/* Waits up to limit seconds for a shell condition to hold. */
static int wait_for(double limit, const char *fmt, const char *arg)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, fmt, arg);
    for (double t = 0; t < limit; t += 0.2) {
        if (system(cmd) == 0) return 0;
        struct timespec ts = {0, 200000000};
        nanosleep(&ts, NULL);
    }
    return -1;
}

/* Starts `mpirun -np 2 hcga train ARGS --output TMP/OUT` in the background
 * (pid in TMP/mpirun.pid, output in TMP/OUT.log), waits until its
 * metrics.jsonl has a line with `mark`, and returns the ranks' two pids.
 * ARGS holds BASE_ARGS's two %s (the source tree, the test directory). */
static void start_in_background(const char *args, const char *out, const char *mark, int *pids)
{
    char fmt[2048], path[600], grep[256];
    snprintf(fmt, sizeof fmt,
             "(" MPIRUN " ./hcga --threads 1 train %s --output %%s/%s > %%s/%s.log 2>&1 & echo $! > %%s/mpirun.pid)",
             args, out, out);
    expect_ok(run(fmt, srcdir, tmpdir, tmpdir, tmpdir, tmpdir));
    snprintf(path, sizeof path, "%s/%s/metrics.jsonl", tmpdir, out);
    snprintf(grep, sizeof grep, "grep -q '%s' %%s 2>/dev/null", mark);
    ck_assert_msg(wait_for(300, grep, path) == 0, "%s: no '%s' in its metrics within 300 s", out, mark);
    snprintf(path, sizeof path, "%s/mpirun.pid", tmpdir);
    ck_assert_int_eq(rank_pids(path, pids, 2), 2);
}

/* f32, k-means co-parsing at epochs 1 and 3 (shared out across the ranks),
 * three epochs: kill -9 of rank 1 during epoch 2, then --resume on 2 ranks,
 * equals the uninterrupted run bit for bit; the labels of the first round
 * equal a single process's. */
START_TEST(test_kill_and_resume)
{
#define KILL_ARGS BASE_ARGS " CLUSTERING.AL kmeans CLUSTERING.PERIOD 2 SOLVER.MAX_EPOCHS 3"
    expect_ok(run(MPIRUN " ./hcga --threads 1 train " KILL_ARGS " DATASETS.PSEUDO_LABEL_SUBDIR labels_full "
                         "--output %s/full",
                  srcdir, tmpdir, tmpdir));
    /* co-parsing by two ranks wrote what one process writes (round 1 sees
     * the same initial weights in both) */
    expect_ok(run("./hcga --threads 1 train " KILL_ARGS " DATASETS.PSEUDO_LABEL_SUBDIR labels_one SOLVER.MAX_EPOCHS 1 "
                  "--max-steps 1 --output %s/one",
                  srcdir, tmpdir, tmpdir));
    expect_ok(run(MPIRUN " ./hcga --threads 1 train " KILL_ARGS " DATASETS.PSEUDO_LABEL_SUBDIR labels_two "
                         "SOLVER.MAX_EPOCHS 1 --max-steps 1 --output %s/two",
                  srcdir, tmpdir, tmpdir));
    expect_ok(run("diff -r %s/data/labels_one %s/data/labels_two", tmpdir, tmpdir));

    /* the interrupted run, in the background */
    char path[600];
    int pids[2];
    start_in_background(KILL_ARGS " DATASETS.PSEUDO_LABEL_SUBDIR labels_part", "part", "\"epoch\": 2, \"step\"",
                        pids);
    ck_assert_int_eq(kill(pids[1], SIGKILL), 0);
    snprintf(path, sizeof path, "%s/mpirun.pid", tmpdir);
    ck_assert_msg(wait_for(60, "! kill -0 \"$(cat %s)\" 2>/dev/null", path) == 0, "mpirun did not stop");
    /* the last checkpoint (epoch 1, or 2 when the kill came after its end)
     * is whole and loadable */
    snprintf(path, sizeof path, "%s/part/checkpoint.safetensors", tmpdir);
    char err[1024];
    st_file *f = st_load(path, err, sizeof err);
    ck_assert_msg(f != NULL, "%s", err);
    ck_assert_msg(!strcmp(st_meta(f, "epoch"), "1") || !strcmp(st_meta(f, "epoch"), "2"), "checkpoint of epoch %s",
                  st_meta(f, "epoch"));
    st_free(f);
    expect_ok(run(MPIRUN " ./hcga --threads 1 train --resume --data %s/data --output %s/part", tmpdir, tmpdir));
    same_tensors("full", "part");
    /* and --resume with another number of ranks continues too */
    expect_ok(run("./hcga --threads 1 train --resume --data %s/data --output %s/two SOLVER.MAX_EPOCHS 2", tmpdir,
                  tmpdir));
#undef KILL_ARGS
}
END_TEST

/* A rank that stops answering (SIGSTOP) makes rank 0 name it and stop the
 * job within the deadline (--dist-timeout 5). */
START_TEST(test_hung_rank_is_named)
{
    char path[600];
    int pids[2];
    start_in_background(BASE_ARGS " CLUSTERING.AL band SOLVER.MAX_EPOCHS 50 --dist-timeout 5", "hang",
                        "\"step\": 2,", pids);
    snprintf(path, sizeof path, "%s/mpirun.pid", tmpdir);
    time_t t0 = time(NULL);
    ck_assert_int_eq(kill(pids[1], SIGSTOP), 0);
    int stopped = wait_for(60, "! kill -0 \"$(cat %s)\" 2>/dev/null", path) == 0;
    kill(pids[1], SIGKILL);
    kill(pids[0], SIGKILL);
    ck_assert_msg(stopped, "the job did not stop within 60 s of a hung rank");
    ck_assert_int_le((int)(time(NULL) - t0), 40);
    expect_ok(run("grep 'did not complete within 5 s' %s/hang.log | grep -q 'never reached it or stopped answering: 1'", tmpdir));
}
END_TEST

START_TEST(test_refusals)
{
    /* 4 identities do not split into 3 ranks' whole identities */
    ck_assert_int_ne(run(HCGA_MPIRUN " -np 3 --oversubscribe ./hcga --threads 1 train " BASE_ARGS
                                     " CLUSTERING.AL band --max-steps 1 --output %s/three",
                         srcdir, tmpdir, tmpdir),
                     0);
    expect_ok(run("grep -q 'SOLVER.IMS_PER_BATCH 8 is 4 identities .* which 3 ranks' %s/log", tmpdir));
    ck_assert_int_ne(run(MPIRUN " ./hcga config"), 0);
    expect_ok(run("grep -q 'runs as one process, not as 2 ranks' %s/log", tmpdir));
}
END_TEST

int main(void)
{
    TCase *tc;
    Suite *s = hcga_test_suite("dist_train", &tc);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 1200);
    HCGA_ADD_TESTS(tc, test_refusals, test_equivalence_sync_bn, test_equivalence_per_rank_bn, test_equivalence_opencl,
                   test_kill_and_resume, test_hung_rank_is_named);
    return hcga_test_run(s);
}
