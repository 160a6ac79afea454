/* SPDX-License-Identifier: MIT */
/*
 * The fake clock of <cctx/testing.h>, and the deadline logic it makes exact: on the fake
 * clock a deadline at t fires when the clock reaches t (not at t-1), in
 * deadline order, with its after-functions run before cctx_fake_clock_advance
 * returns; waits and sleeps end when another thread moves the clock; an
 * advance held in a blocking after-function holds up no other thread's
 * derivations, cancellations or dumps.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/testing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "harness.h"
#include "support.h"
#include "testhooks.h"

/* ---- helpers ------------------------------------------------------------------ */

static const int64_t T0 = CCTX_SEC(1000); /* where every test starts the fake clock */

/* c ended as check_cause says, at the (virtual) time `when`. */
static void check_site(const cctx_t *c, int err, int code, const char *msg, int line,
                       const char *func, int64_t when)
{
    check_cause(c, err, code, msg, line, func);
    cctx_cause_t cause;
    cctx_cause(c, &cause);
    CHECK_EQ(cause.when, when);
}

/* ---- the clock itself --------------------------------------------------------------- */

TEST(fakeclock_now_is_virtual_and_moves_only_when_advanced)
{
    cctx_fake_clock_start(T0);
    CHECK_EQ(cctx_now(), T0);
    real_sleep_ms(5);
    CHECK_EQ(cctx_now(), T0); /* real time does not move it */
    cctx_fake_clock_advance(7);
    CHECK_EQ(cctx_now(), T0 + 7);
    cctx_fake_clock_advance(0);
    CHECK_EQ(cctx_now(), T0 + 7);
    cctx_fake_clock_advance(-5); /* monotonic: ignored */
    CHECK_EQ(cctx_now(), T0 + 7);
    cctx_fake_clock_advance(CCTX_SEC(3600));
    CHECK_EQ(cctx_now(), T0 + 7 + CCTX_SEC(3600));
    /* Starting again sets a new virtual time. */
    cctx_fake_clock_start(CCTX_SEC(5));
    CHECK_EQ(cctx_now(), CCTX_SEC(5));
    cctx_fake_clock_stop();
    int64_t a = real_now();
    int64_t n = cctx_now();
    int64_t b = real_now();
    CHECK(n >= a && n <= b); /* back on CLOCK_MONOTONIC */
}

static void advance_to_the_end_of_time(void)
{
    cctx_fake_clock_start(T0);
    cctx_t *late = cctx_with_deadline(cctx_background(), INT64_MAX - 1, NULL);
    cctx_t *never = cctx_with_cancel(cctx_background(), NULL);
    CHECK_EQ(cctx_remaining(late), INT64_MAX - 1 - T0);
    cctx_fake_clock_advance(INT64_MAX); /* T0 + INT64_MAX does not fit */
    CHECK_EQ(cctx_now(), INT64_MAX);
    CHECK_EQ(cctx_err(late), ETIMEDOUT);
    CHECK_EQ(cctx_err(never), 0);
    cctx_fake_clock_advance(INT64_MAX);
    CHECK_EQ(cctx_now(), INT64_MAX);
    cctx_release(never);
    cctx_release(late);
    cctx_fake_clock_stop();
}

TEST(fakeclock_advance_saturates_at_the_end_of_time)
{
    run_with_watchdog(advance_to_the_end_of_time, 20);
}

/* ---- deadlines, to the nanosecond ------------------------------------------------------ */

TEST(fakeclock_deadline_fires_exactly_when_the_clock_reaches_it)
{
    cctx_fake_clock_start(T0);
    long armed = cctx__test_armed_timers();
    const int line = __LINE__; cctx_t *c = cctx_with_deadline(cctx_background(), T0 + 1000, NULL);
    CHECK_EQ(cctx__test_armed_timers(), armed + 1);
    CHECK_EQ(cctx_remaining(c), 1000);
    cctx_fake_clock_advance(999);
    CHECK_EQ(cctx_err(c), 0); /* t - 1: not yet */
    CHECK_EQ(cctx_remaining(c), 1);
    cctx_fake_clock_advance(1);
    check_site(c, ETIMEDOUT, 0, "context deadline exceeded", line, __func__, T0 + 1000);
    CHECK_EQ(cctx_remaining(c), 0);
    CHECK_EQ(cctx__test_armed_timers(), armed);
    cctx_fake_clock_advance(5);
    CHECK_EQ(cctx_remaining(c), -5);
    int64_t d;
    CHECK(cctx_deadline(c, &d));
    CHECK_EQ(d, T0 + 1000);
    cctx_release(c);
    cctx_fake_clock_stop();
}

