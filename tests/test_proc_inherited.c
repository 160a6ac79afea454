/* SPDX-License-Identifier: MIT */
/*
 * A process handle inherited by a child of fork(), freed there: the copy's
 * descriptor number and its SIGKILL's arming are the parent's, caught at
 * whatever point the fork came.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/proc.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"
#include "lock.h"
#include "support.h"
#include "testhooks.h"

/* The descriptors of this process that are pidfds, as a bit set of their
 * numbers below 1024. */
static void pidfds(unsigned char set[128])
{
    memset(set, 0, 128);
    for (int fd = 0; fd < 1024; fd++) {
        char path[64], link[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(path, link, sizeof link - 1);
        if (n <= 0)
            continue;
        link[n] = '\0';
        if (strstr(link, "[pidfd]"))
            set[fd / 8] |= (unsigned char)(1u << (fd % 8));
    }
}

/* A child of fork() that closed what it inherited (a daemon, a pre-forked
 * worker) and opened a file of its own, which took the number of the
 * parent's pidfd, then frees its copy of the handle: its file stays open.
 * Before, that free closed the number. */
TEST(proc_fork_child_free_leaves_a_reused_descriptor_number_alone)
{
    unsigned char before[128], after[128];
    pidfds(before);
    cctx_proc_opts_t o = CCTX_PROC_OPTS_INIT;
    o.kill_after = CCTX_NO_DEADLINE;
    cctx_proc_t *p = spawn_sh(cctx_background(), "exec sleep 30", &o);
    pidfds(after);
    int pidfd = -1;
    for (int fd = 0; fd < 1024; fd++)
        if ((after[fd / 8] & ~before[fd / 8]) & (1u << (fd % 8)))
            pidfd = fd;
    if (pidfd < 0) {
        cctx_proc_free(p);
        SKIP_IN_THIS_BUILD("the handle has no pidfd here (a kernel or build without pidfd_open)");
    }
    pid_t f = fork_with_alarm();
    if (f == 0) {
        close(pidfd);
        int mine = open("/dev/null", O_RDONLY | O_CLOEXEC); /* the lowest free number */
        if (mine != pidfd)
            _exit(2);
        cctx_proc_free(p);
        _exit(fcntl(mine, F_GETFD) >= 0 ? 0 : 1);
    }
    CHECK_EQ(child_exit_status(f), 0);
    cctx_proc_free(p); /* kills and reaps the sleep */
    check_no_children();
}

/* Once a thread sleeps on the lock of t's context (its waiter's bit is
 * set), forks; the child frees its copy of p. Returns the child's exit
 * status. */
static int fork_once_waited_for(struct cctx__timer *t, cctx_proc_t *p)
{
    for (int i = 0; !(cctx__atomic_load_relaxed(&t->c.head.word) & 2); i++) {
        CHECK(i < 20000);
        real_sleep_ms(1);
    }
    pid_t f = fork_with_alarm();
    if (f == 0) {
        cctx_proc_free(p);
        _exit(0);
    }
    return child_exit_status(f);
}

/* fork() while a thread of the parent arms the SIGKILL of a handle whose
 * context ended: its registration is under way, waiting for the kill
 * context's lock. In the child, the copy's free must not stop that
 * registration (never made there, its lock held for ever), nor free what
 * the kill deadline may still reach. Before, it did: a misuse under
 * CCTX_DEBUG=checks, a wait for ever on the lock otherwise. */
static struct cctx__timer *_Atomic kill_timer;

static void hold_the_kill_deadline(struct cctx__timer *t)
{
    struct cctx__timer *none = NULL;
    if (t->deadline > cctx_now() + CCTX_SEC(5) &&
        atomic_compare_exchange_strong(&kill_timer, &none, t))
        cctx__lock(&t->c.head); /* let go below, after the fork */
}

static void *cancel_it(void *arg)
{
    cctx_cancel(arg);
    return NULL;
}

CHILD(proc_fork_mid_arm)
{
    cctx_cancel_t *cancel;
    cctx_t *ctx = cctx_with_cancel(cctx_background(), &cancel);
    cctx_proc_opts_t o = CCTX_PROC_OPTS_INIT;
    o.kill_after = CCTX_SEC(10);
    cctx_proc_t *p = spawn_sh(ctx, "exec sleep 30", &o);
    atomic_store(&cctx__timer_armed, hold_the_kill_deadline);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, cancel_it, cancel), 0);
    struct cctx__timer *k;
    for (int i = 0; !(k = atomic_load(&kill_timer)); i++) {
        CHECK(i < 20000);
        real_sleep_ms(1);
    }
    int status = fork_once_waited_for(k, p); /* the registration waits for k's lock */
    atomic_store(&cctx__timer_armed, NULL);
    cctx__unlock(&k->c.head);
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_EQ(cctx_proc_wait(p, NULL), 0);
    cctx_proc_free(p);
    cctx_release(ctx);
    CHECK_EQ(status, 0);
}

