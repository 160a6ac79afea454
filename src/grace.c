/* SPDX-License-Identifier: MIT */
/*
 * Grace contexts: cleanup that must outlive a cancellation, but not forever.
 *
 * A grace context is a timer context under its parent that is in no
 * source's list, so nothing above it can cancel it, while its parent chain
 * (and so every value) is the parent's. It is born with no deadline. An
 * after-function on the parent ("parent_ended") gives it one when the parent
 * ends: the parent's cause.when + grace, and arms it on the process timer
 * like any deadline, so that the fake clock fires it to the nanosecond and
 * the real clock as promptly as any other deadline.
 *
 * Its own allocation holds the timer, the cause record its firing uses
 * (cctx__timer_cause: the firing can never fail to allocate and lose the
 * message) and the message buffer, written once, by parent_ended, before the
 * timer is armed (the shard lock orders it before the firing that reads it)
 * or before it cancels the context itself.
 *
 * The two after-functions' registrations are in a block of their own
 * (struct grace_ctl), because a deadline's after-functions run on a runner
 * thread that may still be running one when the context is freed.
 * parent_ended (on the parent) holds no reference on the grace context
 * between the two (that would keep it alive as long as the parent, the
 * background for instance), so it must be stopped, or have returned,
 * before the grace context is freed; then it only ever sees it alive, and
 * takes a reference while it works (the timer may fire and free it the
 * moment it is armed). Two calls stop it:
 *  - grace_ended, on the grace context itself, as soon as it ends, so that
 *    an ended grace context leaves nothing registered on its parent;
 *  - cctx__grace_freeing, which the release that frees the grace context
 *    calls first (tree.c). grace_ended cannot be relied on for that: a
 *    release on a runner that runs a job (a firing's, a dump's) hands the
 *    after-functions of what it cancels to other runners and frees at once,
 *    so grace_ended may run after the free.
 * Whichever stops it first (true) drops its share for it; a stop that finds
 * it running waits for it to return (after.c), unless it runs below the
 * caller on the same thread. The block has three owners: each
 * after-function, and the grace context itself. The last to finish frees
 * it, having first stopped its own registration if it is one of the
 * after-functions (a stop from inside the function it stops), so that the
 * runner touches the freed storage no more; when the context's share is the
 * last, cctx__grace_freeing's stops have already waited for both.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "testhooks.h"

/* Long enough for any cause the library writes and most a program does;
 * a longer parent message is cut (at a UTF-8 boundary: see fit_utf8). */
#define GRACE_MSG 512

/* After the timer and its cause record, in the context's allocation. */
struct grace {
    int64_t grace;
    struct grace_ctl *ctl; /* the context's share of it: cctx__grace_freeing */
    char msg[GRACE_MSG];
};

struct grace_ctl {
    cctx_after_t on_parent; /* parent_ended, on the parent */
    cctx_after_t on_end;    /* grace_ended, on the grace context */
    struct cctx__timer *t;  /* no reference: see the top of the file */
    _Atomic int owners;     /* 3, or 2 without on_parent */
    bool on_parent_used;
};

static struct grace *grace_of(struct cctx__timer *t)
{
    return (struct grace *)((struct cctx__cause *)(t + 1) + 1);
}

int64_t cctx__grace_period(const struct cctx__timer *t)
{
    /* Written before the context is published, never after. */
    return grace_of((struct cctx__timer *)t)->grace;
}

/* The time the grace counts from once t's parent has ended with cause why.
 * A cause that could not be recorded has no time: the grace then counts
 * from now, not from the clock's start. Asked of the cause itself, as its
 * `when` of 0 cannot tell: the fake clock may stand at 0 when the parent
 * ends, and move on before parent_ended runs. */
static int64_t grace_base(const struct cctx__timer *t, const cctx_cause_t *why)
{
    const struct cctx__cancelable *src = cctx__source(t->c.head.parent);
    bool timeless = src && cctx__cause_at(src).bare != NULL;
    return timeless ? cctx_now() : why->when;
}

