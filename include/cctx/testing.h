/* SPDX-License-Identifier: MIT */
/*
 * cctx/testing.h — a fake clock for testing deadline logic exactly.
 *
 * While the fake clock runs, cctx_now() returns virtual time, deadlines fire
 * only when cctx_fake_clock_advance moves the clock past them, and the timeouts
 * of cctx_wait, cctx_sleep and cctx_wait_any are measured on the fake clock.
 * Start it before creating the deadlines it is to govern: deadlines armed on
 * the real clock are compared with virtual time while it runs.
 */
#ifndef CCTX_TESTING_H
#define CCTX_TESTING_H

#include <cctx.h>

#ifdef __cplusplus
extern "C" {
#endif

/* From now on cctx_now() is virtual and starts at `now`. */
CCTX_API void cctx_fake_clock_start(int64_t now);
/* Moves the virtual clock by d (negative d is ignored: the clock is
 * monotonic). Every deadline now due has fired, in deadline order, and its
 * after-functions have run, on the calling thread, before this returns; the
 * clock then reads its old time + d.
 *
 * The clock steps to each deadline as it fires it, as a real clock passes
 * it: that deadline's cause, and cctx_now() in its after-functions, read the
 * deadline itself, and a deadline those after-functions derive that falls
 * within d fires in the same advance.
 *
 * Those after-functions run while this thread holds the fake clock's
 * (recursive) lock: they may call any cctx function, advancing the clock
 * included, but must not wait for another thread that moves the clock. One
 * that advances it further extends this advance to the clock's new time;
 * one that starts it anew ends this advance there; one that stops it ends
 * this advance too, and the deadlines it had still to fire are then on the
 * real clock (see cctx_fake_clock_stop). A timed wait such a function
 * makes on the fake clock (cctx_sleep, or cctx_wait, cctx_wait_any or
 * cctx_cancel_and_wait with a timeout) ends only when another thread ends
 * what it waits for: its timeout could come only from this advance, which
 * waits for the function. To let time pass there, advance the clock.
 *
 * A deadline derived on another thread while an advance passes it is ended
 * by that derivation, before it returns, unless the advance fires it. */
CCTX_API void cctx_fake_clock_advance(int64_t d);
/* Back to the real monotonic clock; deadlines still armed are then measured
 * on it, and so are the timeouts of waits in progress (cctx_sleep, and
 * cctx_wait, cctx_wait_any, cctx_poll and cctx_cancel_and_wait with a
 * timeout), which end at the time they ended at on the fake clock: a fake
 * clock started an hour ahead of the real one and stopped during a 1 ms
 * wait leaves that wait about an hour to run. Stop the clock when no wait
 * on it is in progress, or start it at the real clock's time
 * (cctx_fake_clock_start(cctx_now())) so that both read alike. */
CCTX_API void cctx_fake_clock_stop(void);

#ifdef __cplusplus
}
#endif

#endif /* CCTX_TESTING_H */