TEST(fakeclock_timeout_is_measured_from_the_virtual_now)
{
    cctx_fake_clock_start(T0);
    cctx_fake_clock_advance(CCTX_MSEC(3));
    const int64_t start = T0 + CCTX_MSEC(3);
    const int line = __LINE__; cctx_t *c = cctx_with_timeout_cause(cctx_background(), 12345, 7, "budget", NULL);
    int64_t d;
    CHECK(cctx_deadline(c, &d));
    CHECK_EQ(d, start + 12345);
    CHECK_EQ(cctx_remaining(c), 12345);
    cctx_fake_clock_advance(345);
    CHECK_EQ(cctx_remaining(c), 12000);
    cctx_fake_clock_advance(11999);
    CHECK_EQ(cctx_err(c), 0);
    CHECK_EQ(cctx_remaining(c), 1);
    cctx_fake_clock_advance(1);
    check_site(c, ETIMEDOUT, 7, "budget", line, __func__, start + 12345);
    cctx_release(c);
    cctx_fake_clock_stop();
}

TEST(fakeclock_after_functions_of_due_deadlines_run_before_advance_returns)
{
    cctx_fake_clock_start(T0);
    cctx_t *c = cctx_with_timeout(cctx_background(), 100, NULL);
    cctx_t *child = cctx_with_cancel(c, NULL);
    cctx_t *v = cctx_with_value(child, &c, NULL, NULL);
    struct rec rc, rchild, rv;
    rec_watch(&rc, c);
    rec_watch(&rchild, child);
    rec_watch(&rv, v);
    cctx_fake_clock_advance(99);
    CHECK_EQ(atomic_load(&rc.runs), 0);
    cctx_fake_clock_advance(1);
    /* No waiting, no polling: done by the time advance returned. */
    struct rec *all[] = {&rc, &rchild, &rv};
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(atomic_load(&all[i]->runs), 1);
        CHECK_EQ(all[i]->err, ETIMEDOUT);
        CHECK(pthread_equal(all[i]->thread, pthread_self())); /* on the advancing thread */
        CHECK_EQ(all[i]->now, T0 + 100);
    }
    cctx_release(v);
    cctx_release(child);
    cctx_release(c);
    cctx_fake_clock_stop();
}

TEST(fakeclock_several_deadlines_fire_in_deadline_order)
{
    enum { N = 8 };
    static const int offsets[N] = {500, 100, 800, 300, 700, 200, 600, 400};
    cctx_fake_clock_start(T0);
    int log[N], log_n = 0;
    cctx_t *c[N];
    struct rec r[N];
    int lines[N];
    for (int i = 0; i < N; i++) {
        lines[i] = __LINE__; c[i] = cctx_with_deadline(cctx_background(), T0 + offsets[i], NULL);
        rec_watch(&r[i], c[i]);
        r[i].log = log;
        r[i].log_n = &log_n;
        r[i].id = i;
    }
    cctx_fake_clock_advance(250); /* 100 and 200 */
    CHECK_EQ(log_n, 2);
    CHECK_EQ(offsets[log[0]], 100);
    CHECK_EQ(offsets[log[1]], 200);
    cctx_fake_clock_advance(1000); /* the rest, in one step */
    CHECK_EQ(log_n, N);
    for (int i = 0; i < N; i++)
        CHECK_EQ(offsets[log[i]], 100 * (i + 1));
    for (int i = 0; i < N; i++) {
        cctx_cause_t cause;
        CHECK_EQ(cctx_cause(c[i], &cause), ETIMEDOUT);
        CHECK_EQ(cause.line, lines[i]);
        /* The clock stepped to each deadline to fire it. */
        CHECK_EQ(cause.when, T0 + offsets[i]);
        CHECK_EQ(r[i].now, T0 + offsets[i]);
    }
    for (int i = 1; i < N; i++) {
        /* Firing order and recorded times agree. */
        cctx_cause_t prev, cause;
        cctx_cause(c[log[i - 1]], &prev);
        cctx_cause(c[log[i]], &cause);
        CHECK(prev.when <= cause.when);
    }
    for (int i = 0; i < N; i++)
        cctx_release(c[i]);
    cctx_fake_clock_stop();
}

