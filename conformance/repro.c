/*
 * repro.c - the repro line every failed case prints: the exact `hcga`
 * command that reruns that one case.  Shared by the modes (test_mode.c,
 * grad.c, perf.c), which the driver (conformance.c) calls; it lives apart
 * from the driver so that the modes depend on it and not on the driver.
 */
#include "conf_internal.h"

#include <string.h>

void conf_print_repro(conf_run *r, const conf_loaded_case *lc, int dtype, conf_mode mode)
{
    const conf_opts *o = r->o;
    static const char *const modes[] = {"test", "grad", "perf", "badargs"};
    fprintf(r->out, "  repro: hcga --backend %s", o->backend);
    if (o->device) fprintf(r->out, " --device %d", o->device);
    if (o->options && *o->options) fprintf(r->out, " --backend-options '%s'", o->options);
    if (o->threads) fprintf(r->out, " --threads %d", o->threads);
    fprintf(r->out, " conformance --mode %s --shapes %s --op %s --case %d --seed %llu --dtype %s",
            modes[mode], lc->file, hcga_op_name(lc->c.op), lc->index,
            (unsigned long long)o->seed, hcga_dtype_name(dtype));
    if (o->reference && strcmp(o->reference, "cpu") != 0)
        fprintf(r->out, " --reference %s", o->reference);
    fprintf(r->out, "\n");
}
