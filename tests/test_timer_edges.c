/* SPDX-License-Identifier: MIT */
/*
 * Edges of the process timer (src/timer.c): an advance of the fake clock
 * whose after-function stops the clock ends there, and the deadlines it had
 * still to fire fire on the real clock, by the timer thread; a deadline that
 * an advance passes between its derivation's look at the clock and its arm
 * ends at once, by the derivation, or by the advance if it took the deadline
 * off the heap first, never by both (the advance is made to come there
 * through timer.c's hooks cctx__timer_arming and cctx__timer_armed); a
 * deadline whose parent is canceled between its attach and its arm is
 * left in no heap; deadlines due together on the real clock fire earliest
 * first whatever shards they were armed in, so a child whose own deadline
 * came first reports its own cause, not its parent's, even when a deadline
 * the scan saw first in a shard is gone before the scan pops there.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/testing.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "harness.h"
#include "layout.h"
#include "support.h"
#include "testhooks.h"

/* ---- an after-function that stops the fake clock ------------------------------ */

static void stop_the_clock(void *arg)
{
    (void)arg;
    cctx_fake_clock_stop();
}

/* Years ahead of CLOCK_MONOTONIC (about 3 years): a deadline there, once the
 * fake clock stops, is one the real clock does not reach while the test runs. */
static const int64_t FAR = CCTX_SEC(100000000);

static void stop_inside_an_advance(void)
{
    cctx_fake_clock_start(FAR);
    cctx_t *a = cctx_with_timeout(cctx_background(), CCTX_SEC(1), NULL);
    cctx_t *b = cctx_with_timeout(cctx_background(), CCTX_SEC(2), NULL);
    cctx_after_t reg;
    CHECK_EQ(cctx_after_func(a, &reg, stop_the_clock, NULL), 0);
    cctx_fake_clock_advance(CCTX_SEC(3)); /* b is due in it, after a */
    CHECK_EQ(cctx_err(a), ETIMEDOUT);
    /* b, due on the fake clock when it stopped, is a point on the real
     * clock now, years away: still armed, not fired by the advance. */
    CHECK_EQ(cctx_err(b), 0);
    CHECK_EQ(cctx__test_armed_timers(), 1);
    int64_t lo = real_now(), n = cctx_now(), hi = real_now();
    CHECK(n >= lo && n <= hi); /* the clock stopped: cctx_now is the real one */
    cctx_release(b);
    CHECK_EQ(cctx__test_armed_timers(), 0);
    cctx_release(a);
}

TEST(timer_fake_advance_returns_when_an_after_function_stops_the_clock)
{
    run_with_watchdog(stop_inside_an_advance, 10);
}

static void stop_inside_an_advance_behind_the_real_clock(void)
{
    /* The fake clock starts 1 ns after boot: far behind the real clock. */
    cctx_fake_clock_start(1);
    cctx_t *a = cctx_with_deadline(cctx_background(), 2, NULL);
    const int line = __LINE__ + 1; /* b's */
    cctx_t *b = cctx_with_deadline(cctx_background(), 3, NULL);
    cctx_t *c = cctx_with_deadline(cctx_background(), FAR, NULL);
    cctx_after_t reg;
    CHECK_EQ(cctx_after_func(a, &reg, stop_the_clock, NULL), 0);
    struct rec rb;
    rec_on(&rb, b);
    cctx_fake_clock_advance(FAR); /* a, b and c are due in it, in that order */
    CHECK_EQ(cctx_err(a), ETIMEDOUT);
    /* b's deadline, 3 ns after boot, is past on the real clock: the timer
     * thread fires it, and a runner runs its after-function. */
    CHECK_EQ(cctx_wait(b, -1), ETIMEDOUT);
    check_cause(b, ETIMEDOUT, 0, "context deadline exceeded", line, __func__);
    while (atomic_load(&rb.runs) == 0)
        sched_yield();
    CHECK_EQ(atomic_load(&rb.runs), 1);
    CHECK(!pthread_equal(rb.thread, pthread_self()));
    /* c's, years away on the real clock, stays armed. */
    CHECK_EQ(cctx_err(c), 0);
    CHECK_EQ(cctx__test_armed_timers(), 1);
    cctx_release(c);
    cctx_release(b);
    cctx_release(a);
}

