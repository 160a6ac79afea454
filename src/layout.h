/* SPDX-License-Identifier: MIT */
/*
 * The objects: how contexts, causes, list nodes and after-function
 * registrations are laid out, and the bits of their words.
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
 * BORN_DONE is what cctx_with_cancel makes under a source that has already
 * ended: nothing can happen to it any more (no child, registration or
 * cancellation of its own), so it is the head alone, its state holds the
 * source's error from birth, and like a value context it defers to its
 * source for the rest (cause, done descriptor, after-functions).
 *
 * The state word (head.state): bits 0-7 hold the error (0, ECANCELED or
 * ETIMEDOUT); bit 30 (FORWARD) marks a value context, whose error is its
 * source's; bit 31 (WAITERS) says a thread may sleep on the word in
 * cctx__os_wait. Once the context is published, both the error (written
 * once) and WAITERS are written under the context's lock, with plain
 * stores: no read-modify-write of this word is needed.
 *
 * The flags word (head.word):
 *   bits 0-1  the context's lock: 0 free, 1 held, 2 held with sleepers
 *   bits 2-4  the kind                     set before the context is
 *   bit 5     LINKED: put in its source's   returned, never changed
 *             list when made
 *   bit 6     NAMED: a name is in the name table (names.c)
 *   bit 7     AFTERS: an after-function was ever registered on it
 *   bit 8     WATCHED: the debugging switches saw it born (debug.c), so
 *             they want to see it die; tested with NAMED in one go
 *   bits 9-29 the line of the creation site (a larger line is stored as
 *             2^21-1)      set before the context is returned, never changed
 *   bit 30    PARENT: a child was ever put in its list (set under its lock,
 *             by the unlock: cctx__unlock_setting), so that a canceller
 *             can tell a leaf without taking its lock (cancel.c)
 *   bit 31    unused
 * Packing the line here, and sharing one slot between a cancelable context's
 * list and its cause, is what keeps it at 72 bytes with a pointer to the
 * deadline that governs it.
 */
#ifndef CCTX_LAYOUT_H
#define CCTX_LAYOUT_H

#include <cctx.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "atomics.h"

/* The layout is made for 8-byte pointers: a cause kept in a context's link
 * and slot, a time in a slot's high bits, the sizes promised below. */
_Static_assert(sizeof(void *) == 8 && UINTPTR_MAX > UINT32_MAX,
               "cctx needs a 64-bit target (8-byte pointers)");

/* The struct of type `type` whose `member` is at ptr. */
#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

#define cctx__likely(x) __builtin_expect(!!(x), 1)
#define cctx__unlikely(x) __builtin_expect(!!(x), 0)

/* FREED: a released context kept as a tombstone by CCTX_DEBUG=checks (debug.c).
 * BORN_DONE: a cancel context made under an ended source (above). */
enum cctx__kind {
    KIND_ROOT = 1,
    KIND_CANCEL,
    KIND_TIMER,
    KIND_VALUE,
    KIND_DETACHED,
    KIND_FREED,
    KIND_BORN_DONE
};
_Static_assert(KIND_BORN_DONE <= 7, "the kind has three bits of the flags word");

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
#define WORD_LINE_MAX ((1u << 21) - 1)
#define WORD_PARENT (1u << 30)

struct cctx {
    /* At least 8-byte aligned everywhere (as malloc's blocks are), so that a
     * pointer to a context has 3 free low bits (struct cctx__value). */
    _Alignas(8) _Atomic uint32_t state;
    _Atomic uint32_t fd1; /* cancelable: the done descriptor, see FD1_BITS;
                           * value: its run's key summary (struct cctx__value) */
    struct cctx *parent;  /* holds a reference; NULL for the roots */
    const char *file;     /* creation site, with the line in word */
    const char *func;
    /* Last, so that a cancelable context's list comes right after them
     * (see HOT_FOR_CHILDREN below). */
    _Atomic uint32_t refs; /* the count, and REFS_WAITED (bit 31) */
    _Atomic uint32_t word;
};

/* The ABI rule of <cctx.h>'s inline cctx_err and cctx_wait(ctx, 0): the
 * state word comes first, and when no bit above the error is set, the word
 * is cctx_err's answer. Every other bit sends the caller to the library. */
_Static_assert(offsetof(struct cctx, state) == 0, "the state word must stay first (ABI)");
_Static_assert(STATE_ERR == 0xffu && !(STATE_FORWARD & STATE_ERR) && !(STATE_WAITERS & STATE_ERR),
               "bits 0-7 of the state word are cctx_err's answer (ABI)");

