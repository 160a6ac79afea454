/* SPDX-License-Identifier: MIT */
/*
 * Deadlines from the network: the grpc-timeout header (or a configured
 * name), capped by the server's and the route's maximum, malformed values,
 * spent budgets, and the deadline middleware.
 */
#include "harness.h"
#include "mhd_support.h"
#include "support.h"

static struct http_resp r;

static int64_t sent; /* when the test sent the request (real clock) */

/* The handler's context ends with ETIMEDOUT, 504 and msg, roughly `ms`
 * after the request was sent (not before, within a generous bound). The
 * budgets in these tests are a few hundred milliseconds: enough for a
 * worker to take the request first even on a loaded machine under
 * ThreadSanitizer, which the tests need (a request whose budget is spent
 * before its handler starts is answered 504 without the handler). */
static void check_timed_out(struct probe *p, const char *msg, int ms)
{
    CHECK(probe_wait_ended(p, 1, 5000));
    pthread_mutex_lock(&p->mu);
    CHECK_EQ(p->cause.err, ETIMEDOUT);
    CHECK_EQ(p->cause.code, 504);
    CHECK_STR(p->msg, msg);
    int64_t took = p->t_ended - sent;
    CHECK(took >= CCTX_MSEC(ms));
    CHECK(took < CCTX_MSEC(ms) + CCTX_SEC(2));
    pthread_mutex_unlock(&p->mu);
}

TEST(mhd_deadline_from_header)
{
    struct probe p;
    probe_init(&p);
    p.block = true;
    cctx_mhd_t *s = start_probe_server(&p, NULL);
    sent = real_now();
    http_get(cctx_mhd_port(s), "/d", "grpc-timeout: 500m\r\n", &r);
    CHECK_EQ(r.status, 200);
    check_timed_out(&p, "deadline from grpc-timeout: 500m", 500);
    CHECK(p.remaining <= CCTX_MSEC(500) && p.remaining > 0);
    cctx_mhd_free(s);
    probe_destroy(&p);
}

TEST(mhd_deadline_header_name_configurable)
{
    struct probe p;
    probe_init(&p);
    p.block = true;
    cctx_mhd_options_t o = CCTX_MHD_OPTIONS_INIT;
    o.deadline_header = "x-budget";
    cctx_mhd_t *s = start_probe_server(&p, &o);
    sent = real_now();
    http_get(cctx_mhd_port(s), "/d", "grpc-timeout: 1n\r\nx-budget: 400m\r\n", &r);
    CHECK_EQ(r.status, 200);
    check_timed_out(&p, "deadline from x-budget: 400m", 400);
    cctx_mhd_free(s);
    probe_destroy(&p);
}

TEST(mhd_deadline_server_cap)
{
    struct probe p;
    probe_init(&p);
    p.block = true;
    cctx_mhd_options_t o = CCTX_MHD_OPTIONS_INIT;
    o.max_timeout = CCTX_MSEC(400);
    cctx_mhd_t *s = start_probe_server(&p, &o);
    sent = real_now();
    http_get(cctx_mhd_port(s), "/d", "grpc-timeout: 10S\r\n", &r);
    CHECK_EQ(r.status, 200);
    check_timed_out(&p, "deadline from server maximum: 400m", 400);
    cctx_mhd_free(s);
    probe_destroy(&p);
}

TEST(mhd_deadline_server_cap_without_header)
{
    struct probe p;
    probe_init(&p);
    p.block = true;
    cctx_mhd_options_t o = CCTX_MHD_OPTIONS_INIT;
    o.max_timeout = CCTX_MSEC(300);
    cctx_mhd_t *s = start_probe_server(&p, &o);
    sent = real_now();
    http_get(cctx_mhd_port(s), "/d", "", &r);
    check_timed_out(&p, "deadline from server maximum: 300m", 300);
    cctx_mhd_free(s);
    probe_destroy(&p);
}

