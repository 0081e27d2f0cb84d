/* Test hooks of the loss kernels (the kernels themselves are declared in rnnfast.h). */
#ifndef RNNFAST_LOSS_H
#define RNNFAST_LOSS_H

#include <stdint.h>

/* out[k] = the vectorized exp of vmath_tmpl.h applied to x[k]; for the accuracy tests. */
void rf_exp_array_f32(float *out, const float *x, int64_t n);
void rf_exp_array_f64(double *out, const double *x, int64_t n);

#endif