/* Bit 31 of head.refs: a thread in cctx_cancel_and_wait sleeps on the
 * word until the count falls to 1 (quiesce.c). With it set, the count reads
 * as negative, so the release that compares the old count with 1 (signed)
 * takes its slow path without a test more on its fast one. */
#define REFS_WAITED (1u << 31)
static inline uint32_t cctx__refs(const struct cctx *c)
{
    return cctx__atomic_load_relaxed(&((struct cctx *)c)->refs) & ~REFS_WAITED;
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
    uint32_t gen = cctx__atomic_load_relaxed(&cctx__fork_generation);
    return (gen % FD1_GENERATIONS) << FD1_BITS | (uint32_t)(fd + 1);
}
/* The descriptor a word names in this process, or -1. */
static inline int cctx__done_fd_of(uint32_t fd1)
{
    if (!fd1) /* most contexts never make one: no more to look at */
        return -1;
    uint32_t gen = cctx__atomic_load_relaxed(&cctx__fork_generation);
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
    /* 8-byte aligned everywhere (embedded records too), so that the low 3
     * bits of its address are free for the tags of a slot (SLOT_OWN). */
    _Alignas(8) struct cctx *origin;
    /* bits 0-1  the marking (CAUSE_MARKED, CAUSE_WAITED: cancel.c), the
     *           only bits that change once the record is published
     * bit 2     CAUSE_TIMEDOUT: the error is ETIMEDOUT, else ECANCELED
     * bit 3     CAUSE_EMBEDDED: part of its origin's allocation, not freed alone
     * bits 4-31 the line of the site (a larger line is stored as 2^28-1) */
    _Atomic uint32_t word;
    int32_t code;
    const char *msg, *file, *func;
    int64_t when;
};
/* 48 bytes: with it, a cancel context made with a handle (72 + 48) fits
 * glibc's 128-byte chunk. */
_Static_assert(sizeof(struct cctx__cause) == 48, "the cause record grew");

#define CAUSE_MARKED 1u /* every descendant it reached is marked */
#define CAUSE_WAITED 2u /* a thread sleeps on the word until then */
#define CAUSE_TIMEDOUT 4u
#define CAUSE_EMBEDDED 8u
#define CAUSE_LINE_SHIFT 4
#define CAUSE_LINE_MAX ((1u << 28) - 1)

/* The fixed bits of a cause's word (its marking starts at 0). */
static inline uint32_t cctx__cause_word(int err, bool embedded, int line)
{
    uint32_t l = line < 0 ? 0 : (uint32_t)line > CAUSE_LINE_MAX ? CAUSE_LINE_MAX : (uint32_t)line;
    return (err == ETIMEDOUT ? CAUSE_TIMEDOUT : 0) | (embedded ? CAUSE_EMBEDDED : 0) |
           l << CAUSE_LINE_SHIFT;
}

static inline int cctx__cause_err(const struct cctx__cause *c)
{
    return cctx__atomic_load_relaxed(&((struct cctx__cause *)c)->word) & CAUSE_TIMEDOUT ? ETIMEDOUT
                                                                                        : ECANCELED;
}

static inline int cctx__cause_line(const struct cctx__cause *c)
{
    return (int)(cctx__atomic_load_relaxed(&((struct cctx__cause *)c)->word) >> CAUSE_LINE_SHIFT);
}

static inline bool cctx__cause_embedded(const struct cctx__cause *c)
{
    return cctx__atomic_load_relaxed(&((struct cctx__cause *)c)->word) & CAUSE_EMBEDDED;
}

struct cctx__timer;

/* A cause kept in its origin ("own"), with no record of its own: a cancel
 * context canceled through its handle by the cancel macros, once it is in
 * no list (never linked, or taken out of its source's list by that cancel),
 * keeps the site record's address and the time where its link was, and the
 * marking word and the code in its slot (struct cctx__cancelable).
 * An origin whose record cannot be allocated keeps a cause without a site
 * (OWN_NO_SITE) in its slot alone, whatever its kind: its link may still
 * be in its source's list, so nothing reads it as an own_site. Its word is
 * the marking word of that cancellation, as a record's would be; what it
 * reports (cause.c): no site, code or time, and the default message. */
