/* SPDX-License-Identifier: MIT */
/*
 * Benchmarks Go's context package lacks, for the properties cctx promises
 * beyond Go's: a million-context tree, wake-up latency, deadline precision
 * under load, after-functions (Go 1.21's AfterFunc). And the per-context heap
 * footprint, printed first.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cctx.h>

#include "harness.h"

static cctx_t *must(cctx_t *ctx)
{
    if (!ctx)
        bench_fatal("context derivation failed: %s", strerror(errno));
    return ctx;
}

static void *must_alloc(size_t size)
{
    void *p = malloc(size);
    if (!p)
        bench_fatal("out of memory");
    return p;
}

/* ---- Per-context footprint ------------------------------------------------ */

static const char size_key;

static cctx_t *make_kind(int kind)
{
    switch (kind) {
    case 0: return must(cctx_with_cancel(cctx_background(), NULL));
    case 1: return must(cctx_with_timeout(cctx_background(), CCTX_SEC(3600), NULL));
    default: return must(cctx_with_value(cctx_background(), &size_key, NULL, NULL));
    }
}

/* One derivation counted alone, after a warm-up one, so one-time set-up (the
 * timer thread, a first heap array) is not charged to it; and the mean over
 * 1000 live ones, which does charge amortized growth of shared structures. */
void bench_sizes(void)
{
    static const char *const names[] = {"cancel", "deadline", "value"};
    enum { MANY = 1000 };
    static cctx_t *live[MANY];
    for (int kind = 0; kind < 3; kind++) {
        cctx_release(make_kind(kind));
        uint64_t a0, b0, a1, b1, a2, b2;
        bench_alloc_totals(&a0, &b0);
        cctx_t *one = make_kind(kind);
        bench_alloc_totals(&a1, &b1);
        for (int i = 0; i < MANY; i++)
            live[i] = make_kind(kind);
        bench_alloc_totals(&a2, &b2);
        for (int i = 0; i < MANY; i++)
            cctx_release(live[i]);
        cctx_release(one);
        printf("# heap per %s context: %llu B in %llu allocs (malloc_usable_size);"
               " %.1f B, %.2f allocs each over %d live\n",
               names[kind], (unsigned long long)(b1 - b0), (unsigned long long)(a1 - a0),
               (double)(b2 - b1) / MANY, (double)(a2 - a1) / MANY, MANY);
    }
}

/* ---- BenchmarkCancelTree1M/shape=wide, /shape=deep ------------------------ */

enum { MILLION = 1000000 };

/* ns/op is the cancel of the root plus the release of every context: what
 * tearing down a million-context tree costs. Building it is not timed (it is
 * CancelTree's subject) and is shown on the '#' line. */
/* The fastest and the slowest teardown of a run: they differ by 2 to 3x
 * with where the allocator put the contexts (fresh memory, in order, or
 * blocks reused in the order the last tree freed them). */
struct teardowns {
    int64_t min_ns, max_ns;
};

static void teardown_took(struct teardowns *td, int64_t ns)
{
    td->min_ns = ns < td->min_ns ? ns : td->min_ns;
    td->max_ns = ns > td->max_ns ? ns : td->max_ns;
}

static void note_teardowns(bench_b *b, int64_t build_ns, const struct teardowns *td)
{
    bench_note(b,
               "build (untimed) %.1f ms/tree; timed: cancel root + release 1000001, "
               "fastest %.1f ms, slowest %.1f ms",
               (double)build_ns / (double)b->n / 1e6, (double)td->min_ns / 1e6,
               (double)td->max_ns / 1e6);
}

static void cancel_tree_1m_wide(bench_b *b, void *arg)
{
    (void)arg;
    bench_stop_timer(b);
    cctx_t **kids = must_alloc(sizeof *kids * MILLION);
    int64_t build_ns = 0;
    struct teardowns td = {INT64_MAX, 0};
    for (int64_t i = 0; i < b->n; i++) {
        bench_stop_timer(b);
        int64_t t0 = bench_now_ns();
        cctx_cancel_t *cancel;
        cctx_t *root = must(cctx_with_cancel(cctx_background(), &cancel));
        for (int k = 0; k < MILLION; k++)
            kids[k] = must(cctx_with_cancel(root, NULL));
        build_ns += bench_now_ns() - t0;
        bench_start_timer(b);
        int64_t t1 = bench_now_ns();

        cctx_cancel(cancel);
        for (int k = 0; k < MILLION; k++)
            cctx_release(kids[k]);
        cctx_release(root);
        teardown_took(&td, bench_now_ns() - t1);
    }
    bench_stop_timer(b);
    free(kids);
    note_teardowns(b, build_ns, &td);
}

