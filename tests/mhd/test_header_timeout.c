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
#include <linux/tcp.h> /* tcpi_bytes_received, which glibc's <netinet/tcp.h> lacks */
#include <netinet/in.h>
#include <poll.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>

#define HDR_TIMEOUT CCTX_MSEC(300)
#define TRICKLE_MS 100

static struct http_resp r;

/* Sends `bytes` one by one, `every` ms apart (the first after `every`),
 * watching for the server's end between them; then, if `wait`, nothing
 * more until `ms` have passed since the start. Returns when the server
 * closed the connection (real clock, ns since the start), or -1 when it
 * had not when the bytes were sent (and ms had passed, if `wait`). Any
 * byte the server sends fails the test: no answer is owed. */
static int64_t trickle_every(struct conn *c, const char *bytes, bool wait, int ms, int every)
{
    int64_t t0 = real_now(), end = t0 + CCTX_MSEC(ms);
    size_t n = strlen(bytes), sent = 0;
    for (int64_t now; (now = real_now()) < end && (wait || sent < n);) {
        int64_t next = now + CCTX_MSEC(every);
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

static int64_t trickle(struct conn *c, const char *bytes, bool wait, int ms)
{
    return trickle_every(c, bytes, wait, ms, TRICKLE_MS);
}

/* Whether the kernel counts the bytes a TCP socket received (Linux 4.1),
 * which starts a later request's clock at its first bytes (the client's
 * socket stands for the server's: same kernel). */
static bool kernel_counts_bytes(const struct conn *c)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    return getsockopt(c->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 &&
           len >= offsetof(struct tcp_info, tcpi_bytes_received) + sizeof ti.tcpi_bytes_received;
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

/* A later request on a kept-alive connection whose line trickles, a byte
 * every 100 ms: its clock starts once the kernel has counted its first
 * bytes (four, as Go's server peeks four before it starts its clock), so
 * it is closed about header_timeout later, well before the idle time
 * (8 s); the same with no idle time at all (idle_timeout < 0). Before,
 * the first stayed open until idle_timeout + header_timeout after the
 * answer, and the second for ever (its clock started at a request line
 * that never ended). */
static void trickled_later_line(int64_t idle_timeout)
{
    struct probe p;
    cctx_mhd_t *s = start(&p, HDR_TIMEOUT, idle_timeout);
    static struct conn c;
    conn_open(&c, cctx_mhd_port(s));
    if (!kernel_counts_bytes(&c))
        SKIP("the kernel gives no count of the bytes a socket received (Linux 4.1)");
    conn_send(&c, "GET /1 HTTP/1.1\r\nHost: t\r\n\r\n");
    conn_read(&c, &r);
    CHECK_EQ(r.status, 200);
    int64_t took = trickle(&c, "GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                           true, 5000);
    printf("trickled later request line closed %.3f s after the answer\n", (double)took / 1e9);
    CHECK(took >= 0);
    CHECK(took < CCTX_SEC(3));
    /* Never before header_timeout from the fourth byte. */
    CHECK(took >= 4 * CCTX_MSEC(TRICKLE_MS) + HDR_TIMEOUT);
    CHECK_EQ(p.started, 1);
    conn_close(&c);
    cctx_mhd_free(s);
    probe_destroy(&p);
}

TEST(mhd_header_timeout_closes_a_trickled_keep_alive_request)
{
    trickled_later_line(CCTX_SEC(8));
}

TEST(mhd_header_timeout_closes_a_trickled_later_line_without_idle_timeout)
{
    trickled_later_line(-1);
}

/* A later request's first four bytes sent at once, 150 ms after the
 * answer, then nothing: with a 396 ms header_timeout the looks are 99 ms
 * apart, so the count before them is read at the first look after the
 * completion, before they come, and they start the clock: closed about
 * 0.7 s after the answer, with no idle time. Before, that count waited for
 * a look that reads the counts of connections awaiting bytes (at least
 * 100 ms apart, here 198 ms), took the four bytes in, and the connection
 * stayed open for ever. */
TEST(mhd_header_timeout_counts_bytes_sent_soon_after_the_answer)
{
    for (int i = 0; i < 3; i++) {
        struct probe p;
        cctx_mhd_t *s = start(&p, CCTX_MSEC(396), -1);
        static struct conn c;
        conn_open(&c, cctx_mhd_port(s));
        if (!kernel_counts_bytes(&c))
            SKIP("the kernel gives no count of the bytes a socket received (Linux 4.1)");
        conn_send(&c, "GET /1 HTTP/1.1\r\nHost: t\r\n\r\n");
        conn_read(&c, &r);
        CHECK_EQ(r.status, 200);
        CHECK(!conn_closed_within(&c, 150));
        int64_t t0 = real_now();
        conn_send(&c, "GET ");
        CHECK(conn_closed_within(&c, 3000));
        printf("closed %.3f s after the four bytes\n", (double)(real_now() - t0) / 1e9);
        CHECK_EQ(p.started, 1);
        conn_close(&c);
        cctx_mhd_free(s);
        probe_destroy(&p);
    }
}

/* A later request line trickled a byte every 1.2 s, under an idle time of
 * 2 s (which each byte restarts): its fourth byte, at 4.8 s, would start the
 * clock too late, so the latest start does, the completion plus the idle
 * time: closed about 2.3 s after the answer, never before the idle time (Go
 * closes it then, its four bytes not in). Without that bound it stayed open
 * until 5.1 s. */
TEST(mhd_header_timeout_closes_a_slow_later_line_at_the_latest_start)
{
    struct probe p;
    cctx_mhd_t *s = start(&p, HDR_TIMEOUT, CCTX_SEC(2));
    static struct conn c;
    conn_open(&c, cctx_mhd_port(s));
    conn_send(&c, "GET /1 HTTP/1.1\r\nHost: t\r\n\r\n");
    conn_read(&c, &r);
    CHECK_EQ(r.status, 200);
    int64_t took = trickle_every(&c, "GET /aaaaaaaaaaaa", true, 7000, 1200);
    printf("slow later request line closed %.3f s after the answer\n", (double)took / 1e9);
    CHECK(took >= 0);
    CHECK(took >= CCTX_SEC(2));
    CHECK(took < CCTX_SEC(4));
    CHECK_EQ(p.started, 1);
    conn_close(&c);
    cctx_mhd_free(s);
    probe_destroy(&p);
}

/* A later request line that came whole, pipelined behind the request
 * before it (so counted before the answer), then headers a byte a second:
 * its clock starts at that line, as Go's starts once the answer is out
 * (the line already in), and the connection is closed about
 * header_timeout later, before the first header byte. Counting bytes
 * alone would start it four header bytes later (4 s); before, it stayed
 * open until the idle time (8 s) + header_timeout after the answer. */
TEST(mhd_header_timeout_closes_trickled_headers_after_a_pipelined_line)
{
    struct probe p;
    cctx_mhd_t *s = start(&p, HDR_TIMEOUT, CCTX_SEC(8));
    static struct conn c;
    conn_open(&c, cctx_mhd_port(s));
    conn_send(&c, "GET /1 HTTP/1.1\r\nHost: t\r\n\r\nGET /2 HTTP/1.1\r\n");
    conn_read(&c, &r);
    CHECK_EQ(r.status, 200);
    int64_t took = trickle_every(&c, "Host: t\r\nX-Slow: aaaaaaaa", true, 6000, 1000);
    printf("trickled headers closed %.3f s after the answer\n", (double)took / 1e9);
    CHECK(took >= 0);
    CHECK(took < CCTX_SEC(2));
    CHECK_EQ(p.started, 1);
    conn_close(&c);
    cctx_mhd_free(s);
    probe_destroy(&p);
}

/* An honest later request after an idle wait longer than header_timeout
 * (2 s against 1 s), its line and its headers sent 300 ms apart: served,
 * with an idle time (8 s) and without one. The wait without a byte does not
 * start the clock; the line does, and the headers come in time. */
static void serves_a_later_request_after_a_wait(int64_t idle_timeout)
{
    struct probe p;
    cctx_mhd_t *s = start(&p, CCTX_SEC(1), idle_timeout);
    static struct conn c;
    conn_open(&c, cctx_mhd_port(s));
    conn_send(&c, "GET /1 HTTP/1.1\r\nHost: t\r\n\r\n");
    conn_read(&c, &r);
    CHECK_EQ(r.status, 200);
    CHECK(!conn_closed_within(&c, 2000));
    conn_send(&c, "GET /2 HTTP/1.1\r\n");
    CHECK(!conn_closed_within(&c, 300));
    conn_send(&c, "Host: t\r\n\r\n");
    conn_read(&c, &r);
    CHECK_EQ(r.status, 200);
    CHECK_EQ(p.started, 2);
    conn_close(&c);
    cctx_mhd_free(s);
    probe_destroy(&p);
}

TEST(mhd_header_timeout_serves_a_later_request_after_a_wait)
{
    serves_a_later_request_after_a_wait(CCTX_SEC(8));
}

TEST(mhd_header_timeout_serves_a_later_request_after_a_wait_without_idle_timeout)
{
    serves_a_later_request_after_a_wait(-1);
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
