/* SPDX-License-Identifier: MIT */
/*
 * Sections 3 and 4 of cctx.h: cancelling (idempotent, first wins, from many
 * threads at once, never upwards or sideways) and reading the result
 * (cctx_err, cctx_cause with its call sites, messages and times, the same all
 * the way down). Reaching a million descendants deep or wide: test_scale.c.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "harness.h"
#include "support.h"
#include "testhooks.h"

/* ---- idempotence, first wins ----------------------------------------------------- */

TEST(cancel_is_idempotent_and_the_first_cancellation_wins)
{
    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cancel);
    cctx_t *child = cctx_with_cancel(c, NULL);
    struct rec r, rc;
    rec_on(&r, c);
    rec_on(&rc, child);
    const int line = __LINE__; cctx_cancel_cause(cancel, 7, "first");
    cctx_cause_t first;
    CHECK_EQ(cctx_cause(c, &first), ECANCELED);
    for (int i = 0; i < 3; i++) {
        cctx_cancel_cause(cancel, 8, "second");
        cctx_cancel(cancel);
        cctx_cancel_cause(cancel, 0, NULL);
    }
    check_cause(c, ECANCELED, 7, "first", line, __func__);
    cctx_cause_t now;
    cctx_cause(c, &now);
    CHECK_EQ(now.when, first.when);
    check_same_cause(child, c);
    CHECK_EQ(atomic_load(&r.runs), 1);
    CHECK_EQ(atomic_load(&rc.runs), 1);
    cctx_release(child);
    cctx_release(c);
}

TEST(cancel_err_stays_the_same_after_cancellation)
{
    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cancel);
    check_active(c);
    cctx_cancel(cancel);
    for (int i = 0; i < 1000; i++)
        CHECK_EQ(cctx_err(c), ECANCELED);
    /* Children made later are born done with the same cause. */
    cctx_t *late = cctx_with_cancel(c, NULL);
    check_same_cause(late, c);
    cctx_release(late);
    cctx_release(c);
}

/* ---- many threads ---------------------------------------------------------------- */

struct race {
    cctx_cancel_t *cancel;
    cctx_t *ctx, *child, *grandchild;
};

struct racer {
    struct race *race;
    int id;
    char msg[32];
};

static void race_cancel(void *arg)
{
    struct racer *me = arg;
    struct race *r = me->race;
    cctx_cancel_cause(r->cancel, me->id + 1, me->msg);
    /* When cancel returns, the context and every descendant are done,
     * whichever thread won. */
    CHECK_EQ(cctx_err(r->ctx), ECANCELED);
    CHECK_EQ(cctx_err(r->child), ECANCELED);
    CHECK_EQ(cctx_err(r->grandchild), ECANCELED);
}

TEST(cancel_from_many_threads_at_once_has_one_winner)
{
    enum { THREADS = 8 };
    const int rounds = TEST_UNDER_TSAN ? 30 : 200;
    for (int round = 0; round < rounds; round++) {
        struct race r;
        struct gang gang;
        gang_init(&gang, THREADS, true);
        r.ctx = cctx_with_cancel(cctx_background(), &r.cancel);
        r.child = cctx_with_timeout(r.ctx, CCTX_SEC(3600), NULL);
        cctx_t *v = cctx_with_value(r.child, &r, NULL, NULL);
        r.grandchild = cctx_with_cancel(v, NULL);
        cctx_release(v);
        struct rec rp, rg;
        rec_on(&rp, r.ctx);
        rec_on(&rg, r.grandchild);
        struct racer who[THREADS];
        for (int i = 0; i < THREADS; i++) {
            who[i] = (struct racer){&r, i, ""};
            snprintf(who[i].msg, sizeof who[i].msg, "thread %d", i);
            gang_spawn(&gang, race_cancel, &who[i]);
        }
        gang_go(&gang);
        gang_join(&gang);
        cctx_cause_t cause;
        CHECK_EQ(cctx_cause(r.ctx, &cause), ECANCELED);
        CHECK(cause.code >= 1 && cause.code <= THREADS);
        char want[32];
        snprintf(want, sizeof want, "thread %d", cause.code - 1);
        CHECK_STR(cause.msg, want); /* code and message come from the same call */
        check_same_cause(r.child, r.ctx);
        check_same_cause(r.grandchild, r.ctx);
        CHECK_EQ(atomic_load(&rp.runs), 1);
        CHECK_EQ(atomic_load(&rg.runs), 1);
        cctx_release(r.grandchild);
        cctx_release(r.child);
        cctx_release(r.ctx);
    }
}

