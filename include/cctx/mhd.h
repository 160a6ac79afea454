/* SPDX-License-Identifier: MIT */
/*
 * cctx/mhd.h — request contexts for libmicrohttpd (library cctx-mhd,
 * pkg-config module cctx-mhd, CMake component cctx::mhd).
 *
 *     static void hello(cctx_t *ctx, cctx_mhd_request_t *req,
 *                       cctx_mhd_response_t *resp, void *arg)
 *     {
 *         if (cctx_sleep(ctx, CCTX_MSEC(50)) != 0)     // work that watches ctx
 *             return;                                   // client gone, deadline...
 *         cctx_mhd_set_header(resp, "content-type", "text/plain");
 *         cctx_mhd_write(resp, "hello\n", 6);
 *     }
 *
 *     cctx_mhd_options_t o = CCTX_MHD_OPTIONS_INIT;    // every field: its default
 *     o.port = 8080;
 *     cctx_mhd_t *srv = cctx_mhd_start(parent, &o, hello, NULL);
 *     cctx_mhd_use_require_header(srv, "authorization", 401);
 *     ...
 *     cctx_mhd_shutdown(srv, CCTX_SEC(5));               // drain, then cancel
 *     cctx_mhd_free(srv);
 *
 * Thread model. One libmicrohttpd thread accepts connections, reads requests
 * and writes responses (MHD_USE_INTERNAL_POLLING_THREAD with epoll). It never
 * runs user code and never waits for a worker: once a request is complete it
 * suspends the connection and puts the request on a bounded queue, served by
 * a fixed pool of worker threads that run the middleware chain and then the
 * handler. When the queue is full (it counts only the requests no idle
 * worker is about to take) the request is answered 503 at once. A
 * handler that blocks holds one worker; the server keeps accepting, reading
 * and answering from the queue with the others.
 *
 * The request context. Each request gets a context derived from the server's
 * context (itself a child of the parent given to cctx_mhd_start). It carries
 * the trace (cctx_trace_of: a child span of the incoming traceparent, or a
 * new trace), the request id and the route (accessors below), and the
 * deadline. It is named "METHOD /path" (cctx_set_name), so cctx_dump and
 * CCTX_TRACE show requests by name. It ends, with a cause (cctx_cause) that
 * says why, at the first of:
 *
 *   - the client went away while the request waited or ran: the peer closed
 *     or reset the connection, or shut down its writing side. Code 499,
 *     message "client disconnected". A worker starts watching the socket
 *     when it takes the request, so a client that left while its request
 *     waited in the queue is seen at that moment.
 *   - its deadline: the incoming deadline header (grpc-timeout unless
 *     configured otherwise), capped by the server's and the route's maximum.
 *     ETIMEDOUT, code 504, message naming what set it: "deadline from
 *     grpc-timeout: 200m", "deadline from server maximum: 1S", "deadline from
 *     route maximum: 500m", or from a cap in the middleware.
 *   - server shutdown, once the drain time is over: code 503, message
 *     "server shutting down".
 *   - the parent context ended: its error and cause.
 *   - the handler returned: code 0, message "handler returned", so work the
 *     handler started and did not wait for stops.
 *
 * Disconnect detection and its limits. libmicrohttpd does not look at a
 * suspended connection, so the server watches each connection's socket
 * itself, with one thread and its own epoll set, for EPOLLRDHUP only (the
 * peer's FIN or RST; never incoming data, so a pipelined next request or a
 * keep-alive connection is never taken for a disconnect). Each watch is
 * identified by descriptor and generation, so an event for a connection that
 * has since closed never reaches a later connection on the same descriptor
 * number. While a request is suspended the watch is its own, and is given
 * back to the connection before the connection is resumed. On a connection
 * libmicrohttpd is reading, the peer's end makes the watcher shut the
 * socket's read side down once libmicrohttpd has read what came before it:
 * libmicrohttpd 0.9.75 in epoll mode would otherwise notice a FIN that came
 * with the last bytes of an unfinished request only at idle_timeout. Limits: a
 * peer that vanishes without a FIN or RST (host down, cable pulled) is seen
 * only by TCP keep-alive or the deadline; a client that half-closes after
 * sending its request (shutdown(SHUT_WR), as `nc -N` does) is taken for one
 * that went away: its handler's context is canceled, or, when libmicrohttpd
 * reads the end before it hands the request on (always so while the body
 * is still being received), the connection is closed without an answer and
 * the request never reaches a worker.
 *
 * Errors. Calls that return a pointer return NULL and set errno; calls that
 * return int return 0 or an errno value. Bad input from the network is
 * answered with an error status and never reaches the handler:
 * a malformed deadline header, or one sent twice, is 400 (the body says
 * which header and value), and so is, as HTTP/1.1 says, Host sent twice, a
 * header name that is no token (whitespace before its colon, say), and a
 * body framed two ways (Content-Length twice, or with Transfer-Encoding),
 * or framed by a Transfer-Encoding other than one line "chunked" (501 when
 * a coding such as gzip comes before chunked), whose answer also closes
 * the connection so that nothing after it is read as a request;
 * a path with "%00" in it (it would decode to a NUL byte, where the path
 * every reader sees ends: "/admin%00.png" would be "/admin") is 400;
 * CONNECT, whatever the routes, is 501 and closes the connection (a 2xx
 * answer to it opens a tunnel, which libmicrohttpd cannot make, and a
 * client would read the answer's body and every later answer as the
 * tunnel's bytes);
 * a body above max_body is 413, headers too large for libmicrohttpd's
 * connection memory are answered by libmicrohttpd itself. Whitespace after
 * a header's value is not part of it. A malformed traceparent, or one sent
 * on two lines, is ignored (the request starts a new trace); tracestate
 * sent on several lines is joined with "," (as W3C trace context says).
 * Limits of libmicrohttpd 0.9.75 (Debian 12): a NUL byte in a header value
 * ends the value there, one sent unencoded in the request line ends the
 * path, and "%00" in a query argument ends its value; a line folded onto
 * the one before (obsolete in HTTP/1.1) runs into that line's name, which
 * is 400 when the fold holds a space or a colon, and otherwise a header no
 * handler asks for, so a deadline folded so is not seen (the server's and
 * the route's maximum still bound the request).
 * Connections: one without traffic for idle_timeout (60 s) is closed by
 * libmicrohttpd, whether idle between keep-alive requests or sending its
 * request too slowly; while its request is with a worker it is not timed
 * out. A request whose context ends (deadline, shutdown, parent) while its
 * body still arrives has its connection closed at the next chunk; while a
 * body is read, a connection without traffic is closed after the time its
 * request's deadline had left when the headers were in (whole seconds,
 * rounded up) when that is shorter than idle_timeout, so a body that stops
 * arriving does not hold it until idle_timeout. As idle_timeout restarts
 * at every byte, header_timeout (10 s) bounds the time a request's line
 * and headers may take (Go's ReadHeaderTimeout), against a client that
 * trickles them: the first request's from the connection's accept (a
 * connection that sends nothing is closed then), a later one's from its
 * first bytes (once the kernel has counted four on the TCP connection,
 * as Go's server peeks at four; Linux 4.1) or its request line, and at
 * the latest from the previous request's completion plus the idle time a
 * keep-alive connection may wait (idle_timeout, in whole seconds; no
 * latest with no idle_timeout). So an idle keep-alive connection, which
 * sends nothing, is still closed by idle_timeout alone, and a client
 * trickling a later request is closed about header_timeout after its
 * first bytes. Bytes sent before the answer was out (pipelined), or
 * within one of the server's looks after it, are not seen (four more
 * are); where there is no count (not TCP, another system) a later request
 * line may trickle until that latest start, for ever with no
 * idle_timeout. Past it, and the headers not all in, the connection is
 * closed without an answer, at most two of the server's looks later
 * (header_timeout / 4 apart, 10 ms to 1 s: by 12 s for the default). The
 * body, the handler and the answer are not timed by it.
 */
