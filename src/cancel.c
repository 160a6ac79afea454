/* SPDX-License-Identifier: MIT */
/*
 * Cancellation: marking a context and every descendant done, then running
 * the after-functions it reached.
 *
 * A cancellation has two phases. The marking phase walks the subtree with an
 * explicit work list threaded through the contexts' own list links (a node
 * taken out of its source's list is in no list, so its link is free): no
 * recursion, no allocation, each node visited once. For each node it takes
 * the node's lock, writes the error and the cause, takes the node's list
 * (children and registrations) and drops the lock: top-down. Children are
 * kept alive by a reference taken under the parent's lock; a child whose
 * count already reached zero belongs to its releaser and is skipped (its
 * releaser cancels it itself before freeing it). Two common shapes are
 * marked in place instead, with no reference: a leaf, under its parent's
 * lock (mark_leaf_in_place), and a chain of single children, hand over hand
 * (follow_chain). An origin that keeps its cause in itself and reaches
 * nothing else, the usual end of a leaf, needs no phase at all (end_alone).
 *
 * When the marking phase meets a node that another thread's cancellation
 * ended first, it waits for that cancellation's marking phase to finish, so
 * that when cctx_cancel returns every descendant reports an error. Such waits
 * only ever go from a cancellation to one that started below it, and marking
 * phases run no user code, so they cannot form a cycle. Each cancellation
 * has a marking word of its own to wait on, even one whose cause record
 * could not be allocated: its origin's slot holds it then (keep_bare_cause).
 *
 * The after-function phase runs after the cause is marked complete, outside
 * every lock, on the cancelling thread; but a runner without a place (one
 * in a job, or in a library after-function) hands the user's
 * after-functions to the runners that have one, as a deadline's firing
 * does, so that blocking ones never hold the threads the library's own work
 * needs. The references taken during marking are dropped last, because
 * dropping one may free contexts and run value destructors (user code).
 */
#define _GNU_SOURCE
#include "marking.h"

/* The marking bits of a cause's word (a record's, or an own cause's in its
 * origin's slot): neither while marking, CAUSE_WAITED while marking with a
 * thread waiting for it, CAUSE_MARKED once complete; only a waiter makes
 * completion cost a system call. The word's other bits never change, so one
 * exchange completes it. */
static void mark_complete(_Atomic uint32_t *word)
{
    /* The cause of an origin that reached nothing else is complete from
     * the start (mark_locked, end_alone): only the marking sets the bit, so
     * a relaxed look is enough. */
    if (cctx__atomic_load_relaxed(word) & CAUSE_MARKED)
        return;
    uint32_t fixed = cctx__atomic_load_relaxed(word) & ~(CAUSE_MARKED | CAUSE_WAITED);
    if (cctx__atomic_exchange_acq_rel(word, fixed | CAUSE_MARKED) & CAUSE_WAITED)
        cctx__os_wake(word);
}

void cctx__wait_marked(struct cctx__cancelable *c)
{
    _Atomic uint32_t *word = cctx__cause_marking(cctx__cause_at(c));
    for (;;) {
        uint32_t m = cctx__atomic_load_acquire(word);
        if (m & CAUSE_MARKED)
            return;
        /* In a child of fork(), the marking may be a runner's job that
         * waits for the child's first runner. While none can start, the
         * wait sleeps 10 ms at a time and tries again (cctx__child_slice):
         * asleep, it would make no other try. */
        cctx__child_restart();
        if (!(m & CAUSE_WAITED) && !cctx__atomic_cas_weak_acq_rel(word, &m, m | CAUSE_WAITED))
            continue;
        cctx__os_wait(word, m | CAUSE_WAITED, cctx__child_slice(CCTX_NO_DEADLINE));
    }
}

const struct own_cause cctx__no_site = {.site = NULL};

/* Whether a locked context, still active, can be marked in place: nobody
 * sleeps on it or holds its descriptor, who would need a wake-up. */
static bool quiet(const struct cctx__cancelable *c, uint32_t state)
{
    return !(state & (STATE_ERR | STATE_WAITERS)) &&
           !cctx__atomic_load_relaxed(&((struct cctx__cancelable *)c)->head.fd1);
}

/* Writes an origin's own cause into its link and slot, its lock held and
 * its error not yet written. `complete`: it reached nothing else. */
