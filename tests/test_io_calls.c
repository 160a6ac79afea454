/* SPDX-License-Identifier: MIT */
/*
 * Section 9, <cctx/io.h>, continued from test_io.c: what the table of
 * operations cannot say about the descriptor calls. MSG_WAITALL and
 * datagrams; connect over TCP, canceled while the SYN goes unanswered; poll's
 * timeout on either clock and its array; descriptors that refuse RWF_NOWAIT
 * (a pty, regular and /proc files) and the done fd; bad input to every call.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/io.h>
#include <cctx/testing.h>

#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <termios.h>
#include <unistd.h>

#include "cctx_config.h" /* CCTX_USE_PREADV2 */
#include "harness.h"
#include "io_internal.h" /* cctx__preadv2 */
#include "io_ops.h"
#include "support.h"
#include "testhooks.h"

static const int64_t T0 = CCTX_SEC(1000); /* where fake-clock tests start */

/* ---- recv / send specifics ------------------------------------------------------------ */

struct sender {
    int fd;
    atomic_int *tid;
    int pieces;
};

static void *send_pieces(void *arg)
{
    struct sender *s = arg;
    for (int i = 0; i < s->pieces; i++) {
        await_blocked(s->tid);
        char b[100];
        memset(b, 'a' + i, sizeof b);
        CHECK_EQ(write(s->fd, b, sizeof b), 100);
    }
    return NULL;
}

struct receiver {
    cctx_t *ctx;
    int fd;
    atomic_int tid;
    char buf[300];
    ssize_t r;
    int err;
};

static void *recv_waitall(void *arg)
{
    struct receiver *x = arg;
    atomic_store(&x->tid, thread_id());
    errno = 0;
    x->r = cctx_recv(x->ctx, x->fd, x->buf, sizeof x->buf, MSG_WAITALL);
    x->err = errno;
    return NULL;
}

/* MSG_WAITALL gathers pieces until len, as a blocking recv does; canceled
 * part-way it returns what it has (all of it, unless the cancel came before
 * the last piece was taken), and what it did not take is still there. */
TEST(io_recv_waitall_gathers_until_len_or_cancel)
{
    for (int canceled = 0; canceled < 2; canceled++) {
        int sv[2];
        CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        cctx_cancel_t *cancel;
        struct receiver x = {.fd = sv[0]};
        x.ctx = cctx_with_cancel(cctx_background(), &cancel);
        struct sender s = {.fd = sv[1], .tid = &x.tid, .pieces = canceled ? 2 : 3};
        pthread_t tr, ts;
        CHECK_EQ(pthread_create(&tr, NULL, recv_waitall, &x), 0);
        CHECK_EQ(pthread_create(&ts, NULL, send_pieces, &s), 0);
        CHECK_EQ(pthread_join(ts, NULL), 0);
        if (canceled) {
            await_blocked(&x.tid);
            cctx_cancel(cancel);
        }
        CHECK_EQ(pthread_join(tr, NULL), 0);
        if (canceled)
            CHECK(x.r == 200 || x.r == 100);
        else
            CHECK_EQ(x.r, 300);
        for (int i = 0; i < x.r; i++)
            CHECK_EQ(x.buf[i], 'a' + i / 100);
        char rest[300];
        CHECK_EQ(drain(sv[0], rest, sizeof rest), (size_t)(canceled ? 200 - x.r : 0));
        for (int i = 0; i < 200 - x.r && canceled; i++)
            CHECK_EQ(rest[i], 'a' + (x.r + i) / 100);
        close(sv[0]);
        close(sv[1]);
        cctx_release(x.ctx);
    }
}

/* The caller's MSG_DONTWAIT means one attempt; datagrams keep their bounds. */
TEST(io_recv_send_dontwait_and_datagrams)
{
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
    cctx_t *ctx = cctx_with_cancel(cctx_background(), NULL);
    char b[64];
    CHECK_ERRNO(cctx_recv(ctx, sv[0], b, sizeof b, MSG_DONTWAIT), -1, EAGAIN);
    CHECK_EQ(cctx_send(ctx, sv[1], "one", 3, 0), 3);
    CHECK_EQ(cctx_send(ctx, sv[1], "three", 5, 0), 5);
    CHECK_EQ(cctx_recv(ctx, sv[0], b, sizeof b, MSG_WAITALL), 3); /* one datagram */
    CHECK_EQ(cctx_recv(ctx, sv[0], b, sizeof b, MSG_PEEK), 5);
    CHECK_EQ(cctx_recv(ctx, sv[0], b, sizeof b, 0), 5);
    CHECK(memcmp(b, "three", 5) == 0);
    close(sv[0]);
    close(sv[1]);
    cctx_release(ctx);
}

