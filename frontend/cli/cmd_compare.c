/*
 * cmd_compare.c - `hcga compare A B`: check the tensors of A against the
 * reference tensors of B (relative L2 error per tensor, exact equality for
 * integer tensors), with the worst tensor of each name group.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "model/safetensors.h"
#include "util/util.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: hcga compare A.safetensors B.safetensors [--tol T] [--group-tol GROUP=T]...\n"
            "                    [--atol A] [--ignore PREFIX]... [--verbose]\n"
            "\n"
            "Compare every tensor of B (the reference) with the tensor of the same name in\n"
            "A: float tensors pass when ||a - b|| / ||b|| < T (default 1e-3; ||a - b|| < T\n"
            "when b is all zeros), integer tensors must be equal.  Names are grouped by the\n"
            "part before the first '.' (eval, train, loss, grad, after_step) and the worst\n"
            "tensor of each group is printed.  --group-tol GROUP=T sets another T for one\n"
            "group; --atol A also passes a float tensor when ||a - b|| < A * sqrt(numel)\n"
            "(for values that are zero up to rounding).  Tensors of B whose names start with an\n"
            "--ignore PREFIX are skipped; tensors only in A are counted, not checked.\n"
            "Exit status: 0 all match, 1 a tensor differs or is missing, 2 usage error.\n");
}

static int is_int(st_dtype d)
{
    return d == ST_I64 || d == ST_I32 || d == ST_I16 || d == ST_I8 || d == ST_U8 || d == ST_BOOL;
}

typedef struct group {
    char name[64];
    int count, failed, floored; /* floored: passed by --atol only */
    double worst;
    char worst_name[256];
} group;

