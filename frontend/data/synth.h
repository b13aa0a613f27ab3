/* synth.h - `hcga synth`: the synthetic occluded-ReID benchmark generator. */
#ifndef HCGA_SYNTH_H
#define HCGA_SYNTH_H

/* argv[0] is the command name; returns the process exit status. */
int hcga_synth_main(int argc, char **argv);

#endif
