/* SPDX-License-Identifier: MIT */
/*
 * The traps of the "nested WithTimeout" write-up, one test each: what goes
 * wrong in hand-rolled cancellation when timeouts nest, cancels repeat or
 * race, and contexts are released while being cancelled. Deadline logic runs
 * on the fake clock; races are driven by many rounds between threads.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/testing.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "harness.h"
#include "support.h"
#include "testhooks.h"

static const char key_a;

/* Two threads that run in lockstep with the caller: each round, once the
 * caller has set it up, lockstep_round lets both run their step and returns
 * when both are done. */
struct lockstep {
    pthread_barrier_t go, done;
    atomic_int stop;
    pthread_t threads[2];
    struct lockstep_side {
        struct lockstep *ls;
        void (*step)(void *arg);
        void *arg;
    } sides[2];
};

static void *lockstep_main(void *arg)
{
    struct lockstep_side *side = arg;
    for (;;) {
        pthread_barrier_wait(&side->ls->go);
        if (atomic_load(&side->ls->stop))
            return NULL;
        side->step(side->arg);
        pthread_barrier_wait(&side->ls->done);
    }
}

static void lockstep_start(struct lockstep *ls, void (*a)(void *), void (*b)(void *), void *arg)
{
    atomic_store(&ls->stop, 0);
    CHECK_EQ(pthread_barrier_init(&ls->go, NULL, 3), 0);
    CHECK_EQ(pthread_barrier_init(&ls->done, NULL, 3), 0);
    ls->sides[0] = (struct lockstep_side){ls, a, arg};
    ls->sides[1] = (struct lockstep_side){ls, b, arg};
    for (int i = 0; i < 2; i++)
        CHECK_EQ(pthread_create(&ls->threads[i], NULL, lockstep_main, &ls->sides[i]), 0);
}

static void lockstep_round(struct lockstep *ls)
{
    pthread_barrier_wait(&ls->go);
    pthread_barrier_wait(&ls->done);
}

static void lockstep_stop(struct lockstep *ls)
{
    atomic_store(&ls->stop, 1);
    pthread_barrier_wait(&ls->go);
    for (int i = 0; i < 2; i++)
        CHECK_EQ(pthread_join(ls->threads[i], NULL), 0);
    pthread_barrier_destroy(&ls->go);
    pthread_barrier_destroy(&ls->done);
}

/* ---- parent cancel while a child waits --------------------------------- */

struct waiter {
    cctx_t *ctx;
    atomic_int ready; /* its tid */
    int result;
};

static void *wait_main(void *arg)
{
    struct waiter *w = arg;
    atomic_store(&w->ready, thread_id());
    w->result = cctx_wait(w->ctx, -1);
    return NULL;
}

TEST(trap_parent_cancel_wakes_child_waiter_with_parent_cause)
{
    cctx_cancel_t *pc;
    cctx_t *parent = cctx_with_cancel(cctx_background(), &pc);
    cctx_t *child = cctx_with_timeout(parent, CCTX_SEC(3600), NULL);
    cctx_t *grandchild = cctx_with_timeout(child, CCTX_SEC(1800), NULL);
    CHECK(parent && child && grandchild);

    /* The waiting thread gets its own references, as the contract asks. */
    struct waiter w1 = {.ctx = cctx_ref(child)}, w2 = {.ctx = cctx_ref(grandchild)};
    pthread_t t1, t2;
    CHECK_EQ(pthread_create(&t1, NULL, wait_main, &w1), 0);
    CHECK_EQ(pthread_create(&t2, NULL, wait_main, &w2), 0);
    while (!atomic_load(&w1.ready) || !atomic_load(&w2.ready))
        sched_yield();
    /* Both asleep in their waits: the cancel wakes them, not a look. */
    wait_until_blocked(atomic_load(&w1.ready));
    wait_until_blocked(atomic_load(&w2.ready));
    int line = __LINE__ + 1;
    cctx_cancel_cause(pc, 42, "client went away");
    CHECK_EQ(pthread_join(t1, NULL), 0);
    CHECK_EQ(pthread_join(t2, NULL), 0);
    CHECK_EQ(w1.result, ECANCELED);
    CHECK_EQ(w2.result, ECANCELED);

    cctx_cause_t pcause, ccause, gcause;
    CHECK_EQ(cctx_cause(parent, &pcause), ECANCELED);
    CHECK_EQ(pcause.code, 42);
    CHECK_STR(pcause.msg, "client went away");
    CHECK(strstr(pcause.file, "test_traps.c") != NULL);
    CHECK_EQ(pcause.line, line);
    CHECK_STR(pcause.func, "test_trap_parent_cancel_wakes_child_waiter_with_parent_cause");
    CHECK_EQ(cctx_cause(child, &ccause), ECANCELED);
    CHECK_EQ(cctx_cause(grandchild, &gcause), ECANCELED);
    check_causes_equal(&ccause, &pcause);
    check_causes_equal(&gcause, &pcause);

    cctx_release(w1.ctx);
    cctx_release(w2.ctx);
    cctx_release(grandchild);
    cctx_release(child);
    cctx_release(parent);
}

