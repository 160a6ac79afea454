/* SPDX-License-Identifier: MIT */
/*
 * Twins of Go 1.19's src/context/benchmark_test.go: same names, same work.
 *
 * Where Go leaves a context to the garbage collector, the twin releases it,
 * inside the timed loop: in C that cost is the library's, so it is counted.
 * Go's CancelFunc and GC become cctx_cancel and cctx_release.
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

/* ---- BenchmarkCommonParentCancel ------------------------------------------ */

static const char key_key; /* Go's "key" */
static char value_value[] = "value";

/* Go's busy loop: 100 divisions of an int in a register. The empty asm makes
 * each division opaque so none can be folded or hoisted, without adding a
 * memory access. */
static inline int64_t divide_100_times(int64_t x)
{
    for (int i = 0; i < 100; i++) {
        __asm__ volatile("" : "+r"(x));
        x /= x + 1;
    }
    return x;
}

static void common_parent_body(bench_pb *pb, void *arg)
{
    cctx_t *shared = arg;
    int64_t x = 0;
    while (bench_pb_next(pb)) {
        cctx_cancel_t *cancel;
        cctx_t *ctx = must(cctx_with_cancel(shared, &cancel));
        if (cctx_value(ctx, &key_key) != value_value)
            bench_fatal("should not be reached");
        x = divide_100_times(x);
        cctx_cancel(cancel);
        x = divide_100_times(x);
        cctx_release(ctx);
    }
    BENCH_KEEP(x);
}

/* CommonParentCancel without the context calls: what its busy loop alone
 * costs here, so that the rest of each figure can be told apart. */
static void common_parent_loop_body(bench_pb *pb, void *arg)
{
    (void)arg;
    int64_t x = 0;
    while (bench_pb_next(pb))
        x = divide_100_times(divide_100_times(x));
    BENCH_KEEP(x);
}

static void bench_common_parent_loop_only(bench_b *b, void *arg)
{
    (void)arg;
    bench_run_parallel(b, common_parent_loop_body, NULL);
}

/* CommonParentCancel's shared part is cache lines passed between its two
 * threads: the shared parent's, and each child's as the other thread links
 * in before it or unlinks after it. This row is what one such pass costs
 * here: two threads take turns writing one line, and ns/op is one hand-off
 * (one thread's write, seen by the other). On a VM it changes with where
 * the host runs the two vCPUs, from run to run, and CommonParentCancel
 * with it. */
struct line_turns {
    _Alignas(64) _Atomic int64_t turn; /* even: the caller's; odd: the helper's */
    int64_t n;
};

static void await_turn(_Atomic int64_t *turn, int64_t mine)
{
    for (unsigned spins = 1; atomic_load_explicit(turn, memory_order_acquire) != mine; spins++) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
        if (spins % 4096 == 0) /* one CPU for both: let the other run */
            sched_yield();
    }
}

static void *line_turns_helper(void *arg)
{
    struct line_turns *t = arg;
    const int64_t n = t->n; /* read once: its line is the one passed around */
    for (int64_t i = 1; i < 2 * n; i += 2) {
        await_turn(&t->turn, i);
        atomic_store_explicit(&t->turn, i + 1, memory_order_release);
    }
    return NULL;
}

static void bench_common_parent_line_handoff(bench_b *b, void *arg)
{
    (void)arg;
    /* Half as many rounds as hand-offs: each round is two. */
    static struct line_turns t;
    const int64_t n = (b->n + 1) / 2;
    t.n = n;
    atomic_store_explicit(&t.turn, 0, memory_order_relaxed);
    pthread_t helper;
    if (pthread_create(&helper, NULL, line_turns_helper, &t) != 0)
        bench_fatal("pthread_create failed");
    bench_reset_timer(b); /* the helper waits for the first hand-off */
    for (int64_t i = 0; i < 2 * n; i += 2) {
        await_turn(&t.turn, i);
        atomic_store_explicit(&t.turn, i + 1, memory_order_release);
    }
    await_turn(&t.turn, 2 * n);
    bench_stop_timer(b);
    pthread_join(helper, NULL);
}

static void bench_common_parent_cancel(bench_b *b, void *arg)
{
    (void)arg;
    cctx_t *root = must(cctx_with_value(cctx_background(), &key_key, value_value, NULL));
    cctx_cancel_t *shared_cancel;
    cctx_t *shared = must(cctx_with_cancel(root, &shared_cancel));
    bench_reset_timer(b);
    bench_run_parallel(b, common_parent_body, shared);
    /* Go's deferred sharedcancel() runs inside the timed part too. */
    cctx_cancel(shared_cancel);
    cctx_release(shared);
    cctx_release(root);
}

/* ---- BenchmarkWithTimeout/concurrency=N ----------------------------------- */

struct live_timeouts {
    int per_thread;
    cctx_t **ctx; /* per_thread of them */
    cctx_cancel_t **cancel;
};

