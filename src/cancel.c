/*
 * Cancellation: marking a context and every descendant done, then running
 * the after-functions it reached.
 *
 * A cancellation has two phases. The marking phase walks the subtree with an
 * explicit work list threaded through the contexts' own list links (a node
 * taken out of its source's list is in no list, so its link is free): no
 * recursion, no allocation, each node visited once. For each node it takes
 * the node's lock, writes the error and the cause, takes the node's list
 * (children and registrations) and drops the lock: one lock at a time,
 * top-down. Children are kept alive by a reference taken under the parent's
 * lock; a child whose count already reached zero belongs to its releaser and
 * is skipped (its releaser cancels it itself before freeing it).
 *
 * When the marking phase meets a node that another thread's cancellation
 * ended first, it waits for that cancellation's marking phase to finish, so
 * that when cctx_cancel returns every descendant reports an error. Such waits
 * only ever go from a cancellation to one that started below it, and marking
 * phases run no user code, so they cannot form a cycle.
 *
 * The after-function phase runs after the cause is marked complete, outside
 * every lock; the references taken during marking are dropped last, because
 * dropping one may free contexts and run value destructors (user code).
 */
#define _GNU_SOURCE
#include <string.h>

#include "internal.h"

/* The causes used when a cancellation cannot allocate its own record: the
 * context still ends, without its origin's site. */
static struct cctx__cause oom_cause[2] = {
    {.marked = 1, .err = ECANCELED, .msg = "context canceled", .file = "?", .func = "?"},
    {.marked = 1, .err = ETIMEDOUT, .msg = "context deadline exceeded", .file = "?", .func = "?"},
};

struct cctx__cause *cctx__cause_new(struct cctx *origin, int err, int code, const char *msg,
                                    const char *file, int line, const char *func)
{
    /* A deadline with a cause of its own fires with the record made with it
     * (which already points at its copy of the message). */
    struct cctx__cause *c = NULL;
    if (err == ETIMEDOUT && cctx__kind(origin) == KIND_TIMER &&
        (c = cctx__timer_cause((struct cctx__timer *)origin)) != NULL) {
        *c = (struct cctx__cause){.origin = origin, .embedded = 1, .err = (int16_t)err, .code = code,
                                  .msg = msg ? msg : "context deadline exceeded",
                                  .file = file ? file : "?", .line = line,
                                  .func = func ? func : "?", .when = cctx_now()};
        return c;
    }
    size_t len = msg ? strlen(msg) + 1 : 0;
    c = cctx__alloc(sizeof *c + len);
    if (cctx__unlikely(!c) && len) {
        /* Keep the code and the site at least; the message falls back. */
        msg = NULL;
        len = 0;
        c = cctx__alloc(sizeof *c);
    }
    if (cctx__unlikely(!c))
        return &oom_cause[err == ETIMEDOUT];
    c->origin = origin;
    c->embedded = 0;
    atomic_init(&c->marked, 0);
    c->err = (int16_t)err;
    c->code = code;
    c->msg = len ? memcpy(c + 1, msg, len)
                 : err == ETIMEDOUT ? "context deadline exceeded" : "context canceled";
    c->file = file ? file : "?";
    c->line = line;
    c->func = func ? func : "?";
    c->when = cctx_now();
    return c;
}

void cctx__cause_free(struct cctx__cause *cause, struct cctx *origin)
{
    if (cause && cause->origin == origin && !cause->embedded)
        cctx__free(cause);
}

/* cause->marked: 0 while marking, 2 while marking with a thread waiting for
 * it, 1 once complete; only a waiter makes completion cost a system call. */
static void mark_complete(struct cctx__cause *cause)
{
    if (cause->origin &&
        atomic_exchange_explicit(&cause->marked, 1, memory_order_acq_rel) == 2)
        cctx__os_wake(&cause->marked);
}

void cctx__wait_marked(struct cctx__cancelable *c)
{
    struct cctx__cause *cause = atomic_load_explicit(&c->cause, memory_order_acquire);
    for (;;) {
        uint32_t m = atomic_load_explicit(&cause->marked, memory_order_acquire);
        if (m == 1)
            return;
        if (m == 0 && !atomic_compare_exchange_weak_explicit(&cause->marked, &m, 2,
                                                             memory_order_acq_rel,
                                                             memory_order_acquire))
            continue;
        cctx__os_wait(&cause->marked, 2, CCTX_NO_DEADLINE);
    }
}

/* The lists a marking phase builds, all threaded through node links. */
struct marking {
    struct cctx__cause *cause;
    struct cctx__node *todo;      /* referenced contexts still to mark */
    struct cctx__node *done;      /* referenced contexts to release at the end */
    struct cctx__node *run;       /* registrations to run, in order */
    struct cctx__node **run_tail;
    struct cctx__node *stoppers;  /* registrations a stopper is unlinking */
};

/* Empties c's list (c's lock held): children go to todo, registrations to
 * run or, when a stopper claimed them, to stoppers. */
static void take_list(struct cctx__cancelable *c, struct marking *m)
{
    struct cctx__node *n = c->children;
    c->children = NULL;
    while (n) {
        struct cctx__node *next = n->next;
        int is_after = (n->pprev & NODE_AFTER) != 0;
        n->pprev &= NODE_AFTER; /* in no list: unlinkers leave it alone */
        n->next = NULL;
        if (is_after) {
            struct cctx__after *a = (struct cctx__after *)n;
            uint32_t s = atomic_load_explicit(&a->state, memory_order_relaxed);
            if ((s & AFTER_STATE) == AFTER_REGISTERED &&
                atomic_compare_exchange_strong_explicit(&a->state, &s,
                                                        (s & ~AFTER_STATE) | AFTER_QUEUED,
                                                        memory_order_acq_rel,
                                                        memory_order_relaxed)) {
                *m->run_tail = n;
                m->run_tail = &n->next;
            } else {
                n->next = m->stoppers;
                m->stoppers = n;
            }
        } else {
            struct cctx__cancelable *child =
                (struct cctx__cancelable *)((char *)n - offsetof(struct cctx__cancelable, link));
            if (cctx__try_ref(&child->head)) {
                n->next = m->todo;
                m->todo = n;
            }
        }
        n = next;
    }
}

