/* SPDX-License-Identifier: MIT */
/*
 * The middleware chain: validators run in order on the worker thread before
 * the handler; the first that returns a status answers the request.
 *
 * The chain is built before the server takes traffic (the header says so).
 * It is an append-only list: appends take server->lock and publish an
 * entry, whole, with a release store; workers walk it without a lock. Built-in validators are entries whose
 * argument is the entry itself, holding their parameters.
 *
 * Lock order: server->lock only, never held while a validator runs.
 */
#define _GNU_SOURCE
#include "mhd_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char self_tag;
#define SELF ((void *)&self_tag) /* a built-in's argument: its own entry */

/* Appends an entry with its parameters already set, so a worker that reads
 * the chain under the lock sees them whole. */
static int append(cctx_mhd_t *s, cctx_mhd_check_fn *fn, void *arg, int64_t nanos, size_t bytes,
                  const char *name, int status)
{
    struct mhd_check *c = calloc(1, sizeof *c);
    if (!c || (name && !(c->name = strdup(name)))) {
        free(c);
        return ENOMEM;
    }
    c->fn = fn;
    c->arg = arg == SELF ? c : arg;
    c->server = s;
    c->nanos = nanos;
    c->bytes = bytes;
    c->status = status;
    atomic_init(&c->next, NULL);
    pthread_mutex_lock(&s->lock);
    cctx__atomic_store_release(s->checks_tail, c);
    s->checks_tail = &c->next;
    pthread_mutex_unlock(&s->lock);
    return 0;
}

int cctx_mhd_use(cctx_mhd_t *server, cctx_mhd_check_fn *fn, void *arg)
{
    if (!server || !fn)
        return EINVAL;
    return append(server, fn, arg, 0, 0, NULL, 0);
}

int cctx__mhd_run_checks(cctx_mhd_t *s, struct cctx_mhd_request *req, char *msg, size_t msg_size)
{
    for (struct mhd_check *c = cctx__atomic_load_acquire(&s->checks); c;
         c = cctx__atomic_load_acquire(&c->next)) {
        msg[0] = '\0';
        req->validating = true;
        int st = c->fn(req->run_ctx, req, msg, msg_size, c->arg);
        req->validating = false;
        if (st != 0) {
            msg[msg_size - 1] = '\0';
            return st < 400 || st > 599 ? 500 : st;
        }
    }
    return 0;
}

void cctx__mhd_checks_free(cctx_mhd_t *s)
{
    for (struct mhd_check *c = s->checks, *next; c; c = next) {
        next = cctx__atomic_load_relaxed(&c->next);
        free(c->name);
        free(c);
    }
    cctx__atomic_store_relaxed(&s->checks, NULL);
    s->checks_tail = &s->checks;
}

/* ---- built-ins ----------------------------------------------------------------- */

static void format_budget(int64_t t, char out[32])
{
    cctx__mhd_format_duration(t, out, 32);
}

/* ctx's budget as cctx_grpc_timeout_of counts it: not cctx_remaining alone,
 * since a request context born under a grace context (a server started
 * under one) before the grace context's parent ended keeps its own
 * deadline, yet ends with the grace context, a request queued behind others
 * perhaps long before that deadline. The text is rounded up to its unit (a
 * millisecond from 100 s), which would admit a request a unit short of min:
 * cctx_remaining, never below the budget, is exact when ctx's own deadline
 * is what ends it, as it is without a grace context. 0 once ctx is done or
 * its budget spent; CCTX_NO_DEADLINE without one. */
static int64_t budget_of(cctx_t *ctx)
{
    char t[CCTX_GRPC_TIMEOUT_SIZE];
    int err = cctx_grpc_timeout_of(ctx, t);
    if (err == ENOENT)
        return CCTX_NO_DEADLINE;
    int64_t left;
    if (err || cctx_grpc_timeout_parse(t, strlen(t), &left) != 0)
        return 0;
    /* 2562048H, near INT64_MAX nanoseconds, reads back as no deadline. */
    if (left == CCTX_NO_DEADLINE)
        left = CCTX_NO_DEADLINE - 1;
    int64_t own = cctx_remaining(ctx);
    return own < left ? own : left;
}

