# The C contract of csrc/, all of it: the extern declarations, then one fused inline dispatcher
# per kernel pair (name_f32 / name_f64 -> name over ``floating``), so the bridge in _kernels.pyx
# is written once for both dtypes and the compiler picks the C function by the pointer type.
from cython cimport floating
from libc.stdint cimport int64_t

cdef extern from "blas.h" nogil:
    ctypedef void (*rf_sgemm_fn)(char *, char *, int *, int *, int *, float *, float *, int *,
                                 float *, int *, float *, float *, int *)
    ctypedef void (*rf_dgemm_fn)(char *, char *, int *, int *, int *, double *, double *, int *,
                                 double *, int *, double *, double *, int *)
    ctypedef void (*rf_sgemv_fn)(char *, int *, int *, float *, float *, int *, float *, int *,
                                 float *, float *, int *)
    ctypedef void (*rf_dgemv_fn)(char *, int *, int *, double *, double *, int *, double *,
                                 int *, double *, double *, int *)
    void rf_blas_init(rf_sgemm_fn sgemm, rf_dgemm_fn dgemm, rf_sgemv_fn sgemv,
                      rf_dgemv_fn dgemv)
    ctypedef int (*rf_blas_get_threads_fn)()
    ctypedef void (*rf_blas_set_threads_fn)(int)
    void rf_blas_threads_init(rf_blas_get_threads_fn get, rf_blas_set_threads_fn set)

cdef extern from "threads.h" nogil:
    int rf_threads_max()
    void rf_threads_set(int n)
    int rf_threads_openmp()
    double rf_threads_min_flops()
    void rf_threads_set_min_flops(double flops)
    int rf_threads_team()
    double rf_threads_late_wait()
    void rf_threads_set_late_wait(double seconds)

cdef extern from "paths.h" nogil:
    enum:
        RF_ISA_BASELINE
        RF_ISA_AVX2
        RF_ISA_AVX512
        RF_PACKED_AUTO
        RF_PACKED_OFF
        RF_PACKED_ON
    struct rf_paths:
        int isa
        int packed
        int64_t chunk_bytes
        int64_t chunk_rows
    int rf_isa_available(int isa)
    int rf_paths_set(const rf_paths *paths)
    rf_paths rf_paths_get()

cdef extern from "rnnfast.h" nogil:
    double rf_softmax_xent_f32(float *dlogits, const float *logits, const int64_t *targets,
                               int N, int V)
    double rf_softmax_xent_f64(double *dlogits, const double *logits, const int64_t *targets,
                               int N, int V)

cdef extern from "loss.h" nogil:
    void rf_exp_array_f32(float *out, const float *x, int64_t n)
    void rf_exp_array_f64(double *out, const double *x, int64_t n)

cdef extern from "optim.h" nogil:
    void rf_sgd_update_f32(float *param, const float *grad, float *velocity, double lr,
                           double momentum, int64_t n)
    void rf_sgd_update_f64(double *param, const double *grad, double *velocity, double lr,
                           double momentum, int64_t n)
    void rf_adagrad_update_f32(float *param, const float *grad, float *memory, double lr,
                               double eps, int64_t n)
    void rf_adagrad_update_f64(double *param, const double *grad, double *memory, double lr,
                               double eps, int64_t n)
    void rf_rmsprop_update_f32(float *param, const float *grad, float *mean_square, double lr,
                               double alpha, double eps, int64_t n)
    void rf_rmsprop_update_f64(double *param, const double *grad, double *mean_square,
                               double lr, double alpha, double eps, int64_t n)
    void rf_adam_update_f32(float *param, const float *grad, float *m, float *v, double lr,
                            double beta1, double beta2, double eps, int64_t step, int64_t n)
    void rf_adam_update_f64(double *param, const double *grad, double *m, double *v,
                            double lr, double beta1, double beta2, double eps, int64_t step,
                            int64_t n)
    void rf_clip_by_value_f32(float *grad, double limit, int64_t n)
    void rf_clip_by_value_f64(double *grad, double limit, int64_t n)
    double rf_global_norm_f32(const float *grad, int64_t n)
    double rf_global_norm_f64(const double *grad, int64_t n)
    void rf_scale_f32(float *grad, double factor, int64_t n)
    void rf_scale_f64(double *grad, double factor, int64_t n)

