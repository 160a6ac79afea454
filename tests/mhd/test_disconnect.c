/* SPDX-License-Identifier: MIT */
/*
 * Raw-socket scenarios of the disconnect watcher: a client that goes away
 * while its handler runs ends the request context with 499 "client
 * disconnected"; pipelined requests, keep-alive reuse and descriptors reused
 * by later connections never do. A client's FIN that arrives with the last
 * bytes of an unfinished request closes the connection at once.
 */
#include "harness.h"
#include "mhd_support.h"
#include "support.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static const char GET_SLOW[] = "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n";

/* Starts a blocking request, waits for its handler, runs `hang_up` on the
 * socket, and checks the cause and how long the handler took to see it. */
static void disconnect_case(void (*hang_up)(struct conn *c))
{
    struct probe p;
    probe_init(&p);
    p.block = true;
    cctx_mhd_t *s = start_probe_server(&p, NULL);
    static struct conn c;
    conn_open(&c, cctx_mhd_port(s));
    conn_send(&c, GET_SLOW);
    CHECK(probe_wait_started(&p, 1, 5000));
    int64_t t0 = real_now();
    hang_up(&c);
    CHECK(probe_wait_ended(&p, 1, 5000));
    int64_t took = p.t_ended - t0;
    printf("hang-up to cancel: %.3f ms\n", (double)took / 1e6);
    CHECK_EQ(p.cause.err, ECANCELED);
    CHECK_EQ(p.cause.code, 499);
    CHECK_STR(p.msg, "client disconnected");
    CHECK(took < CCTX_SEC(2));
    conn_close(&c);
    cctx_mhd_free(s);
    probe_destroy(&p);
}

static void hang_up_close(struct conn *c)
{
    conn_close(c);
}

static void hang_up_reset(struct conn *c)
{
    struct linger l = {.l_onoff = 1, .l_linger = 0};
    CHECK(setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l) == 0);
    conn_close(c); /* RST */
}

static void hang_up_half(struct conn *c)
{
    CHECK(shutdown(c->fd, SHUT_WR) == 0); /* FIN, but the socket stays open */
}

TEST(mhd_disconnect_close)
{
    disconnect_case(hang_up_close);
}

TEST(mhd_disconnect_reset)
{
    disconnect_case(hang_up_reset);
}

TEST(mhd_disconnect_half_close)
{
    disconnect_case(hang_up_half);
}

TEST(mhd_pipelining_not_a_disconnect)
{
    struct probe p;
    probe_init(&p);
    cctx_mhd_t *s = start_probe_server(&p, NULL);
    static struct conn c;
    conn_open(&c, cctx_mhd_port(s));
    conn_send(&c, "GET /a HTTP/1.1\r\nHost: t\r\n\r\nGET /b HTTP/1.1\r\nHost: t\r\n\r\n");
    static struct http_resp r;
    for (int i = 0; i < 2; i++) {
        conn_read(&c, &r);
        CHECK_EQ(r.status, 200);
        CHECK_STR(r.body, "ok\n");
    }
    CHECK(probe_wait_ended(&p, 2, 5000));
    /* Each ended because its handler returned, never by a disconnect. */
    CHECK_EQ(p.cause.err, 0);
    CHECK_STR(p.name, "GET /b");
    conn_close(&c);
    cctx_mhd_free(s);
    probe_destroy(&p);
}

