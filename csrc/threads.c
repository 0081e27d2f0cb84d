#include "threads.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#ifdef RNNFAST_TSAN
char rf_tsan_sync;
#endif

static double min_flops = RF_TEAM_MIN_FLOPS;
static double late_wait = RF_LATE_WAIT;
static double late_until = 0; /* rf_threads_seconds() until which teams are late */

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

double rf_threads_seconds(void)
{
#ifdef _OPENMP
    return omp_get_wtime();
#else
    return 0;
#endif
}

int rf_threads_team(void)
{
    double until;
    RF_OMP(atomic read)
    until = late_until;
    return rf_threads_seconds() < until ? 1 : rf_threads_max();
}

int rf_threads_late(double waited, double elapsed)
{
    return late_wait == 0 || (waited >= late_wait && waited >= RF_LATE_SHARE * elapsed);
}

void rf_threads_joined(double start, double done)
{
    const double end = rf_threads_seconds();
    if (rf_threads_late(end - done, end - start))
        rf_threads_mark_late();
}

double rf_threads_late_wait(void)
{
    return late_wait;
}

void rf_threads_set_late_wait(double seconds)
{
    late_wait = seconds;
    RF_OMP(atomic write)
    late_until = 0;
}

void rf_threads_mark_late(void)
{
    RF_OMP(atomic write)
    late_until = rf_threads_seconds() + RF_LATE_BACKOFF;
}