static void *make_live_timeouts(void *p)
{
    struct live_timeouts *lt = p;
    lt->ctx = malloc(sizeof *lt->ctx * (size_t)(lt->per_thread + 1));
    lt->cancel = malloc(sizeof *lt->cancel * (size_t)(lt->per_thread + 1));
    if (!lt->ctx || !lt->cancel)
        bench_fatal("out of memory");
    for (int j = 0; j < lt->per_thread; j++)
        lt->ctx[j] = must(cctx_with_timeout(cctx_background(), CCTX_SEC(3600), &lt->cancel[j]));
    return NULL;
}

static void with_timeout_body(bench_pb *pb, void *arg)
{
    (void)arg;
    cctx_t *ctx[10];
    cctx_cancel_t *cancel[10];
    while (bench_pb_next(pb)) {
        for (int i = 0; i < 10; i++)
            ctx[i] = must(cctx_with_timeout(cctx_background(), CCTX_SEC(3600), &cancel[i]));
        for (int i = 0; i < 10; i++) {
            cctx_cancel(cancel[i]);
            cctx_release(ctx[i]);
        }
    }
}

static void bench_with_timeout(bench_b *b, void *arg)
{
    int concurrency = (int)(intptr_t)arg;
    int np = bench_procs();
    /* As Go, each of GOMAXPROCS threads first creates its share of live
     * timeouts, so they are spread over the threads that will compete. */
    struct live_timeouts lt[np];
    pthread_t t[np];
    for (int i = 0; i < np; i++) {
        lt[i] = (struct live_timeouts){.per_thread = concurrency / np};
        if (pthread_create(&t[i], NULL, make_live_timeouts, &lt[i]) != 0)
            bench_fatal("pthread_create failed");
    }
    for (int i = 0; i < np; i++)
        pthread_join(t[i], NULL);

    bench_reset_timer(b);
    bench_run_parallel(b, with_timeout_body, NULL);
    bench_stop_timer(b);

    for (int i = 0; i < np; i++) {
        for (int j = 0; j < lt[i].per_thread; j++) {
            cctx_cancel(lt[i].cancel[j]);
            cctx_release(lt[i].ctx[j]);
        }
        free(lt[i].ctx);
        free(lt[i].cancel);
    }
}

/* ---- BenchmarkCancelTree/depth=D/Root=R ----------------------------------- */

/* Go's buildContextTree discards each CancelFunc; the chain stays reachable
 * from its leaf. The twin keeps the same shape alive the C way: each child
 * holds its parent, so our reference on the parent can go at once, and the
 * leaf is returned for the caller to release (which frees the whole chain). */
static cctx_t *build_context_tree(cctx_t *root, int depth)
{
    cctx_t *leaf = root;
    for (int d = 0; d < depth; d++) {
        cctx_t *child = must(cctx_with_cancel(leaf, NULL));
        if (leaf != root)
            cctx_release(leaf);
        leaf = child;
    }
    return leaf;
}

static void release_tree(cctx_t *root, cctx_t *leaf)
{
    if (leaf != root)
        cctx_release(leaf);
}

static void cancel_tree_background(bench_b *b, void *arg)
{
    int depth = (int)(intptr_t)arg;
    cctx_t *bg = cctx_background();
    for (int64_t i = 0; i < b->n; i++)
        release_tree(bg, build_context_tree(bg, depth));
}

static void cancel_tree_open(bench_b *b, void *arg)
{
    int depth = (int)(intptr_t)arg;
    for (int64_t i = 0; i < b->n; i++) {
        cctx_cancel_t *cancel;
        cctx_t *ctx = must(cctx_with_cancel(cctx_background(), &cancel));
        cctx_t *leaf = build_context_tree(ctx, depth);
        cctx_cancel(cancel); /* reaches the whole chain, as Go's cancel() */
        release_tree(ctx, leaf);
        cctx_release(ctx);
    }
}

static void cancel_tree_closed(bench_b *b, void *arg)
{
    int depth = (int)(intptr_t)arg;
    for (int64_t i = 0; i < b->n; i++) {
        cctx_cancel_t *cancel;
        cctx_t *ctx = must(cctx_with_cancel(cctx_background(), &cancel));
        cctx_cancel(cancel);
        cctx_t *leaf = build_context_tree(ctx, depth); /* each child born done */
        release_tree(ctx, leaf);
        cctx_release(ctx);
    }
}

/* ---- BenchmarkCheckCanceled/Err, /Done ------------------------------------ */

static void check_canceled_err(bench_b *b, void *arg)
{
    cctx_t *ctx = arg;
    for (int64_t i = 0; i < b->n; i++) {
        int err = cctx_err(ctx);
        BENCH_KEEP(err);
    }
}

/* Go's `select { case <-ctx.Done(): default: }` is a poll of the waiting
 * interface that never blocks. Its literal twin is cctx_wait with a zero
 * timeout: the same question ("done yet?") asked of the same waiting API,
 * and what C code written from Go code would call. cctx_err answers it too
 * (see /Err); polling cctx_done_fd would add a system call Go does not make. */
static void check_canceled_done(bench_b *b, void *arg)
{
    cctx_t *ctx = arg;
    for (int64_t i = 0; i < b->n; i++) {
        int err = cctx_wait(ctx, 0);
        BENCH_KEEP(err);
    }
}