cdef extern from "linear.h" nogil:
    void rf_linear_forward_f32(float *out, const float *X, const float *W, const float *b,
                               int N, int In, int Out)
    void rf_linear_forward_f64(double *out, const double *X, const double *W, const double *b,
                               int N, int In, int Out)
    void rf_linear_backward_f32(float *dX, float *dW, float *db, const float *dout,
                                const float *X, const float *W, int N, int In, int Out)
    void rf_linear_backward_f64(double *dX, double *dW, double *db, const double *dout,
                                const double *X, const double *W, int N, int In, int Out)

cdef extern from "recurrent.h" nogil:
    struct rf_layer_f32:
        int T, B, In, H
        const int64_t *ids
        const float *X
        const float *W_x
        const float *W_h
        const float *b
        const float *h0
        const float *c0
        const float *b_hn
        float *hs
        float *cs
        float *tcs
        float *gates
        float *R
        const float *mask
        float *out
    struct rf_layer_grads_f32:
        float *dX
        float *dW_x
        float *dW_h
        float *db
        float *dh0
        float *dc0
        float *db_hn
        const float *dhs
        const float *dh_T
        const float *dc_T
    struct rf_workspace_f32:
        float *dA
        float *dR
        float *pack
    struct rf_sampler_f32:
        int L, S, H, V
        const float *const *W_x
        const float *const *W_h
        const float *const *b
        const float *const *b_hn
        const float *W_y
        const float *b_y
        float *h
        float *c
        double temperature
        int top_k
        double top_p
        int argmax
        int apart
        float *act
        float *rec
        float *cbuf
        float *tcbuf
        float *logits
        double *w
        double *sel
        int64_t *ids
        float *pack
    struct rf_layer_f64:
        int T, B, In, H
        const int64_t *ids
        const double *X
        const double *W_x
        const double *W_h
        const double *b
        const double *h0
        const double *c0
        const double *b_hn
        double *hs
        double *cs
        double *tcs
        double *gates
        double *R
        const double *mask
        double *out
    struct rf_layer_grads_f64:
        double *dX
        double *dW_x
        double *dW_h
        double *db
        double *dh0
        double *dc0
        double *db_hn
        const double *dhs
        const double *dh_T
        const double *dc_T
    struct rf_workspace_f64:
        double *dA
        double *dR
        double *pack
    struct rf_sampler_f64:
        int L, S, H, V
        const double *const *W_x
        const double *const *W_h
        const double *const *b
        const double *const *b_hn
        const double *W_y
        const double *b_y
        double *h
        double *c
        double temperature
        int top_k
        double top_p
        int argmax
        int apart
        double *act
        double *rec
        double *cbuf
        double *tcbuf
        double *logits
        double *w
        double *sel
        int64_t *ids
        double *pack
    void rf_rnn_forward_f32(const rf_layer_f32 *layer, const rf_workspace_f32 *ws)
    void rf_rnn_backward_f32(const rf_layer_grads_f32 *grads, const rf_workspace_f32 *ws,
                             const rf_layer_f32 *layer)
    void rf_lstm_forward_f32(const rf_layer_f32 *layer, const rf_workspace_f32 *ws)
    void rf_lstm_backward_f32(const rf_layer_grads_f32 *grads, const rf_workspace_f32 *ws,
                              const rf_layer_f32 *layer)
    void rf_gru_forward_f32(const rf_layer_f32 *layer, const rf_workspace_f32 *ws)
    void rf_gru_backward_f32(const rf_layer_grads_f32 *grads, const rf_workspace_f32 *ws,
                             const rf_layer_f32 *layer)
    void rf_sample_f32(int64_t *out, const rf_sampler_f32 *sampler, const double *uniforms,
                       const int64_t *first_ids, int N)
    int64_t rf_sample_pack_size_f32(const rf_sampler_f32 *sampler)
    void rf_rnn_forward_f64(const rf_layer_f64 *layer, const rf_workspace_f64 *ws)
    void rf_rnn_backward_f64(const rf_layer_grads_f64 *grads, const rf_workspace_f64 *ws,
                             const rf_layer_f64 *layer)
    void rf_lstm_forward_f64(const rf_layer_f64 *layer, const rf_workspace_f64 *ws)
    void rf_lstm_backward_f64(const rf_layer_grads_f64 *grads, const rf_workspace_f64 *ws,
                              const rf_layer_f64 *layer)
    void rf_gru_forward_f64(const rf_layer_f64 *layer, const rf_workspace_f64 *ws)
    void rf_gru_backward_f64(const rf_layer_grads_f64 *grads, const rf_workspace_f64 *ws,
                             const rf_layer_f64 *layer)
    void rf_sample_f64(int64_t *out, const rf_sampler_f64 *sampler, const double *uniforms,
                       const int64_t *first_ids, int N)
    int64_t rf_sample_pack_size_f64(const rf_sampler_f64 *sampler)
    int64_t rf_recurrent_pack_size_f32(int H, int G)
    int64_t rf_recurrent_pack_size_f64(int H, int G)
    void rf_vec_tanh_f32(float *out, const float *x, int64_t n)
    void rf_vec_tanh_f64(double *out, const double *x, int64_t n)
    void rf_vec_sigmoid_f32(float *out, const float *x, int64_t n)
    void rf_vec_sigmoid_f64(double *out, const double *x, int64_t n)


