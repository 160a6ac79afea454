/* SPDX-License-Identifier: MIT */
/*
 * <cctx/io.h>, second half: condition variables, mutexes, semaphores and
 * joins that honour a context (descriptors are in src/io.c). Built on the
 * public API of <cctx.h> only.
 *
 * Condition variables: see the protocol above cond_fire. Locks, semaphores
 * and joins: see sliced.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/io.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include "after.h"
#include "atomics.h"
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "io_internal.h"

#define unlikely(x) cctx__io_unlikely(x)

_Atomic(cctx__io_create_fn) cctx__io_thread_create = pthread_create;

/* ---- timed calls ----------------------------------------------------------------- */

/*
 * Each slice ends at an absolute time on the clock its timed call measures:
 * CLOCK_MONOTONIC where the libc has the clock-selecting call
 * (pthread_mutex_clocklock, sem_clockwait: glibc 2.30; pthread_clockjoin_np:
 * 2.31), else CLOCK_REALTIME, converted from the monotonic slice length, for
 * the POSIX pthread_mutex_timedlock and sem_timedwait and for
 * pthread_timedjoin_np (musl; CCTX_PORTABLE). The cost of the conversion: a
 * step of the wall clock while a slice runs lengthens or shortens that one
 * slice by the step (how far depends on the libc: glibc's futex follows the
 * step, musl measures the wait from its start). Whether ctx has ended is
 * never the timed call's answer, so a step delays noticing a cancel, never
 * ends a wait early.
 *
 * ThreadSanitizer (GCC 12's) intercepts the CLOCK_REALTIME timed calls but
 * not the clock* ones, and would not see the synchronization they give, so
 * under it the CLOCK_REALTIME calls are used too.
 */
#if defined(__SANITIZE_THREAD__)
#define SLICE_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SLICE_TSAN 1
#endif
#endif
#ifndef SLICE_TSAN
#define SLICE_TSAN 0
#endif

#define MUTEX_MONOTONIC (CCTX_USE_MUTEX_CLOCKLOCK && !SLICE_TSAN)
#define SEM_MONOTONIC (CCTX_USE_SEM_CLOCKWAIT && !SLICE_TSAN)
#define JOIN_MONOTONIC (CCTX_USE_CLOCKJOIN && !SLICE_TSAN)
#define COND_MONOTONIC (CCTX_USE_COND_CLOCKWAIT && !SLICE_TSAN)

/* Each waits at most d nanoseconds of the real clock; 0 or an error number
 * (ETIMEDOUT when d ran out). */
typedef int (*timed_fn)(void *obj, void **out, int64_t d);

/* A reading of clock plus d, as the timed calls take it. */
static struct timespec slice_end(clockid_t clock, int64_t d)
{
    struct timespec until;
    clock_gettime(clock, &until);
    int64_t ns = until.tv_nsec + d;
    until.tv_sec += (time_t)(ns / CCTX_SEC(1));
    until.tv_nsec = (long)(ns % CCTX_SEC(1));
    return until;
}

static int timed_mutex(void *obj, void **out, int64_t d)
{
    (void)out;
#if MUTEX_MONOTONIC
    struct timespec until = slice_end(CLOCK_MONOTONIC, d);
    return pthread_mutex_clocklock(obj, CLOCK_MONOTONIC, &until);
#else
    struct timespec until = slice_end(CLOCK_REALTIME, d);
    return pthread_mutex_timedlock(obj, &until);
#endif
}

static int timed_sem(void *obj, void **out, int64_t d)
{
    (void)out;
#if SEM_MONOTONIC
    struct timespec until = slice_end(CLOCK_MONOTONIC, d);
    int r = sem_clockwait(obj, CLOCK_MONOTONIC, &until);
#else
    struct timespec until = slice_end(CLOCK_REALTIME, d);
    int r = sem_timedwait(obj, &until);
#endif
    return r == 0 ? 0 : errno;
}

#if CCTX_USE_TIMEDJOIN
static int timed_join(void *obj, void **out, int64_t d)
{
#if JOIN_MONOTONIC
    struct timespec until = slice_end(CLOCK_MONOTONIC, d);
    return pthread_clockjoin_np(*(pthread_t *)obj, out, CLOCK_MONOTONIC, &until);
#else
    struct timespec until = slice_end(CLOCK_REALTIME, d);
    return pthread_timedjoin_np(*(pthread_t *)obj, out, &until);
#endif
}
#endif

