/* SPDX-License-Identifier: MIT */
/*
 * Internal layout of contexts, shared by the library's source files.
 *
 * Kinds. Every context starts with the same 40-byte head (with the done
 * descriptor, used by the cancelable kinds). Cancelable contexts (CANCEL,
 * TIMER) add a place in their source's list, a list of their own children and
 * after-functions (or, once done, their cause) and their governing deadline. VALUE contexts
 * add a key and a value and are in no list: cancellation reaches their
 * descendants through the nearest cancelable ancestor (the "source"), to which
 * those descendants attach directly, as Go's propagateCancel does.
 * ROOT (background, todo) and DETACHED (without_cancel) never end. FREED is
 * a released context that CCTX_DEBUG=checks keeps as a tombstone (debug.c).
 *
 * The state word (head.state): bits 0-7 hold the error (0, ECANCELED or
 * ETIMEDOUT); bit 30 (FORWARD) marks a value context, whose error is its
 * source's; bit 31 (WAITERS) says a thread may sleep on the word in
 * cctx__os_wait. The error is written once, under the context's lock.
 *
 * The flags word (head.word):
 *   bits 0-1  the context's lock: 0 free, 1 held, 2 held with sleepers
 *   bits 2-4  the kind                     set before the context is
 *   bit 5     LINKED: put in its source's   returned, never changed
 *             list when made
 *   bit 6     NAMED: a name is in the name table (dump.c)
 *   bit 7     AFTERS: an after-function was ever registered on it
 *   bit 8     WATCHED: the debugging switches saw it born (debug.c), so
 *             they want to see it die; tested with NAMED in one go
 *   bits 9-31 the line of the creation site (a larger line is stored as
 *             2^23-1)      set before the context is returned, never changed
 * Packing the line here, and sharing one slot between a cancelable context's
 * list and its cause, is what keeps it at 72 bytes with a pointer to the
 * deadline that governs it.
 *
 * Lock order. A thread holds at most one context lock at a time. A run
 * queue's lock (after.c) is taken inside a context lock (a canceller queues
 * the registrations it takes) or alone, never around one. The timer's locks
 * (a shard lock, the wake lock: timer.c) and the runners' pool lock
 * (runner.c) are never taken while a context lock is held, and no context
 * lock is taken under them. The name
 * table's lock nests inside nothing. The debugging switches' locks (the
 * registry's shard locks and the quarantine lock: debug.c; the rings' locks
 * and the file's: trace.c) are taken with no context lock held, and hold no
 * other lock inside them, except that a trace flush takes each ring's lock
 * inside the file's.
 *
 * Lifetimes. Every derived context holds a reference on its parent; a
 * context's list links (children, after-functions) are guarded by its lock;
 * a node found in a list is kept alive by taking a reference on it under the
 * list owner's lock (try_ref fails once its count reached zero, and then its
 * releaser, who must take the same lock to unlink it, owns it).
 */
#ifndef CCTX_INTERNAL_H
#define CCTX_INTERNAL_H

#include <cctx.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "os.h"

/* The struct of type `type` whose `member` is at ptr. */
#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

#define cctx__likely(x) __builtin_expect(!!(x), 1)
#define cctx__unlikely(x) __builtin_expect(!!(x), 0)

/* FREED: a released context kept as a tombstone by CCTX_DEBUG=checks (debug.c). */
enum cctx__kind { KIND_ROOT = 1, KIND_CANCEL, KIND_TIMER, KIND_VALUE, KIND_DETACHED, KIND_FREED };

#define STATE_ERR 0xffu
#define STATE_FORWARD (1u << 30)
#define STATE_WAITERS (1u << 31)

#define WORD_LOCK 3u
#define WORD_KIND_SHIFT 2
#define WORD_LINKED (1u << 5)
#define WORD_NAMED (1u << 6)
#define WORD_AFTERS (1u << 7)
#define WORD_WATCHED (1u << 8)
#define WORD_LINE_SHIFT 9
#define WORD_LINE_MAX ((1u << 23) - 1)

