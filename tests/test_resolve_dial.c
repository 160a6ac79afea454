/* SPDX-License-Identifier: MIT */
/*
 * cctx_dial's share of ctx's time per address, as Go's dialSerial gives it:
 * with a deadline, each attempt ends at now + remaining / addresses left,
 * but not before 2 s unless less than that remains; without one, an
 * attempt has no limit of its own.
 *
 * An address that never answers. Each test runs in namespaces of its own
 * (tests/isolated.h) where /etc/hosts gives a name two or three loopback
 * addresses (127.0.0.1, .2, .3). The order getaddrinfo gives them in is
 * read first, since RFC 6724's sorting reorders them (its longest matching
 * prefix puts 127.0.0.1, the source address, first, whatever the order of
 * /etc/hosts): the test's roles go by that order. A "hole" is a listener
 * with a backlog of 0 whose one place in the accept queue is taken by a
 * connection never accepted: Linux drops the SYNs that come after, so a
 * connect to it waits, in SYN_SENT, for as long as it is let. The other
 * addresses have, on the same port, a listener that accepts, or nothing
 * (the connect is refused).
 *
 * Deadlines are on the fake clock, so no test waits seconds. The test
 * knows an attempt has begun when /proc/net/tcp shows a socket in SYN_SENT
 * to its address: the attempt's share was derived before its connect, so
 * the clock may then be advanced. Real time serves only to see that the
 * dial does not return (100 ms, which can only let a wrong dial pass) and
 * to bound the waits for what must happen (10 s).
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/io.h>
#include <cctx/testing.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "harness.h"
#include "internal.h"
#include "isolated.h"
#include "support.h"
#include "testhooks.h"

static const char hosts[] = "127.0.0.1 two.example three.example\n"
                            "127.0.0.2 two.example three.example\n"
                            "127.0.0.3 three.example\n";

/* ---- the addresses ---------------------------------------------------------------- */

enum role { HOLE, ACCEPTS, REFUSES };
enum { MAX_ADDRS = 3 };

struct scene {
    int n;
    struct sockaddr_in addr[MAX_ADDRS]; /* in getaddrinfo's order, with the port */
    int listener[MAX_ADDRS];            /* -1 where nothing listens */
    int queued[MAX_ADDRS];              /* the connection filling a hole's queue, or -1 */
    char service[8];
};

/* name's addresses, in the resolver's order, take roles[i] each, on one
 * port. */
static void scene_open(struct scene *s, const char *name, const enum role *roles, int n)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    CHECK_EQ(getaddrinfo(name, NULL, &hints, &res), 0);
    s->n = 0;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        CHECK(s->n < n && a->ai_family == AF_INET);
        memcpy(&s->addr[s->n++], a->ai_addr, sizeof s->addr[0]);
    }
    freeaddrinfo(res);
    CHECK_EQ(s->n, n);
    printf("%s:", name);
    for (int i = 0; i < n; i++)
        printf(" %s", inet_ntoa(s->addr[i].sin_addr));
    printf("\n");

    in_port_t port = 0; /* the first listener's, chosen by bind */
    for (int i = 0; i < n; i++) {
        s->listener[i] = s->queued[i] = -1;
        if (roles[i] == REFUSES)
            continue;
        int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        CHECK(l >= 0);
        s->addr[i].sin_port = port;
        CHECK_EQ(bind(l, (struct sockaddr *)&s->addr[i], sizeof s->addr[i]), 0);
        CHECK_EQ(listen(l, roles[i] == HOLE ? 0 : 8), 0);
        socklen_t len = sizeof s->addr[i];
        CHECK_EQ(getsockname(l, (struct sockaddr *)&s->addr[i], &len), 0);
        port = s->addr[i].sin_port;
        s->listener[i] = l;
    }
    CHECK(port != 0);
    for (int i = 0; i < n; i++) {
        s->addr[i].sin_port = port;
        if (roles[i] != HOLE)
            continue;
        s->queued[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        CHECK(s->queued[i] >= 0);
        CHECK(connect(s->queued[i], (struct sockaddr *)&s->addr[i], sizeof s->addr[i]) == 0 ||
              errno == EINPROGRESS);
        /* Accepted by the kernel, in the queue's one place: full now. */
        struct pollfd p = {.fd = s->listener[i], .events = POLLIN};
        CHECK_EQ(poll(&p, 1, 10000), 1);
    }
    snprintf(s->service, sizeof s->service, "%u", (unsigned)ntohs(port));
}

