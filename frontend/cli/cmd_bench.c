/*
 * cmd_bench.c - `hcga bench`: throughput and memory of a full training step
 * (forward, backward, Adam) or of an eval forward, on random weights and
 * inputs.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "config/config.h"
#include "graph/graph.h"
#include "model/model.h"
#include "model/model_io.h"
#include "dist/dist.h"
#include "train/ddp.h"
#include "util/util.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: hcga [--backend NAME] [--threads N] bench --config FILE [--batch N]\n"
            "            [--mode train|eval] [--iters K] [--warmup W] [--classes C] [--seed S]\n"
            "            [--amp fp32|bf16|fp16] [--capture] [--bucket-mb M] [KEY VALUE ...]\n"
            "\n"
            "Time K iterations (after W warm-up ones) of a full training step (train-mode\n"
            "forward, backward, Adam update) or of an eval forward, for the model of the\n"
            "config (INPUT.SIZE_TRAIN / SIZE_TEST) with randomly initialised weights and\n"
            "random inputs.  Prints images/s and the memory the planner allocated: the\n"
            "arena of transient values, persistent values (inputs, outputs, gradients) and\n"
            "parameters with their optimizer state; their sum is the peak device memory.\n"
            "An eval forward also says how many convolution + batch norm runs the backend\n"
            "executes as one fused call (conv2d_bn_infer; HCGA_FUSION=0 runs op by op).\n"
            "The precision is the config's (SOLVER.AMP.ENABLED, SOLVER.AMP.DTYPE) unless --amp\n"
            "sets it: fp32, or bf16 / fp16 mixed precision (convolutions and GEMMs in 16 bits\n"
            "with f32 accumulation; fp16 with the config's loss scaling).\n"
            "--capture replays the step as a captured graph (CUDA Graphs) from its second run.\n"
            "Under mpirun -np N (train mode): N ranks of --batch images each, gradients\n"
            "averaged in --bucket-mb buckets (default 25) while backward runs; the step is\n"
            "timed with and without that overlap, and the time the all-reduce adds is shown.\n"
            "Defaults: --batch 8 --mode train --iters 3 --warmup 1 --classes 702 --seed 1.\n");
}

static uint64_t next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void mib(char *buf, size_t len, uint64_t b)
{
    snprintf(buf, len, "%.1f MiB", (double)b / (1024.0 * 1024.0));
}

int cmd_bench(int argc, char **argv, const hcga_global_opts *gopt)
{
    if (argc > 1 && hcga_cli_is_help(argv[1])) {
        usage(stdout);
        return 0;
    }
    const char *config = NULL, *amp_opt = NULL;
    int capture = 0;
    double bucket_mb = 25.0;
    long long batch = 8, iters = 3, warmup = 1, classes = 702, seed = 1;
    int train = 1, n_over = 0;
    char **over = calloc((size_t)argc + 5, sizeof *over); /* + --amp's 2 overrides */
    if (!over) return 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        long long *num = NULL, lo = 1;
        if (!strcmp(a, "--batch")) num = &batch;
        else if (!strcmp(a, "--iters")) num = &iters;
        else if (!strcmp(a, "--warmup")) num = &warmup, lo = 0;
        else if (!strcmp(a, "--classes")) num = &classes;
        else if (!strcmp(a, "--seed")) num = &seed, lo = 0;
        if (num) {
            if (i + 1 >= argc || hcga_parse_int(argv[i + 1], lo, 1 << 30, num)) {
                fprintf(stderr, "hcga bench: %s needs an integer >= %lld\n", a, lo);
                free(over);
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--config")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "hcga bench: --config needs a file\n");
                free(over);
                return 2;
            }
            config = argv[++i];
        } else if (!strcmp(a, "--capture")) {
            capture = 1;
        } else if (!strcmp(a, "--bucket-mb")) {
            if (i + 1 >= argc || hcga_parse_double(argv[i + 1], &bucket_mb) || !(bucket_mb > 0)) {
                fprintf(stderr, "hcga bench: --bucket-mb needs a positive number of MiB\n");
                free(over);
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--amp")) {
            amp_opt = i + 1 < argc ? argv[++i] : "";
            if (strcmp(amp_opt, "fp32") && strcmp(amp_opt, "bf16") && strcmp(amp_opt, "fp16")) {
                fprintf(stderr, "hcga bench: --amp '%s': expected fp32, bf16 or fp16\n", amp_opt);
                free(over);
                return 2;
            }
        } else if (!strcmp(a, "--mode")) {
            const char *m = i + 1 < argc ? argv[++i] : "";
            if (!strcmp(m, "train")) train = 1;
            else if (!strcmp(m, "eval")) train = 0;
            else {
                fprintf(stderr, "hcga bench: --mode '%s': expected train or eval\n", m);
                free(over);
                return 2;
            }
        } else if (a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "hcga bench: unknown option %s (see hcga bench --help)\n", a);
            free(over);
            return 2;
        } else {
            if (i + 1 >= argc) {
                fprintf(stderr, "hcga bench: config override %s has no value (KEY VALUE)\n", a);
                free(over);
                return 2;
            }
            over[n_over++] = argv[i];
            over[n_over++] = argv[++i];
        }
    }
    if (!config) {
        fprintf(stderr, "hcga bench: --config is required (see hcga bench --help)\n");
        free(over);
        return 2;
    }
    if (amp_opt) { /* after the KEY VALUE pairs: --amp wins */
        static char k_en[] = "SOLVER.AMP.ENABLED", k_dt[] = "SOLVER.AMP.DTYPE", v_true[] = "True",
                    v_false[] = "False", v_bf16[] = "bf16", v_fp16[] = "fp16";
        over[n_over++] = k_en;
        over[n_over++] = strcmp(amp_opt, "fp32") ? v_true : v_false;
        if (strcmp(amp_opt, "fp32")) {
            over[n_over++] = k_dt;
            over[n_over++] = strcmp(amp_opt, "bf16") ? v_fp16 : v_bf16;
        }
    }

    char err[2048] = "";
    int rc = 1;
    hcga_be *be = NULL;
    hg_store *s = NULL;
    hg_graph *g = NULL;
    hg_exec *ex = NULL;
    hcga_ddp *ddp = NULL;
    float *img = NULL, *probe_buf = NULL;
    int64_t *lab = NULL;
    hcga_config *cfg = hcga_config_load(config, n_over, over, err, sizeof err);
    if (!cfg) goto fail;
    hcga_amp_cfg amp;
    if (hcga_amp_from_config(cfg, &amp, err, sizeof err)) goto fail;
    const int fp16 = amp.enabled && amp.dtype == HCGA_F16;
    double scale = amp.init_scale;
    long long good = 0, skipped = 0;
    int mode = train ? HCGA_MODEL_TRAIN : HCGA_MODEL_EVAL;
    g = hcga_model_build(cfg, mode, (int)batch, (int)classes, HCGA_F32, err, sizeof err);
    if (!g) goto fail;
    if (hcga_cli_open_backend(gopt, &be)) {
        rc = 2;
        goto done;
    }
    s = hg_store_new(be, HCGA_F32);
    if (!s) {
        snprintf(err, sizeof err, "out of memory");
        goto fail;
    }
    if (hcga_model_init(g, s, (uint64_t)seed, err, sizeof err)) goto fail;
    double t0 = hcga_now();
    ex = hg_exec_new(g, s, err, sizeof err);
    if (!ex) goto fail;
    double t_plan = hcga_now() - t0;
    if (capture && hg_exec_set_capture(ex, 1)) goto exec_fail;
    const int nranks = hcga_dist_size();
    if (hcga_ddp_broadcast_store(s, 0, err, sizeof err)) goto fail;

    /* random inputs: N(0,1) images, PK identities (4 images each), random part labels */
    uint64_t st = (uint64_t)seed * 7919u + 17u;
    hg_val xin = hg_find(g, "input.images");
    int64_t nimg = hcga_val_numel(g, xin);
    img = malloc((size_t)nimg * sizeof *img);
    if (!img) {
        snprintf(err, sizeof err, "out of memory");
        goto fail;
    }
    for (int64_t i = 0; i < nimg; i++) {
        double u1 = ((double)(next(&st) >> 11) + 1.0) * 0x1.0p-53;
        double u2 = (double)(next(&st) >> 11) * 0x1.0p-53;
        img[i] = (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
    }
    if (hg_exec_set_input(ex, "input.images", img, HCGA_F32)) goto exec_fail;
    if (train) {
        hg_val pv = hg_find(g, "input.parsing");
        int64_t nl = hcga_val_numel(g, pv);
        int k = (int)hcga_cfg_int(cfg, "CLUSTERING.PART_NUM");
        lab = malloc((size_t)(nl > batch ? nl : batch) * sizeof *lab);
        if (!lab) {
            snprintf(err, sizeof err, "out of memory");
            goto fail;
        }
        for (int64_t i = 0; i < batch; i++) lab[i] = (i / 4) % classes;
        if (hg_exec_set_input(ex, "input.pids", lab, HCGA_I64)) goto exec_fail;
        for (int64_t i = 0; i < nl; i++) lab[i] = (int64_t)(next(&st) % (uint64_t)k);
        if (hg_exec_set_input(ex, "input.parsing", lab, HCGA_I64)) goto exec_fail;
    }
    hg_optim_cfg oc = {0};
    oc.lr = hcga_cfg_float(cfg, "SOLVER.BASE_LR");
    oc.weight_decay = hcga_cfg_float(cfg, "SOLVER.WEIGHT_DECAY");
    oc.lr_bias = oc.lr * hcga_cfg_float(cfg, "SOLVER.BIAS_LR_FACTOR");
    oc.weight_decay_bias = hcga_cfg_float(cfg, "SOLVER.WEIGHT_DECAY_BIAS");
    oc.beta1 = 0.9;
    oc.beta2 = 0.999;
    oc.eps = 1e-8;
    /* reading a small output waits for the backend to finish the step */
    hg_val probe = hg_find(g, train ? "loss.total" : "eval.feat_fore");
    probe_buf = malloc((size_t)hcga_val_numel(g, probe) * sizeof *probe_buf);
    if (!probe_buf) {
        snprintf(err, sizeof err, "out of memory");
        goto fail;
    }
    float loss = 0;
    double t_run = 0, t_cpu = 0, t_serial = 0;
    hcga_ddp_stats dst = {0}, dst_serial = {0};
    hg_val check = fp16 && train ? hg_find(g, HCGA_AMP_CHECK_OUTPUT) : -1;
    /* data-parallel: phase 0 overlaps the all-reduce with backward, phase 1
     * (the comparison) starts it after backward */
    const int phases = train && nranks > 1 ? 2 : 1;
    long long steps_done = 0;
    for (int phase = 0; phase < phases; phase++) {
    if (train && nranks > 1 && !(ddp = hcga_ddp_new(ex, bucket_mb, phase == 0, err, sizeof err))) goto fail;
    double t_phase = 0;
    for (long long it = 0; it < warmup + iters; it++) {
        double t = hcga_now(), tc = hcga_cpu_now();
        if (fp16 && hcga_model_set_loss_scale(ex, g, scale, err, sizeof err)) goto fail;
        if (hg_exec_run(ex)) goto exec_fail;
        if (ddp && hcga_ddp_finish(ddp, err, sizeof err)) goto fail;
        float gsum = 0;
        if (check >= 0 && hg_exec_read(ex, check, &gsum, HCGA_F32)) goto exec_fail;
        if (check >= 0 && !isfinite(gsum)) { /* as hcga train: skip the step, back off */
            scale *= amp.backoff_factor;
            good = 0;
            skipped++;
        } else if (train) {
            oc.step = ++steps_done;
            if (hg_adam_step(ex, &oc)) goto exec_fail;
            if (fp16 && ++good >= amp.growth_interval) {
                scale *= amp.growth_factor;
                good = 0;
            }
        }
        if (hg_exec_read(ex, probe, probe_buf, HCGA_F32)) goto exec_fail;
        loss = probe_buf[0];
        if (it >= warmup) {
            t_phase += hcga_now() - t;
            if (phase == 0) t_cpu += hcga_cpu_now() - tc;
        }
        if (it == warmup - 1 && ddp) { /* the warm-up's timings do not count */
            hcga_ddp_free(ddp);
            if (!(ddp = hcga_ddp_new(ex, bucket_mb, phase == 0, err, sizeof err))) goto fail;
        }
        if (train && !isfinite(loss)) {
            snprintf(err, sizeof err, "loss became %g at iteration %lld", (double)loss, it + 1);
            goto fail;
        }
    }
    if (ddp) {
        if (phase == 0) dst = hcga_ddp_get_stats(ddp);
        else dst_serial = hcga_ddp_get_stats(ddp);
        hcga_ddp_free(ddp);
        ddp = NULL;
    }
    if (phase == 0) t_run = t_phase;
    else t_serial = t_phase;
    }
    uint64_t params = hg_exec_param_bytes(ex), optstate = hg_exec_optim_bytes(ex);
    uint64_t arena = hg_exec_peak_bytes(ex), pers = hg_exec_persistent_bytes(ex);
    uint64_t naive = hg_exec_naive_bytes(ex);
    char a[32], b[32], c[32], d[32], e2[32], f[32];
    mib(a, sizeof a, arena);
    mib(b, sizeof b, pers);
    mib(c, sizeof c, params);
    mib(d, sizeof d, optstate);
    mib(e2, sizeof e2, arena + pers + params + optstate);
    mib(f, sizeof f, naive);
    int64_t h4, w4;
    hcga_model_input_size(cfg, mode, &h4, &w4);
    printf("bench: %s %s, backend %s, batch %lld, input %lldx%lld, %d graph nodes\n", config,
           train ? "train step (forward + backward + Adam)" : "eval forward", be->name, batch,
           (long long)h4 * 4, (long long)w4 * 4, hg_num_nodes(g));
    if (hg_exec_fused_count(ex) > 0)
        printf("fusion: %d convolution + batch norm (+ residual) (+ ReLU) runs as one conv2d_bn_infer call each "
               "(HCGA_FUSION=0 runs them op by op)\n", hg_exec_fused_count(ex));
    else if (!train)
        printf("fusion: none (%s)\n", hg_exec_fusion_note(ex));
    if (!amp.enabled)
        printf("precision: fp32\n");
    else if (fp16 && train)
        printf("precision: fp16 (convolutions and GEMMs in fp16, f32 accumulation; loss scale %g at the end, "
               "%lld of %lld steps skipped for Inf/NaN gradients)\n",
               scale, skipped, warmup + iters);
    else
        printf("precision: %s (convolutions and GEMMs in %s, f32 accumulation)\n", hcga_amp_precision(&amp, HCGA_F32),
               hcga_amp_precision(&amp, HCGA_F32));
    printf("time: %.1f ms/iter over %lld iters (after %lld warm-up), %.2f images/s; planning %.0f ms\n",
           1000.0 * t_run / (double)iters, iters, warmup, (double)(batch * iters) / t_run,
           1000.0 * t_plan);
    printf("cpu time: %.1f ms/iter in this process (%.2f cores busy on average; compare with the "
           "wall time on a loaded machine)\n",
           1000.0 * t_cpu / (double)iters, t_cpu / t_run);
    if (train) printf("loss after the last step: %.4f\n", (double)loss);
    printf("memory: arena %s (no reuse: %s), persistent %s, parameters %s, optimizer state %s, "
           "total %s\n",
           a, f, b, c, d, e2);
    if (capture) printf("graph capture: on (the step is replayed from its second run)\n");
    if (phases == 2) {
        const double per = 1000.0 / (double)iters, exposed = dst.exposed_s * per,
                     serial = dst_serial.exposed_s * per;
        printf("data-parallel: %d ranks x batch %lld (global %lld), %lld gradient buckets, %.1f MiB all-reduced per "
               "step over %s\n",
               nranks, batch, batch * nranks, dst.buckets, dst.bytes / 1048576.0, dst.transport);
        printf("data-parallel: step %.1f ms with the all-reduce overlapping backward (%.1f ms of it exposed after "
               "backward, %.1f ms in the hook during it, %.1f ms summing BN statistics); %.1f ms with the "
               "all-reduce after backward (%.1f ms); overlap hides %.0f%% of it; %.2f images/s in all\n",
               t_run * per, exposed, dst.hook_s * per, dst.sync_bn_s * per, t_serial * per, serial,
               serial > 0 ? 100.0 * (1.0 - exposed / serial) : 0.0, (double)(batch * nranks * iters) / t_run);
    }
    printf("summary: precision %s, %.2f images/s, peak device memory %s\n", hcga_amp_precision(&amp, HCGA_F32),
           (double)(batch * iters) / t_run, e2);
    rc = 0;
    goto done;
exec_fail:
    snprintf(err, sizeof err, "%s", hg_exec_error(ex));
fail:
    fprintf(stderr, "hcga bench: %s\n", err);
done:
    free(img);
    free(lab);
    free(probe_buf);
    hcga_ddp_free(ddp);
    if (ex) hg_exec_free(ex);
    if (g) hcga_model_graph_free(g);
    if (s) hg_store_free(s);
    if (be) hcga_be_close(be);
    if (cfg) hcga_config_free(cfg);
    free(over);
    return rc;
}
