/* exp(x) for float and double as branch-free inline code the compiler can vectorize (libm's
 * exp is an opaque call that keeps a loop scalar).  No -ffast-math involved: plain IEEE
 * arithmetic on a classic scheme.
 *
 *   n = round(x / ln 2),  r = x - n ln2_hi - n ln2_lo   (Cody-Waite: n ln2_hi is exact)
 *   exp(x) = 2^n exp(r),  |r| <= ln2/2 (a hair more when x log2(e) rounds across a half)
 *   exp(r) by its Taylor polynomial: degree 7 (float), 13 (double); truncation error below
 *   2^-26 (float), 2^-57 (double) relative on |r| <= 0.35
 *   2^n as two exactly representable factors 2^n1 2^n2 (n1 = floor(n/2), n2 = n - n1), so
 *   results that overflow or fall into the subnormals round once, as libm's do.
 *
 * n comes out of the float by the "shift" trick: x log2(e) + 1.5 2^23 (float; 1.5 2^52
 * double) holds round(x log2(e)) in its low mantissa bits, so no float-to-int conversion
 * (which SSE2 lacks for 64-bit integers) is needed.  The clamps are selects that GCC
 * if-converts only under setup.py's -fno-trapping-math.
 *
 * Domain and accuracy, measured on dense grids against libm's double exp (the bounds that
 * tests/test_kernels_loss.py asserts are in brackets):
 *   float   max relative error 8.7e-8, under 1.5 2^-24 (1.0e-7), wherever the result is a
 *           normal float, x in [-87.3, 88.7]; x > 89 gives +inf, x < -104 gives 0.
 *   double  max relative error 2.22e-16 = 2^-52 (3e-16), x in [-708, 709.7]; x > 710 gives
 *           +inf, x < -746 gives 0.
 *   Subnormal results: absolute error at most one subnormal spacing (2^-149, 2^-1074).
 *   NaN gives NaN, +inf gives +inf, -inf gives 0. */
#ifndef RNNFAST_LOSS_EXP_H
#define RNNFAST_LOSS_EXP_H

#include <stdint.h>
#include <string.h>

/* RF_VECTOR_CLONES before a hot loop's function compiles it for AVX-512, AVX2 and the build's
 * baseline, and picks one at load time (GCC's target_clones, an ifunc: glibc on x86-64 only).
 * A portable wheel then runs 2-3x faster elementwise passes on current CPUs.  The clones give
 * identical results: the same operations in the same order (fixed-lane reductions, no FMA
 * contraction under -std=c99).  Define RNNFAST_NO_CLONES to build the baseline alone. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__GLIBC__) \
    && !defined(RNNFAST_NO_CLONES)
#define RF_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define RF_VECTOR_CLONES
#endif

static inline float rf_exp_f32(float x)
{
    const float log2e = 0x1.715476p+0f, shift = 0x1.8p23f;
    const float ln2_hi = 0x1.63p-1f, ln2_lo = -0x1.bd0106p-13f; /* ln2_hi: 9 bits */
    x = x < -104.0f ? -104.0f : x; /* comparisons with NaN are false: NaN passes */
    x = x > 89.0f ? 89.0f : x;
    const float k = x * log2e + shift;
    const float nf = k - shift;
    const float r = (x - nf * ln2_hi) - nf * ln2_lo;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r * r + r; /* exp(r) - 1, summed small terms first */
    p = p + 1.0f;
    uint32_t kb, shb;
    memcpy(&kb, &k, sizeof kb);
    memcpy(&shb, &shift, sizeof shb);
    const int32_t n = (int32_t)(kb - shb);               /* in [-150, 129] */
    const int32_t n1 = (int32_t)((uint32_t)(n + 512) >> 1) - 256; /* floor(n / 2) */
    const int32_t n2 = n - n1;
    const uint32_t b1 = (uint32_t)(n1 + 127) << 23, b2 = (uint32_t)(n2 + 127) << 23;
    float s1, s2;
    memcpy(&s1, &b1, sizeof s1);
    memcpy(&s2, &b2, sizeof s2);
    return p * s1 * s2;
}

static inline double rf_exp_f64(double x)
{
    const double log2e = 0x1.71547652b82fep+0, shift = 0x1.8p52;
    const double ln2_hi = 0x1.62e42feep-1, ln2_lo = 0x1.a39ef35793c76p-33; /* ln2_hi: 33 bits */
    x = x < -746.0 ? -746.0 : x;
    x = x > 710.0 ? 710.0 : x;
    const double k = x * log2e + shift;
    const double nf = k - shift;
    const double r = (x - nf * ln2_hi) - nf * ln2_lo;
    double p = 1.0 / 6227020800.0; /* 1/13! */
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r * r + r;
    p = p + 1.0;
    uint64_t kb, shb;
    memcpy(&kb, &k, sizeof kb);
    memcpy(&shb, &shift, sizeof shb);
    const int64_t n = (int64_t)(kb - shb);               /* in [-1077, 1025] */
    const int64_t n1 = (int64_t)((uint64_t)(n + 4096) >> 1) - 2048; /* floor(n / 2) */
    const int64_t n2 = n - n1;
    const uint64_t b1 = (uint64_t)(n1 + 1023) << 52, b2 = (uint64_t)(n2 + 1023) << 52;
    double s1, s2;
    memcpy(&s1, &b1, sizeof s1);
    memcpy(&s2, &b2, sizeof s2);
    return p * s1 * s2;
}

#endif
