/* SPDX-License-Identifier: MIT */
/*
 * Section 2 of cctx.h: every cctx_with_*, children born done, the deadline
 * rules (earliest on the chain wins, past deadlines, saturation), the _cause
 * variants, values and cctx_without_cancel.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/testing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "support.h"
#include "testhooks.h"

/* ---- helpers ------------------------------------------------------------------ */

static const int64_t T0 = CCTX_SEC(1000); /* fake-clock start */

static void check_active_no_deadline(const cctx_t *c)
{
    int64_t d = 7;
    CHECK_EQ(cctx_err(c), 0);
    CHECK(!cctx_deadline(c, &d));
    CHECK_EQ(cctx_remaining(c), CCTX_NO_DEADLINE);
    cctx_cause_t cause;
    CHECK_EQ(cctx_cause(c, &cause), 0);
    CHECK(cause.msg == NULL);
}

/* ---- with_cancel ----------------------------------------------------------------- */

TEST(derive_with_cancel_gives_a_new_active_child)
{
    cctx_cancel_t *cancel = NULL;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cancel);
    CHECK(c != NULL && c != cctx_background());
    CHECK(cancel != NULL);
    check_active_no_deadline(c);
    cctx_cancel_t *cancel2 = NULL;
    cctx_t *c2 = cctx_with_cancel(cctx_background(), &cancel2);
    CHECK(c2 != c && cancel2 != cancel);
    cctx_cancel(cancel);
    CHECK_EQ(cctx_err(c), ECANCELED);
    CHECK_EQ(cctx_err(c2), 0); /* siblings are independent */
    cctx_release(c);
    cctx_release(c2);
}

TEST(derive_with_cancel_without_handle_still_ends_with_its_parent)
{
    cctx_cancel_t *pc;
    cctx_t *p = cctx_with_cancel(cctx_background(), &pc);
    cctx_t *c = cctx_with_cancel(p, NULL);
    cctx_t *t = cctx_with_timeout(p, CCTX_SEC(3600), NULL);
    cctx_t *d = cctx_with_deadline_cause(p, cctx_now() + CCTX_SEC(3600), 1, "x", NULL);
    CHECK(c && t && d);
    CHECK_EQ(cctx_err(c), 0);
    cctx_cancel_cause(pc, 4, "parent");
    CHECK_EQ(cctx_err(c), ECANCELED);
    CHECK_EQ(cctx_err(t), ECANCELED);
    CHECK_EQ(cctx_err(d), ECANCELED);
    check_same_cause(c, p);
    check_same_cause(t, p);
    check_same_cause(d, p);
    cctx_release(c);
    cctx_release(t);
    cctx_release(d);
    cctx_release(p);
}

/* ---- born done ------------------------------------------------------------------- */

static const char key_a, key_b;

TEST(derive_children_of_a_canceled_parent_are_born_done_with_its_cause)
{
    cctx_cancel_t *pc;
    cctx_t *p = cctx_with_cancel(cctx_background(), &pc);
    cctx_cancel_cause(pc, 21, "request aborted");
    int x = 0;
    cctx_cancel_t *h[6];
    cctx_t *kids[6];
    kids[0] = cctx_with_cancel(p, &h[0]);
    kids[1] = cctx_with_timeout(p, CCTX_SEC(3600), &h[1]);
    kids[2] = cctx_with_deadline(p, cctx_now() + CCTX_SEC(3600), &h[2]);
    kids[3] = cctx_with_timeout_cause(p, CCTX_SEC(3600), 5, "mine", &h[3]);
    /* A past deadline on an already-canceled parent: the parent's end wins. */
    kids[4] = cctx_with_deadline_cause(p, 0, 6, "past", &h[4]);
    kids[5] = cctx_with_value(p, &key_a, &x, NULL);
    for (int i = 0; i < 6; i++) {
        CHECK(kids[i] != NULL);
        CHECK_EQ(cctx_err(kids[i]), ECANCELED);
        check_same_cause(kids[i], p);
        /* A born-done child's after-function runs at once, on this thread. */
        struct rec r;
        rec_on(&r, kids[i]);
        CHECK_EQ(atomic_load(&r.runs), 1);
        CHECK(pthread_equal(r.thread, pthread_self()));
        /* Its grandchildren are born done too. */
        cctx_t *g = cctx_with_cancel(kids[i], NULL);
        CHECK_EQ(cctx_err(g), ECANCELED);
        check_same_cause(g, p);
        cctx_release(g);
    }
    /* Cancelling a born-done child changes nothing. */
    for (int i = 0; i < 5; i++) {
        cctx_cancel_cause(h[i], 99, "too late");
        check_same_cause(kids[i], p);
    }
    CHECK(cctx_value(kids[5], &key_a) == &x);
    for (int i = 0; i < 6; i++)
        cctx_release(kids[i]);
    cctx_release(p);
}

