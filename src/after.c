/*
 * After-functions: Go's context.AfterFunc on caller-owned storage.
 *
 * A registration lives in its source context's list, beside the children,
 * so registering costs no allocation and a cancellation finds both in one
 * walk. Its state word (struct cctx__after.state) moves:
 *
 *   REGISTERED -> QUEUED -> RUNNING -> DONE      the context ended
 *   REGISTERED -> STOPPING -> RELEASED           cctx_after_stop won
 *   REGISTERED -> STOPPING -> STOPPED -> RELEASED  ... while a canceller took it
 *   NEVER -> RELEASED                            on a context that never ends
 *
 * REGISTERED -> QUEUED happens under the owner's lock, as the canceller takes
 * the list; REGISTERED -> STOPPING is a CAS by the stopper, who then takes the
 * owner's lock to unlink it. The owner cannot be freed in between: a
 * canceller that finds a STOPPING registration in the list it takes waits for
 * STOPPED before it lets go of the owner (cancel.c), and the owner is always
 * canceled before it is freed if its list is not empty (tree.c). That
 * canceller then publishes RELEASED as its last touch of the storage, and the
 * stopper, which found the registration already out of the list, waits for
 * RELEASED before returning, since the caller may free the storage then.
 * Bit 31 (WAITERS) says a thread sleeps on the word.
 *
 * Once the runner publishes DONE the caller may free the storage, so the
 * runner touches nothing of it afterwards; when fn stops its own registration
 * (and may then free it), the runner learns so through its stack frame,
 * found from a thread-local chain, and does not touch it at all.
 */
#define _GNU_SOURCE
#include <string.h>

#include "internal.h"

_Static_assert(sizeof(struct cctx__after) <= sizeof(cctx_after_t),
               "cctx_after_t too small for the registration");

struct run_frame {
    struct cctx__after *reg;
    int stopped_inside;
    struct run_frame *outer;
};
static _Thread_local struct run_frame *running;

/* The registrations a thread's cancellations took and have yet to run. A stop
 * of one of them from inside an earlier fn on the same thread unlinks it here
 * (waiting for it would wait for this very thread). */
struct run_queue {
    struct cctx__node *head;
    struct run_queue *outer;
};
static _Thread_local struct run_queue *queues;

static void publish(struct cctx__after *a, uint32_t state)
{
    uint32_t old = atomic_exchange_explicit(&a->state, state, memory_order_acq_rel);
    if (old & AFTER_WAITERS)
        cctx__os_wake(&a->state);
}

/* Sleeps until a's state leaves `from`. */
static void wait_while(struct cctx__after *a, uint32_t from)
{
    for (;;) {
        uint32_t s = atomic_load_explicit(&a->state, memory_order_acquire);
        if ((s & AFTER_STATE) != from)
            return;
        if (!(s & AFTER_WAITERS) &&
            !atomic_compare_exchange_weak_explicit(&a->state, &s, s | AFTER_WAITERS,
                                                   memory_order_acq_rel, memory_order_acquire))
            continue;
        cctx__os_wait(&a->state, s | AFTER_WAITERS, CCTX_NO_DEADLINE);
    }
}

static void run_one(struct cctx__after *a)
{
    void (*fn)(void *) = a->fn;
    void *arg = a->arg;
    uint32_t s = atomic_load_explicit(&a->state, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&a->state, &s,
                                                  (s & ~AFTER_STATE) | AFTER_RUNNING,
                                                  memory_order_acq_rel, memory_order_relaxed))
        ;
    struct run_frame frame = {a, 0, running};
    running = &frame;
    int traced = cctx__debug_on(CCTX__DEBUG_TRACE);
    if (traced)
        cctx__trace_after(a, 1);
    fn(arg);
    if (traced) /* a may be gone: fn may have stopped and freed it */
        cctx__trace_after(NULL, 0);
    running = frame.outer;
    if (!frame.stopped_inside)
        publish(a, AFTER_DONE);
}

void cctx__after_run_list(struct cctx__node *list)
{
    struct run_queue q = {list, queues};
    queues = &q;
    while (q.head) {
        struct cctx__node *n = q.head;
        q.head = n->next; /* before fn runs: fn may free or reuse its storage */
        run_one((struct cctx__after *)n);
    }
    queues = q.outer;
}

/* Takes a out of this thread's pending run queues; 0 if it is not there. */
static int dequeue_own(struct cctx__after *a)
{
    for (struct run_queue *q = queues; q; q = q->outer) {
        for (struct cctx__node **pp = &q->head; *pp; pp = &(*pp)->next) {
            if (*pp == &a->link) {
                *pp = a->link.next;
                return 1;
            }
        }
    }
    return 0;
}

