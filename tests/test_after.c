/* SPDX-License-Identifier: MIT */
/*
 * Section 6: after-functions. fn runs exactly once after the context is done,
 * on the thread that ended it, outside the library's locks; cctx_after_stop
 * stops it (true) or reports that it ran (false), waiting for a running fn;
 * registration allocates nothing.
 */
#define _GNU_SOURCE
#include <cctx.h>

#include <errno.h>
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

/* The after-functions here are rec_fn (support.h), registered with a
 * cctx_after_t of each test's own; with rec.ctx set, fn reads its error. */
static int runs(struct rec *r)
{
    return atomic_load_explicit(&r->runs, memory_order_acquire);
}

struct canceller {
    cctx_cancel_t *cancel;
    pthread_t self;
};

static void *cancel_main(void *arg)
{
    struct canceller *c = arg;
    c->self = pthread_self();
    cctx_cancel(c->cancel);
    return NULL;
}

/* Cancels on a new thread; returns that thread's id. */
static pthread_t cancel_on_thread(cctx_cancel_t *cancel)
{
    struct canceller c = {.cancel = cancel};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, cancel_main, &c), 0);
    CHECK_EQ(pthread_join(t, NULL), 0);
    return c.self;
}

TEST(after_func_runs_once_on_cancelling_thread)
{
    cctx_cancel_t *cc;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cc);
    struct rec r = {.ctx = c};
    cctx_after_t reg;
    CHECK_EQ(cctx_after_func(c, &reg, rec_fn, &r), 0);
    CHECK_EQ(runs(&r), 0); /* not before the context is done */

    pthread_t canceller = cancel_on_thread(cc);
    CHECK_EQ(runs(&r), 1);
    CHECK(pthread_equal(r.thread, canceller));
    CHECK(!pthread_equal(r.thread, pthread_self()));
    CHECK_EQ(r.err, ECANCELED); /* the context is done when fn runs */

    cctx_cancel(cc); /* later cancels run nothing again */
    cancel_on_thread(cc);
    CHECK_EQ(runs(&r), 1);
    CHECK(!cctx_after_stop(&reg));
    cctx_release(c);
    CHECK_EQ(runs(&r), 1);
}

TEST(after_func_on_done_context_runs_before_returning)
{
    cctx_cancel_t *cc;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cc);
    cctx_t *child = cctx_with_value(c, &key_a, NULL, NULL);
    cancel_on_thread(cc);

    struct rec r = {.ctx = c};
    cctx_after_t reg;
    CHECK_EQ(cctx_after_func(c, &reg, rec_fn, &r), 0);
    CHECK_EQ(runs(&r), 1);
    CHECK(pthread_equal(r.thread, pthread_self()));
    CHECK_EQ(r.err, ECANCELED);
    CHECK(!cctx_after_stop(&reg));

    /* On a value context of a done context, and on one born timed out. */
    struct rec r2 = {0}, r3 = {0};
    cctx_after_t reg2, reg3;
    cctx_t *t = cctx_with_timeout(cctx_background(), -1, NULL);
    CHECK_EQ(cctx_after_func(child, &reg2, rec_fn, &r2), 0);
    CHECK_EQ(cctx_after_func(t, &reg3, rec_fn, &r3), 0);
    CHECK_EQ(runs(&r2), 1);
    CHECK_EQ(runs(&r3), 1);
    CHECK(pthread_equal(r3.thread, pthread_self()));
    CHECK(!cctx_after_stop(&reg2));
    CHECK(!cctx_after_stop(&reg3));

    cctx_release(t);
    cctx_release(child);
    cctx_release(c);
}