TEST(derive_children_of_a_timed_out_parent_are_born_done_with_etimedout)
{
    cctx_fake_clock_start(T0);
    const int line = __LINE__; cctx_t *p = cctx_with_timeout_cause(cctx_background(), 100, 8, "slow backend", NULL);
    cctx_fake_clock_advance(100);
    check_cause(p, ETIMEDOUT, 8, "slow backend", line, __func__);
    cctx_t *c = cctx_with_cancel(p, NULL);
    cctx_t *t = cctx_with_timeout(p, CCTX_SEC(1), NULL);
    cctx_t *v = cctx_with_value(p, &key_a, NULL, NULL);
    cctx_t *vc = cctx_with_cancel(v, NULL);
    check_cause(c, ETIMEDOUT, 8, "slow backend", line, __func__);
    check_same_cause(c, p);
    check_same_cause(t, p);
    check_same_cause(v, p);
    check_same_cause(vc, p);
    cctx_release(vc);
    cctx_release(v);
    cctx_release(t);
    cctx_release(c);
    cctx_release(p);
    cctx_fake_clock_stop();
}

/* ---- deadlines in the past --------------------------------------------------------- */

TEST(derive_past_deadline_is_born_done_with_etimedout_naming_the_call)
{
    long armed = cctx__test_armed_timers();
    int64_t now = cctx_now();
    const int64_t deadlines[] = {now - 1, now - CCTX_SEC(1), 0, -1, INT64_MIN};
    for (size_t i = 0; i < sizeof deadlines / sizeof *deadlines; i++) {
        struct rec r;
        cctx_cancel_t *cancel;
        const int line = __LINE__; cctx_t *c = cctx_with_deadline(cctx_background(), deadlines[i], &cancel);
        CHECK(c != NULL);
        check_cause(c, ETIMEDOUT, 0, "context deadline exceeded", line, __func__);
        int64_t d = 0;
        CHECK(cctx_deadline(c, &d));
        CHECK_EQ(d, deadlines[i]);
        CHECK(cctx_remaining(c) < 0); /* never wraps to a positive value */
        CHECK_EQ(cctx__test_armed_timers(), armed);
        rec_on(&r, c);
        CHECK_EQ(atomic_load(&r.runs), 1);
        cctx_cancel(cancel); /* changes nothing */
        check_cause(c, ETIMEDOUT, 0, "context deadline exceeded", line, __func__);
        cctx_release(c);
    }
    const int64_t timeouts[] = {0, -1, -CCTX_SEC(5), INT64_MIN};
    for (size_t i = 0; i < sizeof timeouts / sizeof *timeouts; i++) {
        const int line = __LINE__; cctx_t *c = cctx_with_timeout_cause(cctx_background(), timeouts[i], 17, "past", NULL);
        CHECK(c != NULL);
        check_cause(c, ETIMEDOUT, 17, "past", line, __func__);
        CHECK(cctx_remaining(c) <= 0);
        CHECK_EQ(cctx__test_armed_timers(), armed);
        cctx_release(c);
    }
}

