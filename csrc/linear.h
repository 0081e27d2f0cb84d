/* The output layer, a dense affine map over N rows.  Row-major; the bridge has checked shapes,
 * dtypes and that no output overlaps an input.  The shapes below write I for In and O for Out
 * (a bare I would clash with complex.h's macro in the bridge). */
#ifndef RNNFAST_LINEAR_H
#define RNNFAST_LINEAR_H

#define RF_DECLARE_LINEAR(real, sfx)                                                           \
    /* out = X W + b (assigned).  out (N,O); X (N,I); W (I,O); b (O). */                       \
    void rf_linear_forward_##sfx(real *out, const real *X, const real *W, const real *b,      \
                                 int N, int In, int Out);                                     \
    /* dW += X^T dout;  db += sum_n dout_n;  dX = dout W^T (assigned; skipped if NULL).        \
     * dX (N,I) or NULL; dW (I,O); db (O); dout (N,O); X (N,I); W (I,O). */                    \
    void rf_linear_backward_##sfx(real *dX, real *dW, real *db, const real *dout,             \
                                  const real *X, const real *W, int N, int In,                 \
                                  int Out);

RF_DECLARE_LINEAR(float, f32)
RF_DECLARE_LINEAR(double, f64)
#undef RF_DECLARE_LINEAR

#endif
