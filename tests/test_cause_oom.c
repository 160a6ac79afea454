/* SPDX-License-Identifier: MIT */
/*
 * A cancellation whose cause record cannot be allocated. The context still
 * ends with the out-of-memory cause (no site, no code), and cctx_cancel's
 * promise still holds: a second cancel of that context, a cancellation from
 * above that meets it already ended, and a deadline above it fired by the
 * timer thread all wait for its marking to reach every descendant, instead
 * of taking it as complete at once.
 *
 * The first canceller is held in the middle of its marking, with no timing:
 * the test holds the lock of x's one child k, which the marking must take
 * before it can mark k and k's child g.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/testing.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "harness.h"
#include "internal.h" /* cctx__lock: holding a context's lock */
#include "support.h"
#include "testhooks.h"

/* p -> x -> k -> g, each a cancel context (p a deadline in one test). */
struct tree {
    cctx_cancel_t *pc, *xc;
    cctx_t *p, *x, *k, *g;
};

static void tree_build(struct tree *t, int64_t timeout)
{
    t->p = timeout ? cctx_with_timeout(cctx_background(), timeout, &t->pc)
                   : cctx_with_cancel(cctx_background(), &t->pc);
    t->x = cctx_with_cancel(t->p, &t->xc);
    t->k = cctx_with_cancel(t->x, NULL);
    t->g = cctx_with_cancel(t->k, NULL);
    CHECK(t->p && t->x && t->k && t->g);
}

static void tree_free(struct tree *t)
{
    cctx_release(t->g);
    cctx_release(t->k);
    cctx_release(t->x);
    cctx_release(t->p);
}

/* The first canceller: cancels x through its handle with the record's
 * allocation failing (x is in p's list and has a child, so the cancel needs
 * a record), and gets stuck at k's lock. */
struct first {
    struct tree *t;
    pthread_t thread;
    _Atomic pid_t tid;
    atomic_bool returned;
};

static void *first_main(void *arg)
{
    struct first *f = arg;
    atomic_store(&f->tid, thread_id());
    cctx__test_fail_alloc(1);
    cctx_cancel(f->t->xc);
    cctx__test_fail_alloc(0);
    atomic_store(&f->returned, true);
    return NULL;
}

static void first_start(struct first *f, struct tree *t)
{
    *f = (struct first){.t = t};
    CHECK_EQ(pthread_create(&f->thread, NULL, first_main, f), 0);
    while (!atomic_load(&f->tid))
        sched_yield();
}

/* The second canceller: cancels through `cancel`, then looks at once at
 * what it must find ended. */
struct second {
    cctx_cancel_t *cancel;
    struct tree *t;
    pthread_t thread;
    _Atomic pid_t tid;
    atomic_bool returned;
    int err_x, err_k, err_g; /* seen just after its cctx_cancel returned */
};

static void *second_main(void *arg)
{
    struct second *s = arg;
    atomic_store(&s->tid, thread_id());
    cctx_cancel(s->cancel);
    s->err_x = cctx_err(s->t->x);
    s->err_k = cctx_err(s->t->k);
    s->err_g = cctx_err(s->t->g);
    atomic_store(&s->returned, true);
    return NULL;
}

/* Starts the second canceller and returns once it has either returned or
 * gone to sleep (five reads 1 ms apart, as wait_until_blocked): only then
 * does the test let the first one go on. */
static void second_run(struct second *s, cctx_cancel_t *cancel, struct tree *t)
{
    *s = (struct second){.cancel = cancel, .t = t};
    CHECK_EQ(pthread_create(&s->thread, NULL, second_main, s), 0);
    while (!atomic_load(&s->tid))
        sched_yield();
    int64_t until = real_now() + CCTX_SEC(10);
    for (int stable = 0; stable < 5 && !atomic_load(&s->returned);) {
        CHECK(real_now() < until);
        stable = thread_state(atomic_load(&s->tid)) == 'S' ? stable + 1 : 0;
        real_sleep_ms(1);
    }
}

/* The out-of-memory cause, as the static records gave it: no site, no code,
 * no time. */
