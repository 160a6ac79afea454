/* SPDX-License-Identifier: MIT */
/*
 * Causes: why a context ended, where and when. A cause is either a record
 * (struct cctx__cause, made here or embedded in a deadline context's
 * allocation) or kept in its origin (an own cause, layout.h: with its
 * site, or without one when no record could be allocated); this file makes
 * and frees the records and reads either kind out for cctx_cause and the
 * trace. The marking of a cause is cancel.c's.
 */
#define _GNU_SOURCE
#include <string.h>

#include "internal.h"

/* The record of a cancellation that starts at origin, or NULL when it cannot
 * be allocated: the canceller then keeps a cause without a site in the
 * origin's slot (cancel.c: keep_bare_cause), which needs no memory and
 * whose word is that cancellation's own marking word. */
struct cctx__cause *cctx__cause_new(struct cctx *origin, int err, int code, const char *msg,
                                    const char *file, int line, const char *func)
{
    /* A deadline with a cause of its own fires with the record made with it
     * (which already points at its copy of the message). */
    struct cctx__cause *c = NULL;
    if (err == ETIMEDOUT && cctx__kind(origin) == KIND_TIMER &&
        (c = cctx__timer_cause((struct cctx__timer *)origin)) != NULL) {
        *c = (struct cctx__cause){.origin = origin,
                                  .word = cctx__cause_word(err, true, line),
                                  .code = code,
                                  .msg = msg ? msg : "context deadline exceeded",
                                  .file = file ? file : "?",
                                  .func = func ? func : "?",
                                  .when = cctx_now()};
        return c;
    }
    size_t len = msg ? strlen(msg) + 1 : 0;
    c = cctx__alloc(sizeof *c + len);
    if (cctx__unlikely(!c) && len) {
        /* Keep the code and the site at least; the message falls back. */
        msg = NULL;
        len = 0;
        c = cctx__alloc(sizeof *c);
    }
    if (cctx__unlikely(!c))
        return NULL;
    c->origin = origin;
    atomic_init(&c->word, cctx__cause_word(err, false, line));
    c->code = code;
    c->msg = len                ? memcpy(c + 1, msg, len)
             : err == ETIMEDOUT ? "context deadline exceeded"
                                : "context canceled";
    c->file = file ? file : "?";
    c->func = func ? func : "?";
    c->when = cctx_now();
    return c;
}

void cctx__cause_free(struct cctx__cause *cause, struct cctx *origin)
{
    if (cause && cause->origin == origin && !cctx__cause_embedded(cause))
        cctx__free(cause);
}

static int clamped_line(int line)
{
    return line < 0 ? 0 : (uint32_t)line > CAUSE_LINE_MAX ? (int)CAUSE_LINE_MAX : line;
}

int cctx__cause_fill(const struct cctx__cancelable *c, cctx_cause_t *out)
{
    struct cctx__cause_at at = cctx__cause_at(c);
    /* An origin referred to keeps its own cause or a placed one: its slot
     * tells, fixed but for the marking bits once it is done. */
    if (at.owner && !(cctx__atomic_load_acquire(&at.owner->own.word) & SLOT_OWN)) {
        at.placed = at.owner;
        at.owner = NULL;
    }
    if (at.placed) {
        const struct cctx__cancelable *p = at.placed;
        const struct cctx__site *site =
            (const struct cctx__site *)(cctx__plain_load_relaxed(&p->deadline_from) &
                                        ~DEADLINE_FROM_SITE);
        /* The low bits are the tags, zero once masked: the division is
         * exact, and keeps the sign of a time before the clock's zero. */
        uintptr_t slot = cctx__atomic_load_relaxed(&((struct cctx__cancelable *)p)->cause);
        int64_t when = (int64_t)(slot & ~SLOT_TAGS) / 8;
        *out = (cctx_cause_t){.err = ECANCELED,
                              .msg = "context canceled",
                              .file = site->file ? site->file : "?",
                              .line = clamped_line(site->line),
                              .func = site->func ? site->func : "?",
                              .when = when};
        return ECANCELED;
    }
    if (cctx__unlikely(at.bare != NULL)) {
        /* The record could not be allocated: no site, code or time. Its
         * link is not read: it may still be in a list. */
        bool timedout = cctx__atomic_load_relaxed(&at.bare->own.word) & OWN_TIMEDOUT;
        *out = (cctx_cause_t){.err = timedout ? ETIMEDOUT : ECANCELED,
                              .msg = timedout ? "context deadline exceeded" : "context canceled",
                              .file = "?",
                              .func = "?"};
        return out->err;
    }
    if (at.owner) {
        const struct cctx__cancelable *owner = at.owner;
        /* Only a cancel through a handle keeps its cause in its origin. */
        const struct cctx__site *site = owner->own_site.site;
        *out = (cctx_cause_t){.err = ECANCELED,
                              .code = owner->own.code,
                              .msg = "context canceled",
                              .file = site->file ? site->file : "?",
                              .line = clamped_line(site->line),
                              .func = site->func ? site->func : "?",
                              .when = owner->own_site.when};
        return ECANCELED;
    }
    const struct cctx__cause *r = at.record;
    *out = (cctx_cause_t){.err = cctx__cause_err(r),
                          .code = r->code,
                          .msg = r->msg,
                          .file = r->file,
                          .line = cctx__cause_line(r),
                          .func = r->func,
                          .when = r->when};
    return out->err;
}
