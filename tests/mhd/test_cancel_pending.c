/* SPDX-License-Identifier: MIT */
/*
 * cctx_mhd_start, cctx_mhd_shutdown and cctx_mhd_free on a thread with a
 * pthread_cancel pending. The shutdown waits on condition variables and
 * joins libmicrohttpd's and the server's threads holding the server's
 * locks, all cancellation points: a thread cancelled there died with the
 * shutdown half done and its locks held, so the free that followed (or any
 * second shutdown) waited for ever, and the start's cancellation points
 * (the listening socket's set-up, the threads' start) left what it had
 * made behind. Each call now ends as it would have, and the cancel acts at
 * the thread's next cancellation point.
 */
#define _GNU_SOURCE
#include "harness.h"
#include "mhd_support.h"
#include "support.h"

#include <errno.h>
#include <pthread.h>

static void hello(cctx_t *ctx, cctx_mhd_request_t *req, cctx_mhd_response_t *resp, void *arg)
{
    (void)ctx;
    (void)req;
    (void)arg;
    cctx_mhd_printf(resp, "hello");
}

struct server_call {
    cctx_mhd_t *server;
    int err;
    cctx_mhd_options_t opts;
};

static void start_it(void *arg)
{
    struct server_call *c = arg;
    c->server = cctx_mhd_start(cctx_background(), &c->opts, hello, NULL);
    c->err = c->server ? 0 : errno;
}

static void shutdown_it(void *arg)
{
    struct server_call *c = arg;
    c->err = cctx_mhd_shutdown(c->server, 0);
}

static void free_it(void *arg)
{
    struct server_call *c = arg;
    cctx_mhd_free(c->server);
}

TEST(mhd_start_with_a_thread_cancel_pending_returns)
{
    struct server_call c = {.opts = CCTX_MHD_OPTIONS_INIT};
    CHECK(returns_with_cancel_pending(start_it, &c));
    CHECK(c.server);

    /* A start that fails (the port is taken) closes what it opened: before,
     * the thread died in that close, with the socket and the server's
     * memory left behind. (Before any connection to the server, whose
     * descriptors would close when libmicrohttpd gets to it.) */
    struct server_call busy = {.opts = CCTX_MHD_OPTIONS_INIT};
    busy.opts.port = cctx_mhd_port(c.server);
    int before = count_open_fds();
    CHECK(returns_with_cancel_pending(start_it, &busy));
    CHECK(!busy.server);
    CHECK_EQ(busy.err, EADDRINUSE);
    CHECK_EQ(count_open_fds(), before);

    struct http_resp r;
    http_get(cctx_mhd_port(c.server), "/", NULL, &r);
    CHECK_EQ(r.status, 200);
    cctx_mhd_free(c.server);
}

TEST(mhd_shutdown_with_a_thread_cancel_pending_returns)
{
    struct server_call c = {.server = cctx_mhd_start(cctx_background(), NULL, hello, NULL),
                            .err = -1};
    CHECK(c.server);
    uint16_t port = cctx_mhd_port(c.server);
    /* Before, the thread died in the shutdown's join of libmicrohttpd's
     * thread with the shutdown lock held: the free below waited for ever. */
    CHECK(returns_with_cancel_pending(shutdown_it, &c));
    CHECK_EQ(c.err, 0);
    CHECK(conn_refused(port));
    cctx_mhd_free(c.server);
}

TEST(mhd_free_with_a_thread_cancel_pending_returns)
{
    struct server_call c = {.server = cctx_mhd_start(cctx_background(), NULL, hello, NULL)};
    CHECK(c.server);
    uint16_t port = cctx_mhd_port(c.server);
    int before = count_open_fds();
    CHECK(returns_with_cancel_pending(free_it, &c));
    CHECK(conn_refused(port));
    CHECK(count_open_fds() < before);
}