TEST(timer_deadlines_left_due_when_an_after_function_stops_the_fake_clock_fire_on_the_real_clock)
{
    run_with_watchdog(stop_inside_an_advance_behind_the_real_clock, 10);
}

/* ---- an advance on another thread between a derivation's look at the clock and its arm ---- */

/* What the advance does when it comes at that instant; here on the arming
 * thread, inside cctx__timer_arm before t is in its heap, which is where
 * another thread's advance can fall. */
static void advance_before_the_arm(struct cctx__timer *t)
{
    (void)t;
    atomic_store(&cctx__timer_arming, NULL);
    cctx_fake_clock_advance(CCTX_MSEC(10));
}

TEST(timer_deadline_an_advance_passes_while_it_is_derived_ends_before_the_derivation_returns)
{
    cctx_fake_clock_start(CCTX_SEC(1));
    atomic_store(&cctx__timer_arming, advance_before_the_arm);
    const int line = __LINE__ + 1;
    cctx_t *c = cctx_with_timeout(cctx_background(), CCTX_MSEC(5), NULL);
    CHECK(atomic_load(&cctx__timer_arming) == NULL); /* the hook ran */
    CHECK_EQ(cctx_err(c), ETIMEDOUT);
    check_cause(c, ETIMEDOUT, 0, "context deadline exceeded", line, __func__);
    CHECK_EQ(cctx__test_armed_timers(), 0);
    cctx_release(c);
    cctx_fake_clock_stop();
}

TEST(timer_grace_an_advance_passes_while_it_is_armed_ends_at_once)
{
    cctx_fake_clock_start(CCTX_SEC(1));
    cctx_cancel_t *pc;
    cctx_t *parent = cctx_with_cancel(cctx_background(), &pc);
    cctx_t *g = cctx_with_grace(parent, CCTX_MSEC(5), NULL);
    atomic_store(&cctx__timer_arming, advance_before_the_arm);
    cctx_cancel(pc); /* the grace period starts: armed 5 ms ahead */
    CHECK(atomic_load(&cctx__timer_arming) == NULL);
    CHECK_EQ(cctx_wait(g, 0), ETIMEDOUT);
    CHECK_EQ(cctx__test_armed_timers(), 0);
    cctx_release(g);
    cctx_release(parent);
    cctx_fake_clock_stop();
}

/* ---- an advance that pops the deadline while its derivation finds it due ---------------- */

static atomic_int popped_held, popped_may_fire;
static pthread_t advancer;

static void hold_what_is_popped(struct cctx__timer *t)
{
    (void)t;
    atomic_store(&popped_held, 1);
    while (!atomic_load(&popped_may_fire))
        real_sleep_ms(1);
}

static void *advance_10ms(void *arg)
{
    (void)arg;
    cctx_fake_clock_advance(CCTX_MSEC(10));
    return NULL;
}

/* Just after t is in its heap: another thread's advance steps past it and
 * pops it, and is held there, with t in hand and not yet fired. */
static void advance_and_pop_after_the_arm(struct cctx__timer *t)
{
    (void)t;
    atomic_store(&cctx__timer_armed, NULL);
    atomic_store(&cctx__timer_popped, hold_what_is_popped);
    CHECK_EQ(pthread_create(&advancer, NULL, advance_10ms, NULL), 0);
    while (!atomic_load(&popped_held))
        real_sleep_ms(1);
}

static void derive_while_an_advance_pops_it(void)
{
    cctx_fake_clock_start(CCTX_SEC(1));
    atomic_store(&cctx__timer_armed, advance_and_pop_after_the_arm);
    const int line = __LINE__ + 1;
    cctx_t *c = cctx_with_timeout_cause(cctx_background(), CCTX_MSEC(5), 7, "slow disk", NULL);
    /* The derivation saw it due but did not end it: the advance has it in
     * hand, and the two would both fill the cause record built into it. */
    CHECK_EQ(cctx_err(c), 0);
    atomic_store(&popped_may_fire, 1);
    CHECK_EQ(pthread_join(advancer, NULL), 0);
    atomic_store(&cctx__timer_popped, NULL);
    CHECK_EQ(cctx_err(c), ETIMEDOUT);
    check_cause(c, ETIMEDOUT, 7, "slow disk", line, __func__);
    cctx_cause_t cause;
    cctx_cause(c, &cause);
    CHECK_EQ(cause.when, CCTX_SEC(1) + CCTX_MSEC(5));
    CHECK_EQ(cctx__test_armed_timers(), 0);
    cctx_release(c);
    cctx_fake_clock_stop();
}

