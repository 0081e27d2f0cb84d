/* The per-step recurrent products over a weight matrix packed once per sequence (a template: see
 * real_begin.h):
 *
 *   C (M,N) += A (M,K) op(W)   or   C = A op(W)       op(W) = W_h (K=H, N=G) forward,
 *                                                     W_h^T (K=G, N=H) for the backward carry
 *
 * OpenBLAS re-packs W_h on every one of the T calls per layer, which cost a third of each
 * per-step product at B=50, H=128 (measured: sgemm_itcopy/oncopy 10% of a charrnn-default
 * train_step).  Here op(W) is copied once into panels of NR columns, each (K, NR) contiguous
 * and zero-padded, and a register-blocked loop (MR = 6 rows x NR columns of C held in vector
 * registers, one fma per element of the block and k) streams the panels, a chunk of K at a time
 * that stays in L1 while every row block passes over it.  rf_use_packed (paths.c) picks it by
 * default on AVX-512F+FMA and AVX2+FMA for B >= 2; the baseline instance exists so the path can
 * be forced and tested anywhere (on x86-64 its fma is libm's, slow but exact).  fma is one IEEE
 * rounding, so every instance gives the same bits, and the result differs from BLAS's only in
 * the order of the sum over k, as BLAS's own kernels do between CPUs.
 * The K chunks, the balanced last row blocks and the aligned panels are what put it ahead of
 * OpenBLAS's per-step sgemm at large H too (lab/packed_paths.py; docs/internals.md). */

/* The block per variant: NR columns of C (whole vectors) by MR rows, MR*NR/VL accumulators plus
 * NR/VL panel vectors and one broadcast in the vector registers (VL floats a vector); PG_PANELS
 * panels at a time for a product of one row (B = 1), so that it still has 8 independent fma
 * chains.  AVX-512 (32 zmm): 6 x 64 floats, 24 accumulators.  AVX2 (16 ymm): 6 x 16 floats, 12
 * accumulators.  Baseline (16 xmm on SSE2, 32 q on NEON): 6 x 8 floats, 12 accumulators.
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
#define PG_MR 6
/* The widest panel of any variant: the pack size, so a workspace fits whichever runs. */
#define PG_NR_FLOATS_MAX 64
#if RF_DTYPE == 32
#define PG_NR PG_NR_FLOATS
#define PG_NR_MAX PG_NR_FLOATS_MAX
#else
#define PG_NR (PG_NR_FLOATS / 2)
#define PG_NR_MAX (PG_NR_FLOATS_MAX / 2)
#endif
/* K beyond 2 PG_KC is taken PG_KC rows of a panel at a time, a chunk that stays in L1 (24 KiB
 * with AVX-512) while every row block of A passes over it (a whole panel up to 2 PG_KC rows, 48
 * KiB, still does), and the rows of A PG_GROUP at a time, whose partial sums between chunks
 * (PG_GROUP x NR, 24 KiB with AVX-512) live on the stack. */
#define PG_KC 96
#define PG_GROUP (16 * PG_MR)
/* The panels start at a 64-byte boundary of the pack, so no vector load splits a cache line. */
#define PG_ALIGN 64

/* The rows of pg_gemm's register blocks: callers that split the rows over threads give each a
 * whole number of blocks. */
static int FN(pg_block_rows)(void)
{
    return PG_MR;
}

/* The columns of a panel: callers that split the columns of a row over threads
 * (pg_row_cols) give each whole panels. */
static int FN(pg_panel_cols)(void)
{
    return PG_NR;
}

/* Elements of the packed op(W) for K, N (room for the widest variant's panels, and to align). */
static int64_t FN(pg_size)(int K, int N)
{
    return (int64_t)K * ((N + PG_NR_MAX - 1) / PG_NR_MAX) * PG_NR_MAX
           + PG_ALIGN / (int)sizeof(real);
}

/* The first PG_ALIGN boundary at or after P, where the panels start. */
static RF_ALWAYS_INLINE uintptr_t FN(pg_start)(const real *P)
{
    return ((uintptr_t)P + PG_ALIGN - 1) & ~(uintptr_t)(PG_ALIGN - 1);
}

