/*
 * test_config_keys.c - every configuration key the frontend reads by name
 * exists in configs/defaults.yml.
 *
 * The hcga_cfg_* getters abort when a key is missing (config.h: a missing
 * key is a programming error), so a misspelt key literal would otherwise be
 * found only when that code path runs.  This test reads every .c and .h
 * file under frontend/ and conformance/ (recursively; conformance/ has
 * `hcga shapes`, which builds the model from a config), finds each call of a function whose
 * name starts with hcga_cfg_ (the getters and hcga_cfg_set, all of which
 * take the key as their second argument), collects the string literals of
 * that argument (both arms of a ?: too; adjacent literals are joined), and
 * looks each one up among the leaf keys of configs/defaults.yml.  A key that
 * is absent, or names a section rather than a value, is reported as
 * FILE:LINE and fails the test.  Keys built at run time (snprintf, a
 * variable set elsewhere) are not seen; the run-time abort still covers them.
 *
 * Before scanning the tree the scanner checks itself on a snippet with one
 * known key and one misspelt one, so a scanner that silently finds nothing
 * cannot pass.  Usage: test_config_keys [SRCDIR] (default: the configured
 * source directory).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#ifndef HCGA_SRCDIR
#define HCGA_SRCDIR "."
#endif

#define PREFIX "hcga_cfg_"
/* The frontend reads well over this many distinct keys by literal; fewer
 * means the scanner or the walk broke, not that the code changed. */
#define MIN_DISTINCT_KEYS 40

/* ------------------------------------------------------------ key lists */

typedef struct strset {
    char **s;
    int n, cap;
} strset;

static void set_add(strset *t, const char *s)
{
    for (int i = 0; i < t->n; i++)
        if (strcmp(t->s[i], s) == 0)
            return;
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 64;
        t->s = realloc(t->s, (size_t)t->cap * sizeof *t->s);
        if (!t->s) {
            perror("test_config_keys");
            exit(2);
        }
    }
    t->s[t->n] = strdup(s);
    if (!t->s[t->n]) {
        perror("test_config_keys");
        exit(2);
    }
    t->n++;
}

static int set_has(const strset *t, const char *s)
{
    for (int i = 0; i < t->n; i++)
        if (strcmp(t->s[i], s) == 0)
            return 1;
    return 0;
}

static void set_free(strset *t)
{
    for (int i = 0; i < t->n; i++)
        free(t->s[i]);
    free(t->s);
    memset(t, 0, sizeof *t);
}

/* ------------------------------------------------- configs/defaults.yml */

static int collect_keys(yaml_document_t *doc, yaml_node_t *map, const char *prefix,
                        strset *leaves, strset *sections)
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        yaml_node_t *v = yaml_document_get_node(doc, p->value);
        if (!k || !v || k->type != YAML_SCALAR_NODE)
            return -1;
        char full[512];
        snprintf(full, sizeof full, "%s%s%s", prefix, *prefix ? "." : "",
                 (const char *)k->data.scalar.value);
        if (v->type == YAML_MAPPING_NODE) {
            set_add(sections, full);
            if (collect_keys(doc, v, full, leaves, sections) != 0)
                return -1;
        } else {
            set_add(leaves, full);
        }
    }
    return 0;
}

static int load_defaults(const char *path, strset *leaves, strset *sections)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return -1;
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, f);
    int rc = -1;
    if (yaml_parser_load(&parser, &doc)) {
        yaml_node_t *root = yaml_document_get_root_node(&doc);
        if (root && root->type == YAML_MAPPING_NODE)
            rc = collect_keys(&doc, root, "", leaves, sections);
        yaml_document_delete(&doc);
    }
    yaml_parser_delete(&parser);
    fclose(f);
    if (rc != 0)
        fprintf(stderr, "%s: not a YAML mapping of config keys\n", path);
    return rc;
}

/* ------------------------------------------------------------- scanning */

typedef struct scanner {
    const char *p, *end;
    int line;
} scanner;

