# backends/common/common.mk - code every backend plugin links: the op
# contract checker (hcga_contract.c, the one implementation of the argument
# rules of plugins/hcga_plugin.h).  A libtool convenience library, so each
# plugin carries its own copy and exports nothing new.
noinst_LTLIBRARIES += libhcga_contract.la
libhcga_contract_la_SOURCES = backends/common/hcga_contract.c backends/common/hcga_contract.h
libhcga_contract_la_CFLAGS = $(AM_CFLAGS) -fvisibility=hidden
libhcga_contract_la_LIBADD = -lm
EXTRA_DIST += backends/common/README.md
