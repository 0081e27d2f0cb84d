/* The RNN and LSTM layers over a sequence, forward and backward (a template: see real_begin.h).
 * Each forward: the input projection of all T steps at once into the output buffer (one GEMM or
 * a row gather; the LSTM projects per chunk of steps inside the loop), then per step one GEMM
 * A_t += h_{t-1} W_h  and one fused elementwise pass.
 * Each backward: per step, last to first, one fused pass into dA_t and one GEMM for the carry
 * dh = dA_t W_h^T (dh0 is the carry buffer), then the weight gradients as whole-sequence GEMMs
 * (the LSTM runs them per chunk of steps inside the loop, while that chunk of dA is in cache).
 * The per-step products go through pgemm_tmpl.h's kernel over W_h packed once into pack
 * (recurrent_pack_size elements) or through BLAS, as rf_use_packed (paths.h) says. */

static void FN(vec_tanh)(real *out, const real *x, int64_t n)
{
    FN(tanh_pass)(out, x, n);
}

static void FN(vec_sigmoid)(real *out, const real *x, int64_t n)
{
    const struct FN(vm_limits) lim = FN(vm_limits_load)();
    for (int64_t k = 0; k < n; k++)
        out[k] = FN(vsigmoid)(x[k], lim);
}

/* db (G) += column sums of dA (R, G), summed in double per column block so float32 gradients
 * lose nothing over thousands of rows. */
static void FN(colsum_add)(real *db, const real *dA, int64_t R, int G)
{
    enum { BLOCK = 128 };
    double acc[BLOCK];
    for (int j0 = 0; j0 < G; j0 += BLOCK) {
        const int n = G - j0 < BLOCK ? G - j0 : BLOCK;
        for (int j = 0; j < n; j++)
            acc[j] = 0;
        for (int64_t r = 0; r < R; r++) {
            const real *restrict row = dA + r * G + j0;
            for (int j = 0; j < n; j++)
                acc[j] += row[j];
        }
        for (int j = 0; j < n; j++)
            db[j0 + j] += (real)acc[j];
    }
}

/* The GEMM parts of the gradients below for steps [t0, t1) only (rows t0*B .. t1*B of dA):
 * dW_h += H_prev^T dA,  dW_x += X^T dA (X non-NULL),  dX = dA W_x^T (dX non-NULL). */
static void FN(gemm_grads)(real *dX, real *dW_x, real *dW_h, const real *dA, const real *X,
                           const real *hs, const real *W_x, const real *h0, int t0, int t1,
                           int B, int I, int H, int G)
{
    const int64_t r0 = (int64_t)t0 * B;
    const int R = (t1 - t0) * B;
    const real *da = dA + r0 * G;
    if (t0 == 0) { /* dW_h += h0^T dA_0 + hs[:t1-1]^T dA[1:t1] */
        GEMM(1, 0, H, G, B, 1, h0, H, da, G, 1, dW_h, G);
        if (t1 > 1)
            GEMM(1, 0, H, G, R - B, 1, hs, H, da + (int64_t)B * G, G, 1, dW_h, G);
    } else {
        GEMM(1, 0, H, G, R, 1, hs + (r0 - B) * H, H, da, G, 1, dW_h, G);
    }
    if (X)
        GEMM(1, 0, I, G, R, 1, X + r0 * I, I, da, G, 1, dW_x, G); /* dW_x += X^T dA */
    if (dX) {
        /* zeroed first: a BLAS call with beta = 0 may still read (NaN) garbage for one row */
        memset(dX + r0 * I, 0, sizeof(real) * (size_t)R * (size_t)I);
        GEMM(0, 1, R, I, G, 1, da, G, W_x, G, 0, dX + r0 * I, I); /* dX = dA W_x^T */
    }
}

/* The rest: db += sum dA, and for ids the one-hot product dW_x += X^T dA, a scatter-add of rows. */
static void FN(sum_grads)(real *dW_x, real *db, const real *dA, const int64_t *ids, int64_t R,
                          int G)
{
    FN(colsum_add)(db, dA, R, G);
    if (ids) {
        /* the one-hot product: row ids[r] of dW_x gets row r of dA, in row order (np.add.at) */
        for (int64_t r = 0; r < R; r++) {
            real *restrict w = dW_x + ids[r] * G;
            const real *restrict d = dA + r * G;
            for (int j = 0; j < G; j++)
                w[j] += d[j];
        }
    }
}

