/* SPDX-License-Identifier: MIT */
/*
 * <cctx/io.h> benchmarks: what a context costs a blocking call whose
 * descriptor is already ready, and how soon a blocked call returns after a
 * cancel from another thread.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cctx.h>
#include <cctx/io.h>

#include "harness.h"

/* ---- BenchmarkReadReady/plain, /cctx; BenchmarkRecvReady/plain, /cctx ---- */

enum ready_kind { READ_PLAIN, READ_CCTX, RECV_PLAIN, RECV_CCTX };

/* Each op writes one byte into a pipe (or socketpair) and reads it back, so
 * the descriptor is ready when read; /plain and /cctx do the same write and
 * differ only in the read call. The context is a cancelable one, as a
 * request's would be. */
static void read_ready(bench_b *b, void *arg)
{
    enum ready_kind kind = (enum ready_kind)(intptr_t)arg;
    int fds[2];
    int rc = kind <= READ_CCTX ? pipe2(fds, O_CLOEXEC)
                               : socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds);
    if (rc != 0)
        bench_fatal("cannot make a pipe or socketpair");
    cctx_cancel_t *cancel;
    cctx_t *ctx = cctx_with_cancel(cctx_background(), &cancel);
    if (!ctx)
        bench_fatal("cctx_with_cancel failed");
    char out = 'x', in;
    bench_reset_timer(b);
    for (int64_t i = 0; i < b->n; i++) {
        if (write(fds[1], &out, 1) != 1)
            bench_fatal("write failed");
        ssize_t r;
        switch (kind) {
        case READ_PLAIN: r = read(fds[0], &in, 1); break;
        case READ_CCTX: r = cctx_read(ctx, fds[0], &in, 1); break;
        case RECV_PLAIN: r = recv(fds[0], &in, 1, 0); break;
        default: r = cctx_recv(ctx, fds[0], &in, 1, 0); break;
        }
        if (r != 1)
            bench_fatal("read of a ready descriptor returned %zd", r);
    }
    bench_stop_timer(b);
    bench_note(b, "one 1-byte write(2) + one 1-byte read of the ready descriptor per op");
    cctx_cancel(cancel);
    cctx_release(ctx);
    close(fds[0]);
    close(fds[1]);
}

/* ---- BenchmarkPollReady/plain, /cctx ------------------------------------- */

/* A finite timeout (1 s) on a pipe that is always readable: the byte written
 * at set-up is never read, so every poll finds it. /plain is poll(2) with a
 * 1000 ms timeout; /cctx is cctx_poll with CCTX_SEC(1) on a cancelable
 * context. */
static void poll_ready(bench_b *b, void *arg)
{
    bool use_cctx = arg != NULL;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0 || write(fds[1], "x", 1) != 1)
        bench_fatal("cannot make a readable pipe");
    cctx_cancel_t *cancel;
    cctx_t *ctx = cctx_with_cancel(cctx_background(), &cancel);
    if (!ctx)
        bench_fatal("cctx_with_cancel failed");
    struct pollfd p = {.fd = fds[0], .events = POLLIN};
    bench_reset_timer(b);
    for (int64_t i = 0; i < b->n; i++) {
        int r = use_cctx ? cctx_poll(ctx, &p, 1, CCTX_SEC(1)) : poll(&p, 1, 1000);
        if (r != 1)
            bench_fatal("poll of a ready pipe returned %d", r);
    }
    bench_stop_timer(b);
    bench_note(b, "one poll with a 1 s timeout of a readable pipe per op");
    cctx_cancel(cancel);
    cctx_release(ctx);
    close(fds[0]);
    close(fds[1]);
}

/* ---- BenchmarkWake{Read,CondWait,ThreadJoin} ------------------------------ */

/* A waiter thread blocks in the call under test; the main thread waits until
 * the kernel reports it asleep (and, for /late, 40 ms more), then cancels.
 * ns/op is the mean time from just before cctx_cancel to just after the call
 * returns; the note gives the percentiles. Hand-offs block on semaphores so
 * that on two cores neither side takes the CPU the other needs. The rest of
 * each op (making the context, the hand-offs) is timed too, so that N grows
 * sensibly, and B/op includes the context made per op. */

struct wake {
    enum wake_kind kind;
    sem_t go, woke;
    cctx_t *ctx; /* published before go is posted; NULL: exit */
    _Atomic uint64_t armed;
    _Atomic pid_t tid;
    int64_t woke_ns;
    int fds[2];
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    pthread_t target;
    sem_t target_go;
};

static void *wake_target(void *arg)
{
    struct wake *w = arg;
    while (sem_wait(&w->target_go) != 0)
        ;
    return NULL;
}