/* Two cancellations that meet in one tree: each call, when it returns, has
 * every descendant of its own context done (even the part the other thread
 * reached first). */
struct subtree {
    cctx_cancel_t *cancel;
    cctx_t **nodes; /* every context under (and including) the one cancelled */
    int n;
    int code;
};

static void cancel_subtree(void *arg)
{
    struct subtree *s = arg;
    cctx_cancel_cause(s->cancel, s->code, NULL);
    for (int i = 0; i < s->n; i++)
        CHECK(cctx_err(s->nodes[i]) != 0);
}

TEST(cancel_returns_only_when_every_descendant_is_done_even_when_racing)
{
    const int width = TEST_UNDER_TSAN ? 200 : 2000;
    const int depth = TEST_UNDER_TSAN ? 200 : 2000;
    const int rounds = TEST_UNDER_TSAN ? 5 : 20;
    const int n = 1 + width + depth;
    cctx_t **all = calloc((size_t)n, sizeof *all);
    CHECK(all != NULL);
    for (int round = 0; round < rounds; round++) {
        /* root -> mid -> (width leaves, and a chain `depth` long) */
        cctx_cancel_t *root_cancel, *mid_cancel;
        cctx_t *root = cctx_with_cancel(cctx_background(), &root_cancel);
        all[0] = cctx_with_cancel(root, &mid_cancel);
        for (int i = 0; i < width; i++)
            all[1 + i] = cctx_with_cancel(all[0], NULL);
        cctx_t *tip = all[0];
        for (int i = 0; i < depth; i++)
            tip = all[1 + width + i] = cctx_with_cancel(tip, NULL);
        struct subtree top = {root_cancel, all, n, 1};
        struct subtree mid = {mid_cancel, all, n, 2};
        struct gang gang;
        gang_init(&gang, 2, false);
        gang_spawn(&gang, cancel_subtree, &top);
        gang_spawn(&gang, cancel_subtree, &mid);
        gang_join(&gang);
        CHECK_EQ(cctx_cause(root, &(cctx_cause_t){0}), ECANCELED);
        /* Below mid, everyone agrees with mid, whoever won there. */
        for (int i = 1; i < n; i++)
            check_same_cause(all[i], all[0]);
        for (int i = n - 1; i >= 0; i--)
            cctx_release(all[i]);
        cctx_release(root);
    }
    free(all);
}

/* Children being derived while their parent is cancelled: each ends up done
 * (attached in time, or born done), with the parent's cause. */
struct creator {
    cctx_t *parent;
    cctx_t **made;
    int max, n;
};

static void *create_children(void *arg)
{
    struct creator *cr = arg;
    static const char key;
    while (cr->n < cr->max) {
        cctx_t *c;
        switch (cr->n % 4) {
        case 0:
            c = cctx_with_cancel(cr->parent, NULL);
            break;
        case 1:
            c = cctx_with_timeout(cr->parent, CCTX_SEC(3600), NULL);
            break;
        case 2:
            c = cctx_with_value(cr->parent, &key, NULL, NULL);
            break;
        default:
            c = cctx_with_cancel(cr->n > 0 ? cr->made[cr->n - 1] : cr->parent, NULL);
            break;
        }
        CHECK(c != NULL);
        cr->made[cr->n++] = c;
        if (cctx_err(cr->parent) && cr->n % 4 == 0)
            break;
    }
    return NULL;
}

