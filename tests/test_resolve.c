/* SPDX-License-Identifier: MIT */
/*
 * Name resolution of <cctx/io.h>: cctx_getaddrinfo and cctx_dial.
 *
 * The resolver that never answers. A test of that kind runs its body in
 * namespaces of its own (tests/isolated.h), where /etc/resolv.conf names
 * 127.0.0.1, and the body binds UDP port 53 on 127.0.0.1 itself: a DNS
 * server that receives every query and answers only when the test says so.
 * Nothing leaves the machine.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/io.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "harness.h"
#include "io_internal.h"
#include "isolated.h"
#include "resolve_internal.h"
#include "support.h"

/* ---- a DNS server that answers when told ------------------------------------------ */

struct stub {
    int fd;
    int queries; /* received so far */
    int thirds;  /* of those, for third.example. */
    unsigned char pending[8][512];
    ssize_t pending_len[8];
    struct sockaddr_in from[8];
    int npending;
};

static void stub_open(struct stub *s)
{
    memset(s, 0, sizeof *s);
    s->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHECK(s->fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(53)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(s->fd, (struct sockaddr *)&a, sizeof a) == 0);
}

/* Waits up to ms for a query and keeps it unanswered; false if none came. */
static bool stub_receive(struct stub *s, int ms)
{
    struct pollfd p = {.fd = s->fd, .events = POLLIN};
    if (poll(&p, 1, ms) != 1)
        return false;
    int i = s->npending < 8 ? s->npending++ : 7;
    socklen_t fl = sizeof s->from[i];
    s->pending_len[i] = recvfrom(s->fd, s->pending[i], sizeof s->pending[i], 0,
                                 (struct sockaddr *)&s->from[i], &fl);
    CHECK(s->pending_len[i] > 12);
    s->queries++;
    static const char third[] = "\5third\7example";
    s->thirds += memmem(s->pending[i], (size_t)s->pending_len[i], third, sizeof third - 1) != NULL;
    return true;
}

/* Answers every kept query: with 192.0.2.7 or 2001:db8::7 (as its type
 * asks), or with NXDOMAIN. */
static void stub_answer(struct stub *s, bool nxdomain)
{
    for (int i = 0; i < s->npending; i++) {
        const unsigned char *q = s->pending[i];
        ssize_t qlen = s->pending_len[i];
        ssize_t end = 12; /* the question: labels, then type and class */
        while (end < qlen && q[end] != 0)
            end += q[end] + 1;
        end += 1 + 4;
        CHECK(end <= qlen);
        int qtype = q[end - 4] << 8 | q[end - 3];
        unsigned char r[600];
        memcpy(r, q, (size_t)end);
        r[2] = 0x81; /* QR, RD */
        r[3] = nxdomain ? 0x83 : 0x80; /* RA, NXDOMAIN or NOERROR */
        r[6] = r[7] = r[8] = r[9] = r[10] = r[11] = 0;
        size_t n = (size_t)end;
        if (!nxdomain && (qtype == 1 || qtype == 28)) {
            r[7] = 1; /* one answer */
            static const unsigned char v4[4] = {192, 0, 2, 7};
            static const unsigned char v6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 7};
            unsigned char rr[12] = {0xc0, 0x0c, 0, (unsigned char)qtype, 0, 1, 0, 0, 0, 60,
                                    0, qtype == 1 ? 4 : 16};
            memcpy(r + n, rr, sizeof rr);
            n += sizeof rr;
            memcpy(r + n, qtype == 1 ? v4 : v6, qtype == 1 ? 4 : 16);
            n += qtype == 1 ? 4 : 16;
        }
        CHECK(sendto(s->fd, r, n, 0, (struct sockaddr *)&s->from[i], sizeof s->from[i]) ==
              (ssize_t)n);
    }
    s->npending = 0;
}

/* Answers queries as they come until every helper thread has finished
 * (bounded: 20 s of real time). */
static void stub_drain(struct stub *s, bool nxdomain)
{
    stub_answer(s, nxdomain);
    int64_t end = real_now() + CCTX_SEC(20);
    while (cctx__resolve_in_flight() > 0) {
        CHECK(real_now() < end);
        if (stub_receive(s, 10))
            stub_answer(s, nxdomain);
    }
}

