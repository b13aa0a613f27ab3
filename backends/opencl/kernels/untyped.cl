/* untyped.cl - kernels that touch only integer tensors (compiled once). */

/* Number of labels != ignore in [g*chunk, (g+1)*chunk): one group each. */
RLWS_ATTR __kernel void label_count_part(const GLOBAL long *lab, hk_idx lo, hk_idx n, long ignore,
                                         hk_idx chunk, GLOBAL long *part, hk_idx po)
{
    __local long buf[RLWS];
    hk_idx g = get_group_id(0);
    int lid = get_local_id(0);
    hk_idx beg = g * chunk, end = beg + chunk < n ? beg + chunk : n;
    long c = 0;
    for (hk_idx i = beg + lid; i < end; i += RLWS) c += lab[lo + i] != ignore;
    long s = wg_sum_long(buf, c);
    if (lid == 0) part[po + g] = s;
}

/* Sum of g partial counts into out[oo]; one group. */
RLWS_ATTR __kernel void count_final(const GLOBAL long *part, hk_idx po, hk_idx g,
                                    GLOBAL long *out, hk_idx oo)
{
    __local long buf[RLWS];
    int lid = get_local_id(0);
    long c = 0;
    for (hk_idx i = lid; i < g; i += RLWS) c += part[po + i];
    long s = wg_sum_long(buf, c);
    if (lid == 0) out[oo] = s;
}
