/* Optimizer updates on the flat buffer; see optim.h for the equations.  Each loop body is
 * branch-free arithmetic on restrict pointers so the compiler vectorizes it (sqrt and division
 * included: both are exact IEEE operations, so vectorizing them changes no result). */

static void FN(sgd_update)(real *restrict param, const real *restrict grad, real *restrict velocity,
                       double lr, double momentum, int64_t n)
{
    const real lr_ = (real)lr, mu = (real)momentum;
    if (momentum == 0) {
        for (int64_t k = 0; k < n; k++)
            param[k] -= lr_ * grad[k];
        return;
    }
    for (int64_t k = 0; k < n; k++) {
        const real v = velocity[k] * mu + grad[k];
        velocity[k] = v;
        param[k] -= lr_ * v;
    }
}

static void FN(adagrad_update)(real *restrict param, const real *restrict grad,
                           real *restrict memory, double lr, double eps, int64_t n)
{
    const real lr_ = (real)lr, eps_ = (real)eps;
    for (int64_t k = 0; k < n; k++) {
        const real g = grad[k];
        const real mem = memory[k] + g * g;
        memory[k] = mem;
        param[k] -= lr_ * g / SQRT(mem + eps_);
    }
}

static void FN(rmsprop_update)(real *restrict param, const real *restrict grad,
                           real *restrict mean_square, double lr, double alpha, double eps,
                           int64_t n)
{
    const real lr_ = (real)lr, a = (real)alpha, one_minus_a = (real)(1 - alpha);
    const real eps_ = (real)eps;
    for (int64_t k = 0; k < n; k++) {
        const real g = grad[k];
        const real ms = mean_square[k] * a + one_minus_a * g * g;
        mean_square[k] = ms;
        param[k] -= lr_ * g / (SQRT(ms) + eps_);
    }
}

static void FN(adam_update)(real *restrict param, const real *restrict grad, real *restrict m,
                        real *restrict v, double lr, double beta1, double beta2, double eps,
                        int64_t step, int64_t n)
{
    /* The bias corrections in double, as Python computes 1 - beta**step, rounded once. */
    const real corr1 = (real)(1 - pow(beta1, (double)step));
    const real corr2 = (real)(1 - pow(beta2, (double)step));
    const real lr_ = (real)lr, eps_ = (real)eps;
    const real b1 = (real)beta1, one_minus_b1 = (real)(1 - beta1);
    const real b2 = (real)beta2, one_minus_b2 = (real)(1 - beta2);
    for (int64_t k = 0; k < n; k++) {
        const real g = grad[k];
        const real mk = m[k] * b1 + one_minus_b1 * g;
        const real vk = v[k] * b2 + one_minus_b2 * g * g;
        m[k] = mk;
        v[k] = vk;
        param[k] -= lr_ * (mk / corr1) / (SQRT(vk / corr2) + eps_);
    }
}

static void FN(clip_by_value)(real *restrict grad, double limit, int64_t n)
{
    const real hi = (real)limit, lo = -hi;
    for (int64_t k = 0; k < n; k++) {
        const real g = grad[k];
        grad[k] = g < lo ? lo : (g > hi ? hi : g); /* comparisons with NaN are false */
    }
}

/* Eight independent partial sums (a fixed order, so the result is deterministic) let the
 * compiler vectorize a reduction that strict IEEE semantics would otherwise keep serial. */
#define NORM_LANES 8
static double FN(global_norm)(const real *restrict grad, int64_t n)
{
    double acc[NORM_LANES] = {0};
    int64_t k = 0;
    for (; k + NORM_LANES <= n; k += NORM_LANES)
        for (int j = 0; j < NORM_LANES; j++) {
            const double g = (double)grad[k + j];
            acc[j] += g * g;
        }
    for (; k < n; k++) {
        const double g = (double)grad[k];
        acc[0] += g * g;
    }
    double total = 0;
    for (int j = 0; j < NORM_LANES; j++)
        total += acc[j];
    return sqrt(total);
}
#undef NORM_LANES

static void FN(scale)(real *restrict grad, double factor, int64_t n)
{
    const real f = (real)factor;
    for (int64_t k = 0; k < n; k++)
        grad[k] *= f;
}
