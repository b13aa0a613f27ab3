# frontend/model.mk: the HCGA network builder, checkpoint I/O and the model commands
MODEL_SRCS += frontend/model.c frontend/model.h frontend/model_io.c frontend/model_io.h
