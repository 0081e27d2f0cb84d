/* One source, two dtypes, up to three instruction sets.  A kernel template (*_tmpl.h) defines
 * static functions written once in terms of
 *   real           the element type
 *   FN(name)       name_f32_base, name_f64_avx2, ... (dtype and RF_VARIANT suffixes)
 *   DT(name)       name_f32 / name_f64, for the descriptor structs (recurrent.h)
 *   EXP, LOG, TANH, SQRT   libm functions of that type
 *   GEMM           rf_gemm_f32 / rf_gemm_f64
 * A .c file instantiates its templates once per dtype and variant (paths.h), each time
 *   #define RF_DTYPE 32
 *   #include "real_begin.h"
 *   #include "x_tmpl.h"
 *   #include "real_end.h"
 * with RF_VARIANT defined as _base, _avx2 or _avx512 (under the matching #pragma GCC target),
 * and ends with the exported functions, each defined by name (rf_x_f32, rf_x_f64) and
 * dispatching to its variants with RF_BY_ISA.  Templates never include one another. */
#define RF_CAT3_(a, b, c) a##b##c
#define RF_CAT3(a, b, c) RF_CAT3_(a, b, c)
#if RF_DTYPE == 32
#define real float
#define FN(name) RF_CAT3(name, _f32, RF_VARIANT)
#define DT(name) name##_f32
#define EXP expf
#define LOG logf
#define TANH tanhf
#define SQRT sqrtf
#define FMA fmaf
#define GEMM rf_gemm_f32
#elif RF_DTYPE == 64
#define real double
#define FN(name) RF_CAT3(name, _f64, RF_VARIANT)
#define DT(name) name##_f64
#define EXP exp
#define LOG log
#define TANH tanh
#define SQRT sqrt
#define FMA fma
#define GEMM rf_gemm_f64
#else
#error "define RF_DTYPE as 32 or 64 before including real_begin.h"
#endif
