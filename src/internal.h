/* SPDX-License-Identifier: MIT */
/*
 * What the core's source files call in one another. The objects are in
 * layout.h, the locks and references in lock.h, the debugging switches in
 * debug.h, the atomics in atomics.h; ARCHITECTURE.md tells the whole story.
 */
#ifndef CCTX_INTERNAL_H
#define CCTX_INTERNAL_H

#include <stdlib.h>

#include "after.h"
#include "atomics.h"
#include "debug.h"
#include "layout.h"
#include "lock.h"
#include "os.h"

/* Contexts made one after another mostly lie near one another, as the
 * allocator hands out neighbouring blocks, but a walk over them need not
 * meet them in address order: glibc's per-thread cache hands freed blocks
 * back in runs of eight in falling order, which the hardware prefetcher does
 * not follow, and a tree built from them costs a cache miss per context to
 * cancel and release (three times as long). A walk over many contexts (a
 * chain, a long list, a chain freeing itself) fetches the lines 2 KB and
 * 6 KB either side of the context it is at: whichever way the walk goes
 * through memory, the contexts 25 or so ahead are then on their way. The
 * far pair is for a program that rebuilds its trees in the blocks of the
 * last: each rebuild interleaves the runs wider, and after thirty the
 * contexts of a walk zigzag 4 to 5 KB apart, out of reach of the near pair
 * (a wide million-context tree, rebuilt sixty times: 37 ms a teardown with
 * both pairs, 51 with the near pair alone). Contexts strewn at random
 * lose nothing by it (no prefetch helps there). A line already cached
 * makes its prefetch nearly free. A prefetch reads nothing and cannot
 * fault; the addresses are computed as integers, as they may lie outside
 * any object. */
static inline void cctx__prefetch_around(const void *p)
{
    enum { PREFETCH_NEAR = 2048, PREFETCH_FAR = 6144 };
    __builtin_prefetch((const void *)((uintptr_t)p + PREFETCH_NEAR));
    __builtin_prefetch((const void *)((uintptr_t)p - PREFETCH_NEAR));
    __builtin_prefetch((const void *)((uintptr_t)p + PREFETCH_FAR));
    __builtin_prefetch((const void *)((uintptr_t)p - PREFETCH_FAR));
}

/* tree.c */
void cctx__node_push(struct cctx__node **head, struct cctx__node *n, uintptr_t tag);
void cctx__node_unlink(struct cctx__node *n);
cctx_t *cctx__with_deadline(cctx_t *parent, int64_t deadline, int code, const char *msg,
                            cctx_cancel_t **cancel, const char *file, int line, const char *func);
/* A timer context under parent in no source's list, with no deadline yet
 * and `extra` bytes after it; not yet shown to the debugging switches. */
struct cctx__timer *cctx__timer_unlinked(cctx_t *parent, size_t extra, const char *file, int line,
                                         const char *func);
/* The slow path of a release that found REFS_WAITED set (quiesce.c). */
void cctx__release_waited(struct cctx *c, uint32_t old, const char *file, int line,
                          const char *func);

/* cancel.c */
void cctx__cancel(struct cctx__cancelable *c, int err, int code, const char *msg, const char *file,
                  int line, const char *func);
/* The same, for the library's own cancellations from inside an
 * after-function of a cancellation this thread is running (grace.c): the
 * after-functions it reaches join the run queue this thread is draining, if
 * any, and run before that drain ends, instead of in a drain of their own
 * nested in it. A chain of such cancellations, each made by an
 * after-function of the one before (a chain of grace contexts ending with
 * their parents), then runs in a loop instead of a recursion whose depth is
 * the chain's. */
void cctx__cancel_joining(struct cctx__cancelable *c, int err, int code, const char *msg,
                          const char *file, int line, const char *func);
/* Waits until the marking phase that ended c has reached every descendant. */
void cctx__wait_marked(struct cctx__cancelable *c);
struct cctx__cause *cctx__cause_new(struct cctx *origin, int err, int code, const char *msg,
                                    const char *file, int line, const char *func);
void cctx__cause_free(struct cctx__cause *cause, struct cctx *origin);
/* Fills out with the cause of c, which is done; returns its error. */
int cctx__cause_fill(const struct cctx__cancelable *c, cctx_cause_t *out);

/* firing.c */
/* Fires t's deadline from the timer thread, which holds a reference on t and
 * gives it up here (see firing.c for what the thread will not do). */
void cctx__timer_fire(struct cctx__timer *t);
/* The firing the timer thread has in hand has marked its context, found it
 * ended, or is now on record as a queued job: from here on a child of
 * fork() need not fire it again (timer.c). */