/* ---- BenchmarkContextCancelDone ------------------------------------------- */

static void cancel_done_body(bench_pb *pb, void *arg)
{
    cctx_t *ctx = arg;
    while (bench_pb_next(pb)) {
        int err = cctx_wait(ctx, 0);
        BENCH_KEEP(err);
    }
}

static void bench_context_cancel_done(bench_b *b, void *arg)
{
    (void)arg;
    cctx_cancel_t *cancel;
    cctx_t *ctx = must(cctx_with_cancel(cctx_background(), &cancel));
    bench_run_parallel(b, cancel_done_body, ctx);
    /* Go times this whole function, set-up and deferred cancel() included. */
    cctx_cancel(cancel);
    cctx_release(ctx);
}

/* ---- BenchmarkDeepValueNewGoRoutine, BenchmarkDeepValueSameGoRoutine ------ */

/* Go's keys are the ints 0..depth-1 and the probe is -1, found nowhere: the
 * lookup walks the whole chain. Here keys are addresses, as cctx compares. */
static const char value_keys[100];
static const char missing_key;

static cctx_t *deep_value_chain(int depth)
{
    cctx_t *ctx = cctx_background();
    for (int i = 0; i < depth; i++) {
        cctx_t *child = must(cctx_with_value(ctx, &value_keys[i], (void *)(intptr_t)i, NULL));
        cctx_release(ctx); /* the child holds it */
        ctx = child;
    }
    return ctx;
}

static void *deep_value_thread(void *arg)
{
    cctx_t *ctx = arg;
    void *v = cctx_value(ctx, &missing_key);
    BENCH_KEEP(v);
    cctx_release(ctx);
    return NULL;
}

/* A pthread costs tens of microseconds to start where a goroutine costs
 * hundreds of nanoseconds: this row measures thread start-up, and is shown for
 * completeness, not compared. The contract says a context handed to another
 * thread is ref'd first and released there; the twin does that. */
static void deep_value_new(bench_b *b, void *arg)
{
    cctx_t *ctx = arg;
    for (int64_t i = 0; i < b->n; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, deep_value_thread, cctx_ref(ctx)) != 0)
            bench_fatal("pthread_create failed");
        pthread_join(t, NULL);
    }
}

static void deep_value_same(bench_b *b, void *arg)
{
    cctx_t *ctx = arg;
    for (int64_t i = 0; i < b->n; i++) {
        void *v = cctx_value(ctx, &missing_key);
        BENCH_KEEP(v);
    }
}

void bench_run_deep_value(const char *group, bench_fn fn)
{
    static const int depths[] = {10, 20, 30, 50, 100};
    for (size_t i = 0; i < sizeof depths / sizeof depths[0]; i++) {
        char name[128];
        snprintf(name, sizeof name, "%s/depth=%d", group, depths[i]);
        if (!bench_wanted(name))
            continue;
        cctx_t *ctx = deep_value_chain(depths[i]);
        bench_run(name, fn, ctx);
        cctx_release(ctx);
    }
}

/* ---- Registration, in Go's order ------------------------------------------ */

void bench_go_twins(void)
{
    bench_run("BenchmarkCommonParentCancel", bench_common_parent_cancel, NULL);
    bench_run("BenchmarkCommonParentCancelLoopOnly", bench_common_parent_loop_only, NULL);
    bench_run("BenchmarkCommonParentCancelLineHandoff", bench_common_parent_line_handoff, NULL);

    for (int c = 40; c <= 400000; c *= 100) {
        char name[128];
        snprintf(name, sizeof name, "BenchmarkWithTimeout/concurrency=%d", c);
        bench_run(name, bench_with_timeout, (void *)(intptr_t)c);
    }

    static const int depths[] = {1, 10, 100, 1000};
    for (size_t i = 0; i < sizeof depths / sizeof depths[0]; i++) {
        static const struct { const char *root; bench_fn fn; } roots[] = {
            {"Background", cancel_tree_background},
            {"OpenCanceler", cancel_tree_open},
            {"ClosedCanceler", cancel_tree_closed},
        };
        for (size_t r = 0; r < 3; r++) {
            char name[128];
            snprintf(name, sizeof name, "BenchmarkCancelTree/depth=%d/Root=%s", depths[i],
                     roots[r].root);
            bench_run(name, roots[r].fn, (void *)(intptr_t)depths[i]);
        }
    }

    if (bench_wanted("BenchmarkCheckCanceled")) {
        cctx_cancel_t *cancel;
        cctx_t *ctx = must(cctx_with_cancel(cctx_background(), &cancel));
        cctx_cancel(cancel);
        bench_run("BenchmarkCheckCanceled/Err", check_canceled_err, ctx);
        bench_run("BenchmarkCheckCanceled/Done", check_canceled_done, ctx);
        cctx_release(ctx);
    }

    bench_run("BenchmarkContextCancelDone", bench_context_cancel_done, NULL);

    bench_run_deep_value("BenchmarkDeepValueNewGoRoutine", deep_value_new);
    bench_run_deep_value("BenchmarkDeepValueSameGoRoutine", deep_value_same);
}