static void check_oom_cause(const cctx_t *c)
{
    cctx_cause_t cause;
    CHECK_EQ(cctx_cause(c, &cause), ECANCELED);
    CHECK_EQ(cause.err, ECANCELED);
    CHECK_EQ(cause.code, 0);
    CHECK_STR(cause.msg, "context canceled");
    CHECK_STR(cause.file, "?");
    CHECK_STR(cause.func, "?");
    CHECK_EQ(cause.line, 0);
    CHECK_EQ(cause.when, 0);
}

/* Holds k's lock, and starts the first canceller, which ends x and stops at
 * k. */
static void first_stuck_at_k(struct first *f, struct tree *t)
{
    cctx__lock(t->k);
    first_start(f, t);
    wait_until_blocked(atomic_load(&f->tid));
    CHECK(!atomic_load(&f->returned));
    CHECK_EQ(cctx_err(t->x), ECANCELED);
    CHECK_EQ(cctx_err(t->k), 0);
    CHECK_EQ(cctx_err(t->g), 0);
    check_oom_cause(t->x);
}

/* Lets the first canceller go on, and checks what the second one saw. */
static void finish(struct first *f, struct second *s, struct tree *t, int err)
{
    cctx__unlock(t->k);
    CHECK_EQ(pthread_join(s->thread, NULL), 0);
    CHECK_EQ(pthread_join(f->thread, NULL), 0);
    CHECK_EQ(s->err_x, err);
    CHECK_EQ(s->err_k, ECANCELED);
    CHECK_EQ(s->err_g, ECANCELED);
    check_oom_cause(t->k);
    check_oom_cause(t->g);
}

static void second_cancel_waits(void)
{
    struct tree t;
    tree_build(&t, 0);
    struct first f;
    first_stuck_at_k(&f, &t);
    struct second s;
    second_run(&s, t.xc, &t);
    finish(&f, &s, &t, ECANCELED);
    CHECK_EQ(cctx_err(t.p), 0);
    tree_free(&t);
}

TEST(cause_oom_second_cancel_waits_until_every_descendant_is_marked)
{
    run_with_watchdog(second_cancel_waits, 60);
}

static void ancestor_cancel_waits(void)
{
    struct tree t;
    tree_build(&t, 0);
    struct first f;
    first_stuck_at_k(&f, &t);
    struct second s;
    second_run(&s, t.pc, &t);
    finish(&f, &s, &t, ECANCELED);
    CHECK_EQ(cctx_err(t.p), ECANCELED);
    check_oom_cause(t.x); /* the ancestor's cause did not replace it */
    tree_free(&t);
}

TEST(cause_oom_ancestor_cancel_waits_until_every_descendant_is_marked)
{
    run_with_watchdog(ancestor_cancel_waits, 60);
}

/* The timer thread marks without waiting: meeting x ended by a marking
 * still under way, it must hand its own on to a runner that waits, not
 * count x as complete. A second cancel of p then waits for both. */
static void deadline_above_waits(void)
{
    for (int64_t timeout = CCTX_MSEC(50);; timeout *= 2) {
        CHECK(timeout < CCTX_SEC(60));
        struct tree t;
        tree_build(&t, timeout);
        cctx__lock(t.k);
        struct first f;
        first_start(&f, &t);
        wait_until_blocked(atomic_load(&f.tid));
        cctx_cause_t cause;
        bool first_won = cctx_err(t.p) == 0 && cctx_cause(t.x, &cause) == ECANCELED &&
                         strcmp(cause.file, "?") == 0;
        if (!first_won) {
            /* The deadline fired first (or took the failing allocation):
             * again, with more time. */
            cctx__test_fail_alloc(0);
            cctx__unlock(t.k);
            CHECK_EQ(pthread_join(f.thread, NULL), 0);
            tree_free(&t);
            continue;
        }
        CHECK_EQ(cctx_wait(t.p, CCTX_SEC(30)), ETIMEDOUT);
        struct second s;
        second_run(&s, t.pc, &t);
        finish(&f, &s, &t, ECANCELED);
        CHECK_EQ(cctx_err(t.p), ETIMEDOUT);
        check_oom_cause(t.x);
        tree_free(&t);
        return;
    }
}

TEST(cause_oom_deadline_above_waits_until_every_descendant_is_marked)
{
    run_with_watchdog(deadline_above_waits, 110);
}

/* A deadline whose own record cannot be allocated ends with the
 * out-of-memory deadline cause, all the way down, and a second cancel
 * waits for its marking too. */