struct cctx {
    _Atomic uint32_t state;
    _Atomic uint32_t refs; /* the count, and REFS_WAITED (bit 31) */
    _Atomic uint32_t word;
    _Atomic uint32_t fd1; /* cancelable: the done descriptor, see FD1_BITS */
    struct cctx *parent;  /* holds a reference; NULL for the roots */
    const char *file;     /* creation site, with the line in word */
    const char *func;
};

/* Bit 31 of head.refs: a thread in cctx_cancel_and_wait sleeps on the
 * word until the count falls to 1 (quiesce.c). With it set, the count reads
 * as negative, so the release that compares the old count with 1 (signed)
 * takes its slow path without a test more on its fast one. */
#define REFS_WAITED (1u << 31)
static inline uint32_t cctx__refs(const struct cctx *c)
{
    return atomic_load_explicit(&((struct cctx *)c)->refs, memory_order_relaxed) & ~REFS_WAITED;
}

/* The done descriptor word (head.fd1): bits 0-20 hold the descriptor + 1
 * (0: none yet), bits 21-31 the fork generation of the process that made it
 * (fork.c). A child of fork() shares its parent's descriptors, so one made
 * in another generation is neither signalled nor closed nor handed out: the
 * child makes its own. */
#define FD1_BITS 21
#define FD1_MASK ((1u << FD1_BITS) - 1)
#define FD1_GENERATIONS (1u << (32 - FD1_BITS))
extern _Atomic uint32_t cctx__fork_generation;
static inline uint32_t cctx__fd1_make(int fd)
{
    uint32_t gen = atomic_load_explicit(&cctx__fork_generation, memory_order_relaxed);
    return (gen % FD1_GENERATIONS) << FD1_BITS | (uint32_t)(fd + 1);
}
/* The descriptor a word names in this process, or -1. */
static inline int cctx__done_fd_of(uint32_t fd1)
{
    if (!fd1) /* most contexts never make one: no more to look at */
        return -1;
    uint32_t gen = atomic_load_explicit(&cctx__fork_generation, memory_order_relaxed);
    if (fd1 >> FD1_BITS != gen % FD1_GENERATIONS)
        return -1;
    return (int)(fd1 & FD1_MASK) - 1;
}

/* A list node. pprev points at the pointer that points at this node; its bit 0
 * tags after-function registrations; pprev == 0 means "in no list". */
struct cctx__node {
    struct cctx__node *next;
    uintptr_t pprev;
};
#define NODE_AFTER ((uintptr_t)1)

/* Why a context ended. Owned by the context where the cancellation started
 * (origin), freed with it; descendants point at their origin's record, and
 * each holds its origin alive through the chain of parent references. */
struct cctx__cause {
    struct cctx *origin;     /* NULL for the static out-of-memory records */
    _Atomic uint32_t marked; /* 1 once every descendant it reached is marked (cancel.c) */
    int16_t err;             /* ECANCELED or ETIMEDOUT */
    int16_t embedded;        /* part of its origin's allocation, not freed alone */
    int32_t code, line;
    const char *msg, *file, *func;
    int64_t when;
};
/* 56 bytes: glibc serves it from a 64-byte chunk. */
_Static_assert(sizeof(struct cctx__cause) == 56, "the cause record grew");

struct cctx__timer;

struct cctx__cancelable {
    struct cctx head;
    struct cctx__node link; /* in the source's list */
    /* A context's list only matters while it is active, its cause only once
     * it is done, and the canceller swaps one for the other under the lock:
     * once done, a context takes no more children (they are born done) nor
     * registrations (they run at once). So whoever reads `children` holds
     * the lock and has seen no error; whoever reads `cause` has seen the
     * error (acquire), which was written after the cause (release). */
    union {
        struct cctx__node *children; /* children and after-functions */
        struct cctx__cause *_Atomic cause;
    };
    /* The nearest timer context at or above this one whose deadline governs
     * it (NULL: none), so that deadline look-ups and derivations never walk a
     * long chain of cancelable contexts. */
    const struct cctx__timer *deadline_from;
};

