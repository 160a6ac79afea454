/* SPDX-License-Identifier: MIT */
/* cctx_curl_perform against Go's net/http server (tests/curl/peers/httppeer):
 * cancel and deadline reach the Go handler's r.Context(), the headers it
 * sees, the caller's own headers, a spent budget, a refused connection. */
#define _GNU_SOURCE
#include <cctx/curl.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "harness.h"
#include "peer.h"
#include "support.h"

TEST(curl_go_cancel_aborts)
{
    curl_test_begin();
    struct peer p;
    peer_start_go(&p);
    cctx_cancel_t *cancel;
    cctx_t *ctx = cctx_with_cancel(cctx_background(), &cancel);
    CURL *e = easy_for(NULL, "%s/hang", p.url);

    /* Made while the call sleeps in poll on ctx's done descriptor: what
     * wakes it at once is checked, not only how soon (peer.h). */
    struct canceller c;
    int done_fd = cctx_done_fd(ctx);
    CHECK(done_fd >= 0);
    canceller_start_polled(&c, &p, cancel, "req /hang", 1, thread_id(), done_fd);
    cctx_curl_result_t res;
    CHECK_EQ(cctx_curl_perform(ctx, e, NULL, &res), ECANCELED);
    int64_t returned = mono_now();
    canceller_join(&c);
    CHECK(c.ok);
    CHECK(c.polled);
    printf("cancel to return: %.3f ms\n", (returned - c.at) / 1e6);
    /* /hang never answers and ctx has no deadline: a call the cancel did
     * not end would not return at all. The bound is loose: the machine may
     * be slow, and the sanitizers slower. */
    CHECK(returned - c.at < CCTX_SEC(5));
    CHECK_EQ(res.err, ECANCELED);
    CHECK_EQ(res.code, CURLE_ABORTED_BY_CALLBACK);
    CHECK_EQ(res.cause.err, ECANCELED);
    CHECK_STR(res.cause.msg, "test cancel");
    CHECK_STR(res.msg, "test cancel");

    /* The abort closed the connection: Go ended the handler's context. */
    char line[256];
    int64_t seen;
    CHECK(peer_line(&p, "canceled /hang", 5000, line, sizeof line, &seen));
    printf("cancel to Go handler's ctx.Done: %.3f ms\n",
           (strtoll(strrchr(line, ' ') + 1, NULL, 10) - c.at) / 1e6);

    /* The easy handle is reusable, under a live context. */
    struct body b;
    curl_easy_cleanup(e);
    e = easy_for(&b, "%s/echo", p.url);
    CHECK_EQ(cctx_curl_perform(cctx_background(), e, NULL, &res), 0);
    CHECK_STR(b.data, "ok /echo");
    curl_easy_cleanup(e);
    cctx_release(ctx);
    peer_stop(&p);
    curl_test_end();
}

TEST(curl_go_deadline)
{
    curl_test_begin();
    struct peer p;
    peer_start_go(&p);
    int64_t start = mono_now();
    cctx_t *ctx = cctx_with_timeout(cctx_background(), CCTX_MSEC(300), NULL);
    CURL *e = easy_for(NULL, "%s/hang", p.url);
    cctx_curl_result_t res;
    CHECK_EQ(cctx_curl_perform(ctx, e, NULL, &res), ETIMEDOUT);
    int64_t took = mono_now() - start;
    printf("300 ms budget took %.3f ms\n", took / 1e6);
    CHECK(took >= CCTX_MSEC(300));
    /* /hang never answers: a call the deadline did not end would not return
     * at all. The bound is loose: the machine may be slow, and the
     * sanitizers slower. */
    CHECK(took < CCTX_SEC(5));
    CHECK_EQ(res.code, CURLE_OPERATION_TIMEDOUT);
    CHECK_EQ(res.cause.err, ETIMEDOUT);
    CHECK(res.cause.line > 0); /* the cctx_with_timeout above */
    char line[256];
    CHECK(peer_line(&p, "req /hang", 1000, line, sizeof line, NULL));
    CHECK(peer_line(&p, "canceled /hang", 5000, NULL, 0, NULL));
    curl_easy_cleanup(e);
    cctx_release(ctx);
    peer_stop(&p);
    curl_test_end();
}

