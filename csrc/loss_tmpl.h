/* Fused, max-subtracted softmax cross-entropy, one pass per row:
 *   p_v = exp(z_v - m) / s,  m = max_v z_v,  s = sum_v exp(z_v - m)
 *   loss_n = -log p_y = log s - (z_y - m)
 *   dz_v = (p_v - [v == y]) / N */
double FN(rf_softmax_xent)(real *dlogits, const real *logits, const int64_t *targets, int N, int V)
{
    double total = 0.0;
    for (int n = 0; n < N; n++) {
        const real *z = logits + (int64_t)n * V;
        const int64_t y = targets[n];
        real m = z[0];
        for (int v = 1; v < V; v++)
            m = z[v] > m ? z[v] : m;
        real s = 0;
        for (int v = 0; v < V; v++)
            s += EXP(z[v] - m);
        total += (double)LOG(s) - (double)(z[y] - m);
        if (dlogits) {
            real *dz = dlogits + (int64_t)n * V;
            const real scale = (real)1 / (s * (real)N);
            for (int v = 0; v < V; v++)
                dz[v] = EXP(z[v] - m) * scale;
            dz[y] -= (real)1 / (real)N;
        }
    }
    return total / N;
}
