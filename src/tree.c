/* SPDX-License-Identifier: MIT */
/*
 * The tree: roots, references, deriving and releasing contexts.
 *
 * Deriving allocates once, takes a reference on the parent and, for a
 * cancelable child, links it into its source's list under the source's lock
 * (or copies the source's error and cause when the source is already done;
 * cctx_with_cancel then makes a born-done head, layout.h).
 * Releasing the last reference cancels the context if someone could still
 * observe that (after-functions), unlinks it, frees it and then releases the
 * parent, in a loop: a chain of any length is released without recursion.
 *
 * Lock order: one context lock at a time (see lock.h).
 */
#define _GNU_SOURCE
#include <string.h>

#include "internal.h"
#include "testhooks.h"

/* The sizes the design promises: one allocation each. */
_Static_assert(sizeof(struct cctx__cancelable) <= 72,
               "a cancelable context exceeds 72 bytes (80 is the promise; 72 fits glibc's 80-byte chunk)");
_Static_assert(sizeof(struct cctx__timer) <= 112, "a deadline context exceeds 112 bytes");
_Static_assert(sizeof(struct cctx__value) <= 72,
               "a value context exceeds 72 bytes (72 fits glibc's 80-byte chunk, as 64 does)");
/* The slot's own cause and the link's site and time fit where the list and
 * the link were: a handle costs no byte more (struct cctx__own_site). */
_Static_assert(sizeof(struct cctx__own_site) <= sizeof(struct cctx__node) &&
                   sizeof(struct cctx__own_word) <= sizeof(uint64_t),
               "an own cause does not fit its context's link and slot");
/* A placed cause's site goes in deadline_from with bit 0 set. */
_Static_assert(_Alignof(struct cctx__site) >= 2 && _Alignof(struct cctx__timer) >= 2,
               "a site's or a timer's address has no free bit 0");
_Static_assert(sizeof(struct cctx) <= 40, "a born-done context exceeds 40 bytes");

/* ---- Roots ---------------------------------------------------------------- */

static struct cctx background_ctx = {
    .refs = 1, .word = KIND_ROOT << WORD_KIND_SHIFT, .file = "cctx", .func = "cctx_background"};
static struct cctx todo_ctx = {
    .refs = 1, .word = KIND_ROOT << WORD_KIND_SHIFT, .file = "cctx", .func = "cctx_todo"};

cctx_t *cctx_background(void)
{
    return &background_ctx;
}

cctx_t *cctx_todo(void)
{
    return &todo_ctx;
}

/* ---- Allocation and its test hooks ---------------------------------------- */

/* One word says whether any hook is on, so that allocating and freeing
 * test one load when none is. */
enum { HOOK_FAIL = 1, HOOK_COUNT = 2 };
static _Atomic unsigned hooks;
static _Atomic long fail_countdown; /* > 0: the allocation that brings it to 0 fails */
static _Atomic bool fail_on;        /* and so does every later one */
static _Atomic bool fail_sticky;
static _Atomic long live_allocs;

static void fail_set(long n, bool sticky)
{
    cctx__atomic_store_seq_cst(&fail_on, false);
    cctx__atomic_store_seq_cst(&fail_sticky, sticky && n > 0);
    cctx__atomic_store_seq_cst(&fail_countdown, n > 0 ? n : 0);
    if (n > 0)
        cctx__atomic_fetch_or_seq_cst(&hooks, HOOK_FAIL);
    else
        cctx__atomic_fetch_and_seq_cst(&hooks, ~(unsigned)HOOK_FAIL);
}

void cctx__test_fail_alloc(long n)
{
    fail_set(n, false);
}

void cctx__test_fail_allocs_from(long n)
{
    fail_set(n, true);
}

long cctx__test_fail_alloc_pending(void)
{
    return cctx__atomic_load_seq_cst(&fail_countdown);
}

void cctx__test_count_allocs(bool on)
{
    if (on)
        cctx__atomic_fetch_or_seq_cst(&hooks, HOOK_COUNT);
    else
        cctx__atomic_fetch_and_seq_cst(&hooks, ~(unsigned)HOOK_COUNT);
}

