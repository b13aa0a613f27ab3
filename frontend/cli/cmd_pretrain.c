/*
 * cmd_pretrain.c - `hcga pretrain`: the stand-in for ImageNet pretraining
 * for users without pretrained weights.  It trains the HCGA model on a
 * separate synthetic pretraining set (its own identities, made by hcga synth
 * with another seed, ideally with --hard) with the supervision that set has:
 * identity classification, triplet loss and, as the part labels, the
 * ground-truth part masks (CLUSTERING.AL gt).  It then writes the backbone
 * alone, under the ImageNet HRNet's names (conv1.weight, stage4.0..., no
 * "base." prefix, without the HCGA heads), so that MODEL.PRETRAIN_PATH loads
 * it exactly as it loads the converted hrnetv2_w32_imagenet_pretrained file.
 * The evaluation benchmark is never read: only --data's training split is.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "model/model_io.h"
#include "model/safetensors.h"
#include "train/train.h"
#include "util/util.h"

static void pretrain_usage(FILE *f)
{
    fprintf(f,
            "usage: hcga [--backend B] [--threads N] pretrain --data DIR --out W.safetensors\n"
            "                  [--config F] [--work DIR] [--seed S] [--eval-data DIR] [KEY VALUE ...]\n"
            "       hcga pretrain --export CK.safetensors --out W.safetensors\n"
            "\n"
            "Pretrain a backbone on a synthetic pretraining set, as a stand-in for the\n"
            "ImageNet-pretrained HRNet, and save it for MODEL.PRETRAIN_PATH.\n"
            "  --data DIR    the pretraining set: a Market-1501-layout dataset with ground-truth\n"
            "                part masks (parts/bounding_box_train/), e.g. from\n"
            "                hcga synth --hard --seed 1001 --out DIR; its identities must not be\n"
            "                the evaluation benchmark's (use another synth seed)\n"
            "  --out W       the backbone file (safetensors, the ImageNet HRNet's tensor names)\n"
            "  --config F    yacs YAML config; its MODEL must be the one that will load W\n"
            "                (configs/pretrain_small.yml for configs/synth_small.yml)\n"
            "  --work DIR    the pretraining run's directory (checkpoint, metrics.jsonl;\n"
            "                default W.run)\n"
            "  --seed S      seed of initialisation, sampling and augmentation (default 1)\n"
            "  --eval-data D refuse to run when D (the benchmark W will be used on) was made by\n"
            "                hcga synth with the same seed as DIR (same identities)\n"
            "  --export CK   no training: write the backbone of an existing hcga checkpoint CK\n"
            "                (e.g. an intermediate one of a pretraining run) to W\n"
            "KEY VALUE pairs override the config (e.g. SOLVER.MAX_EPOCHS 8).  Training is\n"
            "hcga train's with CLUSTERING.AL gt: the part masks are the pixel labels (no\n"
            "co-parsing), identity and triplet losses as usual.  Written: W with every\n"
            "backbone tensor (stem, stages, incre heads), the layers that make the feature\n"
            "map F (cls_head, spatial_attn) and the part classifier (part_cls_layer), not the\n"
            "identity classifiers; metadata hcga_pretrain_data/_seed.\n");
}

/* The seed line of DIR/synth.txt (written by hcga synth), or "" */
static void synth_seed(const char *dir, char *seed, size_t len)
{
    char path[4200], line[256];
    seed[0] = '\0';
    snprintf(path, sizeof path, "%s/synth.txt", dir);
    FILE *f = fopen(path, "r");
    if (!f) return;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "seed ", 5)) {
            line[strcspn(line, "\n")] = '\0';
            snprintf(seed, len, "%s", line + 5);
        }
    fclose(f);
}

