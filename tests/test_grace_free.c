/* SPDX-License-Identifier: MIT */
/*
 * A grace context freed before its own after-function ran.
 *
 * A grace context has an after-function on its parent (grace.c's
 * parent_ended) that holds no reference on it. It used to be stopped only by
 * the grace context's own after-function (grace_ended), which normally runs
 * in the release that frees the context, before the free. But a release made
 * in a runner's job (a deadline's firing letting go of the last reference,
 * a dump's, a signal's delivery) hands the after-functions of what it cancels
 * to other runners and frees at once: grace_ended ran later, and a parent
 * that ended in between ran parent_ended on the freed context, which took a
 * reference on it, and gave it a deadline or canceled it.
 *
 * The test makes that order happen: a runner start hook lets one runner
 * start and turns the others away (as at a thread limit), so that what the
 * job hands over waits for the job's runner; the timer thread's hook lets the
 * user's references go while the firing holds the last one; and the
 * destructor of a value context above the grace context, run by the job
 * after the grace context is freed, holds the job while the parent ends.
 * That destructor also asks for a block of the grace context's size, which
 * glibc's allocator hands back from the block just freed, and makes it read
 * as a live deadline context: had parent_ended run on it, it would have
 * canceled it. Under AddressSanitizer the block is not handed back, and the
 * sanitizer reports parent_ended's read of the freed context instead.
 *
 * The release that frees a grace context now stops both after-functions
 * first, and may wait for them: so the timer thread, which never waits,
 * leaves that release to a runner when the firing of a grace context's own
 * deadline holds its last reference (the second test).
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"
#include "support.h"
#include "testhooks.h"

static int value_key;
static _Atomic(cctx_t *) users_deadline; /* the deadline may fire before it is set */
static cctx_t *users_grace, *the_parent;
static struct cctx__timer *other_block; /* asked for where the grace context was */
static _Atomic int phase;               /* 1: the job holds; 2: it may go on */

static _Atomic int runner_starts;
static void *(*runner_main)(void *);

/* The runner's first allocation and free set up its thread's cache, so that
 * what it frees next is what it gets back next (glibc). */
static void *runner_with_a_cache(void *arg)
{
    void *volatile p = malloc(1);
    free(p);
    return runner_main(arg);
}

static int one_runner_only(void *(*fn)(void *), void *arg)
{
    if (atomic_fetch_add(&runner_starts, 1) > 0)
        return EAGAIN;
    runner_main = fn;
    return cctx__os_thread_start(runner_with_a_cache, arg);
}

/* On the timer thread, holding the firing's reference on the deadline. */
static void users_let_go(struct cctx__timer *t)
{
    (void)t;
    atomic_store(&cctx__timer_popped, NULL);
    cctx_t *d;
    while ((d = atomic_load(&users_deadline)) == NULL)
        sched_yield();
    cctx_release(d);           /* the firing's is the last */
    cctx_release(users_grace); /* the deadline's is the last */
}

/* In the runner's job, once the grace context is freed. */
static void value_freed(void *value)
{
    (void)value;
    other_block = malloc(cctx__test_grace_block_size());
    CHECK(other_block != NULL);
    __asm__ volatile("" : : "r"(other_block) : "memory"); /* kept a malloc, not a calloc */
    memset(other_block, 0, cctx__test_grace_block_size());
    atomic_init(&other_block->c.head.refs, 1);
    atomic_init(&other_block->c.head.word, (uint32_t)KIND_TIMER << WORD_KIND_SHIFT);
    other_block->c.head.parent = the_parent;
    atomic_store(&phase, 1);
    while (atomic_load(&phase) != 2)
        usleep(1000);
}