/* A read of an empty error queue is EAGAIN at once, for a blocking recv
 * too; before, cctx_recv waited for the queue until ctx ended. */
TEST(io_recv_errqueue_empty_is_eagain_at_once)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    cctx_t *ctx = cctx_with_timeout(cctx_background(), CCTX_SEC(10), NULL);
    char b[64];
    CHECK_ERRNO(cctx_recv(ctx, fd, b, sizeof b, MSG_ERRQUEUE), -1, EAGAIN);
    CHECK_EQ(cctx_err(ctx), 0);
    close(fd);
    cctx_release(ctx);
}

/* ---- connect over TCP ----------------------------------------------------------------- */

struct connector {
    cctx_t *ctx;
    int fd;
    struct sockaddr_in addr;
    atomic_int tid;
    int r, err;
};

static void *do_connect(void *arg)
{
    struct connector *c = arg;
    atomic_store(&c->tid, thread_id());
    errno = 0;
    c->r = cctx_connect(c->ctx, c->fd, (struct sockaddr *)&c->addr, sizeof c->addr);
    c->err = errno;
    return NULL;
}

static int tcp_socket(bool nonblock)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
    CHECK(fd >= 0);
    struct timeval tv = {7, 0};
    CHECK_EQ(setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv), 0);
    return fd;
}

TEST(io_connect_tcp_loopback_blocking_and_nonblocking)
{
    struct sockaddr_in a;
    int l = tcp_listener(&a, 8);
    cctx_t *ctx = cctx_with_timeout(cctx_background(), CCTX_SEC(30), NULL);
    for (int nb = 0; nb < 2; nb++) {
        int fd = tcp_socket(nb);
        int flags = fd_flags(fd);
        CHECK_EQ(cctx_connect(ctx, fd, (struct sockaddr *)&a, sizeof a), 0);
        CHECK_EQ(fd_flags(fd), flags);
        check_sndtimeo(fd);
        int s = accept(l, NULL, NULL);
        CHECK(s >= 0);
        CHECK_EQ(cctx_write(ctx, fd, "x", 1), 1);
        char c;
        CHECK_EQ(cctx_read(ctx, s, &c, 1), 1);
        CHECK_EQ(c, 'x');
        close(s);
        close(fd);
    }
    /* Nobody listening: the kernel's answer. */
    close(l);
    int fd = tcp_socket(false);
    CHECK_ERRNO(cctx_connect(ctx, fd, (struct sockaddr *)&a, sizeof a), -1, ECONNREFUSED);
    close(fd);
    cctx_release(ctx);
}

/* A listener whose accept queue is full drops SYNs, so a connect hangs in
 * SYN_SENT for seconds: blocking or not, a cancel ends it at once, and the
 * blocking socket's SO_SNDTIMEO is back. The attempt goes on, and a later
 * call reports how it ended. */
static void tcp_connect_canceled(bool nonblock)
{
    struct sockaddr_in a;
    int l = tcp_listener(&a, 0);
    int first = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK_EQ(connect(first, (struct sockaddr *)&a, sizeof a), 0); /* fills the queue */
    cctx_cancel_t *cancel;
    struct connector c = {.fd = tcp_socket(nonblock), .addr = a};
    int flags = fd_flags(c.fd);
    c.ctx = cctx_with_cancel(cctx_background(), &cancel);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, do_connect, &c), 0);
    await_blocked(&c.tid);
    int64_t t0 = real_now();
    cctx_cancel(cancel);
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK(real_now() - t0 < SLOW_BOUND);
    CHECK_EQ(c.r, -1);
    CHECK_EQ(c.err, ECANCELED);
    CHECK_EQ(fd_flags(c.fd), flags);
    check_sndtimeo(c.fd);
    /* Room in the queue: the attempt left in flight connects with its next
     * SYN (a second after the first). A call made after that gets 0, as
     * connect(2) answers there; one after a 0 of connect(2), EISCONN. */
    int s = accept(l, NULL, NULL);
    CHECK(s >= 0);
    struct pollfd p = {.fd = c.fd, .events = POLLOUT};
    CHECK_EQ(poll(&p, 1, 10 * 1000), 1);
    cctx_t *ctx = cctx_with_timeout(cctx_background(), CCTX_SEC(30), NULL);
    CHECK_EQ(cctx_connect(ctx, c.fd, (struct sockaddr *)&a, sizeof a), 0);
    CHECK_ERRNO(cctx_connect(ctx, c.fd, (struct sockaddr *)&a, sizeof a), -1, EISCONN);
    CHECK_EQ(fd_flags(c.fd), flags);
    check_sndtimeo(c.fd);
    cctx_release(ctx);
    close(s);
    close(c.fd);
    close(first);
    close(l);
    cctx_release(c.ctx);
}

