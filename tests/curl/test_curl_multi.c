/* SPDX-License-Identifier: MIT */
/* The fan-out (cctx_curl_multi_*) against Go's net/http server: one cancel
 * aborts every transfer at once; without it each has its own result. */
#define _GNU_SOURCE
#include <cctx/curl.h>

#include "harness.h"
#include "peer.h"
#include "support.h"

enum { N = 4 };

TEST(curl_multi_cancel_all)
{
    curl_test_begin();
    struct peer p;
    peer_start_go(&p);
    cctx_curl_multi_t *m = cctx_curl_multi_new();
    CHECK(m);
    CURL *e[N];
    /* Three that answer after 20 s and one that never answers. */
    for (int i = 0; i < N; i++) {
        e[i] = i == N - 1 ? easy_for(NULL, "%s/hang", p.url)
                          : easy_for(NULL, "%s/slow?ms=20000&i=%d", p.url, i);
        CHECK_EQ(cctx_curl_multi_add(m, e[i], NULL), i);
    }
    CHECK_EQ(cctx_curl_multi_count(m), N);
    cctx_cancel_t *cancel;
    cctx_t *ctx = cctx_with_timeout(cctx_background(), CCTX_SEC(30), &cancel);
    /* Made while the run sleeps in poll on ctx's done descriptor: what
     * wakes it at once is checked, not only how soon (peer.h). */
    struct canceller k;
    int done_fd = cctx_done_fd(ctx);
    CHECK(done_fd >= 0);
    canceller_start_polled(&k, &p, cancel, "req /", N, thread_id(), done_fd);
    CHECK_EQ(cctx_curl_multi_run(m, ctx), ECANCELED);
    int64_t returned = mono_now();
    canceller_join(&k);
    CHECK(k.ok);
    CHECK(k.polled);
    printf("cancel to return: %.3f ms\n", (returned - k.at) / 1e6);
    /* Without the cancel the run would last until the deadline, 30 s (the
     * first three answer after 20 s). The bound is loose: the machine may
     * be slow, and the sanitizers slower. */
    CHECK(returned - k.at < CCTX_SEC(5));
    for (int i = 0; i < N; i++) {
        const cctx_curl_result_t *r = cctx_curl_multi_result(m, (size_t)i);
        CHECK(r);
        CHECK_EQ(r->err, ECANCELED);
        CHECK_STR(r->cause.msg, "test cancel");
        CHECK(r->traceparent[0] != '\0');
    }
    CHECK(cctx_curl_multi_result(m, N) == NULL);
    /* Every handler's context ended. */
    for (int i = 0; i < N; i++)
        CHECK(peer_line(&p, "canceled /", 5000, NULL, 0, NULL));
    for (int i = 0; i < N; i++)
        curl_easy_cleanup(e[i]);
    cctx_curl_multi_free(m);
    cctx_release(ctx);
    peer_stop(&p);
    curl_test_end();
}

TEST(curl_multi_results)
{
    curl_test_begin();
    struct peer p;
    peer_start_go(&p);
    cctx_curl_multi_t *m = cctx_curl_multi_new();
    CHECK(m);
    CURL *e[N];
    struct body b[N];
    cctx_trace_t tr;
    CHECK_EQ(cctx_trace_new(&tr), 0);
    cctx_t *ctx = cctx_with_timeout(cctx_background(), CCTX_SEC(10), NULL);
    cctx_t *traced = cctx_with_trace(ctx, &tr);
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < N; i++) {
            e[i] = easy_for(&b[i], "%s/slow?ms=%d&i=%d", p.url, 10 * i, i);
            CHECK_EQ(cctx_curl_multi_add(m, e[i], NULL), i);
        }
        CHECK_EQ(cctx_curl_multi_add(m, e[0], NULL), -1); /* twice */
        CHECK_EQ(cctx_curl_multi_run(m, traced), 0);
        char want[64];
        for (int i = 0; i < N; i++) {
            const cctx_curl_result_t *r = cctx_curl_multi_result(m, (size_t)i);
            CHECK_EQ(r->err, 0);
            CHECK_EQ(r->code, CURLE_OK);
            snprintf(want, sizeof want, "ok /slow?ms=%d&i=%d", 10 * i, i);
            CHECK_STR(b[i].data, want);
            cctx_trace_t got;
            CHECK_EQ(cctx_traceparent_parse(r->traceparent, 55, &got), 0);
            CHECK(memcmp(got.trace_id, tr.trace_id, 16) == 0);
        }
        for (int i = 0; i < N; i++) {
            char line[1024], v[64];
            CHECK(peer_line(&p, "req /slow", 2000, line, sizeof line, NULL));
            CHECK(peer_field(line, "grpc-timeout", v, sizeof v));
            CHECK(v[0] != '\0');
        }
        /* The handles are out of the multi handle: plain calls work. */
        for (int i = 0; i < N; i++) {
            CHECK_EQ(curl_easy_perform(e[i]), CURLE_OK);
            CHECK(peer_line(&p, "req /slow", 2000, NULL, 0, NULL));
            curl_easy_cleanup(e[i]);
        }
    }
    cctx_curl_multi_free(m);
    cctx_release(traced);
    cctx_release(ctx);
    peer_stop(&p);
    curl_test_end();
}

