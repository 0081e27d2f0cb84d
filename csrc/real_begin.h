/* One source, two dtypes.  A kernel template (*_tmpl.h) is written once in terms of
 *   real           the element type
 *   FN(name)       name_f32 / name_f64
 *   EXP, LOG, TANH, SQRT   libm functions of that type
 *   GEMM           rf_gemm_f32 / rf_gemm_f64
 * and a .c file instantiates it for both:
 *   #define RF_DTYPE 32
 *   #include "real_begin.h"
 *   #include "x_tmpl.h"
 *   #include "real_end.h"
 * and again with RF_DTYPE 64. */
#if RF_DTYPE == 32
#define real float
#define FN(name) name##_f32
#define EXP expf
#define LOG logf
#define TANH tanhf
#define SQRT sqrtf
#define GEMM rf_gemm_f32
#elif RF_DTYPE == 64
#define real double
#define FN(name) name##_f64
#define EXP exp
#define LOG log
#define TANH tanh
#define SQRT sqrt
#define GEMM rf_gemm_f64
#else
#error "define RF_DTYPE as 32 or 64 before including real_begin.h"
#endif
