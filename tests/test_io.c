/* SPDX-License-Identifier: MIT */
/*
 * Section 9: <cctx/io.h>. Every call is run through the same scenarios by a
 * table of operations (struct op, tests/io_ops.h): it succeeds when its
 * object is ready; a caller blocked in it gets ECANCELED when another thread
 * cancels, and ETIMEDOUT when the fake clock passes the deadline; a context
 * already done makes it fail at once and touch nothing; signals (EINTR) do
 * not end it; non-blocking descriptors work and no descriptor's flags change.
 *
 * The blocked caller is on a thread of its own; the main thread waits until
 * the kernel reports it asleep (/proc/self/task/TID/stat) before acting, but
 * only so that the act lands mid-wait most of the time: every scenario's
 * outcome is the same if it lands before the wait starts.
 *
 * Then no byte lost across a cancel, and partial counts. What else the table
 * cannot say is in test_io_calls.c (MSG_WAITALL, connect over TCP, poll's
 * timeout and array, fallbacks for descriptors without RWF_NOWAIT, bad input)
 * and test_io_sync.c (the cond_wait after-function: mutex held on return,
 * nothing left registered, no deadlock when the canceller holds the mutex;
 * slices that never end early on the fake clock).
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/io.h>
#include <cctx/testing.h>

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "harness.h"
#include "io_ops.h"
#include "support.h"

static const int64_t T0 = CCTX_SEC(1000); /* where fake-clock tests start */

/* ---- scenarios --------------------------------------------------------------------- */

static atomic_int signals_seen;
static void on_signal(int sig)
{
    (void)sig;
    atomic_fetch_add(&signals_seen, 1);
}

/* SIGUSR1 interrupts system calls (no SA_RESTART). */
static void install_interrupting_handler(void)
{
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    CHECK_EQ(sigaction(SIGUSR1, &sa, NULL), 0);
}

static void fx_init(struct fx *f, const struct op *op, bool nonblock)
{
    memset(f, 0, sizeof *f);
    f->op = op;
    f->nonblock = nonblock;
    f->fds[0] = f->fds[1] = f->lfd = f->cfd = f->filler = f->watch_fd = -1;
    op->setup(f);
    if (f->watch_fd >= 0)
        f->watch_flags = fd_flags(f->watch_fd);
}

static void fx_done(struct fx *f)
{
    if (f->watch_fd >= 0)
        CHECK_EQ(fd_flags(f->watch_fd), f->watch_flags); /* never changed */
    f->op->teardown(f);
}

/* The object is ready: the call succeeds. */
static void scenario_ready(const struct op *op, bool nonblock)
{
    struct fx f;
    fx_init(&f, op, nonblock);
    cctx_t *ctx = cctx_with_timeout(cctx_background(), CCTX_SEC(3600), NULL);
    op->ready(&f);
    start_call(&f, ctx);
    CHECK_EQ(finish_call(&f), 0);
    op->check_ok(&f);
    CHECK_EQ(cctx_err(ctx), 0);
    fx_done(&f);
    cctx_release(ctx);
}

/* The caller blocks, then the object becomes ready: it succeeds. */
static void scenario_waits(const struct op *op, bool nonblock)
{
    struct fx f;
    fx_init(&f, op, nonblock);
    cctx_cancel_t *cancel;
    cctx_t *ctx = cctx_with_cancel(cctx_background(), &cancel);
    start_call(&f, ctx);
    await_blocked(&f.tid);
    op->ready(&f);
    CHECK_EQ(finish_call(&f), 0);
    op->check_ok(&f);
    cctx_cancel(cancel); /* nothing of the call may be left to run now */
    fx_done(&f);
    cctx_release(ctx);
}