struct cctx__timer {
    struct cctx__cancelable c;
    /* Fixed before the context is published, except in a grace context
     * (grace.c), which is born with CCTX_NO_DEADLINE and gets its deadline
     * once when its parent ends: so it is read with cctx__deadline_load. */
    int64_t deadline;
    _Atomic uint32_t slot; /* heap index + 1; 0: not armed. Written under the shard lock */
    uint32_t shard;        /* the heap shard it is armed in (timer.c) */
    int32_t code;          /* the cause given by the _cause variants */
    uint32_t flags;        /* TIMER_GRACE; in what was padding */
    const char *msg;       /* NULL, or a copy stored after the record below */
    /* With a code or a message, the struct is followed by the cause record
     * its firing uses (cctx__timer_cause), then by the message. */
};

#define TIMER_GRACE 1u /* a grace context: no deadline until its parent ends */

/* Relaxed: a plain load on the machines we build for, and a grace
 * context's one later store (also relaxed) is then no data race. */
static inline int64_t cctx__deadline_load(const struct cctx__timer *t)
{
    return __atomic_load_n(&t->deadline, __ATOMIC_RELAXED);
}

static inline struct cctx__cause *cctx__timer_cause(const struct cctx__timer *t)
{
    return t->code || t->msg ? (struct cctx__cause *)(t + 1) : NULL;
}

struct cctx__value {
    struct cctx head;
    const void *key;
    void *value;
    void (*destroy)(void *value);
};

/* cctx_after_t's storage seen from inside. */
struct cctx__after {
    /* In the owner's list while REGISTERED. While QUEUED it is in a run
     * queue instead: link.next threads the queue and link.pprev holds the
     * queue's address (tagged NODE_AFTER), so a stopper can find it. */
    struct cctx__node link;
    void (*fn)(void *arg);
    void *arg;
    struct cctx__cancelable *owner;
    _Atomic uint32_t state;
    int line;               /* where it was registered (traces, misuse reports) */
    const char *file, *func;
};
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
    AFTER_RUNNING,
    AFTER_DONE,
};
#define AFTER_STATE 0xffu
#define AFTER_WAITERS (1u << 31)

static inline enum cctx__kind cctx__kind(const struct cctx *c)
{
    return (enum cctx__kind)((atomic_load_explicit(&((struct cctx *)c)->word,
                                                   memory_order_relaxed) >>
                              WORD_KIND_SHIFT) & 0x7);
}

static inline int cctx__line(const struct cctx *c)
{
    return (int)(atomic_load_explicit(&((struct cctx *)c)->word, memory_order_relaxed) >>
                 WORD_LINE_SHIFT);
}

static inline int cctx__cancelable_kind(enum cctx__kind k)
{
    return k == KIND_CANCEL || k == KIND_TIMER;
}

/* The nearest cancelable context at or above c, or NULL when nothing above c
 * can ever end it. Parents never change, so the answer never does either. */
static inline struct cctx__cancelable *cctx__source(const struct cctx *c)
{
    for (;;) {
        enum cctx__kind k = cctx__kind(c);
        if (cctx__cancelable_kind(k))
            return (struct cctx__cancelable *)c;
        if (k != KIND_VALUE)
            return NULL;
        c = c->parent;
    }
}

/* The timer context whose deadline governs c, or NULL when c has none. */
static inline const struct cctx__timer *cctx__deadline_of(const struct cctx *c)
{
    for (;;) {
        switch (cctx__kind(c)) {
        case KIND_TIMER:
            return (const struct cctx__timer *)c;
        case KIND_CANCEL:
            return ((const struct cctx__cancelable *)c)->deadline_from;
        case KIND_VALUE:
            c = c->parent;
            continue;
        default:
            return NULL;
        }
    }
}