TEST(mhd_deadline_route_cap)
{
    struct probe p, q;
    probe_init(&p);
    probe_init(&q);
    p.block = q.block = true;
    cctx_mhd_options_t o = CCTX_MHD_OPTIONS_INIT;
    o.max_timeout = CCTX_SEC(5);
    cctx_mhd_t *s = start_probe_server(&p, &o);
    CHECK_EQ(cctx_mhd_route(s, "GET", "/fast", probe_handler, &q, CCTX_MSEC(350)), 0);
    sent = real_now();
    http_get(cctx_mhd_port(s), "/fast", "grpc-timeout: 2S\r\n", &r);
    CHECK_EQ(r.status, 200);
    check_timed_out(&q, "deadline from route maximum: 350m", 350);
    CHECK_STR(q.route, "/fast");
    CHECK_EQ(p.started, 0);
    /* A shorter incoming deadline wins over the route's. */
    sent = real_now();
    http_get(cctx_mhd_port(s), "/other", "grpc-timeout: 250m\r\n", &r);
    check_timed_out(&p, "deadline from grpc-timeout: 250m", 250);
    CHECK_STR(p.route, "");
    cctx_mhd_free(s);
    probe_destroy(&p);
    probe_destroy(&q);
}

TEST(mhd_deadline_malformed_400)
{
    struct probe p;
    probe_init(&p);
    cctx_mhd_t *s = start_probe_server(&p, NULL);
    const char *bad[] = {"abc", "100", "-5m", "123456789m", "1mm", "1 m", "m", "", "1x"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char h[64];
        snprintf(h, sizeof h, "grpc-timeout: %s\r\n", bad[i]);
        sent = real_now();
        http_get(cctx_mhd_port(s), "/d", h, &r);
        CHECK_EQ(r.status, 400);
        CHECK(strstr(r.body, "malformed grpc-timeout header") != NULL);
    }
    CHECK_EQ(p.started, 0);
    cctx_mhd_free(s);
    probe_destroy(&p);
}

/* A header name that is no token: whitespace before its colon, which
 * libmicrohttpd keeps in the name (a deadline sent so would otherwise be no
 * deadline at all), or a folded line that libmicrohttpd runs into the name
 * of the line before. HTTP/1.1 has the server answer 400. */
TEST(mhd_header_name_not_a_token_400)
{
    struct probe p;
    probe_init(&p);
    cctx_mhd_t *s = start_probe_server(&p, NULL);
    const char *bad[] = {"grpc-timeout : 1S\r\n", "grpc-timeout\t: 1S\r\n", "x-other : v\r\n",
                         "x-a: y\r\n grpc-timeout: 1S\r\n"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        http_get(cctx_mhd_port(s), "/d", bad[i], &r);
        CHECK_EQ(r.status, 400);
        CHECK(strstr(r.body, "malformed header name") != NULL);
    }
    CHECK_EQ(p.started, 0);
    http_get(cctx_mhd_port(s), "/d", "x-other: v\r\n", &r);
    CHECK_EQ(r.status, 200);
    cctx_mhd_free(s);
    probe_destroy(&p);
}

/* Whitespace after a value is not part of it (libmicrohttpd leaves it in). */
TEST(mhd_deadline_with_whitespace_after_its_value)
{
    struct probe p;
    probe_init(&p);
    p.block = true;
    cctx_mhd_t *s = start_probe_server(&p, NULL);
    sent = real_now();
    http_get(cctx_mhd_port(s), "/d", "grpc-timeout: 300m \t\r\n", &r);
    CHECK_EQ(r.status, 200);
    check_timed_out(&p, "deadline from grpc-timeout: 300m", 300);
    cctx_mhd_free(s);
    probe_destroy(&p);
}

