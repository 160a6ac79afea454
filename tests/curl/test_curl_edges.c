/* SPDX-License-Identifier: MIT */
/* cctx-curl at its edges: a child of fork() calling on the forking thread,
 * errno values on a reused easy handle, no descriptor left for the done
 * descriptor, a handle libcurl refuses to add, calls from inside a libcurl
 * callback, a deadline passed but not yet marked, libcurl's own timeout
 * in a long. */
#define _GNU_SOURCE
#include <cctx/curl.h>
#include <cctx/testing.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "curl_internal.h"
#include "harness.h"
#include "peer.h"
#include "support.h"

/* The remote= field (client address) of the next "req PREFIX" line. */
static void remote_of(struct peer *p, const char *prefix, char *out, size_t n)
{
    char line[1024];
    CHECK(peer_line(p, prefix, 5000, line, sizeof line, NULL));
    CHECK(peer_field(line, "remote", out, n));
    CHECK(out[0] != '\0');
}

TEST(curl_fork_child_new_connection)
{
    if (TEST_UNDER_TSAN) /* the child starts cctx's timer thread */
        SKIP_IN_THIS_BUILD("ThreadSanitizer kills children of a threaded fork that start threads");
    curl_test_begin();
    struct peer p;
    peer_start_go(&p);
    struct body b;
    CURL *e = easy_for(&b, "%s/echo?who=parent", p.url);
    cctx_curl_result_t res;
    CHECK_EQ(cctx_curl_perform(cctx_background(), e, NULL, &res), 0);
    char first[64], child[64], again[64];
    remote_of(&p, "req /echo?who=parent", first, sizeof first);

    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        /* The thread's multi handle caches the parent's connection: the
         * child must not send on it. */
        char url[128];
        snprintf(url, sizeof url, "%s/echo?who=child", p.url);
        curl_easy_setopt(e, CURLOPT_URL, url);
        b.len = 0;
        int err = cctx_curl_perform(cctx_background(), e, NULL, &res);
        long conns = -1;
        curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, &conns);
        /* Abandons the inherited handle, never closes it. */
        cctx_curl_thread_cleanup();
        _exit(err != 0 ? 1 : conns != 1 ? 2 : strcmp(b.data, "ok /echo?who=child") != 0 ? 3 : 0);
    }
    int st;
    CHECK_EQ(waitpid(pid, &st, 0), pid);
    CHECK(WIFEXITED(st));
    CHECK_EQ(WEXITSTATUS(st), 0);
    remote_of(&p, "req /echo?who=child", child, sizeof child);
    printf("parent %s, child %s\n", first, child);
    CHECK(strcmp(first, child) != 0);

    /* The parent's connection is still its own, and still reused. */
    char url[128];
    snprintf(url, sizeof url, "%s/echo?who=again", p.url);
    curl_easy_setopt(e, CURLOPT_URL, url);
    b.len = 0;
    CHECK_EQ(cctx_curl_perform(cctx_background(), e, NULL, &res), 0);
    CHECK_STR(b.data, "ok /echo?who=again");
    remote_of(&p, "req /echo?who=again", again, sizeof again);
    CHECK_STR(again, first);

    curl_easy_cleanup(e);
    peer_stop(&p);
    curl_test_end();
}

/* A loopback port that refuses: bound, never listened. */
static int refusing_port(int *s)
{
    *s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    CHECK_EQ(bind(*s, (struct sockaddr *)&a, sizeof a), 0);
    CHECK_EQ(getsockname(*s, (struct sockaddr *)&a, &al), 0);
    return ntohs(a.sin_port);
}

static size_t refuse_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    (void)ptr, (void)size, (void)nmemb, (void)userdata;
    return 0; /* short: libcurl ends the transfer with CURLE_WRITE_ERROR */
}

