/* SPDX-License-Identifier: MIT */
/*
 * A group task that never returns to its pool thread because the thread
 * unwinds: the task calls pthread_exit, or the thread is cancelled
 * (pthread_cancel) at a cancellation point inside the task (a blocking
 * read here; the descriptor calls of <cctx/io.h> are such points too).
 * <cctx/group.h> promises that such a task counts as returned with no
 * result: cctx_group_wait and cctx_group_free return, a limit gets its slot
 * back, and the group's context is not canceled by it.
 *
 * Every call that could hang runs under run_with_watchdog, so a group that
 * lost count of the task fails the test within seconds instead of at the
 * ctest timeout.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/group.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <unistd.h>

#include "harness.h"
#include "support.h"

/* Its scopes are not unpoisoned when a cancellation unwinds a thread, and
 * the thread's end then reads as a use after scope (as in the other
 * cancellation tests). pthread_exit unwinds without that trouble. */
#define SKIP_CANCEL_UNDER_ASAN()                                                                   \
    do {                                                                                           \
        if (TEST_UNDER_ASAN)                                                                       \
            SKIP_IN_THIS_BUILD("AddressSanitizer takes the unwinding of a cancelled thread for "   \
                               "a use after scope");                                               \
    } while (0)

static int exits_its_thread(cctx_t *ctx, void *arg)
{
    (void)ctx;
    (void)arg;
    pthread_exit(NULL);
}

static atomic_int ok_ran;

static int returns_zero(cctx_t *ctx, void *arg)
{
    (void)ctx;
    (void)arg;
    atomic_fetch_add(&ok_ran, 1);
    return 0;
}

/* With a limit of 1, the exited task's slot must come back: the second go
 * blocks for ever otherwise, and so would the wait. */
static void exit_then_go_and_wait(void)
{
    cctx_group_t *g = cctx_group_new(cctx_background());
    CHECK(g != NULL);
    CHECK_EQ(cctx_group_limit(g, 1), 0);
    CHECK_EQ(cctx_group_go(g, exits_its_thread, NULL), 0);
    CHECK_EQ(cctx_group_go(g, returns_zero, NULL), 0);
    CHECK_EQ(cctx_group_wait(g), 0);
    CHECK_EQ(atomic_load(&ok_ran), 1);
    /* No failure was reported, so the wait's own cancel is the cause. */
    cctx_cause_t cause;
    CHECK_EQ(cctx_cause(cctx_group_ctx(g), &cause), ECANCELED);
    CHECK_EQ(cause.code, 0);
    cctx_group_free(g);
}

TEST(group_task_that_calls_pthread_exit_counts_as_returned)
{
    run_with_watchdog(exit_then_go_and_wait, 10);
}

/* The task's thread, published once it is about to block in read. */
static _Atomic(pthread_t) blocked_thread;
static atomic_bool blocked_known;
static int pipe_fds[2];

static int blocks_in_read(cctx_t *ctx, void *arg)
{
    (void)ctx;
    (void)arg;
    atomic_store(&blocked_thread, pthread_self());
    atomic_store(&blocked_known, true);
    char c;
    /* Nothing is ever written: only the cancellation ends this read. */
    (void)read(pipe_fds[0], &c, 1);
    return EIO;
}

/* A new group whose one task's thread has been cancelled in read.
 * Cancellation is deferred: it acts in read, whether the thread is already
 * blocked there or about to be. */
static cctx_group_t *group_with_a_task_cancelled_in_read(void)
{
    CHECK_EQ(pipe(pipe_fds), 0);
    atomic_store(&blocked_known, false);
    cctx_group_t *g = cctx_group_new(cctx_background());
    CHECK(g != NULL);
    CHECK_EQ(cctx_group_go(g, blocks_in_read, NULL), 0);
    while (!atomic_load(&blocked_known))
        sched_yield();
    CHECK_EQ(pthread_cancel(atomic_load(&blocked_thread)), 0);
    return g;
}

