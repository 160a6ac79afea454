/* SPDX-License-Identifier: MIT */
/*
 * Section 9, <cctx/io.h>: writing to a blocking terminal. A tty takes no
 * RWF_NOWAIT and its POLLOUT promises room for one byte, so a write there
 * must not trust poll: it still ends with its context while the terminal
 * takes nothing, writes everything when the terminal is read, and leaves the
 * caller's descriptor and flags as they were. A pty's master side, whose
 * node would open a new pair, is written as it is.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/io.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "harness.h"
#include "io_ops.h"
#include "support.h"

enum { BIG = 1 << 20 };

/* A pty in raw mode (bytes pass as they are): its blocking slave, which the
 * tests write to, and its master, from which the bytes come out. */
struct pty {
    int master, slave;
};

static bool open_pty(struct pty *p)
{
    p->master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (p->master < 0)
        return false;
    CHECK_EQ(grantpt(p->master), 0);
    CHECK_EQ(unlockpt(p->master), 0);
    p->slave = open(ptsname(p->master), O_RDWR | O_NOCTTY | O_CLOEXEC);
    CHECK(p->slave >= 0);
    struct termios tio;
    CHECK_EQ(tcgetattr(p->slave, &tio), 0);
    cfmakeraw(&tio);
    CHECK_EQ(tcsetattr(p->slave, TCSANOW, &tio), 0);
    return true;
}

/* The lowest free descriptor number: the same before a context is made and
 * after it is released when nothing in between leaks one. */
static int lowest_free_fd(void)
{
    int fd = dup(0);
    CHECK(fd >= 0);
    close(fd);
    return fd;
}

/* Reads what the master gives until `want` bytes came, or nothing came for a
 * second. Compares them with `sent`; the count read. */
static size_t drain_master(int master, const char *sent, size_t want)
{
    static char got[BIG];
    size_t n = 0;
    while (n < want) {
        struct pollfd p = {.fd = master, .events = POLLIN};
        if (poll(&p, 1, 1000) <= 0)
            break;
        ssize_t r = read(master, got + n, want - n);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    CHECK(memcmp(got, sent, n) == 0);
    return n;
}

static char payload[BIG];

static void fill_payload(void)
{
    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (char)('a' + i % 26);
}

/* ---- a terminal that takes nothing ------------------------------------------------ */

static struct {
    struct pty p;
    cctx_t *ctx;
    atomic_int tid;
    ssize_t result;
    int err;
} away;

static void *write_big(void *arg)
{
    (void)arg;
    atomic_store(&away.tid, thread_id());
    away.result = cctx_write(away.ctx, away.p.slave, payload, sizeof payload);
    away.err = errno;
    return NULL;
}

static void write_while_reader_is_away(void)
{
    int flags = fd_flags(away.p.slave);
    int free_fd = lowest_free_fd();
    cctx_cancel_t *cancel;
    away.ctx = cctx_with_cancel(cctx_background(), &cancel);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, write_big, NULL), 0);
    while (!atomic_load(&away.tid))
        sched_yield();
    /* Blocked: the terminal's buffer is full, nobody reads the master. */
    wait_until_blocked(atomic_load(&away.tid));
    cctx_cancel(cancel);
    CHECK_EQ(pthread_join(t, NULL), 0);
    /* What the terminal took is counted, not lost behind the error. */
    CHECK(away.result > 0 && away.result < (ssize_t)sizeof payload);
    CHECK_EQ(fd_flags(away.p.slave), flags);
    CHECK_EQ(drain_master(away.p.master, payload, (size_t)away.result), (size_t)away.result);
    /* Once canceled, the next call says so at once. */
    CHECK_EQ(cctx_write(away.ctx, away.p.slave, "x", 1), -1);
    CHECK_EQ(errno, ECANCELED);
    cctx_release(away.ctx); /* and with it its done descriptor, made by the wait */
    CHECK_EQ(lowest_free_fd(), free_fd);
}

TEST(io_write_to_a_blocking_tty_whose_reader_is_away_ends_with_its_context)
{
    if (!open_pty(&away.p))
        SKIP("no pseudo-terminal here: %s", strerror(errno));
    fill_payload();
    run_with_watchdog(write_while_reader_is_away, 20);
    close(away.p.slave);
    close(away.p.master);
}

/* A thread cancelled (pthread_cancel) while it waits for the terminal:
 * the call's own descriptor is closed as it unwinds. Before, it stayed
 * open. */
static void *write_big_until_cancelled(void *arg)
{
    (void)arg;
    atomic_store(&away.tid, thread_id());
    cctx_write(away.ctx, away.p.slave, payload, sizeof payload);
    return NULL;
}

