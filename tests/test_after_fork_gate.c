/* SPDX-License-Identifier: MIT */
/*
 * fork() from an after-function while another thread stops a registration
 * that the same cancellation queued: the stop claims it, then unlinks it
 * from the canceller's queue, and the canceller's drain waits for that
 * unlink. A child forked between the two has the claim but not the thread
 * that would unlink: its drain must not wait for ever. A test hook in
 * src/after.c holds the stop between its claim and its unlink. And a drain
 * that the fork itself holds up must leave its queue free for the child.
 */
#define _GNU_SOURCE
#include <cctx.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "support.h"
#include "testhooks.h"

static atomic_int in_window, may_go;

/* Holds the stop between its claim and its unlink until the forker lets it
 * go, or 300 ms (a fork that waits for the stop to leave comes only after). */
static void hold_in_window(void)
{
    atomic_store(&in_window, 1);
    int64_t until = real_now() + CCTX_MSEC(300);
    while (!atomic_load(&may_go) && real_now() < until)
        real_sleep_ms(1);
}

static cctx_after_t queued_reg;
static atomic_int queued_ran;

static void note_ran(void *arg)
{
    (void)arg;
    atomic_store(&queued_ran, 1);
}

static bool stop_result;
static void *stop_the_queued_one(void *arg)
{
    (void)arg;
    stop_result = cctx_after_stop(&queued_reg);
    return NULL;
}

static pid_t parent, child;
static pthread_t stopper;

/* Runs first (registered last): the other is queued behind it. */
static void fork_while_it_is_stopped(void *arg)
{
    (void)arg;
    CHECK_EQ(pthread_create(&stopper, NULL, stop_the_queued_one, NULL), 0);
    while (!atomic_load(&in_window))
        real_sleep_ms(1);
    fflush(stdout);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        alarm(10); /* the old drain waited for ever: killed, the test fails */
        return;
    }
    child = pid;
    atomic_store(&may_go, 1);
}

TEST(after_fork_from_a_fn_while_a_stop_unqueues_another_leaves_the_childs_drain_free)
{
    if (TEST_UNDER_TSAN) { /* the child's exit reports the stopper as a leaked thread */
        SKIP_IN_THIS_BUILD("ThreadSanitizer reports the forking parent's threads as leaked");
    }
    parent = getpid();
    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cancel);
    CHECK(c != NULL);
    cctx_after_t forker;
    CHECK_EQ(cctx_after_func(c, &queued_reg, note_ran, NULL), 0);
    CHECK_EQ(cctx_after_func(c, &forker, fork_while_it_is_stopped, NULL), 0);
    atomic_store_explicit(&cctx__after_unqueuing, hold_in_window, memory_order_relaxed);
    cctx_cancel(cancel); /* runs both here, the forker first */
    if (getpid() != parent)
        _exit(0); /* the child's drain returned */
    atomic_store_explicit(&cctx__after_unqueuing, NULL, memory_order_relaxed);
    CHECK_EQ(pthread_join(stopper, NULL), 0);
    CHECK(stop_result); /* stopped before it ran */
    CHECK_EQ(atomic_load(&queued_ran), 0);
    CHECK_EQ(child_exit_status(child), 0);
    cctx_release(c);
}

/* ---- a drain parked by the fork itself ------------------------------------------------ */

/* fork()'s handler holds every run stripe while the process forks. A thread
 * that drained its cancellation's queue then slept on a stripe with the
 * queue's lock held, and the child got that lock held by a thread it does
 * not have: its stop of a registration still queued there never returned,
 * where a stop of a queued registration is taken out at once. The drain
 * now waits for the stripe with nothing held. */
static atomic_int park_armed, park_go, park_tid;
static cctx_cancel_t *parked_cancel;
static cctx_after_t first_reg, second_reg;

static void nothing(void *arg)
{
    (void)arg;
}

/* Registered before the library's handlers, so it runs after their
 * prepare, with the stripes held: it lets the canceller go and forks only
 * once the canceller sleeps. */
static void park_the_drain(void)
{
    if (!atomic_load(&park_armed))
        return;
    atomic_store(&park_go, 1);
    while (!atomic_load(&park_tid))
        sched_yield();
    wait_until_blocked(atomic_load(&park_tid));
}

static void *cancel_when_told(void *arg)
{
    (void)arg;
    while (!atomic_load(&park_go))
        sched_yield();
    atomic_store(&park_tid, thread_id());
    cctx_cancel(parked_cancel);
    return NULL;
}

TEST(after_fork_while_a_drain_waits_for_a_stripe_leaves_its_queue_free_in_the_child)
{
    CHECK_EQ(pthread_atfork(park_the_drain, NULL, NULL), 0); /* before the library's */
    cctx_t *ctx = cctx_with_cancel(cctx_background(), &parked_cancel);
    CHECK_EQ(cctx_after_func(ctx, &first_reg, nothing, NULL), 0);
    CHECK_EQ(cctx_after_func(ctx, &second_reg, nothing, NULL), 0);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, cancel_when_told, NULL), 0);
    atomic_store(&park_armed, 1);
    pid_t pid = fork_with_alarm();
    if (pid == 0) {
        /* Both still queued here (the drain had not started one): the stop
         * takes one out at once. */
        _exit(cctx_after_stop(&first_reg) ? 0 : 1);
    }
    atomic_store(&park_armed, 0);
    CHECK_EQ(child_exit_status(pid), 0);
    CHECK_EQ(pthread_join(t, NULL), 0);
    cctx_release(ctx);
}