void cctx__after_wait_stopper(struct cctx__after *a)
{
    wait_while(a, AFTER_STOPPING);
    publish(a, AFTER_RELEASED);
}

int cctx_after_func_at(cctx_t *ctx, cctx_after_t *reg, void (*fn)(void *arg), void *arg,
                       const char *file, int line, const char *func)
{
    if (cctx__unlikely(!ctx || !reg || !fn))
        return EINVAL;
    struct cctx__after *a = (struct cctx__after *)reg;
    memset(reg, 0, sizeof *reg);
    a->fn = fn;
    a->arg = arg;
    a->file = file;
    a->line = line;
    a->func = func;
    struct cctx__cancelable *src = cctx__source(ctx);
    a->owner = src;
    if (!src) {
        cctx__check_tombstone(ctx, "cctx_after_func", file, line, func);
        atomic_store_explicit(&a->state, AFTER_NEVER, memory_order_release);
        return 0;
    }
    cctx__lock(&src->head);
    if (atomic_load_explicit(&src->head.state, memory_order_relaxed) & STATE_ERR) {
        cctx__unlock(&src->head);
        atomic_store_explicit(&a->state, AFTER_QUEUED, memory_order_relaxed);
        run_one(a);
        return 0;
    }
    atomic_store_explicit(&a->state, AFTER_REGISTERED, memory_order_relaxed);
    atomic_fetch_or_explicit(&src->head.word, WORD_AFTERS, memory_order_relaxed);
    cctx__node_push(&src->children, &a->link, NODE_AFTER);
    cctx__unlock(&src->head);
    return 0;
}

static bool after_stop(cctx_after_t *reg, const char *file, int line, const char *func,
                       const void *caller);

/* The plain function, for callers that take its address; the macro of the
 * same name records the call site. */
bool(cctx_after_stop)(cctx_after_t *reg)
{
    return after_stop(reg, NULL, 0, NULL, CCTX__CALLER);
}

bool cctx_after_stop_at(cctx_after_t *reg, const char *file, int line, const char *func)
{
    return after_stop(reg, file, line, func, CCTX__CALLER);
}

static bool after_stop(cctx_after_t *reg, const char *file, int line, const char *func,
                       const void *caller)
{
    struct cctx__after *a = (struct cctx__after *)reg;
    if (cctx__unlikely(!a))
        return false;
    for (;;) {
        uint32_t s = atomic_load_explicit(&a->state, memory_order_acquire);
        switch (s & AFTER_STATE) {
        case AFTER_NEVER:
            if (atomic_compare_exchange_weak_explicit(&a->state, &s, AFTER_RELEASED,
                                                      memory_order_acq_rel, memory_order_acquire))
                return true;
            continue;
        case AFTER_REGISTERED: {
            if (!atomic_compare_exchange_weak_explicit(&a->state, &s,
                                                       (s & ~AFTER_STATE) | AFTER_STOPPING,
                                                       memory_order_acq_rel,
                                                       memory_order_acquire))
                continue;
            cctx__lock(&a->owner->head);
            int taken = !(a->link.pprev & ~NODE_AFTER); /* a canceller took the list */
            cctx__node_unlink(&a->link);
            cctx__unlock(&a->owner->head);
            if (!taken) {
                publish(a, AFTER_RELEASED);
                return true;
            }
            publish(a, AFTER_STOPPED); /* wakes the canceller */
            wait_while(a, AFTER_STOPPED);
            return true;
        }
        case AFTER_STOPPING:
        case AFTER_STOPPED:
            wait_while(a, s & AFTER_STATE);
            continue;
        case AFTER_QUEUED:
            if (dequeue_own(a)) {
                publish(a, AFTER_RELEASED);
                return true;
            }
            wait_while(a, AFTER_QUEUED);
            continue;
        case AFTER_RUNNING:
            for (struct run_frame *f = running; f; f = f->outer) {
                if (f->reg == a) {
                    f->stopped_inside = 1;
                    publish(a, AFTER_DONE);
                    return false;
                }
            }
            wait_while(a, AFTER_RUNNING);
            continue;
        case AFTER_IDLE:
            if (cctx__debug_on(CCTX__DEBUG_CHECKS))
                cctx__misuse("cctx_after_stop on storage that was never registered", NULL, file,
                             line, func, caller);
            return false;
        case AFTER_RELEASED:
        case AFTER_DONE:
            return false;
        default:
            if (cctx__debug_on(CCTX__DEBUG_CHECKS))
                cctx__misuse("cctx_after_stop on storage that is not a registration", NULL,
                             file, line, func, caller);
            return false;
        }
    }
}
