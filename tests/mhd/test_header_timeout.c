/* SPDX-License-Identifier: MIT */
/*
 * header_timeout: a client that trickles a request's line and headers, one
 * byte at a time, more often than idle_timeout (which libmicrohttpd starts
 * again at every byte), is closed once they have taken header_timeout;
 * honest clients (headers in time, an idle keep-alive connection, a body
 * that trickles after the headers) are not. Real time: header_timeout is
 * 300 ms, the bounds seconds.
 */
#define _GNU_SOURCE
#include "harness.h"
#include "mhd_support.h"
#include "support.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>

#define HDR_TIMEOUT CCTX_MSEC(300)
#define TRICKLE_MS 100

static struct http_resp r;

/* Sends `bytes` one by one, TRICKLE_MS apart, watching for the server's
 * end between them; then, if `wait`, nothing more until `ms` have passed
 * since the start. Returns when the server closed the connection (real
 * clock, ns since the start), or -1 when it had not when the bytes were
 * sent (and ms had passed, if `wait`). Any byte the server sends fails the
 * test: no answer is owed. */
static int64_t trickle(struct conn *c, const char *bytes, bool wait, int ms)
{
    int64_t t0 = real_now(), end = t0 + CCTX_MSEC(ms);
    size_t n = strlen(bytes), sent = 0;
    for (int64_t now; (now = real_now()) < end && (wait || sent < n);) {
        int64_t next = now + CCTX_MSEC(TRICKLE_MS);
        int pause = (int)(((next < end ? next : end) - now) / CCTX_MSEC(1));
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        if (poll(&pfd, 1, pause > 0 ? pause : 1) == 1) {
            char buf[256];
            ssize_t got = recv(c->fd, buf, sizeof buf, 0);
            if (got > 0)
                printf("answered: %.*s\n", (int)got, buf);
            CHECK(got <= 0);
            return real_now() - t0;
        }
        if (sent < n) {
            if (send(c->fd, bytes + sent, 1, MSG_NOSIGNAL) != 1)
                return real_now() - t0; /* reset: the server shut its side down and closed */
            sent++;
        }
    }
    return -1;
}

static cctx_mhd_t *start(struct probe *p, int64_t header_timeout, int64_t idle_timeout)
{
    probe_init(p);
    cctx_mhd_options_t o = CCTX_MHD_OPTIONS_INIT;
    o.header_timeout = header_timeout;
    o.idle_timeout = idle_timeout;
    return start_probe_server(p, &o);
}

/* Headers that never end, a byte every 100 ms: the idle timeout (60 s)
 * never comes, header_timeout does. Before, the connection stayed open. */
TEST(mhd_header_timeout_closes_a_trickled_request)
{
    struct probe p;
    cctx_mhd_t *s = start(&p, HDR_TIMEOUT, 0);
    static struct conn c;
    conn_open(&c, cctx_mhd_port(s));
    conn_send(&c, "GET / HTTP/1.1\r\nHo");
    int64_t took =
        trickle(&c, "st: t\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", true, 5000);
    printf("trickled request closed after %.3f s\n", (double)took / 1e9);
    CHECK(took >= 0);
    CHECK(took >= HDR_TIMEOUT - CCTX_MSEC(50)); /* from the accept, just before t0 */
    CHECK_EQ(p.started, 0);
    conn_close(&c);
    cctx_mhd_free(s);
    probe_destroy(&p);
}

/* A connection that sends nothing: closed too (Go's server closes it). */
TEST(mhd_header_timeout_closes_a_silent_connection)
{
    struct probe p;
    cctx_mhd_t *s = start(&p, HDR_TIMEOUT, 0);
    static struct conn c;
    conn_open(&c, cctx_mhd_port(s));
    int64_t took = trickle(&c, "", true, 5000);
    printf("silent connection closed after %.3f s\n", (double)took / 1e9);
    CHECK(took >= 0);
    conn_close(&c);
    cctx_mhd_free(s);
    probe_destroy(&p);
}

/* The same trickle, ending in time: served. */
TEST(mhd_header_timeout_serves_headers_in_time)
{
    struct probe p;
    cctx_mhd_t *s = start(&p, CCTX_SEC(3), 0);
    static struct conn c;
    conn_open(&c, cctx_mhd_port(s));
    conn_send(&c, "GET / HTTP/1.1\r\nHo");
    CHECK_EQ(trickle(&c, "st: t\r\n\r\n", false, 5000), -1); /* in about 0.9 s */
    conn_read(&c, &r);
    CHECK_EQ(r.status, 200);
    CHECK_EQ(p.started, 1);
    conn_close(&c);
    cctx_mhd_free(s);
    probe_destroy(&p);
}

/* An idle keep-alive connection is governed by idle_timeout alone: it
 * stays open for well over header_timeout and serves its next request. */
