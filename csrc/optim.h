/* Optimizer updates, clipping and norms over one flat buffer (the parameters' layout): each
 * kernel is one pass over n elements.  Hyperparameters arrive as double and are rounded once to
 * the element type, as NumPy does with a Python float against a float32 array; every product
 * and quotient is then taken in that type, in the reference's order.  The bridge has checked
 * that the buffers have n elements each and do not overlap. */
#ifndef RNNFAST_OPTIM_H
#define RNNFAST_OPTIM_H

#include <stdint.h>

#define RF_DECLARE_OPTIM(real, sfx)                                                            \
    /* v = momentum v + g;  p -= lr v     (momentum == 0: p -= lr g, velocity unused/NULL) */  \
    void rf_sgd_update_##sfx(real *param, const real *grad, real *velocity, double lr,        \
                             double momentum, int64_t n);                                      \
    /* mem += g^2;  p -= lr g / sqrt(mem + eps) */                                             \
    void rf_adagrad_update_##sfx(real *param, const real *grad, real *memory, double lr,      \
                                 double eps, int64_t n);                                       \
    /* ms = alpha ms + (1 - alpha) g^2;  p -= lr g / (sqrt(ms) + eps) */                       \
    void rf_rmsprop_update_##sfx(real *param, const real *grad, real *mean_square, double lr, \
                                 double alpha, double eps, int64_t n);                         \
    /* m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;                                        \
     * p -= lr (m / (1 - b1^step)) / (sqrt(v / (1 - b2^step)) + eps) */                        \
    void rf_adam_update_##sfx(real *param, const real *grad, real *m, real *v, double lr,     \
                              double beta1, double beta2, double eps, int64_t step,            \
                              int64_t n);                                                      \
    /* g = min(max(g, -limit), limit); NaN stays NaN */                                        \
    void rf_clip_by_value_##sfx(real *grad, double limit, int64_t n);                          \
    /* sqrt(sum g^2), accumulated in double */                                                 \
    double rf_global_norm_##sfx(const real *grad, int64_t n);                                  \
    /* g *= factor */                                                                          \
    void rf_scale_##sfx(real *grad, double factor, int64_t n);

RF_DECLARE_OPTIM(float, f32)
RF_DECLARE_OPTIM(double, f64)
#undef RF_DECLARE_OPTIM

#endif
