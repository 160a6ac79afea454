/* SPDX-License-Identifier: MIT */
/*
 * Waiting: the done descriptor, cctx_wait, cctx_sleep and cctx_wait_any.
 *
 * Threads wait on the source context's state word (a futex on Linux): a
 * waiter sets WAITERS before sleeping, and the canceller wakes the word only
 * when that bit is set, so a cancellation nobody waits for makes no system
 * call. The done descriptor is made on first request and published under
 * the context's lock, which the canceller holds while it writes the error
 * and reads the descriptor, so whichever comes second signals it.
 *
 * Under the fake clock a finite wait is a wait without limit on a private
 * child context whose deadline is the wait's end, which
 * cctx_fake_clock_advance fires like any other.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <string.h>

#include <cctx/testing.h>

#include "internal.h"

/* ---- The done descriptor ----------------------------------------------------- */

/* Made once per process, published with a compare-and-swap, never under a
 * lock: a child of fork() taken while another thread made it must not
 * inherit a lock held for ever. Of two made at once, the loser is closed.
 * Kept as a descriptor word (layout.h), so that a child of fork() makes its
 * own rather than hand out the parent's number: the child may have closed
 * it and opened a file of its own under it (as it may for a context's:
 * fork.c), which its pollers would take for this one. The parent's is left
 * open there, as a context's is. */
static _Atomic uint32_t never_fd1;

static int never_done_fd(void)
{
    uint32_t w = cctx__atomic_load_acquire(&never_fd1);
    for (;;) {
        int fd = cctx__done_fd_of(w);
        if (fd >= 0)
            return fd;
        cctx__fork_watch(); /* forks bump the generation from now on */
        int mine = cctx__os_event_new();
        if (mine < 0)
            return -1;
        if ((uint32_t)mine >= FD1_MASK) {
            cctx__os_event_close(mine);
            errno = EMFILE;
            return -1;
        }
        if (cctx__atomic_cas_strong_acq_rel(&never_fd1, &w, cctx__fd1_make(mine)))
            return mine;
        cctx__os_event_close(mine); /* w: the winner's, read again above */
    }
}

int cctx_done_fd(cctx_t *ctx)
{
    if (cctx__unlikely(!ctx)) {
        errno = EINVAL;
        return -1;
    }
    cctx__child_restart();
    struct cctx__cancelable *src = cctx__source(ctx);
    if (!src) {
        cctx__check_tombstone(ctx, "cctx_done_fd", NULL, 0, NULL);
        return never_done_fd();
    }
    uint32_t fd1 = cctx__atomic_load_acquire(&src->head.fd1);
    int fd = cctx__done_fd_of(fd1);
    if (fd >= 0)
        return fd;
    /* None yet, or one made before a fork, which this process must not use
     * (the descriptor word: layout.h): make ours. */
    cctx__fork_watch();
    fd = cctx__os_event_new();
    if (fd < 0)
        return -1;
    if ((uint32_t)fd >= FD1_MASK) {
        cctx__os_event_close(fd);
        errno = EMFILE;
        return -1;
    }
    /* Published under the context's lock, which its cancellation holds while
     * it writes the error and reads the descriptor (cancel.c: cctx__mark): either
     * it sees ours and signals it, or we see its error and signal it. */
    cctx__lock(&src->head);
    int theirs = cctx__done_fd_of(cctx__atomic_load_relaxed(&src->head.fd1));
    if (theirs < 0)
        cctx__atomic_store_release(&src->head.fd1, cctx__fd1_make(fd));
    bool done = cctx__atomic_load_relaxed(&src->head.state) & STATE_ERR;
    cctx__unlock(&src->head);
    if (theirs >= 0) {
        cctx__os_event_close(fd);
        return theirs;
    }
    if (done)
        cctx__os_event_signal(fd);
    return fd;
}

/* ---- Blocking ----------------------------------------------------------------- */

/* Waits on c's state until it is done or the real clock reaches deadline. */
static int wait_state(struct cctx__cancelable *c, int64_t deadline)
{
    for (;;) {
        uint32_t s = cctx__atomic_load_acquire(&c->head.state);
        if (s & STATE_ERR)
            return (int)(s & STATE_ERR);
        if (!(s & STATE_WAITERS)) {
            /* Under the lock, which the cancellation holds while it reads
             * the word and stores its error (cancel.c: cctx__mark): it sees the
             * bit and wakes us, or we see its error. */
            cctx__lock(&c->head);
            s = cctx__atomic_load_relaxed(&c->head.state);
            if (!(s & STATE_ERR))
                cctx__atomic_store_relaxed(&c->head.state, s |= STATE_WAITERS);
            cctx__unlock(&c->head);
            if (s & STATE_ERR)
                return (int)(s & STATE_ERR);
        }
        int64_t until = cctx__child_slice(deadline);
        if (cctx__os_wait(&c->head.state, s, until) == ETIMEDOUT) {
            if (until == deadline)
                return (int)(cctx__atomic_load_acquire(&c->head.state) & STATE_ERR);
            cctx__child_restart(); /* a deadline of c's may need the timer */
        }
    }
}

