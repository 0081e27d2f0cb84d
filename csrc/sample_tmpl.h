/* The sampling loop (a template: see real_begin.h, included after pgemm_tmpl.h):
 * reference.sample and reference.draw in C.  Per generated character: per layer the input
 * projection (row gather for layer 0) plus the recurrent product and the cell; the logits; then
 * the draw for each stream.
 *
 * The streams are independent through the whole loop (each feeds back its own draws), so they
 * run in blocks, one OpenMP task each, with no barrier per step.  Every stream gets the same bits
 * at any thread count: the uniforms come from the caller, and a stream's products do not depend
 * on the block it is in.  The packed kernel (pgemm_tmpl.h) computes every row of a product by
 * the same sequence of fmas whatever the rows beside it, so with the pack (for several streams
 * only where the paths force it: see sample_packs) the streams split into one block per thread; BLAS's sums may depend on the rows of a call (gemv for one row, other
 * kernels for other heights), so without the pack the blocks are SAMPLE_BLOCK streams whatever
 * the thread count.  One stream on several threads splits each step's products by columns
 * instead (sample_columns_team), where they are large enough to pay for the barriers. */

#ifdef _OPENMP
#include <omp.h>
#endif

#define SAMPLE_BLOCK 8
/* One stream splits its products over the team from 50k flops a barrier, the team floor
 * (4 MFLOP) / 80: a barrier costs about 0.35 us, and below about 41k flops a barrier the split
 * measured no faster than one thread (docs/internals.md). */
#define SAMPLE_SPLIT_SHARE 80.0
/* Two clock reads a layer and two a step on a timed step, one step in four (under 1% of
 * charrnn-default's 4.3 us a character); a verdict every four timed steps (16 characters). */
#define SAMPLE_TIMED_EVERY 4
#define SAMPLE_VERDICT 4

/* One id from logits z (V) with uniform u (reference.draw):
 *   w_v = exp((z_v - max z) / temperature) in double; with top_k, w_v = 0 where z_v is below the
 *   k-th largest z;  with top_p < 1, w_v = 0 outside the nucleus of mass top_p sum(w)
 *   (rf_top_p);  the first v with  w_0 + ... + w_v > u sum(w)  (sum(w) and the cdf sequential
 *   in id order, like np.cumsum), or V-1 if none;  argmax: the first largest z.  w, sel (V)
 *   scratch. */
static RF_NOINLINE int64_t FN(draw_row)(const real *z, double u, double temperature, int top_k,
                                        double top_p, int argmax, int V, double *w, double *sel)
{
    if (argmax) {
        int best = 0;
        for (int v = 1; v < V; v++)
            if (z[v] > z[best])
                best = v;
        return best;
    }
    double m = z[0];
    for (int v = 1; v < V; v++)
        m = (double)z[v] > m ? (double)z[v] : m;
    for (int v = 0; v < V; v++)
        w[v] = exp(((double)z[v] - m) / temperature);
    if (top_k > 0 && top_k < V) {
        for (int v = 0; v < V; v++)
            sel[v] = z[v];
        const double kth = rf_kth_largest(sel, V, top_k - 1);
        for (int v = 0; v < V; v++)
            if ((double)z[v] < kth)
                w[v] = 0;
    }
    double total = 0;
    for (int v = 0; v < V; v++)
        total += w[v];
    if (top_p < 1) {
        rf_top_p(w, V, top_p * total, sel);
        total = 0;
        for (int v = 0; v < V; v++)
            total += w[v];
    }
    const double target = u * total;
    double cdf = 0;
    for (int v = 0; v < V; v++) {
        cdf += w[v];
        if (cdf > target)
            return v;
    }
    return V - 1;
}

/* Gate columns G of the sampler's cell. */
static int FN(sample_gates)(const struct DT(rf_sampler) *m)
{
    return (m->c ? 4 : m->b_hn ? 3 : 1) * m->H;
}

/* Whether the products with N columns run on the panels: forced by the paths (paths.h), else
 * for one stream where the ISA's packed kernel is the default for blocks of rows
 * (rf_use_packed(2)), skipping a matrix whose widest panels would pad its columns by more than
 * an eighth (W_y, V = 65 -> 128).  Several streams stay with BLAS's gemm, which measured faster
 * there: the packed kernel takes the rows past its 6-row blocks one at a time (the batch-1 and
 * 8-stream figures: docs/internals.md).  With ``apart`` several streams take the one stream's
 * choice, so that each row's sums are those of the stream drawn alone. */
