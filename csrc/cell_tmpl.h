/* Elementwise passes of the recurrent cells (RNN, LSTM, GRU), shared by the sequence kernels
 * and the sampling loop (recurrent.c); a template (see real_begin.h), included after
 * vmath_tmpl.h.
 * Each inner loop runs over one row of H with restrict pointers, so it vectorizes. */

/* Columns [j0, j0 + n) of A (R, G) = X W_x + b with X (R, I), or of the row gather
 * W_x[ids] + b with ids (R).  Each element is the same whatever the column range (the GEMM's sum
 * over I keeps its order), so the recurrent drivers split A by columns over threads. */
static RF_NOINLINE void FN(project_cols)(real *A, const int64_t *ids, const real *X,
                                         const real *W_x, const real *b, int R, int I, int G,
                                         int j0, int n)
{
    for (int64_t r = 0; r < R; r++) {
        real *restrict a = A + r * G + j0;
        const real *restrict bias = b + j0;
        if (ids) {
            const real *restrict w = W_x + ids[r] * G + j0;
            for (int j = 0; j < n; j++)
                a[j] = w[j] + bias[j];
        } else {
            for (int j = 0; j < n; j++)
                a[j] = bias[j];
        }
    }
    if (!ids) /* A[:, j0:j0+n] += X W_x[:, j0:j0+n] */
        GEMM(0, 0, R, n, I, 1, X, I, W_x + j0, G, 1, A + j0, G);
}

/* A (R, G) = X W_x + b with X (R, I), or the row gather W_x[ids] + b with ids (R). */
static void FN(project)(real *A, const int64_t *ids, const real *X, const real *W_x,
                        const real *b, int R, int I, int G)
{
    FN(project_cols)(A, ids, X, W_x, b, R, I, G, 0, G);
}

/* out (n) = tanh(a (n)) */
static RF_NOINLINE void FN(tanh_pass)(real *restrict out, const real *restrict a, int64_t n)
{
    const struct FN(vm_limits) lim = FN(vm_limits_load)();
    for (int64_t k = 0; k < n; k++)
        out[k] = FN(vtanh)(a[k], lim);
}

/* The RNN cell, in place on the pre-activations:  a (n) = h = tanh(a) */
static RF_NOINLINE void FN(tanh_inplace)(real *restrict a, int64_t n)
{
    const struct FN(vm_limits) lim = FN(vm_limits_load)();
    for (int64_t k = 0; k < n; k++)
        a[k] = FN(vtanh)(a[k], lim);
}

/* The RNN cell with dropout on its output, in the same pass:  a (n) = h = tanh(a);
 * out (n) = h * mask (n) */
static RF_NOINLINE void FN(tanh_inplace_dropout)(real *restrict a, real *restrict out,
                                                 const real *restrict mask, int64_t n)
{
    const struct FN(vm_limits) lim = FN(vm_limits_load)();
    for (int64_t k = 0; k < n; k++) {
        const real h = FN(vtanh)(a[k], lim);
        a[k] = h;
        out[k] = h * mask[k];
    }
}

/* One row of the LSTM cell; a_i, a_f, a_g, a_o (H) hold the pre-activations and get the
 * activated gates i, f, g, o:
 *   c = f * c_prev + i * g,   tc = tanh(c),   h = o * tc
 * and, with `dropout` (a constant at each call), out (H) = h * mask (H). */
static RF_ALWAYS_INLINE void FN(lstm_row)(real *restrict h, real *restrict c, real *restrict tc,
                                          real *restrict a_i, real *restrict a_f,
                                          real *restrict a_g, real *restrict a_o,
                                          const real *restrict c_prev, real *restrict out,
                                          const real *restrict mask, int H, const int dropout)
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
        const real hj = o * t;
        h[j] = hj;
        if (dropout)
            out[j] = hj * mask[j];
    }
}

/* The LSTM cell over B rows.  h, c, tc, c_prev (B, H); gates (B, 4H) in/out.  c must not be
 * c_prev. */
static RF_NOINLINE void FN(lstm_cell)(real *h, real *c, real *tc, real *gates, const real *c_prev,
                                      int B, int H)
{
    for (int64_t r = 0; r < B; r++) {
        real *a = gates + r * 4 * H;
        FN(lstm_row)(h + r * H, c + r * H, tc + r * H, a, a + H, a + 2 * H, a + 3 * H,
                     c_prev + r * H, NULL, NULL, H, 0);
    }
}

/* lstm_cell with dropout on its output, in the same pass: out (B, H) = h * mask (B, H). */
static RF_NOINLINE void FN(lstm_cell_dropout)(real *h, real *c, real *tc, real *gates, real *out,
                                              const real *mask, const real *c_prev, int B, int H)
{
    for (int64_t r = 0; r < B; r++) {
        real *a = gates + r * 4 * H;
        FN(lstm_row)(h + r * H, c + r * H, tc + r * H, a, a + H, a + 2 * H, a + 3 * H,
                     c_prev + r * H, out + r * H, mask + r * H, H, 1);
    }
}