TEST(mhd_pipelining_blocking_handler)
{
    /* The first request blocks until its deadline while the second waits
     * unread in the socket: the unread bytes must not cancel the first. */
    struct probe p;
    probe_init(&p);
    p.block = true;
    cctx_mhd_t *s = start_probe_server(&p, NULL);
    static struct conn c;
    conn_open(&c, cctx_mhd_port(s));
    conn_send(&c, "GET /a HTTP/1.1\r\nHost: t\r\ngrpc-timeout: 200m\r\n\r\n"
                  "GET /b HTTP/1.1\r\nHost: t\r\ngrpc-timeout: 100m\r\n\r\n");
    static struct http_resp r;
    conn_read(&c, &r);
    CHECK_EQ(r.status, 200);
    CHECK(probe_wait_ended(&p, 1, 5000));
    pthread_mutex_lock(&p.mu);
    CHECK_EQ(p.cause.err, ETIMEDOUT);
    CHECK_EQ(p.cause.code, 504);
    CHECK_STR(p.msg, "deadline from grpc-timeout: 200m");
    pthread_mutex_unlock(&p.mu);
    conn_read(&c, &r);
    CHECK_EQ(r.status, 200);
    CHECK(probe_wait_ended(&p, 2, 5000));
    CHECK_STR(p.msg, "deadline from grpc-timeout: 100m");
    conn_close(&c);
    cctx_mhd_free(s);
    probe_destroy(&p);
}

TEST(mhd_keep_alive_reuse)
{
    struct probe p;
    probe_init(&p);
    cctx_mhd_t *s = start_probe_server(&p, NULL);
    static struct conn c;
    conn_open(&c, cctx_mhd_port(s));
    static struct http_resp r;
    for (int i = 0; i < 20; i++) {
        conn_send(&c, "GET /k HTTP/1.1\r\nHost: t\r\n\r\n");
        conn_read(&c, &r);
        CHECK_EQ(r.status, 200);
        CHECK(probe_wait_ended(&p, i + 1, 5000));
        CHECK_EQ(p.cause.err, 0); /* read inside the handler: still active */
    }
    conn_close(&c);
    cctx_mhd_free(s);
    probe_destroy(&p);
}

/* Descriptor reuse under churn: connections that hang up after their handler
 * started, interleaved with blocking requests on new connections whose
 * descriptor numbers are those just freed. A watch left from an earlier
 * connection would cancel a later one; the later ones must all end by
 * their own deadline. */
struct churn {
    struct probe p;
    atomic_int canceled_wrongly;
};

static void churn_handler(cctx_t *ctx, cctx_mhd_request_t *req, cctx_mhd_response_t *resp,
                          void *arg)
{
    struct churn *ch = arg;
    const char *who = cctx_mhd_header(req, "x-who");
    probe_handler(ctx, req, resp, &ch->p);
    if (who && strcmp(who, "keeper") == 0) {
        cctx_cause_t c;
        cctx_cause(ctx, &c);
        if (c.code == 499)
            atomic_fetch_add_explicit(&ch->canceled_wrongly, 1, memory_order_relaxed);
    }
}

TEST(mhd_descriptor_reuse_churn)
{
    static struct churn ch;
    probe_init(&ch.p);
    ch.p.block = true;
    cctx_mhd_options_t o = CCTX_MHD_OPTIONS_INIT;
    o.workers = 8;
    cctx_mhd_t *s = cctx_mhd_start(cctx_background(), &o, churn_handler, &ch);
    CHECK(s);
    uint16_t port = cctx_mhd_port(s);
    static struct conn quitter, keeper;
    static struct http_resp r;
    int rounds = TEST_UNDER_TSAN ? 30 : 100;
    int ran = 0, late = 0; /* handler runs so far; keepers whose deadline beat their handler */
    int taken = 0;         /* rounds whose keeper could not get the quitter's number */
    for (int i = 0; i < rounds; i++) {
        /* A request whose client hangs up while the handler runs... */
        conn_open(&quitter, port);
        conn_send(&quitter, "GET /q HTTP/1.1\r\nHost: t\r\nx-who: quitter\r\n\r\n");
        CHECK(probe_wait_started(&ch.p, ++ran, 5000));
        int freed = quitter.fd;
        conn_close(&quitter);
        CHECK(probe_wait_ended(&ch.p, ran, 5000));
        CHECK_EQ(ch.p.cause.code, 499);
        /* ...then one that takes the same client descriptor number (the
         * server's is very likely reused too) and must run to its deadline.
         * A descriptor the server closed meanwhile may be lower: held
         * until the keeper has connected. One a server thread took first
         * makes the round test nothing, which only a few may do. */
        int below[64], n_below = 0;
        for (int fd; n_below < 64 && (fd = socket(AF_INET, SOCK_STREAM, 0)) >= 0;) {
            if (fd < freed) {
                below[n_below++] = fd;
                continue;
            }
            close(fd);
            break;
        }
        conn_open(&keeper, port);
        while (n_below > 0)
            close(below[--n_below]);
        if (keeper.fd != freed)
            taken++;
        /* (long enough that the handler runs before it, even under TSan) */
        conn_send(&keeper, TEST_UNDER_TSAN
                               ? "GET /k HTTP/1.1\r\nHost: t\r\nx-who: keeper\r\ngrpc-timeout: 200m\r\n\r\n"
                               : "GET /k HTTP/1.1\r\nHost: t\r\nx-who: keeper\r\ngrpc-timeout: 20m\r\n\r\n");
        conn_read(&keeper, &r);
        if (r.status == 504) {
            /* On a loaded machine the deadline can pass before a worker
             * takes the request: answered 504 without the handler. Never
             * a 499 either way. */
            late++;
        } else {
            CHECK_EQ(r.status, 200);
            CHECK(probe_wait_ended(&ch.p, ++ran, 5000));
            CHECK_EQ(ch.p.cause.code, 504);
        }
        conn_close(&keeper);
    }
    printf("%d of %d keepers timed out before their handler ran, %d got another number\n", late,
           rounds, taken);
    CHECK(late < rounds / 2);
    CHECK(taken < rounds / 2);
    CHECK_EQ(atomic_load(&ch.canceled_wrongly), 0);
    cctx_mhd_free(s);
    probe_destroy(&ch.p);
}