/* Canceled by another thread while blocked: ECANCELED, nothing taken. */
static void scenario_canceled(const struct op *op, bool nonblock)
{
    struct fx f;
    fx_init(&f, op, nonblock);
    cctx_cancel_t *cancel;
    cctx_t *ctx = cctx_with_cancel(cctx_background(), &cancel);
    cctx_t *v = cctx_with_value(ctx, &T0, NULL, NULL); /* through a value context */
    start_call(&f, v);
    await_blocked(&f.tid);
    int64_t t0 = real_now();
    cctx_cancel(cancel);
    CHECK_EQ(finish_call(&f), ECANCELED);
    int64_t woke = real_now() - t0;
    CHECK(woke < SLOW_BOUND);
    op->ready(&f);
    op->check_untouched(&f);
    fx_done(&f);
    cctx_release(v);
    cctx_release(ctx);
}

/* The fake clock passes the deadline while the caller is blocked. */
static void scenario_fake_deadline(const struct op *op, bool nonblock)
{
    cctx_fake_clock_start(T0);
    struct fx f;
    fx_init(&f, op, nonblock);
    cctx_t *ctx = cctx_with_timeout(cctx_background(), CCTX_SEC(1), NULL);
    start_call(&f, ctx);
    await_blocked(&f.tid);
    cctx_fake_clock_advance(CCTX_SEC(1));
    CHECK_EQ(finish_call(&f), ETIMEDOUT);
    op->ready(&f);
    op->check_untouched(&f);
    fx_done(&f);
    cctx_release(ctx);
    cctx_fake_clock_stop();
}

/* A real deadline: never early, and soon after. */
static void scenario_real_deadline(const struct op *op)
{
    struct fx f;
    fx_init(&f, op, false);
    cctx_t *ctx = cctx_with_timeout(cctx_background(), CCTX_MSEC(30), NULL);
    int64_t deadline;
    CHECK(cctx_deadline(ctx, &deadline));
    start_call(&f, ctx);
    CHECK_EQ(finish_call(&f), ETIMEDOUT);
    printf("%s: ETIMEDOUT %.3f ms after the deadline\n", op->name, (f.ended - deadline) / 1e6);
    CHECK(f.ended >= deadline); /* never early (cctx_now() is real_now() here) */
    CHECK(f.ended - deadline < SLOW_BOUND);
    op->ready(&f);
    op->check_untouched(&f);
    fx_done(&f);
    cctx_release(ctx);
}

/* A context already done: fails at once, the ready object untouched. */
static void scenario_done_at_entry(const struct op *op)
{
    struct fx f;
    fx_init(&f, op, false);
    cctx_cancel_t *cancel;
    cctx_t *ctx = cctx_with_cancel(cctx_background(), &cancel);
    cctx_cancel(cancel);
    op->ready(&f);
    start_call(&f, ctx);
    CHECK_EQ(finish_call(&f), ECANCELED);
    CHECK(f.elapsed < SLOW_BOUND);
    op->check_untouched(&f);
    fx_done(&f);
    cctx_t *t = cctx_with_timeout(cctx_background(), -1, NULL);
    fx_init(&f, op, false);
    op->ready(&f);
    start_call(&f, t);
    CHECK_EQ(finish_call(&f), ETIMEDOUT);
    op->check_untouched(&f);
    fx_done(&f);
    cctx_release(t);
    cctx_release(ctx);
}

/* Signals that interrupt system calls do not end the call. */
static void scenario_eintr(const struct op *op)
{
    install_interrupting_handler();
    struct fx f;
    fx_init(&f, op, false);
    cctx_t *ctx = cctx_with_cancel(cctx_background(), NULL);
    start_call(&f, ctx);
    int before = atomic_load(&signals_seen);
    for (int i = 0; i < 3; i++) {
        await_blocked(&f.tid);
        CHECK_EQ(pthread_kill(f.caller, SIGUSR1), 0);
        while (atomic_load(&signals_seen) == before + i)
            sched_yield();
    }
    await_blocked(&f.tid);
    op->ready(&f);
    CHECK_EQ(finish_call(&f), 0);
    op->check_ok(&f);
    CHECK_EQ(atomic_load(&signals_seen), before + 3);
    fx_done(&f);
    cctx_release(ctx);
}

/* One test per operation and scenario, each spelled out: CMake finds tests
 * by the literal TEST(name) at the start of a line. */
