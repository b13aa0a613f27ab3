/*
 * cmd_test.c - `hcga test`: evaluate a checkpoint (or stored features) on the
 * query/gallery splits with ARM, global or concatenated-feature matching.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "eval/features.h"
#include "model/checkpoint.h"
#include "model/model.h"
#include "model/model_io.h"
#include "util/util.h"
#include "vis/vis.h"

#define ERRLEN 4096

static void usage(FILE *f)
{
    fprintf(f,
            "usage: hcga [--backend B] test --weights W.safetensors [--config F] [--data DIR]\n"
            "                 [--arm | --global | --concat] [--rerank] [--flip]\n"
            "                 [--save-features F.safetensors] [KEY VALUE ...]\n"
            "       hcga test --features F.safetensors [--arm | --global | --concat] [--rerank]\n"
            "\n"
            "Query/gallery features in eval mode, then the Market-1501 protocol: gallery images\n"
            "with the query's identity and camera, and identity -1, are removed; queries with\n"
            "no match are skipped.  Prints Rank-1/5/10, mAP (standard: mean of precision at\n"
            "each correct match; the reference's trapezoid-rule AP is printed beside it) and mINP.\n"
            "  --weights W   checkpoint from hcga train, or a converted PyTorch state dict; the\n"
            "                config comes from its metadata unless --config is given\n"
            "  --arm         ARM matching (default when TEST.WITH_ARM is true): foreground plus\n"
            "                the parts visible in both images\n"
            "  --global      global features only (BN'ed y_global)\n"
            "  --concat      concatenated global, foreground and part features\n"
            "  --rerank      k-reciprocal re-ranking (k1 20, k2 6, lambda 0.3)\n"
            "  --flip        average features with those of the mirrored image\n"
            "  --save-features F   also write the features (see --features)\n"
            "  --visrank N   draw the ranked lists of the first N queries (top 10 after junk\n"
            "                removal, green/red borders, visible parts) as PNG pictures\n"
            "  --visrank-out DIR   where they go (default ./visrank)\n"
            "  --features F  evaluate stored features: query.{fore,part,global,vis,pids,cams}\n"
            "                and gallery.* tensors, e.g. made by another tool\n");
}

int cmd_test(int argc, char **argv, const hcga_global_opts *gopt)
{
    const char *weights = NULL, *config = NULL, *data = NULL, *features = NULL, *save = NULL;
    const char *visrank_out = "visrank";
    int mode = -1, rerank = 0, flip = 0, n_over = 0, visrank = 0;
    char **over = calloc((size_t)argc + 1, sizeof *over);
    if (!over) return 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (hcga_cli_is_help(a)) {
            usage(stdout);
            free(over);
            return 0;
        }
        const char **dst = !strcmp(a, "--weights") ? &weights
                           : !strcmp(a, "--config") ? &config
                           : !strcmp(a, "--data") ? &data
                           : !strcmp(a, "--features") ? &features
                           : !strcmp(a, "--save-features") ? &save
                           : !strcmp(a, "--visrank-out") ? &visrank_out
                           : NULL;
        if (dst) {
            if (i + 1 >= argc) {
                fprintf(stderr, "hcga test: %s needs a value\n", a);
                free(over);
                return 2;
            }
            *dst = argv[++i];
        } else if (!strcmp(a, "--arm")) mode = HCGA_MATCH_ARM;
        else if (!strcmp(a, "--global")) mode = HCGA_MATCH_GLOBAL;
        else if (!strcmp(a, "--concat")) mode = HCGA_MATCH_CONCAT;
        else if (!strcmp(a, "--rerank")) rerank = 1;
        else if (!strcmp(a, "--flip")) flip = 1;
        else if (!strcmp(a, "--visrank")) {
            long long v;
            if (i + 1 >= argc || hcga_parse_int(argv[i + 1], 1, 1000000, &v)) {
                fprintf(stderr, "hcga test: --visrank needs a number of queries >= 1\n");
                free(over);
                return 2;
            }
            visrank = (int)v;
            i++;
        }
        else if (a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "hcga test: unknown option '%s' (see hcga test --help)\n", a);
            free(over);
            return 2;
        } else {
            if (i + 1 >= argc) {
                fprintf(stderr, "hcga test: override '%s' has no value (KEY VALUE pairs)\n", a);
                free(over);
                return 2;
            }
            over[n_over++] = argv[i];
            over[n_over++] = argv[++i];
        }
    }
    char err[ERRLEN];
    int rc = 1;
    hcga_features q = {0}, g = {0};
    hcga_config *cfg = NULL;
    st_file *wf = NULL;
    hcga_be *be = NULL;
    hg_store *store = NULL;
    hg_graph *ge = NULL;
    hg_exec *ex = NULL;
    hcga_dataset ds = {0};
    int feat_norm = 1;
    const char *matches[3] = {"ARM", "global", "concat"};

    if (features) {
        if (visrank) {
            fprintf(stderr, "hcga test: --visrank draws the images: give --weights and the dataset, not --features\n");
            free(over);
            return 2;
        }
        if (weights || save) {
            fprintf(stderr, "hcga test: --features evaluates stored features; it takes no --weights/--save-features\n");
            free(over);
            return 2;
        }
        if (hcga_features_load(features, &q, &g, err, sizeof err)) {
            fprintf(stderr, "hcga test: %s\n", err);
            goto out;
        }
        if (mode < 0) mode = HCGA_MATCH_ARM;
    } else {
        if (!weights) {
            fprintf(stderr, "hcga test: --weights W.safetensors (or --features F) is required\n");
            free(over);
            return 2;
        }
        wf = st_load(weights, err, sizeof err);
        if (!wf) {
            fprintf(stderr, "hcga test: %s\n", err);
            goto out;
        }
        /* only hcga checkpoints embed a YAML config ("config" in other files may be a file name) */
        const char *cy = hcga_is_checkpoint(wf) ? st_meta(wf, "config") : NULL;
        if (config || !cy) cfg = hcga_config_load(config, n_over, over, err, sizeof err);
        else cfg = hcga_config_load_string(cy, strlen(cy), weights, n_over, over, err, sizeof err);
        if (!cfg) {
            fprintf(stderr, "hcga test: %s\n", err);
            rc = 2;
            goto out;
        }
        if (!config && !cy)
            fprintf(stderr, "hcga test: %s carries no config; using the built-in defaults (give --config)\n", weights);
        int ncls = hcga_model_num_classes(wf, weights, err, sizeof err);
        if (ncls < 0) {
            fprintf(stderr, "hcga test: %s\n", err);
            goto out;
        }
        if (mode < 0) mode = hcga_cfg_bool(cfg, "TEST.WITH_ARM") ? HCGA_MATCH_ARM : HCGA_MATCH_GLOBAL;
        feat_norm = strcmp(hcga_cfg_str(cfg, "TEST.FEAT_NORM"), "yes") == 0;
        const char *root = data ? data : hcga_cfg_str(cfg, "DATASETS.ROOT_DIR");
        if (hcga_dataset_open(root, &ds, err, sizeof err)) {
            fprintf(stderr, "hcga test: %s\n", err);
            goto out;
        }
        if ((rc = hcga_cli_open_backend(gopt, &be)) != 0) goto out;
        rc = 1;
        int batch = (int)hcga_cfg_int(cfg, "TEST.IMS_PER_BATCH");
        store = hg_store_new(be, HCGA_F32);
        ge = store ? hcga_model_build(cfg, HCGA_MODEL_EVAL, batch, ncls, HCGA_F32, err, sizeof err) : NULL;
        if (!ge) {
            fprintf(stderr, "hcga test: %s\n", err);
            goto out;
        }
        ex = hcga_exec_with_weights(cfg, ge, store, be, wf, weights, err, sizeof err);
        if (!ex) {
            fprintf(stderr, "hcga test: %s\n", err);
            goto out;
        }
        int threads = gopt->threads > 0 ? gopt->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
        hcga_aug_cfg aug = hcga_aug_from_config(cfg, 0);
        double t0 = hcga_now();
        if (hcga_extract_features(ex, ge, batch, &ds.query, &aug, threads, flip, &q, err, sizeof err) ||
            hcga_extract_features(ex, ge, batch, &ds.gallery, &aug, threads, flip, &g, err, sizeof err)) {
            fprintf(stderr, "hcga test: %s\n", err);
            goto out;
        }
        printf("features: %d query and %d gallery images in %.1f s on %s\n", q.n, g.n, hcga_now() - t0, be->name);
        if (save && hcga_features_save(&q, &g, save, err, sizeof err)) {
            fprintf(stderr, "hcga test: %s\n", err);
            goto out;
        }
    }
    hcga_eval_result r;
    if (hcga_evaluate_features(&q, &g, (hcga_match)mode, feat_norm, rerank, &r, err, sizeof err)) {
        fprintf(stderr, "hcga test: %s\n", err);
        goto out;
    }
    printf("%s matching%s: Rank-1 %.1f%%  Rank-5 %.1f%%  Rank-10 %.1f%%  mAP %.1f%%  mINP %.1f%%\n", matches[mode],
           rerank ? " + re-ranking" : "", 100 * r.cmc[0], 100 * r.cmc[4], 100 * r.cmc[9], 100 * r.map, 100 * r.minp);
    printf("  %d of %d queries have a valid match; mAP is the standard AP (mean precision at each match); "
           "the reference ARM code's trapezoid-rule mAP: %.1f%%\n",
           r.num_valid, r.num_query, 100 * r.map_trapezoid);
    if (visrank) {
        int nv = hcga_vis_ranklists_features(visrank_out, visrank, &ds, &q, &g, (hcga_match)mode, feat_norm, err,
                                             sizeof err);
        if (nv < 0) {
            fprintf(stderr, "hcga test: %s\n", err);
            goto out;
        }
        printf("ranked lists (top 10%s) of %d queries: %s/rank_*.png\n", rerank ? ", before re-ranking" : "", nv,
               visrank_out);
    }
    rc = 0;
out:
    hcga_features_free(&q);
    hcga_features_free(&g);
    hg_exec_free(ex);
    if (ge) hcga_model_graph_free(ge);
    hg_store_free(store);
    if (be) hcga_be_close(be);
    hcga_dataset_free(&ds);
    if (wf) st_free(wf);
    hcga_config_free(cfg);
    free(over);
    return rc;
}
