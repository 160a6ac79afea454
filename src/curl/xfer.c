/* SPDX-License-Identifier: MIT */
/* One transfer's life around libcurl: the budget check and the headers
 * before it, the outcome and the options put back after it. Shared by
 * cctx_curl_perform and the fan-out. */
#define _GNU_SOURCE
#include "../atomics.h"
#include "curl_internal.h"

#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Whether the libcurl running (not the one built against) is older than
 * `version`, read once into *cache: curl_version_info is cheap but not free,
 * and the answer never changes within a process. A race only computes it
 * twice. */
static bool running_before(int *cache, unsigned version)
{
    int v = cctx__plain_load_relaxed(cache);
    if (v < 0) {
        v = curl_version_info(CURLVERSION_NOW)->version_num < version;
        cctx__plain_store_relaxed(cache, v);
    }
    return v;
}

bool cctx__curl_old_libcurl(void)
{
    static int old = -1;
    return running_before(&old, 0x075900);
}

bool cctx__curl_stale_os_errno(void)
{
    static int stale = -1;
    return running_before(&stale, 0x080800);
}

/* The count lives here, in cctx-curl: the core's own fork generation is not
 * part of its public API. */
static _Atomic uint32_t fork_count;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static void fork_child(void)
{
    cctx__atomic_fetch_add_relaxed(&fork_count, 1);
}

static void fork_register(void)
{
    (void)pthread_atfork(NULL, NULL, fork_child);
}

uint32_t cctx__curl_fork_count(void)
{
    pthread_once(&fork_once, fork_register);
    return cctx__atomic_load_relaxed(&fork_count);
}

_Thread_local bool cctx__curl_in_call;

void cctx__curl_init(struct cc_xfer *x, CURL *easy, const cctx_curl_opts_t *opts)
{
    /* Only the small fields: the header buffers are written before they
     * are read, and zeroing 600 bytes per call shows in the overhead. */
    x->easy = easy;
    if (opts)
        x->opts = *opts;
    else
        x->opts = (cctx_curl_opts_t){0};
    memset(&x->res, 0, sizeof x->res);
    x->res.msg = curl_easy_strerror(CURLE_OK);
    x->forbid_reuse = x->added = x->done = false;
    x->os_errno_before = 0;
}

/* Whether the caller's list has a header called name (name without the
 * colon). "name:" sets it, "name;" sends it empty, and "name:" with no
 * value removes libcurl's own: all three mean the caller decided. */
static bool has_header(const struct curl_slist *l, const char *name)
{
    size_t n = strlen(name);
    for (; l; l = l->next) {
        const char *d = l->data;
        if (d && strncasecmp(d, name, n) == 0) {
            size_t i = n;
            while (d[i] == ' ' || d[i] == '\t')
                i++;
            if (d[i] == ':' || d[i] == ';')
                return true;
        }
    }
    return false;
}

/* Whether a value may go on a header line: cctx_with_trace checks only the
 * length of a trace's state, and a line break in it would end the header
 * and start one of whoever wrote it. The bytes cctx_tracestate_parse
 * accepts: printable ASCII and tabs. */
static bool header_safe(const char *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if ((c < 0x20 || c > 0x7e) && c != '\t')
            return false;
    }
    return true;
}

int cctx__curl_settle(cctx_t *ctx)
{
    int err = cctx_err(ctx);
    if (err)
        return err;
    int fd = cctx_done_fd(ctx);
    if (fd < 0)
        return cctx_err(ctx);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    (void)poll(&p, 1, 100);
    return cctx_err(ctx);
}

void cctx__curl_finish_ctx(struct cc_xfer *x, cctx_t *ctx, bool settle)
{
    cctx_curl_result_t *r = &x->res;
    int err = settle ? cctx__curl_settle(ctx) : cctx_err(ctx);
    if (err) {
        cctx_cause(ctx, &r->cause);
        r->err = err;
        r->msg = r->cause.msg;
    } else {
        /* The deadline has passed but the timer has not marked ctx yet (a
         * moment after the deadline, or a stalled timer thread): still a
         * deadline, with a cause made here, which knows when but not where
         * the deadline was set. */
        r->err = ETIMEDOUT;
        r->msg = "context deadline exceeded";
        r->cause.err = ETIMEDOUT;
        r->cause.msg = r->msg;
        /* A grace context's end that came before ctx's own deadline
         * (cctx__curl_budget) leaves that deadline ahead: the time is then
         * now, a moment after the grace context's end. */
        int64_t when, now = cctx_now();
        r->cause.when = cctx_deadline(ctx, &when) && when <= now ? when : now;
    }
    r->code = r->err == ETIMEDOUT ? CURLE_OPERATION_TIMEDOUT : CURLE_ABORTED_BY_CALLBACK;
    x->done = true;
}

