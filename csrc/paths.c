#include <math.h>

#include "paths.h"

/* isa -1: not yet set */
static struct rf_paths current = {-1, RF_PACKED_AUTO, RF_CHUNK_BYTES, RF_CHUNK_ROWS};

int rf_isa_available(int isa)
{
    switch (isa) {
    case RF_ISA_BASELINE:
        return 1;
#if RF_ISA_VARIANTS
    case RF_ISA_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case RF_ISA_AVX512:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
#endif
    default:
        return 0;
    }
}

int rf_isa_active(void)
{
    if (current.isa < 0) {
        int isa = RF_ISA_COUNT - 1;
        while (!rf_isa_available(isa))
            isa--;
        current.isa = isa;
    }
    return current.isa;
}

int rf_paths_set(const struct rf_paths *paths)
{
    if (!rf_isa_available(paths->isa) || paths->chunk_bytes < 1 || paths->chunk_rows < 1
        || paths->packed < RF_PACKED_AUTO || paths->packed > RF_PACKED_ON)
        return -1;
    current = *paths;
    return 0;
}

struct rf_paths rf_paths_get(void)
{
    rf_isa_active();
    return current;
}

/* The baseline variant packs by default where the build's baseline has hardware fma
 * (FP_FAST_FMAF: a -march=native x86 build with FMA, AArch64 where the loops become NEON fmla):
 * on x86-64 without FMA its fmaf is a libm call per element, 20-50x slower than BLAS. */
#if defined(FP_FAST_FMAF)
#define BASELINE_PACKS 1
#else
#define BASELINE_PACKS 0
#endif

/* Packed for B >= 2 on AVX-512 and AVX2, where it measured faster than BLAS's per-step sgemm
 * (lab/packed_paths.py; the figures: docs/internals.md); B = 1 through BLAS, whose one-row
 * products are gemv (blas.c), which streams W_h as the packed kernel does without its two packs
 * per call. */
int rf_use_packed(int M)
{
    if (current.packed != RF_PACKED_AUTO)
        return current.packed;
    if (M < 2)
        return 0;
    const int isa = rf_isa_active();
    return isa == RF_ISA_AVX512 || isa == RF_ISA_AVX2 || BASELINE_PACKS;
}

/* A chunk keeps its steps' activations in cache from the per-step loop to the chunk's GEMMs;
 * where the row floor stretches it to twice chunk_bytes (or one step) or more it no longer does,
 * and splitting only costs (OpenBLAS re-packs W_x and re-reads dW per chunk): then the whole
 * sequence is one chunk (measured against the floor alone: docs/internals.md). */
int rf_chunk_steps(int B, int64_t step_bytes)
{
    int64_t by_bytes = current.chunk_bytes / step_bytes;
    const int64_t by_rows = (current.chunk_rows + B - 1) / B;
    if (by_bytes < 1)
        by_bytes = 1;
    if (by_rows >= 2 * by_bytes)
        return 0x7fffffff;
    const int64_t steps = by_bytes > by_rows ? by_bytes : by_rows;
    return steps > 0x7fffffff ? 0x7fffffff : (int)steps;
}