TEST(after_stop_before_done_prevents_run)
{
    cctx_cancel_t *cc;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cc);
    struct rec r = {0}, r2 = {0};
    cctx_after_t reg, other;
    CHECK_EQ(cctx_after_func(c, &reg, rec_fn, &r), 0);
    CHECK_EQ(cctx_after_func(c, &other, rec_fn, &r2), 0);
    CHECK(cctx_after_stop(&reg));
    CHECK(!cctx_after_stop(&reg)); /* a second stop returns false */
    cctx_cancel(cc);
    CHECK_EQ(runs(&r), 0);
    CHECK_EQ(runs(&r2), 1); /* stopping one leaves the others */
    CHECK(!cctx_after_stop(&reg));
    CHECK(!cctx_after_stop(&other));

    /* The storage can be reused for a new registration. */
    cctx_cancel_t *dc;
    cctx_t *d = cctx_with_cancel(cctx_background(), &dc);
    CHECK_EQ(cctx_after_func(d, &reg, rec_fn, &r), 0);
    CHECK_EQ(runs(&r), 0);
    cctx_cancel(dc);
    CHECK_EQ(runs(&r), 1);
    CHECK(!cctx_after_stop(&reg));

    cctx_release(d);
    cctx_release(c);
}

TEST(after_stop_after_run_returns_false_twice)
{
    cctx_cancel_t *cc;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cc);
    struct rec r = {0};
    cctx_after_t reg;
    CHECK_EQ(cctx_after_func(c, &reg, rec_fn, &r), 0);
    cctx_cancel(cc);
    CHECK_EQ(runs(&r), 1);
    CHECK(!cctx_after_stop(&reg));
    CHECK(!cctx_after_stop(&reg));
    CHECK_EQ(runs(&r), 1);
    cctx_release(c);
}

/* ---- stop while fn runs ------------------------------------------------- */

struct blocking {
    atomic_int entered, may_finish, finished;
    atomic_int stop_returned, stopper_tid;
    int stop_result;
    int finished_seen_by_stopper;
    cctx_after_t reg;
};

static void blocking_fn(void *arg)
{
    struct blocking *b = arg;
    atomic_store(&b->entered, 1);
    while (!atomic_load(&b->may_finish))
        usleep(100);
    atomic_store(&b->finished, 1);
}

static void *stopper_main(void *arg)
{
    struct blocking *b = arg;
    atomic_store(&b->stopper_tid, thread_id());
    b->stop_result = cctx_after_stop(&b->reg);
    b->finished_seen_by_stopper = atomic_load(&b->finished);
    atomic_store(&b->stop_returned, 1);
    return NULL;
}

TEST(after_stop_waits_for_running_fn)
{
    cctx_cancel_t *cc;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cc);
    struct blocking b = {0};
    CHECK_EQ(cctx_after_func(c, &b.reg, blocking_fn, &b), 0);

    struct canceller cn = {.cancel = cc};
    pthread_t ct, st;
    CHECK_EQ(pthread_create(&ct, NULL, cancel_main, &cn), 0);
    while (!atomic_load(&b.entered))
        sched_yield();
    CHECK_EQ(pthread_create(&st, NULL, stopper_main, &b), 0);
    while (!atomic_load(&b.stopper_tid))
        sched_yield();
    wait_until_blocked(atomic_load(&b.stopper_tid)); /* asleep in the stop */
    CHECK_EQ(atomic_load(&b.stop_returned), 0); /* still held by the running fn */
    atomic_store(&b.may_finish, 1);
    CHECK_EQ(pthread_join(st, NULL), 0);
    CHECK_EQ(pthread_join(ct, NULL), 0);
    CHECK_EQ(b.stop_result, false);
    CHECK_EQ(b.finished_seen_by_stopper, 1); /* stop returned only after fn did */
    cctx_release(c);
}

/* ---- fn stops, frees and reuses its own registration ------------------- */

struct self_stop {
    cctx_after_t *reg; /* heap: fn frees it */
    int stop_result;
    atomic_int runs;
    cctx_t *next;        /* fn re-registers a second reg here */
    cctx_after_t *reuse; /* heap */
    struct rec next_rec;
};

static void self_stop_fn(void *arg)
{
    struct self_stop *s = arg;
    s->stop_result = cctx_after_stop(s->reg); /* from inside fn: no wait, false */
    free(s->reg);                             /* reg may be freed after stop returns */
    s->reg = NULL;
    atomic_fetch_add(&s->runs, 1);
}