/* ---- lookups on a thread, to cancel from outside ---------------------------------- */

struct lookup {
    cctx_t *ctx;
    const char *node;
    bool dial;
    int rc, err;
    int64_t returned; /* real_now() at the return */
    pthread_t thread;
};

static void *lookup_thread(void *arg)
{
    struct lookup *l = arg;
    if (l->dial) {
        l->rc = cctx_dial(l->ctx, l->node, "80", SOCK_STREAM);
    } else {
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
        struct addrinfo *res = NULL;
        l->rc = cctx_getaddrinfo(l->ctx, l->node, "80", &hints, &res);
        if (l->rc == 0)
            freeaddrinfo(res);
    }
    l->err = errno;
    l->returned = real_now();
    return NULL;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The resolver never answers: a cancel returns at once (measured), a
 * deadline returns at the deadline; the abandoned lookups finish later, when
 * the server answers at last, and free their results (ASan's leak check at
 * this process's exit sees it). */
CHILD(resolve_hang_body)
{
    struct stub s;
    stub_open(&s);

    /* Cancel, after the server has the query in hand. */
    enum { RUNS = 20 };
    int64_t lat[RUNS];
    for (int i = 0; i < RUNS; i++) {
        cctx_cancel_t *cancel;
        struct lookup l = {.ctx = cctx_with_cancel(cctx_background(), &cancel),
                           .node = "hang.example.", .dial = i % 2 == 1};
        CHECK(pthread_create(&l.thread, NULL, lookup_thread, &l) == 0);
        CHECK(stub_receive(&s, 10000));
        int64_t t0 = real_now();
        cctx_cancel(cancel);
        CHECK(pthread_join(l.thread, NULL) == 0);
        lat[i] = l.returned - t0;
        if (l.dial) {
            CHECK_EQ(l.rc, -1);
        } else {
            CHECK_EQ(l.rc, EAI_SYSTEM);
        }
        CHECK_EQ(l.err, ECANCELED);
        cctx_release(l.ctx);
        /* Half answered at once, half left to pile up: abandoned helpers
         * outlive several cancels. */
        if (i % 2 == 0)
            stub_answer(&s, i % 4 == 0);
    }
    qsort(lat, RUNS, sizeof lat[0], cmp64);
    printf("resolver silent: cancel -> return p50 %.1f us, max %.1f us (%d runs)\n",
           lat[RUNS / 2] / 1e3, lat[RUNS - 1] / 1e3, RUNS);
    CHECK(lat[RUNS - 1] < CCTX_SEC(2));

    /* A deadline, on the calling thread. */
    /* (the clock read first: the deadline counts from the derivation) */
    int64_t t0 = real_now();
    cctx_t *ctx = cctx_with_timeout(cctx_background(), CCTX_MSEC(200), NULL);
    struct addrinfo *res = NULL;
    errno = 0;
    CHECK_EQ(cctx_getaddrinfo(ctx, "hang.example.", "80", NULL, &res), EAI_SYSTEM);
    CHECK_EQ(errno, ETIMEDOUT);
    int64_t took = real_now() - t0;
    CHECK(res == NULL);
    CHECK(took >= CCTX_MSEC(200) && took < CCTX_MSEC(200) + CCTX_SEC(3));
    printf("resolver silent: 200 ms deadline -> return after %.1f ms\n", took / 1e6);
    cctx_release(ctx);
    CHECK(cctx__resolve_in_flight() > 0);

    /* The server answers everything now: every abandoned helper frees its
     * result and exits. */
    stub_drain(&s, false);
    CHECK_EQ(cctx__resolve_in_flight(), 0);
    printf("%d queries seen\n", s.queries);
    close(s.fd);
}

TEST(resolve_silent_server)
{
    free(run_isolated("resolve_hang_body"));
}

/* The same server answering: names resolve through it (the helper thread's
 * result reaches the caller), NXDOMAIN gives EAI_NONAME and, for cctx_dial,
 * EADDRNOTAVAIL. */
struct answering {
    struct stub s;
    bool nx;
    atomic_bool stop;
};

static void *answer_loop(void *arg)
{
    struct answering *a = arg;
    while (!atomic_load_explicit(&a->stop, memory_order_acquire))
        if (stub_receive(&a->s, 10))
            stub_answer(&a->s, a->nx);
    return NULL;
}

CHILD(resolve_answer_body)
{
    struct answering a = {.nx = false};
    stub_open(&a.s);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, answer_loop, &a) == 0);
    cctx_t *ctx = cctx_with_timeout(cctx_background(), CCTX_SEC(20), NULL);
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    CHECK_EQ(cctx_getaddrinfo(ctx, "found.example.", "443", &hints, &res), 0);
    CHECK(res != NULL && res->ai_family == AF_INET);
    struct sockaddr_in *sin = (struct sockaddr_in *)res->ai_addr;
    CHECK_EQ(ntohl(sin->sin_addr.s_addr), 0xc0000207);
    CHECK_EQ(ntohs(sin->sin_port), 443);
    freeaddrinfo(res);
    atomic_store_explicit(&a.stop, true, memory_order_release);
    CHECK(pthread_join(t, NULL) == 0);

    /* NXDOMAIN */
    a.nx = true;
    atomic_store_explicit(&a.stop, false, memory_order_relaxed);
    CHECK(pthread_create(&t, NULL, answer_loop, &a) == 0);
    res = NULL;
    CHECK_EQ(cctx_getaddrinfo(ctx, "missing.example.", "443", &hints, &res), EAI_NONAME);
    CHECK(res == NULL);
    CHECK_ERRNO(cctx_dial(ctx, "missing.example.", "443", SOCK_STREAM), -1, EADDRNOTAVAIL);
    atomic_store_explicit(&a.stop, true, memory_order_release);
    CHECK(pthread_join(t, NULL) == 0);
    CHECK_EQ(cctx__resolve_in_flight(), 0);
    cctx_release(ctx);
    close(a.s.fd);
}