static void keep_own_cause(struct cctx__cancelable *c, const struct own_cause *own, bool complete)
{
    c->own_site = (struct cctx__own_site){.site = own->site, .when = own->when};
    c->own.code = own->code;
    cctx__atomic_store_release(&c->own.word, SLOT_OWN | (complete ? CAUSE_MARKED : 0));
}

/* Writes an origin's cause without a site into its slot, its lock held, its
 * error not yet written and its list already read: the slot is free then,
 * and the cancellation's marking word is this one, so a second cancel, or a
 * cancellation from above that meets it, waits for this marking (never for
 * a shared word). The link is not touched: the origin may still be in its
 * source's list. `complete`: it reached nothing else. */
static void keep_bare_cause(struct cctx__cancelable *c, int err, bool complete)
{
    c->own.code = 0;
    cctx__atomic_store_release(&c->own.word, SLOT_OWN | OWN_NO_SITE |
                                                 (err == ETIMEDOUT ? OWN_TIMEDOUT : 0) |
                                                 (complete ? CAUSE_MARKED : 0));
}

/* Wakes whoever waits for a context that has just ended: sleepers on its
 * state word (`old` had STATE_WAITERS), and its done descriptor, read from
 * fd1 under the lock. */
static void signal_done(struct cctx__cancelable *c, uint32_t old, uint32_t fd1)
{
    if (old & STATE_WAITERS)
        cctx__os_wake(&c->head.state);
    int fd = cctx__done_fd_of(fd1);
    if (fd >= 0)
        cctx__os_event_signal(fd);
}

/* Writes a context's cause and error, its lock held: the cause first, as a
 * reader who saw the error (acquire) then reads it. */
static void set_done(struct cctx__cancelable *c, uint32_t old, const struct marking *m)
{
    cctx__atomic_store_release(&c->cause, m->cause);
    cctx__atomic_store_release(&c->head.state, old | (uint32_t)m->err);
}

/* Marks a child that is a leaf where it stands, while its source's lock is
 * held (take_list): no reference, and no second visit. Only a cancel context
 * with nothing to hand on (no child, no registration, no timer) and nobody
 * to wake (no sleeper, no descriptor), and only if its lock is free at once:
 * here and in follow_chain a thread holds two context locks, so the second
 * is tried, never waited for, and no lock order can form a cycle. False:
 * nothing was done, and the child goes the ordinary way.
 * The child cannot be freed under our feet without a reference: its last
 * release takes the source's lock, which we hold, unless it sees the cause
 * marked complete (tree.c: out_of_lists), which comes after. */
static bool mark_leaf_in_place(struct cctx__cancelable *child, struct marking *m)
{
    /* The flags first: a context that ever had a child or a registration
     * is most likely not a leaf, and its lock is not tried in vain. */
    uint32_t w = cctx__atomic_load_relaxed(&child->head.word);
    if (m->tracing || (w & (WORD_PARENT | WORD_AFTERS)) ||
        ((w >> WORD_KIND_SHIFT) & 0x7) != KIND_CANCEL || !cctx__try_lock(&child->head))
        return false;
    uint32_t old = cctx__atomic_load_relaxed(&child->head.state);
    bool leaf = quiet(child, old) && !child->children;
    if (leaf)
        set_done(child, old, m);
    cctx__unlock(&child->head);
    return leaf;
}

/* Marks down a chain hand over hand. `held` is locked, and its list was one
 * child, `next`, now taken out and not yet marked: held's lock keeps it
 * alive, as above. While each list is one child, it locks the child (tried,
 * never waited for), marks it in place, takes its one child out, and only
 * then lets go of the lock above: a child with a child is kept alive by it
 * (a reference, whose last release needs the lock we now hold). No
 * reference is taken or dropped, and the chain is visited once. Where the
 * chain forks or ends otherwise, `next` goes the ordinary way. Unlocks
 * `held`. */