TEST(curl_errno_write_abort_after_refused)
{
    curl_test_begin();
    struct peer p;
    peer_start_go(&p);
    int s;
    CURL *e = easy_for(NULL, "http://127.0.0.1:%d/", refusing_port(&s));
    cctx_curl_result_t res;
    CHECK_EQ(cctx_curl_perform(cctx_background(), e, NULL, &res), ECONNREFUSED);
    /* The same handle: libcurl may still hold the refused connect's
     * system error, which says nothing about this failure. */
    char url[128];
    snprintf(url, sizeof url, "%s/echo", p.url);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, refuse_body);
    CHECK_EQ(cctx_curl_perform(cctx_background(), e, NULL, &res), ECONNABORTED);
    CHECK_EQ(res.code, CURLE_WRITE_ERROR);
    CHECK_EQ(res.cause.err, 0);
    curl_easy_cleanup(e);
    close(s);
    peer_stop(&p);
    curl_test_end();
}

/* The header promises EPROTO for HTTP/2, TLS and protocol errors. A TLS
 * handshake the server failed for want of a client certificate (libcurl
 * 7.77 and later, OpenSSL's TLS 1.3 alert), an HTTP/3 layer error and a
 * QUIC connection error (its TLS handshake) came out as EIO, as does a
 * handshake without the Encrypted Client Hello asked for (libcurl 8.8). */
TEST(curl_errno_of_tls_and_http3_failures_is_eproto)
{
    CHECK_EQ(cctx__curl_errno_of(CURLE_SSL_CONNECT_ERROR, 0), EPROTO);
    CHECK_EQ(cctx__curl_errno_of(CURLE_HTTP2, 0), EPROTO);
    CHECK_EQ(cctx__curl_errno_of(CURLE_HTTP3, 0), EPROTO);
#if LIBCURL_VERSION_NUM >= 0x074500
    CHECK_EQ(cctx__curl_errno_of(CURLE_QUIC_CONNECT_ERROR, 0), EPROTO);
#endif
#if LIBCURL_VERSION_NUM >= 0x074d00
    CHECK_EQ(cctx__curl_errno_of(CURLE_SSL_CLIENTCERT, 0), EPROTO);
    /* An OS error left from an earlier failure says nothing about it. */
    CHECK_EQ(cctx__curl_errno_of(CURLE_SSL_CLIENTCERT, ECONNREFUSED), EPROTO);
#endif
#if LIBCURL_VERSION_NUM >= 0x080800
    CHECK_EQ(cctx__curl_errno_of(CURLE_ECH_REQUIRED, 0), EPROTO);
#endif
}

/* A listening socket on an ephemeral loopback port, for a peer on a thread. */
static int loopback_listener(int *port)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    CHECK(l >= 0);
    CHECK_EQ(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    CHECK_EQ(listen(l, 4), 0);
    CHECK_EQ(getsockname(l, (struct sockaddr *)&a, &al), 0);
    *port = ntohs(a.sin_port);
    return l;
}

static void *accept_and_close(void *arg)
{
    int l = *(int *)arg;
    int c = accept(l, NULL, NULL);
    if (c >= 0) {
        char buf[1024];
        (void)!read(c, buf, sizeof buf); /* the request, then nothing back */
        close(c);
    }
    return NULL;
}

TEST(curl_errno_got_nothing_after_refused)
{
    /* No peer: a listener that answers nothing, on a thread. */
    curl_test_begin();
    int s;
    CURL *e = easy_for(NULL, "http://127.0.0.1:%d/", refusing_port(&s));
    cctx_curl_result_t res;
    CHECK_EQ(cctx_curl_perform(cctx_background(), e, NULL, &res), ECONNREFUSED);

    int port;
    int l = loopback_listener(&port);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, accept_and_close, &l), 0);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
    curl_easy_setopt(e, CURLOPT_URL, url);
    int err = cctx_curl_perform(cctx_background(), e, NULL, &res);
    CHECK_EQ(pthread_join(t, NULL), 0);
    printf("got nothing: %s (%s)\n", strerror(err), res.msg);
    CHECK_EQ(res.code, CURLE_GOT_NOTHING);
    CHECK(err != ECONNREFUSED);
    CHECK_EQ(err, ECONNRESET);
    curl_easy_cleanup(e);
    close(l);
    close(s);
    curl_test_end();
}

