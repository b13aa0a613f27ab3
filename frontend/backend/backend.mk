# frontend/backend/backend.mk: the plugin loader (backend.h): finds, dlopens and
# checks the backend plugins (plugins/hcga_plugin.h).
BACKEND_SRCS += frontend/backend/plugin_loader.c frontend/backend/backend.h