static void follow_chain(struct cctx__cancelable *held, struct cctx__cancelable *next,
                         struct marking *m)
{
    for (;;) {
        uint32_t w = cctx__atomic_load_relaxed(&next->head.word);
        if (((w >> WORD_KIND_SHIFT) & 0x7) != KIND_CANCEL || !cctx__try_lock(&next->head))
            break;
        uint32_t old = cctx__atomic_load_relaxed(&next->head.state);
        /* Ended already: its slot is no list but its cause, maybe an own
         * word whose marking bits change under us (keep_bare_cause). */
        if (cctx__unlikely(old & STATE_ERR)) {
            cctx__unlock(&next->head);
            break;
        }
        struct cctx__node *n = next->children;
        /* The next link is fetched while this one is marked and the lock
         * above let go (its head may lie on the line before its node). */
        if (n) {
            __builtin_prefetch(container_of(n, struct cctx__cancelable, link));
            __builtin_prefetch(n);
        }
        cctx__prefetch_around(next);
        if (!quiet(next, old) || (cctx__atomic_load_relaxed(&next->head.word) & WORD_AFTERS) ||
            (n && (n->next || (n->pprev & NODE_AFTER)))) {
            cctx__unlock(&next->head);
            break;
        }
        if (n)
            n->pprev = 0;       /* in no list: its releaser leaves it alone */
        set_done(next, old, m); /* the cause takes the list's place */
        if (!n) {
            /* A leaf: its own lock goes first, as held's is what keeps it. */
            cctx__unlock(&next->head);
            cctx__unlock(&held->head);
            return;
        }
        cctx__unlock(&held->head);
        held = next;
        next = container_of(n, struct cctx__cancelable, link);
    }
    if (cctx__try_ref(&next->head)) {
        next->link.next = m->todo;
        m->todo = &next->link;
    }
    cctx__unlock(&held->head);
}

/* Empties a list that cctx__mark() took from its owner (whose lock is held): a
 * list of one child is left in m->chain for follow_chain; otherwise leaves
 * are marked at once, other children go to todo, registrations to the run
 * queue or, when a stopper claimed them, to stoppers. */
static void take_list(struct cctx__node *n, struct marking *m)
{
    if (n && !n->next && !(n->pprev & NODE_AFTER) && !m->tracing) {
        n->pprev = 0; /* in no list: its releaser leaves it alone */
        m->chain = container_of(n, struct cctx__cancelable, link);
        return;
    }
    while (n) {
        struct cctx__node *next = n->next;
        /* A long list is a pointer chase: the next node, and the head of
         * the context it may be part of, are fetched while this one is
         * handled. A prefetch reads nothing and cannot fault. */
        if (next) {
            __builtin_prefetch(next);
            __builtin_prefetch((char *)next - offsetof(struct cctx__cancelable, link));
        }
        cctx__prefetch_around(n);
        int is_after = (n->pprev & NODE_AFTER) != 0;
        n->pprev &= NODE_AFTER; /* in no list: unlinkers leave it alone */
        n->next = NULL;
        if (is_after) {
            struct cctx__after *a = container_of(n, struct cctx__after, link);
            /* Chosen at the first registration, so that a cancellation
             * that reaches none pays nothing for it. A runner without a
             * place (a job, a library after-function) must not run the
             * user's after-functions: they go to the runners with places,
             * as a deadline's do. */
            if (cctx__unlikely(!m->queue))
                m->queue = cctx__runner_without_place() ? &cctx__runner_queue : m->local;
            if (cctx__after_take(a, m->queue)) {
                m->queued++;
            } else {
                n->next = m->stoppers;
                m->stoppers = n;
            }
        } else {
            struct cctx__cancelable *child = container_of(n, struct cctx__cancelable, link);
            /* A leaf marked in place is not touched again. */
            if (!mark_leaf_in_place(child, m) && cctx__try_ref(&child->head)) {
                n->next = m->todo;
                m->todo = n;
            }
        }
        n = next;
    }
}

/* Lets go of the registrations whose stoppers are done with them; false if
 * one is still busy and `block` is false. */
static bool settle_stoppers(struct marking *m, bool block)
{
    struct cctx__node **pp = &m->stoppers;
    while (*pp) {
        struct cctx__node *n = *pp, *next = n->next; /* gone once let go */
        struct cctx__after *a = container_of(n, struct cctx__after, link);
        if (block)
            cctx__after_wait_stopper(a);
        else if (!cctx__after_try_stopper(a)) {
            pp = &n->next;
            continue;
        }
        *pp = next;
    }
    return m->stoppers == NULL;
}

static enum mark_result mark_locked(struct cctx__cancelable *c, struct marking *m, bool block,
                                    struct cctx *above);

