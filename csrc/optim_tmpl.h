/* Optimizer updates on the flat buffer; see optim.h for the equations.  Each kernel runs its
 * elements in blocks of RF_ELEMENT_BLOCK shared among the OpenMP threads (omp_blocks.h); a
 * block's loop over [k0, k1) is branch-free arithmetic on restrict pointers so the compiler
 * vectorizes it (sqrt and division included: both are exact IEEE operations, so vectorizing
 * them changes no result). */

#define BLOCK_START(j) ((j) * RF_ELEMENT_BLOCK)
#define BLOCK_END(j, n) rf_block_end(j, RF_ELEMENT_BLOCK, n)

static void FN(sgd_block)(real *restrict param, const real *restrict grad,
                          real *restrict velocity, real lr, real mu, int64_t k0, int64_t k1)
{
    if (!velocity) {
        for (int64_t k = k0; k < k1; k++)
            param[k] -= lr * grad[k];
        return;
    }
    for (int64_t k = k0; k < k1; k++) {
        const real v = velocity[k] * mu + grad[k];
        velocity[k] = v;
        param[k] -= lr * v;
    }
}

static void FN(sgd_update)(real *restrict param, const real *restrict grad, real *restrict velocity,
                       double lr, double momentum, int64_t n)
{
    const real lr_ = (real)lr, mu = (real)momentum;
    real *const vel = momentum == 0 ? NULL : velocity;
    const int64_t blocks = rf_blocks(n, RF_ELEMENT_BLOCK);
    RF_FOR_BLOCKS(blocks, j, FN(sgd_block)(param, grad, vel, lr_, mu, BLOCK_START(j),
                                           BLOCK_END(j, n)));
}

static void FN(adagrad_block)(real *restrict param, const real *restrict grad,
                              real *restrict memory, real lr, real eps, int64_t k0, int64_t k1)
{
    for (int64_t k = k0; k < k1; k++) {
        const real g = grad[k];
        const real mem = memory[k] + g * g;
        memory[k] = mem;
        param[k] -= lr * g / SQRT(mem + eps);
    }
}

static void FN(adagrad_update)(real *restrict param, const real *restrict grad,
                           real *restrict memory, double lr, double eps, int64_t n)
{
    const real lr_ = (real)lr, eps_ = (real)eps;
    const int64_t blocks = rf_blocks(n, RF_ELEMENT_BLOCK);
    RF_FOR_BLOCKS(blocks, j, FN(adagrad_block)(param, grad, memory, lr_, eps_, BLOCK_START(j),
                                               BLOCK_END(j, n)));
}

static void FN(rmsprop_block)(real *restrict param, const real *restrict grad,
                              real *restrict mean_square, real lr, real a, real one_minus_a,
                              real eps, int64_t k0, int64_t k1)
{
    for (int64_t k = k0; k < k1; k++) {
        const real g = grad[k];
        const real ms = mean_square[k] * a + one_minus_a * g * g;
        mean_square[k] = ms;
        param[k] -= lr * g / (SQRT(ms) + eps);
    }
}

static void FN(rmsprop_update)(real *restrict param, const real *restrict grad,
                           real *restrict mean_square, double lr, double alpha, double eps,
                           int64_t n)
{
    const real lr_ = (real)lr, a = (real)alpha, one_minus_a = (real)(1 - alpha);
    const real eps_ = (real)eps;
    const int64_t blocks = rf_blocks(n, RF_ELEMENT_BLOCK);
    RF_FOR_BLOCKS(blocks, j, FN(rmsprop_block)(param, grad, mean_square, lr_, a, one_minus_a,
                                               eps_, BLOCK_START(j), BLOCK_END(j, n)));
}

/* Adam's hyperparameters in the element type. */
struct FN(adam_coefficients) {
    real lr, eps, b1, one_minus_b1, b2, one_minus_b2, corr1, corr2;
};