static void cancel_while_reader_is_away(void)
{
    int free_fd = lowest_free_fd();
    cctx_cancel_t *cancel;
    away.ctx = cctx_with_cancel(cctx_background(), &cancel);
    atomic_store(&away.tid, 0);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, write_big_until_cancelled, NULL), 0);
    while (!atomic_load(&away.tid))
        sched_yield();
    wait_until_blocked(atomic_load(&away.tid));
    cancel_and_join(t);
    cctx_cancel(cancel);
    cctx_release(away.ctx); /* and its done descriptor, made by the wait */
    CHECK_EQ(lowest_free_fd(), free_fd);
}

TEST(io_write_to_a_blocking_tty_cancelled_in_its_wait_closes_its_own_descriptor)
{
    if (TEST_UNDER_ASAN)
        SKIP_IN_THIS_BUILD("AddressSanitizer takes the unwinding of a cancelled thread for a "
                           "use after scope");
    if (!open_pty(&away.p))
        SKIP("no pseudo-terminal here: %s", strerror(errno));
    fill_payload();
    run_with_watchdog(cancel_while_reader_is_away, 20);
    close(away.p.slave);
    close(away.p.master);
}

/* ---- a terminal that is read ---------------------------------------------------- */

struct reader {
    int master;
    size_t got;
};

static void *read_master(void *arg)
{
    struct reader *r = arg;
    r->got = drain_master(r->master, payload, sizeof payload);
    return NULL;
}

TEST(io_write_to_a_blocking_tty_that_is_read_writes_everything)
{
    struct pty p;
    if (!open_pty(&p))
        SKIP("no pseudo-terminal here: %s", strerror(errno));
    fill_payload();
    int flags = fd_flags(p.slave);
    int free_fd = lowest_free_fd();
    struct reader r = {.master = p.master};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, read_master, &r), 0);
    cctx_t *ctx = cctx_with_cancel(cctx_background(), NULL);
    CHECK_EQ(cctx_write(ctx, p.slave, payload, sizeof payload), (ssize_t)sizeof payload);
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_EQ(r.got, sizeof payload);
    CHECK_EQ(fd_flags(p.slave), flags);
    cctx_release(ctx);
    CHECK_EQ(lowest_free_fd(), free_fd);
    close(p.slave);
    close(p.master);
}

/* ---- a pty's master side ---------------------------------------------------------- */

/* Its node is /dev/ptmx: opened again, it would be a new pair, and the bytes
 * would go where nobody reads them. */
TEST(io_write_to_a_pty_master_reaches_its_other_side)
{
    struct pty p;
    if (!open_pty(&p))
        SKIP("no pseudo-terminal here: %s", strerror(errno));
    cctx_t *ctx = cctx_with_cancel(cctx_background(), NULL);
    CHECK_EQ(cctx_write(ctx, p.master, "hello", 5), 5);
    struct pollfd pf = {.fd = p.slave, .events = POLLIN};
    CHECK_EQ(poll(&pf, 1, 5000), 1);
    char b[8];
    CHECK_EQ(read(p.slave, b, sizeof b), 5);
    CHECK(memcmp(b, "hello", 5) == 0);
    cctx_release(ctx);
    close(p.slave);
    close(p.master);
}

/* A terminal open for reading only: write(2) refuses it (EBADF), and so
 * must the call. Where the write goes through a descriptor of the call's
 * own (a build without RWF_NOWAIT: the portable build of the
 * portability run), opening the node anew for writing wrote to the
 * terminal all the same. With RWF_NOWAIT, pwritev2 refuses it first. */
TEST(io_write_to_a_tty_open_for_reading_only_is_ebadf)
{
    struct pty p;
    if (!open_pty(&p))
        SKIP("no pseudo-terminal here: %s", strerror(errno));
    int ro = open(ptsname(p.master), O_RDONLY | O_NOCTTY | O_CLOEXEC);
    CHECK(ro >= 0);
    CHECK_ERRNO(write(ro, "hi", 2), -1, EBADF);
    cctx_t *ctx = cctx_with_cancel(cctx_background(), NULL);
    CHECK_ERRNO(cctx_write(ctx, ro, "hi", 2), -1, EBADF);
    struct pollfd pf = {.fd = p.master, .events = POLLIN};
    CHECK_EQ(poll(&pf, 1, 0), 0); /* nothing reached the terminal */
    cctx_release(ctx);
    close(ro);
    close(p.slave);
    close(p.master);
}