TEST(proc_fork_child_free_leaves_a_kill_armed_at_the_fork)
{
    SKIP_FORK_UNDER_SANITIZERS();
    const char *env[] = {"CCTX_DEBUG=checks", NULL};
    struct child c;
    run_child("proc_fork_mid_arm", env, &c);
    if (c.status != 0)
        fprintf(stderr, "%s%s", c.out, c.err);
    CHECK_EQ(c.status, 0);
    child_done(&c);
}

/* fork() while the library fires a deadline of the handle in the parent:
 * the firing holds the deadline context's lock and has the registration
 * (end_reg on the handle's own context, or kill_reg on the SIGKILL's) half
 * queued, waiting for the runners' queue, which the library's own fork
 * handler holds across the fork. In the child that stays so for ever: the
 * copy's free must leave the registration alone, not wait for it. Before,
 * it waited for ever. */
static struct cctx__timer *_Atomic firing;
static struct cctx__after *_Atomic caught; /* the registration the fork is to catch */

static void note_the_deadline(struct cctx__timer *t)
{
    struct cctx__timer *none = NULL;
    if (t->deadline > cctx_now() + CCTX_MSEC(100))
        atomic_compare_exchange_strong(&firing, &none, t);
}

/* A prepare handler of this test's, run after the library's (which holds
 * the runners' queue from then on): lets the firing go on, and returns once
 * it has the registration half queued and waits for that queue. */
static void catch_the_firing(void)
{
    struct cctx__after *a = atomic_load(&caught);
    if (!a)
        return;
    cctx__unlock(&atomic_load(&firing)->c.head);
    for (int i = 0; strcmp(cctx__test_after_state(a), "queuing") != 0; i++) {
        if (i == 1000000)
            abort(); /* the child's status says so */
        sched_yield();
    }
    for (int i = 0; !(cctx__atomic_load_relaxed(&cctx__runner_queue.lock) & 2); i++) {
        if (i == 1000000)
            abort();
        sched_yield();
    }
}

/* kill: the SIGKILL's deadline is the one caught; else the handle's own
 * context is a deadline, and its end is caught. */
static void free_a_copy_caught_mid_firing(bool kill)
{
    /* Before the library's first call, so that its prepare handler runs
     * after the library's. */
    CHECK_EQ(pthread_atfork(catch_the_firing, NULL, NULL), 0);
    atomic_store(&cctx__timer_armed, note_the_deadline);
    cctx_cancel_t *cancel = NULL;
    cctx_t *ctx = kill ? cctx_with_cancel(cctx_background(), &cancel)
                       : cctx_with_timeout(cctx_background(), CCTX_MSEC(300), NULL);
    cctx_proc_opts_t o = CCTX_PROC_OPTS_INIT;
    o.kill_after = kill ? CCTX_MSEC(300) : CCTX_NO_DEADLINE;
    cctx_proc_t *p = spawn_sh(ctx, "exec sleep 30", &o);
    if (kill)
        cctx_cancel(cancel); /* on_end arms the SIGKILL here */
    atomic_store(&cctx__timer_armed, NULL);
    struct cctx__timer *t = atomic_load(&firing);
    CHECK(t);
    cctx__lock(&t->c.head); /* the firing waits for it */
    struct cctx__node *only = t->c.children;
    CHECK(only && !only->next);
    atomic_store(&caught, container_of(only, struct cctx__after, link));
    int status = fork_once_waited_for(t, p); /* the firing waits for t's lock */
    atomic_store(&caught, NULL);
    CHECK_EQ(status, 0);
    CHECK_EQ(cctx_proc_wait(p, NULL), 0);
    cctx_proc_free(p);
    cctx_release(ctx);
}

CHILD(proc_fork_mid_end_firing)
{
    free_a_copy_caught_mid_firing(false);
}

CHILD(proc_fork_mid_kill_firing)
{
    free_a_copy_caught_mid_firing(true);
}

static void run_caught(const char *child)
{
    SKIP_FORK_UNDER_SANITIZERS();
    struct child c;
    run_child(child, NULL, &c);
    if (c.status != 0)
        fprintf(stderr, "%s%s", c.out, c.err);
    CHECK_EQ(c.status, 0);
    child_done(&c);
}

TEST(proc_fork_child_free_leaves_an_end_being_fired_at_the_fork)
{
    run_caught("proc_fork_mid_end_firing");
}

TEST(proc_fork_child_free_leaves_a_kill_being_fired_at_the_fork)
{
    run_caught("proc_fork_mid_kill_firing");
}