/* Skips whitespace and comments. */
static void skip_space(scanner *S)
{
    while (S->p < S->end) {
        if (*S->p == '\n') {
            S->line++;
            S->p++;
        } else if (*S->p == ' ' || *S->p == '\t' || *S->p == '\r' || *S->p == '\f' ||
                   *S->p == '\v' || (*S->p == '\\' && S->p + 1 < S->end && S->p[1] == '\n')) {
            S->p++;
        } else if (S->p + 1 < S->end && S->p[0] == '/' && S->p[1] == '/') {
            while (S->p < S->end && *S->p != '\n')
                S->p++;
        } else if (S->p + 1 < S->end && S->p[0] == '/' && S->p[1] == '*') {
            S->p += 2;
            while (S->p + 1 < S->end && !(S->p[0] == '*' && S->p[1] == '/')) {
                if (*S->p == '\n')
                    S->line++;
                S->p++;
            }
            S->p = S->p + 2 < S->end ? S->p + 2 : S->end;
        } else {
            break;
        }
    }
}

/* At a quote (" or '): skips the literal, appending a "..." literal's text
 * to buf (escapes kept as the character after the backslash: keys have
 * none). */
static void skip_quoted(scanner *S, char *buf, size_t cap, size_t *len)
{
    char q = *S->p++;
    while (S->p < S->end && *S->p != q && *S->p != '\n') {
        char ch = *S->p;
        if (ch == '\\' && S->p + 1 < S->end) {
            S->p++;
            ch = *S->p;
        }
        if (buf && *len + 1 < cap)
            buf[(*len)++] = ch;
        S->p++;
    }
    if (S->p < S->end && *S->p == q)
        S->p++;
    if (buf)
        buf[*len] = 0;
}

static int is_ident(int ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_';
}

typedef struct report {
    const strset *leaves, *sections;
    strset *seen;  /* distinct keys found */
    int uses;      /* key literals found */
    int bad;       /* of which not in the defaults */
    FILE *out;     /* where problems go (NULL: counted only) */
} report;

static void check_key(report *R, const char *file, int line, const char *fn, const char *key)
{
    R->uses++;
    set_add(R->seen, key);
    if (set_has(R->leaves, key))
        return;
    R->bad++;
    if (R->out)
        fprintf(R->out, "%s:%d: %s(..., \"%s\"): %s configs/defaults.yml\n", file, line, fn, key,
                set_has(R->sections, key) ? "is a section, not a value, in"
                                          : "no such key in");
}

/* The arguments of a call, S at the opening parenthesis: every string
 * literal of the second argument is a key. */
static void scan_call(scanner *S, report *R, const char *file, const char *fn)
{
    int depth = 0, arg = 0;
    while (S->p < S->end) {
        skip_space(S);
        if (S->p >= S->end)
            return;
        char ch = *S->p;
        if (ch == '"' && depth == 1 && arg == 1) {
            char key[256];
            size_t len = 0;
            int line = S->line;
            key[0] = 0;
            do { /* "A" "B" is "AB" */
                skip_quoted(S, key, sizeof key, &len);
                skip_space(S);
            } while (S->p < S->end && *S->p == '"');
            check_key(R, file, line, fn, key);
            continue;
        }
        if (ch == '"' || ch == '\'') {
            skip_quoted(S, NULL, 0, NULL);
            continue;
        }
        if (ch == '(' || ch == '[' || ch == '{') {
            depth++;
        } else if (ch == ')' || ch == ']' || ch == '}') {
            if (--depth == 0) {
                S->p++;
                return;
            }
        } else if (ch == ',' && depth == 1) {
            arg++;
        }
        S->p++;
    }
}

static void scan_text(const char *text, size_t n, const char *file, report *R)
{
    scanner S = {text, text + n, 1};
    while (S.p < S.end) {
        skip_space(&S);
        if (S.p >= S.end)
            break;
        char ch = *S.p;
        if (ch == '"' || ch == '\'') {
            skip_quoted(&S, NULL, 0, NULL);
        } else if (is_ident(ch)) {
            const char *id = S.p;
            while (S.p < S.end && is_ident(*S.p))
                S.p++;
            size_t idlen = (size_t)(S.p - id);
            if (idlen > strlen(PREFIX) && strncmp(id, PREFIX, strlen(PREFIX)) == 0) {
                char fn[64];
                snprintf(fn, sizeof fn, "%.*s", (int)(idlen < 63 ? idlen : 63), id);
                skip_space(&S);
                if (S.p < S.end && *S.p == '(')
                    scan_call(&S, R, file, fn);
            }
        } else {
            S.p++;
        }
    }
}

