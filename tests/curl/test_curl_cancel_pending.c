/* SPDX-License-Identifier: MIT */
/*
 * The calls of cctx-curl on a thread with a pthread_cancel pending. libcurl
 * reaches cancellation points in all of them (connect, send, recv and poll
 * in a transfer; close in a cleanup), and a thread cancelled there unwound
 * through libcurl's own code, which has no cleanup handlers: a transfer
 * left its easy handle in the thread's multi handle with the header list
 * pointing into the dead thread's stack and the options never put back,
 * and the caller's result never written; a free left the handle and its
 * connections for good. Each call now ends as it would have, and the cancel
 * acts at the thread's next cancellation point.
 *
 * Each call runs on a thread of its own, with the cancel made pending while
 * cancellation is off and turned back on just before the call.
 */
#define _GNU_SOURCE
#include <cctx/curl.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "peer.h"
#include "support.h"

/* A socket that listens and never answers: a connect succeeds (into the
 * backlog), and the transfer then waits until its context ends. */
static int silent_listener(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_EQ(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    CHECK_EQ(listen(fd, 16), 0);
    socklen_t len = sizeof a;
    CHECK_EQ(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

struct transfer {
    cctx_t *ctx;
    CURL *easy;
    cctx_curl_multi_t *multi;
    int err;
    cctx_curl_result_t res;
};

static void perform_it(void *arg)
{
    struct transfer *t = arg;
    t->err = cctx_curl_perform(t->ctx, t->easy, NULL, &t->res);
}

TEST(curl_perform_with_a_thread_cancel_pending_returns)
{
    curl_test_begin();
    uint16_t port;
    int lfd = silent_listener(&port);
    struct transfer t = {.ctx = cctx_with_timeout(cctx_background(), CCTX_MSEC(200), NULL),
                         .easy = easy_for(NULL, "http://127.0.0.1:%u/x", (unsigned)port),
                         .err = -1};
    CHECK(returns_with_cancel_pending(perform_it, &t));
    CHECK_EQ(t.err, ETIMEDOUT);
    CHECK_EQ(t.res.err, ETIMEDOUT);
    /* The handle is whole and in no multi handle: it runs again here. */
    cctx_t *again = cctx_with_timeout(cctx_background(), CCTX_MSEC(100), NULL);
    CHECK_EQ(cctx_curl_perform(again, t.easy, NULL, NULL), ETIMEDOUT);
    cctx_release(again);
    curl_easy_cleanup(t.easy);
    cctx_release(t.ctx);
    close(lfd);
    curl_test_end();
}

/* The thread's multi handle is made by a transfer run with cancellation
 * off, and freed with the cancel pending. */
static void cleanup_it(void *arg)
{
    struct transfer *t = arg;
    CHECK_EQ(pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL), 0);
    t->err = cctx_curl_perform(t->ctx, t->easy, NULL, &t->res);
    CHECK_EQ(pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL), 0);
    cctx_curl_thread_cleanup();
}

TEST(curl_thread_cleanup_with_a_thread_cancel_pending_returns)
{
    curl_test_begin();
    uint16_t port;
    int lfd = silent_listener(&port);
    struct transfer t = {.ctx = cctx_with_timeout(cctx_background(), CCTX_MSEC(50), NULL),
                         .easy = easy_for(NULL, "http://127.0.0.1:%u/x", (unsigned)port),
                         .err = -1};
    /* Before, the thread died in the cleanup's close of libcurl's own
     * descriptors, with the handle already taken off the thread: it was
     * never freed, not even by the thread's exit. */
    CHECK(returns_with_cancel_pending(cleanup_it, &t));
    CHECK_EQ(t.err, ETIMEDOUT);
    curl_easy_cleanup(t.easy);
    cctx_release(t.ctx);
    close(lfd);
    curl_test_end();
}

static void run_it(void *arg)
{
    struct transfer *t = arg;
    t->err = cctx_curl_multi_run(t->multi, t->ctx);
}

TEST(curl_multi_run_with_a_thread_cancel_pending_returns)
{
    curl_test_begin();
    uint16_t port;
    int lfd = silent_listener(&port);
    struct transfer t = {.ctx = cctx_with_timeout(cctx_background(), CCTX_MSEC(200), NULL),
                         .easy = easy_for(NULL, "http://127.0.0.1:%u/x", (unsigned)port),
                         .multi = cctx_curl_multi_new(),
                         .err = -1};
    CHECK(t.multi);
    CHECK_EQ(cctx_curl_multi_add(t.multi, t.easy, NULL), 0);
    CHECK(returns_with_cancel_pending(run_it, &t));
    CHECK_EQ(t.err, ETIMEDOUT);
    CHECK_EQ(cctx_curl_multi_result(t.multi, 0)->err, ETIMEDOUT);
    /* The fan-out is not left running: the handle can be added again. */
    CHECK_EQ(cctx_curl_multi_add(t.multi, t.easy, NULL), 0);
    cctx_curl_multi_free(t.multi);
    curl_easy_cleanup(t.easy);
    cctx_release(t.ctx);
    close(lfd);
    curl_test_end();
}

static void free_it(void *arg)
{
    cctx_curl_multi_free(arg);
}

TEST(curl_multi_free_with_a_thread_cancel_pending_returns)
{
    curl_test_begin();
    cctx_curl_multi_t *m = cctx_curl_multi_new();
    CHECK(m);
    /* Before, the cleanup's close of libcurl's own descriptors ended the
     * thread, with the handle and the fan-out never freed. */
    CHECK(returns_with_cancel_pending(free_it, m));
    curl_test_end();
}

/* The thread's multi handle is made by a transfer that holds back a cancel
 * sent while it runs; the thread then returns without reaching another
 * cancellation point, and the handle is freed by the key's destructor with
 * the cancel pending and cancellation on. */
static void *perform_and_return(void *arg)
{
    struct transfer *t = arg;
    CHECK_EQ(pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL), 0);
    CHECK_EQ(pthread_cancel(pthread_self()), 0);
    CHECK_EQ(pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL), 0);
    t->err = cctx_curl_perform(t->ctx, t->easy, NULL, &t->res);
    return NULL;
}

TEST(curl_thread_exit_with_a_thread_cancel_pending_frees_the_multi_handle)
{
    curl_test_begin();
    uint16_t port;
    int lfd = silent_listener(&port);
    struct transfer t = {.ctx = cctx_with_timeout(cctx_background(), CCTX_MSEC(50), NULL),
                         .easy = easy_for(NULL, "http://127.0.0.1:%u/x", (unsigned)port),
                         .err = -1};
    int before = count_open_fds();
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, perform_and_return, &t), 0);
    void *ret;
    CHECK_EQ(pthread_join(th, &ret), 0);
    CHECK_EQ(t.err, ETIMEDOUT);
    /* Before, the destructor's first close ended the thread (joined as
     * canceled), and the handle's descriptors stayed open. */
    CHECK(ret == NULL);
    curl_easy_cleanup(t.easy);
    cctx_release(t.ctx); /* its done descriptor */
    /* That descriptor closes at the context's last release, which may be
     * the timer's: the firing that ended the transfer can hold the context
     * a moment longer on a loaded machine. Waited for, 10 s at most. */
    for (int ms = 0; ms < 10000 && count_open_fds() != before; ms++)
        real_sleep_ms(1);
    CHECK_EQ(count_open_fds(), before);
    close(lfd);
    curl_test_end();
}