static int FN(sample_packs)(const struct DT(rf_sampler) *m, int N)
{
    const int forced = rf_paths_get().packed;
    if (forced != RF_PACKED_AUTO)
        return forced;
    return (m->S == 1 || m->apart) && rf_use_packed(2)
           && 8 * FN(pg_size)(1, N) <= 9 * (int64_t)N;
}

/* The pack (elements): room for the panels of W_h[0..L-1], W_x[1..L-1] (each (H, G)), then W_y
 * (H, V); 0 when no product runs on panels. */
static int64_t FN(sample_pack_size)(const struct DT(rf_sampler) *m)
{
    const int G = FN(sample_gates)(m);
    if (!FN(sample_packs)(m, G) && !FN(sample_packs)(m, m->V))
        return 0;
    return (2 * (int64_t)m->L - 1) * FN(pg_size)(m->H, G) + FN(pg_size)(m->H, m->V);
}

/* C (R, N) += A (R, K) W (K, N) with accumulate, else C = A W: over P, the panels of W (each row
 * the same fmas whatever the rows beside it), or through BLAS when P is NULL, one row a call with
 * ``apart`` (BLAS sums a row of a taller call in another order than a one-row call). */
static void FN(sample_product)(real *C, const real *A, const real *W, const real *P, int R, int N,
                               int K, int accumulate, int apart)
{
    if (P)
        FN(pg_gemm)(C, A, P, R, N, K, accumulate);
    else if (apart)
        for (int r = 0; r < R; r++)
            GEMM(0, 0, 1, N, K, 1, A + (int64_t)r * K, K, W, N, accumulate ? 1 : 0,
                 C + (int64_t)r * N, N);
    else
        GEMM(0, 0, R, N, K, 1, A, K, W, N, accumulate ? 1 : 0, C, N);
}

/* The cell of layer l for the streams [s0, s0 + R), on their pre-activations act (and rec for
 * the GRU): h (and c) of the layer updated in place. */
static void FN(sample_cell)(const struct DT(rf_sampler) *m, int l, real *act, real *rec, int s0,
                            int R)
{
    const int H = m->H;
    const int64_t slab = (int64_t)m->S * H, rows = (int64_t)R * H; /* a layer of h, c; the block's */
    real *hl = m->h + l * slab + (int64_t)s0 * H;
    real *cbuf = m->cbuf + (int64_t)s0 * H, *tcbuf = m->tcbuf + (int64_t)s0 * H;
    if (m->c) {
        real *cl = m->c + l * slab + (int64_t)s0 * H;
        FN(lstm_cell)(hl, cbuf, tcbuf, act, cl, R, H);
        memcpy(cl, cbuf, sizeof(real) * (size_t)rows);
    } else if (m->b_hn) {
        FN(gru_cell)(cbuf, act, rec, m->b_hn[l], hl, R, H);
        memcpy(hl, cbuf, sizeof(real) * (size_t)rows);
    } else {
        FN(tanh_pass)(hl, act, rows);
    }
}

/* The logits of the streams [s0, s0 + R) at step t from the top layer's h, and their draws into
 * ids (the block's) and out. */
static void FN(sample_draw)(int64_t *out, const struct DT(rf_sampler) *m, const real *P_y,
                            const double *uniforms, int64_t *ids, int t, int s0, int R)
{
    const int S = m->S, H = m->H, V = m->V;
    real *logits = m->logits + (int64_t)s0 * V;
    double *w = m->w + (int64_t)s0 * V, *sel = m->sel + (int64_t)s0 * V;
    for (int s = 0; s < R; s++) /* logits = b_y + h_top W_y */
        memcpy(logits + (int64_t)s * V, m->b_y, sizeof(real) * (size_t)V);
    FN(sample_product)(logits, m->h + (int64_t)(m->L - 1) * S * H + (int64_t)s0 * H, m->W_y, P_y,
                       R, V, H, 1, m->apart);
    for (int s = 0; s < R; s++) {
        const int64_t k = (int64_t)t * S + s0 + s;
        ids[s] = FN(draw_row)(logits + (int64_t)s * V, uniforms[k], m->temperature, m->top_k,
                              m->top_p, m->argmax, V, w, sel);
        out[k] = ids[s];
    }
}

/* The streams [s0, s0 + R) for N steps: their rows of the state, the scratch, out and uniforms.
 * P_h, P_x (L): the panels of W_h[l] and W_x[l] (P_x[0] unused), P_y of W_y; all NULL without
 * the pack. */