static int has_suffix(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

/* Scans dir (shown as rel) recursively; returns the number of files read. */
static int scan_dir(const char *dir, const char *rel, report *R)
{
    DIR *d = opendir(dir);
    if (!d) {
        perror(dir);
        return -1;
    }
    int files = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[4096], shown[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        snprintf(shown, sizeof shown, "%s/%s", rel, e->d_name);
        struct stat st;
        if (stat(path, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            int k = scan_dir(path, shown, R);
            if (k < 0) {
                closedir(d);
                return -1;
            }
            files += k;
            continue;
        }
        if (!S_ISREG(st.st_mode) || !(has_suffix(e->d_name, ".c") || has_suffix(e->d_name, ".h")))
            continue;
        FILE *f = fopen(path, "rb");
        if (!f) {
            perror(path);
            closedir(d);
            return -1;
        }
        char *buf = malloc((size_t)st.st_size + 1);
        size_t n = buf ? fread(buf, 1, (size_t)st.st_size, f) : 0;
        fclose(f);
        if (!buf) {
            perror("test_config_keys");
            closedir(d);
            return -1;
        }
        scan_text(buf, n, shown, R);
        free(buf);
        files++;
    }
    closedir(d);
    return files;
}

/* The scanner on a snippet whose answer is known: one good key split over
 * two literals and a comment, one misspelt key in a ?:, calls in comments
 * and strings that must be ignored, and a declaration with no literal. */
static int self_test(const strset *leaves, const strset *sections)
{
    static const char snippet[] =
        "/* hcga_cfg_int(cfg, \"NOT.IN.CODE\") is a comment */\n"
        "long long hcga_cfg_int(const hcga_config *c, const char *key);\n"
        "const char *s = \"hcga_cfg_str(cfg, \\\"NOT.A.CALL\\\")\";\n"
        "int a = (int)hcga_cfg_int(cfg, \"SOLVER.\" /* joined */\n"
        "                              \"MAX_EPOCHS\");\n"
        "double b = hcga_cfg_float(f(cfg, \"X\"), flag ? \"SOLVER.BASE_LR\"\n"
        "                                           : \"SOLVER.BASE_LRR\");\n"
        "hcga_cfg_list_len(cfg, \"INPUT\");\n";
    strset seen = {0};
    report R = {leaves, sections, &seen, 0, 0, NULL};
    scan_text(snippet, sizeof snippet - 1, "self-test", &R);
    int ok = R.uses == 4 && R.bad == 2 && set_has(&seen, "SOLVER.MAX_EPOCHS") &&
             set_has(&seen, "SOLVER.BASE_LRR") && set_has(&seen, "INPUT") &&
             !set_has(&seen, "NOT.IN.CODE") && !set_has(&seen, "NOT.A.CALL") &&
             !set_has(&seen, "X");
    if (!ok)
        fprintf(stderr, "test_config_keys: the scanner's self-test failed (%d keys found, %d "
                        "missing; expected 4 and 2)\n", R.uses, R.bad);
    set_free(&seen);
    return ok ? 0 : -1;
}

int main(int argc, char **argv)
{
    const char *src = argc > 1 ? argv[1] : HCGA_SRCDIR;
    char path[4096];
    strset leaves = {0}, sections = {0}, seen = {0};
    snprintf(path, sizeof path, "%s/configs/defaults.yml", src);
    if (load_defaults(path, &leaves, &sections) != 0)
        return 2;
    if (self_test(&leaves, &sections) != 0)
        return 1;
    report R = {&leaves, &sections, &seen, 0, 0, stderr};
    int files = 0;
    static const char *const dirs[] = {"frontend", "conformance"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", src, dirs[i]);
        int k = scan_dir(path, dirs[i], &R);
        if (k < 0)
            return 2;
        files += k;
    }
    printf("test_config_keys: %d key literals (%d distinct keys) in %d files under frontend/ and conformance/, "
           "%d keys in configs/defaults.yml\n", R.uses, seen.n, files, leaves.n);
    int rc = 0;
    if (seen.n < MIN_DISTINCT_KEYS) {
        fprintf(stderr, "test_config_keys: only %d distinct keys found (expected at least %d): "
                        "is the scanner or the source path broken?\n", seen.n, MIN_DISTINCT_KEYS);
        rc = 1;
    }
    if (R.bad) {
        fprintf(stderr, "test_config_keys: %d key literal%s not in configs/defaults.yml\n", R.bad,
                R.bad == 1 ? "" : "s");
        rc = 1;
    }
    set_free(&leaves);
    set_free(&sections);
    set_free(&seen);
    return rc;
}
