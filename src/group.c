/* SPDX-License-Identifier: MIT */
/*
 * Groups of threads sharing a context: Go's errgroup.WithContext over a small
 * pool of reusable pthreads (choices in <cctx/group.h>).
 *
 * This file uses only the public API of <cctx.h>: the group's context is an
 * ordinary cancelable child of the parent, the first failing task cancels it
 * through its cctx_cancel_t, and a go blocked on a full group learns that the
 * context ended from an after-function registered on it. Below the API it
 * uses two leaf helpers of the library, the atomics and the OS layer's
 * clock, CPU count and futex wait and wake (os.h), which know nothing of
 * contexts, and, as <cctx/io.h>'s waits do, a fork child's restart of the
 * library's threads (io_internal.h, cond_wait below).
 *
 * One mutex per group (g->mu) guards every field below that is not marked
 * immutable, and each worker's hand-over fields (which the worker itself
 * reads after its turn word, below). It is the only lock here, and
 * it is never held across a call into cctx that can cancel, release, wait or
 * run after-functions: those run user code and our own after-function, which
 * takes g->mu. Under it we only read cctx_err (one atomic load) and create
 * threads (the slow path, taken only while the pool grows; holding the lock
 * keeps the count of threads and tasks in step without a rollback protocol).
 *
 * Workers. Every thread of the pool is either idle (on g->idle, watching or
 * asleep on its own turn word), owns exactly one task (handed over in
 * w->fn, or running), or has exited from a task (task_unwound: it only
 * waits on g->workers to be joined). So the number of live threads is
 * g->active plus the idle ones, and go creates one only when none is idle:
 * with a limit L, active < L before the hand-over, hence at most L live
 * threads ever. A finishing worker returns to the idle stack in the same
 * critical section in which it drops g->active, so a go that a finished
 * task let through always finds an idle worker, unless that task's thread
 * left the pool (task_unwound): that go creates a thread, and when it
 * cannot it passes the slot's one wake-up on. The stack is LIFO, so the
 * most recently used (cache-warm) thread is reused first.
 *
 * The hand-over. go fills in the worker's fields under g->mu and then flips
 * its turn word (release), waking it if it sleeps there; the worker reads the
 * fields after it sees the flip (acquire), without g->mu. With a condition
 * variable, signalled under g->mu, the woken worker had to take g->mu back
 * before it could return from the wait, and when it woke before go had let
 * go of the lock it went back to sleep, on the mutex, until go woke it a
 * second time. One task handed to one reused thread after another
 * (DeepValueReusedThread in BENCHMARKS.md) made 5.5 futex calls per task
 * that way, 4.2 this way. The worker still takes g->mu after the task, to
 * count it done and to go back on the idle stack. The wake stays under
 * g->mu, which keeps the worker's struct alive: pool_stop frees it only
 * after taking the lock.
 *
 * The idle spin. Even so, each task handed to a sleeping thread cost a sleep
 * and a wake-up on both sides: the thread slept on its turn word, and the
 * caller, while the woken thread took its time to run, slept for the answer.
 * On the VM measured that round trip took 21 to 25 µs
 * (DeepValueReusedThread), a little more than a bare futex hand-off. A
 * thread back from a task now watches its turn word for up to SPIN_NS (20
 * µs, with the CPU's spin-wait hint) before it marks itself asleep; a task
 * handed over in that time needs no wake, and starts within the next turn
 * of the loop. A thread that watches in vain spends at most those 20 µs of
 * CPU time per task. The other side of the same round trip: a go on a full
 * group (limit 1 there) came while the task that had just answered was
 * still counting itself done under g->mu, and slept on the mutex in three
 * round trips of four (0.74 lock waits per task, each with its wake). Such
 * a go now watches g->active for up to SPIN_NS, without the lock, before it
 * waits on g->slot. With both, the round trip took 0.6 to 2.3 µs in
 * later runs, 7 to 31% more than a bare hand-off that spins the same way
 * (BENCHMARKS.md). What is left of the group's own lock waits is 0.1 per
 * task on one guest and 0.002 on another (futex calls counted with perf
 * against the bare twin's): the rest of the gap is instructions and cache
 * lines, not sleeps, so an adaptive mutex would not help. Neither spins
 * where the thread that made the group may run on one CPU only (a one-CPU
 * machine, or taskset): there the thread waited for cannot run while the
 * spinner holds the CPU.
 *
 * Ending. g->closed is set by the first wait (or free) that sees no task left;
 * from then on nothing starts, so the pool can be stopped and joined with no
 * task in flight. A go that raced with that wait either handed its task over
 * first (the wait then waited for it) or sees closed and starts nothing.
 * One caller joins the pool; concurrent waits wait for that join too.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/group.h>

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "after.h"
#include "atomics.h"
#include "cctx_config.h"
#include "io_internal.h" /* a fork child's restart, tried while it waits */
#include "os.h"
#include "testhooks.h"

