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
 * cctx__runner_thread_start. A child of fork() that inherits such wakers,
 * queued at the fork, runs them itself when no runner can start there.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/signal.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <unistd.h>

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

/* One after-function of a deadline, blocked on a runner until `go` opens;
 * then it calls `then`, if set. */
struct blocked {
    void (*then)(void);
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
    if (b->then)
        b->then();
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
    struct blocked b = {.then = NULL};
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
    struct blocked b = {.then = NULL};
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
    struct blocked b = {.then = NULL};
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
    struct blocked b = {.then = NULL};
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

/* ---- a child of fork() --------------------------------------------------------------- */

/* A deadline's wakers queued at a fork, the runner summoned for them not
 * started yet, are the child's too; there the child's restart summons
 * runners for them. When none can start, it runs them itself, as the
 * thread that fired the deadline would (above), and counts as failed, so
 * that later calls try again. Before, a child forked from an after-function
 * on a runner, whose only runner is that one (busy in the after-function,
 * which may never return there), took the work's count for a runner come:
 * the wakers waited for it, and nothing tried again. A child forked
 * elsewhere left them queued for a runner that could not start. Either
 * way a grace period whose parent had ended never started its clock. And
 * once a runner can start, the next call's restart starts one for the
 * user's after-functions: before, in the child forked on a runner, they
 * waited for that runner. */
static atomic_int start_held, may_refuse;
static cctx_t *child_grace, *child_ended_by_fn;
static _Atomic pid_t forked;
static bool forked_on_a_runner;

static void cancel_it(void *arg)
{
    cctx_cancel(arg);
}

/* The runner summoned for the deadline's wakers: held until the fork is
 * made, then refused. */
static int hold_then_refuse(void *(*fn)(void *), void *arg)
{
    atomic_store(&start_held, 1);
    while (!atomic_load(&may_refuse))
        real_sleep_ms(1);
    return refuse_start(fn, arg);
}

static void fork_child_checking_grace(void)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        /* A runner blocks every signal, and the child keeps its mask. */
        sigset_t alrm;
        sigemptyset(&alrm);
        sigaddset(&alrm, SIGALRM);
        pthread_sigmask(SIG_UNBLOCK, &alrm, NULL);
        alarm(30);
        atomic_store(&cctx__runner_thread_start, refuse_start);
        if (cctx_wait(child_grace, CCTX_SEC(5)) != ETIMEDOUT)
            _exit(10);
        /* With a runner (busy), the user's fn waits for one; with none at
         * all, the end of the grace context runs it here, as it would in
         * any process with no runner (cctx__runner_notify). */
        if (forked_on_a_runner && cctx_err(child_ended_by_fn) != 0)
            _exit(11);
        atomic_store(&cctx__runner_thread_start, cctx__os_thread_start);
        _exit(cctx_wait(child_ended_by_fn, CCTX_SEC(5)) == ECANCELED ? 0 : 12);
    }
    atomic_store(&forked, pid);
}

/* Not on this thread's stack: in the child, glibc gives the stacks of the
 * threads it lacks to the threads it starts, and fn is queued there. */
static struct blocked queued_b;
static cctx_after_t queued_fn;

static void grace_queued_at_fork(bool on_a_runner)
{
    struct blocked *b = &queued_b;
    cctx_after_t *fn = &queued_fn;
    *b = (struct blocked){.then = on_a_runner ? fork_child_checking_grace : NULL};
    block_a_runner(b);
    cctx__thread_start_fn start = atomic_load(&cctx__runner_thread_start);
    atomic_store(&start_held, 0);
    atomic_store(&may_refuse, 0);
    atomic_store(&forked, 0);
    atomic_store(&cctx__runner_thread_start, hold_then_refuse);
    cctx_cancel_t *cancel;
    cctx_t *d, *g, *x;
    for (int64_t timeout = CCTX_MSEC(20);; timeout *= 4) {
        CHECK(timeout < CCTX_SEC(60));
        x = cctx_with_cancel(cctx_background(), &cancel);
        d = cctx_with_timeout(cctx_background(), timeout, NULL);
        /* No grace: its clock's start ends it, and no later firing of its
         * deadline in the child starts a runner for fn. */
        g = cctx_with_grace(d, 0, NULL);
        CHECK(x && d && g);
        CHECK_EQ(cctx_after_func(d, fn, cancel_it, cancel), 0);
        /* Its firing queues the grace's clock and fn for a runner. */
        if (cctx_err(d) == 0)
            break;
        cctx_after_stop(fn);
        cctx_release(g);
        cctx_release(d);
        cctx_release(x);
    }
    child_grace = g;
    child_ended_by_fn = x;
    forked_on_a_runner = on_a_runner;
    while (!atomic_load(&start_held))
        real_sleep_ms(1);
    if (on_a_runner) {
        latch_open(&b->go);
        while (!atomic_load(&forked))
            real_sleep_ms(1);
    } else {
        fork_child_checking_grace();
    }
    CHECK(atomic_load(&forked) > 0);
    atomic_store(&may_refuse, 1);
    CHECK_EQ(cctx_wait(g, -1), ETIMEDOUT);
    /* Before, 10: the child's wait found g not ended 5 s later. With the
     * wakers run but the restart taken as done, 12 on a runner: fn never
     * ran there. */
    CHECK_EQ(child_exit_status(atomic_load(&forked)), 0);
    atomic_store(&cctx__runner_thread_start, start);
    unblock(b); /* and fn runs on it */
    CHECK_EQ(cctx_wait(x, -1), ECANCELED);
    cctx_after_stop(fn);
    cctx_release(g);
    cctx_release(d);
    cctx_release(x);
}

static void grace_queued_at_fork_on_a_runner(void)
{
    grace_queued_at_fork(true);
}

static void grace_queued_at_fork_elsewhere(void)
{
    grace_queued_at_fork(false);
}

TEST(runner_no_thread_child_forked_on_the_only_runner_runs_the_wakers_it_inherited)
{
    SKIP_FORK_UNDER_SANITIZERS();
    run_with_watchdog(grace_queued_at_fork_on_a_runner, 30);
}

TEST(runner_no_thread_child_with_no_runner_runs_the_wakers_it_inherited)
{
    SKIP_FORK_UNDER_SANITIZERS();
    run_with_watchdog(grace_queued_at_fork_elsewhere, 30);
}
