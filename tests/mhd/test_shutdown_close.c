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

/* Whether a new connection to port is refused now: shutdown has begun
 * (the listening socket is shut down after `stopping` is set). */
static bool refused(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool no = connect(fd, (struct sockaddr *)&a, sizeof a) != 0;
    close(fd);
    return no;
}

/* Far more than loopback's socket buffers hold: most of it is still to be
 * written when its handler has returned. */
#define BIG_BYTES (32u << 20)
static atomic_bool big_answered;

static void answer_big(cctx_t *ctx, cctx_mhd_request_t *req, cctx_mhd_response_t *resp, void *arg)
{
    (void)ctx, (void)req, (void)arg;
    char *body = malloc(BIG_BYTES);
    CHECK(body);
    memset(body, 'x', BIG_BYTES);
    CHECK_EQ(cctx_mhd_write(resp, body, BIG_BYTES), 0);
    free(body);
    atomic_store(&big_answered, true);
}

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
    CHECK_EQ(cctx_mhd_route(x->s, "GET", "/big", answer_big, NULL, 0), 0);
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
    for (int k = 0; !refused(x->port); k++) {
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
    CHECK_EQ(x.now.started, 0);
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

/* Reads one answer's head and its Content-Length bytes of body from c;
 * returns the body's length read, the head in head. */
static size_t read_big(struct conn *c, char *head, size_t head_size)
{
    static char buf[1 << 20];
    size_t have = 0, want = SIZE_MAX, body = 0;
    head[0] = '\0';
    while (body < want) {
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        if (poll(&pfd, 1, 10000) != 1)
            break;
        ssize_t n = read(c->fd, buf + have, sizeof buf - have);
        if (n <= 0)
            break;
        if (want != SIZE_MAX) {
            body += (size_t)n;
            continue;
        }
        have += (size_t)n;
        char *end = memmem(buf, have, "\r\n\r\n", 4);
        if (!end) {
            CHECK(have < sizeof buf);
            continue;
        }
        size_t hlen = (size_t)(end - buf) + 4;
        snprintf(head, head_size, "%.*s", (int)hlen, buf);
        char *cl = strcasestr(head, "\r\ncontent-length:");
        CHECK(cl);
        want = strtoul(cl + 17, NULL, 10);
        body = have - hlen;
    }
    return body;
}

/* An answer queued before shutdown began, kept alive, and still being
 * written when it did: once it is out whole, its connection is idle, and
 * closed then. Before, it stayed open until the daemon stopped. */
TEST(mhd_shutdown_closes_a_keep_alive_connection_once_its_answer_is_out)
{
    static struct setup x;
    static struct conn c;
    static char head[4096];
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
    size_t got = read_big(&c, head, sizeof head);
    CHECK_EQ(got, BIG_BYTES);
    CHECK(!strcasestr(head, "\r\nconnection:")); /* queued before: kept alive */
    CHECK(conn_closed_within(&c, 5000));
    int64_t took = real_now() - x.t0;
    printf("answer out and connection closed %.3f s into shutdown\n", (double)took / 1e9);
    CHECK(took < CCTX_SEC(5));
    CHECK(!atomic_load(&x.sh.done)); /* /b still holds the drain */
    conn_close(&c);
    setup_finish(&x);
}