int cmd_compare(int argc, char **argv, const hcga_global_opts *gopt)
{
    (void)gopt;
    if (argc > 1 && hcga_cli_is_help(argv[1])) {
        usage(stdout);
        return 0;
    }
    const char *pa = NULL, *pb = NULL;
    double tol = 1e-3, atol = 0;
    int verbose = 0, n_ignore = 0, n_gtol = 0;
    char gtol_name[16][64];
    double gtol_val[16];
    const char **ignore = calloc((size_t)argc + 1, sizeof *ignore);
    if (!ignore) return 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--tol")) {
            if (i + 1 >= argc || hcga_parse_double(argv[i + 1], &tol) || !(tol > 0)) {
                fprintf(stderr, "hcga compare: --tol needs a positive number\n");
                free(ignore);
                return 2;
            }
            i++;
        } else if (!strcmp(argv[i], "--atol")) {
            if (i + 1 >= argc || hcga_parse_double(argv[i + 1], &atol) || atol < 0) {
                fprintf(stderr, "hcga compare: --atol needs a number >= 0\n");
                free(ignore);
                return 2;
            }
            i++;
        } else if (!strcmp(argv[i], "--group-tol")) {
            const char *v = i + 1 < argc ? argv[i + 1] : "";
            const char *eq = strchr(v, '=');
            if (!eq || eq == v || (size_t)(eq - v) >= sizeof gtol_name[0] || n_gtol == 16 ||
                hcga_parse_double(eq + 1, &gtol_val[n_gtol]) || !(gtol_val[n_gtol] > 0)) {
                fprintf(stderr, "hcga compare: --group-tol needs GROUP=T with T > 0 (at most 16)\n");
                free(ignore);
                return 2;
            }
            memcpy(gtol_name[n_gtol], v, (size_t)(eq - v));
            gtol_name[n_gtol][eq - v] = 0;
            n_gtol++;
            i++;
        } else if (!strcmp(argv[i], "--ignore")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "hcga compare: --ignore needs a name prefix\n");
                free(ignore);
                return 2;
            }
            ignore[n_ignore++] = argv[++i];
        } else if (!strcmp(argv[i], "--verbose") || !strcmp(argv[i], "-v")) {
            verbose = 1;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "hcga compare: unknown option %s (see hcga compare --help)\n", argv[i]);
            free(ignore);
            return 2;
        } else if (!pa) {
            pa = argv[i];
        } else if (!pb) {
            pb = argv[i];
        } else {
            fprintf(stderr, "hcga compare: unexpected argument %s\n", argv[i]);
            free(ignore);
            return 2;
        }
    }
    if (!pa || !pb) {
        fprintf(stderr, "hcga compare: needs two files A and B (see hcga compare --help)\n");
        free(ignore);
        return 2;
    }
    char err[1024];
    st_file *a = st_load(pa, err, sizeof err);
    if (!a) {
        fprintf(stderr, "hcga compare: %s\n", err);
        free(ignore);
        return 1;
    }
    st_file *b = st_load(pb, err, sizeof err);
    if (!b) {
        fprintf(stderr, "hcga compare: %s\n", err);
        st_free(a);
        free(ignore);
        return 1;
    }

    group *groups = calloc((size_t)b->count + 1, sizeof *groups);
    int ng = 0, n_checked = 0, n_failed = 0, n_missing = 0, n_skipped = 0;
    double *da = NULL, *db = NULL;
    int64_t *ia = NULL, *ib = NULL;
    size_t cap = 0;
    int rc = 1;
    if (!groups) goto out;
    for (int i = 0; i < b->count; i++) {
        const st_tensor *tb = &b->tensors[i];
        int skip = 0;
        for (int j = 0; j < n_ignore && !skip; j++)
            skip = !strncmp(tb->name, ignore[j], strlen(ignore[j]));
        if (skip) {
            n_skipped++;
            continue;
        }
        char gname[64];
        const char *dot = strchr(tb->name, '.');
        size_t gl = dot ? (size_t)(dot - tb->name) : strlen(tb->name);
        if (gl >= sizeof gname) gl = sizeof gname - 1;
        memcpy(gname, tb->name, gl);
        gname[gl] = 0;
        group *gr = NULL;
        for (int j = 0; j < ng && !gr; j++)
            if (!strcmp(groups[j].name, gname)) gr = &groups[j];
        if (!gr) {
            gr = &groups[ng++];
            snprintf(gr->name, sizeof gr->name, "%s", gname);
            gr->worst = -1;
        }
        gr->count++;
        n_checked++;
        double gt = tol;
        for (int j = 0; j < n_gtol; j++)
            if (!strcmp(gtol_name[j], gname)) gt = gtol_val[j];

        const st_tensor *ta = st_find(a, tb->name);
        if (!ta) {
            printf("MISSING %s (in %s, not in %s)\n", tb->name, pb, pa);
            n_missing++;
            gr->failed++;
            continue;
        }
        int same = ta->ndim == tb->ndim;
        for (int d = 0; same && d < ta->ndim; d++) same = ta->shape[d] == tb->shape[d];
        if (!same) {
            char sa[128], sb[128];
            hcga_shape_str(sa, sizeof sa, ta->ndim, ta->shape);
            hcga_shape_str(sb, sizeof sb, tb->ndim, tb->shape);
            printf("FAIL %s: shape %s, reference %s\n", tb->name, sa, sb);
            n_failed++;
            gr->failed++;
            continue;
        }
        if (tb->numel > cap) {
            cap = tb->numel;
            free(da), free(db), free(ia), free(ib);
            da = malloc(cap * sizeof *da);
            db = malloc(cap * sizeof *db);
            ia = malloc(cap * sizeof *ia);
            ib = malloc(cap * sizeof *ib);
            if (!da || !db || !ia || !ib) {
                fprintf(stderr, "hcga compare: out of memory\n");
                goto out;
            }
        }
        double rel;
        if (is_int(tb->dtype)) {
            if (!is_int(ta->dtype) || st_to_i64(ta, ia) || st_to_i64(tb, ib)) {
                printf("FAIL %s: integer in the reference, not in %s\n", tb->name, pa);
                n_failed++;
                gr->failed++;
                continue;
            }
            uint64_t diff = 0;
            for (uint64_t k = 0; k < tb->numel; k++) diff += ia[k] != ib[k];
            rel = tb->numel ? (double)diff / (double)tb->numel : 0.0;
            if (diff) {
                printf("FAIL %s: %llu of %llu values differ\n", tb->name,
                       (unsigned long long)diff, (unsigned long long)tb->numel);
                n_failed++;
                gr->failed++;
            }
        } else {
            if (st_to_f64(ta, da) || st_to_f64(tb, db)) {
                printf("FAIL %s: cannot read as numbers\n", tb->name);
                n_failed++;
                gr->failed++;
                continue;
            }
            double num = 0, den = 0;
            int finite = 1;
            for (uint64_t k = 0; k < tb->numel; k++) {
                double d = da[k] - db[k];
                if (!isfinite(da[k])) finite = 0;
                num += d * d;
                den += db[k] * db[k];
            }
            rel = den > 0 ? sqrt(num / den) : sqrt(num);
            int ok = sqrt(num) < gt * sqrt(den) || sqrt(num) < atol * sqrt((double)tb->numel) ||
                     (den == 0 && sqrt(num) < gt);
            if (finite && ok && !(rel < gt)) {
                gr->floored++; /* zero up to rounding: its relative error means nothing */
                if (verbose) printf("  %-70s %.3e (absolute %.3e)\n", tb->name, rel, sqrt(num));
                continue;
            }
            if (!finite || !ok) {
                printf("FAIL %s: relative error %.3e >= %.1e%s\n", tb->name, rel, gt,
                       finite ? "" : " (NaN or Inf)");
                if (!finite) rel = INFINITY;
                n_failed++;
                gr->failed++;
            }
        }
        if (verbose) printf("  %-70s %.3e\n", tb->name, rel);
        if (rel > gr->worst) {
            gr->worst = rel;
            snprintf(gr->worst_name, sizeof gr->worst_name, "%s", tb->name);
        }
    }
    for (int j = 0; j < ng; j++) {
        char fl[64] = "";
        if (groups[j].floored)
            snprintf(fl, sizeof fl, ", %d at the absolute floor", groups[j].floored);
        if (groups[j].worst >= 0)
            printf("%-12s %4d tensors, %d failed%s, worst %.3e (%s)\n", groups[j].name,
                   groups[j].count, groups[j].failed, fl, groups[j].worst, groups[j].worst_name);
        else
            printf("%-12s %4d tensors, %d failed%s\n", groups[j].name, groups[j].count,
                   groups[j].failed, fl);
    }
    int only_a = 0;
    for (int i = 0; i < a->count; i++) only_a += !st_find(b, a->tensors[i].name);
    for (int j = 0; j < n_gtol; j++) printf("(group %s: tol %.1e)\n", gtol_name[j], gtol_val[j]);
    if (atol > 0) printf("(absolute floor: %.1e per element)\n", atol);
    printf("compare: %d tensors checked (tol %.1e), %d failed, %d missing, %d ignored, %d only "
           "in %s\n",
           n_checked, tol, n_failed, n_missing, n_skipped, only_a, pa);
    rc = (n_failed || n_missing) ? 1 : 0;
out:
    free(da), free(db), free(ia), free(ib);
    free(groups);
    st_free(a);
    st_free(b);
    free(ignore);
    return rc;
}
