/* SPDX-License-Identifier: MIT */
/*
 * cctx_with_grace: the parent's values, not canceled with the parent, ended
 * exactly `grace` after the parent ends (fake clock, to the nanosecond), with
 * a cause naming the grace and the parent's cause; its own cancel and the
 * deadlines under it still work; a parent already ended, or ended without a
 * recorded cause.
 */
#include <cctx.h>
#include <cctx/testing.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "harness.h"
#include "support.h"
#include "testhooks.h"

static const int64_t T0 = CCTX_SEC(1000);
static int key;

/* g reports `deadline` and ends exactly there: still active 1 ns before. */
static void check_ends_at(cctx_t *g, int64_t deadline)
{
    int64_t d;
    CHECK(cctx_deadline(g, &d));
    CHECK_EQ(d, deadline);
    cctx_fake_clock_advance(deadline - cctx_now() - 1);
    check_active(g);
    cctx_fake_clock_advance(1);
    CHECK_EQ(cctx_err(g), ETIMEDOUT);
}

TEST(grace_keeps_values_and_outlives_the_parent_by_exactly_grace)
{
    cctx_fake_clock_start(T0);
    cctx_cancel_t *pc;
    cctx_t *parent = cctx_with_cancel(cctx_background(), &pc);
    cctx_t *v = cctx_with_value(parent, &key, "request 7", NULL);
    cctx_cancel_t *gc;
    int line = __LINE__ + 1;
    cctx_t *g = cctx_with_grace(v, CCTX_SEC(5), &gc);
    CHECK(g && gc);
    CHECK_STR(cctx_value(g, &key), "request 7");
    CHECK(!cctx_deadline(g, NULL)); /* none until the parent ends */
    struct rec r;
    rec_watch(&r, g);

    cctx_fake_clock_advance(CCTX_MSEC(250));
    cctx_cancel(pc);
    CHECK_EQ(cctx_err(parent), ECANCELED);
    check_active(g); /* not canceled with its parent */
    int64_t d;
    CHECK(cctx_deadline(g, &d));
    CHECK_EQ(d, T0 + CCTX_MSEC(250) + CCTX_SEC(5));
    CHECK_EQ(cctx_remaining(g), CCTX_SEC(5));

    cctx_fake_clock_advance(CCTX_SEC(5) - 1);
    check_active(g);
    CHECK_EQ(atomic_load(&r.runs), 0);
    cctx_fake_clock_advance(1);
    CHECK_EQ(atomic_load(&r.runs), 1);
    CHECK_EQ(r.now, T0 + CCTX_MSEC(250) + CCTX_SEC(5));
    check_cause(g, ETIMEDOUT, 0, "grace period of 5s after: context canceled", line, __func__);
    cctx_cause_t why;
    cctx_cause(g, &why);
    CHECK_EQ(why.when, T0 + CCTX_MSEC(250) + CCTX_SEC(5));
    CHECK_STR(cctx_value(g, &key), "request 7"); /* still */

    cctx_release(g);
    cctx_release(v);
    cctx_release(parent);
    cctx_fake_clock_stop();
}

/* A parent whose cancel could not record its cause (out of memory) reports
 * no time; the grace period then counts from its end, not from time 0. */
TEST(grace_after_a_parent_canceled_out_of_memory_still_lasts_grace)
{
    cctx_fake_clock_start(T0);
    cctx_cancel_t *pc;
    cctx_t *parent = cctx_with_cancel(cctx_background(), &pc);
    cctx_t *g = cctx_with_grace(parent, CCTX_SEC(5), NULL);
    CHECK(g);
    cctx_fake_clock_advance(CCTX_MSEC(250));
    cctx__test_fail_alloc(1); /* the cause record of the cancel below */
    cctx_cancel_at(pc, __FILE__, __LINE__, __func__);
    cctx__test_fail_alloc(0);
    cctx_cause_t why;
    CHECK_EQ(cctx_cause(parent, &why), ECANCELED);
    CHECK_STR(why.file, "?"); /* the record could not be made */
    CHECK_EQ(why.when, 0);
    check_active(g);
    check_ends_at(g, T0 + CCTX_MSEC(250) + CCTX_SEC(5));
    cctx_release(g);
    cctx_release(parent);
    cctx_fake_clock_stop();
}

