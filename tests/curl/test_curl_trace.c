/* SPDX-License-Identifier: MIT */
/* cctx-curl and a trace the caller filled in by hand: cctx_with_trace
 * checks only the length of its state, so what reaches the wire must be
 * checked where the headers are made. */
#define _GNU_SOURCE
#include <cctx/curl.h>

#include "harness.h"
#include "peer.h"
#include "support.h"

/* A tracestate with a line break in it would end the header and start one
 * of the caller's choosing: it is not sent (the traceparent still is). */
TEST(curl_tracestate_with_a_line_break_is_not_sent)
{
    curl_test_begin();
    struct peer p;
    peer_start_go(&p);
    cctx_trace_t tr;
    CHECK_EQ(cctx_trace_new(&tr), 0);
    static const char evil[] = "k=v\r\nx-test: injected";
    memcpy(tr.state, evil, sizeof evil);
    tr.state_len = (uint16_t)(sizeof evil - 1);
    cctx_t *traced = cctx_with_trace(cctx_background(), &tr);
    CHECK(traced);
    CURL *e = easy_for(NULL, "%s/echo?state", p.url);
    cctx_curl_result_t res;
    CHECK_EQ(cctx_curl_perform(traced, e, NULL, &res), 0);

    char line[1024], v[600];
    CHECK(peer_line(&p, "req /echo?state", 5000, line, sizeof line, NULL));
    CHECK(peer_field(line, "x-test", v, sizeof v));
    CHECK_STR(v, "");
    CHECK(peer_field(line, "tracestate", v, sizeof v));
    CHECK_STR(v, "");
    CHECK(peer_field(line, "traceparent", v, sizeof v));
    CHECK_STR(v, res.traceparent);
    cctx_trace_t got;
    CHECK_EQ(cctx_traceparent_parse(v, strlen(v), &got), 0);
    CHECK(memcmp(got.trace_id, tr.trace_id, 16) == 0);

    curl_easy_cleanup(e);
    cctx_release(traced);
    peer_stop(&p);
    curl_test_end();
}

/* A trace with no trace-id (all zero, as a zeroed struct has) cannot be
 * continued: the call starts a new trace, as a W3C hop does with a
 * traceparent it cannot read, instead of sending an empty header. */
TEST(curl_trace_without_an_id_starts_a_new_one)
{
    curl_test_begin();
    struct peer p;
    peer_start_go(&p);
    cctx_trace_t tr;
    memset(&tr, 0, sizeof tr);
    CHECK_EQ(cctx_tracestate_parse("k=v", 3, &tr), 0);
    cctx_t *traced = cctx_with_trace(cctx_background(), &tr);
    CHECK(traced);
    CURL *e = easy_for(NULL, "%s/echo?zero", p.url);
    cctx_curl_result_t res;
    CHECK_EQ(cctx_curl_perform(traced, e, NULL, &res), 0);

    char line[1024], v[600];
    CHECK(peer_line(&p, "req /echo?zero", 5000, line, sizeof line, NULL));
    CHECK(peer_field(line, "traceparent", v, sizeof v));
    CHECK_STR(v, res.traceparent);
    cctx_trace_t got;
    CHECK_EQ(cctx_traceparent_parse(v, strlen(v), &got), 0);
    /* A new trace owes nothing to the old one's state. */
    CHECK(peer_field(line, "tracestate", v, sizeof v));
    CHECK_STR(v, "");

    curl_easy_cleanup(e);
    cctx_release(traced);
    peer_stop(&p);
    curl_test_end();
}