TEST(cancel_reaches_children_derived_while_it_runs)
{
    enum { THREADS = 4 };
    const int max = TEST_UNDER_TSAN ? 2000 : 20000;
    const int rounds = TEST_UNDER_TSAN ? 5 : 20;
    for (int round = 0; round < rounds; round++) {
        cctx_cancel_t *cancel;
        cctx_t *p = cctx_with_cancel(cctx_background(), &cancel);
        struct creator cr[THREADS];
        pthread_t t[THREADS];
        for (int i = 0; i < THREADS; i++) {
            cr[i] = (struct creator){p, calloc((size_t)max, sizeof(cctx_t *)), max, 0};
            CHECK(cr[i].made != NULL);
            CHECK_EQ(pthread_create(&t[i], NULL, create_children, &cr[i]), 0);
        }
        /* Let the creators get going, then cancel in the middle of it. */
        while (cctx_err(p) == 0 && cctx__test_armed_timers() < 10 * (round % 5 + 1))
            ;
        cctx_cancel_cause(cancel, 40 + round, "parent canceled mid-flight");
        for (int i = 0; i < THREADS; i++)
            CHECK_EQ(pthread_join(t[i], NULL), 0);
        for (int i = 0; i < THREADS; i++) {
            for (int j = 0; j < cr[i].n; j++) {
                CHECK_EQ(cctx_err(cr[i].made[j]), ECANCELED);
                check_same_cause(cr[i].made[j], p);
            }
            for (int j = cr[i].n - 1; j >= 0; j--)
                cctx_release(cr[i].made[j]);
            free(cr[i].made);
        }
        cctx_release(p);
        CHECK_EQ(cctx__test_armed_timers(), 0);
    }
}

/* A cancellation racing with the parent's: the child reports one of them,
 * consistently (error, code and message from the same cancellation). */
struct pair_race {
    cctx_cancel_t *cancel;
    int code;
};

static void pair_cancel(void *arg)
{
    struct pair_race *p = arg;
    cctx_cancel_cause(p->cancel, p->code, p->code == 1 ? "parent" : "child");
}

TEST(cancel_racing_with_the_parents_cancel_reports_one_of_them)
{
    const int rounds = TEST_UNDER_TSAN ? 100 : 500;
    int saw_parent = 0, saw_child = 0;
    for (int round = 0; round < rounds; round++) {
        cctx_cancel_t *pc, *cc;
        cctx_t *p = cctx_with_cancel(cctx_background(), &pc);
        cctx_t *c = cctx_with_cancel(p, &cc);
        cctx_t *g = cctx_with_cancel(c, NULL);
        struct rec rc;
        rec_on(&rc, c);
        struct pair_race a = {pc, 1}, b = {cc, 2};
        struct gang gang;
        gang_init(&gang, 2, false);
        gang_spawn(&gang, pair_cancel, &a);
        gang_spawn(&gang, pair_cancel, &b);
        gang_join(&gang);
        cctx_cause_t cp, ccause;
        CHECK_EQ(cctx_cause(p, &cp), ECANCELED);
        CHECK_EQ(cp.code, 1);
        CHECK_EQ(cctx_cause(c, &ccause), ECANCELED);
        CHECK(ccause.code == 1 || ccause.code == 2);
        CHECK_STR(ccause.msg, ccause.code == 1 ? "parent" : "child");
        if (ccause.code == 1) {
            check_same_cause(c, p);
            saw_parent++;
        } else {
            saw_child++;
        }
        check_same_cause(g, c);
        CHECK_EQ(atomic_load(&rc.runs), 1);
        cctx_release(g);
        cctx_release(c);
        cctx_release(p);
    }
    fprintf(stderr, "child cause: parent's %d times, its own %d times\n", saw_parent, saw_child);
}

struct holder {
    cctx_t *ctx;
    cctx_cancel_t *cancel;
};

static void cancel_then_release(void *arg)
{
    struct holder *h = arg;
    cctx_cancel(h->cancel);
    cctx_release(h->ctx);
}

static void just_release(void *arg)
{
    cctx_release(arg);
}

TEST(cancel_concurrent_with_another_threads_release)
{
    const int rounds = TEST_UNDER_TSAN ? 200 : 1000;
    for (int round = 0; round < rounds; round++) {
        cctx_cancel_t *cancel;
        cctx_t *c = cctx_with_timeout(cctx_background(), CCTX_SEC(3600), &cancel);
        cctx_t *child = cctx_with_cancel(c, NULL);
        struct rec r;
        rec_on(&r, c);
        struct holder a = {cctx_ref(c), cancel};
        struct gang gang;
        gang_init(&gang, 3, false);
        gang_spawn(&gang, cancel_then_release, &a);
        gang_spawn(&gang, just_release, c); /* the creator's reference */
        gang_spawn(&gang, just_release, child);
        gang_join(&gang);
        CHECK_EQ(atomic_load(&r.runs), 1);
    }
    CHECK_EQ(cctx__test_armed_timers(), 0);
}

