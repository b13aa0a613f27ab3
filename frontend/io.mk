# frontend/io.mk