cdef extern from "train_step.h" nogil:
    enum:
        RF_CELL_RNN
        RF_CELL_LSTM
        RF_CELL_GRU
        RF_UPDATE_NONE
        RF_UPDATE_SGD
        RF_UPDATE_ADAGRAD
        RF_UPDATE_RMSPROP
        RF_UPDATE_ADAM
        RF_PHASE_COUNT
    ctypedef void (*rf_phase_fn)(void *context, int phase) noexcept nogil
    struct rf_update:
        int kind
        double lr, momentum, alpha, beta1, beta2, eps
        int64_t step
    struct rf_train_model_f32:
        int cell, L, T, B, V, H
        const rf_layer_f32 *layers
        const rf_layer_grads_f32 *grads
        rf_workspace_f32 ws
        const float *W_y
        const float *b_y
        float *dW_y
        float *db_y
        float *logits
        float *dlogits
        float *dtop
        float *outs
        float *param
        float *grad
        int64_t n
    struct rf_train_call_f32:
        const int64_t *x
        const int64_t *y
        const float *h0
        const float *c0
        const float *masks
        float *h_T
        float *c_T
        double grad_scale, clip, max_norm
        rf_update update
        float *moment1
        float *moment2
        rf_phase_fn phase_done
        void *phase_context
    struct rf_train_model_f64:
        int cell, L, T, B, V, H
        const rf_layer_f64 *layers
        const rf_layer_grads_f64 *grads
        rf_workspace_f64 ws
        const double *W_y
        const double *b_y
        double *dW_y
        double *db_y
        double *logits
        double *dlogits
        double *dtop
        double *outs
        double *param
        double *grad
        int64_t n
    struct rf_train_call_f64:
        const int64_t *x
        const int64_t *y
        const double *h0
        const double *c0
        const double *masks
        double *h_T
        double *c_T
        double grad_scale, clip, max_norm
        rf_update update
        double *moment1
        double *moment2
        rf_phase_fn phase_done
        void *phase_context
    int rf_train_step_f32(double *loss, const rf_train_model_f32 *model,
                          const rf_train_call_f32 *call)
    int rf_train_step_f64(double *loss, const rf_train_model_f64 *model,
                          const rf_train_call_f64 *call)
    int rf_all_finite_f32(const float *a, int64_t n)
    int rf_all_finite_f64(const double *a, int64_t n)
    int rf_ids_in_range(const int64_t *ids, int64_t n, int64_t V)

# ---- one name per kernel pair: the dtype is the pointer type ----------------------------------