TEST(mhd_header_timeout_spares_an_idle_keep_alive_connection)
{
    struct probe p;
    cctx_mhd_t *s = start(&p, HDR_TIMEOUT, 0);
    static struct conn c;
    conn_open(&c, cctx_mhd_port(s));
    conn_send(&c, "GET /1 HTTP/1.1\r\nHost: t\r\n\r\n");
    conn_read(&c, &r);
    CHECK_EQ(r.status, 200);
    CHECK(!conn_closed_within(&c, 2000)); /* over 6 header timeouts */
    conn_send(&c, "GET /2 HTTP/1.1\r\nHost: t\r\n\r\n");
    conn_read(&c, &r);
    CHECK_EQ(r.status, 200);
    CHECK_EQ(p.started, 2);
    conn_close(&c);
    cctx_mhd_free(s);
    probe_destroy(&p);
}

/* A later request trickled on a kept-alive connection: closed after the
 * idle time (1 s) plus header_timeout from the answer, though bytes keep
 * coming. Before, the connection stayed open. */
TEST(mhd_header_timeout_closes_a_trickled_keep_alive_request)
{
    struct probe p;
    cctx_mhd_t *s = start(&p, HDR_TIMEOUT, CCTX_SEC(1));
    static struct conn c;
    conn_open(&c, cctx_mhd_port(s));
    conn_send(&c, "GET /1 HTTP/1.1\r\nHost: t\r\n\r\n");
    conn_read(&c, &r);
    CHECK_EQ(r.status, 200);
    int64_t took = trickle(
        &c,
        "GET /2 HTTP/1.1\r\nHost: t\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        true, 8000);
    printf("trickled keep-alive request closed %.3f s after the answer\n", (double)took / 1e9);
    CHECK(took >= 0);
    CHECK(took >= CCTX_SEC(1)); /* never before the idle time */
    CHECK_EQ(p.started, 1);
    conn_close(&c);
    cctx_mhd_free(s);
    probe_destroy(&p);
}

/* A body that trickles after complete headers is not timed by it. */
TEST(mhd_header_timeout_spares_a_trickled_body)
{
    struct probe p;
    cctx_mhd_t *s = start(&p, HDR_TIMEOUT, 0);
    static struct conn c;
    conn_open(&c, cctx_mhd_port(s));
    conn_send(&c, "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 15\r\n\r\n");
    CHECK_EQ(trickle(&c, "0123456789abcde", false, 5000), -1); /* in 1.5 s: 5 header timeouts */
    conn_read(&c, &r);
    CHECK_EQ(r.status, 200);
    CHECK_EQ(p.started, 1);
    conn_close(&c);
    cctx_mhd_free(s);
    probe_destroy(&p);
}

/* Nor is a handler that runs longer than it. */
TEST(mhd_header_timeout_spares_a_slow_handler)
{
    struct probe p;
    cctx_mhd_t *s = start(&p, HDR_TIMEOUT, 0);
    p.block = true; /* until its deadline, 1 s: over 3 header timeouts */
    http_get(cctx_mhd_port(s), "/slow", "grpc-timeout: 1S\r\n", &r);
    CHECK_EQ(r.status, 200);
    CHECK_EQ(p.cause.code, 504);
    cctx_mhd_free(s);
    probe_destroy(&p);
}

/* header_timeout < 0: none. The trickle that the first test sees closed
 * within a second goes on for 2 s, then ends and is served. */
TEST(mhd_header_timeout_negative_is_none)
{
    struct probe p;
    cctx_mhd_t *s = start(&p, -1, 0);
    static struct conn c;
    conn_open(&c, cctx_mhd_port(s));
    conn_send(&c, "GET / HTTP/1.1\r\nHo");
    CHECK_EQ(trickle(&c, "st: t\r\nX: a", true, 2000), -1); /* sent in about 1.1 s */
    conn_send(&c, "\r\n\r\n");
    conn_read(&c, &r);
    CHECK_EQ(r.status, 200);
    conn_close(&c);
    cctx_mhd_free(s);
    probe_destroy(&p);
}

/* The default, 10 s: a silent connection is closed then, not before. */
TEST(mhd_header_timeout_default_is_10s)
{
    struct probe p;
    cctx_mhd_t *s = start(&p, 0, 0);
    static struct conn c;
    conn_open(&c, cctx_mhd_port(s));
    int64_t took = trickle(&c, "", true, 20000);
    printf("silent connection closed after %.3f s\n", (double)took / 1e9);
    CHECK(took >= 0);
    CHECK(took >= CCTX_SEC(9));
    CHECK(took < CCTX_SEC(15));
    conn_close(&c);
    cctx_mhd_free(s);
    probe_destroy(&p);
}
