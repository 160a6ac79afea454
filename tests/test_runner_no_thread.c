/* SPDX-License-Identifier: MIT */
/*
 * The library's own after-functions of a deadline (the wakers of
 * cctx_wait_any, a grace period's clock) when the only runner runs a
 * blocked after-function and no other can start (thread creation fails,
 * as at a thread limit): the thread that fired the deadline runs them, as
 * they never block, rather than leave them queued until the blocked one
 * returns. So does the timer thread with a firing it could not finish in
 * place (its context's lock was busy), and the signal thread with a
 * watched signal's delivery. Thread creation is made to fail through runner.c's hook
 * cctx__runner_thread_start.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/signal.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

#include "harness.h"
#include "support.h"
#include "internal.h"
#include "testhooks.h"

static atomic_int starts_refused;

static int refuse_start(void *(*fn)(void *), void *arg)
{
    (void)fn, (void)arg;
    atomic_fetch_add(&starts_refused, 1);
    return EAGAIN;
}

/* One after-function of a deadline, blocked on a runner until `go` opens. */
struct blocked {
    pthread_t registrar;
    atomic_int too_late; /* it ran at registration: the deadline came first */
    struct latch in, go;
    cctx_after_t reg;
    cctx_t *ctx;
};

static void block(void *arg)
{
    struct blocked *b = arg;
    if (pthread_equal(pthread_self(), b->registrar)) {
        atomic_store(&b->too_late, 1);
        return;
    }
    latch_add(&b->in);
    latch_wait_open(&b->go);
}

static void block_a_runner(struct blocked *b)
{
    static const struct latch fresh = LATCH_INIT;
    for (int64_t timeout = CCTX_MSEC(20);; timeout *= 4) {
        CHECK(timeout < CCTX_SEC(60));
        b->in = b->go = fresh;
        atomic_store(&b->too_late, 0);
        b->registrar = pthread_self();
        b->ctx = cctx_with_timeout(cctx_background(), timeout, NULL);
        CHECK(b->ctx != NULL);
        CHECK_EQ(cctx_after_func(b->ctx, &b->reg, block, b), 0);
        if (!atomic_load(&b->too_late)) {
            latch_wait_n(&b->in, 1);
            return;
        }
        cctx_release(b->ctx);
    }
}

static void unblock(struct blocked *b)
{
    latch_open(&b->go);
    cctx_after_stop(&b->reg);
    cctx_release(b->ctx);
}

static void wait_any_with_no_runner_free(void)
{
    struct blocked b;
    block_a_runner(&b);
    cctx__thread_start_fn start = atomic_load(&cctx__runner_thread_start);
    atomic_store(&cctx__runner_thread_start, refuse_start);
    cctx_t *d = armed_timeout(cctx_background(), CCTX_MSEC(20));
    CHECK(d != NULL);
    /* Before, the waker stayed queued behind the blocked fn: for ever. */
    CHECK_EQ(cctx_wait_any(&d, 1, -1), 0);
    CHECK(atomic_load(&starts_refused) > 0);
    atomic_store(&cctx__runner_thread_start, start);
    cctx_release(d);
    unblock(&b);
}

TEST(runner_no_thread_wait_any_wakes_while_the_only_runner_blocks)
{
    run_with_watchdog(wait_any_with_no_runner_free, 8);
}

static void grace_with_no_runner_free(void)
{
    struct blocked b;
    block_a_runner(&b);
    cctx__thread_start_fn start = atomic_load(&cctx__runner_thread_start);
    atomic_store(&cctx__runner_thread_start, refuse_start);
    cctx_t *d = armed_timeout(cctx_background(), CCTX_MSEC(20));
    cctx_t *g = cctx_with_grace(d, CCTX_MSEC(20), NULL);
    CHECK(d && g);
    /* Before, its clock never started while the fn blocked. */
    CHECK_EQ(cctx_wait(g, -1), ETIMEDOUT);
    CHECK(atomic_load(&starts_refused) > 0);
    atomic_store(&cctx__runner_thread_start, start);
    cctx_release(g);
    cctx_release(d);
    unblock(&b);
}

TEST(runner_no_thread_grace_period_ends_while_the_only_runner_blocks)
{
    run_with_watchdog(grace_with_no_runner_free, 8);
}

/* A deadline whose context's lock is held as it fires: the timer thread
 * cannot mark it in place and hands the firing over. Every pop is counted:
 * the only deadline armed once a runner is blocked is the test's own. */
static struct latch popped = LATCH_INIT;
static atomic_int timer_tid;

static void note_popped(struct cctx__timer *t)
{
    (void)t;
    atomic_store(&timer_tid, thread_id());
    latch_add(&popped);
}

static void handoff_with_no_runner_free(void)
{
    struct blocked b;
    block_a_runner(&b);
    cctx__thread_start_fn start = atomic_load(&cctx__runner_thread_start);
    atomic_store(&cctx__runner_thread_start, refuse_start);
    cctx_t *d;
    int pops;
    atomic_store(&cctx__timer_popped, note_popped);
    for (;;) {
        /* A deadline that fired before the lock below was counted before
         * it was marked: the count here is past it. */
        pops = latch_count(&popped);
        d = armed_timeout(cctx_background(), CCTX_MSEC(50));
        cctx__lock(d); /* as a thread deriving from d holds it */
        /* Active: its firing is yet to come, and will find the lock held.
         * Else a thread this late saw it fire first. */
        if (cctx_err(d) == 0)
            break;
        cctx__unlock(d);
        cctx_release(d);
    }
    latch_wait_n(&popped, pops + 1);
    /* The timer thread sleeps: again, or on the lock, finishing itself. */
    wait_until_blocked(atomic_load(&timer_tid));
    cctx__unlock(d);
    atomic_store(&cctx__timer_popped, NULL);
    /* Before, the firing's job waited behind the blocked fn: for ever. */
    CHECK_EQ(cctx_wait(d, -1), ETIMEDOUT);
    CHECK(atomic_load(&starts_refused) > 0);
    atomic_store(&cctx__runner_thread_start, start);
    cctx_release(d);
    unblock(&b);
}

TEST(runner_no_thread_firing_handed_over_ends_while_the_only_runner_blocks)
{
    run_with_watchdog(handoff_with_no_runner_free, 8);
}

static void signal_with_no_runner_free(void)
{
    struct blocked b;
    block_a_runner(&b);
    static const int usr2[] = {SIGUSR2};
    cctx_t *s = cctx_with_signals(cctx_background(), usr2, 1, NULL);
    CHECK(s != NULL);
    cctx__thread_start_fn start = atomic_load(&cctx__runner_thread_start);
    atomic_store(&cctx__runner_thread_start, refuse_start);
    CHECK_EQ(kill(getpid(), SIGUSR2), 0);
    /* Before, the delivery's job waited behind the blocked fn: for ever. */
    CHECK_EQ(cctx_wait(s, -1), ECANCELED);
    CHECK(atomic_load(&starts_refused) > 0);
    atomic_store(&cctx__runner_thread_start, start);
    cctx_release(s);
    unblock(&b);
}

TEST(runner_no_thread_signal_ends_its_context_while_the_only_runner_blocks)
{
    run_with_watchdog(signal_with_no_runner_free, 8);
}