typedef int (*task_fn)(cctx_t *ctx, void *arg);

/* A worker's turn word: what the worker is to do next. Written under g->mu
 * by spawn and go (TURN_TASK), pool_stop (TURN_STOP) and the worker back
 * from a task (TURN_IDLE); the worker alone changes TURN_IDLE to
 * TURN_ASLEEP, with a compare-and-swap, before it sleeps on the word, so
 * that only a hand-over that finds it asleep pays for a wake. */
enum { TURN_IDLE, TURN_ASLEEP, TURN_TASK, TURN_STOP };

/* See "The idle spin" above. */
enum { SPIN_NS = 20000 };

struct worker {
    cctx_group_t *g;      /* immutable */
    pthread_t thread;     /* written by go under g->mu, read by the joiner */
    _Atomic uint32_t turn; /* see TURN_* */
    struct worker *next;  /* every worker of the group (g->workers) */
    struct worker *next_idle;
    /* The hand-over, read by the worker once it sees TURN_TASK. The site is
     * that of the go call, the origin of the cancellation if the task fails. */
    task_fn fn;
    void *arg;
    const char *file;
    int line;
    const char *func;
    int result; /* the running task's, once it returned (task_unwound) */
};

struct cctx_group {
    /* What go and a finishing task both touch, on the lock's cache line
     * (the group is allocated on a line of its own, and on x86-64 glibc
     * the mutex takes 40 bytes of it, checked below): a round trip moves
     * that line between their CPUs, and not the lines these fields lay on
     * apart from the lock. */
    pthread_mutex_t mu;
    _Atomic int active;    /* tasks handed over and not yet returned; written
                            * under mu, read without it by a go's spin */
    int limit;             /* 0: none */
    struct worker *idle;
    bool go_called;        /* limit is fixed from then on */
    bool closed;           /* a wait saw the group idle: nothing starts any more */
    bool spins;            /* immutable: its maker may run on several CPUs */
    bool stopping;         /* a pool_stop took the workers to join them */
    bool stopped;          /* and has joined them (quiet is broadcast then) */
    int err;               /* the first non-zero task result */
    pthread_cond_t slot;   /* go waits here for a free slot or the context's end */
    pthread_cond_t quiet;  /* for active == 0 (wait, free), and for stopped */
    pid_t pid;             /* immutable: the process that made it */
    cctx_t *ctx;           /* immutable: the group's reference, released by free */
    cctx_cancel_t *cancel; /* immutable */
    cctx_after_t on_end;   /* wakes the go calls blocked on slot */
    struct worker *workers;
};

#if defined(__x86_64__) && defined(__GLIBC__)
_Static_assert(offsetof(struct cctx_group, stopped) < 64, "go's fields left the lock's line");
#endif

/* The group whose pool this thread belongs to: a wait or free from one of the
 * group's own tasks would wait for itself. A worker serves one group all its
 * life, so this is set once when it starts. */
static _Thread_local cctx_group_t *worker_of;

static const char task_failed_msg[] = "group task failed";

