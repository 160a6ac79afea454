/* SPDX-License-Identifier: MIT */
/*
 * A cancellation's marking phase, shared by the two files that run one:
 * cancel.c (a cancel on the caller's thread) and firing.c (a deadline on
 * the timer thread, finished on a runner when it would have to wait).
 * cancel.c's top comment describes the phase; this header is only what the
 * firing needs of it.
 */
#ifndef CCTX_MARKING_H
#define CCTX_MARKING_H

#include "internal.h"

/* A cause to be kept in its origin (struct cctx__own_site). */
struct own_cause {
    const struct cctx__site *site;
    int64_t when;
    int32_t code;
};

/* What a canceller keeps in its origin when the record cannot be allocated
 * (cctx__cause_new gives NULL): a cause without a site (OWN_NO_SITE), in
 * the slot alone. Static storage, as a firing may carry it to a runner. */
extern const struct own_cause cctx__no_site;

/* A marking phase in progress: everything it needs is here and in the
 * nodes' own links, so the timer thread can hand one it cannot finish
 * without blocking to a runner (firing.c: struct handoff) as it stands. */
struct marking {
    uintptr_t cause;             /* what the contexts it marks keep in their slot */
    _Atomic uint32_t *word;      /* the cause's marking word */
    struct cctx__cause *record;  /* the cause's record; NULL: kept in the origin */
    const struct own_cause *own; /* that cause, until the origin is marked (no_site: none) */
    int err;
    bool tracing;
    struct cctx__run_queue *queue;  /* where the registrations it takes go; NULL: */
    struct cctx__run_queue *local;  /* this one, or the runners' on a spare (take_list) */
    struct cctx__node *todo;        /* referenced contexts still to mark */
    struct cctx__node *done;        /* referenced contexts to release at the end */
    struct cctx__node *stoppers;    /* registrations a stopper is unlinking */
    uint64_t traced;                /* the trace's token for this cancellation */
    bool trace_open;                /* its slice began on this thread, not ended */
    unsigned queued;                /* registrations it put in the queue */
    bool complete;                  /* every context it reached is marked */
    struct cctx__cancelable *chain; /* in mark(): a list's one child (take_list) */
};

enum mark_result { MARKED, ALREADY, BUSY };

/* Marks one context. ALREADY: another cancellation ended it first. BUSY
 * (only when !block): its lock is held, nothing was done. */
enum mark_result cctx__mark(struct cctx__cancelable *c, struct marking *m, bool block);

/* Marks what is left in m->todo. Without `block` it stops, leaving the work
 * as it stands, where it would have to wait: a lock held, another
 * cancellation still marking below, a stopper still busy. True once all is
 * marked. */
bool cctx__mark_rest(struct marking *m, bool block);

/* Drops the references marking took; may free contexts and run value
 * destructors (user code). */
void cctx__release_done(struct marking *m, const char *file, int line, const char *func);

/* Drops a reference unless it is the last one; false if it is. */
bool cctx__release_unless_last(struct cctx *c);

/* A traced cancellation's slice: begun once its origin is marked, finished
 * on the thread that began it. */
void cctx__marking_begin_trace(struct marking *m, struct cctx *origin);
void cctx__marking_finish_trace(struct marking *m);

#endif
