#include "threads.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#ifdef RNNFAST_TSAN
char rf_tsan_sync;
#endif

static double min_flops = RF_TEAM_MIN_FLOPS;
static double late_wait = RF_LATE_WAIT;
/* The backoff after late workers (threads.h), written by any thread that runs a team. */
static double late_until = 0;   /* rf_threads_seconds() until which kernels run on one thread */
static double late_backoff = 0; /* the current backoff */

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

int rf_threads_verdict(double waited, double elapsed)
{
    const int late = late_wait == 0 || (waited >= late_wait && waited >= RF_LATE_SHARE * elapsed);
    double backoff;
    RF_OMP(atomic read)
    backoff = late_backoff;
    if (late) {
        backoff = 4 * backoff > RF_LATE_BACKOFF_MIN ? 4 * backoff : RF_LATE_BACKOFF_MIN;
        backoff = backoff < RF_LATE_BACKOFF_MAX ? backoff : RF_LATE_BACKOFF_MAX;
        RF_OMP(atomic write)
        late_until = rf_threads_seconds() + backoff;
    } else {
        backoff /= 2;
    }
    RF_OMP(atomic write)
    late_backoff = backoff;
    return late;
}

struct rf_team_clock rf_team_clock_start(void)
{
    const double now = rf_threads_seconds();
    const struct rf_team_clock clock = {now, now, 0};
    return clock;
}

void rf_threads_joined(const struct rf_team_clock *clock)
{
    const double end = rf_threads_seconds();
    rf_threads_verdict(clock->waited + end - clock->done, end - clock->start);
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
    RF_OMP(atomic write)
    late_backoff = 0;
}