TEST(io_connect_tcp_blocking_canceled_while_syn_unanswered)
{
    tcp_connect_canceled(false);
}

TEST(io_connect_tcp_nonblocking_canceled_while_syn_unanswered)
{
    tcp_connect_canceled(true);
}

/* ---- poll specifics -------------------------------------------------------------------- */

struct poller {
    cctx_t *ctx;
    struct pollfd *fds;
    nfds_t n;
    int64_t timeout;
    atomic_int tid;
    int r, err;
};

static void *do_poll(void *arg)
{
    struct poller *p = arg;
    atomic_store(&p->tid, thread_id());
    errno = 0;
    p->r = cctx_poll(p->ctx, p->fds, p->n, p->timeout);
    p->err = errno;
    return NULL;
}

/* The timeout is measured on the fake clock: it passes when the clock is
 * advanced past it (not before), and poll returns 0 with ctx still active. */
TEST(io_poll_timeout_on_fake_clock_returns_zero)
{
    cctx_fake_clock_start(T0);
    int p[2];
    CHECK_EQ(pipe2(p, O_CLOEXEC), 0);
    struct pollfd fds[1] = {{.fd = p[0], .events = POLLIN, .revents = 77}};
    struct poller x = {.fds = fds, .n = 1, .timeout = CCTX_MSEC(100)};
    x.ctx = cctx_with_timeout(cctx_background(), CCTX_SEC(60), NULL);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, do_poll, &x), 0);
    await_blocked(&x.tid);
    cctx_fake_clock_advance(CCTX_MSEC(99));
    real_sleep_ms(20);
    CHECK(thread_state(atomic_load(&x.tid)) == 'S'); /* still waiting */
    cctx_fake_clock_advance(CCTX_MSEC(1));
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_EQ(x.r, 0);
    CHECK_EQ(fds[0].revents, 0);
    CHECK_EQ(cctx_err(x.ctx), 0);
    /* ctx's deadline sooner than the timeout: ctx's error, not 0. */
    x.timeout = CCTX_SEC(3600);
    atomic_store(&x.tid, 0); /* the next thread's, not the last one's */
    CHECK_EQ(pthread_create(&t, NULL, do_poll, &x), 0);
    await_blocked(&x.tid);
    cctx_fake_clock_advance(CCTX_SEC(60));
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK(x.r == -1 && x.err == ETIMEDOUT);
    close(p[0]);
    close(p[1]);
    cctx_release(x.ctx);
    cctx_fake_clock_stop();
}

TEST(io_poll_timeouts_zero_negative_and_real)
{
    int p[2];
    CHECK_EQ(pipe2(p, O_CLOEXEC), 0);
    cctx_t *ctx = cctx_with_cancel(cctx_background(), NULL);
    struct pollfd fds[2] = {{.fd = p[0], .events = POLLIN}, {.fd = p[1], .events = POLLOUT}};
    CHECK_EQ(cctx_poll(ctx, fds, 1, 0), 0);
    CHECK_EQ(cctx_poll(ctx, fds, 2, 0), 1);
    CHECK_EQ(fds[1].revents, POLLOUT);
    CHECK_EQ(cctx_poll(ctx, fds, 2, -1), 1);
    CHECK_EQ(cctx_poll(ctx, NULL, 0, 0), 0);
    int64_t t0 = real_now();
    CHECK_EQ(cctx_poll(ctx, fds, 1, CCTX_MSEC(20)), 0);
    int64_t el = real_now() - t0;
    CHECK(el >= CCTX_MSEC(20) && el < SLOW_BOUND);
    t0 = real_now();
    CHECK_EQ(cctx_poll(ctx, NULL, 0, CCTX_MSEC(5)), 0); /* a sleep */
    CHECK(real_now() - t0 >= CCTX_MSEC(5));
    CHECK_EQ(cctx_poll(cctx_background(), fds, 1, CCTX_MSEC(1)), 0);
    close(p[0]);
    close(p[1]);
    cctx_release(ctx);
}