void cctx__timer_fire_committed(void);
/* The timer thread has t's firing in hand again (a job it got back). */
void cctx__timer_fire_in_hand(struct cctx__timer *t);

/* after.c */
/* A run queue: the registrations one cancellation took (or, for deadlines,
 * the runners' shared queue), in the order they will run. Its lock is a word
 * lock taken alone or inside a context lock (take_list appends under the
 * owner's lock), never the other way round. */
struct cctx__run_queue {
    _Atomic uint32_t lock;
    struct cctx__node *head, **tail;
};
void cctx__run_queue_init(struct cctx__run_queue *q);
/* Called by a canceller, under the owner's lock, for a registration it took
 * out of the owner's list: appends it to q (a waker of cctx__after_func_first
 * goes to the front) and returns true, or returns false
 * when a stopper claimed it first (the canceller then lets go of it through
 * cctx__after_wait_stopper or cctx__after_try_stopper). */
bool cctx__after_take(struct cctx__after *a, struct cctx__run_queue *q);
/* Runs q's first registration that no stopper claimed; false if none. */
bool cctx__run_queue_run_one(struct cctx__run_queue *q);
/* The same, if that registration is a waker of cctx__after_func_first. */
bool cctx__run_queue_run_waker(struct cctx__run_queue *q);
/* Runs every registration of q, then waits until stoppers that claimed the
 * others have let go of q, so that q may go out of scope. */
void cctx__run_queue_drain(struct cctx__run_queue *q);
/* The local queue this thread is draining (innermost), or NULL. */
struct cctx__run_queue *cctx__run_queue_draining(void);
/* Called by a canceller that took a registration a stopper had claimed
 * (STOPPING) out of its list: waits until the stopper is done with the owner,
 * then lets go of the registration for good. */
void cctx__after_wait_stopper(struct cctx__after *a);
/* The same without waiting: false if the stopper is still busy. */
bool cctx__after_try_stopper(struct cctx__after *a);

/* runner.c: the library threads that run, for the timer thread, what it must
 * not run itself (user code, and anything that may block). */
extern struct cctx__run_queue cctx__runner_queue;
struct cctx__job {
    struct cctx__job *next;
    void (*run)(struct cctx__job *job); /* owns and frees the job */
    /* Set: the job finishes the firing of this deadline, whose context is
     * not marked yet. Until it is (cctx__runner_job_marked), the job stays
     * on record, queued or taken, and a child of fork() runs it again
     * (runner.c). */
    struct cctx__timer *firing;
    /* In a child of fork(): a firing job a parent's runner had taken, and
     * may have begun. */
    bool again;
};
/* A block of up to CCTX__JOB_BLOCK bytes for a job: from the heap, or, out
 * of memory, one of a few kept for that case, so that work handed to a
 * runner to keep it off the calling thread (a firing's releases, which may
 * run value destructors on the timer thread; a dump's last references; a
 * signal's delivery) still goes to one. NULL only when those are all in use too.
 * cctx__job_block_free gives it back. */
enum { CCTX__JOB_BLOCK = 256 };
void *cctx__job_block(size_t size);
void cctx__job_block_free(void *p);
/* n registrations were added to cctx__runner_queue: a runner for each. */
void cctx__runner_notify(unsigned n);
/* Hands job to a runner; false if no runner thread exists or can be made
 * (the caller then does the work itself). A firing job takes over the timer
 * thread's record of its firing (cctx__timer_fire_committed) as it is
 * queued, and gives it back if the caller gets the job back. */
bool cctx__runner_submit(struct cctx__job *job);
/* The same, but also false when every runner is busy and no more can
 * start (those busy may be blocked in after-functions for ever): for work
 * that others wait for, which must not wait for them. */
bool cctx__runner_submit_at_once(struct cctx__job *job);
/* A firing job taken by a runner has marked its context, or found it ended:
 * a child of fork() need not run it again. */
void cctx__runner_job_marked(struct cctx__job *job);
/* Drops a reference the library took for a look (a dump, the laggy
 * report), with no user code on the calling thread: when it is the last
 * and ending or freeing the context would run any (after-functions, value
 * destructors), a runner drops it; only when none can take it, the caller. */
void cctx__runner_release(struct cctx *c, const char *file, int line, const char *func);
/* Whether this thread is a runner that holds no place: one of the spares,
 * or any runner in a job or a library after-function, which must not run
 * the user's after-functions there (cctx__after_func_first). One word, read
 * by every cancellation that reaches a registration. (Not initial-exec:
 * that would mark the shared library as needing static TLS, which a
 * program that dlopens it may not have room for.) */
extern _Thread_local bool cctx__runner_placeless;
static inline bool cctx__runner_without_place(void)
{
    return cctx__runner_placeless;
}

