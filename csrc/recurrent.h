/* The recurrent layers (vanilla RNN, LSTM and GRU) over a whole sequence, forward and backward
 * through time, and the sampling loop.  Plain C99: no Python, no allocation, no I/O; the bridge
 * (rnnfast/_kernels.pyx) has checked every shape, dtype, index and aliasing before a call.
 *
 * Dimension letters: T time steps, B batch, I the layer's input size (V for layer 0), H hidden
 * size, G = 4H (LSTM), 3H (GRU) or H (RNN), S sampled streams, L layers, V vocabulary, N sampled
 * steps.
 * Each kernel takes descriptors (sizes and pointers, shapes in the comments) in the order
 * outputs, inputs.  Forward assigns; backward accumulates (+=) into dW_x, dW_h, db, db_hn and
 * assigns dX (may be NULL), dh0, dc0 and the workspace, its carries starting from dh_T, dc_T
 * (or zero).  The equations are those of
 * rnnfast/kernels.py:
 *   RNN    h_t = tanh(x_t W_x + h_{t-1} W_h + b)
 *   LSTM   a_t = x_t W_x + h_{t-1} W_h + b, gates i, f, g, o = sig(a_i), sig(a_f), tanh(a_g),
 *          sig(a_o);  c_t = f c_{t-1} + i g;  h_t = o tanh(c_t)
 *   GRU    a_t = x_t W_x + b,  R_t = h_{t-1} W_h + (0, 0, b_hn),  r = sig(a_r + R_r),
 *          z = sig(a_z + R_z),  n = tanh(a_n + r R_n);  h_t = (1 - z) n + z h_{t-1} */
#ifndef RNNFAST_RECURRENT_H
#define RNNFAST_RECURRENT_H

#include <stdint.h>

/* The cells, as the bridge numbers them, and their gate blocks: G = RF_CELL_GATES(cell) * H. */
enum rf_cell { RF_CELL_RNN = 0, RF_CELL_LSTM = 1, RF_CELL_GRU = 2 };
#define RF_CELL_GATES(cell) ((cell) == RF_CELL_LSTM ? 4 : (cell) == RF_CELL_GRU ? 3 : 1)

