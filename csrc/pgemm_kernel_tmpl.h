/* The register-blocked kernel of pgemm_tmpl.h, for PG_MR rows at a time, named PG_KERNEL;
 * included once per block height.
 * C (M,N) += A (M,K) op(W) (accumulate) or C = A op(W); P from pg_pack. */
RF_PG_TARGET
static void PG_KERNEL(real *restrict C, const real *restrict A, const real *restrict P, int M,
                      int N, int K, int accumulate)
{
    for (int j0 = 0; j0 < N; j0 += PG_NR) {
        const int w = N - j0 < PG_NR ? N - j0 : PG_NR;
        const real *restrict panel = P + (int64_t)j0 * K;
        int r0 = 0;
        for (; r0 + PG_MR <= M; r0 += PG_MR) {
            real acc[PG_MR][PG_NR];
            for (int i = 0; i < PG_MR; i++)
                for (int j = 0; j < PG_NR; j++)
                    acc[i][j] = 0;
            const real *restrict a = A + (int64_t)r0 * K;
            for (int k = 0; k < K; k++) {
                const real *restrict wk = panel + (int64_t)k * PG_NR;
                for (int i = 0; i < PG_MR; i++) {
                    const real ai = a[(int64_t)i * K + k];
                    for (int j = 0; j < PG_NR; j++)
                        acc[i][j] = PG_FMA(ai, wk[j], acc[i][j]);
                }
            }
            for (int i = 0; i < PG_MR; i++) {
                real *restrict c = C + (int64_t)(r0 + i) * N + j0;
                if (accumulate)
                    for (int j = 0; j < w; j++)
                        c[j] += acc[i][j];
                else
                    for (int j = 0; j < w; j++)
                        c[j] = acc[i][j];
            }
        }
        for (; r0 < M; r0++) {
            real acc[PG_NR];
            for (int j = 0; j < PG_NR; j++)
                acc[j] = 0;
            const real *restrict a = A + (int64_t)r0 * K;
            for (int k = 0; k < K; k++) {
                const real *restrict wk = panel + (int64_t)k * PG_NR;
                for (int j = 0; j < PG_NR; j++)
                    acc[j] = PG_FMA(a[k], wk[j], acc[j]);
            }
            real *restrict c = C + (int64_t)r0 * N + j0;
            if (accumulate)
                for (int j = 0; j < w; j++)
                    c[j] += acc[j];
            else
                for (int j = 0; j < w; j++)
                    c[j] = acc[j];
        }
    }
}