/* An after-function that blocks until the test lets it go. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool running, released;
} stuck = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false};

static void block_until_released(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&stuck.mu);
    stuck.running = true;
    pthread_cond_broadcast(&stuck.cv);
    while (!stuck.released)
        pthread_cond_wait(&stuck.cv, &stuck.mu);
    pthread_mutex_unlock(&stuck.mu);
}

static cctx_after_t stuck_reg;

/* Registers the blocking after-function on its request, then waits for the
 * request to end. */
static void stuck_handler(cctx_t *ctx, cctx_mhd_request_t *req, cctx_mhd_response_t *resp,
                          void *arg)
{
    (void)req, (void)resp, (void)arg;
    CHECK_EQ(cctx_after_func(ctx, &stuck_reg, block_until_released, NULL), 0);
    cctx_wait(ctx, CCTX_SEC(10));
}

TEST(mhd_blocking_after_function_does_not_delay_other_disconnects)
{
    struct probe p;
    probe_init(&p);
    p.block = true;
    cctx_mhd_options_t o = CCTX_MHD_OPTIONS_INIT;
    cctx_mhd_t *s = start_probe_server(&p, &o);
    CHECK_EQ(cctx_mhd_route(s, "GET", "/stuck", stuck_handler, NULL, 0), 0);
    static struct conn a, b;
    /* A's hang-up runs an after-function that does not return. */
    conn_open(&a, cctx_mhd_port(s));
    conn_send(&a, "GET /stuck HTTP/1.1\r\nHost: t\r\n\r\n");
    conn_open(&b, cctx_mhd_port(s));
    conn_send(&b, GET_SLOW);
    CHECK(probe_wait_started(&p, 1, 5000));
    conn_close(&a);
    pthread_mutex_lock(&stuck.mu);
    while (!stuck.running)
        pthread_cond_wait(&stuck.cv, &stuck.mu);
    pthread_mutex_unlock(&stuck.mu);
    /* B's hang-up is still seen and its handler ends, promptly. */
    int64_t t0 = real_now();
    conn_close(&b);
    CHECK(probe_wait_ended(&p, 1, 5000));
    CHECK_EQ(p.cause.code, 499);
    CHECK(p.t_ended - t0 < CCTX_SEC(2));
    pthread_mutex_lock(&stuck.mu);
    stuck.released = true;
    pthread_cond_broadcast(&stuck.cv);
    pthread_mutex_unlock(&stuck.mu);
    cctx_mhd_free(s);
    probe_destroy(&p);
}

