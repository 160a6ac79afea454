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
#include "testhooks.h"

static const char key_a;

static void check_same_cause(const cctx_cause_t *a, const cctx_cause_t *b)
{
    CHECK_EQ(a->err, b->err);
    CHECK_EQ(a->code, b->code);
    CHECK_STR(a->msg, b->msg);
    CHECK_STR(a->file, b->file);
    CHECK_EQ(a->line, b->line);
    CHECK_STR(a->func, b->func);
    CHECK_EQ(a->when, b->when);
}

/* ---- parent cancel while a child waits --------------------------------- */

struct waiter {
    cctx_t *ctx;
    atomic_int ready;
    int result;
};

static void *wait_main(void *arg)
{
    struct waiter *w = arg;
    atomic_store(&w->ready, 1);
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
    usleep(2000);
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
    check_same_cause(&ccause, &pcause);
    check_same_cause(&gcause, &pcause);

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
    check_same_cause(&ic1, &oc);
    check_same_cause(&ic2, &oc); /* the inner's own cause never fired */

    /* One cause: the inner deadlines passing later, or a cancel, change nothing. */
    cctx_fake_clock_advance(CCTX_SEC(10));
    cctx_cancel_cause(ic, 1, "too late");
    CHECK_EQ(cctx_cause(inner, &ic1), ETIMEDOUT);
    check_same_cause(&ic1, &oc);

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
    check_same_cause(&c2, &c); /* still its own, first cause */
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
    check_same_cause(&now, &first);
    CHECK_EQ(now.code, 1);
    CHECK_STR(now.msg, "first");
    CHECK_EQ(now.line, line);
    CHECK_EQ(cctx_cause(child, &ch), ECANCELED);
    check_same_cause(&ch, &first);
    cctx_release(child);
    cctx_release(c);
}

enum { CANCELLERS = 8 };

struct race {
    pthread_barrier_t start;
    cctx_cancel_t *cancel;
    cctx_t *leaf; /* a descendant: non-zero error once any cancel returns */
    pthread_t ids[CANCELLERS];
    int leaf_err_after[CANCELLERS];
    atomic_int fn_runs;
    pthread_t fn_thread;
};

struct racer {
    struct race *race;
    int index;
};

static void race_fn(void *arg)
{
    struct race *r = arg;
    r->fn_thread = pthread_self();
    atomic_fetch_add(&r->fn_runs, 1);
}

static const char *const race_msgs[CANCELLERS] = {"c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7"};

static void *racer_main(void *arg)
{
    struct racer *rc = arg;
    struct race *r = rc->race;
    r->ids[rc->index] = pthread_self();
    pthread_barrier_wait(&r->start);
    cctx_cancel_cause(r->cancel, rc->index + 1, race_msgs[rc->index]);
    r->leaf_err_after[rc->index] = cctx_err(r->leaf);
    return NULL;
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
        cctx_after_t reg;
        CHECK_EQ(cctx_after_func(c, &reg, race_fn, &r), 0);
        CHECK_EQ(pthread_barrier_init(&r.start, NULL, CANCELLERS), 0);
        struct racer rc[CANCELLERS];
        pthread_t t[CANCELLERS];
        for (int i = 0; i < CANCELLERS; i++) {
            rc[i] = (struct racer){&r, i};
            CHECK_EQ(pthread_create(&t[i], NULL, racer_main, &rc[i]), 0);
        }
        for (int i = 0; i < CANCELLERS; i++)
            CHECK_EQ(pthread_join(t[i], NULL), 0);
        pthread_barrier_destroy(&r.start);

        cctx_cause_t cause, leaf;
        CHECK_EQ(cctx_cause(c, &cause), ECANCELED);
        CHECK(cause.code >= 1 && cause.code <= CANCELLERS);
        CHECK_STR(cause.msg, race_msgs[cause.code - 1]);
        CHECK_EQ(cctx_cause(r.leaf, &leaf), ECANCELED);
        check_same_cause(&leaf, &cause);
        for (int i = 0; i < 64; i++) {
            cctx_cause_t x;
            CHECK_EQ(cctx_cause(chain[i], &x), ECANCELED);
            CHECK_EQ(x.code, cause.code);
        }
        for (int i = 0; i < CANCELLERS; i++)
            CHECK_EQ(r.leaf_err_after[i], ECANCELED); /* every cancel returned after marking */
        CHECK_EQ(atomic_load(&r.fn_runs), 1);
        /* fn ran on the thread whose cancellation won. */
        CHECK(pthread_equal(r.fn_thread, r.ids[cause.code - 1]));
        CHECK(!cctx_after_stop(&reg));
        for (int i = 63; i >= 0; i--)
            cctx_release(chain[i]);
        cctx_release(c);
    }
}