static void cancel_tree_1m_deep(bench_b *b, void *arg)
{
    (void)arg;
    int64_t build_ns = 0;
    struct teardowns td = {INT64_MAX, 0};
    for (int64_t i = 0; i < b->n; i++) {
        bench_stop_timer(b);
        int64_t t0 = bench_now_ns();
        cctx_cancel_t *cancel;
        cctx_t *root = must(cctx_with_cancel(cctx_background(), &cancel));
        cctx_t *leaf = root;
        for (int k = 0; k < MILLION; k++) {
            cctx_t *child = must(cctx_with_cancel(leaf, NULL));
            if (leaf != root)
                cctx_release(leaf); /* the child holds it */
            leaf = child;
        }
        build_ns += bench_now_ns() - t0;
        bench_start_timer(b);
        int64_t t1 = bench_now_ns();

        cctx_cancel(cancel);
        cctx_release(leaf); /* frees the chain, leaf to root, in one loop */
        cctx_release(root);
        teardown_took(&td, bench_now_ns() - t1);
    }
    bench_stop_timer(b);
    note_teardowns(b, build_ns, &td);
}

/* ---- BenchmarkWaitWakeup -------------------------------------------------- */

/* Measured by bench_io.c's wake-up harness, with cctx_wait as the blocked
 * call: the reference the other Wake benchmarks compare with. */

/* ---- BenchmarkDeadlineLateness/timers=100000[/blocked=N] ------------------ */

struct fired {
    _Atomic int64_t at;
};

static void record_fire(void *arg)
{
    atomic_store_explicit(&((struct fired *)arg)->at, cctx_now(), memory_order_release);
}

/* After-functions that block until the benchmark ends: user code that does
 * not return for seconds, on contexts of its own. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool open;
    int blocked;
} gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0};

static pthread_t bench_thread;
static atomic_int blocker_too_late;

static void block_until_open(void *arg)
{
    (void)arg;
    if (pthread_equal(pthread_self(), bench_thread)) {
        /* Its deadline passed before it was registered: it runs at once,
         * here, where it must not block. */
        atomic_store(&blocker_too_late, 1);
        return;
    }
    pthread_mutex_lock(&gate.mu);
    gate.blocked++;
    pthread_cond_broadcast(&gate.cv);
    while (!gate.open)
        pthread_cond_wait(&gate.cv, &gate.mu);
    pthread_mutex_unlock(&gate.mu);
}

struct lateness_arg {
    int timers, blocked;
};

/* With 100,000 deadlines an hour away armed on the process timer (and, in the
 * /blocked=N rows, N after-functions of other contexts blocked the whole
 * time), how late does a 1-2 ms deadline fire? Lateness is the cause's `when`
 * (cctx_now() as the timer thread starts the cancellation) minus the
 * deadline; ns/op is its mean. The note also gives the after-function's
 * lateness (it runs on a runner thread, woken by the firing) and that of
 * the waiter's return from cctx_wait (woken by the firing too): the measure
 * Go's twin (bench/go) can take, which has no hook at its timer's firing.
 * DeadlineLatenessFloor (bench_handoff.c) is the same without the library. */