TEST(curl_go_headers)
{
    curl_test_begin();
    struct peer p;
    peer_start_go(&p);
    cctx_trace_t tr;
    CHECK_EQ(cctx_trace_new(&tr), 0);
    CHECK_EQ(cctx_tracestate_parse("k=v,w=1", 7, &tr), 0);
    cctx_t *ctx = cctx_with_timeout(cctx_background(), CCTX_SEC(5), NULL);
    cctx_t *traced = cctx_with_trace(ctx, &tr);
    struct body b;
    CURL *e = easy_for(&b, "%s/echo", p.url);
    cctx_curl_result_t res;
    int64_t before = cctx_remaining(traced);
    CHECK_EQ(cctx_curl_perform(traced, e, NULL, &res), 0);
    CHECK_STR(b.data, "ok /echo");
    CHECK_STR(res.msg, curl_easy_strerror(CURLE_OK));

    char line[1024], v[600];
    CHECK(peer_line(&p, "req /echo", 2000, line, sizeof line, NULL));
    /* grpc-timeout: the remaining budget, rounded up, so at most the budget
     * at the start and no less than it was when sent. */
    CHECK(peer_field(line, "grpc-timeout", v, sizeof v));
    int64_t sent;
    CHECK_EQ(cctx_grpc_timeout_parse(v, strlen(v), &sent), 0);
    printf("budget %lld ns, grpc-timeout %s\n", (long long)before, v);
    CHECK(sent <= CCTX_SEC(5));
    CHECK(sent > CCTX_SEC(5) - CCTX_MSEC(500));
    /* traceparent: our trace, a child span of ours. */
    CHECK(peer_field(line, "traceparent", v, sizeof v));
    CHECK_STR(v, res.traceparent);
    cctx_trace_t got;
    CHECK_EQ(cctx_traceparent_parse(v, strlen(v), &got), 0);
    CHECK(memcmp(got.trace_id, tr.trace_id, 16) == 0);
    CHECK(memcmp(got.parent_id, tr.span_id, 8) != 0); /* a new span */
    CHECK(peer_field(line, "tracestate", v, sizeof v));
    CHECK_STR(v, "k=v,w=1");

    /* Without a deadline: no grpc-timeout; without a trace: a new one. */
    CHECK_EQ(cctx_curl_perform(cctx_background(), e, NULL, &res), 0);
    CHECK(peer_line(&p, "req /echo", 2000, line, sizeof line, NULL));
    CHECK(peer_field(line, "grpc-timeout", v, sizeof v));
    CHECK_STR(v, "");
    CHECK(peer_field(line, "traceparent", v, sizeof v));
    CHECK_EQ(cctx_traceparent_parse(v, strlen(v), &got), 0);
    CHECK(memcmp(got.trace_id, tr.trace_id, 16) != 0);

    /* Flags turn both off. */
    cctx_curl_opts_t o = {.flags = CCTX_CURL_NO_GRPC_TIMEOUT | CCTX_CURL_NO_TRACE};
    CHECK_EQ(cctx_curl_perform(traced, e, &o, &res), 0);
    CHECK(peer_line(&p, "req /echo", 2000, line, sizeof line, NULL));
    CHECK(peer_field(line, "grpc-timeout", v, sizeof v));
    CHECK_STR(v, "");
    CHECK(peer_field(line, "traceparent", v, sizeof v));
    CHECK_STR(v, "");
    CHECK_STR(res.traceparent, "");

    /* Consecutive calls on a thread reuse the connection. */
    long conns = -1;
    CHECK_EQ(cctx_curl_perform(traced, e, NULL, &res), 0);
    curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, &conns);
    CHECK_EQ(conns, 0);

    curl_easy_cleanup(e);
    cctx_release(traced);
    cctx_release(ctx);
    peer_stop(&p);
    curl_test_end();
}

