/* SPDX-License-Identifier: MIT */
/*
 * Handing a task to an idle thread of a group's pool. The woken thread starts
 * the task without taking the group's lock: go writes the task and flips the
 * thread's turn word, and the thread reads both once it sees the flip. Woken
 * through a condition variable signalled under the lock, as it was, the
 * thread had to take the lock back before it could return from its wait, and
 * often slept a second time, on the lock, until go let go of it: a second
 * wake-up per task (group.c). A thread back from a task watches its turn
 * word for a while before it sleeps, so that a task handed over soon after
 * needs no wake-up at all. And the end of the hand-overs: every wait returns
 * with the pool's threads joined.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/group.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "cctx_config.h" /* CCTX_USE_LINUX */
#include "harness.h"
#include "os.h"
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

/* ---- the idle spin ------------------------------------------------------------------------ */

struct ping {
    struct latch ran;
};

static int ping_task(cctx_t *ctx, void *arg)
{
    (void)ctx;
    latch_open(&((struct ping *)arg)->ran);
    return 0;
}

/* Waits until count() differs from `before` (10 s at most, for a loaded
 * machine: the spins last 20 µs) and returns by how much it moved. */
static long moved_since(long (*count)(void), long before)
{
    int64_t give_up = real_now() + CCTX_SEC(10);
    while (count() == before && real_now() < give_up)
        real_sleep_ms(1);
    return count() - before;
}

/* Runs one ping task on g and returns once it has run. */
static void ping(cctx_group_t *g)
{
    struct ping p = {.ran = LATCH_INIT};
    CHECK_EQ(cctx_group_go(g, ping_task, &p), 0);
    latch_wait_open(&p.ran);
}

/* With the spin made long (a loaded machine may take a while to issue the
 * next go), a task handed over a millisecond after the last one ended finds
 * the thread awake: it never sleeps. Without the spin it slept after each
 * task, and each go had to wake it. */
TEST(group_thread_back_from_a_task_takes_the_next_without_sleeping)
{
    int64_t spin = atomic_load(&cctx__group_spin_ns);
    atomic_store(&cctx__group_spin_ns, CCTX_SEC(60));
    atomic_store(&cctx__test_cpus, 2); /* as on any machine */
    cctx_group_t *g = cctx_group_new(cctx_background());
    CHECK(g != NULL);
    /* One at a time, so that one thread takes every task. */
    CHECK_EQ(cctx_group_limit(g, 1), 0);
    long slept = cctx__test_group_idle_sleeps();
    for (int i = 0; i < 10; i++) {
        ping(g);
        real_sleep_ms(1); /* long enough for the thread to fall asleep without the spin */
    }
    CHECK_EQ(cctx__test_group_idle_sleeps() - slept, 0);
    CHECK_EQ(cctx_group_wait(g), 0); /* the stop ends the spin too */
    cctx_group_free(g);
    atomic_store(&cctx__group_spin_ns, spin);
    atomic_store(&cctx__test_cpus, 0);
}

/* The spin is bounded: with nothing more handed over, the thread sleeps. */
TEST(group_thread_with_no_next_task_sleeps_once_its_spin_is_over)
{
    atomic_store(&cctx__test_cpus, 2); /* as on any machine */
    CHECK(atomic_load(&cctx__group_spin_ns) > 0);
    CHECK(atomic_load(&cctx__group_spin_ns) <= CCTX_MSEC(1));
    cctx_group_t *g = cctx_group_new(cctx_background());
    CHECK(g != NULL);
    long slept = cctx__test_group_idle_sleeps();
    ping(g);
    CHECK(moved_since(cctx__test_group_idle_sleeps, slept) > 0); /* more on a spurious wake-up */
    /* And a task handed over then wakes it. */
    ping(g);
    CHECK_EQ(cctx_group_wait(g), 0);
    cctx_group_free(g);
}

/* A go on a full group (limit 1) watches for the slot a finishing task frees
 * before it waits on the group's condition variable. */
struct full_group {
    cctx_group_t *g;
    pthread_t t; /* the thread whose go waits for the slot */
    struct latch let_go, second_ran;
    atomic_bool going;
    int go_r;
    int cpus;
    long watched, waited; /* the hooks' counts before the group was made */
};

static int held_task(cctx_t *ctx, void *arg)
{
    (void)ctx;
    latch_wait_open(&((struct full_group *)arg)->let_go);
    return 0;
}

static int second_of_full(cctx_t *ctx, void *arg)
{
    (void)ctx;
    latch_open(&((struct full_group *)arg)->second_ran);
    return 0;
}

static void *go_on_full(void *arg)
{
    struct full_group *f = arg;
    atomic_store(&f->going, true);
    f->go_r = cctx_group_go(f->g, second_of_full, f);
    return NULL;
}

