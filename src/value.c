/* SPDX-License-Identifier: MIT */
/*
 * Reading a context: its error, cause, deadline and values.
 *
 * All of it is safe at any time, before, during and after cancellation: the
 * error is written once (release) after the cause (so an acquire load of the
 * error makes the cause visible), and deadlines, keys and values never
 * change after the context is published.
 */
#include "internal.h"

/* In parentheses: <cctx.h> makes cctx_err a macro for its inline fast path. */
int(cctx_err)(const cctx_t *ctx)
{
    if (cctx__unlikely(!ctx))
        return EINVAL;
    uint32_t s = cctx__atomic_load_acquire(&ctx->state);
    if (cctx__likely(!(s & STATE_FORWARD)))
        return (int)(s & STATE_ERR);
    const struct cctx__cancelable *src = cctx__source(ctx);
    if (src)
        return (int)(cctx__atomic_load_acquire(&src->head.state) & STATE_ERR);
    cctx__check_tombstone(ctx, "cctx_err", NULL, 0, NULL);
    return 0;
}

bool cctx_deadline(const cctx_t *ctx, int64_t *deadline)
{
    if (cctx__unlikely(!ctx)) {
        errno = EINVAL;
        return false;
    }
    /* A timer context's deadline is already the earliest on its chain (a
     * later one gives a plain cancelable context). */
    const struct cctx__timer *t = cctx__deadline_of(ctx);
    if (!t) {
        cctx__check_tombstone(ctx, "cctx_deadline", NULL, 0, NULL);
        return false;
    }
    int64_t d = cctx__deadline_load(t);
    /* A grace context whose parent has not ended has no deadline yet. */
    if (cctx__unlikely(d == CCTX_NO_DEADLINE) && (t->flags & TIMER_GRACE))
        return false;
    if (deadline)
        *deadline = d;
    return true;
}

bool cctx__deadline_bound(const cctx_t *ctx, int64_t *deadline, const char *what)
{
    /* A timer's deadline is the earliest of every timer above it up to the
     * nearest grace context, whose own is set only when its parent ends, so
     * it may be earlier than those of timers born under it before that. A
     * grace context whose deadline is set ends the walk: nothing above it
     * ends it sooner. One whose deadline is not set yet still ends its
     * grace after its parent does, and the parent by its own bound: the
     * walk goes on above it, adding its grace to what it finds there. A
     * without-cancel context or a root ends the walk (cctx__deadline_of
     * stops there): the end of what is above is not its end.
     *
     * The grace context's deadline is stored once, relaxed (grace.c), and
     * nothing is read through it: a relaxed load is enough. Read as not
     * set, the parent is asked whether it has ended: between its end and
     * the after-function that stores the deadline, the parent's own
     * deadline (later than its end when it was canceled) or none is not
     * the grace context's end; the one that function will store is. */
    bool any = false;
    int64_t d = CCTX_NO_DEADLINE, graces = 0;
    for (const struct cctx__timer *t = cctx__deadline_of(ctx); t;
         t = cctx__deadline_of(t->c.head.parent)) {
        int64_t td = cctx__deadline_load(t);
        bool grace = t->flags & TIMER_GRACE;
        if (grace && td == CCTX_NO_DEADLINE && !cctx__grace_due(t, &td)) {
            /* A negative grace ends it with its parent, not before. */
            int64_t g = cctx__grace_period(t);
            graces = cctx__sat_add(graces, g > 0 ? g : 0);
            continue;
        }
        td = cctx__sat_add(td, graces);
        any = true;
        d = td < d ? td : d;
        if (grace)
            break;
    }
    if (!any)
        cctx__check_tombstone(ctx, what, NULL, 0, NULL);
    else if (deadline)
        *deadline = d;
    return any;
}

int64_t cctx_remaining(const cctx_t *ctx)
{
    /* A released context is reported under this call's name, and with
     * its caller, not cctx_deadline's. */
    if (ctx)
        cctx__check_tombstone(ctx, "cctx_remaining", NULL, 0, NULL);
    int64_t d;
    if (!cctx_deadline(ctx, &d))
        return CCTX_NO_DEADLINE;
    return cctx__sat_sub(d, cctx_now());
}

/* Out of line, and reached by a tail call (so its return address is
 * cctx_value's caller), so that cctx_value needs no stack frame for a call it
 * never makes unless CCTX_DEBUG=checks is on. */
__attribute__((noinline, cold)) static void *value_of_released(const struct cctx *c)
{
    cctx__check_live_slow(c, "cctx_value", NULL, 0, NULL, CCTX__CALLER);
    return NULL;
}

void *cctx_value(const cctx_t *ctx, const void *key)
{
    if (cctx__unlikely(!ctx || !key)) {
        errno = EINVAL;
        return NULL;
    }
    /* Over a run of value contexts that cannot hold the key in one jump
     * (layout.h: struct cctx__value), else one context at a time. */
    const uint32_t bit = cctx__key_bit(key);
    for (const struct cctx *c = ctx; c;) {
        if (cctx__kind(c) == KIND_VALUE) {
            const struct cctx__value *v = (const struct cctx__value *)c;
            if (!(cctx__atomic_load_relaxed(&((struct cctx *)c)->fd1) & bit)) {
                c = (const struct cctx *)(v->window & ~(uintptr_t)VALUE_WINDOW_LEN);
                continue;
            }
            if (v->key == key)
                return v->value;
        }
        c = c->parent;
    }
    /* Not found. A tombstone has no parent, so it can only be ctx itself. */
    if (cctx__debug_on(CCTX__DEBUG_CHECKS) && cctx__kind(ctx) == KIND_FREED)
        return value_of_released(ctx);
    return NULL;
}

int cctx_cause(const cctx_t *ctx, cctx_cause_t *out)
{
    if (cctx__unlikely(!ctx || !out))
        return EINVAL;
    *out = (cctx_cause_t){0};
    const struct cctx__cancelable *src = cctx__source(ctx);
    if (!src)
        cctx__check_tombstone(ctx, "cctx_cause", NULL, 0, NULL);
    if (!src || !(cctx__atomic_load_acquire(&src->head.state) & STATE_ERR))
        return 0;
    return cctx__cause_fill(src, out);
}
