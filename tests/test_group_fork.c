/* SPDX-License-Identifier: MIT */
/*
 * Groups made in a child of fork() whose library threads could not start at
 * first (a moment without memory, a thread limit): an inherited deadline
 * fires only once a call tries the restart again (fork.c), and a go blocked
 * on a full group, or a wait for tasks that watch the context with cctx_err
 * alone, makes no other call. They try again as they wait, as every other
 * wait of the library does there, or they sleep for ever through a
 * deadline long past. The timer thread is refused through timer.c's hook
 * cctx__timer_thread_start; the group's own threads start as anywhere.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/group.h>

#include <errno.h>
#include <stdatomic.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"
#include "support.h"
#include "testhooks.h"

/* Refuses the timer thread's first start, as a moment without threads
 * would, and counts the starts tried. */
static atomic_int timer_starts;

static int refuse_first_start(void *(*fn)(void *), void *arg)
{
    if (atomic_fetch_add(&timer_starts, 1) == 0)
        return EAGAIN;
    return cctx__os_thread_start(fn, arg);
}

/* A task that watches its context with cctx_err alone, which tries no
 * restart: only the deadline it inherited ends it. */
static int until_ended(cctx_t *ctx, void *arg)
{
    (void)arg;
    while (!cctx_err(ctx))
        real_sleep_ms(1);
    return 0;
}

static int must_not_run(cctx_t *ctx, void *arg)
{
    (void)ctx, (void)arg;
    _exit(30);
}

/* In the child, under c's deadline (300 ms, inherited): a group whose making
 * tried the restart in vain, its one slot taken by a task that runs until
 * the deadline. Then the go that waits for that slot (go_blocks), or the
 * wait for that task, must see the deadline. */
static int in_a_child(cctx_t *c, bool go_blocks)
{
    alarm(10); /* the call that never returns */
    atomic_store(&timer_starts, 0);
    atomic_store(&cctx__timer_thread_start, refuse_first_start);
    cctx_group_t *g = cctx_group_new(c); /* registers: the restart, refused */
    if (!g)
        return 10;
    if (atomic_load(&timer_starts) != 1)
        return 11;
    if (cctx_group_limit(g, 1) != 0 || cctx_group_go(g, until_ended, NULL) != 0)
        return 12;
    if (go_blocks && cctx_group_go(g, must_not_run, NULL) != ETIMEDOUT)
        return 13;
    if (cctx_group_wait(g) != 0 || cctx_err(c) != ETIMEDOUT)
        return 14;
    cctx_group_free(g);
    return atomic_load(&timer_starts) == 2 ? 0 : 15;
}

static int go_on_a_full_group(cctx_t *c)
{
    return in_a_child(c, true);
}

static int wait_for_a_task(cctx_t *c)
{
    return in_a_child(c, false);
}

static void check_in_a_child(int (*check)(cctx_t *c))
{
    cctx_t *c = cctx_with_timeout(cctx_background(), CCTX_MSEC(300), NULL);
    CHECK(c);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0)
        _exit(check(c));
    CHECK_EQ(child_exit_status(pid), 0);
    cctx_release(c);
}

TEST(group_fork_child_go_on_a_full_group_whose_restart_failed_tries_again)
{
    SKIP_FORK_UNDER_SANITIZERS();
    check_in_a_child(go_on_a_full_group);
}

TEST(group_fork_child_wait_whose_restart_failed_tries_again)
{
    SKIP_FORK_UNDER_SANITIZERS();
    check_in_a_child(wait_for_a_task);
}
