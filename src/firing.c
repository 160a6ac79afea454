/* SPDX-License-Identifier: MIT */
/*
 * Deadlines fired by the timer thread (timer.c pops a due one and calls
 * cctx__timer_fire with a reference on it).
 *
 * The timer thread runs no user code and never waits for another thread:
 * a slow after-function, a value destructor, a lock held by a thread that is
 * slow (or, in a child of fork(), gone) must not hold up other deadlines. It
 * marks what it can without waiting, puts the after-functions in the
 * runners' queue, and drops the references it took when they are not the
 * last ones (a last one may free contexts and run destructors). Whatever is
 * left, it hands to a runner as a struct handoff, which finishes the same
 * work with waiting allowed.
 */
#define _GNU_SOURCE
#include "marking.h"

/* A firing the timer thread could not finish without waiting, or a last
 * reference it could not drop quietly: a runner's job. */
struct handoff {
    struct cctx__job job;
    struct marking m;                /* unused when `release` is set */
    struct cctx__cancelable *origin; /* the firing's reference, dropped last */
    struct cctx *release;            /* set: nothing to mark, only this reference to drop */
    bool origin_marked;              /* false: the origin's lock was busy */
};
_Static_assert(sizeof(struct handoff) <= CCTX__JOB_BLOCK, "a handoff must fit a spare job block");

/* Drops a reference, quietly (see cctx__release_quietly); false if what is
 * left to release cannot be, and then h is set up to release it. */
static bool release_or_keep(struct cctx *c, struct handoff *h, const char *file, int line,
                            const char *func)
{
    h->release = cctx__release_quietly(c, file, line, func);
    return h->release == NULL;
}

/* The deadline's site names the origin of its own firing. */
#define SITE_OF(t) (t)->c.head.file, cctx__line(&(t)->c.head), (t)->c.head.func

static void finish_handoff(struct handoff *h)
{
    unsigned notified = h->m.queued; /* the timer thread called runners for these */
    if (h->release) {                /* nothing was left to mark: only the release */
        struct cctx *c = h->release; /* t may be gone: c's own site */
        cctx_release_at(c, c->file, cctx__line(c), c->func);
        return;
    }
    struct cctx__timer *t = (struct cctx__timer *)h->origin;
    if (!h->origin_marked) {
        enum mark_result marked = cctx__mark(h->origin, &h->m, true);
        /* The firing is no longer to be done again by a child of fork(). */
        if (h->job.firing)
            cctx__runner_job_marked(&h->job); /* a runner's job */
        else
            cctx__timer_fire_committed(); /* the timer thread's, done in place */
        if (marked != MARKED) {
            /* Another cancellation got there first: nothing for us to do.
             * Run again in a child of fork(), the job may have been that
             * other one, its record the cause now: kept, at worst leaked. */
            if (h->m.tracing)
                cctx__trace_busy(-1);
            if (!h->job.again)
                cctx__cause_free(h->m.record, &t->c.head);
            cctx_release_at(&t->c.head, SITE_OF(t));
            return;
        }
        if (h->m.tracing)
            cctx__marking_begin_trace(&h->m, &t->c.head);
    }
    if (!h->m.complete)
        cctx__mark_rest(&h->m, true);
    cctx__runner_notify(h->m.queued - notified);
    cctx__release_done(&h->m, SITE_OF(t));
    cctx_release_at(&t->c.head, SITE_OF(t));
    cctx__marking_finish_trace(&h->m);
}

static void run_handoff(struct cctx__job *job)
{
    struct handoff *h = container_of(job, struct handoff, job);
    if (h->m.tracing && !h->release)
        cctx__trace_busy_handover(1); /* this thread counts it now: see hand_off */
    finish_handoff(h);
    cctx__job_block_free(h);
}

