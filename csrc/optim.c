#include <math.h>
#include <stddef.h>

#include "omp_blocks.h"
#include "optim.h"
#include "paths.h"

#define RF_VARIANT _base
#define RF_DTYPE 32
#include "real_begin.h"
#include "optim_tmpl.h"
#include "real_end.h"
#define RF_DTYPE 64
#include "real_begin.h"
#include "optim_tmpl.h"
#include "real_end.h"
#undef RF_VARIANT

#if RF_ISA_VARIANTS
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define RF_VARIANT _avx2
#define RF_DTYPE 32
#include "real_begin.h"
#include "optim_tmpl.h"
#include "real_end.h"
#define RF_DTYPE 64
#include "real_begin.h"
#include "optim_tmpl.h"
#include "real_end.h"
#undef RF_VARIANT
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,fma")
#define RF_VARIANT _avx512
#define RF_DTYPE 32
#include "real_begin.h"
#include "optim_tmpl.h"
#include "real_end.h"
#define RF_DTYPE 64
#include "real_begin.h"
#include "optim_tmpl.h"
#include "real_end.h"
#undef RF_VARIANT
#pragma GCC pop_options
#endif

void rf_sgd_update_f32(float *param, const float *grad, float *velocity, double lr, double momentum,
                       int64_t n)
{
    RF_BY_ISA(, sgd_update_f32, (param, grad, velocity, lr, momentum, n))
}

void rf_sgd_update_f64(double *param, const double *grad, double *velocity, double lr, double
                       momentum, int64_t n)
{
    RF_BY_ISA(, sgd_update_f64, (param, grad, velocity, lr, momentum, n))
}

void rf_adagrad_update_f32(float *param, const float *grad, float *memory, double lr, double eps,
                           int64_t n)
{
    RF_BY_ISA(, adagrad_update_f32, (param, grad, memory, lr, eps, n))
}

void rf_adagrad_update_f64(double *param, const double *grad, double *memory, double lr, double eps,
                           int64_t n)
{
    RF_BY_ISA(, adagrad_update_f64, (param, grad, memory, lr, eps, n))
}

void rf_rmsprop_update_f32(float *param, const float *grad, float *mean_square, double lr, double
                           alpha, double eps, int64_t n)
{
    RF_BY_ISA(, rmsprop_update_f32, (param, grad, mean_square, lr, alpha, eps, n))
}

void rf_rmsprop_update_f64(double *param, const double *grad, double *mean_square, double lr, double
                           alpha, double eps, int64_t n)
{
    RF_BY_ISA(, rmsprop_update_f64, (param, grad, mean_square, lr, alpha, eps, n))
}

void rf_adam_update_f32(float *param, const float *grad, float *m, float *v, double lr, double
                        beta1, double beta2, double eps, int64_t step, int64_t n)
{
    RF_BY_ISA(, adam_update_f32, (param, grad, m, v, lr, beta1, beta2, eps, step, n))
}

void rf_adam_update_f64(double *param, const double *grad, double *m, double *v, double lr, double
                        beta1, double beta2, double eps, int64_t step, int64_t n)
{
    RF_BY_ISA(, adam_update_f64, (param, grad, m, v, lr, beta1, beta2, eps, step, n))
}

void rf_clip_by_value_f32(float *grad, double limit, int64_t n)
{
    RF_BY_ISA(, clip_by_value_f32, (grad, limit, n))
}

void rf_clip_by_value_f64(double *grad, double limit, int64_t n)
{
    RF_BY_ISA(, clip_by_value_f64, (grad, limit, n))
}

double rf_global_norm_f32(const float *grad, int64_t n)
{
    double result;
    RF_BY_ISA(result =, global_norm_f32, (grad, n))
    return result;
}

double rf_global_norm_f64(const double *grad, int64_t n)
{
    double result;
    RF_BY_ISA(result =, global_norm_f64, (grad, n))
    return result;
}

void rf_scale_f32(float *grad, double factor, int64_t n)
{
    RF_BY_ISA(, scale_f32, (grad, factor, n))
}

void rf_scale_f64(double *grad, double factor, int64_t n)
{
    RF_BY_ISA(, scale_f64, (grad, factor, n))
}
