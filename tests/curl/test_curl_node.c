/* SPDX-License-Identifier: MIT */
/* cctx_curl_perform against Node's http server (tests/curl/peers/httppeer.js):
 * a cancel closes the request, which Node reports as an aborted response. */
#define _GNU_SOURCE
#include <cctx/curl.h>

#include "harness.h"
#include "peer.h"
#include "support.h"

TEST(curl_node_abort)
{
    const char *node = peer_node();
    if (!node)
        SKIP("node is not installed");
    curl_test_begin();
    struct peer p;
    const char *argv[] = {node, peer_node_script(), NULL};
    CHECK(peer_start(&p, argv));
    cctx_cancel_t *cancel;
    cctx_t *ctx = cctx_with_cancel(cctx_background(), &cancel);
    CURL *e = easy_for(NULL, "%s/hang", p.url);
    struct canceller k; /* cancels while the call sleeps on ctx's descriptor */
    canceller_start_polled(&k, &p, cancel, "req /hang", 1, thread_id(), cctx_done_fd(ctx));
    cctx_curl_result_t res;
    CHECK_EQ(cctx_curl_perform(ctx, e, NULL, &res), ECANCELED);
    int64_t returned = mono_now();
    canceller_join(&k);
    CHECK(k.ok);
    CHECK(k.polled);
    /* /hang never answers and ctx has no deadline: a call the cancel did
     * not end would not return at all. The bound is loose: the machine may
     * be slow, and the sanitizers slower. */
    CHECK(returned - k.at < CCTX_SEC(5));
    char line[256];
    int64_t seen;
    CHECK(peer_line(&p, "closed /hang", 5000, line, sizeof line, &seen));
    printf("cancel to return %.3f ms, to Node's close %.3f ms\n", (returned - k.at) / 1e6,
           (seen - k.at) / 1e6);
    CHECK_STR(line, "closed /hang aborted");

    /* An answered request closes as finished. */
    struct body b;
    curl_easy_cleanup(e);
    e = easy_for(&b, "%s/echo", p.url);
    CHECK_EQ(cctx_curl_perform(cctx_background(), e, NULL, &res), 0);
    CHECK_STR(b.data, "ok");
    CHECK(peer_line(&p, "closed /echo", 5000, line, sizeof line, NULL));
    CHECK_STR(line, "closed /echo finished");
    curl_easy_cleanup(e);
    cctx_release(ctx);
    peer_stop(&p);
    curl_test_end();
}
