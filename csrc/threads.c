#include "threads.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#ifdef RNNFAST_TSAN
char rf_tsan_sync;
#endif

static double min_flops = RF_TEAM_MIN_FLOPS;

int rf_threads_max(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

void rf_threads_set(int n)
{
#ifdef _OPENMP
    omp_set_num_threads(n);
#else
    (void)n;
#endif
}

int rf_threads_openmp(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

double rf_threads_min_flops(void)
{
    return min_flops;
}

void rf_threads_set_min_flops(double flops)
{
    min_flops = flops;
}