static void deadline_lateness(bench_b *b, void *argp)
{
    const struct lateness_arg *arg = argp;
    cctx_t **far = must_alloc(sizeof *far * (size_t)arg->timers);
    int64_t *late = bench_alloc_samples(b);
    int64_t *after_late = bench_alloc_samples(b);
    int64_t *waiter_late = bench_alloc_samples(b);
    for (int i = 0; i < arg->timers; i++)
        far[i] = must(cctx_with_timeout(cctx_background(), CCTX_SEC(3600), NULL));
    cctx_t **blockers = must_alloc(sizeof *blockers * (size_t)(arg->blocked + 1));
    cctx_after_t *blocker_regs = must_alloc(sizeof *blocker_regs * (size_t)(arg->blocked + 1));
    gate.open = false;
    gate.blocked = 0;
    bench_thread = pthread_self();
    for (int i = 0; i < arg->blocked; i++) {
        for (int64_t timeout = CCTX_MSEC(1);; timeout *= 2) {
            atomic_store(&blocker_too_late, 0);
            blockers[i] = must(cctx_with_timeout(cctx_background(), timeout, NULL));
            if (cctx_after_func(blockers[i], &blocker_regs[i], block_until_open, NULL) != 0)
                bench_fatal("cctx_after_func failed");
            if (!atomic_load(&blocker_too_late))
                break;
            cctx_release(blockers[i]);
        }
    }
    pthread_mutex_lock(&gate.mu);
    while (gate.blocked < arg->blocked)
        pthread_cond_wait(&gate.cv, &gate.mu);
    pthread_mutex_unlock(&gate.mu);
    uint64_t rng = BENCH_LATENESS_SEED;
    bench_reset_timer(b);

    for (int64_t i = 0; i < b->n; i++) {
        int64_t timeout = bench_lateness_timeout(&rng);
        cctx_t *ctx = must(cctx_with_timeout(cctx_background(), timeout, NULL));
        int64_t deadline;
        if (!cctx_deadline(ctx, &deadline))
            bench_fatal("no deadline on a timeout context");
        struct fired f = {0};
        cctx_after_t reg = {0};
        if (cctx_after_func(ctx, &reg, record_fire, &f) != 0)
            bench_fatal("cctx_after_func failed");
        if (cctx_wait(ctx, -1) != ETIMEDOUT)
            bench_fatal("short deadline did not end with ETIMEDOUT");
        waiter_late[i] = cctx_now() - deadline;
        /* cctx_wait returns once the context is marked; its after-function
         * runs on a runner, which a stop could still take it from. */
        while (!atomic_load_explicit(&f.at, memory_order_acquire))
            sched_yield();
        if (cctx_after_stop(&reg))
            bench_fatal("after-function was stopped, not run");
        cctx_cause_t cause;
        cctx_cause(ctx, &cause);
        late[i] = cause.when - deadline;
        after_late[i] = atomic_load_explicit(&f.at, memory_order_relaxed) - deadline;
        cctx_release(ctx);
    }
    bench_stop_timer(b);

    pthread_mutex_lock(&gate.mu);
    gate.open = true;
    pthread_cond_broadcast(&gate.cv);
    pthread_mutex_unlock(&gate.mu);
    for (int i = 0; i < arg->blocked; i++) {
        cctx_after_stop(&blocker_regs[i]);
        cctx_release(blockers[i]);
    }
    free(blockers);
    free(blocker_regs);
    for (int i = 0; i < arg->timers; i++)
        cctx_release(far[i]);
    free(far);
    struct bench_lateness l = bench_report_lateness(b, late);
    size_t n = (size_t)b->n;
    int64_t a50 = bench_percentile(after_late, n, 50), a99 = bench_percentile(after_late, n, 99);
    int64_t w50 = bench_percentile(waiter_late, n, 50), w99 = bench_percentile(waiter_late, n, 99);
    bench_note(b,
               "fire - deadline: p50 %lld ns, p99 %lld ns, max %lld ns; after-function - "
               "deadline: p50 %lld ns, p99 %lld ns; cctx_wait's return - deadline: p50 %lld ns, "
               "p99 %lld ns; n=%zu",
               (long long)l.p50, (long long)l.p99, (long long)l.max, (long long)a50, (long long)a99,
               (long long)w50, (long long)w99, n);
    free(late);
    free(after_late);
    free(waiter_late);
}

/* ---- After-functions -------------------------------------------------------- */

static void count_run(void *arg)
{
    ++*(int64_t *)arg;
}

/* A context with one after-function, derived, canceled (which runs the
 * function on this thread) or with the function stopped first, and
 * released. Go 1.19 has no AfterFunc to race. */
