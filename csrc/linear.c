#include <stdint.h>

#include "blas.h"
#include "linear.h"
#include "omp_blocks.h"

/* GEMMs only: one instance, no ISA variants. */
#define RF_VARIANT _base
#define RF_DTYPE 32
#include "real_begin.h"
#include "linear_tmpl.h"
#include "real_end.h"
#define RF_DTYPE 64
#include "real_begin.h"
#include "linear_tmpl.h"
#include "real_end.h"
#undef RF_VARIANT

void rf_linear_forward_f32(float *out, const float *X, const float *W, const float *b, int N, int
                           In, int Out)
{
    linear_forward_f32_base(out, X, W, b, N, In, Out);
}

void rf_linear_forward_f64(double *out, const double *X, const double *W, const double *b, int N,
                           int In, int Out)
{
    linear_forward_f64_base(out, X, W, b, N, In, Out);
}

void rf_linear_backward_f32(float *dX, float *dW, float *db, const float *dout, const float *X,
                            const float *W, int N, int In, int Out)
{
    linear_backward_f32_base(dX, dW, db, dout, X, W, N, In, Out);
}

void rf_linear_backward_f64(double *dX, double *dW, double *db, const double *dout, const double *X,
                            const double *W, int N, int In, int Out)
{
    linear_backward_f64_base(dX, dW, db, dout, X, W, N, In, Out);
}
