/* out (N,O) = X (N,I) W (I,O) + b (O): the bias is broadcast into every row, then one GEMM
 * accumulates onto it (beta = 1). */
static void FN(linear_forward)(real *restrict out, const real *X, const real *W, const real *b,
                           int N, int I, int O)
{
    for (int n = 0; n < N; n++) {
        real *restrict row = out + (int64_t)n * O;
        for (int o = 0; o < O; o++)
            row[o] = b[o];
    }
    if (I == 0)
        return;
    /* out += X @ W */
    GEMM(0, 0, N, O, I, (real)1, X, I, W, O, (real)1, out, O);
}

/* Backward of linear_forward: dW += X^T dout, db += column sums of dout, dX = dout W^T. */
static void FN(linear_backward)(real *dX, real *dW, real *restrict db, const real *dout,
                            const real *X, const real *W, int N, int I, int O)
{
    if (N == 0) {
        return; /* nothing accumulates; dX (0, I) has no elements to assign */
    }
    /* dW += X.T @ dout */
    if (I > 0)
        GEMM(1, 0, I, O, N, (real)1, X, I, dout, O, (real)1, dW, O);
    /* db += dout.sum(axis=0), row by row: a vectorized loop over O per row */
    for (int n = 0; n < N; n++) {
        const real *restrict row = dout + (int64_t)n * O;
        for (int o = 0; o < O; o++)
            db[o] += row[o];
    }
    /* dX = dout @ W.T */
    if (dX && I > 0)
        GEMM(0, 1, N, I, O, (real)1, dout, O, W, O, (real)0, dX, I);
}
