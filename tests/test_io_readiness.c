/* SPDX-License-Identifier: MIT */
/*
 * <cctx/io.h> when poll's readiness does not hold at the try: on a
 * descriptor that is neither a pipe, a socket nor a file (here an eventfd,
 * which takes RWF_NOWAIT), another thread may take what poll saw, or poll
 * may overstate readiness. The call must wait again, never block in a
 * plain read deaf to ctx, and must not spin. A test hook in src/io.c runs
 * between the wait and the try, and takes the eventfd's count there. A
 * write whose count would overflow an eventfd is refused while poll says
 * ready: the call must nap there too. And a descriptor open the other way
 * never reports readiness at all: the call must fail as read(2) and
 * write(2) do, at once, rather than wait for ctx.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/io.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "cctx_config.h" /* CCTX_USE_PREADV2 */
#include "harness.h"
#include "io_internal.h"
#include "support.h"

static int efd = -1;
static atomic_int steals;
static atomic_int stolen_posts; /* steals the refiller has yet to answer */
static _Atomic pid_t reader_tid;

/* Takes the count that woke the reader, as a second reader would. */
static void steal(int fd)
{
    uint64_t v;
    if (fd == efd && read(fd, &v, sizeof v) == (ssize_t)sizeof v) {
        atomic_fetch_add(&steals, 1);
        atomic_fetch_add(&stolen_posts, 1);
    }
}

struct reader {
    cctx_t *ctx;
    ssize_t r;
    int err;
    atomic_int returned;
};

static void *read_eventfd(void *arg)
{
    struct reader *rd = arg;
    atomic_store(&reader_tid, thread_id());
    uint64_t v;
    rd->r = cctx_read(rd->ctx, efd, &v, sizeof v);
    rd->err = errno;
    atomic_store(&rd->returned, 1);
    return NULL;
}

/* Waits up to 10 s for the reader to return; if it is stuck in the kernel,
 * frees it with a count, so the test can fail rather than hang. */
static bool returned_within_10s(struct reader *rd)
{
    for (int i = 0; i < 10000 && !atomic_load(&rd->returned); i++)
        real_sleep_ms(1);
    bool in_time = atomic_load(&rd->returned);
    uint64_t one = 1;
    if (!in_time)
        CHECK_EQ(write(efd, &one, sizeof one), (ssize_t)sizeof one);
    return in_time;
}

/* Whether a count of tries reaches n within 10 s (a loaded machine may
 * keep the trying thread off a core for a while). */
static bool tries_reach(atomic_int *count, int n)
{
    for (int i = 0; i < 10000 && atomic_load(count) < n; i++)
        real_sleep_ms(1);
    return atomic_load(count) >= n;
}

/* The tries counted in the next 300 ms. */
static int count_for_300_ms(atomic_int *count)
{
    int before = atomic_load(count);
    real_sleep_ms(300);
    return atomic_load(count) - before;
}

/* Without preadv2 (the portable build) a blocking descriptor is polled,
 * then read plainly: the window the header admits for descriptors without
 * RWF_NOWAIT, which these tests cannot close. */
#define SKIP_WITHOUT_RWF_NOWAIT()                                                                  \
    do {                                                                                           \
        if (!CCTX_USE_PREADV2)                                                                     \
            SKIP_IN_THIS_BUILD("no preadv2 in this libc or build: reads are polled");              \
    } while (0)

static void setup(struct reader *rd, cctx_cancel_t **cancel)
{
    efd = eventfd(0, EFD_CLOEXEC); /* blocking, as a shared one would be */
    CHECK(efd >= 0);
    atomic_store(&steals, 0);
    atomic_store(&stolen_posts, 0);
    atomic_store(&reader_tid, 0);
    *rd = (struct reader){.ctx = cctx_with_cancel(cctx_background(), cancel)};
    CHECK(rd->ctx != NULL);
    atomic_store_explicit(&cctx__io_ready_hook, steal, memory_order_relaxed);
}