/* P = op(W) in panels: W (K, N) row-major, or with trans, W (N, K) row-major and op(W) = W^T. */
static void FN(pg_pack)(real *P, const real *W, int K, int N, int trans)
{
    real *const start = (real *)FN(pg_start)(P);
    for (int j0 = 0; j0 < N; j0 += PG_NR) {
        const int w = N - j0 < PG_NR ? N - j0 : PG_NR;
        real *panel = start + (int64_t)j0 * K;
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
 * the same sequence whatever the block or the chunks (a partial sum waits between chunks in its
 * own type), so every variant gives the same bits.
 * pg_block:  out (MR, NR) = init (MR, NR) (zeros when init is NULL) + a (MR rows, stride lda)
 * times a panel's chunk (kc, NR), k in order;  pg_row_block:  acc (NP, NR) = a (K) times NP
 * consecutive panels over all K.  MR and NP are constants at each call (inlined, the loops unroll
 * and the sums live in registers).  The AVX2 and AVX-512 instances spell them with intrinsics
 * (_mm256_fmadd / _mm512_fmadd are fma's one rounding per lane): GCC 12 kept the AVX2 sums on
 * the stack, 10-20x slower than BLAS. */
#define PG_MR_MAX 6
#if defined(__AVX2__)
#include <immintrin.h>
#if defined(__AVX512F__) && RF_DTYPE == 32
#define PG_VEC __m512
#define PG_VL 16
#define PG_VZERO _mm512_setzero_ps
#define PG_VSET1 _mm512_set1_ps
#define PG_VLOAD _mm512_loadu_ps
#define PG_VSTORE _mm512_storeu_ps
#define PG_VFMA _mm512_fmadd_ps
#elif defined(__AVX512F__)
#define PG_VEC __m512d
#define PG_VL 8
#define PG_VZERO _mm512_setzero_pd
#define PG_VSET1 _mm512_set1_pd
#define PG_VLOAD _mm512_loadu_pd
#define PG_VSTORE _mm512_storeu_pd
#define PG_VFMA _mm512_fmadd_pd
#elif RF_DTYPE == 32
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
static RF_ALWAYS_INLINE void FN(pg_block)(real *out, const real *init, const real *restrict a,
                                          int lda, const real *restrict panel, int kc,
                                          const int MR)
{
    PG_VEC v[PG_MR_MAX][PG_NV];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < PG_NV; j++)
            v[i][j] = init ? PG_VLOAD(init + i * PG_NR + j * PG_VL) : PG_VZERO();
    for (int k = 0; k < kc; k++) {
        PG_VEC wk[PG_NV];
        for (int j = 0; j < PG_NV; j++)
            wk[j] = PG_VLOAD(panel + (int64_t)k * PG_NR + j * PG_VL);
        for (int i = 0; i < MR; i++) {
            const PG_VEC ai = PG_VSET1(a[(int64_t)i * lda + k]);
            for (int j = 0; j < PG_NV; j++)
                v[i][j] = PG_VFMA(ai, wk[j], v[i][j]);
        }
    }
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < PG_NV; j++)
            PG_VSTORE(out + i * PG_NR + j * PG_VL, v[i][j]);
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
static RF_ALWAYS_INLINE void FN(pg_block)(real *out, const real *init, const real *restrict a,
                                          int lda, const real *restrict panel, int kc,
                                          const int MR)
{
    real acc[PG_MR_MAX][PG_NR];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < PG_NR; j++)
            acc[i][j] = init ? init[i * PG_NR + j] : 0;
    for (int k = 0; k < kc; k++) {
        const real *restrict wk = panel + (int64_t)k * PG_NR;
        for (int i = 0; i < MR; i++) {
            const real ai = a[(int64_t)i * lda + k];
            for (int j = 0; j < PG_NR; j++)
                acc[i][j] = FMA(ai, wk[j], acc[i][j]);
        }
    }
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < PG_NR; j++)
            out[i * PG_NR + j] = acc[i][j];
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

/* One chunk of MR rows (a constant at each call): their partial sums part (MR, NR) carried
 * over the chunk (a, lda; panel) of kc steps of k; after the first chunk they start from part,
 * after the last they go to c (MR rows of width w, stride ldc). */
static RF_ALWAYS_INLINE void FN(pg_chunk_rows)(real *restrict c, int ldc, real *part,
                                               const real *restrict a, int lda,
                                               const real *restrict panel, int kc, int w,
                                               int first, int last, int accumulate, const int MR)
{
    real acc[PG_MR_MAX * PG_NR];
    FN(pg_block)(last ? acc : part, first ? NULL : part, a, lda, panel, kc, MR);
    if (last)
        for (int i = 0; i < MR; i++)
            FN(pg_store)(c + (int64_t)i * ldc, acc + i * PG_NR, w, accumulate);
}

/* pg_chunk_rows for mr = 1..PG_MR_MAX rows. */
static void FN(pg_chunk)(real *restrict c, int ldc, real *part, const real *restrict a, int lda,
                         const real *restrict panel, int kc, int w, int first, int last,
                         int accumulate, int mr)
{
    switch (mr) {
#define PG_CASE(MR)                                                                            \
    case MR:                                                                                   \
        FN(pg_chunk_rows)(c, ldc, part, a, lda, panel, kc, w, first, last, accumulate, MR);    \
        break;
        PG_CASE(1)
        PG_CASE(2)
        PG_CASE(3)
        PG_CASE(4)
        PG_CASE(5)
        PG_CASE(6)
#undef PG_CASE
    }
}

/* C (M,N) += A (M,K) op(W) (accumulate) or C = A op(W) for M <= PG_GROUP rows, P's panels
 * from its start: panel by panel, each PG_KC-step chunk of the panel against every row block of
 * A, so the chunk is read from L1 by all blocks and the panel from L2 by all chunks.  Blocks of
 * PG_MR rows, but the last two share the rows left evenly (B = 32: 6 6 6 6 4 4, not 6 6 6 6 6
 * 2): a block of few rows does few fma per panel vector it loads. */
static void FN(pg_gemm_group)(real *restrict C, const real *restrict A, const real *restrict P,
                              int M, int N, int K, int accumulate)
{
    real part[PG_GROUP * PG_NR]; /* (M, NR) partial sums between chunks */
    const int chunk = K <= 2 * PG_KC ? K : PG_KC;
    for (int j0 = 0; j0 < N; j0 += PG_NR) {
        const int w = N - j0 < PG_NR ? N - j0 : PG_NR;
        const real *restrict panel = P + (int64_t)j0 * K;
        for (int k0 = 0; k0 < K; k0 += chunk) {
            const int kc = K - k0 < chunk ? K - k0 : chunk;
            for (int r = 0, mr; r < M; r += mr) {
                const int left = M - r;
                mr = left >= 2 * PG_MR ? PG_MR : left > PG_MR ? (left + 1) / 2 : left;
                FN(pg_chunk)(C + (int64_t)r * N + j0, N, part + r * PG_NR, A + (int64_t)r * K + k0,
                             K, panel + (int64_t)k0 * PG_NR, kc, w, k0 == 0, k0 + kc == K,
                             accumulate, mr);
            }
        }
    }
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

/* Columns [j0, j1) of one row c (N) += a (K) op(W), or c = a op(W), PG_PANELS panels at a time;
 * j0 is a multiple of PG_NR and j1 too or N.  Every column is the same chain of fmas over k
 * whichever range holds it, so threads that split the columns at panels give pg_gemm's bits. */
static void FN(pg_row_cols)(real *restrict c, const real *restrict a, const real *restrict P,
                            int j0, int j1, int K, int accumulate)
{
    const real *restrict start = (const real *)FN(pg_start)(P);
    j0 = FN(pg_row_panels)(c, a, start, j0, j1, K, accumulate, PG_PANELS);
    FN(pg_row_panels)(c, a, start, j0, j1, K, accumulate, 1);
}

/* C (M,N) += A (M,K) op(W) (accumulate) or C = A op(W), P from pg_pack: PG_GROUP rows at a
 * time, or for one row PG_PANELS panels at a time. */
static void FN(pg_gemm)(real *restrict C, const real *restrict A, const real *restrict P, int M,
                        int N, int K, int accumulate)
{
    if (M == 1) {
        FN(pg_row_cols)(C, A, P, 0, N, K, accumulate);
        return;
    }
    const real *restrict start = (const real *)FN(pg_start)(P);
    for (int r0 = 0; r0 < M; r0 += PG_GROUP)
        FN(pg_gemm_group)(C + (int64_t)r0 * N, A + (int64_t)r0 * K, start,
                          M - r0 < PG_GROUP ? M - r0 : PG_GROUP, N, K, accumulate);
}

/* Scratch elements the recurrent kernels need for packing W_h (H, G), forward and backward. */
static int64_t FN(recurrent_pack_size)(int H, int G)
{
    const int64_t fwd = FN(pg_size)(H, G), bwd = FN(pg_size)(G, H);
    return fwd > bwd ? fwd : bwd;
}

#undef PG_NR_FLOATS
#undef PG_PANELS
#undef PG_MR
#undef PG_KC
#undef PG_GROUP
#undef PG_ALIGN
#undef PG_NR_FLOATS_MAX
#undef PG_NR
#undef PG_NR_MAX
#undef PG_MR_MAX
