/* SPDX-License-Identifier: MIT */
/*
 * A server under a grace context: a request that came in before the grace
 * context's parent ended keeps its own deadline, yet ends with the grace
 * context; the min_budget validator, which runs when a worker takes the
 * request, counts that end. Without a grace context it counts to the
 * nanosecond, not to the unit the grpc-timeout text rounds up to.
 */
#include "harness.h"
#include "mhd_support.h"
#include "support.h"

#include <cctx/testing.h>

#include <stdatomic.h>
#include <unistd.h>

static int hold[2];             /* a pipe: the /hold handler returns once a byte comes */
static atomic_int hold_entered; /* the /hold handler runs: past its min_budget check */

static void hold_handler(cctx_t *ctx, cctx_mhd_request_t *req, cctx_mhd_response_t *resp, void *arg)
{
    (void)ctx, (void)req, (void)arg;
    atomic_store(&hold_entered, 1);
    char byte;
    CHECK_EQ(read(hold[0], &byte, 1), 1);
    cctx_mhd_printf(resp, "held\n");
}

static void ok_handler(cctx_t *ctx, cctx_mhd_request_t *req, cctx_mhd_response_t *resp, void *arg)
{
    (void)ctx, (void)req, (void)arg;
    cctx_mhd_printf(resp, "ok\n");
}

TEST(mhd_min_budget_counts_a_grace_context_end)
{
    CHECK_EQ(pipe(hold), 0);
    cctx_cancel_t *pc;
    cctx_t *parent = cctx_with_cancel(cctx_background(), &pc);
    cctx_t *g = cctx_with_grace(parent, CCTX_SEC(5), NULL);
    cctx_mhd_options_t o = CCTX_MHD_OPTIONS_INIT;
    o.workers = 1; /* /b waits behind /hold */
    cctx_mhd_t *s = cctx_mhd_start(g, &o, ok_handler, NULL);
    CHECK(s != NULL);
    CHECK_EQ(cctx_mhd_route(s, "GET", "/hold", hold_handler, NULL, 0), 0);
    CHECK_EQ(cctx_mhd_use_min_budget(s, CCTX_SEC(10)), 0);

    static struct conn a, b;
    conn_open(&a, cctx_mhd_port(s));
    atomic_store(&hold_entered, 0);
    conn_send(&a, "GET /hold HTTP/1.1\r\nHost: t\r\n\r\n");
    /* Its handler, not only its context: a worker that took /hold after the
     * cancel below would find 5 s left and refuse it too. */
    for (int i = 0; i < 10000 && !atomic_load(&hold_entered); i++)
        usleep(1000);
    CHECK(atomic_load(&hold_entered));
    /* /b's context is born with a minute, the grace context with no
     * deadline yet. */
    conn_open(&b, cctx_mhd_port(s));
    conn_send(&b, "GET /b HTTP/1.1\r\nHost: t\r\ngrpc-timeout: 60S\r\n\r\n");
    for (int i = 0; i < 10000 && !server_has_request(s, "GET /b"); i++)
        usleep(1000);
    CHECK(server_has_request(s, "GET /b"));

    /* The grace context, and /b with it, now end 5 s from here: less than
     * the 10 s /b needs. */
    cctx_cancel(pc);
    CHECK_EQ(write(hold[1], "x", 1), 1);
    static struct http_resp r;
    conn_read(&a, &r);
    CHECK_EQ(r.status, 200);
    conn_read(&b, &r);
    printf("/b: %d %s", r.status, r.body);
    CHECK_EQ(r.status, 504);
    CHECK(strstr(r.body, "deadline budget too small") != NULL);

    conn_close(&a);
    conn_close(&b);
    cctx_mhd_free(s);
    cctx_release(g);
    cctx_release(parent);
    close(hold[0]);
    close(hold[1]);
}

/* The request's own deadline, 200 s from its arrival, is what ends it; the
 * worker takes it half a millisecond later on the fake clock, with
 * 199.9995 s left: short of 200 s, though the budget as grpc-timeout text
 * (a millisecond's unit from 100 s) rounds up to 200 s. */
TEST(mhd_min_budget_exact_below_the_unit)
{
    CHECK_EQ(pipe(hold), 0);
    cctx_fake_clock_start(CCTX_SEC(1000));
    cctx_mhd_options_t o = CCTX_MHD_OPTIONS_INIT;
    o.workers = 1; /* /b waits behind /hold */
    cctx_mhd_t *s = cctx_mhd_start(cctx_background(), &o, ok_handler, NULL);
    CHECK(s != NULL);
    CHECK_EQ(cctx_mhd_route(s, "GET", "/hold", hold_handler, NULL, 0), 0);
    CHECK_EQ(cctx_mhd_use_min_budget(s, CCTX_SEC(200)), 0);

    static struct conn a, b;
    conn_open(&a, cctx_mhd_port(s));
    conn_send(&a, "GET /hold HTTP/1.1\r\nHost: t\r\n\r\n");
    for (int i = 0; i < 10000 && !server_has_request(s, "GET /hold"); i++)
        usleep(1000);
    CHECK(server_has_request(s, "GET /hold"));
    conn_open(&b, cctx_mhd_port(s));
    conn_send(&b, "GET /b HTTP/1.1\r\nHost: t\r\ngrpc-timeout: 200S\r\n\r\n");
    for (int i = 0; i < 10000 && !server_has_request(s, "GET /b"); i++)
        usleep(1000);
    CHECK(server_has_request(s, "GET /b"));

    cctx_fake_clock_advance(CCTX_USEC(500));
    CHECK_EQ(write(hold[1], "x", 1), 1);
    static struct http_resp r;
    conn_read(&a, &r);
    CHECK_EQ(r.status, 200);
    conn_read(&b, &r);
    printf("/b: %d %s", r.status, r.body);
    CHECK_EQ(r.status, 504);
    CHECK(strstr(r.body, "deadline budget too small: 199999m left, 200S needed") != NULL);

    conn_close(&a);
    conn_close(&b);
    cctx_fake_clock_stop();
    cctx_mhd_free(s);
    close(hold[0]);
    close(hold[1]);
}