/* A condition wait of at most d nanoseconds of the real clock. Without
 * pthread_cond_clockwait the end is read on CLOCK_REALTIME, the clock of a
 * condition variable made with default attributes: one made with another
 * clock (pthread_condattr_setclock) reads that end as a time decades away,
 * so its wait lasts until woken, as pthread_cond_wait's does. */
static int timed_cond(pthread_cond_t *cond, pthread_mutex_t *mutex, int64_t d)
{
#if COND_MONOTONIC
    struct timespec until = slice_end(CLOCK_MONOTONIC, d);
    return pthread_cond_clockwait(cond, mutex, CLOCK_MONOTONIC, &until);
#else
    struct timespec until = slice_end(CLOCK_REALTIME, d);
    return pthread_cond_timedwait(cond, mutex, &until);
#endif
}

/* ---- condition variables ---------------------------------------------------------- */

/*
 * The end of ctx must wake a thread blocked in pthread_cond_wait without a
 * lost wake-up. The after-function (Go's AfterFunc + sync.Cond pattern)
 * broadcasts once it has had the mutex: the waiter holds the mutex from
 * before it decides to sleep until pthread_cond_wait releases it, so once fn
 * has had the mutex the waiter is either asleep on cond (registered, so even
 * a broadcast made after fn lets the mutex go reaches it) or awake already.
 *
 * The after-function runs on whichever thread ends ctx: a canceller that may
 * hold the mutex itself (waiting for it would deadlock), a thread that ends
 * deadlines (a busy mutex would hold up every other deadline), or a thread
 * advancing the fake clock. So it never waits for the mutex: it tries it
 * once, and when the mutex is busy it queues the wait for the waker, one
 * library thread per process that takes the mutex, broadcasts and lets go.
 * The waker is started by the first cctx_cond_wait, before it registers
 * anything: a thread that cannot be created is that call's error (EAGAIN),
 * returned before it waits, never a deadlock or a lost wake-up later. The
 * after-function itself creates nothing and takes no lock but the waker's
 * queue lock (a leaf, held for a few instructions, never while anybody waits
 * for a mutex of the program's).
 *
 * The waker tries each mutex it holds an entry for; when all are busy, it
 * waits for one of them, in turn, for one slice (1 ms, doubling to 16 ms
 * while they stay busy), queued on that mutex, so that one free only for
 * moments is still had; then it takes the new entries and tries them
 * first. So however many mutexes their holders keep, a wake-up queued on a
 * free one waits for one slice at most, not for each busy one in turn.
 *
 * state (atomic) moves:
 *   ARMING  -> FIRED     fn ran before the waiter slept (on the waiter's own
 *                        thread if ctx was already done): fn touches nothing
 *                        and the waiter, seeing FIRED, does not sleep
 *   WAITING -> FIRED     fn wakes the waiter (trylock, or the waker)
 *   WAITING -> LEAVING   the waiter woke first: fn, if it comes, does nothing
 * After WAITING -> FIRED the waiter, holding the mutex again, waits in
 * cctx_after_stop for fn to finish (fn needs nothing the waiter holds); if fn
 * queued the wait, the waiter then waits on cond, under the mutex, for the
 * waker's `done`, which the waker, after taking the entry off its queue,
 * broadcasts and then sets under the mutex: once the waiter sees it, the
 * waker touches nothing of the waiter's frame or of cond again, only the
 * mutex, to unlock it (which POSIX allows even if the mutex is destroyed
 * right after). A mutex the waker cannot take (ENOTRECOVERABLE: nobody can)
 * is broadcast without it and `done` set last, and a waiter whose wait
 * could not take the mutex back reads `done` without it: so `done` is
 * atomic and always the waker's last touch of the frame and of cond.
 *
 * Robust mutexes. A trylock or lock of a mutex whose owner died holding it
 * returns EOWNERDEAD and has acquired it, its state marked inconsistent:
 * that is success, not "busy". The library cannot repair what the mutex
 * protects, and it cannot keep the mutex: the waiter needs it to return, a
 * lock cannot be handed from one thread to another, and fn's thread (the
 * canceller's) may run on for ever. Unlocking it as it is would make it
 * unusable for good (ENOTRECOVERABLE) for the waiter and for everybody
 * else. So fn, or the waker, calls pthread_mutex_consistent, which is what
 * lets the unlock leave the mutex usable, and sets owner_died; the waiter
 * then returns EOWNERDEAD holding the mutex, as pthread_mutex_lock would
 * have told it, and repairs the state (its own pthread_mutex_consistent
 * then finds the mutex consistent already: glibc answers EINVAL, harmless).
 * A thread that takes the mutex between that unlock and the waiter's return
 * is not told; that is the price of waking the waiter at all. When the
 * waiter's own pthread_cond_wait gets EOWNERDEAD, the mutex comes back
 * inconsistent and EOWNERDEAD is returned as pthread gives it, unless the
 * waiter must still wait for the waker: waiting unlocks, so it marks the
 * mutex consistent first, as fn does.
 *
 * fork(): the child has no waker. An atfork handler (which starts nothing)
 * empties the queue, whose entries belong to threads the child does not
 * have, and the child's first cctx_cond_wait starts a waker of its own.
 */
