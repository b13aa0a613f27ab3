# examples/examples.mk: programs that use the installed libhcga as a user
# would, and `make installcheck`, which builds examples/rank_gallery.c with
# nothing but `cc $(pkg-config --cflags --libs hcga)` against the installed
# files (DESTDIR honoured: pkg-config's sysroot is DESTDIR), makes a tiny
# model with the installed hcga (synth + one epoch of configs/hrnet_tiny.yml,
# installed under $(pkgdatadir)/configs) and ranks a gallery with it.  It
# also checks that man hcga and man 3 hcga open.
EXTRA_DIST += examples/rank_gallery.c
hcgaconfigsdir = $(pkgdatadir)/configs
dist_hcgaconfigs_DATA = configs/defaults.yml configs/hrnet_tiny.yml configs/hrnet18.yml configs/hrnet32.yml \
	configs/hrnet48.yml configs/synth_small.yml configs/hcga_occluded_duke.yml

IC_DIR = examples/installcheck
IC_ENV = PKG_CONFIG_PATH="$(DESTDIR)$(libdir)/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$(DESTDIR)" \
	LD_LIBRARY_PATH="$(DESTDIR)$(libdir)$${LD_LIBRARY_PATH:+:$$LD_LIBRARY_PATH}" \
	HCGA_PLUGIN_PATH="$(DESTDIR)$(pkglibdir)" MANPATH="$(DESTDIR)$(mandir)"
IC_HCGA = $(DESTDIR)$(bindir)/hcga --threads 2
installcheck-local:
	rm -rf $(IC_DIR) && $(MKDIR_P) $(IC_DIR)
	$(IC_ENV) cc -o $(IC_DIR)/rank_gallery $(srcdir)/examples/rank_gallery.c \
	  $$($(IC_ENV) $(PKG_CONFIG) --cflags --libs hcga)
	$(IC_ENV) $(IC_HCGA) synth --out $(IC_DIR)/data --ids 8 --cams 2 --per-cam 2 --seed 3 >/dev/null
	$(IC_ENV) $(IC_HCGA) train --config $(DESTDIR)$(pkgdatadir)/configs/hrnet_tiny.yml \
	  --data $(IC_DIR)/data --output $(IC_DIR)/run SOLVER.IMS_PER_BATCH 8 DATALOADER.NUM_INSTANCE 2 \
	  SOLVER.MAX_EPOCHS 1 SOLVER.EVAL_PERIOD 100 CLUSTERING.AL band TEST.IMS_PER_BATCH 8 >/dev/null
	q=$$(ls $(IC_DIR)/data/query/*.jpg | head -n 1); \
	$(IC_ENV) $(IC_DIR)/rank_gallery $(IC_DIR)/run/checkpoint.safetensors $$q \
	  $(IC_DIR)/data/bounding_box_test/*.jpg > $(IC_DIR)/ranked.txt
	cat $(IC_DIR)/ranked.txt
	test "$$(grep -c '^[1-5] ' $(IC_DIR)/ranked.txt)" = 5
	$(IC_ENV) man -P cat 1 hcga 2>/dev/null | grep -q 'hcga index'
	$(IC_ENV) man -P cat 3 hcga 2>/dev/null | grep -q 'hcga_model_load'
	@echo "installcheck: rank_gallery built with pkg-config ranked the gallery; man hcga and man 3 hcga open"
	rm -rf $(IC_DIR)

# extract_bench: hcga_extract's latency and throughput (scripts/api_latency.sh)
noinst_PROGRAMS = examples/extract_bench examples/search_bench
examples_extract_bench_SOURCES = examples/extract_bench.c
examples_extract_bench_CFLAGS = $(AM_CFLAGS)
examples_extract_bench_LDADD = libhcga.la
examples_search_bench_SOURCES = examples/search_bench.c
examples_search_bench_CFLAGS = $(AM_CFLAGS)
examples_search_bench_LDADD = libhcga.la
