#include <string.h>

#include "blas.h"

static rf_sgemm_fn sgemm_ptr;
static rf_dgemm_fn dgemm_ptr;
static rf_sgemv_fn sgemv_ptr;
static rf_dgemv_fn dgemv_ptr;

void rf_blas_init(rf_sgemm_fn sgemm, rf_dgemm_fn dgemm, rf_sgemv_fn sgemv, rf_dgemv_fn dgemv)
{
    sgemm_ptr = sgemm;
    dgemm_ptr = dgemm;
    sgemv_ptr = sgemv;
    dgemv_ptr = dgemv;
}

/* A row-major matrix is its column-major transpose with the same leading dimension, so the
 * row-major C = op(A) op(B) is the column-major C^T = op(B)^T op(A)^T: swap the operands.
 * For M == 1 that is a matrix-vector product: C^T (N) = op(B)^T a, with a = op(A)'s only row
 * (stride lda when A is transposed).  One row always goes to gemv: OpenBLAS's gemm packs the
 * whole matrix for one row (with its Haswell kernels, sgemm_itcopy took 44% of batch-1 sampling
 * at H=100); measured through SciPy, sgemm with one row against sgemv (benchmarks/packed_paths.py,
 * results/packed_paths.log): Haswell kernels 1.3-8x slower, SkylakeX 1.1-1.6x slower, at
 * (K x N) from 100 x 65 to 512 x 2048.
 * The one NaN guard of the kernels: with beta = 0, C is zeroed first, since BLAS may still
 * multiply the old C by 0 (OpenBLAS's gemv scales y, and NaN * 0 is NaN) and callers pass
 * uninitialized outputs. */
#define DEFINE_GEMM(NAME, REAL, GEMM_PTR, GEMV_PTR)                                            \
    void NAME(int trans_a, int trans_b, int M, int N, int K, REAL alpha, const REAL *A,        \
              int lda, const REAL *B, int ldb, REAL beta, REAL *C, int ldc)                    \
    {                                                                                          \
        if (M == 0 || N == 0)                                                                  \
            return;                                                                            \
        if (beta == 0)                                                                         \
            for (int r = 0; r < M; r++)                                                        \
                memset(C + (long)r * ldc, 0, sizeof(REAL) * (size_t)N);                        \
        if (M == 1) {                                                                          \
            char t = trans_b ? 'T' : 'N';                                                      \
            int rows = trans_b ? K : N, cols = trans_b ? N : K, one = 1;                       \
            int inc_a = trans_a ? lda : 1;                                                     \
            GEMV_PTR(&t, &rows, &cols, &alpha, (REAL *)B, &ldb, (REAL *)A, &inc_a, &beta, C,   \
                     &one);                                                                    \
            return;                                                                            \
        }                                                                                      \
        char ta = trans_b ? 'T' : 'N', tb = trans_a ? 'T' : 'N';                               \
        GEMM_PTR(&ta, &tb, &N, &M, &K, &alpha, (REAL *)B, &ldb, (REAL *)A, &lda, &beta, C,     \
                 &ldc);                                                                        \
    }

DEFINE_GEMM(rf_gemm_f32, float, sgemm_ptr, sgemv_ptr)
DEFINE_GEMM(rf_gemm_f64, double, dgemm_ptr, dgemv_ptr)