enum { CW_ARMING, CW_WAITING, CW_FIRED, CW_LEAVING };

struct cond_wait {
    pthread_cond_t *cond;
    pthread_mutex_t *mutex;
    atomic_int state;
    int handoff;            /* written by fn; read after cctx_after_stop */
    int owner_died;         /* fn or the waker took mutex with EOWNERDEAD (see above):
                               written as handoff is, or by the waker before done */
    atomic_int done;        /* set by the waker, last; under mutex when it has it */
    struct cond_wait *next; /* on the waker's queue */
    cctx_after_t reg;
};

static struct {
    pthread_mutex_t lock; /* guards queue and started; a leaf */
    pthread_cond_t more;  /* queue became non-empty */
    struct cond_wait *queue;
    bool started;         /* the waker exists in this process */
    atomic_bool ready;    /* started, for the lock-free check */
} waker = {.lock = PTHREAD_MUTEX_INITIALIZER, .more = PTHREAD_COND_INITIALIZER};

static pthread_once_t waker_once = PTHREAD_ONCE_INIT;

/* fn or the waker took w's mutex with EOWNERDEAD (see above): marks it
 * consistent, so that letting it go leaves it usable, and has the waiter
 * report EOWNERDEAD. */
static void took_from_dead_owner(struct cond_wait *w)
{
    w->owner_died = 1;
    pthread_mutex_consistent(w->mutex);
}

/* Wakes the waiter of w, whose mutex this thread holds, and lets it go. */
static void wake_locked(struct cond_wait *w)
{
    pthread_mutex_t *mutex = w->mutex;
    pthread_cond_broadcast(w->cond);
    cctx__atomic_store_release(&w->done, 1);
    pthread_mutex_unlock(mutex);
}

/* w's lock attempt has ended with r (not EBUSY, not a timeout): wakes its
 * waiter, and w may be gone after. A mutex that fails otherwise
 * (ENOTRECOVERABLE; EINVAL: not the caller's business here) is broadcast
 * without it, which is the best left to do; done comes after the broadcast,
 * since the waiter, whose wait cannot take such a mutex back either, may
 * leave as soon as it sees done. */
static void settle(struct cond_wait *w, int r)
{
    if (r == 0 || r == EOWNERDEAD) {
        if (r == EOWNERDEAD)
            took_from_dead_owner(w);
        wake_locked(w);
    } else {
        pthread_cond_broadcast(w->cond);
        cctx__atomic_store_release(&w->done, 1);
    }
}

