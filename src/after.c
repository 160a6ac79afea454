/* SPDX-License-Identifier: MIT */
/*
 * After-functions: Go's context.AfterFunc on caller-owned storage.
 *
 * A registration lives in its source context's list, beside the children,
 * so registering costs no allocation and a cancellation finds both in one
 * walk. Its state word (struct cctx__after.state) moves:
 *
 *   REGISTERED -> QUEUING -> QUEUED -> RUNNING          the context ended
 *   REGISTERED -> QUEUING -> QUEUED -> UNQUEUING -> RELEASED   stopped in a queue
 *   REGISTERED -> STOPPING -> RELEASED                  cctx_after_stop won
 *   REGISTERED -> STOPPING -> STOPPED -> RELEASED       ... while a canceller took it
 *   NEVER -> RELEASED                                   on a context that never ends
 *
 * REGISTERED -> QUEUING happens under the owner's lock, as the canceller takes
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
 * Run queues. A canceller puts what it took into a run queue: its own, on its
 * stack, which it runs before cctx_cancel returns, or, for a deadline, the
 * runners' shared queue (runner.c). A QUEUED registration has not started, so
 * a stop takes it out at once and returns true, whoever was going to run it:
 * it claims it (QUEUED -> UNQUEUING, a CAS), unlinks it under the queue's
 * lock and publishes RELEASED. A runner moves QUEUED -> RUNNING under the
 * same lock, so exactly one of the two wins, and a stop never waits for a
 * registration that has not started (two after-functions that each stop the
 * other's queued registration cannot deadlock). The queue's address is in
 * link.pprev, written before QUEUED is published; a stopper that sees
 * QUEUING waits, briefly, for it. A queue outlives every claim on it: its
 * runner, having run the rest, waits until the claimers have unlinked theirs.
 *
 * RUNNING is the last state the storage ever holds: once fn has returned,
 * the library never touches the storage again, so a program that learns from
 * fn itself that it has run (a flag, a condition variable) may free or reuse
 * it at once, with no stop. Whether fn is still running is kept apart
 * instead, in the running thread's stack frame (struct run_frame), listed in a
 * stripe chosen by the storage's address while fn runs (struct run_stripe);
 * a stop that must wait for fn sleeps on that stripe. The storage may have
 * been freed and handed out again while an earlier fn there still runs, so a
 * run is known by the address and a serial number, kept in the state word
 * (bits 8-29) and in the frame. RUNNING with no frame listed for both means
 * fn has returned.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <string.h>

#include "internal.h"
#include "testhooks.h"

/* The state word: the state in bits 0-7, WAITERS in bit 31. */
enum {
    AFTER_IDLE = 0,   /* never registered */
    AFTER_REGISTERED, /* in owner's list */
    AFTER_NEVER,      /* on a context that can never end */
    AFTER_STOPPING,   /* a stopper claimed it and is unlinking it */
    AFTER_STOPPED,    /* stopped; a canceller that took it may still hold it */
    AFTER_RELEASED,   /* stopped, and no canceller holds it: the stopper may return */
    AFTER_QUEUING,    /* a canceller took it and is putting it in a run queue */
    AFTER_QUEUED,     /* in a run queue, not started: a stop takes it out at once */
    AFTER_UNQUEUING,  /* a stopper claimed it and is taking it out of its queue */
    AFTER_RUNNING,    /* fn started; it has returned once no frame is listed */
};
#define AFTER_STATE 0xffu
#define AFTER_SERIAL_SHIFT 8
#define AFTER_SERIAL_MASK 0x3fffffu /* bits 8-29: the run's serial (RUNNING) */
#define AFTER_FIRST (1u << 30)      /* REGISTERED by cctx__after_func_first */
#define AFTER_WAITERS (1u << 31)

_Static_assert(sizeof(struct cctx__after) <= sizeof(cctx_after_t),
               "cctx_after_t too small for the registration");