/* A parent that ends at time 0 of the fake clock: its cause's time is 0,
 * which is a time like any other, and the grace counts from it even when
 * the clock has moved on before the grace context learns of the end (here
 * an after-function of the parent that runs first advances it; one is
 * registered on each side of the grace context's, whichever runs first). */
static void advance_a_second(void *arg)
{
    (void)arg;
    cctx_fake_clock_advance(CCTX_SEC(1));
}

TEST(grace_after_a_parent_ended_at_time_zero_counts_from_its_end)
{
    cctx_fake_clock_start(0);
    cctx_cancel_t *pc;
    cctx_t *parent = cctx_with_cancel(cctx_background(), &pc);
    cctx_after_t before, after;
    cctx_after_func(parent, &before, advance_a_second, NULL);
    cctx_t *g = cctx_with_grace(parent, CCTX_SEC(5), NULL);
    cctx_after_func(parent, &after, advance_a_second, NULL);
    cctx_cancel(pc);
    cctx_cause_t why;
    cctx_cause(parent, &why);
    CHECK_EQ(why.when, 0);
    CHECK_EQ(cctx_now(), CCTX_SEC(2));
    check_ends_at(g, CCTX_SEC(5));
    cctx_release(g);
    cctx_release(parent);
    cctx_fake_clock_stop();
}

TEST(grace_after_a_parent_deadline_names_its_cause)
{
    cctx_fake_clock_start(T0);
    cctx_t *parent = cctx_with_timeout_cause(cctx_background(), CCTX_SEC(1), 42,
                                             "request budget spent", NULL);
    cctx_cancel_t *gc;
    int line = __LINE__ + 1;
    cctx_t *g = cctx_with_grace(parent, CCTX_MSEC(1500), &gc);
    cctx_t *child = cctx_with_cancel(g, NULL);
    cctx_fake_clock_advance(CCTX_SEC(1));
    CHECK_EQ(cctx_err(parent), ETIMEDOUT);
    check_active(g);
    check_active(child);
    cctx_fake_clock_advance(CCTX_MSEC(1500) - 1);
    check_active(child);
    cctx_fake_clock_advance(1);
    check_cause(g, ETIMEDOUT, 0, "grace period of 1500ms after: request budget spent", line,
                __func__);
    check_same_cause(child, g);
    cctx_release(child);
    cctx_release(g);
    cctx_release(parent);
    cctx_fake_clock_stop();
}

TEST(grace_own_cancel_and_deadlines_under_it_still_work)
{
    cctx_fake_clock_start(T0);
    cctx_cancel_t *pc;
    cctx_t *parent = cctx_with_cancel(cctx_background(), &pc);
    cctx_cancel_t *gc;
    cctx_t *g = cctx_with_grace(parent, CCTX_SEC(10), &gc);
    /* A deadline under it, earlier than the grace: fires on its own. */
    cctx_t *t = cctx_with_timeout(g, CCTX_SEC(1), NULL);
    CHECK(cctx_deadline(t, NULL));
    cctx_fake_clock_advance(CCTX_SEC(1));
    CHECK_EQ(cctx_err(t), ETIMEDOUT);
    check_active(g);
    /* Its own cancel, before the parent ends. */
    int line = __LINE__ + 1;
    cctx_cancel(gc);
    check_cause(g, ECANCELED, 0, "context canceled", line, __func__);
    check_active(parent);
    /* The parent's end afterwards changes nothing and arms nothing. */
    long armed = cctx__test_armed_timers();
    cctx_cancel(pc);
    CHECK_EQ(cctx__test_armed_timers(), armed);
    cctx_fake_clock_advance(CCTX_SEC(20));
    check_cause(g, ECANCELED, 0, "context canceled", line, __func__);
    cctx_release(t);
    cctx_release(g);
    cctx_release(parent);
    cctx_fake_clock_stop();
}

