/* SPDX-License-Identifier: MIT */
/*
 * cctx/curl.h — libcurl transfers bound to a context (library cctx-curl,
 * pkg-config module cctx-curl, CMake component cctx::curl).
 *
 *     CURL *easy = curl_easy_init();
 *     curl_easy_setopt(easy, CURLOPT_URL, "http://backend/item/7");
 *     cctx_curl_result_t res;
 *     if (cctx_curl_perform(ctx, easy, NULL, &res) != 0)
 *         log("%s: %s", strerror(res.err), res.msg);  // ECANCELED, ETIMEDOUT,
 *                                                     // ECONNREFUSED, ...
 *
 * What a call does, in order:
 *  1. If ctx is already done, or its remaining budget is spent, it fails at
 *     once with ECANCELED or ETIMEDOUT and sends nothing (no connection is
 *     made): a call that could not finish in time is not started, as gRPC
 *     does. The budget is cctx_grpc_timeout_of's: the time to the earliest
 *     deadline that will end ctx, a grace context's end above it included
 *     (cctx_with_grace), read once. It does not wait for the timer to mark
 *     a deadline that has passed: the cause is then made here (ETIMEDOUT,
 *     "context deadline exceeded", when = the deadline, or now when ctx's
 *     own deadline is still ahead and a grace context's end passed; no
 *     file or line).
 *  2. It adds request headers, each unless the caller's own list (see
 *     cctx_curl_opts_t.headers) already has a header of that name:
 *       grpc-timeout: the remaining budget, rounded up (only when ctx has
 *                     one: a deadline, or a grace context above it whose
 *                     parent has one);
 *       traceparent:  a new span, child of cctx_trace_of(ctx) (of a new
 *                     trace, without state, when ctx carries none or one
 *                     whose trace-id is all zero), and
 *       tracestate:   the trace's state, when it has one and this call sent
 *                     the traceparent, and it holds only printable ASCII
 *                     and tabs (a state filled in by hand with a line
 *                     break in it would add headers of its own).
 *     The names are compared without regard to case, as HTTP does. A
 *     redirect that libcurl follows (CURLOPT_FOLLOWLOCATION) sends the
 *     same headers to the next URL: its grpc-timeout is the budget as it
 *     was at the start (the transfer still ends at ctx's deadline), and
 *     the trace goes to that host too; CCTX_CURL_NO_TRACE, or following
 *     redirects by hand, keeps it from a host it should not reach.
 *  3. It sets CURLOPT_TIMEOUT_MS to the remaining budget, rounded up to a
 *     whole millisecond (0, no limit, when ctx has no deadline, or when
 *     the milliseconds do not fit in a long: past about 24.8 days where a
 *     long has 32 bits; ctx's deadline still ends the transfer). libcurl
 *     counts real milliseconds: under the fake clock of <cctx/testing.h>,
 *     whose budget is virtual, a transfer that takes longer in real time
 *     than that budget ends with libcurl's timeout (ETIMEDOUT, code
 *     CURLE_OPERATION_TIMEDOUT, no cause) while ctx is still active; give
 *     such tests a virtual budget longer than their transfers take.
 *  4. It runs the transfer on a multi handle, waiting in curl_multi_poll with
 *     cctx_done_fd(ctx) as an extra descriptor, so a cancel or a deadline
 *     wakes it at once and the transfer is removed from the multi handle
 *     (its connection closed: the peer sees the request end) within a
 *     millisecond, not at libcurl's next progress callback. That holds
 *     while libcurl still looks the host up, too: the call sets
 *     CURLOPT_QUICK_EXIT, so the removal leaves a lookup in progress to
 *     libcurl's resolver thread, which frees what it holds once the name
 *     server answers, rather than waiting for it (libcurl 7.87.0 or later;
 *     before that, the removal waits for the lookup). The descriptor is
 *     looked at between libcurl's steps, not inside curl_multi_perform:
 *     a callback of the caller's that blocks delays the end by as long,
 *     and so does content decoding (CURLOPT_ACCEPT_ENCODING), where one
 *     step reads up to 100 buffers and decodes each in full: 1.6 GB of
 *     output from a gzip bomb of zeros, seconds (measured 8 to 11 s). A
 *     write callback that returns 0 once cctx_err(ctx) is set ends such a
 *     transfer within one call of it (ECONNABORTED: the callback stopped
 *     it; cctx_cause(ctx) says why). A fan-out's other transfers wait for
 *     such a step as well.
 *  5. It puts back the options it set, so the easy handle can be reused:
 *     CURLOPT_HTTPHEADER becomes the caller's list again (opts->headers, or
 *     none), CURLOPT_TIMEOUT_MS, CURLOPT_QUICK_EXIT and
 *     CURLOPT_FORBID_REUSE become 0 (their defaults). libcurl has no getter
 *     for options, so a caller's own value of those is not kept: bound a
 *     transfer with a context's deadline instead of CURLOPT_TIMEOUT(_MS).
 *
 * HTTP/2 on libcurl before 7.89.0. Those versions do not reset an HTTP/2
 * stream that is removed from its multi handle (the server never learns the
 * request was abandoned), and their prior-knowledge h2c connections break
 * when reused (docs/curl.md). On such a libcurl a transfer flagged
 * CCTX_CURL_HTTP2 gets CURLOPT_FORBID_REUSE, an aborted transfer gets it
 * before it is removed (so the abort closes its connection, which the server
 * sees as a cancel of every stream on it), and a transfer that turned out to
 * be HTTP/2 without the flag (negotiated over TLS) has the connections it
 * could have left behind closed after it. Newer libcurl is left alone.
 *
 * Threads. libcurl's rules hold: an easy handle is used by one thread at a
 * time, and a cctx_curl_multi_t likewise. cctx_curl_perform may be called
 * from any number of threads at once, each with its own easy handles; each
 * thread keeps one multi handle (its connection cache, so consecutive calls
 * on a thread reuse connections), freed when the thread exits or by
 * cctx_curl_thread_cleanup. (With every thread-specific key of the process
 * taken, PTHREAD_KEYS_MAX, nothing could free it at the thread's exit: each
 * call then makes a multi handle for itself and frees it before returning,
 * and no connection is reused.) The context may be canceled from any thread
 * (or by its deadline) while a call runs: that is what the done descriptor
 * is for. Neither cctx_curl_perform nor cctx_curl_multi_run may be called
 * from inside a libcurl callback of either running on the same thread
 * (EINVAL, nothing sent): the outer transfers would stall meanwhile.
 *
 * Thread cancellation (pthread_cancel). No call of this header is a
 * cancellation point, although libcurl makes many (connect, send, recv,
 * poll, close): libcurl's code cannot be unwound halfway, which left the
 * easy handle in a multi handle with the options of steps 2 and 3 still
 * set (the header list pointing into the dead thread's stack), or a
 * multi handle never freed. A cancel pending or sent while a call runs acts
 * at the thread's next cancellation point after it returns, so a transfer
 * waits for ctx (or libcurl's own end) first: end transfers with ctx, not
 * with pthread_cancel. Callbacks the caller set on the easy handle run with
 * cancellation off too, and so does the free of the thread's multi handle
 * when the thread exits (a cancel held back by the last call is still
 * pending there).
 *
 * fork(). A child's copy of a multi handle caches its parent's connections,
 * sockets the parent goes on using. cctx-curl counts forks (a
 * pthread_atfork child handler) and tags each multi handle with the count
 * it was made under: in a child, the next call on the forking thread (and
 * cctx_curl_thread_cleanup) abandons the inherited handle without cleaning
 * it up (that could write on the parent's connections, e.g. a TLS
 * close_notify) and makes a new one, so the child's requests go out on new
 * connections. A cctx_curl_multi_t inherited by a child is treated the same
 * on its next run and by cctx_curl_multi_free. The abandoned handle's
 * memory and descriptors stay in the child.
 *
 * curl_global_init. The library never calls curl_global_init or
 * curl_global_cleanup. Call curl_global_init(CURL_GLOBAL_DEFAULT) once in
 * main, before starting threads (libcurl requires it there unless it
 * reports CURL_VERSION_THREADSAFE), and curl_global_cleanup last, after
 * every thread that made calls has exited or called
 * cctx_curl_thread_cleanup. cctx's own runner threads (where an
 * after-function of a deadline runs) exit only 2 s after going idle and are
 * not joined at exit: an after-function that calls cctx_curl_perform calls
 * cctx_curl_thread_cleanup itself before it returns.
 *
 * Errors are errno values, as everywhere in cctx; the result structure also
 * carries libcurl's CURLcode and its text. See cctx_curl_result_t.
 */
