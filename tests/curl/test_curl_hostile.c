/* SPDX-License-Identifier: MIT */
/* cctx-curl against a peer that misbehaves: a response whose header block
 * grows past libcurl's limits (many lines, endless interim responses, a
 * status line with no end), told apart from a connection the peer resets;
 * a reply that is not HTTP, told apart from a URL libcurl cannot use. */
#define _GNU_SOURCE
#include <cctx/curl.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "peer.h"

/* One scripted answer: head, then unit `count` times, then tail; with
 * reset, the connection is reset (SO_LINGER 0) rather than closed. next,
 * when set, is the answer on the next connection (a redirect's). */
struct answer {
    int listener;
    const char *head, *unit, *tail;
    size_t count;
    bool reset;
    const struct answer *next;
};

static bool send_all(int c, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = send(c, s, n, MSG_NOSIGNAL);
        if (w <= 0)
            return false; /* libcurl gave up on it and closed */
        s += w;
        n -= (size_t)w;
    }
    return true;
}

static void serve(int c, const struct answer *a)
{
    char buf[4096];
    (void)!read(c, buf, sizeof buf); /* the request */
    bool ok = send_all(c, a->head, strlen(a->head));
    for (size_t i = 0; ok && i < a->count; i++)
        ok = send_all(c, a->unit, strlen(a->unit));
    if (ok && a->tail)
        (void)send_all(c, a->tail, strlen(a->tail));
    if (a->reset) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        (void)setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    close(c);
}

static void *answer_once(void *arg)
{
    struct answer *a = arg;
    for (const struct answer *s = a; s; s = s->next) {
        /* A libcurl that does not come (it refused the URL first) fails
         * the test rather than hanging it. */
        struct pollfd p = {.fd = a->listener, .events = POLLIN};
        if (poll(&p, 1, 20000) != 1)
            return NULL;
        int c = accept(a->listener, NULL, NULL);
        if (c < 0)
            return NULL;
        serve(c, s);
    }
    return NULL;
}

/* Runs one GET against the answer on a loopback listener. */
static int get_answer(struct answer *a, cctx_curl_result_t *res)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    CHECK(l >= 0);
    CHECK_EQ(bind(l, (struct sockaddr *)&sa, sizeof sa), 0);
    CHECK_EQ(listen(l, 4), 0);
    CHECK_EQ(getsockname(l, (struct sockaddr *)&sa, &sl), 0);
    a->listener = l;
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, answer_once, a), 0);
    CURL *e = easy_for(NULL, "http://127.0.0.1:%d/", ntohs(sa.sin_port));
    CHECK_EQ(curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L), CURLE_OK);
    int err = cctx_curl_perform(cctx_background(), e, NULL, res);
    CHECK_EQ(pthread_join(t, NULL), 0);
    printf("%s...: %s (%s, code %d)\n", a->head, strerror(err), res->msg, (int)res->code);
    curl_easy_cleanup(e);
    close(l);
    return err;
}

/* 4000 lines of 100 bytes, each well inside libcurl's limit for a line
 * (100 KB), past its limit for a response's header block (300 KB), which
 * every libcurl reports as a receive failure with no system error. Before,
 * that came out as ECONNRESET, a reset that never happened, which a caller
 * retries. */
TEST(curl_header_block_too_large_is_emsgsize)
{
    curl_test_begin();
    struct answer a = {
        .head = "HTTP/1.1 200 OK\r\n",
        .unit = "X-Filler: 0123456789012345678901234567890123456789"
                "0123456789012345678901234567890123456\r\n",
        .count = 4000,
        .tail = "\r\n",
    };
    cctx_curl_result_t res;
    CHECK_EQ(get_answer(&a, &res), EMSGSIZE);
    CHECK_STR(res.msg, "response header too large");
    CHECK_EQ(res.cause.err, 0);
    curl_test_end();
}

/* Interim responses without end: each is small, their header block (which
 * libcurl counts for the final response's) is not. */
