/* SPDX-License-Identifier: MIT */
/*
 * Section 5: waiting. cctx_done_fd (readable exactly once done, one fd per
 * context, made lazily, one shared never-readable fd for contexts that can
 * never end; in a child forked while another thread held the portable
 * build's table of pipes), cctx_wait, cctx_sleep, cctx_wait_any, and how
 * promptly blocked waiters wake. Latency is checked only against generous bounds (the contract
 * promises a millisecond on an idle machine; CI machines are not idle).
 */
#define _GNU_SOURCE
#include <cctx.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "support.h"
#include "testhooks.h"

/* A waiter that is blocked must wake within this of the event (median of a
 * few rounds, so one unlucky scheduling delay does not fail the test). */
#define WAKE_BOUND CCTX_MSEC(TEST_UNDER_TSAN ? 150 : 50)
#define ROUNDS 5

static bool fd_readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = poll(&p, 1, 0);
    CHECK(r >= 0);
    return r == 1 && (p.revents & POLLIN);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int64_t median(int64_t *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_i64);
    return v[n / 2];
}

static const char key_a;

/* ---- cctx_done_fd ------------------------------------------------------ */

TEST(wait_done_fd_readable_once_done_and_not_before)
{
    cctx_cancel_t *cc;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cc);
    CHECK(c != NULL);
    int fd = cctx_done_fd(c);
    CHECK(fd >= 0);
    CHECK(!fd_readable(fd));
    CHECK_EQ(cctx_done_fd(c), fd); /* the same descriptor every time */
    CHECK(!fd_readable(fd));

    cctx_cancel(cc);
    CHECK(fd_readable(fd));
    CHECK(fd_readable(fd)); /* stays readable: level-triggered, nobody drains it */
    CHECK_EQ(cctx_done_fd(c), fd);

    /* First asked for after the context ended: readable at once. */
    cctx_cancel_t *cc2;
    cctx_t *c2 = cctx_with_cancel(cctx_background(), &cc2);
    cctx_cancel(cc2);
    int fd2 = cctx_done_fd(c2);
    CHECK(fd2 >= 0);
    CHECK(fd2 != fd);
    CHECK(fd_readable(fd2));

    /* A context born done (deadline already past). */
    cctx_t *t = cctx_with_timeout(cctx_background(), -1, NULL);
    CHECK(t != NULL);
    CHECK(fd_readable(cctx_done_fd(t)));

    cctx_release(t);
    cctx_release(c2);
    cctx_release(c);
}

TEST(wait_done_fd_of_descendants_readable_after_ancestor_cancel)
{
    cctx_cancel_t *pc, *sc;
    cctx_t *p = cctx_with_cancel(cctx_background(), &pc);
    cctx_t *c = cctx_with_timeout(p, CCTX_SEC(3600), NULL);
    cctx_t *v = cctx_with_value(c, &key_a, NULL, NULL);
    cctx_t *g = cctx_with_cancel(v, NULL);
    cctx_t *sib = cctx_with_cancel(cctx_background(), &sc);
    CHECK(p && c && v && g && sib);

    int fds[4] = {cctx_done_fd(c), cctx_done_fd(v), cctx_done_fd(g), cctx_done_fd(sib)};
    for (int i = 0; i < 4; i++) {
        CHECK(fds[i] >= 0);
        CHECK(!fd_readable(fds[i]));
    }
    CHECK(fds[0] != fds[2]);

    cctx_cancel(pc);
    CHECK(fd_readable(fds[0]));
    CHECK(fd_readable(fds[1]));
    CHECK(fd_readable(fds[2]));
    CHECK(!fd_readable(fds[3])); /* a sibling tree is not touched */

    cctx_cancel(sc);
    CHECK(fd_readable(fds[3]));
    cctx_release(sib);
    cctx_release(g);
    cctx_release(v);
    cctx_release(c);
    cctx_release(p);
}

TEST(wait_done_fd_of_value_context_follows_cancelable_ancestor)
{
    cctx_cancel_t *pc;
    cctx_t *p = cctx_with_cancel(cctx_background(), &pc);
    cctx_t *v1 = cctx_with_value(p, &key_a, (void *)1, NULL);
    cctx_t *v2 = cctx_with_value(v1, &key_a, (void *)2, NULL);
    CHECK(p && v1 && v2);

    /* Asked on the value context first, before the ancestor's was made. */
    int fd = cctx_done_fd(v2);
    CHECK(fd >= 0);
    CHECK_EQ(cctx_done_fd(v2), fd);
    CHECK(!fd_readable(fd));
    int pfd = cctx_done_fd(p);
    CHECK(pfd >= 0);
    CHECK(!fd_readable(pfd));

    cctx_cancel(pc);
    CHECK(fd_readable(fd));
    CHECK(fd_readable(pfd));
    CHECK(fd_readable(cctx_done_fd(v1)));

    cctx_release(v2);
    cctx_release(v1);
    cctx_release(p);
}

