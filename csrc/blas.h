/* The one door to BLAS.  The bridge hands in SciPy's OpenBLAS entry points
 * (scipy.linalg.cython_blas), so the C has no BLAS headers and no link line.
 * All wrappers take row-major matrices, the layout of every array in rnnfast. */
#ifndef RNNFAST_BLAS_H
#define RNNFAST_BLAS_H

/* Fortran BLAS signatures, exactly as scipy.linalg.cython_blas exports them. */
typedef void (*rf_sgemm_fn)(char *transa, char *transb, int *m, int *n, int *k, float *alpha,
                            float *a, int *lda, float *b, int *ldb, float *beta, float *c,
                            int *ldc);
typedef void (*rf_dgemm_fn)(char *transa, char *transb, int *m, int *n, int *k, double *alpha,
                            double *a, int *lda, double *b, int *ldb, double *beta, double *c,
                            int *ldc);
typedef void (*rf_sgemv_fn)(char *trans, int *m, int *n, float *alpha, float *a, int *lda,
                            float *x, int *incx, float *beta, float *y, int *incy);
typedef void (*rf_dgemv_fn)(char *trans, int *m, int *n, double *alpha, double *a, int *lda,
                            double *x, int *incx, double *beta, double *y, int *incy);

/* Called once by the bridge at import, before any kernel runs. */
void rf_blas_init(rf_sgemm_fn sgemm, rf_dgemm_fn dgemm, rf_sgemv_fn sgemv, rf_dgemv_fn dgemv);

/* C (M,N) = alpha * op(A) op(B) + beta * C, row-major (beta = 0: C is assigned, whatever it
 * held, NaN included); op(A) is (M,K), op(B) is (K,N);
 * trans_a / trans_b nonzero means op(X) = X^T; ld* are row strides in elements. */
void rf_gemm_f32(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                 int lda, const float *B, int ldb, float beta, float *C, int ldc);
void rf_gemm_f64(int trans_a, int trans_b, int M, int N, int K, double alpha, const double *A,
                 int lda, const double *B, int ldb, double beta, double *C, int ldc);

#endif
