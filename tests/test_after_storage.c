/* SPDX-License-Identifier: MIT */
/*
 * Section 6: who owns an after-function's storage once fn has run. The
 * library never touches it after fn returns, so a program that learns from
 * fn itself that it has run may free or reuse the storage at once, without
 * a cctx_after_stop; a stop that must wait for a running fn still waits,
 * wherever fn runs, for the run it is about and no other run at the same
 * address; and in a child of fork() a stop does not wait for an fn that only
 * a parent's thread was running, nor for a lock that one of them held.
 */
#define _GNU_SOURCE
#include <cctx.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "support.h"
#include "testhooks.h"

/* An fn that shows its effect, then holds its thread inside fn until the
 * test lets it return: whatever the test does to the storage meanwhile
 * happens before fn returns. */
struct held {
    atomic_int effect, may_return, returned;
};

static void held_fn(void *arg)
{
    struct held *h = arg;
    atomic_store(&h->effect, 1);
    while (!atomic_load(&h->may_return))
        sched_yield();
    atomic_store(&h->returned, 1);
}

struct canceller {
    cctx_cancel_t *cancel;
};

static void *cancel_main(void *arg)
{
    cctx_cancel(((struct canceller *)arg)->cancel);
    return NULL;
}

/* Registers held_fn on c and cancels c on a new thread, which is inside fn
 * when this returns: its id, to join once h->may_return is set. */
static pthread_t cancel_into_held_fn(cctx_t *c, struct canceller *cn, cctx_after_t *reg,
                                     struct held *h)
{
    CHECK_EQ(cctx_after_func(c, reg, held_fn, h), 0);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, cancel_main, cn), 0);
    while (!atomic_load(&h->effect))
        sched_yield();
    return t;
}

TEST(after_storage_may_be_made_inaccessible_once_fn_has_had_its_effect)
{
    /* The storage gets a page of its own, made inaccessible while fn still
     * runs (and kept mapped, so nothing else lands there): any touch of it
     * by the library after fn returns is a fault. */
    long page = sysconf(_SC_PAGESIZE);
    void *mem =
        mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(mem != MAP_FAILED);
    cctx_after_t *reg = mem;
    cctx_cancel_t *cc;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cc);
    struct held h = {0};
    struct canceller cn = {cc};
    pthread_t t = cancel_into_held_fn(c, &cn, reg, &h);
    CHECK_EQ(mprotect(mem, (size_t)page, PROT_NONE), 0);
    atomic_store(&h.may_return, 1);
    /* The cancel returns once fn has returned and the run is wound up. */
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_EQ(cctx_err(c), ECANCELED);
    cctx_release(c);
    CHECK_EQ(munmap(mem, (size_t)page), 0);
}

TEST(after_storage_reused_at_once_registers_anew)
{
    /* The first fn has had its effect and not yet returned when its storage
     * is registered again on another context: the new registration runs
     * when that context ends, and the old run's end leaves it alone. */
    cctx_cancel_t *cc1, *cc2;
    cctx_t *c1 = cctx_with_cancel(cctx_background(), &cc1);
    cctx_t *c2 = cctx_with_cancel(cctx_background(), &cc2);
    cctx_after_t reg;
    struct held h = {0};
    struct canceller cn = {cc1};
    pthread_t t = cancel_into_held_fn(c1, &cn, &reg, &h);
    struct rec r = {.ctx = c2};
    CHECK_EQ(cctx_after_func(c2, &reg, rec_fn, &r), 0);
    atomic_store(&h.may_return, 1);
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_EQ(atomic_load(&r.runs), 0);

    cctx_cancel(cc2);
    CHECK_EQ(atomic_load(&r.runs), 1);
    CHECK_EQ(r.err, ECANCELED);
    CHECK(!cctx_after_stop(&reg));
    cctx_release(c2);
    cctx_release(c1);
}

/* ---- a stop still waits for a running fn ------------------------------------ */

struct handed {
    cctx_after_t reg;
    atomic_int stopping, stop_returned, fn_returned, stopper_tid;
    bool stop_result;
    pthread_t stopper;
};

static void *stop_main(void *arg)
{
    struct handed *s = arg;
    atomic_store(&s->stopper_tid, thread_id());
    atomic_store(&s->stopping, 1);
    s->stop_result = cctx_after_stop(&s->reg);
    /* Read before anything else: fn must have returned by now. */
    atomic_store(&s->stop_returned, atomic_load(&s->fn_returned) ? 2 : 1);
    return NULL;
}