static void hand_off(struct handoff *h)
{
    /* A trace's slices begin and end on one thread: the firing's ends here,
     * and the runner's share of the work shows as reached contexts. */
    if (h->m.trace_open) {
        cctx__trace_cancel_end(h->m.traced);
        h->m.trace_open = false;
    }
    struct handoff *copy = cctx__job_block(sizeof *copy);
    if (copy) {
        *copy = *h;
        copy->job.run = run_handoff;
        /* Its origin unmarked, the job is the firing's record from the
         * moment it is queued (runner.c). */
        if (!h->release && !h->origin_marked)
            copy->job.firing = (struct cctx__timer *)h->origin;
        /* The trace counts cancellations in flight per thread: the runner
         * counts this one from here on. */
        bool traced = h->m.tracing && !h->release;
        if (traced)
            cctx__trace_busy_handover(-1);
        /* The waits on the firing's contexts wait for its marking: that
         * must not wait behind a runner busy in an after-function (a
         * release with nothing left to mark may). */
        if (h->release ? cctx__runner_submit(&copy->job) : cctx__runner_submit_at_once(&copy->job))
            return;
        if (traced)
            cctx__trace_busy_handover(1);
        cctx__job_block_free(copy);
    }
    /* Out of threads, or every runner busy and no more to start (or out
     * of memory and of spare blocks): finish here, waiting if need be,
     * rather than lose the firing or leave it behind a blocked
     * after-function. */
    finish_handoff(h);
}

void cctx__timer_fire(struct cctx__timer *t)
{
    struct handoff h = {.origin = &t->c, .origin_marked = true};
    if (cctx__atomic_load_acquire(&t->c.head.state) & STATE_ERR) {
        /* Ended some other way: the firing has nothing to do, and need not
         * wait for that cancellation's marking to finish. */
        cctx__timer_fire_committed();
        if (!release_or_keep(&t->c.head, &h, SITE_OF(t)))
            hand_off(&h); /* no cause: only the release */
        return;
    }
    struct cctx__cause *record =
        cctx__cause_new(&t->c.head, ETIMEDOUT, t->code, t->msg, SITE_OF(t));
    h.m = (struct marking){.record = record,
                           .err = ETIMEDOUT,
                           .tracing = cctx__debug_on(CCTX__DEBUG_TRACE),
                           .queue = &cctx__runner_queue};
    if (cctx__likely(record != NULL)) {
        h.m.cause = (uintptr_t)record;
        h.m.word = &record->word;
    } else {
        h.m.own = &cctx__no_site; /* out of memory: mark_locked keeps it in t */
    }
    if (h.m.tracing)
        cctx__trace_busy(1);
    enum mark_result marked = cctx__mark(&t->c, &h.m, false);
    /* Marked, or found ended: a child of fork() from here on need not fire
     * it again (timer.c). Busy: the record goes to the job that finishes
     * the firing, as it is queued, or stays here (hand_off). */
    if (marked != BUSY)
        cctx__timer_fire_committed();
    switch (marked) {
    case BUSY:
        h.origin_marked = false;
        hand_off(&h);
        return;
    case ALREADY:
        if (h.m.tracing)
            cctx__trace_busy(-1);
        cctx__cause_free(h.m.record, &t->c.head);
        h.m.record = NULL;
        if (!release_or_keep(&t->c.head, &h, SITE_OF(t)))
            hand_off(&h);
        return;
    case MARKED:
        break;
    }
    if (h.m.tracing)
        cctx__marking_begin_trace(&h.m, &t->c.head);
    bool complete = cctx__mark_rest(&h.m, false);
    cctx__runner_notify(h.m.queued);
    if (!complete) {
        hand_off(&h);
        return;
    }
    /* Keep in done only the references that are last ones (cctx__mark_rest let go
     * of the others already, but for those a stopper still held). */
    for (struct cctx__node **pp = &h.m.done; *pp;) {
        struct cctx__node *n = *pp, *next = n->next; /* n may be freed once let go */
        if (cctx__release_unless_last(&container_of(n, struct cctx__cancelable, link)->head))
            *pp = next;
        else
            pp = &n->next;
    }
    if (!h.m.done) {
        /* The last reference is the firing's when its holders let go while
         * it ran (a fire-and-forget deadline): freeing it is quiet too,
         * unless a parent's destructor or lock stands in the way. */
        struct cctx *left = cctx__release_quietly(&t->c.head, SITE_OF(t));
        if (!left) {
            cctx__marking_finish_trace(&h.m);
            return;
        }
        if (left != &t->c.head) { /* t is gone: only `left` remains */
            cctx__marking_finish_trace(&h.m);
            h.m = (struct marking){0};
            h.release = left;
        }
    }
    hand_off(&h);
}