static void FN(adam_block)(real *restrict param, const real *restrict grad, real *restrict m,
                           real *restrict v, struct FN(adam_coefficients) c, int64_t k0,
                           int64_t k1)
{
    for (int64_t k = k0; k < k1; k++) {
        const real g = grad[k];
        const real mk = m[k] * c.b1 + c.one_minus_b1 * g;
        const real vk = v[k] * c.b2 + c.one_minus_b2 * g * g;
        m[k] = mk;
        v[k] = vk;
        param[k] -= c.lr * (mk / c.corr1) / (SQRT(vk / c.corr2) + c.eps);
    }
}

static void FN(adam_update)(real *restrict param, const real *restrict grad, real *restrict m,
                        real *restrict v, double lr, double beta1, double beta2, double eps,
                        int64_t step, int64_t n)
{
    /* The bias corrections in double, as Python computes 1 - beta**step, rounded once. */
    const struct FN(adam_coefficients) c = {
        (real)lr, (real)eps, (real)beta1, (real)(1 - beta1), (real)beta2, (real)(1 - beta2),
        (real)(1 - pow(beta1, (double)step)), (real)(1 - pow(beta2, (double)step))};
    const int64_t blocks = rf_blocks(n, RF_ELEMENT_BLOCK);
    RF_FOR_BLOCKS(blocks, j, FN(adam_block)(param, grad, m, v, c, BLOCK_START(j),
                                            BLOCK_END(j, n)));
}

static void FN(clip_block)(real *restrict grad, real hi, int64_t k0, int64_t k1)
{
    const real lo = -hi;
    for (int64_t k = k0; k < k1; k++) {
        const real g = grad[k];
        grad[k] = g < lo ? lo : (g > hi ? hi : g); /* comparisons with NaN are false */
    }
}

static void FN(clip_by_value)(real *restrict grad, double limit, int64_t n)
{
    const int64_t blocks = rf_blocks(n, RF_ELEMENT_BLOCK);
    RF_FOR_BLOCKS(blocks, j, FN(clip_block)(grad, (real)limit, BLOCK_START(j), BLOCK_END(j, n)));
}

/* sum_k g_k^2 over [k0, k1) in double.  Eight independent partial sums (a fixed order, so the
 * result is deterministic) let the compiler vectorize a reduction that strict IEEE semantics
 * would otherwise keep serial. */
#define NORM_LANES 8
static double FN(sum_squares)(const real *restrict grad, int64_t k0, int64_t k1)
{
    double acc[NORM_LANES] = {0};
    int64_t k = k0;
    for (; k + NORM_LANES <= k1; k += NORM_LANES)
        for (int j = 0; j < NORM_LANES; j++) {
            const double g = (double)grad[k + j];
            acc[j] += g * g;
        }
    for (; k < k1; k++) {
        const double g = (double)grad[k];
        acc[0] += g * g;
    }
    double total = 0;
    for (int j = 0; j < NORM_LANES; j++)
        total += acc[j];
    return total;
}
#undef NORM_LANES

/* sqrt of the sum over blocks of each block's sum_squares, added in block order. */
static double FN(global_norm)(const real *restrict grad, int64_t n)
{
    const int64_t all_blocks = rf_blocks(n, RF_ELEMENT_BLOCK);
    double total = 0;
    for (int64_t first = 0; first < all_blocks; first += RF_PARTIALS) {
        double partial[RF_PARTIALS];
        const int64_t blocks = all_blocks - first < RF_PARTIALS ? all_blocks - first : RF_PARTIALS;
        RF_FOR_BLOCKS(blocks, j, partial[j] = FN(sum_squares)(grad, BLOCK_START(first + j),
                                                              BLOCK_END(first + j, n)));
        for (int64_t j = 0; j < blocks; j++)
            total += partial[j];
    }
    return sqrt(total);
}

static void FN(scale_block)(real *restrict grad, real factor, int64_t k0, int64_t k1)
{
    for (int64_t k = k0; k < k1; k++)
        grad[k] *= factor;
}

static void FN(scale)(real *restrict grad, double factor, int64_t n)
{
    const int64_t blocks = rf_blocks(n, RF_ELEMENT_BLOCK);
    RF_FOR_BLOCKS(blocks, j, FN(scale_block)(grad, (real)factor, BLOCK_START(j), BLOCK_END(j, n)));
}

#undef BLOCK_START
#undef BLOCK_END