TEST(wait_never_ending_contexts_share_one_unreadable_epollable_fd)
{
    cctx_cancel_t *pc;
    cctx_t *p = cctx_with_cancel(cctx_background(), &pc);
    cctx_t *wc = cctx_without_cancel(p);
    cctx_t *vbg = cctx_with_value(cctx_background(), &key_a, NULL, NULL);
    cctx_t *vwc = cctx_with_value(wc, &key_a, NULL, NULL);
    CHECK(p && wc && vbg && vwc);

    int never = cctx_done_fd(cctx_background());
    CHECK(never >= 0);
    CHECK_EQ(cctx_done_fd(cctx_todo()), never);
    CHECK_EQ(cctx_done_fd(wc), never);
    CHECK_EQ(cctx_done_fd(vbg), never);
    CHECK_EQ(cctx_done_fd(vwc), never);
    CHECK(!fd_readable(never));

    /* Cancelling the without_cancel context's parent does not end it. */
    cctx_cancel(pc);
    CHECK(fd_readable(cctx_done_fd(p)));
    CHECK(!fd_readable(never));
    CHECK_EQ(cctx_err(wc), 0);

    /* It can be added to an epoll set (a regular file or -1 could not), next
     * to a context that does end. */
    int ep = epoll_create1(EPOLL_CLOEXEC);
    CHECK(ep >= 0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 1};
    CHECK_EQ(epoll_ctl(ep, EPOLL_CTL_ADD, never, &ev), 0);
    cctx_cancel_t *qc;
    cctx_t *q = cctx_with_cancel(cctx_background(), &qc);
    struct epoll_event ev2 = {.events = EPOLLIN, .data.u32 = 2};
    CHECK_EQ(epoll_ctl(ep, EPOLL_CTL_ADD, cctx_done_fd(q), &ev2), 0);
    struct epoll_event out[2];
    CHECK_EQ(epoll_wait(ep, out, 2, 0), 0);
    cctx_cancel(qc);
    int n = epoll_wait(ep, out, 2, 1000);
    CHECK_EQ(n, 1);
    CHECK_EQ(out[0].data.u32, 2);
    CHECK_EQ(epoll_ctl(ep, EPOLL_CTL_DEL, cctx_done_fd(q), NULL), 0);
    CHECK_EQ(epoll_ctl(ep, EPOLL_CTL_DEL, never, NULL), 0);
    close(ep);

    CHECK(!fd_readable(never));
    cctx_release(q);
    cctx_release(vwc);
    cctx_release(vbg);
    cctx_release(wc);
    cctx_release(p);
}

static void nop_after(void *arg)
{
    (void)arg;
}