static int check_min_budget(cctx_t *ctx, cctx_mhd_request_t *req, char *msg, size_t size,
                            void *arg)
{
    (void)req;
    const struct mhd_check *c = arg;
    int64_t left = budget_of(ctx);
    if (left == CCTX_NO_DEADLINE)
        return 0;
    if (left <= 0 || left < c->nanos) {
        /* Ended (the parent, a shutdown, a hang-up, the deadline's timer)
         * before or while the budget was read: no budget of its own was too
         * small, and a request without a deadline, read as 0 left then, has
         * none. Asked after the read, so an end that comes during it is
         * seen too. Passed, it gets its ending's answer after the chain (a
         * shutdown's 503), not a 504 that blames a deadline. */
        if (cctx_err(ctx) != 0)
            return 0;
        char have[32], need[32];
        /* Whole milliseconds, rounded down so that it never reads as enough:
         * "49m left", not the nanoseconds a real clock leaves over. */
        format_budget(left > CCTX_MSEC(1) ? left - left % CCTX_MSEC(1) : left, have);
        format_budget(c->nanos, need);
        snprintf(msg, size, "deadline budget too small: %s left, %s needed", have, need);
        return 504;
    }
    return 0;
}

static int check_require_deadline(cctx_t *ctx, cctx_mhd_request_t *req, char *msg, size_t size,
                                  void *arg)
{
    (void)ctx;
    const struct mhd_check *c = arg;
    if (req->has_deadline)
        return 0;
    snprintf(msg, size, "%s header required", c->server->opt.deadline_header);
    return 400;
}

static int check_cap_deadline(cctx_t *ctx, cctx_mhd_request_t *req, char *msg, size_t size,
                              void *arg)
{
    (void)ctx;
    const struct mhd_check *c = arg;
    char cap[32], why[80];
    format_budget(c->nanos, cap);
    snprintf(why, sizeof why, "deadline from middleware cap: %s", cap);
    int err = cctx_mhd_limit(req, c->nanos, why);
    if (err) {
        snprintf(msg, size, "out of memory");
        return 500;
    }
    return 0;
}

static int check_require_header(cctx_t *ctx, cctx_mhd_request_t *req, char *msg, size_t size,
                                void *arg)
{
    (void)ctx;
    const struct mhd_check *c = arg;
    const char *v = cctx_mhd_header(req, c->name);
    if (v && *v)
        return 0;
    snprintf(msg, size, "%s header required", c->name);
    return c->status;
}

static int check_max_body(cctx_t *ctx, cctx_mhd_request_t *req, char *msg, size_t size,
                          void *arg)
{
    (void)ctx;
    const struct mhd_check *c = arg;
    if (req->body_len <= c->bytes)
        return 0;
    snprintf(msg, size, "request body too large");
    return 413;
}

int cctx_mhd_use_min_budget(cctx_mhd_t *server, int64_t min)
{
    return server ? append(server, check_min_budget, SELF, min, 0, NULL, 0) : EINVAL;
}

int cctx_mhd_use_require_deadline(cctx_mhd_t *server)
{
    return server ? append(server, check_require_deadline, SELF, 0, 0, NULL, 0) : EINVAL;
}

int cctx_mhd_use_cap_deadline(cctx_mhd_t *server, int64_t max)
{
    if (!server || max <= 0)
        return EINVAL;
    return append(server, check_cap_deadline, SELF, max, 0, NULL, 0);
}

int cctx_mhd_use_require_header(cctx_mhd_t *server, const char *name, int status)
{
    if (!server || !name || !*name || status < 400 || status > 599)
        return EINVAL;
    return append(server, check_require_header, SELF, 0, 0, name, status);
}

int cctx_mhd_use_max_body(cctx_mhd_t *server, size_t max)
{
    return server ? append(server, check_max_body, SELF, 0, max, NULL, 0) : EINVAL;
}
