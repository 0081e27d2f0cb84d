/* The per-step recurrent products over a weight matrix packed once per sequence (a template: see
 * real_begin.h):
 *
 *   C (M,N) += A (M,K) op(W)   or   C = A op(W)       op(W) = W_h (K=H, N=G) forward,
 *                                                     W_h^T (K=G, N=H) for the backward carry
 *
 * OpenBLAS re-packs W_h on every one of the T calls per layer, which cost a third of each
 * per-step product at B=50, H=128 (measured: sgemm_itcopy/oncopy 10% of a charrnn-default
 * train_step).  Here op(W) is copied once into panels of NR columns, each (K, NR) contiguous
 * and zero-padded, and a register-blocked loop (MR = 6 or 4 rows x NR columns of C held in vector
 * registers, one fma per element of the block and k) streams the panels.  It keeps up with
 * OpenBLAS only with AVX-512F+FMA, where rf_use_packed (paths.c) picks it by default; the AVX2 and
 * baseline instances exist so the path can be forced and tested anywhere (the baseline's fma is
 * libm's, slow but exact).  fma is one IEEE rounding, so every instance gives the same bits, and
 * the result differs from BLAS's only in the order of the sum over k, as BLAS's own kernels do
 * between CPUs.  Measured with a standalone prototype at 1 thread, GFLOP/s against OpenBLAS
 * sgemm on the same shapes: B=50 H=128  ~100 vs ~78;  B=32 H=512  ~100-110 vs ~62. */

#if RF_DTYPE == 32
#define PG_NR 64 /* four 16-float vectors */
#else
#define PG_NR 32
#endif

/* Elements of the packed op(W) for K, N. */
static int64_t FN(pg_size)(int K, int N)
{
    return (int64_t)K * ((N + PG_NR - 1) / PG_NR) * PG_NR;
}

/* P = op(W) in panels: W (K, N) row-major, or with trans, W (N, K) row-major and op(W) = W^T. */
static void FN(pg_pack)(real *P, const real *W, int K, int N, int trans)
{
    for (int j0 = 0; j0 < N; j0 += PG_NR) {
        const int w = N - j0 < PG_NR ? N - j0 : PG_NR;
        real *panel = P + (int64_t)j0 * K;
        for (int k = 0; k < K; k++) {
            real *restrict dst = panel + (int64_t)k * PG_NR;
            if (trans)
                for (int j = 0; j < w; j++)
                    dst[j] = W[(int64_t)(j0 + j) * K + k];
            else
                for (int j = 0; j < w; j++)
                    dst[j] = W[(int64_t)k * N + j0 + j];
            for (int j = w; j < PG_NR; j++)
                dst[j] = 0;
        }
    }
}

/* C (M,N) += A (M,K) op(W) (accumulate) or C = A op(W), P from pg_pack, MR rows of C at a time
 * (a constant at each call: inlined, the block loops unroll and acc lives in registers). */
#define PG_MR_MAX 6
static RF_ALWAYS_INLINE void FN(pg_gemm_rows)(
    real *restrict C, const real *restrict A, const real *restrict P, int M, int N, int K,
    int accumulate, const int MR)
{
    for (int j0 = 0; j0 < N; j0 += PG_NR) {
        const int w = N - j0 < PG_NR ? N - j0 : PG_NR;
        const real *restrict panel = P + (int64_t)j0 * K;
        int r0 = 0;
        for (; r0 + MR <= M; r0 += MR) {
            real acc[PG_MR_MAX][PG_NR];
            for (int i = 0; i < MR; i++)
                for (int j = 0; j < PG_NR; j++)
                    acc[i][j] = 0;
            const real *restrict a = A + (int64_t)r0 * K;
            for (int k = 0; k < K; k++) {
                const real *restrict wk = panel + (int64_t)k * PG_NR;
                for (int i = 0; i < MR; i++) {
                    const real ai = a[(int64_t)i * K + k];
                    for (int j = 0; j < PG_NR; j++)
                        acc[i][j] = FMA(ai, wk[j], acc[i][j]);
                }
            }
            for (int i = 0; i < MR; i++) {
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
                    acc[j] = FMA(a[k], wk[j], acc[j]);
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

/* 6-row blocks where a panel (K, NR) stays in L1 (K <= 192), 4-row blocks past that: measured
 * (1 thread, GFLOP/s) at B=50 H=128 6 rows ~100, 4 rows ~98-104 but the train step 2% slower;
 * at B=32 H=512 6 rows ~97, 4 rows ~111; at B=64 H=1024 6 rows ~81-85, 4 rows ~99-108. */
static void FN(pg_gemm)(real *restrict C, const real *restrict A, const real *restrict P, int M,
                        int N, int K, int accumulate)
{
    if (K <= 192)
        FN(pg_gemm_rows)(C, A, P, M, N, K, accumulate, 6);
    else
        FN(pg_gemm_rows)(C, A, P, M, N, K, accumulate, 4);
}

/* Scratch elements the recurrent kernels need for packing W_h (H, G), forward and backward. */
static int64_t FN(recurrent_pack_size)(int H, int G)
{
    const int64_t fwd = FN(pg_size)(H, G), bwd = FN(pg_size)(G, H);
    return fwd > bwd ? fwd : bwd;
}

#undef PG_NR
#undef PG_MR_MAX