#ifndef CCTX_MHD_H
#define CCTX_MHD_H

#include <cctx.h>
#include <cctx/propagate.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cctx_mhd cctx_mhd_t;                   /* a server                     */
typedef struct cctx_mhd_request cctx_mhd_request_t;   /* one request, read-only to users */
typedef struct cctx_mhd_response cctx_mhd_response_t; /* what the handler answers      */

/* Runs on a worker thread, never on libmicrohttpd's. ctx is the request
 * context (see the top of this file); it stays valid until the handler
 * returns: take a reference (cctx_ref) to keep it longer. When the handler
 * returns, ctx is canceled ("handler returned") and the response is sent:
 * the status set (200 if none), the headers set, the body written. If ctx
 * had ended before the handler returned (deadline, shutdown) and the handler
 * set no status, no header and no body, the answer is the ending's status
 * and message instead (504 "deadline from grpc-timeout: 100m"), never an
 * empty 200. req and resp are valid only until the handler returns. */
typedef void cctx_mhd_handler_fn(cctx_t *ctx, cctx_mhd_request_t *req, cctx_mhd_response_t *resp,
                                 void *arg);

/* A validator of the middleware chain. Runs on the worker thread before the
 * handler, in the order the validators were added. Returns 0 to let the
 * request through, or an HTTP status (400 to 599) to reject it: the handler
 * does not run and the client gets that status with msg (a NUL-terminated
 * text of at most msg_size bytes, which the validator may write; empty means
 * the status's reason phrase) as a text/plain body; any other non-zero
 * value is taken for 500. A validator may narrow the request's deadline
 * with cctx_mhd_limit. */