long cctx__test_live_allocs(void)
{
    return cctx__atomic_load_seq_cst(&live_allocs);
}

__attribute__((noinline)) static void *alloc_hooked(size_t size)
{
    if (cctx__atomic_load_seq_cst(&fail_on))
        return NULL;
    if (cctx__atomic_load_relaxed(&fail_countdown) > 0 &&
        cctx__atomic_fetch_sub_seq_cst(&fail_countdown, 1) == 1) {
        if (cctx__atomic_load_seq_cst(&fail_sticky))
            cctx__atomic_store_seq_cst(&fail_on, true);
        return NULL;
    }
    void *p = malloc(size);
    if ((cctx__atomic_load_relaxed(&hooks) & HOOK_COUNT) && p)
        cctx__atomic_fetch_add_seq_cst(&live_allocs, 1);
    return p;
}

void *cctx__alloc(size_t size)
{
    if (cctx__unlikely(cctx__atomic_load_relaxed(&hooks)))
        return alloc_hooked(size);
    return malloc(size);
}

void cctx__free(void *p)
{
    if (cctx__unlikely(cctx__atomic_load_relaxed(&hooks) & HOOK_COUNT) && p)
        cctx__atomic_fetch_sub_seq_cst(&live_allocs, 1);
    free(p);
}

/* ---- The per-context lock -------------------------------------------------- */

/* A futex mutex in bits 0-1 of a word whose other bits are preserved, so
 * that NAMED may be set with an atomic OR while a context's lock is held.
 *
 * Spinning. A waiter spins, with the CPU's spin-wait hint, for up to
 * LOCK_SPIN_NS of the real clock before it sleeps. It used to spin 100 turns
 * with no hint, a few hundred nanoseconds, shorter than a contended line
 * takes to move between two cores of a VM, and the lock had two stable
 * states: once one waiter slept, the lock stayed marked contended, every
 * unlock made a futex call, the critical sections grew, and more waiters
 * slept. Two threads deriving from one parent (CommonParentCancel) fell into
 * it in about half the runs: 0.3 to 0.5 futex calls and 850 to 950 ns per op
 * instead of 360. The spin is bounded by time, not turns, because the hint's
 * cost differs tenfold between CPUs (28 ns per PAUSE on the machine measured,
 * a few cycles on others); 3 us is about what glibc's adaptive mutex spins
 * there, and a tenth of a sleep and wake-up. A run of millions of contended
 * ops now makes a few hundred futex calls. */
enum { LOCK_SPIN_NS = 3000 };

/* How often a waiter went to sleep: for the tests (testhooks.h). */
static _Atomic long lock_sleeps;
long cctx__test_lock_sleeps(void)
{
    return cctx__atomic_load_relaxed(&lock_sleeps);
}

void cctx__word_lock_slow(_Atomic uint32_t *word)
{
    int64_t spin_until = 0; /* 0: not spinning yet */
    bool slept = false;
    for (unsigned turn = 0;; turn++) {
        uint32_t w = cctx__atomic_load_relaxed(word);
        if (!(w & WORD_LOCK)) {
            /* Once we slept, others may sleep too: keep the lock marked contended. */
            uint32_t want = w | (slept ? 2 : 1);
            if (cctx__atomic_cas_weak_acquire(word, &w, want))
                return;
            continue;
        }
        if (!slept) {
            /* The real clock, never the fake one; read every 16 turns, so
             * that the spin watches the word, not the clock. */
            if (!spin_until)
                spin_until = cctx__os_now() + LOCK_SPIN_NS;
            if (turn % 16 != 15 || cctx__os_now() < spin_until) {
                cctx__cpu_relax();
                continue;
            }
        }
        if (!(w & 2) && !cctx__atomic_cas_weak_relaxed(word, &w, (w & ~WORD_LOCK) | 2))
            continue;
        slept = true;
        cctx__atomic_fetch_add_relaxed(&lock_sleeps, 1);
        cctx__os_wait(word, (w & ~WORD_LOCK) | 2, CCTX_NO_DEADLINE);
    }
}

