/* The code paths a kernel call can take, chosen from the machine by default and forceable (by
 * the bridge: RNNFAST_ISA / RNNFAST_PACKED at import, _kernels._set_paths in tests), so that
 * every path is tested on every machine.
 *
 * ISA variants.  The elementwise loops (and everything inlined into them: the cell passes, the
 * softmax, the optimizer updates, the packed per-step kernel) are compiled once per instruction
 * set: baseline (the build's target, e.g. SSE2 on x86-64), AVX2+FMA and AVX-512F+FMA, each under
 * `#pragma GCC target` with the names suffixed _base, _avx2, _avx512.  Every exported kernel
 * dispatches through RF_BY_ISA on rf_isa_active(): the best variant the CPU runs
 * (__builtin_cpu_supports, at first use), or the one a caller set.  The variants give the same
 * bits: the same operations in the same order (fixed-lane reductions) and no FMA contraction
 * (-ffp-contract=off); the packed kernel's explicit fma is one IEEE rounding at any width.
 * Variants exist on GCC for x86-64 only, and not with RNNFAST_NO_CLONES: elsewhere there is one,
 * the baseline.
 *
 * Packed per-step products.  The per-step GEMMs h_{t-1} W_h (and the backward carry) go through
 * the packed kernel of pgemm_tmpl.h or through BLAS: by default packed when B >= 2 and the active
 * ISA is AVX-512 or AVX2 (or the baseline with hardware fma), where it was measured faster
 * (paths.c, docs/internals.md); RF_PACKED_ON / RF_PACKED_OFF force it.
 *
 * Chunks.  The recurrent drivers project the input and run the weight-gradient GEMMs per chunk
 * of about chunk_bytes of activations (RF_CHUNK_BYTES by default), but of at least chunk_rows
 * rows (RF_CHUNK_ROWS: steps x B) and at least one step; a chunk the row floor would make twice
 * the steps that chunk_bytes holds (or more) is the whole sequence instead (paths.c). */
#ifndef RNNFAST_PATHS_H
#define RNNFAST_PATHS_H

#include <stdint.h>

enum rf_isa { RF_ISA_BASELINE = 0, RF_ISA_AVX2 = 1, RF_ISA_AVX512 = 2, RF_ISA_COUNT = 3 };
enum rf_packed { RF_PACKED_AUTO = -1, RF_PACKED_OFF = 0, RF_PACKED_ON = 1 };

/* At charrnn-default per-chunk GEMMs trained faster than whole-sequence GEMMs outside the loop,
 * and 256 KiB or 1 MiB were no better than 512 KiB (docs/internals.md).  A build may set
 * another default (-DRF_CHUNK_BYTES=1024 with -DRF_CHUNK_ROWS=1: every test shape crosses chunk
 * boundaries). */
#ifndef RF_CHUNK_BYTES
#define RF_CHUNK_BYTES (512 * 1024)
#endif

/* The floor keeps each chunk's GEMMs large where one step's slab is already near chunk_bytes:
 * at B=64, H=512..1024 (a step of 0.5-1 MiB) a chunk of one step made them rank-64 updates
 * (measured against no floor and a 512-row floor: docs/internals.md).
 * A build or a test may lower it (1: chunks of chunk_bytes alone). */
#ifndef RF_CHUNK_ROWS
#define RF_CHUNK_ROWS 256
#endif

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) \
    && !defined(RNNFAST_NO_CLONES)
#define RF_ISA_VARIANTS 1
#else
#define RF_ISA_VARIANTS 0
#endif

/* RF_ALWAYS_INLINE: a body specialized at each call by a constant argument (the cell, the block
 * height).  RF_NOINLINE: the vector passes that the sampler and the drivers call stay functions
 * of their own, as the target_clones entry points they replaced were: inlined into the sampling
 * loop (which calls BLAS between them), they sampled slower (docs/internals.md). */
#if defined(__GNUC__)
#define RF_ALWAYS_INLINE inline __attribute__((always_inline))
#define RF_NOINLINE __attribute__((noinline))
#else
#define RF_ALWAYS_INLINE inline
#define RF_NOINLINE
#endif

struct rf_paths {
    int isa;             /* enum rf_isa in force */
    int packed;          /* enum rf_packed */
    int64_t chunk_bytes; /* >= 1 */
    int64_t chunk_rows;  /* >= 1 */
};

/* Whether this build has the variant and the CPU runs it. */
int rf_isa_available(int isa);
/* The variant in force (the best available until rf_paths_set chose one). */
int rf_isa_active(void);
/* Set them all; returns 0, or -1 (nothing changed) when paths->isa is not available or
 * chunk_bytes or chunk_rows < 1.  Not thread-safe against running kernels: call it between
 * calls. */
int rf_paths_set(const struct rf_paths *paths);
struct rf_paths rf_paths_get(void);
/* Whether the per-step products of M rows use the packed kernel. */
int rf_use_packed(int M);
/* Steps per chunk for steps of B rows and `step_bytes` bytes of activations each (INT_MAX: the
 * whole sequence). */
int rf_chunk_steps(int B, int64_t step_bytes);

#if RF_ISA_VARIANTS
#define RF_BY_ISA(result, fn, args)                                                            \
    switch (rf_isa_active()) {                                                                 \
    case RF_ISA_AVX512:                                                                        \
        result fn##_avx512 args;                                                               \
        break;                                                                                 \
    case RF_ISA_AVX2:                                                                          \
        result fn##_avx2 args;                                                                 \
        break;                                                                                 \
    default:                                                                                   \
        result fn##_base args;                                                                 \
    }
#else
#define RF_BY_ISA(result, fn, args) result fn##_base args;
#endif

#endif
