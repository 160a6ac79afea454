/* SPDX-License-Identifier: MIT */
/*
 * fork(): what a child of a process that uses cctx inherits, and what it
 * makes anew.
 *
 * A child gets a copy of every context, of the timer's heaps and of the
 * runners' queue, but only the thread that called fork(). Whatever another
 * thread was doing at that instant stays half done in the child: a context
 * lock it held stays held, a cancellation it was marking never completes.
 * The library keeps its own structures consistent across the fork (the
 * handlers below hold the timer's and the runners' locks while it happens,
 * and wait for stops that are unlinking a registration from a run queue)
 * and makes sure that such a half-done context can only stall a thread that
 * touches it, never the timer: the timer thread never waits for a context
 * lock or for another cancellation (firing.c).
 *
 * Like libuv's uv_loop_fork and libev's ev_loop_fork, the child makes its own
 * kernel objects rather than share the parent's, but it needs no call to do
 * so:
 *   - Threads. The handlers start none (POSIX allows only async-signal-safe
 *     calls in the child of a multithreaded process, and a child about to
 *     exec would pay for threads it never uses). The timer thread and the
 *     runners start on the child's first call that arms a deadline or may
 *     wait for one (cctx_wait, cctx_sleep, cctx_wait_any, cctx_done_fd,
 *     a derivation with a deadline, an after-function registration): then
 *     deadlines inherited from the parent fire in the child as well. So
 *     do those that another thread had taken off the timer's heap to fire
 *     and not yet marked (timer.c, runner.c).
 *   - Done descriptors. The child shares the parent's eventfds, so the
 *     child's cancellations would wake the parent's pollers and the other
 *     way round. Each fork bumps the child's generation, and a descriptor
 *     made in another generation is never signalled, closed or handed out:
 *     cctx_done_fd makes the child its own. The inherited copies are left
 *     open (the child may have closed and reused their numbers), close on
 *     exec. Generations are counted modulo 2048, so only a chain of 2048
 *     nested forks could mistake a parent's descriptor for its own.
 */
#include <pthread.h>

#include "internal.h"

_Atomic uint32_t cctx__fork_generation;
_Atomic int cctx__child_stale;

static void prepare(void)
{
    /* First: a stop it waits for may take the runners' queue's lock. */
    cctx__after_fork_gate(FORK_PREPARE);
    cctx__runner_fork(FORK_PREPARE); /* its queue's lock comes before the stripes' */
    cctx__after_fork(FORK_PREPARE);
    cctx__timer_fork(FORK_PREPARE);
}

static void in_parent(void)
{
    cctx__timer_fork(FORK_PARENT);
    cctx__after_fork(FORK_PARENT);
    cctx__runner_fork(FORK_PARENT);
    cctx__after_fork_gate(FORK_PARENT);
}

static void in_child(void)
{
    cctx__atomic_fetch_add_relaxed(&cctx__fork_generation, 1);
    cctx__timer_fork(FORK_CHILD);
    cctx__runner_fork(FORK_CHILD);
    cctx__after_fork(FORK_CHILD);
    cctx__after_fork_gate(FORK_CHILD);
    cctx__atomic_store_relaxed(&cctx__child_stale, CHILD_STALE);
}

static pthread_once_t watch_once = PTHREAD_ONCE_INIT;

static void watch(void)
{
    cctx__os_fork_watch();
    pthread_atfork(prepare, in_parent, in_child);
}

void cctx__fork_watch(void)
{
    pthread_once(&watch_once, watch);
}

void cctx__child_restart_slow(void)
{
    /* CHILD_RESTARTING, not 0, while this thread tries: a wait that another
     * thread begins meanwhile still sleeps in slices (cctx__child_slice), so
     * that if this attempt fails it tries again itself; with 0 it would
     * sleep to its end, and a deadline it waits for would not fire. */
    int stale = CHILD_STALE;
    if (!cctx__atomic_cas_strong_acq_rel(&cctx__child_stale, &stale, CHILD_RESTARTING))
        return;
    /* A thread that cannot start now (a moment without memory, a thread
     * limit) is tried again by the next call that restarts, and by a wait
     * in progress every CHILD_RETRY_NS (cctx__child_slice): else inherited
     * deadlines would never fire here, nor queued after-functions run. */
    bool timer = cctx__timer_start() == 0;
    bool runners = cctx__runner_restart();
    cctx__atomic_store_release(&cctx__child_stale, timer && runners ? 0 : CHILD_STALE);
    /* No runner can take the queued work now: the library's wakers among
     * it (a grace period's clock, say) must not wait for one that may
     * never come, no more than outside a child (cctx__runner_notify). Run
     * here, once the attempt is over, as they may end contexts, and a
     * cancellation may run user code, which must not keep the attempt
     * under way. */
    if (!runners)
        cctx__runner_run_wakers();
}

/* How long a wait sleeps before it tries a failed restart again: a thread
 * refused for a moment (memory, a thread limit) starts within that much of
 * being possible, and a wait that lasts costs a wake-up that often only
 * while no thread can start. */
enum { CHILD_RETRY_NS = 10 * 1000 * 1000 };

int64_t cctx__child_slice_slow(int64_t deadline)
{
    int64_t retry = cctx__sat_add(cctx__os_now(), CHILD_RETRY_NS);
    return retry < deadline ? retry : deadline;
}