/* ---- References ------------------------------------------------------------ */

/* A reference taken on a context nobody holds any more is a use after free:
 * the count tells, at the cost of a test of a value already in hand. */
static inline void take_ref(struct cctx *c, const char *what, const char *file, int line,
                            const char *func, const void *caller)
{
    if (cctx__unlikely(cctx__atomic_fetch_add_relaxed(&c->refs, 1) == 0))
        cctx__misuse(what, c, file, line, func, caller);
}

cctx_t *cctx_ref(cctx_t *ctx)
{
    if (ctx && cctx__kind(ctx) != KIND_ROOT)
        take_ref(ctx, "cctx_ref of a context already released (use after free)", NULL, 0, NULL,
                 CCTX__CALLER);
    return ctx;
}

int cctx__try_ref(struct cctx *c)
{
    uint32_t r = cctx__atomic_load_relaxed(&c->refs);
    while (r != 0)
        if (cctx__atomic_cas_weak_acquire(&c->refs, &r, r + 1))
            return 1;
    return 0;
}

/* ---- Lists ------------------------------------------------------------------ */

void cctx__node_push(struct cctx__node **head, struct cctx__node *n, uintptr_t tag)
{
    n->next = *head;
    if (n->next)
        n->next->pprev = (uintptr_t)&n->next | (n->next->pprev & NODE_AFTER);
    n->pprev = (uintptr_t)head | tag;
    *head = n;
}

void cctx__node_unlink(struct cctx__node *n)
{
    struct cctx__node **pp = (struct cctx__node **)(n->pprev & ~NODE_AFTER);
    if (!pp)
        return;
    *pp = n->next;
    if (n->next)
        n->next->pprev = (uintptr_t)pp | (n->next->pprev & NODE_AFTER);
    n->pprev &= NODE_AFTER;
}

/* ---- Deriving ---------------------------------------------------------------- */

/* Inlined by force: out of line, deriving would pay a call for it. */
static inline __attribute__((always_inline)) void
init_head(struct cctx *c, enum cctx__kind kind, struct cctx *parent, const char *file, int line,
          const char *func)
{
    if (cctx__kind(parent) != KIND_ROOT)
        take_ref(parent, "deriving from a context already released (use after free)", file, line,
                 func, NULL);
    atomic_init(&c->state, kind == KIND_VALUE ? STATE_FORWARD : 0);
    atomic_init(&c->refs, 1);
    uint32_t l = line < 0 ? 0 : (uint32_t)line > WORD_LINE_MAX ? WORD_LINE_MAX : (uint32_t)line;
    atomic_init(&c->word, (uint32_t)kind << WORD_KIND_SHIFT | l << WORD_LINE_SHIFT);
    atomic_init(&c->fd1, 0);
    c->file = file;
    c->func = func;
    c->parent = parent;
}

/* Links a new cancelable context under its source (that of its parent), or
 * makes it born done. */
static void attach(struct cctx__cancelable *c, struct cctx__cancelable *src)
{
    if (!src)
        return;
    /* A done source stays done, and its cause was written before its error:
     * a child of one needs no lock to be born done. */
    uint32_t s = cctx__atomic_load_acquire(&src->head.state);
    if (!(s & STATE_ERR)) {
        /* c is seen by no other thread until it is in the list: its flag is
         * set with plain stores, not a locked instruction, and outside the
         * source's lock (taken back if the source ended meanwhile). */
        uint32_t w = cctx__atomic_load_relaxed(&c->head.word);
        cctx__atomic_store_relaxed(&c->head.word, w | WORD_LINKED);
        cctx__lock(&src->head);
        s = cctx__atomic_load_relaxed(&src->head.state);
        bool first = !(cctx__atomic_load_relaxed(&src->head.word) & WORD_PARENT);
        if (!(s & STATE_ERR))
            cctx__node_push(&src->children, &c->link, 0);
        if (first && !(s & STATE_ERR))
            cctx__unlock_setting(&src->head, WORD_PARENT);
        else
            cctx__unlock(&src->head);
        if (s & STATE_ERR)
            cctx__atomic_store_relaxed(&c->head.word, w);
    }
    if (s & STATE_ERR) {
        cctx__atomic_store_relaxed(&c->cause, cctx__cause_ref(src));
        cctx__atomic_store_relaxed(&c->head.state, s & STATE_ERR);
    }
}