TEST(derive_deadline_equal_to_now_is_born_done_on_the_fake_clock)
{
    cctx_fake_clock_start(T0);
    const int line = __LINE__; cctx_t *c = cctx_with_deadline(cctx_background(), T0, NULL);
    check_cause(c, ETIMEDOUT, 0, "context deadline exceeded", line, __func__);
    cctx_cause_t cause;
    cctx_cause(c, &cause);
    CHECK_EQ(cause.when, T0);
    CHECK_EQ(cctx_remaining(c), 0);
    cctx_t *c1 = cctx_with_deadline(cctx_background(), T0 + 1, NULL);
    CHECK_EQ(cctx_err(c1), 0); /* one nanosecond ahead is not past */
    CHECK_EQ(cctx_remaining(c1), 1);
    cctx_t *c2 = cctx_with_timeout(cctx_background(), 0, NULL);
    CHECK_EQ(cctx_err(c2), ETIMEDOUT);
    cctx_release(c);
    cctx_release(c1);
    cctx_release(c2);
    cctx_fake_clock_stop();
}

/* ---- the earliest deadline wins ----------------------------------------------------- */

TEST(derive_earliest_deadline_on_the_chain_wins)
{
    cctx_fake_clock_start(T0);
    cctx_t *p = cctx_with_deadline(cctx_background(), T0 + 1000, NULL);
    long armed = cctx__test_armed_timers();
    int64_t d;

    cctx_t *later = cctx_with_deadline(p, T0 + 2000, NULL);
    CHECK(cctx_deadline(later, &d));
    CHECK_EQ(d, T0 + 1000);
    CHECK_EQ(cctx_remaining(later), 1000);
    cctx_t *same = cctx_with_deadline(p, T0 + 1000, NULL);
    CHECK(cctx_deadline(same, &d));
    CHECK_EQ(d, T0 + 1000);
    cctx_t *never = cctx_with_deadline(p, CCTX_NO_DEADLINE, NULL);
    CHECK(cctx_deadline(never, &d));
    CHECK_EQ(d, T0 + 1000);
    cctx_t *long_timeout = cctx_with_timeout(p, CCTX_SEC(5), NULL);
    CHECK(cctx_deadline(long_timeout, &d));
    CHECK_EQ(d, T0 + 1000);
    /* None of these needed a timer of its own: they behave as with_cancel. */
    CHECK_EQ(cctx__test_armed_timers(), armed);

    cctx_t *v = cctx_with_value(p, &key_a, NULL, NULL);
    CHECK(cctx_deadline(v, &d));
    CHECK_EQ(d, T0 + 1000);
    cctx_t *earlier = cctx_with_timeout(v, 400, NULL);
    CHECK(cctx_deadline(earlier, &d));
    CHECK_EQ(d, T0 + 400);
    CHECK_EQ(cctx_remaining(earlier), 400);
    CHECK_EQ(cctx__test_armed_timers(), armed + 1);
    cctx_t *under_earlier = cctx_with_deadline(earlier, T0 + 700, NULL);
    CHECK(cctx_deadline(under_earlier, &d));
    CHECK_EQ(d, T0 + 400);

    cctx_release(under_earlier);
    cctx_release(earlier);
    cctx_release(v);
    cctx_release(long_timeout);
    cctx_release(never);
    cctx_release(same);
    cctx_release(later);
    cctx_release(p);
    cctx_fake_clock_stop();
}

TEST(derive_later_deadline_ends_with_the_parents_deadline_and_cause)
{
    cctx_fake_clock_start(T0);
    const int pline = __LINE__; cctx_t *p = cctx_with_timeout_cause(cctx_background(), 1000, 1, "parent slow", NULL);
    cctx_t *later = cctx_with_timeout_cause(p, 5000, 2, "child slow", NULL);
    cctx_t *same = cctx_with_deadline_cause(p, T0 + 1000, 3, "child same", NULL);
    struct rec r;
    rec_on(&r, later);
    cctx_fake_clock_advance(999);
    CHECK_EQ(cctx_err(later), 0);
    CHECK_EQ(atomic_load(&r.runs), 0);
    cctx_fake_clock_advance(1);
    /* The parent's deadline ended them, so the parent's cause is reported. */
    check_cause(later, ETIMEDOUT, 1, "parent slow", pline, __func__);
    check_cause(same, ETIMEDOUT, 1, "parent slow", pline, __func__);
    check_same_cause(later, p);
    CHECK_EQ(atomic_load(&r.runs), 1);
    cctx_fake_clock_advance(10000);
    check_same_cause(later, p); /* its own (later) deadline never fires */
    CHECK_EQ(atomic_load(&r.runs), 1);
    cctx_release(same);
    cctx_release(later);
    cctx_release(p);
    cctx_fake_clock_stop();
}