static void *waker_main(void *arg)
{
    (void)arg;
#if CCTX_USE_THREAD_NAMES
    pthread_setname_np(pthread_self(), "cctx-waker");
#endif
    struct cond_wait *mine = NULL; /* taken off the queue, mutex not had yet */
    int64_t slice = CCTX__IO_SLICE_MIN;
    pthread_mutex_lock(&waker.lock);
    for (;;) {
        /* New entries go first: their mutexes may well be free. */
        while (waker.queue) {
            struct cond_wait *w = waker.queue;
            waker.queue = w->next;
            w->next = mine;
            mine = w;
        }
        if (!mine) {
            slice = CCTX__IO_SLICE_MIN;
            pthread_cond_wait(&waker.more, &waker.lock);
            continue;
        }
        pthread_mutex_unlock(&waker.lock);
        bool all_busy = true;
        for (struct cond_wait **pw = &mine; *pw;) {
            struct cond_wait *w = *pw;
            int r = pthread_mutex_trylock(w->mutex);
            if (r == EBUSY) {
                pw = &w->next;
                continue;
            }
            *pw = w->next; /* off the list first: after settle w may be gone */
            all_busy = false;
            settle(w, r);
        }
        if (all_busy) {
            /* Every mutex busy: one of them, in turn, is waited for in its
             * own queue for a slice (1 ms, doubling to 16 ms while all stay
             * busy), so that a mutex free only for moments is still had;
             * then it goes to the end of the list. An entry queued
             * meanwhile waits for that slice at most. */
            struct cond_wait *w = mine;
            mine = w->next;
            int r = timed_mutex(w->mutex, NULL, slice);
            if (r == ETIMEDOUT || r == EINTR) {
                struct cond_wait **tail = &mine;
                while (*tail)
                    tail = &(*tail)->next;
                w->next = NULL;
                *tail = w;
                slice = cctx__io_next_slice(slice);
            } else {
                settle(w, r);
                slice = CCTX__IO_SLICE_MIN;
            }
        } else {
            slice = CCTX__IO_SLICE_MIN;
        }
        pthread_mutex_lock(&waker.lock);
    }
    return NULL;
}

static void waker_prepare(void)
{
    pthread_mutex_lock(&waker.lock);
}

static void waker_parent(void)
{
    pthread_mutex_unlock(&waker.lock);
}

/* Only what is async-signal-safe in spirit: plain stores, a condition
 * variable made anew, and the unlock of a lock this very thread took in
 * waker_prepare. */
static void waker_child(void)
{
    /* The parent's waker may have been asleep on `more`: a condition
     * variable keeps its waiters' records (musl: a list of nodes on their
     * stacks), and a signal in the child could go to that waiter, which
     * does not exist here, instead of to the child's own waker. A fresh one,
     * as the timer makes its own (timer.c). */
    pthread_cond_init(&waker.more, NULL);
    waker.queue = NULL;
    waker.started = false;
    cctx__atomic_store_relaxed(&waker.ready, false);
    pthread_mutex_unlock(&waker.lock);
}

static void waker_init(void)
{
    pthread_atfork(waker_prepare, waker_parent, waker_child);
}

/* Starts the waker if this process has none: 0, or pthread_create's error.
 * Detached, with every signal blocked (it must not take the program's
 * signals) and a small stack. */
static int ensure_waker(void)
{
    if (cctx__atomic_load_acquire(&waker.ready))
        return 0;
    pthread_once(&waker_once, waker_init);
    pthread_mutex_lock(&waker.lock);
    int r = 0;
    if (!waker.started) {
        pthread_attr_t attr;
        r = pthread_attr_init(&attr);
        if (r == 0) {
            pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
            pthread_attr_setstacksize(&attr, 64 * 1024);
            sigset_t all, old;
            sigfillset(&all);
            pthread_sigmask(SIG_SETMASK, &all, &old);
            pthread_t t;
            cctx__io_create_fn create = cctx__atomic_load_relaxed(&cctx__io_thread_create);
            r = create(&t, &attr, waker_main, NULL);
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            pthread_attr_destroy(&attr);
        }
        if (r == 0) {
            waker.started = true;
            cctx__atomic_store_release(&waker.ready, true);
        }
    }
    pthread_mutex_unlock(&waker.lock);
    return r;
}

static void cond_fire(void *arg)
{
    struct cond_wait *w = arg;
    int s = cctx__atomic_load_acquire(&w->state);
    do {
        if (s == CW_LEAVING)
            return;
    } while (!cctx__atomic_cas_weak_acq_rel(&w->state, &s, CW_FIRED));
    if (s == CW_ARMING)
        return;
    /* Broadcast after the unlock (see above): the waiter then wakes to a
     * free mutex instead of blocking on ours. cctx_after_stop in the waiter
     * waits for fn, so cond is still valid here. */
    int r = pthread_mutex_trylock(w->mutex);
    if (r == 0) {
        pthread_mutex_unlock(w->mutex);
        pthread_cond_broadcast(w->cond);
        return;
    }
    if (unlikely(r == EOWNERDEAD)) { /* had, not busy: see above */
        took_from_dead_owner(w);
        pthread_mutex_unlock(w->mutex);
        pthread_cond_broadcast(w->cond);
        return;
    }
    w->handoff = 1;
    pthread_mutex_lock(&waker.lock);
    w->next = waker.queue;
    waker.queue = w;
    pthread_cond_signal(&waker.more);
    pthread_mutex_unlock(&waker.lock);
}

