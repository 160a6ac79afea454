/* SPDX-License-Identifier: MIT */
/*
 * cctx_read and cctx_write on blocking sockets. Where a libc has no
 * RWF_NOWAIT (musl, the portable build) a read or write first polls, then
 * makes the plain call; a socket needs no such poll, since recv and send
 * take MSG_DONTWAIT, and the poll was wrong for it twice: POLLOUT on TCP
 * promises a part of the send buffer, so the write after it could sleep in
 * the kernel deaf to ctx, and writes were cut in PIPE_BUF pieces, which cut
 * a datagram in two. These tests pass on every build; on those two they
 * failed before. Also: a flag the socket refuses, a socket whose error
 * queue keeps it reporting POLLERR, and a write of nothing to a datagram
 * socket, which waits for room.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/io.h>

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "support.h"

enum { DATAGRAM = 8000 }; /* above PIPE_BUF */

static void datagram_goes_whole(int type)
{
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv), 0);
    int size = 4 * DATAGRAM;
    CHECK_EQ(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof size), 0);
    char *out = malloc(DATAGRAM), *in = malloc(DATAGRAM + 1);
    CHECK(out && in);
    for (int i = 0; i < DATAGRAM; i++)
        out[i] = (char)i;
    cctx_t *ctx = cctx_with_timeout(cctx_background(), CCTX_SEC(30), NULL);
    CHECK_EQ(cctx_write(ctx, sv[0], out, DATAGRAM), DATAGRAM);
    /* One datagram of it all: before, 4096 and 3904. */
    CHECK_EQ(cctx_read(ctx, sv[1], in, DATAGRAM + 1), DATAGRAM);
    CHECK(memcmp(in, out, DATAGRAM) == 0);
    cctx_release(ctx);
    free(out);
    free(in);
    close(sv[0]);
    close(sv[1]);
}

TEST(io_socket_write_of_a_datagram_goes_whole)
{
    datagram_goes_whole(SOCK_DGRAM);
    datagram_goes_whole(SOCK_SEQPACKET);
}

/* A connected pair over TCP loopback, both blocking, with the smallest
 * buffers the kernel gives. */
static void tcp_pair(int *writer, int *reader)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(l >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    CHECK_EQ(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    CHECK_EQ(listen(l, 1), 0);
    CHECK_EQ(getsockname(l, (struct sockaddr *)&a, &alen), 0);
    int least = 1;
    CHECK_EQ(setsockopt(l, SOL_SOCKET, SO_RCVBUF, &least, sizeof least), 0);
    *writer = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(*writer >= 0);
    CHECK_EQ(setsockopt(*writer, SOL_SOCKET, SO_SNDBUF, &least, sizeof least), 0);
    CHECK_EQ(connect(*writer, (struct sockaddr *)&a, sizeof a), 0);
    *reader = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    CHECK(*reader >= 0);
    close(l);
}

/* Takes a little now and then, then nothing: the send buffer is then
 * writable (POLLOUT) with less room in it than a piece of the write. */
static void *slow_reader(void *arg)
{
    int fd = *(int *)arg;
    char b[512];
    for (int i = 0; i < 150; i++) {
        if (read(fd, b, sizeof b) <= 0)
            break;
        real_sleep_ms(2);
    }
    return NULL;
}

static void tcp_write_ends_with_ctx(void)
{
    int w, r;
    tcp_pair(&w, &r);
    enum { LEN = 1 << 20 };
    char *buf = calloc(1, LEN);
    CHECK(buf);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, slow_reader, &r), 0);
    cctx_t *ctx = cctx_with_timeout(cctx_background(), CCTX_MSEC(500), NULL);
    int64_t t0 = real_now();
    /* The write waits for room until ctx ends. Before, on the builds that
     * poll first, it slept in the kernel for ever. */
    ssize_t n = cctx_write(ctx, w, buf, LEN);
    shutdown(r, SHUT_RDWR); /* a reader still at it reads its end now */
    pthread_join(t, NULL);
    CHECK(real_now() - t0 < CCTX_SEC(20));
    CHECK(n > 0 && n < LEN); /* what went, not lost behind the error */
    CHECK_EQ(cctx_err(ctx), ETIMEDOUT);
    cctx_release(ctx);
    free(buf);
    close(w);
    close(r);
}

TEST(io_socket_write_to_a_full_tcp_peer_ends_with_ctx)
{
    run_with_watchdog(tcp_write_ends_with_ctx, 30);
}

/* A flag the socket refuses (MSG_OOB on a datagram socket: EOPNOTSUPP) is
 * the caller's error. The first try's EOPNOTSUPP from a read or a write
 * means "no RWF_NOWAIT here" and sends the call to its fallback; taken that
 * way from a recv or a send, whose fallback is the same call, it sent the
 * call round that loop for ever. */