TEST(derive_earlier_child_deadline_fires_alone)
{
    cctx_fake_clock_start(T0);
    const int pline = __LINE__; cctx_t *p = cctx_with_timeout(cctx_background(), 1000, NULL);
    const int cline = __LINE__; cctx_t *c = cctx_with_timeout_cause(p, 300, 12, "child budget", NULL);
    cctx_t *sib = cctx_with_cancel(p, NULL);
    cctx_fake_clock_advance(300);
    check_cause(c, ETIMEDOUT, 12, "child budget", cline, __func__);
    CHECK_EQ(cctx_err(p), 0);
    CHECK_EQ(cctx_err(sib), 0);
    cctx_fake_clock_advance(700);
    check_cause(p, ETIMEDOUT, 0, "context deadline exceeded", pline, __func__);
    check_same_cause(sib, p);
    /* The child's first end stands. */
    check_cause(c, ETIMEDOUT, 12, "child budget", cline, __func__);
    cctx_release(sib);
    cctx_release(c);
    cctx_release(p);
    cctx_fake_clock_stop();
}

/* ---- saturation ------------------------------------------------------------------- */

TEST(derive_huge_timeouts_saturate_to_no_deadline)
{
    cctx_fake_clock_start(T0);
    long armed = cctx__test_armed_timers();
    /* now + timeout >= INT64_MAX: saturates to CCTX_NO_DEADLINE. */
    const int64_t huge[] = {INT64_MAX, INT64_MAX - 1, INT64_MAX - T0, INT64_MAX - T0 + 1};
    for (size_t i = 0; i < sizeof huge / sizeof *huge; i++) {
        cctx_t *c = cctx_with_timeout(cctx_background(), huge[i], NULL);
        CHECK(c != NULL);
        check_active_no_deadline(c);
        CHECK_EQ(cctx__test_armed_timers(), armed);
        cctx_release(c);
    }
    cctx_t *nd = cctx_with_deadline(cctx_background(), CCTX_NO_DEADLINE, NULL);
    check_active_no_deadline(nd);
    CHECK_EQ(cctx__test_armed_timers(), armed);
    cctx_release(nd);

    /* One below the saturation point is a real (far) deadline. */
    cctx_t *far = cctx_with_timeout(cctx_background(), INT64_MAX - T0 - 1, NULL);
    int64_t d;
    CHECK(cctx_deadline(far, &d));
    CHECK_EQ(d, INT64_MAX - 1);
    CHECK_EQ(cctx_remaining(far), INT64_MAX - 1 - T0);
    cctx_release(far);

    /* On the real clock too. */
    cctx_fake_clock_stop();
    cctx_t *r = cctx_with_timeout(cctx_background(), INT64_MAX, NULL);
    check_active_no_deadline(r);
    cctx_release(r);
}

TEST(derive_remaining_saturates_for_far_past_deadlines)
{
    cctx_fake_clock_start(T0);
    cctx_t *c = cctx_with_deadline(cctx_background(), INT64_MIN, NULL);
    CHECK_EQ(cctx_err(c), ETIMEDOUT);
    /* INT64_MIN - T0 does not fit: the answer saturates instead of wrapping. */
    CHECK_EQ(cctx_remaining(c), INT64_MIN);
    cctx_release(c);
    cctx_fake_clock_stop();
}

/* ---- _cause variants -------------------------------------------------------------- */

