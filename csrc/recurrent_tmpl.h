/* The RNN, LSTM and GRU layers over a sequence, forward and backward (a template: see
 * real_begin.h): one driver for the three cells, which differ only in the gate count, the fused
 * elementwise passes of cell_tmpl.h and where the per-step product goes.  Each driver is two
 * phases over the library's threads (threads.h) with one barrier between them.
 *
 * Forward.  Phase 1: the input projection A = X W_x + b (one GEMM or a row gather per chunk of
 * steps), split by column blocks.  Phase 2, split by blocks of batch rows, each block through
 * every step:  the per-step product h_{t-1} W_h, added to A_t (RNN, LSTM) or, for the GRU,
 * assigned to its own buffer R_t (its n gate needs r * (h W_hn + b_hn) apart from x W_in +
 * b_in);  the cell pass (RNN: h_t = tanh(A_t) in place in hs; LSTM: the gates in place in
 * gates, c_t, tanh c_t, h_t; GRU: the gates in place in gates, b_hn added to R_t's n block, h_t;
 * with dropout the same pass also writes the output to the layer above, out_t = h_t * mask_t).
 * Backward.  Phase 1, by blocks of rows, each block through every step from the last:  the
 * cell's backward pass into dA_t (and, GRU, dR_t, the gradient of R_t, with the carry's direct
 * part dh z left in the carry buffer; with dropout it reads dH_t * mask_t, the gradient reaching
 * h_t through out_t);  the carry dh = dR_t W_h^T (dR = dA but for the GRU; one per-step product,
 * assigned, or added for the GRU; dh0 is the carry buffer, dc0 the LSTM's cell carry, both
 * starting from the final state's gradient dh_T, dc_T or zero).  Phase 2, by column blocks: the
 * weight-gradient GEMMs chunk by chunk from the last, db += sum dA (GRU: db_hn += sum dR_n) and,
 * for ids, the scatter-add into dW_x.
 * Chunks hold about rf_paths.chunk_bytes of A but at least rf_paths.chunk_rows rows
 * (rf_chunk_steps): they fix the GEMMs' shapes, hence the order of every sum.  The per-step
 * products go through pgemm_tmpl.h's kernel over W_h packed once per call into ws->pack, or
 * through BLAS, as rf_use_packed says (paths.h). */

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

/* The GEMM part of the weight gradients for columns [j0, j0 + n) of one chunk, steps [t0, t1)
 * (rows t0*B .. t1*B of dR, the gradient of the per-step product, dA but for the GRU):
 *   dW_h[:, j0:j0+n] += H_prev^T dR[:, j0:j0+n],  H_prev = h0, hs[0 .. T-2] */
static void FN(grad_w_h)(real *dW_h, const real *dR, const struct DT(rf_layer) *L, int G,
                         int t0, int t1, int j0, int n)
{
    const int B = L->B, H = L->H;
    const int64_t r0 = (int64_t)t0 * B;
    const int R = (t1 - t0) * B;
    const real *dr = dR + r0 * G + j0;
    if (t0 == 0) { /* h0^T dR_0 + hs[:t1-1]^T dR[1:t1] */
        GEMM(1, 0, H, n, B, 1, L->h0, H, dr, G, 1, dW_h + j0, G);
        if (t1 > 1)
            GEMM(1, 0, H, n, R - B, 1, L->hs, H, dr + (int64_t)B * G, G, 1, dW_h + j0, G);
    } else {
        GEMM(1, 0, H, n, R, 1, L->hs + (r0 - B) * H, H, dr, G, 1, dW_h + j0, G);
    }
}

/* Where rows [r0, r0 + rows) of step t start in the layer's arrays: h (B, H) of the initial
 * state (init), step t and step t - 1 of the (T, B, H) arrays (at, at_prev), step t of the
 * (T, B, G) arrays (gt). */
struct FN(row_offsets) {
    int64_t init, at, at_prev, gt;
};

static RF_ALWAYS_INLINE struct FN(row_offsets)
    FN(row_offsets_at)(const struct DT(rf_layer) *L, int G, int t, int r0)
{
    const int64_t step = (int64_t)L->B * L->H, init = (int64_t)r0 * L->H;
    const struct FN(row_offsets) off = {init, t * step + init, (t - 1) * step + init,
                                        ((int64_t)t * L->B + r0) * G};
    return off;
}

/* The per-step work of one block of rows [r0, r0 + rows) at step t, forward:  the product
 * a_t += h_{t-1} W_h (or R_t = h_{t-1} W_h for the GRU), then the cell pass. */