/* Answers one request with a 200 whose one header line is 200,000 bytes. */
static void *answer_with_a_huge_header(void *arg)
{
    int l = *(int *)arg;
    int c = accept(l, NULL, NULL);
    if (c >= 0) {
        char buf[1024];
        (void)!read(c, buf, sizeof buf);
        static char line[200000];
        memset(line, 'a', sizeof line);
        const char *head = "HTTP/1.1 200 OK\r\nX-Big: ";
        (void)!send(c, head, strlen(head), MSG_NOSIGNAL);
        for (size_t off = 0; off < sizeof line;) {
            ssize_t w = send(c, line + off, sizeof line - off, MSG_NOSIGNAL);
            if (w <= 0)
                break; /* libcurl gave up on it and closed */
            off += (size_t)w;
        }
        (void)!send(c, "\r\n\r\n", 4, MSG_NOSIGNAL);
        close(c);
    }
    return NULL;
}

/* The peer's too large header is the peer's doing, said so: EMSGSIZE.
 * Before, libcurl 7.x's "out of memory" came out as ENOMEM, a condition of
 * this machine a caller may shed load for. */
TEST(curl_response_header_too_large_is_emsgsize)
{
    curl_test_begin();
    int port;
    int l = loopback_listener(&port);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, answer_with_a_huge_header, &l), 0);
    CURL *e = easy_for(NULL, "http://127.0.0.1:%d/", port);
    cctx_curl_result_t res;
    int err = cctx_curl_perform(cctx_background(), e, NULL, &res);
    CHECK_EQ(pthread_join(t, NULL), 0);
    printf("huge header: %s (%s, code %d)\n", strerror(err), res.msg, (int)res.code);
    CHECK_EQ(err, EMSGSIZE);
    CHECK_STR(res.msg, "response header too large");
    curl_easy_cleanup(e);
    close(l);
    curl_test_end();
}

TEST(curl_no_done_fd)
{
    curl_test_begin();
    cctx_cancel_t *cancel;
    cctx_t *ctx = cctx_with_cancel(cctx_background(), &cancel);
    int s;
    int port = refusing_port(&s);
    CURL *e[2];
    cctx_curl_multi_t *m = cctx_curl_multi_new();
    CHECK(m);
    for (int i = 0; i < 2; i++) {
        e[i] = easy_for(NULL, "http://127.0.0.1:%d/%d", port, i);
        CHECK_EQ(cctx_curl_multi_add(m, e[i], NULL), i);
    }
    struct fds_used_up u;
    fds_use_up(&u);
    int run = cctx_curl_multi_run(m, ctx);
    cctx_curl_result_t res;
    int one = cctx_curl_perform(ctx, e[0], NULL, &res);
    fds_give_back(&u);

    /* Not the context's doing: it is still live, and nobody says it ended. */
    CHECK_EQ(cctx_err(ctx), 0);
    CHECK_EQ(run, EMFILE);
    for (int i = 0; i < 2; i++) {
        const cctx_curl_result_t *r = cctx_curl_multi_result(m, (size_t)i);
        CHECK_EQ(r->err, EMFILE);
        CHECK_EQ(r->code, CURLE_FAILED_INIT);
        CHECK_EQ(r->cause.err, 0);
        CHECK(strstr(r->msg, "descriptor") != NULL);
    }
    CHECK_EQ(one, EMFILE);
    CHECK_EQ(res.err, EMFILE);
    CHECK_EQ(res.code, CURLE_FAILED_INIT);
    CHECK_EQ(res.cause.err, 0);
    CHECK_STR(res.traceparent, ""); /* nothing was sent */

    /* With descriptors back, both work (and are refused by the port). */
    CHECK_EQ(cctx_curl_perform(ctx, e[0], NULL, &res), ECONNREFUSED);
    for (int i = 0; i < 2; i++)
        CHECK_EQ(cctx_curl_multi_add(m, e[i], NULL), i);
    CHECK_EQ(cctx_curl_multi_run(m, ctx), 0);
    CHECK_EQ(cctx_curl_multi_result(m, 1)->err, ECONNREFUSED);

    for (int i = 0; i < 2; i++)
        curl_easy_cleanup(e[i]);
    cctx_curl_multi_free(m);
    cctx_cancel(cancel);
    cctx_release(ctx);
    close(s);
    curl_test_end();
}

