/* The one-call training step (a template: see real_begin.h); train_step.h says what it does.
 * Each part calls the exported kernel the step-by-step path calls, with the same arguments, so
 * the two paths give the same bits; the kernels dispatch on the ISA and share their blocks among
 * the OpenMP threads themselves. */

static void FN(zero_block)(real *a, int64_t k0, int64_t k1)
{
    memset(a + k0, 0, sizeof(real) * (size_t)(k1 - k0));
}

/* a (n) = 0, in blocks shared among the threads. */
static void FN(zero)(real *a, int64_t n)
{
    const int64_t blocks = rf_blocks(n, RF_ELEMENT_BLOCK);
    RF_FOR_BLOCKS(blocks, j, FN(zero_block)(a, j * RF_ELEMENT_BLOCK,
                                            rf_block_end(j, RF_ELEMENT_BLOCK, n)));
}

/* Layer l's descriptor for this call: the model's, with its input (the ids for layer 0, else
 * the output of the layer below: h, or with dropout its dropped output), its initial state and
 * its dropout. */
static struct DT(rf_layer) FN(layer_for_call)(const struct DT(rf_train_model) *M,
                                            const struct DT(rf_train_call) *call, int l)
{
    const int64_t layer_size = (int64_t)M->T * M->B * M->H, state_size = (int64_t)M->B * M->H;
    struct DT(rf_layer) layer = M->layers[l];
    if (l == 0)
        layer.ids = call->x;
    else
        layer.X = call->masks ? M->outs + (l - 1) * layer_size : M->layers[l - 1].hs;
    layer.h0 = call->h0 + l * state_size;
    layer.c0 = M->cell == RF_CELL_LSTM ? call->c0 + l * state_size : NULL;
    if (call->masks) {
        layer.mask = call->masks + l * layer_size;
        layer.out = M->outs + l * layer_size;
    }
    return layer;
}

static void FN(layer_forward)(int cell, const struct DT(rf_layer) *layer,
                              const struct DT(rf_workspace) *ws)
{
    if (cell == RF_CELL_LSTM)
        DT(rf_lstm_forward)(layer, ws);
    else if (cell == RF_CELL_GRU)
        DT(rf_gru_forward)(layer, ws);
    else
        DT(rf_rnn_forward)(layer, ws);
}

static void FN(layer_backward)(int cell, const struct DT(rf_layer_grads) *grads,
                               const struct DT(rf_workspace) *ws,
                               const struct DT(rf_layer) *layer)
{
    if (cell == RF_CELL_LSTM)
        DT(rf_lstm_backward)(grads, ws, layer);
    else if (cell == RF_CELL_GRU)
        DT(rf_gru_backward)(grads, ws, layer);
    else
        DT(rf_rnn_backward)(grads, ws, layer);
}

/* The update of rnnfast/optim.py's optimizer of this kind. */
static void FN(update)(const struct rf_update *u, real *param, const real *grad, real *moment1,
                       real *moment2, int64_t n)
{
    switch (u->kind) {
    case RF_UPDATE_SGD:
        DT(rf_sgd_update)(param, grad, moment1, u->lr, u->momentum, n);
        break;
    case RF_UPDATE_ADAGRAD:
        DT(rf_adagrad_update)(param, grad, moment1, u->lr, u->eps, n);
        break;
    case RF_UPDATE_RMSPROP:
        DT(rf_rmsprop_update)(param, grad, moment1, u->lr, u->alpha, u->eps, n);
        break;
    case RF_UPDATE_ADAM:
        DT(rf_adam_update)(param, grad, moment1, moment2, u->lr, u->beta1, u->beta2, u->eps,
                           u->step, n);
        break;
    default:
        break;
    }
}

static int FN(train_step)(double *loss, const struct DT(rf_train_model) *M,
                          const struct DT(rf_train_call) *call)
{
#define PHASE_DONE(phase)                                                                      \
    if (call->phase_done)                                                                      \
        call->phase_done(call->phase_context, phase);
    const int L = M->L, N = M->T * M->B, H = M->H, V = M->V;
    FN(zero)(M->grad, M->n);
    PHASE_DONE(RF_PHASE_ZERO_GRADS)
    for (int l = 0; l < L; l++) {
        const struct DT(rf_layer) layer = FN(layer_for_call)(M, call, l);
        FN(layer_forward)(M->cell, &layer, &M->ws);
    }
    PHASE_DONE(RF_PHASE_FORWARD)
    const int64_t top_offset = (int64_t)(L - 1) * N * H;
    const real *top = call->masks ? M->outs + top_offset : M->layers[L - 1].hs; /* (N, H) */
    DT(rf_linear_forward)(M->logits, top, M->W_y, M->b_y, N, H, V);
    PHASE_DONE(RF_PHASE_OUTPUT)
    *loss = DT(rf_softmax_xent)(M->dlogits, M->logits, call->y, N, V);
    PHASE_DONE(RF_PHASE_LOSS)
    DT(rf_linear_backward)(M->dtop, M->dW_y, M->db_y, M->dlogits, top, M->W_y, N, H, V);
    PHASE_DONE(RF_PHASE_OUTPUT_BACKWARD)
    for (int l = L - 1; l >= 0; l--) {
        const struct DT(rf_layer) layer = FN(layer_for_call)(M, call, l);
        FN(layer_backward)(M->cell, &M->grads[l], &M->ws, &layer);
    }
    PHASE_DONE(RF_PHASE_BACKWARD)
    if (call->grad_scale != 1)
        DT(rf_scale)(M->grad, call->grad_scale, M->n);
    if (call->clip > 0)
        DT(rf_clip_by_value)(M->grad, call->clip, M->n);
    if (call->max_norm > 0) {
        const double norm = DT(rf_global_norm)(M->grad, M->n);
        if (norm > call->max_norm)
            DT(rf_scale)(M->grad, call->max_norm / (norm + 1e-6), M->n);
    }
    PHASE_DONE(RF_PHASE_CLIP)
    const int finite = isfinite(*loss) != 0;
    if (finite)
        FN(update)(&call->update, M->param, M->grad, call->moment1, call->moment2, M->n);
    PHASE_DONE(RF_PHASE_UPDATE)
    const int64_t state_size = (int64_t)M->B * H, last = (int64_t)(M->T - 1) * state_size;
    for (int l = 0; l < L; l++) {
        memcpy(call->h_T + l * state_size, M->layers[l].hs + last,
               sizeof(real) * (size_t)state_size);
        if (M->cell == RF_CELL_LSTM)
            memcpy(call->c_T + l * state_size, M->layers[l].cs + last,
                   sizeof(real) * (size_t)state_size);
    }
    PHASE_DONE(RF_PHASE_FINAL_STATE)
    return finite ? 0 : 1;
#undef PHASE_DONE
}

static int FN(all_finite)(const real *a, int64_t n)
{
    int finite = 1;
    for (int64_t k = 0; k < n; k++)
        finite &= isfinite(a[k]) != 0;
    return finite;
}
