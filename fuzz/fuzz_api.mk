# fuzz/fuzz_api.mk: `make fuzz-api` (also part of `make fuzz`), the libFuzzer
# targets for the public API's load and extract paths (fuzz/fuzz_api.c, built
# as fuzz_api_load: weights and gallery files, and fuzz_api_extract: caller
# images and image files, each input running the network).  The
# whole library (libhcga_core + the API) is compiled into the target with
# clang and coverage; the cpu backend plugin is the build tree's.  A tiny
# model at 64x32 input is trained for one epoch with ./hcga (seconds), and
# the seeds are made from it: caller-image headers, JPEG images, the head of
# the checkpoint, a gallery of hcga index.
FUZZ_API_C = $(filter %.c,$(libhcga_core_la_SOURCES) $(libhcga_la_SOURCES))
FUZZ_API_DIR = fuzz/api-work
EXTRA_DIST += fuzz/fuzz_api.c fuzz/api_seed.py fuzz/regress-api
CLEANFILES += fuzz/fuzz_api_load fuzz/fuzz_api_extract

fuzz/fuzz_api_load fuzz/fuzz_api_extract: $(top_srcdir)/fuzz/fuzz_api.c $(FUZZ_API_C) \
		$(top_srcdir)/include/hcga/hcga.h
	@$(MKDIR_P) fuzz
	$(AM_V_CCLD)$(FUZZ_CC) $(FUZZ_FLAGS) $(DEFS) -I. -I$(top_srcdir) $(AM_CPPFLAGS) \
	  $(if $(findstring load,$@),-DFUZZ_API_LOAD,-DFUZZ_API_EXTRACT) \
	  $(MPI_CFLAGS) $(YAML_CFLAGS) $(JANSSON_CFLAGS) $(PNG_CFLAGS) $(JPEG_CFLAGS) $(CAIRO_CFLAGS) \
	  -o $@ $< $(filter %.c,$(filter-out $<,$^)) \
	  $(MPI_LIBS) $(YAML_LIBS) $(JANSSON_LIBS) $(PNG_LIBS) $(JPEG_LIBS) $(CAIRO_LIBS) $(LIBS) -lm

# FUZZ_API_EXTRACT_RUN: the extract target's limit (each input runs the
# network: ~3.5 ms on an idle core here).  FUZZ_API_EXTRACT_RUN=-runs=1000000
# ran 10^6 inputs in 5834 s (171/s, sharing the machine with a CI run) with
# no crash, leak or timeout; peak RSS 401 MB.
FUZZ_API_EXTRACT_RUN = -max_total_time=$(FUZZ_SECONDS)
fuzz-api: fuzz/fuzz_api_load fuzz/fuzz_api_extract hcga$(EXEEXT)
	rm -rf $(FUZZ_API_DIR) fuzz/seeds-api
	$(MKDIR_P) $(FUZZ_API_DIR) fuzz/seeds-api
	./hcga synth --out $(FUZZ_API_DIR)/data --ids 8 --cams 2 --per-cam 2 --seed 3 >/dev/null
	./hcga --threads 1 train --config $(top_srcdir)/configs/hrnet_tiny.yml --data $(FUZZ_API_DIR)/data \
	  --output $(FUZZ_API_DIR)/run SOLVER.IMS_PER_BATCH 8 DATALOADER.NUM_INSTANCE 2 SOLVER.MAX_EPOCHS 1 \
	  SOLVER.EVAL_PERIOD 100 CLUSTERING.AL band TEST.IMS_PER_BATCH 2 \
	  INPUT.SIZE_TRAIN '[64, 32]' INPUT.SIZE_TEST '[64, 32]' >/dev/null
	./hcga --threads 1 index --weights $(FUZZ_API_DIR)/run/checkpoint.safetensors \
	  --out $(FUZZ_API_DIR)/g.safetensors $(FUZZ_API_DIR)/data/query >/dev/null
	printf '\000\020\020\003\000\000\001\002\003' > fuzz/seeds-api/view-16x16
	printf '\000\100\040\003\005\001\200\177' > fuzz/seeds-api/view-64x32-stride
	printf '\000\010\004\004\000\002\377' > fuzz/seeds-api/view-rgba
	for f in $$(ls $(FUZZ_API_DIR)/data/query/*.jpg | head -n 3); do \
	  { printf '\001'; cat $$f; } > fuzz/seeds-api/jpeg-$$(basename $$f); done
	{ printf '\002'; head -c 30000 $(FUZZ_API_DIR)/run/checkpoint.safetensors; } > fuzz/seeds-api/ckpt-head
	python3 $(top_srcdir)/fuzz/api_seed.py $(FUZZ_API_DIR)/run/checkpoint.safetensors fuzz/seeds-api/ckpt-small
	{ printf '\003'; cat $(FUZZ_API_DIR)/g.safetensors; } > fuzz/seeds-api/gallery
	$(MKDIR_P) fuzz/corpus-api-load fuzz/corpus-api-extract
	cd fuzz && HCGA_FUZZ_WEIGHTS=api-work/run/checkpoint.safetensors ./fuzz_api_load $(FUZZ_RUN) \
	  -max_len=65536 corpus-api-load seeds-api $(abs_top_srcdir)/fuzz/regress-api
	cd fuzz && HCGA_FUZZ_WEIGHTS=api-work/run/checkpoint.safetensors ./fuzz_api_extract \
	  $(FUZZ_API_EXTRACT_RUN) -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	  -max_len=65536 corpus-api-extract seeds-api $(abs_top_srcdir)/fuzz/regress-api
.PHONY: fuzz-api
