/* SPDX-License-Identifier: MIT */
/*
 * Connection limits, repeated headers, the response status
 * range and refused response headers, and shutdown from a thread the
 * server would have to join.
 */
#define _GNU_SOURCE
#include "harness.h"
#include "mhd_support.h"
#include "support.h"

#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct http_resp r;

TEST(mhd_idle_timeout_closes_slow_request)
{
    struct probe p;
    probe_init(&p);
    cctx_mhd_options_t o = CCTX_MHD_OPTIONS_INIT;
    o.idle_timeout = CCTX_SEC(1);
    cctx_mhd_t *s = start_probe_server(&p, &o);
    static struct conn c;
    conn_open(&c, cctx_mhd_port(s));
    int64_t t0 = real_now();
    conn_send(&c, "GET /half HTTP/1.1\r\nHost: t\r\n"); /* and never the blank line */
    CHECK(conn_closed_within(&c, 5000));
    int64_t took = real_now() - t0;
    printf("half a request closed after %.3f s\n", (double)took / 1e9);
    CHECK(took >= CCTX_MSEC(900));
    CHECK_EQ(p.started, 0);
    conn_close(&c);
    /* An idle keep-alive connection too. */
    conn_open(&c, cctx_mhd_port(s));
    conn_send(&c, "GET /k HTTP/1.1\r\nHost: t\r\n\r\n");
    conn_read(&c, &r);
    CHECK_EQ(r.status, 200);
    CHECK(conn_closed_within(&c, 5000));
    conn_close(&c);
    cctx_mhd_free(s);
    probe_destroy(&p);
}

TEST(mhd_idle_timeout_spares_running_handler)
{
    /* The handler runs longer than the idle timeout while the connection
     * is suspended: the answer still arrives. */
    struct probe p;
    probe_init(&p);
    p.block = true;
    cctx_mhd_options_t o = CCTX_MHD_OPTIONS_INIT;
    o.idle_timeout = CCTX_SEC(1);
    cctx_mhd_t *s = start_probe_server(&p, &o);
    http_get(cctx_mhd_port(s), "/slow", "grpc-timeout: 2500m\r\n", &r);
    CHECK_EQ(r.status, 200);
    CHECK_EQ(p.cause.code, 504);
    cctx_mhd_free(s);
    probe_destroy(&p);
}

/* libmicrohttpd 0.9.75 turns a connection's timeout into milliseconds in 32
 * bits: 4294968 s (49.7 days) became 705 ms, and a kept-alive connection
 * was closed within a second. A timeout past what it counts is none. */
TEST(mhd_idle_timeout_past_what_libmicrohttpd_counts_is_none)
{
    struct probe p;
    probe_init(&p);
    cctx_mhd_options_t o = CCTX_MHD_OPTIONS_INIT;
    o.idle_timeout = CCTX_SEC(4294968);
    cctx_mhd_t *s = start_probe_server(&p, &o);
    static struct conn c;
    conn_open(&c, cctx_mhd_port(s));
    conn_send(&c, "GET /k HTTP/1.1\r\nHost: t\r\n\r\n");
    conn_read(&c, &r);
    CHECK_EQ(r.status, 200);
    CHECK(!conn_closed_within(&c, 2500));
    conn_close(&c);
    cctx_mhd_free(s);
    probe_destroy(&p);
}

/* The same count for a body timed by its deadline: with no idle timeout, a
 * grpc-timeout of 4294968 s timed the body out after 705 ms of silence. */
TEST(mhd_body_deadline_past_what_libmicrohttpd_counts_is_no_timeout)
{
    struct probe p;
    probe_init(&p);
    cctx_mhd_options_t o = CCTX_MHD_OPTIONS_INIT;
    o.idle_timeout = -1;
    cctx_mhd_t *s = start_probe_server(&p, &o);
    static struct conn c;
    conn_open(&c, cctx_mhd_port(s));
    conn_send(&c, "POST /up HTTP/1.1\r\nHost: t\r\ngrpc-timeout: 4294968S\r\n"
                  "Content-Length: 3\r\n\r\n");
    CHECK(!conn_closed_within(&c, 2500));
    conn_send(&c, "abc");
    conn_read(&c, &r);
    CHECK_EQ(r.status, 200);
    CHECK_EQ(p.started, 1);
    conn_close(&c);
    cctx_mhd_free(s);
    probe_destroy(&p);
}