/* An easy handle in a multi handle of the caller's own cannot be added to
 * the library's: the call fails before it sends anything, and its result
 * names no traceparent, though one was made for it. */
TEST(curl_refused_before_sending_names_no_traceparent)
{
    curl_test_begin();
    CURL *e = easy_for(NULL, "http://127.0.0.1:1/");
    CURLM *other = curl_multi_init();
    CHECK(other);
    CHECK_EQ(curl_multi_add_handle(other, e), CURLM_OK);

    cctx_curl_result_t res;
    CHECK_EQ(cctx_curl_perform(cctx_background(), e, NULL, &res), EINVAL);
    CHECK_EQ(res.code, CURLE_BAD_FUNCTION_ARGUMENT);
    CHECK_STR(res.traceparent, "");

    cctx_curl_multi_t *m = cctx_curl_multi_new();
    CHECK(m);
    CHECK_EQ(cctx_curl_multi_add(m, e, NULL), 0);
    CHECK_EQ(cctx_curl_multi_run(m, cctx_background()), 0); /* the transfer failed alone */
    const cctx_curl_result_t *r = cctx_curl_multi_result(m, 0);
    CHECK_EQ(r->err, EINVAL);
    CHECK_STR(r->traceparent, "");
    cctx_curl_multi_free(m);

    /* Out of the other multi handle, the same handle is taken, and fails
     * before it sends: the port refuses. */
    CHECK_EQ(curl_multi_remove_handle(other, e), CURLM_OK);
    CHECK_EQ(cctx_curl_perform(cctx_background(), e, NULL, &res), ECONNREFUSED);
    CHECK_STR(res.traceparent, "");
    curl_multi_cleanup(other);
    curl_easy_cleanup(e);
    curl_test_end();
}

/* A transfer libcurl ends before it sends its request (no URL, a refused
 * connection) names no traceparent; before, it named the one prepared. */
TEST(curl_failed_before_sending_names_no_traceparent)
{
    curl_test_begin();
    CURL *e = curl_easy_init();
    CHECK(e);
    cctx_curl_result_t res;
    CHECK(cctx_curl_perform(cctx_background(), e, NULL, &res) != 0);
    CHECK_EQ(res.code, CURLE_URL_MALFORMAT);
    CHECK_STR(res.traceparent, "");
    curl_easy_cleanup(e);

    e = easy_for(NULL, "http://127.0.0.1:1/");
    cctx_curl_multi_t *m = cctx_curl_multi_new();
    CHECK(m);
    CHECK_EQ(cctx_curl_multi_add(m, e, NULL), 0);
    CHECK_EQ(cctx_curl_multi_run(m, cctx_background()), 0);
    CHECK_EQ(cctx_curl_multi_result(m, 0)->err, ECONNREFUSED);
    CHECK_STR(cctx_curl_multi_result(m, 0)->traceparent, "");
    cctx_curl_multi_free(m);
    curl_easy_cleanup(e);
    curl_test_end();
}

/* Runs the caller's own multi handle until its transfers are done. */
static void run_own_multi(CURLM *multi)
{
    for (int running = 1; running > 0;) {
        CHECK_EQ(curl_multi_perform(multi, &running), CURLM_OK);
        if (running > 0)
            CHECK_EQ(curl_multi_poll(multi, NULL, 0, 1000, NULL), CURLM_OK);
    }
}