static RF_ALWAYS_INLINE void FN(forward_rows)(const struct DT(rf_layer) *L,
                                              const struct DT(rf_workspace) *ws, const int cell,
                                              int packed, int t, int r0, int rows)
{
    const int H = L->H;
    const int G = RF_CELL_GATES(cell) * H;
    const int apart = cell == RF_CELL_GRU;
    const struct FN(row_offsets) off = FN(row_offsets_at)(L, G, t, r0);
    const int64_t at = off.at;
    real *a = (cell == RF_CELL_RNN ? L->hs : L->gates) + off.gt;
    const real *h_prev = t ? L->hs + off.at_prev : L->h0 + off.init;
    real *rec = apart ? L->R + off.gt : a;
    real *out = L->mask ? L->out + at : NULL;
    const real *mask = L->mask ? L->mask + at : NULL;
    if (packed) /* a += h_{t-1} W_h, or R_t = h_{t-1} W_h */
        FN(pg_gemm)(rec, h_prev, ws->pack, rows, G, H, !apart);
    else
        GEMM(0, 0, rows, G, H, 1, h_prev, H, L->W_h, G, apart ? 0 : 1, rec, G);
    if (cell == RF_CELL_LSTM) {
        const real *c_prev = t ? L->cs + off.at_prev : L->c0 + off.init;
        if (mask)
            FN(lstm_cell_dropout)(L->hs + at, L->cs + at, L->tcs + at, a, out, mask, c_prev, rows,
                                  H);
        else
            FN(lstm_cell)(L->hs + at, L->cs + at, L->tcs + at, a, c_prev, rows, H);
    } else if (cell == RF_CELL_GRU) {
        if (mask)
            FN(gru_cell_dropout)(L->hs + at, a, rec, L->b_hn, h_prev, out, mask, rows, H);
        else
            FN(gru_cell)(L->hs + at, a, rec, L->b_hn, h_prev, rows, H);
    } else if (mask) {
        FN(tanh_inplace_dropout)(a, out, mask, (int64_t)rows * H);
    } else {
        FN(tanh_inplace)(a, (int64_t)rows * H);
    }
}

/* The per-step work of rows [r0, r0 + rows) at step t, backward:  the cell's backward pass into
 * dA_t (and dR_t for the GRU), then the carry dh = dR_t W_h^T (GRU: dh += dR_t W_h^T). */
static RF_ALWAYS_INLINE void FN(backward_rows)(const struct DT(rf_layer_grads) *g,
                                               const struct DT(rf_workspace) *ws,
                                               const struct DT(rf_layer) *L, const int cell,
                                               int packed, int t, int r0, int rows)
{
    const int H = L->H;
    const int G = RF_CELL_GATES(cell) * H;
    const int apart = cell == RF_CELL_GRU;
    const struct FN(row_offsets) off = FN(row_offsets_at)(L, G, t, r0);
    const int64_t at = off.at;
    real *da = ws->dA + off.gt;
    real *dr = apart ? ws->dR + off.gt : da;
    real *carry = g->dh0 + off.init;
    const real *dH = g->dhs + at; /* this block's rows of dhs */
    const real *mask = L->mask ? L->mask + at : NULL;
    if (cell == RF_CELL_LSTM) {
        const real *c_prev = t ? L->cs + off.at_prev : L->c0 + off.init;
        FN(lstm_cell_back)(da, g->dc0 + off.init, dH, mask, carry, L->gates + off.gt, L->tcs + at,
                           c_prev, rows, H);
    } else if (cell == RF_CELL_GRU) {
        const real *h_prev = t ? L->hs + off.at_prev : L->h0 + off.init;
        FN(gru_cell_back)(da, dr, carry, dH, mask, L->gates + off.gt, L->R + off.gt, h_prev, rows,
                          H);
    } else {
        FN(rnn_cell_back)(da, dH, mask, carry, L->hs + at, (int64_t)rows * H);
    }
    if (packed) /* carry dh = dR_t W_h^T, or for the GRU dh += dR_t W_h^T */
        FN(pg_gemm)(carry, dr, ws->pack, rows, H, G, apart);
    else
        GEMM(0, 1, rows, H, G, 1, dr, G, L->W_h, G, apart ? 1 : 0, carry, H);
}

/* Rows per block of the per-step work (rows run every step of the sequence on one thread: row b
 * of h_t needs only row b of h_{t-1}, so no barrier per step).  The whole batch on one thread,
 * or through BLAS per step (B = 1 by default: the same rows must make the same calls at any
 * thread count, since BLAS's one-row product is gemv); else whole blocks of pg_gemm's height
 * (pg_block_rows: pgemm_tmpl.h), about three blocks a thread for a dynamic
 * schedule that lets a descheduled thread delay no one, but one a thread where the packed W_h
 * (K, N) outgrows half of L2 and every block streams it again.  The packed kernel's rows give
 * the same bits in any blocks. */
