/* The RNN, LSTM and GRU layers over a sequence, forward and backward (a template: see
 * real_begin.h): one driver for the three cells, which differ only in the gate count, the fused
 * elementwise passes of cell_tmpl.h and where the per-step product goes.
 *
 * Forward, per step t:  if t starts a chunk, the input projection A = X W_x + b of the chunk's
 * steps (one GEMM or a row gather), just before the loop reads it;  the per-step product
 * h_{t-1} W_h, added to A_t (RNN, LSTM) or, for the GRU, assigned to its own buffer R_t (its n
 * gate needs r * (h W_hn + b_hn) apart from x W_in + b_in);  the cell pass (RNN:
 * h_t = tanh(A_t) in place in hs; LSTM: the gates in place in gates, c_t, tanh c_t, h_t; GRU:
 * the gates in place in gates, b_hn added to R_t's n block, h_t; with dropout the same pass
 * also writes the output to the layer above, out_t = h_t * mask_t).
 * Backward, per step t from the last:  the cell's backward pass into dA_t (and, GRU, dR_t, the
 * gradient of R_t, with the carry's direct part dh z left in the carry buffer; with dropout it
 * reads dH_t * mask_t, the gradient reaching h_t through out_t);  the carry dh = dR_t W_h^T
 * (dR = dA but for the GRU; one per-step product, assigned, or added for the GRU; dh0 is the
 * carry buffer, dc0 the LSTM's cell carry, both starting from the final state's gradient dh_T,
 * dc_T or zero);  if t starts a chunk, the weight-gradient GEMMs of the chunk's steps while its
 * dA is in cache;  after the loop db += sum dA (GRU: db_hn += sum dR_n) and, for ids, the
 * scatter-add into dW_x.
 * Chunks hold about rf_paths.chunk_bytes of A but at least rf_paths.chunk_rows rows
 * (rf_chunk_steps); the per-step products go through pgemm_tmpl.h's kernel over W_h packed once
 * per call into ws->pack, or through BLAS, as rf_use_packed says (paths.h). */

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

/* db (G) += column sums of the first G columns of dA (R rows, row stride ld), summed in double
 * per column block so float32 gradients lose nothing over thousands of rows. */
static void FN(colsum_add)(real *db, const real *dA, int64_t R, int G, int ld)
{
    enum { BLOCK = 128 };
    double acc[BLOCK];
    for (int j0 = 0; j0 < G; j0 += BLOCK) {
        const int n = G - j0 < BLOCK ? G - j0 : BLOCK;
        for (int j = 0; j < n; j++)
            acc[j] = 0;
        for (int64_t r = 0; r < R; r++) {
            const real *restrict row = dA + r * ld + j0;
            for (int j = 0; j < n; j++)
                acc[j] += row[j];
        }
        for (int j = 0; j < n; j++)
            db[j0 + j] += (real)acc[j];
    }
}

/* The GEMM parts of the weight gradients for steps [t0, t1) only (rows t0*B .. t1*B of dA and
 * dR, the gradients of the input side and of the per-step product, the same array but for the
 * GRU):  dW_h += H_prev^T dR with H_prev = h0, hs[0 .. T-2];  dW_x += X^T dA (float input);
 * dX = dA W_x^T (dX non-NULL). */
static void FN(gemm_grads)(const struct DT(rf_layer_grads) *g, const real *dA, const real *dR,
                           const struct DT(rf_layer) *L, int G, int t0, int t1)
{
    const int B = L->B, I = L->In, H = L->H;
    const int64_t r0 = (int64_t)t0 * B;
    const int R = (t1 - t0) * B;
    const real *da = dA + r0 * G, *dr = dR + r0 * G;
    if (t0 == 0) { /* dW_h += h0^T dR_0 + hs[:t1-1]^T dR[1:t1] */
        GEMM(1, 0, H, G, B, 1, L->h0, H, dr, G, 1, g->dW_h, G);
        if (t1 > 1)
            GEMM(1, 0, H, G, R - B, 1, L->hs, H, dr + (int64_t)B * G, G, 1, g->dW_h, G);
    } else {
        GEMM(1, 0, H, G, R, 1, L->hs + (r0 - B) * H, H, dr, G, 1, g->dW_h, G);
    }
    if (L->X) /* dW_x += X^T dA */
        GEMM(1, 0, I, G, R, 1, L->X + r0 * I, I, da, G, 1, g->dW_x, G);
    if (g->dX) /* dX = dA W_x^T */
        GEMM(0, 1, R, I, G, 1, da, G, L->W_x, G, 0, g->dX + r0 * I, I);
}