/* Only revents is written; fd < 0 entries are ignored; many entries (the
 * heap copy) work alike. */
TEST(io_poll_writes_only_revents)
{
    enum { N = 100 };
    int p[2];
    CHECK_EQ(pipe2(p, O_CLOEXEC), 0);
    cctx_t *ctx = cctx_with_cancel(cctx_background(), NULL);
    static struct pollfd fds[N], copy[N];
    for (nfds_t n = 2; n <= N; n = n * 3 + 1) { /* 2, 7, 22, 67: stack and heap */
        for (nfds_t i = 0; i < n; i++)
            fds[i] = (struct pollfd){.fd = i % 3 == 2 ? -1 : p[i % 2],
                                     .events = (short)(i % 2 ? POLLOUT : POLLIN), .revents = 99};
        memcpy(copy, fds, sizeof fds);
        int r = cctx_poll(ctx, fds, n, -1);
        int want = 0;
        for (nfds_t i = 0; i < n; i++) {
            CHECK_EQ(fds[i].fd, copy[i].fd);
            CHECK_EQ(fds[i].events, copy[i].events);
            short expect = fds[i].fd < 0 ? 0 : i % 2 ? POLLOUT : 0;
            CHECK_EQ(fds[i].revents, expect);
            want += expect != 0;
        }
        CHECK_EQ(r, want);
    }
    close(p[0]);
    close(p[1]);
    cctx_release(ctx);
}

/* A finite timeout on ready descriptors costs what poll costs: no derived
 * context, so not even an allocation (the next one is made to fail, which
 * would be the call's ENOMEM). On the real clock a wait with a timeout
 * allocates nothing either, and still waits the whole timeout. */
TEST(io_poll_timeout_allocates_nothing)
{
    int p[2];
    CHECK_EQ(pipe2(p, O_CLOEXEC), 0);
    CHECK_EQ(write(p[1], "x", 1), 1);
    cctx_t *ctx = cctx_with_timeout(cctx_background(), CCTX_SEC(60), NULL);
    CHECK(cctx_done_fd(ctx) >= 0); /* made once per context, not per call */
    struct pollfd fds[1] = {{.fd = p[0], .events = POLLIN}};
    cctx__test_fail_alloc(1);
    CHECK_EQ(cctx_poll(ctx, fds, 1, CCTX_SEC(1)), 1);
    CHECK_EQ(fds[0].revents, POLLIN);
    fds[0].events = POLLPRI; /* never ready on a pipe: a wait */
    int64_t t0 = real_now();
    CHECK_EQ(cctx_poll(ctx, fds, 1, CCTX_MSEC(20)), 0);
    int64_t el = real_now() - t0;
    CHECK(el >= CCTX_MSEC(20) && el < SLOW_BOUND);
    cctx__test_fail_alloc(0);
    close(p[0]);
    close(p[1]);
    cctx_release(ctx);
}

static atomic_int poll_signals;
static void count_poll_signal(int sig)
{
    (void)sig;
    atomic_fetch_add(&poll_signals, 1);
}

/* On the real clock the timeout is ppoll's, re-armed with what is left after
 * an interruption: signals that interrupt the wait (no SA_RESTART) neither
 * end it early nor restart the whole timeout. */
TEST(io_poll_real_timeout_survives_interruptions)
{
    struct sigaction sa = {0};
    sa.sa_handler = count_poll_signal;
    sigemptyset(&sa.sa_mask);
    CHECK_EQ(sigaction(SIGUSR1, &sa, NULL), 0);
    int p[2];
    CHECK_EQ(pipe2(p, O_CLOEXEC), 0);
    struct pollfd fds[1] = {{.fd = p[0], .events = POLLIN}};
    const int64_t timeout = CCTX_MSEC(500);
    struct poller x = {.fds = fds, .n = 1, .timeout = timeout};
    x.ctx = cctx_with_cancel(cctx_background(), NULL);
    pthread_t t;
    int64_t t0 = real_now();
    CHECK_EQ(pthread_create(&t, NULL, do_poll, &x), 0);
    /* Up to three interruptions, while the wait lasts (a loaded machine may
     * leave time for fewer; one is enough to check the re-arming). */
    for (int i = 0; i < 3; i++) {
        await_blocked(&x.tid);
        if (real_now() - t0 >= timeout / 2)
            break; /* the call may be over: the signal would go nowhere */
        CHECK_EQ(pthread_kill(t, SIGUSR1), 0);
        while (atomic_load(&poll_signals) == i)
            sched_yield();
    }
    CHECK_EQ(pthread_join(t, NULL), 0);
    int64_t el = real_now() - t0;
    CHECK_EQ(x.r, 0);
    CHECK(el >= timeout && el < SLOW_BOUND);
    CHECK(atomic_load(&poll_signals) >= 1);
    close(p[0]);
    close(p[1]);
    cctx_release(x.ctx);
}