TEST(curl_endless_interim_responses_are_emsgsize)
{
    curl_test_begin();
    struct answer a = {
        .head = "HTTP/1.1 102 Processing\r\n\r\n",
        .unit = "HTTP/1.1 102 Processing\r\n\r\n",
        .count = 20000,
    };
    cctx_curl_result_t res;
    CHECK_EQ(get_answer(&a, &res), EMSGSIZE);
    CHECK_STR(res.msg, "response header too large");
    curl_test_end();
}

/* A status line of 200 KB: before 8.6 libcurl says out of memory before it
 * has a status or a header line, which came out as ENOMEM, a shortage of
 * this machine's. */
TEST(curl_status_line_too_large_is_emsgsize)
{
    curl_test_begin();
    struct answer a = {
        .head = "HTTP/1.1 200 ",
        .unit = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        .count = 4000,
        .tail = "\r\n\r\n",
    };
    cctx_curl_result_t res;
    CHECK_EQ(get_answer(&a, &res), EMSGSIZE);
    CHECK_STR(res.msg, "response header too large");
    curl_test_end();
}

/* What must stay a reset: the peer resets the connection in the body, after
 * a header block of normal size. */
TEST(curl_reset_in_the_body_stays_econnreset)
{
    curl_test_begin();
    struct answer a = {
        .head = "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n",
        .unit = "body",
        .count = 10,
        .reset = true,
    };
    cctx_curl_result_t res;
    CHECK_EQ(get_answer(&a, &res), ECONNRESET);
    CHECK_EQ(res.code, CURLE_RECV_ERROR);
    curl_test_end();
}

/* A peer that answers in something else than HTTP (here an SSH banner):
 * libcurl refuses the HTTP/0.9 it takes it for as an unsupported protocol,
 * which came out as EINVAL, a bad URL or option of the caller's. */
TEST(curl_reply_not_http_is_eproto)
{
    curl_test_begin();
    struct answer a = {.head = "SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"};
    cctx_curl_result_t res;
    CHECK_EQ(get_answer(&a, &res), EPROTO);
    CHECK_EQ(res.code, CURLE_UNSUPPORTED_PROTOCOL);
    curl_test_end();
}

/* What must stay EINVAL: a URL of a scheme libcurl does not know, refused
 * before anything is sent. */
TEST(curl_unsupported_scheme_stays_einval)
{
    curl_test_begin();
    cctx_curl_result_t res;
    CURL *e = easy_for(NULL, "nosuchscheme://127.0.0.1/");
    CHECK_EQ(cctx_curl_perform(cctx_background(), e, NULL, &res), EINVAL);
    CHECK_EQ(res.code, CURLE_UNSUPPORTED_PROTOCOL);
    curl_easy_cleanup(e);
    curl_test_end();
}

/* A redirect to a scheme libcurl does not know: the peer's URL, but libcurl
 * refuses it as it does the caller's, with the redirect's status. */
TEST(curl_redirect_to_unsupported_scheme_stays_einval)
{
    curl_test_begin();
    struct answer a = {.head = "HTTP/1.1 302 Found\r\nLocation: nosuchscheme://127.0.0.1/\r\n"
                               "Connection: close\r\nContent-Length: 0\r\n\r\n"};
    cctx_curl_result_t res;
    CHECK_EQ(get_answer(&a, &res), EINVAL);
    CHECK_EQ(res.code, CURLE_UNSUPPORTED_PROTOCOL);
    curl_test_end();
}

/* A reply that is not HTTP after a redirect: libcurl keeps the redirect's
 * status and says nothing else that tells it from the refused redirect
 * above, so it stays EINVAL, as the documentation says. */
TEST(curl_reply_not_http_after_redirect_stays_einval)
{
    curl_test_begin();
    static const struct answer ssh = {.head = "SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"};
    struct answer a = {.head = "HTTP/1.1 302 Found\r\nLocation: /next\r\n"
                               "Connection: close\r\nContent-Length: 0\r\n\r\n",
                       .next = &ssh};
    cctx_curl_result_t res;
    CHECK_EQ(get_answer(&a, &res), EINVAL);
    CHECK_EQ(res.code, CURLE_UNSUPPORTED_PROTOCOL);
    curl_test_end();
}