/* g->active. Its writers hold g->mu, so a load and a store count it; it is
 * atomic for a go's spin (watch_for_slot), which reads it without the lock. */
static int active(cctx_group_t *g)
{
    return cctx__atomic_load_relaxed(&g->active);
}

static void add_active(cctx_group_t *g, int n)
{
    cctx__atomic_store_relaxed(&g->active, active(g) + n);
}

/* ---- the after-function ----------------------------------------------------- */

/* Runs once the group's context has ended, on the thread that ended it, with
 * no cctx lock held. Taking g->mu orders the broadcast after a blocked go's
 * check of cctx_err: that go either saw the error or is already waiting.
 * Not in a child of fork(), which must not use the group, so that no go
 * can wait there: g->mu may have been held by a thread the child does not
 * have, and a child that ended an ancestor of the group's context hung. */
static void on_ctx_end(void *arg)
{
    cctx_group_t *g = arg;
    if (getpid() != g->pid)
        return;
    pthread_mutex_lock(&g->mu);
    pthread_cond_broadcast(&g->slot);
    pthread_mutex_unlock(&g->mu);
}

/* ---- workers ---------------------------------------------------------------- */

/* How long a thread back from a task watches its turn word before it sleeps
 * on it, and a go on a full group the count of tasks (the idle spin, above);
 * a test changes it (testhooks.h). */
_Atomic int64_t cctx__group_spin_ns = SPIN_NS;

/* How long g's threads and go calls spin: none on one CPU. */
static int64_t spin_ns(const cctx_group_t *g)
{
    return g->spins ? cctx__atomic_load_relaxed(&cctx__group_spin_ns) : 0;
}

/* How often a pool thread went to sleep on its turn word: for the tests. */
static _Atomic long idle_sleeps;
long cctx__test_group_idle_sleeps(void)
{
    return cctx__atomic_load_relaxed(&idle_sleeps);
}

/* Reads w's turn word until it is no longer TURN_IDLE or the idle spin is
 * over, with the CPU's spin-wait hint; the clock is read every 16 turns, so
 * that the loop watches the word, not the clock. Returns the last value. */
static uint32_t watch_turn(struct worker *w)
{
    uint32_t t = cctx__atomic_load_acquire(&w->turn);
    int64_t spin = spin_ns(w->g);
    if (t != TURN_IDLE || spin <= 0)
        return t;
    int64_t until = cctx__os_now() + spin; /* a few µs, or a test's seconds */
    for (unsigned turn = 1; (t = cctx__atomic_load_acquire(&w->turn)) == TURN_IDLE; turn++) {
        if (turn % 16 == 0 && cctx__os_now() >= until)
            break;
        cctx__cpu_relax();
    }
    return t;
}

/* Waits until go hands a task over or pool_stop ends the pool, watching the
 * turn word for a while first, then asleep on it; returns TURN_TASK or
 * TURN_STOP. */
static uint32_t await_turn(struct worker *w)
{
    uint32_t t = watch_turn(w);
    while (t == TURN_IDLE || t == TURN_ASLEEP) {
        if (t == TURN_IDLE && !cctx__atomic_cas_weak_acquire(&w->turn, &t, TURN_ASLEEP))
            continue; /* t is what go or pool_stop wrote (or, spuriously, TURN_IDLE) */
        cctx__atomic_fetch_add_relaxed(&idle_sleeps, 1);
        cctx__os_wait(&w->turn, TURN_ASLEEP, CCTX_NO_DEADLINE);
        t = cctx__atomic_load_acquire(&w->turn);
    }
    return t;
}

/* Gives w its next turn (g->mu held); wakes it if it sleeps. */
static void give_turn(struct worker *w, uint32_t turn)
{
    if (cctx__atomic_exchange_acq_rel(&w->turn, turn) == TURN_ASLEEP)
        cctx__os_wake(&w->turn);
}

/* Counts w's task done with result r; called without g->mu. The first
 * failure cancels the group. A thread that stays in the pool goes back on
 * the idle stack in the same critical section as it drops g->active (see
 * Workers above); one that leaves it stays on g->workers for pool_stop to
 * join. */