static void teardown(struct reader *rd)
{
    atomic_store_explicit(&cctx__io_ready_hook, NULL, memory_order_relaxed);
    cctx_release(rd->ctx);
    close(efd);
    efd = -1;
}

/* Starts the reader, waits until it sleeps in its wait (nothing to read
 * yet), then makes the eventfd readable. */
static void start_reader_then_count_one(struct reader *rd, pthread_t *t)
{
    CHECK_EQ(pthread_create(t, NULL, read_eventfd, rd), 0);
    while (atomic_load(&reader_tid) == 0)
        real_sleep_ms(1);
    wait_until_blocked(atomic_load(&reader_tid));
    uint64_t one = 1;
    CHECK_EQ(write(efd, &one, sizeof one), (ssize_t)sizeof one);
}

TEST(io_read_eventfd_whose_count_another_reader_took_still_ends_with_ctx)
{
    SKIP_WITHOUT_RWF_NOWAIT();
    struct reader rd;
    cctx_cancel_t *cancel;
    setup(&rd, &cancel);
    pthread_t t;
    start_reader_then_count_one(&rd, &t);
    for (int i = 0; i < 10000 && atomic_load(&steals) == 0; i++)
        real_sleep_ms(1);
    CHECK_EQ(atomic_load(&steals), 1);
    wait_until_blocked(atomic_load(&reader_tid)); /* waiting again, or (the bug) in read(2) */
    cctx_cancel(cancel);
    CHECK(returned_within_10s(&rd));
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_EQ(rd.r, -1);
    CHECK_EQ(rd.err, ECANCELED);
    teardown(&rd);
}

/* Refills the eventfd after every steal, once the reader sleeps again (in a
 * nap or a wait: never between the steal and the try), so every wait
 * reports it ready and every try finds it taken, as on a descriptor whose
 * poll overstates. */
static atomic_int refilling;
static void *refill(void *arg)
{
    (void)arg;
    uint64_t one = 1;
    while (atomic_load(&refilling)) {
        pid_t tid = atomic_load(&reader_tid);
        if (atomic_load(&stolen_posts) > 0 && tid && thread_state(tid) == 'S') {
            atomic_fetch_sub(&stolen_posts, 1);
            CHECK_EQ(write(efd, &one, sizeof one), (ssize_t)sizeof one);
        } else {
            sched_yield();
        }
    }
    return NULL;
}

TEST(io_read_whose_readiness_keeps_misleading_naps_between_tries)
{
    SKIP_WITHOUT_RWF_NOWAIT();
    struct reader rd;
    cctx_cancel_t *cancel;
    setup(&rd, &cancel);
    atomic_store(&refilling, 1);
    pthread_t t, r;
    CHECK_EQ(pthread_create(&r, NULL, refill, NULL), 0);
    start_reader_then_count_one(&rd, &t);
    /* It did try again; then, in 300 ms, naps of 1, 2, 4, 8 and then 16 ms
     * allow some 25 tries, and a loop without them makes thousands. */
    CHECK(tries_reach(&steals, 2));
    int tries = count_for_300_ms(&steals);
    cctx_cancel(cancel);
    CHECK(returned_within_10s(&rd));
    atomic_store(&refilling, 0);
    CHECK_EQ(pthread_join(r, NULL), 0);
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_EQ(rd.r, -1);
    CHECK_EQ(rd.err, ECANCELED);
    CHECK(tries < 200); /* it did not spin */
    teardown(&rd);
}

/* Counts the waits that reported the eventfd ready. */
static atomic_int waits_ready;
static void count_wait(int fd)
{
    if (fd == efd)
        atomic_fetch_add(&waits_ready, 1);
}

struct writer {
    cctx_t *ctx;
    ssize_t r;
    int err;
};

static void *write_five(void *arg)
{
    struct writer *w = arg;
    uint64_t five = 5;
    w->r = cctx_write(w->ctx, efd, &five, sizeof five);
    w->err = errno;
    return NULL;
}