static void cancel_in_read_then_wait_and_free(void)
{
    cctx_group_t *g = group_with_a_task_cancelled_in_read();
    CHECK_EQ(cctx_group_wait(g), 0);
    CHECK_EQ(cctx_err(cctx_group_ctx(g)), ECANCELED);
    /* The group stays usable for what a finished group answers. */
    CHECK_EQ(cctx_group_go(g, returns_zero, NULL), ECANCELED);
    cctx_group_free(g);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
}

TEST(group_task_whose_thread_is_cancelled_counts_as_returned)
{
    SKIP_CANCEL_UNDER_ASAN();
    run_with_watchdog(cancel_in_read_then_wait_and_free, 10);
}

static void cancel_in_read_then_free(void)
{
    cctx_group_t *g = group_with_a_task_cancelled_in_read();
    cctx_group_free(g);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
}

TEST(group_free_returns_after_a_task_whose_thread_is_cancelled)
{
    SKIP_CANCEL_UNDER_ASAN();
    run_with_watchdog(cancel_in_read_then_free, 10);
}

/* A cancellation that reaches a task after its last cancellation point is
 * still pending when the task returns. The thread's next task, another
 * caller's maybe, must not be the one it acts on: the task that was
 * cancelled counts as returned with its result, and its thread leaves the
 * pool as if it had acted inside. */
static atomic_bool late_ready, late_cancelled, next_ran;
static _Atomic(pthread_t) late_thread;

static int returns_after_a_late_cancel(cctx_t *ctx, void *arg)
{
    (void)ctx;
    int old;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
    atomic_store(&late_thread, pthread_self());
    atomic_store(&late_ready, true);
    while (!atomic_load(&late_cancelled))
        sched_yield();
    /* Deferred: enabling does not act on the pending request. */
    pthread_setcancelstate(old, NULL);
    return *(int *)arg;
}

/* The same, but it leaves cancellation disabled when it returns: the
 * thread's state is the pool's again then, not the next task's to inherit. */
static int returns_with_cancellation_off(cctx_t *ctx, void *arg)
{
    (void)ctx;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
    atomic_store(&late_thread, pthread_self());
    atomic_store(&late_ready, true);
    while (!atomic_load(&late_cancelled))
        sched_yield();
    return *(int *)arg;
}

static int reads_a_ready_byte(cctx_t *ctx, void *arg)
{
    (void)ctx;
    (void)arg;
    char c;
    /* A cancellation point, though a byte is there to read, in a section
     * that wants cancellation on (as a task on a new thread has it). */
    int old;
    pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, &old);
    CHECK_EQ(read(pipe_fds[0], &c, 1), 1);
    pthread_setcancelstate(old, NULL);
    atomic_store(&next_ran, true);
    return 0;
}

/* Starts the task that returns result with a cancellation pending, and
 * then (with then_next) a go that waits for its slot. */
static cctx_group_t *late_cancel(int (*task)(cctx_t *, void *), int *result, bool then_next)
{
    atomic_store(&late_ready, false);
    atomic_store(&late_cancelled, false);
    atomic_store(&next_ran, false);
    cctx_group_t *g = cctx_group_new(cctx_background());
    CHECK(g != NULL);
    /* One slot: the next go waits for the first task, and then found its
     * thread idle and handed it the next task. */
    CHECK_EQ(cctx_group_limit(g, 1), 0);
    CHECK_EQ(cctx_group_go(g, task, result), 0);
    while (!atomic_load(&late_ready))
        sched_yield();
    CHECK_EQ(pthread_cancel(atomic_load(&late_thread)), 0);
    atomic_store(&late_cancelled, true);
    if (then_next)
        CHECK_EQ(cctx_group_go(g, reads_a_ready_byte, NULL), 0);
    return g;
}