static int FN(rows_per_block)(int B, int threads, int packed, int K, int N)
{
    if (threads < 2 || !packed)
        return B;
    const int height = FN(pg_block_rows)();
    const int64_t pack_bytes = (int64_t)K * N * (int64_t)sizeof(real);
    const int blocks = threads * (pack_bytes <= (1 << 20) ? 3 : 1);
    const int rows = (B + blocks - 1) / blocks;
    return (rows + height - 1) / height * height;
}

/* The threads of one call: one below rf_threads_min_flops (threads.h). */
static int FN(team_size)(const struct DT(rf_layer) *L, int G)
{
    const double flops = 2.0 * L->T * L->B * G * (L->H + (L->X ? L->In : 0));
    return flops < rf_threads_min_flops() ? 1 : rf_threads_team();
}

/* The columns per task over n columns (recurrent.c): fixed by the shapes alone, so that every
 * element comes from the same BLAS call, one order of its sum, at any thread count.  Few wide
 * tasks: each re-packs H_prev, and at large 128-column tasks of dW_h were slower than one GEMM a
 * chunk (docs/internals.md). */
static int FN(task_cols)(int n)
{
    const int per_task = (n + TASK_SPLIT - 1) / TASK_SPLIT;
    const int cols = (per_task + TASK_COLS_STEP - 1) / TASK_COLS_STEP * TASK_COLS_STEP;
    return cols > TASK_COLS_MIN ? cols : TASK_COLS_MIN;
}

/* Tasks of task_cols columns over n columns. */
static int FN(col_tasks)(int n)
{
    const int cols = FN(task_cols)(n);
    return (n + cols - 1) / cols;
}

/* carry (n) = given (n), the final state's gradient, or zero when given is NULL. */
static void FN(carry_init)(real *carry, const real *given, int64_t n)
{
    if (given)
        memcpy(carry, given, sizeof(real) * (size_t)n);
    else
        memset(carry, 0, sizeof(real) * (size_t)n);
}

/* What every thread of the forward's team runs (orphaned worksharing, inside fork_forward's
 * region).  Phase 1, columns split: the input projection, chunk by chunk.  Phase 2, after one
 * barrier, rows split, each block of `rows` rows through every step of the sequence. */
static RF_NOINLINE void FN(forward_team)(const struct DT(rf_layer) *L,
                                         const struct DT(rf_workspace) *ws, int cell, int packed,
                                         int chunk, int rows, struct rf_team_clock *clock)
{
    RF_TEAM_BEGIN();
    const int T = L->T, B = L->B, I = L->In, H = L->H;
    const int G = RF_CELL_GATES(cell) * H;
    real *A = cell == RF_CELL_RNN ? L->hs : L->gates; /* (T, B, G) pre-activations */
    const int chunks = T / chunk + (T % chunk != 0);
    const int cols = FN(task_cols)(G), col_tasks = FN(col_tasks)(G);
    const int row_blocks = (B + rows - 1) / rows;
    RF_OMP(for schedule(dynamic, 1) nowait)
    for (int task = 0; task < chunks * col_tasks; task++) {
        const int t0 = task / col_tasks * chunk, j0 = task % col_tasks * cols;
        const int64_t r0 = (int64_t)t0 * B;
        const int steps = T - t0 < chunk ? T - t0 : chunk;
        FN(project_cols)(A + r0 * G, L->ids ? L->ids + r0 : NULL, L->X ? L->X + r0 * I : NULL,
                         L->W_x, L->b, steps * B, I, G, j0, G - j0 < cols ? G - j0 : cols);
    }
    RF_BARRIER_TIMED(clock);
    RF_OMP(for schedule(dynamic, 1) nowait)
    for (int block = 0; block < row_blocks; block++) {
        const int r0 = block * rows, n = B - r0 < rows ? B - r0 : rows;
        for (int t = 0; t < T; t++)
            FN(forward_rows)(L, ws, cell, packed, t, r0, n);
    }
    RF_TEAM_DONE(clock);
    RF_TEAM_END();
}

static RF_TEAM_FORK void FN(fork_forward)(const struct DT(rf_layer) *L,
                                          const struct DT(rf_workspace) *ws, int cell,
                                          int packed, int chunk, int rows, int threads)
{
    struct rf_team_clock clock = rf_team_clock_start();
    RF_OMP(parallel num_threads(threads) if (threads > 1))
    FN(forward_team)(L, ws, cell, packed, chunk, rows, &clock);
    RF_TEAM_JOINED();
    if (threads > 1)
        rf_threads_joined(&clock);
}