static void FN(sample_streams)(int64_t *out, const struct DT(rf_sampler) *m,
                               const real *const *P_h, const real *const *P_x, const real *P_y,
                               const double *uniforms, const int64_t *first_ids, int N, int s0,
                               int R)
{
    const int S = m->S, L = m->L, H = m->H, V = m->V, G = FN(sample_gates)(m);
    const int64_t slab = (int64_t)S * H;
    real *act = m->act + (int64_t)s0 * G;
    real *rec = m->b_hn ? m->rec + (int64_t)s0 * G : act;
    int64_t *ids = m->ids + s0;
    memcpy(ids, first_ids + s0, sizeof(int64_t) * (size_t)R);
    for (int t = 0; t < N; t++) {
        for (int l = 0; l < L; l++) {
            real *hl = m->h + l * slab + (int64_t)s0 * H;
            if (l == 0) /* act = W_x[ids] + b */
                FN(project)(act, ids, NULL, m->W_x[0], m->b[0], R, V, G);
            else if (P_x[l]) { /* act = b + h_below W_x */
                for (int s = 0; s < R; s++)
                    memcpy(act + (int64_t)s * G, m->b[l], sizeof(real) * (size_t)G);
                FN(pg_gemm)(act, hl - slab, P_x[l], R, G, H, 1);
            } else if (m->apart) /* act = b + h_below W_x, a row at a time (sample_product) */
                for (int s = 0; s < R; s++)
                    FN(project)(act + (int64_t)s * G, NULL, hl - slab + (int64_t)s * H,
                                m->W_x[l], m->b[l], 1, H, G);
            else
                FN(project)(act, NULL, hl - slab, m->W_x[l], m->b[l], R, H, G);
            /* act += h W_h, or for the GRU rec = h W_h apart (its n gate reads it alone) */
            FN(sample_product)(rec, hl, m->W_h[l], P_h[l], R, G, H, !m->b_hn, m->apart);
            FN(sample_cell)(m, l, act, rec, s0, R);
        }
        FN(sample_draw)(out, m, P_y, uniforms, ids, t, s0, R);
    }
}

/* One stream on a team that splits every per-step product on the panels by columns (whole
 * panels a thread, the same bits as one thread: pg_row_cols), the cells and the draw on thread
 * 0: per step a barrier after each layer's products and one after each cell, the last (with the
 * draw) included.  A worker descheduled for a time slice (another process on its core) would
 * hold every barrier: thread 0 times its waits at the product barriers on every
 * SAMPLE_TIMED_EVERY-th step, and where over SAMPLE_VERDICT timed steps rf_threads_verdict
 * finds them late (threads.h) it sets *solo before the step's last barrier; the workers then
 * leave and thread 0 takes the rest of the call alone, every column (the same bits). */
static RF_NOINLINE void FN(sample_columns_team)(int64_t *out, const struct DT(rf_sampler) *m,
                                                const real *const *P_h, const real *const *P_x,
                                                const real *P_y, const double *uniforms,
                                                const int64_t *first_ids, int N, int *solo)
{
    RF_TEAM_BEGIN();
    const int L = m->L, H = m->H, V = m->V, G = FN(sample_gates)(m);
    int thread = 0, team = 1;
#ifdef _OPENMP
    thread = omp_get_thread_num();
    team = omp_get_num_threads();
#endif
    const int nr = FN(pg_panel_cols)(), panels = (G + nr - 1) / nr;
    int j0 = nr * (int)((int64_t)panels * thread / team);
    int j1 = thread + 1 == team ? G : nr * (int)((int64_t)panels * (thread + 1) / team);
    real *act = m->act, *rec = m->b_hn ? m->rec : m->act;
    int64_t *ids = m->ids;
    double waited = 0, spent = 0; /* thread 0's, over the timed steps since the last verdict */
    int alone = 0, timed_steps = 0;
    if (thread == 0)
        ids[0] = first_ids[0];
    RF_BARRIER();
    for (int t = 0; t < N; t++) {
        if (!alone && *solo) { /* set by thread 0 before the last step's final barrier */
            if (thread != 0)
                break;
            alone = 1;
            j0 = 0;
            j1 = G;
        }
        const int timed = thread == 0 && !alone && t % SAMPLE_TIMED_EVERY == 0;
        const double step_start = timed ? rf_threads_seconds() : 0;
        for (int l = 0; l < L; l++) {
            const real *hl = m->h + (int64_t)l * H;
            if (l == 0) /* act = W_x[ids] + b, these columns */
                FN(project_cols)(act, ids, NULL, m->W_x[0], m->b[0], 1, V, G, j0, j1 - j0);
            else { /* act = b + h_below W_x */
                memcpy(act + j0, m->b[l] + j0, sizeof(real) * (size_t)(j1 - j0));
                FN(pg_row_cols)(act, hl - H, P_x[l], j0, j1, H, 1);
            }
            FN(pg_row_cols)(rec, hl, P_h[l], j0, j1, H, !m->b_hn);
            if (!alone) {
                const double wait_start = timed ? rf_threads_seconds() : 0;
                RF_BARRIER();
                if (timed)
                    waited += rf_threads_seconds() - wait_start;
            }
            if (thread == 0) {
                FN(sample_cell)(m, l, act, rec, 0, 1);
                if (l == L - 1) {
                    FN(sample_draw)(out, m, P_y, uniforms, ids, t, 0, 1);
                    if (timed)
                        spent += rf_threads_seconds() - step_start;
                    if (timed && ++timed_steps == SAMPLE_VERDICT) {
                        if (rf_threads_verdict(waited, spent))
                            *solo = 1;
                        waited = spent = 0;
                        timed_steps = 0;
                    }
                }
            }
            if (!alone)
                RF_BARRIER();
        }
    }
    RF_TEAM_END();
}