static void late_cancel_then_next_task(int (*task)(cctx_t *, void *))
{
    CHECK_EQ(pipe(pipe_fds), 0);
    CHECK_EQ(write(pipe_fds[1], "x", 1), 1);
    int zero = 0, eio = EIO;
    cctx_group_t *g = late_cancel(task, &zero, true);
    CHECK_EQ(cctx_group_wait(g), 0);
    CHECK(atomic_load(&next_ran));
    cctx_group_free(g);
    /* The cancelled task did return: a failure it returned still counts. */
    g = late_cancel(task, &eio, false);
    CHECK_EQ(cctx_group_wait(g), EIO);
    cctx_cause_t cause;
    CHECK_EQ(cctx_cause(cctx_group_ctx(g), &cause), ECANCELED);
    CHECK_EQ(cause.code, EIO);
    cctx_group_free(g);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
}

static void late_cancel_restored(void)
{
    late_cancel_then_next_task(returns_after_a_late_cancel);
}

TEST(group_cancellation_pending_when_a_task_returns_spares_the_next_task)
{
    SKIP_CANCEL_UNDER_ASAN();
    run_with_watchdog(late_cancel_restored, 10);
}

/* A task that returned with cancellation disabled left it so for the next
 * task on its thread, with the cancellation meant for the first still
 * pending: it acted in the next task, as soon as that one turned
 * cancellation on, at its first cancellation point. */
static void late_cancel_left_off(void)
{
    late_cancel_then_next_task(returns_with_cancellation_off);
}

TEST(group_task_that_returns_with_cancellation_disabled_spares_the_next_task)
{
    SKIP_CANCEL_UNDER_ASAN();
    run_with_watchdog(late_cancel_left_off, 10);
}

/* Each task starts with cancellation enabled and deferred, as on a new
 * thread, whatever the task before it on the thread left. A task left
 * asynchronous made the next one (and the pool's own locking between them)
 * cancellable anywhere. */
struct cancel_mode {
    int state, type; /* what the first task leaves */
    int seen_state, seen_type;
    pthread_t first, second;
};

static int leaves_cancel_mode(cctx_t *ctx, void *arg)
{
    (void)ctx;
    struct cancel_mode *m = arg;
    m->first = pthread_self();
    pthread_setcanceltype(m->type, NULL);
    pthread_setcancelstate(m->state, NULL);
    return 0;
}

static int reads_cancel_mode(cctx_t *ctx, void *arg)
{
    (void)ctx;
    struct cancel_mode *m = arg;
    m->second = pthread_self();
    /* Set back at once: nothing is sent to this thread meanwhile. */
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &m->seen_state);
    pthread_setcancelstate(m->seen_state, NULL);
    pthread_setcanceltype(PTHREAD_CANCEL_DEFERRED, &m->seen_type);
    pthread_setcanceltype(m->seen_type, NULL);
    return 0;
}

static void next_task_sees_a_fresh_cancel_mode(void)
{
    static const int modes[][2] = {
        {PTHREAD_CANCEL_DISABLE, PTHREAD_CANCEL_DEFERRED},
        {PTHREAD_CANCEL_ENABLE, PTHREAD_CANCEL_ASYNCHRONOUS},
        {PTHREAD_CANCEL_DISABLE, PTHREAD_CANCEL_ASYNCHRONOUS},
    };
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        struct cancel_mode m = {
            .state = modes[i][0], .type = modes[i][1], .seen_state = -1, .seen_type = -1};
        cctx_group_t *g = cctx_group_new(cctx_background());
        CHECK(g != NULL);
        /* One slot, so one thread: the second task runs where the first ran. */
        CHECK_EQ(cctx_group_limit(g, 1), 0);
        CHECK_EQ(cctx_group_go(g, leaves_cancel_mode, &m), 0);
        CHECK_EQ(cctx_group_go(g, reads_cancel_mode, &m), 0);
        CHECK_EQ(cctx_group_wait(g), 0);
        cctx_group_free(g);
        CHECK(pthread_equal(m.first, m.second));
        CHECK_EQ(m.seen_state, PTHREAD_CANCEL_ENABLE);
        CHECK_EQ(m.seen_type, PTHREAD_CANCEL_DEFERRED);
    }
}

TEST(group_task_starts_with_cancellation_enabled_and_deferred)
{
    run_with_watchdog(next_task_sees_a_fresh_cancel_mode, 10);
}