TEST(io_read_ready_succeeds) { scenario_ready(&op_read, false); }
TEST(io_read_waits_until_ready) { scenario_waits(&op_read, false); }
TEST(io_read_canceled_midwait_is_ecanceled) { scenario_canceled(&op_read, false); }
TEST(io_read_fake_deadline_is_etimedout) { scenario_fake_deadline(&op_read, false); }
TEST(io_read_real_deadline_is_etimedout) { scenario_real_deadline(&op_read); }
TEST(io_read_done_at_entry_fails_at_once) { scenario_done_at_entry(&op_read); }
TEST(io_read_eintr_is_retried) { scenario_eintr(&op_read); }
TEST(io_read_nonblocking_fd_waits) { scenario_waits(&op_read, true); }
TEST(io_read_nonblocking_fd_canceled) { scenario_canceled(&op_read, true); }

TEST(io_write_ready_succeeds) { scenario_ready(&op_write, false); }
TEST(io_write_waits_until_ready) { scenario_waits(&op_write, false); }
TEST(io_write_canceled_midwait_is_ecanceled) { scenario_canceled(&op_write, false); }
TEST(io_write_fake_deadline_is_etimedout) { scenario_fake_deadline(&op_write, false); }
TEST(io_write_real_deadline_is_etimedout) { scenario_real_deadline(&op_write); }
TEST(io_write_done_at_entry_fails_at_once) { scenario_done_at_entry(&op_write); }
TEST(io_write_eintr_is_retried) { scenario_eintr(&op_write); }
TEST(io_write_nonblocking_fd_waits) { scenario_waits(&op_write, true); }
TEST(io_write_nonblocking_fd_canceled) { scenario_canceled(&op_write, true); }

TEST(io_recv_ready_succeeds) { scenario_ready(&op_recv, false); }
TEST(io_recv_waits_until_ready) { scenario_waits(&op_recv, false); }
TEST(io_recv_canceled_midwait_is_ecanceled) { scenario_canceled(&op_recv, false); }
TEST(io_recv_fake_deadline_is_etimedout) { scenario_fake_deadline(&op_recv, false); }
TEST(io_recv_real_deadline_is_etimedout) { scenario_real_deadline(&op_recv); }
TEST(io_recv_done_at_entry_fails_at_once) { scenario_done_at_entry(&op_recv); }
TEST(io_recv_eintr_is_retried) { scenario_eintr(&op_recv); }
TEST(io_recv_nonblocking_fd_waits) { scenario_waits(&op_recv, true); }
TEST(io_recv_nonblocking_fd_canceled) { scenario_canceled(&op_recv, true); }

TEST(io_send_ready_succeeds) { scenario_ready(&op_send, false); }
TEST(io_send_waits_until_ready) { scenario_waits(&op_send, false); }
TEST(io_send_canceled_midwait_is_ecanceled) { scenario_canceled(&op_send, false); }
TEST(io_send_fake_deadline_is_etimedout) { scenario_fake_deadline(&op_send, false); }
TEST(io_send_real_deadline_is_etimedout) { scenario_real_deadline(&op_send); }
TEST(io_send_done_at_entry_fails_at_once) { scenario_done_at_entry(&op_send); }
TEST(io_send_eintr_is_retried) { scenario_eintr(&op_send); }
TEST(io_send_nonblocking_fd_waits) { scenario_waits(&op_send, true); }
TEST(io_send_nonblocking_fd_canceled) { scenario_canceled(&op_send, true); }

TEST(io_poll_ready_succeeds) { scenario_ready(&op_poll, false); }
TEST(io_poll_waits_until_ready) { scenario_waits(&op_poll, false); }
TEST(io_poll_canceled_midwait_is_ecanceled) { scenario_canceled(&op_poll, false); }
TEST(io_poll_fake_deadline_is_etimedout) { scenario_fake_deadline(&op_poll, false); }
TEST(io_poll_real_deadline_is_etimedout) { scenario_real_deadline(&op_poll); }
TEST(io_poll_done_at_entry_fails_at_once) { scenario_done_at_entry(&op_poll); }
TEST(io_poll_eintr_is_retried) { scenario_eintr(&op_poll); }

