#include <stdint.h>

#include "blas.h"
#include "linear.h"

#define RF_DTYPE 32
#include "real_begin.h"
#include "linear_tmpl.h"
#include "real_end.h"

#define RF_DTYPE 64
#include "real_begin.h"
#include "linear_tmpl.h"
#include "real_end.h"