#ifndef CCTX_CURL_H
#define CCTX_CURL_H

#include <cctx.h>
#include <cctx/propagate.h>

#include <curl/curl.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Options and results ------------------------------------------------- */

enum {
    /* Do not send grpc-timeout (a peer that rejects unknown headers). */
    CCTX_CURL_NO_GRPC_TIMEOUT = 1u << 0,
    /* Send neither traceparent nor tracestate. */
    CCTX_CURL_NO_TRACE = 1u << 1,
    /* The transfer speaks HTTP/2 (the caller set CURLOPT_HTTP_VERSION to a
     * 2.x value): on libcurl before 7.89.0 its connection is not reused (see
     * the top of this file). Harmless when wrong. */
    CCTX_CURL_HTTP2 = 1u << 2,
};

/* Per-transfer options; a NULL pointer means all zero. */
typedef struct cctx_curl_opts {
    /* The list the caller gave CURLOPT_HTTPHEADER, or NULL for none. libcurl
     * cannot say which list an easy handle holds, so the caller names it
     * here: the call sends cctx's headers followed by this list (without
     * copying it; it must stay valid and unchanged during the call) and sets
     * it back afterwards. A list set with CURLOPT_HTTPHEADER and not named
     * here is replaced for the call and not restored. */
    struct curl_slist *headers;
    unsigned flags; /* CCTX_CURL_* above */
} cctx_curl_opts_t;