/* ---- outer timeout shorter than inner ---------------------------------- */

TEST(trap_outer_timeout_shorter_than_inner_parent_wins)
{
    cctx_fake_clock_start(CCTX_SEC(1000));
    int64_t t0 = cctx_now();
    int line = __LINE__ + 1;
    cctx_t *outer = cctx_with_timeout(cctx_background(), CCTX_MSEC(100), NULL);
    cctx_cancel_t *ic;
    cctx_t *inner = cctx_with_timeout(outer, CCTX_SEC(5), &ic);
    cctx_t *inner_cause = cctx_with_timeout_cause(outer, CCTX_SEC(5), 9, "inner budget", NULL);
    CHECK(outer && inner && inner_cause);

    int64_t d_outer, d_inner;
    CHECK(cctx_deadline(outer, &d_outer));
    CHECK(cctx_deadline(inner, &d_inner));
    CHECK_EQ(d_outer, t0 + CCTX_MSEC(100));
    CHECK_EQ(d_inner, d_outer); /* the earliest on the chain */
    CHECK_EQ(cctx_remaining(inner), CCTX_MSEC(100));

    cctx_fake_clock_advance(CCTX_MSEC(99));
    CHECK_EQ(cctx_err(outer), 0);
    CHECK_EQ(cctx_err(inner), 0);
    cctx_fake_clock_advance(CCTX_MSEC(1));
    CHECK_EQ(cctx_err(outer), ETIMEDOUT);
    CHECK_EQ(cctx_err(inner), ETIMEDOUT);
    CHECK_EQ(cctx_err(inner_cause), ETIMEDOUT);

    cctx_cause_t oc, ic1, ic2;
    CHECK_EQ(cctx_cause(outer, &oc), ETIMEDOUT);
    CHECK_EQ(oc.code, 0);
    CHECK_STR(oc.msg, "context deadline exceeded");
    CHECK(strstr(oc.file, "test_traps.c") != NULL);
    CHECK_EQ(oc.line, line); /* the outer cctx_with_timeout call */
    CHECK_EQ(oc.when, t0 + CCTX_MSEC(100));
    CHECK_EQ(cctx_cause(inner, &ic1), ETIMEDOUT);
    CHECK_EQ(cctx_cause(inner_cause, &ic2), ETIMEDOUT);
    check_causes_equal(&ic1, &oc);
    check_causes_equal(&ic2, &oc); /* the inner's own cause never fired */

    /* One cause: the inner deadlines passing later, or a cancel, change nothing. */
    cctx_fake_clock_advance(CCTX_SEC(10));
    cctx_cancel_cause(ic, 1, "too late");
    CHECK_EQ(cctx_cause(inner, &ic1), ETIMEDOUT);
    check_causes_equal(&ic1, &oc);

    cctx_release(inner_cause);
    cctx_release(inner);
    cctx_release(outer);
    cctx_fake_clock_stop();
}

TEST(trap_inner_timeout_shorter_fires_alone)
{
    cctx_fake_clock_start(0);
    cctx_t *outer = cctx_with_timeout(cctx_background(), CCTX_SEC(5), NULL);
    int line = __LINE__ + 1;
    cctx_t *inner = cctx_with_timeout_cause(outer, CCTX_MSEC(100), 3, "inner budget", NULL);
    CHECK(outer && inner);
    cctx_fake_clock_advance(CCTX_MSEC(100));
    CHECK_EQ(cctx_err(inner), ETIMEDOUT);
    CHECK_EQ(cctx_err(outer), 0); /* a child's deadline never reaches up */
    cctx_cause_t c;
    CHECK_EQ(cctx_cause(inner, &c), ETIMEDOUT);
    CHECK_EQ(c.code, 3);
    CHECK_STR(c.msg, "inner budget");
    CHECK_EQ(c.line, line);
    cctx_fake_clock_advance(CCTX_SEC(5));
    CHECK_EQ(cctx_err(outer), ETIMEDOUT);
    cctx_cause_t c2;
    CHECK_EQ(cctx_cause(inner, &c2), ETIMEDOUT);
    check_causes_equal(&c2, &c); /* still its own, first cause */
    cctx_release(inner);
    cctx_release(outer);
    cctx_fake_clock_stop();
}