enum mark_result cctx__mark(struct cctx__cancelable *c, struct marking *m, bool block)
{
    if (block)
        cctx__lock(&c->head);
    else if (!cctx__try_lock(&c->head))
        return BUSY;
    return mark_locked(c, m, block, NULL);
}

/* cctx__mark(), c's lock held, and that of `above` too if not NULL (c is then
 * a leaf that free_the_link took out of above's list), let go just after
 * c's: a cancellation of `above` waits for c to be marked. */
static enum mark_result mark_locked(struct cctx__cancelable *c, struct marking *m, bool block,
                                    struct cctx *above)
{
    uint32_t old = cctx__atomic_load_relaxed(&c->head.state);
    if (old & STATE_ERR) { /* not with `above`: free_the_link saw c active */
        cctx__unlock(&c->head);
        return ALREADY;
    }
    struct cctx__node *list = c->children;
    /* An origin with an empty list reaches nothing else: its marking is
     * complete the moment its error is seen, so its cause is published
     * already marked, with no exchange at the end (not yet published, it
     * cannot have a waiter's CAUSE_WAITED). */
    if (m->own) {
        /* The origin, its cause kept in itself, its slot read for the list
         * first. With a site, the site and time go in its link, which is
         * free (the caller made sure: free_the_link); without one (no record
         * could be allocated), only the slot is written, as the link may
         * still be in a list. Under the lock, after the test above, so that
         * of two racing cancels only the winner writes it. */
        if (cctx__likely(m->own->site != NULL)) {
            keep_own_cause(c, m->own, list == NULL);
            m->cause = (uintptr_t)c | SLOT_REF_OWN;
        } else {
            keep_bare_cause(c, m->err, list == NULL);
            m->cause = (uintptr_t)c | SLOT_REF_BARE;
        }
        m->word = &c->own.word;
        m->own = NULL;
        cctx__atomic_store_release(&c->head.state, old | (uint32_t)m->err);
    } else {
        if (m->record && m->record->origin == &c->head && !list)
            cctx__atomic_store_relaxed(m->word, cctx__atomic_load_relaxed(m->word) | CAUSE_MARKED);
        /* The error before anything in the list is handed on: a runner may
         * run an after-function taken from it at once, and it must find its
         * context done. Stores, not a read-modify-write: the lock is held,
         * and the state's other writers take it too (a waiter setting
         * STATE_WAITERS, wait.c), as does cctx_done_fd when it publishes a
         * descriptor, so one of the two sides always sees the other and
         * signals it. */
        set_done(c, old, m); /* the cause takes the list's place */
    }
    take_list(list, m);
    uint32_t fd1 = cctx__atomic_load_relaxed(&c->head.fd1);
    struct cctx__cancelable *chain = m->chain;
    m->chain = NULL;
    if (chain)
        follow_chain(c, chain, m);
    else
        cctx__unlock(&c->head);
    if (above)
        cctx__unlock(above);

    signal_done(c, old, fd1);
    if (cctx__kind(&c->head) == KIND_TIMER)
        cctx__timer_disarm((struct cctx__timer *)c);
    /* c stays alive (the caller's or the work list's reference) until every
     * stopper that claimed one of its registrations has let go of it. */
    if (cctx__unlikely(m->stoppers != NULL))
        settle_stoppers(m, block);
    return MARKED;
}

bool cctx__release_unless_last(struct cctx *c)
{
    uint32_t r = cctx__atomic_load_relaxed(&c->refs);
    while ((int32_t)r > 1) /* signed: a waited count goes the ordinary way */
        if (cctx__atomic_cas_weak_acq_rel(&c->refs, &r, r - 1))
            return true;
    return false;
}

static bool marked_complete(struct cctx__cancelable *c)
{
    return cctx__atomic_load_acquire(cctx__cause_marking(cctx__cause_at(c))) & CAUSE_MARKED;
}