/* A refused call (the handle is in the caller's own multi handle, which
 * will run it) must leave the handle as it found it: its header list and
 * timeout belong to the caller's transfer, which is still to run. */
TEST(curl_refused_handle_keeps_its_options)
{
    curl_test_begin();
    struct peer p;
    peer_start_go(&p);
    CURL *e = easy_for(NULL, "%s/echo?theirs", p.url);
    struct curl_slist *mine = curl_slist_append(NULL, "x-test: mine");
    CHECK(mine);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, mine);
    CURLM *other = curl_multi_init();
    CHECK(other);
    CHECK_EQ(curl_multi_add_handle(other, e), CURLM_OK);

    cctx_t *ctx = cctx_with_timeout(cctx_background(), CCTX_SEC(30), NULL);
    cctx_curl_result_t res;
    CHECK_EQ(cctx_curl_perform(ctx, e, NULL, &res), EINVAL);
    cctx_curl_multi_t *m = cctx_curl_multi_new();
    CHECK(m);
    CHECK_EQ(cctx_curl_multi_add(m, e, NULL), 0);
    CHECK_EQ(cctx_curl_multi_run(m, ctx), 0);
    CHECK_EQ(cctx_curl_multi_result(m, 0)->err, EINVAL);
    cctx_curl_multi_free(m);

    /* The caller's transfer goes out with the caller's headers, and none
     * of the refused calls'. */
    run_own_multi(other);
    char line[1024], v[600];
    CHECK(peer_line(&p, "req /echo?theirs", 5000, line, sizeof line, NULL));
    CHECK(peer_field(line, "x-test", v, sizeof v));
    CHECK_STR(v, "mine");
    CHECK(peer_field(line, "grpc-timeout", v, sizeof v));
    CHECK_STR(v, "");
    CHECK(peer_field(line, "traceparent", v, sizeof v));
    CHECK_STR(v, "");

    CHECK_EQ(curl_multi_remove_handle(other, e), CURLM_OK);
    curl_multi_cleanup(other);
    curl_easy_cleanup(e);
    curl_slist_free_all(mine);
    cctx_release(ctx);
    peer_stop(&p);
    curl_test_end();
}

struct nested {
    CURL *inner;
    cctx_curl_multi_t *m;
    int perform_err, run_err;
    bool called;
};

/* A write callback that tries both calls from inside the transfer. */
static size_t nested_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    (void)ptr;
    struct nested *n = userdata;
    if (!n->called) {
        n->called = true;
        cctx_curl_result_t r;
        n->perform_err = cctx_curl_perform(cctx_background(), n->inner, NULL, &r);
        n->run_err = cctx_curl_multi_run(n->m, cctx_background());
    }
    return size * nmemb;
}

TEST(curl_nested_call_refused)
{
    curl_test_begin();
    struct peer p;
    peer_start_go(&p);
    cctx_curl_multi_t *outer = cctx_curl_multi_new(), *other = cctx_curl_multi_new();
    CURL *inner = easy_for(NULL, "%s/echo?inner", p.url);
    CURL *other_easy = easy_for(NULL, "%s/echo?other", p.url);
    CHECK_EQ(cctx_curl_multi_add(other, other_easy, NULL), 0);
    struct nested n = {.inner = inner, .m = other};
    CURL *e = easy_for(NULL, "%s/echo?outer", p.url);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, nested_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &n);

    /* From a fan-out's callback: the thread's own multi handle is another
     * one, which libcurl alone would let run. */
    CHECK_EQ(cctx_curl_multi_add(outer, e, NULL), 0);
    CHECK_EQ(cctx_curl_multi_run(outer, cctx_background()), 0);
    CHECK_EQ(cctx_curl_multi_result(outer, 0)->err, 0);
    CHECK(n.called);
    CHECK_EQ(n.perform_err, EINVAL);
    CHECK_EQ(n.run_err, EINVAL);

    /* From cctx_curl_perform's callback. */
    n.called = false;
    n.perform_err = n.run_err = 0;
    cctx_curl_result_t res;
    CHECK_EQ(cctx_curl_perform(cctx_background(), e, NULL, &res), 0);
    CHECK(n.called);
    CHECK_EQ(n.perform_err, EINVAL);
    CHECK_EQ(n.run_err, EINVAL);

    /* Nothing nested reached the server; outside a callback both work. */
    CHECK(peer_line(&p, "req /echo?outer", 2000, NULL, 0, NULL));
    CHECK(peer_line(&p, "req /echo?outer", 2000, NULL, 0, NULL));
    CHECK_EQ(cctx_curl_perform(cctx_background(), inner, NULL, &res), 0);
    char line[256];
    CHECK(peer_line(&p, "req ", 2000, line, sizeof line, NULL));
    CHECK(strncmp(line, "req /echo?inner", 15) == 0);
    CHECK_EQ(cctx_curl_multi_run(other, cctx_background()), 0);
    CHECK_EQ(cctx_curl_multi_result(other, 0)->err, 0);

    curl_easy_cleanup(e);
    curl_easy_cleanup(inner);
    curl_easy_cleanup(other_easy);
    cctx_curl_multi_free(outer);
    cctx_curl_multi_free(other);
    peer_stop(&p);
    curl_test_end();
}

