/*
 * testutil_be.c - the part of the test support (testutil.h) that opens a
 * backend through libhcga's loader.  Kept apart from testutil.c so that the
 * tests which do not link libhcga (test_cli, the conformance tests) can still
 * link the support library: this object is taken from the archive only by a
 * test that calls hcga_test_open_cpu.
 */
#include "testutil.h"

#include "backend/backend.h"

hcga_be *hcga_test_open_cpu(void)
{
    char err[1024] = "";
    hcga_be *be = NULL;
    int rc = hcga_be_open("cpu", 0, "threads=1", &be, err, sizeof err);
    ck_assert_msg(rc == 0 && be, "cannot open the cpu backend: %s", err);
    return be;
}
