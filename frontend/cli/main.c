/*
 * main.c - `hcga [global options] <command> [args]`.
 *
 * Global options are parsed here; the command table comes from commands.h
 * (one line per command).  The `backends` command lives in this file.
 */
#include "hcga_autoconf.h" /* autoconf results; "config.h" is the yacs config contract */

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "cli/commands.h"
#include "dist/dist.h"

typedef struct hcga_command {
    const char *name;
    const char *summary;
    int ranks; /* HCGA_CMD_ONE or HCGA_CMD_RANKS */
    int (*fn)(int argc, char **argv, const hcga_global_opts *g);
} hcga_command;

#define HCGA_TABLE_ROW(name_, ranks_, summary_) {#name_, summary_, HCGA_CMD_##ranks_, cmd_##name_},
static const hcga_command commands[] = {HCGA_COMMAND_LIST(HCGA_TABLE_ROW)};
#undef HCGA_TABLE_ROW
#define NUM_COMMANDS ((int)(sizeof commands / sizeof commands[0]))

#define MAX_PLUGINS 64

int hcga_cli_is_help(const char *arg)
{
    return arg && (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0);
}

int hcga_cli_open_backend(const hcga_global_opts *g, hcga_be **out)
{
    /* --threads N sizes the host-side workers (data loading) of every command
     * and goes to the backend as threads=N, which every plugin accepts (CPU
     * backends compute on N threads; device backends check it). */
    char err[2048];
    if (hcga_be_open_threads(g->backend, g->device, g->threads, g->backend_options, out, err, sizeof err) != 0) {
        fprintf(stderr, "hcga: %s\n", err);
        return 2;
    }
    if (g->verbosity > 0)
        fprintf(stderr, "hcga: backend %s device %d from %s\n", (*out)->name, (*out)->device,
                (*out)->path);
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: hcga [global options] <command> [args]\n"
            "       hcga <command> --help\n"
            "\n"
            "HCGA occluded person re-identification on pluggable compute backends.\n"
            "\n"
            "global options (before the command):\n"
            "  --backend NAME          compute backend plugin (default: cpu); see `hcga backends`\n"
            "  --device N              device index of that backend (default: 0)\n"
            "  --backend-options S     backend options \"key=value,key=value\"\n"
            "  --threads N             host worker threads; also the backend's threads=N\n"
            "  -v, --verbose           more messages (repeatable)\n"
            "  -q, --quiet             fewer messages\n"
            "  -h, --help              this help\n"
            "  --version               print the version and the plugin ABI version\n"
            "\n"
            "commands:\n");
    for (int i = 0; i < NUM_COMMANDS; i++)
        fprintf(f, "  %-14s %s\n", commands[i].name, commands[i].summary);
    fprintf(f,
            "\n"
            "Plugins hcga_backend_<name>.so are searched in $HCGA_PLUGIN_PATH (':'-separated),\n"
            "then %s, then the build tree %s.\n"
            "Exit status: 0 success, 1 failure, 2 usage error or unusable backend.\n",
            HCGA_PKGLIBDIR, HCGA_BUILDDIR);
}

static int parse_int(const char *s, int min, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > INT_MAX) return -1;
    *out = (int)v;
    return 0;
}

static void format_bytes(uint64_t b, char *out, size_t len)
{
    const double gib = 1024.0 * 1024.0 * 1024.0;
    if (b >= (uint64_t)1 << 30)
        snprintf(out, len, "%.1f GiB", (double)b / gib);
    else
        snprintf(out, len, "%.1f MiB", (double)b / (1024.0 * 1024.0));
}

