/* SPDX-License-Identifier: MIT */
/*
 * The fake clock of <cctx/testing.h>, continued from test_fakeclock.c: a
 * timed wait made by an after-function that an advance runs, on that
 * advance's thread. Its timeout could only come from that advance, which
 * holds the clock and waits for the function: cctx_sleep, cctx_wait,
 * cctx_wait_any and cctx_cancel_and_wait move the clock themselves, by
 * their timeout, firing what falls due meanwhile, and then answer as at
 * that time. (Elsewhere they wait for another thread's advance, as
 * test_fakeclock.c checks.)
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/testing.h>
#include <errno.h>

#include "harness.h"
#include "support.h"

static const int64_t T0 = CCTX_SEC(1000);

struct seen {
    int64_t start, after_sleep, after_wait, after_any, after_quiesce;
    int slept, waited, any, any_errno, quiesced, inner_err;
};

static void waits_inside(void *arg)
{
    struct seen *s = arg;
    s->start = cctx_now();
    s->slept = cctx_sleep(cctx_background(), CCTX_MSEC(1));
    s->after_sleep = cctx_now();
    /* A deadline inside the wait's timeout fires in its move of the clock. */
    cctx_t *inner = cctx_with_timeout(cctx_background(), CCTX_MSEC(5), NULL);
    s->waited = cctx_wait(inner, CCTX_MSEC(100));
    s->after_wait = cctx_now();
    s->inner_err = cctx_err(inner);
    cctx_release(inner);
    cctx_cancel_t *cancel;
    cctx_t *open = cctx_with_cancel(cctx_background(), &cancel);
    errno = 0;
    s->any = cctx_wait_any(&open, 1, CCTX_MSEC(50));
    s->any_errno = errno;
    s->after_any = cctx_now();
    cctx_t *held = cctx_ref(open); /* held by "another thread" that never lets go */
    s->quiesced = cctx_cancel_and_wait(cancel, CCTX_MSEC(20), NULL);
    s->after_quiesce = cctx_now();
    cctx_release(held);
    cctx_release(open);
}

static void advance_runs_timed_waits(void)
{
    cctx_fake_clock_start(T0);
    struct seen s = {0};
    cctx_t *d = cctx_with_timeout(cctx_background(), CCTX_MSEC(10), NULL);
    cctx_after_t reg;
    CHECK_EQ(cctx_after_func(d, &reg, waits_inside, &s), 0);
    /* Before, the first wait never returned: the advance waited for it. */
    cctx_fake_clock_advance(CCTX_MSEC(10));
    CHECK_EQ(s.start, T0 + CCTX_MSEC(10));
    CHECK_EQ(s.slept, 0);
    CHECK_EQ(s.after_sleep, s.start + CCTX_MSEC(1));
    CHECK_EQ(s.inner_err, ETIMEDOUT);
    CHECK_EQ(s.waited, ETIMEDOUT);
    CHECK_EQ(s.after_wait, s.after_sleep + CCTX_MSEC(100)); /* the whole timeout */
    CHECK_EQ(s.any, -1);
    CHECK_EQ(s.any_errno, ETIMEDOUT);
    CHECK_EQ(s.after_any, s.after_wait + CCTX_MSEC(50));
    CHECK_EQ(s.quiesced, ETIMEDOUT);
    CHECK_EQ(s.after_quiesce, s.after_any + CCTX_MSEC(20));
    /* The advance ends at the clock the waits moved it to. */
    CHECK_EQ(cctx_now(), s.after_quiesce);
    cctx_release(d);
    cctx_fake_clock_stop();
}

TEST(fakeclock_timed_waits_in_an_after_function_of_an_advance_move_the_clock)
{
    run_with_watchdog(advance_runs_timed_waits, 30);
}