/* tree.c: the futex lock in bits 0-1 of a word (see the flags word above). */
void cctx__word_lock_slow(_Atomic uint32_t *word);
static inline void cctx__word_lock(_Atomic uint32_t *word)
{
    uint32_t w = atomic_load_explicit(word, memory_order_relaxed);
    if (cctx__likely(!(w & WORD_LOCK)) &&
        atomic_compare_exchange_weak_explicit(word, &w, w | 1, memory_order_acquire,
                                              memory_order_relaxed))
        return;
    cctx__word_lock_slow(word);
}
static inline bool cctx__word_try_lock(_Atomic uint32_t *word)
{
    uint32_t w = atomic_load_explicit(word, memory_order_relaxed);
    while (!(w & WORD_LOCK))
        if (atomic_compare_exchange_weak_explicit(word, &w, w | 1, memory_order_acquire,
                                                  memory_order_relaxed))
            return true;
    return false;
}
static inline void cctx__word_unlock(_Atomic uint32_t *word)
{
    uint32_t old = atomic_fetch_and_explicit(word, ~WORD_LOCK, memory_order_release);
    if (cctx__unlikely(old & 2))
        cctx__os_wake(word);
}
static inline void cctx__lock(struct cctx *c)
{
    cctx__word_lock(&c->word);
}
static inline bool cctx__try_lock(struct cctx *c)
{
    return cctx__word_try_lock(&c->word);
}
static inline void cctx__unlock(struct cctx *c)
{
    cctx__word_unlock(&c->word);
}
int cctx__try_ref(struct cctx *c);
/* Drops a reference on c without running user code or waiting for a lock:
 * only when it is not the last one, or when freeing c (and then its parent,
 * and so on) needs neither. Returns NULL when done, else the context whose
 * reference the caller still holds and must release the ordinary way. */
struct cctx *cctx__release_quietly(struct cctx *c, const char *file, int line, const char *func);
void cctx__node_push(struct cctx__node **head, struct cctx__node *n, uintptr_t tag);
void cctx__node_unlink(struct cctx__node *n);
cctx_t *cctx__with_deadline(cctx_t *parent, int64_t deadline, int code, const char *msg,
                            cctx_cancel_t **cancel, const char *file, int line,
                            const char *func);
/* A timer context under parent in no source's list, with no deadline yet
 * and `extra` bytes after it; not yet shown to the debugging switches. */
struct cctx__timer *cctx__timer_unlinked(cctx_t *parent, size_t extra, const char *file, int line,
                                         const char *func);
/* The slow path of a release that found REFS_WAITED set (quiesce.c). */
void cctx__release_waited(struct cctx *c, uint32_t old, const char *file, int line,
                          const char *func);

/* cancel.c */
void cctx__cancel(struct cctx__cancelable *c, int err, int code, const char *msg,
                  const char *file, int line, const char *func);
/* Waits until the marking phase that ended c has reached every descendant. */
void cctx__wait_marked(struct cctx__cancelable *c);
struct cctx__cause *cctx__cause_new(struct cctx *origin, int err, int code, const char *msg,
                                    const char *file, int line, const char *func);
void cctx__cause_free(struct cctx__cause *cause, struct cctx *origin);
/* Fires t's deadline from the timer thread, which holds a reference on t and
 * gives it up here (see cancel.c for what the thread will not do). */
void cctx__timer_fire(struct cctx__timer *t);

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
/* Called by a canceller that moved a from REGISTERED to QUEUING: appends it
 * to q and publishes QUEUED. */
void cctx__run_queue_add(struct cctx__run_queue *q, struct cctx__after *a);
/* Runs q's first registration that no stopper claimed; false if none. */
bool cctx__run_queue_run_one(struct cctx__run_queue *q);
/* Runs every registration of q, then waits until stoppers that claimed the
 * others have let go of q, so that q may go out of scope. */
