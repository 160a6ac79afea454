/* SPDX-License-Identifier: MIT */
/*
 * The worker pool and its bounded queue.
 *
 * libmicrohttpd's thread admits a complete request (cctx__mhd_admit): it
 * suspends the connection, watches it, and then, under server->lock, queues
 * it and counts it in flight, or refuses it (queue full, shutdown begun):
 * then it removes the watch and resumes the connection with a 503 at once.
 * It never waits for a worker.
 *
 * A worker takes a request, runs the middleware chain and the handler (or
 * answers at once when the request's context already ended while it
 * waited), cancels the context ("handler returned"), builds the response,
 * removes the watch, releases the context, resumes the connection, and
 * uncounts the request with the lock it takes for the next one. After the
 * resume it never touches the request again.
 *
 * Lock order: server->lock only; never held across user code, libmicrohttpd
 * calls or cancellation.
 */
#define _GNU_SOURCE
#include "mhd_internal.h"

#include <stdlib.h>
#include <string.h>

static _Thread_local const cctx_mhd_t *worker_of;

bool cctx__mhd_on_worker(const cctx_mhd_t *s)
{
    return worker_of == s;
}

int cctx__mhd_status_of_ended(const cctx_t *ctx, const char **msg)
{
    cctx_cause_t c;
    cctx_cause(ctx, &c);
    *msg = c.msg;
    if (c.code >= 400 && c.code <= 599)
        return c.code;
    return c.err == ETIMEDOUT ? 504 : 503;
}

/* Stores the response in req, marks it DONE and resumes the connection:
 * from then on req is libmicrohttpd's thread's again. */
static void hand_back(struct cctx_mhd_request *req, cctx_mhd_response_t *resp)
{
    cctx__mhd_response_finish(req, resp);
    struct MHD_Connection *conn = req->conn;
    cctx__atomic_store_release(&req->state, REQ_DONE);
    MHD_resume_connection(conn);
}

static void serve(cctx_mhd_t *s, struct cctx_mhd_request *req)
{
    cctx_mhd_response_t resp;
    cctx__mhd_response_init(&resp);
    /* A client that left while the request waited: its connection's watch
     * has reported already, and the one armed anew reports it again on the
     * watcher's thread, a moment from now, while the handler would already
     * be running. One look here sees it first; a connection whose watch is
     * still armed, the most, costs no system call. */
    if (cctx__mhd_watch_add(&s->watch, req) && cctx__mhd_peer_gone(req))
        cctx_cancel_cause(req->cancel, 499, "client disconnected");
    if (cctx_err(req->run_ctx) != 0) {
        const char *msg;
        int st = cctx__mhd_status_of_ended(req->run_ctx, &msg);
        cctx__mhd_response_text(&resp, st, msg);
    } else {
        char msg[256] = "";
        int st = cctx__mhd_run_checks(s, req, msg, sizeof msg);
        if (st != 0)
            /* No message: the status's reason phrase (a 400 to 599). */
            cctx__mhd_response_text(&resp, st,
                                    msg[0] ? msg : MHD_get_reason_phrase_for((unsigned)st));
        else if (cctx_err(req->run_ctx) != 0) {
            /* A validator narrowed the deadline to nothing. */
            const char *m;
            st = cctx__mhd_status_of_ended(req->run_ctx, &m);
            cctx__mhd_response_text(&resp, st, m);
        } else if (req->handler) {
            req->handler(req->run_ctx, req, &resp, req->arg);
            /* A handler that gave up because its context ended (deadline,
             * shutdown), without a status or a byte of its own, answers
             * what ended it: 504 with "deadline from grpc-timeout: 100m",
             * not an empty 200 that a client would take for a result. */
            if (!resp.status_set && resp.len == 0 && !resp.headers && !resp.err &&
                cctx_err(req->run_ctx) != 0) {
                const char *m;
                int st = cctx__mhd_status_of_ended(req->run_ctx, &m);
                cctx__mhd_response_text(&resp, st, m);
            }
        } else
            cctx__mhd_response_text(&resp, 404, "no route for this path");
    }
    /* Whatever the handler started and forgot stops now. */
    cctx_cancel_cause(req->cancel, 0, "handler returned");
    cctx__mhd_watch_remove(&s->watch, req);
    if (req->run_ctx != req->ctx)
        cctx_release(req->run_ctx);
    cctx_release(req->ctx);
    req->run_ctx = req->ctx = NULL;
    req->cancel = NULL;
    hand_back(req, &resp);
}

