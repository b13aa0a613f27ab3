/* fake_dep.c - built as tests/libhcga_fake_dep.so with the soname
 * libhcga_does_not_exist.so (tests/tests.mk), so the fake_missinglib plugin
 * linked against it has a DT_NEEDED entry no directory can satisfy. */
int hcga_fake_dep_value(void);
int hcga_fake_dep_value(void)
{
    return 1;
}
