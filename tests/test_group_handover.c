/* SPDX-License-Identifier: MIT */
/*
 * Handing a task to an idle thread of a group's pool. The woken thread starts
 * the task without taking the group's lock: go writes the task and flips the
 * thread's turn word, and the thread reads both once it sees the flip. Woken
 * through a condition variable signalled under the lock, as it was, the
 * thread had to take the lock back before it could return from its wait, and
 * often slept a second time, on the lock, until go let go of it: a second
 * wake-up per task (group.c).
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/group.h>
#include <stdatomic.h>

#include "harness.h"
#include "support.h"
#include "testhooks.h"

struct handover {
    struct latch first_ran;
    pid_t first_tid;
    _Atomic pid_t second_tid; /* 0 until the second task runs */
};

static int first_task(cctx_t *ctx, void *arg)
{
    (void)ctx;
    struct handover *h = arg;
    h->first_tid = thread_id();
    latch_open(&h->first_ran);
    return 0;
}

static int second_task(cctx_t *ctx, void *arg)
{
    (void)ctx;
    struct handover *h = arg;
    atomic_store(&h->second_tid, thread_id());
    return 0;
}

TEST(group_idle_thread_starts_a_handed_task_while_the_group_lock_is_held)
{
    cctx_group_t *g = cctx_group_new(cctx_background());
    CHECK(g != NULL);
    struct handover h = {.first_ran = LATCH_INIT};
    CHECK_EQ(cctx_group_go(g, first_task, &h), 0);
    latch_wait_open(&h.first_ran);
    /* Back in the pool and asleep there: the next go hands it the task. */
    wait_until_blocked(h.first_tid);

    CHECK_EQ(cctx_group_go(g, second_task, &h), 0);
    cctx__test_group_hold_lock(g, true);
    /* The thread needs no lock to start the task. Waking an idle vCPU takes
     * tens of microseconds; 10 s is for a loaded machine. */
    int64_t give_up = real_now() + CCTX_SEC(10);
    while (!atomic_load(&h.second_tid) && real_now() < give_up)
        real_sleep_ms(1);
    pid_t second = atomic_load(&h.second_tid);
    cctx__test_group_hold_lock(g, false);

    CHECK(second != 0);
    CHECK_EQ(second, h.first_tid); /* the same thread, reused */
    CHECK_EQ(cctx_group_wait(g), 0);
    cctx_group_free(g);
}