TEST(grace_own_cancel_during_the_grace_period)
{
    cctx_fake_clock_start(T0);
    cctx_cancel_t *pc;
    cctx_t *parent = cctx_with_cancel(cctx_background(), &pc);
    cctx_cancel_t *gc;
    cctx_t *g = cctx_with_grace(parent, CCTX_SEC(3), &gc);
    cctx_cancel(pc);
    cctx_fake_clock_advance(CCTX_SEC(1));
    cctx_cancel_cause(gc, 9, "cleanup finished");
    CHECK_EQ(cctx_err(g), ECANCELED);
    cctx_fake_clock_advance(CCTX_SEC(5));
    cctx_cause_t why;
    cctx_cause(g, &why);
    CHECK_STR(why.msg, "cleanup finished");
    CHECK_EQ(why.code, 9);
    CHECK_EQ(cctx__test_armed_timers(), 0);
    cctx_release(g);
    cctx_release(parent);
    cctx_fake_clock_stop();
}

TEST(grace_parent_already_ended_counts_from_the_call)
{
    cctx_fake_clock_start(T0);
    cctx_cancel_t *pc;
    cctx_t *parent = cctx_with_cancel(cctx_background(), &pc);
    cctx_cancel_cause(pc, 3, "shutting down");
    cctx_fake_clock_advance(CCTX_SEC(60)); /* long before the call */
    int line = __LINE__ + 1;
    cctx_t *g = cctx_with_grace(parent, CCTX_MSEC(200), NULL);
    check_active(g);
    int64_t d;
    CHECK(cctx_deadline(g, &d));
    CHECK_EQ(d, T0 + CCTX_SEC(60) + CCTX_MSEC(200));
    cctx_fake_clock_advance(CCTX_MSEC(200) - 1);
    check_active(g);
    cctx_fake_clock_advance(1);
    check_cause(g, ETIMEDOUT, 0, "grace period of 200ms after: shutting down", line, __func__);
    cctx_release(g);
    cctx_release(parent);
    cctx_fake_clock_stop();
}

TEST(grace_zero_or_negative_ends_with_the_parent)
{
    cctx_fake_clock_start(T0);
    cctx_cancel_t *pc;
    cctx_t *parent = cctx_with_cancel(cctx_background(), &pc);
    cctx_t *zero = cctx_with_grace(parent, 0, NULL);
    cctx_t *neg = cctx_with_grace(parent, -CCTX_SEC(1), NULL);
    check_active(zero);
    cctx_cancel(pc);
    CHECK_EQ(cctx_err(zero), ETIMEDOUT);
    CHECK_EQ(cctx_err(neg), ETIMEDOUT);
    cctx_cause_t why;
    cctx_cause(zero, &why);
    CHECK_STR(why.msg, "grace period of 0ns after: context canceled");
    CHECK_EQ(why.when, T0);
    cctx_cause(neg, &why);
    CHECK_STR(why.msg, "grace period of -1s after: context canceled");
    cctx_release(zero);
    cctx_release(neg);
    cctx_release(parent);
    cctx_fake_clock_stop();
}

TEST(grace_under_a_root_is_a_plain_cancelable_context)
{
    cctx_cancel_t *gc;
    cctx_t *g = cctx_with_grace(cctx_background(), CCTX_SEC(1), &gc);
    CHECK(g);
    CHECK(!cctx_deadline(g, NULL));
    CHECK_EQ(cctx_wait(g, CCTX_MSEC(1)), 0);
    cctx_cancel(gc);
    CHECK_EQ(cctx_err(g), ECANCELED);
    cctx_release(g);
    CHECK_ERRNO(cctx_with_grace(NULL, 1, &gc), NULL, EINVAL);
    CHECK(gc == NULL);
}

TEST(grace_released_early_frees_everything)
{
    cctx__test_count_allocs(true);
    long before = cctx__test_live_allocs();
    cctx_cancel_t *pc;
    cctx_t *parent = cctx_with_cancel(cctx_background(), &pc);
    for (int i = 0; i < 100; i++) {
        cctx_t *g = cctx_with_grace(parent, CCTX_SEC(1), NULL);
        cctx_release(g); /* before the parent ends: it stops watching it */
    }
    cctx_t *late = cctx_with_grace(parent, CCTX_SEC(100), NULL);
    cctx_cancel(pc);
    CHECK_EQ(cctx__test_armed_timers(), 1);
    cctx_release(late); /* during the grace: disarmed, freed */
    CHECK_EQ(cctx__test_armed_timers(), 0);
    cctx_release(parent);
    CHECK_EQ(cctx__test_live_allocs(), before);
    cctx__test_count_allocs(false);
}