/* The rest of the weight gradients over all R = T B rows: db += sum dA, and for ids the
 * one-hot product dW_x += X^T dA, a scatter-add of rows in row order (np.add.at). */
static void FN(sum_grads)(const struct DT(rf_layer_grads) *g, const real *dA,
                          const struct DT(rf_layer) *L, int G)
{
    const int64_t R = (int64_t)L->T * L->B;
    FN(colsum_add)(g->db, dA, R, G, G);
    if (L->ids) {
        for (int64_t r = 0; r < R; r++) {
            real *restrict w = g->dW_x + L->ids[r] * G;
            const real *restrict d = dA + r * G;
            for (int j = 0; j < G; j++)
                w[j] += d[j];
        }
    }
}

/* carry (n) = given (n), the final state's gradient, or zero when given is NULL. */
static void FN(carry_init)(real *carry, const real *given, int64_t n)
{
    if (given)
        memcpy(carry, given, sizeof(real) * (size_t)n);
    else
        memset(carry, 0, sizeof(real) * (size_t)n);
}

/* The forward driver; `cell` is a constant at each call (inlined: one loop per cell). */
static RF_ALWAYS_INLINE void FN(recurrent_forward)(
    const struct DT(rf_layer) *L, const struct DT(rf_workspace) *ws, const int cell)
{
    const int T = L->T, B = L->B, I = L->In, H = L->H;
    const int G = CELL_GATES(cell) * H;
    const int64_t step = (int64_t)B * H, gstep = (int64_t)B * G;
    real *A = cell == CELL_RNN ? L->hs : L->gates; /* (T, B, G) pre-activations */
    const int apart = cell == CELL_GRU; /* the per-step product into R, not added to A */
    const int packed = rf_use_packed(B);
    if (packed)
        FN(pg_pack)(ws->pack, L->W_h, H, G, 0);
    const int chunk = rf_chunk_steps(B, gstep * (int64_t)sizeof(real));
    for (int t = 0; t < T; t++) {
        real *a = A + t * gstep;
        if (t % chunk == 0) {
            const int64_t r0 = (int64_t)t * B;
            const int rows = (T - t < chunk ? T - t : chunk) * B;
            FN(project)(a, L->ids ? L->ids + r0 : NULL, L->X ? L->X + r0 * I : NULL, L->W_x, L->b,
                        rows, I, G);
        }
        const real *h_prev = t ? L->hs + (t - 1) * step : L->h0;
        real *rec = apart ? L->R + t * gstep : a;
        if (packed) /* a += h_{t-1} W_h, or R_t = h_{t-1} W_h */
            FN(pg_gemm)(rec, h_prev, ws->pack, B, G, H, !apart);
        else
            GEMM(0, 0, B, G, H, 1, h_prev, H, L->W_h, G, apart ? 0 : 1, rec, G);
        if (cell == CELL_LSTM) {
            const real *c_prev = t ? L->cs + (t - 1) * step : L->c0;
            if (L->mask)
                FN(lstm_cell_dropout)(L->hs + t * step, L->cs + t * step, L->tcs + t * step, a,
                                      L->out + t * step, L->mask + t * step, c_prev, B, H);
            else
                FN(lstm_cell)(L->hs + t * step, L->cs + t * step, L->tcs + t * step, a, c_prev, B,
                              H);
        } else if (cell == CELL_GRU) {
            if (L->mask)
                FN(gru_cell_dropout)(L->hs + t * step, a, rec, L->b_hn, h_prev, L->out + t * step,
                                     L->mask + t * step, B, H);
            else
                FN(gru_cell)(L->hs + t * step, a, rec, L->b_hn, h_prev, B, H);
        } else if (L->mask) {
            FN(tanh_inplace_dropout)(a, L->out + t * step, L->mask + t * step, step);
        } else {
            FN(tanh_inplace)(a, step);
        }
    }
}