static inline __attribute__((always_inline)) void
init_cancelable(struct cctx__cancelable *c, enum cctx__kind kind, cctx_t *parent,
                const char *file, int line, const char *func)
{
    init_head(&c->head, kind, parent, file, line, func);
    c->link.next = NULL;
    c->link.pprev = 0;
    c->children = NULL;
    c->deadline_from = kind == KIND_TIMER ? (uintptr_t)c : (uintptr_t)cctx__deadline_of(parent);
}

static cctx_t *refuse(int err, cctx_cancel_t **cancel)
{
    if (cancel)
        *cancel = NULL;
    errno = err;
    return NULL;
}

/* A cancel context under an ended source: the head alone (layout.h). Its
 * handle stays valid and cancels nothing. */
static cctx_t *born_done(cctx_t *parent, uint32_t err, cctx_cancel_t **cancel, const char *file,
                         int line, const char *func)
{
    struct cctx *c = cctx__alloc(sizeof *c);
    if (cctx__unlikely(!c))
        return refuse(ENOMEM, cancel);
    init_head(c, KIND_BORN_DONE, parent, file, line, func);
    atomic_init(&c->state, err);
    if (cctx__debug_on(CCTX__DEBUG_REGISTRY | CCTX__DEBUG_TRACE))
        cctx__debug_born(c);
    if (cancel)
        *cancel = (cctx_cancel_t *)c;
    return c;
}

cctx_t *cctx_with_cancel_at(cctx_t *parent, cctx_cancel_t **cancel, const char *file, int line,
                            const char *func)
{
    if (cctx__unlikely(!parent))
        return refuse(EINVAL, cancel);
    /* An ended source stays ended, and its cause was written before its
     * error (release): no lock is needed to see that the child is done.
     * The parent's own word says so unless it forwards (a value context),
     * so that a chain of born-done contexts is not walked. */
    struct cctx__cancelable *src = NULL;
    uint32_t s = cctx__atomic_load_acquire(&parent->state);
    if (s & STATE_FORWARD) {
        src = cctx__source(parent);
        s = src ? cctx__atomic_load_acquire(&src->head.state) : 0;
    }
    if (s & STATE_ERR)
        return born_done(parent, s & STATE_ERR, cancel, file, line, func);
    if (!src)
        src = cctx__source(parent);
    struct cctx__cancelable *c = cctx__alloc(sizeof *c);
    if (cctx__unlikely(!c))
        return refuse(ENOMEM, cancel);
    init_cancelable(c, KIND_CANCEL, parent, file, line, func);
    attach(c, src);
    if (cctx__debug_on(CCTX__DEBUG_REGISTRY | CCTX__DEBUG_TRACE))
        cctx__debug_born(&c->head);
    if (cancel)
        *cancel = (cctx_cancel_t *)c;
    return &c->head;
}

/* Only the fake clock can stand at INT64_MAX. There every deadline, even
 * CCTX_NO_DEADLINE (what a timeout saturates to), has been reached. */
static bool at_end_of_time(void)
{
    return cctx__atomic_load_relaxed(&cctx__fake_on) &&
           cctx__atomic_load_relaxed(&cctx__fake_now) == INT64_MAX;
}