static void scene_close(struct scene *s)
{
    for (int i = 0; i < s->n; i++) {
        if (s->queued[i] >= 0)
            close(s->queued[i]);
        if (s->listener[i] >= 0)
            close(s->listener[i]);
    }
}

/* How many of this namespace's TCP sockets are in SYN_SENT to a: connects
 * waiting for an answer. (/proc/net/tcp prints the address as the 32 bits
 * of s_addr read in host order, the port in host order.) */
static int syn_sent_to(const struct sockaddr_in *a)
{
    FILE *f = fopen("/proc/net/tcp", "re");
    CHECK(f != NULL);
    char line[512];
    int n = 0;
    CHECK(fgets(line, sizeof line, f) != NULL); /* the header */
    while (fgets(line, sizeof line, f)) {
        unsigned lip, lport, rip, rport, st;
        if (sscanf(line, " %*u: %x:%x %x:%x %x", &lip, &lport, &rip, &rport, &st) == 5 && st == 2 &&
            rip == a->sin_addr.s_addr && rport == ntohs(a->sin_port))
            n++;
    }
    fclose(f);
    return n;
}

/* Returns once a connect to a waits for its answer (the attempt on a has
 * begun); fails the test after 10 s. */
static void await_attempt(const struct sockaddr_in *a)
{
    int64_t until = real_now() + CCTX_SEC(10);
    while (syn_sent_to(a) == 0) {
        if (real_now() >= until) {
            fprintf(stderr, "no attempt on %s within 10 s\n", inet_ntoa(a->sin_addr));
            CHECK(!"the attempt began");
        }
        real_sleep_ms(1);
    }
}

/* Whether a listener has a connection waiting to be accepted. */
static bool has_queued(int listener)
{
    struct pollfd p = {.fd = listener, .events = POLLIN};
    return poll(&p, 1, 0) == 1;
}

/* Whether ctx, not yet ended, has anything in its list: the share's
 * context, while an attempt has one, and until it is released. */
static bool anything_registered(cctx_t *ctx)
{
    struct cctx__cancelable *c = (struct cctx__cancelable *)ctx;
    cctx__lock(ctx);
    bool any = c->children != NULL;
    cctx__unlock(ctx);
    return any;
}

/* ---- the dial, on a thread ---------------------------------------------------------- */

struct dial {
    cctx_t *ctx;
    const char *host;
    const char *service;
    int fd, err;
    atomic_bool returned;
    pthread_t thread;
};

static void *dial_thread(void *arg)
{
    struct dial *d = arg;
    d->fd = cctx_dial(d->ctx, d->host, d->service, SOCK_STREAM);
    d->err = errno;
    atomic_store_explicit(&d->returned, true, memory_order_release);
    return NULL;
}

static void dial_start(struct dial *d, cctx_t *ctx, const char *host, const struct scene *s)
{
    *d = (struct dial){.ctx = ctx, .host = host, .service = s->service, .fd = -2};
    CHECK_EQ(pthread_create(&d->thread, NULL, dial_thread, d), 0);
}

/* The dial returns within 10 s (and is joined), or the test fails. */
static void dial_returns(struct dial *d)
{
    int64_t until = real_now() + CCTX_SEC(10);
    while (!atomic_load_explicit(&d->returned, memory_order_acquire)) {
        if (real_now() >= until) {
            fprintf(stderr, "cctx_dial did not return within 10 s\n");
            CHECK(!"the dial returned");
        }
        real_sleep_ms(1);
    }
    CHECK_EQ(pthread_join(d->thread, NULL), 0);
}

/* The dial is still connecting to a, 100 ms of real time on. */
static void still_connecting(struct dial *d, const struct sockaddr_in *a)
{
    real_sleep_ms(100);
    CHECK(!atomic_load_explicit(&d->returned, memory_order_acquire));
    CHECK_EQ(syn_sent_to(a), 1);
}

/* fd is connected to a, whose listener takes the connection. */
static void connected_to(int fd, const struct sockaddr_in *a, int listener)
{
    CHECK(fd >= 0);
    struct sockaddr_in peer;
    socklen_t len = sizeof peer;
    CHECK_EQ(getpeername(fd, (struct sockaddr *)&peer, &len), 0);
    CHECK_EQ(peer.sin_addr.s_addr, a->sin_addr.s_addr);
    CHECK_EQ(peer.sin_port, a->sin_port);
    int c = accept(listener, NULL, NULL);
    CHECK(c >= 0);
    close(c);
    close(fd);
}

/* ---- a deadline shared ------------------------------------------------------------- */