static void self_reuse_fn(void *arg)
{
    struct self_stop *s = arg;
    s->stop_result = cctx_after_stop(s->reuse);
    /* ...and reused for a new registration. */
    CHECK_EQ(cctx_after_func(s->next, s->reuse, rec_fn, &s->next_rec), 0);
    atomic_fetch_add(&s->runs, 1);
}

TEST(after_stop_inside_fn_returns_false_and_reg_may_be_freed_or_reused)
{
    cctx_cancel_t *cc, *nc;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cc);
    struct self_stop s = {.stop_result = -1};
    s.reg = calloc(1, sizeof *s.reg);
    CHECK(s.reg != NULL);
    CHECK_EQ(cctx_after_func(c, s.reg, self_stop_fn, &s), 0);
    cancel_on_thread(cc); /* a deadlock here hangs the test */
    CHECK_EQ(atomic_load(&s.runs), 1);
    CHECK_EQ(s.stop_result, false);
    CHECK(s.reg == NULL);
    cctx_release(c);

    /* Reuse: fn registers the same storage again on another context. */
    c = cctx_with_cancel(cctx_background(), &cc);
    struct self_stop u = {.stop_result = -1};
    u.next = cctx_with_cancel(cctx_background(), &nc);
    u.reuse = calloc(1, sizeof *u.reuse);
    CHECK_EQ(cctx_after_func(c, u.reuse, self_reuse_fn, &u), 0);
    cctx_cancel(cc);
    CHECK_EQ(atomic_load(&u.runs), 1);
    CHECK_EQ(u.stop_result, false);
    CHECK_EQ(runs(&u.next_rec), 0);
    cctx_cancel(nc);
    CHECK_EQ(runs(&u.next_rec), 1);
    CHECK(!cctx_after_stop(u.reuse));
    free(u.reuse);
    cctx_release(u.next);
    cctx_release(c);
}

/* ---- fn may call any cctx function -------------------------------------- */

struct busy {
    cctx_t *self;          /* the only reference: fn releases it */
    cctx_cancel_t *other;  /* fn cancels this one */
    cctx_t *other_ctx;
    struct rec other_rec;  /* after-function of `other`, runs nested */
    struct rec nested_rec; /* registered from fn on the done context */
    cctx_after_t nested_reg;
    int child_err, wait_err, cause_err, fd_ok, name_ok;
    bool cause_msg_ok; /* checked in fn: the string lives as long as the context */
    atomic_int done;
};

static void busy_fn(void *arg)
{
    struct busy *b = arg;
    cctx_t *child = cctx_with_cancel(b->self, NULL);
    b->child_err = child ? cctx_err(child) : -1;
    cctx_release(child);
    b->wait_err = cctx_wait(b->self, -1);
    cctx_cause_t cause;
    b->cause_err = cctx_cause(b->self, &cause);
    b->cause_msg_ok = cause.msg && strcmp(cause.msg, "outer") == 0 && cause.code == 5;
    b->fd_ok = cctx_done_fd(b->self) >= 0;
    b->name_ok = cctx_set_name(b->self, "busy") == 0 && cctx_name(b->self) &&
                 strcmp(cctx_name(b->self), "busy") == 0;
    CHECK_EQ(cctx_after_func(b->self, &b->nested_reg, rec_fn, &b->nested_rec), 0);
    cctx_cancel_cause(b->other, 77, "from an after-function");
    cctx_release(b->self);
    atomic_store(&b->done, 1);
}