/* Hostile input: an nfds poll would refuse, or fds that cannot be read, is
 * poll's EINVAL or EFAULT, never a huge malloc or a copy from a bad
 * address; the extreme timeouts are "no limit" (negative) and a limit too
 * far to reach. */
TEST(io_poll_hostile_input)
{
    int p[2];
    CHECK_EQ(pipe2(p, O_CLOEXEC), 0);
    cctx_t *ctx = cctx_with_cancel(cctx_background(), NULL);
    struct pollfd fds[1] = {{.fd = p[1], .events = POLLOUT}};
    if (TEST_UNDER_ASAN || TEST_UNDER_TSAN) {
        /* Their poll interceptor reads all nfds entries itself first. */
        printf("skipped under the sanitizers: nfds beyond the array, bad fds\n");
    } else {
        CHECK_ERRNO(cctx_poll(ctx, fds, (nfds_t)1 << 30, CCTX_SEC(1)), -1, EINVAL);
        CHECK_ERRNO(cctx_poll(ctx, fds, (nfds_t)-1, -1), -1, EINVAL);
        CHECK_ERRNO(cctx_poll(ctx, fds, (nfds_t)-1 / sizeof *fds, INT64_MAX), -1, EINVAL);
        CHECK_ERRNO(cctx_poll(ctx, (struct pollfd *)16, 1, CCTX_SEC(1)), -1, EFAULT);
        CHECK_ERRNO(cctx_poll(ctx, (struct pollfd *)16, 40, -1), -1, EFAULT);
    }
    CHECK_EQ(cctx_poll(ctx, fds, 1, INT64_MIN), 1);
    CHECK_EQ(cctx_poll(ctx, fds, 1, INT64_MAX), 1);
    CHECK_EQ(fds[0].revents, POLLOUT);
    close(p[0]);
    close(p[1]);
    cctx_release(ctx);
}

/* A negative length cast to size_t: EINVAL from every transfer, nothing
 * sent or received. recv and send would clamp it instead, and receive past
 * the end of the buffer (the guard after it would change) or send what
 * lies beyond it and then wait for room. */
static void huge_lengths(void)
{
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    cctx_t *ctx = cctx_with_cancel(cctx_background(), NULL);
    static const size_t lens[] = {(size_t)-1, (size_t)SSIZE_MAX + 1, (size_t)-4096};
    char data[64];
    memset(data, 'd', sizeof data);
    CHECK_EQ(write(sv[1], data, sizeof data), sizeof data);
    struct {
        char buf[8];
        char guard[56];
    } in;
    for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
        memset(&in, 'g', sizeof in);
        CHECK_ERRNO(cctx_recv(ctx, sv[0], in.buf, lens[i], 0), -1, EINVAL);
        CHECK_ERRNO(cctx_recv(ctx, sv[0], in.buf, lens[i], MSG_WAITALL), -1, EINVAL);
        CHECK_ERRNO(cctx_read(ctx, sv[0], in.buf, lens[i]), -1, EINVAL);
        CHECK_EQ(in.guard[0], 'g');
        CHECK_ERRNO(cctx_send(ctx, sv[0], data, lens[i], 0), -1, EINVAL);
        CHECK_ERRNO(cctx_write(ctx, sv[0], data, lens[i]), -1, EINVAL);
    }
    /* The 64 bytes are still there, and nothing reached the peer. */
    CHECK_EQ(recv(sv[0], in.buf, sizeof in, MSG_DONTWAIT), sizeof data);
    CHECK_ERRNO(recv(sv[1], in.buf, sizeof in, MSG_DONTWAIT), -1, EAGAIN);
    close(sv[0]);
    close(sv[1]);
    cctx_release(ctx);
}

TEST(io_transfer_negative_length_is_einval)
{
    run_with_watchdog(huge_lengths, 20);
}

