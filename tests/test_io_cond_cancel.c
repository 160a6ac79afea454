/* SPDX-License-Identifier: MIT */
/*
 * A thread cancelled (pthread_cancel) in cctx_cond_wait. The call is a
 * cancellation point, as pthread_cond_wait is: a cancellation acted on in
 * its wait unwinds the thread with the mutex taken back, and leaves nothing
 * registered on the context. One still pending as the wait ends acts after
 * the call, never in the wait for the waker that the call may still make:
 * the wake-up lives on the waiting thread's stack, and the waker would
 * touch it after the thread was gone.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/io.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"
#include "io_internal.h"
#include "support.h"
#include "thread_syscall.h"

struct waiter {
    cctx_t *ctx;
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    atomic_int tid;
    atomic_int cleaned_up_in_call; /* the program's cleanup handler ran inside it */
    int r;
};

static void unlock_on_cancel(void *arg)
{
    struct waiter *w = arg;
    atomic_store(&w->cleaned_up_in_call, 1);
    CHECK_EQ(pthread_mutex_unlock(&w->mutex), 0); /* error-checking: held */
}

/* Waits until cancelled, in the call or right after it. */
static void *wait_until_cancelled(void *arg)
{
    struct waiter *w = arg;
    atomic_store(&w->tid, thread_id());
    CHECK_EQ(pthread_mutex_lock(&w->mutex), 0);
    pthread_cleanup_push(unlock_on_cancel, w);
    w->r = cctx_cond_wait(w->ctx, &w->cond, &w->mutex);
    pthread_cleanup_pop(0);
    CHECK_EQ(pthread_mutex_unlock(&w->mutex), 0);
    pthread_testcancel();
    return NULL;
}

static void waiter_init(struct waiter *w, cctx_cancel_t **cancel)
{
    *w = (struct waiter){.ctx = cctx_with_cancel(cctx_background(), cancel)};
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ERRORCHECK);
    CHECK_EQ(pthread_mutex_init(&w->mutex, &ma), 0);
    pthread_mutexattr_destroy(&ma);
    CHECK_EQ(pthread_cond_init(&w->cond, NULL), 0);
}

/* Whether ctx, not yet ended, has anything in its list (an ended one keeps
 * its cause there). */
static bool anything_registered(cctx_t *ctx)
{
    struct cctx__cancelable *c = (struct cctx__cancelable *)ctx;
    cctx__lock(ctx);
    bool any = c->children != NULL;
    cctx__unlock(ctx);
    return any;
}

/* ---- cancelled in the wait ---------------------------------------------------------- */

/* Before, the wake-up stayed in ctx's list, and a later cancel of ctx ran it
 * on the dead frame, with a mutex and a condition variable the program had
 * destroyed (a crash under valgrind's eye, and in a plain run). */
static void cancel_in_the_wait(void)
{
    cctx_cancel_t *cancel;
    struct waiter *w = malloc(sizeof *w);
    CHECK(w != NULL);
    waiter_init(w, &cancel);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, wait_until_cancelled, w), 0);
    while (!atomic_load(&w->tid))
        real_sleep_ms(1);
    wait_until_blocked(atomic_load(&w->tid));
    CHECK(anything_registered(w->ctx)); /* its wake-up */
    CHECK_EQ(pthread_cancel(t), 0);
    void *ret;
    CHECK_EQ(pthread_join(t, &ret), 0);
    CHECK(ret == PTHREAD_CANCELED);
    CHECK(atomic_load(&w->cleaned_up_in_call));
    CHECK(!anything_registered(w->ctx));
    cctx_t *ctx = w->ctx;
    CHECK_EQ(pthread_cond_destroy(&w->cond), 0);
    CHECK_EQ(pthread_mutex_destroy(&w->mutex), 0);
    free(w);
    cctx_cancel(cancel);
    cctx_release(ctx);
}

/* ---- pending as the wait ends, with the wake-up handed to the waker --------------- */

/* The waker, held back until `waker_go` opens (io_sync.c starts it through
 * this hook). */
static struct latch waker_go = LATCH_INIT;
static void *(*held_fn)(void *);