TEST(resolve_answering_server)
{
    free(run_isolated("resolve_answer_body"));
}

/* At most cctx__resolve_helpers_max helper threads at once (lowered to 2
 * here): with both slots held by lookups the silent server has abandoned,
 * a third lookup starts no thread and sends no query, and ends at its
 * deadline; a fourth with time to wait gets the first slot that frees and
 * resolves. */
CHILD(resolve_helpers_bounded_body)
{
    struct answering a = {.nx = false};
    stub_open(&a.s);
    atomic_store(&cctx__resolve_helpers_max, 2);
    for (int i = 0; i < 2; i++) {
        cctx_t *ctx = cctx_with_timeout(cctx_background(), CCTX_MSEC(50), NULL);
        struct addrinfo *res = NULL;
        errno = 0;
        CHECK_EQ(cctx_getaddrinfo(ctx, "held.example.", "80", NULL, &res), EAI_SYSTEM);
        CHECK_EQ(errno, ETIMEDOUT);
        cctx_release(ctx);
    }
    CHECK_EQ(cctx__resolve_in_flight(), 2);
    while (stub_receive(&a.s, 300)) /* the held lookups' queries, kept unanswered */
        ;
    CHECK(a.s.queries >= 2);

    int64_t t0 = real_now();
    cctx_t *ctx = cctx_with_timeout(cctx_background(), CCTX_MSEC(200), NULL);
    struct addrinfo *res = NULL;
    errno = 0;
    CHECK_EQ(cctx_getaddrinfo(ctx, "third.example.", "80", NULL, &res), EAI_SYSTEM);
    CHECK_EQ(errno, ETIMEDOUT);
    int64_t took = real_now() - t0;
    CHECK(took >= CCTX_MSEC(200) && took < CCTX_MSEC(200) + CCTX_SEC(3));
    cctx_release(ctx);
    CHECK_EQ(cctx__resolve_in_flight(), 2);
    while (stub_receive(&a.s, 300)) /* a held lookup's may come late */
        ;
    CHECK_EQ(a.s.thirds, 0); /* no query of its own */

    /* A child of fork() has none of those helpers: its slots are free.
     * (ThreadSanitizer runs no thread started in a forked child.) */
    if (!TEST_UNDER_TSAN) {
        fflush(stdout);
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            alarm(20);
            if (cctx__resolve_in_flight() != 0)
                _exit(10);
            cctx_t *c = cctx_with_timeout(cctx_background(), CCTX_MSEC(100), NULL);
            struct addrinfo *r = NULL;
            int rc = cctx_getaddrinfo(c, "child.example.", "80", NULL, &r);
            /* A helper started (and was abandoned at the deadline). */
            _exit(rc == EAI_SYSTEM && errno == ETIMEDOUT && cctx__resolve_in_flight() == 1 ? 0
                                                                                           : 11);
        }
        int status;
        CHECK_EQ(waitpid(pid, &status, 0), pid);
        CHECK(WIFEXITED(status));
        CHECK_EQ(WEXITSTATUS(status), 0);
        while (stub_receive(&a.s, 300)) /* the child's queries */
            ;
    }

    struct lookup l = {.ctx = cctx_with_timeout(cctx_background(), CCTX_SEC(20), NULL),
                       .node = "fourth.example."};
    CHECK(pthread_create(&l.thread, NULL, lookup_thread, &l) == 0);
    real_sleep_ms(100); /* most likely waiting for a slot by now; either way it must resolve */
    CHECK(cctx__resolve_in_flight() <= 2);
    stub_answer(&a.s, false); /* the held lookups' queries: their slots free */
    pthread_t answerer;
    CHECK(pthread_create(&answerer, NULL, answer_loop, &a) == 0);
    CHECK(pthread_join(l.thread, NULL) == 0);
    CHECK_EQ(l.rc, 0);
    int64_t end = real_now() + CCTX_SEC(20);
    while (cctx__resolve_in_flight() > 0) {
        CHECK(real_now() < end);
        real_sleep_ms(1);
    }
    atomic_store_explicit(&a.stop, true, memory_order_release);
    CHECK(pthread_join(answerer, NULL) == 0);
    cctx_release(l.ctx);
    close(a.s.fd);
}