TEST(mhd_deadline_during_body_closes)
{
    struct probe p;
    probe_init(&p);
    cctx_mhd_t *s = start_probe_server(&p, NULL);
    static struct conn c;
    conn_open(&c, cctx_mhd_port(s));
    conn_send(&c, "POST /up HTTP/1.1\r\nHost: t\r\ngrpc-timeout: 200m\r\n"
                  "Content-Length: 100\r\n\r\n0123456789");
    real_sleep_ms(400); /* the deadline passes while the body trickles in */
    conn_send(&c, "0123456789");
    CHECK(conn_closed_within(&c, 3000));
    CHECK_EQ(p.started, 0);
    conn_close(&c);
    cctx_mhd_free(s);
    probe_destroy(&p);
}

/* A body that stops arriving: the request's context ends by its deadline
 * (the header's, or the server's maximum), and the connection is closed
 * about then, not after the idle timeout (60 s here). */
TEST(mhd_deadline_during_stalled_body_closes)
{
    struct probe p;
    probe_init(&p);
    cctx_mhd_options_t o = CCTX_MHD_OPTIONS_INIT;
    o.max_timeout = CCTX_MSEC(1500);
    cctx_mhd_t *s = start_probe_server(&p, &o);
    static const char *const deadlines[] = {"grpc-timeout: 200m\r\n", ""};
    for (size_t i = 0; i < sizeof deadlines / sizeof *deadlines; i++) {
        static struct conn c;
        conn_open(&c, cctx_mhd_port(s));
        char req[256];
        snprintf(req, sizeof req,
                 "POST /up HTTP/1.1\r\nHost: t\r\n%sContent-Length: 100\r\n\r\n0123456789",
                 deadlines[i]);
        int64_t t0 = real_now();
        conn_send(&c, req); /* and never the other 90 bytes */
        CHECK(conn_closed_within(&c, 10000));
        int64_t took = real_now() - t0;
        printf("stalled body (%s) closed after %.3f s\n",
               *deadlines[i] ? "grpc-timeout" : "maximum", (double)took / 1e9);
        /* libmicrohttpd counts whole seconds, and checks them a second apart. */
        CHECK(took < CCTX_SEC(5));
        conn_close(&c);
    }
    CHECK_EQ(p.started, 0);
    /* A request on a kept-alive connection after a body read in time still has
     * the idle timeout: it is answered after more than its deadline of silence. */
    static struct conn c;
    conn_open(&c, cctx_mhd_port(s));
    conn_send(&c, "POST /up HTTP/1.1\r\nHost: t\r\ngrpc-timeout: 1S\r\n"
                  "Content-Length: 3\r\n\r\nabc");
    conn_read(&c, &r);
    CHECK_EQ(r.status, 200);
    for (int i = 0; i < 5; i++) /* idle between requests, beyond the first one's 1 s */
        real_sleep_ms(500);
    conn_send(&c, "GET /next HTTP/1.1\r\nHost: t\r\n\r\n");
    conn_read(&c, &r);
    CHECK_EQ(r.status, 200);
    conn_close(&c);
    cctx_mhd_free(s);
    probe_destroy(&p);
}

/* An after-function that a hang-up runs on the server's canceller thread
 * and that shuts the server down. */
static cctx_mhd_t *self_server;
static int self_result = -1;
static pid_t self_handler_tid, self_after_tid;
static cctx_after_t self_reg;
static struct latch self_registered = LATCH_INIT, self_shut = LATCH_INIT;

static void shut_from_after(void *arg)
{
    (void)arg;
    self_after_tid = thread_id();
    self_result = cctx_mhd_shutdown(self_server, 0);
    latch_open(&self_shut);
}

static void self_handler(cctx_t *ctx, cctx_mhd_request_t *req, cctx_mhd_response_t *resp, void *arg)
{
    (void)req, (void)resp, (void)arg;
    self_handler_tid = thread_id();
    CHECK_EQ(cctx_after_func(ctx, &self_reg, shut_from_after, NULL), 0);
    latch_open(&self_registered);
    cctx_wait(ctx, CCTX_SEC(10));
}