/* The gradients of A = X W_x + b (A, dA (R,G)):  dW_x += X^T dA (a scatter-add of rows for
 * ids),  db += sum dA,  dX = dA W_x^T (skipped when dX is NULL); and of the recurrent product:
 * dW_h += H_prev^T dA with H_prev = h0, hs[0 .. T-2]. */
static void FN(weight_grads)(real *dX, real *dW_x, real *dW_h, real *db, const real *dA,
                             const int64_t *ids, const real *X, const real *hs, const real *W_x,
                             const real *h0, int T, int B, int I, int H, int G)
{
    FN(gemm_grads)(dX, dW_x, dW_h, dA, ids ? NULL : X, hs, W_x, h0, 0, T, B, I, H, G);
    FN(sum_grads)(dW_x, db, dA, ids, (int64_t)T * B, G);
}

/* ---- vanilla RNN ---------------------------------------------------------------------------- */

static void FN(rnn_forward)(real *hs, real *pack, const int64_t *ids, const real *X,
                        const real *W_x, const real *W_h, const real *b, const real *h0, int T,
                        int B, int I, int H)
{
    const int64_t step = (int64_t)B * H;
    const int packed = rf_use_packed(B);
    if (packed)
        FN(pg_pack)(pack, W_h, H, H, 0);
    FN(project)(hs, ids, X, W_x, b, T * B, I, H);
    for (int t = 0; t < T; t++) {
        real *a = hs + t * step;
        const real *h_prev = t ? a - step : h0;
        if (packed) /* a += h_{t-1} W_h */
            FN(pg_gemm)(a, h_prev, pack, B, H, H, 1);
        else
            GEMM(0, 0, B, H, H, 1, h_prev, H, W_h, H, 1, a, H);
        FN(tanh_inplace)(a, step);
    }
}

/* dA_t = (dH_t + carry) (1 - h_t^2);  carry = dA_t W_h^T */
static void FN(rnn_step_back)(real *restrict da, const real *restrict dh,
                              const real *restrict carry, const real *restrict h, int64_t n)
{
    for (int64_t k = 0; k < n; k++)
        da[k] = (dh[k] + carry[k]) * ((real)1 - h[k] * h[k]);
}

static void FN(rnn_backward)(real *dX, real *dW_x, real *dW_h, real *db, real *dh0, real *dA,
                         real *pack, const real *dH, const int64_t *ids, const real *X,
                         const real *hs, const real *W_x, const real *W_h, const real *h0, int T,
                         int B, int I, int H)
{
    const int64_t step = (int64_t)B * H;
    const int packed = rf_use_packed(B);
    if (packed)
        FN(pg_pack)(pack, W_h, H, H, 1);
    memset(dh0, 0, sizeof(real) * (size_t)step); /* the carry into step T-1 */
    for (int t = T - 1; t >= 0; t--) {
        real *da = dA + t * step;
        FN(rnn_step_back)(da, dH + t * step, dh0, hs + t * step, step);
        if (packed) /* carry = dA_t W_h^T */
            FN(pg_gemm)(dh0, da, pack, B, H, H, 0);
        else
            GEMM(0, 1, B, H, H, 1, da, H, W_h, H, 0, dh0, H);
    }
    FN(weight_grads)(dX, dW_x, dW_h, db, dA, ids, X, hs, W_x, h0, T, B, I, H, H);
}


/* ---- LSTM ----------------------------------------------------------------------------------- */

static void FN(lstm_forward)(real *hs, real *cs, real *tcs, real *gates, real *pack,
                         const int64_t *ids, const real *X, const real *W_x, const real *W_h,
                         const real *b, const real *h0, const real *c0, int T, int B, int I,
                         int H)
{
    const int G = 4 * H;
    const int64_t step = (int64_t)B * H, gstep = (int64_t)B * G;
    const int packed = rf_use_packed(B);
    if (packed)
        FN(pg_pack)(pack, W_h, H, G, 0);
    /* the input projection per chunk of steps, just before the loop reads it */
    const int chunk = rf_chunk_steps(gstep * (int64_t)sizeof(real));
    for (int t = 0; t < T; t++) {
        real *a = gates + t * gstep;
        if (t % chunk == 0) {
            const int64_t r0 = (int64_t)t * B;
            const int n = (T - t < chunk ? T - t : chunk) * B;
            FN(project)(a, ids ? ids + r0 : NULL, X ? X + r0 * I : NULL, W_x, b, n, I, G);
        }
        const real *h_prev = t ? hs + (t - 1) * step : h0;
        const real *c_prev = t ? cs + (t - 1) * step : c0;
        if (packed) /* a += h_{t-1} W_h */
            FN(pg_gemm)(a, h_prev, pack, B, G, H, 1);
        else
            GEMM(0, 0, B, G, H, 1, h_prev, H, W_h, G, 1, a, G);
        FN(lstm_cell)(hs + t * step, cs + t * step, tcs + t * step, a, c_prev, B, H);
    }
}

