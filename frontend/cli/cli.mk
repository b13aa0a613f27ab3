# frontend/cli/cli.mk: the command line: main.c (global options, the command
# table, `hcga backends`; linked into the hcga program, see frontend.mk) and one
# cmd_*.c per command (commands.h lists them).  `hcga conformance` and
# `hcga shapes` live in conformance/.
CLI_SRCS += frontend/cli/commands.h frontend/cli/cmd_config.c frontend/cli/cmd_forward.c \
	frontend/cli/cmd_compare.c frontend/cli/cmd_bench.c frontend/cli/cmd_synth.c \
	frontend/cli/cmd_train.c frontend/cli/cmd_test.c frontend/cli/cmd_parse.c \
	frontend/cli/cmd_pretrain.c