cctx_t *cctx__with_deadline(cctx_t *parent, int64_t deadline, int code, const char *msg,
                            cctx_cancel_t **cancel, const char *file, int line, const char *func)
{
    const struct cctx__timer *inherited = cctx__deadline_of(parent);
    /* Only a grace context not started yet holds CCTX_NO_DEADLINE: "none
     * yet", not a deadline that could make this one redundant. */
    int64_t earlier = inherited ? cctx__deadline_load(inherited) : CCTX_NO_DEADLINE;
    if ((deadline == CCTX_NO_DEADLINE && !at_end_of_time()) ||
        (earlier != CCTX_NO_DEADLINE && earlier <= deadline))
        return cctx_with_cancel_at(parent, cancel, file, line, func);

    size_t len = msg ? strlen(msg) + 1 : 0;
    /* A deadline with a cause of its own carries the record its firing will
     * use, in the same allocation, so that no failed allocation at firing
     * time can lose the code and message it was given. */
    size_t extra = code || msg ? sizeof(struct cctx__cause) + len : 0;
    struct cctx__timer *t = cctx__alloc(sizeof *t + extra);
    if (cctx__unlikely(!t))
        return refuse(ENOMEM, cancel);
    init_cancelable(&t->c, KIND_TIMER, parent, file, line, func);
    t->deadline = deadline;
    atomic_init(&t->slot, 0);
    t->shard = cctx__timer_shard();
    t->code = code;
    t->flags = 0;
    t->msg = msg ? memcpy((struct cctx__cause *)(t + 1) + 1, msg, len) : NULL;

    struct cctx__cancelable *src = cctx__source(parent);
    attach(&t->c, src);
    if (cctx__debug_on(CCTX__DEBUG_REGISTRY | CCTX__DEBUG_TRACE))
        cctx__debug_born(&t->c.head);
    if (cctx__atomic_load_relaxed(&t->c.head.state) & STATE_ERR) {
        /* Born done by its parent: its deadline can no longer matter. */
    } else {
        /* Armed once attached, so that a firing can never precede (and be
         * overwritten by) the born-done check above. Past already, or found
         * due by its arm (the fake clock), it ends here. A failure unwinds
         * through an ordinary release: a parent's canceller may hold t by
         * now. */
        int err = deadline <= cctx_now() ? CCTX__TIMER_DUE : cctx__timer_arm(t);
        if (err == CCTX__TIMER_DUE) {
            cctx__cancel(&t->c, ETIMEDOUT, code, t->msg, file, line, func);
        } else if (err) {
            /* No room in the timer's heap, or no timer thread could be
             * started (pthread_create's EAGAIN): either way a resource ran
             * out, which a derivation reports as ENOMEM, the one such
             * error its callers are told to expect. */
            cctx_release_at(&t->c.head, file, line, func);
            return refuse(ENOMEM, cancel);
        } else if (src) {
            /* In its source's list, t may have been ended by a cancellation
             * from above between its attach and its arm, whose disarm then
             * found nothing: it would stay in the heap until its deadline
             * or its release. Nothing else can end t before we return
             * without disarming it (its handle is not out yet). */
            cctx__timer_disarm_if_ended(t);
        }
    }
    if (cancel)
        *cancel = (cctx_cancel_t *)t;
    return &t->c.head;
}

struct cctx__timer *cctx__timer_unlinked(cctx_t *parent, size_t extra, const char *file, int line,
                                         const char *func)
{
    struct cctx__timer *t = cctx__alloc(sizeof *t + extra);
    if (cctx__unlikely(!t))
        return NULL;
    /* Not attach(): nothing above it can end it. */
    init_cancelable(&t->c, KIND_TIMER, parent, file, line, func);
    t->deadline = CCTX_NO_DEADLINE;
    atomic_init(&t->slot, 0);
    t->shard = cctx__timer_shard();
    t->code = 0;
    t->flags = 0;
    t->msg = NULL;
    return t;
}

cctx_t *cctx_with_deadline_cause_at(cctx_t *parent, int64_t deadline, int code, const char *msg,
                                    cctx_cancel_t **cancel, const char *file, int line,
                                    const char *func)
{
    if (cctx__unlikely(!parent))
        return refuse(EINVAL, cancel);
    return cctx__with_deadline(parent, deadline, code, msg, cancel, file, line, func);
}