/* Starts a group of one slot, made as if on `cpus` CPUs (1 or several),
 * held by a task until let_go opens, and a thread whose go waits for that
 * slot. */
static void fill_and_go_under(struct full_group *f, int cpus, cctx_t *parent)
{
    *f = (struct full_group){.let_go = LATCH_INIT,
                             .second_ran = LATCH_INIT,
                             .cpus = cpus,
                             .watched = cctx__test_group_slot_watches(),
                             .waited = cctx__test_group_slot_waits()};
    atomic_store(&cctx__test_cpus, cpus);
    f->g = cctx_group_new(parent);
    atomic_store(&cctx__test_cpus, 0);
    CHECK(f->g != NULL);
    CHECK_EQ(cctx_group_limit(f->g, 1), 0);
    CHECK_EQ(cctx_group_go(f->g, held_task, f), 0);
    CHECK_EQ(pthread_create(&f->t, NULL, go_on_full, f), 0);
    while (!atomic_load(&f->going))
        real_sleep_ms(1);
}

static void fill_and_go(struct full_group *f, int cpus)
{
    fill_and_go_under(f, cpus, cctx_background());
}

/* Lets the held task end, and the group with it. On one CPU the thread
 * back from the second task sleeps at once: seen before the wait stops it. */
static void finish_full(struct full_group *f)
{
    long slept = cctx__test_group_idle_sleeps();
    latch_open(&f->let_go);
    CHECK_EQ(pthread_join(f->t, NULL), 0);
    CHECK_EQ(f->go_r, 0);
    latch_wait_open(&f->second_ran);
    if (f->cpus == 1)
        CHECK(moved_since(cctx__test_group_idle_sleeps, slept) > 0);
    CHECK_EQ(cctx_group_wait(f->g), 0);
    cctx_group_free(f->g);
}

/* With the spin made long, the go sees the slot freed while it watches
 * and never waits on the condition variable; without the spin it did. */
TEST(group_go_on_a_full_group_takes_a_slot_freed_while_it_watches)
{
    int64_t spin = atomic_load(&cctx__group_spin_ns);
    atomic_store(&cctx__group_spin_ns, CCTX_SEC(60));
    struct full_group f;
    fill_and_go(&f, 2);
    CHECK(moved_since(cctx__test_group_slot_watches, f.watched) > 0);
    finish_full(&f);
    CHECK_EQ(cctx__test_group_slot_waits() - f.waited, 0);
    atomic_store(&cctx__group_spin_ns, spin);
}

/* The watch is bounded: a go on a group that stays full waits on the
 * condition variable, and a finishing task then wakes it. */
TEST(group_go_on_a_group_that_stays_full_waits_once_its_spin_is_over)
{
    struct full_group f;
    fill_and_go(&f, 2);
    CHECK(moved_since(cctx__test_group_slot_watches, f.watched) > 0);
    CHECK(moved_since(cctx__test_group_slot_waits, f.waited) > 0);
    finish_full(&f);
}

/* A go watching for a slot still returns the context's error once the
 * context ends, not when its watch is over (made 60 s long here). */
TEST(group_go_watching_for_a_slot_returns_when_the_context_ends)
{
    int64_t spin = atomic_load(&cctx__group_spin_ns);
    atomic_store(&cctx__group_spin_ns, CCTX_SEC(60));
    cctx_cancel_t *cancel;
    cctx_t *parent = cctx_with_cancel(cctx_background(), &cancel);
    CHECK(parent != NULL);
    struct full_group f;
    fill_and_go_under(&f, 2, parent);
    CHECK(moved_since(cctx__test_group_slot_watches, f.watched) > 0);
    int64_t canceled = real_now();
    cctx_cancel(cancel);
    CHECK_EQ(pthread_join(f.t, NULL), 0);
    CHECK(real_now() - canceled < CCTX_SEC(10)); /* for a loaded machine */
    CHECK_EQ(f.go_r, ECANCELED);
    latch_open(&f.let_go);
    CHECK_EQ(cctx_group_wait(f.g), 0); /* the held task returned 0 */
    cctx_group_free(f.g);
    cctx_release(parent);
    atomic_store(&cctx__group_spin_ns, spin);
}

/* Where the group's maker may run on one CPU only, neither spins: with the
 * spin made long, a go on a full group waits without watching, and the
 * pool's thread, with no task left, sleeps (it would spin for 60 s). */
