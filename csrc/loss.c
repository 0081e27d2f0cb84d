#include <math.h>

#include "blas.h"
#include "loss.h"
#include "loss_exp.h"
#include "rnnfast.h"

#define RF_DTYPE 32
#include "real_begin.h"
#include "loss_tmpl.h"
#include "real_end.h"

#define RF_DTYPE 64
#include "real_begin.h"
#include "loss_tmpl.h"
#include "real_end.h"
