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

/* OpenBLAS's thread-count getter and setter (openblas_get_num_threads, ..._set_...). */
typedef int (*rf_blas_get_threads_fn)(void);
typedef void (*rf_blas_set_threads_fn)(int);

/* Called once by the bridge at import, before any kernel runs. */
void rf_blas_init(rf_sgemm_fn sgemm, rf_dgemm_fn dgemm, rf_sgemv_fn sgemv, rf_dgemv_fn dgemv);
/* The thread controls of the same BLAS, or NULL where the bridge found none: then BLAS keeps
 * whatever thread count it has (and results may depend on it). */
void rf_blas_threads_init(rf_blas_get_threads_fn get, rf_blas_set_threads_fn set);

/* BLAS runs single-threaded inside the kernels, whose own pool (threads.h) splits the work: a
 * BLAS pool beside ours would oversubscribe the cores (OpenBLAS's idle threads busy-wait after
 * each call), and OpenBLAS's threaded GEMM sums in another order than its serial one (1.2e-6
 * apart in float32 between 1 and 2 threads).  Between rf_blas_serial_begin and the matching
 * rf_blas_serial_end BLAS has one thread; the first begin saves its count and the last end
 * restores it, so nested kernels and concurrent callers share one save.  rf_gemm_* take the
 * same hold for each call, free inside a hold of the calling thread and inside an OpenMP team
 * while a hold is open: a kernel that forks a team takes the hold before the fork and ends it
 * after the join. */
void rf_blas_serial_begin(void);
void rf_blas_serial_end(void);

/* C (M,N) = alpha * op(A) op(B) + beta * C, row-major (beta = 0: C is assigned, whatever it
 * held, NaN included); op(A) is (M,K), op(B) is (K,N);
 * trans_a / trans_b nonzero means op(X) = X^T; ld* are row strides in elements. */
void rf_gemm_f32(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                 int lda, const float *B, int ldb, float beta, float *C, int ldc);
void rf_gemm_f64(int trans_a, int trans_b, int M, int N, int K, double alpha, const double *A,
                 int lda, const double *B, int ldb, double beta, double *C, int ldc);

#endif