/* An fn running, on the stack of the thread that runs it: in that thread's
 * chain (`running`, innermost first) and in its stripe's list. `reg` is only
 * compared once fn has started: fn may free or reuse the storage. */
struct run_frame {
    const struct cctx__after *reg;
    uint32_t serial;               /* the run's, as in reg's state */
    struct run_frame *outer;       /* the chain: fns this thread runs around it */
    struct run_frame *next_listed; /* the stripe's list */
    bool waited;                   /* a stop sleeps on the stripe for it */
};
static _Thread_local struct run_frame *running;

/* The frames of the fns running now, by their storage's address. The lock is
 * a word lock taken alone, or inside a run queue's lock (run_queue_run_one);
 * `ended` is the word stoppers sleep on, bumped when a waited-for fn
 * returns; `serial` numbers the runs that start here. */
#define RUN_STRIPES 32
struct run_stripe {
    _Atomic uint32_t lock;
    _Atomic uint32_t ended;
    uint32_t serial;
    struct run_frame *frames;
} __attribute__((aligned(64)));
static struct run_stripe run_stripes[RUN_STRIPES];

static struct run_stripe *stripe_of(const struct cctx__after *a)
{
    /* A registration is 64 bytes: neighbours fall in different stripes. */
    return &run_stripes[((uintptr_t)a >> 6) % RUN_STRIPES];
}

static void publish(struct cctx__after *a, uint32_t state)
{
    uint32_t old = cctx__atomic_exchange_acq_rel(&a->state, state);
    if (old & AFTER_WAITERS)
        cctx__os_wake(&a->state);
}

/* Sleeps until a's state leaves `from`. */
static void wait_while(struct cctx__after *a, uint32_t from)
{
    for (;;) {
        uint32_t s = cctx__atomic_load_acquire(&a->state);
        if ((s & AFTER_STATE) != from)
            return;
        if (!(s & AFTER_WAITERS) &&
            !cctx__atomic_cas_weak_acq_rel(&a->state, &s, s | AFTER_WAITERS))
            continue;
        cctx__os_wait(&a->state, s | AFTER_WAITERS, CCTX_NO_DEADLINE);
    }
}

/* The next run's serial in st, its lock held. */
static uint32_t next_serial(struct run_stripe *st)
{
    return ++st->serial & AFTER_SERIAL_MASK;
}

/* The state of a run with that serial. */
static uint32_t running_state(uint32_t serial)
{
    return AFTER_RUNNING | serial << AFTER_SERIAL_SHIFT;
}

/* Lists f for a's run `serial`, its stripe's lock held, in the same hold as
 * a's state becomes RUNNING: from then until fn returns, a stopper that
 * finds a RUNNING finds f. */
static void list_frame(struct run_stripe *st, struct run_frame *f, struct cctx__after *a,
                       uint32_t serial)
{
    *f = (struct run_frame){.reg = a, .serial = serial, .next_listed = st->frames};
    st->frames = f;
}

/* Runs fn; a is RUNNING, in no list, and f is listed for it (list_frame). */
static void run(struct cctx__after *a, struct run_frame *f)
{
    void (*fn)(void *) = a->fn;
    void *arg = a->arg;
    f->outer = running;
    running = f;
    int traced = cctx__debug_on(CCTX__DEBUG_TRACE);
    if (traced)
        cctx__trace_after(a, 1);
    fn(arg);
    /* From here on a is not ours: fn may have freed or reused it. */
    if (traced)
        cctx__trace_after(NULL, 0);
    running = f->outer;
    struct run_stripe *st = stripe_of(f->reg);
    cctx__word_lock(&st->lock);
    struct run_frame **pp = &st->frames;
    while (*pp && *pp != f)
        pp = &(*pp)->next_listed;
    if (*pp)
        *pp = f->next_listed;
    bool waited = f->waited;
    if (waited) /* under the lock, where stoppers read it */
        cctx__atomic_fetch_add_relaxed(&st->ended, 1);
    cctx__word_unlock(&st->lock);
    if (waited)
        cctx__os_wake(&st->ended);
}