static void refused_flag(void)
{
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
    cctx_t *ctx = cctx_with_timeout(cctx_background(), CCTX_SEC(30), NULL);
    char c = 'x';
    CHECK_ERRNO(cctx_recv(ctx, sv[0], &c, 1, MSG_OOB), -1, EOPNOTSUPP);
    CHECK_ERRNO(cctx_send(ctx, sv[0], &c, 1, MSG_OOB), -1, EOPNOTSUPP);
    CHECK_EQ(cctx_err(ctx), 0);
    cctx_release(ctx);
    close(sv[0]);
    close(sv[1]);
}

TEST(io_socket_flag_the_socket_refuses_is_eopnotsupp)
{
    run_with_watchdog(refused_flag, 20);
}

/* A socket whose error queue holds an entry reports POLLERR until it is
 * read with MSG_ERRQUEUE, which a recv never does: each wait came back at
 * once, and the call spun, a CPU's worth of system calls, until ctx ended.
 * The entry here is an ICMP port unreachable, which a UDP socket with
 * IP_RECVERR keeps in its queue (also after the recv that reports it). */
static int64_t thread_cpu_ns(void)
{
    struct timespec ts;
    CHECK_EQ(clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts), 0);
    return (int64_t)ts.tv_sec * CCTX_SEC(1) + ts.tv_nsec;
}

static void error_queue_wait(bool as_read)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    int gone = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0); /* a port nobody listens on */
    CHECK(gone >= 0);
    CHECK_EQ(bind(gone, (struct sockaddr *)&a, sizeof a), 0);
    CHECK_EQ(getsockname(gone, (struct sockaddr *)&a, &al), 0);
    close(gone);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    int one = 1;
    CHECK_EQ(setsockopt(fd, IPPROTO_IP, IP_RECVERR, &one, sizeof one), 0);
    CHECK_EQ(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    CHECK_EQ(send(fd, "x", 1, 0), 1);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 5000) != 1) /* the ICMP answer: POLLERR */
        SKIP("no ICMP port unreachable came back (a firewall, or its rate limit)");
    char b[16];
    CHECK_ERRNO(recv(fd, b, sizeof b, MSG_DONTWAIT), -1, ECONNREFUSED);
    p.revents = 0;
    if (poll(&p, 1, 0) != 1 || p.revents != POLLERR)
        SKIP("this kernel does not keep the ICMP error queued (revents %#x)", p.revents);
    cctx_t *ctx = cctx_with_timeout(cctx_background(), CCTX_MSEC(300), NULL);
    int64_t cpu = thread_cpu_ns(), wall = real_now();
    if (as_read)
        CHECK_ERRNO(cctx_read(ctx, fd, b, sizeof b), -1, ETIMEDOUT);
    else
        CHECK_ERRNO(cctx_recv(ctx, fd, b, sizeof b, 0), -1, ETIMEDOUT);
    cpu = thread_cpu_ns() - cpu;
    wall = real_now() - wall;
    /* Naps of 1 to 16 ms: about 25 wake-ups in 300 ms, against a spin's
     * hundreds of thousands. */
    CHECK(cpu < wall / 4);
    cctx_release(ctx);
    close(fd);
}

TEST(io_socket_recv_on_a_socket_with_a_queued_error_does_not_spin)
{
    error_queue_wait(false);
}

TEST(io_socket_read_on_a_socket_with_a_queued_error_does_not_spin)
{
    error_queue_wait(true);
}

/* A write of nothing to a datagram socket sends an empty datagram, which
 * waits for room in the peer's queue: the plain write(fd, buf, 0) did so
 * in the kernel, deaf to ctx. */
static void zero_length_write(void)
{
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
    while (send(sv[0], "x", 1, MSG_DONTWAIT) == 1) /* the peer's queue full */
        ;
    CHECK(errno == EAGAIN || errno == EWOULDBLOCK);
    cctx_t *ctx = cctx_with_timeout(cctx_background(), CCTX_MSEC(100), NULL);
    CHECK_ERRNO(cctx_write(ctx, sv[0], "", 0), -1, ETIMEDOUT);
    cctx_release(ctx);
    /* With room, it goes, and the peer gets the empty datagram. */
    char b;
    while (recv(sv[1], &b, 1, MSG_DONTWAIT) == 1)
        ;
    CHECK_EQ(cctx_write(cctx_background(), sv[0], NULL, 0), 0);
    CHECK_EQ(recv(sv[1], &b, 1, MSG_DONTWAIT), 0);
    close(sv[0]);
    close(sv[1]);
}

TEST(io_socket_zero_length_write_waits_for_room_with_ctx)
{
    run_with_watchdog(zero_length_write, 20);
}
