/* SPDX-License-Identifier: MIT */
/* The fan-out: many transfers under one context, run together from one
 * thread on a multi handle of their own, with the context's done
 * descriptor beside their sockets. */
#define _GNU_SOURCE
#include "curl_internal.h"

#include <stdlib.h>

struct cctx_curl_multi {
    CURLM *multi;
    uint32_t forks;         /* cctx__curl_fork_count() when multi was made */
    struct cc_xfer **xfers; /* one allocation each: their header nodes must not move */
    size_t n, cap;
    bool ran;     /* xfers hold the results of a finished run */
    bool running; /* inside cctx_curl_multi_run */
    /* cctx_curl_multi_free was called from a callback of the run under way,
     * which still reads the transfers, and whose multi handle libcurl will
     * not clean up from its own callback: the run frees the set as it ends. */
    bool free_after_run;
};

static void destroy(cctx_curl_multi_t *m);

static CURLM *new_multi(void)
{
    CURLM *m = curl_multi_init();
    /* Old libcurl breaks on an h2c connection shared by a second transfer:
     * one transfer per connection there. */
    if (m && cctx__curl_old_libcurl())
        curl_multi_setopt(m, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING);
    return m;
}

cctx_curl_multi_t *cctx_curl_multi_new(void)
{
    cctx_curl_multi_t *m = calloc(1, sizeof *m);
    if (!m) {
        errno = ENOMEM;
        return NULL;
    }
    m->multi = new_multi();
    if (!m->multi) {
        free(m);
        errno = ENOMEM;
        return NULL;
    }
    m->forks = cctx__curl_fork_count();
    return m;
}

static void forget(cctx_curl_multi_t *m)
{
    for (size_t i = 0; i < m->n; i++)
        free(m->xfers[i]);
    m->n = 0;
    m->ran = false;
}

int cctx_curl_multi_add(cctx_curl_multi_t *m, CURL *easy, const cctx_curl_opts_t *opts)
{
    if (!m || !easy || m->running) {
        errno = EINVAL;
        return -1;
    }
    if (m->ran)
        forget(m);
    for (size_t i = 0; i < m->n; i++) {
        if (m->xfers[i]->easy == easy) {
            errno = EINVAL;
            return -1;
        }
    }
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 8;
        struct cc_xfer **p = realloc(m->xfers, cap * sizeof *p);
        if (!p) {
            errno = ENOMEM;
            return -1;
        }
        m->xfers = p;
        m->cap = cap;
    }
    struct cc_xfer *x = malloc(sizeof *x);
    if (!x) {
        errno = ENOMEM;
        return -1;
    }
    cctx__curl_init(x, easy, opts);
    m->xfers[m->n] = x;
    return (int)m->n++;
}

size_t cctx_curl_multi_count(const cctx_curl_multi_t *m)
{
    return m ? m->n : 0;
}

const cctx_curl_result_t *cctx_curl_multi_result(const cctx_curl_multi_t *m, size_t i)
{
    if (!m || i >= m->n)
        return NULL;
    return &m->xfers[i]->res;
}

static struct cc_xfer *find(cctx_curl_multi_t *m, CURL *easy)
{
    for (size_t i = 0; i < m->n; i++)
        if (m->xfers[i]->easy == easy)
            return m->xfers[i];
    return NULL;
}

/* Every transfer out of the multi handle with its options back; unfinished
 * ones take ctx's end as their result, or fd_err (cctx_done_fd's failure,
 * when no transfer was started) when it is not 0. */
static void settle_all(cctx_curl_multi_t *m, cctx_t *ctx, int fd_err)
{
    bool drop = false;
    for (size_t i = 0; i < m->n; i++) {
        struct cc_xfer *x = m->xfers[i];
        if (x->added && !x->done)
            cctx__curl_before_abort(x);
    }
    for (size_t i = 0; i < m->n; i++) {
        struct cc_xfer *x = m->xfers[i];
        if (x->added) {
            curl_multi_remove_handle(m->multi, x->easy);
            x->added = false;
            drop = drop || cctx__curl_left_h2_connection(x);
            cctx__curl_restore(x);
        }
        if (x->done)
            continue;
        if (fd_err)
            cctx__curl_finish_no_fd(x, fd_err);
        else
            cctx__curl_finish_ctx(x, ctx, true);
    }
    if (drop) {
        /* Old libcurl must not reuse those HTTP/2 connections. */
        CURLM *fresh = new_multi();
        if (fresh) {
            curl_multi_cleanup(m->multi);
            m->multi = fresh;
        }
    }
}

static CURLcode code_of(CURLMcode mc)
{
    return mc == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY : CURLE_FAILED_INIT;
}

/* A child of fork() must not use (nor close: curl_multi_cleanup may write
 * a TLS close_notify) the connections its parent cached in m: it abandons
 * the inherited handle, as cctx_curl_perform does its thread's. */
static int own_multi(cctx_curl_multi_t *m)
{
    uint32_t forks = cctx__curl_fork_count();
    if (m->forks == forks)
        return 0;
    CURLM *fresh = new_multi();
    if (!fresh)
        return ENOMEM;
    m->multi = fresh; /* the parent's copy is left as it is */
    m->forks = forks;
    return 0;
}

