# frontend/: libhcga_core (model, data, training, evaluation; no kernels: a
# convenience library inside libhcga.so and the hcga program), the public API
# (api/, the installed libhcga.so) and the CLI.
# One folder per layer, each listing its sources and tests in its own fragment,
# included below from the bottom layer up.  Includes name the folder from
# frontend/ (AM_CPPFLAGS has -I$(top_srcdir)/frontend): #include "graph/graph.h".
noinst_LTLIBRARIES += libhcga_core.la libhcga_cli.la
UTIL_SRCS =
DIST_SRCS =
BACKEND_SRCS =
GRAPH_SRCS =
CONFIG_SRCS =
MODEL_SRCS =
DATA_SRCS =
EVAL_SRCS =
TRAIN_SRCS =
CLI_SRCS =
CONF_SRCS =
libhcga_core_la_SOURCES = $(UTIL_SRCS) $(DIST_SRCS) $(BACKEND_SRCS) $(GRAPH_SRCS) $(CONFIG_SRCS) $(MODEL_SRCS) \
	$(DATA_SRCS) $(EVAL_SRCS) $(TRAIN_SRCS)
# the commands (cli/, conformance/): in the program, not in libhcga.so
libhcga_cli_la_SOURCES = $(CLI_SRCS) $(CONF_SRCS)
libhcga_cli_la_CFLAGS = $(libhcga_core_la_CFLAGS)
libhcga_core_la_CFLAGS = $(AM_CFLAGS) $(MPI_CFLAGS) $(YAML_CFLAGS) $(JANSSON_CFLAGS) $(PNG_CFLAGS) $(JPEG_CFLAGS)
libhcga_core_la_LIBADD = $(MPI_LIBS) $(YAML_LIBS) $(JANSSON_LIBS) $(PNG_LIBS) $(JPEG_LIBS) $(LIBS)

# The program: the command table (main.c), the commands written on the
# public API alone (index, search: they link libhcga.so), and every other
# command from libhcga_cli on libhcga_core.
bin_PROGRAMS += hcga
hcga_SOURCES = frontend/cli/main.c frontend/cli/cli_api.h frontend/cli/cli_api.c frontend/cli/cmd_index.c \
	frontend/cli/cmd_search.c
hcga_CFLAGS = $(libhcga_core_la_CFLAGS)
hcga_LDADD = libhcga_cli.la libhcga_core.la libhcga.la

include frontend/util/util.mk
include frontend/dist/dist.mk
include frontend/backend/backend.mk
include frontend/graph/graph.mk
include frontend/config/config.mk
include frontend/model/model.mk
include frontend/data/data.mk
include frontend/eval/eval.mk
include frontend/train/train.mk
include frontend/vis/vis.mk
include frontend/cli/cli.mk
include frontend/api/api.mk