/* A client whose FIN comes in the same segment as the last bytes of an
 * unfinished request (TCP_CORK holds the bytes until shutdown tacks the FIN
 * onto them). libmicrohttpd's epoll mode reads those bytes, and would then
 * wait for a new event that never comes: the connection is closed at once,
 * not at idle_timeout (60 s here). `before` is a whole request answered
 * first on the same connection, or NULL. */
static void fin_behind_unfinished_request(const char *before, const char *partial)
{
    struct probe p;
    probe_init(&p);
    cctx_mhd_t *s = start_probe_server(&p, NULL);
    static struct conn c;
    static struct http_resp r;
    conn_open(&c, cctx_mhd_port(s));
    if (before) {
        conn_send(&c, before);
        conn_read(&c, &r);
        CHECK_EQ(r.status, 200);
        CHECK(probe_wait_ended(&p, 1, 5000));
    }
    int one = 1;
    CHECK(setsockopt(c.fd, IPPROTO_TCP, TCP_CORK, &one, sizeof one) == 0);
    int64_t t0 = real_now();
    conn_send(&c, partial);
    CHECK(shutdown(c.fd, SHUT_WR) == 0);
    CHECK(conn_closed_within(&c, 5000));
    printf("FIN behind an unfinished request: closed after %.3f ms\n",
           (double)(real_now() - t0) / 1e6);
    CHECK_EQ(p.started, before ? 1 : 0);
    conn_close(&c);
    cctx_mhd_free(s);
    probe_destroy(&p);
}

TEST(mhd_fin_behind_unfinished_headers)
{
    fin_behind_unfinished_request(NULL, "GET /half HTTP/1.1\r\nHost: t\r\n");
}

TEST(mhd_fin_behind_unfinished_body)
{
    fin_behind_unfinished_request(NULL, "POST /b HTTP/1.1\r\nHost: t\r\n"
                                        "Content-Length: 10\r\n\r\nabc");
}

TEST(mhd_fin_behind_unfinished_keep_alive_request)
{
    fin_behind_unfinished_request("GET /k HTTP/1.1\r\nHost: t\r\n\r\n", "GET /half HTTP/1.1\r\nHo");
}

/* A whole request with the client's FIN in the same segment. The
 * connection's watch may report the end before the request is suspended,
 * and is then spent: the suspended request gets a watch of its own, which
 * reports the end at once, and the handler sees its client gone. Or
 * libmicrohttpd reads the end before it hands the request on, and closes
 * the connection without it (as it may with the FIN in a segment of its
 * own). Either way the connection closes promptly, and no handler waits
 * for its deadline. */
TEST(mhd_fin_with_a_whole_request_ends_it_at_once)
{
    struct probe p;
    probe_init(&p);
    p.block = true;
    cctx_mhd_t *s = start_probe_server(&p, NULL);
    static struct conn c;
    for (int i = 0; i < 20; i++) {
        int before = p.started; /* nothing runs between the rounds */
        conn_open(&c, cctx_mhd_port(s));
        int one = 1;
        CHECK(setsockopt(c.fd, IPPROTO_TCP, TCP_CORK, &one, sizeof one) == 0);
        conn_send(&c, GET_SLOW);
        CHECK(shutdown(c.fd, SHUT_WR) == 0);
        CHECK(conn_closed_within(&c, 5000));
        conn_close(&c);
        /* A handler that ran has returned: the connection closes after. */
        pthread_mutex_lock(&p.mu);
        CHECK_EQ(p.ended, p.started);
        if (p.started > before) {
            CHECK_EQ(p.cause.code, 499);
            CHECK_STR(p.msg, "client disconnected");
            CHECK(p.t_ended - p.t_started < CCTX_SEC(2));
        }
        pthread_mutex_unlock(&p.mu);
    }
    printf("%d of 20 reached their handler\n", p.started);
    cctx_mhd_free(s);
    probe_destroy(&p);
}