TEST(io_accept_ready_succeeds) { scenario_ready(&op_accept, false); }
TEST(io_accept_waits_until_ready) { scenario_waits(&op_accept, false); }
TEST(io_accept_canceled_midwait_is_ecanceled) { scenario_canceled(&op_accept, false); }
TEST(io_accept_fake_deadline_is_etimedout) { scenario_fake_deadline(&op_accept, false); }
TEST(io_accept_real_deadline_is_etimedout) { scenario_real_deadline(&op_accept); }
TEST(io_accept_done_at_entry_fails_at_once) { scenario_done_at_entry(&op_accept); }
TEST(io_accept_eintr_is_retried) { scenario_eintr(&op_accept); }
TEST(io_accept_nonblocking_fd_waits) { scenario_waits(&op_accept, true); }
TEST(io_accept_nonblocking_fd_canceled) { scenario_canceled(&op_accept, true); }

TEST(io_connect_unix_ready_succeeds) { scenario_ready(&op_connect, false); }
TEST(io_connect_unix_waits_for_backlog_room) { scenario_waits(&op_connect, false); }
TEST(io_connect_unix_canceled_midwait_is_ecanceled) { scenario_canceled(&op_connect, false); }
TEST(io_connect_unix_fake_deadline_is_etimedout) { scenario_fake_deadline(&op_connect, false); }
TEST(io_connect_unix_real_deadline_is_etimedout) { scenario_real_deadline(&op_connect); }
TEST(io_connect_unix_done_at_entry_fails_at_once) { scenario_done_at_entry(&op_connect); }
TEST(io_connect_unix_eintr_is_retried) { scenario_eintr(&op_connect); }
TEST(io_connect_unix_nonblocking_waits) { scenario_waits(&op_connect, true); }
TEST(io_connect_unix_nonblocking_canceled) { scenario_canceled(&op_connect, true); }

TEST(io_cond_wait_signalled_returns_zero) { scenario_waits(&op_cond, false); }
TEST(io_cond_wait_canceled_midwait_is_ecanceled) { scenario_canceled(&op_cond, false); }
TEST(io_cond_wait_fake_deadline_is_etimedout) { scenario_fake_deadline(&op_cond, false); }
TEST(io_cond_wait_real_deadline_is_etimedout) { scenario_real_deadline(&op_cond); }
TEST(io_cond_wait_done_at_entry_fails_at_once) { scenario_done_at_entry(&op_cond); }
TEST(io_cond_wait_signals_do_not_end_it) { scenario_eintr(&op_cond); }

TEST(io_mutex_lock_free_mutex_succeeds) { scenario_ready(&op_mutex, false); }
TEST(io_mutex_lock_waits_until_unlocked) { scenario_waits(&op_mutex, false); }
TEST(io_mutex_lock_canceled_midwait_is_ecanceled) { scenario_canceled(&op_mutex, false); }
TEST(io_mutex_lock_fake_deadline_is_etimedout) { scenario_fake_deadline(&op_mutex, false); }
TEST(io_mutex_lock_real_deadline_is_etimedout) { scenario_real_deadline(&op_mutex); }
TEST(io_mutex_lock_done_at_entry_fails_at_once) { scenario_done_at_entry(&op_mutex); }
TEST(io_mutex_lock_signals_do_not_end_it) { scenario_eintr(&op_mutex); }

TEST(io_sem_wait_posted_succeeds) { scenario_ready(&op_sem, false); }
TEST(io_sem_wait_waits_until_posted) { scenario_waits(&op_sem, false); }
TEST(io_sem_wait_canceled_midwait_is_ecanceled) { scenario_canceled(&op_sem, false); }
TEST(io_sem_wait_fake_deadline_is_etimedout) { scenario_fake_deadline(&op_sem, false); }
TEST(io_sem_wait_real_deadline_is_etimedout) { scenario_real_deadline(&op_sem); }
TEST(io_sem_wait_done_at_entry_fails_at_once) { scenario_done_at_entry(&op_sem); }
TEST(io_sem_wait_eintr_is_retried) { scenario_eintr(&op_sem); }

