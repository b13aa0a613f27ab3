/*
 * test_man.c - man/hcga.1 against the program: every command of the command
 * table (frontend/cli/commands.h, expanded here through its X-macro, so a
 * command added there is checked without touching this file) must have a
 * ".SS <name>" subsection under ".SH COMMANDS"; every option that the
 * built `hcga <name> --help` prints must appear in that subsection; every
 * global option of `hcga --help` must appear under ".SH OPTIONS"; and no
 * subsection may describe a command that the table no longer has.
 *
 * The roff source is read with its escapes removed (\- becomes -, font
 * changes \fB \fI \fR vanish, special characters become a space), so that
 * "\fB\-\-seed\fR" counts as --seed.  An option is a token "--word" or "-x"
 * (a letter) that starts a word of the help text; it is found in the man
 * text only as a whole token (--seed does not match --seeds).  Rendering
 * warnings are man/check_man.sh's concern (groff -man -ww).
 */
#include <check.h>
#include <ctype.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/commands.h"
#include "testutil.h"

#define HCGA_BIN HCGA_BUILDDIR "/hcga"

/* ---- the command table, from commands.h ------------------------------------ */

#define NAME_OF(name_, ranks_, summary_) #name_,
static const char *const table[] = {HCGA_COMMAND_LIST(NAME_OF)};
#undef NAME_OF
#define NTABLE ((int)(sizeof table / sizeof table[0]))

/* ---- running hcga ----------------------------------------------------------- */

/* stdout of `hcga args...` (NULL-terminated) into a malloc'd string; the test
 * fails unless it exits 0. */
static char *hcga_stdout(const char *const *args)
{
    char tmpl[] = "/tmp/hcga_test_man_XXXXXX";
    int fd = mkstemp(tmpl);
    ck_assert_int_ge(fd, 0);
    unlink(tmpl);
    char *argv[16];
    int n = 0;
    argv[n++] = (char *)HCGA_BIN;
    for (int i = 0; args[i] && n < 15; i++) argv[n++] = (char *)args[i];
    argv[n] = NULL;
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, 0);
            dup2(devnull, 2);
        }
        dup2(fd, 1);
        execv(HCGA_BIN, argv);
        _exit(127);
    }
    int st = 0;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s %s did not exit 0 (status %d)", HCGA_BIN,
                  args[0], st);
    off_t len = lseek(fd, 0, SEEK_END);
    ck_assert_int_ge(len, 0);
    char *buf = malloc((size_t)len + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_int_eq(pread(fd, buf, (size_t)len, 0), len);
    buf[len] = '\0';
    close(fd);
    return buf;
}

/* ---- the options of a help text --------------------------------------------- */

static int optchar(int c)
{
    return isalnum((unsigned char)c) || c == '-' || c == '_';
}

/* The next option token of text from *pos into tok (of size len): 1 when
 * found, 0 at the end. */
static int next_option(const char *text, size_t *pos, char *tok, size_t len)
{
    for (size_t i = *pos; text[i]; i++) {
        if (text[i] != '-') continue;
        if (i > 0 && (optchar(text[i - 1]) || text[i - 1] == '.' || text[i - 1] == '/' || text[i - 1] == '$'))
            continue; /* inside a word: Market-1501, k-reciprocal, 3-5 */
        size_t j = i + 1;
        if (text[j] == '-') {
            j++;
            if (!isalnum((unsigned char)text[j])) continue; /* "--" alone */
            while (optchar(text[j])) j++;
        } else {
            if (!isalpha((unsigned char)text[j]) || optchar(text[j + 1])) continue; /* -1, -np */
            j++;
        }
        while (j > i && text[j - 1] == '-') j--; /* "--dtype-" at a line break: none here */
        size_t n = j - i < len - 1 ? j - i : len - 1;
        memcpy(tok, text + i, n);
        tok[n] = '\0';
        *pos = j;
        return 1;
    }
    return 0;
}

/* 1 when tok occurs in text as a whole token. */
static int has_token(const char *text, const char *tok)
{
    size_t n = strlen(tok);
    for (const char *p = strstr(text, tok); p; p = strstr(p + 1, tok)) {
        int before = p > text && optchar(p[-1]);
        int after = optchar(p[n]);
        if (!before && !after) return 1;
    }
    return 0;
}

/* ---- reading hcga.1 --------------------------------------------------------- */

typedef struct man_section {
    char name[64]; /* the .SS title's first word, or the .SH title */
    char *text;    /* the plain text of its lines (escapes removed), malloc'd */
    size_t len, cap;
} man_section;

