/* The per-step recurrent products over a weight matrix packed once per sequence (a template: see
 * real_begin.h), included in recurrent.c before recurrent_tmpl.h.
 *
 *   C (M,N) += A (M,K) op(W)   or   C = A op(W)       op(W) = W_h (K=H, N=G) forward,
 *                                                     W_h^T (K=G, N=H) for the backward carry
 *
 * OpenBLAS re-packs W_h on every one of the T calls per layer, which cost a third of each
 * per-step product at B=50, H=128 (measured: sgemm_itcopy/oncopy 10% of a charrnn-default
 * train_step).  Here op(W) is copied once into panels of NR columns, each (K, NR) contiguous
 * and zero-padded, and a register-blocked loop (MR = 6 or 4 rows x NR columns of C held in vector
 * registers, one fma per element of the block and k) streams the panels.  It needs fused
 * multiply-add to keep up with OpenBLAS's kernel, so it is compiled for AVX-512F+FMA only and
 * used when the CPU has both (GCC on x86-64 picks at run time, like RF_VECTOR_CLONES; a build
 * with -march=native that has them uses it directly); elsewhere the products go to BLAS.
 * fma is an exact IEEE operation (one rounding), so the result does not depend on the
 * vector width, and differs from BLAS's only in the order of the sum over k, as BLAS's own
 * kernels do between CPUs.  Measured with a standalone prototype at 1 thread, GFLOP/s against
 * OpenBLAS sgemm on the same shapes: B=50 H=128  ~100 vs ~78;  B=32 H=512  ~100-110 vs ~62. */

#if defined(__AVX512F__) && defined(__FMA__)
#define RF_PG_TARGET
#define RF_PG_CPU_OK() 1
#elif defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__GLIBC__) \
    && !defined(RNNFAST_NO_CLONES)
#define RF_PG_TARGET __attribute__((target("avx512f,fma")))
#define RF_PG_CPU_OK() (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma"))
#endif

#ifdef RF_PG_TARGET
#if RF_DTYPE == 32
#define PG_NR 64 /* four 16-float vectors */
#define PG_FMA fmaf
#else
#define PG_NR 32
#define PG_FMA fma
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

#define PG_MR 6
#define PG_KERNEL FN(pg_gemm6)
#include "pgemm_kernel_tmpl.h"
#undef PG_MR
#undef PG_KERNEL
#define PG_MR 4
#define PG_KERNEL FN(pg_gemm4)
#include "pgemm_kernel_tmpl.h"
#undef PG_MR
#undef PG_KERNEL

/* 6-row blocks where a panel (K, NR) stays in L1 (K <= 192), 4-row blocks past that: measured
 * (1 thread, GFLOP/s) at B=50 H=128 6 rows ~100, 4 rows ~98-104 but the train step 2% slower;
 * at B=32 H=512 6 rows ~97, 4 rows ~111; at B=64 H=1024 6 rows ~81-85, 4 rows ~99-108. */
RF_PG_TARGET
static void FN(pg_gemm)(real *restrict C, const real *restrict A, const real *restrict P, int M,
                        int N, int K, int accumulate)
{
    if (K <= 192)
        FN(pg_gemm6)(C, A, P, M, N, K, accumulate);
    else
        FN(pg_gemm4)(C, A, P, M, N, K, accumulate);
}

/* Whether the per-step products of M rows use the packed path: one row stays a BLAS gemv. */
static int FN(pg_use)(int M)
{
    return M >= 2 && RF_PG_CPU_OK();
}

#undef PG_NR
#undef PG_FMA
#else
static int64_t FN(pg_size)(int K, int N)
{
    (void)K;
    (void)N;
    return 0;
}
static void FN(pg_pack)(real *P, const real *W, int K, int N, int trans)
{
    (void)P, (void)W, (void)K, (void)N, (void)trans;
}
static void FN(pg_gemm)(real *C, const real *A, const real *P, int M, int N, int K, int acc)
{
    (void)C, (void)A, (void)P, (void)M, (void)N, (void)K, (void)acc;
}
static int FN(pg_use)(int M)
{
    (void)M;
    return 0;
}
#endif

/* Scratch elements the recurrent kernels need for packing W_h (H, G), forward and backward. */
int64_t FN(rf_recurrent_pack_size)(int H, int G)
{
    const int64_t fwd = FN(pg_size)(H, G), bwd = FN(pg_size)(G, H);
    return fwd > bwd ? fwd : bwd;
}