TEST(fakeclock_descendants_of_a_fired_deadline_report_its_site_and_time)
{
    cctx_fake_clock_start(T0);
    const int line = __LINE__; cctx_t *p = cctx_with_timeout(cctx_background(), CCTX_MSEC(50), NULL);
    cctx_t *v = cctx_with_value(p, &line, NULL, NULL);
    cctx_t *c = cctx_with_cancel(v, NULL);
    cctx_t *later = cctx_with_timeout_cause(c, CCTX_SEC(1), 5, "later", NULL);
    cctx_fake_clock_advance(CCTX_MSEC(50));
    const int64_t when = T0 + CCTX_MSEC(50);
    cctx_t *all[] = {p, v, c, later};
    for (int i = 0; i < 4; i++)
        check_site(all[i], ETIMEDOUT, 0, "context deadline exceeded", line, __func__, when);
    for (int i = 3; i >= 0; i--)
        cctx_release(all[i]);
    cctx_fake_clock_stop();
}

TEST(fakeclock_cancel_records_the_virtual_time)
{
    cctx_fake_clock_start(T0);
    cctx_fake_clock_advance(777);
    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_timeout(cctx_background(), 1000, &cancel);
    const int line = __LINE__; cctx_cancel(cancel);
    check_site(c, ECANCELED, 0, "context canceled", line, __func__, T0 + 777);
    cctx_release(c);
    cctx_fake_clock_stop();
}

TEST(fakeclock_cancel_before_the_deadline_disarms_it)
{
    cctx_fake_clock_start(T0);
    long armed = cctx__test_armed_timers();
    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_timeout(cctx_background(), 100, &cancel);
    struct rec r;
    rec_watch(&r, c);
    cctx_fake_clock_advance(50);
    const int line = __LINE__; cctx_cancel(cancel);
    CHECK_EQ(cctx__test_armed_timers(), armed);
    cctx_fake_clock_advance(1000);
    check_site(c, ECANCELED, 0, "context canceled", line, __func__, T0 + 50);
    CHECK_EQ(atomic_load(&r.runs), 1);
    CHECK_EQ(r.err, ECANCELED);
    cctx_release(c);
    cctx_fake_clock_stop();
}

TEST(fakeclock_release_before_the_deadline_disarms_it)
{
    cctx_fake_clock_start(T0);
    long armed = cctx__test_armed_timers();
    cctx_t *c = cctx_with_timeout(cctx_background(), 100, NULL);
    cctx_t *quiet = cctx_with_timeout(cctx_background(), 100, NULL); /* no after-function */
    struct rec r;
    rec_watch(&r, c);
    CHECK_EQ(cctx__test_armed_timers(), armed + 2);
    cctx_release(c);
    cctx_release(quiet);
    CHECK_EQ(cctx__test_armed_timers(), armed);
    CHECK_EQ(atomic_load(&r.runs), 1);
    CHECK_EQ(r.err, ECANCELED); /* ended by the release, not by the deadline */
    cctx_fake_clock_advance(1000);
    CHECK_EQ(atomic_load(&r.runs), 1);
    cctx_fake_clock_stop();
}