cctx_t *cctx_with_timeout_cause_at(cctx_t *parent, int64_t timeout, int code, const char *msg,
                                   cctx_cancel_t **cancel, const char *file, int line,
                                   const char *func)
{
    if (cctx__unlikely(!parent))
        return refuse(EINVAL, cancel);
    return cctx__with_deadline(parent, cctx__sat_add(cctx_now(), timeout), code, msg, cancel,
                               file, line, func);
}

cctx_t *cctx_with_value_at(cctx_t *parent, const void *key, void *value,
                           void (*destroy)(void *value), const char *file, int line,
                           const char *func)
{
    if (cctx__unlikely(!parent || !key))
        return refuse(EINVAL, NULL);
    struct cctx__value *v = cctx__alloc(sizeof *v);
    if (cctx__unlikely(!v)) {
        if (destroy)
            destroy(value);
        return refuse(ENOMEM, NULL);
    }
    init_head(&v->head, KIND_VALUE, parent, file, line, func);
    v->key = key;
    v->value = value;
    v->destroy = destroy;
    /* The lookup's run (layout.h): the parent's, if it is a value context
     * whose run has room, else a run of its own. */
    const struct cctx__value *pv = (const struct cctx__value *)parent;
    uint32_t keys = cctx__key_bit(key);
    if (cctx__kind(parent) == KIND_VALUE && (pv->window & VALUE_WINDOW_LEN) < VALUE_WINDOW_MAX) {
        v->window = pv->window + 1;
        keys |= cctx__atomic_load_relaxed(&((struct cctx *)parent)->fd1);
    } else {
        v->window = (uintptr_t)parent | 1;
    }
    atomic_init(&v->head.fd1, keys);
    if (cctx__debug_on(CCTX__DEBUG_REGISTRY | CCTX__DEBUG_TRACE))
        cctx__debug_born(&v->head);
    return &v->head;
}

cctx_t *cctx_without_cancel_at(cctx_t *parent, const char *file, int line, const char *func)
{
    if (cctx__unlikely(!parent))
        return refuse(EINVAL, NULL);
    struct cctx *c = cctx__alloc(sizeof *c);
    if (cctx__unlikely(!c))
        return refuse(ENOMEM, NULL);
    init_head(c, KIND_DETACHED, parent, file, line, func);
    if (cctx__debug_on(CCTX__DEBUG_REGISTRY | CCTX__DEBUG_TRACE))
        cctx__debug_born(c);
    return c;
}

/* ---- Releasing ---------------------------------------------------------------- */

/* Whether c, a done context, is out of its source's list and out of every
 * canceller's hands. Nothing is ever linked again, so there is then nothing
 * to unlink, and no canceller can find c. An own cause (cancel.c: cancel)
 * was only written once c was out of the list and no canceller had it. A
 * cancellation that began above c took it out of the list; until that
 * cause is marked complete, a context it marked in place (cancel.c: a
 * leaf, or a link of a chain) may still be in its canceller's hands, kept
 * alive by the source's lock rather than a reference: so its release goes
 * by that lock until then. A context that canceled itself with a record is
 * still in its list, and so may be one whose cause has no site (no record
 * could be allocated): that cause names its origin too, so that origin is
 * treated as listed, as is one with a placed cause (layout.h: SLOT_PLACED),
 * which keeps its place in the list until this release. */
static inline bool out_of_lists(const struct cctx__cancelable *c)
{
    struct cctx__cause_at at = cctx__cause_at(c);
    if (at.owner == c)
        return true;
    const struct cctx *origin = cctx__cause_origin(at);
    return origin && origin != &c->head &&
           (cctx__atomic_load_acquire(cctx__cause_marking(at)) & CAUSE_MARKED);
}

/* Frees one context whose last reference is gone; returns its parent, whose
 * reference the caller now drops. */
/* Inlined by force into both callers: the ordinary release would otherwise
 * pay a call for it on every context it frees. */
