/* SPDX-License-Identifier: MIT */
/* cctx_curl_perform: one transfer on the calling thread's multi handle,
 * waiting in curl_multi_poll with the context's done descriptor beside
 * libcurl's sockets. */
#define _GNU_SOURCE
#include "../atomics.h"
#include "curl_internal.h"

#include <pthread.h>
#include <stdlib.h>

/* Each thread keeps one multi handle, so that the connections a transfer
 * leaves in its cache serve the thread's next call, as curl_easy_perform's
 * hidden multi handle does for one easy handle. The key's destructor frees
 * it when the thread exits.
 *
 * fork(): the child's copy of the forking thread's handle holds the
 * parent's connections, whose sockets the parent goes on using. Reusing
 * one would put two processes on one TCP (or TLS) stream, and even
 * curl_multi_cleanup may write on them (a TLS close_notify). So the handle
 * is tagged with the fork count it was made under, and a child abandons an
 * inherited one unclosed (its memory and descriptors stay, as a child's
 * copy of anything of its parent's does) and makes its own.
 *
 * The key: pthread_key_create fails when every key of the process is
 * taken (PTHREAD_KEYS_MAX). Nothing is stored then (a pthread_key_t never
 * set is 0, another library's key, whose destructor would get the handle),
 * and later calls try again, which pthread_once cannot. Made keys are
 * published in a cell of their own by a compare-and-swap (whatever type
 * pthread_key_t is), not under a lock: a child forked while another thread
 * held it would wait for it for ever. */
static pthread_key_t *_Atomic thread_key;
static _Thread_local CURLM *thread_multi;
static _Thread_local uint32_t thread_multi_forks;
/* The last handle a child abandoned, kept reachable so that a leak checker
 * in the child does not report what was deliberately left alone. */
static CURLM *_Atomic abandoned;

static void abandon(CURLM *m)
{
    (void)cctx__atomic_exchange_seq_cst(&abandoned, m);
}

static void free_multi(void *m)
{
    thread_multi = NULL; /* runs on the exiting thread itself */
    if (thread_multi_forks != cctx__curl_fork_count()) {
        abandon(m);
        return;
    }
    /* A thread that returns from its start function with a cancel pending
     * (one our calls held back) still acts on it at a cancellation point in
     * a key's destructor: the cleanup's close would end the thread there,
     * the handle half freed, and it is never called again. */
    int cancellation = cctx__curl_cancellation_off();
    curl_multi_cleanup(m);
    cctx__curl_cancellation_back(cancellation);
}

/* The key, or NULL while none can be made. */
static pthread_key_t *the_key(void)
{
    /* Acquire: pairs with the compare-and-swap's release, so the cell is
     * read after it was written. */
    pthread_key_t *k = cctx__atomic_load_acquire(&thread_key);
    if (k)
        return k;
    k = malloc(sizeof *k);
    if (!k)
        return NULL;
    if (pthread_key_create(k, free_multi) != 0) {
        free(k);
        return NULL;
    }
    /* Threads making their first calls at once may each make one: the
     * first published is the key, and the others, under which nothing was
     * stored yet, are deleted. A failed exchange reads the winner with
     * acquire (see above). */
    pthread_key_t *none = NULL;
    if (cctx__atomic_cas_strong_acq_rel(&thread_key, &none, k))
        return k;
    (void)pthread_key_delete(*k);
    free(k);
    return none;
}

/* The thread's multi handle, or, when no key is left to free it at the
 * thread's exit, one for this call alone (*call_only set: the caller
 * cleans it up when the call ends, and connections are not kept). */
static CURLM *get_multi(bool *call_only)
{
    *call_only = false;
    uint32_t forks = cctx__curl_fork_count();
    if (thread_multi) {
        if (thread_multi_forks == forks)
            return thread_multi;
        abandon(thread_multi);
        thread_multi = NULL;
        (void)pthread_setspecific(*the_key(), NULL); /* made: it holds the handle */
    }
    CURLM *m = curl_multi_init();
    if (!m)
        return NULL;
    pthread_key_t *key = the_key();
    if (!key || pthread_setspecific(*key, m) != 0) {
        *call_only = true;
        return m;
    }
    thread_multi = m;
    thread_multi_forks = forks;
    return m;
}

/* Frees the calling thread's multi handle (cctx_curl_thread_cleanup). */
static void drop_thread_multi(void)
{
    if (!thread_multi)
        return;
    CURLM *m = thread_multi;
    thread_multi = NULL;
    (void)pthread_setspecific(*the_key(), NULL); /* made: it holds the handle */
    if (thread_multi_forks != cctx__curl_fork_count())
        abandon(m); /* the parent's connections: not ours to close */
    else
        curl_multi_cleanup(m);
}

void cctx_curl_thread_cleanup(void)
{
    /* From a callback of a transfer this thread runs, the handle may be
     * the one running it: libcurl refuses to free it there, and it would
     * leak with its connections. The call drops it itself where it must. */
    if (cctx__curl_in_call)
        return;
    /* The cleanup closes descriptors (see cctx__curl_cancellation_off). */
    int cancellation = cctx__curl_cancellation_off();
    drop_thread_multi();
    cctx__curl_cancellation_back(cancellation);
}