int cmd_backends(int argc, char **argv, const hcga_global_opts *g)
{
    (void)g;
    if (argc > 1 && hcga_cli_is_help(argv[1])) {
        printf("usage: hcga backends\n"
               "\n"
               "List every backend plugin (hcga_backend_<name>.so) on the search path: its\n"
               "name and file, then `ok` with each device's name, version and memory, or\n"
               "`unavailable: <reason>` (load error, ABI mismatch, no driver or device).\n"
               "Exit status: 0 if at least one plugin was found, 1 otherwise.\n");
        return 0;
    }
    if (argc > 1) {
        fprintf(stderr, "hcga backends: unexpected argument '%s' (see hcga backends --help)\n",
                argv[1]);
        return 2;
    }
    static hcga_plugin_entry entries[MAX_PLUGINS];
    int n = hcga_plugins_scan(entries, MAX_PLUGINS);
    if (n == 0) {
        const char *env = getenv("HCGA_PLUGIN_PATH");
        fprintf(stderr,
                "hcga backends: no plugins hcga_backend_*.so found in $HCGA_PLUGIN_PATH (%s), %s "
                "or the build tree %s\n",
                env ? env : "unset", HCGA_PKGLIBDIR, HCGA_BUILDDIR);
        return 1;
    }
    for (int i = 0; i < n; i++) {
        const hcga_plugin_entry *e = &entries[i];
        printf("%s: %s\n", e->name, e->path);
        if (!e->ok) {
            printf("  unavailable: %s\n", e->reason);
            continue;
        }
        printf("  ok: %d device%s\n", e->num_devices, e->num_devices == 1 ? "" : "s");
        for (int d = 0; d < e->num_devices; d++) {
            hcga_device_info info;
            char err[1024];
            if (hcga_plugin_device_info(e, d, &info, err, sizeof err) != HCGA_OK) {
                printf("  device %d: unavailable: %s\n", d, err);
                continue;
            }
            char total[32], avail[32];
            format_bytes(info.memory_total, total, sizeof total);
            format_bytes(info.memory_free, avail, sizeof avail);
            printf("  device %d: %s\n", d, info.name[0] ? info.name : "(no name)");
            printf("    version: %s\n", info.version[0] ? info.version : "(not reported)");
            if (info.memory_total)
                printf("    memory: %s total, %s free\n", total,
                       info.memory_free ? avail : "unknown");
            else
                printf("    memory: not reported\n");
        }
    }
    return 0;
}

/* Joins the data-parallel job when started by mpirun (frontend/dist): only
 * commands marked RANKS run as several ranks; every rank but 0 keeps quiet
 * on stdout (rank 0 logs); a rank's device is its node-local rank unless
 * --device says otherwise.  Returns -1 to go on, else the exit status. */
static int start_ranks(const hcga_command *cmd, hcga_global_opts *g, int *argc, char ***argv)
{
    char err[512];
    if (hcga_dist_init(argc, argv, err, sizeof err)) {
        fprintf(stderr, "hcga: %s\n", err);
        return 2;
    }
    const int n = hcga_dist_size(), rank = hcga_dist_rank();
    if (n == 1) return -1;
    if (cmd->ranks != HCGA_CMD_RANKS) {
        if (rank == 0)
            fprintf(stderr, "hcga: `hcga %s` runs as one process, not as %d ranks; start it without mpirun\n",
                    cmd->name, n);
        hcga_dist_finalize();
        return 2;
    }
    if (!g->device_explicit) {
        hcga_plugin_entry e;
        int ndev = hcga_plugin_find(g->backend, &e) == 0 && e.num_devices > 0 ? e.num_devices : 1;
        g->device = hcga_dist_local_rank() % ndev;
    }
    /* ranks sharing a machine share its cores unless --threads says */
    if (!g->threads && hcga_dist_local_size() > 1) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        g->threads = cores > hcga_dist_local_size() ? (int)(cores / hcga_dist_local_size()) : 1;
    }
    if (rank != 0 && !freopen("/dev/null", "w", stdout)) {
        fprintf(stderr, "hcga: rank %d: cannot silence stdout: %s\n", rank, strerror(errno));
        hcga_dist_finalize();
        return 1;
    }
    return -1;
}