TEST(fakeclock_past_deadlines_are_born_done_at_the_virtual_now)
{
    cctx_fake_clock_start(T0);
    long armed = cctx__test_armed_timers();
    const int l1 = __LINE__; cctx_t *a = cctx_with_deadline(cctx_background(), T0, NULL);
    const int l2 = __LINE__; cctx_t *b = cctx_with_deadline_cause(cctx_background(), T0 - 1, 3, "old", NULL);
    const int l3 = __LINE__; cctx_t *c = cctx_with_timeout(cctx_background(), 0, NULL);
    const int l4 = __LINE__; cctx_t *d = cctx_with_timeout(cctx_background(), -1, NULL);
    check_site(a, ETIMEDOUT, 0, "context deadline exceeded", l1, __func__, T0);
    check_site(b, ETIMEDOUT, 3, "old", l2, __func__, T0);
    check_site(c, ETIMEDOUT, 0, "context deadline exceeded", l3, __func__, T0);
    check_site(d, ETIMEDOUT, 0, "context deadline exceeded", l4, __func__, T0);
    CHECK_EQ(cctx_remaining(b), -1);
    CHECK_EQ(cctx__test_armed_timers(), armed);
    cctx_t *e = cctx_with_timeout(cctx_background(), 1, NULL);
    CHECK_EQ(cctx_err(e), 0);
    cctx_release(a);
    cctx_release(b);
    cctx_release(c);
    cctx_release(d);
    cctx_release(e);
    cctx_fake_clock_stop();
}

TEST(fakeclock_real_time_does_not_fire_virtual_deadlines)
{
    cctx_fake_clock_start(T0);
    cctx_t *c = cctx_with_timeout(cctx_background(), CCTX_MSEC(1), NULL);
    real_sleep_ms(30);
    CHECK_EQ(cctx_err(c), 0);
    CHECK_EQ(cctx_wait(c, 0), 0);
    cctx_fake_clock_advance(CCTX_MSEC(1));
    CHECK_EQ(cctx_err(c), ETIMEDOUT);
    cctx_release(c);
    cctx_fake_clock_stop();
}

/* A deadline armed under the fake clock and still pending when it stops is
 * measured on the real clock, whose value (time since boot) is far past 1 ns. */
TEST(fakeclock_stop_hands_pending_deadlines_to_the_real_clock)
{
    cctx_fake_clock_start(0);
    const int line = __LINE__; cctx_t *c = cctx_with_deadline(cctx_background(), 1, NULL);
    CHECK_EQ(cctx_err(c), 0);
    int64_t t0 = real_now();
    cctx_fake_clock_stop();
    CHECK_EQ(cctx_wait(c, CCTX_SEC(10)), ETIMEDOUT);
    int64_t t = real_now() - t0;
    fprintf(stderr, "overdue deadline fired %.3f ms after the fake clock stopped\n", t / 1e6);
    CHECK(t < CCTX_SEC(5));
    cctx_cause_t cause;
    CHECK_EQ(cctx_cause(c, &cause), ETIMEDOUT);
    CHECK_EQ(cause.line, line);
    CHECK(cause.when >= t0);
    cctx_release(c);
}

/* ---- after-functions that touch other deadlines while the clock moves --------- */

struct releaser {
    cctx_t *victim;
};

static void release_victim(void *arg)
{
    struct releaser *r = arg;
    cctx_release(r->victim);
}

TEST(fakeclock_after_function_may_release_a_deadline_due_in_the_same_advance)
{
    cctx__test_count_allocs(true);
    long start = cctx__test_live_allocs();
    cctx_fake_clock_start(T0);
    cctx_t *a = cctx_with_timeout(cctx_background(), 100, NULL);
    cctx_t *b = cctx_with_timeout(cctx_background(), 200, NULL);
    struct rec rb;
    rec_watch(&rb, b);
    struct releaser rel = {b};
    cctx_after_t reg;
    memset(&reg, 0, sizeof reg);
    CHECK_EQ(cctx_after_func(a, &reg, release_victim, &rel), 0);
    cctx_fake_clock_advance(1000); /* a fires, its fn frees b, whose deadline is also due */
    CHECK_EQ(atomic_load(&rb.runs), 1);
    /* Ended by the release, or by its own deadline if it fired before a's
     * after-function ran: either way exactly once, and nothing used after free. */
    CHECK(rb.err == ECANCELED || rb.err == ETIMEDOUT);
    CHECK_EQ(cctx_err(a), ETIMEDOUT);
    CHECK_EQ(cctx__test_armed_timers(), 0);
    cctx_release(a);
    CHECK_EQ(cctx__test_live_allocs(), start);
    cctx__test_count_allocs(false);
    cctx_fake_clock_stop();
}