cdef inline double rf_softmax_xent(floating *dlogits, const floating *logits,
                                   const int64_t *targets, int N, int V) noexcept nogil:
    if floating is float:
        return rf_softmax_xent_f32(dlogits, logits, targets, N, V)
    else:
        return rf_softmax_xent_f64(dlogits, logits, targets, N, V)


cdef inline void rf_exp_array(floating *out, const floating *x, int64_t n) noexcept nogil:
    if floating is float:
        rf_exp_array_f32(out, x, n)
    else:
        rf_exp_array_f64(out, x, n)


cdef inline void rf_sgd_update(floating *param, const floating *grad, floating *velocity,
                               double lr, double momentum, int64_t n) noexcept nogil:
    if floating is float:
        rf_sgd_update_f32(param, grad, velocity, lr, momentum, n)
    else:
        rf_sgd_update_f64(param, grad, velocity, lr, momentum, n)


cdef inline void rf_adagrad_update(floating *param, const floating *grad, floating *memory,
                                   double lr, double eps, int64_t n) noexcept nogil:
    if floating is float:
        rf_adagrad_update_f32(param, grad, memory, lr, eps, n)
    else:
        rf_adagrad_update_f64(param, grad, memory, lr, eps, n)


cdef inline void rf_rmsprop_update(floating *param, const floating *grad, floating *mean_square,
                                   double lr, double alpha, double eps, int64_t n) noexcept nogil:
    if floating is float:
        rf_rmsprop_update_f32(param, grad, mean_square, lr, alpha, eps, n)
    else:
        rf_rmsprop_update_f64(param, grad, mean_square, lr, alpha, eps, n)


cdef inline void rf_adam_update(floating *param, const floating *grad, floating *m, floating *v,
                                double lr, double beta1, double beta2, double eps, int64_t step,
                                int64_t n) noexcept nogil:
    if floating is float:
        rf_adam_update_f32(param, grad, m, v, lr, beta1, beta2, eps, step, n)
    else:
        rf_adam_update_f64(param, grad, m, v, lr, beta1, beta2, eps, step, n)


cdef inline void rf_clip_by_value(floating *grad, double limit, int64_t n) noexcept nogil:
    if floating is float:
        rf_clip_by_value_f32(grad, limit, n)
    else:
        rf_clip_by_value_f64(grad, limit, n)


cdef inline double rf_global_norm(const floating *grad, int64_t n) noexcept nogil:
    if floating is float:
        return rf_global_norm_f32(grad, n)
    else:
        return rf_global_norm_f64(grad, n)


cdef inline void rf_scale(floating *grad, double factor, int64_t n) noexcept nogil:
    if floating is float:
        rf_scale_f32(grad, factor, n)
    else:
        rf_scale_f64(grad, factor, n)


cdef inline void rf_linear_forward(floating *out, const floating *X, const floating *W,
                                   const floating *b, int N, int In, int Out) noexcept nogil:
    if floating is float:
        rf_linear_forward_f32(out, X, W, b, N, In, Out)
    else:
        rf_linear_forward_f64(out, X, W, b, N, In, Out)


cdef inline void rf_linear_backward(floating *dX, floating *dW, floating *db,
                                    const floating *dout, const floating *X, const floating *W,
                                    int N, int In, int Out) noexcept nogil:
    if floating is float:
        rf_linear_backward_f32(dX, dW, db, dout, X, W, N, In, Out)
    else:
        rf_linear_backward_f64(dX, dW, db, dout, X, W, N, In, Out)


# What the bridge fills for one recurrent call: the C descriptors of one dtype side by side, so a
# body fused over rf_recurrent gets the layer, gradient and workspace structs of the same dtype
# (Cython ties no two fused types together).
cdef struct rf_recurrent_f32:
    rf_layer_f32 layer
    rf_layer_grads_f32 grads
    rf_workspace_f32 ws

cdef struct rf_recurrent_f64:
    rf_layer_f64 layer
    rf_layer_grads_f64 grads
    rf_workspace_f64 ws

ctypedef fused rf_recurrent:
    rf_recurrent_f32
    rf_recurrent_f64

