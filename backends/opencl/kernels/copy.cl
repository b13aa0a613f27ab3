/* copy.cl - COPY between arbitrarily strided tensors of the same shape
 * (5 dims, d0 implied by n), with conversion.  Instantiated by the host for
 * each (CS, CD, CNAME): source type, destination type, kernel name. */
__kernel void CNAME(const GLOBAL CS *x, hk_idx xo, GLOBAL CD *y, hk_idx yo, hk_idx n, hk_idx d1,
                    hk_idx d2, hk_idx d3, hk_idx d4, hk_idx xs0, hk_idx xs1, hk_idx xs2,
                    hk_idx xs3, hk_idx xs4, hk_idx ys0, hk_idx ys1, hk_idx ys2, hk_idx ys3,
                    hk_idx ys4)
{
    hk_idx i = get_global_id(0);
    if (i >= n) return;
    hk_idx r = i;
    hk_idx c4 = r % d4; r /= d4;
    hk_idx c3 = r % d3; r /= d3;
    hk_idx c2 = r % d2; r /= d2;
    hk_idx c1 = r % d1; r /= d1;
    y[yo + r * ys0 + c1 * ys1 + c2 * ys2 + c3 * ys3 + c4 * ys4] =
        (CD)x[xo + r * xs0 + c1 * xs1 + c2 * xs2 + c3 * xs3 + c4 * xs4];
}