TEST(io_thread_join_finished_thread_succeeds) { scenario_ready(&op_join, false); }
TEST(io_thread_join_waits_until_thread_ends) { scenario_waits(&op_join, false); }
TEST(io_thread_join_canceled_thread_runs_on_joinable) { scenario_canceled(&op_join, false); }
TEST(io_thread_join_fake_deadline_is_etimedout) { scenario_fake_deadline(&op_join, false); }
TEST(io_thread_join_real_deadline_is_etimedout) { scenario_real_deadline(&op_join); }
TEST(io_thread_join_done_at_entry_fails_at_once) { scenario_done_at_entry(&op_join); }
TEST(io_thread_join_signals_do_not_end_it) { scenario_eintr(&op_join); }

/* ---- no byte lost ------------------------------------------------------------------ */

struct stream {
    cctx_t *ctx;
    int fd;
    size_t total;     /* bytes the calls reported */
    ssize_t last;     /* the last call's result */
    int last_err;
    size_t block;     /* write: bytes per call */
    atomic_int tid;
    atomic_size_t progress;
    unsigned char *buf;
    size_t cap;
};

/* Writes the pattern in `block`-byte calls until one falls short. */
static void *pattern_writer(void *arg)
{
    struct stream *s = arg;
    atomic_store(&s->tid, thread_id());
    unsigned char *blk = malloc(s->block);
    CHECK(blk != NULL);
    for (;;) {
        for (size_t i = 0; i < s->block; i++)
            blk[i] = pattern(s->total + i);
        errno = 0;
        s->last = cctx_write(s->ctx, s->fd, blk, s->block);
        s->last_err = errno;
        if (s->last > 0)
            s->total += (size_t)s->last;
        if (s->last != (ssize_t)s->block)
            break;
    }
    free(blk);
    return NULL;
}

/* Reads `want` bytes slowly, in small pieces, checking the pattern. */
static size_t slow_read(int fd, size_t want, size_t at)
{
    while (want > 0) {
        unsigned char b[1000];
        ssize_t r = cctx_read(cctx_background(), fd, b, want < sizeof b ? want : sizeof b);
        CHECK(r > 0);
        for (ssize_t i = 0; i < r; i++)
            CHECK_EQ(b[i], pattern(at + (size_t)i));
        at += (size_t)r;
        want -= (size_t)r;
        if (at % 16 < 4)
            sched_yield();
    }
    return at;
}

/* After the writer stopped: the rest of the pipe is exactly what it
 * reported written after `at`. */
static void check_rest(struct stream *s, int rfd, size_t at)
{
    close(s->fd);
    for (;;) {
        unsigned char b[4096];
        ssize_t r = read(rfd, b, sizeof b);
        CHECK(r >= 0);
        if (r == 0)
            break;
        for (ssize_t i = 0; i < r; i++)
            CHECK_EQ(b[i], pattern(at + (size_t)i));
        at += (size_t)r;
    }
    CHECK_EQ(at, s->total);
    close(rfd);
}

static void writer_canceled_loses_nothing(bool nonblock, size_t block, bool partial)
{
    int p[2];
    CHECK_EQ(pipe2(p, O_CLOEXEC | (nonblock ? O_NONBLOCK : 0)), 0);
    int flags = fd_flags(p[1]);
    cctx_cancel_t *cancel;
    struct stream s = {.fd = p[1], .block = block};
    s.ctx = cctx_with_cancel(cctx_background(), &cancel);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, pattern_writer, &s), 0);
    set_nonblock(p[0], false);
    size_t at = slow_read(p[0], 300 * 1000, 0);
    if (partial)
        await_blocked(&s.tid);
    cctx_cancel(cancel);
    CHECK_EQ(pthread_join(t, NULL), 0);
    printf("writer: %zu bytes reported, last call %zd (errno %d)\n", s.total, s.last, s.last_err);
    CHECK(s.last >= 0 ? s.last < (ssize_t)block : s.last_err == ECANCELED);
    if (partial) /* the one call had written what was read before the cancel */
        CHECK(s.last >= (ssize_t)at && s.last < (ssize_t)block);
    CHECK_EQ(fd_flags(p[1]), flags);
    check_rest(&s, p[0], at);
    cctx_release(s.ctx);
}