TEST(mhd_shutdown_from_canceller_edeadlk)
{
    self_server = cctx_mhd_start(cctx_background(), NULL, self_handler, NULL);
    CHECK(self_server);
    static struct conn c;
    conn_open(&c, cctx_mhd_port(self_server));
    conn_send(&c, "GET /x HTTP/1.1\r\nHost: t\r\n\r\n");
    /* The hang-up comes only once the after-function is registered: one
     * registered on a context already ended would run at once, on the
     * handler's thread rather than the canceller's. */
    latch_wait_open(&self_registered);
    conn_close(&c);
    latch_wait_open(&self_shut);
    CHECK(self_after_tid != self_handler_tid);
    CHECK_EQ(self_result, EDEADLK);
    cctx_mhd_free(self_server);
}

TEST(mhd_deadline_header_repeated_400)
{
    struct probe p;
    probe_init(&p);
    cctx_mhd_t *s = start_probe_server(&p, NULL);
    http_get(cctx_mhd_port(s), "/x", "grpc-timeout: 10S\r\ngrpc-timeout: 1m\r\n", &r);
    CHECK_EQ(r.status, 400);
    CHECK_STR(r.body, "repeated grpc-timeout header\n");
    CHECK_EQ(p.started, 0);
    cctx_mhd_free(s);
    probe_destroy(&p);
}

static void state_handler(cctx_t *ctx, cctx_mhd_request_t *req, cctx_mhd_response_t *resp,
                          void *arg)
{
    (void)req, (void)arg;
    const cctx_trace_t *tr = cctx_trace_of(ctx);
    CHECK(tr);
    cctx_mhd_write(resp, tr->state, tr->state_len);
}

/* A body framed two ways: libmicrohttpd would read it by one framing and
 * the rest as a next request on the same connection, which a proxy in front
 * may have read by the other (request smuggling). Answered 400, and the
 * connection closed: the bytes after it never become a request. */
