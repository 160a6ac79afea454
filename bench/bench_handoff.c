/* SPDX-License-Identifier: MIT */
/*
 * DeepValueNewGoRoutine without the thread start-up.
 *
 * Go's BenchmarkDeepValueNewGoRoutine starts a goroutine per op that looks a
 * key up on a depth-N chain of value contexts, and waits for it. Its twin in
 * bench.c starts a pthread per op, so it measures pthread_create and join
 * (tens of microseconds), not the context. These rows hand the same lookup to
 * a thread that already runs, which is what C code does instead of starting a
 * thread per task:
 *
 *   DeepValueGroup/depth=N         the literal errgroup twin: cctx_group_new,
 *                                  cctx_group_go, cctx_group_wait and
 *                                  cctx_group_free per op. A group reuses its
 *                                  threads only while it lives, and
 *                                  cctx_group_wait ends it and joins them, so
 *                                  this starts a thread per op, as the
 *                                  pthread twin does, plus the group's own
 *                                  costs.
 *   DeepValueReusedThread/depth=N  one group for the whole run, limited to one
 *                                  task at a time, so one pool thread takes
 *                                  every task; the caller waits for each
 *                                  answer on a semaphore (Go's WaitGroup).
 *   DeepValueFutexHandoff/depth=N  one long-lived worker woken through a bare
 *                                  futex word, answering through another: the
 *                                  least any sleeping hand-off between two
 *                                  threads can cost on this machine.
 *   FutexHandoff                   the same round trip with no lookup.
 *   DeepValueSpinHandoff/depth=N   DeepValueReusedThread without the library:
 *                                  the bare hand-off with the pool thread's
 *                                  strategy (the worker watches the request
 *                                  word for up to 20 µs, reading the clock
 *                                  every 16 turns, before it sleeps on it),
 *                                  answering on a semaphore as the task does.
 *
 * The same worker also gives DeadlineLateness its floor (registered next to
 * it, by bench_extra.c): how late this machine wakes a thread that sleeps
 * until a deadline, with no library in the way.
 *
 *   DeadlineLatenessFloor/sleep    the worker sleeps on a futex until an
 *                                  absolute 1-2 ms deadline (the timer
 *                                  thread's way, with its timer slack of
 *                                  1 ns) and reads the clock as it wakes;
 *                                  the caller sleeps until it answers, as
 *                                  a cctx_wait caller until the firing.
 *   DeadlineLatenessFloor/spin     the caller reads the clock in a loop until
 *                                  the deadline: a thread that never sleeps
 *                                  is late only by the time it was not run.
 *
 * As in the pthread twin, the caller refs the chain for each task and the task
 * releases it on its thread, as the contract asks of a context handed over.
 * The worker threads are started before the timer runs and stopped after it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef __linux__
#include <linux/futex.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#endif

#include <cctx.h>
#include <cctx/group.h>

#include "harness.h"

/* On no chain, as Go's -1: each lookup walks the whole chain. */
static const char probe_key;

/* The op's work, on whichever thread runs it: the lookup, then the release of
 * the reference the caller took for it. */
static void lookup_and_release(cctx_t *ctx)
{
    void *v = cctx_value(ctx, &probe_key);
    BENCH_KEEP(v);
    cctx_release(ctx);
}

static cctx_group_t *must_group(void)
{
    cctx_group_t *g = cctx_group_new(cctx_background());
    if (!g)
        bench_fatal("cctx_group_new: %s", strerror(errno));
    return g;
}

static void must_go(cctx_group_t *g, int (*fn)(cctx_t *ctx, void *arg), void *arg)
{
    int r = cctx_group_go(g, fn, arg);
    if (r != 0)
        bench_fatal("cctx_group_go: %s", strerror(r));
}

/* ---- BenchmarkDeepValueGroup/depth=N -------------------------------------- */

static int group_task(cctx_t *group_ctx, void *arg)
{
    (void)group_ctx;
    lookup_and_release(arg);
    return 0;
}

static void deep_value_group(bench_b *b, void *arg)
{
    cctx_t *chain = arg;
    for (int64_t i = 0; i < b->n; i++) {
        cctx_group_t *g = must_group();
        must_go(g, group_task, cctx_ref(chain));
        cctx_group_wait(g);
        cctx_group_free(g);
    }
}

/* ---- BenchmarkDeepValueReusedThread/depth=N ------------------------------- */

struct pooled_op {
    cctx_t *ctx; /* this op's reference, released by the task */
    sem_t done;  /* posted by the task: the caller's WaitGroup */
};

static int pooled_task(cctx_t *group_ctx, void *arg)
{
    (void)group_ctx;
    struct pooled_op *op = arg;
    lookup_and_release(op->ctx);
    sem_post(&op->done);
    return 0;
}

static void pooled_op_run(cctx_group_t *g, struct pooled_op *op, cctx_t *chain)
{
    op->ctx = cctx_ref(chain);
    must_go(g, pooled_task, op);
    while (sem_wait(&op->done) != 0)
        if (errno != EINTR)
            bench_fatal("sem_wait: %s", strerror(errno));
}