TEST(after_fn_may_call_any_cctx_function_and_release_its_context)
{
    cctx_cancel_t *cc;
    struct busy b = {0};
    b.self = cctx_with_cancel(cctx_background(), &cc);
    b.other_ctx = cctx_with_cancel(cctx_background(), &b.other);
    cctx_after_t reg, oreg;
    CHECK_EQ(cctx_after_func(b.self, &reg, busy_fn, &b), 0);
    CHECK_EQ(cctx_after_func(b.other_ctx, &oreg, rec_fn, &b.other_rec), 0);

    /* The reference is handed to fn: the cancel call must keep the context
     * alive while fn releases it. */
    cctx_cancel_cause(cc, 5, "outer");
    CHECK_EQ(atomic_load(&b.done), 1);
    CHECK_EQ(b.child_err, ECANCELED);
    CHECK_EQ(b.wait_err, ECANCELED);
    CHECK_EQ(b.cause_err, ECANCELED);
    CHECK(b.cause_msg_ok);
    CHECK(b.fd_ok);
    CHECK(b.name_ok);
    CHECK_EQ(runs(&b.nested_rec), 1);
    CHECK(pthread_equal(b.nested_rec.thread, pthread_self()));
    CHECK_EQ(runs(&b.other_rec), 1);
    CHECK(pthread_equal(b.other_rec.thread, pthread_self()));
    cctx_cause_t oc;
    CHECK_EQ(cctx_cause(b.other_ctx, &oc), ECANCELED);
    CHECK_EQ(oc.code, 77);
    CHECK(!cctx_after_stop(&reg)); /* after the context was freed */
    CHECK(!cctx_after_stop(&oreg));
    cctx_release(b.other_ctx);
}

static void release_fn(void *arg)
{
    cctx_release((cctx_t *)arg);
}

TEST(after_fn_may_release_context_canceled_by_its_parent)
{
    cctx_cancel_t *pc;
    cctx_t *p = cctx_with_cancel(cctx_background(), &pc);
    enum { N = 50 };
    cctx_after_t regs[N];
    for (int i = 0; i < N; i++) {
        cctx_t *c = i % 2 ? cctx_with_cancel(p, NULL)
                          : cctx_with_timeout(p, CCTX_SEC(3600), NULL);
        CHECK(c != NULL);
        CHECK_EQ(cctx_after_func(c, &regs[i], release_fn, c), 0);
    }
    cctx_cancel(pc); /* each fn drops the last reference to its context */
    for (int i = 0; i < N; i++)
        CHECK(!cctx_after_stop(&regs[i]));
    cctx_release(p); /* LeakSanitizer checks that every child was freed */
}

/* ---- registrations that outlive the context ---------------------------- */

TEST(after_stop_after_context_released)
{
    /* A cancelable context: releasing the last reference cancels it, so fn
     * runs on the releasing thread, and stop afterwards says so. */
    cctx_t *c = cctx_with_cancel(cctx_background(), NULL);
    struct rec r = {0};
    cctx_after_t reg;
    CHECK_EQ(cctx_after_func(c, &reg, rec_fn, &r), 0);
    cctx_release(c);
    CHECK_EQ(runs(&r), 1);
    CHECK(pthread_equal(r.thread, pthread_self()));
    CHECK(!cctx_after_stop(&reg));

    /* A value context whose cancelable ancestor lives on: fn has not run, and
     * can still be stopped after the value context is gone. */
    cctx_cancel_t *pc;
    cctx_t *p = cctx_with_cancel(cctx_background(), &pc);
    cctx_t *v = cctx_with_value(p, &key_a, NULL, NULL);
    struct rec rv = {0};
    cctx_after_t regv;
    CHECK_EQ(cctx_after_func(v, &regv, rec_fn, &rv), 0);
    cctx_release(v);
    CHECK(cctx_after_stop(&regv));
    cctx_cancel(pc);
    CHECK_EQ(runs(&rv), 0);
    cctx_release(p);

    /* A context that can never end. */
    cctx_t *w = cctx_without_cancel(cctx_background());
    struct rec rw = {0};
    cctx_after_t regw;
    CHECK_EQ(cctx_after_func(w, &regw, rec_fn, &rw), 0);
    cctx_release(w);
    CHECK(cctx_after_stop(&regw));
    CHECK_EQ(runs(&rw), 0);
}