TEST(mhd_body_framed_two_ways_400_and_closed)
{
    struct probe p;
    probe_init(&p);
    cctx_mhd_t *s = start_probe_server(&p, NULL);
    static const struct {
        const char *framing, *why;
    } cases[] = {
        {"Content-Length: 3\r\nContent-Length: 40\r\n\r\nabc", "more than one Content-Length"},
        {"Content-Length: 3, 40\r\n\r\nabc", NULL}, /* libmicrohttpd's own 400 */
        {"Content-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
         "both Content-Length and Transfer-Encoding"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char req[512];
        snprintf(req, sizeof req,
                 "POST /x HTTP/1.1\r\nHost: t\r\n%s"
                 "GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n",
                 cases[i].framing);
        struct conn c;
        conn_open(&c, cctx_mhd_port(s));
        conn_send(&c, req);
        conn_read(&c, &r);
        CHECK_EQ(r.status, 400);
        if (cases[i].why) {
            CHECK(strstr(r.body, cases[i].why) != NULL);
            char v[32];
            CHECK(resp_header(&r, "Connection", v, sizeof v));
            CHECK(strcasecmp(v, "close") == 0);
        }
        CHECK(conn_closed_within(&c, 5000));
        conn_close(&c);
    }
    CHECK_EQ(p.started, 0);
    cctx_mhd_free(s);
    probe_destroy(&p);
}

/* A Transfer-Encoding other than one "chunked" line: libmicrohttpd 0.9.75
 * reads such a body until the connection closes, so the request was never
 * answered and a proxy's next request on the connection (which the proxy
 * framed by chunked) became its body. Answered at once, and closed. */
TEST(mhd_transfer_encoding_not_chunked_refused)
{
    struct probe p;
    probe_init(&p);
    cctx_mhd_t *s = start_probe_server(&p, NULL);
    static const struct {
        const char *te;
        int status;
        const char *why;
    } cases[] = {
        {"Transfer-Encoding: gzip, chunked\r\n", 501,
         "unsupported Transfer-Encoding: \"gzip, chunked\"\n"},
        {"Transfer-Encoding: identity\r\n", 400,
         "Transfer-Encoding without chunked last: \"identity\"\n"},
        {"Transfer-Encoding: chunked, identity\r\n", 400,
         "Transfer-Encoding without chunked last: \"chunked, identity\"\n"},
        {"Transfer-Encoding: xchunked\r\n", 400,
         "Transfer-Encoding without chunked last: \"xchunked\"\n"},
        {"Transfer-Encoding:\r\n", 400, "Transfer-Encoding without chunked last: \"\"\n"},
        {"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", 400,
         "more than one Transfer-Encoding\n"},
        {"Transfer-Encoding: chunked \r\n", 400, "malformed Transfer-Encoding: \"chunked \"\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char req[512];
        snprintf(req, sizeof req,
                 "POST /x HTTP/1.1\r\nHost: t\r\n%s\r\n3\r\nabc\r\n0\r\n\r\n"
                 "GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n",
                 cases[i].te);
        struct conn c;
        conn_open(&c, cctx_mhd_port(s));
        conn_send(&c, req);
        conn_read(&c, &r);
        printf("%s-> %d %s", cases[i].te, r.status, r.body);
        CHECK_EQ(r.status, cases[i].status);
        CHECK_STR(r.body, cases[i].why);
        char v[32];
        CHECK(resp_header(&r, "Connection", v, sizeof v));
        CHECK(strcasecmp(v, "close") == 0);
        CHECK(conn_closed_within(&c, 5000));
        conn_close(&c);
    }
    CHECK_EQ(p.started, 0);
    /* One "chunked" line, in any case, is still read. */
    struct conn c;
    conn_open(&c, cctx_mhd_port(s));
    conn_send(&c, "POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: Chunked\r\n\r\n"
                  "3\r\nabc\r\n0\r\n\r\n");
    conn_read(&c, &r);
    CHECK_EQ(r.status, 200);
    CHECK_EQ(p.started, 1);
    conn_close(&c);
    cctx_mhd_free(s);
    probe_destroy(&p);
}

static void path_handler(cctx_t *ctx, cctx_mhd_request_t *req, cctx_mhd_response_t *resp, void *arg)
{
    (void)ctx;
    cctx_mhd_printf(resp, "%s %s", (const char *)arg, cctx_mhd_path(req));
}

/* "%00" in the path decodes to a NUL byte, where the path everyone reads
 * ends: "/admin%00.png" reached the route "/admin". Answered 400, also
 * after a '#', which libmicrohttpd keeps in the path; "%2500" (an encoded
 * '%') and a NUL in the query are left alone. */
TEST(mhd_path_with_encoded_nul_400)
{
    cctx_mhd_t *s = cctx_mhd_start(cctx_background(), NULL, path_handler, "default");
    CHECK(s);
    CHECK_EQ(cctx_mhd_route(s, NULL, "/admin", path_handler, "admin", 0), 0);
    static const char *const bad[] = {"/admin%00.png", "/admin%00", "/%00", "/a/%00/b?x=1",
                                      "/admin#%00.png"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        http_get(cctx_mhd_port(s), bad[i], "", &r);
        printf("%s -> %d %s\n", bad[i], r.status, r.body);
        CHECK_EQ(r.status, 400);
        CHECK_STR(r.body, "malformed path: %00 (a NUL byte)\n");
    }
    http_get(cctx_mhd_port(s), "/admin%2500", "", &r);
    CHECK_EQ(r.status, 200);
    CHECK_STR(r.body, "default /admin%00");
    http_get(cctx_mhd_port(s), "/admin?q=%00", "", &r);
    CHECK_EQ(r.status, 200);
    CHECK_STR(r.body, "admin /admin");
    cctx_mhd_free(s);
}

/* Host twice: a proxy in front may have routed or checked by one line and
 * a handler reads the other. HTTP/1.1 asks for 400 (RFC 9112, 3.2). */
TEST(mhd_host_repeated_400)
{
    struct probe p;
    probe_init(&p);
    cctx_mhd_t *s = start_probe_server(&p, NULL);
    struct conn c;
    conn_open(&c, cctx_mhd_port(s));
    conn_send(&c, "GET /x HTTP/1.1\r\nHost: public.example\r\nHost: admin.internal\r\n\r\n");
    conn_read(&c, &r);
    CHECK_EQ(r.status, 400);
    CHECK_STR(r.body, "more than one Host\n");
    conn_close(&c);
    CHECK_EQ(p.started, 0);
    http_get(cctx_mhd_port(s), "/x", "", &r); /* one Host line */
    CHECK_EQ(r.status, 200);
    CHECK_EQ(p.started, 1);
    cctx_mhd_free(s);
    probe_destroy(&p);
}

/* A 2xx answer to CONNECT opens a tunnel, which libmicrohttpd cannot make:
 * it sent the handler's 200 without Content-Length and with the body after
 * it, then answered the next request on the connection, all of which a
 * client reads as the tunnel's bytes. Answered 501 and closed, even with a
 * route for the method; "connect" is another method (they are
 * case-sensitive), and is served. */
TEST(mhd_connect_501_and_closed)
{
    struct probe p;
    probe_init(&p);
    cctx_mhd_t *s = start_probe_server(&p, NULL);
    CHECK_EQ(cctx_mhd_route(s, "CONNECT", "*", probe_handler, &p, 0), 0);
    exchange(cctx_mhd_port(s),
             "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"
             "GET /next HTTP/1.1\r\nHost: t\r\n\r\n",
             501, &r);
    CHECK_STR(r.body, "CONNECT is not supported\n");
    char v[32];
    CHECK(resp_header(&r, "Connection", v, sizeof v));
    CHECK(strcasecmp(v, "close") == 0);
    CHECK_EQ(p.started, 0);
    exchange(cctx_mhd_port(s), "connect /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 200,
             &r);
    CHECK(resp_header(&r, "Content-Length", v, sizeof v));
    CHECK_STR(r.body, "ok\n");
    CHECK_EQ(p.started, 1);
    cctx_mhd_free(s);
    probe_destroy(&p);
}

TEST(mhd_tracestate_lines_joined)
{
    cctx_mhd_t *s = cctx_mhd_start(cctx_background(), NULL, state_handler, NULL);
    CHECK(s);
    http_get(cctx_mhd_port(s), "/t",
             "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n"
             "tracestate: a=1,b=2\r\ntracestate: c=3\r\n",
             &r);
    CHECK_EQ(r.status, 200);
    CHECK_STR(r.body, "a=1,b=2,c=3");
    http_get(cctx_mhd_port(s), "/t",
             "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n"
             "tracestate: a=1\r\n",
             &r);
    CHECK_STR(r.body, "a=1");
    cctx_mhd_free(s);
}

static atomic_int status_errs;

static void status_handler(cctx_t *ctx, cctx_mhd_request_t *req, cctx_mhd_response_t *resp,
                           void *arg)
{
    (void)ctx, (void)req, (void)arg;
    static const int bad[] = {0, 100, 101, 199, 600, -1};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (cctx_mhd_status(resp, bad[i]) != EINVAL)
            atomic_fetch_add_explicit(&status_errs, 1, memory_order_relaxed);
    if (cctx_mhd_status(resp, 200) != 0 || cctx_mhd_status(resp, 599) != 0 ||
        cctx_mhd_status(resp, 201) != 0)
        atomic_fetch_add_explicit(&status_errs, 1, memory_order_relaxed);
}

static void bad_header_handler(cctx_t *ctx, cctx_mhd_request_t *req, cctx_mhd_response_t *resp,
                               void *arg)
{
    (void)ctx, (void)req;
    CHECK_EQ(cctx_mhd_set_header(resp, "x-fine", "yes"), 0);
    CHECK_EQ(cctx_mhd_set_header(resp, (const char *)arg, "5"), 0);
    cctx_mhd_write(resp, "hello", 5);
}

/* A Connection header libmicrohttpd keeps to itself: keep-alive is its call. */
static void keep_alive_handler(cctx_t *ctx, cctx_mhd_request_t *req, cctx_mhd_response_t *resp,
                               void *arg)
{
    (void)ctx, (void)req, (void)arg;
    CHECK_EQ(cctx_mhd_set_header(resp, "Connection", "keep-alive"), 0);
    cctx_mhd_write(resp, "hello", 5);
}

/* Calls a handler must refuse, each leaving the response as it was: a
 * header name that is no token or a value with a control byte, a write
 * past any object's size, a cctx_mhd_limit outside a validator. */
static atomic_int refusals_wrong;

static void refusing_handler(cctx_t *ctx, cctx_mhd_request_t *req, cctx_mhd_response_t *resp,
                             void *arg)
{
    (void)ctx, (void)arg;
    int wrong = 0;
    static const char *const names[] = {"a b", "", "x:y", "\xff", "a\tb"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        wrong += cctx_mhd_set_header(resp, names[i], "v") != EINVAL;
    static const char *const values[] = {"\x01", "a\x7f", "a\rb", "a\nb"};
    for (size_t i = 0; i < sizeof values / sizeof *values; i++)
        wrong += cctx_mhd_set_header(resp, "x-v", values[i]) != EINVAL;
    wrong += cctx_mhd_set_header(resp, "x-tab", "a\tb") != 0;
    wrong += cctx_mhd_write(resp, "hello", 5) != 0;
    static const size_t lens[] = {SIZE_MAX, SIZE_MAX - 5, (size_t)PTRDIFF_MAX};
    for (size_t i = 0; i < sizeof lens / sizeof *lens; i++)
        wrong += cctx_mhd_write(resp, "x", lens[i]) != EINVAL;
    wrong += cctx_mhd_limit(req, CCTX_MSEC(1), NULL) != EINVAL;
    atomic_store(&refusals_wrong, wrong);
}

TEST(mhd_handler_calls_refused_leave_the_response_alone)
{
    atomic_store(&refusals_wrong, -1);
    cctx_mhd_t *s = cctx_mhd_start(cctx_background(), NULL, refusing_handler, NULL);
    CHECK(s);
    http_get(cctx_mhd_port(s), "/", "", &r);
    CHECK_EQ(atomic_load(&refusals_wrong), 0);
    CHECK_EQ(r.status, 200); /* before, the long write made it 500, a limit 504 */
    CHECK_STR(r.body, "hello");
    cctx_mhd_free(s);
}

TEST(mhd_response_status_and_refused_header)
{
    cctx_mhd_t *s = cctx_mhd_start(cctx_background(), NULL, status_handler, NULL);
    CHECK(s);
    CHECK_EQ(cctx_mhd_route(s, "GET", "/cl", bad_header_handler, "Content-Length", 0), 0);
    http_get(cctx_mhd_port(s), "/status", "", &r);
    CHECK_EQ(r.status, 201);
    CHECK_EQ(atomic_load(&status_errs), 0);
    http_get(cctx_mhd_port(s), "/cl", "", &r);
    CHECK_EQ(r.status, 500);
    CHECK_STR(r.body, "response header refused: Content-Length\n");
    CHECK_EQ(cctx_mhd_route(s, "GET", "/ka", keep_alive_handler, NULL, 0), 0);
    http_get(cctx_mhd_port(s), "/ka", "", &r);
    CHECK_EQ(r.status, 500);
    CHECK_STR(r.body, "response header refused: Connection\n");
    cctx_mhd_free(s);
}

/* A handler's "Transfer-Encoding: chunked" (libmicrohttpd frames the body
 * so) on an answer that has no body, HEAD's and a 304: libmicrohttpd 0.9.75
 * sent the last chunk ("0" and an empty line) all the same, and a client
 * read those bytes as the start of the next answer on the connection. */
static void chunked_handler(cctx_t *ctx, cctx_mhd_request_t *req, cctx_mhd_response_t *resp,
                            void *arg)
{
    (void)ctx, (void)arg;
    const char *status = cctx_mhd_query(req, "status");
    if (status)
        CHECK_EQ(cctx_mhd_status(resp, atoi(status)), 0);
    /* libmicrohttpd takes the name and the value in any case, and a second
     * line as the first. */
    const char *name = cctx_mhd_query(req, "name"), *value = cctx_mhd_query(req, "value");
    name = name ? name : "Transfer-Encoding";
    value = value ? value : "chunked";
    CHECK_EQ(cctx_mhd_set_header(resp, name, value), 0);
    if (cctx_mhd_query(req, "twice"))
        CHECK_EQ(cctx_mhd_set_header(resp, name, value), 0);
    cctx_mhd_write(resp, "hello", 5);
}

static void after_handler(cctx_t *ctx, cctx_mhd_request_t *req, cctx_mhd_response_t *resp,
                          void *arg)
{
    (void)ctx, (void)req, (void)arg;
    cctx_mhd_write(resp, "after", 5);
}

/* Sends `first` and a GET /after behind it on one connection; the bytes
 * between the end of the first answer's headers and the second answer
 * must be none. With `length`, the first answer's headers give the length
 * of the 5 bytes the handler wrote, those a GET would have got. */
static void no_body_then_next(uint16_t port, const char *first, bool length)
{
    static struct conn c;
    conn_open(&c, port);
    conn_send(&c, first);
    conn_send(&c, "GET /after HTTP/1.1\r\nHost: t\r\n\r\n");
    static char got[8192];
    size_t n = 0;
    while (!memmem(got, n, "\r\n\r\nafter", 9)) {
        struct pollfd p = {.fd = c.fd, .events = POLLIN};
        CHECK(poll(&p, 1, 10000) == 1);
        ssize_t k = recv(c.fd, got + n, sizeof got - n, 0);
        CHECK(k > 0);
        n += (size_t)k;
    }
    conn_close(&c);
    const char *head_end = memmem(got, n, "\r\n\r\n", 4);
    const char *second = memmem(got + 1, n - 1, "HTTP/1.1 200", 12);
    CHECK(head_end && second);
    CHECK_EQ((long)(second - (head_end + 4)), 0L);
    CHECK_EQ(memmem(got, (size_t)(head_end + 2 - got), "\r\nContent-Length: 5\r\n", 21) != NULL,
             length);
}

TEST(mhd_chunked_answer_without_body_sends_no_last_chunk)
{
    cctx_mhd_t *s = cctx_mhd_start(cctx_background(), NULL, chunked_handler, NULL);
    CHECK(s);
    CHECK_EQ(cctx_mhd_route(s, "GET", "/after", after_handler, NULL, 0), 0);
    uint16_t port = cctx_mhd_port(s);
    no_body_then_next(port, "HEAD /h HTTP/1.1\r\nHost: t\r\n\r\n", true);
    no_body_then_next(port, "HEAD /h?status=404 HTTP/1.1\r\nHost: t\r\n\r\n", true);
    no_body_then_next(port, "GET /h?status=304 HTTP/1.1\r\nHost: t\r\n\r\n", true);
    no_body_then_next(port, "HEAD /h?value=Chunked&twice=1 HTTP/1.1\r\nHost: t\r\n\r\n", true);
    no_body_then_next(port,
                      "GET /h?status=304&name=transfer-encoding&value=CHUNKED HTTP/1.1\r\n"
                      "Host: t\r\n\r\n",
                      true);
    /* libmicrohttpd drops the header from a 204 itself. */
    no_body_then_next(port, "GET /h?status=204 HTTP/1.1\r\nHost: t\r\n\r\n", false);
    /* A GET still has its body, chunked. */
    static struct conn c;
    conn_open(&c, port);
    conn_send(&c, "GET /h HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    static char got[4096];
    size_t n = 0;
    for (ssize_t k; (k = recv(c.fd, got + n, sizeof got - 1 - n, 0)) > 0;)
        n += (size_t)k;
    got[n] = '\0';
    conn_close(&c);
    CHECK(strstr(got, "\r\n\r\n5\r\nhello\r\n0\r\n\r\n"));
    cctx_mhd_free(s);
}

/* ---- shutdown ------------------------------------------------------------------------ */

struct shutting {
    cctx_mhd_t *s;
    int64_t drain;
    int rc;
};

static void *shut_down(void *arg)
{
    struct shutting *sh = arg;
    sh->rc = cctx_mhd_shutdown(sh->s, sh->drain);
    return NULL;
}

/* Once shutdown has begun, a new client is refused at once. Before, the
 * quiesced socket still listened: the kernel took the connection, and its
 * client waited out the whole drain for a reset. */
TEST(mhd_shutdown_refuses_new_connections_while_it_drains)
{
    struct probe p;
    probe_init(&p);
    p.block = true; /* holds the drain for its whole length */
    cctx_mhd_t *s = start_probe_server(&p, NULL);
    uint16_t port = cctx_mhd_port(s);
    CHECK(!conn_refused(port));
    struct conn c;
    conn_open(&c, port);
    conn_send(&c, "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK(probe_wait_started(&p, 1, 5000));
    struct shutting sh = {s, CCTX_SEC(30), -1};
    pthread_t t;
    int64_t t0 = real_now();
    CHECK_EQ(pthread_create(&t, NULL, shut_down, &sh), 0);
    while (!conn_refused(port)) /* a connect the backlog took, or still queued */
        real_sleep_ms(5);
    CHECK(real_now() - t0 < CCTX_SEC(5)); /* before: at the drain's end, 10 s on */
    conn_close(&c);                       /* the held request ends (499), and with it the drain */
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_EQ(sh.rc, 0);
    cctx_mhd_free(s);
    probe_destroy(&p);
}

/* A request whose headers came before shutdown and whose body is still
 * arriving: the drain waits for it, and it is served once its body is in.
 * Before, the drain found nothing in flight and ended at once, and
 * libmicrohttpd closed the connection unanswered. */
static void echo_body(cctx_t *ctx, cctx_mhd_request_t *req, cctx_mhd_response_t *resp, void *arg)
{
    (void)ctx, (void)arg;
    size_t n;
    const char *body = cctx_mhd_body(req, &n);
    cctx_mhd_write(resp, body, n);
}

/* Starts a shutdown with `drain` on a thread of its own while a request's
 * body is half in, and returns once shutdown has begun, with the time it
 * was started. */
static int64_t shut_down_mid_body(struct shutting *sh, pthread_t *t, struct conn *c)
{
    uint16_t port = cctx_mhd_port(sh->s);
    conn_open(c, port);
    conn_send(c, "POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n12345");
    for (int k = 0; !server_has_request(sh->s, "POST /up"); k++) { /* its headers are in */
        CHECK(k < 5000);
        real_sleep_ms(1);
    }
    int64_t t0 = real_now();
    CHECK_EQ(pthread_create(t, NULL, shut_down, sh), 0);
    for (int k = 0; !conn_refused(port); k++) {
        CHECK(k < 2000);
        real_sleep_ms(5);
    }
    return t0;
}

TEST(mhd_shutdown_drain_waits_for_a_body_still_arriving)
{
    cctx_mhd_t *s = cctx_mhd_start(cctx_background(), NULL, echo_body, NULL);
    CHECK(s);
    static struct conn c;
    struct shutting sh = {s, CCTX_SEC(30), -1};
    pthread_t t;
    int64_t t0 = shut_down_mid_body(&sh, &t, &c);
    conn_send(&c, "67890");
    conn_read(&c, &r);
    CHECK_EQ(r.status, 200); /* before: 0, closed without an answer */
    CHECK_STR(r.body, "1234567890");
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_EQ(sh.rc, 0);
    CHECK(real_now() - t0 < CCTX_SEC(20)); /* it ended with the request, not the drain */
    conn_close(&c);
    cctx_mhd_free(s);
}

/* The same body that never comes in: the drain ends at its time, and the
 * connection is closed without an answer. */
TEST(mhd_shutdown_drain_ends_at_its_time_for_a_body_that_never_comes)
{
    cctx_mhd_t *s = cctx_mhd_start(cctx_background(), NULL, echo_body, NULL);
    CHECK(s);
    static struct conn c;
    struct shutting sh = {s, CCTX_MSEC(300), -1};
    pthread_t t;
    int64_t t0 = shut_down_mid_body(&sh, &t, &c);
    CHECK_EQ(pthread_join(t, NULL), 0);
    int64_t took = real_now() - t0;
    CHECK_EQ(sh.rc, 0);
    CHECK(took >= CCTX_MSEC(300)); /* before: at once */
    CHECK(took < CCTX_SEC(10));
    CHECK(conn_closed_within(&c, 5000));
    conn_close(&c);
    cctx_mhd_free(s);
}

/* An after-function of the server's context that shuts the server down
 * runs on the thread of the shutdown that cancels that context: it gets
 * EDEADLK. Before, it waited for the shutdown it was part of, for ever.
 * Shutting another server down there first changes nothing. */
static cctx_mhd_t *hooked_server, *other_server;
static int hook_result = -1, other_result = -1;

static void shut_down_again(void *arg)
{
    (void)arg;
    other_result = cctx_mhd_shutdown(other_server, 0);
    hook_result = cctx_mhd_shutdown(hooked_server, 0);
}

static void shutdown_runs_a_hook_that_shuts_down(void)
{
    struct probe p, q;
    probe_init(&p);
    probe_init(&q);
    hooked_server = start_probe_server(&p, NULL);
    other_server = start_probe_server(&q, NULL);
    cctx_after_t reg;
    CHECK_EQ(cctx_after_func(cctx_mhd_context(hooked_server), &reg, shut_down_again, NULL), 0);
    CHECK_EQ(cctx_mhd_shutdown(hooked_server, CCTX_MSEC(10)), 0);
    CHECK_EQ(other_result, 0);
    CHECK_EQ(hook_result, EDEADLK);
    cctx_mhd_free(other_server);
    cctx_mhd_free(hooked_server);
    probe_destroy(&q);
    probe_destroy(&p);
}

TEST(mhd_shutdown_from_an_after_function_it_runs_edeadlk)
{
    run_with_watchdog(shutdown_runs_a_hook_that_shuts_down, 30);
}
