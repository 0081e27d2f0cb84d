/* The library's one pool of worker threads: OpenMP's (libgomp with GCC), the runtime that
 * scikit-learn's compiled loops use and that threadpoolctl already controls (threadpool_limits(n)
 * calls omp_set_num_threads in every loaded OpenMP runtime, ours included).  Its size is
 * OpenMP's nthreads-var of the calling thread: OMP_NUM_THREADS at start, then
 * omp_set_num_threads (rf_threads_set, rnnfast.set_num_threads, threadpoolctl, and PyTorch's
 * torch.set_num_threads where PyTorch shares the runtime).
 *
 * How the kernels split their work so that no result depends on the thread count: per-step work
 * by batch rows (a row's arithmetic is the same whichever thread runs it), GEMMs by fixed column
 * blocks chosen from the shapes alone (each element's sum keeps one order), each block one
 * single-threaded BLAS call (blas.h holds BLAS at one thread inside the kernels).
 *
 * Built without OpenMP, the pool has one thread and the directives below are empty.
 *
 * ThreadSanitizer: libgomp is not instrumented, so TSan sees none of its synchronization.  A
 * build with RNNFAST_TSAN annotates it by hand, as LLVM's Archer tool does through OMPT, on one
 * sync object: every barrier is a release before and an acquire after; a team begins with the
 * forking thread's release and a barrier, and ends with every thread's release, which the forking
 * thread acquires after the join.  The function that forks is not instrumented (RF_TEAM_FORK):
 * the shared variables it stores for the team just before the fork and the workers' loads of
 * them at the region's entry, before any annotation can run, are libgomp's business.  So each
 * region of the kernels is a fork function and a team function (orphaned worksharing):
 *     static RF_TEAM_FORK void fork(args)           static RF_NOINLINE void team(args)
 *     {                                             {
 *         RF_OMP(parallel ...)                          RF_TEAM_BEGIN(); (before any read)
 *         team(args);                                   ... RF_OMP(for ...) ... RF_BARRIER(); ...
 *         RF_TEAM_JOINED();                             RF_TEAM_END();
 *     }                                             }
 * Without RNNFAST_TSAN these add nothing (no barrier). */
#ifndef RNNFAST_THREADS_H
#define RNNFAST_THREADS_H

/* The threads a kernel called from this thread may use (1 without OpenMP): the pool's size,
 * the caller's setting.  Kernels fork rf_threads_team() (below), which is this unless workers
 * were lately late. */
int rf_threads_max(void);
/* Set them, n >= 1, for kernels called from this thread (omp_set_num_threads). */
void rf_threads_set(int n);
/* 1 when the library was built with OpenMP. */
int rf_threads_openmp(void);
/* The work (in flops) below which a kernel call runs on one thread: RF_TEAM_MIN_FLOPS until set
 * (tests set 0 to thread every call).  Not thread-safe against running kernels. */
double rf_threads_min_flops(void);
void rf_threads_set_min_flops(double flops);

/* Wall-clock seconds from an arbitrary start (OpenMP's clock; 0 without OpenMP, where no team
 * runs to be timed). */
double rf_threads_seconds(void);

/* Workers descheduled by another process on their cores hold every barrier of a team (the
 * elementwise passes' static blocks, the recurrent drivers' phases, the sampler's steps): with
 * one of two cores busy, a training step at 2 threads took 1.6x its 1-thread time.  Teams that
 * time thread 0's waits (the recurrent drivers at their phase barrier and the join, the
 * one-stream sampler at its barriers) give rf_threads_verdict the wait and the time it was
 * timed over.  Late: a wait of rf_threads_late_wait() seconds or more (RF_LATE_WAIT until set)
 * and RF_LATE_SHARE or more of that time.  After a late verdict every kernel, process-wide,
 * runs on rf_threads_team() = 1 thread for a backoff, then tries a team again: each late
 * verdict quadruples the backoff (at least RF_LATE_BACKOFF_MIN, at most RF_LATE_BACKOFF_MAX),
 * each timely one halves it, so that a busy core (whose worker a team finds late about half the
 * time) costs about one time slice a second, and a passing hiccup (a few ms now and then) a few
 * hundredths of a second on one thread.  Setting the wait clears the backoff; a wait of 0 makes
 * every verdict late (tests). */