TEST(grace_freed_in_a_runner_job_is_left_alone_when_its_parent_ends)
{
    cctx__test_count_allocs(true);
    long before = cctx__test_live_allocs();
    cctx_cancel_t *cancel_parent;
    the_parent = cctx_with_cancel(cctx_background(), &cancel_parent);
    cctx_t *v = cctx_with_value(the_parent, &value_key, "v", value_freed);
    users_grace = cctx_with_grace(v, CCTX_SEC(100), NULL);
    CHECK(users_grace != NULL);
    cctx_release(v); /* the grace context holds it */
    void *grace_block = users_grace;
    cctx__thread_start_fn start = atomic_load(&cctx__runner_thread_start);
    atomic_store(&cctx__runner_thread_start, one_runner_only);
    atomic_store(&cctx__timer_popped, users_let_go);
    cctx_t *d = armed_timeout(users_grace, CCTX_MSEC(1));
    CHECK(d != NULL);
    atomic_store(&users_deadline, d);
    /* The job: the deadline freed, the grace context canceled and freed,
     * the value freed, its destructor holding the job. */
    for (int i = 0; i < 10000 && atomic_load(&phase) != 1; i++)
        usleep(1000);
    CHECK_EQ(atomic_load(&phase), 1);
    printf("the grace context's block %s handed out again\n",
           (void *)other_block == grace_block ? "was" : "was not");
    cctx_cancel(cancel_parent); /* before: parent_ended ran here, on the freed context */
    CHECK_EQ(atomic_load(&other_block->c.head.refs), 1u);
    CHECK_EQ(atomic_load(&other_block->c.head.state), 0u); /* before: ETIMEDOUT */
    atomic_store(&phase, 2);
    cctx_release(the_parent);
    /* Nothing of the grace context is left once the job ends (its runner
     * frees nothing more after the destructor returns: bounded wait). */
    for (int i = 0; i < 10000 && cctx__test_live_allocs() != before; i++)
        usleep(1000);
    CHECK_EQ(cctx__test_live_allocs(), before);
    atomic_store(&cctx__runner_thread_start, start);
    free(other_block);
}

/* ---- a grace context whose own firing holds its last reference ------------------ */

/* The release that frees it may wait for its after-functions, and the timer
 * thread never waits: it hands that release to a runner. */

static cctx_t *timed_grace;
static pthread_t timer_thread;
static _Atomic int popped, freed, freed_on_timer_thread;

/* On the timer thread, holding the firing's reference on the grace context:
 * the user lets go of it, so that the firing's is the last. */
static void user_lets_go_of_the_grace(struct cctx__timer *t)
{
    if (&t->c.head != timed_grace)
        return;
    atomic_store(&cctx__timer_popped, NULL);
    timer_thread = pthread_self();
    atomic_store(&popped, 1);
    cctx_release(timed_grace);
}

static void grace_being_freed(void)
{
    if (atomic_load(&popped) && pthread_equal(pthread_self(), timer_thread))
        atomic_store(&freed_on_timer_thread, 1);
    atomic_store(&freed, 1);
}

TEST(grace_whose_firing_lets_go_last_is_freed_off_the_timer_thread)
{
    cctx_cancel_t *cancel_parent;
    cctx_t *parent = cctx_with_cancel(cctx_background(), &cancel_parent);
    /* Long enough that the parent's end reaches it before it is over even
     * on a loaded machine: a grace period that begins after its end ends at
     * once, with no timer to pop it. */
    timed_grace = cctx_with_grace(parent, CCTX_MSEC(50), NULL);
    CHECK(timed_grace != NULL);
    atomic_store(&cctx__grace_freeing_hook, grace_being_freed);
    atomic_store(&cctx__timer_popped, user_lets_go_of_the_grace);
    cctx_cancel(cancel_parent); /* the grace period starts: 50 ms */
    for (int i = 0; i < 10000 && !atomic_load(&freed); i++)
        usleep(1000);
    CHECK(atomic_load(&popped));
    CHECK(atomic_load(&freed));
    CHECK(!atomic_load(&freed_on_timer_thread)); /* before: freed by the timer thread */
    atomic_store(&cctx__grace_freeing_hook, NULL);
    cctx_release(parent);
}