/* Children released by one thread while another cancels their parent: each
 * child ends exactly once (by the parent's cancel or by its own release), and
 * nothing is used after it is freed. */
struct child_releaser {
    cctx_t **kids;
    int n;
};

static void release_kids(void *arg)
{
    struct child_releaser *cr = arg;
    for (int i = 0; i < cr->n; i++)
        cctx_release(cr->kids[i]);
}

TEST(cancel_concurrent_with_releasing_the_children)
{
    const int n = TEST_UNDER_TSAN ? 500 : 5000;
    const int rounds = TEST_UNDER_TSAN ? 5 : 20;
    cctx_t **kids = calloc((size_t)n, sizeof *kids);
    struct rec *recs = calloc((size_t)n, sizeof *recs);
    CHECK(kids && recs);
    for (int round = 0; round < rounds; round++) {
        cctx_cancel_t *cancel;
        cctx_t *p = cctx_with_cancel(cctx_background(), &cancel);
        for (int i = 0; i < n; i++) {
            kids[i] = i % 2 ? cctx_with_cancel(p, NULL) : cctx_with_timeout(p, CCTX_SEC(3600), NULL);
            rec_on(&recs[i], kids[i]);
        }
        struct child_releaser cr = {kids, n};
        struct gang gang;
        gang_init(&gang, 1, true);
        gang_spawn(&gang, release_kids, &cr);
        gang_go(&gang);
        if (round % 2)
            for (volatile int spin = 0; spin < 1000 * round; spin++)
                ;
        cctx_cancel(cancel);
        gang_join(&gang);
        for (int i = 0; i < n; i++)
            CHECK_EQ(atomic_load(&recs[i].runs), 1);
        cctx_release(p);
        CHECK_EQ(cctx__test_armed_timers(), 0);
    }
    free(recs);
    free(kids);
}

/* Deadlines firing on the real timer thread while their contexts are being
 * released: each after-function runs exactly once. */
TEST(cancel_deadline_firing_concurrent_with_release)
{
    const int n = TEST_UNDER_TSAN ? 300 : 3000;
    cctx_t **c = calloc((size_t)n, sizeof *c);
    struct rec *recs = calloc((size_t)n, sizeof *recs);
    CHECK(c && recs);
    int fired = 0;
    for (int i = 0; i < n; i++) {
        c[i] = cctx_with_timeout(cctx_background(), CCTX_USEC(i % 200), NULL);
        rec_on(&recs[i], c[i]);
    }
    for (int i = 0; i < n; i++) {
        fired += cctx_err(c[i]) == ETIMEDOUT;
        cctx_release(c[i]);
    }
    fprintf(stderr, "%d of %d deadlines fired before their release\n", fired, n);
    /* A deadline that fired during the release runs its after-function on
     * the timer thread, perhaps just after the release returned. */
    int64_t t0 = cctx_now();
    for (int i = 0; i < n; i++) {
        while (atomic_load(&recs[i].runs) == 0) {
            CHECK(cctx_now() - t0 < CCTX_SEC(5));
            sched_yield();
        }
    }
    for (int i = 0; i < n; i++) {
        CHECK(!cctx_after_stop(&recs[i].reg)); /* ran; waits until fn has returned */
        CHECK_EQ(atomic_load(&recs[i].runs), 1);
    }
    CHECK_EQ(cctx__test_armed_timers(), 0);
    free(recs);
    free(c);
}

/* An after-function may cancel its own context again, or drop the last
 * reference to it, while the cancellation that ran it is still returning. */
struct self_ref {
    cctx_cancel_t *cancel;
    cctx_t *ctx;
    atomic_int runs;
};

static void cancel_self(void *arg)
{
    struct self_ref *s = arg;
    cctx_cancel_cause(s->cancel, 5, "again"); /* already done: returns at once */
    atomic_fetch_add(&s->runs, 1);
}

static void release_self(void *arg)
{
    struct self_ref *s = arg;
    cctx_release(s->ctx);
    atomic_fetch_add(&s->runs, 1);
}