/* An eventfd's POLLOUT says a count of 1 fits; a larger one that would
 * overflow the counter is refused (EAGAIN on a non-blocking eventfd, which
 * takes no RWF_NOWAIT for writes). Poll keeps saying ready, so without a
 * nap the write spins on a core until ctx ends. Runs in every build: a
 * non-blocking descriptor needs no RWF_NOWAIT. */
TEST(io_write_that_would_overflow_a_nonblocking_eventfd_naps_and_ends_with_ctx)
{
    efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    CHECK(efd >= 0);
    uint64_t near_full = UINT64_MAX - 3; /* the most is UINT64_MAX - 1 */
    CHECK_EQ(write(efd, &near_full, sizeof near_full), (ssize_t)sizeof near_full);
    atomic_store(&waits_ready, 0);
    cctx_cancel_t *cancel;
    struct writer w = {.ctx = cctx_with_cancel(cctx_background(), &cancel)};
    CHECK(w.ctx != NULL);
    atomic_store_explicit(&cctx__io_ready_hook, count_wait, memory_order_relaxed);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, write_five, &w), 0);
    /* It tries again; then, in 300 ms, naps of 1, 2, 4, 8 and then 16 ms
     * allow some 25 tries, and a loop without them makes thousands. */
    CHECK(tries_reach(&waits_ready, 2));
    int tries = count_for_300_ms(&waits_ready);
    cctx_cancel(cancel);
    CHECK_EQ(pthread_join(t, NULL), 0);
    atomic_store_explicit(&cctx__io_ready_hook, NULL, memory_order_relaxed);
    CHECK_EQ(w.r, -1);
    CHECK_EQ(w.err, ECANCELED);
    CHECK(tries < 200);
    uint64_t count;
    CHECK_EQ(read(efd, &count, sizeof count), (ssize_t)sizeof count);
    CHECK_EQ(count, near_full); /* nothing was written */
    cctx_release(w.ctx);
    close(efd);
    efd = -1;
}

/* A descriptor open the other way: read(2) and write(2) refuse it at once
 * with EBADF, and so must the calls. Where the call polls before it tries
 * (a build without RWF_NOWAIT), such a descriptor never reports readiness:
 * before, each call waited out ctx's 10 s and returned ETIMEDOUT. The calls
 * that may be made still are, on descriptors that take no RWF_NOWAIT (a
 * blocking eventfd's write) or read with a size a call of 0 bytes would not
 * pass (an eventfd's 8). */
TEST(io_calls_on_a_descriptor_open_the_other_way_fail_at_once_as_read_and_write_do)
{
    cctx_cancel_t *cancel;
    cctx_t *ctx = cctx_with_timeout(cctx_background(), CCTX_SEC(10), &cancel);
    CHECK(ctx != NULL);
    int p[2];
    CHECK_EQ(pipe(p), 0);
    char b[16] = {0};
    int64_t t0 = real_now();
    CHECK_ERRNO(cctx_write(ctx, p[0], b, 1), -1, EBADF); /* the pipe's read end */
    CHECK_ERRNO(cctx_read(ctx, p[1], b, 1), -1, EBADF);  /* its write end */
    CHECK(real_now() - t0 < CCTX_SEC(5));
    CHECK_EQ(cctx_err(ctx), 0);
    CHECK_EQ(cctx_write(ctx, p[1], "x", 1), 1);
    CHECK_EQ(cctx_read(ctx, p[0], b, sizeof b), 1);
    CHECK_EQ(b[0], 'x');
    int ev = eventfd(0, EFD_CLOEXEC); /* blocking */
    CHECK(ev >= 0);
    uint64_t one = 1, got = 0;
    CHECK_EQ(cctx_write(ctx, ev, &one, sizeof one), (ssize_t)sizeof one);
    CHECK_EQ(cctx_read(ctx, ev, &got, sizeof got), (ssize_t)sizeof got);
    CHECK_EQ(got, 1u);
    close(p[0]), close(p[1]), close(ev);
    cctx_cancel(cancel);
    cctx_release(ctx);
}
