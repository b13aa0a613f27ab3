# conformance/conformance.mk
