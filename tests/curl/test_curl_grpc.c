/* SPDX-License-Identifier: MIT */
/* gRPC over libcurl against grpc-go 1.33 (tests/curl/peers/grpcpeer):
 * h2c with prior knowledge, a unary call framed by hand, the status read
 * from the trailers with cctx_curl_grpc_header_cb. */
#define _GNU_SOURCE
#include <cctx/curl.h>

#include "harness.h"
#include "peer.h"
#include "support.h"

static void start_grpc(struct peer *p)
{
    peer_start_go_named(p, "grpcpeer",
                        "the grpc-go peer was not built (no Go 1.19 or grpc-go sources)");
}

struct call {
    CURL *e;
    struct curl_slist *h;
    struct body b;
    cctx_curl_grpc_status_t st;
    unsigned char frame[64];
    cctx_curl_opts_t o;
};

/* A unary call of svc/method with message msg, as a gRPC client sends it. */
static void call_init(struct call *c, const struct peer *p, const char *method, const char *msg)
{
    c->e = easy_for(&c->b, "%s/svc/%s", p->url, method);
    size_t n = cctx_curl_grpc_frame(msg, strlen(msg), c->frame, sizeof c->frame);
    CHECK(n == strlen(msg) + 5);
    c->h = curl_slist_append(NULL, "content-type: application/grpc");
    c->h = curl_slist_append(c->h, "te: trailers");
    curl_easy_setopt(c->e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
    curl_easy_setopt(c->e, CURLOPT_POST, 1L);
    curl_easy_setopt(c->e, CURLOPT_POSTFIELDS, c->frame);
    curl_easy_setopt(c->e, CURLOPT_POSTFIELDSIZE, (long)n);
    curl_easy_setopt(c->e, CURLOPT_HTTPHEADER, c->h);
    cctx_curl_grpc_status_init(&c->st);
    curl_easy_setopt(c->e, CURLOPT_HEADERFUNCTION, cctx_curl_grpc_header_cb);
    curl_easy_setopt(c->e, CURLOPT_HEADERDATA, &c->st);
    c->o = (cctx_curl_opts_t){.headers = c->h, .flags = CCTX_CURL_HTTP2};
}

static void call_done(struct call *c)
{
    curl_easy_cleanup(c->e);
    curl_slist_free_all(c->h);
}

TEST(curl_grpc_deadline)
{
    curl_test_begin();
    struct peer p;
    start_grpc(&p);
    cctx_t *ctx = cctx_with_timeout(cctx_background(), CCTX_SEC(3), NULL);
    struct call c;
    call_init(&c, &p, "Method", "hello");
    cctx_curl_result_t res;
    int64_t left = cctx_remaining(ctx);
    CHECK_EQ(cctx_curl_perform(ctx, c.e, &c.o, &res), 0);
    int64_t after = cctx_remaining(ctx);
    long code = 0;
    curl_easy_getinfo(c.e, CURLINFO_RESPONSE_CODE, &code);
    CHECK_EQ(code, 200);
    CHECK_EQ(c.st.status, 0);
    CHECK_EQ(c.b.len, 10);
    CHECK(memcmp(c.b.data, "\0\0\0\0\5hello", 10) == 0);

    char line[1024], v[128];
    CHECK(peer_line(&p, "req Method", 2000, line, sizeof line, NULL));
    CHECK(peer_field(line, "deadline", v, sizeof v));
    double ms = strtod(v, NULL);
    printf("budget %.3f..%.3f ms, Go handler's deadline in %.3f ms\n", after / 1e6, left / 1e6, ms);
    /* The handler's ctx.Deadline() is ours: between what was left when the
     * call returned and what was left when it began, rounded up (the
     * grpc-timeout unit is at most a microsecond here). */
    CHECK(ms <= left / 1e6 + 0.01);
    CHECK(ms >= after / 1e6 - 5.0);
    CHECK(peer_field(line, "traceparent", v, sizeof v));
    CHECK_STR(v, res.traceparent);

    /* An error status, from a trailers-only response. */
    struct call f;
    call_init(&f, &p, "Fail", "x");
    CHECK_EQ(cctx_curl_perform(ctx, f.e, &f.o, &res), 0);
    CHECK_EQ(f.st.status, 5);
    CHECK_STR(f.st.message, "no such thing");
    /* And again on the same handles: the h2c connection is not reused on
     * libcurl before 7.89 (where reuse breaks), so these work too. */
    cctx_curl_grpc_status_init(&c.st);
    c.b.len = 0;
    CHECK_EQ(cctx_curl_perform(ctx, c.e, &c.o, &res), 0);
    CHECK_EQ(c.st.status, 0);
    CHECK_EQ(c.b.len, 10);
    cctx_curl_grpc_status_init(&f.st);
    cctx_curl_opts_t unflagged = {.headers = f.h};
    CHECK_EQ(cctx_curl_perform(ctx, f.e, &unflagged, &res), 0); /* h2, not said */
    CHECK_EQ(cctx_curl_perform(ctx, c.e, &c.o, &res), 0);
    CHECK_EQ(f.st.status, 5);

    call_done(&c);
    call_done(&f);
    cctx_release(ctx);
    peer_stop(&p);
    curl_test_end();
}

TEST(curl_grpc_cancel)
{
    curl_test_begin();
    struct peer p;
    start_grpc(&p);
    cctx_cancel_t *cancel;
    cctx_t *ctx = cctx_with_cancel(cctx_background(), &cancel);
    struct call c;
    call_init(&c, &p, "Hang", "wait");
    struct canceller k; /* cancels while the call sleeps on ctx's descriptor */
    canceller_start_polled(&k, &p, cancel, "req Hang", 1, thread_id(), cctx_done_fd(ctx));
    cctx_curl_result_t res;
    CHECK_EQ(cctx_curl_perform(ctx, c.e, &c.o, &res), ECANCELED);
    int64_t returned = mono_now();
    canceller_join(&k);
    CHECK(k.ok);
    CHECK(k.polled);
    printf("cancel to return: %.3f ms\n", (returned - k.at) / 1e6);
    /* Hang waits for its context to end and ctx has no deadline: a call
     * the cancel did not end would not return at all. The bound is loose:
     * the machine may be slow, and the sanitizers slower. */
    CHECK(returned - k.at < CCTX_SEC(5));
    CHECK_STR(res.cause.msg, "test cancel");
    /* grpc-go ended the handler's context: the connection closed. */
    char line[256];
    CHECK(peer_line(&p, "canceled Hang", 5000, line, sizeof line, NULL));
    printf("Go handler: %s\n", line);
    CHECK(strstr(line, "context canceled") != NULL);
    CHECK(c.st.status == -1); /* no status: the call never finished */

    /* A deadline ends it the same way, as DEADLINE_EXCEEDED on Go's side
     * (grpc-go's own timer from grpc-timeout, or our close: either). */
    cctx_t *short_ctx = cctx_with_timeout(cctx_background(), CCTX_MSEC(200), NULL);
    CHECK_EQ(cctx_curl_perform(short_ctx, c.e, &c.o, &res), ETIMEDOUT);
    CHECK(peer_line(&p, "canceled Hang", 5000, line, sizeof line, NULL));
    call_done(&c);
    cctx_release(short_ctx);
    cctx_release(ctx);
    peer_stop(&p);
    curl_test_end();
}
