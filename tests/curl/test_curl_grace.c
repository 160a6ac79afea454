/* SPDX-License-Identifier: MIT */
/* Transfers under a grace context (cctx_with_grace) against Go's net/http
 * server: a context derived under it keeps its own later deadline, yet ends
 * when the grace context does, and the grpc-timeout sent (one call, a
 * fan-out) is the time to that end, not to the later deadline; a call made
 * once that end has passed, before its timer fired, sends nothing and
 * says when it found it passed, not the later deadline. */
#define _GNU_SOURCE
#include <cctx/curl.h>
#include <cctx/testing.h>

#include "harness.h"
#include "peer.h"
#include "support.h"

/* The grpc-timeout of the next "req /echo" line. */
static int64_t sent_timeout(struct peer *p)
{
    char line[1024], v[64];
    CHECK(peer_line(p, "req /echo", 2000, line, sizeof line, NULL));
    CHECK(peer_field(line, "grpc-timeout", v, sizeof v));
    int64_t t = -1;
    CHECK_EQ(cctx_grpc_timeout_parse(v, strlen(v), &t), 0);
    return t;
}

/* The bounds are wide: a slow machine (or a sanitizer) may take seconds
 * between the look at the budget and the peer's line; the budget without
 * the grace context's end would be a minute. */
TEST(curl_grace_grpc_timeout)
{
    curl_test_begin();
    struct peer p;
    peer_start_go(&p);
    cctx_cancel_t *pc;
    cctx_t *parent = cctx_with_timeout(cctx_background(), CCTX_SEC(3), &pc);
    cctx_t *g = cctx_with_grace(parent, CCTX_SEC(5), NULL);
    cctx_t *late = cctx_with_timeout(g, CCTX_SEC(60), NULL);
    struct body b;
    CURL *e = easy_for(&b, "%s/echo", p.url);
    cctx_curl_result_t res;

    /* The parent has not ended: the grace context ends at the latest 5 s
     * after the parent's deadline. */
    CHECK_EQ(cctx_curl_perform(late, e, NULL, &res), 0);
    int64_t t = sent_timeout(&p);
    printf("parent active: grpc-timeout %lld ns\n", (long long)t);
    CHECK(t <= CCTX_SEC(8));
    CHECK(t > CCTX_SEC(4));

    /* The parent ended: the grace context ends 5 s from here. */
    cctx_cancel(pc);
    CHECK_EQ(cctx_curl_perform(late, e, NULL, &res), 0);
    t = sent_timeout(&p);
    printf("parent ended: grpc-timeout %lld ns\n", (long long)t);
    CHECK(t <= CCTX_SEC(5));
    CHECK(t > CCTX_SEC(1));

    /* A fan-out: every transfer gets the same, bounded one. */
    cctx_curl_multi_t *m = cctx_curl_multi_new();
    CHECK(m);
    struct body mb[2];
    CURL *me[2];
    for (int i = 0; i < 2; i++) {
        me[i] = easy_for(&mb[i], "%s/echo", p.url);
        CHECK_EQ(cctx_curl_multi_add(m, me[i], NULL), i);
    }
    CHECK_EQ(cctx_curl_multi_run(m, late), 0);
    int64_t t0 = sent_timeout(&p), t1 = sent_timeout(&p);
    CHECK_EQ(t0, t1);
    CHECK(t0 <= CCTX_SEC(5));
    CHECK(t0 > CCTX_SEC(1));
    for (int i = 0; i < 2; i++)
        curl_easy_cleanup(me[i]);
    cctx_curl_multi_free(m);

    curl_easy_cleanup(e);
    cctx_release(late);
    cctx_release(g);
    cctx_release(parent);
    peer_stop(&p);
    curl_test_end();
}

struct in_window {
    cctx_t *g, *late;
    CURL *e;
    bool ran, unmarked;
    int ret;
    cctx_curl_result_t res;
    int64_t now;
};

/* An after-function of a deadline due at the same instant as the grace
 * context's end, fired first by the advance: the end has passed, and its
 * timer has not fired yet. */
static void call_in_window(void *arg)
{
    struct in_window *w = arg;
    w->ran = true;
    w->unmarked = cctx_err(w->g) == 0;
    w->now = cctx_now();
    w->ret = cctx_curl_perform(w->late, w->e, NULL, &w->res);
}