/* ---- cancel racing the deadline ----------------------------------------- */

struct deadline_race {
    pthread_barrier_t go, done;
    cctx_cancel_t *cancel;
    atomic_int stop;
};

static void *advancer_main(void *arg)
{
    struct deadline_race *d = arg;
    for (;;) {
        pthread_barrier_wait(&d->go);
        if (atomic_load(&d->stop))
            return NULL;
        cctx_fake_clock_advance(CCTX_MSEC(1));
        pthread_barrier_wait(&d->done);
    }
}

static void *deadline_canceller_main(void *arg)
{
    struct deadline_race *d = arg;
    for (;;) {
        pthread_barrier_wait(&d->go);
        if (atomic_load(&d->stop))
            return NULL;
        cctx_cancel_cause(d->cancel, 200, "canceled");
        pthread_barrier_wait(&d->done);
    }
}

static void count_fn(void *arg)
{
    atomic_fetch_add((atomic_int *)arg, 1);
}

TEST(trap_cancel_racing_deadline_exactly_one_wins)
{
    int rounds = TEST_UNDER_TSAN ? 300 : 3000;
    cctx_fake_clock_start(0);
    struct deadline_race d = {0};
    CHECK_EQ(pthread_barrier_init(&d.go, NULL, 3), 0);
    CHECK_EQ(pthread_barrier_init(&d.done, NULL, 3), 0);
    pthread_t adv, can;
    CHECK_EQ(pthread_create(&adv, NULL, advancer_main, &d), 0);
    CHECK_EQ(pthread_create(&can, NULL, deadline_canceller_main, &d), 0);
    int timed_out = 0, canceled = 0;
    for (int round = 0; round < rounds; round++) {
        cctx_t *c = cctx_with_timeout_cause(cctx_background(), CCTX_MSEC(1), 100, "deadline",
                                            &d.cancel);
        cctx_t *child = cctx_with_cancel(c, NULL);
        CHECK(c && child);
        atomic_int runs = 0, child_runs = 0;
        cctx_after_t reg, creg;
        CHECK_EQ(cctx_after_func(c, &reg, count_fn, &runs), 0);
        CHECK_EQ(cctx_after_func(child, &creg, count_fn, &child_runs), 0);
        pthread_barrier_wait(&d.go);
        pthread_barrier_wait(&d.done);

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
        check_same_cause(&ccause, &cause);
        CHECK_EQ(atomic_load(&runs), 1);
        CHECK_EQ(atomic_load(&child_runs), 1);
        CHECK(!cctx_after_stop(&reg));
        CHECK(!cctx_after_stop(&creg));
        cctx_release(child);
        cctx_release(c);
    }
    atomic_store(&d.stop, 1);
    pthread_barrier_wait(&d.go);
    CHECK_EQ(pthread_join(adv, NULL), 0);
    CHECK_EQ(pthread_join(can, NULL), 0);
    pthread_barrier_destroy(&d.go);
    pthread_barrier_destroy(&d.done);
    cctx_fake_clock_stop();
    printf("%d rounds: deadline won %d, cancel won %d\n", rounds, timed_out, canceled);
    CHECK_EQ(timed_out + canceled, rounds);
}

