/* Fused, max-subtracted softmax cross-entropy, one exp per element:
 *   p_v = exp(z_v - m) / s,  m = max_v z_v,  s = sum_v exp(z_v - m)
 *   loss_n = -log p_y = log s - (z_y - m)
 *   dz_v = (p_v - [v == y]) / N
 * exp is the vectorizable FN(exp) of vmath_tmpl.h.  The row's max and sum use LANES partial
 * results in a fixed order: deterministic, and vectorizable under strict IEEE semantics; so does
 * the sum over rows, by blocks of rows (omp_blocks.h). */

#define LANES 8
#define XENT_CHUNK 256 /* stack scratch for exp(z - m) when no gradient is wanted */

static inline real FN(row_max)(const real *restrict z, int V)
{
    real acc[LANES];
    for (int j = 0; j < LANES; j++)
        acc[j] = z[0];
    int v = 0;
    for (; v + LANES <= V; v += LANES)
        for (int j = 0; j < LANES; j++)
            acc[j] = z[v + j] > acc[j] ? z[v + j] : acc[j];
    for (; v < V; v++)
        acc[0] = z[v] > acc[0] ? z[v] : acc[0];
    real m = acc[0];
    for (int j = 1; j < LANES; j++)
        m = acc[j] > m ? acc[j] : m;
    return m;
}

/* e_v = exp(z_v - m) for v < V; returns sum_v e_v. */
static inline real FN(exp_shifted_sum)(real *restrict e, const real *restrict z, real m, int V,
                                       struct FN(vm_limits) lim)
{
    for (int v = 0; v < V; v++)
        e[v] = FN(exp)(z[v] - m, lim);
    real acc[LANES] = {0};
    int v = 0;
    for (; v + LANES <= V; v += LANES)
        for (int j = 0; j < LANES; j++)
            acc[j] += e[v + j];
    for (; v < V; v++)
        acc[0] += e[v];
    real s = 0;
    for (int j = 0; j < LANES; j++)
        s += acc[j];
    return s;
}

/* sum over rows [n0, n1) of loss_n, in double, in row order; dlogits as above. */
static double FN(xent_rows)(real *dlogits, const real *logits, const int64_t *targets, int N,
                            int V, int n0, int n1, struct FN(vm_limits) lim)
{
    double total = 0.0;
    real scratch[XENT_CHUNK];
    for (int n = n0; n < n1; n++) {
        const real *z = logits + (int64_t)n * V;
        const int64_t y = targets[n];
        const real m = FN(row_max)(z, V);
        real s = 0;
        if (dlogits) {
            real *restrict dz = dlogits + (int64_t)n * V;
            s = FN(exp_shifted_sum)(dz, z, m, V, lim);
            const real scale = (real)1 / (s * (real)N);
            for (int v = 0; v < V; v++)
                dz[v] *= scale;
            dz[y] -= (real)1 / (real)N;
        } else {
            for (int v0 = 0; v0 < V; v0 += XENT_CHUNK) {
                const int len = V - v0 < XENT_CHUNK ? V - v0 : XENT_CHUNK;
                s += FN(exp_shifted_sum)(scratch, z + v0, m, len, lim);
            }
        }
        total += (double)LOG(s) - (double)(z[y] - m);
    }
    return total;
}

/* The mean over rows: blocks of RF_ROW_BLOCK rows shared among the threads, their sums added
 * in block order (omp_blocks.h). */
static double FN(softmax_xent)(real *dlogits, const real *logits, const int64_t *targets, int N,
                                int V)
{
    const struct FN(vm_limits) lim = FN(vm_limits_load)();
    const int64_t all_blocks = rf_blocks(N, RF_ROW_BLOCK);
    double total = 0.0;
    for (int64_t first = 0; first < all_blocks; first += RF_PARTIALS) {
        double partial[RF_PARTIALS];
        const int64_t blocks = all_blocks - first < RF_PARTIALS ? all_blocks - first : RF_PARTIALS;
        RF_FOR_BLOCKS(blocks, j, partial[j] = FN(xent_rows)(
            dlogits, logits, targets, N, V, (int)((first + j) * RF_ROW_BLOCK),
            (int)rf_block_end(first + j, RF_ROW_BLOCK, N), lim));
        for (int64_t j = 0; j < blocks; j++)
            total += partial[j];
    }
    return total / N;
}

/* Test hook: the exp above, elementwise. */
static void FN(exp_array)(real *restrict out, const real *restrict x, int64_t n)
{
    const struct FN(vm_limits) lim = FN(vm_limits_load)();
    for (int64_t k = 0; k < n; k++)
        out[k] = FN(exp)(x[k], lim);
}

#undef LANES
#undef XENT_CHUNK
