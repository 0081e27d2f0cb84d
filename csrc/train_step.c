#include <math.h>
#include <string.h>

#include "blas.h"
#include "linear.h"
#include "omp_blocks.h"
#include "optim.h"
#include "recurrent.h"
#include "rnnfast.h"
#include "train_step.h"

/* The driver calls the exported, ISA-dispatching kernels: one instance per dtype. */
#define RF_VARIANT _base
#define RF_DTYPE 32
#include "real_begin.h"
#include "train_step_tmpl.h"
#include "real_end.h"
#define RF_DTYPE 64
#include "real_begin.h"
#include "train_step_tmpl.h"
#include "real_end.h"
#undef RF_VARIANT

/* The whole step under one hold of BLAS at one thread (blas.h): its output-layer products would
 * otherwise take and release the hold call by call, and the recurrent kernels' teams do the
 * splitting. */
int rf_train_step_f32(double *loss, const struct rf_train_model_f32 *model,
                      const struct rf_train_call_f32 *call)
{
    rf_blas_serial_begin();
    const int status = train_step_f32_base(loss, model, call);
    rf_blas_serial_end();
    return status;
}

int rf_train_step_f64(double *loss, const struct rf_train_model_f64 *model,
                      const struct rf_train_call_f64 *call)
{
    rf_blas_serial_begin();
    const int status = train_step_f64_base(loss, model, call);
    rf_blas_serial_end();
    return status;
}

int rf_all_finite_f32(const float *a, int64_t n)
{
    return all_finite_f32_base(a, n);
}

int rf_all_finite_f64(const double *a, int64_t n)
{
    return all_finite_f64_base(a, n);
}

int rf_ids_in_range(const int64_t *ids, int64_t n, int64_t V)
{
    int in_range = 1;
    for (int64_t k = 0; k < n; k++) /* a negative id read as unsigned is above any V */
        in_range &= (uint64_t)ids[k] < (uint64_t)V;
    return in_range;
}