/* ---- double and concurrent cancel -------------------------------------- */

TEST(trap_double_cancel_first_wins)
{
    cctx_cancel_t *cc;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cc);
    cctx_t *child = cctx_with_cancel(c, NULL);
    int line = __LINE__ + 1;
    cctx_cancel_cause(cc, 1, "first");
    cctx_cause_t first;
    CHECK_EQ(cctx_cause(c, &first), ECANCELED);
    cctx_cancel_cause(cc, 2, "second");
    cctx_cancel(cc);
    cctx_cancel(cc);
    cctx_cause_t now, ch;
    CHECK_EQ(cctx_cause(c, &now), ECANCELED);
    check_causes_equal(&now, &first);
    CHECK_EQ(now.code, 1);
    CHECK_STR(now.msg, "first");
    CHECK_EQ(now.line, line);
    CHECK_EQ(cctx_cause(child, &ch), ECANCELED);
    check_causes_equal(&ch, &first);
    cctx_release(child);
    cctx_release(c);
}

enum { CANCELLERS = 8 };

struct race {
    cctx_cancel_t *cancel;
    cctx_t *leaf; /* a descendant: non-zero error once any cancel returns */
    pthread_t ids[CANCELLERS];
    int leaf_err_after[CANCELLERS];
    struct rec fn; /* the after-function on the cancelled context */
};

struct racer {
    struct race *race;
    int index;
};

static const char *const race_msgs[CANCELLERS] = {"c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7"};

static void racer_main(void *arg)
{
    struct racer *rc = arg;
    struct race *r = rc->race;
    r->ids[rc->index] = pthread_self();
    cctx_cancel_cause(r->cancel, rc->index + 1, race_msgs[rc->index]);
    r->leaf_err_after[rc->index] = cctx_err(r->leaf);
}

TEST(trap_concurrent_cancel_from_many_threads_one_cause)
{
    int rounds = TEST_UNDER_TSAN ? 50 : 200;
    for (int round = 0; round < rounds; round++) {
        struct race r = {0};
        cctx_t *c = cctx_with_cancel(cctx_background(), &r.cancel);
        /* A deep and wide subtree, so that marking takes a while. */
        cctx_t *chain[64];
        chain[0] = cctx_with_cancel(c, NULL);
        for (int i = 1; i < 64; i++)
            chain[i] = i % 4 == 2 ? cctx_with_value(chain[i - 1], &key_a, NULL, NULL)
                                  : cctx_with_cancel(chain[i - 1], NULL);
        r.leaf = chain[63];
        rec_on(&r.fn, c);
        struct gang gang;
        gang_init(&gang, CANCELLERS, false);
        struct racer rc[CANCELLERS];
        for (int i = 0; i < CANCELLERS; i++) {
            rc[i] = (struct racer){&r, i};
            gang_spawn(&gang, racer_main, &rc[i]);
        }
        gang_join(&gang);

        cctx_cause_t cause, leaf;
        CHECK_EQ(cctx_cause(c, &cause), ECANCELED);
        CHECK(cause.code >= 1 && cause.code <= CANCELLERS);
        CHECK_STR(cause.msg, race_msgs[cause.code - 1]);
        CHECK_EQ(cctx_cause(r.leaf, &leaf), ECANCELED);
        check_causes_equal(&leaf, &cause);
        for (int i = 0; i < 64; i++) {
            cctx_cause_t x;
            CHECK_EQ(cctx_cause(chain[i], &x), ECANCELED);
            CHECK_EQ(x.code, cause.code);
        }
        for (int i = 0; i < CANCELLERS; i++)
            CHECK_EQ(r.leaf_err_after[i], ECANCELED); /* every cancel returned after marking */
        CHECK_EQ(atomic_load(&r.fn.runs), 1);
        /* fn ran on the thread whose cancellation won. */
        CHECK(pthread_equal(r.fn.thread, r.ids[cause.code - 1]));
        CHECK(!cctx_after_stop(&r.fn.reg));
        for (int i = 63; i >= 0; i--)
            cctx_release(chain[i]);
        cctx_release(c);
    }
}

