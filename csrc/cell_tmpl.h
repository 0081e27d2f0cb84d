/* Elementwise passes of the recurrent cells, shared by the sequence kernels and the
 * sampling loop (recurrent.c); a template (see real_begin.h), included after vmath_tmpl.h.
 * Each inner loop runs over one row of H with restrict pointers, so it vectorizes. */

/* A (R, G) = X W_x + b with X (R, I), or the row gather W_x[ids] + b with ids (R). */
static inline void FN(project)(real *A, const int64_t *ids, const real *X, const real *W_x,
                                  const real *b, int R, int I, int G)
{
    for (int64_t r = 0; r < R; r++) {
        real *restrict a = A + r * G;
        if (ids) {
            const real *restrict w = W_x + ids[r] * G;
            for (int j = 0; j < G; j++)
                a[j] = w[j] + b[j];
        } else {
            for (int j = 0; j < G; j++)
                a[j] = b[j];
        }
    }
    if (!ids) /* A += X W_x */
        GEMM(0, 0, R, G, I, 1, X, I, W_x, G, 1, A, G);
}

/* out (n) = tanh(a (n)) */
static inline void FN(tanh_pass)(real *restrict out, const real *restrict a, int64_t n)
{
    const struct FN(vm_limits) lim = FN(vm_limits_load)();
    for (int64_t k = 0; k < n; k++)
        out[k] = FN(vtanh)(a[k], lim);
}

/* a (n) = tanh(a) */
static inline void FN(tanh_inplace)(real *restrict a, int64_t n)
{
    const struct FN(vm_limits) lim = FN(vm_limits_load)();
    for (int64_t k = 0; k < n; k++)
        a[k] = FN(vtanh)(a[k], lim);
}

/* One row of the LSTM cell; a_i, a_f, a_g, a_o (H) hold the pre-activations and get the
 * activated gates i, f, g, o:
 *   c = f * c_prev + i * g,   tc = tanh(c),   h = o * tc */
static inline void FN(lstm_row)(real *restrict h, real *restrict c, real *restrict tc,
                                   real *restrict a_i, real *restrict a_f, real *restrict a_g,
                                   real *restrict a_o, const real *restrict c_prev, int H)
{
    const struct FN(vm_limits) lim = FN(vm_limits_load)();
    for (int j = 0; j < H; j++) {
        const real i = FN(vsigmoid)(a_i[j], lim);
        const real f = FN(vsigmoid)(a_f[j], lim);
        const real g = FN(vtanh)(a_g[j], lim);
        const real o = FN(vsigmoid)(a_o[j], lim);
        a_i[j] = i;
        a_f[j] = f;
        a_g[j] = g;
        a_o[j] = o;
        const real cj = f * c_prev[j] + i * g;
        const real t = FN(vtanh)(cj, lim);
        c[j] = cj;
        tc[j] = t;
        h[j] = o * t;
    }
}

/* The LSTM cell over B rows.  h, c, tc, c_prev (B, H); gates (B, 4H) in/out.  c must not be
 * c_prev. */
static inline void FN(lstm_cell)(real *h, real *c, real *tc, real *gates, const real *c_prev,
                                    int B, int H)
{
    for (int64_t r = 0; r < B; r++) {
        real *a = gates + r * 4 * H;
        FN(lstm_row)(h + r * H, c + r * H, tc + r * H, a, a + H, a + 2 * H, a + 3 * H,
                        c_prev + r * H, H);
    }
}
