/* The C kernels of rnnfast: plain C99, no Python, no allocation, no I/O.
 *
 * Dimension letters: T time steps, B batch, V vocabulary, I a layer's input size, H hidden size,
 * G gates x H.  Arrays are row-major and time-major; the bridge has checked every shape, dtype
 * and index before a kernel runs.  Argument order: outputs, then inputs, then sizes.
 * Forward kernels assign their outputs; backward kernels accumulate (+=) into parameter
 * gradients, which the caller zeroes. */
#ifndef RNNFAST_H
#define RNNFAST_H

#include <stdint.h>

#define RF_DECLARE(real, sfx)                                                                  \
    /* loss = mean_n -log softmax(logits_n)[targets_n]; dlogits (may be NULL) is assigned     \
     * (softmax(logits) - onehot(targets)) / N.  logits, dlogits (N,V); targets (N). */      \
    double rf_softmax_xent_##sfx(real *dlogits, const real *logits, const int64_t *targets,  \
                                 int N, int V);

RF_DECLARE(float, f32)
RF_DECLARE(double, f64)
#undef RF_DECLARE

#endif