/* A write callback that frees the set whose run it is called from. */
static size_t free_set_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    (void)ptr;
    cctx_curl_multi_t **m = userdata;
    if (*m) {
        cctx_curl_multi_free(*m);
        *m = NULL;
    }
    return size * nmemb;
}

/* cctx_curl_multi_free from a callback of the set's own run freed the set
 * under the run, which went on reading its transfers (AddressSanitizer:
 * heap-use-after-free), while libcurl refused to clean up its multi handle
 * from its own callback, so the handle's descriptors and connections were
 * never closed. The set is freed when that run ends. */
TEST(curl_multi_free_inside_its_own_run_frees_the_set_after_it)
{
    curl_test_begin();
    struct peer p;
    peer_start_go(&p);
    CHECK(cctx_done_fd(cctx_background()) >= 0); /* made on first use, kept */
    CURL *e[2];
    for (int i = 0; i < 2; i++)
        e[i] = easy_for(NULL, "%s/slow?ms=%d&i=%d", p.url, 200 * i, i);
    int fds = count_open_fds();
    cctx_curl_multi_t *m = cctx_curl_multi_new(), *gone = m;
    CHECK(m);
    curl_easy_setopt(e[0], CURLOPT_WRITEFUNCTION, free_set_cb);
    curl_easy_setopt(e[0], CURLOPT_WRITEDATA, &m);
    for (int i = 0; i < 2; i++)
        CHECK_EQ(cctx_curl_multi_add(gone, e[i], NULL), i);
    CHECK_EQ(cctx_curl_multi_run(gone, cctx_background()), 0);
    CHECK(m == NULL); /* the callback ran */
    for (int i = 0; i < 2; i++)
        CHECK(peer_line(&p, "req /slow", 5000, NULL, 0, NULL));
    /* Both handles are out of the freed set's multi handle: plain libcurl
     * takes them. */
    for (int i = 0; i < 2; i++) {
        curl_easy_setopt(e[i], CURLOPT_WRITEFUNCTION, body_cb);
        curl_easy_setopt(e[i], CURLOPT_WRITEDATA, NULL);
        CHECK_EQ(curl_easy_perform(e[i]), CURLE_OK);
        CHECK(peer_line(&p, "req /slow", 5000, NULL, 0, NULL));
        curl_easy_cleanup(e[i]);
    }
    CHECK_EQ(count_open_fds() - fds, 0);
    peer_stop(&p);
    curl_test_end();
}

struct unmarked {
    cctx_t *late; /* its deadline due, not yet marked, when fn runs */
    CURL *easy;
    int marked, err, run_err, run_res;
    int fds, run_fds; /* descriptors each call left open */
    int64_t remaining, took, run_took;
    cctx_curl_result_t res;
};