/* The parent ends on one thread while grace contexts are made and released
 * on others: every one ends or is released, nothing stays armed. */
static cctx_t *race_parent;
static void make_and_drop(void *arg)
{
    (void)arg;
    for (int i = 0; i < 2000; i++) {
        cctx_t *g = cctx_with_grace(race_parent, i % 3 ? CCTX_SEC(100) : 0, NULL);
        CHECK(g);
        if (i % 2)
            cctx_wait(g, 0);
        cctx_release(g);
    }
}
static cctx_cancel_t *race_cancel;
static void end_parent(void *arg)
{
    (void)arg;
    cctx_cancel(race_cancel);
}

TEST(grace_racing_the_parent_end)
{
    for (int round = 0; round < 20; round++) {
        race_parent = cctx_with_cancel(cctx_background(), &race_cancel);
        struct gang g;
        gang_init(&g, 3, false);
        gang_spawn(&g, make_and_drop, NULL);
        gang_spawn(&g, make_and_drop, NULL);
        gang_spawn(&g, end_parent, NULL);
        gang_join(&g);
        cctx_release(race_parent);
        CHECK_EQ(cctx__test_armed_timers(), 0);
    }
}

TEST(grace_on_the_real_clock_ends_after_its_period)
{
    cctx_cancel_t *pc;
    cctx_t *parent = cctx_with_cancel(cctx_background(), &pc);
    cctx_t *g = cctx_with_grace(parent, CCTX_MSEC(20), NULL);
    cctx_cancel(pc);
    cctx_cause_t pwhy;
    cctx_cause(parent, &pwhy);
    CHECK_EQ(cctx_wait(g, CCTX_SEC(10)), ETIMEDOUT);
    cctx_cause_t why;
    cctx_cause(g, &why);
    CHECK(why.when >= pwhy.when + CCTX_MSEC(20));
    CHECK(real_now() - pwhy.when < CCTX_SEC(5)); /* generous: shared machines */
    cctx_release(g);
    cctx_release(parent);
}

/* The message is cut to 511 bytes at a whole UTF-8 character: a last
 * character cut in two goes, one that ends exactly at the limit stays. */
static void check_grace_message(const char *parent_msg, size_t want_len, const char *want_tail)
{
    cctx_fake_clock_start(T0);
    cctx_cancel_t *pc;
    cctx_t *parent = cctx_with_cancel(cctx_background(), &pc);
    cctx_t *g = cctx_with_grace(parent, CCTX_MSEC(1), NULL);
    cctx_cancel_cause(pc, 0, parent_msg);
    cctx_fake_clock_advance(CCTX_MSEC(1));
    cctx_cause_t why;
    cctx_cause(g, &why);
    CHECK_EQ(why.err, ETIMEDOUT);
    size_t len = strlen(why.msg);
    CHECK_EQ(len, want_len);
    CHECK_STR(why.msg + len - strlen(want_tail), want_tail);
    cctx_release(g);
    cctx_release(parent);
    cctx_fake_clock_stop();
}

TEST(grace_message_cut_at_a_whole_utf8_character)
{
    /* "grace period of 1ms after: " is 27 bytes: 482 more and a 2-byte
     * character make 511, the most that fits. */
    char m[600];
    memset(m, 'a', 482);
    strcpy(m + 482, "\xc3\xa9");
    check_grace_message(m, 511, "a\xc3\xa9");
    /* One more byte before it: the character would end at 512, and goes. */
    memset(m, 'a', 483);
    strcpy(m + 483, "\xc3\xa9");
    check_grace_message(m, 510, "aaa");
    /* A 3-byte character cut after its first two bytes goes whole. */
    memset(m, 'a', 482);
    strcpy(m + 482, "\xe2\x82\xac");
    check_grace_message(m, 509, "aaa");
}

/* A grace context whose parent is active holds no deadline yet: at the fake
 * clock's end of time, a deadline or timeout derived under it is born done
 * all the same, as under any other parent. */