/* timer.c */
/* The shard this thread arms into; set in a timer before it is published,
 * since a canceller may disarm it as soon as it is attached. */
uint32_t cctx__timer_shard(void);
/* Arms t: 0, ENOMEM, an error starting the timer thread, or
 * CCTX__TIMER_DUE: the fake clock runs and is past t's deadline already (an
 * advance on another thread may have passed it before it was in the heap),
 * so the caller ends t itself, as for a deadline it finds past. */
#define CCTX__TIMER_DUE (-1)
int cctx__timer_arm(struct cctx__timer *t);
void cctx__timer_disarm(struct cctx__timer *t);
/* After an arm that returned 0: disarms t if it ended meanwhile (a cancel
 * between the caller's last look at it and the arm found nothing to disarm). */
void cctx__timer_disarm_if_ended(struct cctx__timer *t);

/* grace.c: called by the release that frees a grace context (TIMER_GRACE),
 * before the free; it may wait for the grace's own after-functions. */
void cctx__grace_freeing(struct cctx__timer *t);

/* fork.c: one set of fork handlers for the core, registered on first need
 * (a library thread started, a done descriptor made). A child starts no
 * thread in them: cctx__child_restart starts what the child needs on its
 * first call that could wait for one. */
void cctx__fork_watch(void);
void cctx__child_restart_slow(void);
/* Set in a child until it restarts, and again while a thread it needs cannot
 * start: CHILD_STALE, or CHILD_RESTARTING while one thread tries. */
extern _Atomic int cctx__child_stale;
enum { CHILD_STALE = 1, CHILD_RESTARTING = 2 };
static inline void cctx__child_restart(void)
{
    if (cctx__unlikely(cctx__atomic_load_relaxed(&cctx__child_stale)))
        cctx__child_restart_slow();
}
/* The end of a wait's next sleep: `deadline`, or sooner in a child whose
 * restart could not start a thread, so that the wait tries the restart again
 * when it wakes (cctx__child_restart): the wait may be the very call whose
 * restart failed, and asleep it would make no other, so a deadline it waits
 * for would never fire. */
int64_t cctx__child_slice_slow(int64_t deadline);
static inline int64_t cctx__child_slice(int64_t deadline)
{
    if (cctx__unlikely(cctx__atomic_load_relaxed(&cctx__child_stale)))
        return cctx__child_slice_slow(deadline);
    return deadline;
}
/* The parts' side of fork: prepare takes their locks, parent releases them,
 * child makes them fresh (and starts nothing). */
void cctx__timer_fork(int phase);
void cctx__runner_fork(int phase);
void cctx__after_fork(int phase);
/* Taken first and let go last: waits for stops of queued registrations to
 * finish unlinking them (after.c). */
void cctx__after_fork_gate(int phase);
enum { FORK_PREPARE, FORK_PARENT, FORK_CHILD };
/* Starts the timer thread if deadlines are armed (0, or the error of the
 * start), runners if work is queued (false: not every piece of it got a
 * runner that can take it now, a busy one being none). */
int cctx__timer_start(void);
bool cctx__runner_restart(void);
/* Runs the library's wakers of the runners' queue on the calling thread, as
 * cctx__runner_notify does when no runner comes. */
void cctx__runner_run_wakers(void);

/* grace.c: the grace period t, a grace context (TIMER_GRACE), was made with. */
int64_t cctx__grace_period(const struct cctx__timer *t);
/* grace.c: when t's parent has ended, true and the deadline t is given for
 * it, which t may not have been given yet (an after-function of the
 * parent's end stores it); false while the parent is active. */
bool cctx__grace_due(const struct cctx__timer *t, int64_t *deadline);

/* value.c */
/* The earliest deadline that will end ctx: cctx_deadline's, or that of a
 * grace context above it, when it is earlier (grace.c gives a grace context
 * its deadline after the contexts under it were born), or, for a grace
 * context whose parent has not ended, its parent's bound plus the grace.
 * false when none; `what` names the caller when ctx was already released. */
bool cctx__deadline_bound(const cctx_t *ctx, int64_t *deadline, const char *what);

/* clock.c */
extern _Atomic int cctx__fake_on;
extern _Atomic int64_t cctx__fake_now;
void cctx__timer_set_fake(int on, int64_t now, int64_t advance);
int64_t cctx__sat_add(int64_t a, int64_t b);
int64_t cctx__sat_sub(int64_t a, int64_t b);
/* A duration as written, exactly, in the largest unit that divides it:
 * 5s, 250ms, 10us, 7ns (a grace period's message, a switch's setting). */
void cctx__format_duration(char *out, size_t n, int64_t d);

/* Allocation, with the test hooks of testhooks.h. */
void *cctx__alloc(size_t size);
void cctx__free(void *p);

#endif