/* Backward of the RNN cell over n = B H elements; carry (B, H) = dh_t from step t+1:
 *   da = (dH_t + carry) (1 - h_t^2),  or with dropout (mask non-NULL, dH the gradient of
 *   out = h * mask)  da = (dH_t mask + carry) (1 - h_t^2) */
static inline void FN(rnn_cell_back)(real *restrict da, const real *restrict dh,
                                     const real *restrict mask, const real *restrict carry,
                                     const real *restrict h, int64_t n)
{
    if (mask) {
        for (int64_t k = 0; k < n; k++)
            da[k] = (dh[k] * mask[k] + carry[k]) * ((real)1 - h[k] * h[k]);
    } else {
        for (int64_t k = 0; k < n; k++)
            da[k] = (dh[k] + carry[k]) * ((real)1 - h[k] * h[k]);
    }
}

/* One row of the LSTM step backward; carry_h, carry_c (H) in, carry_c out (dc f):
 *   dh = dH_t + carry_h  (dH_t mask + carry_h with `dropout`, a constant at each call);
 *   dc = carry_c + dh o (1 - tc^2)
 *   da_i = dc g i (1-i);  da_f = dc c_prev f (1-f);  da_g = dc i (1-g^2);  da_o = dh tc o (1-o) */
static RF_ALWAYS_INLINE void FN(lstm_row_back)(
    real *restrict da_i, real *restrict da_f, real *restrict da_g, real *restrict da_o,
    real *restrict carry_c, const real *restrict dH, const real *restrict mask,
    const real *restrict carry_h, const real *restrict a_i, const real *restrict a_f,
    const real *restrict a_g, const real *restrict a_o, const real *restrict tc,
    const real *restrict c_prev, int H, const int dropout)
{
    for (int j = 0; j < H; j++) {
        const real i = a_i[j], f = a_f[j], g = a_g[j], o = a_o[j], t = tc[j];
        const real dh = (dropout ? dH[j] * mask[j] : dH[j]) + carry_h[j];
        const real dc = carry_c[j] + dh * o * ((real)1 - t * t);
        da_i[j] = dc * g * i * ((real)1 - i);
        da_f[j] = dc * c_prev[j] * f * ((real)1 - f);
        da_g[j] = dc * i * ((real)1 - g * g);
        da_o[j] = dh * t * o * ((real)1 - o);
        carry_c[j] = dc * f;
    }
}

/* Backward of the LSTM cell over B rows.  da, gates (B, 4H); carry_c (B, H) in/out; dH,
 * carry_h, tc, c_prev (B, H); mask (B, H) with dropout, else NULL. */
static inline void FN(lstm_cell_back)(real *da, real *carry_c, const real *dH, const real *mask,
                                      const real *carry_h, const real *gates, const real *tc,
                                      const real *c_prev, int B, int H)
{
    for (int64_t r = 0; r < B; r++) {
        const int64_t o = r * H, g = 4 * o;
        if (mask)
            FN(lstm_row_back)(da + g, da + g + H, da + g + 2 * H, da + g + 3 * H, carry_c + o,
                              dH + o, mask + o, carry_h + o, gates + g, gates + g + H,
                              gates + g + 2 * H, gates + g + 3 * H, tc + o, c_prev + o, H, 1);
        else
            FN(lstm_row_back)(da + g, da + g + H, da + g + 2 * H, da + g + 3 * H, carry_c + o,
                              dH + o, NULL, carry_h + o, gates + g, gates + g + H,
                              gates + g + 2 * H, gates + g + 3 * H, tc + o, c_prev + o, H, 0);
    }
}

/* One row of the GRU cell (PyTorch's, gates r, z, n).  a_r, a_z, a_n (H) hold the input side
 * x W_x + b and get the activated r, z, n;  rec_r, rec_z, rec_n (H) the recurrent product
 * h_prev W_h, and rec_n gets b_hn added (R_n = h_prev W_hn + b_hn, which backward reads):
 *   r = sig(a_r + R_r),  z = sig(a_z + R_z),  n = tanh(a_n + r R_n),  h = (1 - z) n + z h_prev
 * and, with `dropout` (a constant at each call), out (H) = h * mask (H). */