ctypedef fused rf_sampler:
    rf_sampler_f32
    rf_sampler_f64


cdef inline void rf_rnn_forward(const rf_recurrent *d) noexcept nogil:
    if rf_recurrent is rf_recurrent_f32:
        rf_rnn_forward_f32(&d.layer, &d.ws)
    else:
        rf_rnn_forward_f64(&d.layer, &d.ws)


cdef inline void rf_rnn_backward(const rf_recurrent *d) noexcept nogil:
    if rf_recurrent is rf_recurrent_f32:
        rf_rnn_backward_f32(&d.grads, &d.ws, &d.layer)
    else:
        rf_rnn_backward_f64(&d.grads, &d.ws, &d.layer)


cdef inline void rf_lstm_forward(const rf_recurrent *d) noexcept nogil:
    if rf_recurrent is rf_recurrent_f32:
        rf_lstm_forward_f32(&d.layer, &d.ws)
    else:
        rf_lstm_forward_f64(&d.layer, &d.ws)


cdef inline void rf_lstm_backward(const rf_recurrent *d) noexcept nogil:
    if rf_recurrent is rf_recurrent_f32:
        rf_lstm_backward_f32(&d.grads, &d.ws, &d.layer)
    else:
        rf_lstm_backward_f64(&d.grads, &d.ws, &d.layer)


cdef inline void rf_gru_forward(const rf_recurrent *d) noexcept nogil:
    if rf_recurrent is rf_recurrent_f32:
        rf_gru_forward_f32(&d.layer, &d.ws)
    else:
        rf_gru_forward_f64(&d.layer, &d.ws)


cdef inline void rf_gru_backward(const rf_recurrent *d) noexcept nogil:
    if rf_recurrent is rf_recurrent_f32:
        rf_gru_backward_f32(&d.grads, &d.ws, &d.layer)
    else:
        rf_gru_backward_f64(&d.grads, &d.ws, &d.layer)


cdef inline void rf_sample(int64_t *out, const rf_sampler *sampler, const double *uniforms,
                           const int64_t *first_ids, int N) noexcept nogil:
    if rf_sampler is rf_sampler_f32:
        rf_sample_f32(out, sampler, uniforms, first_ids, N)
    else:
        rf_sample_f64(out, sampler, uniforms, first_ids, N)


cdef inline int64_t rf_sample_pack_size(const rf_sampler *sampler) noexcept nogil:
    if rf_sampler is rf_sampler_f32:
        return rf_sample_pack_size_f32(sampler)
    else:
        return rf_sample_pack_size_f64(sampler)


cdef inline void rf_vec_tanh(floating *out, const floating *x, int64_t n) noexcept nogil:
    if floating is float:
        rf_vec_tanh_f32(out, x, n)
    else:
        rf_vec_tanh_f64(out, x, n)


cdef inline void rf_vec_sigmoid(floating *out, const floating *x, int64_t n) noexcept nogil:
    if floating is float:
        rf_vec_sigmoid_f32(out, x, n)
    else:
        rf_vec_sigmoid_f64(out, x, n)


# The one-call training step's descriptors of one dtype side by side (as rf_recurrent), and the
# per-layer descriptor arrays the model descriptor points at.
cdef struct rf_training_f32:
    rf_train_model_f32 model
    rf_train_call_f32 call
    rf_layer_f32 *layers
    rf_layer_grads_f32 *grads

cdef struct rf_training_f64:
    rf_train_model_f64 model
    rf_train_call_f64 call
    rf_layer_f64 *layers
    rf_layer_grads_f64 *grads

ctypedef fused rf_training:
    rf_training_f32
    rf_training_f64


cdef inline int rf_train_step(double *loss, const rf_training *t) noexcept nogil:
    if rf_training is rf_training_f32:
        return rf_train_step_f32(loss, &t.model, &t.call)
    else:
        return rf_train_step_f64(loss, &t.model, &t.call)


cdef inline bint rf_all_finite(const floating *a, int64_t n) noexcept nogil:
    if floating is float:
        return rf_all_finite_f32(a, n)
    else:
        return rf_all_finite_f64(a, n)
