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

static char url[64];

TEST(mhd_peer_curl_hangup)
{
    if (!peer_exists(MHD_PEER_CURL))
        SKIP("curl not found");
    struct probe p;
    probe_init(&p);
    p.block = true;
    cctx_mhd_t *s = start_probe_server(&p, NULL);
    snprintf(url, sizeof url, "http://127.0.0.1:%u/slow", cctx_mhd_port(s));
    char *argv[] = {MHD_PEER_CURL, "-s", "--max-time", "0.2", url, NULL};
    int st = run_peer(argv);
    printf("curl exited with %d (28: timed out)\n", st);
    CHECK_EQ(st, 28);
    CHECK(probe_wait_ended(&p, 1, 5000));
    printf("handler saw the end %.1f ms after it started\n",
           (double)(p.t_ended - p.t_started) / 1e6);
    CHECK_EQ(p.cause.code, 499);
    CHECK_STR(p.msg, "client disconnected");
    CHECK(p.t_ended - p.t_started < CCTX_SEC(3));
    cctx_mhd_free(s);
    probe_destroy(&p);
}

TEST(mhd_peer_go_context_cancel)
{
    if (!peer_exists(MHD_PEER_GO))
        SKIP("Go peer not built (Go 1.19 not found)");
    struct probe p;
    probe_init(&p);
    p.block = true;
    cctx_mhd_t *s = start_probe_server(&p, NULL);
    snprintf(url, sizeof url, "http://127.0.0.1:%u/slow", cctx_mhd_port(s));
    char *argv[] = {MHD_PEER_GO, url, "200ms", NULL};
    int st = run_peer(argv);
    CHECK_EQ(st, 0);
    CHECK(probe_wait_ended(&p, 1, 5000));
    printf("handler saw the end %.1f ms after it started\n",
           (double)(p.t_ended - p.t_started) / 1e6);
    CHECK_EQ(p.cause.code, 499);
    CHECK_STR(p.msg, "client disconnected");
    CHECK(p.t_ended - p.t_started < CCTX_SEC(3));
    cctx_mhd_free(s);
    probe_destroy(&p);
}

TEST(mhd_peer_node_abort_signal)
{
    if (!peer_exists(MHD_PEER_NODE))
        SKIP("node not found");
    struct probe p;
    probe_init(&p);
    p.block = true;
    cctx_mhd_t *s = start_probe_server(&p, NULL);
    snprintf(url, sizeof url, "http://127.0.0.1:%u/slow", cctx_mhd_port(s));
    char *argv[] = {MHD_PEER_NODE, MHD_PEER_NODE_SCRIPT, url, "200", NULL};
    int st = run_peer(argv);
    CHECK_EQ(st, 0);
    CHECK(probe_wait_ended(&p, 1, 5000));
    printf("handler saw the end %.1f ms after it started\n",
           (double)(p.t_ended - p.t_started) / 1e6);
    CHECK_EQ(p.cause.code, 499);
    CHECK_STR(p.msg, "client disconnected");
    CHECK(p.t_ended - p.t_started < CCTX_SEC(3));
    cctx_mhd_free(s);
    probe_destroy(&p);
}