int rf_threads_team(void);
int rf_threads_verdict(double waited, double elapsed);
double rf_threads_late_wait(void);
void rf_threads_set_late_wait(double seconds);
/* Thread 0's clock over a team: when it forked, when thread 0 finished its share, and its waits
 * at the team's timed barriers (RF_BARRIER_TIMED). */
struct rf_team_clock {
    double start, done, waited;
};
struct rf_team_clock rf_team_clock_start(void);
/* After the join: the verdict on thread 0's waits at the timed barriers and the join. */
void rf_threads_joined(const struct rf_team_clock *clock);

/* Quiet, thread 0 waits microseconds (at large shapes up to a sixth of a driver's time, for its
 * last row block) and a few ms at a hiccup; behind a descheduled worker, a time slice, most of a
 * phase's time (docs/threads.md). */
#ifndef RF_LATE_WAIT
#define RF_LATE_WAIT 1e-3
#endif
#ifndef RF_LATE_SHARE
#define RF_LATE_SHARE 0.5
#endif
#ifndef RF_LATE_BACKOFF_MIN
#define RF_LATE_BACKOFF_MIN 0.02
#endif
#ifndef RF_LATE_BACKOFF_MAX
#define RF_LATE_BACKOFF_MAX 1.0
#endif

/* About 4 MFLOP (min-char-rnn's layer is 0.5): below it, the fork and join of a team, a few
 * microseconds, cost more than they save. */
#ifndef RF_TEAM_MIN_FLOPS
#define RF_TEAM_MIN_FLOPS 4e6
#endif

#define RF_PRAGMA_(text) _Pragma(#text)
#ifdef _OPENMP
#define RF_OMP(directive) RF_PRAGMA_(omp directive)
#else
#define RF_OMP(directive)
#endif

#ifdef RNNFAST_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
extern char rf_tsan_sync;
#define RF_TSAN_ACQUIRE() __tsan_acquire(&rf_tsan_sync)
#define RF_TSAN_RELEASE() __tsan_release(&rf_tsan_sync)
#else
#define RF_TSAN_ACQUIRE() ((void)0)
#define RF_TSAN_RELEASE() ((void)0)
#endif

/* A barrier of the team inside a parallel region. */
#define RF_BARRIER()                                                                           \
    do {                                                                                       \
        RF_TSAN_RELEASE();                                                                     \
        RF_OMP(barrier)                                                                        \
        RF_TSAN_ACQUIRE();                                                                     \
    } while (0)

#ifdef RNNFAST_TSAN
#define RF_TEAM_BEGIN()                                                                        \
    do {                                                                                       \
        RF_OMP(master)                                                                         \
        RF_TSAN_RELEASE();                                                                     \
        RF_BARRIER();                                                                          \
    } while (0)
#else
#define RF_TEAM_BEGIN() ((void)0)
#endif
#define RF_TEAM_END() RF_TSAN_RELEASE()
/* Thread 0 notes when its share of the team's work ended (for rf_threads_joined). */
#define RF_TEAM_DONE(clock)                                                                    \
    do {                                                                                       \
        RF_OMP(master)                                                                         \
        (clock)->done = rf_threads_seconds();                                                  \
    } while (0)

/* RF_BARRIER, thread 0 adding its wait to the clock. */
#define RF_BARRIER_TIMED(clock)                                                                \
    do {                                                                                       \
        const double rf_barrier_start_ = rf_threads_seconds();                                 \
        RF_BARRIER();                                                                          \
        RF_OMP(master)                                                                         \
        (clock)->waited += rf_threads_seconds() - rf_barrier_start_;                           \
    } while (0)
#define RF_TEAM_JOINED() RF_TSAN_ACQUIRE()

#if defined(RNNFAST_TSAN)
#define RF_TEAM_FORK __attribute__((noinline, no_sanitize_thread))
#elif defined(__GNUC__)
#define RF_TEAM_FORK __attribute__((noinline))
#else
#define RF_TEAM_FORK
#endif

#endif
