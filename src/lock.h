/* SPDX-License-Identifier: MIT */
/*
 * The lock protocol: the word lock every context carries, the order in which
 * the library's locks nest, and how a reference keeps a context alive.
 *
 * Lock order. A thread holds at most one context lock at a time, except a
 * canceller that, holding a source's lock, tries (never waits for) the lock of
 * a child in its list, a leaf or the next link of a chain, to mark it in place
 * (cancel.c). A run queue's lock (after.c) is taken inside a context lock (a
 * canceller queues the registrations it takes) or alone, never around one. The
 * timer's locks (a shard lock, the wake lock: timer.c) and the runners' pool
 * lock (runner.c) are never taken while a context lock is held, and no context
 * lock is taken under them. The name table's lock (names.c) nests inside
 * nothing. The debugging switches' locks (the registry's shard locks and the
 * quarantine lock: debug.c; the rings' locks and the file's: trace.c) are taken
 * with no context lock held, and hold no other lock inside them, except that a
 * trace flush takes each ring's lock inside the file's.
 *
 * Every write of a live context's word (the lock, the flags) once another
 * thread can reach the context is a read-modify-write, never a plain store:
 * the unlock's release then reaches whoever reads the word after, through
 * any flag set in between, which cctx__timer_disarm_if_ended relies on.
 *
 * Besides deriving, cancelling, registering and releasing, a context's lock
 * is taken by cctx_done_fd (to publish the descriptor) and by a waiter that
 * sets STATE_WAITERS (wait.c), each with no other lock held: they are the
 * state word's other writers, so the cancellation can store the error
 * rather than OR it in. A fork that lands while another thread holds the
 * lock leaves it held in the child, which then blocks on that context there
 * (it already did for a cancel, a derivation or a registration).
 *
 * Lifetimes. Every derived context holds a reference on its parent; a
 * context's list links (children, after-functions) are guarded by its lock;
 * a node found in a list is kept alive by taking a reference on it under the
 * list owner's lock (try_ref fails once its count reached zero, and then its
 * releaser, who must take the same lock to unlink it, owns it), or, for a
 * child marked in place, by that lock itself: its release takes the lock
 * until the cause reads complete (tree.c: out_of_lists).
 */
#ifndef CCTX_LOCK_H
#define CCTX_LOCK_H

#include "layout.h"
#include "os.h"

/* tree.c: the futex lock in bits 0-1 of a word (the flags word: layout.h). */
void cctx__word_lock_slow(_Atomic uint32_t *word);
static inline void cctx__word_lock(_Atomic uint32_t *word)
{
    uint32_t w = cctx__atomic_load_relaxed(word);
    if (cctx__likely(!(w & WORD_LOCK)) && cctx__atomic_cas_weak_acquire(word, &w, w | 1))
        return;
    cctx__word_lock_slow(word);
}
static inline bool cctx__word_try_lock(_Atomic uint32_t *word)
{
    uint32_t w = cctx__atomic_load_relaxed(word);
    while (!(w & WORD_LOCK))
        if (cctx__atomic_cas_weak_acquire(word, &w, w | 1))
            return true;
    return false;
}
static inline void cctx__word_unlock(_Atomic uint32_t *word)
{
    uint32_t old = cctx__atomic_fetch_and_release(word, ~WORD_LOCK);
    if (cctx__unlikely(old & 2))
        cctx__os_wake(word);
}
/* Unlocks and sets a flag in the same instruction (a compare-and-swap,
 * which keeps the flags that others set meanwhile without the lock). */
static inline void cctx__unlock_setting(struct cctx *c, uint32_t flag)
{
    uint32_t old = cctx__atomic_load_relaxed(&c->word);
    while (!cctx__atomic_cas_weak_acq_rel(&c->word, &old, (old & ~WORD_LOCK) | flag))
        ;
    if (cctx__unlikely(old & 2))
        cctx__os_wake(&c->word);
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

#endif