/* Whether f is the frame of a's run `serial`. */
static bool frame_of(const struct run_frame *f, const struct cctx__after *a, uint32_t serial)
{
    return f->reg == a && f->serial == serial;
}

/* Sleeps until a's run `serial` has returned. */
static void wait_returned(const struct cctx__after *a, uint32_t serial)
{
    struct run_stripe *st = stripe_of(a);
    for (;;) {
        cctx__word_lock(&st->lock);
        struct run_frame *f = st->frames;
        while (f && !frame_of(f, a, serial))
            f = f->next_listed;
        if (f)
            f->waited = true;
        uint32_t ended = cctx__atomic_load_relaxed(&st->ended);
        cctx__word_unlock(&st->lock);
        if (!f)
            return;
        cctx__os_wait(&st->ended, ended, CCTX_NO_DEADLINE);
    }
}

/* ---- Run queues ------------------------------------------------------------ */

#define queue_of(a) ((struct cctx__run_queue *)((a)->link.pprev & ~NODE_AFTER))

void cctx__run_queue_init(struct cctx__run_queue *q)
{
    atomic_init(&q->lock, 0);
    q->head = NULL;
    q->tail = &q->head;
}

bool cctx__after_take(struct cctx__after *a, struct cctx__run_queue *q)
{
    uint32_t s = cctx__atomic_load_relaxed(&a->state);
    if ((s & AFTER_STATE) != AFTER_REGISTERED ||
        !cctx__atomic_cas_strong_acq_rel(&a->state, &s, (s & ~AFTER_STATE) | AFTER_QUEUING))
        return false; /* a stopper claimed it first */
    a->link.pprev = (uintptr_t)q | NODE_AFTER;
    cctx__word_lock(&q->lock);
    if (s & AFTER_FIRST) { /* the library's own: ahead of the user's fns */
        a->link.next = q->head;
        if (!q->head)
            q->tail = &a->link.next;
        q->head = &a->link;
    } else {
        a->link.next = NULL;
        *q->tail = &a->link;
        q->tail = &a->link.next;
    }
    cctx__word_unlock(&q->lock);
    /* Release: the queue's address and links first. A waker stays marked as
     * one, for a runner that may run only those (runner.c). */
    publish(a, AFTER_QUEUED | (s & AFTER_FIRST));
    return true;
}

/* Takes the node *pp points at out of q (q's lock held). */
static void unlink_at(struct cctx__run_queue *q, struct cctx__node **pp)
{
    struct cctx__node *n = *pp;
    *pp = n->next;
    if (q->tail == &n->next)
        q->tail = pp;
    n->next = NULL;
    n->pprev = NODE_AFTER;
}

/* Runs the first registration of q that no stopper has claimed; with
 * wakers_only, only if it is a library waker (they are all at the front:
 * cctx__after_take). False if none was run. */
static bool run_one(struct cctx__run_queue *q, bool wakers_only)
{
    struct cctx__after *a = NULL;
    struct run_frame frame;
again:
    cctx__word_lock(&q->lock);
    for (struct cctx__node **pp = &q->head; *pp; pp = &(*pp)->next) {
        struct cctx__after *c = container_of(*pp, struct cctx__after, link);
        uint32_t s = cctx__atomic_load_relaxed(&c->state);
        /* A claimed one stays for its stopper to unlink. */
        if ((s & AFTER_STATE) != AFTER_QUEUED)
            continue;
        if (wakers_only && !(s & AFTER_FIRST))
            break;
        /* RUNNING and the frame listed as one step, for a stopper. */
        struct run_stripe *st = stripe_of(c);
        /* Never asleep on a stripe with q held: fork()'s handler holds
         * every stripe for the whole fork, and the child would get q's lock
         * held by a thread it does not have (a stop of q's registrations
         * there would wait for ever). Waited out with nothing held. */
        if (!cctx__word_try_lock(&st->lock)) {
            cctx__word_unlock(&q->lock);
            cctx__word_lock(&st->lock);
            cctx__word_unlock(&st->lock);
            goto again;
        }
        uint32_t serial = next_serial(st);
        bool ours = cctx__atomic_cas_strong_acq_rel(&c->state, &s,
                                                    (s & AFTER_WAITERS) | running_state(serial));
        if (ours)
            list_frame(st, &frame, c, serial);
        cctx__word_unlock(&st->lock);
        if (ours) {
            unlink_at(q, pp);
            a = c;
            break;
        }
    }
    cctx__word_unlock(&q->lock);
    if (!a)
        return false;
    run(a, &frame);
    return true;
}

