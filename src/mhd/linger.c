/* SPDX-License-Identifier: MIT */
/*
 * The lingering close. A connection answered before its body was read (a
 * deadline spent on arrival, a Content-Length over max_body, a refusal at
 * the headers) is closed by libmicrohttpd right after the answer, with the
 * body still coming. Closing a socket that has unread bytes makes the
 * kernel reset it, and a client still writing its body then gets EPIPE or
 * ECONNRESET: Go's net/http client reports that write error instead of the
 * answer it was sent, so the client never learns the 413 or 504. Go's own
 * server sends its FIN and keeps the socket a moment (rstAvoidanceDelay,
 * 500 ms) for the same reason; this does the same, reading and dropping
 * what still arrives meanwhile, so that the client can finish its write
 * and read the answer.
 *
 * libmicrohttpd reports a connection closed before it closes the
 * descriptor (on_connection, on its own thread). Unless the peer's end is
 * in already (nothing would arrive), the socket is taken out of the
 * disconnect watcher's epoll set (it would otherwise stay registered
 * through the duplicate), duplicated, its write side shut down (the FIN
 * after the answer), and the duplicate handed to the linger thread, which
 * reads it until the peer's end or MHD_LINGER_NS and closes it. Bytes not
 * there yet count too: the answer may have gone out before the rest of
 * the body arrived. At most MHD_LINGER_MAX sockets linger at once; past
 * that a connection closes as before. cctx__mhd_linger_stop closes the
 * rest, so none outlives the server.
 */
#define _GNU_SOURCE
#include "mhd_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MHD_LINGER_NS CCTX_MSEC(500)
#define WAKE_TAG CCTX__MHD_WAKE_TAG

static int64_t mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Closes slot i; under the lock. The close alone would not take the
 * socket out of the set while a child of fork() still holds the socket:
 * the registration would outlive the slot and, level-triggered on a
 * socket at its end, wake the thread at once forever. */
static void drop(struct mhd_linger *l, unsigned i)
{
    (void)epoll_ctl(l->epfd, EPOLL_CTL_DEL, l->fds[i], NULL);
    close(l->fds[i]);
    l->fds[i] = -1;
}

/* Reads what the peer sent, and drops it; true once the socket is done
 * (the peer's end, an error). At most 1 MiB a call, so that a client
 * sending fast holds the thread no longer than that and the deadlines
 * are kept (the descriptor is level-triggered: the rest is reported
 * again). */
static bool drain(int fd)
{
    char buf[16384];
    for (int reads = 0; reads < 64;) {
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
            reads++;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        return !(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
    }
    return false;
}

static void *linger_main(void *arg)
{
    struct mhd_linger *l = arg;
    struct epoll_event ev[16];
    for (;;) {
        pthread_mutex_lock(&l->lock);
        int64_t now = mono_now(), next = INT64_MAX;
        for (unsigned i = 0; i < MHD_LINGER_MAX; i++) {
            if (l->fds[i] < 0)
                continue;
            if (l->until[i] <= now)
                drop(l, i);
            else if (l->until[i] < next)
                next = l->until[i];
        }
        bool stop = l->stop;
        pthread_mutex_unlock(&l->lock);
        if (stop)
            return NULL;
        int ms = next == INT64_MAX ? -1 : (int)((next - now + CCTX_MSEC(1) - 1) / CCTX_MSEC(1));
        int n = epoll_wait(l->epfd, ev, 16, ms);
        for (int k = 0; k < n; k++) {
            if (ev[k].data.u64 == WAKE_TAG) {
                uint64_t v;
                (void)!read(l->wakefd, &v, sizeof v);
                continue;
            }
            /* Only this thread closes a registered descriptor (the stop
             * joins it first), so fd stays open through the drain outside
             * the lock; a slot is filled under the lock before its
             * registration exists. */
            unsigned i = (unsigned)ev[k].data.u64;
            pthread_mutex_lock(&l->lock);
            int fd = l->fds[i];
            pthread_mutex_unlock(&l->lock);
            if (fd >= 0 && drain(fd)) {
                pthread_mutex_lock(&l->lock);
                drop(l, i);
                pthread_mutex_unlock(&l->lock);
            }
        }
    }
}

int cctx__mhd_linger_start(struct mhd_linger *l)
{
    memset(l, 0, sizeof *l);
    l->epfd = l->wakefd = -1;
    for (unsigned i = 0; i < MHD_LINGER_MAX; i++)
        l->fds[i] = -1;
    pthread_mutex_init(&l->lock, NULL);
    l->inited = true;
    int err =
        cctx__mhd_loop_start(&l->epfd, &l->wakefd, &l->thread, linger_main, l, "cctx-mhd-linger");
    if (err)
        return err;
    l->started = true;
    return 0;
}

/* Hands a duplicate of fd to the linger thread (see the top). */
static void linger(struct mhd_linger *l, int fd, int watch_epfd)
{
    pthread_mutex_lock(&l->lock);
    unsigned i = 0;
    while (i < MHD_LINGER_MAX && l->fds[i] >= 0)
        i++;
    if (l->stop || i == MHD_LINGER_MAX) {
        pthread_mutex_unlock(&l->lock);
        return; /* closed as before */
    }
    int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (d < 0) {
        pthread_mutex_unlock(&l->lock);
        return;
    }
    /* The watcher relies on the close to leave its set: with a duplicate
     * open, the registration would outlive libmicrohttpd's descriptor. */
    if (watch_epfd >= 0)
        (void)epoll_ctl(watch_epfd, EPOLL_CTL_DEL, fd, NULL);
    (void)shutdown(d, SHUT_WR);
    l->fds[i] = d;
    l->until[i] = mono_now() + MHD_LINGER_NS;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u64 = i};
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, d, &ev) != 0)
        drop(l, i);
    pthread_mutex_unlock(&l->lock);
    uint64_t one = 1;
    while (write(l->wakefd, &one, sizeof one) < 0 && errno == EINTR)
        ;
}

void cctx__mhd_linger_close(struct mhd_linger *l, int fd, int watch_epfd)
{
    if (!l->started || fd < 0)
        return;
    int saved = errno; /* libmicrohttpd's, around its callback */
    /* Nothing to wait for once the peer's end is in (no byte before it:
     * FIN read, or the socket failed). Bytes unread, or none yet (the rest
     * of a body may be on its way: the answer went before it), linger. */
    char c;
    ssize_t peek = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (peek == 0 || (peek < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
        errno = saved;
        return;
    }
    linger(l, fd, watch_epfd);
    errno = saved;
}

void cctx__mhd_linger_stop(struct mhd_linger *l)
{
    if (!l->inited)
        return; /* never started (the server's start failed before it) */
    if (l->started) {
        pthread_mutex_lock(&l->lock);
        l->stop = true;
        pthread_mutex_unlock(&l->lock);
        uint64_t one = 1;
        while (write(l->wakefd, &one, sizeof one) < 0 && errno == EINTR)
            ;
        pthread_join(l->thread, NULL);
        l->started = false;
    }
    for (unsigned i = 0; i < MHD_LINGER_MAX; i++)
        if (l->fds[i] >= 0)
            drop(l, i);
    if (l->wakefd >= 0)
        close(l->wakefd);
    if (l->epfd >= 0)
        close(l->epfd);
    l->wakefd = l->epfd = -1;
    pthread_mutex_destroy(&l->lock);
    l->inited = false;
}