static void task_done(struct worker *w, int r, bool stays)
{
    cctx_group_t *g = w->g;
    pthread_mutex_lock(&g->mu);
    if (r != 0 && g->err == 0) {
        g->err = r;
        /* Cancel before this task stops counting as active, so a wait
         * (which cancels too, with its own site) cannot get in first. */
        pthread_mutex_unlock(&g->mu);
        cctx_cancel_cause_at(g->cancel, r, task_failed_msg, w->file, w->line, w->func);
        pthread_mutex_lock(&g->mu);
    }
    if (stays) {
        /* Idle again before it is seen on the stack: a go that pops it
         * next gives it the next turn over this one. */
        cctx__atomic_store_relaxed(&w->turn, TURN_IDLE);
        w->next_idle = g->idle;
        g->idle = w;
    }
    if (g->limit > 0)
        pthread_cond_signal(&g->slot); /* one slot freed: one go may start */
    if (active(g) == 1)
        pthread_cond_broadcast(&g->quiet);
    /* The count drops last, so that a go that sees it drop
     * (watch_for_slot) finds the lock about to be free. */
    add_active(g, -1);
    pthread_mutex_unlock(&g->mu);
}

/* A task whose thread unwound: it called pthread_exit, or the thread was
 * cancelled at a cancellation point inside it (a blocking read, or a
 * descriptor call of <cctx/io.h>), or after it returned (below). The
 * thread then unwound past worker_main still counted active, so every
 * cctx_group_wait and cctx_group_free waited for ever, and with a limit
 * its slot was lost to every later go. It counts as returned, with no
 * result unless it returned one, as a goroutine ended by runtime.Goexit
 * does for errgroup (it reported no failure, so the group is not canceled
 * for it), and its thread leaves the pool. Run by the unwinding thread,
 * with no lock of ours held (fn runs without g->mu). */
static void task_unwound(void *arg)
{
    struct worker *w = arg;
    task_done(w, w->result, false);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    cctx_group_t *g = w->g;
    worker_of = g;
#if CCTX_USE_THREAD_NAMES
    pthread_setname_np(pthread_self(), "cctx-group");
#endif
    /* Stopped only while idle: pool_stop runs once no task is active, and
     * nothing is handed over after that. Nothing touches w or g once the
     * stop is seen: the joiner frees w, and g outlives the join. */
    while (await_turn(w) == TURN_TASK) {
        task_fn fn = w->fn;
        void *fn_arg = w->arg;

        /* g->ctx stays valid: the group's reference is released only by
         * free, after every task has returned. */
        w->result = 0;
        pthread_cleanup_push(task_unwound, w);
        w->result = fn(g->ctx, fn_arg);
        /* The thread is the pool's again, in the state a new thread starts
         * in: a task that left cancellation disabled (or asynchronous) must
         * not leave it so for the next one, with, maybe, its own
         * cancellation pending, which acted in the next task that turned
         * cancellation on. Deferred first, so that the pending one acts
         * below, not in the middle of these calls. */
        pthread_setcanceltype(PTHREAD_CANCEL_DEFERRED, NULL);
        pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
        /* A cancellation that reached the task after its last
         * cancellation point is still pending: it acts here, on the task
         * it was sent to, and not in the next task this thread runs. */
        pthread_testcancel();
        pthread_cleanup_pop(0);
        task_done(w, w->result, true);
    }
    return NULL;
}

static void hand_over(struct worker *w, task_fn fn, void *arg, const char *file, int line,
                      const char *func)
{
    w->fn = fn;
    w->arg = arg;
    w->file = file;
    w->line = line;
    w->func = func;
}

/* How spawn creates a thread (testhooks.h). */
_Atomic(cctx__pthread_create_fn) cctx__group_thread_create = pthread_create;

/* Starts a new worker that takes the task at once. Called with g->mu held:
 * the new thread runs its task without the lock and needs it only to count
 * the task done, so the count and the list, updated here after
 * pthread_create, are in step before it can. On failure nothing changed. */