int main(int argc, char **argv)
{
    hcga_global_opts g = {.backend = "cpu", .device = 0};
    enum { OPT_BACKEND = 256, OPT_DEVICE, OPT_BACKEND_OPTIONS, OPT_THREADS, OPT_VERSION };
    static const struct option longopts[] = {
        {"backend", required_argument, NULL, OPT_BACKEND},
        {"device", required_argument, NULL, OPT_DEVICE},
        {"backend-options", required_argument, NULL, OPT_BACKEND_OPTIONS},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"verbose", no_argument, NULL, 'v'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0}};
    opterr = 0;
    int c;
    /* "+": stop at the first non-option (the command name); ":": report a missing value as ':'. */
    while ((c = getopt_long(argc, argv, "+:vqh", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_BACKEND:
            g.backend = optarg;
            g.backend_explicit = 1;
            break;
        case OPT_DEVICE:
            g.device_explicit = 1;
            if (parse_int(optarg, 0, &g.device) != 0) {
                fprintf(stderr, "hcga: --device: '%s' is not a device index (0, 1, ...)\n", optarg);
                return 2;
            }
            break;
        case OPT_BACKEND_OPTIONS: g.backend_options = optarg; break;
        case OPT_THREADS:
            if (parse_int(optarg, 1, &g.threads) != 0) {
                fprintf(stderr, "hcga: --threads: '%s' is not a positive integer\n", optarg);
                return 2;
            }
            break;
        case 'v': g.verbosity = g.verbosity < 0 ? 1 : g.verbosity + 1; break;
        case 'q': g.verbosity = -1; break;
        case 'h': usage(stdout); return 0;
        case OPT_VERSION:
            printf("hcga %s (plugin ABI %d.%d, %d ops)\n", PACKAGE_VERSION, HCGA_ABI_MAJOR,
                   HCGA_ABI_MINOR, (int)HCGA_OP_COUNT);
            return 0;
        case ':':
            fprintf(stderr, "hcga: option %s needs a value (see hcga --help)\n", argv[optind - 1]);
            return 2;
        default:
            if (optopt)
                fprintf(stderr, "hcga: unknown option -%c (see hcga --help)\n", optopt);
            else
                fprintf(stderr, "hcga: unknown or incomplete option %s (see hcga --help)\n",
                        argv[optind - 1]);
            return 2;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    const char *name = argv[optind];
    const hcga_command *cmd = NULL;
    for (int i = 0; i < NUM_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0) cmd = &commands[i];
    if (!cmd) {
        fprintf(stderr, "hcga: unknown command '%s' (see hcga --help)\n", name);
        return 2;
    }
    int cargc = argc - optind;
    char **cargv = argv + optind;
    int rc = start_ranks(cmd, &g, &argc, &argv);
    if (rc >= 0) return rc;

    /* An explicitly chosen backend must be usable whatever the command does
     * with it, so a typo or a broken plugin is reported at once. */
    rc = 0;
    if (g.backend_explicit && !(cargc > 1 && hcga_cli_is_help(cargv[1]))) {
        hcga_plugin_entry e;
        if (hcga_plugin_find(g.backend, &e) != 0) {
            if (e.path[0])
                fprintf(stderr, "hcga: backend '%s' (%s) unavailable: %s\n", g.backend, e.path,
                        e.reason);
            else
                fprintf(stderr, "hcga: backend '%s': %s\n", g.backend, e.reason);
            rc = 2;
        } else if (g.device >= e.num_devices) {
            fprintf(stderr, "hcga: backend '%s': device %d does not exist (devices: 0..%d)\n",
                    g.backend, g.device,
                    e.num_devices - 1);
            rc = 2;
        }
    }
    if (rc) { /* every rank finds the same: leave the job together */
        hcga_dist_finalize();
        return rc;
    }
    optind = 0; /* commands parse their own options from cargv */
    rc = cmd->fn(cargc, cargv, &g);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "hcga: writing the output failed: %s\n", strerror(errno));
        rc = 1;
    }
    /* a rank that failed stops the others instead of leaving them waiting */
    if (rc != 0 && hcga_dist_size() > 1) {
        char msg[96];
        snprintf(msg, sizeof msg, "hcga %s failed (exit status %d); stopping every rank", cmd->name, rc);
        hcga_dist_abort(rc, msg);
    }
    hcga_dist_finalize();
    return rc;
}