struct deriver {
    cctx_t *made;
    int64_t now;
};

static void derive_in_fn(void *arg)
{
    struct deriver *d = arg;
    d->now = cctx_now();
    d->made = cctx_with_timeout(cctx_background(), 50, NULL);
}

/* The fake clock started at T0, and a deadline due at T0 + 100 whose
 * after-function derives a 50 ns timeout into d. */
static cctx_t *due_at_100_deriving_in_fn(struct deriver *d, cctx_after_t *reg)
{
    cctx_fake_clock_start(T0);
    cctx_t *a = cctx_with_timeout(cctx_background(), 100, NULL);
    memset(reg, 0, sizeof *reg);
    CHECK_EQ(cctx_after_func(a, reg, derive_in_fn, d), 0);
    return a;
}

TEST(fakeclock_after_function_may_arm_a_new_deadline)
{
    struct deriver d = {0};
    cctx_after_t reg;
    cctx_t *a = due_at_100_deriving_in_fn(&d, &reg);
    cctx_fake_clock_advance(100);
    CHECK(d.made != NULL);
    CHECK_EQ(d.now, T0 + 100);
    CHECK_EQ(cctx_err(d.made), 0);
    CHECK_EQ(cctx_remaining(d.made), 50);
    cctx_fake_clock_advance(49);
    CHECK_EQ(cctx_err(d.made), 0);
    cctx_fake_clock_advance(1);
    CHECK_EQ(cctx_err(d.made), ETIMEDOUT);
    cctx_release(d.made);
    cctx_release(a);
    cctx_fake_clock_stop();
}

struct mover {
    int64_t now_before, now_after;
    cctx_t *other;
    int other_err;
};

static void advance_in_fn(void *arg)
{
    struct mover *m = arg;
    m->now_before = cctx_now();
    cctx_fake_clock_advance(50); /* "any cctx function", testing.h's too */
    m->now_after = cctx_now();
    m->other_err = cctx_err(m->other);
}

static void nested_advance(void)
{
    cctx_fake_clock_start(T0);
    cctx_t *a = cctx_with_timeout(cctx_background(), 100, NULL);
    cctx_t *b = cctx_with_timeout(cctx_background(), 140, NULL);
    struct mover m = {.other = b};
    cctx_after_t reg;
    memset(&reg, 0, sizeof reg);
    CHECK_EQ(cctx_after_func(a, &reg, advance_in_fn, &m), 0);
    cctx_fake_clock_advance(100);
    CHECK_EQ(m.now_before, T0 + 100);
    CHECK_EQ(m.now_after, T0 + 150);
    CHECK_EQ(m.other_err, ETIMEDOUT); /* due at T0 + 140, fired by the nested advance */
    CHECK_EQ(cctx_now(), T0 + 150);
    cctx_release(b);
    cctx_release(a);
    cctx_fake_clock_stop();
}

/* ---- stepping through an advance ------------------------------------------------------ */

TEST(fakeclock_advance_steps_the_clock_to_each_deadline_it_fires)
{
    struct deriver d = {0};
    cctx_after_t reg;
    cctx_t *a = due_at_100_deriving_in_fn(&d, &reg);
    cctx_fake_clock_advance(300); /* past a, and past what a's fn derives */
    cctx_cause_t cause;
    CHECK_EQ(cctx_cause(a, &cause), ETIMEDOUT);
    CHECK_EQ(cause.when, T0 + 100);
    CHECK_EQ(d.now, T0 + 100);
    /* Derived at T0 + 100 with 50 to go: due within the same advance. */
    CHECK_EQ(cctx_cause(d.made, &cause), ETIMEDOUT);
    CHECK_EQ(cause.when, T0 + 150);
    CHECK_EQ(cctx_now(), T0 + 300);
    cctx_release(d.made);
    cctx_release(a);
    cctx_fake_clock_stop();
}