/* After fn queued w: waits until the waker has let go of w (done). rc is the
 * wait's result so far, 0 or EOWNERDEAD with the mutex held, else an error
 * without it (ENOTRECOVERABLE); returns the same for the end of the wait. */
static int await_waker(struct cond_wait *w, int rc)
{
    while (!cctx__atomic_load_acquire(&w->done)) {
        if (rc == EOWNERDEAD) {
            /* Waiting unlocks, which would make an inconsistent mutex
             * unrecoverable: mark it consistent and report it (see above). */
            took_from_dead_owner(w);
            rc = 0;
        }
        /* rc != 0: not held, as the mutex cannot be had; the waker cannot
         * take it either, and broadcasts and sets done without it. */
        if (rc == 0)
            rc = pthread_cond_wait(w->cond, w->mutex);
        else
            sched_yield();
    }
    return rc;
}

/* pthread_cond_wait, but in a child of fork() whose library threads could
 * not all start: ctx's deadline cannot end the wait then, so it wakes at
 * the end of each slice to try them again (io_internal.h), and waits on
 * unless ctx has ended meanwhile (what the after-function's broadcast
 * would have told it: 0, as a spurious wake-up). */
static int cond_wait_in_slices(cctx_t *ctx, pthread_cond_t *cond, pthread_mutex_t *mutex)
{
    for (;;) {
        if (!cctx__io_child_restart())
            return pthread_cond_wait(cond, mutex);
        int rc = timed_cond(cond, mutex, cctx__io_child_retry_ns());
        if (rc != ETIMEDOUT)
            return rc;
        if (cctx_err(ctx))
            return 0;
    }
}

/* The end of a wait that pthread_cond_wait ended with rc: takes w off ctx
 * and out of the waker's hands; returns rc, or EOWNERDEAD (mutex held). */
static int leave_wait(struct cond_wait *w, int rc)
{
    int s = CW_WAITING;
    if (cctx__atomic_cas_strong_acq_rel(&w->state, &s, CW_LEAVING)) {
        cctx_after_stop(&w->reg); /* fn, if running, returns without the mutex */
        return rc;
    }
    cctx_after_stop(&w->reg); /* fn never waits for mutex, which we may hold */
    if (w->handoff)
        rc = await_waker(w, rc); /* never leave while the waker may touch w */
    if (rc == 0 && unlikely(w->owner_died))
        rc = EOWNERDEAD;
    return rc;
}

/* A cancellation acted on in pthread_cond_wait, which took the mutex back:
 * the program's own cleanup handlers, outside this one, let it go. The
 * condition wait await_waker may make here must not act on it again. (A
 * robust mutex whose owner died, taken back inconsistent or not at all,
 * cannot be told here from one taken back whole: with the wake-up handed
 * to the waker, await_waker then waits on it as if it were whole.) */
static void cond_wait_cancelled(void *arg)
{
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
    (void)leave_wait(arg, 0);
}

int cctx_cond_wait(cctx_t *ctx, pthread_cond_t *cond, pthread_mutex_t *mutex)
{
    if (unlikely(!ctx || !cond || !mutex))
        return EINVAL;
    int err = cctx_err(ctx);
    if (err)
        return err;
    if ((err = ensure_waker()))
        return err;
    struct cond_wait w = {.cond = cond, .mutex = mutex, .state = CW_ARMING};
    if ((err = cctx__after_func_first(ctx, &w.reg, cond_fire, &w, CCTX__SITE)))
        return err;
    int s = CW_ARMING;
    if (!cctx__atomic_cas_strong_acq_rel(&w.state, &s, CW_WAITING)) {
        cctx_after_stop(&w.reg); /* fn ran without touching cond or mutex */
        return cctx_err(ctx);
    }
    int rc;
    /* pthread_cond_wait is a cancellation point, and so is this call: a
     * thread cancelled in it unwinds with mutex taken back, and w, on its
     * stack, must not stay registered on ctx nor be held by the waker. */
    pthread_cleanup_push(cond_wait_cancelled, &w);
    rc = cond_wait_in_slices(ctx, cond, mutex);
    pthread_cleanup_pop(0);
    /* A cancellation still pending (it came as the wait ended) must not act
     * in await_waker's condition wait either, with w in the waker's hands:
     * it acts at the caller's next cancellation point. */
    int cancellation;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancellation);
    rc = leave_wait(&w, rc);
    pthread_setcancelstate(cancellation, NULL);
    /* 0 or EOWNERDEAD: held; any other error: not held, which ctx's error
     * in its place would hide. */
    return rc ? rc : cctx_err(ctx);
}

