/* SPDX-License-Identifier: MIT */
/*
 * Section 9, <cctx/io.h>, continued from test_io_sync.c: cctx_cond_wait on
 * a robust mutex whose owner died, before or after the cancel, reports
 * EOWNERDEAD with the mutex held and left usable (consistent, then
 * unlocked), whether the canceller exits or runs on.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/io.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "harness.h"
#include "support.h"

static pthread_mutex_t *new_robust_mutex(void)
{
    pthread_mutex_t *m = malloc(sizeof *m);
    CHECK(m != NULL);
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    CHECK_EQ(pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST), 0);
    CHECK_EQ(pthread_mutex_init(m, &ma), 0);
    pthread_mutexattr_destroy(&ma);
    return m;
}

struct robust_case {
    cctx_t *ctx;
    pthread_mutex_t *mutex;
    pthread_cond_t cond;
    atomic_int in_wait; /* set under the mutex just before the wait */
    int r;              /* what cctx_cond_wait returned */
    int consistent;     /* pthread_mutex_consistent's answer after EOWNERDEAD */
    int unlock;         /* pthread_mutex_unlock's: a robust mutex says EPERM unless held */
};

/* Waits until ctx ends (a wake-up by a signal only waits again), then does
 * what an application does after EOWNERDEAD: marks the state consistent and
 * lets the mutex go. */
static void *robust_waiter(void *arg)
{
    struct robust_case *c = arg;
    CHECK_EQ(pthread_mutex_lock(c->mutex), 0);
    atomic_store(&c->in_wait, 1);
    while ((c->r = cctx_cond_wait(c->ctx, &c->cond, c->mutex)) == 0)
        ;
    c->consistent = c->r == EOWNERDEAD ? pthread_mutex_consistent(c->mutex) : -1;
    c->unlock = pthread_mutex_unlock(c->mutex);
    return NULL;
}

/* Takes the mutex and exits holding it: its next taker gets EOWNERDEAD. It
 * can take it only once the waiter's wait has let it go. */
static void *die_holding(void *arg)
{
    CHECK_EQ(pthread_mutex_lock(arg), 0);
    return NULL;
}

static void *cancel_then_exit(void *arg)
{
    cctx_cancel(arg);
    return NULL;
}

/* Starts c's waiter and has an owner of the mutex die while it waits. */
static void start_waiter_then_kill_owner(struct robust_case *c, pthread_t *waiter)
{
    CHECK_EQ(pthread_create(waiter, NULL, robust_waiter, c), 0);
    while (!atomic_load(&c->in_wait))
        sched_yield();
    pthread_t dier;
    CHECK_EQ(pthread_create(&dier, NULL, die_holding, c->mutex), 0);
    CHECK_EQ(pthread_join(dier, NULL), 0);
}

/* The waiter learned of the dead owner with the mutex held, and the mutex
 * works for everybody afterwards. pthread_mutex_consistent answers EINVAL
 * (glibc) when the library had to mark the mutex consistent to let it go. */
static void check_owner_death_reported(struct robust_case *c)
{
    CHECK_EQ(c->r, EOWNERDEAD);
    CHECK(c->consistent == 0 || c->consistent == EINVAL);
    CHECK_EQ(c->unlock, 0);
    CHECK_EQ(pthread_mutex_lock(c->mutex), 0);
    CHECK_EQ(pthread_mutex_unlock(c->mutex), 0);
    CHECK_EQ(pthread_mutex_destroy(c->mutex), 0);
    free(c->mutex);
    CHECK_EQ(pthread_cond_destroy(&c->cond), 0);
    cctx_release(c->ctx);
}

/* The owner died before the cancel: the after-function's trylock takes the
 * mutex with EOWNERDEAD, on a canceller thread that exits right after (or,
 * below, that runs on). */
static void owner_died_before_cancel(bool canceller_runs_on)
{
    cctx_cancel_t *cancel;
    struct robust_case c = {.mutex = new_robust_mutex(), .cond = PTHREAD_COND_INITIALIZER};
    c.ctx = cctx_with_cancel(cctx_background(), &cancel);
    pthread_t waiter, canceller;
    start_waiter_then_kill_owner(&c, &waiter);
    if (canceller_runs_on) {
        cctx_cancel(cancel); /* this thread runs on until the waiter is back */
    } else {
        CHECK_EQ(pthread_create(&canceller, NULL, cancel_then_exit, cancel), 0);
        CHECK_EQ(pthread_join(canceller, NULL), 0);
    }
    CHECK_EQ(pthread_join(waiter, NULL), 0); /* the watchdog fails a hang here */
    check_owner_death_reported(&c);
}

