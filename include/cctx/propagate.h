/* SPDX-License-Identifier: MIT */
/*
 * cctx/propagate.h — carrying a context's deadline and trace across a
 * process edge: the gRPC `grpc-timeout` header and W3C Trace Context
 * (`traceparent`, `tracestate`). Part of libcctx; no dependency.
 *
 * Receiving side (what a server does with an incoming request):
 *
 *     int64_t budget;
 *     if (cctx_grpc_timeout_parse(hdr, strlen(hdr), &budget) != 0)
 *         reply 400;                                  // malformed: say so
 *     cctx_t *req = cctx_with_timeout(server_ctx, budget, &cancel);
 *
 *     cctx_trace_t tr;
 *     if (cctx_traceparent_parse(tp, strlen(tp), &tr) != 0) {
 *         cctx_trace_new(&tr);                        // invalid: a new trace
 *     } else {
 *         cctx_tracestate_parse(ts, strlen(ts), &tr); // kept only beside a valid parent
 *         cctx_trace_child(&tr, &tr);                 // this hop's own span
 *     }
 *     cctx_t *traced = cctx_with_trace(req, &tr);
 *
 * Sending side (what a client does before an outgoing call):
 *
 *     char timeout[CCTX_GRPC_TIMEOUT_SIZE], parent[CCTX_TRACEPARENT_SIZE];
 *     int r = cctx_grpc_timeout_of(ctx, timeout);     // ENOENT: no deadline to send
 *     if (r != 0 && r != ENOENT)
 *         fail locally;                               // spent or canceled: send nothing
 *     cctx_trace_t span;
 *     cctx_trace_child(cctx_trace_of(ctx), &span);    // same trace, a new span
 *     cctx_traceparent_format(&span, parent);
 *
 * Every parser takes a pointer and a length (header values are not always
 * NUL-terminated) and never reads past the length; a NUL byte inside the
 * length is just an invalid character. Parsers write their output only on
 * success (except that cctx_tracestate_parse drops the state it refuses).
 * Nothing here allocates except cctx_with_trace.
 */
#ifndef CCTX_PROPAGATE_H
#define CCTX_PROPAGATE_H

#include <cctx.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CCTX_HEADER_GRPC_TIMEOUT "grpc-timeout"
#define CCTX_HEADER_TRACEPARENT "traceparent"
#define CCTX_HEADER_TRACESTATE "tracestate"

/* ---- grpc-timeout -------------------------------------------------------- */

/* A formatted grpc-timeout: up to 8 digits, a unit, a NUL. */
#define CCTX_GRPC_TIMEOUT_SIZE 10

/* Parses a grpc-timeout value: 1 to 8 ASCII digits followed by exactly one
 * unit, H (hours), M (minutes), S (seconds), m (milliseconds), u
 * (microseconds) or n (nanoseconds), and nothing else: no sign, no space,
 * no second unit. On success stores the duration in nanoseconds (a value
 * too large for int64_t nanoseconds, such as 99999999H, saturates to
 * CCTX_NO_DEADLINE) and returns 0. "0n" parses to 0, a budget already spent.
 * EINVAL for anything else, and for a NULL text or out. */
CCTX_API int cctx_grpc_timeout_parse(const char *text, size_t len, int64_t *timeout);

/* Formats a duration as gRPC does: the smallest unit (n, u, m, S, M, H) in
 * which the duration, rounded UP to a whole number of that unit, fits in 8
 * digits, so the receiver never gets less time than was left. Every positive
 * int64_t fits (CCTX_NO_DEADLINE is "2562048H", which parses back to
 * CCTX_NO_DEADLINE). 0 on success; ETIMEDOUT for a duration <= 0 (out is
 * then ""; "0n" is never written, a caller must not send a spent budget);
 * EINVAL for NULL out. */
CCTX_API int cctx_grpc_timeout_format(int64_t timeout, char out[CCTX_GRPC_TIMEOUT_SIZE]);

/* The remaining budget of ctx, formatted as above: the time to the earliest
 * deadline that will end ctx, which is cctx_deadline's, or a grace context's
 * above it when that is earlier (cctx_with_grace: a deadline derived under
 * a grace context before its parent ended stays the deadline of what was
 * derived, yet that ends with the grace context). A grace context whose
 * parent has not ended counts as ending its grace (if positive) after the
 * parent's own budget runs out, so it and what is under it have a budget
 * when the parent has one, though cctx_deadline reports none. Nothing
 * above a without-cancel context counts (its parent's end does not end
 * it). 0 on success; ENOENT when
 * ctx has no deadline (nothing to send); ETIMEDOUT when the budget is spent;
 * the context's error (ECANCELED) when it was canceled; EINVAL for NULL. On
 * every error out is "". */
CCTX_API int cctx_grpc_timeout_of(const cctx_t *ctx, char out[CCTX_GRPC_TIMEOUT_SIZE]);

/* ---- W3C Trace Context ---------------------------------------------------- */

#define CCTX_TRACEPARENT_SIZE 56 /* "00-" 32 hex "-" 16 hex "-" 2 hex, a NUL     */
#define CCTX_TRACE_ID_HEX_SIZE 33
#define CCTX_SPAN_ID_HEX_SIZE 17
#define CCTX_TRACESTATE_MAX 512 /* bytes, kept verbatim; at most 32 members       */
#define CCTX_TRACE_SAMPLED 0x01 /* bit 0 of trace-flags                            */
#define CCTX_TRACE_RANDOM 0x02  /* bit 1: the trace-id's right 7 bytes are random   */