/* One 4 MiB cctx_write, blocked on the full pipe when canceled: it returns
 * the partial count, and exactly those bytes are in the pipe. */
TEST(io_write_canceled_returns_partial_count)
{
    writer_canceled_loses_nothing(false, 4 << 20, true);
}

TEST(io_write_canceled_returns_partial_count_nonblocking)
{
    writer_canceled_loses_nothing(true, 4 << 20, true);
}

/* A writer that keeps writing blocks, canceled whenever: every byte that
 * cctx_write reported written is read back, in order, and nothing else. */
TEST(io_write_stream_canceled_anytime_loses_no_byte)
{
    for (int round = 0; round < 4; round++)
        writer_canceled_loses_nothing(round % 2, 10000 + 777 * (size_t)round, false);
}

/* A reader canceled whenever: what it read plus what is left in the pipe is
 * everything written, in order. */
static void *plain_writer(void *arg)
{
    struct stream *s = arg;
    unsigned char b[4096];
    size_t at = 0;
    while (at < s->cap) {
        size_t n = s->cap - at < sizeof b ? s->cap - at : sizeof b;
        for (size_t i = 0; i < n; i++)
            b[i] = pattern(at + i);
        ssize_t w = write(s->fd, b, n);
        CHECK(w > 0);
        at += (size_t)w;
    }
    close(s->fd);
    return NULL;
}

static void *pattern_reader(void *arg)
{
    struct stream *s = arg;
    for (;;) {
        errno = 0;
        ssize_t r = cctx_read(s->ctx, s->fd, s->buf + s->total,
                              s->cap - s->total < 3000 ? s->cap - s->total : 3000);
        s->last = r;
        s->last_err = errno;
        if (r <= 0)
            break;
        s->total += (size_t)r;
        atomic_store(&s->progress, s->total);
    }
    return NULL;
}

TEST(io_read_canceled_anytime_loses_no_byte)
{
    enum { TOTAL = 1 << 20 };
    int p[2];
    CHECK_EQ(pipe2(p, O_CLOEXEC), 0);
    cctx_cancel_t *cancel;
    struct stream r = {.fd = p[0], .cap = TOTAL, .buf = malloc(TOTAL)};
    struct stream w = {.fd = p[1], .cap = TOTAL};
    CHECK(r.buf != NULL);
    r.ctx = cctx_with_cancel(cctx_background(), &cancel);
    pthread_t tr, tw;
    CHECK_EQ(pthread_create(&tr, NULL, pattern_reader, &r), 0);
    CHECK_EQ(pthread_create(&tw, NULL, plain_writer, &w), 0);
    while (atomic_load(&r.progress) < TOTAL / 3)
        sched_yield();
    cctx_cancel(cancel);
    CHECK_EQ(pthread_join(tr, NULL), 0);
    /* (or, on a very slow machine, it read everything before the cancel) */
    CHECK((r.last == -1 && r.last_err == ECANCELED) || (r.last == 0 && r.total == TOTAL));
    size_t at = r.total;
    for (size_t i = 0; i < at; i++)
        CHECK_EQ(r.buf[i], pattern(i));
    for (;;) { /* the writer finishes once the pipe drains, then closes it */
        unsigned char b[4096];
        ssize_t n = read(p[0], b, sizeof b);
        CHECK(n >= 0);
        if (n == 0)
            break;
        for (ssize_t i = 0; i < n; i++)
            CHECK_EQ(b[i], pattern(at + (size_t)i));
        at += (size_t)n;
    }
    CHECK_EQ(pthread_join(tw, NULL), 0);
    CHECK_EQ(at, TOTAL);
    printf("reader took %zu of %d bytes before the cancel\n", r.total, TOTAL);
    close(p[0]);
    free(r.buf);
    cctx_release(r.ctx);
}
