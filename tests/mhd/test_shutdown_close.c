/* SPDX-License-Identifier: MIT */
/*
 * Shutdown and kept-alive connections, as Go's Server.Shutdown treats them:
 * an answer queued once shutdown has begun says "Connection: close" and its
 * connection closes after it, and a connection idle between requests is
 * closed at once. Neither waits for the drain, which a second request, held
 * in its handler for as long as the test wants, keeps going.
 */
#define _GNU_SOURCE
#include "harness.h"
#include "mhd_support.h"
#include "support.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

/* A handler that answers once the test opens its gate (or its context
 * ends: a client that left). */
struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int started;
    bool open;
};

static void gate_init(struct gate *g, bool open)
{
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    g->started = 0;
    g->open = open;
}

static void gate_destroy(struct gate *g)
{
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
}

static void gate_open(struct gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->open = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static bool gate_wait_started(struct gate *g, int n)
{
    bool ok = true;
    int64_t end = real_now() + CCTX_SEC(10);
    pthread_mutex_lock(&g->mu);
    while (g->started < n && (ok = real_now() < end)) {
        pthread_mutex_unlock(&g->mu);
        real_sleep_ms(1);
        pthread_mutex_lock(&g->mu);
    }
    pthread_mutex_unlock(&g->mu);
    return ok;
}

static int gate_started(struct gate *g)
{
    pthread_mutex_lock(&g->mu);
    int n = g->started;
    pthread_mutex_unlock(&g->mu);
    return n;
}

static void gated(cctx_t *ctx, cctx_mhd_request_t *req, cctx_mhd_response_t *resp, void *arg)
{
    (void)req;
    struct gate *g = arg;
    pthread_mutex_lock(&g->mu);
    g->started++;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    /* Polled: the context's end is a second thing to wait for. */
    for (int k = 0; k < 30000 && cctx_err(ctx) == 0; k++) {
        pthread_mutex_lock(&g->mu);
        bool open = g->open;
        pthread_mutex_unlock(&g->mu);
        if (open)
            break;
        real_sleep_ms(1);
    }
    cctx_mhd_printf(resp, "ok\n");
}

struct shutting {
    cctx_mhd_t *s;
    int64_t drain;
    int rc;
    atomic_bool done;
};

static void *shut_down(void *arg)
{
    struct shutting *sh = arg;
    sh->rc = cctx_mhd_shutdown(sh->s, sh->drain);
    atomic_store(&sh->done, true);
    return NULL;
}

static atomic_bool big_answered;

/* The server of these tests: /a and /b gated, /now answered at once. */
struct setup {
    struct gate a, b, now;
    cctx_mhd_t *s;
    uint16_t port;
    struct conn held; /* its request to /b holds the drain */
    struct shutting sh;
    pthread_t t;
    int64_t t0; /* when shutdown began */
};

static void setup_start(struct setup *x)
{
    gate_init(&x->a, false);
    gate_init(&x->b, false);
    gate_init(&x->now, true);
    x->s = cctx_mhd_start(cctx_background(), NULL, NULL, NULL);
    CHECK(x->s);
    CHECK_EQ(cctx_mhd_route(x->s, "GET", "/a", gated, &x->a, 0), 0);
    CHECK_EQ(cctx_mhd_route(x->s, "GET", "/b", gated, &x->b, 0), 0);
    CHECK_EQ(cctx_mhd_route(x->s, "GET", "/now", gated, &x->now, 0), 0);
    CHECK_EQ(cctx_mhd_route(x->s, "GET", "/big", answer_big, &big_answered, 0), 0);
    x->port = cctx_mhd_port(x->s);
    conn_open(&x->held, x->port);
    conn_send(&x->held, "GET /b HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK(gate_wait_started(&x->b, 1));
}

/* Starts a shutdown with a drain of 10 s on a thread of its own, and
 * returns once it has begun. */
static void setup_shut_down(struct setup *x)
{
    x->sh = (struct shutting){x->s, CCTX_SEC(10), -1, false};
    x->t0 = real_now();
    CHECK_EQ(pthread_create(&x->t, NULL, shut_down, &x->sh), 0);
    for (int k = 0; !conn_refused(x->port); k++) {
        CHECK(k < 2000);
        real_sleep_ms(5);
    }
}

/* Lets /b answer, which ends the drain: its answer too says close. */
static void setup_finish(struct setup *x)
{
    static struct http_resp r;
    char v[64];
    gate_open(&x->b);
    conn_read(&x->held, &r);
    CHECK_EQ(r.status, 200);
    CHECK(resp_header(&r, "connection", v, sizeof v));
    CHECK(strcasecmp(v, "close") == 0);
    CHECK(conn_closed_within(&x->held, 5000));
    conn_close(&x->held);
    CHECK_EQ(pthread_join(x->t, NULL), 0);
    CHECK_EQ(x->sh.rc, 0);
    CHECK(real_now() - x->t0 < CCTX_SEC(9)); /* it ended with /b, not the drain */
    cctx_mhd_free(x->s);
    gate_destroy(&x->a);
    gate_destroy(&x->b);
    gate_destroy(&x->now);
}

/* A keep-alive client whose request is in its handler when shutdown
 * begins: its answer says close, and the connection closes right after it.
 * Before, the answer said nothing of it and the connection stayed open
 * (the client waiting on it) until the drain was over and the daemon
 * stopped. With a second request pipelined behind the first, that one is
 * never read: before, it was answered 503. */
static void answer_in_handler_closes(bool pipelined)
{
    static struct setup x;
    static struct conn c;
    static struct http_resp r;
    setup_start(&x);
    conn_open(&c, x.port);
    conn_send(&c, pipelined
                      ? "GET /a HTTP/1.1\r\nHost: t\r\n\r\nGET /now HTTP/1.1\r\nHost: t\r\n\r\n"
                      : "GET /a HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK(gate_wait_started(&x.a, 1));
    setup_shut_down(&x);
    gate_open(&x.a);
    conn_read(&c, &r);
    CHECK_EQ(r.status, 200);
    char v[64] = "";
    bool has = resp_header(&r, "connection", v, sizeof v);
    printf("pipelined %d: Connection: %s\n", pipelined, has ? v : "(none)");
    CHECK(has && strcasecmp(v, "close") == 0);
    CHECK(conn_closed_within(&c, 5000)); /* no second answer: EOF */
    int64_t took = real_now() - x.t0;
    printf("closed %.3f s into shutdown\n", (double)took / 1e9);
    CHECK(took < CCTX_SEC(5));
    CHECK(!atomic_load(&x.sh.done)); /* /b still holds the drain */
    CHECK_EQ(gate_started(&x.now), 0);
    conn_close(&c);
    setup_finish(&x);
}

TEST(mhd_shutdown_closes_a_keep_alive_connection_after_its_answer)
{
    answer_in_handler_closes(false);
}

TEST(mhd_shutdown_reads_no_request_pipelined_behind_an_answer)
{
    answer_in_handler_closes(true);
}

/* A keep-alive connection idle between requests when shutdown begins is
 * closed at once, while a handler still holds the drain. Before, it stayed
 * open until the daemon stopped. */
TEST(mhd_shutdown_closes_an_idle_keep_alive_connection_at_once)
{
    static struct setup x;
    static struct conn c;
    static struct http_resp r;
    setup_start(&x);
    conn_open(&c, x.port);
    conn_send(&c, "GET /now HTTP/1.1\r\nHost: t\r\n\r\n");
    conn_read(&c, &r);
    CHECK_EQ(r.status, 200);
    char v[64];
    CHECK(!resp_header(&r, "connection", v, sizeof v)); /* before shutdown: kept alive */
    setup_shut_down(&x);
    CHECK(conn_closed_within(&c, 5000));
    int64_t took = real_now() - x.t0;
    printf("idle connection closed %.3f s into shutdown\n", (double)took / 1e9);
    CHECK(took < CCTX_SEC(5));
    CHECK(!atomic_load(&x.sh.done)); /* /b still holds the drain */
    conn_close(&c);
    setup_finish(&x);
}

/* Reads up to `more` body bytes of a Content-Length answer on fd (its head
 * first, once): false at the end of the connection or an error. */
struct slow_read {
    char head[4096];
    size_t have, want, body;
    int err;
};

static bool slow_read_more(int fd, struct slow_read *s, size_t more)
{
    static char buf[1 << 16];
    size_t goal = s->body + more;
    while (s->body < s->want && s->body < goal) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 10000) != 1)
            return false;
        size_t room = s->want == SIZE_MAX ? sizeof s->head - 1 - s->have : sizeof buf;
        ssize_t n = read(fd, s->want == SIZE_MAX ? s->head + s->have : buf, room);
        if (n <= 0) {
            s->err = n < 0 ? errno : 0;
            return false;
        }
        if (s->want != SIZE_MAX) {
            s->body += (size_t)n;
            continue;
        }
        s->have += (size_t)n;
        s->head[s->have] = '\0';
        char *end = strstr(s->head, "\r\n\r\n");
        if (!end) {
            CHECK(s->have < sizeof s->head - 1);
            continue;
        }
        char *cl = strcasestr(s->head, "\r\ncontent-length:");
        CHECK(cl);
        s->want = strtoul(cl + 17, NULL, 10);
        s->body = s->have - (size_t)(end + 4 - s->head);
    }
    return true;
}