int cmd_pretrain(int argc, char **argv, const hcga_global_opts *gopt)
{
    hcga_train_opts o = {0};
    const char *out = NULL, *work = NULL, *eval_data = NULL, *export = NULL;
    o.seed = 1;
    o.dtype = HCGA_F32;
    o.over = calloc((size_t)argc + 3, sizeof *o.over);
    if (!o.over) return 1;
    int rc = 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (hcga_cli_is_help(a)) {
            pretrain_usage(stdout);
            free(o.over);
            return 0;
        }
        const char **dst = !strcmp(a, "--config")      ? &o.config
                           : !strcmp(a, "--data")      ? &o.data
                           : !strcmp(a, "--out")       ? &out
                           : !strcmp(a, "--work")      ? &work
                           : !strcmp(a, "--eval-data") ? &eval_data
                           : !strcmp(a, "--export")    ? &export
                                                       : NULL;
        if (dst || !strcmp(a, "--seed")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "hcga pretrain: %s needs a value\n", a);
                goto out;
            }
            if (dst) {
                *dst = argv[++i];
            } else {
                long long s;
                if (hcga_parse_int(argv[++i], 0, (long long)(~0ull >> 1), &s)) {
                    fprintf(stderr, "hcga pretrain: --seed: expected a non-negative integer, got '%s'\n", argv[i]);
                    goto out;
                }
                o.seed = (uint64_t)s;
            }
        } else if (a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "hcga pretrain: unknown option '%s' (see hcga pretrain --help)\n", a);
            goto out;
        } else {
            if (i + 1 >= argc) {
                fprintf(stderr, "hcga pretrain: override '%s' has no value (KEY VALUE pairs)\n", a);
                goto out;
            }
            if (!strcmp(a, "CLUSTERING.AL")) {
                fprintf(stderr, "hcga pretrain: CLUSTERING.AL is gt (the part masks) for pretraining\n");
                goto out;
            }
            o.over[o.n_over++] = argv[i];
            o.over[o.n_over++] = argv[++i];
        }
    }
    if (export && out) {
        char err[4096];
        int saved = 0;
        st_file *ck = st_load(export, err, sizeof err);
        const char *meta[] = {"hcga_pretrain_checkpoint", export};
        rc = 1;
        if (ck && hcga_model_save_backbone(ck, export, out, 1, meta, &saved, err, sizeof err) == 0) {
            printf("hcga pretrain: wrote %s (%d backbone tensors of %s)\n", out, saved, export);
            rc = 0;
        } else {
            fprintf(stderr, "hcga pretrain: %s\n", err);
        }
        if (ck) st_free(ck);
        goto out;
    }
    if (!o.data || !out) {
        fprintf(stderr, "hcga pretrain: --data DIR and --out W.safetensors are required (see hcga pretrain --help)\n");
        goto out;
    }
    if (eval_data) {
        char s1[256], s2[256];
        synth_seed(o.data, s1, sizeof s1);
        synth_seed(eval_data, s2, sizeof s2);
        if (s1[0] && !strcmp(s1, s2)) {
            fprintf(stderr,
                    "hcga pretrain: --data %s and --eval-data %s were made by hcga synth with the same seed %s "
                    "(the same identities); make the pretraining set with another --seed\n",
                    o.data, eval_data, s1);
            goto out;
        }
    }
    char workdir[4200];
    snprintf(workdir, sizeof workdir, "%s.run", out);
    o.output = work ? work : workdir;
    o.over[o.n_over++] = "CLUSTERING.AL";
    o.over[o.n_over++] = "gt";
    o.threads = gopt->threads > 0 ? gopt->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (o.threads < 1) o.threads = 1;

    hcga_train_run run = {0};
    hcga_be *be = NULL;
    rc = hcga_train_setup(&run, &o);
    if (rc) goto done;
    if ((rc = hcga_cli_open_backend(gopt, &be)) != 0) goto done;
    rc = 1;
    if (hcga_train_build(&run, be)) goto done;
    for (int epoch = run.start_epoch; epoch <= run.max_epochs; epoch++) {
        int stop = 0;
        if (hcga_train_epoch(&run, epoch, &stop)) goto done;
        if (hcga_train_checkpoint(&run, epoch, stop)) goto done;
        if (hcga_train_periodic_eval(&run, epoch)) goto done;
    }
    hcga_train_report(&run);
    {
        char err[4096];
        st_file *ck = st_load(run.ckpath, err, sizeof err);
        if (!ck) {
            fprintf(stderr, "hcga pretrain: %s\n", err);
            goto done;
        }
        char seed[32], s1[256];
        snprintf(seed, sizeof seed, "%llu", (unsigned long long)o.seed);
        synth_seed(o.data, s1, sizeof s1);
        const char *meta[] = {"hcga_pretrain_data", o.data, "hcga_pretrain_seed", seed,
                              "hcga_pretrain_synth_seed", s1[0] ? s1 : "unknown"};
        int saved = 0;
        int bad = hcga_model_save_backbone(ck, run.ckpath, out, 3, meta, &saved, err, sizeof err);
        st_free(ck);
        if (bad) {
            fprintf(stderr, "hcga pretrain: %s\n", err);
            goto done;
        }
        printf("hcga pretrain: wrote %s (%d backbone tensors; load it with MODEL.PRETRAIN_PATH %s)\n", out, saved,
               out);
    }
    rc = 0;
done:
    if (be && !run.be) hcga_be_close(be);
    hcga_train_free(&run);
out:
    free(o.over);
    return rc;
}
