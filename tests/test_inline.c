/* SPDX-License-Identifier: MIT */
/*
 * The inline fast paths of <cctx.h>: cctx_err and cctx_wait(ctx, 0) answer
 * in the caller from the state word when it says all there is to say, and
 * give the library's answer in every case (each kind of context, active and
 * done, a sleeper's bit set, NULL).
 */
#include <cctx.h>
#include <cctx/testing.h>
#include <errno.h>

#include "harness.h"
#include "internal.h" /* the state word, to set a sleeper's bit by hand */

static const int key;

/* The inline answers against the library's own, called by name. */
static void check_same_answers(const cctx_t *c, int want)
{
    CHECK_EQ(cctx_err(c), want);
    CHECK_EQ((cctx_err)(c), want);
    CHECK_EQ(cctx_wait(c, 0), want);
    CHECK_EQ(cctx_wait_at(c, 0, CCTX__SITE), want);
}

TEST(inline_fast_paths_are_compiled_in)
{
#if defined(__GNUC__) && !defined(CCTX_NO_INLINE) && !defined(cctx_err)
    CHECK(!"cctx_err has no inline fast path");
#endif
    CHECK_EQ(cctx_err(NULL), EINVAL);
    CHECK_EQ(cctx_wait(NULL, 0), EINVAL);
}

TEST(inline_fast_paths_answer_as_the_library_for_every_kind)
{
    check_same_answers(cctx_background(), 0);
    check_same_answers(cctx_todo(), 0);

    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cancel);
    cctx_t *v = cctx_with_value(c, &key, NULL, NULL);
    cctx_t *d = cctx_without_cancel(v);
    CHECK(c && v && d);
    check_same_answers(c, 0);
    check_same_answers(v, 0);
    cctx_cancel(cancel);
    check_same_answers(c, ECANCELED);
    check_same_answers(v, ECANCELED); /* a value context asks its ancestor */
    check_same_answers(d, 0);
    cctx_release(d);
    cctx_release(v);
    cctx_release(c);

    cctx_fake_clock_start(0);
    cctx_t *t = cctx_with_timeout(cctx_background(), CCTX_MSEC(5), NULL);
    CHECK(t);
    check_same_answers(t, 0);
    cctx_fake_clock_advance(CCTX_MSEC(5));
    CHECK_EQ(cctx_wait(t, -1), ETIMEDOUT);
    check_same_answers(t, ETIMEDOUT);
    cctx_release(t);
    cctx_fake_clock_stop();
}

TEST(inline_fast_paths_leave_a_sleepers_bit_to_the_library)
{
    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cancel);
    CHECK(c);
    /* As a thread asleep in cctx_wait leaves it: a spurious one only costs a
     * wake-up, so setting it by hand is harmless. */
    cctx__atomic_fetch_or_relaxed(&c->state, STATE_WAITERS);
    check_same_answers(c, 0);
    cctx_cancel(cancel);
    CHECK(cctx__atomic_load_relaxed(&c->state) & STATE_WAITERS);
    check_same_answers(c, ECANCELED);
    cctx_release(c);
}
