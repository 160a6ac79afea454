/* SPDX-License-Identifier: MIT */
/*
 * cctx-mhd benchmarks.
 *
 *   cctx-mhd-bench hangup [N]   N clients (default 1000) each hang up while
 *                               their handler runs; prints the time from the
 *                               close() to the request context's
 *                               cancellation (its cause's time), and to the
 *                               handler waking from cctx_wait: mean, p50,
 *                               p99 and max, in Go's benchmark format.
 *   cctx-mhd-bench serve PORT   a server with a trivial handler, until its
 *                               standard input closes (compare.sh drives it
 *                               with wrk beside bare.c).
 */
#define _GNU_SOURCE
#include <cctx/mhd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int64_t real_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void trivial(cctx_t *ctx, cctx_mhd_request_t *req, cctx_mhd_response_t *resp, void *arg)
{
    (void)ctx;
    (void)req;
    (void)arg;
    cctx_mhd_write(resp, "ok\n", 3);
}

/* ---- hang-up to cancel ------------------------------------------------------ */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int started, canceled;
static int64_t t_cancel, t_woken;

/* Blocks until its context ends, then reports when it was canceled (the
 * cause's `when`, cctx_now() at the cancellation: the same monotonic clock)
 * and when the handler woke. */
static void blocker(cctx_t *ctx, cctx_mhd_request_t *req, cctx_mhd_response_t *resp, void *arg)
{
    (void)req;
    (void)resp;
    (void)arg;
    pthread_mutex_lock(&mu);
    started++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    cctx_wait(ctx, CCTX_SEC(10));
    int64_t woke = real_now();
    cctx_cause_t c;
    cctx_cause(ctx, &c);
    pthread_mutex_lock(&mu);
    t_cancel = c.code == 499 ? c.when : 0;
    t_woken = woke;
    canceled++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int bench_hangup(int n)
{
    cctx_mhd_t *s = cctx_mhd_start(cctx_background(), NULL, blocker, NULL);
    if (!s) {
        perror("cctx_mhd_start");
        return 1;
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(cctx_mhd_port(s))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int64_t *lat = calloc((size_t)n, sizeof *lat), *wake = calloc((size_t)n, sizeof *wake);
    const char req[] = "GET /hang HTTP/1.1\r\nHost: b\r\n\r\n";
    double sum = 0, wsum = 0;
    for (int i = 0; i < n; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
            send(fd, req, sizeof req - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof req - 1)) {
            perror("client");
            return 1;
        }
        pthread_mutex_lock(&mu);
        while (started <= i)
            pthread_cond_wait(&cv, &mu);
        pthread_mutex_unlock(&mu);
        int64_t t0 = real_now();
        close(fd);
        pthread_mutex_lock(&mu);
        while (canceled <= i)
            pthread_cond_wait(&cv, &mu);
        if (t_cancel == 0) {
            fprintf(stderr, "request %d did not end with 499\n", i);
            return 1;
        }
        lat[i] = t_cancel - t0;
        wake[i] = t_woken - t0;
        pthread_mutex_unlock(&mu);
        sum += (double)lat[i];
        wsum += (double)wake[i];
    }
    qsort(lat, (size_t)n, sizeof *lat, cmp64);
    qsort(wake, (size_t)n, sizeof *wake, cmp64);
    printf("BenchmarkMHD/hangup-to-cancel %d %.0f ns/op %lld p50-ns %lld p99-ns %lld max-ns\n", n,
           sum / n, (long long)lat[n / 2], (long long)lat[(n * 99) / 100],
           (long long)lat[n - 1]);
    printf("BenchmarkMHD/hangup-to-handler-woken %d %.0f ns/op %lld p50-ns %lld p99-ns %lld max-ns\n",
           n, wsum / n, (long long)wake[n / 2], (long long)wake[(n * 99) / 100],
           (long long)wake[n - 1]);
    free(lat);
    free(wake);
    cctx_mhd_free(s);
    return 0;
}

/* ---- serve -------------------------------------------------------------------- */

static int serve(int port)
{
    cctx_mhd_options_t o = CCTX_MHD_OPTIONS_INIT;
    o.port = (uint16_t)port;
    o.queue = 1024;
    cctx_mhd_t *s = cctx_mhd_start(cctx_background(), &o, trivial, NULL);
    if (!s) {
        perror("cctx_mhd_start");
        return 1;
    }
    printf("listening on %u\n", cctx_mhd_port(s));
    fflush(stdout);
    char buf[64];
    while (read(0, buf, sizeof buf) > 0)
        ;
    cctx_mhd_free(s);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "hangup") == 0)
        return bench_hangup(argc >= 3 ? atoi(argv[2]) : 1000);
    if (argc >= 3 && strcmp(argv[1], "serve") == 0)
        return serve(atoi(argv[2]));
    fprintf(stderr, "usage: %s hangup [N] | serve PORT\n", argv[0]);
    return 2;
}