struct cctx__own_site {
    const struct cctx__site *site;
    int64_t when;
};
struct cctx__own_word {
    /* `word` overlaps the low-order bits of the slot read as a pointer. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    int32_t code;
    _Atomic uint32_t word;
#else
    _Atomic uint32_t word; /* SLOT_OWN | the marking (CAUSE_MARKED, CAUSE_WAITED)
                            * | OWN_NO_SITE | OWN_TIMEDOUT */
    int32_t code;
#endif
};

/* The low bits of a done context's slot. A record and a context are at
 * least 8-byte aligned, so a pointer's low 3 bits are free:
 *   SLOT_OWN in own.word    the cause is this context's own
 *   SLOT_REF_OWN in cause   cause is (origin | 1): that context's own cause,
 *                           or its placed cause (told by the origin's slot:
 *                           only cctx__cause_fill needs to tell them apart)
 *   SLOT_REF_BARE in cause  cause is (origin | 2): that context's own cause
 *                           without a site (OWN_NO_SITE)
 *   SLOT_PLACED in cause    cause is (when << 3 | 3): a placed cause, below
 *   none                    cause points at a struct cctx__cause
 * own.word is read first, as a 32-bit word, since its marking bits change
 * while others read it; a slot without SLOT_OWN never changes once
 * published, and only then is it read as a pointer. With SLOT_OWN, two
 * more fixed bits of own.word: OWN_NO_SITE, the record could not be
 * allocated and own_site was not written; OWN_TIMEDOUT, its error is
 * ETIMEDOUT (else ECANCELED). */
#define SLOT_OWN 4u
#define SLOT_REF_OWN ((uintptr_t)1)
#define SLOT_REF_BARE ((uintptr_t)2)
#define SLOT_PLACED ((uintptr_t)3)
#define SLOT_TAGS ((uintptr_t)3)
#define OWN_NO_SITE 8u
#define OWN_TIMEDOUT 16u

/* A placed cause: a leaf canceled through its handle by the cancel macros,
 * with no code, while still in its source's list, keeps its cause where it
 * stands, without taking its source's lock: the time in its slot (shifted
 * past the tags, SLOT_OWN clear), the site's address in deadline_from. The
 * link stays in the list until the release, which unlinks it, so the
 * source's line is touched at the birth and at the release, not at the
 * cancel too: two threads deriving from one parent pass that line once per
 * child, not twice. A leaf reaches nothing, so its marking is complete as
 * it is published, and the slot's low word, its marking word as for an own
 * cause, says so: SLOT_PLACED's bits are CAUSE_MARKED and CAUSE_WAITED, and
 * nobody writes a complete marking word (a waiter only sets CAUSE_WAITED on
 * one not yet complete). The time takes the slot's 61 high bits. */
#define PLACED_WHEN_MIN (INT64_MIN / 8)
#define PLACED_WHEN_MAX (INT64_MAX / 8)

struct cctx__cancelable {
    struct cctx head;
    /* A context's list only matters while it is active, its cause only once
     * it is done, and the canceller swaps one for the other under the lock:
     * once done, a context takes no more children (they are born done) nor
     * registrations (they run at once). So whoever reads `children` holds
     * the lock and has seen no error; whoever reads the cause has seen the
     * error (acquire), which was written after the cause (release). */
    union {
        struct cctx__node *children; /* children and after-functions */
        _Atomic uintptr_t cause;     /* see SLOT_OWN */
        struct cctx__own_word own;
    };
    union {
        struct cctx__node link;         /* in the source's list */
        struct cctx__own_site own_site; /* once in none, with an own cause */
    };
    /* The nearest timer context at or above this one whose deadline governs
     * it (NULL: none), so that deadline look-ups and derivations never walk a
     * long chain of cancelable contexts. A cancel context that ended with a
     * placed cause (SLOT_PLACED) keeps its cause's site here instead, with
     * bit 0 set (DEADLINE_FROM_SITE): its deadline is then its parent's.
     * Read with cctx__deadline_of, relaxed, as that store may race with it. */
    uintptr_t deadline_from;
};
#define DEADLINE_FROM_SITE ((uintptr_t)1)

/* What a child's birth, cancel and release write in its parent: the count,
 * the lock (in word) and the list. They share one 16-byte-aligned block, and
 * malloc's blocks are 16-byte aligned, so they are always in one cache
 * line: threads deriving from one parent pass one line between them, not
 * two. (CommonParentCancel took 813 to 902 ns, against 944 to
 * 1025 in the same interleaved rounds with the list 56 bytes in, where it
 * shared the count's line only when the block began a line: one case in
 * four.) The state word, which children only read, may lie in another
 * line. */
