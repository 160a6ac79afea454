/* SPDX-License-Identifier: MIT */
/* cctx-curl-bench: what binding libcurl to a context costs and how fast a
 * cancel reaches the peer, against the Go net/http peer of the tests.
 * Lines in Go's benchmark format, with percentiles as extra metrics:
 *
 *   BenchmarkCurl/cancel-to-abort    N  mean ns/op  p50 p50-ns  p99 p99-ns
 *   BenchmarkCurl/cancel-to-peer     ...  (to the Go handler's ctx.Done)
 *   BenchmarkCurl/get-plain          ...  curl_easy_perform, reused connection
 *   BenchmarkCurl/get-cctx           ...  cctx_curl_perform, no deadline
 *   BenchmarkCurl/get-cctx-deadline  ...  with a deadline and a trace
 *
 * Both ends of cancel-to-peer read CLOCK_MONOTONIC: the Go peer prints its
 * reading the moment the handler's context is done. Usage:
 * cctx-curl-bench [-n cancels] [-g gets]. */
#define _GNU_SOURCE
#include <cctx/curl.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "peer.h"

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static double cpu_per_op = -1; /* this process's CPU time per op, ns; < 0: not measured */

static int64_t cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void report(const char *name, int64_t *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp64);
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += (double)v[i];
    printf("BenchmarkCurl/%-18s %6d %12.0f ns/op %12lld p50-ns %12lld p99-ns", name, n,
           sum / n, (long long)v[n / 2], (long long)v[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1]);
    if (cpu_per_op >= 0)
        printf(" %10.0f cpu-ns/op", cpu_per_op);
    printf("\n");
    cpu_per_op = -1;
    fflush(stdout);
}

static void bench_cancel(struct peer *p, int n)
{
    int64_t *abort_ns = calloc((size_t)n, sizeof *abort_ns);
    int64_t *peer_ns = calloc((size_t)n, sizeof *peer_ns);
    CURL *e = easy_for(NULL, "%s/hang", p->url);
    for (int i = 0; i < n; i++) {
        cctx_cancel_t *cancel;
        cctx_t *ctx = cctx_with_cancel(cctx_background(), &cancel);
        struct canceller k;
        canceller_start(&k, p, cancel, "req /hang", 1);
        cctx_curl_result_t res;
        int err = cctx_curl_perform(ctx, e, NULL, &res);
        int64_t returned = mono_now();
        canceller_join(&k);
        char line[256];
        if (err != ECANCELED || !k.ok ||
            !peer_line(p, "canceled /hang", 5000, line, sizeof line, NULL)) {
            fprintf(stderr, "cancel %d: err %d, peer %s\n", i, err, k.ok ? "ok" : "silent");
            exit(1);
        }
        abort_ns[i] = returned - k.at;
        peer_ns[i] = strtoll(strrchr(line, ' ') + 1, NULL, 10) - k.at;
        cctx_release(ctx);
    }
    curl_easy_cleanup(e);
    report("cancel-to-abort", abort_ns, n);
    report("cancel-to-peer", peer_ns, n);
    free(abort_ns);
    free(peer_ns);
}

static void bench_get(struct peer *p, int n, int mode)
{
    static const char *const names[] = {"get-plain", "get-cctx", "get-cctx-deadline"};
    int64_t *ns = calloc((size_t)n, sizeof *ns);
    CURL *e = easy_for(NULL, "%s/quiet", p->url);
    cctx_trace_t tr;
    cctx_trace_new(&tr);
    cctx_t *ctx = cctx_with_timeout(cctx_background(), CCTX_SEC(3600), NULL);
    cctx_t *traced = cctx_with_trace(ctx, &tr);
    int64_t cpu0 = 0;
    for (int i = -n / 10; i < n; i++) { /* a tenth as warm-up */
        if (i == 0)
            cpu0 = cpu_now();
        int64_t t0 = mono_now();
        int err = mode == 0   ? (int)curl_easy_perform(e)
                  : mode == 1 ? cctx_curl_perform(cctx_background(), e, NULL, NULL)
                              : cctx_curl_perform(traced, e, NULL, NULL);
        int64_t t1 = mono_now();
        if (err != 0) {
            fprintf(stderr, "%s: error %d\n", names[mode], err);
            exit(1);
        }
        if (i >= 0)
            ns[i] = t1 - t0;
    }
    /* CPU time of the client alone: steadier than wall time on a shared
     * machine, and it is what the wrapper adds to. */
    cpu_per_op = (double)(cpu_now() - cpu0) / n;
    long conns = -1;
    curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, &conns);
    if (conns != 0) {
        fprintf(stderr, "%s: the connection was not reused\n", names[mode]);
        exit(1);
    }
    curl_easy_cleanup(e);
    cctx_release(traced);
    cctx_release(ctx);
    report(names[mode], ns, n);
    free(ns);
}

int main(int argc, char **argv)
{
    int cancels = 200, gets = 2000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "-n") == 0)
            cancels = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "-g") == 0)
            gets = atoi(argv[i + 1]);
    }
    const char *bin = peer_go("httppeer");
    if (!bin) {
        fprintf(stderr, "the Go peer was not built: nothing to measure against\n");
        return 77;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct peer p;
    const char *args[] = {bin, NULL};
    if (!peer_start(&p, args)) {
        fprintf(stderr, "the Go peer did not start\n");
        return 1;
    }
    printf("goos: linux\ngoarch: amd64\npkg: cctx/curl (%s)\n", curl_version());
    bench_cancel(&p, cancels);
    /* Twice over, interleaved (as go test -count=2 would), so neither side
     * gains from running later on a warmer peer. */
    for (int round = 0; round < 2; round++)
        for (int mode = 0; mode < 3; mode++)
            bench_get(&p, gets, mode);
    peer_stop(&p);
    cctx_curl_thread_cleanup();
    curl_global_cleanup();
    return 0;
}