TEST(wait_done_fd_made_lazily_contexts_cost_no_fd)
{
    enum { N = 1000 };
    /* Warm up whatever the library sets up once (timer thread, clocks). */
    {
        cctx_cancel_t *wc;
        cctx_t *w = cctx_with_timeout(cctx_background(), CCTX_SEC(3600), &wc);
        cctx_t *w2 = cctx_with_timeout(cctx_background(), CCTX_USEC(1), NULL);
        CHECK_EQ(cctx_wait(w2, CCTX_SEC(10)), ETIMEDOUT);
        CHECK_EQ(cctx_wait(w, CCTX_USEC(1)), 0);
        cctx_cancel(wc);
        cctx_release(w2);
        cctx_release(w);
    }
    int before = count_open_fds();

    static cctx_t *ctxs[N];
    static cctx_cancel_t *cancels[N];
    static cctx_after_t regs[N];
    for (int i = 0; i < N; i++) {
        cctx_t *parent = i >= 4 ? ctxs[i / 4] : cctx_background();
        switch (i % 4) {
        case 0: ctxs[i] = cctx_with_cancel(parent, &cancels[i]); break;
        case 1: ctxs[i] = cctx_with_timeout(parent, CCTX_SEC(3600), &cancels[i]); break;
        case 2: ctxs[i] = cctx_with_value(parent, &key_a, NULL, NULL); cancels[i] = NULL; break;
        default: ctxs[i] = cctx_with_deadline(parent, cctx_now() + CCTX_SEC(3600), &cancels[i]);
        }
        CHECK(ctxs[i] != NULL);
        CHECK_EQ(cctx_after_func(ctxs[i], &regs[i], nop_after, NULL), 0);
    }
    /* Reading, waiting (with and without a limit that passes) and cancelling
     * need no descriptor either. */
    for (int i = 0; i < N; i++) {
        CHECK_EQ(cctx_err(ctxs[i]), 0);
        CHECK_EQ(cctx_wait(ctxs[i], 0), 0);
        if (i < 10)
            CHECK_EQ(cctx_wait(ctxs[i], CCTX_USEC(50)), 0);
    }
    for (int i = N - 1; i >= 0; i -= 2)
        if (cancels[i])
            cctx_cancel(cancels[i]);
    for (int i = 0; i < N; i++)
        if (i % 2 == 1 && i % 4 != 2)
            CHECK_EQ(cctx_wait(ctxs[i], -1), ECANCELED);
    CHECK_EQ(count_open_fds(), before);

    /* The first request makes one (an eventfd, or a pipe's two ends). */
    int fd = cctx_done_fd(ctxs[0]);
    CHECK(fd >= 0);
    int after = count_open_fds();
    CHECK(after >= before + 1 && after <= before + 2);

    for (int i = 0; i < N; i++)
        cctx_after_stop(&regs[i]);
    for (int i = N - 1; i >= 0; i--)
        cctx_release(ctxs[i]);
}

TEST(wait_done_fd_closed_when_context_freed)
{
    int before = count_open_fds();
    for (int i = 0; i < 3000; i++) {
        cctx_cancel_t *cc;
        cctx_t *c = cctx_with_cancel(cctx_background(), &cc);
        cctx_t *child = cctx_with_cancel(c, NULL);
        CHECK(c && child);
        CHECK(cctx_done_fd(c) >= 0);
        CHECK(cctx_done_fd(child) >= 0);
        if (i % 2)
            cctx_cancel(cc);
        cctx_release(child);
        cctx_release(c);
    }
    /* Some pooling is allowed; a descriptor per context is a leak. */
    int after = count_open_fds();
    printf("open fds: %d before, %d after 3000 contexts with fds\n", before, after);
    CHECK(after <= before + 16);
}

TEST(wait_done_fd_null_is_einval)
{
    CHECK_ERRNO(cctx_done_fd(NULL), -1, EINVAL);
}

/* ---- cctx_wait / cctx_sleep ------------------------------------------- */

TEST(wait_returns_err_once_done)
{
    cctx_cancel_t *cc;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cc);
    cctx_t *v = cctx_with_value(c, &key_a, NULL, NULL);
    cctx_cancel(cc);
    CHECK_EQ(cctx_wait(c, -1), ECANCELED);
    CHECK_EQ(cctx_wait(c, 0), ECANCELED);
    CHECK_EQ(cctx_wait(c, CCTX_SEC(100)), ECANCELED);
    CHECK_EQ(cctx_wait(v, -1), ECANCELED);

    cctx_t *t = cctx_with_timeout(cctx_background(), -CCTX_SEC(1), NULL);
    CHECK_EQ(cctx_wait(t, -1), ETIMEDOUT);
    CHECK_EQ(cctx_wait(t, 0), ETIMEDOUT);

    cctx_release(t);
    cctx_release(v);
    cctx_release(c);
}

TEST(wait_returns_zero_when_timeout_passes_first)
{
    cctx_t *c = cctx_with_cancel(cctx_background(), NULL);
    cctx_t *d = cctx_with_timeout(cctx_background(), CCTX_SEC(3600), NULL);
    CHECK_EQ(cctx_wait(c, 0), 0);
    CHECK_EQ(cctx_wait(d, 0), 0);
    int64_t t0 = cctx_now();
    CHECK_EQ(cctx_wait(c, CCTX_MSEC(20)), 0);
    int64_t el = cctx_now() - t0;
    printf("cctx_wait(20 ms) took %.3f ms\n", el / 1e6);
    CHECK(el >= CCTX_MSEC(20)); /* never returns early */
    CHECK(el < CCTX_SEC(5));
    CHECK_EQ(cctx_err(c), 0);

    /* Contexts that can never end: the timeout still applies. */
    cctx_t *wc = cctx_without_cancel(c);
    CHECK_EQ(cctx_wait(cctx_background(), 0), 0);
    CHECK_EQ(cctx_wait(cctx_todo(), CCTX_MSEC(5)), 0);
    CHECK_EQ(cctx_wait(wc, CCTX_MSEC(1)), 0);

    cctx_release(wc);
    cctx_release(d);
    cctx_release(c);
}