/* An answer queued before shutdown began, kept alive, and still being
 * written when it did: once it is out whole, its connection is idle, and
 * closed then. Before, it stayed open until the daemon stopped. */
TEST(mhd_shutdown_closes_a_keep_alive_connection_once_its_answer_is_out)
{
    static struct setup x;
    static struct conn c;
    static struct slow_read s;
    atomic_store(&big_answered, false);
    setup_start(&x);
    conn_open(&c, x.port);
    conn_send(&c, "GET /big HTTP/1.1\r\nHost: t\r\n\r\n");
    struct pollfd pfd = {.fd = c.fd, .events = POLLIN};
    CHECK_EQ(poll(&pfd, 1, 10000), 1); /* queued: its first bytes are here */
    for (int k = 0; !atomic_load(&big_answered); k++) {
        CHECK(k < 2000);
        real_sleep_ms(5);
    }
    setup_shut_down(&x);
    s = (struct slow_read){.want = SIZE_MAX};
    CHECK(slow_read_more(c.fd, &s, SIZE_MAX / 2));
    CHECK_EQ(s.body, (size_t)BIG_ANSWER_BYTES);
    CHECK(!strcasestr(s.head, "\r\nconnection:")); /* queued before: kept alive */
    CHECK(conn_closed_within(&c, 5000));
    int64_t took = real_now() - x.t0;
    printf("answer out and connection closed %.3f s into shutdown\n", (double)took / 1e9);
    CHECK(took < CCTX_SEC(5));
    CHECK(!atomic_load(&x.sh.done)); /* /b still holds the drain */
    conn_close(&c);
    setup_finish(&x);
}