/* ---- descriptors without RWF_NOWAIT, regular files, the done fd ------------------------- */

/* A pty does not take RWF_NOWAIT: a blocking read polls first and is
 * canceled like any other; data written later still arrives. */
TEST(io_read_pty_without_rwf_nowait)
{
    int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0) {
        SKIP("no pseudo-terminal here: %s", strerror(errno));
    }
    CHECK_EQ(grantpt(master), 0);
    CHECK_EQ(unlockpt(master), 0);
    int slave = open(ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC);
    CHECK(slave >= 0);
    struct termios tio;
    CHECK_EQ(tcgetattr(slave, &tio), 0);
    cfmakeraw(&tio);
    CHECK_EQ(tcsetattr(slave, TCSANOW, &tio), 0);
    struct fx f;
    memset(&f, 0, sizeof f);
    f.op = &op_read;
    f.fds[0] = slave;
    f.fds[1] = master;
    cctx_cancel_t *cancel;
    cctx_t *ctx = cctx_with_cancel(cctx_background(), &cancel);
    start_call(&f, ctx);
    await_blocked(&f.tid);
    cctx_cancel(cancel);
    CHECK_EQ(finish_call(&f), ECANCELED);
    cctx_release(ctx);
    ctx = cctx_with_cancel(cctx_background(), NULL);
    start_call(&f, ctx);
    await_blocked(&f.tid);
    write_hello(&f);
    CHECK_EQ(finish_call(&f), 0);
    read_ok(&f);
    CHECK_EQ(cctx_write(ctx, slave, "pty", 3), 3);
    char b[8];
    CHECK_EQ(cctx_read(ctx, master, b, sizeof b), 3);
    CHECK(memcmp(b, "pty", 3) == 0);
    cctx_release(ctx);
    close(slave);
    close(master);
}

/* Regular files and /proc files (which refuse RWF_NOWAIT) read and write as
 * read and write do. */
TEST(io_regular_and_proc_files)
{
    char *path = temp_path_for("cctx-io-XXXXXX");
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    unlink(path);
    free(path);
    cctx_t *ctx = cctx_with_cancel(cctx_background(), NULL);
    static char big[1 << 20];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)pattern(i);
    CHECK_EQ(cctx_write(ctx, fd, big, sizeof big), sizeof big);
    CHECK_EQ(lseek(fd, 0, SEEK_SET), 0);
    static char back[1 << 20];
    size_t got = 0;
    ssize_t r;
    while ((r = cctx_read(ctx, fd, back + got, sizeof back - got)) > 0)
        got += (size_t)r;
    CHECK_EQ(r, 0);
    CHECK_EQ(got, sizeof big);
    CHECK(memcmp(big, back, sizeof big) == 0);
    close(fd);
    int p = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    CHECK(p >= 0);
    char st[512];
    r = cctx_read(ctx, p, st, sizeof st - 1);
    CHECK(r > 0);
    st[r] = '\0';
    char want[32];
    snprintf(want, sizeof want, "%d (", (int)getpid());
    CHECK(strncmp(st, want, strlen(want)) == 0);
    close(p);
    cctx_release(ctx);
}

/* A ready descriptor costs no done fd; a wait does, and when the done fd
 * cannot be made the call says why. */
TEST(io_done_fd_only_when_waiting_and_emfile)
{
    int p[2];
    CHECK_EQ(pipe2(p, O_CLOEXEC), 0);
    cctx_t *ctx = cctx_with_cancel(cctx_background(), NULL);
    int before = count_open_fds();
    CHECK_EQ(write(p[1], "hello", 5), 5);
    char b[8];
    CHECK_EQ(cctx_read(ctx, p[0], b, sizeof b), 5);
    CHECK_EQ(cctx_write(ctx, p[1], "x", 1), 1);
    CHECK_EQ(count_open_fds(), before);

    struct fds_used_up used;
    fds_use_up(&used);
    CHECK_EQ(cctx_read(ctx, p[0], b, sizeof b), 1); /* ready: fine */
    CHECK_ERRNO(cctx_read(ctx, p[0], b, sizeof b), -1, EMFILE);
    fds_give_back(&used);
    CHECK_EQ(cctx_poll(ctx, &(struct pollfd){.fd = p[0], .events = POLLIN}, 1, CCTX_MSEC(1)), 0);
    close(p[0]);
    close(p[1]);
    cctx_release(ctx);
}

