/*
 * cmd_synth.c - `hcga synth`: the command-table entry for the synthetic
 * benchmark generator, whose options and work are data/synth.c's
 * hcga_synth_main (tests call it directly).
 */
#include "cli/commands.h"
#include "data/synth.h"

int cmd_synth(int argc, char **argv, const hcga_global_opts *g)
{
    (void)g;
    return hcga_synth_main(argc, argv);
}