bool cctx__grace_due(const struct cctx__timer *t, int64_t *deadline)
{
    /* The parent's error is loaded with acquire ordering (cctx_cause), so
     * its cause is complete: the deadline is the one parent_ended, which
     * may not have run yet, stores. */
    cctx_cause_t why;
    if (cctx_cause(t->c.head.parent, &why) == 0)
        return false;
    *deadline = cctx__sat_add(grace_base(t, &why), cctx__grace_period(t));
    return true;
}

_Atomic(cctx__plain_hook_fn) cctx__grace_parent_ended_hook;

#define SITE_OF(t) (t)->c.head.file, cctx__line(&(t)->c.head), (t)->c.head.func

/* Drops one owner's share; the last frees the block, after stopping its own
 * registration `mine` (which is running: the stop only tells the runner not
 * to touch it again). */
static void ctl_put(struct grace_ctl *x, cctx_after_t *mine)
{
    /* acq_rel: whatever the other owner did with the block happens before
     * the free. */
    if (cctx__atomic_fetch_sub_acq_rel(&x->owners, 1) != 1)
        return;
    if (mine)
        cctx_after_stop_at(mine, __FILE__, __LINE__, __func__);
    cctx__free(x);
}

/* Cuts a string that snprintf may have truncated back to a whole UTF-8
 * character: a last character whose lead byte announces more bytes than
 * follow it. One that filled the buffer exactly is whole, and stays. */
static void fit_utf8(char *s, size_t n)
{
    size_t len = strnlen(s, n);
    if (len + 1 < n)
        return;
    size_t i = len;
    while (i > 0 && ((unsigned char)s[i - 1] & 0xc0) == 0x80)
        i--;
    if (i == 0)
        return;
    unsigned char lead = (unsigned char)s[i - 1];
    size_t need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
    if (len - (i - 1) < need)
        s[i - 1] = '\0';
}

/* Gives t its deadline, `grace` after `base`, and the message naming why.
 * `in_after`: called by parent_ended, an after-function of the parent's end,
 * so that ending t now joins the drain that runs it (cctx__cancel_joining):
 * a chain of grace contexts with no grace, each under the one before, ends
 * in a loop, not in a recursion as deep as the chain. */
static void end_after(struct cctx__timer *t, int64_t base, const char *parent_msg, bool in_after)
{
    struct grace *x = grace_of(t);
    char d[32];
    cctx__format_duration(d, sizeof d, x->grace);
    snprintf(x->msg, sizeof x->msg, "grace period of %s after: %s", d,
             parent_msg ? parent_msg : "context canceled");
    fit_utf8(x->msg, sizeof x->msg);
    if (cctx__atomic_load_acquire(&t->c.head.state) & STATE_ERR)
        return; /* its own cancel came first */
    int64_t deadline = cctx__sat_add(base, x->grace);
    cctx__plain_store_relaxed(&t->deadline, deadline);
    /* Due already: ending now is on time (on a runner without a place,
     * where parent_ended may run, the cancel hands the user's
     * after-functions of t to runners with places). Out of memory for the
     * timer's heap: ending now is what keeps the promise that it ends
     * (early rather than never). Due already on the fake clock
     * (CCTX__TIMER_DUE): ending now is on time. */
    if (deadline <= cctx_now() || cctx__timer_arm(t) != 0) {
        if (in_after)
            cctx__cancel_joining(&t->c, ETIMEDOUT, 0, t->msg, SITE_OF(t));
        else
            cctx__cancel(&t->c, ETIMEDOUT, 0, t->msg, SITE_OF(t));
        return;
    }
    /* Its own cancel may have come between the look above and the arm. */
    cctx__timer_disarm_if_ended(t);
}

static void parent_ended(void *arg)
{
    struct grace_ctl *x = arg;
    struct cctx__timer *t = x->t;
    cctx__plain_hook_fn hook = cctx__atomic_load_relaxed(&cctx__grace_parent_ended_hook);
    if (cctx__unlikely(hook != NULL))
        hook();
    /* Alive (grace_ended waits for us), but perhaps on its way out. */
    if (cctx__try_ref(&t->c.head)) {
        cctx_cause_t why;
        cctx_cause(t->c.head.parent, &why);
        end_after(t, grace_base(t, &why), why.msg, true);
        cctx_release_at(&t->c.head, SITE_OF(t));
    }
    ctl_put(x, &x->on_parent);
}