/* ---- release racing cancel ---------------------------------------------- */

struct release_race {
    pthread_barrier_t go, done;
    atomic_int stop;
    cctx_cancel_t *parent_cancel;   /* thread A cancels the parent...          */
    cctx_t *to_release[4];          /* ...while thread B drops the last refs   */
    cctx_cancel_t *same_cancel;     /* and, on one context with two refs,      */
    cctx_t *same;                   /* A cancels while B releases its ref      */
};

static void *release_side(void *arg)
{
    struct release_race *r = arg;
    for (;;) {
        pthread_barrier_wait(&r->go);
        if (atomic_load(&r->stop))
            return NULL;
        for (int i = 0; i < 4; i++)
            cctx_release(r->to_release[i]);
        cctx_release(r->same);
        pthread_barrier_wait(&r->done);
    }
}

static void *cancel_side(void *arg)
{
    struct release_race *r = arg;
    for (;;) {
        pthread_barrier_wait(&r->go);
        if (atomic_load(&r->stop))
            return NULL;
        cctx_cancel(r->same_cancel); /* this thread holds a reference on `same` */
        cctx_cancel(r->parent_cancel);
        pthread_barrier_wait(&r->done);
    }
}

TEST(trap_release_racing_cancel_no_crash_each_after_func_once)
{
    int rounds = TEST_UNDER_TSAN ? 300 : 3000;
    struct release_race r = {0};
    CHECK_EQ(pthread_barrier_init(&r.go, NULL, 3), 0);
    CHECK_EQ(pthread_barrier_init(&r.done, NULL, 3), 0);
    pthread_t a, b;
    CHECK_EQ(pthread_create(&a, NULL, release_side, &r), 0);
    CHECK_EQ(pthread_create(&b, NULL, cancel_side, &r), 0);
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

        pthread_barrier_wait(&r.go);
        pthread_barrier_wait(&r.done);

        CHECK_EQ(cctx_err(parent), ECANCELED);
        CHECK_EQ(cctx_err(mine), ECANCELED);
        for (int i = 0; i < 5; i++) {
            CHECK_EQ(atomic_load(&runs[i]), 1); /* by the releaser or the canceller */
            CHECK(!cctx_after_stop(&regs[i]));
        }
        cctx_release(mine);
        cctx_release(parent);
    }
    atomic_store(&r.stop, 1);
    pthread_barrier_wait(&r.go);
    CHECK_EQ(pthread_join(a, NULL), 0);
    CHECK_EQ(pthread_join(b, NULL), 0);
    pthread_barrier_destroy(&r.go);
    pthread_barrier_destroy(&r.done);
}

/* ---- after-function registered after cancel ---------------------------- */

struct at_once {
    atomic_int runs;
    pthread_t thread;
};

static void at_once_fn(void *arg)
{
    struct at_once *a = arg;
    a->thread = pthread_self();
    atomic_fetch_add(&a->runs, 1);
}

TEST(trap_after_func_registered_after_cancel_runs_at_once)
{
    cctx_cancel_t *cc;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cc);
    cctx_t *v = cctx_with_value(c, &key_a, NULL, NULL);
    cctx_cancel(cc);
    struct at_once a = {0}, b = {0};
    cctx_after_t reg, regv;
    CHECK_EQ(cctx_after_func(c, &reg, at_once_fn, &a), 0);
    CHECK_EQ(atomic_load(&a.runs), 1);
    CHECK(pthread_equal(a.thread, pthread_self()));
    CHECK_EQ(cctx_after_func(v, &regv, at_once_fn, &b), 0);
    CHECK_EQ(atomic_load(&b.runs), 1);
    CHECK(!cctx_after_stop(&reg));
    CHECK(!cctx_after_stop(&regv));
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
        check_same_cause(&c, &pcause);
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
    check_same_cause(&tkc, &tc);

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
        check_same_cause(&cause, &pcause);
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