TEST(resolve_helpers_are_bounded)
{
    free(run_isolated("resolve_helpers_bounded_body"));
}

/* ---- without a network ------------------------------------------------------------- */

TEST(resolve_bad_input)
{
    struct addrinfo *res = NULL;
    errno = 0;
    CHECK_EQ(cctx_getaddrinfo(NULL, "localhost", NULL, NULL, &res), EAI_SYSTEM);
    CHECK_EQ(errno, EINVAL);
    errno = 0;
    CHECK_EQ(cctx_getaddrinfo(cctx_background(), "localhost", NULL, NULL, NULL), EAI_SYSTEM);
    CHECK_EQ(errno, EINVAL);
    CHECK_ERRNO(cctx_dial(NULL, "localhost", "80", SOCK_STREAM), -1, EINVAL);
    CHECK_ERRNO(cctx_dial(cctx_background(), NULL, "80", SOCK_STREAM), -1, EINVAL);
    CHECK_ERRNO(cctx_dial(cctx_background(), "localhost", "80", 12345), -1, EINVAL);
    /* An ended context starts nothing. */
    cctx_cancel_t *cancel;
    cctx_t *ctx = cctx_with_cancel(cctx_background(), &cancel);
    cctx_cancel(cancel);
    errno = 0;
    CHECK_EQ(cctx_getaddrinfo(ctx, "localhost", "80", NULL, &res), EAI_SYSTEM);
    CHECK_EQ(errno, ECANCELED);
    CHECK(res == NULL);
    CHECK_ERRNO(cctx_dial(ctx, "127.0.0.1", "80", SOCK_STREAM), -1, ECANCELED);
    CHECK_EQ(cctx__resolve_in_flight(), 0);
    cctx_release(ctx);
    /* getaddrinfo's own codes come through. */
    struct addrinfo hints = {.ai_flags = AI_NUMERICHOST};
    CHECK_EQ(cctx_getaddrinfo(cctx_background(), "not a number", NULL, &hints, &res),
             EAI_NONAME);
    hints = (struct addrinfo){.ai_socktype = SOCK_STREAM};
    CHECK_EQ(cctx_getaddrinfo(cctx_background(), "127.0.0.1", "no-such-service-x", &hints, &res),
             EAI_SERVICE);
    CHECK_ERRNO(cctx_dial(cctx_background(), "127.0.0.1", "no-such-service-x", SOCK_STREAM),
                -1, EINVAL);
    CHECK_ERRNO(cctx_dial(cctx_background(), "127.0.0.1", NULL, SOCK_STREAM), -1, EINVAL);
}

