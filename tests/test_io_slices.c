/* SPDX-License-Identifier: MIT */
/*
 * <cctx/io.h>'s sliced waits (cctx_mutex_lock, cctx_sem_wait,
 * cctx_thread_join) under the fake clock: a virtual deadline close ahead
 * does not cut every slice to the floor, which would wake the waiting
 * thread thousands of times a second until some advance reaches it.
 * (test_io_sync.c has the rest of their tests.)
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/io.h>
#include <cctx/testing.h>

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>

#include "harness.h"
#include "support.h"

struct slow_sem {
    cctx_t *ctx;
    sem_t sem;
    atomic_int tid;
    int r;
};

static void *wait_for_the_sem(void *arg)
{
    struct slow_sem *s = arg;
    atomic_store(&s->tid, thread_id());
    s->r = cctx_sem_wait(s->ctx, &s->sem) < 0 ? errno : 0;
    return NULL;
}

/* How many times thread tid has gone to sleep (and been woken). */
static long sleeps_of(pid_t tid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/self/task/%d/status", (int)tid);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    long n = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "voluntary_ctxt_switches: %ld", &n) == 1)
            break;
    fclose(f);
    CHECK(n >= 0);
    return n;
}

/* A deadline 1 us ahead on the fake clock, 300 ms of real time with no
 * advance: slices that grow to 16 ms wake the waiter about 25 times;
 * slices cut to the virtual 1 us left (the 50 us floor) thousands of times.
 * The bound is far from both. Then the advance ends the wait. */
TEST(io_sliced_wait_under_a_close_fake_deadline_does_not_poll_at_the_floor)
{
    cctx_fake_clock_start(CCTX_SEC(1000));
    struct slow_sem s = {.ctx = cctx_with_timeout(cctx_background(), CCTX_USEC(1), NULL)};
    CHECK_EQ(sem_init(&s.sem, 0, 0), 0);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, wait_for_the_sem, &s), 0);
    while (!atomic_load(&s.tid))
        real_sleep_ms(1);
    wait_until_blocked(atomic_load(&s.tid));
    long before = sleeps_of(atomic_load(&s.tid));
    real_sleep_ms(300);
    long woken = sleeps_of(atomic_load(&s.tid)) - before;
    cctx_fake_clock_advance(CCTX_USEC(1));
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_EQ(s.r, ETIMEDOUT);
    if (woken >= 200)
        fprintf(stderr, "woken %ld times in 300 ms\n", woken);
    CHECK(woken < 200);
    sem_destroy(&s.sem);
    cctx_release(s.ctx);
    cctx_fake_clock_stop();
}