bool cctx__mark_rest(struct marking *m, bool block)
{
    while (m->todo) {
        struct cctx__node *n = m->todo;
        struct cctx__cancelable *child = container_of(n, struct cctx__cancelable, link);
        /* Off the list first: marking pushes the child's children on it. */
        m->todo = n->next;
        enum mark_result r = cctx__mark(child, m, block);
        if (r == BUSY || (r == ALREADY && !block && !marked_complete(child))) {
            n->next = m->todo; /* untouched: whoever goes on marks it again */
            m->todo = n;
            return false;
        }
        if (r == ALREADY && block)
            cctx__wait_marked(child);
        else if (r == MARKED && m->tracing)
            cctx__trace_reached(&child->head, m->traced);
        /* Done with it: drop the reference now, while its line is still in
         * the cache, unless it may be the last one (freeing can run user
         * code, which waits for the end) or a stopper still holds one of
         * its registrations. */
        if (!m->stoppers && cctx__release_unless_last(&child->head))
            continue;
        n->next = m->done;
        m->done = n;
    }
    if (cctx__unlikely(m->stoppers != NULL) && !settle_stoppers(m, block))
        return false;
    mark_complete(m->word);
    m->complete = true;
    return true;
}

void cctx__marking_begin_trace(struct marking *m, struct cctx *origin)
{
    m->traced = cctx__trace_cancel_begin(origin);
    m->trace_open = true;
    cctx__trace_reached(origin, m->traced);
}

void cctx__marking_finish_trace(struct marking *m)
{
    if (m->tracing) {
        if (m->trace_open)
            cctx__trace_cancel_end(m->traced);
        cctx__trace_busy(-1);
    }
}

void cctx__release_done(struct marking *m, const char *file, int line, const char *func)
{
    while (m->done) {
        struct cctx__node *n = m->done;
        m->done = n->next;
        n->next = NULL;
        cctx_release_at(&container_of(n, struct cctx__cancelable, link)->head, file, line,
                        func);
    }
}

/* Whether a cancel context's link is free for an own cause (struct
 * cctx__own_site): FREE when it was never in a list (its parent can never
 * end), TAKEN when it was in its source's list and is now out of it, with
 * its lock and its source's (*src) held: it must be marked before the
 * source's lock goes, or a cancellation of the source could return while it
 * is still active. ALREADY_DONE when it has ended, NOT_FREE otherwise. A
 * context is only taken out while nothing else is to be marked below it
 * (its list is empty: its children would not be marked under the source's
 * lock) and its source has not ended (whose canceller may hold it). Its
 * lock is tried with its source's held, never waited for (see
 * mark_leaf_in_place), and a busy lock means NOT_FREE. */
enum link_state { NOT_FREE, FREE, TAKEN, ALREADY_DONE };

static enum link_state free_the_link(struct cctx__cancelable *c, struct cctx__cancelable **src)
{
    if (!(cctx__atomic_load_relaxed(&c->head.word) & WORD_LINKED))
        return FREE;
    struct cctx__cancelable *s = cctx__source(c->head.parent);
    if (cctx__unlikely(!s))
        return NOT_FREE;
    enum link_state r = NOT_FREE;
    cctx__lock(&s->head);
    if (!(cctx__atomic_load_relaxed(&s->head.state) & STATE_ERR) && cctx__try_lock(&c->head)) {
        if (cctx__atomic_load_relaxed(&c->head.state) & STATE_ERR)
            r = ALREADY_DONE;
        else if (!c->children)
            r = TAKEN;
        if (r == TAKEN) {
            cctx__node_unlink(&c->link);
            *src = s;
            return TAKEN;
        }
        cctx__unlock(&c->head);
    }
    cctx__unlock(&s->head);
    return r;
}

/* The cancellation of an origin with an own cause that reaches nothing
 * else, the common end of a leaf: no marking phase, no work list, no run
 * queue. `src` is its source, locked with it, when free_the_link took it out
 * of its list (its list is then empty); NULL when it was never in one, and
 * then c is locked here. False: nothing was done (a child or a registration
 * got in first), and the caller goes the ordinary way. */
static bool end_alone(struct cctx__cancelable *c, const struct own_cause *own,
                      struct cctx__cancelable *src)
{
    if (!src) {
        cctx__lock(&c->head);
        uint32_t state = cctx__atomic_load_relaxed(&c->head.state);
        if ((state & STATE_ERR) || c->children) {
            cctx__unlock(&c->head);
            if (!(state & STATE_ERR))
                return false;
            cctx__wait_marked(c); /* another cancellation ended it first */
            return true;
        }
    }
    uint32_t old = cctx__atomic_load_relaxed(&c->head.state);
    keep_own_cause(c, own, true);
    cctx__atomic_store_release(&c->head.state, old | ECANCELED);
    uint32_t fd1 = cctx__atomic_load_relaxed(&c->head.fd1);
    cctx__unlock(&c->head);
    if (src) /* after c's, as in mark_locked */
        cctx__unlock(&src->head);
    signal_done(c, old, fd1);
    return true;
}