/* Hands its own registration to a thread that stops it, and lingers. */
static void handing_fn(void *arg)
{
    struct handed *s = arg;
    CHECK_EQ(pthread_create(&s->stopper, NULL, stop_main, s), 0);
    while (!atomic_load(&s->stopping))
        sched_yield();
    wait_until_blocked(atomic_load(&s->stopper_tid)); /* asleep in the stop */
    CHECK_EQ(atomic_load(&s->stop_returned), 0); /* it waits for us */
    atomic_store(&s->fn_returned, 1);
}

TEST(after_stop_waits_for_fn_run_at_once_on_a_done_context)
{
    /* fn runs inside cctx_after_func, and hands reg to a stopper before
     * its registration call has returned. */
    cctx_cancel_t *cc;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cc);
    cctx_cancel(cc);
    struct handed s = {0};
    CHECK_EQ(cctx_after_func(c, &s.reg, handing_fn, &s), 0);
    CHECK_EQ(pthread_join(s.stopper, NULL), 0);
    CHECK_EQ(s.stop_result, false);
    CHECK_EQ(atomic_load(&s.stop_returned), 2);
    CHECK(!cctx_after_stop(&s.reg)); /* a second stop: false at once */
    cctx_release(c);
}

TEST(after_stop_waits_for_fn_run_by_a_deadline)
{
    /* The deadline's fn runs on a runner thread. */
    cctx_t *c = cctx_with_timeout(cctx_background(), CCTX_MSEC(1), NULL);
    struct handed s = {0};
    CHECK_EQ(cctx_after_func(c, &s.reg, handing_fn, &s), 0);
    int64_t until = cctx_now() + CCTX_SEC(10);
    while (!atomic_load(&s.fn_returned) && cctx_now() < until)
        usleep(200);
    CHECK_EQ(atomic_load(&s.fn_returned), 1);
    CHECK_EQ(pthread_join(s.stopper, NULL), 0);
    CHECK_EQ(s.stop_result, false);
    CHECK_EQ(atomic_load(&s.stop_returned), 2);
    cctx_release(c);
}

/* ---- a run is its storage and its serial ----------------------------------- */

struct stopper {
    cctx_after_t *reg;
    atomic_int returned;
    bool result;
};

static void *bounded_stop_main(void *arg)
{
    struct stopper *s = arg;
    s->result = cctx_after_stop(s->reg);
    atomic_store(&s->returned, 1);
    return NULL;
}

TEST(after_stop_of_reused_storage_does_not_wait_for_the_earlier_fn_there)
{
    /* The first fn has shown its effect and waits for us; its storage,
     * ours again, is registered on a done context, so the second fn runs
     * and returns at once. A stop is about the second run only: waiting for
     * the first would wait for ourselves. */
    cctx_cancel_t *cc1, *cc2;
    cctx_t *c1 = cctx_with_cancel(cctx_background(), &cc1);
    cctx_t *c2 = cctx_with_cancel(cctx_background(), &cc2);
    cctx_cancel(cc2);
    cctx_after_t reg;
    struct held h = {0};
    struct canceller cn = {cc1};
    pthread_t t = cancel_into_held_fn(c1, &cn, &reg, &h);
    struct rec r = {.ctx = c2};
    CHECK_EQ(cctx_after_func(c2, &reg, rec_fn, &r), 0);
    CHECK_EQ(atomic_load(&r.runs), 1);

    struct stopper s = {.reg = &reg};
    pthread_t st;
    CHECK_EQ(pthread_create(&st, NULL, bounded_stop_main, &s), 0);
    int64_t until = cctx_now() + CCTX_SEC(10);
    while (!atomic_load(&s.returned) && cctx_now() < until)
        usleep(200);
    CHECK_EQ(atomic_load(&s.returned), 1);
    CHECK_EQ(s.result, false);
    CHECK_EQ(atomic_load(&h.returned), 0); /* the first fn still runs */
    atomic_store(&h.may_return, 1);
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_EQ(pthread_join(st, NULL), 0);
    cctx_release(c2);
    cctx_release(c1);
}

/* The first fn registers its own storage again on c2, has c2 canceled on
 * another thread, and stops the second run while it runs there. */
struct rerun {
    cctx_after_t reg;
    cctx_t *c2;
    struct canceller cn2;
    struct held second;
    pthread_t t2;
    atomic_int stop_returned, stopper_tid;
    bool stop_result;
    int second_returned_at_stop;
};