TEST(grace_not_started_end_of_time_child_with_a_deadline_is_born_done)
{
    cctx_fake_clock_start(0);
    cctx_cancel_t *pc;
    cctx_t *p = cctx_with_cancel(cctx_background(), &pc);
    cctx_t *g = cctx_with_grace(p, CCTX_SEC(1), NULL);
    CHECK(p && g);
    cctx_fake_clock_advance(INT64_MAX);
    check_active(g);
    cctx_t *timeout = cctx_with_timeout(g, 5, NULL); /* saturates to no deadline */
    cctx_t *never = cctx_with_deadline(g, CCTX_NO_DEADLINE, NULL);
    cctx_t *soon = cctx_with_deadline(g, 5, NULL);
    CHECK(timeout && never && soon);
    CHECK_EQ(cctx_err(timeout), ETIMEDOUT);
    CHECK_EQ(cctx_err(never), ETIMEDOUT);
    CHECK_EQ(cctx_err(soon), ETIMEDOUT);
    cctx_release(soon);
    cctx_release(never);
    cctx_release(timeout);
    cctx_release(g);
    cctx_release(p);
    cctx_fake_clock_stop();
}

/* Its own cancel on another thread, between the parent's end giving it a
 * deadline and that deadline going into the timer's heap: the cancel found
 * nothing armed to take out, so the arm must see the cancel and take it out
 * itself. Here the cancel runs inside cctx__timer_arm, before the heap, which
 * is where another thread's can fall. */
static cctx_cancel_t *grace_to_cancel;
static void own_cancel_before_the_arm(struct cctx__timer *t)
{
    (void)t;
    atomic_store(&cctx__timer_arming, NULL);
    cctx_cancel(grace_to_cancel);
}

TEST(grace_own_cancel_while_its_period_is_armed_leaves_nothing_armed)
{
    cctx_fake_clock_start(T0);
    cctx_cancel_t *pc;
    cctx_t *parent = cctx_with_cancel(cctx_background(), &pc);
    cctx_t *g = cctx_with_grace(parent, CCTX_SEC(5), &grace_to_cancel);
    CHECK(g);
    atomic_store(&cctx__timer_arming, own_cancel_before_the_arm);
    cctx_cancel(pc);
    CHECK(atomic_load(&cctx__timer_arming) == NULL); /* the hook ran */
    CHECK_EQ(cctx_err(g), ECANCELED);
    CHECK_EQ(cctx__test_armed_timers(), 0);
    cctx_release(g);
    cctx_release(parent);
    cctx_fake_clock_stop();
}

/* A chain of grace contexts with no grace, each under the one before: the
 * root's end ends them all, each from an after-function of its parent's end
 * (parent_ended). Each used to end in a cancellation nested in the one
 * before, on the same stack, so a long chain overflowed it; now they join
 * the drain of the first, and run in a loop. Ended on a thread with a small
 * stack, so that the test does not depend on the process's stack limit. */
enum { GRACE_CHAIN = 20000, GRACE_CHAIN_STACK = 512 * 1024 };

struct grace_chain {
    cctx_t *c[GRACE_CHAIN + 1];
    cctx_after_t reg[GRACE_CHAIN + 1];
    int ran; /* the after-functions run so far, on the ending thread */
    cctx_cancel_t *cancel;
    bool fake;
};

static void count_run(void *arg)
{
    ((struct grace_chain *)arg)->ran++;
}

static void *end_grace_chain(void *arg)
{
    struct grace_chain *ch = arg;
    if (ch->fake)
        cctx_fake_clock_advance(CCTX_SEC(1));
    else
        cctx_cancel(ch->cancel);
    return NULL;
}