static void *worker_main(void *arg)
{
    cctx_mhd_t *s = arg;
    worker_of = s;
    bool served = false;
    pthread_mutex_lock(&s->lock);
    for (;;) {
        /* The request served last is uncounted with the same lock that takes
         * the next: one lock per request. Shutdown also waits for the
         * connection to be back on libmicrohttpd's thread (suspended), so
         * uncounting after the resume is fine. */
        if (served && --s->inflight == 0)
            pthread_cond_broadcast(&s->idle);
        served = false;
        while (!s->qhead && !s->closing) {
            s->idle_workers++;
            pthread_cond_wait(&s->work, &s->lock);
            s->idle_workers--;
        }
        if (!s->qhead)
            break; /* closing and nothing left */
        struct cctx_mhd_request *req = s->qhead;
        s->qhead = req->next;
        if (!s->qhead)
            s->qtail = NULL;
        s->qlen--;
        pthread_mutex_unlock(&s->lock);
        serve(s, req);
        served = true;
        pthread_mutex_lock(&s->lock);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

int cctx__mhd_workers_start(cctx_mhd_t *s)
{
    s->workers = calloc(s->opt.workers, sizeof *s->workers);
    if (!s->workers)
        return ENOMEM;
    for (unsigned i = 0; i < s->opt.workers; i++) {
        int err = cctx__mhd_thread_start(&s->workers[i], worker_main, s, "cctx-mhd-work");
        if (err)
            return err;
        s->nworkers++;
    }
    return 0;
}

void cctx__mhd_workers_stop(cctx_mhd_t *s)
{
    pthread_mutex_lock(&s->lock);
    s->closing = true;
    pthread_cond_broadcast(&s->work);
    pthread_mutex_unlock(&s->lock);
    for (unsigned i = 0; i < s->nworkers; i++)
        if (!pthread_equal(s->workers[i], pthread_self())) /* never itself: see shutdown */
            pthread_join(s->workers[i], NULL);
    s->nworkers = 0;
    free(s->workers);
    s->workers = NULL;
}

void cctx__mhd_admit(cctx_mhd_t *s, struct cctx_mhd_request *req)
{
    /* Suspended before it is queued, so that a worker never resumes a
     * connection that is not suspended yet. The watch is added by the worker
     * that takes the request (serve): libmicrohttpd's single thread is the
     * busiest of the server's, and a hang-up while the request waited is
     * reported by the new watch at once (EPOLLRDHUP is a state, not an edge). */
    req->counted = true;
    cctx__atomic_fetch_add_seq_cst(&s->suspended, 1);
    cctx__atomic_store_relaxed(&req->state, REQ_QUEUED);
    MHD_suspend_connection(req->conn);

    pthread_mutex_lock(&s->lock);
    /* A request begun before shutdown did is admitted until the drain is
     * over: the drain waited for its body, and now waits for its handler. */
    bool begun_before = req->receiving && !s->drained;
    bool stopping = (cctx__atomic_load_seq_cst(&s->stopping) && !begun_before) || s->closing;
    /* The queue holds the requests waiting for a worker. Those an idle
     * worker will take (signalled, it counts as idle until it wakes) wait
     * for none: without them, a burst this thread admits faster than the
     * woken workers dequeue it would be refused with workers idle. Each
     * signal below wakes a distinct waiter, so no more than idle_workers
     * of the queued ones are taken that way. */
    bool full = s->qlen - (s->qlen < s->idle_workers ? s->qlen : s->idle_workers) >= s->opt.queue;
    if (req->receiving) { /* in flight now, or refused: one lock with inflight++ */
        req->receiving = false;
        if (cctx__atomic_fetch_sub_seq_cst(&s->receiving, 1) == 1)
            pthread_cond_broadcast(&s->idle);
    }
    if (!stopping && !full) {
        s->inflight++;
        req->next = NULL;
        if (s->qtail)
            s->qtail->next = req;
        else
            s->qhead = req;
        s->qtail = req;
        s->qlen++;
        pthread_cond_signal(&s->work);
    }
    pthread_mutex_unlock(&s->lock);
    if (!stopping && !full)
        return;
    /* Refused: answered 503 as soon as libmicrohttpd takes it back. */
    cctx_mhd_response_t resp;
    cctx__mhd_response_init(&resp);
    stopping = stopping || cctx_err(s->ctx) != 0;
    cctx__mhd_response_text(&resp, 503,
                            stopping ? "server shutting down" : "server busy: queue full");
    if (stopping)
        cctx_mhd_set_header(&resp, MHD_HTTP_HEADER_CONNECTION, "close");
    hand_back(req, &resp);
}

unsigned cctx__mhd_test_idle_workers(cctx_mhd_t *s)
{
    pthread_mutex_lock(&s->lock);
    unsigned n = s->idle_workers;
    pthread_mutex_unlock(&s->lock);
    return n;
}

void cctx__mhd_stop_receiving(cctx_mhd_t *s, struct cctx_mhd_request *req)
{
    if (!req->receiving)
        return;
    req->receiving = false;
    cctx__mhd_count_down(s, &s->receiving);
}