static int spawn(cctx_group_t *g, task_fn fn, void *arg, const char *file, int line,
                 const char *func)
{
    struct worker *w = calloc(1, sizeof *w);
    if (!w)
        return ENOMEM;
    w->g = g;
    hand_over(w, fn, arg, file, line, func);
    /* Its first turn is the task: pthread_create orders these stores
     * before the thread's first load. */
    atomic_init(&w->turn, TURN_TASK);
    /* Default attributes; the new thread inherits this thread's signal mask
     * (documented in the header). */
    int r = cctx__atomic_load_relaxed(&cctx__group_thread_create)(&w->thread, NULL, worker_main, w);
    if (r != 0) {
        free(w);
        return r == ENOMEM ? ENOMEM : EAGAIN;
    }
    w->next = g->workers;
    g->workers = w;
    add_active(g, 1);
    return 0;
}

/* The group's calls are no cancellation points. pthread_cond_wait and
 * pthread_join are, and a thread cancelled in one of them died holding g->mu
 * (a condition wait takes it back before the unwinding) or left the pool
 * half stopped: every later call on the group waited for ever. So they wait
 * with cancellation off, as cctx_wait's futex does, and a cancellation
 * acts at the thread's next cancellation point after the call. */
static int cancellation_off(void)
{
    int old;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
    return old;
}

static void cancellation_back(int old)
{
    pthread_setcancelstate(old, NULL);
}

/* pthread_cond_wait on one of g's conditions, g->mu held, with
 * cancellation off. In a child of fork() whose library threads could not
 * all start, a deadline that the group's context inherited fires only once
 * a call tries them again (fork.c), and a thread asleep here makes none: a
 * go blocked on a full group, or a wait for tasks that watch their context
 * with cctx_err alone, slept for ever through that deadline. There it
 * sleeps 10 ms at a time, as the library's own waits do, and tries again at
 * each slice's end, without g->mu (the try may run the library's wakers,
 * on_ctx_end among them); it then returns as from a spurious wake-up, and
 * the caller looks again. The conditions keep CLOCK_MONOTONIC (new), so a
 * step of the wall clock cannot stretch a slice. */
static void cond_wait(cctx_group_t *g, pthread_cond_t *cond)
{
    int cancellation = cancellation_off();
    if (!cctx__io_unlikely(cctx__atomic_load_relaxed(&cctx__child_stale))) {
        pthread_cond_wait(cond, &g->mu);
    } else {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        int64_t ns = until.tv_nsec + cctx__io_child_retry_ns();
        until.tv_sec += (time_t)(ns / CCTX_SEC(1));
        until.tv_nsec = (long)(ns % CCTX_SEC(1));
        if (pthread_cond_timedwait(cond, &g->mu, &until) == ETIMEDOUT) {
            pthread_mutex_unlock(&g->mu);
            cctx__io_child_restart();
            pthread_mutex_lock(&g->mu);
        }
    }
    cancellation_back(cancellation);
}

/* Stops and joins every worker. Only once g->closed is set and no task is
 * active, so every worker is idle or about to wait. The first caller takes
 * the list and joins it; a second one (concurrent waits) waits until it has,
 * so that every wait returns with the threads joined. */
static void pool_stop(cctx_group_t *g)
{
    int cancellation = cancellation_off();
    pthread_mutex_lock(&g->mu);
    if (g->stopping) {
        while (!g->stopped)
            pthread_cond_wait(&g->quiet, &g->mu);
        pthread_mutex_unlock(&g->mu);
        cancellation_back(cancellation);
        return;
    }
    g->stopping = true;
    struct worker *list = g->workers;
    g->workers = NULL;
    g->idle = NULL;
    for (struct worker *w = list; w; w = w->next)
        give_turn(w, TURN_STOP);
    pthread_mutex_unlock(&g->mu);
    while (list) {
        struct worker *w = list;
        list = w->next;
        pthread_join(w->thread, NULL);
        free(w);
    }
    pthread_mutex_lock(&g->mu);
    g->stopped = true;
    pthread_cond_broadcast(&g->quiet);
    pthread_mutex_unlock(&g->mu);
    cancellation_back(cancellation);
}

