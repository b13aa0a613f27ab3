# frontend/model/model.mk: the HCGA network builder (model.h), state dicts and
# graph values in and out of safetensors (model_io.h), training checkpoints
# (checkpoint.h) and the safetensors reader/writer itself.
MODEL_SRCS += frontend/model/model.c frontend/model/model.h \
	frontend/model/model_io.c frontend/model/model_io.h \
	frontend/model/checkpoint.c frontend/model/checkpoint.h \
	frontend/model/safetensors.c frontend/model/safetensors.h

check_PROGRAMS += tests/test_safetensors
TESTS += tests/test_safetensors
tests_test_safetensors_CFLAGS = $(TEST_CFLAGS)

# golden test: the model on every loadable backend against the reference PyTorch tensors
check_PROGRAMS += tests/test_golden
TESTS += tests/test_golden
tests_test_golden_CFLAGS = $(TEST_CFLAGS)
