# frontend/loader.mk