/* Waits for every task to return and closes the group. */
static int wait_quiet(cctx_group_t *g)
{
    pthread_mutex_lock(&g->mu);
    while (active(g) > 0)
        cond_wait(g, &g->quiet);
    g->closed = true;
    /* Go calls that a finished task let through (one signal each) may not
     * have run yet, and others may still sleep: all must see closed. */
    pthread_cond_broadcast(&g->slot);
    int err = g->err;
    pthread_mutex_unlock(&g->mu);
    return err;
}

/* ---- the public calls --------------------------------------------------------- */

/* A condition variable on CLOCK_MONOTONIC, for cond_wait's slices; 0, or
 * ENOMEM for any failure (the clock is one every system has, so what can
 * fail is a resource, and EINVAL would say the caller's parent was NULL). */
static int cond_init_monotonic(pthread_cond_t *cond)
{
    pthread_condattr_t a;
    if (pthread_condattr_init(&a) != 0)
        return ENOMEM;
    int r = pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    if (r == 0)
        r = pthread_cond_init(cond, &a);
    pthread_condattr_destroy(&a);
    return r == 0 ? 0 : ENOMEM;
}

cctx_group_t *cctx_group_new_at(cctx_t *parent, const char *file, int line, const char *func)
{
    if (!parent) {
        errno = EINVAL;
        return NULL;
    }
    /* On a cache line of its own: see struct cctx_group. */
    size_t size = (sizeof(cctx_group_t) + 63) / 64 * 64;
    cctx_group_t *g = aligned_alloc(64, size);
    if (!g) {
        errno = ENOMEM;
        return NULL;
    }
    memset(g, 0, size);
    int r = pthread_mutex_init(&g->mu, NULL);
    if (r != 0)
        goto fail_mu;
    r = cond_init_monotonic(&g->slot);
    if (r != 0)
        goto fail_slot;
    r = cond_init_monotonic(&g->quiet);
    if (r != 0)
        goto fail_quiet;
    g->pid = getpid();
    g->spins = cctx__os_several_cpus();
    g->ctx = cctx_with_cancel_at(parent, &g->cancel, file, line, func);
    if (!g->ctx) {
        r = errno;
        goto fail_ctx;
    }
    /* If the parent has ended, this runs now, on this thread: g is ready. */
    cctx__after_func_first(g->ctx, &g->on_end, on_ctx_end, g, file, line, func);
    return g;

fail_ctx:
    pthread_cond_destroy(&g->quiet);
fail_quiet:
    pthread_cond_destroy(&g->slot);
fail_slot:
    pthread_mutex_destroy(&g->mu);
fail_mu:
    free(g);
    errno = r == EINVAL ? EINVAL : ENOMEM;
    return NULL;
}

cctx_t *cctx_group_ctx(cctx_group_t *g)
{
    if (!g) {
        errno = EINVAL;
        return NULL;
    }
    return g->ctx;
}

int cctx_group_limit(cctx_group_t *g, int max_running)
{
    if (!g)
        return EINVAL;
    pthread_mutex_lock(&g->mu);
    int r = g->go_called ? EINVAL : 0;
    if (r == 0)
        g->limit = max_running > 0 ? max_running : 0;
    pthread_mutex_unlock(&g->mu);
    return r;
}

/* How often a go watched for a slot, and waited on g->slot: for the tests
 * (testhooks.h). */
static _Atomic long slot_watches, slot_waits;
long cctx__test_group_slot_watches(void)
{
    return cctx__atomic_load_relaxed(&slot_watches);
}

long cctx__test_group_slot_waits(void)
{
    return cctx__atomic_load_relaxed(&slot_waits);
}

/* Reads g's count of tasks, without g->mu, until it is below limit, the
 * context has ended or the spin is over (a hint: the caller looks again
 * under the lock). */