static void after_func(bench_b *b, void *ran)
{
    int64_t runs = 0;
    cctx_after_t reg;
    for (int64_t i = 0; i < b->n; i++) {
        cctx_cancel_t *cancel;
        cctx_t *c = must(cctx_with_cancel(cctx_background(), &cancel));
        if (cctx_after_func(c, &reg, count_run, &runs) != 0)
            bench_fatal("cctx_after_func failed");
        if (ran)
            cctx_cancel(cancel);
        else if (!cctx_after_stop(&reg))
            bench_fatal("cctx_after_stop did not stop a registration of a live context");
        cctx_release(c);
    }
    if (runs != (ran ? b->n : 0))
        bench_fatal("the after-function ran %lld times in %lld ops", (long long)runs,
                    (long long)b->n);
}

/* ---- The floor under CancelTree/Root=ClosedCanceler ------------------------ */

/* What a chain of children of a done context costs at the least, with heap
 * contexts that keep their parents by a reference count, and nothing of
 * cctx's: per child one allocation of a born-done context's 40 bytes, a
 * reference taken on its parent and the parent's handle dropped (two locked
 * instructions), and one free at the end; no clock, no cancellation. In a
 * process with more than one thread (this one has the -timeout watchdog, as
 * every Go program has threads), glibc's allocator adds a locked instruction
 * to each allocation and each free its per-thread cache of 7 blocks of a size
 * cannot take: a deep chain then pays four per child. BENCHMARKS.md compares
 * ClosedCanceler's rows with this one. */
struct bare_ctx {
    _Atomic uint32_t refs;
    struct bare_ctx *parent;
    char rest[24]; /* to the 40 bytes of a born-done context */
};

static struct bare_ctx *bare_derive(struct bare_ctx *parent)
{
    struct bare_ctx *c = must_alloc(sizeof *c);
    atomic_fetch_add_explicit(&parent->refs, 1, memory_order_relaxed);
    atomic_init(&c->refs, 1);
    c->parent = parent;
    return c;
}

/* Drops one reference; the last one frees the context and goes on up. A
 * count seen at 1 needs no read-modify-write: nothing else can find a bare
 * context to take a reference (cctx's release does the same when it can). */
static void bare_release(struct bare_ctx *c)
{
    while (c && (atomic_load_explicit(&c->refs, memory_order_acquire) == 1 ||
                 atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)) {
        struct bare_ctx *parent = c->parent;
        free(c);
        c = parent;
    }
}

static void closed_chain_floor(bench_b *b, void *arg)
{
    int depth = (int)(intptr_t)arg;
    for (int64_t i = 0; i < b->n; i++) {
        struct bare_ctx *root = must_alloc(72); /* a cancelable context's size */
        atomic_init(&root->refs, 1);
        root->parent = NULL;
        struct bare_ctx *leaf = root;
        for (int d = 0; d < depth; d++) {
            struct bare_ctx *child = bare_derive(leaf);
            if (leaf != root)
                bare_release(leaf);
            leaf = child;
        }
        if (leaf != root)
            bare_release(leaf);
        bare_release(root);
    }
}

void bench_extras(void)
{
    bench_run("BenchmarkCancelTree1M/shape=wide", cancel_tree_1m_wide, NULL);
    bench_run("BenchmarkCancelTree1M/shape=deep", cancel_tree_1m_deep, NULL);
    bench_run("BenchmarkWaitWakeup", bench_wake_latency, (void *)&bench_wake_wait);
    static struct lateness_arg plain = {100000, 0}, blocked = {100000, 8};
    bench_run("BenchmarkDeadlineLateness/timers=100000", deadline_lateness, &plain);
    bench_run("BenchmarkDeadlineLateness/timers=100000/blocked=8", deadline_lateness, &blocked);
#ifdef __linux__
    /* What the machine gives without the library, for the two rows above. */
    bench_run("BenchmarkDeadlineLatenessFloor/sleep", bench_deadline_lateness_floor, (void *)1);
    bench_run("BenchmarkDeadlineLatenessFloor/spin", bench_deadline_lateness_floor, NULL);
#endif
    bench_run("BenchmarkAfterFunc/ran", after_func, (void *)1);
    bench_run("BenchmarkAfterFunc/stopped", after_func, NULL);
    static const int floor_depths[] = {1, 100, 1000};
    for (size_t i = 0; i < sizeof floor_depths / sizeof floor_depths[0]; i++) {
        char name[128];
        snprintf(name, sizeof name, "BenchmarkClosedChainFloor/depth=%d", floor_depths[i]);
        bench_run(name, closed_chain_floor, (void *)(intptr_t)floor_depths[i]);
    }
}