TEST(curl_multi_deadline)
{
    curl_test_begin();
    struct peer p;
    peer_start_go(&p);
    cctx_curl_multi_t *m = cctx_curl_multi_new();
    CURL *e[N];
    for (int i = 0; i < N; i++) {
        e[i] = easy_for(NULL, "%s/hang", p.url);
        cctx_curl_multi_add(m, e[i], NULL);
    }
    int64_t start = mono_now();
    cctx_t *ctx = cctx_with_timeout(cctx_background(), CCTX_MSEC(300), NULL);
    CHECK_EQ(cctx_curl_multi_run(m, ctx), ETIMEDOUT);
    int64_t took = mono_now() - start;
    printf("300 ms budget took %.3f ms\n", took / 1e6);
    /* /hang never answers: a run the deadline did not end would not return
     * at all. The bound is loose: the machine may be slow, and the
     * sanitizers slower. */
    CHECK(took >= CCTX_MSEC(300) && took < CCTX_SEC(5));
    for (int i = 0; i < N; i++) {
        CHECK_EQ(cctx_curl_multi_result(m, (size_t)i)->err, ETIMEDOUT);
        CHECK_EQ(cctx_curl_multi_result(m, (size_t)i)->code, CURLE_OPERATION_TIMEDOUT);
    }
    for (int i = 0; i < N; i++)
        CHECK(peer_line(&p, "canceled /hang", 5000, NULL, 0, NULL));
    /* Spent before the run: nothing is sent. */
    for (int i = 0; i < N; i++)
        cctx_curl_multi_add(m, e[i], NULL);
    CHECK_EQ(cctx_curl_multi_run(m, ctx), ETIMEDOUT);
    for (int i = 0; i < N; i++)
        CHECK_EQ(cctx_curl_multi_result(m, (size_t)i)->err, ETIMEDOUT);
    CHECK(peer_quiet(&p, "req ", 200));
    for (int i = 0; i < N; i++)
        curl_easy_cleanup(e[i]);
    cctx_curl_multi_free(m);
    cctx_release(ctx);
    peer_stop(&p);
    curl_test_end();
}

TEST(curl_multi_args)
{
    curl_test_begin();
    CHECK_ERRNO(cctx_curl_multi_add(NULL, NULL, NULL), -1, EINVAL);
    cctx_curl_multi_t *m = cctx_curl_multi_new();
    CHECK_ERRNO(cctx_curl_multi_add(m, NULL, NULL), -1, EINVAL);
    CHECK_EQ(cctx_curl_multi_run(NULL, cctx_background()), EINVAL);
    CHECK_EQ(cctx_curl_multi_run(m, NULL), EINVAL);
    CHECK_EQ(cctx_curl_multi_run(m, cctx_background()), 0); /* empty */
    CHECK_EQ(cctx_curl_multi_count(m), 0);
    CHECK(cctx_curl_multi_result(m, 0) == NULL);
    CHECK_EQ(cctx_curl_multi_count(NULL), 0);
    cctx_curl_multi_free(m);
    cctx_curl_multi_free(NULL);
    curl_test_end();
}