/* The outcome of one transfer. */
typedef struct cctx_curl_result {
    /* 0 when libcurl completed the transfer (whatever the HTTP status: read
     * it with CURLINFO_RESPONSE_CODE), else an errno value:
     *   ECANCELED, ETIMEDOUT  ctx ended (before or during the transfer;
     *                         cause says why), or libcurl's own timeout
     *                         (which is the budget) fired: ETIMEDOUT;
     *   ECONNREFUSED, EHOSTUNREACH, ENETUNREACH, ECONNRESET, EPIPE, ...
     *                         a socket failure (could not connect, send or
     *                         receive failed, empty reply, interface failed)
     *                         with the system error libcurl saw there
     *                         (CURLINFO_OS_ERRNO, read for these alone: libcurl
     *                         sets it on them only and never clears it);
     *   ECONNREFUSED          connection failed, no system error known;
     *   EADDRNOTAVAIL         the interface to send from failed (CURLOPT_
     *                         INTERFACE), no system error known;
     *   ECONNRESET            empty reply, partial file, send or receive
     *                         failed, no system error known;
     *   EHOSTUNREACH          name resolution failed;
     *   EINVAL                bad or unsupported URL (a redirect's too) or
     *                         option;
     *   ENOMEM                out of memory (libcurl's or cctx's);
     *   EMSGSIZE              a response header past libcurl's limits, 100 KB
     *                         for a line (the status line too; a libcurl
     *                         before 8.6 says out of memory, which there,
     *                         once the response has begun, is taken for
     *                         this) and 300 KB for the header block, interim
     *                         responses included (a receive failure with no
     *                         system error, past that many header bytes);
     *                         over HTTP/2 libcurl 7.88 says no more than
     *                         that receiving failed (ECONNRESET); msg
     *                         "response header too large";
     *   EMFILE, ENFILE        no descriptor left for cctx_done_fd(ctx): nothing
     *                         sent, ctx did not end, code CURLE_FAILED_INIT;
     *   EPROTO                HTTP/2, HTTP/3, QUIC, TLS (a client certificate
     *                         the server required, too) or protocol errors; a
     *                         reply that is not HTTP (libcurl's code is then
     *                         CURLE_UNSUPPORTED_PROTOCOL, as for a URL; after
     *                         a redirect such a reply stays EINVAL: libcurl
     *                         keeps the redirect's status, as when it refuses
     *                         the redirect's URL);
     *   ECONNABORTED          the caller's own callback stopped it (a progress
     *                         callback returned non-zero, a write callback took
     *                         less than given, a read callback aborted);
     *   ELOOP, EFBIG, EACCES  too many redirects, too large, access denied;
     *   EIO                   anything else. */
    int err;
    /* libcurl's result. CURLE_OK on success; for a transfer ended by ctx,
     * CURLE_OPERATION_TIMEDOUT (deadline) or CURLE_ABORTED_BY_CALLBACK
     * (cancel), also when nothing was sent. */
    CURLcode code;
    /* One line saying why: the context's cause message when ctx ended it,
     * else curl_easy_strerror(code) ("No error" on success), or a line of
     * cctx's own for a failure of its own (no done descriptor, a call from
     * a callback). Static or owned by ctx: valid while the caller holds
     * ctx. Never NULL. */
    const char *msg;
    /* ctx's cause when ctx ended the transfer (err is ECANCELED or
     * ETIMEDOUT and cause.err equals it); all zero otherwise. */
    cctx_cause_t cause;
    /* The traceparent this call sent, "" if it sent none (flag, caller's own
     * header, or failed before sending). */
    char traceparent[CCTX_TRACEPARENT_SIZE];
} cctx_curl_result_t;