TEST(wait_null_is_einval)
{
    CHECK_EQ(cctx_wait(NULL, 0), EINVAL);
    CHECK_EQ(cctx_wait(NULL, -1), EINVAL); /* must not block */
    CHECK_EQ(cctx_sleep(NULL, CCTX_SEC(100)), EINVAL);
}

TEST(wait_sleep_full_duration_returns_zero)
{
    cctx_t *c = cctx_with_timeout(cctx_background(), CCTX_SEC(3600), NULL);
    int64_t t0 = cctx_now();
    CHECK_EQ(cctx_sleep(c, CCTX_MSEC(20)), 0);
    int64_t el = cctx_now() - t0;
    printf("cctx_sleep(20 ms) took %.3f ms\n", el / 1e6);
    CHECK(el >= CCTX_MSEC(20));
    CHECK(el < CCTX_SEC(5));
    CHECK_EQ(cctx_sleep(c, 0), 0);
    CHECK_EQ(cctx_sleep(cctx_background(), CCTX_MSEC(2)), 0);
    /* A negative duration returns at once, as Go's time.Sleep, even on a
     * context that never ends: it is not the wait without limit that a
     * negative cctx_wait timeout is (which would hang here). */
    CHECK_EQ(cctx_sleep(c, -1), 0);
    CHECK_EQ(cctx_sleep(cctx_background(), INT64_MIN), 0);

    /* On a context already done: its error, at once. */
    cctx_cancel_t *dc;
    cctx_t *d = cctx_with_cancel(cctx_background(), &dc);
    cctx_cancel(dc);
    t0 = cctx_now();
    CHECK_EQ(cctx_sleep(d, CCTX_SEC(100)), ECANCELED);
    CHECK(cctx_now() - t0 < CCTX_SEC(5));

    cctx_release(d);
    cctx_release(c);
}

/* ---- a blocked waiter on another thread ------------------------------- */

enum wait_mode { MODE_WAIT, MODE_SLEEP, MODE_POLL, MODE_WAIT_ANY };

struct waiter {
    cctx_t *ctx;
    cctx_t *const *ctxs;
    size_t n;
    int fd;
    enum wait_mode mode;
    atomic_int ready;
    int result;
    int64_t woke;
};

static void *waiter_main(void *arg)
{
    struct waiter *w = arg;
    atomic_store(&w->ready, 1);
    switch (w->mode) {
    case MODE_WAIT: w->result = cctx_wait(w->ctx, -1); break;
    case MODE_SLEEP: w->result = cctx_sleep(w->ctx, CCTX_SEC(30)); break;
    case MODE_WAIT_ANY: w->result = cctx_wait_any(w->ctxs, w->n, -1); break;
    case MODE_POLL: {
        struct pollfd p = {.fd = w->fd, .events = POLLIN};
        int r;
        do
            r = poll(&p, 1, 30000);
        while (r < 0 && errno == EINTR);
        w->result = r == 1 && (p.revents & POLLIN) ? 1 : -1;
        break;
    }
    }
    w->woke = cctx_now();
    return NULL;
}

/* Starts a waiter and returns once it is (very probably) blocked. Being early
 * would only make the measured latency smaller, never fail a correct library. */
static void start_waiter(pthread_t *t, struct waiter *w)
{
    atomic_store(&w->ready, 0);
    CHECK_EQ(pthread_create(t, NULL, waiter_main, w), 0);
    while (!atomic_load(&w->ready))
        sched_yield();
    usleep(5000);
}

/* Cancels a context while a waiter of `mode` blocks on it; returns the
 * latency from the cancel call to the waiter's wake-up. */
