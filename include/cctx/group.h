/* SPDX-License-Identifier: MIT */
/*
 * cctx/group.h — groups of threads that share a context: Go's
 * errgroup.WithContext for pthreads.
 *
 *     cctx_group_t *g = cctx_group_new(parent);
 *     cctx_group_limit(g, 4);                       // optional, before the first go
 *     for (int i = 0; i < n; i++)
 *         if (cctx_group_go(g, fetch, &jobs[i]) != 0)
 *             break;                                // the group's context ended
 *     int err = cctx_group_wait(g);                 // first non-zero result, or 0
 *     cctx_group_free(g);
 *
 * Each task runs fn(ctx, arg) on a thread of the group's pool with the
 * group's context. The first task to return non-zero cancels that context, so
 * the other tasks (which should watch it: cctx_wait, cctx_err, <cctx/io.h>)
 * stop early, and cctx_group_wait returns that value.
 *
 * Choices the contract leaves open:
 *
 *  - Threads. Each group has its own pool. A task goes to an idle thread of
 *    the pool; a thread is created only when none is idle, so the pool grows
 *    to the largest number of tasks that ran at once, never beyond the limit
 *    when one is set. A go that needs a thread and cannot create one
 *    (EAGAIN, ENOMEM) neither runs its task nor keeps it to run later: the
 *    threads the pool has go on with their tasks, an idle one still takes
 *    the next task with no creation, and the next go that needs a thread
 *    tries again. Idle threads wait for the next task until
 *    cctx_group_wait (which ends the group) or cctx_group_free joins them.
 *    A thread back from a task watches for the next one for up to 20 µs
 *    (spinning, with the CPU's spin-wait hint) before it sleeps: a task
 *    handed over within that time starts at once, with no wake-up, at the
 *    price of that much CPU time per task when none comes. A go on a full
 *    group likewise watches for a free slot for up to 20 µs before it
 *    waits. Neither spins in a group made by a thread that may run on one
 *    CPU only (a one-CPU machine, or on Linux an affinity mask set with
 *    taskset or sched_setaffinity), where the thread it waits for could
 *    not run meanwhile.
 *    Threads have the default attributes (stack size included) and, as
 *    pthread_create gives them, the signal mask of the thread whose
 *    cctx_group_go created them: call go from threads that block the
 *    signals a process-wide handler (sigwait, signalfd) expects blocked, or
 *    set the mask inside the task. Their name (Linux) is "cctx-group".
 *  - Task results: any non-zero int is a failure and becomes the cause code
 *    of the cancellation (errno values by convention, but not required). The
 *    cause message is "group task failed" and its origin (file, line,
 *    function) is the cctx_group_go call that started the failing task, so
 *    cctx_cause on the group's context, or on anything derived from it,
 *    names that call. If the context had already ended (parent canceled,
 *    deadline), the earlier cause stays, as for any second cancellation,
 *    and cctx_group_wait still returns the task's value. The failing
 *    task's thread makes that cancellation, and with it runs the
 *    after-functions on the group's context and its descendants, as a
 *    cancel does on the calling thread; the task counts as returned after
 *    them, so cctx_group_wait also waits for those after-functions.
 *  - cctx_group_wait returns only what tasks returned: 0 if every task
 *    returned 0, even if the context ended meanwhile (read cctx_err of the
 *    context or its parent for that), and never a cctx_group_go failure,
 *    which its caller saw already.
 *  - A task that leaves its thread without returning (it calls
 *    pthread_exit, or the thread is cancelled with pthread_cancel at a
 *    cancellation point inside the task, such as a descriptor call of
 *    <cctx/io.h>) counts as returned with no result, as a goroutine ended
 *    by runtime.Goexit does for errgroup: the group is not canceled for it,
 *    a limit gets its slot back, and cctx_group_wait and cctx_group_free do
 *    not wait for it. Its thread leaves the pool (a later go creates
 *    another when it needs one) and is joined with the others by
 *    cctx_group_wait or cctx_group_free: until then it keeps its stack, so
 *    a group whose tasks leave this way again and again holds one stack
 *    per such task until it is waited for. A cancellation that reaches
 *    the task after its last cancellation point acts as the task returns:
 *    the task counts with its result, its thread leaves the pool, and no
 *    later task is cancelled for it, even when the task returned with
 *    cancellation disabled. Each task starts with cancellation enabled and
 *    deferred, as on a new thread, whatever an earlier task on the thread
 *    left (its signal mask, though, stays as the earlier task left it).
 *  - After cctx_group_wait the group is finished: its context is canceled
 *    (cause "context canceled", origin: the wait call, unless it had ended
 *    before), its threads are joined, every later cctx_group_go returns the
 *    context's error (ECANCELED, or ETIMEDOUT if a deadline had ended it)
 *    without running anything, and every later cctx_group_wait returns the
 *    same value at once. Several threads may wait at the same time; all
 *    return that value once every task has returned and the threads are
 *    joined. A go racing with a wait either starts its task before the
 *    wait sees the group idle (and the wait waits for it) or starts
 *    nothing.
 *  - Only cctx_group_free must not race with any other call on the group,
 *    except from the group's own tasks, which free waits for (a task may call
 *    cctx_group_go while free runs: it returns ECANCELED).
 *  - Deadlocks: cctx_group_wait called from a task of the same group (on the
 *    task's own thread) returns EDEADLK instead of waiting for itself;
 *    cctx_group_free called there reports it on stderr and aborts, as an
 *    over-release does. A task may call cctx_group_go on its own group
 *    (cctx_group_wait then also waits for the tasks it started), but with a
 *    limit that call blocks like any other while the group is full, so tasks
 *    that all wait for a slot deadlock, as in Go.
 *  - Nothing polls: a go blocked on a full group is woken by a finishing
 *    task or by an after-function on the group's context (but see fork()
 *    below).
 *  - After fork() a child must not use a group made before the fork: its
 *    threads do not exist there. It may still end the group's context or
 *    an ancestor of it (the group's own wake-up does nothing in the child).
 *    The library starts no thread in the child for groups (nothing is done
 *    at fork time); groups the child makes work as anywhere. While the
 *    library's own threads cannot start in the child (<cctx.h>, fork()), a
 *    go blocked on a full group and a wait wake every 10 ms to try them
 *    again, so that a deadline the group's context inherited still ends
 *    it.
 *  - cctx_group_go, cctx_group_wait and cctx_group_free wait at no
 *    cancellation point: a thread cancelled with pthread_cancel while
 *    blocked in one acts on it at its next cancellation point after the
 *    call returns, as with a blocked cctx_wait (or in an after-function of
 *    the group's context that the call runs, which is the program's code).
 *
 * Creating, cancelling and waiting calls are macros over public *_at
 * functions that record the call site; bindings and wrappers call the *_at
 * forms.
 */