/* The cancellation of a leaf still in its source's list, with a placed cause
 * (layout.h: SLOT_PLACED): under its own lock only, its source untouched.
 * A canceller of the source that took it out of the list meanwhile either
 * marked it first (we see its error) or meets it done and waits for its
 * marking, complete as it is published. False: it has a child or a
 * registration, and the caller goes the ordinary way. */
static bool end_in_place(struct cctx__cancelable *c, const struct own_cause *own)
{
    cctx__lock(&c->head);
    uint32_t old = cctx__atomic_load_relaxed(&c->head.state);
    if (old & STATE_ERR) {
        cctx__unlock(&c->head);
        cctx__wait_marked(c); /* another cancellation ended it first */
        return true;
    }
    if (c->children) {
        cctx__unlock(&c->head);
        return false;
    }
    /* The site before the slot, the slot before the error: a reader who saw
     * the error (acquire) finds both. */
    cctx__plain_store_relaxed(&c->deadline_from, (uintptr_t)own->site | DEADLINE_FROM_SITE);
    cctx__atomic_store_release(&c->cause, (uintptr_t)own->when << 3 | SLOT_PLACED);
    cctx__atomic_store_release(&c->head.state, old | ECANCELED);
    uint32_t fd1 = cctx__atomic_load_relaxed(&c->head.fd1);
    cctx__unlock(&c->head);
    signal_done(c, old, fd1);
    return true;
}

/* The cancellation, made twice by the compiler: `tracing` is a constant in
 * each copy, so the copy that runs with CCTX_TRACE off has no trace of it.
 * `site` (may be NULL) is the cancel macro's static record of file, line and
 * func: with it, a cancel context canceled without a message keeps its cause
 * in itself (struct cctx__own_site, or a placed cause) and nothing is
 * allocated. */
static inline __attribute__((always_inline)) void
cancel(struct cctx__cancelable *c, int err, int code, const char *msg,
       const struct cctx__site *site, const char *file, int line, const char *func,
       struct cctx__run_queue *joined, const bool tracing)
{
    if (cctx__atomic_load_acquire(&c->head.state) & STATE_ERR) {
        cctx__wait_marked(c);
        return;
    }
    struct own_cause own;
    enum link_state link = NOT_FREE;
    struct cctx__cancelable *src = NULL;
    if (site && !msg && err == ECANCELED && cctx__kind(&c->head) == KIND_CANCEL) {
        /* The time first: read outside every lock. */
        own = (struct own_cause){.site = site, .when = cctx_now(), .code = code};
        /* A leaf in its source's list (no child nor registration so far,
         * as the flags say without its lock; end_in_place looks at its
         * list again under it) keeps its cause where it stands when the
         * cause fits: no code, a time in range.
         * (The site's address, a struct's, has bit 0 free: tree.c.) */
        uint32_t w = cctx__atomic_load_relaxed(&c->head.word);
        if (!tracing && code == 0 && (w & WORD_LINKED) && !(w & (WORD_PARENT | WORD_AFTERS)) &&
            own.when >= PLACED_WHEN_MIN && own.when <= PLACED_WHEN_MAX && end_in_place(c, &own))
            return;
        link = free_the_link(c, &src);
        if (link == ALREADY_DONE) {
            cctx__wait_marked(c);
            return;
        }
        /* A context never in a list is tried alone only if it never had a
         * child or a registration: the flags tell without its lock. */
        uint32_t flags = cctx__atomic_load_relaxed(&c->head.word);
        bool alone = link == TAKEN || (link == FREE && !(flags & (WORD_PARENT | WORD_AFTERS)));
        if (!tracing && alone && end_alone(c, &own, link == TAKEN ? src : NULL))
            return;
    }
    struct cctx__run_queue queue;
    cctx__run_queue_init(&queue);
    struct marking m = {.err = err, .tracing = tracing, .local = joined ? joined : &queue};
    if (link != NOT_FREE)
        m.own = &own;
    else {
        m.record = cctx__cause_new(&c->head, err, code, msg, file, line, func);
        if (cctx__likely(m.record != NULL)) {
            m.cause = (uintptr_t)m.record;
            m.word = &m.record->word;
        } else {
            m.own = &cctx__no_site; /* out of memory: mark_locked keeps it in c */
        }
    }
    /* Counted before the first mark makes it visible, so that the trace
     * written at exit holds every cancellation the program could see. */
    if (tracing)
        cctx__trace_busy(1);
    if ((link == TAKEN ? mark_locked(c, &m, true, &src->head) : cctx__mark(c, &m, true)) !=
        MARKED) {
        if (tracing)
            cctx__trace_busy(-1);
        cctx__cause_free(m.record, &c->head);
        cctx__wait_marked(c);
        return;
    }
    if (tracing)
        cctx__marking_begin_trace(&m, &c->head);
    cctx__mark_rest(&m, true);
    if (m.queued) { /* else nothing is in it, nor was: no stopper can hold it */
        if (m.queue == &cctx__runner_queue)
            cctx__runner_notify(m.queued);
        else if (m.queue == &queue)
            cctx__run_queue_drain(&queue);
        /* else the joined queue's drain, below us, runs them */
    }
    cctx__release_done(&m, file, line, func);
    if (tracing)
        cctx__marking_finish_trace(&m);
}