/* A port has 16 bits: glibc cut 99999 to 34463 and connected there. */
TEST(resolve_numeric_service_past_65535_is_refused)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    static const char *const refused[] = {"65536",  "99999",  "4294967377", "99999999999999999999",
                                          "+99999", " 99999", "-1"};
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        CHECK_EQ(cctx_getaddrinfo(cctx_background(), "127.0.0.1", refused[i], &hints, &res),
                 EAI_SERVICE);
        CHECK(res == NULL);
        CHECK_ERRNO(cctx_dial(cctx_background(), "127.0.0.1", refused[i], SOCK_STREAM), -1, EINVAL);
    }
    static const struct {
        const char *service;
        int port;
    } taken[] = {{"65535", 65535}, {"0000080", 80}, {"0", 0}, {"-0", 0}};
    for (size_t i = 0; i < sizeof taken / sizeof *taken; i++) {
        CHECK_EQ(cctx_getaddrinfo(cctx_background(), "127.0.0.1", taken[i].service, &hints, &res),
                 0);
        CHECK_EQ(ntohs(((struct sockaddr_in *)res->ai_addr)->sin_port), taken[i].port);
        freeaddrinfo(res);
    }
}

TEST(resolve_numeric_and_localhost)
{
    cctx_t *ctx = cctx_with_timeout(cctx_background(), CCTX_SEC(30), NULL);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    CHECK_EQ(cctx_getaddrinfo(ctx, "127.0.0.1", "8080", &hints, &res), 0);
    CHECK(res->ai_family == AF_INET);
    CHECK_EQ(ntohs(((struct sockaddr_in *)res->ai_addr)->sin_port), 8080);
    freeaddrinfo(res);
    CHECK_EQ(cctx_getaddrinfo(ctx, "::1", "80", &hints, &res), 0);
    CHECK(res->ai_family == AF_INET6);
    freeaddrinfo(res);
    hints.ai_flags = AI_PASSIVE;
    CHECK_EQ(cctx_getaddrinfo(ctx, NULL, "80", &hints, &res), 0);
    freeaddrinfo(res);
    CHECK_EQ(cctx__resolve_in_flight(), 0); /* none of these took a thread */
    /* A name: on a helper thread, through /etc/hosts. */
    hints = (struct addrinfo){.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
    CHECK_EQ(cctx_getaddrinfo(ctx, "localhost", "80", &hints, &res), 0);
    CHECK_EQ(ntohl(((struct sockaddr_in *)res->ai_addr)->sin_addr.s_addr), INADDR_LOOPBACK);
    freeaddrinfo(res);
    int64_t end = real_now() + CCTX_SEC(10); /* the helper's last steps after the signal */
    while (cctx__resolve_in_flight() > 0) {
        CHECK(real_now() < end);
        sched_yield();
    }
    cctx_release(ctx);
}

static int fail_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg)
{
    (void)t, (void)a, (void)fn, (void)arg;
    return EAGAIN;
}

TEST(resolve_no_thread)
{
    cctx__io_create_fn real =
        atomic_exchange_explicit(&cctx__io_thread_create, fail_create, memory_order_relaxed);
    struct addrinfo *res = NULL;
    errno = 0;
    CHECK_EQ(cctx_getaddrinfo(cctx_background(), "localhost", "80", NULL, &res), EAI_SYSTEM);
    CHECK_EQ(errno, EAGAIN);
    CHECK_ERRNO(cctx_dial(cctx_background(), "localhost", "80", SOCK_STREAM), -1, EAGAIN);
    CHECK_EQ(cctx__resolve_in_flight(), 0);
    atomic_store_explicit(&cctx__io_thread_create, real, memory_order_relaxed);
}