static void deep_value_reused(bench_b *b, void *arg)
{
    cctx_t *chain = arg;
    cctx_group_t *g = must_group();
    /* With a limit of one, a go waits until the previous task's thread is back
     * in the pool, so it always finds that thread idle: one thread serves the
     * whole run. Without it, a go issued between the task's sem_post and the
     * thread's return to the pool would start a second thread. */
    if (cctx_group_limit(g, 1) != 0)
        bench_fatal("cctx_group_limit failed");
    struct pooled_op op;
    if (sem_init(&op.done, 0, 0) != 0)
        bench_fatal("sem_init: %s", strerror(errno));
    pooled_op_run(g, &op, chain); /* starts the pool's thread, untimed */
    bench_reset_timer(b);
    for (int64_t i = 0; i < b->n; i++)
        pooled_op_run(g, &op, chain);
    bench_stop_timer(b);
    cctx_group_wait(g);
    cctx_group_free(g);
    sem_destroy(&op.done);
}

/* ---- BenchmarkDeepValueFutexHandoff/depth=N, BenchmarkFutexHandoff -------- */

#ifdef __linux__
/* The two words live on separate cache lines: each is written by one side and
 * slept on by the other. ctx and stop travel with the request: written before
 * the release store of request, read after the worker's acquire load. */
struct handoff {
    _Alignas(64) _Atomic uint32_t request; /* the caller's sequence number */
    cctx_t *ctx; /* a reference to look up and release, or NULL: a bare ping */
    int64_t deadline; /* > 0: sleep until then first (CLOCK_MONOTONIC, ns) */
    int64_t woke;     /* the clock when that sleep ended: the answer's payload */
    int64_t spin_ns;  /* > 0: the worker watches request this long before it sleeps */
    sem_t *answered;  /* non-NULL: the answer is posted here instead */
    _Atomic bool asleep; /* with answered: the worker may be asleep on request */
    bool stop;
    _Alignas(64) _Atomic uint32_t answer; /* the last request answered */
};