static int64_t cancel_latency(enum wait_mode mode, int *result, int round)
{
    (void)round;
    cctx_cancel_t *cc;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cc);
    cctx_t *v = cctx_with_value(c, &key_a, NULL, NULL); /* waits go through the value context */
    cctx_t *other = cctx_with_cancel(cctx_background(), NULL);
    cctx_t *arr[3] = {other, v, cctx_background()};
    struct waiter w = {.ctx = v, .ctxs = arr, .n = 3, .fd = cctx_done_fd(v), .mode = mode};
    CHECK(w.fd >= 0);
    pthread_t t;
    start_waiter(&t, &w);
    int64_t t0 = cctx_now();
    cctx_cancel(cc);
    CHECK_EQ(pthread_join(t, NULL), 0);
    *result = w.result;
    cctx_release(other);
    cctx_release(v);
    cctx_release(c);
    return w.woke - t0;
}

/* Measures ROUNDS wake-ups of a waiter of `mode` (each returning `expect`)
 * after `event`; their median is within WAKE_BOUND. */
static void check_latency(int64_t (*latency)(enum wait_mode mode, int *result, int round),
                          const char *event, enum wait_mode mode, const char *what, int expect)
{
    int64_t lat[ROUNDS];
    for (int i = 0; i < ROUNDS; i++) {
        int result;
        lat[i] = latency(mode, &result, i);
        CHECK_EQ(result, expect);
        printf("%s woke %.3f ms after %s\n", what, lat[i] / 1e6, event);
    }
    int64_t m = median(lat, ROUNDS);
    printf("%s: median %.3f ms (bound %.0f ms)\n", what, m / 1e6, WAKE_BOUND / 1e6);
    CHECK(m < WAKE_BOUND);
}

static void check_cancel_latency(enum wait_mode mode, const char *what, int expect)
{
    check_latency(cancel_latency, "cctx_cancel", mode, what, expect);
}

TEST(wait_blocked_waiter_wakes_promptly_on_cancel_from_other_thread)
{
    check_cancel_latency(MODE_WAIT, "cctx_wait", ECANCELED);
}

TEST(wait_sleep_canceled_midway_returns_ecanceled)
{
    check_cancel_latency(MODE_SLEEP, "cctx_sleep(30 s)", ECANCELED);
}

TEST(wait_poll_on_done_fd_wakes_promptly_on_cancel)
{
    check_cancel_latency(MODE_POLL, "poll(done_fd)", 1);
}

TEST(wait_any_wakes_promptly_on_cancel_from_other_thread)
{
    check_cancel_latency(MODE_WAIT_ANY, "cctx_wait_any", 1);
}

/* A real deadline: the waiter (on a thread of its own in odd rounds) wakes no
 * earlier than the deadline and soon after. */
static int64_t deadline_latency(enum wait_mode mode, int *result, int round)
{
    bool on_thread = round % 2 == 1;
    cctx_t *c = cctx_with_timeout(cctx_background(), CCTX_MSEC(10), NULL);
    CHECK(c != NULL);
    int64_t deadline;
    CHECK(cctx_deadline(c, &deadline));
    struct waiter w = {.ctx = c, .ctxs = &c, .n = 1, .fd = cctx_done_fd(c), .mode = mode};
    CHECK(w.fd >= 0);
    if (on_thread) {
        pthread_t t;
        CHECK_EQ(pthread_create(&t, NULL, waiter_main, &w), 0);
        CHECK_EQ(pthread_join(t, NULL), 0);
    } else {
        waiter_main(&w);
    }
    *result = w.result;
    cctx_cause_t cause;
    CHECK_EQ(cctx_cause(c, &cause), ETIMEDOUT);
    CHECK(cause.when >= deadline); /* a deadline never fires early */
    CHECK(w.woke >= deadline);
    cctx_release(c);
    return w.woke - deadline;
}

static void check_deadline_latency(enum wait_mode mode, const char *what, int expect)
{
    check_latency(deadline_latency, "the deadline", mode, what, expect);
}

TEST(wait_blocked_waiter_wakes_promptly_at_real_deadline)
{
    check_deadline_latency(MODE_WAIT, "cctx_wait", ETIMEDOUT);
}

TEST(wait_sleep_ended_by_deadline_returns_etimedout)
{
    check_deadline_latency(MODE_SLEEP, "cctx_sleep(30 s)", ETIMEDOUT);
}

TEST(wait_poll_on_done_fd_wakes_promptly_at_real_deadline)
{
    check_deadline_latency(MODE_POLL, "poll(done_fd)", 1);
}

/* ---- cctx_wait_any ----------------------------------------------------- */