/* ---- One transfer -------------------------------------------------------- */

/* curl_easy_perform(easy) bound to ctx, as described at the top of this
 * file. Returns res->err (0 or an errno value, see cctx_curl_result_t);
 * res may be NULL. EINVAL (nothing sent) for a NULL ctx or easy, an easy
 * handle that is in a multi handle already, or a call made from inside a
 * libcurl callback of a cctx_curl_perform or cctx_curl_multi_run running on
 * the same thread. EMFILE or ENFILE (nothing sent) when cctx_done_fd(ctx)
 * finds no descriptor. A call that fails so, or because ctx was done or
 * spent, changes no option of easy (a handle in the caller's own multi
 * handle keeps the header list and timeout its transfer there runs with).
 * The easy handle's own callbacks, CURLOPT_PRIVATE and every option not
 * named above are the caller's and are left alone. */
CCTX_API int cctx_curl_perform(cctx_t *ctx, CURL *easy, const cctx_curl_opts_t *opts,
                               cctx_curl_result_t *res);

/* Frees the calling thread's multi handle and closes its cached
 * connections (also done when the thread exits). Call it on the main
 * thread before curl_global_cleanup, and at the end of an after-function
 * that made calls (cctx's runner threads outlive it). Safe to call at any
 * time; the next call makes a new one. From inside a libcurl callback of a
 * cctx_curl_perform or cctx_curl_multi_run on the same thread it does
 * nothing (the handle may be running that very transfer). In a child of
 * fork() an inherited handle is abandoned, not closed (see the top). */
CCTX_API void cctx_curl_thread_cleanup(void);

/* ---- Many transfers under one context (fan-out) -------------------------- */

typedef struct cctx_curl_multi cctx_curl_multi_t;

/* A set of transfers run together from one thread. NULL with errno ENOMEM. */
CCTX_API cctx_curl_multi_t *cctx_curl_multi_new(void);

/* Adds easy (with opts, copied; opts->headers itself is not copied and must
 * live until the run ends) to the next run. Returns the transfer's index
 * (0, 1, ... in order of adding), or -1 with errno EINVAL (NULL argument,
 * an easy handle added twice, a run under way) or ENOMEM. */
CCTX_API int cctx_curl_multi_add(cctx_curl_multi_t *m, CURL *easy, const cctx_curl_opts_t *opts);