static void oom_deadline_cause(void)
{
    cctx_fake_clock_start(CCTX_SEC(1000));
    struct tree t;
    t.p = cctx_with_cancel(cctx_background(), &t.pc);
    t.x = cctx_with_timeout(t.p, 10, &t.xc);
    t.k = cctx_with_cancel(t.x, NULL);
    t.g = cctx_with_cancel(t.k, NULL);
    CHECK(t.p && t.x && t.k && t.g);
    cctx__test_fail_alloc(1);
    cctx_fake_clock_advance(10); /* fires x on this thread */
    cctx__test_fail_alloc(0);
    const cctx_t *all[] = {t.x, t.k, t.g};
    for (int i = 0; i < 3; i++) {
        cctx_cause_t cause;
        CHECK_EQ(cctx_cause(all[i], &cause), ETIMEDOUT);
        CHECK_EQ(cause.code, 0);
        CHECK_STR(cause.msg, "context deadline exceeded");
        CHECK_STR(cause.file, "?");
        CHECK_STR(cause.func, "?");
        CHECK_EQ(cause.line, 0);
        CHECK_EQ(cause.when, 0);
    }
    cctx_cancel(t.xc); /* its marking is complete: returns at once */
    CHECK_EQ(cctx_err(t.p), 0);
    cctx_cancel(t.pc);
    cctx_cause_t own;
    CHECK_EQ(cctx_cause(t.p, &own), ECANCELED);
    CHECK_STR(own.file, __FILE__); /* p's own cause, not x's */
    tree_free(&t);
    cctx_fake_clock_stop();
}

TEST(cause_oom_deadline_without_a_record_keeps_the_out_of_memory_cause)
{
    run_with_watchdog(oom_deadline_cause, 60);
}

/* A deadline fired by the timer thread while the test holds its lock: the
 * firing cannot allocate its record and hands the whole marking to a
 * runner, which keeps the cause without a site in the deadline itself once
 * it gets the lock. */
static void oom_firing_handed_off_whole(void)
{
    for (int64_t timeout = CCTX_MSEC(20);; timeout *= 2) {
        CHECK(timeout < CCTX_SEC(60));
        cctx_cancel_t *tc;
        cctx_t *t = cctx_with_timeout(cctx_background(), timeout, &tc);
        cctx_t *c = cctx_with_cancel(t, NULL);
        cctx_t *g = cctx_with_cancel(c, NULL);
        CHECK(t && c && g);
        long sleeps = cctx__test_lock_sleeps();
        cctx__lock(t);
        bool early = cctx_err(t) != 0;
        if (!early) {
            cctx__test_fail_alloc(1);
            /* The runner given the firing sleeps on t's lock. */
            int64_t until = real_now() + CCTX_SEC(30);
            while (cctx__test_lock_sleeps() == sleeps) {
                CHECK(real_now() < until);
                real_sleep_ms(1);
            }
        }
        cctx__unlock(t);
        cctx__test_fail_alloc(0);
        CHECK_EQ(cctx_wait(t, CCTX_SEC(30)), ETIMEDOUT);
        cctx_cancel(tc); /* waits for the runner's marking */
        CHECK_EQ(cctx_err(c), ETIMEDOUT);
        CHECK_EQ(cctx_err(g), ETIMEDOUT);
        cctx_cause_t cause;
        CHECK_EQ(cctx_cause(t, &cause), ETIMEDOUT);
        bool oom = !early && strcmp(cause.file, "?") == 0;
        if (oom) {
            const cctx_t *all[] = {t, c, g};
            for (int i = 0; i < 3; i++) {
                CHECK_EQ(cctx_cause(all[i], &cause), ETIMEDOUT);
                CHECK_EQ(cause.code, 0);
                CHECK_STR(cause.msg, "context deadline exceeded");
                CHECK_STR(cause.file, "?");
                CHECK_EQ(cause.line, 0);
            }
        }
        cctx_release(g);
        cctx_release(c);
        cctx_release(t);
        if (oom)
            return;
    }
}

TEST(cause_oom_deadline_handed_off_whole_keeps_the_out_of_memory_cause)
{
    run_with_watchdog(oom_firing_handed_off_whole, 110);
}