__attribute__((noinline)) static void cancel_traced(struct cctx__cancelable *c, int err, int code,
                                                    const char *msg, const struct cctx__site *site,
                                                    const char *file, int line, const char *func,
                                                    struct cctx__run_queue *joined)
{
    cancel(c, err, code, msg, site, file, line, func, joined, true);
}

static void cancel_at_site(struct cctx__cancelable *c, int err, int code, const char *msg,
                           const struct cctx__site *site, const char *file, int line,
                           const char *func)
{
    if (cctx__debug_on(CCTX__DEBUG_TRACE))
        cancel_traced(c, err, code, msg, site, file, line, func, NULL);
    else
        cancel(c, err, code, msg, site, file, line, func, NULL, false);
}

void cctx__cancel(struct cctx__cancelable *c, int err, int code, const char *msg, const char *file,
                  int line, const char *func)
{
    cancel_at_site(c, err, code, msg, NULL, file, line, func);
}

void cctx__cancel_joining(struct cctx__cancelable *c, int err, int code, const char *msg,
                          const char *file, int line, const char *func)
{
    struct cctx__run_queue *joined = cctx__run_queue_draining();
    if (cctx__debug_on(CCTX__DEBUG_TRACE))
        cancel_traced(c, err, code, msg, NULL, file, line, func, joined);
    else
        cancel(c, err, code, msg, NULL, file, line, func, joined, false);
}

__attribute__((noinline, cold)) static void stale_handle(const struct cctx *c, const char *file,
                                                        int line, const char *func)
{
    cctx__misuse("cancel through a stale handle (its context was released)", c, file, line, func,
                 NULL);
}

static void cancel_handle(cctx_cancel_t *cancel, int code, const char *msg,
                          const struct cctx__site *site, const char *file, int line,
                          const char *func)
{
    struct cctx *c = (struct cctx *)cancel;
    /* A born-done context's handle has nothing to cancel. */
    if (cctx__unlikely(!c || !cctx__cancelable_kind(cctx__kind(c)))) {
        if (c && cctx__kind(c) == KIND_FREED)
            stale_handle(c, file, line, func);
        return;
    }
    cancel_at_site((struct cctx__cancelable *)c, ECANCELED, code, msg, site, file, line, func);
}

void cctx_cancel_cause_at(cctx_cancel_t *cancel, int code, const char *msg, const char *file,
                          int line, const char *func)
{
    cancel_handle(cancel, code, msg, NULL, file, line, func);
}

void cctx__cancel_at_site(cctx_cancel_t *cancel, int code, const char *msg,
                          const struct cctx__site *site)
{
    if (cctx__unlikely(!site)) /* not from the macro: no site to keep */
        cctx_cancel_cause_at(cancel, code, msg, NULL, 0, NULL);
    else
        cancel_handle(cancel, code, msg, site, site->file, site->line, site->func);
}

void cctx_cancel_at(cctx_cancel_t *cancel, const char *file, int line, const char *func)
{
    cctx_cancel_cause_at(cancel, 0, NULL, file, line, func);
}
