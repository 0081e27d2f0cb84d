#include <math.h>
#include <string.h>

#include "blas.h"
#include "paths.h"
#include "recurrent.h"

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

void rf_rnn_forward_f32(float *hs, float *pack, const int64_t *ids, const float *X, const float
                        *W_x, const float *W_h, const float *b, const float *h0, int T, int B, int
                        In, int H)
{
    RF_BY_ISA(, rnn_forward_f32, (hs, pack, ids, X, W_x, W_h, b, h0, T, B, In, H))
}

void rf_rnn_forward_f64(double *hs, double *pack, const int64_t *ids, const double *X, const double
                        *W_x, const double *W_h, const double *b, const double *h0, int T, int B,
                        int In, int H)
{
    RF_BY_ISA(, rnn_forward_f64, (hs, pack, ids, X, W_x, W_h, b, h0, T, B, In, H))
}

void rf_rnn_backward_f32(float *dX, float *dW_x, float *dW_h, float *db, float *dh0, float *dA,
                         float *pack, const float *dH, const int64_t *ids, const float *X, const
                         float *hs, const float *W_x, const float *W_h, const float *h0, int T, int
                         B, int In, int H)
{
    RF_BY_ISA(, rnn_backward_f32, (dX, dW_x, dW_h, db, dh0, dA, pack, dH, ids, X, hs, W_x, W_h, h0,
              T, B, In, H))
}

void rf_rnn_backward_f64(double *dX, double *dW_x, double *dW_h, double *db, double *dh0, double
                         *dA, double *pack, const double *dH, const int64_t *ids, const double *X,
                         const double *hs, const double *W_x, const double *W_h, const double *h0,
                         int T, int B, int In, int H)
{
    RF_BY_ISA(, rnn_backward_f64, (dX, dW_x, dW_h, db, dh0, dA, pack, dH, ids, X, hs, W_x, W_h, h0,
              T, B, In, H))
}

void rf_lstm_forward_f32(float *hs, float *cs, float *tcs, float *gates, float *pack, const int64_t
                         *ids, const float *X, const float *W_x, const float *W_h, const float *b,
                         const float *h0, const float *c0, int T, int B, int In, int H)
{
    RF_BY_ISA(, lstm_forward_f32, (hs, cs, tcs, gates, pack, ids, X, W_x, W_h, b, h0, c0, T, B, In,
              H))
}

void rf_lstm_forward_f64(double *hs, double *cs, double *tcs, double *gates, double *pack, const
                         int64_t *ids, const double *X, const double *W_x, const double *W_h, const
                         double *b, const double *h0, const double *c0, int T, int B, int In, int H)
{
    RF_BY_ISA(, lstm_forward_f64, (hs, cs, tcs, gates, pack, ids, X, W_x, W_h, b, h0, c0, T, B, In,
              H))
}

void rf_lstm_backward_f32(float *dX, float *dW_x, float *dW_h, float *db, float *dh0, float *dc0,
                          float *dA, float *pack, const float *dH, const int64_t *ids, const float
                          *X, const float *hs, const float *cs, const float *tcs, const float
                          *gates, const float *W_x, const float *W_h, const float *h0, const float
                          *c0, int T, int B, int In, int H)
{
    RF_BY_ISA(, lstm_backward_f32, (dX, dW_x, dW_h, db, dh0, dc0, dA, pack, dH, ids, X, hs, cs, tcs,
              gates, W_x, W_h, h0, c0, T, B, In, H))
}

void rf_lstm_backward_f64(double *dX, double *dW_x, double *dW_h, double *db, double *dh0, double
                          *dc0, double *dA, double *pack, const double *dH, const int64_t *ids,
                          const double *X, const double *hs, const double *cs, const double *tcs,
                          const double *gates, const double *W_x, const double *W_h, const double
                          *h0, const double *c0, int T, int B, int In, int H)
{
    RF_BY_ISA(, lstm_backward_f64, (dX, dW_x, dW_h, db, dh0, dc0, dA, pack, dH, ids, X, hs, cs, tcs,
              gates, W_x, W_h, h0, c0, T, B, In, H))
}

void rf_sample_f32(int64_t *out, const double *uniforms, const int64_t *first_ids, float *h, float
                   *c, const float *const *W_x, const float *const *W_h, const float *const *b,
                   const float *W_y, const float *b_y, double temperature, int top_k, int argmax,
                   int N, int S, int L, int H, int V, float *act, float *cbuf, float *tcbuf, float
                   *logits, double *w, double *sel, int64_t *ids)
{
    RF_BY_ISA(, sample_f32, (out, uniforms, first_ids, h, c, W_x, W_h, b, W_y, b_y, temperature,
              top_k, argmax, N, S, L, H, V, act, cbuf, tcbuf, logits, w, sel, ids))
}

void rf_sample_f64(int64_t *out, const double *uniforms, const int64_t *first_ids, double *h, double
                   *c, const double *const *W_x, const double *const *W_h, const double *const *b,
                   const double *W_y, const double *b_y, double temperature, int top_k, int argmax,
                   int N, int S, int L, int H, int V, double *act, double *cbuf, double *tcbuf,
                   double *logits, double *w, double *sel, int64_t *ids)
{
    RF_BY_ISA(, sample_f64, (out, uniforms, first_ids, h, c, W_x, W_h, b, W_y, b_y, temperature,
              top_k, argmax, N, S, L, H, V, act, cbuf, tcbuf, logits, w, sel, ids))
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
