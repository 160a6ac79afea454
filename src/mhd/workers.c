/*
 * The worker pool and its bounded queue.
 *
 * libmicrohttpd's thread admits a complete request (mhd_admit): it counts
 * it in flight under server->lock (or refuses it: queue full, shutdown
 * begun), suspends the connection, watches it, and only then queues it, so
 * a worker can never resume a connection that is not suspended yet. Only
 * that thread queues, so the room it saw under the lock is still there when
 * it queues: it never waits for a worker.
 *
 * A worker takes a request, runs the middleware chain and the handler (or
 * answers at once when the request's context already ended while it
 * waited), cancels the context ("handler returned"), builds the response,
 * removes the watch, releases the context, uncounts the request and resumes
 * the connection. After the resume it never touches the request again.
 *
 * Lock order: server->lock only; never held across user code, libmicrohttpd
 * calls or cancellation.
 */
#define _GNU_SOURCE
#include "mhd_internal.h"

#include <stdlib.h>
#include <string.h>

static _Thread_local const cctx_mhd_t *worker_of;

bool mhd_on_worker(const cctx_mhd_t *s)
{
    return worker_of == s;
}

/* The status for a request whose context ended before its handler ran. */
static int status_of_ended(const cctx_t *ctx, const char **msg)
{
    cctx_cause_t c;
    cctx_cause(ctx, &c);
    *msg = c.msg;
    if (c.code >= 400 && c.code <= 599)
        return c.code;
    return c.err == ETIMEDOUT ? 504 : 503;
}

static void serve(cctx_mhd_t *s, struct cctx_mhd_request *req)
{
    cctx_mhd_response_t resp;
    mhd_response_init(&resp);
    if (cctx_err(req->run_ctx) != 0) {
        const char *msg;
        int st = status_of_ended(req->run_ctx, &msg);
        mhd_response_text(&resp, st, msg);
    } else {
        char msg[256] = "";
        int st = mhd_run_checks(s, req, msg, sizeof msg);
        if (st != 0)
            mhd_response_text(&resp, st, msg);
        else if (cctx_err(req->run_ctx) != 0) {
            /* A validator narrowed the deadline to nothing. */
            const char *m;
            st = status_of_ended(req->run_ctx, &m);
            mhd_response_text(&resp, st, m);
        } else if (req->handler)
            req->handler(req->run_ctx, req, &resp, req->arg);
        else
            mhd_response_text(&resp, 404, "no route for this path");
    }
    /* Whatever the handler started and forgot stops now. */
    cctx_cancel_cause(req->cancel, 0, "handler returned");
    mhd_response_finish(req, &resp);
    mhd_watch_remove(&s->watch, req);
    if (req->run_ctx != req->ctx)
        cctx_release(req->run_ctx);
    cctx_release(req->ctx);
    req->run_ctx = req->ctx = NULL;
    req->cancel = NULL;
    struct MHD_Connection *conn = req->conn;
    atomic_store_explicit(&req->state, REQ_DONE, memory_order_release);
    pthread_mutex_lock(&s->lock);
    if (--s->inflight == 0)
        pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&s->lock);
    MHD_resume_connection(conn); /* req belongs to libmicrohttpd's thread again */
}

static void *worker_main(void *arg)
{
    cctx_mhd_t *s = arg;
    worker_of = s;
    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (!s->qhead && !s->closing)
            pthread_cond_wait(&s->work, &s->lock);
        if (!s->qhead)
            break; /* closing and nothing left */
        struct cctx_mhd_request *req = s->qhead;
        s->qhead = req->next;
        if (!s->qhead)
            s->qtail = NULL;
        s->qlen--;
        pthread_mutex_unlock(&s->lock);
        serve(s, req);
        pthread_mutex_lock(&s->lock);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

int mhd_workers_start(cctx_mhd_t *s)
{
    s->workers = calloc(s->opt.workers, sizeof *s->workers);
    if (!s->workers)
        return ENOMEM;
    for (unsigned i = 0; i < s->opt.workers; i++) {
        int err = mhd_thread_start(&s->workers[i], worker_main, s, "cctx-mhd-work");
        if (err)
            return err;
        s->nworkers++;
    }
    return 0;
}

void mhd_workers_stop(cctx_mhd_t *s)
{
    pthread_mutex_lock(&s->lock);
    s->closing = true;
    pthread_cond_broadcast(&s->work);
    pthread_mutex_unlock(&s->lock);
    for (unsigned i = 0; i < s->nworkers; i++)
        pthread_join(s->workers[i], NULL);
    s->nworkers = 0;
    free(s->workers);
    s->workers = NULL;
}

int mhd_admit(cctx_mhd_t *s, struct cctx_mhd_request *req)
{
    pthread_mutex_lock(&s->lock);
    if (s->stopping) {
        pthread_mutex_unlock(&s->lock);
        return 503;
    }
    if (s->qlen >= s->opt.queue || s->closing) {
        pthread_mutex_unlock(&s->lock);
        return 503;
    }
    s->inflight++;
    s->suspended++;
    pthread_mutex_unlock(&s->lock);

    req->counted = true;
    atomic_store_explicit(&req->state, REQ_QUEUED, memory_order_relaxed);
    MHD_suspend_connection(req->conn);
    mhd_watch_add(&s->watch, req);

    pthread_mutex_lock(&s->lock);
    req->next = NULL;
    if (s->qtail)
        s->qtail->next = req;
    else
        s->qhead = req;
    s->qtail = req;
    s->qlen++;
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->lock);
    return 0;
}