/* Runs every transfer added since the last run, at once, until all are
 * done or ctx ends. Headers and the timeout are those of
 * cctx_curl_perform, from ctx's budget read once at the start: every
 * transfer gets the same grpc-timeout and libcurl timeout, and all are sent
 * or (budget spent) none (every transfer gets its own span). When ctx
 * ends, every unfinished transfer is aborted at once (within a
 * millisecond, between libcurl's steps: see step 4 at the top) with ctx's
 * error and cause; those already finished keep their results. Afterwards
 * every easy handle is out of the multi handle with its options put back,
 * and free for reuse. Returns 0 when ctx did
 * not end the run (each transfer may still have failed on its own: read
 * the results), ctx's error (ECANCELED, ETIMEDOUT) when it did or was
 * already done or spent (nothing is sent then), EMFILE or ENFILE when
 * cctx_done_fd(ctx) found no descriptor (nothing sent; each result has
 * that error, code CURLE_FAILED_INIT and no cause: ctx did not end),
 * EINVAL (NULL argument, a run under way, or a call from inside a libcurl
 * callback of a cctx_curl_perform or cctx_curl_multi_run on this thread),
 * or ENOMEM (nothing sent). The connections stay cached in m for the next
 * run. */
CCTX_API int cctx_curl_multi_run(cctx_curl_multi_t *m, cctx_t *ctx);

/* The number of transfers of the last (or coming) run, and the result of
 * transfer i of the last run: NULL for an index out of range. Valid until
 * the next cctx_curl_multi_add after a run, or cctx_curl_multi_free. */
CCTX_API size_t cctx_curl_multi_count(const cctx_curl_multi_t *m);
CCTX_API const cctx_curl_result_t *cctx_curl_multi_result(const cctx_curl_multi_t *m, size_t i);

/* Frees m and closes its connections. The easy handles stay the caller's
 * (they are out of m after each run; transfers added but never run are
 * simply forgotten). NULL does nothing. Called from inside a libcurl
 * callback of m's own run, it frees m as that run ends (the run goes on
 * and returns as usual; its results go with m). */
CCTX_API void cctx_curl_multi_free(cctx_curl_multi_t *m);

/* ---- gRPC over libcurl ---------------------------------------------------- */

/* gRPC puts its status in the response trailers (or in the headers, for a
 * response without a body). libcurl hands trailers to CURLOPT_HEADERFUNCTION
 * like headers, so this pair reads them:
 *
 *     cctx_curl_grpc_status_t st;
 *     cctx_curl_grpc_status_init(&st);
 *     curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, cctx_curl_grpc_header_cb);
 *     curl_easy_setopt(easy, CURLOPT_HEADERDATA, &st);
 *     ... cctx_curl_perform ...
 *     if (st.status == 0) ok;
 */
typedef struct cctx_curl_grpc_status {
    int status;       /* grpc-status, -1 while none was seen                 */
    char message[256]; /* grpc-message, percent-decoding left to the caller,
                          truncated; "" if none                               */
} cctx_curl_grpc_status_t;

CCTX_API void cctx_curl_grpc_status_init(cctx_curl_grpc_status_t *st);
/* A CURLOPT_HEADERFUNCTION: userdata is a cctx_curl_grpc_status_t. Records
 * grpc-status and grpc-message, ignores every other line, and returns
 * size * nitems (never fails the transfer). A malformed grpc-status (not
 * a decimal number that fits 32 bits, which may have a '+' and zeros
 * before it) reads as 13
 * (INTERNAL), as grpc-go fails it; so does a negative one (grpc-go keeps
 * it as a code). Each response's status line
 * starts the record afresh, so what a redirect or an interim response said
 * is not taken for the final one's status. */
CCTX_API size_t cctx_curl_grpc_header_cb(char *buffer, size_t size, size_t nitems,
                                         void *userdata);

/* Frames one gRPC message: a 5-byte prefix (not compressed, big-endian
 * length) followed by len bytes of msg, into out, which holds out_size
 * bytes. Returns the framed length (len + 5), or 0 with errno EINVAL (NULL
 * argument) or ENOBUFS (out too small; also a len above 4 GiB - 1). */
CCTX_API size_t cctx_curl_grpc_frame(const void *msg, size_t len, void *out, size_t out_size);

#ifdef __cplusplus
}
#endif

#endif /* CCTX_CURL_H */