void cctx__curl_finish_no_fd(struct cc_xfer *x, int err)
{
    /* Not ctx's doing: no cause, and not ETIMEDOUT or ECANCELED, which
     * would tell the caller ctx ended. */
    cctx_curl_result_t *r = &x->res;
    r->err = err ? err : EMFILE;
    r->code = CURLE_FAILED_INIT;
    r->msg = "no descriptor to wait on the context with (cctx_done_fd failed)";
    memset(&r->cause, 0, sizeof r->cause);
    x->done = true;
}

static struct curl_slist *push(struct cc_xfer *x, int *n, char *data, struct curl_slist *next)
{
    struct curl_slist *node = &x->nodes[(*n)++];
    node->data = data;
    node->next = next;
    return node;
}

int64_t cctx__curl_budget(cctx_t *ctx)
{
    /* cctx_grpc_timeout_of's budget, not cctx_remaining: under a grace
     * context a context ends when the grace context does, though its own
     * deadline (cctx_deadline) may be later, and a receiver must not be
     * given more time than we have. It is read back from the header's
     * text, so that the header cctx__curl_prepare formats from it is the
     * one read here, the same for every transfer of a fan-out, and the
     * context is read once: one that ends after that is sent the budget
     * as read, and ended through its done descriptor (or not sent at all,
     * when it ends before the call's first look). Rounded up to the
     * header's unit (a microsecond below 100 s), which libcurl's timeout,
     * rounded up to a millisecond, does not see. */
    char t[CCTX_GRPC_TIMEOUT_SIZE];
    int err = cctx_grpc_timeout_of(ctx, t);
    if (err == ENOENT)
        return CCTX_NO_DEADLINE;
    int64_t left;
    if (err || cctx_grpc_timeout_parse(t, strlen(t), &left) != 0)
        return 0; /* done, or its deadline passed before its timer fired */
    /* 2562048H, the format of a budget near INT64_MAX nanoseconds, reads
     * back as no deadline: it is still one. */
    return left == CCTX_NO_DEADLINE ? CCTX_NO_DEADLINE - 1 : left;
}

/* A transfer removed while libcurl's resolver thread still looks its host
 * up waits, in the removal, for that lookup to end (seconds, with a slow
 * name server), unless CURLOPT_QUICK_EXIT lets the thread finish alone and
 * free what it holds then. A libcurl without the option (before 7.87.0)
 * refuses it, and its removal waits. */
static void set_quick_exit(struct cc_xfer *x, long on)
{
#if LIBCURL_VERSION_NUM >= 0x075700
    (void)curl_easy_setopt(x->easy, CURLOPT_QUICK_EXIT, on);
#else
    (void)x;
    (void)on;
#endif
}