TEST(timer_deadline_an_advance_pops_while_its_derivation_finds_it_due_fires_once)
{
    run_with_watchdog(derive_while_an_advance_pops_it, 20);
}

/* ---- an advance that raced a stop ------------------------------------------------------ */

/* An advance that saw the fake clock running, then waited for the clock's
 * lock while another thread stopped the clock, must not turn it back on:
 * the stop was the program's last word. The stop is made from an
 * after-function of an advance on the main thread, which holds that lock,
 * once the second advance is seen blocked on it. */
static _Atomic pid_t racing_advancer;
static atomic_int racing_advance_done;
static pthread_t racing_thread;

static void *advance_a_little(void *arg)
{
    (void)arg;
    atomic_store(&racing_advancer, thread_id());
    cctx_fake_clock_advance(CCTX_MSEC(5));
    atomic_store(&racing_advance_done, 1);
    return NULL;
}

static void stop_while_another_advance_waits(void *arg)
{
    (void)arg;
    CHECK_EQ(pthread_create(&racing_thread, NULL, advance_a_little, NULL), 0);
    while (atomic_load(&racing_advancer) == 0)
        real_sleep_ms(1);
    wait_until_blocked(atomic_load(&racing_advancer)); /* on the clock's lock */
    CHECK(!atomic_load(&racing_advance_done));
    cctx_fake_clock_stop();
}

static void body_advance_racing_a_stop(void)
{
    cctx_fake_clock_start(0);
    cctx_t *d = cctx_with_timeout(cctx_background(), CCTX_MSEC(10), NULL);
    CHECK(d);
    cctx_after_t reg;
    CHECK_EQ(cctx_after_func(d, &reg, stop_while_another_advance_waits, NULL), 0);
    cctx_fake_clock_advance(CCTX_MSEC(10));
    CHECK_EQ(pthread_join(racing_thread, NULL), 0);
    /* The real monotonic clock again: far past the fake clock's 15 ms. */
    CHECK(cctx_now() >= real_now() - CCTX_SEC(1));
    /* And a real deadline fires on it. */
    cctx_t *r = cctx_with_timeout(cctx_background(), CCTX_MSEC(20), NULL);
    CHECK(r);
    CHECK_EQ(cctx_wait(r, CCTX_SEC(10)), ETIMEDOUT);
    cctx_release(r);
    cctx_release(d);
}

TEST(timer_advance_that_waited_while_the_clock_stopped_leaves_it_stopped)
{
    run_with_watchdog(body_advance_racing_a_stop, 30);
}

/* ---- a parent that ends between a deadline's attach and its arm -------------- */

static cctx_cancel_t *parent_to_cancel;

static void parent_cancel_before_the_arm(struct cctx__timer *t)
{
    (void)t;
    atomic_store(&cctx__timer_arming, NULL);
    cctx_cancel(parent_to_cancel); /* marks the child; its disarm finds no slot */
}

TEST(timer_deadline_canceled_from_above_between_attach_and_arm_leaves_nothing_armed)
{
    long armed = cctx__test_armed_timers();
    cctx_t *parent = cctx_with_cancel(cctx_background(), &parent_to_cancel);
    atomic_store(&cctx__timer_arming, parent_cancel_before_the_arm);
    cctx_t *d = cctx_with_timeout(parent, CCTX_SEC(3600), NULL);
    CHECK(d);
    CHECK(atomic_load(&cctx__timer_arming) == NULL); /* the hook ran */
    CHECK_EQ(cctx_err(d), ECANCELED);
    /* Its deadline is an hour away: in the heap it would stay until then
     * (or its release), and a timer thread would wake for it. */
    CHECK_EQ(cctx__test_armed_timers(), armed);
    cctx_release(d);
    cctx_release(parent);
}