static void check_grace_chain(bool fake)
{
    struct grace_chain *ch = calloc(1, sizeof *ch);
    CHECK(ch);
    ch->fake = fake;
    if (fake) {
        cctx_fake_clock_start(T0);
        ch->c[0] = cctx_with_timeout(cctx_background(), CCTX_SEC(1), &ch->cancel);
    } else {
        ch->c[0] = cctx_with_cancel(cctx_background(), &ch->cancel);
    }
    CHECK(ch->c[0]);
    for (int i = 1; i <= GRACE_CHAIN; i++) {
        ch->c[i] = cctx_with_grace(ch->c[i - 1], 0, NULL);
        CHECK(ch->c[i]);
        CHECK_EQ(cctx_after_func(ch->c[i], &ch->reg[i], count_run, ch), 0);
    }
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, GRACE_CHAIN_STACK);
    pthread_t th;
    CHECK_EQ(pthread_create(&th, &attr, end_grace_chain, ch), 0);
    pthread_attr_destroy(&attr);
    pthread_join(th, NULL);
    /* Every one ended, and its after-function ran, before the call that
     * ended the root returned. */
    CHECK_EQ(ch->ran, GRACE_CHAIN);
    for (int i = 1; i <= GRACE_CHAIN; i++)
        CHECK_EQ(cctx_err(ch->c[i]), ETIMEDOUT);
    for (int i = GRACE_CHAIN; i >= 0; i--)
        cctx_release(ch->c[i]);
    if (fake)
        cctx_fake_clock_stop();
    free(ch);
}

TEST(grace_long_chain_ended_by_a_cancel_ends_in_a_loop_not_a_recursion)
{
    check_grace_chain(false);
}

TEST(grace_long_chain_ended_by_a_fake_deadline_ends_in_a_loop_not_a_recursion)
{
    check_grace_chain(true);
}

/* What a zero grace's end reaches joins the after-functions the cancelling
 * thread runs for the parent's end: the grace context's then run after the
 * parent's own (ahead of them once, in a drain nested in parent_ended), and
 * still before the cancel returns. docs/shutdown.md says so. */
struct ran_order {
    int who[3];
    int n;
};

static void note_parent(void *arg)
{
    struct ran_order *o = arg;
    o->who[o->n++] = 1;
}

static void note_grace(void *arg)
{
    struct ran_order *o = arg;
    o->who[o->n++] = 2;
}

TEST(grace_of_zero_runs_its_after_functions_after_the_parents_on_the_cancelling_thread)
{
    struct ran_order o = {.n = 0};
    cctx_cancel_t *pc;
    cctx_t *parent = cctx_with_cancel(cctx_background(), &pc);
    CHECK(parent);
    cctx_t *g = cctx_with_grace(parent, 0, NULL);
    CHECK(g);
    cctx_after_t on_grace, on_parent;
    CHECK_EQ(cctx_after_func(g, &on_grace, note_grace, &o), 0);
    CHECK_EQ(cctx_after_func(parent, &on_parent, note_parent, &o), 0);
    cctx_cancel(pc);
    CHECK_EQ(o.n, 2);
    CHECK_EQ(o.who[0], 1);
    CHECK_EQ(o.who[1], 2);
    CHECK_EQ(cctx_err(g), ETIMEDOUT);
    cctx_release(g);
    cctx_release(parent);
}

/* The same chain, ended while another thread lets go of it from the leaf
 * up: a grace context freed while its parent_ended waits in the drain it
 * joined is taken out of that drain's queue (a stop of a queued
 * registration), and the drain waits for that before it ends. */
enum { GRACE_RACE_CHAIN = 200, GRACE_RACE_ROUNDS = 50 };

struct grace_race {
    cctx_t *c[GRACE_RACE_CHAIN + 1];
    cctx_cancel_t *cancel;
};

static void *cancel_grace_race(void *arg)
{
    cctx_cancel(((struct grace_race *)arg)->cancel);
    return NULL;
}

TEST(grace_long_chain_released_while_it_ends_frees_everything)
{
    cctx__test_count_allocs(true);
    long before = cctx__test_live_allocs();
    for (int round = 0; round < GRACE_RACE_ROUNDS; round++) {
        struct grace_race r;
        r.c[0] = cctx_with_cancel(cctx_background(), &r.cancel);
        CHECK(r.c[0]);
        for (int i = 1; i <= GRACE_RACE_CHAIN; i++) {
            r.c[i] = cctx_with_grace(r.c[i - 1], 0, NULL);
            CHECK(r.c[i]);
        }
        pthread_t th;
        CHECK_EQ(pthread_create(&th, NULL, cancel_grace_race, &r), 0);
        for (int i = GRACE_RACE_CHAIN; i >= 1; i--)
            cctx_release(r.c[i]);
        pthread_join(th, NULL);
        cctx_release(r.c[0]);
    }
    CHECK_EQ(cctx__test_live_allocs(), before);
    cctx__test_count_allocs(false);
}