#ifndef CCTX_GROUP_H
#define CCTX_GROUP_H

#include <cctx.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cctx_group cctx_group_t;

/* A group whose context is a cancelable child of parent, made at the caller's
 * line. The group owns one reference to that context until cctx_group_free;
 * the caller may release parent at once (the child keeps it alive). A parent
 * that has already ended gives a group whose context is born done: every go
 * then returns its error. NULL with errno EINVAL (NULL parent) or ENOMEM
 * (nothing allocated, no context left behind). No thread is created yet. */
CCTX_API cctx_group_t *cctx_group_new_at(cctx_t *parent, const char *file, int line,
                                         const char *func);
#define cctx_group_new(parent) cctx_group_new_at((parent), CCTX__SITE)

/* The group's context, borrowed: valid until cctx_group_free (cctx_ref it to
 * keep it longer). NULL with errno EINVAL for a NULL group. */
CCTX_API cctx_t *cctx_group_ctx(cctx_group_t *g);

/* At most max_running tasks run at once; <= 0 means no limit (the default).
 * Calling it again before the first go replaces the value. EINVAL for a NULL
 * group, or once cctx_group_go has been called on the group with a non-NULL
 * fn (whether or not that call started a task). */
CCTX_API int cctx_group_limit(cctx_group_t *g, int max_running);

/* Runs fn(ctx, arg) on a thread of the pool, ctx being the group's context
 * (borrowed: valid while fn runs). Blocks while max_running tasks run.
 * Returns:
 *   0          the task was handed to a thread;
 *   ECANCELED / ETIMEDOUT   the group's context had ended (or ended while
 *              this call waited for a slot; it wakes at once), or the group
 *              was waited for: nothing started;
 *   EAGAIN     a new thread was needed and pthread_create failed (thread or
 *              resource limit);
 *   ENOMEM     a new thread was needed and memory for it was lacking;
 *              (in both, nothing started and the group and its context are
 *              as they were: the caller may retry later, or give up and
 *              wait; the group is not canceled);
 *   EINVAL     NULL g or fn.
 * When fn returns non-zero and no task has failed before, the group's context
 * is canceled with cause code = that value, message "group task failed" and
 * origin = this call's site. */
CCTX_API int cctx_group_go_at(cctx_group_t *g, int (*fn)(cctx_t *ctx, void *arg), void *arg,
                              const char *file, int line, const char *func);
#define cctx_group_go(g, fn, arg) cctx_group_go_at((g), (fn), (arg), CCTX__SITE)

/* Waits until every started task has returned (tasks started by tasks
 * included), then cancels the group's context (origin: this call) and joins
 * the pool's threads. Returns the first non-zero task result, 0 if none;
 * EINVAL for a NULL group; EDEADLK, without waiting, when called from a task
 * of this group. */
CCTX_API int cctx_group_wait_at(cctx_group_t *g, const char *file, int line, const char *func);
#define cctx_group_wait(g) cctx_group_wait_at((g), CCTX__SITE)

/* Cancels the group's context (origin: this call; nothing changes if it
 * had ended), waits for every task to return, joins the threads, releases the
 * context (the group's reference) and frees the group. Tasks that ignore their
 * context keep this call waiting. NULL does nothing. */
CCTX_API void cctx_group_free_at(cctx_group_t *g, const char *file, int line, const char *func);
#define cctx_group_free(g) cctx_group_free_at((g), CCTX__SITE)

#ifdef __cplusplus
}
#endif

#endif /* CCTX_GROUP_H */