bool cctx__run_queue_run_one(struct cctx__run_queue *q)
{
    return run_one(q, false);
}

bool cctx__run_queue_run_waker(struct cctx__run_queue *q)
{
    return run_one(q, true);
}

/* The local run queue this thread is draining, the innermost one: the
 * library's own cancellations made from inside its after-functions add to
 * it instead of draining one of their own (cctx__cancel_joining). */
static _Thread_local struct cctx__run_queue *draining;

struct cctx__run_queue *cctx__run_queue_draining(void)
{
    return draining;
}

void cctx__run_queue_drain(struct cctx__run_queue *q)
{
    /* Only this thread adds to q from here on, from inside run_one, which
     * runs what it added before it returns false. */
    struct cctx__run_queue *outer = draining;
    draining = q;
    while (cctx__run_queue_run_one(q))
        ;
    draining = outer;
    /* What is left was claimed by stoppers, each between its claim and its
     * unlink, which takes no lock but q's: a matter of instructions. */
    for (;;) {
        cctx__word_lock(&q->lock);
        bool empty = q->head == NULL;
        cctx__word_unlock(&q->lock);
        if (empty)
            return;
        sched_yield();
    }
}

/* ---- Stoppers ---------------------------------------------------------------- */

/* A stop called from inside an after-function, waiting for another one that
 * runs on another thread. Such waits can close a cycle (fa stops rb while fb
 * stops ra, both running: the common "whichever fires first cancels the
 * other"), which would never end; a stop that would close one returns false
 * at once instead. The waits in progress are listed here, each with the
 * waiter's frames (alive while it waits), under `stop_waits_lock`, which
 * nests inside nothing (only the fork handlers take the stripes' locks
 * inside it). */
struct stop_wait {
    struct stop_wait *next;
    const struct run_frame *frames; /* what the waiting thread runs */
    const struct cctx__after *target;
    uint32_t serial; /* the target's run */
};
static pthread_mutex_t stop_waits_lock = PTHREAD_MUTEX_INITIALIZER;
static struct stop_wait *stop_waits;

static bool runs(const struct run_frame *f, const struct cctx__after *a, uint32_t serial)
{
    for (; f; f = f->outer)
        if (frame_of(f, a, serial))
            return true;
    return false;
}

/* Whether the thread running `target`'s run `serial` waits, directly or
 * through other waiters, for something this thread runs (stop_waits_lock
 * held). */
static bool waits_for_us(const struct cctx__after *target, uint32_t serial)
{
    for (int hops = 0; hops < 1024; hops++) {
        const struct stop_wait *w = stop_waits;
        while (w && !runs(w->frames, target, serial))
            w = w->next;
        if (!w)
            return false;
        if (runs(running, w->target, w->serial))
            return true;
        target = w->target;
        serial = w->serial;
    }
    return false;
}

/* From inside an after-function: waits for a's run `serial`, on another
 * thread, to return, unless that would never end. */
static void wait_running(struct cctx__after *a, uint32_t serial)
{
    struct stop_wait me = {.frames = running, .target = a, .serial = serial};
    pthread_mutex_lock(&stop_waits_lock);
    if (waits_for_us(a, serial)) {
        pthread_mutex_unlock(&stop_waits_lock);
        return;
    }
    me.next = stop_waits;
    stop_waits = &me;
    pthread_mutex_unlock(&stop_waits_lock);
    wait_returned(a, serial);
    pthread_mutex_lock(&stop_waits_lock);
    struct stop_wait **pp = &stop_waits;
    while (*pp != &me)
        pp = &(*pp)->next;
    *pp = me.next;
    pthread_mutex_unlock(&stop_waits_lock);
}

