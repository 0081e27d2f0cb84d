/* RF_VECTOR_CLONES before a hot loop's function compiles it for AVX-512, AVX2 and the build's
 * baseline, and picks one at load time (GCC's target_clones, an ifunc: glibc on x86-64 only).
 * A portable wheel then runs 2-3x faster elementwise passes on current CPUs.  The clones give
 * identical results: the same operations in the same order (fixed-lane reductions, no FMA
 * contraction under -std=c99).  Define RNNFAST_NO_CLONES to build the baseline alone. */
#ifndef RNNFAST_VECTOR_CLONES_H
#define RNNFAST_VECTOR_CLONES_H

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__GLIBC__) \
    && !defined(RNNFAST_NO_CLONES)
#define RF_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define RF_VECTOR_CLONES
#endif

#endif