TEST(curl_grace_passed_unmarked)
{
    curl_test_begin();
    struct peer p;
    peer_start_go(&p);
    cctx_fake_clock_start(CCTX_SEC(1000));
    cctx_cancel_t *pc;
    cctx_t *parent = cctx_with_cancel(cctx_background(), &pc);
    cctx_t *g = cctx_with_grace(parent, CCTX_MSEC(50), NULL);
    cctx_t *late = cctx_with_timeout(g, CCTX_SEC(60), NULL);
    /* Armed before the grace context's end, at the same instant. */
    cctx_t *same = cctx_with_deadline(cctx_background(), CCTX_SEC(1000) + CCTX_MSEC(50), NULL);
    cctx_cancel(pc); /* the grace context ends at 1000.05 s */
    struct in_window w = {.g = g, .late = late, .e = easy_for(NULL, "%s/echo", p.url)};
    cctx_after_t reg;
    CHECK_EQ(cctx_after_func(same, &reg, call_in_window, &w), 0);
    cctx_fake_clock_advance(CCTX_MSEC(50));
    CHECK(w.ran);
    if (!w.unmarked) {
        /* The advance fired the grace context first: the window this test
         * is about was not there. */
        SKIP("the grace context's end fired before the other deadline due with it");
    }
    CHECK_EQ(w.ret, ETIMEDOUT);
    CHECK_EQ(w.res.err, ETIMEDOUT);
    CHECK_STR(w.res.msg, "context deadline exceeded");
    /* Not the later deadline of `late`, 60 s ahead. */
    CHECK_EQ(w.res.cause.when, w.now);
    CHECK_EQ(cctx_err(late), ETIMEDOUT);
    /* Nothing was sent. */
    CHECK(peer_quiet(&p, "req /echo", 200));
    cctx_after_stop(&reg);
    curl_easy_cleanup(w.e);
    cctx_release(same);
    cctx_release(late);
    cctx_release(g);
    cctx_release(parent);
    cctx_fake_clock_stop();
    peer_stop(&p);
    curl_test_end();
}

/* libcurl's timeout is the budget, here bounded by the grace context's end:
 * when it fires a hair before that end's timer marks the context, the
 * result is the context's deadline, as for a deadline of its own, not
 * libcurl's timeout. The fake clock stands half a millisecond before that
 * end (an after-function of a deadline due then, which the advance runs
 * before it goes on), while libcurl's millisecond passes in real time. */
TEST(curl_grace_libcurl_timeout)
{
    curl_test_begin();
    struct peer p;
    peer_start_go(&p);
    cctx_fake_clock_start(CCTX_SEC(1000));
    cctx_cancel_t *pc;
    cctx_t *parent = cctx_with_cancel(cctx_background(), &pc);
    cctx_t *g = cctx_with_grace(parent, CCTX_MSEC(50), NULL);
    cctx_t *late = cctx_with_timeout(g, CCTX_SEC(60), NULL);
    cctx_t *before = cctx_with_deadline(cctx_background(),
                                        CCTX_SEC(1000) + CCTX_MSEC(50) - CCTX_USEC(500), NULL);
    cctx_cancel(pc);
    struct in_window w = {.g = g, .late = late, .e = easy_for(NULL, "%s/hang", p.url)};
    cctx_after_t reg;
    CHECK_EQ(cctx_after_func(before, &reg, call_in_window, &w), 0);
    cctx_fake_clock_advance(CCTX_MSEC(50));
    CHECK(w.ran);
    CHECK(w.unmarked);
    CHECK_EQ(w.ret, ETIMEDOUT);
    CHECK_EQ(w.res.code, CURLE_OPERATION_TIMEDOUT);
    CHECK_EQ(w.res.cause.err, ETIMEDOUT);
    CHECK_STR(w.res.msg, "context deadline exceeded");
    CHECK_EQ(w.res.cause.when, w.now);
    CHECK_EQ(cctx_err(late), ETIMEDOUT);
    cctx_after_stop(&reg);
    curl_easy_cleanup(w.e);
    cctx_release(before);
    cctx_release(late);
    cctx_release(g);
    cctx_release(parent);
    cctx_fake_clock_stop();
    peer_stop(&p);
    curl_test_end();
}