typedef struct cctx_trace {
    uint8_t trace_id[16];    /* never all zero in a valid trace                      */
    uint8_t span_id[8];      /* this hop's span: the parent-id a call from here sends */
    uint8_t parent_id[8];    /* the caller's span; all zero for the root of a trace  */
    uint8_t flags;           /* trace-flags: CCTX_TRACE_SAMPLED, CCTX_TRACE_RANDOM   */
    uint16_t state_len;      /* bytes of tracestate, 0 if none                       */
    char state[CCTX_TRACESTATE_MAX + 1]; /* tracestate, verbatim, NUL-terminated     */
} cctx_trace_t;

/* Parses a traceparent header into out: out->trace_id and out->parent_id
 * take the header's trace-id and parent-id, out->span_id is set equal to
 * parent_id (cctx_trace_child makes the span of this hop), version 00's
 * flags CCTX_TRACE_SAMPLED and CCTX_TRACE_RANDOM are kept and its reserved
 * bits cleared (W3C: whoever sends the header on sets them to zero), the
 * tracestate is cleared. Version 00 is exactly
 * "00-<32 hex>-<16 hex>-<2 hex>", lower-case hex only. A version above 00 is
 * read the same way from its first 55 bytes if those are followed by the end
 * or by '-' (the W3C rule for future versions), and is sent on as 00; of its
 * flags only CCTX_TRACE_SAMPLED is kept (its other bits are not 00's).
 * EINVAL (out untouched): version ff, an all-zero trace-id or parent-id,
 * upper case or any other non-hex digit, a wrong length or separator. */
CCTX_API int cctx_traceparent_parse(const char *text, size_t len, cctx_trace_t *out);

/* Writes "00-<trace_id>-<span_id>-<flags>" (55 characters and a NUL): the
 * header a call from this hop sends. 0, or EINVAL for NULL arguments or a
 * trace whose trace_id or span_id is all zero (out is then ""). */
CCTX_API int cctx_traceparent_format(const cctx_trace_t *trace, char out[CCTX_TRACEPARENT_SIZE]);

/* Keeps a tracestate header verbatim in trace->state. Kept only when it has
 * at most CCTX_TRACESTATE_MAX bytes and at most 32 comma-separated members
 * and contains only printable ASCII (0x20-0x7e) and tabs (the optional
 * white space around commas is spaces and tabs); otherwise the state is
 * dropped (state_len 0) and the call returns EINVAL for a NULL text with
 * len > 0, else E2BIG (more than CCTX_TRACESTATE_MAX bytes, checked before
 * the bytes themselves, or more than 32 members) or EINVAL (a bad byte). An empty or blank
 * member (as in "a=1,,b=2") is allowed and does not count towards the 32.
 * The members themselves are not checked further: a hop passes on what it
 * does not understand. A tracestate is only meaningful beside a valid
 * traceparent: parse that first, and do not call this when it was invalid.
 * 0 on success (an empty value clears); EINVAL for a NULL trace. */
CCTX_API int cctx_tracestate_parse(const char *text, size_t len, cctx_trace_t *trace);

/* Starts a new trace: a random trace-id and span-id from the kernel's
 * CSPRNG (getrandom; /dev/urandom where it is missing), through a
 * per-thread pool that one system call fills for about ten traces and a
 * child of fork() refills; never all zero, no parent, flags
 * CCTX_TRACE_SAMPLED, no tracestate. 0, EINVAL for a NULL
 * out, or the errno of the random source, EIO if it gives all-zero ids
 * three times in a row (out untouched). */
CCTX_API int cctx_trace_new(cctx_trace_t *out);

/* The span of a call made from parent's hop: same trace-id, flags and
 * tracestate, parent_id = parent->span_id, a fresh random span_id (never
 * all zero). With a NULL parent it starts a new trace (cctx_trace_new).
 * child may be parent itself. 0, EINVAL (NULL child, or a parent whose
 * trace-id is all zero, which is no trace, or whose state_len exceeds
 * CCTX_TRACESTATE_MAX), or the errno of the random source, EIO if it gives
 * all-zero ids three times in a row (child untouched on every error). */
CCTX_API int cctx_trace_child(const cctx_trace_t *parent, cctx_trace_t *child);

/* Lower-case hex of the ids, for logs: 32 and 16 characters and a NUL
 * (out is "" for a NULL trace or id; nothing is written for a NULL out). */
CCTX_API void cctx_trace_id_hex(const cctx_trace_t *trace, char out[CCTX_TRACE_ID_HEX_SIZE]);
CCTX_API void cctx_span_id_hex(const uint8_t id[8], char out[CCTX_SPAN_ID_HEX_SIZE]);

/* ---- A trace carried by a context ----------------------------------------- */

/* A value context carrying a copy of *trace (freed with the context; its
 * state NUL-terminated at state_len, whatever the caller's held there). NULL
 * with errno EINVAL (NULL parent or trace, or a state_len above
 * CCTX_TRACESTATE_MAX) or ENOMEM (nothing leaks), as cctx_with_value. */
CCTX_API CCTX__OWNED cctx_t *cctx_with_trace_at(cctx_t *parent, const cctx_trace_t *trace,
                                                const char *file, int line, const char *func);
#define cctx_with_trace(parent, trace) cctx_with_trace_at((parent), (trace), CCTX__SITE)

/* The trace of the nearest cctx_with_trace on ctx's chain, or NULL: no
 * trace (errno untouched), or NULL ctx (errno EINVAL). Valid while the
 * caller holds ctx. */
CCTX_API const cctx_trace_t *cctx_trace_of(const cctx_t *ctx);

#ifdef __cplusplus
}
#endif

#endif /* CCTX_PROPAGATE_H */