TEST(cancel_after_function_may_cancel_or_release_its_own_context)
{
    cctx__test_count_allocs(true);
    long start = cctx__test_live_allocs();
    cctx_after_t reg1, reg2;
    memset(&reg1, 0, sizeof reg1);
    memset(&reg2, 0, sizeof reg2);

    struct self_ref a = {0};
    a.ctx = cctx_with_cancel(cctx_background(), &a.cancel);
    CHECK_EQ(cctx_after_func(a.ctx, &reg1, cancel_self, &a), 0);
    cctx_cancel(a.cancel);
    CHECK_EQ(atomic_load(&a.runs), 1);
    cctx_cause_t cause;
    CHECK_EQ(cctx_cause(a.ctx, &cause), ECANCELED);
    CHECK_EQ(cause.code, 0); /* the first cancellation stands */
    cctx_release(a.ctx);

    /* The only reference is dropped inside fn: the context is freed while
     * cctx_cancel is still on the stack. */
    struct self_ref b = {0};
    b.ctx = cctx_with_timeout(cctx_background(), CCTX_SEC(3600), &b.cancel);
    CHECK_EQ(cctx_after_func(b.ctx, &reg2, release_self, &b), 0);
    cctx_cancel(b.cancel);
    CHECK_EQ(atomic_load(&b.runs), 1);
    CHECK_EQ(cctx__test_live_allocs(), start);
    CHECK_EQ(cctx__test_armed_timers(), 0);
    cctx__test_count_allocs(false);
}

/* Readers polling cctx_cause while another thread cancels: once they see an
 * error, the rest of the cause is complete and consistent. */
struct reader {
    cctx_t *ctx;
    int saw_done;
};

static void read_causes(void *arg)
{
    struct reader *r = arg;
    for (;;) {
        cctx_cause_t c;
        int err = cctx_cause(r->ctx, &c);
        CHECK_EQ(err, c.err);
        if (err) {
            CHECK_EQ(err, ECANCELED);
            CHECK_EQ(c.code, 7);
            CHECK_STR(c.msg, "seen whole");
            CHECK(c.file != NULL && c.func != NULL && c.line > 0);
            CHECK(c.when > 0);
            CHECK_EQ(cctx_err(r->ctx), ECANCELED);
            r->saw_done = 1;
            return;
        }
        CHECK(c.msg == NULL);
    }
}

TEST(cancel_readers_never_see_a_half_written_cause)
{
    enum { READERS = 3 };
    const int rounds = TEST_UNDER_TSAN ? 30 : 200;
    for (int round = 0; round < rounds; round++) {
        cctx_cancel_t *cancel;
        cctx_t *root = cctx_with_cancel(cctx_background(), &cancel);
        cctx_t *mid = cctx_with_value(root, &round, NULL, NULL);
        cctx_t *leaf = cctx_with_timeout(mid, CCTX_SEC(3600), NULL);
        cctx_t *targets[READERS] = {root, mid, leaf};
        struct reader r[READERS];
        struct gang gang;
        gang_init(&gang, READERS, true);
        for (int i = 0; i < READERS; i++) {
            r[i] = (struct reader){targets[i], 0};
            gang_spawn(&gang, read_causes, &r[i]);
        }
        gang_go(&gang);
        cctx_cancel_cause(cancel, 7, "seen whole");
        gang_join(&gang);
        for (int i = 0; i < READERS; i++)
            CHECK(r[i].saw_done);
        cctx_release(leaf);
        cctx_release(mid);
        cctx_release(root);
    }
}

/* ---- never upwards or sideways --------------------------------------------------- */

