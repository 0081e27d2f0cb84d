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

/* The threads a kernel called from this thread may use (1 without OpenMP). */
int rf_threads_max(void);
/* Set them, n >= 1, for kernels called from this thread (omp_set_num_threads). */
void rf_threads_set(int n);
/* 1 when the library was built with OpenMP. */
int rf_threads_openmp(void);
/* The work (in flops) below which a kernel call runs on one thread: RF_TEAM_MIN_FLOPS until set
 * (tests set 0 to thread every call).  Not thread-safe against running kernels. */
double rf_threads_min_flops(void);
void rf_threads_set_min_flops(double flops);

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
#define RF_TEAM_JOINED() RF_TSAN_ACQUIRE()

#if defined(RNNFAST_TSAN)
#define RF_TEAM_FORK __attribute__((noinline, no_sanitize_thread))
#elif defined(__GNUC__)
#define RF_TEAM_FORK __attribute__((noinline))
#else
#define RF_TEAM_FORK
#endif

#endif