/* ---- cancel racing the deadline ----------------------------------------- */

static void advance_step(void *arg)
{
    (void)arg;
    cctx_fake_clock_advance(CCTX_MSEC(1));
}

static void deadline_cancel_step(void *arg)
{
    cctx_cancel_t **cancel = arg; /* this round's */
    cctx_cancel_cause(*cancel, 200, "canceled");
}

static void count_fn(void *arg)
{
    atomic_fetch_add((atomic_int *)arg, 1);
}

TEST(trap_cancel_racing_deadline_exactly_one_wins)
{
    int rounds = TEST_UNDER_TSAN ? 300 : 3000;
    cctx_fake_clock_start(0);
    cctx_cancel_t *cancel = NULL;
    struct lockstep ls;
    lockstep_start(&ls, advance_step, deadline_cancel_step, &cancel);
    int timed_out = 0, canceled = 0;
    for (int round = 0; round < rounds; round++) {
        cctx_t *c = cctx_with_timeout_cause(cctx_background(), CCTX_MSEC(1), 100, "deadline",
                                            &cancel);
        cctx_t *child = cctx_with_cancel(c, NULL);
        CHECK(c && child);
        atomic_int runs = 0, child_runs = 0;
        cctx_after_t reg, creg;
        CHECK_EQ(cctx_after_func(c, &reg, count_fn, &runs), 0);
        CHECK_EQ(cctx_after_func(child, &creg, count_fn, &child_runs), 0);
        lockstep_round(&ls);

        cctx_cause_t cause, ccause;
        int err = cctx_err(c);
        CHECK_EQ(cctx_cause(c, &cause), err);
        if (err == ETIMEDOUT) {
            timed_out++;
            CHECK_EQ(cause.code, 100);
            CHECK_STR(cause.msg, "deadline");
        } else {
            CHECK_EQ(err, ECANCELED);
            canceled++;
            CHECK_EQ(cause.code, 200);
            CHECK_STR(cause.msg, "canceled");
        }
        CHECK_EQ(cctx_cause(child, &ccause), err);
        check_causes_equal(&ccause, &cause);
        CHECK_EQ(atomic_load(&runs), 1);
        CHECK_EQ(atomic_load(&child_runs), 1);
        CHECK(!cctx_after_stop(&reg));
        CHECK(!cctx_after_stop(&creg));
        cctx_release(child);
        cctx_release(c);
    }
    lockstep_stop(&ls);
    cctx_fake_clock_stop();
    printf("%d rounds: deadline won %d, cancel won %d\n", rounds, timed_out, canceled);
    CHECK_EQ(timed_out + canceled, rounds);
}

/* ---- release racing cancel ---------------------------------------------- */

struct release_race {
    cctx_cancel_t *parent_cancel;   /* thread A cancels the parent...          */
    cctx_t *to_release[4];          /* ...while thread B drops the last refs   */
    cctx_cancel_t *same_cancel;     /* and, on one context with two refs,      */
    cctx_t *same;                   /* A cancels while B releases its ref      */
};

static void release_side(void *arg)
{
    struct release_race *r = arg;
    for (int i = 0; i < 4; i++)
        cctx_release(r->to_release[i]);
    cctx_release(r->same);
}

static void cancel_side(void *arg)
{
    struct release_race *r = arg;
    cctx_cancel(r->same_cancel); /* this thread holds a reference on `same` */
    cctx_cancel(r->parent_cancel);
}

TEST(trap_release_racing_cancel_no_crash_each_after_func_once)
{
    int rounds = TEST_UNDER_TSAN ? 300 : 3000;
    struct release_race r = {0};
    struct lockstep ls;
    lockstep_start(&ls, release_side, cancel_side, &r);
    for (int round = 0; round < rounds; round++) {
        cctx_t *parent = cctx_with_cancel(cctx_background(), &r.parent_cancel);
        atomic_int runs[5] = {0};
        cctx_after_t regs[5];
        for (int i = 0; i < 4; i++) {
            cctx_t *mid = i % 2 ? cctx_with_value(parent, &key_a, NULL, NULL) : NULL;
            cctx_t *base = mid ? mid : parent;
            r.to_release[i] = i == 3 ? cctx_with_timeout(base, CCTX_SEC(3600), NULL)
                                     : cctx_with_cancel(base, NULL);
            CHECK(r.to_release[i] != NULL);
            if (mid)
                cctx_release(mid); /* the child keeps it alive */
            CHECK_EQ(cctx_after_func(r.to_release[i], &regs[i], count_fn, &runs[i]), 0);
        }
        r.same = cctx_with_cancel(cctx_background(), &r.same_cancel);
        CHECK_EQ(cctx_after_func(r.same, &regs[4], count_fn, &runs[4]), 0);
        cctx_t *mine = cctx_ref(r.same); /* the cancelling side's reference */

        lockstep_round(&ls);

        CHECK_EQ(cctx_err(parent), ECANCELED);
        CHECK_EQ(cctx_err(mine), ECANCELED);
        for (int i = 0; i < 5; i++) {
            CHECK_EQ(atomic_load(&runs[i]), 1); /* by the releaser or the canceller */
            CHECK(!cctx_after_stop(&regs[i]));
        }
        cctx_release(mine);
        cctx_release(parent);
    }
    lockstep_stop(&ls);
}

