/* Work split over OpenMP threads in blocks whose boundaries depend on the data's size alone,
 * never on the thread count, so every thread count computes the same bits: an element's value
 * never depends on which thread ran its block, and a sum over blocks adds one partial per block
 * in block order.  Built without OpenMP the same blocks run in order on the calling thread. */
#ifndef RNNFAST_OMP_BLOCKS_H
#define RNNFAST_OMP_BLOCKS_H

#include <stdint.h>

#include "threads.h"

#ifdef _OPENMP
#define RF_OMP_PARALLEL_FOR                                                                    \
    _Pragma("omp parallel for schedule(static) num_threads(rf_threads_team())")
#else
#define RF_OMP_PARALLEL_FOR
#endif

/* for (j = 0; j < blocks; j++) body;  shared among the OpenMP threads when there are two blocks
 * or more.  One block (min-char-rnn's whole parameter buffer, its 25 rows of logits) runs on the
 * calling thread without entering the OpenMP runtime: a parallel region with if(0) still costs
 * about 0.2 us (measured here, libgomp, GCC 12), and a min-char-rnn step has several. */
#define RF_FOR_BLOCKS(blocks, j, body)                                                         \
    do {                                                                                       \
        if ((blocks) > 1) {                                                                    \
            RF_OMP_PARALLEL_FOR                                                                \
            for (int64_t j = 0; j < (blocks); j++)                                             \
                body;                                                                          \
        } else if ((blocks) == 1) {                                                            \
            const int64_t j = 0;                                                               \
            body;                                                                              \
        }                                                                                      \
    } while (0)

/* Elements per block of the flat-buffer passes (optimizer updates, clipping, the norm): 128 KiB
 * of float32, large enough that a block's work dwarfs a thread's start. */
#define RF_ELEMENT_BLOCK 32768
/* Rows per block of the row-wise passes (softmax cross-entropy, the output layer's bias). */
#define RF_ROW_BLOCK 64
/* Columns per block of the column sums (the output layer's bias gradient). */
#define RF_COLUMN_BLOCK 64
/* Partial sums a reduction holds at once, on the stack: more blocks are reduced in rounds of
 * this many, each round's partials added in block order. */
#define RF_PARTIALS 64

/* The number of blocks of `block` items that cover n items. */
static inline int64_t rf_blocks(int64_t n, int64_t block)
{
    return (n + block - 1) / block;
}

/* The end of block j of `block` items among n: min((j + 1) block, n). */
static inline int64_t rf_block_end(int64_t j, int64_t block, int64_t n)
{
    const int64_t end = (j + 1) * block;
    return end < n ? end : n;
}

#endif
