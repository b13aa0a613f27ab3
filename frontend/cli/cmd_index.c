/*
 * cmd_index.c - `hcga index`: the features of every image under some
 * directories (or of the image files named) into a gallery file for
 * `hcga search`.  Written on the public API alone (include/hcga/hcga.h,
 * libhcga.so): it is what a deployment would write, and the CLI's proof that
 * the API is enough for it (the progress line on a terminal is the CLI's
 * util/progress).  The file walk and argument parsing are shared with
 * cmd_search.c through cli_api.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_api.h"
#include "cli/commands.h"
#include "hcga/hcga.h"
#include "util/progress.h"

#define CHUNK 64 /* images per hcga_extract_files call (progress granularity) */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: hcga [--backend B] index --weights W.safetensors --out G.safetensors\n"
            "                  [--config F] [--batch N] [--flip] [--precision f32|bf16|f16]\n"
            "                  DIR|IMAGE ...\n"
            "\n"
            "Extract the features of every JPEG and PNG image under the directories (searched\n"
            "recursively, in path order) and of the image files given, and write them with\n"
            "their paths to a gallery file for `hcga search`.  Images of any size are resized\n"
            "and normalised as `hcga test` does.  The gallery carries the model's fingerprint:\n"
            "searching it with another model is refused.\n"
            "  --weights W     checkpoint from hcga train (or a converted state dict with --config)\n"
            "  --out G         gallery file to write (safetensors)\n"
            "  --config F      YAML config (default: the one stored in the checkpoint)\n"
            "  --batch N       images per forward pass (default TEST.IMS_PER_BATCH)\n"
            "  --flip          average with the features of the mirrored image\n"
            "  --precision P   f32 (default), bf16 or f16 convolutions and GEMMs\n");
}

int cmd_index(int argc, char **argv, const hcga_global_opts *g)
{
    hcga_cli_model_args ma;
    hcga_cli_model_args_init(&ma);
    const char *out = NULL;
    hcga_cli_paths inputs = {0};
    int rc = 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int used;
        if (hcga_cli_is_help(a)) {
            usage(stdout);
            rc = 0;
            goto done;
        }
        if (!strcmp(a, "--out")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "hcga index: --out needs a file name\n");
                goto done;
            }
            out = argv[++i];
        } else if ((used = hcga_cli_take_arg(&ma, &inputs, "index", argc, argv, i)) < 0) {
            rc = used == -2 ? 2 : 1;
            goto done;
        } else {
            i += used - 1;
        }
    }
    if (!ma.weights || !out || inputs.n == 0) {
        fprintf(stderr, "hcga index: %s\n",
                !ma.weights ? "--weights W.safetensors is required"
                : !out      ? "--out G.safetensors is required"
                            : "no JPEG or PNG images found in the given directories/files");
        goto done;
    }
    rc = 1;
    hcga_context *ctx = NULL;
    hcga_model *m = NULL;
    hcga_embeddings e = {0};
    if (hcga_cli_open_model(g, &ma, "index", &ctx, &m)) goto close;
    if (hcga_embeddings_alloc(m, inputs.n, &e) != HCGA_SUCCESS) {
        fprintf(stderr, "hcga index: %s\n", hcga_context_error(ctx));
        goto close;
    }
    hcga_progress pg;
    hcga_progress_start(&pg, "index", inputs.n);
    int failed = 0;
    for (int i = 0; i < inputs.n && !failed; i += CHUNK) {
        int n = inputs.n - i < CHUNK ? inputs.n - i : CHUNK;
        if (hcga_extract_files(m, (const char *const *)inputs.path + i, n, &e, i) != HCGA_SUCCESS) failed = 1;
        else hcga_progress_update(&pg, i + n, "images");
    }
    hcga_progress_finish(&pg);
    if (failed) {
        fprintf(stderr, "hcga index: %s\n", hcga_context_error(ctx));
        goto close;
    }
    if (hcga_gallery_save(m, out, &e, (const char *const *)inputs.path) != HCGA_SUCCESS) {
        fprintf(stderr, "hcga index: %s\n", hcga_context_error(ctx));
        goto close;
    }
    printf("%s: %d images indexed (%d parts x %d, global %d)\n", out, inputs.n, e.num_parts, e.dim, e.global_dim);
    rc = 0;
close:
    hcga_embeddings_free(&e);
    hcga_model_free(m);
    hcga_context_free(ctx);
done:
    hcga_cli_paths_free(&inputs);
    return rc;
}