TEST(curl_grpc_helpers)
{
    cctx_curl_grpc_status_t st;
    cctx_curl_grpc_status_init(&st);
    CHECK_EQ(st.status, -1);
    char l1[] = "HTTP/2 200\r\n", l2[] = "Grpc-Status: 14\r\n", l3[] = "grpc-message: down\r\n";
    CHECK_EQ(cctx_curl_grpc_header_cb(l1, 1, strlen(l1), &st), strlen(l1));
    CHECK_EQ(st.status, -1);
    cctx_curl_grpc_header_cb(l2, 1, strlen(l2), &st);
    cctx_curl_grpc_header_cb(l3, 1, strlen(l3), &st);
    CHECK_EQ(st.status, 14);
    CHECK_STR(st.message, "down");
    /* Malformed: INTERNAL, as grpc-go fails it (before: 2, UNKNOWN); a '+'
     * before the number is read as grpc-go's strconv.Atoi reads it. */
    char bad[] = "grpc-status: x1\r\n", minus[] = "grpc-status: -1\r\n",
         plus[] = "grpc-status: +0\r\n", sign[] = "grpc-status: +\r\n";
    cctx_curl_grpc_header_cb(bad, 1, strlen(bad), &st);
    CHECK_EQ(st.status, 13);
    cctx_curl_grpc_header_cb(plus, 1, strlen(plus), &st);
    CHECK_EQ(st.status, 0);
    cctx_curl_grpc_header_cb(minus, 1, strlen(minus), &st);
    CHECK_EQ(st.status, 13);
    cctx_curl_grpc_header_cb(sign, 1, strlen(sign), &st);
    CHECK_EQ(st.status, 13);
    /* Any number of digits that fits 32 bits, as strconv.ParseInt(v, 10,
     * 32) takes it (before: more than 9 digits were INTERNAL). */
    char zeros[] = "grpc-status: 0000000000014\r\n", max[] = "grpc-status: 2147483647\r\n",
         over[] = "grpc-status: 2147483648\r\n",
         long_over[] = "grpc-status: 99999999999999999999\r\n";
    cctx_curl_grpc_header_cb(zeros, 1, strlen(zeros), &st);
    CHECK_EQ(st.status, 14);
    cctx_curl_grpc_header_cb(max, 1, strlen(max), &st);
    CHECK_EQ(st.status, 2147483647);
    cctx_curl_grpc_header_cb(over, 1, strlen(over), &st);
    CHECK_EQ(st.status, 13);
    cctx_curl_grpc_header_cb(long_over, 1, strlen(long_over), &st);
    CHECK_EQ(st.status, 13);
    /* A redirect said OK, the final answer nothing: no status, not OK (the
     * status line of each response starts the record afresh). */
    char redirect[] = "HTTP/1.1 307 Temporary Redirect\r\n", ok[] = "grpc-status: 0\r\n",
         final[] = "HTTP/1.1 200 OK\r\n";
    cctx_curl_grpc_header_cb(redirect, 1, strlen(redirect), &st);
    CHECK_EQ(st.status, -1);
    cctx_curl_grpc_header_cb(ok, 1, strlen(ok), &st);
    cctx_curl_grpc_header_cb(l3, 1, strlen(l3), &st);
    CHECK_EQ(st.status, 0);
    cctx_curl_grpc_header_cb(final, 1, strlen(final), &st);
    CHECK_EQ(st.status, -1);
    CHECK_STR(st.message, "");
    unsigned char out[8];
    CHECK_EQ(cctx_curl_grpc_frame("abc", 3, out, sizeof out), 8);
    CHECK(memcmp(out, "\0\0\0\0\3abc", 8) == 0);
    CHECK_ERRNO(cctx_curl_grpc_frame("abcd", 4, out, sizeof out), 0, ENOBUFS);
    CHECK_ERRNO(cctx_curl_grpc_frame(NULL, 1, out, sizeof out), 0, EINVAL);
    CHECK_EQ(cctx_curl_grpc_frame(NULL, 0, out, sizeof out), 5);
}
