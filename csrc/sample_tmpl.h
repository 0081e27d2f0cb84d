/* The sampling loop (a template: see real_begin.h): reference.sample and reference.draw in C.
 * Per generated character: per layer the input projection (row gather for layer 0) plus one
 * small GEMM and the cell; the logits; then the draw for each stream. */

/* One id from logits z (V) with uniform u (reference.draw):
 *   w_v = exp((z_v - max z) / temperature) in double; with top_k, w_v = 0 where z_v is below the
 *   k-th largest z;  the first v with  w_0 + ... + w_v > u sum(w)  (sequential sums, like
 *   np.cumsum), or V-1 if none;  argmax: the first largest z. */
static RF_NOINLINE int64_t FN(draw_row)(const real *z, double u, double temperature, int top_k,
                                        int argmax, int V, double *w, double *sel)
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
    const double target = u * total;
    double cdf = 0;
    for (int v = 0; v < V; v++) {
        cdf += w[v];
        if (cdf > target)
            return v;
    }
    return V - 1;
}

static void FN(sample)(int64_t *out, const struct DT(rf_sampler) *m, const double *uniforms,
                       const int64_t *first_ids, int N)
{
    const int S = m->S, L = m->L, H = m->H, V = m->V;
    const int G = (m->c ? 4 : m->b_hn ? 3 : 1) * H;
    const int64_t slab = (int64_t)S * H; /* one layer of h, c (S,H) */
    real *act = m->act, *logits = m->logits;
    int64_t *ids = m->ids;
    memcpy(ids, first_ids, sizeof(int64_t) * (size_t)S);
    for (int t = 0; t < N; t++) {
        for (int l = 0; l < L; l++) {
            real *hl = m->h + l * slab;
            if (l == 0) /* act = W_x[ids] + b,  or  h_below W_x + b */
                FN(project)(act, ids, NULL, m->W_x[0], m->b[0], S, V, G);
            else
                FN(project)(act, NULL, hl - slab, m->W_x[l], m->b[l], S, H, G);
            /* act += h W_h, or for the GRU rec = h W_h apart (its n gate reads it alone) */
            real *rec = m->b_hn ? m->rec : act;
            GEMM(0, 0, S, G, H, 1, hl, H, m->W_h[l], G, m->b_hn ? 0 : 1, rec, G);
            if (m->c) {
                real *cl = m->c + l * slab;
                FN(lstm_cell)(hl, m->cbuf, m->tcbuf, act, cl, S, H);
                memcpy(cl, m->cbuf, sizeof(real) * (size_t)slab);
            } else if (m->b_hn) {
                FN(gru_cell)(m->cbuf, act, rec, m->b_hn[l], hl, S, H);
                memcpy(hl, m->cbuf, sizeof(real) * (size_t)slab);
            } else {
                FN(tanh_pass)(hl, act, slab);
            }
        }
        for (int s = 0; s < S; s++) /* logits = h_top W_y + b_y */
            memcpy(logits + (int64_t)s * V, m->b_y, sizeof(real) * (size_t)V);
        GEMM(0, 0, S, V, H, 1, m->h + (L - 1) * slab, H, m->W_y, V, 1, logits, V);
        for (int s = 0; s < S; s++) {
            ids[s] = FN(draw_row)(logits + (int64_t)s * V, uniforms[(int64_t)t * S + s],
                                  m->temperature, m->top_k, m->argmax, V, m->w, m->sel);
            out[(int64_t)t * S + s] = ids[s];
        }
    }
}
