# frontend/model.mk