/* A file whose pages are not in memory refuses RWF_NOWAIT (EAGAIN): the
 * read blocks on the disk at once, as read(2) does, with no poll and no done
 * descriptor; so it works with every descriptor in use. Skipped where the
 * pages cannot be dropped from the cache (tmpfs, some overlays). */
TEST(io_read_of_a_file_not_in_memory_needs_no_done_fd)
{
#if CCTX_USE_PREADV2
    char name[] = "cctx-cold-XXXXXX"; /* the working directory: a disk, most likely */
    int fd = mkstemp(name);
    CHECK(fd >= 0);
    unlink(name);
    static char block[1 << 16];
    for (size_t i = 0; i < sizeof block; i++)
        block[i] = (char)pattern(i);
    CHECK_EQ(write(fd, block, sizeof block), (ssize_t)sizeof block);
    CHECK_EQ(fsync(fd), 0);
    char b[4096];
    struct iovec v = {b, sizeof b};
    bool cold = false;
    for (int i = 0; i < 5 && !cold; i++) { /* a drop can miss a page still in use */
        CHECK_EQ(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
        errno = 0;
        cold = cctx__preadv2(fd, &v, 1, 0, RWF_NOWAIT) < 0 && errno == EAGAIN;
    }
    if (!cold) {
        close(fd);
        SKIP_IN_THIS_BUILD("the file's pages stay in memory here (preadv2 RWF_NOWAIT read them)");
    }
    /* The refusal started a read-ahead: a plain read waits for it to land,
     * and the pages are dropped again with nothing left on its way. */
    CHECK_EQ(pread(fd, b, sizeof b, 0), (ssize_t)sizeof b);
    CHECK_EQ(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
    CHECK_EQ(lseek(fd, 0, SEEK_SET), 0);
    cctx_t *ctx = cctx_with_cancel(cctx_background(), NULL);
    struct fds_used_up used;
    fds_use_up(&used);
    ssize_t r = cctx_read(ctx, fd, b, sizeof b);
    int e = r < 0 ? errno : 0;
    fds_give_back(&used);
    CHECK_EQ(e, 0); /* not EMFILE */
    CHECK_EQ(r, (ssize_t)sizeof b);
    CHECK(memcmp(b, block, sizeof b) == 0);
    cctx_release(ctx);
    close(fd);
#else
    SKIP_IN_THIS_BUILD("no preadv2 with RWF_NOWAIT in this build: reads of files are plain");
#endif
}

/* A descriptor that is not listening never polls ready for an accept:
 * the call refuses it at once, as accept(2) does, and does not wait for a
 * context that would end only 5 s later. */
TEST(io_accept_refuses_what_is_not_listening_at_once)
{
    int p[2], pair[2];
    CHECK_EQ(pipe2(p, O_CLOEXEC), 0);
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
    int udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHECK(udp >= 0);
    cctx_t *ctx = cctx_with_timeout(cctx_background(), CCTX_SEC(5), NULL);
    int64_t t0 = real_now();
    CHECK_ERRNO(cctx_accept(ctx, p[0], NULL, NULL), -1, ENOTSOCK);
    CHECK_ERRNO(cctx_accept(ctx, pair[0], NULL, NULL), -1, EINVAL);
    CHECK_ERRNO(cctx_accept(ctx, udp, NULL, NULL), -1, EOPNOTSUPP);
    CHECK(real_now() - t0 < CCTX_SEC(4));
    CHECK_EQ(cctx_err(ctx), 0);
    cctx_release(ctx);
    close(p[0]);
    close(p[1]);
    close(pair[0]);
    close(pair[1]);
    close(udp);
}

/* With ctx already ended, the same descriptors get ctx's error, as every
 * call gives it: the descriptor is not looked at. */
TEST(io_accept_with_ctx_ended_is_ctx_error_before_the_descriptor)
{
    int p[2], pair[2];
    CHECK_EQ(pipe2(p, O_CLOEXEC), 0);
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
    cctx_cancel_t *cancel;
    cctx_t *ctx = cctx_with_cancel(cctx_background(), &cancel);
    cctx_cancel(cancel);
    CHECK_ERRNO(cctx_accept(ctx, p[0], NULL, NULL), -1, ECANCELED);
    CHECK_ERRNO(cctx_accept(ctx, pair[0], NULL, NULL), -1, ECANCELED);
    cctx_release(ctx);
    close(p[0]);
    close(p[1]);
    close(pair[0]);
    close(pair[1]);
}

/* ---- bad input -------------------------------------------------------------------------- */

TEST(io_bad_input_is_einval)
{
    int p[2];
    CHECK_EQ(pipe2(p, O_CLOEXEC), 0);
    cctx_t *ctx = cctx_with_cancel(cctx_background(), NULL);
    char b[4];
    struct pollfd pf = {.fd = p[0], .events = POLLIN};
    struct sockaddr_in a = {.sin_family = AF_INET};
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t c = PTHREAD_COND_INITIALIZER;
    sem_t s;
    CHECK_EQ(sem_init(&s, 0, 1), 0);

    CHECK_ERRNO(cctx_poll(NULL, &pf, 1, 0), -1, EINVAL);
    CHECK_ERRNO(cctx_poll(ctx, NULL, 1, -1), -1, EINVAL);
    CHECK_ERRNO(cctx_read(NULL, p[0], b, 1), -1, EINVAL);
    CHECK_ERRNO(cctx_read(ctx, p[0], NULL, 1), -1, EINVAL);
    CHECK_ERRNO(cctx_read(ctx, -1, b, 1), -1, EBADF);
    CHECK_ERRNO(cctx_write(NULL, p[1], b, 1), -1, EINVAL);
    CHECK_ERRNO(cctx_write(ctx, p[1], NULL, 1), -1, EINVAL);
    CHECK_ERRNO(cctx_write(ctx, -5, b, 1), -1, EBADF);
    CHECK_ERRNO(cctx_recv(NULL, p[0], b, 1, 0), -1, EINVAL);
    CHECK_ERRNO(cctx_recv(ctx, p[0], NULL, 1, 0), -1, EINVAL);
    CHECK_ERRNO(cctx_recv(ctx, p[0], b, 1, 0), -1, ENOTSOCK);
    CHECK_ERRNO(cctx_send(NULL, p[1], b, 1, 0), -1, EINVAL);
    CHECK_ERRNO(cctx_send(ctx, p[1], NULL, 1, 0), -1, EINVAL);
    CHECK_ERRNO(cctx_accept(NULL, p[0], NULL, NULL), -1, EINVAL);
    CHECK_ERRNO(cctx_accept(ctx, p[0], (struct sockaddr *)&a, NULL), -1, EINVAL);
    CHECK_ERRNO(cctx_accept(ctx, -1, NULL, NULL), -1, EBADF);
    CHECK_ERRNO(cctx_connect(NULL, p[0], (struct sockaddr *)&a, sizeof a), -1, EINVAL);
    CHECK_ERRNO(cctx_connect(ctx, p[0], NULL, sizeof a), -1, EINVAL);
    CHECK_ERRNO(cctx_connect(ctx, -1, (struct sockaddr *)&a, sizeof a), -1, EBADF);
    CHECK_ERRNO(cctx_connect(ctx, p[0], (struct sockaddr *)&a, sizeof a), -1, ENOTSOCK);
    CHECK_EQ(cctx_cond_wait(NULL, &c, &m), EINVAL);
    CHECK_EQ(cctx_cond_wait(ctx, NULL, &m), EINVAL);
    CHECK_EQ(cctx_cond_wait(ctx, &c, NULL), EINVAL);
    CHECK_EQ(cctx_mutex_lock(NULL, &m), EINVAL);
    CHECK_EQ(cctx_mutex_lock(ctx, NULL), EINVAL);
    CHECK_ERRNO(cctx_sem_wait(NULL, &s), -1, EINVAL);
    CHECK_ERRNO(cctx_sem_wait(ctx, NULL), -1, EINVAL);
    CHECK_EQ(cctx_thread_join(NULL, pthread_self(), NULL), EINVAL);

    /* Zero lengths behave as read and write with 0 do; NULL is fine then. */
    CHECK_EQ(cctx_read(ctx, p[0], NULL, 0), 0);
    CHECK_EQ(cctx_write(ctx, p[1], NULL, 0), 0);
    CHECK_EQ(cctx_poll(ctx, NULL, 0, 0), 0);
    /* Nothing above consumed the semaphore's unit or locked the mutex. */
    CHECK_EQ(cctx_sem_wait(ctx, &s), 0);
    CHECK_EQ(cctx_mutex_lock(ctx, &m), 0);
    CHECK_EQ(pthread_mutex_unlock(&m), 0);
    sem_destroy(&s);
    close(p[0]);
    close(p[1]);
    cctx_release(ctx);
}
