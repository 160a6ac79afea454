/* Shared by the parts of cctx-curl: one transfer's preparation, its
 * outcome, and what differs between libcurl versions. */
#ifndef CCTX_CURL_INTERNAL_H
#define CCTX_CURL_INTERNAL_H

#include <cctx/curl.h>

#include <stdbool.h>

#define CC_HDR_TIMEOUT "grpc-timeout: "
#define CC_HDR_PARENT "traceparent: "
#define CC_HDR_STATE "tracestate: "

/* One transfer between cc_prepare and cc_restore. The header nodes live
 * here and point at the caller's list, so the merged list costs no
 * allocation and the caller's list is never copied or changed. */
struct cc_xfer {
    CURL *easy;
    cctx_curl_opts_t opts;
    cctx_curl_result_t res;
    struct curl_slist nodes[3];
    bool forbid_reuse; /* we set CURLOPT_FORBID_REUSE: put it back */
    bool added;        /* in a multi handle */
    bool done;         /* res is final */
    char timeout[sizeof CC_HDR_TIMEOUT + CCTX_GRPC_TIMEOUT_SIZE];
    char parent[sizeof CC_HDR_PARENT + CCTX_TRACEPARENT_SIZE];
    char state[sizeof CC_HDR_STATE + CCTX_TRACESTATE_MAX + 1];
};

/* libcurl before 7.89.0: no stream reset on abort, broken h2c reuse. */
bool cc_old_curl(void);

/* Zeroes x and keeps easy and opts (NULL: all zero). */
void cc_init(struct cc_xfer *x, CURL *easy, const cctx_curl_opts_t *opts);
/* Checks ctx's budget and sets the headers and the timeout on x->easy.
 * 0, or an errno value with x->res final and nothing set: ctx's error
 * (spent or ended: nothing is to be sent), ENOMEM, EINVAL. */
int cc_prepare(struct cc_xfer *x, cctx_t *ctx);
/* Puts back the options cc_prepare set. */
void cc_restore(struct cc_xfer *x);
/* Before removing an unfinished transfer from its multi handle: on old
 * libcurl, make the removal close its connection. */
void cc_before_abort(struct cc_xfer *x);
/* The transfer finished in libcurl with code: x->res from it (and from ctx
 * when libcurl's timeout, which is ctx's budget, fired). */
void cc_finish_curl(struct cc_xfer *x, cctx_t *ctx, CURLcode code);
/* ctx ended (or was spent) before the transfer finished: x->res from ctx. */
void cc_finish_ctx(struct cc_xfer *x, cctx_t *ctx);
/* True when this finished transfer may have left an HTTP/2 connection in
 * its multi handle's cache that old libcurl must not reuse. */
bool cc_left_h2_connection(const struct cc_xfer *x);

/* The errno value for a libcurl result (errors.c). os_errno is
 * CURLINFO_OS_ERRNO, 0 if unknown. */
int cc_errno_of(CURLcode code, long os_errno);

/* Waits on ctx's done descriptor until the mark of a deadline that has
 * passed lands (the timer thread marks it a moment after), at most 100 ms
 * of real time. Returns cctx_err(ctx). */
int cc_settle(cctx_t *ctx);

#endif