static void *wake_waiter(void *arg)
{
    struct wake *w = arg;
    atomic_store(&w->tid, (pid_t)syscall(SYS_gettid));
    for (uint64_t s = 1;; s++) {
        while (sem_wait(&w->go) != 0)
            ;
        cctx_t *ctx = w->ctx;
        if (!ctx)
            return NULL;
        int err;
        char c;
        if (w->kind == WAKE_COND)
            pthread_mutex_lock(&w->mutex);
        atomic_store_explicit(&w->armed, s, memory_order_release);
        switch (w->kind) {
        case WAKE_WAIT: err = cctx_wait(ctx, -1); break;
        case WAKE_READ: err = cctx_read(ctx, w->fds[0], &c, 1) < 0 ? errno : 0; break;
        case WAKE_COND: err = cctx_cond_wait(ctx, &w->cond, &w->mutex); break;
        default: err = cctx_thread_join(ctx, w->target, NULL); break;
        }
        int64_t t = bench_now_ns();
        if (w->kind == WAKE_COND)
            pthread_mutex_unlock(&w->mutex);
        if (err != ECANCELED)
            bench_fatal("blocked call returned %d, want ECANCELED", err);
        w->woke_ns = t;
        sem_post(&w->woke);
    }
}

const struct wake_case bench_wake_wait = {WAKE_WAIT, 0};

void bench_wake_latency(bench_b *b, void *arg)
{
    const struct wake_case *wc = arg;
    struct wake w = {.kind = wc->kind};
    sem_init(&w.go, 0, 0);
    sem_init(&w.woke, 0, 0);
    sem_init(&w.target_go, 0, 0);
    pthread_mutex_init(&w.mutex, NULL);
    pthread_cond_init(&w.cond, NULL);
    if (pipe2(w.fds, O_CLOEXEC) != 0)
        bench_fatal("pipe failed");
    int64_t *lat = malloc(sizeof *lat * (size_t)b->n);
    if (!lat)
        bench_fatal("out of memory");
    pthread_t t;
    if (pthread_create(&t, NULL, wake_waiter, &w) != 0)
        bench_fatal("pthread_create failed");
    while (atomic_load(&w.tid) == 0)
        sched_yield();
    bench_reset_timer(b);

    double sum = 0;
    for (int64_t i = 0; i < b->n; i++) {
        if (wc->kind == WAKE_JOIN && pthread_create(&w.target, NULL, wake_target, &w) != 0)
            bench_fatal("pthread_create failed");
        cctx_cancel_t *cancel;
        w.ctx = cctx_with_cancel(cctx_background(), &cancel);
        if (!w.ctx)
            bench_fatal("cctx_with_cancel failed");
        sem_post(&w.go);
        while (atomic_load_explicit(&w.armed, memory_order_acquire) != (uint64_t)i + 1)
            sched_yield();
        while (!bench_thread_sleeping(w.tid))
            ;
        if (wc->extra_ns) {
            struct timespec ts = {0, (long)wc->extra_ns};
            nanosleep(&ts, NULL);
        }
        int64_t t0 = bench_now_ns();
        cctx_cancel(cancel);
        while (sem_wait(&w.woke) != 0)
            ;
        lat[i] = w.woke_ns - t0;
        sum += (double)lat[i];
        cctx_release(w.ctx);
        if (wc->kind == WAKE_JOIN) {
            sem_post(&w.target_go);
            pthread_join(w.target, NULL);
        }
    }
    bench_stop_timer(b);

    w.ctx = NULL;
    sem_post(&w.go);
    pthread_join(t, NULL);
    close(w.fds[0]);
    close(w.fds[1]);
    pthread_mutex_destroy(&w.mutex);
    pthread_cond_destroy(&w.cond);
    sem_destroy(&w.go);
    sem_destroy(&w.woke);
    sem_destroy(&w.target_go);
    bench_report_ns_per_op(b, sum / (double)b->n);
    size_t n = (size_t)b->n;
    int64_t p50 = bench_percentile(lat, n, 50), p99 = bench_percentile(lat, n, 99);
    bench_note(b, "cancel -> call returns: p50 %lld ns, p99 %lld ns, max %lld ns, n=%zu",
               (long long)p50, (long long)p99, (long long)lat[n - 1], n);
    free(lat);
}

void bench_io(void)
{
    bench_run("BenchmarkReadReady/plain", read_ready, (void *)(intptr_t)READ_PLAIN);
    bench_run("BenchmarkReadReady/cctx", read_ready, (void *)(intptr_t)READ_CCTX);
    bench_run("BenchmarkRecvReady/plain", read_ready, (void *)(intptr_t)RECV_PLAIN);
    bench_run("BenchmarkRecvReady/cctx", read_ready, (void *)(intptr_t)RECV_CCTX);
    bench_run("BenchmarkPollReady/plain", poll_ready, NULL);
    bench_run("BenchmarkPollReady/cctx", poll_ready, (void *)1);

    static const struct wake_case read = {WAKE_READ, 0}, cond = {WAKE_COND, 0},
                                  join_early = {WAKE_JOIN, 0},
                                  join_late = {WAKE_JOIN, CCTX_MSEC(40)};
    bench_run("BenchmarkWakeRead", bench_wake_latency, (void *)&read);
    bench_run("BenchmarkWakeCondWait", bench_wake_latency, (void *)&cond);
    /* cctx_thread_join waits in slices of 1 ms doubling to 16 ms: /early
     * cancels in the first slices, /late once they have reached 16 ms. */
    bench_run("BenchmarkWakeThreadJoin/early", bench_wake_latency, (void *)&join_early);
    bench_run("BenchmarkWakeThreadJoin/late", bench_wake_latency, (void *)&join_late);
}