static void start_again_at_t0(void *arg)
{
    (void)arg;
    cctx_fake_clock_start(T0);
}

TEST(fakeclock_after_function_that_starts_the_clock_anew_ends_the_advance)
{
    cctx_fake_clock_start(T0);
    cctx_t *a = cctx_with_timeout(cctx_background(), 100, NULL);
    cctx_t *b = cctx_with_timeout(cctx_background(), 200, NULL);
    cctx_after_t reg;
    memset(&reg, 0, sizeof reg);
    CHECK_EQ(cctx_after_func(a, &reg, start_again_at_t0, NULL), 0);
    cctx_fake_clock_advance(300);
    CHECK_EQ(cctx_err(a), ETIMEDOUT);
    /* The clock is at T0 again: b, due at T0 + 200, is not due on it. */
    CHECK_EQ(cctx_now(), T0);
    CHECK_EQ(cctx_err(b), 0);
    cctx_fake_clock_advance(200);
    CHECK_EQ(cctx_err(b), ETIMEDOUT);
    cctx_release(b);
    cctx_release(a);
    cctx_fake_clock_stop();
}

/* After-functions run "outside the library's locks", so one run by
 * cctx_fake_clock_advance may itself move the clock. */
TEST(fakeclock_after_function_may_advance_the_clock)
{
    run_with_watchdog(nested_advance, 20);
}

/* ---- the deadline racing with a cancel ----------------------------------------------- */

static void race_cancel(void *cancel)
{
    cctx_cancel_cause(cancel, 77, "mine");
}

TEST(fakeclock_deadline_racing_with_cancel_has_one_winner)
{
    const int rounds = TEST_UNDER_TSAN ? 100 : 1000;
    int fired = 0, canceled = 0;
    cctx_fake_clock_start(T0);
    for (int i = 0; i < rounds; i++) {
        cctx_cancel_t *cancel;
        cctx_t *c = cctx_with_timeout_cause(cctx_background(), 1, 55, "slow", &cancel);
        cctx_t *child = cctx_with_cancel(c, NULL);
        struct rec r;
        rec_watch(&r, c);
        struct gang gang;
        gang_init(&gang, 1, true);
        gang_spawn(&gang, race_cancel, cancel);
        gang_go(&gang);
        cctx_fake_clock_advance(1);
        gang_join(&gang);
        cctx_cause_t cause;
        int err = cctx_cause(c, &cause);
        if (err == ETIMEDOUT) {
            CHECK_EQ(cause.code, 55);
            CHECK_STR(cause.msg, "slow");
            fired++;
        } else {
            CHECK_EQ(err, ECANCELED);
            CHECK_EQ(cause.code, 77);
            CHECK_STR(cause.msg, "mine");
            canceled++;
        }
        cctx_cause_t cc;
        CHECK_EQ(cctx_cause(child, &cc), err);
        CHECK_EQ(cc.code, cause.code);
        CHECK_EQ(atomic_load(&r.runs), 1);
        CHECK_EQ(r.err, err);
        cctx_release(child);
        cctx_release(c);
    }
    fprintf(stderr, "deadline won %d times, cancel %d times\n", fired, canceled);
    CHECK_EQ(cctx__test_armed_timers(), 0);
    cctx_fake_clock_stop();
}

/* ---- waiting on the fake clock ---------------------------------------------------------- */

struct sleeper {
    cctx_t *ctx;
    int64_t duration;
    bool wait; /* cctx_wait instead of cctx_sleep */
    int64_t before, after;
    int result;
    atomic_int started, finished;
};

static void *sleeper_main(void *arg)
{
    struct sleeper *s = arg;
    s->before = cctx_now();
    atomic_store(&s->started, 1);
    s->result = s->wait ? cctx_wait(s->ctx, s->duration) : cctx_sleep(s->ctx, s->duration);
    s->after = cctx_now();
    atomic_store(&s->finished, 1);
    return NULL;
}