TEST(group_made_on_one_cpu_neither_spins)
{
    int64_t spin = atomic_load(&cctx__group_spin_ns);
    atomic_store(&cctx__group_spin_ns, CCTX_SEC(60));
    struct full_group f;
    fill_and_go(&f, 1);
    CHECK(moved_since(cctx__test_group_slot_waits, f.waited) > 0); /* not after 60 s */
    CHECK_EQ(cctx__test_group_slot_watches() - f.watched, 0);
    finish_full(&f); /* and the pool's thread sleeps at once */
    atomic_store(&cctx__group_spin_ns, spin);
}

/* The CPU count a group reads when it is made follows the maker's affinity
 * (taskset), not the machine's size. */
TEST(os_several_cpus_follows_the_calling_threads_affinity)
{
#if !CCTX_USE_LINUX
    SKIP_IN_THIS_BUILD("a portable build counts the CPUs online");
#else
    cpu_set_t all, one;
    if (sched_getaffinity(0, sizeof all, &all) != 0)
        SKIP_IN_THIS_BUILD("more CPUs than a cpu_set_t holds");
    if (CPU_COUNT(&all) < 2)
        SKIP_IN_THIS_BUILD("this machine lets the test run on one CPU only");
    CHECK(cctx__os_several_cpus());
    CPU_ZERO(&one);
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
        if (CPU_ISSET(cpu, &all)) {
            CPU_SET(cpu, &one);
            break;
        }
    CHECK_EQ(sched_setaffinity(0, sizeof one, &one), 0);
    bool several = cctx__os_several_cpus();
    CHECK_EQ(sched_setaffinity(0, sizeof all, &all), 0);
    CHECK(!several);
#endif
}

/* ---- two waits at once ---------------------------------------------------------------- */

/* Each wait returns with the pool's threads joined, the second of two
 * concurrent waits too, which once found the list of threads taken by the
 * first and returned while the first was still joining them. The pool's
 * thread is made slow to exit by a thread-specific destructor that holds it
 * until the test lets it go. */
struct slow_exit {
    pthread_key_t key;
    struct latch exiting, let_go;
    atomic_int exited;
    cctx_group_t *g;
    _Atomic pid_t second_tid;
    atomic_bool second_returned;
    int first_r, second_r, exited_at_second_return;
};

static void hold_exit(void *arg)
{
    struct slow_exit *s = arg;
    latch_open(&s->exiting);
    latch_wait_open(&s->let_go);
    atomic_store(&s->exited, 1);
}

static int keyed_task(cctx_t *ctx, void *arg)
{
    (void)ctx;
    struct slow_exit *s = arg;
    return pthread_setspecific(s->key, s);
}

static void *first_wait(void *arg)
{
    struct slow_exit *s = arg;
    s->first_r = cctx_group_wait(s->g);
    return NULL;
}

static void *second_wait(void *arg)
{
    struct slow_exit *s = arg;
    atomic_store(&s->second_tid, thread_id());
    s->second_r = cctx_group_wait(s->g);
    s->exited_at_second_return = atomic_load(&s->exited);
    atomic_store(&s->second_returned, true);
    return NULL;
}

TEST(group_second_concurrent_wait_returns_after_the_threads_are_joined)
{
    struct slow_exit s = {.exiting = LATCH_INIT, .let_go = LATCH_INIT};
    CHECK_EQ(pthread_key_create(&s.key, hold_exit), 0);
    s.g = cctx_group_new(cctx_background());
    CHECK(s.g != NULL);
    CHECK_EQ(cctx_group_go(s.g, keyed_task, &s), 0);
    pthread_t first, second;
    CHECK_EQ(pthread_create(&first, NULL, first_wait, &s), 0);
    /* The pool's thread is exiting: the first wait took it to join. */
    latch_wait_open(&s.exiting);
    CHECK_EQ(pthread_create(&second, NULL, second_wait, &s), 0);
    int64_t give_up = real_now() + CCTX_SEC(10);
    while (!atomic_load(&s.second_tid) && real_now() < give_up)
        real_sleep_ms(1);
    pid_t tid = atomic_load(&s.second_tid);
    CHECK(tid != 0);
    /* Asleep until the join ends (seen on five reads 1 ms apart, as
     * wait_until_blocked does). It used to return at once. */
    for (int asleep = 0; asleep < 5; real_sleep_ms(1)) {
        CHECK(!atomic_load(&s.second_returned));
        CHECK(real_now() < give_up);
        asleep = thread_state(tid) == 'S' ? asleep + 1 : 0;
    }
    latch_open(&s.let_go);
    CHECK_EQ(pthread_join(first, NULL), 0);
    CHECK_EQ(pthread_join(second, NULL), 0);
    CHECK_EQ(s.first_r, 0);
    CHECK_EQ(s.second_r, 0);
    CHECK_EQ(s.exited_at_second_return, 1);
    cctx_group_free(s.g);
    CHECK_EQ(pthread_key_delete(s.key), 0);
}