/* An after-function of an earlier deadline, run by the fake clock's
 * advance before it marks the later one. */
static void call_on_unmarked(void *arg)
{
    struct unmarked *u = arg;
    u->marked = cctx_err(u->late);
    u->remaining = cctx_remaining(u->late);
    int fds = count_open_fds();
    int64_t start = real_now();
    u->err = cctx_curl_perform(u->late, u->easy, NULL, &u->res);
    u->took = real_now() - start;
    u->fds = count_open_fds() - fds;
    cctx_curl_multi_t *m = cctx_curl_multi_new();
    CHECK_EQ(cctx_curl_multi_add(m, u->easy, NULL), 0);
    fds = count_open_fds();
    start = real_now();
    u->run_err = cctx_curl_multi_run(m, u->late);
    u->run_took = real_now() - start;
    u->run_fds = count_open_fds() - fds;
    u->run_res = cctx_curl_multi_result(m, 0)->err;
    cctx_curl_multi_free(m);
}

TEST(curl_spent_unmarked_fails_at_once)
{
    /* Under the fake clock, one advance passes two deadlines at the same
     * time; the first one's after-function runs on the advancing thread
     * while the second is due but unmarked, and only that thread can mark
     * it: a call that waited for the mark would wait its whole bound. It
     * would wait on the context's done descriptor (cctx_done_fd), which
     * the context opens when first asked and keeps until it is freed, so
     * the calls must leave no descriptor open: a check that does not
     * depend on how long the wait would be (a short poll, shorter than a
     * loaded machine may take to run the calls at all). (Of two equal
     * deadlines armed on one thread, the first armed is the first fired;
     * the test is skipped if that ever changes.) */
    curl_test_begin();
    cctx_fake_clock_start(CCTX_SEC(1000));
    cctx_t *early = cctx_with_timeout(cctx_background(), CCTX_SEC(1), NULL);
    int s;
    struct unmarked u = {
        .late = cctx_with_timeout(cctx_background(), CCTX_SEC(1), NULL),
        .easy = easy_for(NULL, "http://127.0.0.1:%d/", refusing_port(&s)),
    };
    cctx_after_t reg = {0};
    CHECK_EQ(cctx_after_func(early, &reg, call_on_unmarked, &u), 0);
    cctx_fake_clock_advance(CCTX_SEC(3));
    if (u.marked != 0)
        SKIP("the later deadline was marked before the earlier one's after-function ran");
    CHECK(u.remaining <= 0);
    printf("spent, unmarked: perform %.3f ms, run %.3f ms\n", u.took / 1e6, u.run_took / 1e6);
    CHECK_EQ(u.err, ETIMEDOUT);
    CHECK_EQ(u.fds, 0);
    CHECK_EQ(u.res.code, CURLE_OPERATION_TIMEDOUT);
    CHECK_EQ(u.res.cause.err, ETIMEDOUT);
    CHECK_EQ(u.res.cause.when, CCTX_SEC(1001)); /* the deadline */
    CHECK(u.res.msg && u.res.msg[0] != '\0');
    CHECK_STR(u.res.traceparent, "");
    CHECK_EQ(u.run_err, ETIMEDOUT);
    CHECK_EQ(u.run_res, ETIMEDOUT);
    CHECK_EQ(u.run_fds, 0);
    CHECK_EQ(cctx_err(u.late), ETIMEDOUT);

    curl_easy_cleanup(u.easy);
    cctx_release(u.late);
    cctx_release(early);
    cctx_fake_clock_stop();
    close(s);
    curl_test_end();
}

/* cctx_curl_thread_cleanup from a callback of the transfer that the
 * thread's multi handle runs used to let go of that handle there; libcurl
 * refuses to free a multi handle from its own callback, so the handle and
 * its connections leaked (LeakSanitizer reports it). It does nothing there;
 * the handle and the call go on. */
static size_t cleanup_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    (void)ptr;
    *(int *)userdata += 1;
    cctx_curl_thread_cleanup();
    return size * nmemb;
}