TEST(wait_any_returns_lowest_done_index)
{
    cctx_cancel_t *cc[4];
    cctx_t *c[5];
    for (int i = 0; i < 4; i++)
        c[i] = cctx_with_cancel(cctx_background(), &cc[i]);
    c[4] = cctx_background();

    CHECK_ERRNO(cctx_wait_any(c, 5, 0), -1, ETIMEDOUT);
    cctx_cancel(cc[3]);
    CHECK_EQ(cctx_wait_any(c, 5, 0), 3);
    CHECK_EQ(cctx_wait_any(c, 5, -1), 3);
    cctx_cancel(cc[1]);
    CHECK_EQ(cctx_wait_any(c, 5, 0), 1);
    CHECK_EQ(cctx_wait_any(c, 5, CCTX_SEC(10)), 1);
    CHECK_EQ(cctx_wait_any(c + 2, 3, 0), 1); /* index into the array given */
    cctx_cancel(cc[0]);
    CHECK_EQ(cctx_wait_any(c, 5, 0), 0);
    CHECK_EQ(cctx_wait_any(c, 1, -1), 0);

    /* A context that timed out counts as done too. */
    cctx_t *t[2] = {c[2], cctx_with_timeout(cctx_background(), -1, NULL)};
    CHECK_EQ(cctx_wait_any(t, 2, -1), 1);
    cctx_release(t[1]);

    for (int i = 0; i < 4; i++)
        cctx_release(c[i]);
}

TEST(wait_any_times_out_with_etimedout)
{
    cctx_t *c[3] = {cctx_with_cancel(cctx_background(), NULL),
                    cctx_with_timeout(cctx_background(), CCTX_SEC(3600), NULL),
                    cctx_todo()};
    int64_t t0 = cctx_now();
    CHECK_ERRNO(cctx_wait_any(c, 3, CCTX_MSEC(20)), -1, ETIMEDOUT);
    int64_t el = cctx_now() - t0;
    printf("cctx_wait_any(20 ms) took %.3f ms\n", el / 1e6);
    CHECK(el >= CCTX_MSEC(20));
    CHECK(el < CCTX_SEC(5));
    cctx_release(c[1]);
    cctx_release(c[0]);
}

TEST(wait_any_bad_input_is_einval)
{
    cctx_t *c = cctx_with_cancel(cctx_background(), NULL);
    cctx_t *arr[3] = {c, cctx_background(), NULL};
    cctx_t *only_null[1] = {NULL};

    CHECK_ERRNO(cctx_wait_any(NULL, 1, -1), -1, EINVAL);
    CHECK_ERRNO(cctx_wait_any(arr, 0, -1), -1, EINVAL);
    CHECK_ERRNO(cctx_wait_any(arr, 3, -1), -1, EINVAL); /* must not block */
    CHECK_ERRNO(cctx_wait_any(only_null, 1, 0), -1, EINVAL);
    cctx_release(c);
}

/* Out of descriptors: -1 with EMFILE, the context unharmed, and a later call
 * (once descriptors are free again) gives a working fd. */
TEST(wait_done_fd_out_of_descriptors_is_emfile)
{
    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cancel);
    CHECK(c != NULL);
    struct fds_used_up used;
    fds_use_up(&used);
    errno = 0;
    CHECK_EQ(cctx_done_fd(c), -1);
    CHECK_EQ(errno, EMFILE);
    CHECK_EQ(cctx_err(c), 0);
    fds_give_back(&used);
    int fd = cctx_done_fd(c);
    CHECK(fd >= 0);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    CHECK_EQ(poll(&p, 1, 0), 0);
    cctx_cancel(cancel);
    CHECK_EQ(poll(&p, 1, 0), 1);
    cctx_release(c);
}

/* ---- done descriptors across fork() ------------------------------------------------ */

/* A fork while another thread made, signalled or closed a done descriptor
 * must leave the child able to make its own (with eventfd there is no table
 * and this passes trivially). */
TEST(wait_done_fd_in_a_child_forked_while_another_thread_makes_one)
{
    if (TEST_UNDER_TSAN) { /* the child's exit reports the holder as a leaked thread */
        SKIP_IN_THIS_BUILD("ThreadSanitizer reports the forking parent's threads as leaked");
    }
    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cancel);
    CHECK(cctx_done_fd(c) >= 0); /* the table exists, and its fork handlers */
    struct lock_holder holder;   /* the table of pipes, until the fork sleeps */
    lock_holder_start(&holder, cctx__test_hold_pipes_lock);
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        alarm(10); /* a hang dies of SIGALRM, which fails the test */
        int fd = cctx_done_fd(c);
        if (fd < 0)
            _exit(10);
        cctx_cancel(cancel);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        _exit(poll(&p, 1, 0) == 1 ? 0 : 11);
    }
    int status;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    lock_holder_join(&holder);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
    CHECK_EQ(cctx_err(c), 0); /* the child's cancel is the child's */
    cctx_release(c);
}