/* The backward driver; `cell` as in recurrent_forward. */
static RF_ALWAYS_INLINE void FN(recurrent_backward)(
    const struct DT(rf_layer_grads) *g, const struct DT(rf_workspace) *ws,
    const struct DT(rf_layer) *L, const int cell)
{
    const int T = L->T, B = L->B, H = L->H;
    const int G = CELL_GATES(cell) * H;
    const int64_t step = (int64_t)B * H, gstep = (int64_t)B * G;
    const int apart = cell == CELL_GRU; /* dR is its own buffer, and the carry adds to dh z */
    real *dR = apart ? ws->dR : ws->dA;
    const int packed = rf_use_packed(B);
    if (packed)
        FN(pg_pack)(ws->pack, L->W_h, G, H, 1);
    FN(carry_init)(g->dh0, g->dh_T, step); /* the carries into step T-1 */
    if (cell == CELL_LSTM)
        FN(carry_init)(g->dc0, g->dc_T, step);
    const int chunk = rf_chunk_steps(B, gstep * (int64_t)sizeof(real));
    int t_hi = T;
    for (int t = T - 1; t >= 0; t--) {
        real *da = ws->dA + t * gstep, *dr = dR + t * gstep;
        const real *dH = g->dH + t * step;
        const real *mask = L->mask ? L->mask + t * step : NULL;
        if (cell == CELL_LSTM) {
            const real *c_prev = t ? L->cs + (t - 1) * step : L->c0;
            FN(lstm_cell_back)(da, g->dc0, dH, mask, g->dh0, L->gates + t * gstep,
                               L->tcs + t * step, c_prev, B, H);
        } else if (cell == CELL_GRU) {
            const real *h_prev = t ? L->hs + (t - 1) * step : L->h0;
            FN(gru_cell_back)(da, dr, g->dh0, dH, mask, L->gates + t * gstep, L->R + t * gstep,
                              h_prev, B, H);
        } else {
            FN(rnn_cell_back)(da, dH, mask, g->dh0, L->hs + t * step, step);
        }
        if (packed) /* carry dh = dR_t W_h^T, or for the GRU dh += dR_t W_h^T */
            FN(pg_gemm)(g->dh0, dr, ws->pack, B, H, G, apart);
        else
            GEMM(0, 1, B, H, G, 1, dr, G, L->W_h, G, apart ? 1 : 0, g->dh0, H);
        if (t % chunk == 0) {
            FN(gemm_grads)(g, ws->dA, dR, L, G, t, t_hi);
            t_hi = t;
        }
    }
    FN(sum_grads)(g, ws->dA, L, G);
    if (apart) /* db_hn += sum dR_n */
        FN(colsum_add)(g->db_hn, dR + 2 * H, (int64_t)T * B, H, G);
}

static void FN(rnn_forward)(const struct DT(rf_layer) *L, const struct DT(rf_workspace) *ws)
{
    FN(recurrent_forward)(L, ws, CELL_RNN);
}

static void FN(rnn_backward)(const struct DT(rf_layer_grads) *g,
                             const struct DT(rf_workspace) *ws, const struct DT(rf_layer) *L)
{
    FN(recurrent_backward)(g, ws, L, CELL_RNN);
}

static void FN(lstm_forward)(const struct DT(rf_layer) *L, const struct DT(rf_workspace) *ws)
{
    FN(recurrent_forward)(L, ws, CELL_LSTM);
}

static void FN(lstm_backward)(const struct DT(rf_layer_grads) *g,
                              const struct DT(rf_workspace) *ws, const struct DT(rf_layer) *L)
{
    FN(recurrent_backward)(g, ws, L, CELL_LSTM);
}

static void FN(gru_forward)(const struct DT(rf_layer) *L, const struct DT(rf_workspace) *ws)
{
    FN(recurrent_forward)(L, ws, CELL_GRU);
}

static void FN(gru_backward)(const struct DT(rf_layer_grads) *g,
                             const struct DT(rf_workspace) *ws, const struct DT(rf_layer) *L)
{
    FN(recurrent_backward)(g, ws, L, CELL_GRU);
}