/* The forward driver: W_h packed, then the team, with BLAS held at one thread. */
static void FN(recurrent_forward)(const struct DT(rf_layer) *L, const struct DT(rf_workspace) *ws,
                                  int cell)
{
    const int B = L->B, H = L->H;
    const int G = RF_CELL_GATES(cell) * H;
    const int packed = rf_use_packed(B);
    if (packed)
        FN(pg_pack)(ws->pack, L->W_h, H, G, 0);
    const int chunk = rf_chunk_steps(B, (int64_t)B * G * (int64_t)sizeof(real));
    const int threads = FN(team_size)(L, G);
    rf_blas_serial_begin();
    FN(fork_forward)(L, ws, cell, packed, chunk, FN(rows_per_block)(B, threads, packed, H, G),
                     threads);
    rf_blas_serial_end();
}

/* What every thread of the backward's team runs (inside fork_backward's region).  Phase 1, rows
 * split: every step from the last, into dA (dR) and the carries.  Phase 2, after one barrier,
 * columns split: one task per column block of dW_h, dW_x (float input) and dX, each summing the
 * chunks from the last, then of db (with the scatter-add of ids into dW_x) and db_hn. */
static RF_NOINLINE void FN(backward_team)(const struct DT(rf_layer_grads) *g,
                                          const struct DT(rf_workspace) *ws,
                                          const struct DT(rf_layer) *L, int cell, int packed,
                                          int chunk, int rows, struct rf_team_clock *clock)
{
    RF_TEAM_BEGIN();
    const int T = L->T, B = L->B, I = L->In, H = L->H;
    const int G = RF_CELL_GATES(cell) * H;
    const int64_t R = (int64_t)T * B;
    const int apart = cell == RF_CELL_GRU; /* dR is its own buffer */
    const real *dR = apart ? ws->dR : ws->dA;
    const int chunks = T / chunk + (T % chunk != 0);
    const int g_cols = FN(task_cols)(G), i_cols = FN(task_cols)(I), h_cols = FN(task_cols)(H);
    const int g_tasks = FN(col_tasks)(G);
    const int w_h_tasks = g_tasks, w_x_tasks = L->X ? g_tasks : 0;
    const int x_tasks = g->dX ? FN(col_tasks)(I) : 0, b_tasks = g_tasks;
    const int hn_tasks = apart ? FN(col_tasks)(H) : 0;
    const int tasks = w_h_tasks + w_x_tasks + x_tasks + b_tasks + hn_tasks;
    const int row_blocks = (B + rows - 1) / rows;
    RF_OMP(for schedule(dynamic, 1) nowait)
    for (int block = 0; block < row_blocks; block++) {
        const int r0 = block * rows, n = B - r0 < rows ? B - r0 : rows;
        for (int t = T - 1; t >= 0; t--)
            FN(backward_rows)(g, ws, L, cell, packed, t, r0, n);
    }
    RF_BARRIER_TIMED(clock);
    RF_OMP(for schedule(dynamic, 1) nowait)
    for (int task = 0; task < tasks; task++) {
        int k = task;
        if (k < w_h_tasks) { /* dW_h += H_prev^T dR, chunk by chunk from the last */
            const int j0 = k * g_cols, n = G - j0 < g_cols ? G - j0 : g_cols;
            for (int c = chunks - 1; c >= 0; c--)
                FN(grad_w_h)(g->dW_h, dR, L, G, c * chunk,
                             T < (c + 1) * chunk ? T : (c + 1) * chunk, j0, n);
            continue;
        }
        k -= w_h_tasks;
        if (k < w_x_tasks) { /* dW_x += X^T dA, chunk by chunk from the last */
            const int j0 = k * g_cols, n = G - j0 < g_cols ? G - j0 : g_cols;
            for (int c = chunks - 1; c >= 0; c--) {
                const int64_t r0 = (int64_t)c * chunk * B;
                const int steps = T - c * chunk < chunk ? T - c * chunk : chunk;
                GEMM(1, 0, I, n, steps * B, 1, L->X + r0 * I, I, ws->dA + r0 * G + j0, G, 1,
                     g->dW_x + j0, G);
            }
            continue;
        }
        k -= w_x_tasks;
        if (k < x_tasks) { /* dX[:, j0:j0+n] = dA W_x[j0:j0+n]^T, chunk by chunk */
            const int j0 = k * i_cols, n = I - j0 < i_cols ? I - j0 : i_cols;
            for (int c = chunks - 1; c >= 0; c--) {
                const int64_t r0 = (int64_t)c * chunk * B;
                const int steps = T - c * chunk < chunk ? T - c * chunk : chunk;
                GEMM(0, 1, steps * B, n, G, 1, ws->dA + r0 * G, G, L->W_x + (int64_t)j0 * G, G,
                     0, g->dX + r0 * I + j0, I);
            }
            continue;
        }
        k -= x_tasks;
        if (k < b_tasks) { /* db += sum dA; ids: dW_x[ids] += dA (np.add.at, in row order) */
            const int j0 = k * g_cols, n = G - j0 < g_cols ? G - j0 : g_cols;
            FN(colsum_add)(g->db + j0, ws->dA + j0, R, n, G);
            if (L->ids)
                for (int64_t r = 0; r < R; r++) {
                    real *restrict w = g->dW_x + L->ids[r] * G + j0;
                    const real *restrict d = ws->dA + r * G + j0;
                    for (int j = 0; j < n; j++)
                        w[j] += d[j];
                }
            continue;
        }
        k -= b_tasks; /* db_hn += sum dR_n */
        const int j0 = k * h_cols, n = H - j0 < h_cols ? H - j0 : h_cols;
        FN(colsum_add)(g->db_hn + j0, dR + 2 * H + j0, R, n, G);
    }
    RF_TEAM_DONE(clock);
    RF_TEAM_END();
}