/* ---- after-function registered after cancel ---------------------------- */

TEST(trap_after_func_registered_after_cancel_runs_at_once)
{
    cctx_cancel_t *cc;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cc);
    cctx_t *v = cctx_with_value(c, &key_a, NULL, NULL);
    cctx_cancel(cc);
    struct rec a, b;
    rec_on(&a, c);
    CHECK_EQ(atomic_load(&a.runs), 1);
    CHECK(pthread_equal(a.thread, pthread_self()));
    rec_on(&b, v);
    CHECK_EQ(atomic_load(&b.runs), 1);
    CHECK(!cctx_after_stop(&a.reg));
    CHECK(!cctx_after_stop(&b.reg));
    cctx_cancel(cc);
    cctx_release(v);
    cctx_release(c);
    CHECK_EQ(atomic_load(&a.runs), 1);
    CHECK_EQ(atomic_load(&b.runs), 1);
}

/* ---- child derived from an already-canceled parent --------------------- */

static bool fd_readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

TEST(trap_child_of_canceled_parent_born_done_with_parent_cause)
{
    cctx_fake_clock_start(CCTX_SEC(50));
    cctx_cancel_t *pc;
    cctx_t *p = cctx_with_cancel(cctx_background(), &pc);
    cctx_cancel_cause(pc, 17, "gone");
    cctx_cause_t pcause;
    CHECK_EQ(cctx_cause(p, &pcause), ECANCELED);
    cctx_fake_clock_advance(CCTX_SEC(1)); /* a later 'when' would give it away */

    cctx_cancel_t *kc[4];
    cctx_t *kids[5] = {
        cctx_with_cancel(p, &kc[0]),
        cctx_with_timeout(p, CCTX_SEC(10), &kc[1]),
        cctx_with_deadline(p, cctx_now() + CCTX_SEC(10), &kc[2]),
        cctx_with_timeout_cause(p, CCTX_SEC(10), 5, "own", &kc[3]),
        cctx_with_value(p, &key_a, NULL, NULL),
    };
    for (int i = 0; i < 5; i++) {
        CHECK(kids[i] != NULL);
        cctx_cause_t c;
        CHECK_EQ(cctx_err(kids[i]), ECANCELED);
        CHECK_EQ(cctx_cause(kids[i], &c), ECANCELED);
        check_causes_equal(&c, &pcause);
        CHECK(fd_readable(cctx_done_fd(kids[i])));
    }
    /* Cancelling the born-done child changes nothing either. */
    cctx_cancel_cause(kc[0], 99, "later");
    cctx_cause_t c0;
    CHECK_EQ(cctx_cause(kids[0], &c0), ECANCELED);
    CHECK_EQ(c0.code, 17);

    /* Grandchildren too; but a without_cancel child is not canceled. */
    cctx_t *gk = cctx_with_cancel(kids[4], NULL);
    CHECK_EQ(cctx_err(gk), ECANCELED);
    cctx_t *wc = cctx_without_cancel(p);
    CHECK_EQ(cctx_err(wc), 0);

    /* A timed-out parent gives ETIMEDOUT and its cause. */
    cctx_t *t = cctx_with_timeout(cctx_background(), CCTX_MSEC(5), NULL);
    cctx_fake_clock_advance(CCTX_MSEC(5));
    cctx_t *tk = cctx_with_timeout(t, CCTX_SEC(1), NULL);
    cctx_cause_t tc, tkc;
    CHECK_EQ(cctx_cause(t, &tc), ETIMEDOUT);
    CHECK_EQ(cctx_cause(tk, &tkc), ETIMEDOUT);
    check_causes_equal(&tkc, &tc);

    cctx_release(tk);
    cctx_release(t);
    cctx_release(wc);
    cctx_release(gk);
    for (int i = 4; i >= 0; i--)
        cctx_release(kids[i]);
    cctx_release(p);
    cctx_fake_clock_stop();
}