static void futex_wake_one(_Atomic uint32_t *word)
{
    syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* Sleeps until *word differs from seen and returns its new value. The kernel
 * sleeps only while the word still holds seen (else EAGAIN), so a store and
 * wake between the load and the sleep is never lost; EINTR just loops. */
static uint32_t futex_await_change(_Atomic uint32_t *word, uint32_t seen)
{
    uint32_t now;
    while ((now = atomic_load_explicit(word, memory_order_acquire)) == seen)
        syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
    return now;
}

/* Sleeps until the clock reaches deadline, as the timer thread does: on a
 * futex with an absolute CLOCK_MONOTONIC time, on a word nobody changes, so
 * that only the time ends the sleep. Returns the first reading past it. */
static int64_t sleep_until(int64_t deadline)
{
    _Atomic uint32_t never = 0;
    struct timespec ts = {deadline / 1000000000, deadline % 1000000000};
    int64_t now;
    while ((now = bench_now_ns()) < deadline)
        syscall(SYS_futex, &never, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, 0, &ts, NULL,
                FUTEX_BITSET_MATCH_ANY);
    return now;
}

/* The worker's wait for the next request: futex_await_change, or with
 * h->spin_ns, a watch of the word for that long first, and a sleep that
 * the caller learns of through h->asleep (both sides seq_cst: either the
 * worker sees the new request or the caller sees it asleep). */
static uint32_t await_request(struct handoff *h, uint32_t seen)
{
    if (h->spin_ns <= 0)
        return futex_await_change(&h->request, seen);
    uint32_t now;
    int64_t until = bench_now_ns() + h->spin_ns;
    for (unsigned turn = 1; (now = atomic_load_explicit(&h->request, memory_order_acquire)) == seen;
         turn++) {
        if (turn % 16 == 0 && bench_now_ns() >= until) {
            atomic_store_explicit(&h->asleep, true, memory_order_seq_cst);
            if (atomic_load_explicit(&h->request, memory_order_seq_cst) == seen)
                futex_await_change(&h->request, seen);
            atomic_store_explicit(&h->asleep, false, memory_order_relaxed);
            return atomic_load_explicit(&h->request, memory_order_acquire);
        }
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause(); /* the library's spin-wait hint (src/atomics.h) */
#elif defined(__aarch64__) || (defined(__arm__) && __ARM_ARCH >= 7)
        __asm__ __volatile__("yield");
#endif
    }
    return now;
}

static void *handoff_worker(void *arg)
{
    struct handoff *h = arg;
    /* As the timer thread: the default 50 us of slack would be added to
     * every timed sleep (the other rows have none). */
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    uint32_t seen = 0;
    for (;;) {
        seen = await_request(h, seen);
        if (h->stop)
            return NULL;
        if (h->deadline)
            h->woke = sleep_until(h->deadline);
        if (h->ctx)
            lookup_and_release(h->ctx);
        if (h->answered) {
            sem_post(h->answered);
            continue;
        }
        atomic_store_explicit(&h->answer, seen, memory_order_release);
        futex_wake_one(&h->answer);
    }
}

/* One round trip: publish the request, wake the worker, sleep until it has
 * answered this very request (answer moves from seq - 1 to seq only). */
static void handoff_round(struct handoff *h, uint32_t seq, cctx_t *ctx)
{
    h->ctx = ctx;
    atomic_store_explicit(&h->request, seq, memory_order_seq_cst);
    if (!h->answered) {
        futex_wake_one(&h->request);
        futex_await_change(&h->answer, seq - 1);
        return;
    }
    /* As the group's go: a wake only for a worker that may be asleep. */
    if (atomic_load_explicit(&h->asleep, memory_order_seq_cst))
        futex_wake_one(&h->request);
    while (sem_wait(h->answered) != 0)
        if (errno != EINTR)
            bench_fatal("sem_wait: %s", strerror(errno));
}

static void handoff_start(struct handoff *h, pthread_t *t, int64_t spin_ns, sem_t *answered)
{
    *h = (struct handoff){.spin_ns = spin_ns, .answered = answered};
    if (pthread_create(t, NULL, handoff_worker, h) != 0)
        bench_fatal("pthread_create failed");
}

static void handoff_stop(struct handoff *h, pthread_t t)
{
    h->stop = true;
    atomic_store_explicit(&h->request, atomic_load(&h->request) + 1, memory_order_release);
    futex_wake_one(&h->request);
    pthread_join(t, NULL);
}

/* chain NULL: nothing looked up. answered: see struct handoff. */
static void handoff_rounds(bench_b *b, cctx_t *chain, int64_t spin_ns, sem_t *answered)
{
    struct handoff h;
    pthread_t t;
    handoff_start(&h, &t, spin_ns, answered);
    uint32_t seq = 0;
    /* One untimed round: the worker is up, and back waiting (asleep, or
     * watching the word) when timing starts. */
    handoff_round(&h, ++seq, chain ? cctx_ref(chain) : NULL);
    bench_reset_timer(b);
    for (int64_t i = 0; i < b->n; i++)
        handoff_round(&h, ++seq, chain ? cctx_ref(chain) : NULL);
    bench_stop_timer(b);
    handoff_stop(&h, t);
}

static void futex_handoff(bench_b *b, void *arg)
{
    handoff_rounds(b, arg, 0, NULL);
}

static void spin_handoff(bench_b *b, void *arg)
{
    sem_t answered;
    if (sem_init(&answered, 0, 0) != 0)
        bench_fatal("sem_init: %s", strerror(errno));
    handoff_rounds(b, arg, 20000, &answered); /* the group's pool threads' spin */
    sem_destroy(&answered);
}

/* ---- BenchmarkDeadlineLatenessFloor/sleep, /spin --------------------------- */

void bench_deadline_lateness_floor(bench_b *b, void *arg)
{
    bool sleeps = arg != NULL;
    int64_t *late = bench_alloc_samples(b);
    int64_t *answered_late = bench_alloc_samples(b);
    struct handoff h;
    pthread_t t;
    if (sleeps) {
        handoff_start(&h, &t, 0, NULL);
        handoff_round(&h, 1, NULL); /* untimed: the worker is up and asleep */
    }
    uint64_t rng = BENCH_LATENESS_SEED;
    bench_reset_timer(b);
    for (int64_t i = 0; i < b->n; i++) {
        int64_t deadline = bench_now_ns() + bench_lateness_timeout(&rng);
        int64_t woke;
        if (sleeps) {
            h.deadline = deadline;
            handoff_round(&h, (uint32_t)i + 2, NULL);
            woke = h.woke;
            answered_late[i] = bench_now_ns() - deadline;
        } else {
            while ((woke = bench_now_ns()) < deadline)
                ;
        }
        late[i] = woke - deadline;
    }
    bench_stop_timer(b);
    struct bench_lateness l = bench_report_lateness(b, late);
    if (sleeps) {
        handoff_stop(&h, t);
        size_t n = (size_t)b->n;
        bench_note(b,
                   "woke - deadline: p50 %lld ns, p99 %lld ns, max %lld ns; the caller's "
                   "return - deadline (cctx_wait's twin): p50 %lld ns, p99 %lld ns; n=%zu",
                   (long long)l.p50, (long long)l.p99, (long long)l.max,
                   (long long)bench_percentile(answered_late, n, 50),
                   (long long)bench_percentile(answered_late, n, 99), n);
    } else {
        bench_note(b, "woke - deadline: p50 %lld ns, p99 %lld ns, max %lld ns; n=%lld",
                   (long long)l.p50, (long long)l.p99, (long long)l.max, (long long)b->n);
    }
    free(late);
    free(answered_late);
}
#endif

/* ---- Registration ----------------------------------------------------------- */

void bench_handoff(void)
{
    bench_run_deep_value("BenchmarkDeepValueGroup", deep_value_group);
    bench_run_deep_value("BenchmarkDeepValueReusedThread", deep_value_reused);
#ifdef __linux__
    bench_run_deep_value("BenchmarkDeepValueFutexHandoff", futex_handoff);
    bench_run("BenchmarkFutexHandoff", futex_handoff, NULL);
    bench_run_deep_value("BenchmarkDeepValueSpinHandoff", spin_handoff);
#endif
}