/* ---- mutexes, semaphores, joins ------------------------------------------------ */

/*
 * Nothing wakes a thread blocked in pthread_mutex_lock, sem_wait or
 * pthread_join early: a futex wake makes glibc retry and sleep again, and a
 * post would hand a semaphore unit to whichever waiter takes it. So these
 * wait in timed slices and check ctx between them. The slice is measured
 * from the real clock, but whether ctx has ended is only ever cctx_err's
 * answer, never the timed call's. On the real clock a slice ends no later
 * than ctx's deadline, so that the wait sees it as soon as it fires. Not
 * under the fake clock: the time left there is virtual, and only an advance,
 * at any real moment, reaches it; a slice cut to it (down to the floor)
 * would wake the waiter thousands of times a second until then, and a slice
 * that runs out is never taken for the deadline anyway.
 */

/* Calls timed() slice after slice until it succeeds or fails with something
 * other than a timeout, or ctx ends; returns 0 or the error. */
static int sliced(cctx_t *ctx, timed_fn timed, void *obj, void **out)
{
    for (int64_t slice = CCTX__IO_SLICE_MIN;; slice = cctx__io_next_slice(slice)) {
        /* Each slice, not only the first: a restart that could not start
         * the timer (no memory, a thread limit) is tried again, else an
         * inherited deadline never fires here. Until it starts, ctx's
         * deadline cannot end the wait, so a slice is not cut to it: one
         * cut to the floor would try a thread every 50 us. */
        bool stale = cctx__io_child_restart();
        int err = cctx_err(ctx);
        if (err)
            return err;
        int64_t d = slice;
        if (!stale && !cctx__io_fake_clock_on()) {
            int64_t left = cctx_remaining(ctx);
            d = left < CCTX__IO_SLICE_FLOOR ? CCTX__IO_SLICE_FLOOR : left > slice ? slice : left;
        }
        int r = timed(obj, out, d);
        if (r != ETIMEDOUT && r != EINTR)
            return r;
    }
}

int cctx_mutex_lock(cctx_t *ctx, pthread_mutex_t *mutex)
{
    if (unlikely(!ctx || !mutex))
        return EINVAL;
    int err = cctx_err(ctx);
    if (err)
        return err;
    int r = pthread_mutex_trylock(mutex);
    return r == EBUSY ? sliced(ctx, timed_mutex, mutex, NULL) : r;
}

int cctx_sem_wait(cctx_t *ctx, sem_t *sem)
{
    if (unlikely(!ctx || !sem)) {
        errno = EINVAL;
        return -1;
    }
    int err = cctx_err(ctx);
    if (!err) {
        int r;
        while ((r = sem_trywait(sem)) < 0 && errno == EINTR)
            ;
        if (r == 0)
            return 0;
        if (errno != EAGAIN)
            return -1;
        err = sliced(ctx, timed_sem, sem, NULL);
        if (!err)
            return 0;
    }
    errno = err;
    return -1;
}

int cctx_thread_join(cctx_t *ctx, pthread_t thread, void **ret)
{
    if (unlikely(!ctx))
        return EINVAL;
    int err = cctx_err(ctx);
    if (err)
        return err;
    if (pthread_equal(thread, pthread_self()))
        return EDEADLK; /* as pthread_join says; and ThreadSanitizer aborts on it */
#if CCTX_USE_TIMEDJOIN
    int r = pthread_tryjoin_np(thread, ret);
    return r == EBUSY ? sliced(ctx, timed_join, &thread, ret) : r;
#else
    /* POSIX alone cannot wait for a thread and give up: a helper thread in
     * pthread_join would join it for good, and the caller's promise (still
     * joinable when ctx ends) would be broken. */
    (void)ret;
    return ENOSYS;
#endif
}
