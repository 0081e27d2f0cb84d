# The C contract of csrc/: declarations only; the checks and calls live in _kernels.pyx.
from libc.stdint cimport int64_t

cdef extern from "blas.h" nogil:
    ctypedef void (*rf_sgemm_fn)(char *, char *, int *, int *, int *, float *, float *, int *,
                                 float *, int *, float *, float *, int *)
    ctypedef void (*rf_dgemm_fn)(char *, char *, int *, int *, int *, double *, double *, int *,
                                 double *, int *, double *, double *, int *)
    ctypedef void (*rf_sgemv_fn)(char *, int *, int *, float *, float *, int *, float *, int *,
                                 float *, float *, int *)
    ctypedef void (*rf_dgemv_fn)(char *, int *, int *, double *, double *, int *, double *,
                                 int *, double *, double *, int *)
    void rf_blas_init(rf_sgemm_fn sgemm, rf_dgemm_fn dgemm, rf_sgemv_fn sgemv,
                      rf_dgemv_fn dgemv)

cdef extern from "rnnfast.h" nogil:
    double rf_softmax_xent_f32(float *dlogits, const float *logits, const int64_t *targets,
                               int N, int V)
    double rf_softmax_xent_f64(double *dlogits, const double *logits, const int64_t *targets,
                               int N, int V)