TEST(cancel_never_affects_the_parent_or_siblings)
{
    cctx_t *p = cctx_with_cancel(cctx_background(), NULL);
    cctx_cancel_t *ac;
    cctx_t *a = cctx_with_cancel(p, &ac);
    cctx_t *a1 = cctx_with_cancel(a, NULL);
    cctx_t *b = cctx_with_timeout(p, CCTX_SEC(3600), NULL);
    cctx_t *b1 = cctx_with_cancel(b, NULL);
    cctx_t *v = cctx_with_value(p, &ac, NULL, NULL);
    cctx_t *vc = cctx_with_cancel(v, NULL);
    struct rec rp, rb;
    rec_on(&rp, p);
    rec_on(&rb, b);
    cctx_cancel(ac);
    CHECK_EQ(cctx_err(a), ECANCELED);
    CHECK_EQ(cctx_err(a1), ECANCELED);
    check_active(p);
    check_active(b);
    check_active(b1);
    check_active(v);
    check_active(vc);
    CHECK_EQ(atomic_load(&rp.runs), 0);
    CHECK_EQ(atomic_load(&rb.runs), 0);
    /* The parent still derives active children. */
    cctx_t *fresh = cctx_with_cancel(p, NULL);
    check_active(fresh);
    cctx_release(fresh);
    cctx_release(vc);
    cctx_release(v);
    cctx_release(b1);
    cctx_release(b);
    cctx_release(a1);
    cctx_release(a);
    CHECK_EQ(atomic_load(&rp.runs), 0);
    cctx_release(p);
    CHECK_EQ(atomic_load(&rp.runs), 1);
}

/* ---- causes ------------------------------------------------------------------------ */

TEST(cancel_cause_of_an_active_context_is_empty)
{
    cctx_t *c = cctx_with_timeout(cctx_background(), CCTX_SEC(3600), NULL);
    cctx_t *v = cctx_with_value(c, &c, NULL, NULL);
    check_active(c);
    check_active(v);
    check_active(cctx_background());
    cctx_release(v);
    cctx_release(c);
}

TEST(cancel_cause_records_the_call_site_and_time)
{
    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cancel);
    int64_t before = cctx_now();
    const int line = __LINE__; cctx_cancel_cause(cancel, -3, "negative codes are codes too");
    int64_t after = cctx_now();
    check_cause(c, ECANCELED, -3, "negative codes are codes too", line, __func__);
    cctx_cause_t cause;
    cctx_cause(c, &cause);
    CHECK(cause.when >= before && cause.when <= after);

    /* The _at form records whatever site it is given. */
    cctx_cancel_t *cancel2;
    cctx_t *c2 = cctx_with_cancel(cctx_background(), &cancel2);
    cctx_cancel_at(cancel2, "binding.py", 4242, "py_cancel");
    CHECK_EQ(cctx_cause(c2, &cause), ECANCELED);
    CHECK_STR(cause.file, "binding.py");
    CHECK_EQ(cause.line, 4242);
    CHECK_STR(cause.func, "py_cancel");
    CHECK_STR(cause.msg, "context canceled");
    cctx_release(c2);
    cctx_release(c);
}

TEST(cancel_default_messages_name_the_error)
{
    cctx_cancel_t *c1, *c2;
    cctx_t *a = cctx_with_cancel(cctx_background(), &c1);
    cctx_t *b = cctx_with_cancel(cctx_background(), &c2);
    const int la = __LINE__; cctx_cancel(c1);
    const int lb = __LINE__; cctx_cancel_cause(c2, 12, NULL);
    check_cause(a, ECANCELED, 0, "context canceled", la, __func__);
    check_cause(b, ECANCELED, 12, "context canceled", lb, __func__);
    cctx_release(a);
    cctx_release(b);

    /* A deadline on the real clock: a generous latency bound only. */
    int64_t t0 = cctx_now();
    const int lt = __LINE__; cctx_t *t = cctx_with_timeout(cctx_background(), CCTX_MSEC(2), NULL);
    CHECK_EQ(cctx_wait(t, CCTX_SEC(10)), ETIMEDOUT);
    int64_t t1 = cctx_now();
    check_cause(t, ETIMEDOUT, 0, "context deadline exceeded", lt, __func__);
    cctx_cause_t cause;
    cctx_cause(t, &cause);
    int64_t d;
    CHECK(cctx_deadline(t, &d));
    CHECK(cause.when >= d);
    CHECK(cause.when <= t1);
    fprintf(stderr, "2 ms deadline fired %.3f ms late; wait returned after %.3f ms\n",
            (double)(cause.when - d) / 1e6, (double)(t1 - t0) / 1e6);
    CHECK(t1 - t0 < CCTX_SEC(5));
    cctx_release(t);
}

