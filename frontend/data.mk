# frontend/data.mk: images, synthetic benchmark, datasets, augmentation
DATA_SRCS += frontend/image_io.c frontend/image_io.h frontend/rng.h \
	frontend/synth.c frontend/synth.h
