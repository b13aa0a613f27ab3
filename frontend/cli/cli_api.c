/*
 * cli_api.c - the options, model opening and image-file walk shared by
 * `hcga index` and `hcga search` (cli_api.h), on the public API only.
 */
#include "cli/cli_api.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

void hcga_cli_model_args_init(hcga_cli_model_args *a)
{
    memset(a, 0, sizeof *a);
    a->precision = HCGA_PRECISION_F32;
}

int hcga_cli_model_arg(hcga_cli_model_args *a, const char *cmd, int argc, char **argv, int i)
{
    const char *o = argv[i];
    if (!strcmp(o, "--flip")) {
        a->flip = 1;
        return 1;
    }
    int takes = !strcmp(o, "--weights") || !strcmp(o, "--config") || !strcmp(o, "--batch") ||
                !strcmp(o, "--precision");
    if (!takes) return 0;
    if (i + 1 >= argc) {
        fprintf(stderr, "hcga %s: %s needs a value\n", cmd, o);
        return -1;
    }
    const char *v = argv[i + 1];
    if (!strcmp(o, "--weights")) a->weights = v;
    else if (!strcmp(o, "--config")) a->config = v;
    else if (!strcmp(o, "--batch")) {
        char *end;
        long b = strtol(v, &end, 10);
        if (*end || end == v || b < 1 || b > 4096) {
            fprintf(stderr, "hcga %s: --batch '%s': give 1..4096 images\n", cmd, v);
            return -1;
        }
        a->batch = (int)b;
    } else {
        if (!strcmp(v, "f32")) a->precision = HCGA_PRECISION_F32;
        else if (!strcmp(v, "bf16")) a->precision = HCGA_PRECISION_BF16;
        else if (!strcmp(v, "f16")) a->precision = HCGA_PRECISION_F16;
        else {
            fprintf(stderr, "hcga %s: --precision '%s': give f32, bf16 or f16\n", cmd, v);
            return -1;
        }
    }
    return 2;
}

int hcga_cli_take_arg(hcga_cli_model_args *a, hcga_cli_paths *p, const char *cmd, int argc, char **argv, int i)
{
    int used = hcga_cli_model_arg(a, cmd, argc, argv, i);
    if (used) return used < 0 ? -2 : used;
    if (argv[i][0] == '-' && argv[i][1] == '-') {
        fprintf(stderr, "hcga %s: unknown option '%s' (see hcga %s --help)\n", cmd, argv[i], cmd);
        return -2;
    }
    return hcga_cli_paths_add_images(p, argv[i], cmd) ? -1 : 1;
}

int hcga_cli_open_model(const hcga_global_opts *g, const hcga_cli_model_args *a, const char *cmd,
                        hcga_context **ctx, hcga_model **m)
{
    hcga_context_params cp = hcga_context_default_params();
    cp.backend = g->backend;
    cp.device = g->device;
    cp.threads = g->threads;
    cp.options = g->backend_options;
    *m = NULL;
    if (hcga_context_new(&cp, ctx) != HCGA_SUCCESS) {
        fprintf(stderr, "hcga %s: %s\n", cmd, hcga_context_error(*ctx));
        return -1;
    }
    hcga_model_params mp = hcga_model_default_params();
    mp.config = a->config;
    mp.batch = a->batch;
    mp.flip = a->flip;
    mp.precision = a->precision;
    if (hcga_model_load(*ctx, a->weights, &mp, m) != HCGA_SUCCESS) {
        fprintf(stderr, "hcga %s: %s\n", cmd, hcga_context_error(*ctx));
        return -1;
    }
    return 0;
}

static int push(hcga_cli_paths *p, const char *path)
{
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 256;
        char **np = realloc(p->path, sizeof(char *) * (size_t)cap);
        if (!np) return -1;
        p->path = np;
        p->cap = cap;
    }
    if (!(p->path[p->n] = strdup(path))) return -1;
    p->n++;
    return 0;
}

static int is_image_name(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") || !strcasecmp(dot, ".png"));
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int walk(hcga_cli_paths *p, const char *dir, const char *cmd, int depth)
{
    if (depth > 64) {
        fprintf(stderr, "hcga %s: %s: directories nested deeper than 64 (a link loop?)\n", cmd, dir);
        return -1;
    }
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "hcga %s: %s: %s\n", cmd, dir, strerror(errno));
        return -1;
    }
    hcga_cli_paths here = {0};
    struct dirent *de;
    int rc = 0;
    while (!rc && (de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        size_t len = strlen(dir) + strlen(de->d_name) + 2;
        char *full = malloc(len);
        if (!full) {
            rc = -1;
            break;
        }
        snprintf(full, len, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", de->d_name);
        rc = push(&here, full);
        free(full);
    }
    closedir(d);
    if (here.n) qsort(here.path, (size_t)here.n, sizeof(char *), cmp_str);
    for (int i = 0; i < here.n && !rc; i++) {
        struct stat st;
        if (stat(here.path[i], &st)) continue; /* a dangling link */
        if (S_ISDIR(st.st_mode)) rc = walk(p, here.path[i], cmd, depth + 1);
        else if (S_ISREG(st.st_mode) && is_image_name(here.path[i]) && push(p, here.path[i])) rc = -1;
    }
    hcga_cli_paths_free(&here);
    return rc;
}

int hcga_cli_paths_add_images(hcga_cli_paths *p, const char *arg, const char *cmd)
{
    struct stat st;
    if (stat(arg, &st)) {
        fprintf(stderr, "hcga %s: %s: %s\n", cmd, arg, strerror(errno));
        return -1;
    }
    if (S_ISDIR(st.st_mode)) return walk(p, arg, cmd, 0);
    if (push(p, arg)) {
        fprintf(stderr, "hcga %s: out of memory\n", cmd);
        return -1;
    }
    return 0;
}

void hcga_cli_paths_free(hcga_cli_paths *p)
{
    for (int i = 0; i < p->n; i++) free(p->path[i]);
    free(p->path);
    memset(p, 0, sizeof *p);
}