static inline __attribute__((always_inline)) struct cctx *
destroy(struct cctx *c, const char *file, int line, const char *func)
{
    enum cctx__kind kind = cctx__kind(c);
    if (cctx__cancelable_kind(kind)) {
        struct cctx__cancelable *cc = (struct cctx__cancelable *)c;
        /* Nobody holds c, so no child exists (each holds a reference): only
         * after-functions can still observe its end. A done context has none
         * left (its canceller ran them, and waited for their stoppers), and
         * one that never had any needs no look (registering took a reference,
         * dropped before ours: the AFTERS bit is visible here). */
        if ((cctx__atomic_load_relaxed(&c->word) & WORD_AFTERS) &&
            !(cctx__atomic_load_acquire(&c->state) & STATE_ERR)) {
            cctx__lock(c);
            int observed = cc->children != NULL;
            cctx__unlock(c);
            if (observed)
                cctx__cancel(cc, ECANCELED, 0, NULL, file, line, func);
        }
        if (kind == KIND_TIMER) {
            struct cctx__timer *t = (struct cctx__timer *)c;
            cctx__timer_disarm(t);
            /* Its after-function on its parent must not outlive it: it may
             * still be registered here (grace.c). */
            if (cctx__unlikely(t->flags & TIMER_GRACE))
                cctx__grace_freeing(t);
        }
        bool done = cctx__atomic_load_acquire(&c->state) & STATE_ERR;
        /* Out of the list, c needs no unlinking: the source's lock, a shared
         * line in a wide tree and a cold one in a deep chain, is not taken. */
        if ((cctx__atomic_load_relaxed(&c->word) & WORD_LINKED) && !(done && out_of_lists(cc))) {
            struct cctx__cancelable *src = cctx__source(c->parent);
            if (cctx__unlikely(!src)) /* its source became a tombstone */
                cctx__misuse("releasing a context whose parent was already released "
                             "(the parent was over-released)", c->parent, file, line, func, NULL);
            cctx__lock(&src->head);
            cctx__node_unlink(&cc->link);
            cctx__unlock(&src->head);
        }
        int fd = cctx__done_fd_of(cctx__atomic_load_acquire(&c->fd1));
        if (fd >= 0)
            cctx__os_event_close(fd);
        if (done)
            cctx__cause_free(cctx__cause_at(cc).record, c);
    } else if (kind == KIND_VALUE) {
        struct cctx__value *v = (struct cctx__value *)c;
        if (v->destroy)
            v->destroy(v->value);
    }
    struct cctx *parent = c->parent;
    uint32_t w = cctx__atomic_load_acquire(&c->word);
    if (cctx__likely(!(w & (WORD_NAMED | WORD_WATCHED)))) {
        cctx__free(c);
        return parent;
    }
    /* Before the name goes: a trace records it. */
    bool keep = (w & WORD_WATCHED) && cctx__debug_dying(c, parent, file, line, func);
    if (w & WORD_NAMED)
        cctx__name_forget(c);
    if (!keep)
        cctx__free(c);
    return parent;
}

struct cctx *cctx__release_quietly(struct cctx *c, const char *file, int line, const char *func)
{
    while (cctx__kind(c) != KIND_ROOT) {
        uint32_t r = cctx__atomic_load_relaxed(&c->refs);
        /* Signed: with REFS_WAITED set it goes back (a waiter needs a wake). */
        while ((int32_t)r > 1)
            if (cctx__atomic_cas_weak_acq_rel(&c->refs, &r, r - 1))
                return NULL;
        /* The last reference. Freeing c is quiet when it is done (no
         * after-function left to run), in no source's list (no lock to
         * take), seen by no debugging switch and no grace context (whose
         * free may wait for its after-functions: grace.c); anything else
         * goes back. */
        uint32_t w = cctx__atomic_load_relaxed(&c->word);
        enum cctx__kind k = cctx__kind(c);
        if (r != 1 || !(cctx__cancelable_kind(k) || k == KIND_BORN_DONE) ||
            (w & (WORD_LINKED | WORD_NAMED | WORD_WATCHED)) ||
            (k == KIND_TIMER && (((struct cctx__timer *)c)->flags & TIMER_GRACE)) ||
            !(cctx__atomic_load_acquire(&c->state) & STATE_ERR) ||
            !cctx__atomic_cas_strong_acq_rel(&c->refs, &r, 0))
            return c;
        c = destroy(c, file, line, func);
    }
    return NULL;
}