TEST(derive_cause_variants_report_code_and_a_copy_of_msg)
{
    cctx_fake_clock_start(T0);
    char buf[64];
    snprintf(buf, sizeof buf, "%s", "backend budget");
    const int l1 = __LINE__; cctx_t *t = cctx_with_timeout_cause(cctx_background(), 50, 504, buf, NULL);
    snprintf(buf, sizeof buf, "%s", "deadline budget");
    const int l2 = __LINE__; cctx_t *d = cctx_with_deadline_cause(cctx_background(), T0 + 60, 503, buf, NULL);
    memset(buf, 'X', sizeof buf - 1); /* the caller's buffer is reused */
    buf[sizeof buf - 1] = 0;
    const int l3 = __LINE__; cctx_t *n = cctx_with_timeout_cause(cctx_background(), 70, 9, NULL, NULL);
    cctx_fake_clock_advance(100);
    check_cause(t, ETIMEDOUT, 504, "backend budget", l1, __func__);
    check_cause(d, ETIMEDOUT, 503, "deadline budget", l2, __func__);
    check_cause(n, ETIMEDOUT, 9, "context deadline exceeded", l3, __func__);
    cctx_release(t);
    cctx_release(d);
    cctx_release(n);
    cctx_fake_clock_stop();
}

TEST(derive_cause_variant_canceled_early_reports_the_cancellation)
{
    cctx_fake_clock_start(T0);
    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_timeout_cause(cctx_background(), 100, 504, "budget", &cancel);
    cctx_t *child = cctx_with_cancel(c, NULL);
    const int line = __LINE__; cctx_cancel(cancel);
    check_cause(c, ECANCELED, 0, "context canceled", line, __func__);
    check_same_cause(child, c);
    cctx_fake_clock_advance(1000);
    check_cause(c, ECANCELED, 0, "context canceled", line, __func__);
    cctx_release(child);
    cctx_release(c);
    cctx_fake_clock_stop();
}

/* ---- values ---------------------------------------------------------------------- */

TEST(derive_values_are_found_by_key_address)
{
    static const char k1 = 'k', k2 = 'k'; /* equal contents, different addresses */
    int v1 = 1;
    cctx_t *c = cctx_with_value(cctx_background(), &k1, &v1, NULL);
    CHECK(c != NULL);
    CHECK(cctx_value(c, &k1) == &v1);
    CHECK(cctx_value(c, &k2) == NULL);
    CHECK(cctx_value(cctx_background(), &k1) == NULL);
    /* The value context itself is active, with no deadline. */
    check_active_no_deadline(c);
    cctx_release(c);
}

TEST(derive_nearest_value_on_the_chain_wins)
{
    int a1 = 1, a2 = 2, b1 = 3;
    cctx_t *va = cctx_with_value(cctx_background(), &key_a, &a1, NULL);
    cctx_t *vb = cctx_with_value(va, &key_b, &b1, NULL);
    cctx_t *c = cctx_with_cancel(vb, NULL);
    cctx_t *t = cctx_with_timeout(c, CCTX_SEC(3600), NULL);
    cctx_t *va2 = cctx_with_value(t, &key_a, &a2, NULL);
    cctx_t *leaf = cctx_with_cancel(va2, NULL);
    CHECK(cctx_value(leaf, &key_a) == &a2);
    CHECK(cctx_value(leaf, &key_b) == &b1);
    CHECK(cctx_value(t, &key_a) == &a1); /* the shadowing is below t */
    CHECK(cctx_value(c, &key_b) == &b1);
    CHECK(cctx_value(va, &key_b) == NULL);
    /* A NULL value shadows too. */
    cctx_t *vnull = cctx_with_value(leaf, &key_a, NULL, NULL);
    CHECK(cctx_value(vnull, &key_a) == NULL);
    CHECK(cctx_value(vnull, &key_b) == &b1);
    cctx_release(vnull);
    cctx_release(leaf);
    cctx_release(va2);
    cctx_release(t);
    cctx_release(c);
    cctx_release(vb);
    cctx_release(va);
}