static void grace_ended(void *arg)
{
    struct grace_ctl *x = arg;
    /* true: parent_ended will never run, so its share is ours to drop.
     * false: it ran (and dropped its share), or it runs on this thread,
     * below us, and drops it when it returns. */
    if (x->on_parent_used && cctx_after_stop_at(&x->on_parent, __FILE__, __LINE__, __func__))
        ctl_put(x, NULL);
    ctl_put(x, &x->on_end);
}

_Atomic(cctx__plain_hook_fn) cctx__grace_freeing_hook;

/* Before t's block is freed, on whichever thread lets go of it last (never
 * the timer thread: cctx__release_quietly leaves a grace context to a
 * runner, as the stops here may wait). Once it returns, neither
 * after-function will run or is running, except one below the caller on
 * its own thread, or one that waits there to stop the other: those drop
 * their shares when they return, and never touch t again (parent_ended
 * let go of its reference on t before t could be freed). */
void cctx__grace_freeing(struct cctx__timer *t)
{
    cctx__plain_hook_fn hook = cctx__atomic_load_relaxed(&cctx__grace_freeing_hook);
    if (cctx__unlikely(hook != NULL))
        hook();
    struct grace_ctl *x = grace_of(t)->ctl;
    if (x->on_parent_used && cctx_after_stop_at(&x->on_parent, __FILE__, __LINE__, __func__))
        ctl_put(x, NULL);
    if (cctx_after_stop_at(&x->on_end, __FILE__, __LINE__, __func__))
        ctl_put(x, NULL);
    ctl_put(x, NULL);
}

size_t cctx__test_grace_block_size(void)
{
    return sizeof(struct cctx__timer) + sizeof(struct cctx__cause) + sizeof(struct grace);
}

cctx_t *cctx_with_grace_at(cctx_t *parent, int64_t grace, cctx_cancel_t **cancel,
                           const char *file, int line, const char *func)
{
    if (cancel)
        *cancel = NULL;
    if (cctx__unlikely(!parent)) {
        errno = EINVAL;
        return NULL;
    }
    cctx__check_live(parent, "cctx_with_grace", file, line, func);
    struct cctx__timer *t = cctx__timer_unlinked(
        parent, sizeof(struct cctx__cause) + sizeof(struct grace), file, line, func);
    if (cctx__unlikely(!t)) {
        errno = ENOMEM;
        return NULL;
    }
    struct grace_ctl *x = cctx__alloc(sizeof *x);
    if (cctx__unlikely(!x)) {
        cctx_release_at(&t->c.head, file, line, func); /* quiet: nothing registered */
        errno = ENOMEM;
        return NULL;
    }
    memset(x, 0, sizeof *x);
    x->t = t;
    struct grace *g = grace_of(t);
    g->grace = grace;
    g->ctl = x;
    g->msg[0] = '\0';
    t->flags = TIMER_GRACE;
    t->msg = g->msg; /* non-NULL: its firing uses the record after t */
    if (cctx__debug_on(CCTX__DEBUG_REGISTRY | CCTX__DEBUG_TRACE))
        cctx__debug_born(&t->c.head);
    cctx_cause_t why;
    bool over = cctx_cause(parent, &why) != 0;
    atomic_init(&x->owners, over ? 2 : 3);
    x->on_parent_used = !over;
    cctx__after_func_first(&t->c.head, &x->on_end, grace_ended, x, file, line, func);
    if (over)
        end_after(t, cctx_now(), why.msg, false); /* already over: grace from now */
    else
        cctx__after_func_first(parent, &x->on_parent, parent_ended, x, file, line, func);
    if (cancel)
        *cancel = (cctx_cancel_t *)t;
    return &t->c.head;
}
