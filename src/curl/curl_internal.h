/* SPDX-License-Identifier: MIT */
/* Shared by the parts of cctx-curl: one transfer's preparation, its
 * outcome, and what differs between libcurl versions. */
#ifndef CCTX_CURL_INTERNAL_H
#define CCTX_CURL_INTERNAL_H

#include <cctx/curl.h>

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define CC_HDR_TIMEOUT "grpc-timeout: "
#define CC_HDR_PARENT "traceparent: "
#define CC_HDR_STATE "tracestate: "

/* One transfer between cctx__curl_prepare and cctx__curl_restore. The
 * header nodes live here and point at the caller's list, so the merged list
 * costs no allocation and the caller's list is never copied or changed. */
struct cc_xfer {
    CURL *easy;
    cctx_curl_opts_t opts;
    cctx_curl_result_t res;
    struct curl_slist nodes[3];
    bool forbid_reuse; /* we set CURLOPT_FORBID_REUSE: put it back */
    bool added;        /* in a multi handle */
    bool done;         /* res is final */
    long os_errno_before; /* CURLINFO_OS_ERRNO before it ran (libcurl < 8.8.0) */
    char timeout[sizeof CC_HDR_TIMEOUT + CCTX_GRPC_TIMEOUT_SIZE];
    char parent[sizeof CC_HDR_PARENT + CCTX_TRACEPARENT_SIZE];
    char state[sizeof CC_HDR_STATE + CCTX_TRACESTATE_MAX + 1];
};

/* libcurl before 7.89.0: no stream reset on abort, broken h2c reuse. */
bool cctx__curl_old_libcurl(void);
/* libcurl before 8.8.0: CURLINFO_OS_ERRNO is never reset between
 * transfers, so it may be a previous transfer's. */
bool cctx__curl_stale_os_errno(void);

/* How many fork()s lie between the process that first asked and this one:
 * a child handler registered on the first call bumps it, so a multi handle
 * tagged with an older count was inherited from a parent. */
uint32_t cctx__curl_fork_count(void);

/* Set on a thread while cctx_curl_perform or cctx_curl_multi_run runs
 * there: a call from inside one of their libcurl callbacks is refused. */
extern _Thread_local bool cctx__curl_in_call;

/* The calls of cctx-curl are no cancellation points. libcurl reaches many
 * (connect, send, recv and poll in a transfer, close in a cleanup), and its
 * code has no cleanup handlers: a thread cancelled in one unwound through
 * libcurl halfway through updating its handles, and left the caller's easy
 * handle in a multi handle with the options cctx__curl_prepare set (the
 * header list pointing into the dead thread's stack), or a handle and its
 * connections never freed. No handler of ours could put that right, since
 * libcurl's own state is what is broken. So libcurl runs with cancellation
 * off, and a pthread_cancel acts at the thread's next cancellation point
 * after the call; ctx is what ends a transfer early. Returns the state to
 * give back to cctx__curl_cancellation_back (restored, never forced on). */
static inline int cctx__curl_cancellation_off(void)
{
    int old;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
    return old;
}

static inline void cctx__curl_cancellation_back(int old)
{
    pthread_setcancelstate(old, NULL);
}

/* Zeroes x and keeps easy and opts (NULL: all zero). */
void cctx__curl_init(struct cc_xfer *x, CURL *easy, const cctx_curl_opts_t *opts);
/* ctx's budget for a call starting now: 0 once ctx is done or its budget
 * spent, else cctx_grpc_timeout_of's (a grace context's end above ctx may
 * come before ctx's own deadline), rounded up to its unit;
 * CCTX_NO_DEADLINE without a deadline. */
int64_t cctx__curl_budget(cctx_t *ctx);
/* Sets the headers and the timeout on x->easy for budget left (from
 * cctx__curl_budget: the fan-out reads it once for all its transfers). 0,
 * or an errno value with x->res final and nothing set: ctx's error
 * (left <= 0: nothing is to be sent), ENOMEM, EINVAL. */
int cctx__curl_prepare(struct cc_xfer *x, cctx_t *ctx, int64_t left);
/* libcurl's own timeout (CURLOPT_TIMEOUT_MS) for budget left, rounded up:
 * libcurl must never give up before the budget is spent (the context's own
 * deadline is what ends the transfer on time). 0, no timeout of libcurl's,
 * without a deadline and where the milliseconds exceed long_max (LONG_MAX
 * in use; a 32-bit long holds about 24.8 days of them), where a cast would
 * wrap to a shorter or negative timeout; the context's deadline still ends
 * the transfer then. */
static inline long cc_timeout_ms(int64_t left, long long_max)
{
    if (left <= 0 || left == CCTX_NO_DEADLINE)
        return 0;
    int64_t ms = left / CCTX_MSEC(1) + (left % CCTX_MSEC(1) != 0);
    return ms > long_max ? 0 : (long)ms;
}
/* Puts back the options cctx__curl_prepare set. */
void cctx__curl_restore(struct cc_xfer *x);
/* cctx__curl_restore for a transfer that failed before it was sent: its
 * result then names no traceparent. */
void cctx__curl_restore_unsent(struct cc_xfer *x);
/* Before removing an unfinished transfer from its multi handle: on old
 * libcurl, make the removal close its connection. */
void cctx__curl_before_abort(struct cc_xfer *x);
/* The transfer finished in libcurl with code: x->res from it (and from ctx
 * when libcurl's timeout, which is ctx's budget, fired). */
void cctx__curl_finish_libcurl(struct cc_xfer *x, cctx_t *ctx, CURLcode code);
/* ctx ended (or was spent) before the transfer finished: x->res from ctx.
 * settle: when the deadline has passed but ctx is not marked yet, wait (at
 * most 100 ms) for the timer to mark it, for its cause; without settle the
 * cause is made here at once (no site). */
void cctx__curl_finish_ctx(struct cc_xfer *x, cctx_t *ctx, bool settle);
/* No done descriptor (err: EMFILE, ENFILE...): x->res says so, ctx has
 * nothing to do with it. */
void cctx__curl_finish_no_fd(struct cc_xfer *x, int err);
/* True when this finished transfer may have left an HTTP/2 connection in
 * its multi handle's cache that old libcurl must not reuse. */
bool cctx__curl_left_h2_connection(const struct cc_xfer *x);

/* The errno value for a libcurl result (errors.c). os_errno is
 * CURLINFO_OS_ERRNO, 0 if unknown. */
int cctx__curl_errno_of(CURLcode code, long os_errno);

/* Waits on ctx's done descriptor until the mark of a deadline that has
 * passed lands (the timer thread marks it a moment after), at most 100 ms
 * of real time. Returns cctx_err(ctx). */
int cctx__curl_settle(cctx_t *ctx);

#endif
