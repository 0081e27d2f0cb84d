/* out (N,O) = X (N,I) W (I,O) + b (O): the bias is broadcast into every row (blocks of rows
 * shared among the threads), then one GEMM accumulates onto it (beta = 1). */
static void FN(bias_rows)(real *restrict out, const real *restrict b, int O, int64_t n0,
                          int64_t n1)
{
    for (int64_t n = n0; n < n1; n++) {
        real *restrict row = out + n * O;
        for (int o = 0; o < O; o++)
            row[o] = b[o];
    }
}

static void FN(linear_forward)(real *restrict out, const real *X, const real *W, const real *b,
                           int N, int I, int O)
{
    const int64_t blocks = rf_blocks(N, RF_ROW_BLOCK);
    RF_FOR_BLOCKS(blocks, j, FN(bias_rows)(out, b, O, j * RF_ROW_BLOCK,
                                           rf_block_end(j, RF_ROW_BLOCK, N)));
    if (I == 0)
        return;
    /* out += X @ W */
    GEMM(0, 0, N, O, I, (real)1, X, I, W, O, (real)1, out, O);
}

/* db[o0:o1] += the column sums of dout (N, O) there, each column summed in row order: a
 * vectorized loop over the block's columns per row. */
static void FN(column_sums_add)(real *restrict db, const real *restrict dout, int N, int O, int o0,
                                int o1)
{
    for (int n = 0; n < N; n++) {
        const real *restrict row = dout + (int64_t)n * O;
        for (int o = o0; o < o1; o++)
            db[o] += row[o];
    }
}

/* Backward of linear_forward: dW += X^T dout, db += column sums of dout (blocks of columns
 * shared among the threads), dX = dout W^T. */
static void FN(linear_backward)(real *dX, real *dW, real *restrict db, const real *dout,
                            const real *X, const real *W, int N, int I, int O)
{
    if (N == 0) {
        return; /* nothing accumulates; dX (0, I) has no elements to assign */
    }
    /* dW += X.T @ dout */
    if (I > 0)
        GEMM(1, 0, I, O, N, (real)1, X, I, dout, O, (real)1, dW, O);
    /* db += dout.sum(axis=0) */
    const int64_t blocks = rf_blocks(O, RF_COLUMN_BLOCK);
    RF_FOR_BLOCKS(blocks, j, FN(column_sums_add)(db, dout, N, O, (int)(j * RF_COLUMN_BLOCK),
                                                 (int)rf_block_end(j, RF_COLUMN_BLOCK, O)));
    /* dX = dout @ W.T */
    if (dX && I > 0)
        GEMM(0, 1, N, I, O, (real)1, dout, O, W, O, (real)0, dX, I);
}