#define HOT_FOR_CHILDREN offsetof(struct cctx__cancelable, head.refs)
_Static_assert(HOT_FOR_CHILDREN % 16 == 0 &&
                   offsetof(struct cctx__cancelable, head.word) < HOT_FOR_CHILDREN + 16 &&
                   offsetof(struct cctx__cancelable, children) + sizeof(void *) <=
                       HOT_FOR_CHILDREN + 16,
               "a parent's count, lock and list must share a 16-byte block");

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
    return cctx__plain_load_relaxed(&t->deadline);
}

static inline struct cctx__cause *cctx__timer_cause(const struct cctx__timer *t)
{
    return t->code || t->msg ? (struct cctx__cause *)(t + 1) : NULL;
}

/* Reading a done context's cause (c's error seen, acquire). */
static inline bool cctx__cause_is_own(const struct cctx__cancelable *c)
{
    return cctx__atomic_load_acquire(&((struct cctx__cancelable *)c)->own.word) & SLOT_OWN;
}
/* Where c's cause is: in `owner` (an own cause: c itself, or the context c's
 * slot refers to, whose own cause may also be placed), in `bare` (the same,
 * without a site: OWN_NO_SITE), in `placed` (c's own placed cause: c stays
 * in its source's list until its release, unless that source's cancellation
 * took it out) or in `record`; exactly one is set. One look at each word of
 * the slot. */
struct cctx__cause_at {
    struct cctx__cancelable *owner;
    struct cctx__cause *record;
    struct cctx__cancelable *bare;
    struct cctx__cancelable *placed;
};
static inline struct cctx__cause_at cctx__cause_at(const struct cctx__cancelable *c)
{
    uint32_t w = cctx__atomic_load_acquire(&((struct cctx__cancelable *)c)->own.word);
    if (w & SLOT_OWN) {
        if (cctx__unlikely(w & OWN_NO_SITE))
            return (struct cctx__cause_at){.bare = (struct cctx__cancelable *)c};
        return (struct cctx__cause_at){.owner = (struct cctx__cancelable *)c};
    }
    uintptr_t r = cctx__atomic_load_acquire(&((struct cctx__cancelable *)c)->cause);
    if (r & SLOT_TAGS) {
        /* SLOT_REF_OWN first, with one test: the common case of a tree's
         * descendants. The other two tags both have SLOT_REF_BARE's bit. */
        struct cctx__cancelable *o = (struct cctx__cancelable *)(r & ~SLOT_TAGS);
        if (cctx__likely(!(r & SLOT_REF_BARE)))
            return (struct cctx__cause_at){.owner = o};
        if ((r & SLOT_TAGS) == SLOT_PLACED)
            return (struct cctx__cause_at){.placed = (struct cctx__cancelable *)c};
        return (struct cctx__cause_at){.bare = o};
    }
    return (struct cctx__cause_at){.record = (struct cctx__cause *)r};
}
/* The context whose own cause (with its site) c's is, or NULL when c's slot
 * holds a record, refers to a cause without a site, or is c's own placed
 * cause. A context referred to may itself hold a placed cause, its link
 * still a list's node: only cctx__cause_fill reads what it keeps. */
static inline struct cctx__cancelable *cctx__cause_owner(const struct cctx__cancelable *c)
{
    return cctx__cause_at(c).owner;
}
/* What a context that c's cancellation reaches, or a child born done under
 * c, puts in its slot. */
static inline uintptr_t cctx__cause_ref(const struct cctx__cancelable *c)
{
    struct cctx__cause_at at = cctx__cause_at(c);
    return at.owner    ? (uintptr_t)at.owner | SLOT_REF_OWN
           : at.placed ? (uintptr_t)at.placed | SLOT_REF_OWN
           : at.bare   ? (uintptr_t)at.bare | SLOT_REF_BARE
                       : (uintptr_t)at.record;
}
/* The word whose CAUSE_MARKED says the cause has marked all it reached:
 * each cancellation has its own. */
_Static_assert((SLOT_PLACED & (CAUSE_MARKED | CAUSE_WAITED)) == (CAUSE_MARKED | CAUSE_WAITED) &&
                   !(SLOT_PLACED & SLOT_OWN),
               "a placed cause's slot must read as a complete marking, and as no own cause");
