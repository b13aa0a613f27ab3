# fuzz/fuzz.mk: `make fuzz`, libFuzzer targets for the safetensors reader
# (frontend/model/), the config loader (frontend/config/: config.mk's CONFIG_C
# list) and the image decoders of the dataset reader (frontend/data/image_io.c:
# JPEG through libjpeg-turbo, PNG through libpng), built with clang straight
# from the sources (not through libtool) and run for FUZZ_SECONDS each on a
# generated seed corpus, or for FUZZ_RUNS inputs each when that is set
# (`make fuzz FUZZ_RUNS=1000000`; no time limit then).  New inputs accumulate
# in fuzz/corpus-* of the build tree; a crash, leak or timeout fails the target
# and leaves the reproducer as fuzz/crash-* / fuzz/leak-* / fuzz/timeout-*.
# Inputs that once failed are kept in fuzz/regress-* and replayed as seeds.
# The public API's targets (load and extract paths) are in fuzz/fuzz_api.mk.
#
# fuzz_image, 2026-12-03 (issue 15): `make fuzz-image FUZZ_RUNS=1000000`, one
# nice'd process on a shared 2-core machine, system libjpeg-turbo 2.1.5 and
# libpng 1.6.39.  Found and fixed: a 307-byte PNG whose tEXt chunk declares
# 1.1 GB made libpng allocate that much (timeout under ASan; kept as
# regress-img/png-text-chunk-length-2g).  Then, with that fix, no crash,
# leak or timeout: "#1000000 DONE cov: 71 ft: 170 corp: 64/7837b lim: 9962
# exec/s: 315 rss: 433Mb" (number_of_executed_units 1000000, new_units_added
# 150, slowest_unit_time_sec 0, peak_rss_mb 433).  cov counts only image_io.c
# and the harness: the system libraries are not instrumented (FUZZ_IMG_LIBS).
FUZZ_SECONDS = 60
FUZZ_CC = clang
FUZZ_FLAGS = -g -O1 -std=c11 -D_GNU_SOURCE -fno-omit-frame-pointer \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-I$(top_srcdir)/frontend
FUZZ_RUNS =
FUZZ_RUN = $(if $(FUZZ_RUNS),-runs=$(FUZZ_RUNS),-max_total_time=$(FUZZ_SECONDS)) \
	-timeout=10 -rss_limit_mb=2048 -print_final_stats=1
EXTRA_DIST += fuzz/fuzz_safetensors.c fuzz/fuzz_config.c fuzz/make_seeds.c \
	fuzz/safetensors.dict fuzz/config.dict fuzz/regress-st fuzz/regress-cfg \
	fuzz/fuzz_image.c fuzz/make_image_seeds.c fuzz/image.dict fuzz/regress-img
CLEANFILES += fuzz/fuzz_safetensors fuzz/fuzz_config fuzz/make_seeds \
	fuzz/fuzz_image fuzz/make_image_seeds

fuzz/fuzz_safetensors: $(top_srcdir)/fuzz/fuzz_safetensors.c $(top_srcdir)/frontend/model/safetensors.c \
		$(top_srcdir)/frontend/model/safetensors.h
	@$(MKDIR_P) fuzz
	$(AM_V_CCLD)$(FUZZ_CC) $(FUZZ_FLAGS) $(JANSSON_CFLAGS) -o $@ \
	  $(top_srcdir)/fuzz/fuzz_safetensors.c $(top_srcdir)/frontend/model/safetensors.c $(JANSSON_LIBS)

fuzz/fuzz_config: $(top_srcdir)/fuzz/fuzz_config.c $(CONFIG_C:%=$(top_srcdir)/%) \
		$(top_srcdir)/frontend/config/config.h $(top_srcdir)/frontend/config/config_internal.h \
		frontend/config/defaults_yml.c
	@$(MKDIR_P) fuzz
	$(AM_V_CCLD)$(FUZZ_CC) $(FUZZ_FLAGS) $(YAML_CFLAGS) -o $@ \
	  $(top_srcdir)/fuzz/fuzz_config.c $(CONFIG_C:%=$(top_srcdir)/%) frontend/config/defaults_yml.c \
	  $(YAML_LIBS) -lm