TEST(curl_go_caller_headers)
{
    curl_test_begin();
    struct peer p;
    peer_start_go(&p);
    const char *tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    struct curl_slist *h = NULL;
    h = curl_slist_append(h, "X-Test: mine");
    h = curl_slist_append(h,
                          "TraceParent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    h = curl_slist_append(h, "grpc-timeout: 7S");
    cctx_t *ctx = cctx_with_timeout(cctx_background(), CCTX_SEC(3), NULL);
    struct body b;
    CURL *e = easy_for(&b, "%s/echo", p.url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    cctx_curl_opts_t o = {.headers = h};
    cctx_curl_result_t res;
    CHECK_EQ(cctx_curl_perform(ctx, e, &o, &res), 0);
    char line[1024], v[600];
    CHECK(peer_line(&p, "req /echo", 2000, line, sizeof line, NULL));
    CHECK(peer_field(line, "grpc-timeout", v, sizeof v));
    CHECK_STR(v, "7S");
    CHECK(peer_field(line, "traceparent", v, sizeof v));
    CHECK_STR(v, tp);
    CHECK(peer_field(line, "tracestate", v, sizeof v));
    CHECK_STR(v, ""); /* the caller's trace: no state of ours beside it */
    CHECK(peer_field(line, "x-test", v, sizeof v));
    CHECK_STR(v, "mine");
    CHECK_STR(res.traceparent, "");

    /* Options put back: a plain curl_easy_perform sends the caller's list
     * alone, and has no timeout left over. */
    struct curl_slist *h2 = curl_slist_append(NULL, "X-Test: second");
    o.headers = h2;
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h2);
    CHECK_EQ(cctx_curl_perform(ctx, e, &o, &res), 0);
    CHECK(peer_line(&p, "req /echo", 2000, line, sizeof line, NULL));
    CHECK(peer_field(line, "grpc-timeout", v, sizeof v));
    CHECK(v[0] != '\0');
    CHECK_EQ(curl_easy_perform(e), CURLE_OK);
    CHECK(peer_line(&p, "req /echo", 2000, line, sizeof line, NULL));
    CHECK(peer_field(line, "grpc-timeout", v, sizeof v));
    CHECK_STR(v, "");
    CHECK(peer_field(line, "traceparent", v, sizeof v));
    CHECK_STR(v, "");
    CHECK(peer_field(line, "x-test", v, sizeof v));
    CHECK_STR(v, "second");

    curl_easy_cleanup(e);
    curl_slist_free_all(h);
    curl_slist_free_all(h2);
    cctx_release(ctx);
    peer_stop(&p);
    curl_test_end();
}

TEST(curl_go_spent_budget)
{
    curl_test_begin();
    struct peer p;
    peer_start_go(&p);
    struct body b;
    CURL *e = easy_for(&b, "%s/echo?n=1", p.url);
    cctx_curl_result_t res;

    /* Born spent. */
    cctx_t *spent = cctx_with_timeout(cctx_background(), -1, NULL);
    CHECK_EQ(cctx_curl_perform(spent, e, NULL, &res), ETIMEDOUT);
    CHECK_EQ(res.code, CURLE_OPERATION_TIMEDOUT);
    CHECK_EQ(res.cause.err, ETIMEDOUT);
    CHECK_STR(res.traceparent, "");
    /* Spent while held: the deadline passed before the call. */
    cctx_t *late = cctx_with_timeout(cctx_background(), CCTX_MSEC(1), NULL);
    CHECK_EQ(cctx_wait(late, -1), ETIMEDOUT);
    CHECK_EQ(cctx_curl_perform(late, e, NULL, &res), ETIMEDOUT);
    /* Canceled before the call. */
    cctx_cancel_t *cancel;
    cctx_t *gone = cctx_with_cancel(cctx_background(), &cancel);
    cctx_cancel(cancel);
    CHECK_EQ(cctx_curl_perform(gone, e, NULL, &res), ECANCELED);
    CHECK_EQ(res.code, CURLE_ABORTED_BY_CALLBACK);
    CHECK_EQ(res.cause.err, ECANCELED);

    /* None of them reached the server: the first request it reports is
     * the next one. */
    curl_easy_cleanup(e);
    e = easy_for(&b, "%s/echo?n=2", p.url);
    CHECK_EQ(cctx_curl_perform(cctx_background(), e, NULL, &res), 0);
    char line[1024];
    CHECK(peer_line(&p, "req ", 2000, line, sizeof line, NULL));
    CHECK(strncmp(line, "req /echo?n=2", 13) == 0);

    curl_easy_cleanup(e);
    cctx_release(spent);
    cctx_release(late);
    cctx_release(gone);
    peer_stop(&p);
    curl_test_end();
}

TEST(curl_refused)
{
    /* A port nobody listens on: bound, never listened. No peer needed. */
    curl_test_begin();
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    CHECK_EQ(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    CHECK_EQ(getsockname(s, (struct sockaddr *)&a, &al), 0);
    CURL *e = easy_for(NULL, "http://127.0.0.1:%d/", ntohs(a.sin_port));
    cctx_t *ctx = cctx_with_timeout(cctx_background(), CCTX_SEC(5), NULL);
    cctx_curl_result_t res;
    CHECK_EQ(cctx_curl_perform(ctx, e, NULL, &res), ECONNREFUSED);
    CHECK_EQ(res.code, CURLE_COULDNT_CONNECT);
    CHECK_STR(res.msg, curl_easy_strerror(CURLE_COULDNT_CONNECT));
    CHECK_EQ(res.cause.err, 0);
    /* An unsupported scheme is EINVAL. */
    curl_easy_setopt(e, CURLOPT_URL, "nosuchscheme://x/");
    CHECK_EQ(cctx_curl_perform(ctx, e, NULL, &res), EINVAL);
    CHECK_EQ(res.code, CURLE_UNSUPPORTED_PROTOCOL);
    /* Bad arguments. */
    CHECK_EQ(cctx_curl_perform(NULL, e, NULL, &res), EINVAL);
    CHECK_EQ(cctx_curl_perform(ctx, NULL, NULL, NULL), EINVAL);
    curl_easy_cleanup(e);
    close(s);
    cctx_release(ctx);
    curl_test_end();
}