/* ---- deadlines due together on the real clock ----------------------------------- */

/* The timer thread is held at its first pop (1: to hold, 2: held, 3: let go),
 * so that the deadlines derived meanwhile are all due when it scans again.
 * With a hold_target, only a pop of that deadline is held; 1 in place of 2
 * lets one hold go and asks for the next at once. */
static atomic_int hold_state;
static _Atomic(struct cctx__timer *) hold_target;

static void hold_the_first_pop(struct cctx__timer *t)
{
    struct cctx__timer *target = atomic_load(&hold_target);
    if (target && t != target)
        return;
    int want = 1;
    if (!atomic_compare_exchange_strong(&hold_state, &want, 2))
        return;
    int64_t give_up = real_now() + CCTX_SEC(10);
    while (atomic_load(&hold_state) == 2 && real_now() < give_up)
        sched_yield();
}

struct derivation {
    cctx_t *parent, *made;
    int64_t deadline;
    int code;
};

static void *derive_deadline(void *arg)
{
    struct derivation *d = arg;
    d->made = cctx_with_deadline_cause(d->parent, d->deadline, d->code, NULL, NULL);
    return NULL;
}

/* On a thread of its own: a thread arms into a shard of its own (timer.c),
 * so the parent and the child may lie in either order across shards. */
static cctx_t *derive_on_a_new_thread(cctx_t *parent, int64_t deadline, int code)
{
    struct derivation d = {.parent = parent, .deadline = deadline, .code = code};
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, derive_deadline, &d), 0);
    CHECK_EQ(pthread_join(th, NULL), 0);
    CHECK(d.made != NULL);
    return d.made;
}

static uint32_t shard_of(cctx_t *c)
{
    return ((struct cctx__timer *)c)->shard;
}

TEST(timer_real_deadlines_due_together_fire_earliest_first_across_shards)
{
    atomic_store(&hold_state, 1);
    atomic_store(&cctx__timer_popped, hold_the_first_pop);
    cctx_t *first = armed_timeout(cctx_background(), CCTX_MSEC(1));
    CHECK(first != NULL);
    int64_t give_up = real_now() + CCTX_SEC(10);
    while (atomic_load(&hold_state) != 2) {
        CHECK(real_now() < give_up);
        sched_yield();
    }
    /* A parent armed in a lower shard than its child, whose own deadline
     * is earlier. Each new thread takes the next shard, so a few tries
     * give that order. Both must still be active when made (a slow thread
     * start would make them born done): else again, with more time. */
    cctx_t *parent = NULL, *child = NULL;
    int64_t late = 0, margin = CCTX_MSEC(100);
    for (int tries = 0; tries < 32; tries++) {
        int64_t base = cctx_now();
        late = base + 2 * margin;
        parent = derive_on_a_new_thread(cctx_background(), late, 1);
        child = derive_on_a_new_thread(parent, base + margin, 2);
        bool active = cctx_err(parent) == 0 && cctx_err(child) == 0;
        if (active && shard_of(parent) < shard_of(child))
            break;
        if (!active)
            margin *= 2;
        cctx_release(child);
        cctx_release(parent);
        parent = child = NULL;
    }
    CHECK(parent != NULL);
    /* Both due before the timer thread looks again. */
    while (cctx_now() <= late + CCTX_MSEC(1))
        real_sleep_ms(1);
    atomic_store(&hold_state, 3);
    CHECK_EQ(cctx_wait(child, CCTX_SEC(10)), ETIMEDOUT);
    CHECK_EQ(cctx_wait(parent, CCTX_SEC(10)), ETIMEDOUT);
    atomic_store(&cctx__timer_popped, NULL);
    /* The child's deadline came first: its cause is its own. */
    cctx_cause_t why;
    CHECK_EQ(cctx_cause(child, &why), ETIMEDOUT);
    CHECK_EQ(why.code, 2);
    CHECK_EQ(cctx_cause(parent, &why), ETIMEDOUT);
    CHECK_EQ(why.code, 1);
    cctx_release(child);
    cctx_release(parent);
    cctx_release(first);
}