/* A stop that claims a queued registration unlinks it from its queue a few
 * instructions later, and the queue's drain waits for that. A fork() in
 * between would leave the registration in the child's copy of the queue,
 * claimed by a thread the child does not have: a canceller that forked from
 * one of its after-functions would drain its queue for ever there. So a
 * fork waits for such windows to close, and none opens while it prepares.
 * Only stops that race a cancellation's queue pass here. */
static _Atomic uint32_t unqueuing; /* stops between their claim and unlink */
static _Atomic uint32_t forking;   /* forks between prepare and parent */

_Atomic(cctx__plain_hook_fn) cctx__after_unqueuing;

static void leave_unqueuing(void)
{
    if (cctx__atomic_fetch_sub_seq_cst(&unqueuing, 1) == 1 && cctx__atomic_load_seq_cst(&forking))
        cctx__os_wake(&unqueuing);
}

static void enter_unqueuing(void)
{
    for (;;) {
        /* Counted, then the gate read, while a fork sets the gate, then
         * reads the count (all seq_cst): one of the two sees the other. */
        cctx__atomic_fetch_add_seq_cst(&unqueuing, 1);
        uint32_t f = cctx__atomic_load_seq_cst(&forking);
        if (!f)
            return;
        leave_unqueuing();
        cctx__os_wait(&forking, f, CCTX_NO_DEADLINE);
    }
}

void cctx__after_fork_gate(int phase)
{
    switch (phase) {
    case FORK_PREPARE:
        cctx__atomic_fetch_add_seq_cst(&forking, 1);
        for (uint32_t n; (n = cctx__atomic_load_seq_cst(&unqueuing)) > 0;)
            cctx__os_wait(&unqueuing, n, CCTX_NO_DEADLINE);
        break;
    case FORK_PARENT:
        cctx__atomic_fetch_sub_seq_cst(&forking, 1);
        cctx__os_wake(&forking);
        break;
    default: /* the child has none of the other threads, nor their stops */
        cctx__atomic_store_relaxed(&unqueuing, 0);
        cctx__atomic_store_relaxed(&forking, 0);
        break;
    }
}

/* fork(): the handlers hold every stripe's lock and `stop_waits_lock`, so
 * the child gets them free and its lists whole. Only this thread goes on in
 * the child, and it is in no stop's wait (it is forking): the other threads'
 * frames and waits are dropped, since another thread's fn will never return
 * there and a stop must not wait for it. */
void cctx__after_fork(int phase)
{
    switch (phase) {
    case FORK_PREPARE:
        pthread_mutex_lock(&stop_waits_lock);
        for (int i = 0; i < RUN_STRIPES; i++)
            cctx__word_lock(&run_stripes[i].lock);
        break;
    case FORK_PARENT:
        for (int i = 0; i < RUN_STRIPES; i++)
            cctx__word_unlock(&run_stripes[i].lock);
        pthread_mutex_unlock(&stop_waits_lock);
        break;
    default:
        for (int i = 0; i < RUN_STRIPES; i++) {
            cctx__atomic_store_relaxed(&run_stripes[i].lock, 0);
            run_stripes[i].frames = NULL;
        }
        for (struct run_frame *f = running; f; f = f->outer) {
            struct run_stripe *st = stripe_of(f->reg);
            f->next_listed = st->frames;
            st->frames = f;
        }
        stop_waits = NULL;
        pthread_mutex_unlock(&stop_waits_lock);
        break;
    }
}

/* For the tests (testhooks.h). */
void cctx__test_after_hold_stop_waits_lock(bool hold)
{
    if (hold)
        pthread_mutex_lock(&stop_waits_lock);
    else
        pthread_mutex_unlock(&stop_waits_lock);
}