/* A connection accepted before shutdown began that has served no request
 * yet is left alone, as Go's Shutdown leaves a new one: its first request,
 * sent after, gets the 503 that says for sure it was not served. Closed at
 * once, its client would see the end and could not tell. */
TEST(mhd_shutdown_leaves_a_connection_not_used_yet_to_its_503)
{
    static struct setup x;
    static struct conn fresh, other;
    static struct http_resp r;
    setup_start(&x);
    conn_open(&fresh, x.port);
    /* Accepted in order: once a later connection is answered, the first
     * one is open in the server too, with nothing served on it. */
    conn_open(&other, x.port);
    conn_send(&other, "GET /now HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    conn_read(&other, &r);
    CHECK_EQ(r.status, 200);
    conn_close(&other);
    setup_shut_down(&x);
    conn_send(&fresh, "GET /now HTTP/1.1\r\nHost: t\r\n\r\n");
    conn_read(&fresh, &r);
    CHECK_EQ(r.status, 503);
    CHECK_EQ(gate_started(&x.now), 1); /* the one before shutdown, not this one */
    conn_close(&fresh);
    setup_finish(&x);
}

/* The TCP state of the server's end of the connection from client port
 * cport, from /proc/net/tcp: 4 is FIN_WAIT1 (its end sent, or queued
 * behind the data). -1 if not found. */
static int server_end_state(uint16_t sport, uint16_t cport)
{
    FILE *f = fopen("/proc/net/tcp", "r");
    if (!f)
        return -1;
    char line[512];
    int st = -1;
    while (fgets(line, sizeof line, f)) {
        unsigned lport, rport, s;
        if (sscanf(line, " %*d: %*x:%x %*x:%x %x", &lport, &rport, &s) == 3 && lport == sport &&
            rport == cport)
            st = (int)s;
    }
    fclose(f);
    return st;
}

/* An answer queued before shutdown, kept alive, whose last bytes
 * libmicrohttpd has handed to the kernel while megabytes of it wait in the
 * send queue: on_completed closes the connection then. A request the
 * client pipelines after that must not cost it the answer's tail. With the
 * read side shut down too, the kernel reset the connection on the
 * request's bytes and dropped what was still queued. */
TEST(mhd_shutdown_close_of_a_kept_alive_answer_loses_none_of_it)
{
    static struct setup x;
    static struct conn c;
    static struct slow_read s;
    atomic_store(&big_answered, false);
    setup_start(&x);
    conn_open(&c, x.port);
    struct sockaddr_in me;
    socklen_t len = sizeof me;
    CHECK_EQ(getsockname(c.fd, (struct sockaddr *)&me, &len), 0);
    conn_send(&c, "GET /big HTTP/1.1\r\nHost: t\r\n\r\n");
    struct pollfd pfd = {.fd = c.fd, .events = POLLIN};
    CHECK_EQ(poll(&pfd, 1, 10000), 1); /* queued: its first bytes are here */
    for (int k = 0; !atomic_load(&big_answered); k++) {
        CHECK(k < 2000);
        real_sleep_ms(5);
    }
    setup_shut_down(&x);
    /* Read until the server's end is queued behind the data (the answer
     * handed over whole, the connection closed), well before the end. */
    s = (struct slow_read){.want = SIZE_MAX};
    int st = -1;
    for (int k = 0; (st = server_end_state(x.port, ntohs(me.sin_port))) != 4; k++) {
        CHECK(k < 10000);
        CHECK(slow_read_more(c.fd, &s, 64 << 10));
        CHECK(s.body < s.want); /* so much is sent that some is still queued */
    }
    printf("server end queued with %zu of %zu bytes read\n", s.body, s.want);
    conn_send(&c, "GET /now HTTP/1.1\r\nHost: t\r\n\r\n");
    bool whole = slow_read_more(c.fd, &s, SIZE_MAX / 2);
    printf("read %zu of %zu (errno %d)\n", s.body, s.want, s.err);
    CHECK(whole);
    CHECK_EQ(s.body, (size_t)BIG_ANSWER_BYTES);
    CHECK(conn_closed_within(&c, 5000)); /* then the end, no answer to /now */
    CHECK_EQ(gate_started(&x.now), 0);
    conn_close(&c);
    setup_finish(&x);
}

/* Many connections at once: each idle one is closed when shutdown begins,
 * and each request in its handler then is answered whole, with close. An
 * HTTP/1.0 client that asked to be kept alive is closed as an HTTP/1.1
 * one is. */
TEST(mhd_shutdown_closes_every_idle_connection_and_answers_every_busy_one)
{
    enum { NIDLE = 200, NBUSY = 3 };
    static struct setup x;
    static struct conn idle[NIDLE], busy[NBUSY], old;
    static struct http_resp r;
    setup_start(&x);
    for (int i = 0; i < NIDLE; i++) {
        conn_open(&idle[i], x.port);
        conn_send(&idle[i], "GET /now HTTP/1.1\r\nHost: t\r\n\r\n");
        conn_read(&idle[i], &r);
        CHECK_EQ(r.status, 200);
    }
    conn_open(&old, x.port);
    conn_send(&old, "GET /now HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    conn_read(&old, &r);
    CHECK_EQ(r.status, 200);
    for (int i = 0; i < NBUSY; i++) {
        conn_open(&busy[i], x.port);
        conn_send(&busy[i], "GET /a HTTP/1.1\r\nHost: t\r\n\r\n");
    }
    CHECK(gate_wait_started(&x.a, NBUSY));
    setup_shut_down(&x);
    for (int i = 0; i < NIDLE; i++)
        CHECK(conn_closed_within(&idle[i], 5000));
    CHECK(conn_closed_within(&old, 5000));
    printf("%d idle connections closed %.3f s into shutdown\n", NIDLE + 1,
           (double)(real_now() - x.t0) / 1e9);
    CHECK(!atomic_load(&x.sh.done)); /* /b still holds the drain */
    gate_open(&x.a);
    for (int i = 0; i < NBUSY; i++) {
        char v[32];
        conn_read(&busy[i], &r);
        CHECK_EQ(r.status, 200);
        CHECK(resp_header(&r, "connection", v, sizeof v) && strcasecmp(v, "close") == 0);
        CHECK(conn_closed_within(&busy[i], 5000));
        conn_close(&busy[i]);
    }
    for (int i = 0; i < NIDLE; i++)
        conn_close(&idle[i]);
    conn_close(&old);
    setup_finish(&x);
}