typedef int cctx_mhd_check_fn(cctx_t *ctx, cctx_mhd_request_t *req, char *msg, size_t msg_size,
                              void *arg);

/* ---- Starting and stopping ------------------------------------------------ */

/* Every field's zero value means its default, so `{0}` and
 * CCTX_MHD_OPTIONS_INIT are the same options. */
typedef struct cctx_mhd_options {
    const char *bind_address;    /* IPv4 or IPv6 literal; NULL: "127.0.0.1"             */
    uint16_t port;               /* 0: an ephemeral port (read it with cctx_mhd_port)   */
    unsigned workers;            /* worker threads; 0: 4                                */
    unsigned queue;              /* requests waiting for a worker; 0: 64                 */
    int64_t max_timeout;         /* nanoseconds, caps every request's deadline (also
                                    one without a deadline header); 0: no cap            */
    const char *deadline_header; /* NULL: "grpc-timeout" (value in its format)           */
    int64_t drain;               /* nanoseconds that cctx_mhd_free gives in-flight
                                    requests before cancelling them; 0: 5 s; < 0: none */
    size_t max_body;             /* bytes; a larger request body is 413; 0: 1 MiB       */
    const char *debug_path;      /* a path serving cctx_dump of the server's tree
                                    (HTML; ?format=json, text or dot); NULL: none        */
    int64_t idle_timeout;        /* nanoseconds a connection may go without traffic
                                    (idle keep-alive, a request trickling in) before
                                    libmicrohttpd closes it; whole seconds, rounded
                                    up; a connection whose request is with a worker
                                    is never timed out; 0: 60 s; < 0: none; past
                                    4294967 s (49.7 days, the most libmicrohttpd
                                    before 1.0 keeps): none                           */
    unsigned max_connections;    /* open connections; beyond, libmicrohttpd accepts no
                                    more (or closes them at once); 0: 1000             */
    int64_t header_timeout;      /* nanoseconds a request's line and headers may take,
                                    from the connection's accept for its first request,
                                    from its first bytes or its request line for a
                                    later one (at the latest from the previous
                                    request's completion plus the idle time,
                                    idle_timeout in whole seconds); past it, the
                                    connection is closed without an answer (see
                                    "Connections" at the top); 0: 10 s; < 0: none    */
} cctx_mhd_options_t;
#define CCTX_MHD_OPTIONS_INIT                                                                      \
    {                                                                                              \
        NULL, 0, 0, 0, 0, NULL, 0, 0, NULL, 0, 0, 0                                                \
    }