void cctx__after_wait_stopper(struct cctx__after *a)
{
    wait_while(a, AFTER_STOPPING);
    publish(a, AFTER_RELEASED);
}

bool cctx__after_try_stopper(struct cctx__after *a)
{
    if ((cctx__atomic_load_acquire(&a->state) & AFTER_STATE) == AFTER_STOPPING)
        return false;
    publish(a, AFTER_RELEASED);
    return true;
}

/* For CCTX_DEBUG=checks, a misuse when a is still in ctx's list:
 * registering it again would cut that list (a cancel of src would then never end). The
 * storage may hold anything before a registration (the caller need not
 * clear it, which is also why this look is not made with the switch off: a
 * memory checker would take it for a read of uninitialised memory), so only
 * a node found in the list counts; one in another context's list is not
 * looked for, as that context may be gone. */
__attribute__((noinline, cold)) static void check_not_listed(const struct cctx__after *a,
                                                             cctx_t *ctx, const char *file,
                                                             int line, const char *func)
{
    struct cctx__cancelable *src = cctx__source(ctx);
    if (!src || (cctx__atomic_load_relaxed(&a->state) & AFTER_STATE) != AFTER_REGISTERED ||
        a->owner != src)
        return;
    bool found = false;
    cctx__lock(&src->head);
    for (const struct cctx__node *n = src->children; n && !found; n = n->next)
        found = n == &a->link;
    cctx__unlock(&src->head);
    if (found)
        cctx__misuse("cctx_after_func on storage still registered on this context (neither run "
                     "nor stopped)",
                     ctx, file, line, func, NULL);
}

static int register_after(cctx_t *ctx, cctx_after_t *reg, void (*fn)(void *arg), void *arg,
                          const char *file, int line, const char *func, uint32_t first)
{
    if (cctx__unlikely(!ctx || !reg || !fn))
        return EINVAL;
    struct cctx__after *a = (struct cctx__after *)reg;
    if (cctx__unlikely(cctx__debug_on(CCTX__DEBUG_CHECKS)))
        check_not_listed(a, ctx, file, line, func);
    memset(reg, 0, sizeof *reg);
    a->fn = fn;
    a->arg = arg;
    a->file = file;
    a->line = line;
    a->func = func;
    cctx__fork_watch(); /* the running stripes' locks are held across fork() */
    cctx__child_restart();
    struct cctx__cancelable *src = cctx__source(ctx);
    a->owner = src;
    if (!src) {
        cctx__check_tombstone(ctx, "cctx_after_func", file, line, func);
        cctx__atomic_store_release(&a->state, AFTER_NEVER);
        return 0;
    }
    cctx__lock(&src->head);
    if (cctx__atomic_load_relaxed(&src->head.state) & STATE_ERR) {
        cctx__unlock(&src->head);
        /* Listed before fn can hand reg to a thread that stops it. */
        struct run_frame frame;
        struct run_stripe *st = stripe_of(a);
        cctx__word_lock(&st->lock);
        uint32_t serial = next_serial(st);
        cctx__atomic_store_relaxed(&a->state, running_state(serial));
        list_frame(st, &frame, a, serial);
        cctx__word_unlock(&st->lock);
        run(a, &frame);
        return 0;
    }
    cctx__atomic_store_relaxed(&a->state, AFTER_REGISTERED | first);
    cctx__atomic_fetch_or_relaxed(&src->head.word, WORD_AFTERS);
    cctx__node_push(&src->children, &a->link, NODE_AFTER);
    cctx__unlock(&src->head);
    return 0;
}

int cctx_after_func_at(cctx_t *ctx, cctx_after_t *reg, void (*fn)(void *arg), void *arg,
                       const char *file, int line, const char *func)
{
    return register_after(ctx, reg, fn, arg, file, line, func, 0);
}

