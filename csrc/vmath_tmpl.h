/* Vectorizable exp, sigmoid and tanh for the elementwise passes and the softmax (a template: see
 * real_begin.h).  The one exp implementation of the C kernels.
 *
 * libm's expf/tanhf are calls the compiler cannot vectorize; with them the gate loops took most
 * of a training step.  These are static inline, branch-free (the ternaries become blends) and
 * built from + - * / and integer bit operations only, so a loop over them vectorizes under plain
 * IEEE arithmetic (no fast-math flags).
 *
 *   x = n ln2 + r, |r| <= ln2/2 (a hair more when x log2(e) rounds across a half; Cody-Waite,
 *   ln2 split in a high part with trailing zeros and a low part, so n ln2_hi is exact);
 *   q = expm1(r) by its Taylor polynomial (degree 7 for float, 13 for double: truncation below
 *   1/2 ulp);  2^n built in the exponent bits.  n comes out of the float by the "shift" trick:
 *   x log2(e) + 1.5 2^23 (float; 1.5 2^52 double) holds round(x log2(e)) in its low mantissa
 *   bits, so no float-to-int conversion (which SSE2 lacks for 64-bit integers) is needed.
 *     exp(x)   = 2^n (1 + q)
 *     expm1(x) = 2^n q + (2^n - 1)            (no cancellation near 0)
 *     sigmoid(x) = 1 / (1 + exp(-x))
 *     tanh(x)    = sign(x) * -e / (2 + e),  e = expm1(-2|x|)   (relative accuracy near 0 too)
 * sigmoid and tanh clamp their argument so that 2^n stays a normal number and build it as one
 * factor; FN(exp) (the softmax's) covers the whole range with 2^n as two exactly
 * representable factors 2^n1 2^n2 (n1 = floor(n/2), n2 = n - n1), so results that overflow or
 * fall into the subnormals round once, as libm's do.
 *
 * Measured (tests/test_kernels_recurrent.py::test_vmath_error_vs_libm: 4 million points, a
 * dense grid over [-20, 20] and |x| from 1e-30 to 1, both signs), max relative error in units
 * of the dtype's epsilon: float32 tanh 1.36, sigmoid 1.24 against the exact value (float64
 * libm); float64 tanh 2.07, sigmoid 1.41 against float64 libm (itself within about 1).  The test
 * holds them to 2 (float32) and 3 (float64).  Arguments are clamped where exp would leave the
 * normal range: sigmoid(x) for x < -87 (float) / -708 (double) returns sigmoid(-87) /
 * sigmoid(-708) (absolute error below 1e-37 / 1e-307); tanh saturates at +-1
 * exactly as libm does in the dtype.  NaN propagates.
 * FN(exp), against libm's double exp on dense grids (tests/test_kernels_loss.py asserts the
 * bounds in brackets): float max relative error under 1.5 2^-24 (1.0e-7) wherever the result is
 * a normal float, x in [-87.3, 88.7]; x > 89 gives +inf, x < -104 gives 0.  double max relative
 * error 2^-52 (3e-16), x in [-708, 709.7]; x > 710 gives +inf, x < -746 gives 0.  Subnormal
 * results: absolute error at most one subnormal spacing (2^-149, 2^-1074).  NaN gives NaN, +inf
 * gives +inf, -inf gives 0. */

#if RF_DTYPE == 32
#define RF_VM_UINT uint32_t
#define RF_VM_SHIFT 0x1.8p23f /* 1.5 * 2^23: adding it rounds to an integer in the low bits */
#define RF_VM_LOG2E 0x1.715476p+0f
#define RF_VM_LN2_HI 0x1.62e4p-1f    /* 16 significant bits: n * LN2_HI is exact for |n| < 256 */
#define RF_VM_LN2_LO 0x1.7f7d1cp-20f
#define RF_VM_BIAS 127u
#define RF_VM_MANT 23
#define RF_VM_EXP_LO -87.0f          /* 2^n stays normal */
#define RF_VM_EXP_HI 88.0f
#define RF_VM_TANH_LO -30.0f         /* expm1(-30) == -1 in float */
#define RF_VM_FULL_LO -104.0f        /* exp: 0 below, after rounding */
#define RF_VM_FULL_HI 89.0f          /* exp: +inf above */
#define RF_VM_SINT int32_t
#else
#define RF_VM_UINT uint64_t
#define RF_VM_SHIFT 0x1.8p52
#define RF_VM_LOG2E 0x1.71547652b82fep+0
#define RF_VM_LN2_HI 0x1.62e42fee00000p-1 /* fdlibm's split: 32 trailing zero bits */
#define RF_VM_LN2_LO 0x1.a39ef35793c76p-33
#define RF_VM_BIAS 1023u
#define RF_VM_MANT 52
#define RF_VM_EXP_LO -708.0
#define RF_VM_EXP_HI 708.0
#define RF_VM_TANH_LO -60.0          /* expm1(-60) == -1 in double */
#define RF_VM_FULL_LO -746.0
#define RF_VM_FULL_HI 710.0
#define RF_VM_SINT int64_t
#endif

/* q = expm1(r) for x = n ln2 + r, and *nbits = n + bits(SHIFT) (n in the low mantissa bits);
 * x must lie within [FULL_LO, FULL_HI]. */
