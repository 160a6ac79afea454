/* SPDX-License-Identifier: MIT */
/* cctx_curl_perform from several threads at once under one parent context,
 * and under the fake clock, where the deadline is the context's alone. */
#define _GNU_SOURCE
#include <cctx/curl.h>
#include <cctx/testing.h>

#include <pthread.h>

#include "harness.h"
#include "peer.h"

enum { THREADS = 4 };

struct worker {
    pthread_t t;
    cctx_t *parent;
    const char *url;
    int err;
    int64_t returned;
    char cause[64];
};

static void *work(void *arg)
{
    struct worker *w = arg;
    /* Each thread its own child context, easy handle and multi handle
     * (freed when the thread exits). */
    cctx_t *ctx = cctx_with_timeout(w->parent, CCTX_SEC(30), NULL);
    CURL *e = easy_for(NULL, "%s/hang", w->url);
    cctx_curl_result_t res;
    w->err = cctx_curl_perform(ctx, e, NULL, &res);
    w->returned = mono_now();
    snprintf(w->cause, sizeof w->cause, "%s", res.msg);
    curl_easy_cleanup(e);
    cctx_release(ctx);
    return NULL;
}

TEST(curl_threads_cancel_parent)
{
    curl_test_begin();
    struct peer p;
    peer_start_go(&p);
    cctx_cancel_t *cancel;
    cctx_t *parent = cctx_with_cancel(cctx_background(), &cancel);
    struct worker w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){.parent = parent, .url = p.url};
        CHECK_EQ(pthread_create(&w[i].t, NULL, work, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        CHECK(peer_line(&p, "req /hang", 10000, NULL, 0, NULL));
    int64_t at = mono_now();
    cctx_cancel_cause(cancel, ECANCELED, "parent gone");
    for (int i = 0; i < THREADS; i++) {
        CHECK_EQ(pthread_join(w[i].t, NULL), 0);
        CHECK_EQ(w[i].err, ECANCELED);
        CHECK_STR(w[i].cause, "parent gone");
        printf("cancel to return (thread %d): %.3f ms\n", i, (w[i].returned - at) / 1e6);
        /* /hang never answers: a call the parent's cancel did not end would
         * return at its own deadline, 30 s. The bound is loose: four
         * threads and the peer share the machine, which may be slow, and
         * the sanitizers slower. */
        CHECK(w[i].returned - at < CCTX_SEC(5));
    }
    for (int i = 0; i < THREADS; i++)
        CHECK(peer_line(&p, "canceled /hang", 5000, NULL, 0, NULL));
    cctx_release(parent);
    peer_stop(&p);
    curl_test_end();
}

struct advancer {
    struct peer *p;
    bool ok;
};

static void *advance(void *arg)
{
    struct advancer *a = arg;
    a->ok = peer_line(a->p, "req /hang", 10000, NULL, 0, NULL);
    cctx_fake_clock_advance(CCTX_SEC(11));
    return NULL;
}

TEST(curl_fake_clock_deadline)
{
    /* libcurl's timeout is 10 s of real time here; the test ends long
     * before, when the fake clock passes the context's deadline. */
    curl_test_begin();
    struct peer p;
    peer_start_go(&p);
    cctx_fake_clock_start(CCTX_SEC(1000));
    cctx_t *ctx = cctx_with_timeout(cctx_background(), CCTX_SEC(10), NULL);
    CURL *e = easy_for(NULL, "%s/hang", p.url);
    struct advancer a = {.p = &p};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, advance, &a), 0);
    int64_t start = mono_now();
    cctx_curl_result_t res;
    CHECK_EQ(cctx_curl_perform(ctx, e, NULL, &res), ETIMEDOUT);
    CHECK(mono_now() - start < CCTX_SEC(5));
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK(a.ok);
    CHECK_EQ(res.cause.err, ETIMEDOUT);
    CHECK_EQ(res.cause.when, CCTX_SEC(1010)); /* the deadline, which the advance steps to */
    CHECK(peer_line(&p, "canceled /hang", 5000, NULL, 0, NULL));
    curl_easy_cleanup(e);
    cctx_release(ctx);
    cctx_fake_clock_stop();
    peer_stop(&p);
    curl_test_end();
}