/* A word nobody ever wakes: what waiting on a context that never ends is. */
static _Atomic uint32_t never_word;

static int wait_never(int64_t deadline)
{
    while (cctx__os_wait(&never_word, 0, deadline) != ETIMEDOUT)
        ;
    return 0;
}

int cctx_wait_at(const cctx_t *ctx, int64_t timeout, const char *file, int line,
                 const char *func)
{
    if (cctx__unlikely(!ctx))
        return EINVAL;
    /* The polling check (Go's select with a default) is one load. */
    uint32_t s = cctx__atomic_load_acquire(&ctx->state);
    if (cctx__likely(!(s & STATE_FORWARD)) && ((s & STATE_ERR) || timeout == 0))
        return (int)(s & STATE_ERR);
    struct cctx__cancelable *src = cctx__source(ctx);
    if (src) {
        int err = (int)(cctx__atomic_load_acquire(&src->head.state) & STATE_ERR);
        if (err || timeout == 0)
            return err;
    } else {
        cctx__check_tombstone(ctx, "cctx_wait", file, line, func);
        if (timeout == 0)
            return 0;
    }
    cctx__child_restart();
    if (timeout >= 0 && cctx__atomic_load_relaxed(&cctx__fake_on)) {
        cctx_t *until = cctx_with_timeout_cause_at(src ? &src->head : cctx_background(),
                                                   timeout, 0, NULL, NULL, file, line, func);
        if (!until)
            return ENOMEM;
        wait_state(cctx__source(until), CCTX_NO_DEADLINE);
        cctx_release_at(until, file, line, func);
        return cctx_err(ctx);
    }
    int64_t deadline = timeout < 0 ? CCTX_NO_DEADLINE : cctx__sat_add(cctx__os_now(), timeout);
    return src ? wait_state(src, deadline) : wait_never(deadline);
}

int cctx_sleep_at(cctx_t *ctx, int64_t duration, const char *file, int line, const char *func)
{
    if (cctx__unlikely(!ctx))
        return EINVAL;
    cctx__check_live(ctx, "cctx_sleep", file, line, func); /* not as cctx_wait */
    if (duration <= 0)
        return cctx_err(ctx);
    return cctx_wait_at(ctx, duration, file, line, func);
}

/* ---- Waiting for any of several ------------------------------------------------ */

struct any_waiter {
    _Atomic uint32_t fired;
};

static void any_fired(void *arg)
{
    struct any_waiter *w = arg;
    cctx__atomic_store_release(&w->fired, 1);
    cctx__os_wake(&w->fired);
}

static int lowest_done(cctx_t *const *ctxs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (cctx_err(ctxs[i]))
            return (int)i;
    return -1;
}

int cctx_wait_any_at(cctx_t *const *ctxs, size_t n, int64_t timeout, const char *file,
                     int line, const char *func)
{
    if (cctx__unlikely(!ctxs || n == 0 || n > INT32_MAX)) {
        errno = EINVAL;
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (cctx__unlikely(!ctxs[i])) {
            errno = EINVAL;
            return -1;
        }
    }
    int found = lowest_done(ctxs, n);
    if (found >= 0 || timeout == 0) {
        if (found < 0)
            errno = ETIMEDOUT;
        return found;
    }
    cctx__child_restart();

    /* One after-function per context wakes this thread; the timeout is one
     * more context under the fake clock. */
    int fake = timeout > 0 && cctx__atomic_load_relaxed(&cctx__fake_on);
    size_t regs_n = n + (size_t)fake;
    cctx_after_t local[8];
    cctx_after_t *regs = regs_n <= 8 ? local : calloc(regs_n, sizeof *regs);
    cctx_t *until = NULL;
    if (fake)
        until = cctx_with_timeout_cause_at(cctx_background(), timeout, 0, NULL, NULL, file, line,
                                           func);
    if (!regs || (fake && !until)) {
        if (regs != local)
            free(regs);
        cctx_release_at(until, file, line, func);
        errno = ENOMEM;
        return -1;
    }
    struct any_waiter w = {0};
    for (size_t i = 0; i < n; i++)
        cctx__after_func_first(ctxs[i], &regs[i], any_fired, &w, file, line, func);
    if (fake)
        cctx__after_func_first(until, &regs[n], any_fired, &w, file, line, func);

    int64_t deadline = timeout < 0 || fake ? CCTX_NO_DEADLINE
                                           : cctx__sat_add(cctx__os_now(), timeout);
    while (!cctx__atomic_load_acquire(&w.fired)) {
        int64_t slice_end = cctx__child_slice(deadline);
        if (cctx__os_wait(&w.fired, 0, slice_end) == ETIMEDOUT) {
            if (slice_end == deadline)
                break;
            cctx__child_restart();
        }
    }

    for (size_t i = 0; i < regs_n; i++)
        cctx_after_stop(&regs[i]);
    if (regs != local)
        free(regs);
    cctx_release_at(until, file, line, func);
    found = lowest_done(ctxs, n);
    if (found < 0)
        errno = ETIMEDOUT;
    return found;
}