static void owner_died_canceller_exits(void)
{
    owner_died_before_cancel(false);
}

static void owner_died_canceller_runs_on(void)
{
    owner_died_before_cancel(true);
}

TEST(io_cond_wait_robust_mutex_of_dead_owner_gives_eownerdead_held)
{
    run_with_watchdog(owner_died_canceller_exits, 10);
}

TEST(io_cond_wait_robust_mutex_of_dead_owner_wakes_while_canceller_runs_on)
{
    run_with_watchdog(owner_died_canceller_runs_on, 10);
}

struct holder {
    pthread_mutex_t *mutex;
    pthread_cond_t *cond; /* if set, signalled before the holder exits */
    struct latch held, go;
};

static void *hold_then_die(void *arg)
{
    struct holder *h = arg;
    CHECK_EQ(pthread_mutex_lock(h->mutex), 0);
    latch_add(&h->held);
    latch_wait_open(&h->go);
    if (h->cond)
        CHECK_EQ(pthread_cond_signal(h->cond), 0);
    return NULL; /* holding the mutex */
}

/* The mutex is held when ctx is canceled, so the waker is to take it; its
 * holder then exits holding it, and the waker gets EOWNERDEAD. If the holder
 * signals cond first, the waiter's own wait may instead be the one that
 * takes the mutex from the dead owner, while the waker still has to take
 * it: the waiter must neither leave before the waker is done nor wait on an
 * inconsistent mutex (that makes it unrecoverable). Which of the two takes
 * it is a race, hence rounds. */
static void owner_dies_after_cancel(bool signal)
{
    for (int round = 0; round < (signal ? 20 : 1); round++) {
        cctx_cancel_t *cancel;
        struct robust_case c = {.mutex = new_robust_mutex(), .cond = PTHREAD_COND_INITIALIZER};
        c.ctx = cctx_with_cancel(cctx_background(), &cancel);
        struct holder h = {.mutex = c.mutex,
                           .cond = signal ? &c.cond : NULL,
                           .held = LATCH_INIT,
                           .go = LATCH_INIT};
        pthread_t waiter, holder;
        CHECK_EQ(pthread_create(&waiter, NULL, robust_waiter, &c), 0);
        while (!atomic_load(&c.in_wait))
            sched_yield();
        CHECK_EQ(pthread_create(&holder, NULL, hold_then_die, &h), 0);
        latch_wait_n(&h.held, 1);
        cctx_cancel(cancel);
        latch_open(&h.go);
        CHECK_EQ(pthread_join(holder, NULL), 0);
        CHECK_EQ(pthread_join(waiter, NULL), 0);
        check_owner_death_reported(&c);
    }
}

static void holder_dies_after_cancel(void)
{
    owner_dies_after_cancel(false);
}

static void holder_signals_and_dies_after_cancel(void)
{
    owner_dies_after_cancel(true);
}

/* ThreadSanitizer's pthread_mutex_timedlock (the waker's, see io_sync.c)
 * takes EOWNERDEAD for a failure, not a lock, so it reports the waker's
 * unlock that follows; its trylock, and pthread_cond_wait, get it right. */
#define SKIP_WHERE_TIMEDLOCK_MISSES_EOWNERDEAD()                                                   \
    do {                                                                                           \
        if (TEST_UNDER_TSAN)                                                                       \
            SKIP_IN_THIS_BUILD("ThreadSanitizer (pthread_mutex_timedlock and EOWNERDEAD)");        \
    } while (0)

TEST(io_cond_wait_robust_mutex_whose_holder_dies_after_cancel_gives_eownerdead)
{
    SKIP_WHERE_TIMEDLOCK_MISSES_EOWNERDEAD();
    run_with_watchdog(holder_dies_after_cancel, 10);
}

TEST(io_cond_wait_robust_mutex_whose_holder_signals_and_dies_after_cancel_gives_eownerdead)
{
    SKIP_WHERE_TIMEDLOCK_MISSES_EOWNERDEAD();
    run_with_watchdog(holder_signals_and_dies_after_cancel, 20);
}