int cctx__curl_prepare(struct cc_xfer *x, cctx_t *ctx, int64_t left)
{
    if (left <= 0) {
        /* Spent or ended: fail here, at once and sending nothing (as gRPC
         * does); a deadline not yet marked gets a cause made here rather
         * than a wait for the timer. */
        cctx__curl_finish_ctx(x, ctx, false);
        return x->res.err;
    }
    if (cctx__curl_stale_os_errno())
        curl_easy_getinfo(x->easy, CURLINFO_OS_ERRNO, &x->os_errno_before);

    struct curl_slist *list = x->opts.headers;
    int n = 0;
    if (!(x->opts.flags & CCTX_CURL_NO_TRACE) && !has_header(x->opts.headers, CCTX_HEADER_TRACEPARENT)) {
        cctx_trace_t span;
        char *value = x->parent + sizeof CC_HDR_PARENT - 1;
        int err = cctx_trace_child(cctx_trace_of(ctx), &span);
        if (err == EINVAL) {
            /* No trace-id (a trace filled in by hand), which has no child:
             * start a new trace, as a W3C hop does with a traceparent it
             * cannot read; the old state goes with it. */
            err = cctx_trace_new(&span);
        }
        if (err == 0)
            (void)cctx_traceparent_format(&span, value);
        if (err) {
            x->res.err = err == ENOMEM ? ENOMEM : EIO;
            x->res.code = CURLE_FAILED_INIT;
            x->res.msg = "no random bytes for a trace span";
            x->done = true;
            return x->res.err;
        }
        memcpy(x->parent, CC_HDR_PARENT, sizeof CC_HDR_PARENT - 1);
        memcpy(x->res.traceparent, value, CCTX_TRACEPARENT_SIZE);
        if (span.state_len > 0 && header_safe(span.state, span.state_len) &&
            !has_header(x->opts.headers, CCTX_HEADER_TRACESTATE)) {
            memcpy(x->state, CC_HDR_STATE, sizeof CC_HDR_STATE - 1);
            memcpy(x->state + sizeof CC_HDR_STATE - 1, span.state, span.state_len);
            x->state[sizeof CC_HDR_STATE - 1 + span.state_len] = '\0';
            list = push(x, &n, x->state, list);
        }
        list = push(x, &n, x->parent, list);
    }
    if (left != CCTX_NO_DEADLINE && !(x->opts.flags & CCTX_CURL_NO_GRPC_TIMEOUT) &&
        !has_header(x->opts.headers, CCTX_HEADER_GRPC_TIMEOUT)) {
        char t[CCTX_GRPC_TIMEOUT_SIZE];
        if (cctx_grpc_timeout_format(left, t) == 0) {
            snprintf(x->timeout, sizeof x->timeout, CC_HDR_TIMEOUT "%s", t);
            list = push(x, &n, x->timeout, list);
        }
    }

    if (curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, cc_timeout_ms(left, LONG_MAX)) != CURLE_OK ||
        curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, list) != CURLE_OK) {
        cctx__curl_restore_unsent(x);
        x->res.err = EINVAL;
        x->res.code = CURLE_BAD_FUNCTION_ARGUMENT;
        x->res.msg = curl_easy_strerror(x->res.code);
        x->done = true;
        return EINVAL;
    }
    if ((x->opts.flags & CCTX_CURL_HTTP2) && cctx__curl_old_libcurl()) {
        curl_easy_setopt(x->easy, CURLOPT_FORBID_REUSE, 1L);
        x->forbid_reuse = true;
    }
    set_quick_exit(x, 1L);
    return 0;
}

void cctx__curl_restore(struct cc_xfer *x)
{
    /* A transfer that failed before it sent its request (no URL, no such
     * host, a refused connection) sent no traceparent either. libcurl
     * counts the request's bytes anew only once the options are checked:
     * a handle refused before (no URL, an option that contradicts
     * another) still shows its last transfer's count. */
    long sent = 0;
    if (x->res.traceparent[0] &&
        (x->res.code == CURLE_URL_MALFORMAT || x->res.code == CURLE_BAD_FUNCTION_ARGUMENT ||
         curl_easy_getinfo(x->easy, CURLINFO_REQUEST_SIZE, &sent) != CURLE_OK || sent <= 0))
        x->res.traceparent[0] = '\0';
    curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->opts.headers);
    curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, 0L);
    set_quick_exit(x, 0L);
    if (x->forbid_reuse) {
        curl_easy_setopt(x->easy, CURLOPT_FORBID_REUSE, 0L);
        x->forbid_reuse = false;
    }
}

void cctx__curl_restore_unsent(struct cc_xfer *x)
{
    cctx__curl_restore(x);
    x->res.traceparent[0] = '\0'; /* prepared, never sent */
}

void cctx__curl_before_abort(struct cc_xfer *x)
{
    /* libcurl reads FORBID_REUSE when the transfer is done, which removal
     * does, so setting it now closes the connection (unless another
     * transfer still uses it; the last one out closes it then). */
    if (cctx__curl_old_libcurl() && !x->forbid_reuse) {
        curl_easy_setopt(x->easy, CURLOPT_FORBID_REUSE, 1L);
        x->forbid_reuse = true;
    }
}