/* One row of the LSTM step backward; carry_h, carry_c (H) in, carry_c out (dc f):
 *   dh = dH_t + carry_h;  dc = carry_c + dh o (1 - tc^2)
 *   da_i = dc g i (1-i);  da_f = dc c_prev f (1-f);  da_g = dc i (1-g^2);  da_o = dh tc o (1-o) */
static inline void FN(lstm_row_back)(real *restrict da_i, real *restrict da_f,
                                     real *restrict da_g, real *restrict da_o,
                                     real *restrict carry_c, const real *restrict dH,
                                     const real *restrict carry_h, const real *restrict a_i,
                                     const real *restrict a_f, const real *restrict a_g,
                                     const real *restrict a_o, const real *restrict tc,
                                     const real *restrict c_prev, int H)
{
    for (int j = 0; j < H; j++) {
        const real i = a_i[j], f = a_f[j], g = a_g[j], o = a_o[j], t = tc[j];
        const real dh = dH[j] + carry_h[j];
        const real dc = carry_c[j] + dh * o * ((real)1 - t * t);
        da_i[j] = dc * g * i * ((real)1 - i);
        da_f[j] = dc * c_prev[j] * f * ((real)1 - f);
        da_g[j] = dc * i * ((real)1 - g * g);
        da_o[j] = dh * t * o * ((real)1 - o);
        carry_c[j] = dc * f;
    }
}

static void FN(lstm_backward)(real *dX, real *dW_x, real *dW_h, real *db, real *dh0, real *dc0,
                          real *dA, real *pack, const real *dH, const int64_t *ids,
                          const real *X, const real *hs, const real *cs, const real *tcs,
                          const real *gates, const real *W_x, const real *W_h, const real *h0,
                          const real *c0, int T, int B, int I, int H)
{
    const int G = 4 * H;
    const int64_t step = (int64_t)B * H, gstep = (int64_t)B * G;
    const int packed = rf_use_packed(B);
    if (packed)
        FN(pg_pack)(pack, W_h, G, H, 1);
    memset(dh0, 0, sizeof(real) * (size_t)step); /* carries into step T-1 */
    memset(dc0, 0, sizeof(real) * (size_t)step);
    /* steps per chunk of weight-gradient GEMMs: dA chunks of about rf_paths.chunk_bytes */
    const int chunk = rf_chunk_steps(gstep * (int64_t)sizeof(real));
    int t_hi = T;
    for (int t = T - 1; t >= 0; t--) {
        real *da = dA + t * gstep;
        const real *a = gates + t * gstep;
        const real *c_prev = t ? cs + (t - 1) * step : c0;
        for (int64_t r = 0; r < B; r++) {
            const int64_t o = r * H;
            FN(lstm_row_back)(da + 4 * o, da + 4 * o + H, da + 4 * o + 2 * H, da + 4 * o + 3 * H,
                              dc0 + o, dH + t * step + o, dh0 + o, a + 4 * o, a + 4 * o + H,
                              a + 4 * o + 2 * H, a + 4 * o + 3 * H, tcs + t * step + o,
                              c_prev + o, H);
        }
        if (packed) /* carry_h = dA_t W_h^T */
            FN(pg_gemm)(dh0, da, pack, B, H, G, 0);
        else
            GEMM(0, 1, B, H, G, 1, da, G, W_h, G, 0, dh0, H);
        /* the weight-gradient GEMMs of the last chunk of steps, while its dA is in cache */
        if (t % chunk == 0) {
            FN(gemm_grads)(dX, dW_x, dW_h, dA, ids ? NULL : X, hs, W_x, h0, t, t_hi, B, I, H, G);
            t_hi = t;
        }
    }
    FN(sum_grads)(dW_x, db, dA, ids, (int64_t)T * B, G);
}