static inline real FN(vm_reduce_n)(real x, RF_VM_UINT *nbits)
{
    real kd = x * RF_VM_LOG2E + RF_VM_SHIFT;
    memcpy(nbits, &kd, sizeof *nbits);
    kd -= RF_VM_SHIFT;
    const real r = (x - kd * RF_VM_LN2_HI) - kd * RF_VM_LN2_LO;
#if RF_DTYPE == 32
    real p = (real)(1.0 / 5040);
    p = p * r + (real)(1.0 / 720);
    p = p * r + (real)(1.0 / 120);
    p = p * r + (real)(1.0 / 24);
    p = p * r + (real)(1.0 / 6);
    p = p * r + (real)0.5;
#else
    real p = 1.0 / 6227020800.0; /* 1/13! */
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
#endif
    return (p * r) * r + r;
}

/* q = expm1(r) and *scale = 2^n for x = n ln2 + r; x must lie within [EXP_LO, EXP_HI]. */
static inline real FN(vm_reduce)(real x, real *scale)
{
    RF_VM_UINT ki;
    const real q = FN(vm_reduce_n)(x, &ki);
    /* 2^n = (n + bias) << mantissa bits; the bits of SHIFT above n fall off the top */
    const RF_VM_UINT sbits = (RF_VM_UINT)(ki + RF_VM_BIAS) << RF_VM_MANT;
    memcpy(scale, &sbits, sizeof sbits);
    return q;
}

/* The clamp limits, read once per loop through a volatile: a clamp "y = y < lo ? lo : y" with a
 * compile-time lo lets GCC fold the arithmetic that follows into the branch where y == lo, and
 * under the default -ftrapping-math it then refuses to if-convert the loop, which therefore does
 * not vectorize.  Hot loops call FN(vm_limits_load)() before the loop and pass the result. */
struct FN(vm_limits) {
    real exp_lo, exp_hi, tanh_lo, full_lo, full_hi;
};

static volatile const real FN(vm_limit_values)[5] = {RF_VM_EXP_LO, RF_VM_EXP_HI, RF_VM_TANH_LO,
                                                        RF_VM_FULL_LO, RF_VM_FULL_HI};

static inline struct FN(vm_limits) FN(vm_limits_load)(void)
{
    struct FN(vm_limits) lim;
    lim.exp_lo = FN(vm_limit_values)[0];
    lim.exp_hi = FN(vm_limit_values)[1];
    lim.tanh_lo = FN(vm_limit_values)[2];
    lim.full_lo = FN(vm_limit_values)[3];
    lim.full_hi = FN(vm_limit_values)[4];
    return lim;
}

/* exp(x) over the whole range, 2^n as 2^n1 2^n2 */
static inline real FN(exp)(real x, struct FN(vm_limits) lim)
{
    x = x < lim.full_lo ? lim.full_lo : x; /* comparisons with NaN are false: NaN passes */
    x = x > lim.full_hi ? lim.full_hi : x;
    RF_VM_UINT ki, shb;
    const real q = FN(vm_reduce_n)(x, &ki);
    const real shift = RF_VM_SHIFT;
    memcpy(&shb, &shift, sizeof shb);
    const RF_VM_SINT n = (RF_VM_SINT)(ki - shb);
    /* n1 = floor(n / 2) by a logical shift of a positive offset (no signed shift) */
    const RF_VM_SINT n1 = (RF_VM_SINT)((RF_VM_UINT)(n + 4096) >> 1) - 2048;
    const RF_VM_SINT n2 = n - n1;
    const RF_VM_UINT b1 = (RF_VM_UINT)(n1 + (RF_VM_SINT)RF_VM_BIAS) << RF_VM_MANT;
    const RF_VM_UINT b2 = (RF_VM_UINT)(n2 + (RF_VM_SINT)RF_VM_BIAS) << RF_VM_MANT;
    real s1, s2;
    memcpy(&s1, &b1, sizeof s1);
    memcpy(&s2, &b2, sizeof s2);
    return ((real)1 + q) * s1 * s2;
}

/* sigmoid(x) = 1 / (1 + exp(-x)) */
static inline real FN(vsigmoid)(real x, struct FN(vm_limits) lim)
{
    real y = -x;
    y = y < lim.exp_lo ? lim.exp_lo : y; /* NaN stays NaN */
    y = y > lim.exp_hi ? lim.exp_hi : y;
    real scale;
    const real q = FN(vm_reduce)(y, &scale);
    return (real)1 / ((real)1 + scale * ((real)1 + q));
}

/* tanh(x) = sign(x) (-e) / (2 + e),  e = expm1(-2|x|); |x| and the sign by bit operations */
static inline real FN(vtanh)(real x, struct FN(vm_limits) lim)
{
    const RF_VM_UINT sign = (RF_VM_UINT)1 << (8 * sizeof(real) - 1);
    RF_VM_UINT xb;
    memcpy(&xb, &x, sizeof xb);
    const RF_VM_UINT ab = xb & ~sign;
    real ax;
    memcpy(&ax, &ab, sizeof ax);
    real y = (real)-2 * ax;
    y = y < lim.tanh_lo ? lim.tanh_lo : y;
    real scale;
    const real q = FN(vm_reduce)(y, &scale);
    const real e = scale * q + (scale - (real)1);
    const real t = -e / ((real)2 + e); /* >= 0 */
    RF_VM_UINT tb;
    memcpy(&tb, &t, sizeof tb);
    tb |= xb & sign; /* copysign(t, x) */
    real out;
    memcpy(&out, &tb, sizeof out);
    return out;
}

#undef RF_VM_UINT
#undef RF_VM_SHIFT
#undef RF_VM_LOG2E
#undef RF_VM_LN2_HI
#undef RF_VM_LN2_LO
#undef RF_VM_BIAS
#undef RF_VM_MANT
#undef RF_VM_EXP_LO
#undef RF_VM_EXP_HI
#undef RF_VM_TANH_LO
#undef RF_VM_FULL_LO
#undef RF_VM_FULL_HI
#undef RF_VM_SINT