TEST(after_func_runs_when_last_reference_released)
{
    cctx_cancel_t *pc;
    cctx_t *p = cctx_with_cancel(cctx_background(), &pc);
    cctx_t *c = cctx_with_timeout(p, CCTX_SEC(3600), NULL);
    cctx_t *v = cctx_with_value(c, &key_a, NULL, NULL);
    struct rec r = {0}, rp = {0};
    cctx_after_t reg, regp;
    CHECK_EQ(cctx_after_func(v, &reg, rec_fn, &r), 0);
    CHECK_EQ(cctx_after_func(p, &regp, rec_fn, &rp), 0);
    cctx_release(v);
    CHECK_EQ(runs(&r), 0); /* c is still held */
    cctx_release(c);
    CHECK_EQ(runs(&r), 1);
    CHECK(pthread_equal(r.thread, pthread_self()));
    CHECK_EQ(runs(&rp), 0); /* the parent is not touched */
    CHECK_EQ(cctx_err(p), 0);
    CHECK(!cctx_after_stop(&reg));
    CHECK(cctx_after_stop(&regp));
    cctx_release(p);
    CHECK_EQ(runs(&rp), 0);
}

/* ---- no allocation ------------------------------------------------------ */

TEST(after_func_registration_allocates_nothing)
{
    enum { N = 100 };
    cctx_cancel_t *cc, *dc;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cc);
    cctx_t *v = cctx_with_value(c, &key_a, NULL, NULL);
    cctx_t *t = cctx_with_timeout(c, CCTX_SEC(3600), NULL);
    cctx_t *d = cctx_with_cancel(cctx_background(), &dc);
    cctx_cancel(dc);
    static cctx_after_t regs[N];
    static struct rec recs[N];

    cctx__test_count_allocs(true);
    long base = cctx__test_live_allocs();
    for (int i = 0; i < N; i++) {
        cctx_t *on = i % 3 == 0 ? c : i % 3 == 1 ? v : t;
        CHECK_EQ(cctx_after_func(on, &regs[i], rec_fn, &recs[i]), 0);
    }
    CHECK_EQ(cctx__test_live_allocs(), base);

    /* Even with every allocation failing, registering works. */
    cctx_after_t fr1, fr2, fr3;
    struct rec f1 = {0}, f2 = {0}, f3 = {0};
    cctx__test_fail_alloc(1);
    CHECK_EQ(cctx_after_func(c, &fr1, rec_fn, &f1), 0);
    CHECK_EQ(cctx_after_func(d, &fr2, rec_fn, &f2), 0); /* already done: runs now */
    CHECK_EQ(cctx_after_func(cctx_background(), &fr3, rec_fn, &f3), 0);
    CHECK(cctx_after_stop(&fr3));
    cctx__test_fail_alloc(0);
    CHECK_EQ(runs(&f2), 1);
    CHECK_EQ(cctx__test_live_allocs(), base);

    for (int i = 0; i < N; i += 2)
        CHECK(cctx_after_stop(&regs[i]));
    CHECK_EQ(cctx__test_live_allocs(), base);
    cctx__test_count_allocs(false);

    cctx_cancel(cc);
    for (int i = 0; i < N; i++)
        CHECK_EQ(runs(&recs[i]), i % 2);
    CHECK_EQ(runs(&f1), 1);
    for (int i = 0; i < N; i++)
        CHECK(!cctx_after_stop(&regs[i]));
    CHECK(!cctx_after_stop(&fr1));
    CHECK(!cctx_after_stop(&fr2));
    cctx_release(d);
    cctx_release(t);
    cctx_release(v);
    cctx_release(c);
}

/* ---- where fn is registered -------------------------------------------- */