TEST(cancel_message_is_copied)
{
    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cancel);
    cctx_t *child = cctx_with_cancel(c, NULL);
    char *msg = strdup("upstream closed the connection");
    CHECK(msg != NULL);
    cctx_cancel_cause(cancel, 1, msg);
    memset(msg, 'X', strlen(msg));
    free(msg);
    cctx_cause_t cause;
    cctx_cause(child, &cause);
    CHECK_STR(cause.msg, "upstream closed the connection");
    /* An empty message is a message, not the default. */
    cctx_cancel_t *cancel2;
    cctx_t *e = cctx_with_cancel(cctx_background(), &cancel2);
    cctx_cancel_cause(cancel2, 0, "");
    cctx_cause(e, &cause);
    CHECK_STR(cause.msg, "");
    cctx_release(e);
    cctx_release(child);
    cctx_release(c);
}

TEST(cancel_descendants_report_the_ancestors_error_and_cause)
{
    static const char key;
    cctx_cancel_t *cancel;
    cctx_t *chain[8];
    chain[0] = cctx_with_cancel(cctx_background(), &cancel);
    chain[1] = cctx_with_value(chain[0], &key, NULL, NULL);
    chain[2] = cctx_with_timeout(chain[1], CCTX_SEC(3600), NULL);
    chain[3] = cctx_with_deadline_cause(chain[2], cctx_now() + CCTX_SEC(7200), 99, "later", NULL);
    chain[4] = cctx_with_value(chain[3], &key, NULL, NULL);
    chain[5] = cctx_with_timeout_cause(chain[4], CCTX_SEC(60), 98, "sooner", NULL);
    chain[6] = cctx_with_cancel(chain[5], NULL);
    chain[7] = cctx_with_value(chain[6], &key, NULL, NULL);
    struct rec r[8];
    for (int i = 0; i < 8; i++) {
        CHECK(chain[i] != NULL);
        rec_on(&r[i], chain[i]);
    }
    const int line = __LINE__; cctx_cancel_cause(cancel, 42, "client went away");
    for (int i = 0; i < 8; i++) {
        check_cause(chain[i], ECANCELED, 42, "client went away", line, __func__);
        check_same_cause(chain[i], chain[0]);
        CHECK_EQ(atomic_load(&r[i].runs), 1);
        CHECK(pthread_equal(r[i].thread, pthread_self()));
    }
    for (int i = 7; i >= 0; i--)
        cctx_release(chain[i]);
}

TEST(cancel_of_a_deadline_context_before_its_deadline_disarms_it)
{
    long armed = cctx__test_armed_timers();
    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_timeout(cctx_background(), CCTX_SEC(3600), &cancel);
    cctx_t *child = cctx_with_timeout(c, CCTX_SEC(1800), NULL);
    CHECK_EQ(cctx__test_armed_timers(), armed + 2);
    const int line = __LINE__; cctx_cancel(cancel);
    check_cause(c, ECANCELED, 0, "context canceled", line, __func__);
    check_same_cause(child, c);
    CHECK_EQ(cctx__test_armed_timers(), armed);
    cctx_release(child);
    cctx_release(c);
}

struct chained {
    cctx_cancel_t *next;
    cctx_t *next_ctx;
    int err_seen;
};

static void cancel_next(void *arg)
{
    struct chained *ch = arg;
    cctx_cancel_cause(ch->next, 77, "cascade");
    ch->err_seen = cctx_err(ch->next_ctx);
}

TEST(cancel_after_function_may_cancel_another_context)
{
    cctx_cancel_t *ca, *cb;
    cctx_t *a = cctx_with_cancel(cctx_background(), &ca);
    cctx_t *b = cctx_with_cancel(cctx_background(), &cb);
    cctx_t *b1 = cctx_with_cancel(b, NULL);
    struct chained ch = {cb, b1, 0};
    cctx_after_t reg;
    memset(&reg, 0, sizeof reg);
    CHECK_EQ(cctx_after_func(a, &reg, cancel_next, &ch), 0);
    struct rec rb;
    rec_on(&rb, b1);
    cctx_cancel(ca);
    CHECK_EQ(ch.err_seen, ECANCELED);
    CHECK_EQ(cctx_err(b), ECANCELED);
    CHECK_EQ(atomic_load(&rb.runs), 1);
    cctx_cause_t cause;
    cctx_cause(b1, &cause);
    CHECK_EQ(cause.code, 77);
    CHECK_STR(cause.func, "cancel_next");
    cctx_release(b1);
    cctx_release(b);
    cctx_release(a);
}