/* Marks one context; returns 0 if another cancellation ended it first. */
static int mark(struct cctx__cancelable *c, int err, struct marking *m)
{
    cctx__lock(&c->head);
    if (atomic_load_explicit(&c->head.state, memory_order_relaxed) & STATE_ERR) {
        cctx__unlock(&c->head);
        return 0;
    }
    take_list(c, m); /* first: the cause takes the list's place */
    atomic_store_explicit(&c->cause, m->cause, memory_order_release);
    /* seq_cst pairs with cctx_done_fd's publication of the descriptor: one of
     * the two sides always sees the other and signals it. */
    uint32_t old = atomic_fetch_or_explicit(&c->head.state, (uint32_t)err, memory_order_seq_cst);
    cctx__unlock(&c->head);

    if (old & STATE_WAITERS)
        cctx__os_wake(&c->head.state);
    uint32_t fd1 = atomic_load_explicit(&c->head.fd1, memory_order_seq_cst);
    if (fd1)
        cctx__os_event_signal((int)fd1 - 1);
    if (cctx__kind(&c->head) == KIND_TIMER)
        cctx__timer_disarm((struct cctx__timer *)c);
    /* c stays alive (the caller's or the work list's reference) until every
     * stopper that claimed one of its registrations has let go of it. */
    while (m->stoppers) {
        struct cctx__after *a = (struct cctx__after *)m->stoppers;
        m->stoppers = m->stoppers->next;
        cctx__after_wait_stopper(a);
    }
    return 1;
}

/* The cancellation, made twice by the compiler: `tracing` is a constant in
 * each copy, so the copy that runs with CCTX_TRACE off has no trace of it. */
static inline __attribute__((always_inline)) void
cancel(struct cctx__cancelable *c, int err, int code, const char *msg, const char *file, int line,
       const char *func, const bool tracing)
{
    if (atomic_load_explicit(&c->head.state, memory_order_acquire) & STATE_ERR) {
        cctx__wait_marked(c);
        return;
    }
    struct marking m = {.cause = cctx__cause_new(&c->head, err, code, msg, file, line, func)};
    m.run_tail = &m.run;
    /* Counted before the first mark makes it visible, so that the trace
     * written at exit holds every cancellation the program could see. */
    if (tracing)
        cctx__trace_busy(1);
    if (!mark(c, err, &m)) {
        if (tracing)
            cctx__trace_busy(-1);
        cctx__cause_free(m.cause, &c->head);
        cctx__wait_marked(c);
        return;
    }
    uint64_t traced = 0;
    if (tracing) {
        traced = cctx__trace_cancel_begin(&c->head, m.cause);
        cctx__trace_reached(&c->head, traced);
    }
    while (m.todo) {
        struct cctx__node *n = m.todo;
        m.todo = n->next;
        struct cctx__cancelable *child =
            (struct cctx__cancelable *)((char *)n - offsetof(struct cctx__cancelable, link));
        if (!mark(child, err, &m))
            cctx__wait_marked(child);
        else if (tracing)
            cctx__trace_reached(&child->head, traced);
        n->next = m.done;
        m.done = n;
    }
    mark_complete(m.cause);

    cctx__after_run_list(m.run);
    while (m.done) {
        struct cctx__node *n = m.done;
        m.done = n->next;
        n->next = NULL;
        cctx_release_at((cctx_t *)((char *)n - offsetof(struct cctx__cancelable, link)), file,
                        line, func);
    }
    if (tracing) {
        cctx__trace_cancel_end(traced);
        cctx__trace_busy(-1);
    }
}

__attribute__((noinline)) static void cancel_traced(struct cctx__cancelable *c, int err, int code,
                                                   const char *msg, const char *file, int line,
                                                   const char *func)
{
    cancel(c, err, code, msg, file, line, func, true);
}

void cctx__cancel(struct cctx__cancelable *c, int err, int code, const char *msg,
                  const char *file, int line, const char *func)
{
    if (cctx__debug_on(CCTX__DEBUG_TRACE))
        cancel_traced(c, err, code, msg, file, line, func);
    else
        cancel(c, err, code, msg, file, line, func, false);
}

__attribute__((noinline, cold)) static void stale_handle(const struct cctx *c, const char *file,
                                                        int line, const char *func)
{
    cctx__misuse("cancel through a stale handle (its context was released)", c, file, line, func,
                 NULL);
}

void cctx_cancel_cause_at(cctx_cancel_t *cancel, int code, const char *msg, const char *file,
                          int line, const char *func)
{
    struct cctx *c = (struct cctx *)cancel;
    if (cctx__unlikely(!c || !cctx__cancelable_kind(cctx__kind(c)))) {
        if (c && cctx__kind(c) == KIND_FREED)
            stale_handle(c, file, line, func);
        return;
    }
    cctx__cancel((struct cctx__cancelable *)c, ECANCELED, code, msg, file, line, func);
}

void cctx_cancel_at(cctx_cancel_t *cancel, const char *file, int line, const char *func)
{
    cctx_cancel_cause_at(cancel, 0, NULL, file, line, func);
}
