#include <pthread.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "blas.h"

static rf_sgemm_fn sgemm_ptr;
static rf_dgemm_fn dgemm_ptr;
static rf_sgemv_fn sgemv_ptr;
static rf_dgemv_fn dgemv_ptr;
static rf_blas_get_threads_fn get_threads_ptr;
static rf_blas_set_threads_fn set_threads_ptr;

/* The hold on BLAS's thread count: holders counts the holds taken under the lock, by any
 * thread; saved_threads is the count before the first.  own_holds counts this thread's open
 * begins (the nested ones are free) and own_locked says whether its outermost one took the lock:
 * inside a team forked by a kernel, which holds BLAS at one thread until the join, the workers'
 * GEMMs skip the lock. */
static pthread_mutex_t serial_lock = PTHREAD_MUTEX_INITIALIZER;
static int holders, saved_threads;
static __thread int own_holds, own_locked;

static int inside_held_team(void)
{
#ifdef _OPENMP
    return omp_in_parallel() && __atomic_load_n(&holders, __ATOMIC_ACQUIRE) > 0;
#else
    return 0;
#endif
}

void rf_blas_init(rf_sgemm_fn sgemm, rf_dgemm_fn dgemm, rf_sgemv_fn sgemv, rf_dgemv_fn dgemv)
{
    sgemm_ptr = sgemm;
    dgemm_ptr = dgemm;
    sgemv_ptr = sgemv;
    dgemv_ptr = dgemv;
}

void rf_blas_threads_init(rf_blas_get_threads_fn get, rf_blas_set_threads_fn set)
{
    get_threads_ptr = get && set ? get : NULL;
    set_threads_ptr = get && set ? set : NULL;
}

void rf_blas_serial_begin(void)
{
    if (own_holds++ || !set_threads_ptr || inside_held_team())
        return;
    own_locked = 1;
    pthread_mutex_lock(&serial_lock);
    if (__atomic_fetch_add(&holders, 1, __ATOMIC_ACQ_REL) == 0) {
        saved_threads = get_threads_ptr();
        if (saved_threads != 1)
            set_threads_ptr(1);
    }
    pthread_mutex_unlock(&serial_lock);
}

void rf_blas_serial_end(void)
{
    if (--own_holds || !own_locked)
        return;
    own_locked = 0;
    pthread_mutex_lock(&serial_lock);
    if (__atomic_sub_fetch(&holders, 1, __ATOMIC_ACQ_REL) == 0 && saved_threads != 1)
        set_threads_ptr(saved_threads);
    pthread_mutex_unlock(&serial_lock);
}

/* A row-major matrix is its column-major transpose with the same leading dimension, so the
 * row-major C = op(A) op(B) is the column-major C^T = op(B)^T op(A)^T: swap the operands.
 * For M == 1 that is a matrix-vector product: C^T (N) = op(B)^T a, with a = op(A)'s only row
 * (stride lda when A is transposed).  One row always goes to gemv: OpenBLAS's gemm packs the
 * whole matrix for one row (with its Haswell kernels, sgemm_itcopy took 44% of batch-1 sampling
 * at H=100; sgemm against sgemv: docs/internals.md).
 * Each call holds BLAS at one thread (rf_blas_serial_begin; free inside a kernel that holds it).
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
        rf_blas_serial_begin();                                                                \
        if (M == 1) {                                                                          \
            char t = trans_b ? 'T' : 'N';                                                      \
            int rows = trans_b ? K : N, cols = trans_b ? N : K, one = 1;                       \
            int inc_a = trans_a ? lda : 1;                                                     \
            GEMV_PTR(&t, &rows, &cols, &alpha, (REAL *)B, &ldb, (REAL *)A, &inc_a, &beta, C,   \
                     &one);                                                                    \
        } else {                                                                               \
            char ta = trans_b ? 'T' : 'N', tb = trans_a ? 'T' : 'N';                           \
            GEMM_PTR(&ta, &tb, &N, &M, &K, &alpha, (REAL *)B, &ldb, (REAL *)A, &lda, &beta, C, \
                     &ldc);                                                                    \
        }                                                                                      \
        rf_blas_serial_end();                                                                  \
    }

DEFINE_GEMM(rf_gemm_f32, float, sgemm_ptr, sgemv_ptr)
DEFINE_GEMM(rf_gemm_f64, double, dgemm_ptr, dgemv_ptr)