/* ---- without a waker thread -------------------------------------------------------- */

/* Whether this process's waker (started by its first cctx_cond_wait, then
 * kept) runs already, as after an earlier test in the same process: with
 * thread creation refused, cctx_cond_wait fails at once (EAGAIN) without
 * one, and waits for its ctx's deadline with one. */
static bool waker_running(void)
{
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
    cctx_t *ctx = cctx_with_timeout(cctx_background(), CCTX_SEC(1), NULL);
    cctx__io_create_fn real =
        atomic_exchange_explicit(&cctx__io_thread_create, fail_create, memory_order_relaxed);
    CHECK_EQ(pthread_mutex_lock(&m), 0);
    int r = cctx_cond_wait(ctx, &cond, &m);
    CHECK_EQ(pthread_mutex_unlock(&m), 0);
    atomic_store_explicit(&cctx__io_thread_create, real, memory_order_relaxed);
    cctx_release(ctx);
    return r != EAGAIN;
}

/* The thread-creation hook of the tests below. The first creation, the
 * lookup's helper, is held: its thread is started only when the test lets it
 * go, a resolver that answers as late as the test likes. The next, the
 * waker of cctx_cond_wait, is refused (EAGAIN, as at a thread limit), once
 * ctx has ended: canceled, or its deadline waited for. */
static struct {
    atomic_int creates;
    void *(*fn)(void *);
    void *arg;
    cctx_t *ctx;
    cctx_cancel_t *cancel; /* NULL: wait for ctx's deadline */
} held;

static int hold_helper_refuse_waker(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *),
                                    void *arg)
{
    (void)t, (void)a;
    if (atomic_fetch_add(&held.creates, 1) == 0) {
        held.fn = fn;
        held.arg = arg;
        return 0;
    }
    if (held.cancel)
        cctx_cancel(held.cancel);
    else
        CHECK_EQ(cctx_wait(held.ctx, CCTX_SEC(10)), ETIMEDOUT);
    return EAGAIN;
}

/* The lookup returns at once, with the waker's error, though its helper has
 * not answered; the abandoned helper, let go, frees the job and its result
 * (ASan's leak check at exit sees it). */
static void lookup_without_waker(void)
{
    atomic_store(&held.creates, 0);
    cctx__io_create_fn real = atomic_exchange_explicit(
        &cctx__io_thread_create, hold_helper_refuse_waker, memory_order_relaxed);
    struct addrinfo *res = NULL;
    errno = 0;
    CHECK_EQ(cctx_getaddrinfo(held.ctx, "localhost", "80", NULL, &res), EAI_SYSTEM);
    CHECK_EQ(errno, EAGAIN);
    CHECK(res == NULL);
    atomic_store_explicit(&cctx__io_thread_create, real, memory_order_relaxed);
    CHECK_EQ(atomic_load(&held.creates), 2); /* the helper's, then the waker's */
    CHECK(cctx_err(held.ctx) != 0);
    CHECK_EQ(cctx__resolve_in_flight(), 1);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, held.fn, held.arg), 0);
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_EQ(cctx__resolve_in_flight(), 0);
}

TEST(resolve_without_a_waker_a_canceled_lookup_returns_at_once)
{
    if (waker_running())
        SKIP("the waker of cctx_cond_wait already runs in this process");
    held.ctx = cctx_with_cancel(cctx_background(), &held.cancel);
    run_with_watchdog(lookup_without_waker, 10);
    CHECK_EQ(cctx_err(held.ctx), ECANCELED);
    cctx_release(held.ctx);
}

TEST(resolve_without_a_waker_an_expired_lookup_returns_at_once)
{
    if (waker_running())
        SKIP("the waker of cctx_cond_wait already runs in this process");
    held.ctx = cctx_with_timeout(cctx_background(), CCTX_MSEC(100), NULL);
    held.cancel = NULL;
    run_with_watchdog(lookup_without_waker, 10);
    CHECK_EQ(cctx_err(held.ctx), ETIMEDOUT);
    cctx_release(held.ctx);
}