fuzz/make_seeds: $(top_srcdir)/fuzz/make_seeds.c $(top_srcdir)/frontend/model/safetensors.c
	@$(MKDIR_P) fuzz
	$(AM_V_CCLD)$(FUZZ_CC) -g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=address,undefined \
	  -I$(top_srcdir)/frontend $(JANSSON_CFLAGS) -o $@ \
	  $(top_srcdir)/fuzz/make_seeds.c $(top_srcdir)/frontend/model/safetensors.c $(JANSSON_LIBS)

# fuzz_image links the system libjpeg-turbo and libpng, as the dataset reader
# does; they carry no coverage instrumentation, so the fuzzer is guided only by
# image_io.c.  Point FUZZ_IMG_CFLAGS / FUZZ_IMG_LIBS at builds of the two made
# with -fsanitize=fuzzer-no-link,address to fuzz their insides too.
IMAGE_IO_SRC = $(top_srcdir)/frontend/data/image_io.c $(top_srcdir)/frontend/data/image_io.h
FUZZ_IMG_CFLAGS = $(PNG_CFLAGS) $(JPEG_CFLAGS)
FUZZ_IMG_LIBS = $(PNG_LIBS) $(JPEG_LIBS)

fuzz/fuzz_image: $(top_srcdir)/fuzz/fuzz_image.c $(IMAGE_IO_SRC)
	@$(MKDIR_P) fuzz
	$(AM_V_CCLD)$(FUZZ_CC) $(FUZZ_FLAGS) $(FUZZ_IMG_CFLAGS) -o $@ \
	  $(top_srcdir)/fuzz/fuzz_image.c $(top_srcdir)/frontend/data/image_io.c $(FUZZ_IMG_LIBS)

fuzz/make_image_seeds: $(top_srcdir)/fuzz/make_image_seeds.c $(IMAGE_IO_SRC)
	@$(MKDIR_P) fuzz
	$(AM_V_CCLD)$(FUZZ_CC) -g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=address,undefined \
	  -I$(top_srcdir)/frontend $(PNG_CFLAGS) $(JPEG_CFLAGS) -o $@ \
	  $(top_srcdir)/fuzz/make_image_seeds.c $(top_srcdir)/frontend/data/image_io.c \
	  $(PNG_LIBS) $(JPEG_LIBS)

# `make fuzz-image` runs the image target alone (`make fuzz` runs it too).
fuzz-image: fuzz/fuzz_image fuzz/make_image_seeds
	rm -rf fuzz/seeds-img
	$(MKDIR_P) fuzz/seeds-img fuzz/corpus-img
	./fuzz/make_image_seeds fuzz/seeds-img
	cd fuzz && ./fuzz_image $(FUZZ_RUN) -max_len=16384 \
	  -dict=$(abs_top_srcdir)/fuzz/image.dict corpus-img seeds-img \
	  $(abs_top_srcdir)/fuzz/regress-img

fuzz: fuzz/fuzz_safetensors fuzz/fuzz_config fuzz/make_seeds fuzz-image fuzz-api
	rm -rf fuzz/seeds-st fuzz/seeds-cfg
	$(MKDIR_P) fuzz/seeds-st fuzz/seeds-cfg fuzz/corpus-st fuzz/corpus-cfg
	./fuzz/make_seeds fuzz/seeds-st fuzz/seeds-cfg
	cp $(top_srcdir)/configs/*.yml fuzz/seeds-cfg/
	cd fuzz && ./fuzz_safetensors $(FUZZ_RUN) -max_len=8192 \
	  -dict=$(abs_top_srcdir)/fuzz/safetensors.dict corpus-st seeds-st \
	  $(abs_top_srcdir)/fuzz/regress-st
	cd fuzz && ./fuzz_config $(FUZZ_RUN) -max_len=16384 \
	  -dict=$(abs_top_srcdir)/fuzz/config.dict corpus-cfg seeds-cfg \
	  $(abs_top_srcdir)/fuzz/regress-cfg
.PHONY: fuzz fuzz-image
