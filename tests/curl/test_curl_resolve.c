/* SPDX-License-Identifier: MIT */
/* cctx-curl while libcurl still looks a host up: a cancel or a deadline
 * returns the call at once, not when the name server answers. libcurl
 * resolves on a thread of its own, which calls getaddrinfo: this file
 * defines one that holds a lookup of HELD_HOST until the test lets it go,
 * as a name server that does not answer would, and hands every other name
 * to the C library's. */
#define _GNU_SOURCE
#include <cctx/curl.h>
#include <cctx/testing.h>

#include <dlfcn.h>
#include <netdb.h>
#include <pthread.h>
#include <string.h>

#include "curl_internal.h"
#include "harness.h"
#include "peer.h"
#include "support.h"

#define HELD_HOST "held-lookup.invalid"

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int entered, returned; /* lookups of HELD_HOST so far */
    bool let_go;
} held = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, false};

typedef int (*getaddrinfo_fn)(const char *, const char *, const struct addrinfo *,
                              struct addrinfo **);

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
    if (!node || strcmp(node, HELD_HOST) != 0) {
        getaddrinfo_fn next = (getaddrinfo_fn)dlsym(RTLD_NEXT, "getaddrinfo");
        return next ? next(node, service, hints, res) : EAI_SYSTEM;
    }
    /* Held until let go, or for 20 s at most: a call that waits for the
     * lookup then returns after the test has failed it, not never. */
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 20;
    pthread_mutex_lock(&held.mu);
    held.entered++;
    pthread_cond_broadcast(&held.cv);
    while (!held.let_go)
        if (pthread_cond_timedwait(&held.cv, &held.mu, &until) == ETIMEDOUT)
            break;
    held.returned++;
    pthread_cond_broadcast(&held.cv);
    pthread_mutex_unlock(&held.mu);
    return EAI_NONAME;
}

static void hold_lookups(void)
{
    pthread_mutex_lock(&held.mu);
    held.entered = held.returned = 0;
    held.let_go = false;
    pthread_mutex_unlock(&held.mu);
}

/* Waits until `count` (entered or returned) reaches n; false after 10 s. */
static bool await_count(const int *count, int n)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&held.mu);
    while (*count < n)
        if (pthread_cond_timedwait(&held.cv, &held.mu, &until) == ETIMEDOUT)
            break;
    bool ok = *count >= n;
    pthread_mutex_unlock(&held.mu);
    return ok;
}

/* Lets the held lookups go and waits for each to return, so that no
 * resolver thread of this test outlives it. */
static void let_lookups_go(int n)
{
    pthread_mutex_lock(&held.mu);
    held.let_go = true;
    pthread_cond_broadcast(&held.cv);
    pthread_mutex_unlock(&held.mu);
    CHECK(await_count(&held.returned, n));
}

static cctx_cancel_t *to_cancel;

static void *cancel_once_looking_up(void *arg)
{
    (void)arg;
    if (await_count(&held.entered, 1))
        cctx_cancel(to_cancel);
    return NULL;
}

TEST(curl_cancel_during_a_name_lookup_returns_at_once)
{
    curl_test_begin();
    hold_lookups();
    CURL *e = easy_for(NULL, "http://" HELD_HOST ":9/");
    cctx_t *ctx = cctx_with_cancel(cctx_background(), &to_cancel);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, cancel_once_looking_up, NULL), 0);
    cctx_curl_result_t res;
    CHECK_EQ(cctx_curl_perform(ctx, e, NULL, &res), ECANCELED);
    CHECK_EQ(pthread_join(t, NULL), 0);
    /* Returned while the lookup is still held: nothing waited for it. */
    pthread_mutex_lock(&held.mu);
    int entered = held.entered, returned = held.returned;
    pthread_mutex_unlock(&held.mu);
    CHECK_EQ(entered, 1);
    CHECK_EQ(returned, 0);
    let_lookups_go(1);
    curl_easy_cleanup(e);
    cctx_release(ctx);
    curl_test_end();
}

TEST(curl_deadline_during_name_lookups_of_a_fan_out_returns_at_once)
{
    curl_test_begin();
    hold_lookups();
    enum { N = 3 };
    CURL *e[N];
    cctx_curl_multi_t *m = cctx_curl_multi_new();
    CHECK(m != NULL);
    for (int i = 0; i < N; i++) {
        e[i] = easy_for(NULL, "http://" HELD_HOST ":%d/", 9 + i);
        CHECK_EQ(cctx_curl_multi_add(m, e[i], NULL), i);
    }
    int64_t t0 = real_now();
    /* Long enough for a resolver thread to start on a loaded machine. */
    cctx_t *ctx = cctx_with_timeout(cctx_background(), CCTX_SEC(1), NULL);
    CHECK_EQ(cctx_curl_multi_run(m, ctx), ETIMEDOUT);
    int64_t took = real_now() - t0;
    pthread_mutex_lock(&held.mu);
    int entered = held.entered, returned = held.returned;
    pthread_mutex_unlock(&held.mu);
    CHECK(entered >= 1);
    CHECK_EQ(returned, 0);
    CHECK(took < CCTX_SEC(8)); /* 1 s and a generous margin, not the 20 s hold */
    for (int i = 0; i < N; i++)
        CHECK_EQ(cctx_curl_multi_result(m, (size_t)i)->err, ETIMEDOUT);
    let_lookups_go(entered);
    cctx_curl_multi_free(m);
    for (int i = 0; i < N; i++)
        curl_easy_cleanup(e[i]);
    cctx_release(ctx);
    curl_test_end();
}