static RF_ALWAYS_INLINE void FN(gru_row)(real *restrict h, real *restrict a_r, real *restrict a_z,
                                         real *restrict a_n, real *restrict rec_n,
                                         const real *restrict rec_r, const real *restrict rec_z,
                                         const real *restrict b_hn, const real *restrict h_prev,
                                         real *restrict out, const real *restrict mask, int H,
                                         const int dropout)
{
    const struct FN(vm_limits) lim = FN(vm_limits_load)();
    for (int j = 0; j < H; j++) {
        const real r = FN(vsigmoid)(a_r[j] + rec_r[j], lim);
        const real z = FN(vsigmoid)(a_z[j] + rec_z[j], lim);
        const real rn = rec_n[j] + b_hn[j];
        const real n = FN(vtanh)(a_n[j] + r * rn, lim);
        a_r[j] = r;
        a_z[j] = z;
        a_n[j] = n;
        rec_n[j] = rn;
        const real hj = ((real)1 - z) * n + z * h_prev[j];
        h[j] = hj;
        if (dropout)
            out[j] = hj * mask[j];
    }
}

/* The GRU cell over B rows.  h, h_prev (B, H), distinct; gates, rec (B, 3H) in/out; b_hn (H). */
static RF_NOINLINE void FN(gru_cell)(real *h, real *gates, real *rec, const real *b_hn,
                                     const real *h_prev, int B, int H)
{
    for (int64_t r = 0; r < B; r++) {
        real *a = gates + r * 3 * H, *q = rec + r * 3 * H;
        FN(gru_row)(h + r * H, a, a + H, a + 2 * H, q + 2 * H, q, q + H, b_hn, h_prev + r * H,
                    NULL, NULL, H, 0);
    }
}

/* gru_cell with dropout on its output, in the same pass: out (B, H) = h * mask (B, H). */
static RF_NOINLINE void FN(gru_cell_dropout)(real *h, real *gates, real *rec, const real *b_hn,
                                             const real *h_prev, real *out, const real *mask,
                                             int B, int H)
{
    for (int64_t r = 0; r < B; r++) {
        real *a = gates + r * 3 * H, *q = rec + r * 3 * H;
        FN(gru_row)(h + r * H, a, a + H, a + 2 * H, q + 2 * H, q, q + H, b_hn, h_prev + r * H,
                    out + r * H, mask + r * H, H, 1);
    }
}

/* One row of the GRU step backward; carry (H) in: d h_t from step t+1, out: its direct part
 * into h_{t-1}, dh z (the caller adds dR_t W_h^T):
 *   dh = dH_t + carry  (dH_t mask + carry with `dropout`, a constant at each call);
 *   da_n = dh (1 - z) (1 - n^2);  da_r = da_n R_n r (1 - r);  da_z = dh (h_prev - n) z (1 - z);
 *   dA = (da_r, da_z, da_n);  dR = (da_r, da_z, da_n r) */
static RF_ALWAYS_INLINE void FN(gru_row_back)(
    real *restrict da_r, real *restrict da_z, real *restrict da_n, real *restrict dr_r,
    real *restrict dr_z, real *restrict dr_n, real *restrict carry, const real *restrict dH,
    const real *restrict mask, const real *restrict g_r, const real *restrict g_z,
    const real *restrict g_n, const real *restrict rec_n, const real *restrict h_prev, int H,
    const int dropout)
{
    for (int j = 0; j < H; j++) {
        const real r = g_r[j], z = g_z[j], n = g_n[j];
        const real dh = (dropout ? dH[j] * mask[j] : dH[j]) + carry[j];
        const real dan = dh * ((real)1 - z) * ((real)1 - n * n);
        const real dar = dan * rec_n[j] * r * ((real)1 - r);
        const real daz = dh * (h_prev[j] - n) * z * ((real)1 - z);
        da_r[j] = dar;
        da_z[j] = daz;
        da_n[j] = dan;
        dr_r[j] = dar;
        dr_z[j] = daz;
        dr_n[j] = dan * r;
        carry[j] = dh * z;
    }
}

/* Backward of the GRU cell over B rows.  da, dr, gates, rec (B, 3H); carry (B, H) in/out; dH,
 * h_prev (B, H); mask (B, H) with dropout, else NULL. */
static inline void FN(gru_cell_back)(real *da, real *dr, real *carry, const real *dH,
                                     const real *mask, const real *gates, const real *rec,
                                     const real *h_prev, int B, int H)
{
    for (int64_t r = 0; r < B; r++) {
        const int64_t o = r * H, g = 3 * o;
        if (mask)
            FN(gru_row_back)(da + g, da + g + H, da + g + 2 * H, dr + g, dr + g + H,
                             dr + g + 2 * H, carry + o, dH + o, mask + o, gates + g,
                             gates + g + H, gates + g + 2 * H, rec + g + 2 * H, h_prev + o, H, 1);
        else
            FN(gru_row_back)(da + g, da + g + H, da + g + 2 * H, dr + g, dr + g + H,
                             dr + g + 2 * H, carry + o, dH + o, NULL, gates + g, gates + g + H,
                             gates + g + 2 * H, rec + g + 2 * H, h_prev + o, H, 0);
    }
}
