/* SPDX-License-Identifier: MIT */
/*
 * Shutdown: what cctx_cancel_and_wait costs when nothing else holds the
 * context (against the same derive + cancel + release without it), and how
 * late a grace period ends on the real clock.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cctx.h>

#include "harness.h"

static cctx_t *must(cctx_t *ctx)
{
    if (!ctx)
        bench_fatal("context derivation failed: %s", strerror(errno));
    return ctx;
}

/* Derive, cancel, release: the row to compare with. */
static void cancel_plain(bench_b *b, void *arg)
{
    (void)arg;
    for (int64_t i = 0; i < b->n; i++) {
        cctx_cancel_t *cancel;
        cctx_t *c = must(cctx_with_cancel(cctx_background(), &cancel));
        cctx_cancel(cancel);
        cctx_release(c);
    }
}

/* The same with cctx_cancel_and_wait (and a report stream, which is only
 * written on a timeout) instead of cctx_cancel. */
static void cancel_and_wait_alone(bench_b *b, void *arg)
{
    (void)arg;
    for (int64_t i = 0; i < b->n; i++) {
        cctx_cancel_t *cancel;
        cctx_t *c = must(cctx_with_cancel(cctx_background(), &cancel));
        if (cctx_cancel_and_wait(cancel, CCTX_SEC(1), stderr) != 0)
            bench_fatal("cctx_cancel_and_wait: held by nobody, yet it timed out");
        cctx_release(c);
    }
}

/* The parent ends; a grace context of 1-2 ms ends. Lateness: its cause's
 * `when` minus the parent's `when` plus the grace. */
static void grace_lateness(bench_b *b, void *arg)
{
    (void)arg;
    int64_t *late = malloc(sizeof *late * (size_t)b->n);
    if (!late)
        bench_fatal("out of memory");
    uint64_t rng = 0x9e3779b97f4a7c15u;
    double sum = 0;
    bench_reset_timer(b);
    for (int64_t i = 0; i < b->n; i++) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        int64_t grace = CCTX_MSEC(1) + (int64_t)(rng % (uint64_t)CCTX_MSEC(1));
        cctx_cancel_t *pc;
        cctx_t *parent = must(cctx_with_cancel(cctx_background(), &pc));
        cctx_t *g = must(cctx_with_grace(parent, grace, NULL));
        cctx_cancel(pc);
        if (cctx_wait(g, -1) != ETIMEDOUT)
            bench_fatal("the grace context did not end with ETIMEDOUT");
        cctx_cause_t p, w;
        cctx_cause(parent, &p);
        cctx_cause(g, &w);
        late[i] = w.when - (p.when + grace);
        sum += (double)late[i];
        cctx_release(g);
        cctx_release(parent);
    }
    bench_stop_timer(b);
    bench_report_ns_per_op(b, sum / (double)b->n);
    size_t n = (size_t)b->n;
    int64_t p50 = bench_percentile(late, n, 50), p99 = bench_percentile(late, n, 99);
    bench_note(b, "end - (parent's end + grace): p50 %lld ns, p99 %lld ns, max %lld ns; n=%zu",
               (long long)p50, (long long)p99, (long long)late[n - 1], n);
    free(late);
}

void bench_shutdown(void)
{
    bench_run("BenchmarkCancelAndWait/plain-cancel", cancel_plain, NULL);
    bench_run("BenchmarkCancelAndWait/nothing-held", cancel_and_wait_alone, NULL);
    bench_run("BenchmarkGraceLateness", grace_lateness, NULL);
}