void cctx__run_queue_drain(struct cctx__run_queue *q);
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
};
/* n registrations were added to cctx__runner_queue: a runner for each. */
void cctx__runner_notify(unsigned n);
/* Hands job to a runner; false if no runner thread exists or can be made
 * (the caller then does the work itself). */
bool cctx__runner_submit(struct cctx__job *job);

/* timer.c */
/* The shard this thread arms into; set in a timer before it is published,
 * since a canceller may disarm it as soon as it is attached. */
uint32_t cctx__timer_shard(void);
int cctx__timer_arm(struct cctx__timer *t);
void cctx__timer_disarm(struct cctx__timer *t);

/* fork.c: one set of fork handlers for the core, registered on first need
 * (a library thread started, a done descriptor made). A child starts no
 * thread in them: cctx__child_restart starts what the child needs on its
 * first call that could wait for one. */
void cctx__fork_watch(void);
void cctx__child_restart_slow(void);
extern _Atomic int cctx__child_stale; /* set in a child until it restarts */
static inline void cctx__child_restart(void)
{
    if (cctx__unlikely(atomic_load_explicit(&cctx__child_stale, memory_order_relaxed)))
        cctx__child_restart_slow();
}
/* The parts' side of fork: prepare takes their locks, parent releases them,
 * child makes them fresh (and starts nothing). */
void cctx__timer_fork(int phase);
void cctx__runner_fork(int phase);
enum { FORK_PREPARE, FORK_PARENT, FORK_CHILD };
/* Starts the timer thread if deadlines are armed, runners if work is queued. */
int cctx__timer_start(void);
void cctx__runner_restart(void);

/* clock.c */
extern _Atomic int cctx__fake_on;
extern _Atomic int64_t cctx__fake_now;
void cctx__timer_set_fake(int on, int64_t now, int64_t advance);
int64_t cctx__sat_add(int64_t a, int64_t b);
int64_t cctx__sat_sub(int64_t a, int64_t b);

/* dump.c: the name table, and one line of the text dump */
void cctx__name_forget(struct cctx *c);
void cctx__dump_text_line(FILE *out, struct cctx *c, struct cctx *lister, int depth,
                          unsigned held, size_t children);

/* quiesce.c: contexts cctx_cancel_and_wait watches without holding them.
 * A watched context has WORD_WATCHED set; its death (cctx__debug_dying)
 * forgets it while cctx__watching says some waiter watches. */
extern _Atomic unsigned cctx__watching;
void cctx__watch_forget(struct cctx *c);

/* dump_html.c: the page around a JSON dump (CCTX_DUMP_HTML). begin writes
 * everything up to the opening of the data element, given the dump time;
 * end closes it and writes the viewer. */
void cctx__html_begin(FILE *out, int64_t now);
void cctx__html_end(FILE *out);

/* debug.c: the switches (CCTX_DEBUG, CCTX_TRACE), read once before main. */
enum {
    CCTX__DEBUG_REGISTRY = 1u << 0, /* every live context is in the registry  */
    CCTX__DEBUG_LEAKS = 1u << 1,    /* report the live ones at exit            */
    CCTX__DEBUG_STRICT = 1u << 2,   /* ... and then exit with status 1         */
    CCTX__DEBUG_CHECKS = 1u << 3,   /* tombstones; misuse aborts with the site */
    CCTX__DEBUG_TRACE = 1u << 4,    /* trace.c records events                  */
    CCTX__DEBUG_LAGGY = 1u << 5,    /* laggy.c reports contexts held too long  */
    CCTX__DEBUG_INSPECT = 1u << 6,  /* inspect.c serves the tree on a socket   */
};
#define CCTX__LEAK_EXIT_STATUS 1
extern _Atomic unsigned cctx__debug;
#define cctx__debug_on(bits) \
    cctx__unlikely(atomic_load_explicit(&cctx__debug, memory_order_relaxed) & (bits))