/* Whether the caller holds the only reference to c and no other thread can
 * find c to take one: c is in no list (a canceller's, a dump's or a
 * cctx_cancel_and_wait walk's way in: never linked, or taken out), in no
 * timer heap, has no after-function (whose stopper may still look at it)
 * and is seen by no debugging switch. Then nothing but the caller can change
 * the count, and the last release needs no read-modify-write: a load that
 * sees 1 (acquire, pairing with the other holders' acq_rel releases) is
 * enough. The order of the loads is what makes that true:
 *  - A linked context must be seen taken out of its list *before* the count
 *    is read. A canceller that finds it in the list either takes its
 *    reference (under the source's lock) before it marks it: seen marked
 *    (acquire), that reference is in the count, or was dropped before it
 *    reads 1. Or it marks it in place and never touches it again once
 *    the cause is complete, which out_of_lists waits to see. Read the
 *    other way round, a 1 read before the canceller found c, then c seen
 *    marked, would free c under the canceller's feet.
 *  - The flags are read *after* the count: whoever set NAMED, WATCHED or
 *    AFTERS held a reference then, and let go of it before the count read 1.
 * The kind and LINKED never change once c is published. */
static inline bool unfindable_last(struct cctx *c)
{
    uint32_t w = cctx__atomic_load_relaxed(&c->word);
    enum cctx__kind k = (enum cctx__kind)((w >> WORD_KIND_SHIFT) & 0x7);
    if (!(k == KIND_CANCEL || k == KIND_BORN_DONE || k == KIND_VALUE || k == KIND_DETACHED))
        return false;
    if (w & WORD_LINKED) { /* only a cancel context among these kinds */
        if (!(cctx__atomic_load_acquire(&c->state) & STATE_ERR))
            return false;
        if (!out_of_lists((struct cctx__cancelable *)c))
            return false;
    }
    if (cctx__atomic_load_acquire(&c->refs) != 1)
        return false;
    return !(cctx__atomic_load_relaxed(&c->word) & (WORD_NAMED | WORD_WATCHED | WORD_AFTERS));
}

void cctx_release_at(cctx_t *ctx, const char *file, int line, const char *func)
{
    while (ctx && cctx__kind(ctx) != KIND_ROOT) {
        if (unfindable_last(ctx)) {
            /* The parent is most likely the next to go (a chain frees
             * itself in this loop): its line is fetched while this one is
             * freed. A prefetch reads nothing and cannot fault. */
            __builtin_prefetch(ctx->parent);
            cctx__prefetch_around(ctx);
            /* 0, as the read-modify-write would have left it: a later
             * (mistaken) release or cctx__try_ref sees the context gone. */
            cctx__atomic_store_relaxed(&ctx->refs, 0);
            ctx = destroy(ctx, file, line, func);
            continue;
        }
        /* acq_rel rather than release plus an acquire fence on the last
         * drop: the same instruction on x86, and ThreadSanitizer, which does
         * not model fences, then sees every other holder's accesses happen
         * before the free. */
        uint32_t old = cctx__atomic_fetch_sub_acq_rel(&ctx->refs, 1);
        /* Signed, so that REFS_WAITED (a waiter in cctx_cancel_and_wait)
         * sends the release to the slow path with no test more here. */
        if (cctx__likely((int32_t)old > 1))
            return;
        if (cctx__unlikely(old != 1)) {
            if (old & REFS_WAITED) {
                cctx__release_waited(ctx, old, file, line, func);
                return;
            }
            cctx__misuse("cctx_release of a context with no reference left (over-release)",
                         ctx, file, line, func, NULL);
        }
        ctx = destroy(ctx, file, line, func);
    }
}