TEST(mhd_budget_spent_504)
{
    struct probe p;
    probe_init(&p);
    cctx_mhd_t *s = start_probe_server(&p, NULL);
    sent = real_now();
    http_get(cctx_mhd_port(s), "/d", "grpc-timeout: 0n\r\n", &r);
    CHECK_EQ(r.status, 504);
    CHECK(strstr(r.body, "deadline from grpc-timeout: 0n") != NULL);
    CHECK_EQ(p.started, 0);
    cctx_mhd_free(s);
    probe_destroy(&p);
}

TEST(mhd_min_budget_504)
{
    struct probe p;
    probe_init(&p);
    cctx_mhd_t *s = start_probe_server(&p, NULL);
    CHECK_EQ(cctx_mhd_use_min_budget(s, CCTX_SEC(5)), 0);
    sent = real_now();
    http_get(cctx_mhd_port(s), "/d", "grpc-timeout: 1S\r\n", &r);
    CHECK_EQ(r.status, 504);
    CHECK(strstr(r.body, "deadline budget too small") != NULL);
    CHECK_EQ(p.started, 0);
    sent = real_now();
    http_get(cctx_mhd_port(s), "/d", "grpc-timeout: 20S\r\n", &r);
    CHECK_EQ(r.status, 200);
    sent = real_now();
    http_get(cctx_mhd_port(s), "/d", "", &r); /* no deadline: passes */
    CHECK_EQ(r.status, 200);
    CHECK_EQ(p.started, 2);
    cctx_mhd_free(s);
    probe_destroy(&p);
}

/* A real clock leaves nanoseconds over: the budget left reads in whole
 * milliseconds, rounded down, as docs/mhd.md shows it ("10m left, 50m
 * needed"), not as "9999733708n left". */
TEST(mhd_min_budget_message_in_milliseconds)
{
    struct probe p;
    probe_init(&p);
    cctx_mhd_t *s = start_probe_server(&p, NULL);
    CHECK_EQ(cctx_mhd_use_min_budget(s, CCTX_SEC(20)), 0);
    sent = real_now();
    http_get(cctx_mhd_port(s), "/d", "grpc-timeout: 10S\r\n", &r);
    CHECK_EQ(r.status, 504);
    long long left = 0;
    int end = 0;
    CHECK_EQ(sscanf(r.body, "deadline budget too small: %lldm left, 20S needed\n%n", &left, &end),
             1);
    CHECK(end > 0 && r.body[end] == '\0');
    CHECK(left > 0 && left < 10000);
    CHECK_EQ(p.started, 0);
    cctx_mhd_free(s);
    probe_destroy(&p);
}

/* Ends the server's parent while the chain runs, as an upstream cancel or
 * a shutdown that comes while a slow validator (an auth look-up) runs. */
static int end_parent(cctx_t *ctx, cctx_mhd_request_t *req, char *msg, size_t size, void *arg)
{
    (void)ctx, (void)req, (void)msg, (void)size;
    cctx_cancel_cause(arg, 0, "upstream gone");
    return 0;
}

/* min_budget judges the budget, not why a request ended: a request that
 * has no deadline at all, ended by its parent before min_budget ran, gets
 * its ending's answer (503 and the parent's message), not 504 "deadline
 * budget too small: 0n left" that would send a client looking for a
 * deadline it never set. */
TEST(mhd_min_budget_leaves_an_ended_request_its_own_answer)
{
    struct probe p;
    probe_init(&p);
    cctx_cancel_t *cancel;
    cctx_t *parent = cctx_with_cancel(cctx_background(), &cancel);
    CHECK(parent != NULL);
    cctx_mhd_t *s = cctx_mhd_start(parent, NULL, probe_handler, &p);
    CHECK(s != NULL);
    CHECK_EQ(cctx_mhd_use(s, end_parent, cancel), 0);
    CHECK_EQ(cctx_mhd_use_min_budget(s, CCTX_MSEC(50)), 0);
    http_get(cctx_mhd_port(s), "/d", "", &r); /* no deadline header */
    CHECK_EQ(r.status, 503);
    CHECK_STR(r.body, "upstream gone\n");
    CHECK_EQ(p.started, 0);
    cctx_mhd_free(s);
    cctx_release(parent);
    probe_destroy(&p);
}