/* libcurl's limit for the header block of one response, interim ones
 * included (MAX_HTTP_RESP_HEADER_SIZE, from 8.3 and in Debian's 7.88.1):
 * it fails a transfer that passes it with a receive error and no system
 * error, in every version since. */
#define CC_HEADER_BLOCK_MAX (300 * 1024)

/* Whether the failure is the peer's response header past libcurl's limits:
 * a line past 100 KB, which the libcurl running reports from 8.6 on as
 * CURLE_TOO_LARGE (100: the number, for a build against older headers), and
 * before as out of memory, which once the response has begun (a status, a
 * header line, or its first byte read: a status line with no end has
 * neither of the others; libcurl also marks that time when it starts to
 * upload a body, where nothing else fails for want of memory either); or
 * a header block past 300 KB, a receive error with no system error (os,
 * as known) after that many header bytes. */
static bool header_too_large(CURL *easy, CURLcode code, long os)
{
    static int before_8_6 = -1;
    long header_bytes = 0;
    if (code == CURLE_RECV_ERROR && os == 0) {
        curl_easy_getinfo(easy, CURLINFO_HEADER_SIZE, &header_bytes);
        return header_bytes > CC_HEADER_BLOCK_MAX;
    }
    if (!running_before(&before_8_6, 0x080600))
        return code == (CURLcode)100;
    if (code != CURLE_OUT_OF_MEMORY)
        return false;
    long status = 0;
    curl_off_t first_byte = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(easy, CURLINFO_HEADER_SIZE, &header_bytes);
    curl_easy_getinfo(easy, CURLINFO_STARTTRANSFER_TIME_T, &first_byte);
    return status != 0 || header_bytes > 0 || first_byte > 0;
}

/* Whether an unsupported protocol is the peer's reply rather than the
 * caller's URL: libcurl refuses an answer that is not HTTP (it takes it for
 * HTTP/0.9) with the code it gives a scheme it does not know, but only
 * after reading it, and before any status (a redirect to such a scheme has
 * the redirect's status, and its URL is one libcurl cannot use). A reply
 * that is not HTTP after a redirect keeps the redirect's status too, and
 * libcurl says nothing else that tells it from a refused redirect: it
 * stays EINVAL. */
static bool reply_not_http(CURL *easy, CURLcode code)
{
    if (code != CURLE_UNSUPPORTED_PROTOCOL)
        return false;
    long status = 0;
    curl_off_t first_byte = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(easy, CURLINFO_STARTTRANSFER_TIME_T, &first_byte);
    return status == 0 && first_byte > 0;
}

void cctx__curl_finish_libcurl(struct cc_xfer *x, cctx_t *ctx, CURLcode code)
{
    cctx_curl_result_t *r = &x->res;
    if (code == CURLE_OPERATION_TIMEDOUT && cctx__curl_budget(ctx) <= CCTX_MSEC(1)) {
        /* libcurl's timeout is the budget rounded up to a millisecond, so
         * this is the context's deadline (or a grace context's end above
         * it) reached a hair before its timer marked it, or the context
         * ended: report it as the context's, with its cause. */
        cctx__curl_finish_ctx(x, ctx, true);
        return;
    }
    r->code = code;
    r->msg = curl_easy_strerror(code);
    long os = 0;
    if (code != CURLE_OK)
        curl_easy_getinfo(x->easy, CURLINFO_OS_ERRNO, &os);
    /* Old libcurl keeps the last value it set, perhaps in an earlier
     * transfer on this handle: unchanged means unknown, except for a
     * failed connect, which always sets it. */
    if (os == x->os_errno_before && code != CURLE_COULDNT_CONNECT && cctx__curl_stale_os_errno())
        os = 0;
    r->err = cctx__curl_errno_of(code, os);
    if (header_too_large(x->easy, code, os)) {
        r->err = EMSGSIZE;
        r->msg = "response header too large";
    } else if (reply_not_http(x->easy, code)) {
        r->err = EPROTO;
    }
    x->done = true;
}

bool cctx__curl_left_h2_connection(const struct cc_xfer *x)
{
    if (!cctx__curl_old_libcurl() || x->forbid_reuse)
        return false;
    long v = 0;
    if (curl_easy_getinfo(x->easy, CURLINFO_HTTP_VERSION, &v) != CURLE_OK)
        return false;
    return v == CURL_HTTP_VERSION_2_0;
}
