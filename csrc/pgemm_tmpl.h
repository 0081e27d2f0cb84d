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

/* The block per variant: NR columns of C (whole vectors) by MR rows, MR*NR/VL accumulators plus
 * NR/VL panel vectors and one broadcast in the vector registers (VL floats a vector); PG_PANELS
 * panels at a time for the rows left over (M % MR, and B = 1), so that one row still has 8
 * independent fma chains.  AVX-512 (32 zmm): 6 or 4 x 64 floats.  AVX2 (16 ymm): 6 x 16 floats,
 * 12 accumulators.  Baseline (16 xmm on SSE2, 32 q on NEON): 6 x 8 floats, 12 accumulators.
 * Doubles: half the columns. */
#if defined(__AVX512F__)
#define PG_NR_FLOATS 64
#define PG_PANELS 2
#elif defined(__AVX2__)
#define PG_NR_FLOATS 16
#define PG_PANELS 4
#else
#define PG_NR_FLOATS 8
#define PG_PANELS 4
#endif
/* The widest panel of any variant: the pack size, so a workspace fits whichever runs. */
#define PG_NR_FLOATS_MAX 64
#if RF_DTYPE == 32
#define PG_NR PG_NR_FLOATS
#define PG_NR_MAX PG_NR_FLOATS_MAX
#else
#define PG_NR (PG_NR_FLOATS / 2)
#define PG_NR_MAX (PG_NR_FLOATS_MAX / 2)
#endif

/* Elements of the packed op(W) for K, N (room for the widest variant's panels). */
static int64_t FN(pg_size)(int K, int N)
{
    return (int64_t)K * ((N + PG_NR_MAX - 1) / PG_NR_MAX) * PG_NR_MAX;
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

/* c (w) += acc, or c = acc. */
static RF_ALWAYS_INLINE void FN(pg_store)(real *restrict c, const real *restrict acc, int w,
                                          int accumulate)
{
    if (accumulate)
        for (int j = 0; j < w; j++)
            c[j] += acc[j];
    else
        for (int j = 0; j < w; j++)
            c[j] = acc[j];
}

/* Every element of C below is  acc = 0;  acc = fma(a_k, w_k, acc) for k = 0..K-1;  then stored:
 * the same sequence whatever the block, so every variant gives the same bits. */
/* acc (MR, NR) = a (MR rows, stride K) times a panel (K, NR) over all K, and for one row of a,
 * acc (NP, NR) = a (K) times NP consecutive panels: MR and NP are constants at each call
 * (inlined, the loops unroll and acc lives in registers).  GCC 12 vectorizes these loops well
 * for AVX-512 (4 zmm a row) but for AVX2 it kept the accumulators on the stack and ran 10-20x
 * slower than BLAS; the AVX2 instance spells them with intrinsics (_mm256_fmadd is fmaf's one
 * rounding per lane). */
#define PG_MR_MAX 6
#if defined(__AVX2__) && !defined(__AVX512F__)
#include <immintrin.h>
#if RF_DTYPE == 32
#define PG_VEC __m256
#define PG_VL 8
#define PG_VZERO _mm256_setzero_ps
#define PG_VSET1 _mm256_set1_ps
#define PG_VLOAD _mm256_loadu_ps
#define PG_VSTORE _mm256_storeu_ps
#define PG_VFMA _mm256_fmadd_ps
#else
#define PG_VEC __m256d
#define PG_VL 4
#define PG_VZERO _mm256_setzero_pd
#define PG_VSET1 _mm256_set1_pd
#define PG_VLOAD _mm256_loadu_pd
#define PG_VSTORE _mm256_storeu_pd
#define PG_VFMA _mm256_fmadd_pd
#endif
#define PG_NV (PG_NR / PG_VL)
static RF_ALWAYS_INLINE void FN(pg_block)(real acc[][PG_NR], const real *restrict a,
                                          const real *restrict panel, int K, const int MR)
{
    PG_VEC v[PG_MR_MAX][PG_NV];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < PG_NV; j++)
            v[i][j] = PG_VZERO();
    for (int k = 0; k < K; k++) {
        PG_VEC wk[PG_NV];
        for (int j = 0; j < PG_NV; j++)
            wk[j] = PG_VLOAD(panel + (int64_t)k * PG_NR + j * PG_VL);
        for (int i = 0; i < MR; i++) {
            const PG_VEC ai = PG_VSET1(a[(int64_t)i * K + k]);
            for (int j = 0; j < PG_NV; j++)
                v[i][j] = PG_VFMA(ai, wk[j], v[i][j]);
        }
    }
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < PG_NV; j++)
            PG_VSTORE(acc[i] + j * PG_VL, v[i][j]);
}