int cctx__after_func_first(cctx_t *ctx, cctx_after_t *reg, void (*fn)(void *arg), void *arg,
                           const char *file, int line, const char *func)
{
    return register_after(ctx, reg, fn, arg, file, line, func, AFTER_FIRST);
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
    cctx__child_restart(); /* what it may wait for may need a runner */
    for (;;) {
        uint32_t s = cctx__atomic_load_acquire(&a->state);
        switch (s & AFTER_STATE) {
        case AFTER_NEVER:
            if (cctx__atomic_cas_weak_acq_rel(&a->state, &s, AFTER_RELEASED))
                return true;
            continue;
        case AFTER_REGISTERED: {
            if (!cctx__atomic_cas_weak_acq_rel(&a->state, &s, (s & ~AFTER_STATE) | AFTER_STOPPING))
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
        case AFTER_QUEUING:
        case AFTER_UNQUEUING: /* being queued; or another stop got there first */
            wait_while(a, s & AFTER_STATE);
            continue;
        case AFTER_QUEUED: {
            enter_unqueuing();
            if (!cctx__atomic_cas_weak_acq_rel(&a->state, &s,
                                               (s & ~AFTER_STATE) | AFTER_UNQUEUING)) {
                leave_unqueuing();
                continue;
            }
            cctx__plain_hook_fn hook = cctx__atomic_load_relaxed(&cctx__after_unqueuing);
            if (cctx__unlikely(hook != NULL))
                hook();
            /* Claimed: no runner will start or touch it, and its queue
             * lives until we let go. */
            struct cctx__run_queue *q = queue_of(a);
            cctx__word_lock(&q->lock);
            for (struct cctx__node **pp = &q->head; *pp; pp = &(*pp)->next) {
                if (*pp == &a->link) {
                    unlink_at(q, pp);
                    break;
                }
            }
            cctx__word_unlock(&q->lock);
            leave_unqueuing();
            publish(a, AFTER_RELEASED);
            return true;
        }
        case AFTER_RUNNING: {
            /* Running, or ran: the state stays RUNNING (see the top). */
            uint32_t serial = s >> AFTER_SERIAL_SHIFT & AFTER_SERIAL_MASK;
            if (runs(running, a, serial))
                return false; /* from inside fn itself */
            if (running)
                wait_running(a, serial);
            else
                wait_returned(a, serial);
            return false;
        }
        case AFTER_IDLE:
            if (cctx__debug_on(CCTX__DEBUG_CHECKS))
                cctx__misuse("cctx_after_stop on storage that was never registered", NULL, file,
                             line, func, caller);
            return false;
        case AFTER_RELEASED:
            return false;
        default:
            if (cctx__debug_on(CCTX__DEBUG_CHECKS))
                cctx__misuse("cctx_after_stop on storage that is not a registration", NULL, file,
                             line, func, caller);
            return false;
        }
    }
}

bool cctx__after_stoppable_in_child(const cctx_after_t *reg)
{
    const struct cctx__after *a = (const struct cctx__after *)reg;
    switch (cctx__atomic_load_acquire(&a->state) & AFTER_STATE) {
    case AFTER_REGISTERED: /* the stop takes the owner's lock */
        if (!cctx__try_lock(&a->owner->head))
            return false;
        cctx__unlock(&a->owner->head);
        return true;
    case AFTER_STOPPING: /* a stopper or a canceller moves it on: waited for */
    case AFTER_STOPPED:
    case AFTER_QUEUING:
    case AFTER_UNQUEUING:
        return false;
    default: /* a run of fn on a thread the fork left is not waited for */
        return true;
    }
}

/* For the tests (testhooks.h). */
const char *cctx__test_after_state(const void *reg)
{
    static const char *const names[] = {"idle",     "registered", "never",  "stopping",  "stopped",
                                        "released", "queuing",    "queued", "unqueuing", "running"};
    uint32_t s = cctx__atomic_load_acquire(&((const struct cctx__after *)reg)->state) & AFTER_STATE;
    return s < sizeof names / sizeof *names ? names[s] : "?";
}