TEST(derive_value_destroy_runs_exactly_once_when_the_context_is_freed)
{
    atomic_store(&destroyed, 0);
    int payload = 5;
    cctx_cancel_t *pc;
    cctx_t *p = cctx_with_cancel(cctx_background(), &pc);
    cctx_t *v = cctx_with_value(p, &key_a, &payload, count_destroy);
    cctx_t *child = cctx_with_cancel(v, NULL);
    cctx_cancel(pc); /* cancellation does not free anything */
    CHECK_EQ(cctx_err(v), ECANCELED);
    CHECK_EQ(atomic_load(&destroyed), 0);
    CHECK(cctx_value(child, &key_a) == &payload);
    cctx_ref(v);
    cctx_release(v);
    cctx_release(v);
    CHECK_EQ(atomic_load(&destroyed), 0); /* child still holds v */
    cctx_release(child);
    CHECK_EQ(atomic_load(&destroyed), 1);
    CHECK(last_destroyed == &payload);
    cctx_release(p);
    CHECK_EQ(atomic_load(&destroyed), 1);

    /* destroy may be NULL; an unrelated destroy is never called for it. */
    cctx_t *nod = cctx_with_value(cctx_background(), &key_a, &payload, NULL);
    cctx_release(nod);
    CHECK_EQ(atomic_load(&destroyed), 1);
}

TEST(derive_value_context_reports_its_nearest_cancelable_ancestor)
{
    cctx_cancel_t *pc;
    cctx_t *p = cctx_with_cancel(cctx_background(), &pc);
    cctx_t *v1 = cctx_with_value(p, &key_a, NULL, NULL);
    cctx_t *v2 = cctx_with_value(v1, &key_b, NULL, NULL);
    struct rec r;
    rec_on(&r, v2); /* registered on the ancestor that can end it */
    CHECK_EQ(cctx_err(v2), 0);
    const int line = __LINE__; cctx_cancel_cause(pc, 31, "ancestor");
    check_cause(v2, ECANCELED, 31, "ancestor", line, __func__);
    check_same_cause(v1, p);
    CHECK_EQ(atomic_load(&r.runs), 1);
    cctx_release(v2);
    cctx_release(v1);
    cctx_release(p);
}

/* ---- without_cancel ----------------------------------------------------------------- */

TEST(derive_without_cancel_keeps_the_parents_values)
{
    int a = 1, b = 2;
    cctx_t *va = cctx_with_value(cctx_background(), &key_a, &a, NULL);
    cctx_t *c = cctx_with_cancel(va, NULL);
    cctx_t *w = cctx_without_cancel(c);
    CHECK(w != NULL && w != c);
    CHECK(cctx_value(w, &key_a) == &a);
    CHECK(cctx_value(w, &key_b) == NULL);
    cctx_t *wb = cctx_with_value(w, &key_b, &b, NULL);
    CHECK(cctx_value(wb, &key_b) == &b);
    CHECK(cctx_value(wb, &key_a) == &a);
    cctx_release(wb);
    cctx_release(w);
    cctx_release(c);
    cctx_release(va);
}

TEST(derive_without_cancel_has_no_deadline)
{
    cctx_fake_clock_start(T0);
    cctx_t *p = cctx_with_timeout(cctx_background(), 100, NULL);
    cctx_t *w = cctx_without_cancel(p);
    check_active_no_deadline(w);
    cctx_t *wc = cctx_with_cancel(w, NULL);
    cctx_t *wv = cctx_with_value(w, &key_a, NULL, NULL);
    check_active_no_deadline(wc);
    check_active_no_deadline(wv);
    cctx_t *wl = cctx_with_deadline(wv, CCTX_NO_DEADLINE, NULL);
    check_active_no_deadline(wl);
    cctx_release(wl);
    cctx_release(wv);
    cctx_release(wc);
    /* Below it, only deadlines set below it count. */
    cctx_t *t = cctx_with_timeout(w, 500, NULL);
    int64_t d;
    CHECK(cctx_deadline(t, &d));
    CHECK_EQ(d, T0 + 500);
    cctx_fake_clock_advance(100);
    CHECK_EQ(cctx_err(p), ETIMEDOUT);
    CHECK_EQ(cctx_err(t), 0);
    cctx_fake_clock_advance(400);
    CHECK_EQ(cctx_err(t), ETIMEDOUT);
    check_active_no_deadline(w);
    cctx_release(t);
    cctx_release(w);
    cctx_release(p);
    cctx_fake_clock_stop();
}