static RF_TEAM_FORK void FN(fork_backward)(const struct DT(rf_layer_grads) *g,
                                           const struct DT(rf_workspace) *ws,
                                           const struct DT(rf_layer) *L, int cell, int packed,
                                           int chunk, int rows, int threads)
{
    struct rf_team_clock clock = rf_team_clock_start();
    RF_OMP(parallel num_threads(threads) if (threads > 1))
    FN(backward_team)(g, ws, L, cell, packed, chunk, rows, &clock);
    RF_TEAM_JOINED();
    if (threads > 1)
        rf_threads_joined(&clock);
}

/* The backward driver: W_h^T packed and the carries set, then the team, BLAS held at one
 * thread. */
static void FN(recurrent_backward)(const struct DT(rf_layer_grads) *g,
                                   const struct DT(rf_workspace) *ws,
                                   const struct DT(rf_layer) *L, int cell)
{
    const int B = L->B, H = L->H;
    const int G = RF_CELL_GATES(cell) * H;
    const int64_t step = (int64_t)B * H;
    const int packed = rf_use_packed(B);
    if (packed)
        FN(pg_pack)(ws->pack, L->W_h, G, H, 1);
    FN(carry_init)(g->dh0, g->dh_T, step); /* the carries into step T-1 */
    if (cell == RF_CELL_LSTM)
        FN(carry_init)(g->dc0, g->dc_T, step);
    const int chunk = rf_chunk_steps(B, (int64_t)B * G * (int64_t)sizeof(real));
    const int threads = FN(team_size)(L, G);
    rf_blas_serial_begin();
    FN(fork_backward)(g, ws, L, cell, packed, chunk, FN(rows_per_block)(B, threads, packed, G, H),
                      threads);
    rf_blas_serial_end();
}

static void FN(rnn_forward)(const struct DT(rf_layer) *L, const struct DT(rf_workspace) *ws)
{
    FN(recurrent_forward)(L, ws, RF_CELL_RNN);
}

static void FN(rnn_backward)(const struct DT(rf_layer_grads) *g,
                             const struct DT(rf_workspace) *ws, const struct DT(rf_layer) *L)
{
    FN(recurrent_backward)(g, ws, L, RF_CELL_RNN);
}

static void FN(lstm_forward)(const struct DT(rf_layer) *L, const struct DT(rf_workspace) *ws)
{
    FN(recurrent_forward)(L, ws, RF_CELL_LSTM);
}

static void FN(lstm_backward)(const struct DT(rf_layer_grads) *g,
                              const struct DT(rf_workspace) *ws, const struct DT(rf_layer) *L)
{
    FN(recurrent_backward)(g, ws, L, RF_CELL_LSTM);
}

static void FN(gru_forward)(const struct DT(rf_layer) *L, const struct DT(rf_workspace) *ws)
{
    FN(recurrent_forward)(L, ws, RF_CELL_GRU);
}

static void FN(gru_backward)(const struct DT(rf_layer_grads) *g,
                             const struct DT(rf_workspace) *ws, const struct DT(rf_layer) *L)
{
    FN(recurrent_backward)(g, ws, L, RF_CELL_GRU);
}
