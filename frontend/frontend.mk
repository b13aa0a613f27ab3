# frontend/: the hcga library (model, data, training, evaluation; no kernels) and the CLI.
# Each component lists its sources in its own fragment, included below.
noinst_LTLIBRARIES += libhcga.la
LOADER_SRCS =
GRAPH_SRCS =
IO_SRCS =
MODEL_SRCS =
DATA_SRCS =
EVAL_SRCS =
TRAIN_SRCS =
CONF_SRCS =
libhcga_la_SOURCES = $(LOADER_SRCS) $(GRAPH_SRCS) $(IO_SRCS) $(MODEL_SRCS) $(DATA_SRCS) \
	$(EVAL_SRCS) $(TRAIN_SRCS) $(CONF_SRCS)
libhcga_la_CFLAGS = $(AM_CFLAGS) $(YAML_CFLAGS) $(JANSSON_CFLAGS) $(PNG_CFLAGS) $(JPEG_CFLAGS)
libhcga_la_LIBADD = $(YAML_LIBS) $(JANSSON_LIBS) $(PNG_LIBS) $(JPEG_LIBS) $(LIBS)

bin_PROGRAMS += hcga
hcga_SOURCES = frontend/main.c
hcga_CFLAGS = $(libhcga_la_CFLAGS)
hcga_LDADD = libhcga.la

include frontend/loader.mk
include frontend/graph.mk
include frontend/io.mk
include frontend/model.mk
include frontend/eval.mk
include frontend/data.mk
include frontend/train.mk
include frontend/vis.mk
