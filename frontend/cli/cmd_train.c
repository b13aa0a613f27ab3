/*
 * cmd_train.c - `hcga train`: the command line (options, KEY VALUE
 * overrides, --help) and the order of the training run's steps; the run
 * itself (setup, epochs, checkpoints, evaluation) is train/train.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "dist/dist.h"
#include "train/train.h"
#include "util/util.h"

static void train_usage(FILE *f)
{
    fprintf(f,
            "usage: hcga [--backend B] [--threads N] train [--config F] [--data DIR] [--output DIR]\n"
            "                  [--resume] [--seed S] [--max-steps N] [--dtype f32|f64] [KEY VALUE ...]\n"
            "\n"
            "Train HCGA (HCGA.md sections 3-5) on a Market-1501-layout dataset.\n"
            "  --config F    yacs YAML config (default: built-in defaults; with --resume, the\n"
            "                checkpoint's own config)\n"
            "  --data DIR    dataset root (default: DATASETS.ROOT_DIR)\n"
            "  --output DIR  where checkpoint.safetensors and metrics.jsonl go (default:\n"
            "                OUTPUT_DIR, or ./hcga-out when that is empty)\n"
            "  --resume      continue from DIR/checkpoint.safetensors exactly where it stopped\n"
            "  --seed S      seed of initialisation, sampling and augmentation (default 1)\n"
            "  --max-steps N stop after N optimizer steps in all (checkpoint written, no\n"
            "                evaluation): for comparing backends step by step; with fp16 the\n"
            "                steps skipped for Inf/NaN gradients count\n"
            "  --dtype f32|f64  compute dtype of the graph, parameters and Adam state\n"
            "                (default f32; f64 for verification, its checkpoints f64 too)\n"
            "Data-parallel (docs/distributed.md): mpirun -np N hcga --backend B train ... runs N\n"
            "ranks, each on its node-local device and on 1/N of the global batch\n"
            "SOLVER.IMS_PER_BATCH in whole identities (IMS_PER_BATCH / NUM_INSTANCE must\n"
            "divide by N);\n"
            "MODEL.SYNC_BN True takes batch-norm statistics over all ranks.  Rank 0 logs and\n"
            "writes the checkpoint; --resume works with any N.\n"
            "  --bucket-mb M      gradient all-reduce bucket size in MiB (default 25)\n"
            "  --no-overlap       all-reduce after backward instead of during it (to measure)\n"
            "  --dist-timeout S   stop every rank when a collective waits longer than S seconds\n"
            "                     (a dead or hung rank; default 600, or $HCGA_DIST_TIMEOUT)\n"
            "  --capture          replay the training step's graph (forward + backward) as one\n"
            "                     captured sequence from its second run (CUDA Graphs on cuda;\n"
            "                     the cpu backend's reference capture elsewhere)\n"
            "  --as-ranks N       one process training exactly as N ranks would (triplet mining\n"
            "                     and, without SYNC_BN, batch norm per rank's part), N <= 8:\n"
            "                     the reference an N-rank run is checked against\n"
            "KEY VALUE pairs override the config, e.g. SOLVER.MAX_EPOCHS 10 SOLVER.IMS_PER_BATCH 16.\n"
            "Mixed precision: SOLVER.AMP.ENABLED True (SOLVER.AMP.DTYPE bf16 | fp16) runs the\n"
            "convolutions and GEMMs in 16 bits with f32 accumulation; fp16 scales the loss\n"
            "dynamically (SOLVER.AMP.INIT_SCALE, GROWTH_INTERVAL, GROWTH_FACTOR, BACKOFF_FACTOR).\n"
            "Batches are SOLVER.IMS_PER_BATCH images: IMS_PER_BATCH / DATALOADER.NUM_INSTANCE\n"
            "identities x NUM_INSTANCE images.  Pseudo part labels are re-made by co-parsing\n"
            "(CLUSTERING.AL dfc | kmeans | kmeans_border | guided) at epoch 1 and every\n"
            "CLUSTERING.PERIOD epochs up to CLUSTERING.STOP; CLUSTERING.AL band keeps the\n"
            "horizontal-band labels throughout, gt the ground-truth part masks (hcga pretrain).\n"
            "MODEL.PRETRAIN_PATH loads a pretrained backbone (ImageNet HRNet or hcga pretrain's)\n"
            "over the initialisation; guided needs one with the part head (hcga pretrain's).\n"
            "The labels are written to DIR/DATASETS.PSEUDO_LABEL_SUBDIR, which the run locks:\n"
            "concurrent trainings on one dataset need different PSEUDO_LABEL_SUBDIRs.\n"
            "Logs: 'Epoch[e] Iteration[i/n] Loss: .. Acc: .. Base Lr: ..', metrics.jsonl.\n");
}

int cmd_train(int argc, char **argv, const hcga_global_opts *gopt)
{
    hcga_train_opts o = {0};
    o.seed = 1;
    o.dtype = HCGA_F32;
    o.over = calloc((size_t)argc + 1, sizeof *o.over);
    if (!o.over) return 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (hcga_cli_is_help(a)) {
            train_usage(stdout);
            free(o.over);
            return 0;
        }
        const char **dst = !strcmp(a, "--config") ? &o.config
                           : !strcmp(a, "--data") ? &o.data
                           : !strcmp(a, "--output") ? &o.output
                           : NULL;
        if (dst || !strcmp(a, "--seed") || !strcmp(a, "--max-steps")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "hcga train: %s needs a value\n", a);
                free(o.over);
                return 2;
            }
            if (dst) {
                *dst = argv[++i];
            } else if (!strcmp(a, "--max-steps")) {
                long long s;
                if (hcga_parse_int(argv[++i], 1, (long long)(~0ull >> 1), &s)) {
                    fprintf(stderr, "hcga train: --max-steps: expected a positive integer, got '%s'\n", argv[i]);
                    free(o.over);
                    return 2;
                }
                o.max_steps = s;
            } else {
                long long s;
                if (hcga_parse_int(argv[++i], 0, (long long)(~0ull >> 1), &s)) {
                    fprintf(stderr, "hcga train: --seed: expected a non-negative integer, got '%s'\n", argv[i]);
                    free(o.over);
                    return 2;
                }
                o.seed = (uint64_t)s;
            }
        } else if (!strcmp(a, "--resume")) {
            o.resume = 1;
        } else if (!strcmp(a, "--as-ranks")) {
            long long v;
            if (i + 1 >= argc || hcga_parse_int(argv[i + 1], 1, HCGA_MAX_OP_OUT, &v)) {
                fprintf(stderr, "hcga train: --as-ranks needs a number of ranks (1..%d)\n", HCGA_MAX_OP_OUT);
                free(o.over);
                return 2;
            }
            o.as_ranks = (int)v;
            i++;
        } else if (!strcmp(a, "--capture")) {
            o.capture = 1;
        } else if (!strcmp(a, "--no-overlap")) {
            o.no_overlap = 1;
        } else if (!strcmp(a, "--bucket-mb") || !strcmp(a, "--dist-timeout")) {
            double v;
            if (i + 1 >= argc || hcga_parse_double(argv[i + 1], &v) || !(v > 0) || v > 1e7) {
                fprintf(stderr, "hcga train: %s needs a positive number%s%s%s\n", a, i + 1 < argc ? ", got '" : "",
                        i + 1 < argc ? argv[i + 1] : "", i + 1 < argc ? "'" : "");
                free(o.over);
                return 2;
            }
            i++;
            if (!strcmp(a, "--bucket-mb")) o.bucket_mb = v;
            else hcga_dist_set_timeout(v);
        } else if (!strcmp(a, "--dtype")) {
            if (i + 1 >= argc || (strcmp(argv[i + 1], "f32") && strcmp(argv[i + 1], "f64"))) {
                fprintf(stderr, "hcga train: --dtype needs f32 or f64\n");
                free(o.over);
                return 2;
            }
            o.dtype = strcmp(argv[++i], "f64") ? HCGA_F32 : HCGA_F64;
        } else if (a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "hcga train: unknown option '%s' (see hcga train --help)\n", a);
            free(o.over);
            return 2;
        } else {
            if (i + 1 >= argc) {
                fprintf(stderr, "hcga train: override '%s' has no value (KEY VALUE pairs)\n", a);
                free(o.over);
                return 2;
            }
            o.over[o.n_over++] = argv[i];
            o.over[o.n_over++] = argv[++i];
        }
    }

    o.threads = gopt->threads > 0 ? gopt->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (o.threads < 1) o.threads = 1;

    hcga_train_run run = {0};
    hcga_be *be = NULL;
    int rc = hcga_train_setup(&run, &o);
    if (rc) goto out;
    if ((rc = hcga_cli_open_backend(gopt, &be)) != 0) goto out;
    rc = 1;
    if (hcga_train_build(&run, be)) goto out; /* run owns be from here */
    for (int epoch = run.start_epoch; epoch <= run.max_epochs; epoch++) {
        int stop = 0;
        if (hcga_train_epoch(&run, epoch, &stop)) goto out;
        if (hcga_train_checkpoint(&run, epoch, stop)) goto out;
        if (stop) {
            if (run.amp_skipped)
                printf("stopped after %lld optimizer steps and %lld skipped ones (--max-steps)\n",
                       (long long)run.adam_step, run.amp_skipped);
            else
                printf("stopped after %lld optimizer steps (--max-steps)\n", (long long)run.adam_step);
            break;
        }
        if (hcga_train_periodic_eval(&run, epoch)) goto out;
    }
    hcga_train_report(&run);
    rc = 0;
out:
    if (be && !run.be) hcga_be_close(be); /* opened, but never handed to the run */
    hcga_train_free(&run);
    free(o.over);
    return rc;
}