#define RF_DECLARE_RECURRENT(real, sfx)                                                        \
    /* One layer over a sequence: its sizes, input, parameters, and the cache that forward   \
     * writes and backward reads.  The input is ids (layer 0: x_t W_x is the row gather      \
     * W_x[ids]) or X; exactly one of the two is non-NULL. */                                 \
    struct rf_layer_##sfx {                                                                    \
        int T, B, In, H; /* In: the input size I (complex.h, in the bridge, defines I) */ \
        const int64_t *ids; /* (T, B) character ids in [0, I), or NULL */                     \
        const real *X;      /* (T, B, I), or NULL */                                           \
        const real *W_x;    /* (I, G) */                                                       \
        const real *W_h;    /* (H, G) */                                                       \
        const real *b;      /* (G) */                                                          \
        const real *h0;     /* (B, H) */                                                       \
        const real *c0;     /* (B, H); LSTM only, NULL for the RNN */                          \
        const real *b_hn;   /* (H); GRU only */                                                \
        real *hs;           /* (T, B, H) h_t */                                                \
        real *cs;           /* (T, B, H) c_t; LSTM only */                                     \
        real *tcs;          /* (T, B, H) tanh(c_t); LSTM only */                               \
        real *gates;        /* (T, B, G) activated LSTM i, f, g, o / GRU r, z, n; not RNN */   \
        real *R;            /* (T, B, 3H) R_t = h_{t-1} W_h + (0, 0, b_hn); GRU only */        \
        /* Dropout on the layer's output: both NULL (none) or both set.  The recurrence reads  \
         * hs; the layer above reads out, and backward takes dhs as d loss / d out. */          \
        const real *mask;   /* (T, B, H) each output's factor: 0 or 1 / (1 - p) */             \
        real *out;          /* (T, B, H) out_t = h_t * mask_t; forward writes it */            \
    };                                                                                         \
    /* The gradients of one layer: dhs in, the rest out. */                                    \
    struct rf_layer_grads_##sfx {                                                              \
        real *dX;        /* (T, B, I) assigned, or NULL (ids input, or not wanted) */          \
        real *dW_x;      /* (I, G) += */                                                       \
        real *dW_h;      /* (H, G) += */                                                       \
        real *db;        /* (G) += */                                                          \
        real *dh0;       /* (B, H) assigned */                                                 \
        real *dc0;       /* (B, H) assigned; LSTM only */                                      \
        real *db_hn;     /* (H) +=; GRU only */                                                \
        const real *dhs;  /* (T, B, H) d loss / d h_t (/ d out_t with dropout) from above */    \
        /* (B, H) d loss / d h_{T-1}, d loss / d c_{T-1} from beyond the sequence (the final   \
         * state's gradient, past any dropout): the carries into step T-1.  NULL: zero; dc_T   \
         * is LSTM only. */                                                                    \
        const real *dh_T;                                                                      \
        const real *dc_T;                                                                      \
    };                                                                                         \
    /* Scratch, assigned by the kernels. */                                                   \
    struct rf_workspace_##sfx {                                                                \
        real *dA;   /* (T, B, G) d loss / d a_t; backward only */                              \
        real *dR;   /* (T, B, 3H) d loss / d R_t; GRU backward only */                         \
        real *pack; /* (rf_recurrent_pack_size(H, G)) W_h packed for the per-step products */  \
    };                                                                                         \
    /* The sampling loop's model, state, options and scratch. */                              \
    struct rf_sampler_##sfx {                                                                  \
        int L, S, H, V;                                                                        \
        const real *const *W_x; /* L pointers: (V, G) for layer 0, (H, G) above */             \
        const real *const *W_h; /* L pointers: (H, G) */                                       \
        const real *const *b;   /* L pointers: (G) */                                          \
        const real *const *b_hn; /* L pointers: (H) for a GRU; NULL otherwise */               \
        const real *W_y;        /* (H, V) */                                                   \
        const real *b_y;        /* (V) */                                                      \
        real *h;                /* (L, S, H) in/out */                                         \
        real *c;                /* (L, S, H) in/out; NULL: an RNN or a GRU */                  \
        double temperature;     /* > 0 */                                                      \
        int top_k;              /* <= 0: no top-k */                                           \
        double top_p;           /* in (0, 1]; 1: no top-p */                                   \
        int argmax;             /* nonzero: the first largest logit, no draw */                \
        int apart;              /* nonzero: each stream's products as if it were drawn alone */\
        real *act;              /* (S, G) scratch */                                           \
        real *rec;              /* (S, G) scratch; GRU only */                                 \
        real *cbuf, *tcbuf;     /* (S, H) scratch */                                           \
        real *logits;           /* (S, V) scratch */                                           \
        double *w, *sel;        /* (S, V) scratch */                                           \
        int64_t *ids;           /* (S) scratch */                                              \
        real *pack;             /* (rf_sample_pack_size) scratch; NULL where that is 0 */      \
    };                                                                                         \
    void rf_rnn_forward_##sfx(const struct rf_layer_##sfx *layer,                              \
                              const struct rf_workspace_##sfx *ws);                            \
    void rf_rnn_backward_##sfx(const struct rf_layer_grads_##sfx *grads,                       \
                               const struct rf_workspace_##sfx *ws,                            \
                               const struct rf_layer_##sfx *layer);                            \
    void rf_lstm_forward_##sfx(const struct rf_layer_##sfx *layer,                             \
                               const struct rf_workspace_##sfx *ws);                           \
    void rf_lstm_backward_##sfx(const struct rf_layer_grads_##sfx *grads,                      \
                                const struct rf_workspace_##sfx *ws,                           \
                                const struct rf_layer_##sfx *layer);                           \
    void rf_gru_forward_##sfx(const struct rf_layer_##sfx *layer,                              \
                              const struct rf_workspace_##sfx *ws);                            \
    void rf_gru_backward_##sfx(const struct rf_layer_grads_##sfx *grads,                       \
                               const struct rf_workspace_##sfx *ws,                            \
                               const struct rf_layer_##sfx *layer);                            \
    /* Generate N ids for S streams (reference.sample / reference.draw).  out (N, S);         \
     * uniforms (N, S); first_ids (S). */                                                     \
    void rf_sample_##sfx(int64_t *out, const struct rf_sampler_##sfx *sampler,                 \
                         const double *uniforms, const int64_t *first_ids, int N);             \
    /* Elements of the sampler's pack for its sizes, cell and the paths in force: 0 when the  \
     * products go through BLAS (pack NULL). */                                               \
    int64_t rf_sample_pack_size_##sfx(const struct rf_sampler_##sfx *sampler);                 \
    /* Elements of the workspace's pack (G = 4H LSTM, 3H GRU, H RNN). */                      \
    int64_t rf_recurrent_pack_size_##sfx(int H, int G);                                        \
    /* out (n) = the kernels' own tanh / sigmoid of x (n), for the error test against libm. */ \
    void rf_vec_tanh_##sfx(real *out, const real *x, int64_t n);                               \
    void rf_vec_sigmoid_##sfx(real *out, const real *x, int64_t n);

RF_DECLARE_RECURRENT(float, f32)
RF_DECLARE_RECURRENT(double, f64)
#undef RF_DECLARE_RECURRENT

#endif
