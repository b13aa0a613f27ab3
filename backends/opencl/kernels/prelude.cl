/*
 * prelude.cl - first part of the hcga OpenCL program (OpenCL C 1.2).
 *
 * The host builds ONE program from, in order: a line defining HCGA_FP64 when
 * the device has cl_khr_fp64, this prelude, then for each dtype (float, and
 * double when available) a line "#define T ... / #define SFX ..." followed
 * by the typed sources (../common/kernels/hcga_kmath.h and the *.cl files
 * listed in typed order), and finally copy.cl instantiations.
 */
#ifdef HCGA_FP64
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#endif

#define GLOBAL __global
#define DEVFN static inline
#define CAT2_(a, b) a##b
#define CAT2(a, b) CAT2_(a, b)
#define FN(name) CAT2(name, SFX)

typedef long hk_idx;

/* Work-group size of every reduction kernel.  Fixed, so that the partition
 * of a sum (and therefore its rounding) never depends on the device. */
#define RLWS 64
#define RLWS_ATTR __attribute__((reqd_work_group_size(RLWS, 1, 1)))

/* Work-group sum of one long per work-item (RLWS items); every item gets the
 * result.  Tree order is fixed. */
static inline long wg_sum_long(__local long *buf, long v)
{
    int lid = get_local_id(0);
    buf[lid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = RLWS / 2; s > 0; s >>= 1) {
        if (lid < s) buf[lid] += buf[lid + s];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    long r = buf[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return r;
}