/* Moves the fake clock in `step`s, once a waiting thread has started, until
 * it has finished; fails after 5 s of real time. */
static void advance_until_done(atomic_int *started, atomic_int *finished, int64_t step)
{
    int64_t real0 = real_now();
    while (!atomic_load(finished)) {
        CHECK(real_now() - real0 < CCTX_SEC(5));
        if (atomic_load(started))
            cctx_fake_clock_advance(step);
        real_sleep_ms(1);
    }
}

TEST(fakeclock_sleep_ends_when_another_thread_advances_the_clock)
{
    cctx_fake_clock_start(T0);
    struct sleeper s = {.ctx = cctx_background(), .duration = CCTX_SEC(3600)};
    pthread_t t;
    int64_t real0 = real_now();
    CHECK_EQ(pthread_create(&t, NULL, sleeper_main, &s), 0);
    advance_until_done(&s.started, &s.finished, CCTX_SEC(60));
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_EQ(s.result, 0); /* the full duration passed */
    CHECK(s.after - s.before >= CCTX_SEC(3600));
    CHECK(real_now() - real0 < CCTX_SEC(5)); /* an hour of virtual time, not of real time */
    cctx_fake_clock_stop();
}

TEST(fakeclock_sleep_does_not_end_before_the_full_duration)
{
    cctx_fake_clock_start(T0);
    cctx_t *c = cctx_with_cancel(cctx_background(), NULL);
    struct sleeper s = {.ctx = c, .duration = 1000};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, sleeper_main, &s), 0);
    while (!atomic_load(&s.started))
        real_sleep_ms(1);
    real_sleep_ms(10); /* most likely asleep by now; if not, it only sleeps longer */
    cctx_fake_clock_advance(999);
    real_sleep_ms(30);
    CHECK_EQ(atomic_load(&s.finished), 0); /* 1 ns short */
    advance_until_done(&s.started, &s.finished, 1);
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_EQ(s.result, 0);
    CHECK(s.after - s.before >= 1000);
    cctx_release(c);
    cctx_fake_clock_stop();
}

TEST(fakeclock_sleep_is_cut_short_by_a_virtual_deadline)
{
    cctx_fake_clock_start(T0);
    cctx_t *c = cctx_with_timeout(cctx_background(), CCTX_SEC(60), NULL);
    struct sleeper s = {.ctx = c, .duration = CCTX_SEC(3600)};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, sleeper_main, &s), 0);
    while (!atomic_load(&s.started))
        real_sleep_ms(1);
    /* Move the clock to the deadline and no further. */
    for (int i = 0; i < 6; i++)
        cctx_fake_clock_advance(CCTX_SEC(10));
    CHECK_EQ(cctx_err(c), ETIMEDOUT);
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_EQ(s.result, ETIMEDOUT);
    CHECK_EQ(s.after, T0 + CCTX_SEC(60));
    cctx_release(c);
    cctx_fake_clock_stop();
}

TEST(fakeclock_wait_timeout_ends_when_another_thread_advances_the_clock)
{
    cctx_fake_clock_start(T0);
    cctx_t *c = cctx_with_cancel(cctx_background(), NULL);
    struct sleeper s = {.ctx = c, .duration = CCTX_SEC(10), .wait = true};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, sleeper_main, &s), 0);
    advance_until_done(&s.started, &s.finished, CCTX_SEC(1));
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_EQ(s.result, 0); /* the timeout passed first */
    CHECK(s.after - s.before >= CCTX_SEC(10));
    CHECK_EQ(cctx_err(c), 0);
    cctx_release(c);
    cctx_fake_clock_stop();
}

TEST(fakeclock_unlimited_wait_ends_at_a_virtual_deadline)
{
    cctx_fake_clock_start(T0);
    cctx_t *c = cctx_with_timeout(cctx_background(), CCTX_SEC(30), NULL);
    struct sleeper s = {.ctx = c, .duration = -1, .wait = true};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, sleeper_main, &s), 0);
    advance_until_done(&s.started, &s.finished, CCTX_SEC(1));
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_EQ(s.result, ETIMEDOUT);
    CHECK(s.after >= T0 + CCTX_SEC(30));
    cctx_release(c);
    cctx_fake_clock_stop();
}