/* Starts serving under parent with a handler for every request no route
 * matches (NULL: those get 404). The options are copied (options may be
 * NULL: all defaults). The server's context is a child of parent named
 * "cctx-mhd :PORT"; it holds a reference on parent until cctx_mhd_free. If
 * parent ends, the requests in flight end with its cause, and later ones are
 * answered without running anything: with the parent's cause code when it
 * is 400 to 599, else 504 when the parent ended by its deadline
 * (ETIMEDOUT), else 503; the body is the cause's message. NULL with
 * errno: EINVAL (NULL parent, a bind address that is not an IP literal, a
 * deadline header name that is not an HTTP token (letters, digits and
 * !#$%&'*+-.^_`|~; not empty), a negative max_timeout, a debug path not
 * starting with '/'), EADDRINUSE or another errno of
 * socket/bind/listen, ENOMEM, EAGAIN (threads), or the errno with which
 * libmicrohttpd failed to start. */
CCTX_API cctx_mhd_t *cctx_mhd_start(cctx_t *parent, const cctx_mhd_options_t *options,
                                    cctx_mhd_handler_fn *handler, void *arg);

/* The port the server listens on (the ephemeral one when options.port was
 * 0); 0 for NULL. */
CCTX_API uint16_t cctx_mhd_port(const cctx_mhd_t *server);

/* The server's context, the parent of every request context (for dumps,
 * or to derive background work that must end with the server). Valid until
 * cctx_mhd_free. NULL with errno EINVAL for a NULL server. */
CCTX_API cctx_t *cctx_mhd_context(const cctx_mhd_t *server);

/* Adds a route: requests whose method equals `method` (NULL: any method) and
 * whose path equals `path` exactly (no query string; a path ending in '*'
 * matches every path with that prefix) go to handler instead of the default
 * one. Routes are tried in the order added, the first match wins.
 * max_timeout > 0 caps the deadline of this route's requests (504, "deadline
 * from route maximum: ..."); 0: no cap of its own. Strings are copied. May be
 * called while the server runs. 0, EINVAL (NULL server, path or handler, a
 * negative max_timeout), ENOMEM, ECANCELED (after shutdown began). */
CCTX_API int cctx_mhd_route(cctx_mhd_t *server, const char *method, const char *path,
                            cctx_mhd_handler_fn *handler, void *arg, int64_t max_timeout);

/* Stops the server, in this order: stop admitting requests; stop
 * accepting connections (MHD_quiesce_daemon, and the listening socket shut
 * down, so that a new client is refused at once); end keep-alives, as Go's
 * Server.Shutdown does: every answer queued from now on (a handler's, a
 * 503, a 413...) carries "Connection: close" and its connection is closed
 * after it, and a connection idle after serving a request is closed at
 * once (one whose answer, queued before, is still being written, once
 * that is out; a connection not used yet is left to its first request's
 * 503),
 * so that a keep-alive client neither waits on it nor sends its next
 * request into a stopping server (a request already on its way as
 * shutdown began is answered 503, or meets the close); let the requests
 * in flight (queued or running, and those whose headers came before and
 * whose body is still arriving: they are served once it is in) run until
 * they finish or `drain` nanoseconds have passed (< 0: no wait); then
 * cancel the server's context, so the rest end with code 503 "server
 * shutting down" (queued ones are answered 503 without running, and a
 * connection whose body is still arriving is closed without an answer, or
 * answered 503 should the body complete as the drain ends); wait for every
 * handler to return and every suspended connection to be resumed; let the
 * answers still being written (a large one, a client that reads slowly)
 * go out whole, until what is left of the drain has passed; stop
 * libmicrohttpd (closing any connection still open, and any connection
 * whose answer is still being written then: its client gets it cut short)
 * and the server's threads. Returns once all of that is done;
 * waits for handlers without a limit, so a handler must watch its context.
 * A call after the first has returned returns at once; one made while the
 * first runs waits until the first has finished, then returns (its drain
 * is not used). Must not be called from a handler nor from an
 * after-function of a request context; on the server's own threads (a
 * handler; an after-function run by the canceller thread of a client's
 * hang-up), and from an after-function that this shutdown's own cancel
 * runs (of the server's context, or of a request context), it returns
 * EDEADLK. Thread cancellation (pthread_cancel): cctx_mhd_start,
 * cctx_mhd_shutdown and cctx_mhd_free are no cancellation points, though
 * they wait on condition variables, join threads and close descriptors; a
 * cancel pending or sent while one runs acts at the thread's next
 * cancellation point after it returns, so a shutdown finishes (its drain
 * included) first: a handler that does not watch its context keeps it
 * waiting, and pthread_cancel does not end that wait. 0, EINVAL, EDEADLK. */