typedef struct man_page {
    man_section options;      /* .SH OPTIONS */
    man_section commands[64]; /* the .SS subsections of .SH COMMANDS */
    int ncommands;
} man_page;

static void sec_append(man_section *s, const char *t, size_t n)
{
    if (s->len + n + 2 > s->cap) {
        s->cap = (s->len + n + 2) * 2;
        s->text = realloc(s->text, s->cap);
        ck_assert_ptr_nonnull(s->text);
    }
    memcpy(s->text + s->len, t, n);
    s->len += n;
    s->text[s->len++] = '\n';
    s->text[s->len] = '\0';
}

/* A roff line without its escapes, into out (of size len). */
static void roff_plain(const char *in, char *out, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; in[i] && o + 1 < len; i++) {
        if (in[i] != '\\') {
            out[o++] = in[i];
            continue;
        }
        char c = in[++i];
        if (c == '\0') break;
        if (c == '"') break; /* a comment to the end of the line */
        switch (c) {
        case '-': out[o++] = '-'; break;
        case 'e':
        case '\\': out[o++] = '\\'; break;
        case ' ':
        case '~': out[o++] = ' '; break;
        case 'f': /* font: \fB, \f(CW, \f[B] */
            if (in[i + 1] == '(') i += in[i + 2] && in[i + 3] ? 3 : 1;
            else if (in[i + 1] == '[') {
                while (in[i + 1] && in[i + 1] != ']') i++;
                if (in[i + 1]) i++;
            } else if (in[i + 1])
                i++;
            break;
        case '(': /* special character \(em: a space */
            if (in[i + 1] && in[i + 2]) i += 2;
            out[o++] = ' ';
            break;
        case '[':
            while (in[i + 1] && in[i + 1] != ']') i++;
            if (in[i + 1]) i++;
            out[o++] = ' ';
            break;
        case '*': /* a string \*x, \*(xx: a space */
            if (in[i + 1] == '(') i += in[i + 2] && in[i + 3] ? 3 : 1;
            else if (in[i + 1])
                i++;
            out[o++] = ' ';
            break;
        case '&':
        case '%':
        case ':':
        case 'c': break;
        default: out[o++] = c; break;
        }
    }
    out[o] = '\0';
}

/* The title of a .SH/.SS line: its text with quotes removed. */
static void title_of(const char *plain, char *out, size_t len)
{
    const char *p = plain + 3;
    while (*p == ' ' || *p == '"') p++;
    size_t n = 0;
    while (p[n] && p[n] != '"' && p[n] != '\n' && n + 1 < len) n++;
    while (n > 0 && p[n - 1] == ' ') n--;
    memcpy(out, p, n);
    out[n] = '\0';
}

static void man_read(man_page *m)
{
    memset(m, 0, sizeof *m);
    char path[4096];
    snprintf(path, sizeof path, "%s/man/hcga.1", hcga_test_srcdir());
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    enum { OTHER, OPTIONS, COMMANDS } where = OTHER;
    man_section *cur = NULL;
    char line[4096], plain[4096];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        roff_plain(line, plain, sizeof plain);
        if (strncmp(plain, ".SH", 3) == 0 && (plain[3] == ' ' || plain[3] == '\0')) {
            char t[64];
            title_of(plain, t, sizeof t);
            cur = NULL;
            where = OTHER;
            if (strcmp(t, "OPTIONS") == 0) {
                where = OPTIONS;
                cur = &m->options;
                snprintf(cur->name, sizeof cur->name, "%s", t);
            } else if (strcmp(t, "COMMANDS") == 0) {
                where = COMMANDS;
            }
            continue;
        }
        if (where == COMMANDS && strncmp(plain, ".SS", 3) == 0 && (plain[3] == ' ' || plain[3] == '\0')) {
            ck_assert_msg(m->ncommands < 64, "more than 64 command sections in %s", path);
            cur = &m->commands[m->ncommands++];
            char t[64];
            title_of(plain, t, sizeof t);
            t[strcspn(t, " ")] = '\0';
            snprintf(cur->name, sizeof cur->name, "%s", t);
            continue;
        }
        if (cur && strncmp(line, ".\\\"", 3) != 0) sec_append(cur, plain, strlen(plain));
    }
    fclose(f);
}

static void man_free(man_page *m)
{
    free(m->options.text);
    for (int i = 0; i < m->ncommands; i++) free(m->commands[i].text);
}

static const man_section *man_command(const man_page *m, const char *name)
{
    for (int i = 0; i < m->ncommands; i++)
        if (strcmp(m->commands[i].name, name) == 0) return &m->commands[i];
    return NULL;
}

