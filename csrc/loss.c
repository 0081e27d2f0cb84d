#include <math.h>
#include <stdint.h>
#include <string.h>

#include "blas.h"
#include "loss.h"
#include "omp_blocks.h"
#include "paths.h"
#include "rnnfast.h"

#define RF_VARIANT _base
#define RF_DTYPE 32
#include "real_begin.h"
#include "vmath_tmpl.h"
#include "loss_tmpl.h"
#include "real_end.h"
#define RF_DTYPE 64
#include "real_begin.h"
#include "vmath_tmpl.h"
#include "loss_tmpl.h"
#include "real_end.h"
#undef RF_VARIANT

#if RF_ISA_VARIANTS
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define RF_VARIANT _avx2
#define RF_DTYPE 32
#include "real_begin.h"
#include "vmath_tmpl.h"
#include "loss_tmpl.h"
#include "real_end.h"
#define RF_DTYPE 64
#include "real_begin.h"
#include "vmath_tmpl.h"
#include "loss_tmpl.h"
#include "real_end.h"
#undef RF_VARIANT
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,fma")
#define RF_VARIANT _avx512
#define RF_DTYPE 32
#include "real_begin.h"
#include "vmath_tmpl.h"
#include "loss_tmpl.h"
#include "real_end.h"
#define RF_DTYPE 64
#include "real_begin.h"
#include "vmath_tmpl.h"
#include "loss_tmpl.h"
#include "real_end.h"
#undef RF_VARIANT
#pragma GCC pop_options
#endif

double rf_softmax_xent_f32(float *dlogits, const float *logits, const int64_t *targets, int N, int
                           V)
{
    double result;
    RF_BY_ISA(result =, softmax_xent_f32, (dlogits, logits, targets, N, V))
    return result;
}

double rf_softmax_xent_f64(double *dlogits, const double *logits, const int64_t *targets, int N, int
                           V)
{
    double result;
    RF_BY_ISA(result =, softmax_xent_f64, (dlogits, logits, targets, N, V))
    return result;
}

void rf_exp_array_f32(float *out, const float *x, int64_t n)
{
    RF_BY_ISA(, exp_array_f32, (out, x, n))
}

void rf_exp_array_f64(double *out, const double *x, int64_t n)
{
    RF_BY_ISA(, exp_array_f64, (out, x, n))
}
