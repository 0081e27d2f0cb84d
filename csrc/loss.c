#include <math.h>
#include <stdint.h>
#include <string.h>

#include "blas.h"
#include "loss.h"
#include "vector_clones.h"
#include "rnnfast.h"

#define RF_DTYPE 32
#include "real_begin.h"
#include "vmath_tmpl.h"
#include "loss_tmpl.h"
#include "real_end.h"

#define RF_DTYPE 64
#include "real_begin.h"
#include "vmath_tmpl.h"
#include "loss_tmpl.h"
#include "real_end.h"