/* 6 s for two addresses: 3 s each. The first never answers; the second
 * gets its turn when the first's 3 s are up, with 3 s of ctx's left. Before,
 * the first took all 6 s, and the second was never tried. The share's
 * context, and the descriptor its wait made, are given back once its
 * attempt is over. */
CHILD(resolve_dial_share_body)
{
    struct scene s;
    scene_open(&s, "two.example", (const enum role[]){HOLE, ACCEPTS}, 2);
    cctx_fake_clock_start(CCTX_SEC(1000));
    cctx_t *ctx = cctx_with_timeout(cctx_background(), CCTX_SEC(6), NULL);
    int open_fds = count_open_fds();
    struct dial d;
    dial_start(&d, ctx, "two.example", &s);
    await_attempt(&s.addr[0]);
    cctx_fake_clock_advance(CCTX_SEC(3) - 1);
    still_connecting(&d, &s.addr[0]);
    cctx_fake_clock_advance(1);
    dial_returns(&d);
    connected_to(d.fd, &s.addr[1], s.listener[1]);
    CHECK_EQ(syn_sent_to(&s.addr[0]), 0); /* the first attempt's socket closed */
    CHECK(!anything_registered(ctx));
    CHECK_EQ(count_open_fds(), open_fds);
    CHECK_EQ(cctx_err(ctx), 0);
    cctx_release(ctx);
    cctx_fake_clock_stop();
    scene_close(&s);
}

TEST(resolve_dial_gives_each_address_its_share_of_the_deadline)
{
    free(run_isolated_with_hosts("resolve_dial_share_body", hosts));
}

/* 5 s for three addresses: 5/3 s would be a share too short to connect in,
 * so the first gets 2 s; the second, with 3 s left for two, 2 s again (not
 * 1.5); the third what remains, 1 s. */
CHILD(resolve_dial_share_floor_body)
{
    struct scene s;
    scene_open(&s, "three.example", (const enum role[]){HOLE, HOLE, ACCEPTS}, 3);
    cctx_fake_clock_start(CCTX_SEC(1000));
    cctx_t *ctx = cctx_with_timeout(cctx_background(), CCTX_SEC(5), NULL);
    struct dial d;
    dial_start(&d, ctx, "three.example", &s);
    await_attempt(&s.addr[0]);
    cctx_fake_clock_advance(CCTX_SEC(2) - 1);
    still_connecting(&d, &s.addr[0]);
    cctx_fake_clock_advance(1);
    await_attempt(&s.addr[1]);
    CHECK_EQ(syn_sent_to(&s.addr[0]), 0);
    cctx_fake_clock_advance(CCTX_SEC(2) - 1);
    still_connecting(&d, &s.addr[1]);
    cctx_fake_clock_advance(1);
    dial_returns(&d);
    connected_to(d.fd, &s.addr[2], s.listener[2]);
    CHECK_EQ(cctx_err(ctx), 0);
    cctx_release(ctx);
    cctx_fake_clock_stop();
    scene_close(&s);
}

TEST(resolve_dial_share_is_at_least_two_seconds)
{
    free(run_isolated_with_hosts("resolve_dial_share_floor_body", hosts));
}

/* A share that ran out is that address's ETIMEDOUT, and the walk goes on:
 * the second address refuses, and the first error, the ETIMEDOUT, is the
 * one reported, with 3 s of ctx's still left. */
CHILD(resolve_dial_share_timeout_body)
{
    struct scene s;
    scene_open(&s, "two.example", (const enum role[]){HOLE, REFUSES}, 2);
    cctx_fake_clock_start(CCTX_SEC(1000));
    cctx_t *ctx = cctx_with_timeout(cctx_background(), CCTX_SEC(6), NULL);
    struct dial d;
    dial_start(&d, ctx, "two.example", &s);
    await_attempt(&s.addr[0]);
    cctx_fake_clock_advance(CCTX_SEC(3));
    dial_returns(&d);
    CHECK_EQ(d.fd, -1);
    CHECK_EQ(d.err, ETIMEDOUT);
    CHECK_EQ(cctx_err(ctx), 0);
    cctx_release(ctx);
    cctx_fake_clock_stop();
    scene_close(&s);
}

TEST(resolve_dial_share_run_out_is_that_address_timeout)
{
    free(run_isolated_with_hosts("resolve_dial_share_timeout_body", hosts));
}