/* The client's FIN comes with the last bytes of an unfinished next request
 * while its first request is with a worker, whose answer (16 MiB) is larger
 * than the socket's send buffer. The hang-up spends the connection's watch.
 * Once the connection is resumed, libmicrohttpd writes the answer in several
 * turns: a write that fills the buffer puts the descriptor back in its epoll
 * set, whose report (readable: the FIN) is taken while it still writes.
 * Then it reads the unfinished request with a short read, and would wait for
 * an event that never comes: the connection is closed once the answer is out
 * all the same, not at idle_timeout (60 s here). */
TEST(mhd_fin_behind_unfinished_request_after_a_large_answer)
{
    enum { BIG = 16 << 20 };
    char *big = malloc(BIG + 1);
    CHECK(big);
    memset(big, 'x', BIG);
    big[BIG] = 0;
    struct probe p;
    probe_init(&p);
    p.block = true;
    p.body = big;
    cctx_mhd_t *s = start_probe_server(&p, NULL);
    static struct conn c;
    conn_open(&c, cctx_mhd_port(s));
    conn_send(&c, GET_SLOW);
    CHECK(probe_wait_started(&p, 1, 5000));
    int one = 1;
    CHECK(setsockopt(c.fd, IPPROTO_TCP, TCP_CORK, &one, sizeof one) == 0);
    conn_send(&c, "GET /half HTTP/1.1\r\nHo");
    CHECK(shutdown(c.fd, SHUT_WR) == 0);
    CHECK(probe_wait_ended(&p, 1, 5000));
    CHECK_EQ(p.cause.code, 499);
    int64_t t0 = real_now();
    CHECK(conn_closed_within(&c, 10000));
    printf("FIN behind an unfinished request after a large answer: closed after %.3f ms\n",
           (double)(real_now() - t0) / 1e6);
    conn_close(&c);
    cctx_mhd_free(s);
    probe_destroy(&p);
    free(big);
}

/* ---- a hang-up while the request waits in the queue ------------------------------------- */

/* With the one worker held, a second request waits in the queue, and its
 * client leaves. When the worker takes it, it is answered without running
 * anything. Before, the watch armed as the worker took it reported the
 * hang-up a moment later, on the watcher's thread, and the handler had
 * already started with a live context: 10 times in 10. */
static atomic_int gone_ran;

static void gone_handler(cctx_t *ctx, cctx_mhd_request_t *req, cctx_mhd_response_t *resp, void *arg)
{
    (void)ctx, (void)req, (void)resp, (void)arg;
    atomic_fetch_add(&gone_ran, 1);
}

TEST(mhd_hang_up_while_queued_runs_no_handler)
{
    struct probe p;
    probe_init(&p);
    p.block = true;
    cctx_mhd_options_t o = CCTX_MHD_OPTIONS_INIT;
    o.workers = 1;
    cctx_mhd_t *s = start_probe_server(&p, &o);
    CHECK_EQ(cctx_mhd_route(s, NULL, "/gone", gone_handler, NULL, 0), 0);
    for (int i = 0; i < 3; i++) {
        struct conn a, b;
        conn_open(&a, cctx_mhd_port(s));
        conn_send(&a, "GET /hold HTTP/1.1\r\nHost: t\r\n\r\n");
        CHECK(probe_wait_started(&p, i + 1, 5000)); /* the one worker is held */
        conn_open(&b, cctx_mhd_port(s));
        conn_send(&b, "GET /gone HTTP/1.1\r\nHost: t\r\n\r\n");
        for (int k = 0; !server_has_request(s, "GET /gone"); k++) { /* queued */
            CHECK(k < 5000);
            real_sleep_ms(1);
        }
        conn_close(&b); /* its client leaves */
        conn_close(&a); /* the held one ends (499): the worker takes the other */
        CHECK(probe_wait_ended(&p, i + 1, 5000));
        for (int k = 0; server_has_request(s, "GET /gone"); k++) { /* answered */
            CHECK(k < 5000);
            real_sleep_ms(1);
        }
    }
    CHECK_EQ(atomic_load(&gone_ran), 0);
    cctx_mhd_free(s);
    probe_destroy(&p);
}