/* The shared descriptor of contexts that never end, made before a fork, is
 * the parent's: a child that closes the descriptors it inherited (as a
 * daemon does) and opens others may get its number back for a file of its
 * own. The child must then get a descriptor of its own, as it does for a
 * context that can end, not that number: a readable file there told its
 * pollers that cctx_background() had ended, and a closed one made poll
 * report it at once (POLLNVAL), so every wait on it spun or ended early. */
TEST(wait_never_ending_fd_in_a_child_that_reused_its_number_is_the_childs)
{
    SKIP_FORK_UNDER_SANITIZERS();
    int never = cctx_done_fd(cctx_background());
    CHECK(never >= 0);
    CHECK(!fd_readable(never));
    pid_t pid = fork_with_alarm();
    if (pid == 0) {
        /* The number taken over by a pipe that is readable. */
        int p[2];
        if (pipe(p) != 0 || write(p[1], "x", 1) != 1 || dup2(p[0], never) != never)
            _exit(10);
        int fd = cctx_done_fd(cctx_background());
        if (fd < 0)
            _exit(11);
        if (fd == never)
            _exit(12);
        struct pollfd q = {.fd = fd, .events = POLLIN};
        if (poll(&q, 1, 0) != 0)
            _exit(13);
        /* The same one for every context that never ends, from now on. */
        cctx_t *vbg = cctx_with_value(cctx_background(), &never, NULL, NULL);
        if (!vbg || cctx_done_fd(vbg) != fd || cctx_done_fd(cctx_todo()) != fd)
            _exit(14);
        cctx_release(vbg);
        _exit(0);
    }
    CHECK_EQ(child_exit_status(pid), 0);
    CHECK_EQ(cctx_done_fd(cctx_background()), never); /* the parent's is unchanged */
    CHECK(!fd_readable(never));
}

/* ---- a thread cancelled while it waits ------------------------------------------ */

/* pthread_cancel of a thread in cctx_wait takes effect at its next
 * cancellation point after the wait, as with a futex, which is none. On the
 * portable build the wait was a condition wait, which is one: the thread
 * died holding the lock of its stripe, and every later wait or wake of a
 * word of that stripe waited for ever. */
static atomic_int cancelled_tid, cancelled_in_wait;

static void note_cancelled(void *arg)
{
    (void)arg;
    atomic_store(&cancelled_in_wait, 1);
}

static void *wait_cancellably(void *arg)
{
    atomic_store(&cancelled_tid, thread_id());
    pthread_cleanup_push(note_cancelled, NULL);
    cctx_wait(arg, -1);
    pthread_cleanup_pop(0);
    pthread_testcancel();
    return NULL;
}

static void cancel_a_waiting_thread(void)
{
    cctx_cancel_t *cancel;
    cctx_t *c = cctx_with_cancel(cctx_background(), &cancel);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, wait_cancellably, c), 0);
    while (!atomic_load(&cancelled_tid))
        real_sleep_ms(1);
    wait_until_blocked(atomic_load(&cancelled_tid));
    CHECK_EQ(pthread_cancel(t), 0);
    /* A second for the cancellation to act, where the wait lets it. */
    for (int i = 0; i < 1000 && !atomic_load(&cancelled_in_wait); i++)
        real_sleep_ms(1);
    CHECK(!atomic_load(&cancelled_in_wait));
    cctx_cancel(cancel); /* wakes it; before, it waited for the dead thread's lock */
    join_cancelled(t);
    cctx_release(c);
}

TEST(wait_thread_cancelled_while_waiting_stops_after_the_wait)
{
    /* Its scopes are not unpoisoned when a cancellation unwinds a thread,
     * and the thread's end then reads as a use after scope. */
    if (TEST_UNDER_ASAN)
        SKIP_IN_THIS_BUILD("AddressSanitizer takes the unwinding of a cancelled thread for a "
                           "use after scope");
    run_with_watchdog(cancel_a_waiting_thread, 30);
}
