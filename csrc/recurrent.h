/* The recurrent layers (vanilla RNN and LSTM) over a whole sequence, forward and backward through
 * time, and the sampling loop.  Plain C99: no Python, no allocation, no I/O; the bridge
 * (rnnfast/_recurrent.pxi) has checked every shape, dtype, index and aliasing before a call.
 *
 * Dimension letters: T time steps, B batch, I the layer's input size (V for layer 0; the
 * parameter is named In here: complex.h, which the bridge includes, defines I), H hidden
 * size, G = 4H (LSTM) or H (RNN), S sampled streams, L layers, V vocabulary, N sampled steps.
 * A layer's input is either ids (T*B) (layer 0: x_t W_x is the row gather W_x[ids]) or X
 * (T, B, I); exactly one of the two is non-NULL.  Forward assigns; backward accumulates (+=) into
 * dW_x, dW_h, db and assigns dX (may be NULL), dh0, dc0, and the scratches dA and pack.
 * The equations are those of rnnfast/reference.py. */
#ifndef RNNFAST_RECURRENT_H
#define RNNFAST_RECURRENT_H

#include <stdint.h>

#define RF_DECLARE_RECURRENT(real, sfx)                                                        \
    /* h_t = tanh(x_t W_x + h_{t-1} W_h + b).  hs (T,B,H) out; W_x (I,H); W_h (H,H); b (H);  \
     * h0 (B,H). */                                                                           \
    void rf_rnn_forward_##sfx(real *hs, real *pack, const int64_t *ids, const real *X,        \
                              const real *W_x, const real *W_h, const real *b, const real *h0, \
                              int T, int B, int In, int H);                                    \
    /* dA (T,B,H) scratch out; dH (T,B,H) in; hs as rnn_forward wrote it. */                  \
    void rf_rnn_backward_##sfx(real *dX, real *dW_x, real *dW_h, real *db, real *dh0,         \
                               real *dA, real *pack, const real *dH, const int64_t *ids,       \
                               const real *X, const real *hs, const real *W_x,                 \
                               const real *W_h, const real *h0, int T, int B, int In, int H);  \
    /* a_t = x_t W_x + h_{t-1} W_h + b, gates i, f, g, o; c_t = f c_{t-1} + i g;              \
     * h_t = o tanh(c_t).  hs, cs, tcs (T,B,H) out; gates (T,B,4H) out (activated);           \
     * W_x (I,4H); W_h (H,4H); b (4H); h0, c0 (B,H). */                                       \
    void rf_lstm_forward_##sfx(real *hs, real *cs, real *tcs, real *gates, real *pack,         \
                               const int64_t *ids, const real *X, const real *W_x,             \
                               const real *W_h, const real *b, const real *h0, const real *c0, \
                               int T, int B, int In, int H);                                   \
    void rf_lstm_backward_##sfx(real *dX, real *dW_x, real *dW_h, real *db, real *dh0,        \
                                real *dc0, real *dA, real *pack, const real *dH,               \
                                const int64_t *ids,                                            \
                                const real *X, const real *hs, const real *cs,                 \
                                const real *tcs, const real *gates, const real *W_x,           \
                                const real *W_h, const real *h0, const real *c0, int T, int B, \
                                int In, int H);                                                 \
    /* Generate N ids for S streams (reference.sample / reference.draw).  out (N,S);          \
     * uniforms (N,S); first_ids (S); h, c (L,S,H) in/out (c NULL: RNN); W_x[l], W_h[l], b[l] \
     * the layers' weights; W_y (H,V); b_y (V); top_k <= 0: no top-k.  Scratch: act (S,G),    \
     * cbuf, tcbuf (S,H), logits (S,V), w, sel (V), ids (S). */                               \
    void rf_sample_##sfx(int64_t *out, const double *uniforms, const int64_t *first_ids,      \
                         real *h, real *c, const real *const *W_x, const real *const *W_h,    \
                         const real *const *b, const real *W_y, const real *b_y,              \
                         double temperature, int top_k, int argmax, int N, int S, int L,      \
                         int H, int V, real *act, real *cbuf, real *tcbuf, real *logits,      \
                         double *w, double *sel, int64_t *ids);                               \
    /* Elements of the scratch pack that the four kernels above take (W_h packed once per     \
     * call for the per-step products; G = 4H LSTM, H RNN). */                                \
    int64_t rf_recurrent_pack_size_##sfx(int H, int G);                                       \
    /* out (n) = the kernels' own tanh / sigmoid of x (n), for the error test against libm. */ \
    void rf_vec_tanh_##sfx(real *out, const real *x, int64_t n);                              \
    void rf_vec_sigmoid_##sfx(real *out, const real *x, int64_t n);

RF_DECLARE_RECURRENT(float, f32)
RF_DECLARE_RECURRENT(double, f64)
#undef RF_DECLARE_RECURRENT

#endif