/* ---- the tests -------------------------------------------------------------- */

/* The helpers themselves: the token rules the checks below rely on. */
START_TEST(test_tokens_and_escapes)
{
    char plain[256];
    roff_plain("\\fB\\-\\-seed\\fR \\fIS\\fR, \\fB\\-h\\fP \\(em \\f(CW\\-\\-x\\fR \\\" gone", plain,
               sizeof plain);
    ck_assert_str_eq(plain, "--seed S, -h   --x ");
    const char *help = "usage: hcga x [--dtype f32|f64] --group-tol G=T, -c FILE (k-reciprocal, "
                       "mpirun -np N, Market-1501, identity -1, -- end) --seeds";
    const char *want[] = {"--dtype", "--group-tol", "-c", "--seeds"};
    size_t pos = 0;
    char tok[64];
    int n = 0;
    while (next_option(help, &pos, tok, sizeof tok)) {
        ck_assert_int_lt(n, 4);
        ck_assert_str_eq(tok, want[n]);
        n++;
    }
    ck_assert_int_eq(n, 4);
    ck_assert(has_token("a --seeds b --seed-x c", "--seed") == 0);
    ck_assert(has_token("a [--seed] b", "--seed") == 1);
    ck_assert(has_token("-c, --config", "-c") == 1);
    ck_assert(has_token("--cams C", "-c") == 0);
}
END_TEST

START_TEST(test_every_command_has_a_section)
{
    man_page m;
    man_read(&m);
    ck_assert_msg(m.ncommands > 0, "man/hcga.1 has no .SS subsection under .SH COMMANDS");
    for (int i = 0; i < NTABLE; i++)
        ck_assert_msg(man_command(&m, table[i]) != NULL,
                      "command '%s' of frontend/cli/commands.h has no \".SS %s\" under .SH COMMANDS in "
                      "man/hcga.1",
                      table[i], table[i]);
    /* and no section for a command that is gone */
    for (int s = 0; s < m.ncommands; s++) {
        int found = 0;
        for (int i = 0; i < NTABLE; i++) found |= strcmp(m.commands[s].name, table[i]) == 0;
        ck_assert_msg(found, "man/hcga.1 has a section \".SS %s\" but the command table has no '%s'",
                      m.commands[s].name, m.commands[s].name);
    }
    man_free(&m);
}
END_TEST

START_TEST(test_command_options_documented)
{
    man_page m;
    man_read(&m);
    int checked = 0;
    for (int i = 0; i < NTABLE; i++) {
        const man_section *sec = man_command(&m, table[i]);
        ck_assert_msg(sec != NULL, "no man section for '%s'", table[i]);
        char *help = hcga_stdout((const char *const[]){table[i], "--help", NULL});
        size_t pos = 0;
        char tok[64];
        while (next_option(help, &pos, tok, sizeof tok)) {
            ck_assert_msg(sec->text && has_token(sec->text, tok),
                          "option %s of `hcga %s --help` is missing from the \".SS %s\" section of "
                          "man/hcga.1",
                          tok, table[i], table[i]);
            checked++;
        }
        free(help);
    }
    ck_assert_int_ge(checked, NTABLE); /* the extraction found options at all */
    man_free(&m);
}
END_TEST

START_TEST(test_global_options_documented)
{
    man_page m;
    man_read(&m);
    ck_assert_msg(m.options.text != NULL, "man/hcga.1 has no .SH OPTIONS section");
    char *help = hcga_stdout((const char *const[]){"--help", NULL});
    /* the options are listed before "commands:" (the summaries after it are prose) */
    char *cmds = strstr(help, "\ncommands:\n");
    ck_assert_ptr_nonnull(cmds);
    *cmds = '\0';
    size_t pos = 0;
    char tok[64];
    int checked = 0;
    while (next_option(help, &pos, tok, sizeof tok)) {
        ck_assert_msg(has_token(m.options.text, tok),
                      "global option %s of `hcga --help` is missing from .SH OPTIONS of man/hcga.1", tok);
        checked++;
    }
    ck_assert_int_ge(checked, 8);
    free(help);
    man_free(&m);
}
END_TEST

int main(void)
{
    TCase *tc;
    Suite *s = hcga_test_suite("man", &tc);
    HCGA_ADD_TESTS(tc, test_tokens_and_escapes, test_every_command_has_a_section,
                   test_command_options_documented, test_global_options_documented);
    return hcga_test_run(s);
}
