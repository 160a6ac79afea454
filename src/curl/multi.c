/* The fan-out: many transfers under one context, run together from one
 * thread on a multi handle of their own, with the context's done
 * descriptor beside their sockets. */
#define _GNU_SOURCE
#include "internal.h"

#include <stdlib.h>

struct cctx_curl_multi {
    CURLM *multi;
    struct cc_xfer **xfers; /* one allocation each: their header nodes must not move */
    size_t n, cap;
    bool ran;     /* xfers hold the results of a finished run */
    bool running; /* inside cctx_curl_multi_run */
};

static CURLM *new_multi(void)
{
    CURLM *m = curl_multi_init();
    /* Old libcurl breaks on an h2c connection shared by a second transfer:
     * one transfer per connection there. */
    if (m && cc_old_curl())
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
    cc_init(x, easy, opts);
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
 * ones take ctx's end as their result. */
static void settle_all(cctx_curl_multi_t *m, cctx_t *ctx)
{
    bool drop = false;
    for (size_t i = 0; i < m->n; i++) {
        struct cc_xfer *x = m->xfers[i];
        if (x->added && !x->done)
            cc_before_abort(x);
    }
    for (size_t i = 0; i < m->n; i++) {
        struct cc_xfer *x = m->xfers[i];
        if (x->added) {
            curl_multi_remove_handle(m->multi, x->easy);
            x->added = false;
            drop = drop || cc_left_h2_connection(x);
            cc_restore(x);
        }
        if (!x->done)
            cc_finish_ctx(x, ctx);
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

int cctx_curl_multi_run(cctx_curl_multi_t *m, cctx_t *ctx)
{
    if (!m || !ctx || m->running)
        return EINVAL;
    if (m->ran)
        return 0; /* nothing added since: an empty run */
    m->running = true;
    int ret = 0;
    int done_fd = cctx_done_fd(ctx);
    if (done_fd < 0) {
        ret = errno;
        goto end;
    }
    size_t pending = 0;
    for (size_t i = 0; i < m->n; i++) {
        struct cc_xfer *x = m->xfers[i];
        if (cc_prepare(x, ctx) != 0) {
            /* Spent or ended: nobody is sent anything. Out of memory or
             * randomness: this one fails alone. */
            if (x->res.err == ECANCELED || x->res.err == ETIMEDOUT) {
                ret = x->res.err;
                goto end;
            }
            continue;
        }
        CURLMcode mc = curl_multi_add_handle(m->multi, x->easy);
        if (mc != CURLM_OK) {
            cc_restore(x);
            x->res.code = mc == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY
                                                    : CURLE_BAD_FUNCTION_ARGUMENT;
            x->res.err = cc_errno_of(x->res.code, 0);
            x->res.msg = curl_multi_strerror(mc);
            x->done = true;
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
                    cc_finish_curl(x, ctx, code_of(mc));
            }
            break;
        }
        CURLMsg *msg;
        int queued;
        while ((msg = curl_multi_info_read(m->multi, &queued)) != NULL) {
            struct cc_xfer *x = msg->msg == CURLMSG_DONE ? find(m, msg->easy_handle) : NULL;
            if (x && x->added && !x->done) {
                cc_finish_curl(x, ctx, msg->data.result);
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
                    cc_finish_curl(x, ctx, code_of(mc));
            }
            break;
        }
        if (w.revents)
            break;
    }
end:
    settle_all(m, ctx);
    /* ctx ended the run if it ended any transfer: aborted here, or by
     * libcurl's timeout, which is ctx's budget (cc_finish_curl then takes
     * ctx's error and cause). */
    for (size_t i = 0; ret == 0 && i < m->n; i++)
        if (m->xfers[i]->res.cause.err != 0)
            ret = m->xfers[i]->res.cause.err;
    m->ran = true;
    m->running = false;
    return ret;
}

void cctx_curl_multi_free(cctx_curl_multi_t *m)
{
    if (!m)
        return;
    forget(m);
    free(m->xfers);
    curl_multi_cleanup(m->multi);
    free(m);
}
