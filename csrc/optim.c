#include <math.h>

#include "vector_clones.h"
#include "optim.h"

#define RF_DTYPE 32
#include "real_begin.h"
#include "optim_tmpl.h"
#include "real_end.h"

#define RF_DTYPE 64
#include "real_begin.h"
#include "optim_tmpl.h"
#include "real_end.h"