/* The transfer's result, or false while it runs. */
static bool take_done(CURLM *m, CURL *easy, CURLcode *code)
{
    CURLMsg *msg;
    int queued;
    while ((msg = curl_multi_info_read(m, &queued)) != NULL) {
        if (msg->msg == CURLMSG_DONE && msg->easy_handle == easy) {
            *code = msg->data.result;
            return true;
        }
    }
    return false;
}

int cctx_curl_perform(cctx_t *ctx, CURL *easy, const cctx_curl_opts_t *opts,
                      cctx_curl_result_t *res)
{
    struct cc_xfer x;
    CURLM *call_multi = NULL; /* get_multi's handle for this call alone */
    if (!ctx || !easy) {
        if (res) {
            *res = (cctx_curl_result_t){.err = EINVAL, .code = CURLE_BAD_FUNCTION_ARGUMENT,
                                        .msg = curl_easy_strerror(CURLE_BAD_FUNCTION_ARGUMENT)};
        }
        return EINVAL;
    }
    if (cctx__curl_in_call) {
        /* From a libcurl callback of a call on this thread (this one's, or
         * a fan-out's, whose multi handle libcurl would not stop): the
         * outer transfers would stall while this one runs. */
        if (res) {
            *res = (cctx_curl_result_t){.err = EINVAL, .code = CURLE_BAD_FUNCTION_ARGUMENT,
                                        .msg = "called from inside a libcurl callback"};
        }
        return EINVAL;
    }
    cctx__curl_init(&x, easy, opts);
    int cancellation = cctx__curl_cancellation_off();
    cctx__curl_in_call = true;
    int64_t left = cctx__curl_budget(ctx);
    if (left <= 0) {
        (void)cctx__curl_prepare(&x, ctx, left); /* fails at once, setting nothing */
        goto out;
    }

    /* The options are set only once the handle is in our multi handle: a
     * handle libcurl refuses (one in the caller's own multi handle, whose
     * transfer is still to run there) keeps the header list and timeout
     * its owner gave it. */
    int done_fd = cctx_done_fd(ctx);
    if (done_fd < 0) {
        cctx__curl_finish_no_fd(&x, errno);
        goto out;
    }
    bool call_only;
    CURLM *m = get_multi(&call_only);
    if (call_only)
        call_multi = m;
    if (!m) {
        x.res.err = ENOMEM;
        x.res.code = CURLE_OUT_OF_MEMORY;
        x.res.msg = "no multi handle for the transfer";
        goto out;
    }
    CURLMcode mc = curl_multi_add_handle(m, easy);
    if (mc != CURLM_OK) {
        x.res.err = mc == CURLM_OUT_OF_MEMORY ? ENOMEM : EINVAL;
        x.res.code = x.res.err == ENOMEM ? CURLE_OUT_OF_MEMORY : CURLE_BAD_FUNCTION_ARGUMENT;
        x.res.msg = curl_multi_strerror(mc);
        goto out;
    }
    if (cctx__curl_prepare(&x, ctx, left) != 0) {
        curl_multi_remove_handle(m, easy);
        goto out;
    }

    CURLcode code = CURLE_OK;
    bool finished = false;
    for (;;) {
        int running;
        mc = curl_multi_perform(m, &running);
        if (mc != CURLM_OK && mc != CURLM_CALL_MULTI_PERFORM) {
            code = mc == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY : CURLE_FAILED_INIT;
            finished = true;
            break;
        }
        if (take_done(m, easy, &code)) {
            finished = true;
            break;
        }
        if (cctx_err(ctx))
            break;
        /* libcurl shortens the wait to its own next timer; the long limit
         * only bounds a wait with nothing at all pending. */
        struct curl_waitfd w = {.fd = done_fd, .events = CURL_WAIT_POLLIN};
        mc = curl_multi_poll(m, &w, 1, 1000, NULL);
        if (mc != CURLM_OK) {
            code = mc == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY : CURLE_FAILED_INIT;
            finished = true;
            break;
        }
        if (w.revents)
            break;
    }
    if (!finished)
        cctx__curl_before_abort(&x);
    curl_multi_remove_handle(m, easy);
    if (finished)
        cctx__curl_finish_libcurl(&x, ctx, code);
    else
        cctx__curl_finish_ctx(&x, ctx, true);
    /* Old libcurl must not reuse an HTTP/2 connection: closing the thread's
     * cache is the one public way to drop it (rare: flag HTTP/2 transfers
     * with CCTX_CURL_HTTP2 and this never happens). */
    bool drop = finished && cctx__curl_left_h2_connection(&x);
    cctx__curl_restore(&x);
    if (drop)
        drop_thread_multi();
out:
    if (call_multi)
        curl_multi_cleanup(call_multi); /* with cancellation off: it closes */
    cctx__curl_in_call = false;
    cctx__curl_cancellation_back(cancellation);
    if (res)
        *res = x.res;
    return x.res.err;
}