static void *start_when_told(void *arg)
{
    latch_wait_open(&waker_go);
    return held_fn(arg);
}

static int hold_the_waker(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
    held_fn = fn;
    return pthread_create(t, attr, start_when_told, arg);
}

/* Whether thread tid sleeps in a futex wait on `word`: after a broadcast, a
 * waiter leaves the condition variable's futex for the mutex's. */
static bool sleeps_on(pid_t tid, const void *word)
{
    long nr;
    unsigned long addr = 0, op = 0;
    return thread_syscall(tid, &nr, &addr, &op) && nr == SYS_futex && addr == (unsigned long)word;
}

/* The waiter is woken by a broadcast and waits for the mutex, which this
 * thread holds as it ends ctx (the wake-up goes to the waker, held back)
 * and cancels the waiter. The waiter's wait then ends with the cancellation
 * pending, and it must wait for the waker with w on its stack: before, the
 * cancellation acted in that wait, the thread unwound out of the call, and
 * the waker later wrote to its dead frame. */
static void cancel_pending_as_the_wait_ends(void)
{
    atomic_store(&cctx__io_thread_create, hold_the_waker);
    cctx_cancel_t *cancel;
    struct waiter w;
    waiter_init(&w, &cancel);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, wait_until_cancelled, &w), 0);
    while (!atomic_load(&w.tid))
        real_sleep_ms(1);
    wait_until_blocked(atomic_load(&w.tid));
    CHECK_EQ(pthread_mutex_lock(&w.mutex), 0);
    CHECK_EQ(pthread_cond_broadcast(&w.cond), 0);
    for (int i = 0; !sleeps_on(atomic_load(&w.tid), &w.mutex); i++) {
        CHECK(i < 10000); /* 10 s */
        real_sleep_ms(1);
    }
    cctx_cancel(cancel); /* the mutex is ours: the wake-up goes to the waker */
    CHECK_EQ(pthread_cancel(t), 0);
    CHECK_EQ(pthread_mutex_unlock(&w.mutex), 0);
    /* Now the waiter waits for the waker, or (before) has unwound. */
    for (int i = 0; i < 5000 && !atomic_load(&w.cleaned_up_in_call); i++) {
        if (i > 100 && thread_state(atomic_load(&w.tid)) == 'S')
            break;
        real_sleep_ms(1);
    }
    CHECK(!atomic_load(&w.cleaned_up_in_call));
    latch_open(&waker_go);
    void *ret;
    CHECK_EQ(pthread_join(t, &ret), 0);
    CHECK(ret == PTHREAD_CANCELED); /* at its pthread_testcancel, after the call */
    CHECK_EQ(w.r, ECANCELED);
    CHECK_EQ(pthread_cond_destroy(&w.cond), 0);
    CHECK_EQ(pthread_mutex_destroy(&w.mutex), 0);
    cctx_release(w.ctx);
}

/* Its scopes are not unpoisoned when a cancellation unwinds a thread, and
 * the thread's end then reads as a use after scope. */
#define SKIP_UNDER_ASAN()                                                                          \
    do {                                                                                           \
        if (TEST_UNDER_ASAN)                                                                       \
            SKIP_IN_THIS_BUILD("AddressSanitizer takes the unwinding of a cancelled thread for "   \
                               "a use after scope");                                               \
    } while (0)

TEST(io_cond_wait_thread_cancelled_in_it_leaves_nothing_registered)
{
    SKIP_UNDER_ASAN();
    run_with_watchdog(cancel_in_the_wait, 30);
}

TEST(io_cond_wait_cancellation_pending_as_it_ends_acts_after_the_call)
{
    SKIP_UNDER_ASAN();
#ifndef __GLIBC__
    /* sleeps_on looks for the waiter on glibc's mutex lock word, which is
     * where glibc's condition variable leaves a woken waiter; musl's keeps
     * it elsewhere first. */
    SKIP_IN_THIS_BUILD("the waiter's futex is known for glibc's mutexes only");
#endif
    run_with_watchdog(cancel_pending_as_the_wait_ends, 30);
}
