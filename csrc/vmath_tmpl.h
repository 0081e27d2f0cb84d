/* Vectorizable exp, sigmoid and tanh for the elementwise passes (a template: see real_begin.h).
 *
 * libm's expf/tanhf are calls the compiler cannot vectorize; with them the gate loops took most
 * of a training step.  These are static inline, branch-free (the ternaries become blends) and
 * built from + - * / and integer bit operations only, so a loop over them vectorizes under plain
 * IEEE arithmetic (no -ffast-math).
 *
 *   x = n ln2 + r, |r| <= ln2/2 (Cody-Waite, ln2 split in a high part with trailing zeros and a
 *   low part, so n ln2_hi is exact);  q = expm1(r) by its Taylor polynomial (degree 7 for float,
 *   13 for double: truncation below 1/2 ulp);  2^n built in the exponent bits.
 *     exp(x)   = 2^n (1 + q)
 *     expm1(x) = 2^n q + (2^n - 1)            (no cancellation near 0)
 *     sigmoid(x) = 1 / (1 + exp(-x))
 *     tanh(x)    = sign(x) * -e / (2 + e),  e = expm1(-2|x|)   (relative accuracy near 0 too)
 *
 * Measured (tests/test_kernels_recurrent.py::test_vmath_error_vs_libm: 4 million points, a
 * dense grid over [-20, 20] and |x| from 1e-30 to 1, both signs), max relative error in units
 * of the dtype's epsilon: float32 tanh 1.36, sigmoid 1.24 against the exact value (float64
 * libm); float64 tanh 2.07, sigmoid 1.41 against float64 libm (itself within about 1).  The test
 * holds them to 2 (float32) and 3 (float64).  Arguments are clamped where exp would leave the
 * normal range: sigmoid(x) for x < -87 (float) / -708 (double) returns sigmoid(-87) /
 * sigmoid(-708) (absolute error below 1e-37 / 1e-307); tanh saturates at +-1
 * exactly as libm does in the dtype.  NaN propagates. */

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
#endif

/* q = expm1(r) and *scale = 2^n for x = n ln2 + r; x must lie within [EXP_LO, EXP_HI]. */
static inline real FN(rf_vm_reduce)(real x, real *scale)
{
    real kd = x * RF_VM_LOG2E + RF_VM_SHIFT;
    RF_VM_UINT ki;
    memcpy(&ki, &kd, sizeof ki); /* n + bits(SHIFT): n sits in the low mantissa bits */
    kd -= RF_VM_SHIFT;
    const real r = (x - kd * RF_VM_LN2_HI) - kd * RF_VM_LN2_LO;
    /* 2^n = (n + bias) << mantissa bits; the bits of SHIFT above n fall off the top */
    const RF_VM_UINT sbits = (RF_VM_UINT)(ki + RF_VM_BIAS) << RF_VM_MANT;
    memcpy(scale, &sbits, sizeof sbits);
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

/* The clamp limits, read once per loop through a volatile: a clamp "y = y < lo ? lo : y" with a
 * compile-time lo lets GCC fold the arithmetic that follows into the branch where y == lo, and
 * under the default -ftrapping-math it then refuses to if-convert the loop, which therefore does
 * not vectorize.  Hot loops call FN(rf_vm_limits_load)() before the loop and pass the result. */
struct FN(rf_vm_limits) {
    real exp_lo, exp_hi, tanh_lo;
};

static volatile const real FN(rf_vm_limit_values)[3] = {RF_VM_EXP_LO, RF_VM_EXP_HI,
                                                        RF_VM_TANH_LO};

static inline struct FN(rf_vm_limits) FN(rf_vm_limits_load)(void)
{
    struct FN(rf_vm_limits) lim;
    lim.exp_lo = FN(rf_vm_limit_values)[0];
    lim.exp_hi = FN(rf_vm_limit_values)[1];
    lim.tanh_lo = FN(rf_vm_limit_values)[2];
    return lim;
}

/* sigmoid(x) = 1 / (1 + exp(-x)) */
static inline real FN(rf_vsigmoid)(real x, struct FN(rf_vm_limits) lim)
{
    real y = -x;
    y = y < lim.exp_lo ? lim.exp_lo : y; /* NaN stays NaN */
    y = y > lim.exp_hi ? lim.exp_hi : y;
    real scale;
    const real q = FN(rf_vm_reduce)(y, &scale);
    return (real)1 / ((real)1 + scale * ((real)1 + q));
}

/* tanh(x) = sign(x) (-e) / (2 + e),  e = expm1(-2|x|); |x| and the sign by bit operations */
static inline real FN(rf_vtanh)(real x, struct FN(rf_vm_limits) lim)
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
    const real q = FN(rf_vm_reduce)(y, &scale);
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