static RF_ALWAYS_INLINE void FN(pg_row_block)(real acc[][PG_NR], const real *restrict a,
                                              const real *restrict panels, int K, const int NP)
{
    PG_VEC v[PG_PANELS][PG_NV];
    for (int p = 0; p < NP; p++)
        for (int j = 0; j < PG_NV; j++)
            v[p][j] = PG_VZERO();
    for (int k = 0; k < K; k++) {
        const PG_VEC ak = PG_VSET1(a[k]);
        for (int p = 0; p < NP; p++)
            for (int j = 0; j < PG_NV; j++)
                v[p][j] = PG_VFMA(ak, PG_VLOAD(panels + ((int64_t)p * K + k) * PG_NR + j * PG_VL),
                                  v[p][j]);
    }
    for (int p = 0; p < NP; p++)
        for (int j = 0; j < PG_NV; j++)
            PG_VSTORE(acc[p] + j * PG_VL, v[p][j]);
}
#undef PG_VEC
#undef PG_VL
#undef PG_VZERO
#undef PG_VSET1
#undef PG_VLOAD
#undef PG_VSTORE
#undef PG_VFMA
#undef PG_NV
#else
static RF_ALWAYS_INLINE void FN(pg_block)(real acc[][PG_NR], const real *restrict a,
                                          const real *restrict panel, int K, const int MR)
{
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < PG_NR; j++)
            acc[i][j] = 0;
    for (int k = 0; k < K; k++) {
        const real *restrict wk = panel + (int64_t)k * PG_NR;
        for (int i = 0; i < MR; i++) {
            const real ai = a[(int64_t)i * K + k];
            for (int j = 0; j < PG_NR; j++)
                acc[i][j] = FMA(ai, wk[j], acc[i][j]);
        }
    }
}

static RF_ALWAYS_INLINE void FN(pg_row_block)(real acc[][PG_NR], const real *restrict a,
                                              const real *restrict panels, int K, const int NP)
{
    for (int p = 0; p < NP; p++)
        for (int j = 0; j < PG_NR; j++)
            acc[p][j] = 0;
    for (int k = 0; k < K; k++)
        for (int p = 0; p < NP; p++) {
            const real *restrict wk = panels + ((int64_t)p * K + k) * PG_NR;
            for (int j = 0; j < PG_NR; j++)
                acc[p][j] = FMA(a[k], wk[j], acc[p][j]);
        }
}
#endif

/* Rows [0, M - M % MR) of C (M,N) += A (M,K) op(W) (accumulate) or C = A op(W), P from pg_pack,
 * MR rows at a time.  Returns the rows done. */
static RF_ALWAYS_INLINE int FN(pg_gemm_blocks)(real *restrict C, const real *restrict A,
                                               const real *restrict P, int M, int N, int K,
                                               int accumulate, const int MR)
{
    const int rows = M - M % MR;
    for (int j0 = 0; j0 < N; j0 += PG_NR) {
        const int w = N - j0 < PG_NR ? N - j0 : PG_NR;
        const real *restrict panel = P + (int64_t)j0 * K;
        for (int r0 = 0; r0 < rows; r0 += MR) {
            real acc[PG_MR_MAX][PG_NR];
            FN(pg_block)(acc, A + (int64_t)r0 * K, panel, K, MR);
            for (int i = 0; i < MR; i++)
                FN(pg_store)(C + (int64_t)(r0 + i) * N + j0, acc[i], w, accumulate);
        }
    }
    return rows;
}

/* One row c (N) += a (K) op(W) or c = a op(W), NP panels at a time from column j0 (a constant
 * at each call); returns the column reached. */
static RF_ALWAYS_INLINE int FN(pg_row_panels)(real *restrict c, const real *restrict a,
                                              const real *restrict P, int j0, int N, int K,
                                              int accumulate, const int NP)
{
    for (; j0 + (NP - 1) * PG_NR < N; j0 += NP * PG_NR) {
        real acc[PG_PANELS][PG_NR];
        FN(pg_row_block)(acc, a, P + (int64_t)j0 * K, K, NP);
        for (int p = 0; p < NP; p++) {
            const int jp = j0 + p * PG_NR, w = N - jp < PG_NR ? N - jp : PG_NR;
            FN(pg_store)(c + jp, acc[p], w, accumulate);
        }
    }
    return j0;
}

/* C (M,N) += A (M,K) op(W) (accumulate) or C = A op(W), P from pg_pack: MR-row blocks, then the
 * rows left over one at a time.  6-row blocks where a panel (K, NR) stays in L1 (K <= 192),
 * 4-row blocks past that: measured with AVX-512 (1 thread, GFLOP/s) at B=50 H=128 6 rows ~100,
 * 4 rows ~98-104 but the train step 2% slower; at B=32 H=512 6 rows ~97, 4 rows ~111; at B=64
 * H=1024 6 rows ~81-85, 4 rows ~99-108. */
static void FN(pg_gemm)(real *restrict C, const real *restrict A, const real *restrict P, int M,
                        int N, int K, int accumulate)
{
    const int done = K <= 192 ? FN(pg_gemm_blocks)(C, A, P, M, N, K, accumulate, 6)
                              : FN(pg_gemm_blocks)(C, A, P, M, N, K, accumulate, 4);
    for (int r = done; r < M; r++) {
        real *c = C + (int64_t)r * N;
        const real *a = A + (int64_t)r * K;
        const int j0 = FN(pg_row_panels)(c, a, P, 0, N, K, accumulate, PG_PANELS);
        FN(pg_row_panels)(c, a, P, j0, N, K, accumulate, 1);
    }
}

/* Scratch elements the recurrent kernels need for packing W_h (H, G), forward and backward. */
static int64_t FN(recurrent_pack_size)(int H, int G)
{
    const int64_t fwd = FN(pg_size)(H, G), bwd = FN(pg_size)(G, H);
    return fwd > bwd ? fwd : bwd;
}

#undef PG_NR_FLOATS
#undef PG_PANELS
#undef PG_NR_FLOATS_MAX
#undef PG_NR
#undef PG_NR_MAX
#undef PG_MR_MAX