CCTX_API int cctx_mhd_shutdown(cctx_mhd_t *server, int64_t drain);

/* Shuts down (with options.drain) if that was not done, releases the server's
 * context and frees everything. NULL does nothing. Not from a handler nor
 * from an after-function of a request context (see cctx_mhd_shutdown); on
 * the server's own threads it reports that and aborts, as the server would
 * be freed under the thread that runs it. */
CCTX_API void cctx_mhd_free(cctx_mhd_t *server);

/* ---- Middleware ------------------------------------------------------------ */

/* Appends fn to the chain (see cctx_mhd_check_fn). Add validators before the
 * server takes traffic: the chain must not change while requests run.
 * 0, EINVAL (NULL server or fn), ENOMEM. */
CCTX_API int cctx_mhd_use(cctx_mhd_t *server, cctx_mhd_check_fn *fn, void *arg);

/* Built-in validators, appended like cctx_mhd_use (same errors, and
 * EINVAL for a cap_deadline max of 0 or less, and for a require_header
 * name that is NULL or empty or a status outside 400 to 599):
 *  - min_budget: 504 "deadline budget too small: ..." when the request's
 *    remaining time is below min (also when it is already spent); a request
 *    without a deadline passes. The time is cctx_grpc_timeout_of's: a
 *    server started under a grace context (cctx_with_grace) counts the
 *    grace context's end, which may come before the request's own
 *    deadline when its parent ended after the request came in. A request
 *    whose context has ended (its parent, a shutdown, a hang-up, its
 *    deadline fired) by the time its budget is read passes, and is
 *    answered as it ended once the chain is through (a shutdown's 503,
 *    say), not blamed on its budget. The time left is shown in whole
 *    milliseconds, rounded down ("49m left, 50m needed").
 *  - require_deadline: 400 "<header> header required" when the request came
 *    without the deadline header.
 *  - cap_deadline: narrows every request's deadline to at most max
 *    (cctx_mhd_limit with the cause "deadline from middleware cap: ...").
 *  - require_header: `status` (401 for "authorization", say) with
 *    "<name> header required" when the header is missing (or empty).
 *  - max_body: 413 "request body too large" above max bytes (the server's
 *    max_body still bounds what is read from the network at all). */
CCTX_API int cctx_mhd_use_min_budget(cctx_mhd_t *server, int64_t min);
CCTX_API int cctx_mhd_use_require_deadline(cctx_mhd_t *server);
CCTX_API int cctx_mhd_use_cap_deadline(cctx_mhd_t *server, int64_t max);
CCTX_API int cctx_mhd_use_require_header(cctx_mhd_t *server, const char *name, int status);
CCTX_API int cctx_mhd_use_max_body(cctx_mhd_t *server, size_t max);