static void wait_until_held(void)
{
    int64_t give_up = real_now() + CCTX_SEC(10);
    while (atomic_load(&hold_state) != 2) {
        CHECK(real_now() < give_up);
        sched_yield();
    }
}

struct pair_on_a_thread {
    int64_t first_deadline, child_deadline;
    cctx_t *parent, *first, *child;
};

static void *derive_pair(void *arg)
{
    struct pair_on_a_thread *p = arg;
    p->first = cctx_with_deadline_cause(cctx_background(), p->first_deadline, 4, NULL, NULL);
    p->child = cctx_with_deadline_cause(p->parent, p->child_deadline, 2, NULL, NULL);
    return NULL;
}

/* The scan looks at each shard's top once and then only at the shard it
 * popped from, so the top it holds for another shard can be gone (released,
 * canceled) by the time it pops there: it must then not pop that shard's
 * next entry, due later than another shard's top. Here a parent's deadline
 * lies behind the one that goes, in the shard of the test's thread; its
 * child's, earlier than the parent's, lies in another shard, with the
 * deadline the scan pops first, at which it is held while the other goes. */
TEST(timer_real_deadline_gone_during_a_scan_keeps_the_order_earliest_first)
{
    atomic_store(&hold_target, NULL);
    atomic_store(&hold_state, 1);
    atomic_store(&cctx__timer_popped, hold_the_first_pop);
    cctx_t *hold = armed_timeout(cctx_background(), CCTX_MSEC(1));
    CHECK(hold != NULL);
    wait_until_held();
    cctx_t *gone = NULL, *parent = NULL;
    struct pair_on_a_thread p = {0};
    int64_t late = 0, margin = CCTX_MSEC(100);
    for (int tries = 0; tries < 32; tries++) {
        int64_t base = cctx_now();
        late = base + 4 * margin;
        gone = cctx_with_deadline_cause(cctx_background(), base + 2 * margin, 3, NULL, NULL);
        parent = cctx_with_deadline_cause(cctx_background(), late, 1, NULL, NULL);
        CHECK(gone != NULL && parent != NULL);
        p = (struct pair_on_a_thread){base + margin, base + 3 * margin, parent, NULL, NULL};
        pthread_t th;
        CHECK_EQ(pthread_create(&th, NULL, derive_pair, &p), 0);
        CHECK_EQ(pthread_join(th, NULL), 0);
        CHECK(p.first != NULL && p.child != NULL);
        bool active = cctx_err(gone) == 0 && cctx_err(parent) == 0 && cctx_err(p.first) == 0 &&
                      cctx_err(p.child) == 0;
        if (active && shard_of(gone) == shard_of(parent) && shard_of(parent) != shard_of(p.child))
            break;
        if (!active)
            margin *= 2;
        cctx_release(p.child);
        cctx_release(p.first);
        cctx_release(parent);
        cctx_release(gone);
        gone = parent = NULL;
    }
    CHECK(parent != NULL);
    /* All four due before the timer thread looks again. */
    while (cctx_now() <= late + CCTX_MSEC(1))
        real_sleep_ms(1);
    atomic_store(&hold_target, (struct cctx__timer *)p.first);
    atomic_store(&hold_state, 1);
    wait_until_held();
    cctx_release(gone);
    atomic_store(&hold_state, 3);
    CHECK_EQ(cctx_wait(p.child, CCTX_SEC(10)), ETIMEDOUT);
    CHECK_EQ(cctx_wait(parent, CCTX_SEC(10)), ETIMEDOUT);
    atomic_store(&cctx__timer_popped, NULL);
    atomic_store(&hold_target, NULL);
    cctx_cause_t why;
    CHECK_EQ(cctx_cause(p.child, &why), ETIMEDOUT);
    CHECK_EQ(why.code, 2);
    CHECK_EQ(cctx_cause(parent, &why), ETIMEDOUT);
    CHECK_EQ(why.code, 1);
    cctx_release(p.child);
    cctx_release(p.first);
    cctx_release(parent);
    cctx_release(hold);
}