TEST(after_func_on_value_context_follows_cancelable_ancestor)
{
    cctx_cancel_t *pc;
    cctx_t *p = cctx_with_cancel(cctx_background(), &pc);
    cctx_t *v1 = cctx_with_value(p, &key_a, (void *)1, NULL);
    cctx_t *v2 = cctx_with_value(v1, &key_a, (void *)2, NULL);
    struct rec r = {.ctx = v2};
    cctx_after_t reg;
    CHECK_EQ(cctx_after_func(v2, &reg, rec_fn, &r), 0);
    CHECK_EQ(runs(&r), 0);
    pthread_t canceller = cancel_on_thread(pc);
    CHECK_EQ(runs(&r), 1);
    CHECK(pthread_equal(r.thread, canceller));
    CHECK_EQ(r.err, ECANCELED);
    CHECK(!cctx_after_stop(&reg));
    cctx_release(v2);
    cctx_release(v1);
    cctx_release(p);
}

TEST(after_func_on_never_ending_context_never_runs)
{
    cctx_cancel_t *pc;
    cctx_t *p = cctx_with_cancel(cctx_background(), &pc);
    cctx_t *w = cctx_without_cancel(p);
    cctx_t *vw = cctx_with_value(w, &key_a, NULL, NULL);
    cctx_t *on[4] = {cctx_background(), cctx_todo(), w, vw};
    struct rec r[4] = {0};
    cctx_after_t reg[4];
    for (int i = 0; i < 4; i++)
        CHECK_EQ(cctx_after_func(on[i], &reg[i], rec_fn, &r[i]), 0);
    cctx_cancel(pc); /* ends p, not what was derived without cancel */
    for (int i = 0; i < 4; i++)
        CHECK_EQ(runs(&r[i]), 0);
    for (int i = 0; i < 4; i++) {
        CHECK(cctx_after_stop(&reg[i]));
        CHECK(!cctx_after_stop(&reg[i]));
    }
    cctx_release(vw);
    cctx_release(w);
    cctx_release(p);
}

TEST(after_funcs_of_descendants_run_before_cancel_returns)
{
    enum { N = 200 };
    cctx_cancel_t *pc;
    cctx_t *p = cctx_with_cancel(cctx_background(), &pc);
    static cctx_t *ctxs[N];
    static struct rec recs[N];
    static cctx_after_t regs[N];
    for (int i = 0; i < N; i++) {
        cctx_t *parent = i == 0 ? p : ctxs[(i - 1) / 2]; /* a binary tree */
        switch (i % 3) {
        case 0: ctxs[i] = cctx_with_cancel(parent, NULL); break;
        case 1: ctxs[i] = cctx_with_value(parent, &key_a, NULL, NULL); break;
        default: ctxs[i] = cctx_with_timeout(parent, CCTX_SEC(3600), NULL);
        }
        CHECK(ctxs[i] != NULL);
        recs[i].ctx = ctxs[i];
        CHECK_EQ(cctx_after_func(ctxs[i], &regs[i], rec_fn, &recs[i]), 0);
    }
    cctx_cancel(pc);
    for (int i = 0; i < N; i++) {
        CHECK_EQ(runs(&recs[i]), 1);
        CHECK(pthread_equal(recs[i].thread, pthread_self()));
        CHECK_EQ(recs[i].err, ECANCELED); /* marked before any fn runs */
    }
    for (int i = N - 1; i >= 0; i--) {
        CHECK(!cctx_after_stop(&regs[i]));
        cctx_release(ctxs[i]);
    }
    cctx_release(p);
}

TEST(after_func_on_deadline_runs_on_timer_thread)
{
    /* If the deadline passed before the registration, fn rightly runs at once
     * on this thread (a slow, sanitized start of the timer thread can take
     * that long): then retry with a longer timeout. */
    cctx_t *c;
    struct rec r;
    cctx_after_t reg;
    for (int64_t timeout = CCTX_MSEC(10);; timeout *= 2) {
        CHECK(timeout <= CCTX_SEC(10));
        c = cctx_with_timeout(cctx_background(), timeout, NULL);
        r = (struct rec){.ctx = c};
        CHECK_EQ(cctx_after_func(c, &reg, rec_fn, &r), 0);
        if (runs(&r) == 0 || !pthread_equal(r.thread, pthread_self()))
            break;
        CHECK(!cctx_after_stop(&reg));
        cctx_release(c);
    }
    CHECK_EQ(cctx_wait(c, CCTX_SEC(10)), ETIMEDOUT);
    /* fn runs after the marking, so it may still be on its way. */
    int64_t until = cctx_now() + CCTX_SEC(5);
    while (runs(&r) == 0 && cctx_now() < until)
        usleep(200);
    CHECK_EQ(runs(&r), 1);
    CHECK(!pthread_equal(r.thread, pthread_self()));
    CHECK_EQ(r.err, ETIMEDOUT);
    CHECK(!cctx_after_stop(&reg));
    CHECK_EQ(runs(&r), 1);
    cctx_release(c);
}