/* Out of memory for the share's context, the attempt has ctx's whole time,
 * as with one address: the first address's connect outlives its 3 s, and
 * ctx's end ends the dial. The dial's one allocation of the library's is
 * that context (the lookup's are libc's). */
CHILD(resolve_dial_share_out_of_memory_body)
{
    struct scene s;
    scene_open(&s, "two.example", (const enum role[]){HOLE, ACCEPTS}, 2);
    cctx_fake_clock_start(CCTX_SEC(1000));
    cctx_t *ctx = cctx_with_timeout(cctx_background(), CCTX_SEC(6), NULL);
    struct dial d;
    cctx__test_fail_alloc(1);
    dial_start(&d, ctx, "two.example", &s);
    await_attempt(&s.addr[0]);
    CHECK_EQ(cctx__test_fail_alloc_pending(), 0);
    cctx__test_fail_alloc(0);
    CHECK(!anything_registered(ctx));
    cctx_fake_clock_advance(CCTX_SEC(3));
    still_connecting(&d, &s.addr[0]);
    cctx_fake_clock_advance(CCTX_SEC(3));
    dial_returns(&d);
    CHECK_EQ(d.fd, -1);
    CHECK_EQ(d.err, ETIMEDOUT);
    CHECK_EQ(cctx_err(ctx), ETIMEDOUT);
    CHECK(!has_queued(s.listener[1]));
    cctx_release(ctx);
    cctx_fake_clock_stop();
    scene_close(&s);
}

TEST(resolve_dial_share_out_of_memory_has_all_of_ctx_time)
{
    free(run_isolated_with_hosts("resolve_dial_share_out_of_memory_body", hosts));
}

/* ---- what stays as it was ------------------------------------------------------------ */

/* No deadline, no share: the first address has all the time there is (the
 * kernel's connect timeout, on the real clock), however far the fake clock
 * goes (two centuries: past half of CCTX_NO_DEADLINE's time); the end of ctx
 * ends the dial with ctx's error. */
CHILD(resolve_dial_no_deadline_body)
{
    struct scene s;
    scene_open(&s, "two.example", (const enum role[]){HOLE, ACCEPTS}, 2);
    cctx_fake_clock_start(CCTX_SEC(1000));
    cctx_cancel_t *cancel;
    cctx_t *ctx = cctx_with_cancel(cctx_background(), &cancel);
    struct dial d;
    dial_start(&d, ctx, "two.example", &s);
    await_attempt(&s.addr[0]);
    cctx_fake_clock_advance(CCTX_SEC(3600) * 24 * 365 * 200);
    still_connecting(&d, &s.addr[0]);
    cctx_cancel(cancel);
    dial_returns(&d);
    CHECK_EQ(d.fd, -1);
    CHECK_EQ(d.err, ECANCELED);
    CHECK(!has_queued(s.listener[1])); /* never tried */
    cctx_release(ctx);
    cctx_fake_clock_stop();
    scene_close(&s);
}

TEST(resolve_dial_without_a_deadline_has_no_share)
{
    free(run_isolated_with_hosts("resolve_dial_no_deadline_body", hosts));
}

/* 1.5 s left for two addresses, less than the 2 s a share must have: the
 * first gets all of it, and ctx's end ends the dial. */
CHILD(resolve_dial_short_deadline_body)
{
    struct scene s;
    scene_open(&s, "two.example", (const enum role[]){HOLE, ACCEPTS}, 2);
    cctx_fake_clock_start(CCTX_SEC(1000));
    cctx_t *ctx = cctx_with_timeout(cctx_background(), CCTX_MSEC(1500), NULL);
    struct dial d;
    dial_start(&d, ctx, "two.example", &s);
    await_attempt(&s.addr[0]);
    cctx_fake_clock_advance(CCTX_MSEC(1500) - 1);
    still_connecting(&d, &s.addr[0]);
    cctx_fake_clock_advance(1);
    dial_returns(&d);
    CHECK_EQ(d.fd, -1);
    CHECK_EQ(d.err, ETIMEDOUT);
    CHECK_EQ(cctx_err(ctx), ETIMEDOUT);
    CHECK(!has_queued(s.listener[1]));
    cctx_release(ctx);
    cctx_fake_clock_stop();
    scene_close(&s);
}

TEST(resolve_dial_under_two_seconds_left_gives_the_first_address_all)
{
    free(run_isolated_with_hosts("resolve_dial_short_deadline_body", hosts));
}

/* ctx canceled during the first address's share: the walk stops there,
 * with ctx's error, not the share's. */