/* ---- wait on a context whose parent is already done -------------------- */

TEST(trap_wait_on_context_whose_parent_is_done_returns_at_once)
{
    cctx_cancel_t *pc;
    cctx_t *p = cctx_with_cancel(cctx_background(), &pc);
    cctx_t *before = cctx_with_timeout(p, CCTX_SEC(3600), NULL); /* derived before */
    cctx_t *vbefore = cctx_with_value(before, &key_a, NULL, NULL);
    cctx_cancel(pc);
    cctx_t *after = cctx_with_cancel(p, NULL); /* derived after */

    int64_t t0 = cctx_now();
    CHECK_EQ(cctx_wait(before, -1), ECANCELED);
    CHECK_EQ(cctx_wait(vbefore, -1), ECANCELED);
    CHECK_EQ(cctx_wait(after, -1), ECANCELED);
    CHECK_EQ(cctx_wait(after, CCTX_SEC(30)), ECANCELED);
    CHECK_EQ(cctx_sleep(after, CCTX_SEC(30)), ECANCELED);
    cctx_t *arr[2] = {cctx_background(), after};
    CHECK_EQ(cctx_wait_any(arr, 2, -1), 1);
    CHECK(cctx_now() - t0 < CCTX_SEC(5));

    cctx_release(after);
    cctx_release(vbefore);
    cctx_release(before);
    cctx_release(p);
}

/* The same with deadlines so close that the timer may fire while the child
 * is being made: the child must still be born with the parent's cause, and
 * the cause record the timer made (if any) must not leak. */
TEST(trap_short_timeout_child_of_canceled_parent_takes_parent_cause)
{
    int rounds = TEST_UNDER_TSAN ? 3000 : 20000;
    cctx_cancel_t *pc;
    cctx_t *p = cctx_with_cancel(cctx_background(), &pc);
    cctx_cancel_cause(pc, 17, "gone");
    cctx_cause_t pcause;
    CHECK_EQ(cctx_cause(p, &pcause), ECANCELED);
    cctx__test_count_allocs(true);
    long live0 = cctx__test_live_allocs();
    for (int i = 0; i < rounds; i++) {
        cctx_t *c = cctx_with_timeout(p, CCTX_NSEC(i % 20 * 500), NULL);
        CHECK(c != NULL);
        CHECK_EQ(cctx_err(c), ECANCELED);
        cctx_cause_t cause;
        CHECK_EQ(cctx_cause(c, &cause), ECANCELED);
        check_causes_equal(&cause, &pcause);
        cctx_release(c);
    }
    /* A timer thread may still hold a context it was firing: let it settle. */
    int64_t until = cctx_now() + CCTX_SEC(5);
    while (cctx__test_live_allocs() != live0 && cctx_now() < until)
        usleep(1000);
    CHECK_EQ(cctx__test_live_allocs(), live0);
    cctx__test_count_allocs(false);
    cctx_release(p);
}

/* Releasing the last reference just as the real deadline fires: the timer
 * thread must never touch the freed context, and the after-function runs at
 * most once; cctx_after_stop's answer says which (the timer thread may hold a
 * reference of its own while it fires, so stop can still win the race). */
TEST(trap_release_racing_real_deadline_after_func_once)
{
    int rounds = TEST_UNDER_TSAN ? 3000 : 20000;
    int fired_first = 0, stopped = 0;
    for (int i = 0; i < rounds; i++) {
        cctx_t *c = cctx_with_timeout(cctx_background(), CCTX_NSEC(i % 16 * 1000), NULL);
        CHECK(c != NULL);
        atomic_int runs = 0;
        cctx_after_t reg;
        CHECK_EQ(cctx_after_func(c, &reg, count_fn, &runs), 0);
        fired_first += cctx_err(c) != 0;
        cctx_release(c);
        bool s = cctx_after_stop(&reg); /* false: it ran or runs, and stop waited */
        stopped += s;
        CHECK_EQ(atomic_load(&runs), s ? 0 : 1);
    }
    printf("%d rounds: the deadline was seen first in %d, stop won %d\n", rounds, fired_first,
           stopped);
}