static void rerun_fn(void *arg)
{
    struct rerun *x = arg;
    CHECK(!cctx_after_stop(&x->reg)); /* from inside: false, and ours again */
    CHECK_EQ(cctx_after_func(x->c2, &x->reg, held_fn, &x->second), 0);
    CHECK_EQ(pthread_create(&x->t2, NULL, cancel_main, &x->cn2), 0);
    while (!atomic_load(&x->second.effect))
        sched_yield();
    atomic_store(&x->stopper_tid, thread_id());
    x->stop_result = cctx_after_stop(&x->reg);
    x->second_returned_at_stop = atomic_load(&x->second.returned);
    atomic_store(&x->stop_returned, 1);
}

TEST(after_stop_inside_fn_waits_for_a_later_run_of_its_storage)
{
    cctx_cancel_t *cc1;
    cctx_t *c1 = cctx_with_cancel(cctx_background(), &cc1);
    struct rerun x = {0};
    x.c2 = cctx_with_cancel(cctx_background(), &x.cn2.cancel);
    CHECK_EQ(cctx_after_func(c1, &x.reg, rerun_fn, &x), 0);
    struct canceller cn1 = {cc1};
    pthread_t t1;
    CHECK_EQ(pthread_create(&t1, NULL, cancel_main, &cn1), 0);
    while (!atomic_load(&x.stopper_tid))
        sched_yield();
    wait_until_blocked(atomic_load(&x.stopper_tid)); /* asleep in the stop */
    /* Not the stop from inside fn itself: the run it stops is another. */
    CHECK_EQ(atomic_load(&x.stop_returned), 0);
    atomic_store(&x.second.may_return, 1);
    CHECK_EQ(pthread_join(t1, NULL), 0);
    CHECK_EQ(pthread_join(x.t2, NULL), 0);
    CHECK_EQ(x.stop_result, false);
    CHECK_EQ(x.second_returned_at_stop, 1);
    cctx_release(x.c2);
    cctx_release(c1);
}

/* ---- fork() ----------------------------------------------------------------- */

/* Waits for the child of fork(), lets the parent's held fn return, and
 * checks that the child exited 0 rather than being killed by its alarm. */
static void child_exited_0(pid_t pid, struct held *h, pthread_t fn_thread)
{
    int status = child_exit_status(pid); /* not killed by the alarm */
    atomic_store(&h->may_return, 1);
    CHECK_EQ(pthread_join(fn_thread, NULL), 0);
    CHECK_EQ(status, 0);
}

TEST(after_stop_in_a_child_of_fork_does_not_wait_for_a_parent_thread_fn)
{
    SKIP_FORK_UNDER_SANITIZERS();
    cctx_cancel_t *cc;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cc);
    cctx_after_t reg;
    struct held h = {0};
    struct canceller cn = {cc};
    pthread_t t = cancel_into_held_fn(c, &cn, &reg, &h);
    fflush(stdout);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        /* The thread running fn stayed in the parent: here fn never
         * returns, and the stop answers at once that it ran. */
        alarm(10);
        _exit(cctx_after_stop(&reg) ? 1 : 0);
    }
    child_exited_0(pid, &h, t);
    CHECK(!cctx_after_stop(&reg));
    cctx_release(c);
}

static cctx_after_t stopped_from_inside;

static void stop_from_inside(void *arg)
{
    *(int *)arg = cctx_after_stop(&stopped_from_inside) ? 1 : 0;
}

TEST(after_stop_inside_fn_in_a_child_of_fork_does_not_wait_for_a_lock_a_parent_thread_held)
{
    SKIP_FORK_UNDER_SANITIZERS();
    cctx_cancel_t *cc;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cc);
    struct held h = {0};
    struct canceller cn = {cc};
    pthread_t t = cancel_into_held_fn(c, &cn, &stopped_from_inside, &h);
    /* The lock under which stops made inside after-functions list their
     * waits, held until the fork sleeps on it. */
    struct lock_holder holder;
    lock_holder_start(&holder, cctx__test_after_hold_stop_waits_lock);
    fflush(stdout);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        /* An fn run here, inline on a done context, stops the registration
         * whose fn a parent's thread runs: a stop from inside an
         * after-function, which lists its wait under that lock. */
        alarm(10);
        cctx_cancel_t *dc;
        cctx_t *done = cctx_with_cancel(cctx_background(), &dc);
        cctx_cancel(dc);
        cctx_after_t inner;
        int stop_result = 2;
        if (cctx_after_func(done, &inner, stop_from_inside, &stop_result) != 0)
            _exit(3);
        _exit(stop_result); /* 0: false, since fn had run */
    }
    lock_holder_join(&holder);
    child_exited_0(pid, &h, t);
    cctx_release(c);
}