TEST(curl_thread_cleanup_inside_a_callback_does_nothing)
{
    curl_test_begin();
    struct peer p;
    peer_start_go(&p);
    int calls = 0;
    CURL *e = easy_for(NULL, "%s/echo?cleanup", p.url);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, cleanup_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &calls);
    cctx_curl_result_t res;
    CHECK_EQ(cctx_curl_perform(cctx_background(), e, NULL, &res), 0);
    CHECK(calls > 0);
    CHECK_EQ(res.code, CURLE_OK);
    CHECK_EQ(cctx_curl_perform(cctx_background(), e, NULL, &res), 0);
    CHECK_EQ(res.code, CURLE_OK);
    CHECK(peer_line(&p, "req /echo?cleanup", 2000, NULL, 0, NULL));
    CHECK(peer_line(&p, "req /echo?cleanup", 2000, NULL, 0, NULL));
    curl_easy_cleanup(e);
    peer_stop(&p);
    curl_test_end();
}

/* libcurl's own timeout is the budget in milliseconds, rounded up, and a
 * long. A budget whose milliseconds do not fit (a 32-bit long holds about
 * 24.8 days of them) sets none, rather than one cut to a shorter or
 * negative count: libcurl would give up early or refuse the option. */
TEST(curl_timeout_in_milliseconds_fits_its_long)
{
    CHECK_EQ(cc_timeout_ms(1, LONG_MAX), 1L);
    CHECK_EQ(cc_timeout_ms(CCTX_MSEC(1), LONG_MAX), 1L);
    CHECK_EQ(cc_timeout_ms(CCTX_MSEC(1) + 1, LONG_MAX), 2L);
    CHECK_EQ(cc_timeout_ms(0, LONG_MAX), 0L);
    CHECK_EQ(cc_timeout_ms(CCTX_NO_DEADLINE, LONG_MAX), 0L);
    if (LONG_MAX == INT64_MAX) /* the furthest deadline fits a 64-bit long */
        CHECK_EQ(cc_timeout_ms(CCTX_NO_DEADLINE - 1, LONG_MAX), INT64_MAX / CCTX_MSEC(1) + 1);

    const long max32 = INT32_MAX;
    CHECK_EQ(cc_timeout_ms(CCTX_MSEC(max32), max32), max32);
    CHECK_EQ(cc_timeout_ms(CCTX_MSEC(max32) + 1, max32), 0L);
    CHECK_EQ(cc_timeout_ms(CCTX_SEC(30 * 24 * 3600), max32), 0L);          /* 30 days */
    CHECK_EQ(cc_timeout_ms(CCTX_MSEC(INT64_C(1) << 32), max32), 0L);       /* would wrap to 0 */
    CHECK_EQ(cc_timeout_ms(CCTX_MSEC((INT64_C(1) << 32) + 5), max32), 0L); /* to 5 */
}

/* A handle reused after a transfer that sent, then refused before it sends
 * (no URL): libcurl still shows the last request's size, and the result
 * named the traceparent it never sent. */
TEST(curl_reused_handle_refused_before_sending_names_no_traceparent)
{
    curl_test_begin();
    struct peer p;
    peer_start_go(&p);
    CURL *e = easy_for(NULL, "%s/echo?reuse", p.url);
    cctx_curl_result_t res;
    CHECK_EQ(cctx_curl_perform(cctx_background(), e, NULL, &res), 0);
    CHECK_EQ(strlen(res.traceparent), CCTX_TRACEPARENT_SIZE - 1);
    CHECK_EQ(curl_easy_setopt(e, CURLOPT_URL, NULL), CURLE_OK);
    CHECK(cctx_curl_perform(cctx_background(), e, NULL, &res) != 0);
    CHECK_EQ(res.code, CURLE_URL_MALFORMAT);
    CHECK_STR(res.traceparent, "");
    curl_easy_cleanup(e);
    peer_stop(&p);
    curl_test_end();
}
