/* SPDX-License-Identifier: MIT */
/*
 * The server's behaviour: middleware statuses, body limits, the bounded
 * queue, the end of a request context when its handler returns, shutdown,
 * traces, names and values, routes, the debug route and bad input.
 */
#include "harness.h"
#include "mhd_support.h"
#include "support.h"

#include <sys/socket.h>

static struct http_resp r;

TEST(mhd_require_header_401)
{
    struct probe p;
    probe_init(&p);
    cctx_mhd_t *s = start_probe_server(&p, NULL);
    CHECK_EQ(cctx_mhd_use_require_header(s, "authorization", 401), 0);
    http_get(cctx_mhd_port(s), "/private", "", &r);
    CHECK_EQ(r.status, 401);
    CHECK_STR(r.body, "authorization header required\n");
    CHECK_EQ(p.started, 0);
    http_get(cctx_mhd_port(s), "/private", "Authorization: Bearer x\r\n", &r);
    CHECK_EQ(r.status, 200);
    CHECK_EQ(p.started, 1);
    cctx_mhd_free(s);
    probe_destroy(&p);
}

static void post(uint16_t port, const char *path, size_t body_len, bool chunked)
{
    static struct conn c;
    static char body[1 << 15];
    CHECK(body_len < sizeof body);
    memset(body, 'x', body_len);
    body[body_len] = '\0';
    char head[256];
    if (chunked)
        snprintf(head, sizeof head,
                 "POST %s HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                 "Connection: close\r\n\r\n%zx\r\n", path, body_len);
    else
        snprintf(head, sizeof head,
                 "POST %s HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                 path, body_len);
    conn_open(&c, port);
    conn_send(&c, head);
    conn_send(&c, body);
    if (chunked)
        conn_send(&c, "\r\n0\r\n\r\n");
    conn_read(&c, &r);
    conn_close(&c);
}

static void echo_len(cctx_t *ctx, cctx_mhd_request_t *req, cctx_mhd_response_t *resp, void *arg)
{
    (void)ctx;
    atomic_int *runs = arg;
    atomic_fetch_add(runs, 1);
    size_t len;
    cctx_mhd_body(req, &len);
    cctx_mhd_printf(resp, "%zu", len);
}

TEST(mhd_body_limit_413)
{
    static atomic_int runs;
    cctx_mhd_options_t o = CCTX_MHD_OPTIONS_INIT;
    o.max_body = 1000;
    cctx_mhd_t *s = cctx_mhd_start(cctx_background(), &o, echo_len, &runs);
    CHECK(s);
    uint16_t port = cctx_mhd_port(s);
    post(port, "/up", 1000, false);
    CHECK_EQ(r.status, 200);
    CHECK_STR(r.body, "1000");
    post(port, "/up", 1001, false); /* Content-Length says so: refused at the headers */
    CHECK_EQ(r.status, 413);
    post(port, "/up", 5000, true); /* chunked: refused once read */
    CHECK_EQ(r.status, 413);
    post(port, "/up", 900, true);
    CHECK_EQ(r.status, 200);
    CHECK_STR(r.body, "900");
    CHECK_EQ(atomic_load(&runs), 2);
    /* The middleware bound, below the server's. */
    CHECK_EQ(cctx_mhd_use_max_body(s, 100), 0);
    post(port, "/up", 101, false);
    CHECK_EQ(r.status, 413);
    CHECK_STR(r.body, "request body too large\n");
    post(port, "/up", 100, false);
    CHECK_EQ(r.status, 200);
    CHECK_EQ(atomic_load(&runs), 3);
    cctx_mhd_free(s);
}

TEST(mhd_queue_full_503)
{
    struct probe p;
    probe_init(&p);
    p.block = true;
    cctx_mhd_options_t o = CCTX_MHD_OPTIONS_INIT;
    o.workers = 2;
    o.queue = 2;
    cctx_mhd_t *s = start_probe_server(&p, &o);
    uint16_t port = cctx_mhd_port(s);
    static struct conn c[4];
    for (int i = 0; i < 2; i++) { /* both workers blocked */
        conn_open(&c[i], port);
        conn_send(&c[i], "GET /b HTTP/1.1\r\nHost: t\r\n\r\n");
    }
    CHECK(probe_wait_started(&p, 2, 5000));
    for (int i = 2; i < 4; i++) { /* the queue full */
        conn_open(&c[i], port);
        conn_send(&c[i], "GET /q HTTP/1.1\r\nHost: t\r\n\r\n");
    }
    /* The queue is full once the server took both in: poll with the next
     * request until it is refused (queued ones stay queued). */
    int64_t t0 = real_now();
    http_get(port, "/over", "", &r);
    while (r.status != 503 && real_now() - t0 < CCTX_SEC(5))
        http_get(port, "/over", "", &r); /* only possible before both were queued */
    CHECK_EQ(r.status, 503);
    CHECK_STR(r.body, "server busy: queue full\n");
    CHECK(real_now() - t0 < CCTX_SEC(5));
    CHECK_EQ(p.started, 2);
    CHECK_EQ(cctx_mhd_shutdown(s, 0), 0); /* the blocked handlers end at once */
    cctx_mhd_free(s);
    for (int i = 0; i < 4; i++)
        conn_close(&c[i]);
    probe_destroy(&p);
}

TEST(mhd_handler_return_cancels)
{
    struct probe p;
    probe_init(&p);
    p.keep = true;
    cctx_mhd_t *s = start_probe_server(&p, NULL);
    http_get(cctx_mhd_port(s), "/r", "", &r);
    CHECK_EQ(r.status, 200);
    CHECK(probe_wait_ended(&p, 1, 5000));
    pthread_mutex_lock(&p.mu);
    cctx_t *kept = p.kept;
    pthread_mutex_unlock(&p.mu);
    CHECK_EQ(cctx_wait(kept, CCTX_SEC(5)), ECANCELED);
    cctx_cause_t c;
    cctx_cause(kept, &c);
    CHECK_EQ(c.code, 0);
    CHECK_STR(c.msg, "handler returned");
    cctx_mhd_free(s);
    probe_destroy(&p);
}

/* Shutdown: a request that finishes within the drain time completes; one
 * that does not is canceled with "server shutting down". */
struct drainer {
    struct probe p;
    int64_t work; /* how long the handler works unless its context ends */
};

static void drain_handler(cctx_t *ctx, cctx_mhd_request_t *req, cctx_mhd_response_t *resp,
                          void *arg)
{
    struct drainer *d = arg;
    (void)req;
    pthread_mutex_lock(&d->p.mu);
    d->p.started++;
    pthread_cond_broadcast(&d->p.cv);
    pthread_mutex_unlock(&d->p.mu);
    cctx_wait(ctx, d->work);
    pthread_mutex_lock(&d->p.mu);
    cctx_cause(ctx, &d->p.cause);
    snprintf(d->p.msg, sizeof d->p.msg, "%s", d->p.cause.msg ? d->p.cause.msg : "");
    d->p.ended++;
    pthread_cond_broadcast(&d->p.cv);
    pthread_mutex_unlock(&d->p.mu);
    cctx_mhd_write(resp, "done\n", 5);
}

static void shutdown_case(int64_t work, int64_t drain, int want_code, const char *want_msg)
{
    static struct drainer d;
    probe_init(&d.p);
    d.work = work;
    cctx_mhd_t *s = cctx_mhd_start(cctx_background(), NULL, drain_handler, &d);
    CHECK(s);
    static struct conn c;
    conn_open(&c, cctx_mhd_port(s));
    conn_send(&c, "GET /w HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK(probe_wait_started(&d.p, 1, 5000));
    int64_t t0 = real_now();
    CHECK_EQ(cctx_mhd_shutdown(s, drain), 0);
    int64_t took = real_now() - t0;
    CHECK_EQ(d.p.ended, 1); /* shutdown returned after the handler */
    CHECK_EQ(d.p.cause.code, want_code);
    if (want_msg)
        CHECK_STR(d.p.msg, want_msg);
    else
        CHECK_EQ(d.p.cause.err, 0);
    CHECK(took < drain + CCTX_SEC(2));
    conn_read(&c, &r); /* the drained request still got its answer */
    CHECK_EQ(r.status, 200);
    CHECK_STR(r.body, "done\n");
    conn_close(&c);
    /* No longer accepting. */
    struct conn c2;
    c2.fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK_EQ(cctx_mhd_shutdown(s, drain), 0); /* again: at once */
    close(c2.fd);
    cctx_mhd_free(s);
    probe_destroy(&d.p);
}

TEST(mhd_shutdown_drains)
{
    shutdown_case(CCTX_MSEC(50), CCTX_SEC(5), 0, NULL);
}

TEST(mhd_shutdown_cancels_after_drain)
{
    shutdown_case(CCTX_SEC(30), CCTX_MSEC(100), 503, "server shutting down");
}

TEST(mhd_trace_propagated)
{
    struct probe p;
    probe_init(&p);
    cctx_mhd_t *s = start_probe_server(&p, NULL);
    http_get(cctx_mhd_port(s), "/t",
             "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n"
             "tracestate: congo=t61rcWkgMzE\r\n", &r);
    CHECK_EQ(r.status, 200);
    CHECK_STR(p.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    CHECK_STR(p.parent_id, "00f067aa0ba902b7");
    CHECK(strcmp(p.span_id, "00f067aa0ba902b7") != 0);
    CHECK(strlen(p.span_id) == 16);
    /* Whitespace after the value is not part of it. */
    http_get(cctx_mhd_port(s), "/t",
             "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01 \t\r\n", &r);
    CHECK_EQ(r.status, 200);
    CHECK_STR(p.trace_id, "0af7651916cd43dd8448eb211c80319c");
    CHECK_STR(p.parent_id, "b7ad6b7169203331");
    cctx_mhd_free(s);
    probe_destroy(&p);
}

TEST(mhd_trace_invalid_is_new)
{
    struct probe p;
    probe_init(&p);
    cctx_mhd_t *s = start_probe_server(&p, NULL);
    http_get(cctx_mhd_port(s), "/t",
             "traceparent: 00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01\r\n", &r);
    CHECK_EQ(r.status, 200);
    CHECK(strlen(p.trace_id) == 32);
    CHECK(strcmp(p.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736") != 0);
    CHECK_STR(p.parent_id, "0000000000000000");
    char first[33];
    strcpy(first, p.trace_id);
    http_get(cctx_mhd_port(s), "/t", "", &r); /* absent: a new trace too */
    CHECK(strcmp(first, p.trace_id) != 0);
    /* Sent on two lines: no one caller, a new trace. */
    http_get(cctx_mhd_port(s), "/t",
             "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n"
             "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n",
             &r);
    CHECK_EQ(r.status, 200);
    CHECK(strcmp(p.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736") != 0);
    CHECK(strcmp(p.trace_id, "0af7651916cd43dd8448eb211c80319c") != 0);
    CHECK_STR(p.parent_id, "0000000000000000");
    cctx_mhd_free(s);
    probe_destroy(&p);
}

TEST(mhd_request_name_and_values)
{
    struct probe p;
    probe_init(&p);
    cctx_mhd_t *s = start_probe_server(&p, NULL);
    CHECK_EQ(cctx_mhd_route(s, NULL, "/api/*", probe_handler, &p, 0), 0);
    http_get(cctx_mhd_port(s), "/plain?x=1", "", &r);
    CHECK_STR(p.name, "GET /plain");
    CHECK_STR(p.route, "");
    CHECK_EQ(p.id, 1);
    http_get(cctx_mhd_port(s), "/api/users", "", &r);
    CHECK_STR(p.name, "GET /api/users");
    CHECK_STR(p.route, "/api/*");
    CHECK_EQ(p.id, 2);
    CHECK_EQ(cctx_mhd_request_id(cctx_background()), 0);
    CHECK(cctx_mhd_route_of(cctx_background()) == NULL);
    cctx_mhd_free(s);
    probe_destroy(&p);
}

TEST(mhd_debug_route_html_json)
{
    struct probe p;
    probe_init(&p);
    p.block = true;
    cctx_mhd_options_t o = CCTX_MHD_OPTIONS_INIT;
    o.debug_path = "/debug/cctx";
    cctx_mhd_t *s = start_probe_server(&p, &o);
    uint16_t port = cctx_mhd_port(s);
    static struct conn c;
    conn_open(&c, port);
    conn_send(&c, "GET /busy/thing HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK(probe_wait_started(&p, 1, 5000));
    http_get(port, "/debug/cctx", "", &r);
    CHECK_EQ(r.status, 200);
    char ct[64];
    CHECK(resp_header(&r, "content-type", ct, sizeof ct));
    CHECK(strncmp(ct, "text/html", 9) == 0);
    CHECK(strstr(r.body, "<html") || strstr(r.body, "<!DOCTYPE") || strstr(r.body, "<!doctype"));
    CHECK(strstr(r.body, "GET /busy/thing") != NULL);
    http_get(port, "/debug/cctx?format=json", "", &r);
    CHECK_EQ(r.status, 200);
    CHECK(resp_header(&r, "content-type", ct, sizeof ct));
    CHECK_STR(ct, "application/json");
    CHECK(r.body[0] == '{' || r.body[0] == '[');
    CHECK(strstr(r.body, "\"GET /busy/thing\"") != NULL);
    CHECK(strstr(r.body, "GET /debug/cctx") != NULL);
    char port_name[32];
    snprintf(port_name, sizeof port_name, "cctx-mhd :%u", port);
    CHECK(strstr(r.body, port_name) != NULL);
    http_get(port, "/debug/cctx?format=text", "", &r);
    CHECK_EQ(r.status, 200);
    CHECK(resp_header(&r, "content-type", ct, sizeof ct));
    CHECK(strncmp(ct, "text/plain", 10) == 0);
    CHECK(strstr(r.body, "\"GET /busy/thing\"") != NULL);
    http_get(port, "/debug/cctx?format=dot", "", &r);
    CHECK_EQ(r.status, 200);
    CHECK(strstr(r.body, "digraph") != NULL);
    http_get(port, "/debug/cctx?format=xml", "", &r);
    CHECK_EQ(r.status, 400);
    conn_close(&c); /* the busy request ends: client disconnected */
    CHECK(probe_wait_ended(&p, 1, 5000));
    cctx_mhd_free(s);
    probe_destroy(&p);
}

static int deny_odd(cctx_t *ctx, cctx_mhd_request_t *req, char *msg, size_t size, void *arg)
{
    (void)ctx;
    (void)arg;
    const char *v = cctx_mhd_query(req, "n");
    if (v && atoi(v) % 2) {
        snprintf(msg, size, "odd n: %s", v);
        return 403;
    }
    return 0;
}

/* A validator that refuses without a message: the body is the status's
 * reason phrase. It refuses with the status the query names. */
static int deny_silently(cctx_t *ctx, cctx_mhd_request_t *req, char *msg, size_t size, void *arg)
{
    (void)ctx, (void)msg, (void)size, (void)arg;
    const char *st = cctx_mhd_query(req, "status");
    return st ? atoi(st) : 0;
}

TEST(mhd_validator_without_a_message_answers_the_reason_phrase)
{
    struct probe p;
    probe_init(&p);
    cctx_mhd_t *s = start_probe_server(&p, NULL);
    CHECK_EQ(cctx_mhd_use(s, deny_silently, NULL), 0);
    static const struct {
        const char *path, *body;
        int status;
    } cases[] = {
        {"/m?status=403", "Forbidden\n", 403},
        {"/m?status=429", "Too Many Requests\n", 429},
        {"/m?status=503", "Service Unavailable\n", 503},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        http_get(cctx_mhd_port(s), cases[i].path, "", &r);
        CHECK_EQ(r.status, cases[i].status);
        CHECK_STR(r.body, cases[i].body);
    }
    CHECK_EQ(p.started, 0);
    cctx_mhd_free(s);
    probe_destroy(&p);
}

/* Spaces and tabs after a header's value are not part of it (RFC 9110,
 * 5.5); libmicrohttpd leaves them in. The handler reads a value twice: the
 * same copy both times. */
static void echo_key(cctx_t *ctx, cctx_mhd_request_t *req, cctx_mhd_response_t *resp, void *arg)
{
    (void)ctx, (void)arg;
    const char *v = cctx_mhd_header(req, "x-key");
    const char *again = cctx_mhd_header(req, "X-Key");
    cctx_mhd_printf(resp, "[%s] %s", v ? v : "(none)", v == again ? "same" : "other");
}

TEST(mhd_header_value_has_no_whitespace_after_it)
{
    cctx_mhd_t *s = cctx_mhd_start(cctx_background(), NULL, echo_key, NULL);
    CHECK(s);
    static const struct {
        const char *line, *want;
    } cases[] = {
        {"x-key: Bearer tok  \r\n", "[Bearer tok] same"},
        {"x-key:\ttok\t\r\n", "[tok] same"},
        {"x-key: a b\r\n", "[a b] same"},
        {"", "[(none)] same"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        http_get(cctx_mhd_port(s), "/h", cases[i].line, &r);
        CHECK_EQ(r.status, 200);
        CHECK_STR(r.body, cases[i].want);
    }
    cctx_mhd_free(s);
}

TEST(mhd_user_middleware_in_order)
{
    struct probe p;
    probe_init(&p);
    cctx_mhd_t *s = start_probe_server(&p, NULL);
    CHECK_EQ(cctx_mhd_use(s, deny_odd, NULL), 0);
    CHECK_EQ(cctx_mhd_use_require_header(s, "x-key", 401), 0);
    http_get(cctx_mhd_port(s), "/m?n=3", "", &r);
    CHECK_EQ(r.status, 403); /* the first validator answers */
    CHECK_STR(r.body, "odd n: 3\n");
    http_get(cctx_mhd_port(s), "/m?n=4", "", &r);
    CHECK_EQ(r.status, 401);
    http_get(cctx_mhd_port(s), "/m?n=4", "x-key: k\r\n", &r);
    CHECK_EQ(r.status, 200);
    CHECK_EQ(p.started, 1);
    CHECK_EQ(cctx_mhd_use(NULL, deny_odd, NULL), EINVAL);
    CHECK_EQ(cctx_mhd_use(s, NULL, NULL), EINVAL);
    CHECK_EQ(cctx_mhd_use_require_header(s, "x", 200), EINVAL);
    cctx_mhd_free(s);
    probe_destroy(&p);
}

TEST(mhd_parent_canceled)
{
    struct probe p;
    probe_init(&p);
    p.block = true;
    cctx_cancel_t *cancel;
    cctx_t *parent = cctx_with_cancel(cctx_background(), &cancel);
    cctx_mhd_t *s = cctx_mhd_start(parent, NULL, probe_handler, &p);
    CHECK(s);
    static struct conn c;
    conn_open(&c, cctx_mhd_port(s));
    conn_send(&c, "GET /x HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK(probe_wait_started(&p, 1, 5000));
    cctx_cancel_cause(cancel, 42, "parent went away");
    CHECK(probe_wait_ended(&p, 1, 5000));
    CHECK_EQ(p.cause.code, 42);
    CHECK_STR(p.msg, "parent went away");
    conn_read(&c, &r);
    CHECK_EQ(r.status, 200);
    http_get(cctx_mhd_port(s), "/y", "", &r); /* later requests: 503 */
    CHECK_EQ(r.status, 503);
    CHECK_EQ(p.started, 1);
    conn_close(&c);
    cctx_mhd_free(s);
    cctx_release(parent);
    probe_destroy(&p);
}

TEST(mhd_bad_input)
{
    struct probe p;
    probe_init(&p);
    cctx_mhd_t *s = start_probe_server(&p, NULL);
    uint16_t port = cctx_mhd_port(s);
    const char *bad[] = {
        "GARBAGE\r\n\r\n",
        "GET\r\n\r\n",
        "GET / HTTP/9.9\r\nHost: t\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "GET / HTTP/1.1\r\nHost: t\r\nno colon here\r\n\r\n",
    };
    static struct conn c;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        conn_open(&c, port);
        conn_send(&c, bad[i]);
        shutdown(c.fd, SHUT_WR);
        conn_read(&c, &r); /* an error status, or a closed connection */
        CHECK(r.status == 0 || r.status >= 400);
        conn_close(&c);
    }
    /* A huge header: more than libmicrohttpd's connection memory. */
    static char big[100000];
    memset(big, 'a', sizeof big - 1);
    conn_open(&c, port);
    conn_send(&c, "GET / HTTP/1.1\r\nHost: t\r\nx-big: ");
    send(c.fd, big, sizeof big - 1, MSG_NOSIGNAL);
    send(c.fd, "\r\n\r\n", 4, MSG_NOSIGNAL);
    conn_read(&c, &r);
    CHECK(r.status == 0 || r.status >= 400);
    conn_close(&c);
    CHECK_EQ(p.started, 0);
    /* NUL bytes in a header line (strlen would stop at them): answered
     * cleanly either way. */
    static const char nul[] = "GET / HTTP/1.1\r\nHost: t\r\nx-a: \0\0\0\r\n\r\n";
    conn_open(&c, port);
    CHECK(send(c.fd, nul, sizeof nul - 1, MSG_NOSIGNAL) == (ssize_t)(sizeof nul - 1));
    conn_read(&c, &r);
    CHECK(r.status == 0 || r.status == 200 || r.status >= 400); /* libmicrohttpd may take it */
    conn_close(&c);
    http_get(port, "/still-up", "", &r);
    CHECK_EQ(r.status, 200);
    cctx_mhd_free(s);
    probe_destroy(&p);
}

/* A folded line (one that begins with whitespace continues the header
 * before it): libmicrohttpd 0.9.75 runs it into that header's name, so
 * "grpc-timeout: 1S" folded with " 5S" was a header "grpc-timeout5S", and
 * the request ran with no deadline; a folded Content-Length or
 * Transfer-Encoding let its body be read as the next request. Answered 400,
 * and closed. Whitespace between a colon and its value is no fold. */
TEST(mhd_folded_header_line_400_and_closed)
{
    struct probe p;
    probe_init(&p);
    cctx_mhd_t *s = start_probe_server(&p, NULL);
    static const char *const folded[] = {
        "GET /deadline HTTP/1.1\r\nHost: t\r\ngrpc-timeout: 1S\r\n 5S\r\n\r\n",
        "POST /a HTTP/1.1\r\nHost: t\r\nContent-Length:\r\n 38\r\n\r\n"
        "GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n",
        "POST /te HTTP/1.1\r\nHost: t\r\nTransfer-Encoding:\r\n\tchunked\r\n\r\n"
        "3\r\nabc\r\n0\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof folded / sizeof *folded; i++) {
        exchange(cctx_mhd_port(s), folded[i], 400, &r);
        CHECK(strstr(r.body, "malformed header name") != NULL);
    }
    CHECK_EQ(p.started, 0);
    exchange(cctx_mhd_port(s),
             "GET /x HTTP/1.1\r\nHost: t\r\ngrpc-timeout: \t  5S\r\nx-empty:\r\n\r\n", 200, &r);
    CHECK_EQ(p.started, 1);
    cctx_mhd_free(s);
    probe_destroy(&p);
}

/* HTTP/1.0 has no Transfer-Encoding: a hop in front that speaks only 1.0
 * framed the message otherwise, so such a request is refused and its
 * connection closed (RFC 9112, 6.1); before, its chunked body was read and
 * what followed was served as further requests. */
TEST(mhd_http10_transfer_encoding_400_and_closed)
{
    struct probe p;
    probe_init(&p);
    cctx_mhd_t *s = start_probe_server(&p, NULL);
    exchange(cctx_mhd_port(s),
             "POST /h10 HTTP/1.0\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
             "Connection: keep-alive\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
             "GET /after HTTP/1.1\r\nHost: t\r\n\r\n",
             400, &r);
    CHECK_STR(r.body, "Transfer-Encoding in an HTTP/1.0 request\n");
    CHECK_EQ(p.started, 0);
    /* With a length, HTTP/1.0 is served. */
    exchange(cctx_mhd_port(s), "POST /h10 HTTP/1.0\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
             200, &r);
    CHECK_EQ(p.started, 1);
    cctx_mhd_free(s);
    probe_destroy(&p);
}

TEST(mhd_start_errors)
{
    cctx_mhd_options_t o = CCTX_MHD_OPTIONS_INIT;
    CHECK_ERRNO(cctx_mhd_start(NULL, &o, probe_handler, NULL), NULL, EINVAL);
    o.bind_address = "not an address";
    CHECK_ERRNO(cctx_mhd_start(cctx_background(), &o, probe_handler, NULL), NULL, EINVAL);
    o.bind_address = NULL;
    /* A deadline header that is no header name would never be seen. */
    static const char *const not_names[] = {"", "x deadline", "x-d\r\nfoo", "\xff", "a:b"};
    for (size_t i = 0; i < sizeof not_names / sizeof *not_names; i++) {
        o.deadline_header = not_names[i];
        CHECK_ERRNO(cctx_mhd_start(cctx_background(), &o, probe_handler, NULL), NULL, EINVAL);
    }
    o.deadline_header = NULL;
    o.max_timeout = -1;
    CHECK_ERRNO(cctx_mhd_start(cctx_background(), &o, probe_handler, NULL), NULL, EINVAL);
    o.max_timeout = 0;
    cctx_mhd_t *a = cctx_mhd_start(cctx_background(), &o, NULL, NULL);
    CHECK(a);
    o.port = cctx_mhd_port(a);
    CHECK_ERRNO(cctx_mhd_start(cctx_background(), &o, probe_handler, NULL), NULL, EADDRINUSE);
    http_get(cctx_mhd_port(a), "/nothing", "", &r); /* no handler, no route */
    CHECK_EQ(r.status, 404);
    CHECK_EQ(cctx_mhd_route(a, "GET", NULL, probe_handler, NULL, 0), EINVAL);
    CHECK_EQ(cctx_mhd_route(a, "GET", "/x", probe_handler, NULL, -1), EINVAL);
    CHECK_EQ(cctx_mhd_shutdown(NULL, 0), EINVAL);
    CHECK_EQ(cctx_mhd_port(NULL), 0);
    CHECK_ERRNO(cctx_mhd_context(NULL), NULL, EINVAL);
    cctx_mhd_free(a);
    cctx_mhd_free(NULL);
    o.port = 0;
    o.bind_address = "::1";
    cctx_mhd_t *b = cctx_mhd_start(cctx_background(), &o, NULL, NULL);
    if (b) /* IPv6 may be off here */
        cctx_mhd_free(b);
}

/* The queue holds requests waiting for a worker: a burst no larger than the
 * idle workers plus the queue is served, however small the queue
 * (libmicrohttpd's thread admits a burst faster than woken workers take it).
 * Each round starts once every worker waits: one still on its way back from
 * the last round, on a loaded machine, would rightly count as busy. */
TEST(mhd_queue_burst_within_idle_workers_served)
{
    struct probe p;
    probe_init(&p);
    cctx_mhd_options_t o = CCTX_MHD_OPTIONS_INIT;
    o.workers = 8;
    o.queue = 1;
    cctx_mhd_t *s = start_probe_server(&p, &o);
    uint16_t port = cctx_mhd_port(s);
    static struct conn c[9];
    int refused = 0;
    for (int round = 0; round < 50; round++) {
        for (int i = 0; i < 9; i++)
            conn_open(&c[i], port);
        wait_idle_workers(s, 8);
        for (int i = 0; i < 9; i++)
            conn_send(&c[i], "GET /burst HTTP/1.1\r\nHost: t\r\n\r\n");
        for (int i = 0; i < 9; i++) {
            conn_read(&c[i], &r);
            refused += r.status != 200;
            conn_close(&c[i]);
        }
    }
    CHECK_EQ(refused, 0);
    cctx_mhd_free(s);
    probe_destroy(&p);
}