/* Narrows the request's deadline (from a validator): the handler then gets a
 * child of the current request context whose deadline is timeout from now,
 * ending with ETIMEDOUT, code 504 and msg (copied; NULL: "deadline from
 * middleware"). A timeout not shorter than what is left changes nothing.
 * 0, EINVAL (NULL req, or not called from a validator: the handler has its
 * context already), ENOMEM. */
CCTX_API int cctx_mhd_limit(cctx_mhd_request_t *req, int64_t timeout, const char *msg);

/* ---- The request ----------------------------------------------------------- */

/* Valid until the handler (or validator) returns. */
CCTX_API const char *cctx_mhd_method(const cctx_mhd_request_t *req);
/* The path without the query string, as libmicrohttpd decoded it (never
 * from a "%00": that request is answered 400). */
CCTX_API const char *cctx_mhd_path(const cctx_mhd_request_t *req);
/* A request header by name (case-insensitive), or NULL; without the spaces
 * and tabs after the value (not part of it in HTTP), which libmicrohttpd
 * leaves in: such a value is a copy, kept until the request is done. */
CCTX_API const char *cctx_mhd_header(const cctx_mhd_request_t *req, const char *name);
/* A query-string argument, decoded, or NULL; "" for a key without a value. */
CCTX_API const char *cctx_mhd_query(const cctx_mhd_request_t *req, const char *name);
/* The request body (NUL-terminated after *len bytes; "" when none). len may
 * be NULL. */
CCTX_API const char *cctx_mhd_body(const cctx_mhd_request_t *req, size_t *len);

/* Values every request context carries. The request id counts the server's
 * requests from 1; 0 when ctx is not (derived from) a request context. The
 * route is the path pattern given to cctx_mhd_route, "" for the default
 * handler, NULL when ctx is not a request context; valid while ctx is held. */
CCTX_API uint64_t cctx_mhd_request_id(const cctx_t *ctx);
CCTX_API const char *cctx_mhd_route_of(const cctx_t *ctx);

/* ---- The response ---------------------------------------------------------- */

/* Sets the status (200 to 599; default 200). 0 or EINVAL (1xx is not a
 * final response and libmicrohttpd cannot send it as an interim one). */
CCTX_API int cctx_mhd_status(cctx_mhd_response_t *resp, int status);
/* Adds a header (copied; a second call with the same name adds another
 * line). 0, EINVAL (NULL, a name that is not an HTTP token, or a value with
 * a control character other than tab: CR and LF included), ENOMEM. A
 * header libmicrohttpd refuses when the response is built (it frames the
 * body itself: Content-Length, a Transfer-Encoding other than chunked; it
 * decides keep-alive itself: a Connection of keep-alive alone) turns the
 * response into a 500 "response header refused: NAME". "Transfer-Encoding:
 * chunked" is left out of an answer that has no body (to HEAD, a 204, a
 * 304): libmicrohttpd 0.9.75 would end one to HEAD or a 304 with a last
 * chunk. An answer to HEAD, or a 304, has the Content-Length of the body
 * written (0 for none), which is not sent. The headers share libmicrohttpd's
 * 32 KiB of memory per connection with the request's line and headers; when
 * they do not fit in what the request left (about 4 KiB after 28 KB of
 * request headers), libmicrohttpd closes the connection without an answer. */
CCTX_API int cctx_mhd_set_header(cctx_mhd_response_t *resp, const char *name, const char *value);
/* Appends len bytes to the body. 0, EINVAL (NULL resp, NULL data with a
 * len, or a body that would pass PTRDIFF_MAX bytes: nothing is appended),
 * ENOMEM. Once a write, a printf or a header runs out of memory, the answer
 * is a 500 "out of memory" whatever else the handler does. */
CCTX_API int cctx_mhd_write(cctx_mhd_response_t *resp, const void *data, size_t len);
/* Appends formatted text to the body. 0, EINVAL, ENOMEM. */
CCTX_API int cctx_mhd_printf(cctx_mhd_response_t *resp, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#ifdef __cplusplus
}
#endif

#endif /* CCTX_MHD_H */
