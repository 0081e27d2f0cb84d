#include <math.h>
#include <string.h>

#include "blas.h"
#include "recurrent.h"
#include "vector_clones.h"

#define RF_DTYPE 32
#include "real_begin.h"
#include "vmath_tmpl.h"
#include "cell_tmpl.h"
#include "pgemm_tmpl.h"
#include "recurrent_tmpl.h"
#include "real_end.h"

#define RF_DTYPE 64
#include "real_begin.h"
#include "vmath_tmpl.h"
#include "cell_tmpl.h"
#include "pgemm_tmpl.h"
#include "recurrent_tmpl.h"
#include "real_end.h"