CHILD(resolve_dial_canceled_in_a_share_body)
{
    struct scene s;
    scene_open(&s, "two.example", (const enum role[]){HOLE, ACCEPTS}, 2);
    cctx_fake_clock_start(CCTX_SEC(1000));
    cctx_cancel_t *cancel;
    cctx_t *parent = cctx_with_cancel(cctx_background(), &cancel);
    cctx_t *ctx = cctx_with_timeout(parent, CCTX_SEC(6), NULL);
    struct dial d;
    dial_start(&d, ctx, "two.example", &s);
    await_attempt(&s.addr[0]);
    cctx_cancel(cancel);
    dial_returns(&d);
    CHECK_EQ(d.fd, -1);
    CHECK_EQ(d.err, ECANCELED);
    CHECK(!has_queued(s.listener[1]));
    cctx_release(ctx);
    cctx_release(parent);
    cctx_fake_clock_stop();
    scene_close(&s);
}

TEST(resolve_dial_canceled_in_a_share_stops_the_walk)
{
    free(run_isolated_with_hosts("resolve_dial_canceled_in_a_share_body", hosts));
}

/* ---- a thread cancelled in a share ------------------------------------------------------ */

/* A thread cancelled (pthread_cancel) in the first address's connect gives
 * back the share's context, and with it the descriptor its wait made, as
 * well as the socket. */
CHILD(resolve_dial_cancelled_in_a_share_body)
{
    struct scene s;
    scene_open(&s, "two.example", (const enum role[]){HOLE, ACCEPTS}, 2);
    cctx_fake_clock_start(CCTX_SEC(1000));
    cctx_t *ctx = cctx_with_timeout(cctx_background(), CCTX_SEC(6), NULL);
    int open_fds = count_open_fds();
    struct dial d;
    dial_start(&d, ctx, "two.example", &s);
    await_attempt(&s.addr[0]);
    /* Not under ThreadSanitizer while the thread waits: see the same look
     * in test_io_thread_cancel.c. */
    if (!TEST_UNDER_TSAN)
        CHECK(anything_registered(ctx));
    cancel_and_join(d.thread);
    CHECK(!anything_registered(ctx));
    CHECK_EQ(count_open_fds(), open_fds);
    CHECK_EQ(syn_sent_to(&s.addr[0]), 0);
    CHECK_EQ(cctx_err(ctx), 0);
    cctx_release(ctx);
    cctx_fake_clock_stop();
    scene_close(&s);
}

TEST(resolve_dial_cancelled_in_a_share_gives_back_its_context)
{
    if (TEST_UNDER_ASAN)
        SKIP_IN_THIS_BUILD("AddressSanitizer takes the unwinding of a cancelled thread for a "
                           "use after scope");
    free(run_isolated_with_hosts("resolve_dial_cancelled_in_a_share_body", hosts));
}

/* A thread cancelled in the last address's connect, after the first one's
 * share ran out: that share's context was given back already, and is not
 * given back twice; the last attempt, on ctx itself, has none. */
CHILD(resolve_dial_cancelled_after_a_share_body)
{
    struct scene s;
    scene_open(&s, "two.example", (const enum role[]){HOLE, HOLE}, 2);
    cctx_fake_clock_start(CCTX_SEC(1000));
    cctx_t *ctx = cctx_with_timeout(cctx_background(), CCTX_SEC(6), NULL);
    int open_fds = count_open_fds();
    struct dial d;
    dial_start(&d, ctx, "two.example", &s);
    await_attempt(&s.addr[0]);
    cctx_fake_clock_advance(CCTX_SEC(3));
    await_attempt(&s.addr[1]);
    if (!TEST_UNDER_TSAN) /* as in resolve_dial_cancelled_in_a_share_body */
        CHECK(!anything_registered(ctx));
    cancel_and_join(d.thread);
    CHECK(!anything_registered(ctx));
    CHECK_EQ(syn_sent_to(&s.addr[1]), 0);
    CHECK_EQ(cctx_err(ctx), 0);
    cctx_release(ctx); /* and with it the descriptor the last wait made */
    CHECK_EQ(count_open_fds(), open_fds);
    cctx_fake_clock_stop();
    scene_close(&s);
}

TEST(resolve_dial_cancelled_after_a_share_gives_nothing_back_twice)
{
    if (TEST_UNDER_ASAN)
        SKIP_IN_THIS_BUILD("AddressSanitizer takes the unwinding of a cancelled thread for a "
                           "use after scope");
    free(run_isolated_with_hosts("resolve_dial_cancelled_after_a_share_body", hosts));
}