static void watch_for_slot(cctx_group_t *g, int limit)
{
    int64_t spin = spin_ns(g);
    if (spin <= 0)
        return;
    cctx__atomic_fetch_add_relaxed(&slot_watches, 1);
    int64_t until = cctx__os_now() + spin;
    for (unsigned turn = 1; active(g) >= limit; turn++) {
        if (turn % 16 == 0 && (cctx__os_now() >= until || cctx_err(g->ctx) != 0))
            return;
        cctx__cpu_relax();
    }
}

int cctx_group_go_at(cctx_group_t *g, task_fn fn, void *arg, const char *file, int line,
                     const char *func)
{
    if (!g || !fn)
        return EINVAL;
    pthread_mutex_lock(&g->mu);
    g->go_called = true;
    int err;
    bool watched = false;
    for (;;) {
        /* The context's error first: a group canceled by a failing task
         * reports ECANCELED even when a slot is free. */
        err = cctx_err(g->ctx);
        if (err == 0 && g->closed)
            err = ECANCELED; /* the closing wait is about to cancel */
        if (err != 0 || g->limit == 0 || active(g) < g->limit)
            break;
        if (!watched && g->spins) {
            /* A slot about to be freed: watch for it without the lock
             * (the idle spin, above), then look again under it. */
            watched = true;
            int limit = g->limit; /* fixed once go was called */
            pthread_mutex_unlock(&g->mu);
            watch_for_slot(g, limit);
            pthread_mutex_lock(&g->mu);
            continue;
        }
        /* Woken by a finishing task (one slot) or by on_ctx_end (all). */
        cctx__atomic_fetch_add_relaxed(&slot_waits, 1);
        cond_wait(g, &g->slot);
    }
    if (err == 0) {
        struct worker *w = g->idle;
        if (w) {
            g->idle = w->next_idle;
            hand_over(w, fn, arg, file, line, func);
            add_active(g, 1);
            give_turn(w, TURN_TASK);
        } else {
            err = spawn(g, fn, arg, file, line, func);
            /* The slot this go leaves free may be the one a finishing task
             * signalled for it (one wake-up for one slot): pass it on to the
             * next go that waits, or that go sleeps with a slot free. */
            if (err != 0 && g->limit > 0)
                pthread_cond_signal(&g->slot);
        }
    }
    pthread_mutex_unlock(&g->mu);
    return err;
}

int cctx_group_wait_at(cctx_group_t *g, const char *file, int line, const char *func)
{
    if (!g)
        return EINVAL;
    if (worker_of == g)
        return EDEADLK;
    int err = wait_quiet(g);
    /* As errgroup.Wait: the context ends in any case (first cancel wins, so a
     * failed task's cause stays). */
    cctx_cancel_at(g->cancel, file, line, func);
    pool_stop(g);
    return err;
}

void cctx_group_free_at(cctx_group_t *g, const char *file, int line, const char *func)
{
    if (!g)
        return;
    if (worker_of == g) {
        /* No unwinding out of the write (a cancellation point) instead of
         * the abort. */
        pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
        fprintf(stderr,
                "cctx: cctx_group_free at %s:%d in %s called from a task of the same group: "
                "it would wait for itself\n",
                file ? file : "?", line, func ? func : "?");
        abort();
    }
    cctx_cancel_at(g->cancel, file, line, func);
    wait_quiet(g);
    pool_stop(g);
    /* The context has ended, so on_ctx_end has run or is running on the
     * thread that ended it: cctx_after_stop waits for it to finish with g. */
    cctx_after_stop(&g->on_end);
    cctx_release_at(g->ctx, file, line, func);
    pthread_cond_destroy(&g->quiet);
    pthread_cond_destroy(&g->slot);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

void cctx__test_group_hold_lock(cctx_group_t *g, bool hold)
{
    if (hold)
        pthread_mutex_lock(&g->mu);
    else
        pthread_mutex_unlock(&g->mu);
}
