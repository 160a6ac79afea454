/* SPDX-License-Identifier: MIT */
/* cctx_curl_perform from several threads at once under one parent context,
 * and under the fake clock, where the deadline is the context's alone. */
#define _GNU_SOURCE
#include <cctx/curl.h>
#include <cctx/testing.h>

#include <pthread.h>

#include "harness.h"
#include "peer.h"
#include "support.h"

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

struct keyless {
    const char *url;
    pthread_key_t mine; /* a key of the test's, or (pthread_key_t)-1 */
    int err[2];
    bool kept; /* the test's value under its key survived the calls */
};

static void *call_keyless(void *arg)
{
    struct keyless *k = arg;
    int sentinel;
    if (k->mine != (pthread_key_t)-1)
        CHECK_EQ(pthread_setspecific(k->mine, &sentinel), 0);
    CURL *e = easy_for(NULL, "%s/echo?keyless", k->url);
    cctx_curl_result_t res;
    for (int i = 0; i < 2; i++)
        k->err[i] = cctx_curl_perform(cctx_background(), e, NULL, &res);
    curl_easy_cleanup(e);
    k->kept = k->mine == (pthread_key_t)-1 || pthread_getspecific(k->mine) == &sentinel;
    return NULL;
}

/* With every thread-specific key taken (PTHREAD_KEYS_MAX), the thread's
 * multi handle has no key whose destructor frees it at the thread's exit.
 * The calls still work, and a thread that made them leaves nothing behind
 * when it exits: before, the handle was stored under key 0, whoever owns
 * it (overwriting that owner's value and handing the handle to its
 * destructor), and its descriptors outlived the thread. */
TEST(curl_calls_with_no_thread_key_left_leave_nothing_behind)
{
    curl_test_begin();
    struct peer p;
    peer_start_go(&p);
    enum { MAX_KEYS = 1 << 16 };
    static pthread_key_t keys[MAX_KEYS];
    size_t n = 0;
    while (n < MAX_KEYS && pthread_key_create(&keys[n], NULL) == 0)
        n++;
    CHECK(n < MAX_KEYS);
    struct keyless k = {.url = p.url, .mine = (pthread_key_t)-1};
    for (size_t i = 0; i < n; i++)
        if (keys[i] == 0)
            k.mine = 0;
    /* The descriptor contexts that never end share, made on first use. */
    CHECK(cctx_done_fd(cctx_background()) >= 0);
    int fds = count_open_fds();
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, call_keyless, &k), 0);
    CHECK_EQ(pthread_join(t, NULL), 0);
    int left = count_open_fds() - fds;
    for (size_t i = 0; i < n; i++)
        CHECK_EQ(pthread_key_delete(keys[i]), 0);
    printf("keys taken by the test: %zu, key 0 %s; descriptors left: %d\n", n,
           k.mine == 0 ? "the test's" : "another's", left);
    CHECK_EQ(k.err[0], 0);
    CHECK_EQ(k.err[1], 0);
    CHECK(peer_line(&p, "req /echo?keyless", 5000, NULL, 0, NULL));
    CHECK(peer_line(&p, "req /echo?keyless", 5000, NULL, 0, NULL));
    CHECK(k.kept);
    CHECK_EQ(left, 0);

    /* With keys free again, a thread keeps its handle: its second call
     * goes out on the first one's connection. */
    k.mine = (pthread_key_t)-1;
    CHECK_EQ(pthread_create(&t, NULL, call_keyless, &k), 0);
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_EQ(k.err[0], 0);
    CHECK_EQ(k.err[1], 0);
    char line[1024], first[64], second[64];
    CHECK(peer_line(&p, "req /echo?keyless", 5000, line, sizeof line, NULL));
    CHECK(peer_field(line, "remote", first, sizeof first));
    CHECK(peer_line(&p, "req /echo?keyless", 5000, line, sizeof line, NULL));
    CHECK(peer_field(line, "remote", second, sizeof second));
    CHECK_STR(first, second);
    peer_stop(&p);
    curl_test_end();
}
