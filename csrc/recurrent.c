#include <math.h>
#include <string.h>

#include "blas.h"
#include "paths.h"
#include "recurrent.h"
#include "threads.h"

/* Columns per task of the drivers' whole-sequence GEMMs and column sums (recurrent_tmpl.h's
 * task_cols): at least TASK_COLS_MIN, in steps of TASK_COLS_STEP, at most about TASK_SPLIT tasks
 * a matrix, since each task's GEMM packs the whole other operand again. */
enum { TASK_COLS_MIN = 128, TASK_COLS_STEP = 64, TASK_SPLIT = 8 };

/* The value at position k (0-based) of a (n) sorted in descending order; reorders a.
 * Quickselect with Hoare partitioning: the value is unique whatever the order of equal ones. */
static double rf_kth_largest(double *a, int n, int k)
{
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        const double pivot = a[lo + (hi - lo) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (a[i] > pivot)
                i++;
            while (a[j] < pivot)
                j--;
            if (i <= j) {
                const double tmp = a[i];
                a[i] = a[j];
                a[j] = tmp;
                i++;
                j--;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            return a[k];
    }
    return a[k];
}

/* Restore the max-heap order of a (n) below position i. */
static void rf_heap_sift(double *a, int n, int i)
{
    for (;;) {
        const int left = 2 * i + 1, right = left + 1;
        int top = i;
        if (left < n && a[left] > a[top])
            top = left;
        if (right < n && a[right] > a[top])
            top = right;
        if (top == i)
            return;
        const double tmp = a[i];
        a[i] = a[top];
        a[top] = tmp;
        i = top;
    }
}

/* Nucleus (top-p) on the weights w (n) in place (reference.draw): in descending order
 * x_0 >= x_1 >= ..., x_j is kept while x_0 + ... + x_{j-1} < target (sums in that order; the
 * first always, target > 0), the kept ones equal to the smallest kept going to the lowest ids;
 * every other weight is zeroed.  heap (n) scratch: the weights pop in descending order, so
 * the sums are those of a sort, over the m kept in O(n + m log n). */
static void rf_top_p(double *w, int n, double target, double *heap)
{
    memcpy(heap, w, sizeof(double) * (size_t)n);
    for (int i = n / 2 - 1; i >= 0; i--)
        rf_heap_sift(heap, n, i);
    double mass = 0, smallest = 0;
    int kept = 0, size = n;
    while (size > 0 && mass < target) {
        smallest = heap[0];
        mass += smallest;
        kept++;
        heap[0] = heap[--size];
        rf_heap_sift(heap, size, 0);
    }
    int ties = kept; /* of the kept, those equal to smallest */
    for (int v = 0; v < n; v++)
        ties -= w[v] > smallest;
    for (int v = 0; v < n; v++) {
        if (w[v] > smallest)
            continue;
        if (w[v] == smallest && ties > 0)
            ties--;
        else
            w[v] = 0;
    }
}

#define RF_VARIANT _base
#define RF_DTYPE 32
#include "real_begin.h"
#include "vmath_tmpl.h"
#include "cell_tmpl.h"
#include "pgemm_tmpl.h"
#include "recurrent_tmpl.h"
#include "sample_tmpl.h"
#include "real_end.h"
#define RF_DTYPE 64
#include "real_begin.h"
#include "vmath_tmpl.h"
#include "cell_tmpl.h"
#include "pgemm_tmpl.h"
#include "recurrent_tmpl.h"
#include "sample_tmpl.h"
#include "real_end.h"
#undef RF_VARIANT

#if RF_ISA_VARIANTS
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define RF_VARIANT _avx2
#define RF_DTYPE 32
#include "real_begin.h"
#include "vmath_tmpl.h"
#include "cell_tmpl.h"
#include "pgemm_tmpl.h"
#include "recurrent_tmpl.h"
#include "sample_tmpl.h"
#include "real_end.h"
#define RF_DTYPE 64
#include "real_begin.h"
#include "vmath_tmpl.h"
#include "cell_tmpl.h"
#include "pgemm_tmpl.h"
#include "recurrent_tmpl.h"
#include "sample_tmpl.h"
#include "real_end.h"
#undef RF_VARIANT
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,fma")
#define RF_VARIANT _avx512
#define RF_DTYPE 32
#include "real_begin.h"
#include "vmath_tmpl.h"
#include "cell_tmpl.h"
#include "pgemm_tmpl.h"
#include "recurrent_tmpl.h"
#include "sample_tmpl.h"
#include "real_end.h"
#define RF_DTYPE 64
#include "real_begin.h"
#include "vmath_tmpl.h"
#include "cell_tmpl.h"
#include "pgemm_tmpl.h"
#include "recurrent_tmpl.h"
#include "sample_tmpl.h"
#include "real_end.h"
#undef RF_VARIANT
#pragma GCC pop_options
#endif

void rf_rnn_forward_f32(const struct rf_layer_f32 *layer,
                        const struct rf_workspace_f32 *ws)
{
    RF_BY_ISA(, rnn_forward_f32, (layer, ws))
}

void rf_rnn_backward_f32(const struct rf_layer_grads_f32 *grads,
                         const struct rf_workspace_f32 *ws, const struct rf_layer_f32 *layer)
{
    RF_BY_ISA(, rnn_backward_f32, (grads, ws, layer))
}

void rf_lstm_forward_f32(const struct rf_layer_f32 *layer,
                         const struct rf_workspace_f32 *ws)
{
    RF_BY_ISA(, lstm_forward_f32, (layer, ws))
}

void rf_lstm_backward_f32(const struct rf_layer_grads_f32 *grads,
                          const struct rf_workspace_f32 *ws, const struct rf_layer_f32 *layer)
{
    RF_BY_ISA(, lstm_backward_f32, (grads, ws, layer))
}

void rf_gru_forward_f32(const struct rf_layer_f32 *layer,
                        const struct rf_workspace_f32 *ws)
{
    RF_BY_ISA(, gru_forward_f32, (layer, ws))
}

void rf_gru_backward_f32(const struct rf_layer_grads_f32 *grads,
                         const struct rf_workspace_f32 *ws, const struct rf_layer_f32 *layer)
{
    RF_BY_ISA(, gru_backward_f32, (grads, ws, layer))
}

void rf_sample_f32(int64_t *out, const struct rf_sampler_f32 *sampler,
                   const double *uniforms, const int64_t *first_ids, int N)
{
    rf_blas_serial_begin();
    RF_BY_ISA(, sample_f32, (out, sampler, uniforms, first_ids, N))
    rf_blas_serial_end();
}

void rf_rnn_forward_f64(const struct rf_layer_f64 *layer,
                        const struct rf_workspace_f64 *ws)
{
    RF_BY_ISA(, rnn_forward_f64, (layer, ws))
}

void rf_rnn_backward_f64(const struct rf_layer_grads_f64 *grads,
                         const struct rf_workspace_f64 *ws, const struct rf_layer_f64 *layer)
{
    RF_BY_ISA(, rnn_backward_f64, (grads, ws, layer))
}

void rf_lstm_forward_f64(const struct rf_layer_f64 *layer,
                         const struct rf_workspace_f64 *ws)
{
    RF_BY_ISA(, lstm_forward_f64, (layer, ws))
}

void rf_lstm_backward_f64(const struct rf_layer_grads_f64 *grads,
                          const struct rf_workspace_f64 *ws, const struct rf_layer_f64 *layer)
{
    RF_BY_ISA(, lstm_backward_f64, (grads, ws, layer))
}

void rf_gru_forward_f64(const struct rf_layer_f64 *layer,
                        const struct rf_workspace_f64 *ws)
{
    RF_BY_ISA(, gru_forward_f64, (layer, ws))
}

void rf_gru_backward_f64(const struct rf_layer_grads_f64 *grads,
                         const struct rf_workspace_f64 *ws, const struct rf_layer_f64 *layer)
{
    RF_BY_ISA(, gru_backward_f64, (grads, ws, layer))
}

void rf_sample_f64(int64_t *out, const struct rf_sampler_f64 *sampler,
                   const double *uniforms, const int64_t *first_ids, int N)
{
    rf_blas_serial_begin();
    RF_BY_ISA(, sample_f64, (out, sampler, uniforms, first_ids, N))
    rf_blas_serial_end();
}

int64_t rf_sample_pack_size_f32(const struct rf_sampler_f32 *sampler)
{
    int64_t result;
    RF_BY_ISA(result =, sample_pack_size_f32, (sampler))
    return result;
}

int64_t rf_sample_pack_size_f64(const struct rf_sampler_f64 *sampler)
{
    int64_t result;
    RF_BY_ISA(result =, sample_pack_size_f64, (sampler))
    return result;
}

int64_t rf_recurrent_pack_size_f32(int H, int G)
{
    int64_t result;
    RF_BY_ISA(result =, recurrent_pack_size_f32, (H, G))
    return result;
}

int64_t rf_recurrent_pack_size_f64(int H, int G)
{
    int64_t result;
    RF_BY_ISA(result =, recurrent_pack_size_f64, (H, G))
    return result;
}

void rf_vec_tanh_f32(float *out, const float *x, int64_t n)
{
    RF_BY_ISA(, vec_tanh_f32, (out, x, n))
}

void rf_vec_tanh_f64(double *out, const double *x, int64_t n)
{
    RF_BY_ISA(, vec_tanh_f64, (out, x, n))
}

void rf_vec_sigmoid_f32(float *out, const float *x, int64_t n)
{
    RF_BY_ISA(, vec_sigmoid_f32, (out, x, n))
}

void rf_vec_sigmoid_f64(double *out, const double *x, int64_t n)
{
    RF_BY_ISA(, vec_sigmoid_f64, (out, x, n))
}
