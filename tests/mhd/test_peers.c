/* SPDX-License-Identifier: MIT */
/*
 * Clients nobody here wrote: the curl command line tool, Go's net/http and
 * Node's http, each hanging up mid-request in its own way (a time limit, a
 * context, an AbortSignal). The handler must see its context end with 499
 * "client disconnected". A peer that is not installed skips the test (exit
 * 77), never passes it.
 */
#include "harness.h"
#include "mhd_support.h"
#include "support.h"

/* Where the peers are sent: the /slow of the server check_peer_hangs_up
 * starts. The tests name it in their peer's arguments; it is filled in once
 * the server has its port. */
static char url[64];

/* Starts a server whose handler blocks on /slow until its context ends, runs
 * the peer argv (which names url), and checks that the peer exited with
 * `status` and that the handler saw its context end, with 499 "client
 * disconnected", less than 3 s after it started. */
static void check_peer_hangs_up(char *const argv[], int status)
{
    struct probe p;
    probe_init(&p);
    p.block = true;
    cctx_mhd_t *s = start_probe_server(&p, NULL);
    snprintf(url, sizeof url, "http://127.0.0.1:%u/slow", cctx_mhd_port(s));
    int st = run_peer(argv);
    printf("%s exited with %d (expected %d)\n", argv[0], st, status);
    CHECK_EQ(st, status);
    CHECK(probe_wait_ended(&p, 1, 5000));
    printf("handler saw the end %.1f ms after it started\n",
           (double)(p.t_ended - p.t_started) / 1e6);
    CHECK_EQ(p.cause.code, 499);
    CHECK_STR(p.msg, "client disconnected");
    CHECK(p.t_ended - p.t_started < CCTX_SEC(3));
    cctx_mhd_free(s);
    probe_destroy(&p);
}

TEST(mhd_peer_curl_hangup)
{
    if (!peer_exists(MHD_PEER_CURL))
        SKIP("curl not found");
    /* curl gives up after 0.2 s: exit status 28, "operation timed out". */
    char *argv[] = {MHD_PEER_CURL, "-s", "--max-time", "0.2", url, NULL};
    check_peer_hangs_up(argv, 28);
}

TEST(mhd_peer_go_context_cancel)
{
    if (!peer_exists(MHD_PEER_GO))
        SKIP("Go peer not built (Go 1.19 not found)");
    /* Its context times out after 200 ms; it exits 0 if the request failed
     * with the context's error. */
    char *argv[] = {MHD_PEER_GO, url, "200ms", NULL};
    check_peer_hangs_up(argv, 0);
}

TEST(mhd_peer_node_abort_signal)
{
    if (!peer_exists(MHD_PEER_NODE))
        SKIP("node not found");
    /* An AbortSignal aborts the request after 200 ms; it exits 0 if the
     * request was aborted. */
    char *argv[] = {MHD_PEER_NODE, MHD_PEER_NODE_SCRIPT, url, "200", NULL};
    check_peer_hangs_up(argv, 0);
}

/* A server that answers before it reads the body (a deadline spent on
 * arrival, a Content-Length over max_body) closes the connection with the
 * body still coming. Closed at once, the socket has unread bytes, so the
 * kernel resets it, and a client still writing its body gets EPIPE or
 * ECONNRESET: Go's net/http client then reports that write error instead
 * of the answer (Go's own server, answering the same way, keeps the
 * connection open a moment for this). Before the server lingered, 1 to 13
 * of 40 such POSTs of 500 KB lost their 504 (run to run), and 3 to 17 of
 * 20 of 20 MB their 413. */
static void check_go_posts_get(const char *bytes, const char *times, const char *grpc_timeout,
                               int status)
{
    if (!peer_exists(MHD_PEER_GO))
        SKIP("Go peer not built (Go 1.19 not found)");
    cctx_mhd_t *s = cctx_mhd_start(cctx_background(), NULL, NULL, NULL);
    CHECK(s != NULL);
    snprintf(url, sizeof url, "http://127.0.0.1:%u/upload", cctx_mhd_port(s));
    char st[8];
    snprintf(st, sizeof st, "%d", status);
    char *argv[] = {MHD_PEER_GO,          "post", url, (char *)bytes, (char *)times, st,
                    (char *)grpc_timeout, NULL};
    CHECK_EQ(run_peer(argv), 0);
    cctx_mhd_free(s);
}

TEST(mhd_peer_go_post_spent_budget_gets_504)
{
    check_go_posts_get("500000", "40", "0n", 504); /* under max_body */
}

TEST(mhd_peer_go_post_too_large_gets_413)
{
    check_go_posts_get("20000000", "20", NULL, 413);
}