static RF_TEAM_FORK void FN(fork_sample_columns)(int64_t *out, const struct DT(rf_sampler) *m,
                                                 const real *const *P_h, const real *const *P_x,
                                                 const real *P_y, const double *uniforms,
                                                 const int64_t *first_ids, int N, int threads)
{
    int solo = 0;
    (void)threads; /* read by the directive alone, which a build without OpenMP drops */
    RF_OMP(parallel num_threads(threads))
    FN(sample_columns_team)(out, m, P_h, P_x, P_y, uniforms, first_ids, N, &solo);
    RF_TEAM_JOINED();
}

/* Whether one stream splits its products over a team: where each barrier is paid for by the
 * products' flops a character, 2 H G (2 L - 1) over 2 L barriers, of at least
 * rf_threads_min_flops() / SAMPLE_SPLIT_SHARE (every call where tests set the floor to 0). */
static int FN(sample_splits)(const struct DT(rf_sampler) *m)
{
    const double flops = 2.0 * m->H * FN(sample_gates)(m) * (2 * m->L - 1);
    return flops / (2 * m->L) >= rf_threads_min_flops() / SAMPLE_SPLIT_SHARE;
}

static void FN(sample)(int64_t *out, const struct DT(rf_sampler) *m, const double *uniforms,
                       const int64_t *first_ids, int N)
{
    const int S = m->S, L = m->L, H = m->H, G = FN(sample_gates)(m);
    const real *P_h[L], *P_x[L], *P_y = NULL;
    for (int l = 0; l < L; l++)
        P_h[l] = P_x[l] = NULL;
    const int64_t panels = FN(pg_size)(H, G);
    if (m->pack && FN(sample_packs)(m, G)) /* pack once per call, read by every step */
        for (int l = 0; l < L; l++) {
            real *p = m->pack + l * panels;
            FN(pg_pack)(p, m->W_h[l], H, G, 0);
            P_h[l] = p;
            if (l > 0) {
                p = m->pack + (L + l - 1) * panels;
                FN(pg_pack)(p, m->W_x[l], H, G, 0);
                P_x[l] = p;
            }
        }
    if (m->pack && FN(sample_packs)(m, m->V)) {
        real *p = m->pack + (2 * L - 1) * panels;
        FN(pg_pack)(p, m->W_y, H, m->V, 0);
        P_y = p;
    }
    const int threads = rf_threads_team();
    if (S == 1 && P_h[0] && threads > 1 && FN(sample_splits)(m)) {
        const int panels = (G + FN(pg_panel_cols)() - 1) / FN(pg_panel_cols)();
        FN(fork_sample_columns)(out, m, P_h, P_x, P_y, uniforms, first_ids, N,
                                threads < panels ? threads : panels);
        return;
    }
    const int blocks = m->pack ? (S < threads ? S : threads)
                               : (S + SAMPLE_BLOCK - 1) / SAMPLE_BLOCK;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) if (blocks > 1 && threads > 1)
#endif
    for (int k = 0; k < blocks; k++) {
        const int s0 = m->pack ? (int)((int64_t)S * k / blocks) : k * SAMPLE_BLOCK;
        const int s1 = m->pack ? (int)((int64_t)S * (k + 1) / blocks)
                               : (s0 + SAMPLE_BLOCK < S ? s0 + SAMPLE_BLOCK : S);
        FN(sample_streams)(out, m, P_h, P_x, P_y, uniforms, first_ids, N, s0, s1 - s0);
    }
}

#undef SAMPLE_BLOCK
#undef SAMPLE_SPLIT_SHARE
#undef SAMPLE_TIMED_EVERY
#undef SAMPLE_VERDICT