TEST(derive_without_cancel_is_never_canceled)
{
    cctx_cancel_t *pc;
    cctx_t *p = cctx_with_cancel(cctx_background(), &pc);
    cctx_t *w = cctx_without_cancel(p);
    cctx_t *wc = cctx_with_cancel(w, NULL);
    cctx_t *wv = cctx_with_value(w, &key_a, NULL, NULL);
    struct rec r;
    rec_on(&r, w);
    cctx_cancel_cause(pc, 1, "request over");
    CHECK_EQ(cctx_err(p), ECANCELED);
    check_active_no_deadline(w);
    CHECK_EQ(cctx_err(wc), 0);
    CHECK_EQ(cctx_err(wv), 0);
    CHECK_EQ(atomic_load(&r.runs), 0);
    /* Deriving from a done parent: not born done. */
    cctx_t *w2 = cctx_without_cancel(p);
    check_active_no_deadline(w2);
    cctx_release(p); /* the last user reference of p: w and w2 still hold it */
    check_active_no_deadline(w);
    CHECK_EQ(atomic_load(&r.runs), 0);
    CHECK(cctx_after_stop(&r.reg)); /* it would never have run */
    cctx_release(w2);
    cctx_release(wv);
    cctx_release(wc);
    cctx_release(w);
}

TEST(derive_without_cancel_keeps_its_parent_alive_for_values)
{
    atomic_store(&destroyed, 0);
    int a = 1;
    cctx_t *v = cctx_with_value(cctx_background(), &key_a, &a, count_destroy);
    cctx_t *c = cctx_with_cancel(v, NULL);
    cctx_t *w = cctx_without_cancel(c);
    cctx_release(c);
    cctx_release(v);
    CHECK_EQ(atomic_load(&destroyed), 0);
    CHECK(cctx_value(w, &key_a) == &a);
    cctx_release(w);
    CHECK_EQ(atomic_load(&destroyed), 1);
}

/* ---- a deadline whose timer thread cannot start ------------------------------------ */

static int refuse_timer_thread(void *(*fn)(void *), void *arg)
{
    (void)fn;
    (void)arg;
    return EAGAIN; /* pthread_create's answer at a thread limit */
}

/* In a process of its own, whose timer thread has not started yet: the
 * first deadline starts it, and cannot. The derivation fails as the header
 * says one fails for want of a resource, with ENOMEM (it used to pass on
 * pthread_create's EAGAIN, which no caller is told to expect), and the next
 * one, once a thread can start, works. */
CHILD(deadline_without_a_timer_thread)
{
    cctx__thread_start_fn start = atomic_load(&cctx__timer_thread_start);
    atomic_store(&cctx__timer_thread_start, refuse_timer_thread);
    cctx_cancel_t *cancel = (cctx_cancel_t *)1;
    errno = 0;
    cctx_t *c = cctx_with_timeout(cctx_background(), CCTX_SEC(60), &cancel);
    if (c || cancel)
        _exit(10);
    if (errno != ENOMEM)
        _exit(11);
    errno = 0;
    c = cctx_with_deadline(cctx_background(), cctx_now() + CCTX_SEC(60), NULL);
    if (c || errno != ENOMEM)
        _exit(12);
    atomic_store(&cctx__timer_thread_start, start);
    c = cctx_with_timeout(cctx_background(), CCTX_SEC(60), NULL);
    if (!c || cctx_err(c) != 0)
        _exit(13);
    cctx_release(c);
    _exit(0);
}

TEST(derive_deadline_whose_timer_thread_cannot_start_is_enomem)
{
    struct child c;
    run_child("deadline_without_a_timer_thread", NULL, &c);
    CHECK(WIFEXITED(c.status));
    CHECK_EQ(WEXITSTATUS(c.status), 0);
    child_done(&c);
}
