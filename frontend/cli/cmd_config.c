/*
 * cmd_config.c - `hcga config show [--config FILE] [KEY VALUE ...]`: print the
 * configuration that results from the built-in defaults, a YAML file and
 * command-line overrides, as YAML that hcga can load again.
 */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "config/config.h"

/* Same test as hcga_cli_is_help (main.c), kept local so that libhcga does
 * not depend on the CLI's object. */
static int is_help(const char *a)
{
    return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0;
}

static void config_usage(FILE *f)
{
    fprintf(f,
            "usage: hcga config show [--config FILE] [KEY VALUE ...]\n"
            "\n"
            "Print the merged configuration as YAML: the built-in defaults (the reference's\n"
            "keys and values), then FILE merged over them, then each KEY VALUE override.\n"
            "As in yacs, every key must exist in the defaults and keep its type (an int may\n"
            "be given for a float; lists and tuples interchange).  VALUE is read as a Python\n"
            "literal: 1e-4 is a float, \"[256, 128]\" or \"(256, 128)\" a list, True a bool,\n"
            "anything else a string; quote a number meant as a string: \"'0'\".\n"
            "\n"
            "options:\n"
            "  --config FILE, -c FILE  YAML file merged over the defaults\n"
            "  -h, --help              this help\n"
            "\n"
            "example:\n"
            "  hcga config show --config configs/hrnet32.yml SOLVER.BASE_LR 1e-4 \\\n"
            "      INPUT.SIZE_TRAIN \"(256, 128)\"\n"
            "\n"
            "Exit status: 0 printed, 1 the config file is invalid, 2 usage error or invalid\n"
            "override.\n");
}

int cmd_config(int argc, char **argv, const hcga_global_opts *g)
{
    (void)g;
    if (argc < 2) {
        fprintf(stderr, "hcga config: missing subcommand (see hcga config --help)\n");
        return 2;
    }
    if (is_help(argv[1])) {
        config_usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "show") != 0) {
        fprintf(stderr, "hcga config: unknown subcommand '%s' (see hcga config --help)\n",
                argv[1]);
        return 2;
    }
    const char *path = NULL;
    int i = 2;
    /* Options come first; the first argument that is not an option starts the
     * KEY VALUE pairs (values such as -1 are never taken for options). */
    while (i < argc) {
        const char *a = argv[i];
        if (is_help(a)) {
            config_usage(stdout);
            return 0;
        }
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (strcmp(a, "--config") == 0 || strcmp(a, "-c") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "hcga config show: %s needs a FILE argument\n", a);
                return 2;
            }
            if (path) {
                fprintf(stderr, "hcga config show: --config given twice\n");
                return 2;
            }
            path = argv[i + 1];
            i += 2;
            continue;
        }
        if (strncmp(a, "--config=", 9) == 0) {
            if (path) {
                fprintf(stderr, "hcga config show: --config given twice\n");
                return 2;
            }
            path = a + 9;
            i++;
            continue;
        }
        if (a[0] == '-') {
            fprintf(stderr, "hcga config show: unknown option '%s' (see hcga config --help)\n", a);
            return 2;
        }
        break;
    }
    int n_over = argc - i;
    if (n_over % 2) {
        fprintf(stderr, "hcga config show: override %s has no value (overrides are KEY VALUE "
                        "pairs)\n", argv[argc - 1]);
        return 2;
    }
    char err[2048];
    hcga_config *c = hcga_config_load(path, n_over, argv + i, err, sizeof err);
    if (!c) {
        fprintf(stderr, "hcga config show: %s\n", err);
        return strncmp(err, "override ", 9) == 0 ? 2 : 1;
    }
    hcga_config_dump(c, stdout);
    hcga_config_free(c);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        perror("hcga config show: stdout");
        return 1;
    }
    return 0;
}
