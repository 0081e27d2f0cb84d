/* A CharLM's whole training step in one call: every layer's forward, the output layer, the
 * softmax cross-entropy, their backward through time, gradient scaling and clipping, and the
 * optimizer update, by the same exported kernels (recurrent.h, linear.h, rnnfast.h, optim.h) in
 * the same order as the step-by-step path of rnnfast/model.py, so both give the same bits.
 *
 * The model descriptor is filled once per model and (T, B) by the bridge, which checked every
 * buffer then; a call brings only what changes from step to step (the ids, the initial state,
 * the dropout masks, the hyperparameters) and a buffer for the final state.  Plain C99: no
 * allocation, no I/O.  Dimension letters as in recurrent.h; N = T B rows of the output layer. */
#ifndef RNNFAST_TRAIN_STEP_H
#define RNNFAST_TRAIN_STEP_H

#include <stdint.h>

#include "recurrent.h"

enum rf_update_kind {
    RF_UPDATE_NONE = 0, /* gradients only (rnnfast.minchar's lossFun) */
    RF_UPDATE_SGD = 1,
    RF_UPDATE_ADAGRAD = 2,
    RF_UPDATE_RMSPROP = 3,
    RF_UPDATE_ADAM = 4
};

/* The optimizer update of a step: its kind and the hyperparameters optim.h names (those the
 * kind does not use are ignored). */
struct rf_update {
    int kind;
    double lr, momentum, alpha, beta1, beta2, eps;
    int64_t step; /* Adam's update count, from 1 */
};

/* The parts of a step, in order, for profiling (the phase callback of a call). */
enum rf_train_phase {
    RF_PHASE_ZERO_GRADS = 0,
    RF_PHASE_FORWARD,          /* every recurrent layer */
    RF_PHASE_OUTPUT,           /* logits = top W_y + b_y */
    RF_PHASE_LOSS,             /* softmax cross-entropy and d logits */
    RF_PHASE_OUTPUT_BACKWARD,  /* dW_y, db_y, d top */
    RF_PHASE_BACKWARD,         /* every recurrent layer, top down */
    RF_PHASE_CLIP,             /* scaling, clipping by value, by global norm */
    RF_PHASE_UPDATE,           /* the optimizer */
    RF_PHASE_FINAL_STATE,      /* h_T, c_T */
    RF_PHASE_COUNT
};
typedef void (*rf_phase_fn)(void *context, int phase);

#define RF_DECLARE_TRAIN_STEP(real, sfx)                                                       \
    struct rf_train_model_##sfx {                                                              \
        int cell, L, T, B, V, H; /* cell: enum rf_cell */                                      \
        /* (L) each layer's sizes, weights and cache (hs, cs, tcs, gates, R); the input (ids  \
         * or X), h0, c0, mask and out are set by each call */                                \
        const struct rf_layer_##sfx *layers;                                                   \
        /* (L) each layer's gradients: dW_x, dW_h, db, db_hn in grad; dhs the layer's output  \
         * gradient (T, B, H), dX the one below's (NULL for layer 0); dh0, dc0 (B, H)         \
         * scratch; dh_T, dc_T NULL */                                                         \
        const struct rf_layer_grads_##sfx *grads;                                              \
        struct rf_workspace_##sfx ws; /* dA, dR (GRU), pack */                                 \
        const real *W_y, *b_y;        /* (H, V), (V) */                                        \
        real *dW_y, *db_y;            /* (H, V), (V), in grad */                               \
        real *logits, *dlogits;       /* (N, V) */                                             \
        real *dtop;                   /* grads[L - 1].dhs: the output layer's dX */            \
        real *outs;                   /* (L, T, B, H) dropped outputs; NULL: no dropout */     \
        real *param, *grad;           /* (n) the flat buffers the parameters lie in */         \
        int64_t n;                                                                             \
    };                                                                                         \
    struct rf_train_call_##sfx {                                                               \
        const int64_t *x, *y;  /* (T, B) ids in [0, V) */                                      \
        const real *h0, *c0;   /* (L, B, H) the initial state; c0 LSTM only */                 \
        const real *masks;     /* (L, T, B, H) dropout factors, or NULL (needs model outs) */  \
        real *h_T, *c_T;       /* (L, B, H) the final state, assigned; c_T LSTM only */        \
        double grad_scale;     /* g *= grad_scale first, unless it is 1 */                     \
        double clip;           /* > 0: g = min(max(g, -clip), clip); 0: not */                 \
        double max_norm;       /* > 0: g *= max_norm / (|g| + 1e-6) where |g| > max_norm */    \
        struct rf_update update;                                                               \
        /* (n) the update's moments: SGD velocity (NULL without momentum), Adagrad memory,   \
         * RMSProp mean_square, Adam m and v (moment2: Adam only) */                          \
        real *moment1, *moment2;                                                               \
        rf_phase_fn phase_done; /* called after each phase with phase_context, or NULL */      \
        void *phase_context;                                                                   \
    };                                                                                         \
    /* The step: zero grad, forward, loss into *loss, backward, clip, update, final state.    \
     * Returns 0; or 1 when the loss is not finite: then no update is made (the parameters    \
     * and the moments are untouched; the gradients and the final state are computed). */     \
    int rf_train_step_##sfx(double *loss, const struct rf_train_model_##sfx *model,            \
                            const struct rf_train_call_##sfx *call);                           \
    /* Whether every element of a (n) is finite. */                                           \
    int rf_all_finite_##sfx(const real *a, int64_t n);

RF_DECLARE_TRAIN_STEP(float, f32)
RF_DECLARE_TRAIN_STEP(double, f64)
#undef RF_DECLARE_TRAIN_STEP

/* Whether every id of ids (n) is in [0, V). */
int rf_ids_in_range(const int64_t *ids, int64_t n, int64_t V);

#endif
