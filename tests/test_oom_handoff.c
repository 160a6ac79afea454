/* SPDX-License-Identifier: MIT */
/*
 * Work the library hands to a runner so that user code never runs on its
 * own threads: a value destructor that the release of a deadline's firing
 * would run. Handing it over takes a small block; out of memory for that
 * block, the work must still go to a runner while one exists, not be done
 * on the spot, where a destructor that waits (for a deadline, say, which
 * only the timer thread fires) would hold up every deadline of the process.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "harness.h"
#include "support.h"
#include "testhooks.h"

static const int key = 0;

/* Where the value's destructor ran. */
static pthread_t destroyer;
static atomic_bool destroyed_flag;

static void note_destroy(void *value)
{
    (void)value;
    destroyer = pthread_self();
    atomic_store(&destroyed_flag, true);
}

static void wait_destroyed(void)
{
    int64_t until = real_now() + CCTX_SEC(10);
    while (!atomic_load(&destroyed_flag)) {
        CHECK(real_now() < until);
        sched_yield();
    }
}

/* ---- a deadline's firing ----------------------------------------------------- */

static _Atomic(cctx_t *) popped_ctx;
static pthread_t timer_thread;

/* On the timer thread, the deadline just taken off the heap and referenced:
 * the owner lets go, so the firing's reference is the last, and the two
 * allocations the firing makes next (its cause record, then the block that
 * hands the rest to a runner) are made to fail from the second. The
 * deadline may be due before its derivation has returned: the owner's
 * reference is let go only once the test has it. */
static void let_go_when_popped(struct cctx__timer *t)
{
    (void)t;
    timer_thread = pthread_self();
    cctx_t *c;
    while (!(c = atomic_load(&popped_ctx)))
        sched_yield();
    cctx_release(c);
    cctx__test_fail_alloc(2);
}

TEST(oom_firing_release_goes_to_runner)
{
    atomic_store(&destroyed_flag, false);
    atomic_store(&cctx__timer_popped, let_go_when_popped);
    /* v's last reference is d's: freeing d, the firing frees v. */
    cctx_t *v = cctx_with_value(cctx_background(), &key, NULL, note_destroy);
    CHECK(v != NULL);
    cctx_t *d = cctx_with_timeout(v, CCTX_MSEC(1), NULL);
    CHECK(d != NULL);
    cctx_release(v);
    atomic_store(&popped_ctx, d);
    wait_destroyed();
    atomic_store(&cctx__timer_popped, NULL);
    cctx__test_fail_alloc(0);
    CHECK(!pthread_equal(destroyer, timer_thread));
}