static inline _Atomic uint32_t *cctx__cause_marking(struct cctx__cause_at at)
{
    return at.owner    ? &at.owner->own.word
           : at.bare   ? &at.bare->own.word
           : at.placed ? &at.placed->own.word /* complete (SLOT_PLACED) */
                       : &at.record->word;
}
/* The context where the cancellation started. A cause without a site names
 * its origin too, so the origin, which may still be in its source's list,
 * is not taken for one out of every list (tree.c: out_of_lists). */
static inline const struct cctx *cctx__cause_origin(struct cctx__cause_at at)
{
    return at.owner    ? &at.owner->head
           : at.bare   ? &at.bare->head
           : at.placed ? &at.placed->head
                       : at.record->origin;
}

/* A lookup (cctx_value) walks up the chain one context at a time, except
 * that it jumps over runs of value contexts whose keys cannot hold the one
 * it looks for. Each value context heads a run (its "window"): itself and up
 * to VALUE_WINDOW_MAX - 1 value contexts directly above it. `window` points
 * at the first context past the run, with the run's length in its low bits
 * (contexts are at least 8-byte aligned), and head.fd1, which only
 * cancelable contexts use for a descriptor, holds the run's summary: one bit
 * per key (cctx__key_bit), OR-ed. A key whose bit is clear is in no context
 * of the run. Both are fixed at birth: a child whose parent's run is not
 * full joins it (the parent's summary plus its own bit, the same end), else
 * it starts one of its own. A chain of 100 values is crossed in about 15
 * jumps instead of 100 steps, in the malloc slack of the 64-byte struct. */
struct cctx__value {
    struct cctx head;
    const void *key;
    void *value;
    void (*destroy)(void *value);
    uintptr_t window; /* the context past the run | the run's length */
};

#define VALUE_WINDOW_MAX 7u
#define VALUE_WINDOW_LEN 7u /* the low bits of `window` */
_Static_assert(_Alignof(struct cctx) >= 8 && _Alignof(max_align_t) >= 8,
               "the run's length needs 3 free bits in a context's address");

/* The summary bit of a key: Fibonacci hashing of its address, which
 * spreads even keys one byte apart (the elements of a char array). */
static inline uint32_t cctx__key_bit(const void *key)
{
    return 1u << ((uint64_t)(uintptr_t)key * UINT64_C(0x9E3779B97F4A7C15) >> 59);
}

/* cctx_after_t's storage seen from inside. */
struct cctx__after {
    /* In the owner's list while REGISTERED. While QUEUED it is in a run
     * queue instead: link.next threads the queue and link.pprev holds the
     * queue's address (tagged NODE_AFTER), so a stopper can find it. */
    struct cctx__node link;
    void (*fn)(void *arg);
    void *arg;
    struct cctx__cancelable *owner;
    _Atomic uint32_t state; /* AFTER_*: the state machine is after.c's */
    int line;               /* where it was registered (traces, misuse reports) */
    const char *file, *func;
};

static inline enum cctx__kind cctx__kind(const struct cctx *c)
{
    return (enum cctx__kind)(
        (cctx__atomic_load_relaxed(&((struct cctx *)c)->word) >> WORD_KIND_SHIFT) & 0x7);
}

static inline int cctx__line(const struct cctx *c)
{
    return (int)((cctx__atomic_load_relaxed(&((struct cctx *)c)->word) >> WORD_LINE_SHIFT) &
                 WORD_LINE_MAX);
}

static inline int cctx__cancelable_kind(enum cctx__kind k)
{
    return k == KIND_CANCEL || k == KIND_TIMER;
}

/* The nearest cancelable context at or above c, or NULL when nothing above c
 * can ever end it. Parents never change, so the answer never does either.
 * (A born-done context's source is its parent's, which has ended.) */
static inline struct cctx__cancelable *cctx__source(const struct cctx *c)
{
    for (;;) {
        enum cctx__kind k = cctx__kind(c);
        if (cctx__cancelable_kind(k))
            return (struct cctx__cancelable *)c;
        if (k != KIND_VALUE && k != KIND_BORN_DONE)
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
        case KIND_CANCEL: {
            uintptr_t d =
                cctx__plain_load_relaxed(&((const struct cctx__cancelable *)c)->deadline_from);
            if (cctx__likely(!(d & DEADLINE_FROM_SITE)))
                return (const struct cctx__timer *)d;
            c = c->parent; /* a placed cause holds the field: the parent's is its */
            continue;
        }
        case KIND_VALUE:
        case KIND_BORN_DONE:
            c = c->parent;
            continue;
        default:
            return NULL;
        }
    }
}

#endif