/* An fn that reads its context holds a reference of its own: the owner may
 * let go before or while a runner runs fn (here: after the deadline, while
 * fn waits for that), and fn's reads stay valid. Under ASan, fn without its
 * reference reads a freed context. */
struct owned {
    cctx_t *ctx; /* fn's own reference */
    pthread_t registrar;
    atomic_bool owner_let_go, done;
    int err;
};

static void owned_fn(void *arg)
{
    struct owned *o = arg;
    /* fn may run at once on the registering thread, if the deadline passed
     * first; the owner has not let go there yet. */
    if (!pthread_equal(pthread_self(), o->registrar))
        while (!atomic_load_explicit(&o->owner_let_go, memory_order_acquire))
            usleep(100);
    o->err = cctx_err(o->ctx);
    cctx_release(o->ctx);
    atomic_store_explicit(&o->done, true, memory_order_release);
}

TEST(after_func_holding_its_own_reference_reads_ctx_after_the_owner_let_go)
{
    cctx_t *c = cctx_with_timeout(cctx_background(), CCTX_MSEC(20), NULL);
    struct owned o = {.ctx = cctx_ref(c), .registrar = pthread_self()};
    cctx_after_t reg;
    CHECK_EQ(cctx_after_func(c, &reg, owned_fn, &o), 0);
    CHECK_EQ(cctx_wait(c, CCTX_SEC(10)), ETIMEDOUT);
    cctx_release(c); /* the owner's reference: fn's is the last */
    atomic_store_explicit(&o.owner_let_go, true, memory_order_release);
    int64_t until = cctx_now() + CCTX_SEC(10);
    while (!atomic_load_explicit(&o.done, memory_order_acquire) && cctx_now() < until)
        usleep(200);
    CHECK(atomic_load_explicit(&o.done, memory_order_acquire));
    CHECK_EQ(o.err, ETIMEDOUT);
    CHECK(!cctx_after_stop(&reg));
}

TEST(after_func_many_registrations_each_run_once)
{
    enum { N = 2000 };
    cctx_cancel_t *cc;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cc);
    static cctx_after_t regs[N];
    static struct rec recs[N];
    for (int i = 0; i < N; i++)
        CHECK_EQ(cctx_after_func(c, &regs[i], rec_fn, &recs[i]), 0);
    for (int i = 0; i < N; i += 3)
        CHECK(cctx_after_stop(&regs[i]));
    cancel_on_thread(cc);
    for (int i = 0; i < N; i++) {
        CHECK_EQ(runs(&recs[i]), i % 3 == 0 ? 0 : 1);
        CHECK(!cctx_after_stop(&regs[i]));
    }
    cctx_release(c);
}

TEST(after_func_null_arguments_are_einval)
{
    cctx_t *c = cctx_with_cancel(cctx_background(), NULL);
    cctx_after_t reg;
    struct rec r = {0};
    CHECK_EQ(cctx_after_func(NULL, &reg, rec_fn, &r), EINVAL);
    CHECK_EQ(cctx_after_func(c, NULL, rec_fn, &r), EINVAL);
    CHECK_EQ(cctx_after_func(c, &reg, NULL, &r), EINVAL);
    cctx_release(c);
    CHECK_EQ(runs(&r), 0);
}