/* ---- a dial whose ctx ends before a socket fails ----------------------------------- */

/* The thread-creation hook of the test below: the lookup's helper runs at
 * once, on the calling thread, so the name is resolved; then ctx is canceled
 * and every descriptor used up, so the dial's next socket() fails. */
static struct {
    atomic_int creates;
    cctx_cancel_t *cancel;
    struct fds_used_up fds;
} late;

static int resolve_cancel_use_up_fds(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *),
                                     void *arg)
{
    (void)t, (void)a;
    atomic_fetch_add(&late.creates, 1);
    fn(arg);
    cctx_cancel(late.cancel);
    fds_use_up(&late.fds);
    return 0;
}

/* On a thread of its own: the helper names the thread it runs on. */
static void dial_canceled_then_no_socket(void)
{
    cctx_t *ctx = cctx_with_cancel(cctx_background(), &late.cancel);
    atomic_store(&late.creates, 0);
    cctx__io_create_fn real = atomic_exchange_explicit(
        &cctx__io_thread_create, resolve_cancel_use_up_fds, memory_order_relaxed);
    errno = 0;
    int fd = cctx_dial(ctx, "localhost", "80", SOCK_STREAM);
    int err = errno;
    fds_give_back(&late.fds);
    atomic_store_explicit(&cctx__io_thread_create, real, memory_order_relaxed);
    CHECK_EQ(atomic_load(&late.creates), 1);
    CHECK_EQ(fd, -1);
    CHECK_EQ(err, ECANCELED); /* not socket()'s EMFILE */
    CHECK_EQ(cctx__resolve_in_flight(), 0);
    cctx_release(ctx);
}

TEST(resolve_dial_canceled_before_a_socket_fails_reports_the_cancel)
{
    run_with_watchdog(dial_canceled_then_no_socket, 20);
}

static int listener(int family, int *port)
{
    int l = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(l >= 0);
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t len;
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof *a;
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        len = sizeof *a;
    }
    CHECK(bind(l, (struct sockaddr *)&ss, len) == 0);
    CHECK(listen(l, 8) == 0);
    CHECK(getsockname(l, (struct sockaddr *)&ss, &len) == 0);
    *port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                    : ((struct sockaddr_in6 *)&ss)->sin6_port);
    return l;
}

TEST(resolve_dial_local)
{
    cctx_t *ctx = cctx_with_timeout(cctx_background(), CCTX_SEC(30), NULL);
    int port;
    int l = listener(AF_INET, &port);
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    /* A numeric host, then a name whose first address (::1, on most
     * systems) may refuse: the next one is tried. */
    const char *hosts[] = {"127.0.0.1", "localhost"};
    for (int i = 0; i < 2; i++) {
        int fd = cctx_dial(ctx, hosts[i], service, SOCK_STREAM);
        if (fd < 0)
            fprintf(stderr, "dial %s: %s\n", hosts[i], strerror(errno));
        CHECK(fd >= 0);
        CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        CHECK(!(fcntl(fd, F_GETFL) & O_NONBLOCK));
        int a = cctx_accept(ctx, l, NULL, NULL);
        CHECK(a >= 0);
        CHECK(write(fd, "ping", 4) == 4);
        char buf[4];
        CHECK(cctx_recv(ctx, a, buf, 4, MSG_WAITALL) == 4);
        CHECK(memcmp(buf, "ping", 4) == 0);
        close(a);
        close(fd);
    }
    close(l);
    /* Nobody listens now: the connect's error. */
    CHECK_ERRNO(cctx_dial(ctx, "127.0.0.1", service, SOCK_STREAM), -1, ECONNREFUSED);
    /* A connected UDP socket (0 is SOCK_STREAM, SOCK_DGRAM given here). */
    int u = cctx_dial(ctx, "127.0.0.1", service, SOCK_DGRAM);
    CHECK(u >= 0);
    close(u);
    cctx_release(ctx);
}