/* Turns switches on (the test hooks call it before making any context). */
void cctx__debug_enable(unsigned bits);
/* A context was made / is being freed (its last reference is gone). dying
 * returns true when it kept c as a tombstone, which the caller must then not
 * free. */
void cctx__debug_born(struct cctx *c);
bool cctx__debug_dying(struct cctx *c, struct cctx *parent, const char *file, int line,
                       const char *func);
/* Every registered live context, each with a reference the caller drops;
 * ENOTSUP when the registry is off, ENOMEM. */
struct cctx__registered {
    struct cctx *ctx;
    uint64_t seq; /* creation order */
};
int cctx__registry_snapshot(struct cctx__registered **out, size_t *n);
/* Calls fn on every registered live context under its shard lock, with a
 * byte of the entry the switches may use (laggy: reported). fn takes no
 * lock, and takes a reference only with cctx__try_ref (dropping one there
 * could free a context, which takes the shard lock). */
void cctx__registry_visit(void (*fn)(struct cctx *c, uint8_t *mark, void *arg), void *arg);
/* Sets c's mark; returns what it was. */
bool cctx__registry_mark(const struct cctx *c);

/* laggy.c, inspect.c: the threads of two switches, started before main. */
void cctx__laggy_start(int64_t after);
void cctx__inspect_start(void);
/* Reports a misuse of the API (with c's creation and release sites when
 * known) and aborts. Calls that record no site (file NULL) pass their return
 * address as `caller`, which is reported as object+offset. */
_Noreturn void cctx__misuse(const char *what, const struct cctx *c, const char *file, int line,
                            const char *func, const void *caller);
void cctx__check_live_slow(const struct cctx *c, const char *what, const char *file, int line,
                           const char *func, const void *caller);
#define CCTX__CALLER __builtin_return_address(0)
/* A tombstone has no source, no deadline and no parent, so each call tests
 * for one only on the path such contexts take anyway (no source found, end
 * of the chain): with the switch off that path never meets one, and the
 * common paths pay nothing. */
#define cctx__check_tombstone(c, what, file, line, func)                             \
    do {                                                                              \
        if (cctx__unlikely(cctx__kind(c) == KIND_FREED))                              \
            cctx__check_live_slow((c), (what), (file), (line), (func), CCTX__CALLER); \
    } while (0)
/* With checks on, a touch of a tombstone is reported; else nothing. */
#define cctx__check_live(c, what, file, line, func)                                  \
    do {                                                                              \
        if (cctx__debug_on(CCTX__DEBUG_CHECKS))                                       \
            cctx__check_live_slow((c), (what), (file), (line), (func), CCTX__CALLER); \
    } while (0)

/* trace.c: CCTX_TRACE. */
int cctx__trace_start(const char *path);
void cctx__trace_born(const struct cctx *c);
void cctx__trace_freed(const struct cctx *c, const struct cctx *parent, const char *file,
                       int line, const char *func);
/* A cancellation that starts at c with cause, and each context it reaches
 * (begin returns a token that the others take). */
uint64_t cctx__trace_cancel_begin(const struct cctx *c, const struct cctx__cause *cause);
void cctx__trace_reached(const struct cctx *c, uint64_t begin);
void cctx__trace_cancel_end(uint64_t begin);
/* +1 when a cancellation starts, -1 when its last event is recorded; the
 * flush at exit waits (a little) for the count to reach 0. */
void cctx__trace_busy(int delta);
/* A cancellation counted by one thread goes on on another: each moves its
 * own share (-1 on the giver, +1 on the taker) while the total stays. */
void cctx__trace_busy_handover(int delta);
void cctx__trace_drain(void);
/* An after-function starts (a: its registration) or ends (a: NULL). */
void cctx__trace_after(const struct cctx__after *a, int begin);

/* Allocation, with the test hooks of testhooks.h. */
void *cctx__alloc(size_t size);
void cctx__free(void *p);


#endif
