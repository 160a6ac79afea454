/* SPDX-License-Identifier: MIT */
/*
 * A small copy of Go's testing.B for cctx-bench: the same iteration growth,
 * the same RunParallel work sharing and the same output format, so that the
 * figures line up with `go test -bench` line for line (and benchstat reads
 * both).
 */
#ifndef CCTX_BENCH_HARNESS_H
#define CCTX_BENCH_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* bench/cpp's C++ twin includes this header too, and links harness.c. Its
 * bench_pb_next must stay inline, as here (the ~1 ns rows would otherwise
 * time a call), so the shared counter is std::atomic<uint64_t> there: GCC and
 * Clang give it the layout of C's _Atomic uint64_t (C++23 makes them one type). */
#ifdef __cplusplus
#include <atomic>
typedef std::atomic<uint64_t> bench_atomic_u64;
using std::atomic_fetch_add_explicit;
using std::memory_order_relaxed;
extern "C" {
#else
#include <stdatomic.h>
typedef _Atomic uint64_t bench_atomic_u64;
#endif

typedef struct bench_b {
    int64_t n; /* b.N */
    /* Private to the harness. */
    bool timer_on;
    int64_t start_ns, duration_ns;
    uint64_t start_allocs, start_bytes, net_allocs, net_bytes;
    int64_t prev_n, prev_duration_ns; /* for RunParallel's grain */
    bool has_ns_per_op;
    double ns_per_op;
    char note[512];
} bench_b;

/* As b.ResetTimer, b.StopTimer, b.StartTimer: allocations are counted only
 * while the timer runs (and only in the run that counts: bench_run). */
void bench_reset_timer(bench_b *b);
void bench_stop_timer(bench_b *b);
void bench_start_timer(bench_b *b);
/* As b.ReportMetric(x, "ns/op"): replaces elapsed/N in the output line. */
void bench_report_ns_per_op(bench_b *b, double ns);
/* A '#' comment printed after the result line (the last run's wins). */
void bench_note(bench_b *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* testing.PB: iterations are taken from a shared counter `grain` at a time. */
typedef struct bench_pb {
    bench_atomic_u64 *global;
    uint64_t grain, cache, bn;
} bench_pb;

static inline bool bench_pb_next(bench_pb *pb)
{
    if (pb->cache == 0) {
        uint64_t n = atomic_fetch_add_explicit(pb->global, pb->grain, memory_order_relaxed) +
                     pb->grain;
        if (n <= pb->bn)
            pb->cache = pb->grain;
        else if (n < pb->bn + pb->grain)
            pb->cache = pb->bn + pb->grain - n;
        else
            return false;
    }
    pb->cache--;
    return true;
}

/* b.RunParallel: one thread per core runs body until pb runs dry. */
void bench_run_parallel(bench_b *b, void (*body)(bench_pb *pb, void *arg), void *arg);

typedef void (*bench_fn)(bench_b *b, void *arg);
/* Reads go test's flags, counts the threads RunParallel will use and prints
 * go test's header, then "# BANNER, N threads". Call first, from main. */
void bench_init(int argc, char **argv, const char *banner);
/* Whether -bench selects the benchmark (or a parent of benchmarks) `name`;
 * call before any costly set-up shared by sub-benchmarks. */
bool bench_wanted(const char *name);
/* Runs a leaf benchmark if -bench selects it, growing N as Go does, and prints
 * its line. `name` is the full name without the -N suffix. The timed runs
 * count no allocations; B/op and allocs/op come from one more run of the last
 * N, untimed, that does (its note is not printed). */
void bench_run(const char *name, bench_fn fn, void *arg);

/* Threads that RunParallel uses: GOMAXPROCS's twin. */
int bench_procs(void);
int64_t bench_now_ns(void);
/* Process-wide allocation totals since start (alloc.c). */
void bench_alloc_totals(uint64_t *allocs, uint64_t *bytes);
/* Stops (true) or resumes the count: the totals stand still while it is
 * paused, as they do during bench_run's timed runs. */
void bench_alloc_pause(bool pause);

/* True once thread tid (of this process) is in the kernel's interruptible
 * sleep, state S in /proc/self/task/TID/stat: blocked, not just descheduled. */
bool bench_thread_sleeping(int tid);

/* Percentile p (0..100) of n samples; sorts them. */
int64_t bench_percentile(int64_t *samples, size_t n, double p);

/* Deadline lateness rows (DeadlineLateness and its floor) draw the same
 * timeouts: 1 to 2 ms, from an xorshift generator started at this seed. */
#define BENCH_LATENESS_SEED UINT64_C(0x9e3779b97f4a7c15)
static inline int64_t bench_lateness_timeout(uint64_t *rng)
{
    *rng ^= *rng << 13, *rng ^= *rng >> 7, *rng ^= *rng << 17;
    return 1000000 + (int64_t)(*rng % 1000000);
}
/* An array for one sample per op (b->n of them); free() it. */
int64_t *bench_alloc_samples(bench_b *b);
/* Reports the mean of b->n lateness samples (ns past a deadline) as ns/op
 * and returns their p50, p99 and max; sorts them. */
struct bench_lateness {
    int64_t p50, p99, max;
};
struct bench_lateness bench_report_lateness(bench_b *b, int64_t *late);

/* Aborts with a message: a benchmark whose library call fails has no figure. */
void bench_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Defeats dead-code elimination of a value without a memory access. */
#define BENCH_KEEP(x) __asm__ volatile("" : : "r"(x))

/* Benchmark groups. */
void bench_go_twins(void);
void bench_extras(void);
void bench_sizes(void);
/* bench_shutdown.c: cctx_cancel_and_wait and grace periods. */
void bench_shutdown(void);
/* bench_io.c: <cctx/io.h> against the plain calls, and wake-up latencies. */
void bench_io(void);
/* The wake-up harness: the time from a cancel to the return of a call
 * blocked on the context (bench_run's fn, with a struct wake_case). */
enum wake_kind { WAKE_WAIT, WAKE_READ, WAKE_COND, WAKE_JOIN };
struct wake_case {
    enum wake_kind kind;
    int64_t extra_ns; /* blocked this long before the cancel */
};
extern const struct wake_case bench_wake_wait; /* cctx_wait: BenchmarkWaitWakeup */
void bench_wake_latency(bench_b *b, void *arg);
/* bench.c: the rows GROUP/depth=10..100 of the DeepValue benchmarks, fn's arg
 * being a chain of that many value contexts (a cctx_t *, borrowed). */
void bench_run_deep_value(const char *group, bench_fn fn);
/* bench_handoff.c: DeepValueNewGoRoutine's lookup handed to a thread that is
 * already running. */
void bench_handoff(void);
/* DeadlineLatenessFloor: arg NULL spins on the clock, non-NULL sleeps. */
void bench_deadline_lateness_floor(bench_b *b, void *arg);

#ifdef __cplusplus
}
#endif

#endif