/* cap_deadline narrows an ended request's context to a child born ended by
 * its parent: the answer stays the parent's, not the cap's 504. */
TEST(mhd_cap_deadline_leaves_an_ended_request_its_own_answer)
{
    struct probe p;
    probe_init(&p);
    cctx_cancel_t *cancel;
    cctx_t *parent = cctx_with_cancel(cctx_background(), &cancel);
    CHECK(parent != NULL);
    cctx_mhd_t *s = cctx_mhd_start(parent, NULL, probe_handler, &p);
    CHECK(s != NULL);
    CHECK_EQ(cctx_mhd_use(s, end_parent, cancel), 0);
    CHECK_EQ(cctx_mhd_use_cap_deadline(s, CCTX_MSEC(50)), 0);
    CHECK_EQ(cctx_mhd_use_min_budget(s, CCTX_MSEC(10)), 0);
    http_get(cctx_mhd_port(s), "/d", "", &r);
    CHECK_EQ(r.status, 503);
    CHECK_STR(r.body, "upstream gone\n");
    CHECK_EQ(p.started, 0);
    cctx_mhd_free(s);
    cctx_release(parent);
    probe_destroy(&p);
}

TEST(mhd_require_deadline_400)
{
    struct probe p;
    probe_init(&p);
    cctx_mhd_t *s = start_probe_server(&p, NULL);
    CHECK_EQ(cctx_mhd_use_require_deadline(s), 0);
    sent = real_now();
    http_get(cctx_mhd_port(s), "/d", "", &r);
    CHECK_EQ(r.status, 400);
    CHECK_STR(r.body, "grpc-timeout header required\n");
    CHECK_EQ(p.started, 0);
    sent = real_now();
    http_get(cctx_mhd_port(s), "/d", "grpc-timeout: 1S\r\n", &r);
    CHECK_EQ(r.status, 200);
    cctx_mhd_free(s);
    probe_destroy(&p);
}

TEST(mhd_cap_deadline_middleware)
{
    struct probe p;
    probe_init(&p);
    p.block = true;
    cctx_mhd_t *s = start_probe_server(&p, NULL);
    CHECK_EQ(cctx_mhd_use_cap_deadline(s, CCTX_MSEC(300)), 0);
    sent = real_now();
    http_get(cctx_mhd_port(s), "/capped", "grpc-timeout: 3S\r\n", &r);
    CHECK_EQ(r.status, 200);
    check_timed_out(&p, "deadline from middleware cap: 300m", 300);
    CHECK_STR(p.name, "GET /capped");
    cctx_mhd_free(s);
    probe_destroy(&p);
}

/* Waits for its context to end and returns without answering anything of
 * its own; with arg non-NULL it sets that status first. */
static void give_up(cctx_t *ctx, cctx_mhd_request_t *req, cctx_mhd_response_t *resp, void *arg)
{
    (void)req;
    cctx_wait(ctx, CCTX_SEC(10));
    if (arg)
        cctx_mhd_status(resp, *(const int *)arg);
}

TEST(mhd_handler_that_gives_up_answers_the_deadline)
{
    static const int teapot = 418;
    cctx_mhd_t *s = cctx_mhd_start(cctx_background(), NULL, give_up, NULL);
    CHECK(s != NULL);
    CHECK_EQ(cctx_mhd_route(s, "GET", "/own", give_up, (void *)&teapot, 0), 0);
    http_get(cctx_mhd_port(s), "/d", "grpc-timeout: 50m\r\n", &r);
    CHECK_EQ(r.status, 504);
    CHECK(strstr(r.body, "deadline from grpc-timeout: 50m") != NULL);
    /* A status the handler set is its answer, whatever ended the context. */
    http_get(cctx_mhd_port(s), "/own", "grpc-timeout: 50m\r\n", &r);
    CHECK_EQ(r.status, 418);
    cctx_mhd_free(s);
}
