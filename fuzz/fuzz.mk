# fuzz/fuzz.mk: `make fuzz`, libFuzzer targets for the safetensors reader
# (frontend/model/) and the config loader (frontend/config/: config.mk's CONFIG_C
# list), built with clang straight from the sources (not through libtool) and
# run for FUZZ_SECONDS each on a generated seed corpus.  New inputs accumulate
# in fuzz/corpus-* of the build tree; a crash or leak fails the target and
# leaves the reproducer as fuzz/crash-* / fuzz/leak-*.  Inputs that once
# failed are kept in fuzz/regress-* and replayed as seeds.
FUZZ_SECONDS = 60
FUZZ_CC = clang
FUZZ_FLAGS = -g -O1 -std=c11 -D_GNU_SOURCE -fno-omit-frame-pointer \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-I$(top_srcdir)/frontend
FUZZ_RUN = -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 \
	-print_final_stats=1
EXTRA_DIST += fuzz/fuzz_safetensors.c fuzz/fuzz_config.c fuzz/make_seeds.c \
	fuzz/safetensors.dict fuzz/config.dict fuzz/regress-st fuzz/regress-cfg
CLEANFILES += fuzz/fuzz_safetensors fuzz/fuzz_config fuzz/make_seeds

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

fuzz: fuzz/fuzz_safetensors fuzz/fuzz_config fuzz/make_seeds
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
.PHONY: fuzz