int cctx_curl_multi_run(cctx_curl_multi_t *m, cctx_t *ctx)
{
    if (!m || !ctx || m->running || cctx__curl_in_call)
        return EINVAL;
    if (m->ran)
        return 0; /* nothing added since: an empty run */
    if (own_multi(m) != 0)
        return ENOMEM;
    int cancellation = cctx__curl_cancellation_off();
    m->running = true;
    cctx__curl_in_call = true;
    int ret = 0, fd_err = 0;
    /* One budget for all: every transfer gets the same grpc-timeout and
     * libcurl timeout, and a deadline passing while they are prepared
     * does not leave some sent and some not. */
    int64_t left = cctx__curl_budget(ctx);
    if (left <= 0) {
        /* Spent or ended: nobody is sent anything. */
        for (size_t i = 0; i < m->n; i++)
            (void)cctx__curl_prepare(m->xfers[i], ctx, left);
        ret = m->n > 0 ? m->xfers[0]->res.err : 0; /* nothing added: empty */
        goto end;
    }
    int done_fd = cctx_done_fd(ctx);
    if (done_fd < 0) {
        ret = fd_err = errno ? errno : EMFILE;
        goto end;
    }
    size_t pending = 0;
    for (size_t i = 0; i < m->n; i++) {
        struct cc_xfer *x = m->xfers[i];
        /* Added before its options are set, as in cctx_curl_perform: a
         * handle libcurl refuses (in another multi handle) is left as its
         * owner set it. */
        CURLMcode mc = curl_multi_add_handle(m->multi, x->easy);
        if (mc != CURLM_OK) {
            x->res.code = mc == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY
                                                    : CURLE_BAD_FUNCTION_ARGUMENT;
            x->res.err = cctx__curl_errno_of(x->res.code, 0);
            x->res.msg = curl_multi_strerror(mc);
            x->done = true;
            continue;
        }
        if (cctx__curl_prepare(x, ctx, left) != 0) {
            /* out of memory or randomness: this one fails alone */
            curl_multi_remove_handle(m->multi, x->easy);
            continue;
        }
        x->added = true;
        pending++;
    }

    while (pending > 0) {
        int running;
        CURLMcode mc = curl_multi_perform(m->multi, &running);
        if (mc != CURLM_OK && mc != CURLM_CALL_MULTI_PERFORM) {
            for (size_t i = 0; i < m->n; i++) {
                struct cc_xfer *x = m->xfers[i];
                if (x->added && !x->done)
                    cctx__curl_finish_libcurl(x, ctx, code_of(mc));
            }
            break;
        }
        CURLMsg *msg;
        int queued;
        while ((msg = curl_multi_info_read(m->multi, &queued)) != NULL) {
            struct cc_xfer *x = msg->msg == CURLMSG_DONE ? find(m, msg->easy_handle) : NULL;
            if (x && x->added && !x->done) {
                cctx__curl_finish_libcurl(x, ctx, msg->data.result);
                pending--;
            }
        }
        if (pending == 0 || cctx_err(ctx))
            break;
        struct curl_waitfd w = {.fd = done_fd, .events = CURL_WAIT_POLLIN};
        mc = curl_multi_poll(m->multi, &w, 1, 1000, NULL);
        if (mc != CURLM_OK) {
            for (size_t i = 0; i < m->n; i++) {
                struct cc_xfer *x = m->xfers[i];
                if (x->added && !x->done)
                    cctx__curl_finish_libcurl(x, ctx, code_of(mc));
            }
            break;
        }
        if (w.revents)
            break;
    }
end:
    settle_all(m, ctx, fd_err);
    /* ctx ended the run if it ended any transfer: aborted here, or by
     * libcurl's timeout, which is ctx's budget (cctx__curl_finish_libcurl
     * then takes ctx's error and cause). */
    for (size_t i = 0; ret == 0 && i < m->n; i++)
        if (m->xfers[i]->res.cause.err != 0)
            ret = m->xfers[i]->res.cause.err;
    m->ran = true;
    m->running = false;
    if (m->free_after_run)
        destroy(m); /* with cancellation off: the cleanup closes */
    cctx__curl_in_call = false;
    cctx__curl_cancellation_back(cancellation);
    return ret;
}

static void destroy(cctx_curl_multi_t *m)
{
    forget(m);
    free(m->xfers);
    /* In a child of fork() the handle is the parent's copy: left alone. */
    if (m->forks == cctx__curl_fork_count())
        curl_multi_cleanup(m->multi);
    free(m);
}

void cctx_curl_multi_free(cctx_curl_multi_t *m)
{
    if (!m)
        return;
    if (m->running) {
        m->free_after_run = true;
        return;
    }
    /* The cleanup closes descriptors (see cctx__curl_cancellation_off). */
    int cancellation = cctx__curl_cancellation_off();
    destroy(m);
    cctx__curl_cancellation_back(cancellation);
}
