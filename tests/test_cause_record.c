/* SPDX-License-Identifier: MIT */
/*
 * Where a cancellation's cause lives. A context made with a handle keeps
 * the cause of its own cancellation in itself (test_own_cause.c), so that
 * cctx_cancel allocates nothing and keeps its site even when memory runs
 * out; cancels that race for it each prepare one, and exactly one becomes
 * the cause, with nothing leaked.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/testing.h>
#include <errno.h>
#include <limits.h>
#include <stdatomic.h>

#include "harness.h"
#include "internal.h" /* the flags and cause words: lines */
#include "support.h"
#include "testhooks.h"

TEST(cause_record_cancel_with_a_handle_allocates_nothing)
{
    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cancel);
    CHECK(c);
    cctx__test_count_allocs(true);
    long before = cctx__test_live_allocs();
    int line = __LINE__ + 1;
    cctx_cancel(cancel);
    CHECK_EQ(cctx__test_live_allocs(), before);
    cctx__test_count_allocs(false);
    cctx_cause_t cause;
    CHECK_EQ(cctx_cause(c, &cause), ECANCELED);
    CHECK_EQ(cause.line, line);
    CHECK_STR(cause.msg, "context canceled");
    cctx_release(c);
}

TEST(cause_record_cancel_with_a_handle_keeps_its_site_without_memory)
{
    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cancel);
    CHECK(c);
    cctx__test_fail_alloc(1);
    int line = __LINE__ + 1;
    cctx_cancel_cause(cancel, 42, NULL);
    cctx__test_fail_alloc(0);
    cctx_cause_t cause;
    CHECK_EQ(cctx_cause(c, &cause), ECANCELED);
    CHECK_EQ(cause.line, line);
    CHECK_EQ(cause.code, 42);
    CHECK_STR(cause.file, __FILE__);
    cctx_release(c);
}

/* ---- cancels racing for the one record ------------------------------------------- */

enum { RACERS = 8 };
static cctx_cancel_t *raced;

enum { RACE_LINE = __LINE__ + 3 }; /* the cctx_cancel_cause below */
static void cancel_with_my_code(void *arg)
{
    cctx_cancel_cause(raced, (int)(intptr_t)arg, NULL);
}

TEST(cause_record_racing_cancels_leave_one_cause_and_leak_nothing)
{
    const int rounds = TEST_UNDER_TSAN ? 30 : 300;
    cctx__test_count_allocs(true);
    long before = cctx__test_live_allocs();
    for (int round = 0; round < rounds; round++) {
        cctx_t *c = cctx_with_cancel(cctx_background(), &raced);
        cctx_t *child = cctx_with_cancel(c, NULL);
        CHECK(c && child);
        struct gang gang;
        gang_init(&gang, RACERS, false);
        for (intptr_t i = 1; i <= RACERS; i++)
            gang_spawn(&gang, cancel_with_my_code, (void *)i);
        gang_join(&gang);
        cctx_cause_t cause, seen_below;
        CHECK_EQ(cctx_cause(c, &cause), ECANCELED);
        CHECK(cause.code >= 1 && cause.code <= RACERS);
        CHECK_EQ(cause.line, RACE_LINE);
        CHECK_STR(cause.msg, "context canceled");
        CHECK_EQ(cctx_cause(child, &seen_below), ECANCELED);
        CHECK_EQ(seen_below.code, cause.code);
        CHECK_EQ(seen_below.when, cause.when);
        cctx_release(child);
        cctx_release(c);
    }
    CHECK_EQ(cctx__test_live_allocs(), before);
    cctx__test_count_allocs(false);
}

/* ---- the flags word ------------------------------------------------------------------ */

TEST(cause_record_a_huge_line_is_clamped)
{
    cctx_t *c = cctx_with_cancel_at(cctx_background(), NULL, "huge.c", INT_MAX, "f");
    CHECK(c);
    CHECK_EQ(cctx__line(c), (int)WORD_LINE_MAX);
    cctx_cancel_t *cancel;
    cctx_t *h = cctx_with_cancel_at(cctx_background(), &cancel, "huge.c", INT_MAX, "f");
    CHECK(h);
    CHECK_EQ(cctx__line(h), (int)WORD_LINE_MAX);
    cctx_release(h);
    cctx_release(c);
}

/* ---- the cause's word ------------------------------------------------------------------ */

/* The line shares a word with the error, the embedded flag and the marking:
 * a huge or negative one is clamped, and touches none of them. */
TEST(cause_record_a_huge_cancel_line_is_clamped_and_keeps_the_other_bits)
{
    int lines[] = {INT_MAX, -5, (int)CAUSE_LINE_MAX, 7};
    int want[] = {(int)CAUSE_LINE_MAX, 0, (int)CAUSE_LINE_MAX, 7};
    for (int i = 0; i < 4; i++) {
        cctx_cancel_t *cancel;
        cctx_t *c = cctx_with_cancel(cctx_background(), &cancel);
        cctx_t *child = cctx_with_cancel(c, NULL);
        cctx_cancel_at(cancel, "huge.c", lines[i], "f");
        cctx_cause_t cause;
        CHECK_EQ(cctx_cause(child, &cause), ECANCELED);
        CHECK_EQ(cause.line, want[i]);
        /* The marking completed (no waiter left behind), and the record is
         * still the embedded one (nothing to free, nothing leaked). */
        CHECK_EQ(cctx_wait(child, 0), ECANCELED);
        cctx_release(child);
        cctx_release(c);
    }
    /* A deadline's own record: ETIMEDOUT survives a huge line (its firing
     * names the creation site, whose line the flags word clamped first). */
    cctx_fake_clock_start(CCTX_SEC(1));
    cctx_t *t = cctx_with_deadline_cause_at(cctx_background(), CCTX_SEC(2), 3, "slow", NULL,
                                            "huge.c", INT_MAX, "f");
    cctx_fake_clock_advance(CCTX_SEC(2));
    cctx_cause_t cause;
    CHECK_EQ(cctx_cause(t, &cause), ETIMEDOUT);
    CHECK_EQ(cause.code, 3);
    CHECK_EQ(cause.line, (int)WORD_LINE_MAX);
    cctx_release(t);
    cctx_fake_clock_stop();
}