struct any_waiter {
    cctx_t *ctxs[2];
    int result, err;
    atomic_int started, finished;
};

static void *any_main(void *arg)
{
    struct any_waiter *w = arg;
    atomic_store(&w->started, 1);
    errno = 0;
    w->result = cctx_wait_any(w->ctxs, 2, CCTX_SEC(5));
    w->err = errno;
    atomic_store(&w->finished, 1);
    return NULL;
}

TEST(fakeclock_wait_any_timeout_ends_when_another_thread_advances_the_clock)
{
    cctx_fake_clock_start(T0);
    struct any_waiter w = {.ctxs = {cctx_with_cancel(cctx_background(), NULL),
                                    cctx_with_timeout(cctx_background(), CCTX_SEC(3600), NULL)}};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, any_main, &w), 0);
    advance_until_done(&w.started, &w.finished, CCTX_MSEC(500));
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_EQ(w.result, -1);
    CHECK_EQ(w.err, ETIMEDOUT);
    cctx_release(w.ctxs[0]);
    cctx_release(w.ctxs[1]);
    cctx_fake_clock_stop();
}

/* ---- an advance held by its after-function ------------------------------------------ */

/* An after-function that an advance runs may block (until the test lets it
 * go, 10 s at most): it holds the clock (testing.h), but nothing else the
 * other threads use; they derive, cancel, run their own after-functions and
 * dump meanwhile, on the virtual time the advance has reached. */
static atomic_int advance_held, advance_go;

static void hold_the_advance(void *arg)
{
    (void)arg;
    atomic_store(&advance_held, 1);
    for (int i = 0; i < 10000 && !atomic_load(&advance_go); i++)
        real_sleep_ms(1);
}

static void *advance_by_200(void *arg)
{
    (void)arg;
    cctx_fake_clock_advance(200);
    return NULL;
}

static void count_run(void *arg)
{
    atomic_fetch_add((atomic_int *)arg, 1);
}

TEST(fakeclock_blocking_after_function_of_an_advance_holds_up_only_the_clock)
{
    cctx_fake_clock_start(T0);
    cctx_t *d = cctx_with_timeout(cctx_background(), 100, NULL);
    cctx_after_t held;
    CHECK_EQ(cctx_after_func(d, &held, hold_the_advance, NULL), 0);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, advance_by_200, NULL), 0);
    for (int i = 0; i < 10000 && !atomic_load(&advance_held); i++)
        real_sleep_ms(1);
    CHECK(atomic_load(&advance_held));

    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cancel);
    CHECK(c != NULL);
    atomic_int runs = 0;
    cctx_after_t reg;
    CHECK_EQ(cctx_after_func(c, &reg, count_run, &runs), 0);
    cctx_cancel(cancel);
    CHECK_EQ(atomic_load(&runs), 1);
    CHECK_EQ(cctx_wait(c, 0), ECANCELED);
    cctx_t *later = cctx_with_timeout(cctx_background(), 50, NULL); /* due at T0 + 150 */
    cctx_t *past = cctx_with_deadline(cctx_background(), T0 + 50, NULL);
    CHECK(later && past);
    CHECK_EQ(cctx_err(later), 0);
    CHECK_EQ(cctx_err(past), ETIMEDOUT);
    FILE *out = fopen("/dev/null", "w");
    CHECK(out);
    CHECK_EQ(cctx_dump(c, out, CCTX_DUMP_TEXT), 0);
    fclose(out);
    CHECK_EQ(cctx_now(), T0 + 100); /* where the held advance stands */

    atomic_store(&advance_go, 1);
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_EQ(cctx_err(later), ETIMEDOUT); /* the advance went on past it */
    CHECK_EQ(cctx_now(), T0 + 200);
    cctx_release(past);
    cctx_release(later);
    cctx_release(c);
    cctx_release(d);
    cctx_fake_clock_stop();
}
