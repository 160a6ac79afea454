/* SPDX-License-Identifier: MIT */
/*
 * <cctx/io.h>: blocking calls that honour a context, built on the public API
 * of <cctx.h> only, so the core never depends on this file.
 *
 * Descriptors. A transfer is first tried without waiting, so a ready
 * descriptor costs what the plain call costs plus one atomic load. Only when
 * the kernel says "not now" do we ask for ctx's done fd (created lazily by
 * the core, so contexts that never wait cost no descriptor) and poll both.
 * The try must not block on a blocking descriptor, and we may not set
 * O_NONBLOCK (another thread sharing the open file description would see it),
 * so the try is preadv2/pwritev2 with RWF_NOWAIT, which behaves as a
 * non-blocking call on pipes, sockets, eventfds and more without touching
 * the flags; sockets get MSG_DONTWAIT. Where RWF_NOWAIT is not supported
 * (EOPNOTSUPP) we fall back to poll-then-call, see fallback_mode. A libc
 * without the preadv2 wrapper (musl 1.2.3) makes the system call itself. A
 * build without the call (CCTX_PORTABLE) starts in that fallback: one
 * fstat and one fcntl more per call, and a poll before each read or write on
 * a blocking descriptor (initial_mode), but for a socket, which is read and
 * written with recv and send and MSG_DONTWAIT there.
 *
 * RWF_NOWAIT also means "would wait for the disk" on regular files and
 * block devices, where poll always reports ready: an EAGAIN right after a
 * POLLIN/POLLOUT there switches to the fallback (a plain call, which waits
 * for the disk as read(2) does), or the loop would spin. On any other
 * descriptor that EAGAIN means another thread took what poll saw, or that
 * poll overstates readiness; the call waits again, still trying with
 * RWF_NOWAIT, and naps between the tries where that repeats (not on pipes
 * and sockets, whose readiness is exact), so it neither spins nor blocks in
 * the kernel deaf to ctx. A plain call on a non-blocking descriptor does the
 * same after such an EAGAIN: an eventfd's write takes no RWF_NOWAIT, and its
 * POLLOUT promises room for a count of 1 only.
 *
 * A terminal takes no RWF_NOWAIT, and its POLLOUT promises room for one byte,
 * not PIPE_BUF: a blocking write after it could sleep in the kernel, deaf to
 * ctx, as long as the terminal is stopped or its reader is away. So a write
 * to a blocking tty goes through a non-blocking descriptor of its own, opened
 * anew through /proc/self/fd (a new open file description, so the caller's
 * flags stay as they are) and closed before the call returns, or as a
 * cancelled thread unwinds (see write_through_own), unless its node would
 * open another terminal.
 *
 * Condition variables, locks, semaphores and joins are in src/io_sync.c.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/io.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include "atomics.h"
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "io_internal.h"

#define unlikely(x) cctx__io_unlikely(x)

/* cctx_poll's entries on the stack; more take a malloc. */
enum { POLL_STACK = 32 };

static int failed_with(int err)
{
    errno = err;
    return -1;
}

/* ---- waiting on a descriptor ------------------------------------------- */

/* poll's timeout for a wait that only ctx's end stops: none (-1), but in a
 * child of fork() whose library threads could not all start, where ctx's
 * deadline cannot end it: until the next try to start them (io_internal.h),
 * rounded up to a millisecond. */
static int child_retry_ms(void)
{
    if (!cctx__io_child_restart())
        return -1;
    int64_t left = cctx__io_child_retry_ns();
    return left <= 0 ? 0 : (int)((left + CCTX_MSEC(1) - 1) / CCTX_MSEC(1));
}

/* Waits until fd reports one of `events` (or an error or hang-up, which the
 * next call on it will report) or ctx ends. 0, or -1 with errno: ctx's error,
 * the done fd's failure, or poll's. *seen (if given) gets what fd reported. */
static int wait_ready(cctx_t *ctx, int fd, short events, short *seen)
{
    int err = cctx_err(ctx);
    if (err)
        return failed_with(err);
    int done = cctx_done_fd(ctx);
    if (done < 0)
        return -1;
    struct pollfd p[2] = {{.fd = fd, .events = events}, {.fd = done, .events = POLLIN}};
    int r;
    do {
        r = poll(p, 2, child_retry_ms());
    } while ((r == 0 || (r < 0 && errno == EINTR)) && !cctx_err(ctx));
    /* A ctx that ended wins over a ready descriptor: nothing is consumed yet. */
    if ((err = cctx_err(ctx)))
        return failed_with(err);
    if (seen)
        *seen = p[0].revents;
    return r < 0 ? -1 : 0;
}

/* Whether fd reports one of `events` (or an error or hang-up) right now: a
 * poll that does not wait, so a ready descriptor needs no done fd. *seen
 * gets what it reported. */
static bool ready_now(int fd, short events, short *seen)
{
    struct pollfd p = {.fd = fd, .events = events};
    int r;
    while ((r = poll(&p, 1, 0)) < 0 && errno == EINTR)
        ;
    *seen = r > 0 ? p.revents : 0;
    return r > 0;
}

/* Sleeps `ns` of real time, or until ctx ends (0, or -1 with errno). Real
 * time, not cctx_sleep's clock: what it waits for (a Unix listener's
 * backlog, a descriptor whose readiness poll overstates) moves in real time,
 * also while a test runs the fake clock. */
static int nap(cctx_t *ctx, int64_t ns)
{
    int done = cctx_done_fd(ctx);
    if (done < 0)
        return -1;
    struct pollfd p = {.fd = done, .events = POLLIN};
    poll(&p, 1, (int)((ns + CCTX_MSEC(1) - 1) / CCTX_MSEC(1))); /* EINTR: just sooner */
    int err = cctx_err(ctx);
    return err ? failed_with(err) : 0;
}

/* ---- transfers --------------------------------------------------------- */

enum kind { K_READ, K_WRITE, K_RECV, K_SEND };

/* Flags of a call that gets one attempt: the caller's MSG_DONTWAIT, and a
 * read of the error queue, which never blocks (empty, it is EAGAIN at once,
 * for a blocking recv too). */
#ifdef MSG_ERRQUEUE
#define NEVER_WAITS (MSG_DONTWAIT | MSG_ERRQUEUE)
#else
#define NEVER_WAITS MSG_DONTWAIT
#endif

enum mode {
    M_NOWAIT, /* try with RWF_NOWAIT (read/write) or MSG_DONTWAIT (recv/send) */
    M_PLAIN,  /* plain call, poll on EAGAIN: non-blocking fds, regular files */
    M_POLLED, /* poll first, then a plain call: blocking fds without RWF_NOWAIT */
};

struct xfer {
    cctx_t *ctx;
    int fd;  /* the caller's, or `own` */
    int own; /* a descriptor of the call's own, to close, or -1 */
    enum kind kind;
    int flags;      /* recv/send: the caller's flags */
    enum mode mode; /* kept across the pieces of one call */
    bool ready;     /* poll reported readiness since the last attempt */
    short seen;     /* what poll reported then */
    bool asked;     /* refusal_of asked once: not the disk's refusal */
    bool other_way; /* polled, and open the other way (fallback_for) */
    /* A write to a blocking tty needs a descriptor of its own (see the
     * top), which only write_through_own opens: under a cleanup handler
     * that closes it should the thread be cancelled in the write. */
    bool may_own, wants_own;
};

/* xfer_one's and xfer_all's answer when the write must go on through a
 * descriptor of its own: nothing was written yet. */
#define WANTS_OWN (-2)

static ssize_t attempt(const struct xfer *x, char *p, size_t n)
{
#if CCTX_USE_PREADV2
    struct iovec v = {p, n};
#endif
    switch (x->kind) {
    case K_RECV: return recv(x->fd, p, n, x->flags | MSG_DONTWAIT);
    case K_SEND: return send(x->fd, p, n, x->flags | MSG_DONTWAIT);
#if CCTX_USE_PREADV2
    case K_READ:
        return x->mode == M_NOWAIT ? cctx__preadv2(x->fd, &v, 1, -1, RWF_NOWAIT)
                                   : read(x->fd, p, n);
    default:
        if (x->mode == M_NOWAIT)
            return cctx__pwritev2(x->fd, &v, 1, -1, RWF_NOWAIT);
#else
    /* Read and write never start in M_NOWAIT here (initial_mode). */
    case K_READ: return read(x->fd, p, n);
    default:
#endif
        /* After POLLOUT a pipe has room for PIPE_BUF bytes; a larger write
         * to a blocking descriptor could sleep in the kernel deaf to ctx. */
        return write(x->fd, p, x->mode == M_POLLED && n > PIPE_BUF ? PIPE_BUF : n);
    }
}

/* How to go on without RWF_NOWAIT; *st gets fd's fstat (st_mode 0 if that
 * failed), *fl its flags (-1 if not read: a file). The flags are read,
 * never written. */
static enum mode fallback_mode(int fd, struct stat *st, int *fl)
{
    *fl = -1;
    if (fstat(fd, st) != 0)
        st->st_mode = 0;
    if (S_ISREG(st->st_mode) || S_ISBLK(st->st_mode))
        return M_PLAIN;
    *fl = fcntl(fd, F_GETFL);
    return *fl >= 0 && (*fl & O_NONBLOCK) ? M_PLAIN : M_POLLED;
}

/* Whether opening the node of a tty again reaches the same terminal. Not
 * for the nodes that choose a terminal at open: /dev/tty, /dev/console and
 * /dev/ptmx (major 5; a pty's master side is /dev/ptmx, whose open makes a
 * new pair) and /dev/tty0 (the console in front now). */
static bool reopens_the_same_tty(const struct stat *st)
{
    return major(st->st_rdev) != 5 && st->st_rdev != makedev(4, 0);
}

/* The fallback for x, and for a write to a blocking tty a non-blocking
 * descriptor of the call's own for it (see the top). Where that cannot be
 * opened (no /proc, a terminal in exclusive mode, EMFILE, a node that would
 * open another terminal) the write stays polled, as before: it may then
 * block while the terminal takes nothing. */
static enum mode fallback_for(struct xfer *x)
{
    struct stat st, mine;
    int fl;
    enum mode m = fallback_mode(x->fd, &st, &fl);
    /* A socket needs no poll first: recv and send take MSG_DONTWAIT. Polled,
     * a write could sleep in the kernel (POLLOUT on TCP promises a part of
     * the send buffer, not a pipe's PIPE_BUF) and the PIPE_BUF pieces would
     * cut a datagram in two. */
    if (S_ISSOCK(st.st_mode) && (x->kind == K_READ || x->kind == K_WRITE)) {
        x->kind = x->kind == K_READ ? K_RECV : K_SEND;
        return M_NOWAIT;
    }
    /* Polled, a descriptor open the other way (a pipe's other end) never
     * reports ready: the call would wait for ctx and hide read(2)'s EBADF,
     * which xfer_one gives at once instead. */
    x->other_way =
        m == M_POLLED && fl >= 0 && (fl & O_ACCMODE) == (x->kind == K_READ ? O_WRONLY : O_RDONLY);
    /* Only for a descriptor open for writing: a new open of the node would
     * write where the caller's descriptor gets EBADF. */
    if (m != M_POLLED || x->kind != K_WRITE || x->own >= 0 || !S_ISCHR(st.st_mode) ||
        !reopens_the_same_tty(&st) || fl < 0 || (fl & O_ACCMODE) == O_RDONLY || !isatty(x->fd))
        return m;
    if (!x->may_own) {
        x->wants_own = true;
        return m;
    }
    char path[32];
    snprintf(path, sizeof path, "/proc/self/fd/%d", x->fd);
    int fd = open(path, O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return m;
    if (fstat(fd, &mine) != 0 || mine.st_rdev != st.st_rdev) {
        /* Not the caller's terminal after all. Not yet x->own, which the
         * cleanup handler closes: a cancel acted on in this close (one that
         * came during the open) would leave it open. */
        int state;
        pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &state);
        close(fd);
        pthread_setcancelstate(state, NULL);
        return m;
    }
    x->own = x->fd = fd;
    return M_PLAIN;
}

/* The mode a call starts in: M_NOWAIT, unless read and write have no
 * RWF_NOWAIT in this libc. */
static enum mode initial_mode(struct xfer *x)
{
#if CCTX_USE_PREADV2
    (void)x;
    return M_NOWAIT;
#else
    return x->kind == K_READ || x->kind == K_WRITE ? fallback_for(x) : M_NOWAIT;
#endif
}

/* What an EAGAIN from a try right after poll reported readiness means. */
enum refusal {
    R_TAKEN,     /* a pipe or socket: another thread took what poll saw */
    R_DISK,      /* a regular file or block device: RWF_NOWAIT's "the disk" */
    R_OVERSTATED /* anything else (eventfd, timerfd, devices): either */
};

static enum refusal refusal_of(int fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return R_OVERSTATED;
    if (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))
        return R_TAKEN;
    return S_ISREG(st.st_mode) || S_ISBLK(st.st_mode) ? R_DISK : R_OVERSTATED;
}

/* Test hook: called after a wait reported fd ready, before the try. */
_Atomic(cctx__io_ready_fn) cctx__io_ready_hook;

static int wait_ready_to_try(cctx_t *ctx, int fd, short events, short *seen)
{
    if (wait_ready(ctx, fd, events, seen) < 0)
        return -1;
    cctx__io_ready_fn hook = cctx__atomic_load_relaxed(&cctx__io_ready_hook);
    if (unlikely(hook != NULL))
        hook(fd);
    return 0;
}

/* Readiness misled once more: naps first when it may overstate (but the
 * first time), and makes the next nap longer. 0, or -1 when ctx ended. */
static int misled(cctx_t *ctx, int64_t *slice, bool overstates)
{
    if (overstates && *slice && nap(ctx, *slice) < 0)
        return -1;
    *slice = *slice ? cctx__io_next_slice(*slice) : CCTX__IO_SLICE_MIN;
    return 0;
}

/* One successful call (>= 0 bytes), waiting as needed, or -1 with errno. */
static ssize_t xfer_one(struct xfer *x, char *p, size_t n)
{
    short events = x->kind == K_READ || x->kind == K_RECV ? POLLIN : POLLOUT;
    int64_t slice = 0; /* the nap before the next wait, once readiness misled */
    for (;;) {
        if (x->mode == M_POLLED && !x->ready) {
            if (x->other_way) /* see fallback_for */
                return failed_with(EBADF);
            if (!ready_now(x->fd, events, &x->seen) &&
                wait_ready_to_try(x->ctx, x->fd, events, &x->seen) < 0)
                return -1;
            x->ready = true;
        }
        bool was_ready = x->ready;
        /* Asked anew each time: a socket's read or write becomes a recv or
         * a send in fallback_for. */
        bool rw = x->kind == K_READ || x->kind == K_WRITE;
        ssize_t r = attempt(x, p, n);
        x->ready = false;
        if (r >= 0)
            return r;
        int e = errno;
        if (e == EINTR) {
            x->ready = was_ready;
            continue;
        }
        if (rw && x->mode == M_NOWAIT && (e == EOPNOTSUPP || e == ENOSYS)) {
            x->mode = fallback_for(x);
            x->ready = was_ready;
            if (x->wants_own)
                return WANTS_OWN;
            continue;
        }
        if ((e != EAGAIN && e != EWOULDBLOCK) || (x->flags & NEVER_WAITS))
            return failed_with(e);
        /* A socket whose error queue holds entries (IP_RECVERR's ICMP
         * errors, transmit timestamps, MSG_ZEROCOPY's completions) reports
         * POLLERR until they are read, which no try here does: each wait
         * would come back at once. Readiness that was an error alone, and
         * misled, is taken as overstated. */
        bool error_alone = was_ready && (x->seen & POLLERR) && !(x->seen & (events | POLLHUP));
        /* Asked at the first refusal of a call, and whenever readiness
         * misled. */
        if (rw && x->mode != M_POLLED && (was_ready || (x->mode == M_NOWAIT && !x->asked))) {
            x->asked = true;
            enum refusal why = refusal_of(x->fd);
            /* RWF_NOWAIT's "the disk" (a file's pages not in memory): poll
             * cannot wait for it, so block there, at once: no poll and no
             * done descriptor, which a read of a file never needs. */
            if (why == R_DISK && x->mode == M_NOWAIT) {
                x->mode = fallback_for(x);
                x->ready = true;
                continue;
            }
            /* Taken by another thread, or poll overstates (a device whose
             * reads take RWF_NOWAIT; a non-blocking eventfd, whose POLLOUT
             * promises room for 1, not for the count written): wait again,
             * never with a blocking call, which could block deaf to ctx.
             * Where the wait comes back at once and the try fails again,
             * nap first (1 ms, doubling to 16 ms, cut short by ctx), or the
             * loop would spin. */
            if (was_ready && misled(x->ctx, &slice, why == R_OVERSTATED || error_alone) < 0)
                return -1;
        } else if (error_alone && misled(x->ctx, &slice, true) < 0) {
            return -1;
        }
        if (wait_ready_to_try(x->ctx, x->fd, events, &x->seen) < 0)
            return -1;
        x->ready = true;
    }
}

/* Pieces until len, end of file, an error or the end of ctx. A count already
 * transferred is returned rather than lost behind an error. */
static ssize_t xfer_all(struct xfer *x, char *buf, size_t len)
{
    size_t done = 0;
    do {
        ssize_t r = xfer_one(x, buf + done, len - done);
        if (r < 0)
            return done ? (ssize_t)done : r;
        if (r == 0)
            break;
        done += (size_t)r;
    } while (done < len && !cctx_err(x->ctx));
    return (ssize_t)done;
}

/* A len above SSIZE_MAX (a negative length cast to size_t) is refused: the
 * count could not be returned, and send and recv would not refuse it but
 * clamp it, reading or writing far past the caller's buffer. */
static int check_xfer(cctx_t *ctx, int fd, const void *buf, size_t len)
{
    if (unlikely(!ctx || (!buf && len) || len > SSIZE_MAX))
        return EINVAL;
    if (unlikely(fd < 0))
        return EBADF;
    return cctx_err(ctx);
}

ssize_t cctx_read(cctx_t *ctx, int fd, void *buf, size_t len)
{
    int err = check_xfer(ctx, fd, buf, len);
    if (unlikely(err))
        return failed_with(err);
    if (unlikely(len == 0)) {
        ssize_t r;
        while ((r = read(fd, buf, 0)) < 0 && errno == EINTR)
            ;
        return r;
    }
    struct xfer x = {.ctx = ctx, .fd = fd, .own = -1, .kind = K_READ};
    x.mode = initial_mode(&x);
    return xfer_one(&x, buf, len);
}

static void close_own(void *arg)
{
    const struct xfer *x = arg;
    if (x->own >= 0)
        close(x->own);
}

/* The write through x's own descriptor, opened here, under a cleanup
 * handler: a thread cancelled (pthread_cancel) in the write closes it too.
 * The count goes through *r: no local of this frame lives across the
 * handler's setjmp. */
static void write_owning(struct xfer *x, const void *buf, size_t len, ssize_t *r)
{
    x->may_own = true;
    pthread_cleanup_push(close_own, x);
    x->mode = fallback_for(x);
    *r = xfer_all(x, (char *)buf, len);
    pthread_cleanup_pop(0);
}

/* A write to a blocking tty (see the top), which fallback_for found needs a
 * descriptor of its own. */
static ssize_t write_through_own(struct xfer *x, const void *buf, size_t len)
{
    ssize_t r;
    x->wants_own = false;
    write_owning(x, buf, len, &r);
    /* Past the handler, and close is a cancellation point: a cancel that
     * came after the last write acted in this close and left the descriptor
     * open.
     * Closing a second descriptor of a terminal does not wait for its
     * output, so the close runs with cancellation off. */
    int e = errno, state;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &state);
    close_own(x);
    pthread_setcancelstate(state, NULL);
    errno = e;
    return r;
}

ssize_t cctx_write(cctx_t *ctx, int fd, const void *buf, size_t len)
{
    int err = check_xfer(ctx, fd, buf, len);
    if (unlikely(err))
        return failed_with(err);
    struct xfer x = {.ctx = ctx, .fd = fd, .own = -1, .kind = K_WRITE};
    if (unlikely(len == 0)) {
        /* On a datagram socket a write of nothing sends an empty datagram,
         * which waits for room as any other: as a send it waits with ctx. */
        struct stat st;
        if (fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode)) {
            x.kind = K_SEND;
            return xfer_one(&x, (char *)buf, 0);
        }
        ssize_t r;
        while ((r = write(fd, buf, 0)) < 0 && errno == EINTR)
            ;
        return r;
    }
    x.mode = initial_mode(&x);
    ssize_t r = x.wants_own ? WANTS_OWN : xfer_all(&x, (char *)buf, len);
    return unlikely(r == WANTS_OWN) ? write_through_own(&x, buf, len) : r;
}

ssize_t cctx_recv(cctx_t *ctx, int fd, void *buf, size_t len, int flags)
{
    int err = check_xfer(ctx, fd, buf, len);
    if (unlikely(err))
        return failed_with(err);
    struct xfer x = {.ctx = ctx, .fd = fd, .own = -1, .kind = K_RECV, .flags = flags};
    ssize_t r = xfer_one(&x, buf, len);
    /* MSG_DONTWAIT made the kernel stop short of MSG_WAITALL's len; go on
     * where that is what a blocking recv would do. */
    if (r <= 0 || (size_t)r == len || (flags & (MSG_WAITALL | MSG_PEEK)) != MSG_WAITALL ||
        (flags & MSG_DONTWAIT) || cctx_err(ctx))
        return r;
    int type = 0;
    socklen_t tl = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 || type != SOCK_STREAM)
        return r;
    ssize_t more = xfer_all(&x, (char *)buf + r, len - (size_t)r);
    return more > 0 ? r + more : r;
}

ssize_t cctx_send(cctx_t *ctx, int fd, const void *buf, size_t len, int flags)
{
    int err = check_xfer(ctx, fd, buf, len);
    if (unlikely(err))
        return failed_with(err);
    struct xfer x = {.ctx = ctx, .fd = fd, .own = -1, .kind = K_SEND, .flags = flags};
    /* One attempt: a second, after a part went, could meet EPIPE (and raise
     * SIGPIPE) where the caller's one send would have returned the count. */
    return flags & NEVER_WAITS ? xfer_one(&x, (char *)buf, len) : xfer_all(&x, (char *)buf, len);
}

/* ---- accept and connect ------------------------------------------------ */

int cctx_accept(cctx_t *ctx, int fd, struct sockaddr *addr, socklen_t *addrlen)
{
    if (unlikely(!ctx || (addr && !addrlen)))
        return failed_with(EINVAL);
    if (unlikely(fd < 0))
        return failed_with(EBADF);
    int err = cctx_err(ctx);
    if (err)
        return failed_with(err);
    /* accept refuses a descriptor that is not listening at once, but poll
     * may never report one ready: its refusal is given now, not at ctx's
     * end. */
    int listening = 0, type = 0;
    socklen_t len = sizeof listening;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0) {
        if (errno != ENOPROTOOPT) /* a system that cannot tell: wait as before */
            return -1;            /* ENOTSOCK, EBADF: accept's answers too */
        listening = 1;
    }
    if (!listening) {
        len = sizeof type;
        bool streams = getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 &&
                       (type == SOCK_STREAM || type == SOCK_SEQPACKET);
        return failed_with(streams ? EINVAL : EOPNOTSUPP); /* as accept(2) says */
    }
    /* No non-waiting accept exists for a blocking listener, so readiness
     * comes first; wait_ready also checks ctx before anything is taken. */
    for (;;) {
        if (wait_ready(ctx, fd, POLLIN, NULL) < 0)
            return -1;
        int nfd = accept(fd, addr, addrlen);
        if (nfd >= 0)
            return nfd;
        if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
    }
}

/* connect on a blocking socket, made to return EINPROGRESS (or EAGAIN, for a
 * Unix socket on a full backlog) after one clock tick instead of sleeping
 * in the kernel: SO_SNDTIMEO bounds connect's wait (socket(7)). A zero
 * timeval would mean "no timeout", hence 1 us, which the kernel rounds up
 * to a tick. */
static int connect_bounded(int fd, const struct sockaddr *addr, socklen_t addrlen)
{
    struct timeval old, tick = {0, 1};
    socklen_t ol = sizeof old;
    if (getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &old, &ol) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tick, sizeof tick) < 0)
        return -1;
    /* connect is a cancellation point: acted on there, a pthread_cancel
     * would leave the socket with its one-tick timeout for good. It waits
     * one tick at most, so it waits with cancellation off, and a pending
     * cancel acts at the call's next point (its poll). */
    int state;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &state);
    int r = connect(fd, addr, addrlen);
    int e = errno;
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &old, ol);
    pthread_setcancelstate(state, NULL);
    errno = e;
    return r;
}

int cctx_connect(cctx_t *ctx, int fd, const struct sockaddr *addr, socklen_t addrlen)
{
    if (unlikely(!ctx || !addr))
        return failed_with(EINVAL);
    if (unlikely(fd < 0))
        return failed_with(EBADF);
    int err = cctx_err(ctx);
    if (err)
        return failed_with(err);
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -1;
    bool interrupted = false;
    for (int64_t slice = CCTX__IO_SLICE_MIN;;) {
        int r = fl & O_NONBLOCK ? connect(fd, addr, addrlen) : connect_bounded(fd, addr, addrlen);
        if (r == 0)
            return 0;
        int e = errno;
        /* An interrupted TCP connect goes on in the kernel (asking again
         * gives EALREADY, or EISCONN once done); an interrupted Unix connect
         * did nothing (asking again starts it). */
        if (e == EINTR) {
            interrupted = true;
            continue;
        }
        if (e == EISCONN && interrupted)
            return 0;
        if (e == EAGAIN) { /* a Unix listener's backlog is full: nothing to poll */
            if (nap(ctx, slice) < 0)
                return -1;
            slice = cctx__io_next_slice(slice);
            continue;
        }
        /* EALREADY: an earlier attempt (a canceled call's?) is in flight. */
        if (e != EINPROGRESS && e != EALREADY)
            return failed_with(e);
        if (wait_ready(ctx, fd, POLLOUT, NULL) < 0)
            return -1;
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
            return -1;
        return soerr ? failed_with(soerr) : 0;
    }
}

/* ---- poll ---------------------------------------------------------------- */

/*
 * A call first polls without waiting, so descriptors that are ready cost one
 * poll(2), as a plain call does. Only then does it wait, on fds and ctx's
 * done fd. The timeout is measured on cctx_now()'s clock. On the real clock
 * (cctx_now() is CLOCK_MONOTONIC, which real_clock checks) ppoll's own
 * timeout measures it (poll's, rounded up to a millisecond, without
 * ppoll), re-armed with what is left after an early wake-up;
 * poll's timeouts never end early, and a wake-up with time left just waits
 * again, so the call never returns 0 before the timeout. Under the fake
 * clock only an advance can end the timeout, and only the library can see
 * one: the wait is then on a derived context whose deadline is the timeout,
 * which costs a context and a done fd per waiting call.
 */

static int64_t mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * CCTX_SEC(1) + ts.tv_nsec;
}

/* Whether cctx_now() reads the real monotonic clock; *now gets that reading.
 * The fake clock stands still between two reads unless advanced, so a real
 * reading strictly inside a moving interval of them is real time. Taking
 * the fake clock for the real one would need an advance between the two
 * reads that carried virtual time across real time to the nanosecond. */
static bool real_clock(int64_t *now)
{
    int64_t a = cctx_now();
    *now = mono_now();
    int64_t b = cctx_now();
    return a <= *now && *now <= b && a != b;
}

static int64_t add_sat(int64_t a, int64_t b)
{
    int64_t r;
    return __builtin_add_overflow(a, b, &r) ? INT64_MAX : r;
}

/* Waits on fds and on `wake` (a done fd) until one is ready, ctx ends, or
 * CLOCK_MONOTONIC reaches `until` (CCTX_NO_DEADLINE: no limit). Once the
 * call has found cctx_now() to be that clock it keeps to it, so a fake
 * clock started meanwhile cannot stretch the wait. p has room for nfds + 1
 * entries. Returns what cctx_poll returns. */
static int poll_wait(cctx_t *ctx, struct pollfd *fds, nfds_t nfds, struct pollfd *p, int wake,
                     int64_t until)
{
    if (nfds)
        memcpy(p, fds, nfds * sizeof *p);
    p[nfds] = (struct pollfd){.fd = wake, .events = POLLIN};
    int r, err;
    for (;;) {
        /* In a child of fork() whose library threads could not all start,
         * ctx's deadline cannot end the wait: it tries them again at the
         * end of each slice (io_internal.h), and waits on. */
        int64_t end = cctx__io_child_restart() ? cctx__child_slice_slow(until) : until;
        struct timespec ts, *tsp = NULL;
        if (end != CCTX_NO_DEADLINE) {
            int64_t left = end - mono_now();
            if (left < 0)
                left = 0;
            ts.tv_sec = (time_t)(left / CCTX_SEC(1));
            ts.tv_nsec = (long)(left % CCTX_SEC(1));
            tsp = &ts;
        }
#if CCTX_USE_PPOLL
        r = ppoll(p, nfds + 1, tsp, NULL);
#else
        /* poll's milliseconds, rounded up so that it never ends early
         * (the loop below waits again if it did), capped at INT_MAX. */
        int ms = -1;
        if (tsp) {
            int64_t left = (int64_t)ts.tv_sec * CCTX_SEC(1) + ts.tv_nsec;
            int64_t m = (left + CCTX_MSEC(1) - 1) / CCTX_MSEC(1);
            ms = m > INT_MAX ? INT_MAX : (int)m;
        }
        r = poll(p, nfds + 1, ms);
#endif
        if ((err = cctx_err(ctx)))
            return failed_with(err); /* a ctx that ended wins, even over an EINTR */
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0 && (end != until || (until != CCTX_NO_DEADLINE && mono_now() < until)))
            continue;
        break;
    }
    if (r < 0)
        return -1;
    r = 0; /* if none is ready the timeout passed: poll's 0 */
    for (nfds_t i = 0; i < nfds; i++) {
        fds[i].revents = p[i].revents;
        r += p[i].revents != 0;
    }
    return r;
}

/* What cctx_poll holds while it waits: given back by a thread
 * cancellation (pthread_cancel) in the wait, as by a return. */
struct polling {
    struct pollfd *p, *stack;
    cctx_t *child;
    int r; /* what the wait returned */
};

static void poll_cancelled(void *arg)
{
    struct polling *w = arg;
    if (w->p != w->stack)
        free(w->p);
    cctx_release(w->child);
}

/* cctx_poll's wait on fds and on wake's done fd, under a cleanup handler;
 * its result in w->r (no local lives across the handler's setjmp). */
static void wait_holding(cctx_t *ctx, struct pollfd *fds, nfds_t nfds, struct polling *w,
                         cctx_t *wake, int64_t until)
{
    pthread_cleanup_push(poll_cancelled, w);
    int wfd = cctx_done_fd(wake);
    w->r = wfd < 0 ? -1 : poll_wait(ctx, fds, nfds, w->p, wfd, until);
    pthread_cleanup_pop(0);
}

int cctx_poll(cctx_t *ctx, struct pollfd *fds, nfds_t nfds, int64_t timeout)
{
    if (unlikely(!ctx || (!fds && nfds)))
        return failed_with(EINVAL);
    int err = cctx_err(ctx);
    if (err)
        return failed_with(err);
    /* Also what makes a huge nfds or a bad fds poll's EINVAL or EFAULT
     * before anything is copied. */
    int r;
    while ((r = poll(fds, nfds, 0)) < 0 && errno == EINTR)
        ;
    if (r != 0 || timeout == 0)
        return r;
    if (unlikely(nfds >= SIZE_MAX / sizeof *fds - 1))
        return failed_with(EINVAL);
    struct pollfd stack[POLL_STACK];
    struct polling w = {.p = stack, .stack = stack};
    if (nfds >= POLL_STACK && !(w.p = malloc((nfds + 1) * sizeof *w.p)))
        return failed_with(ENOMEM);
    int64_t now;
    cctx_t *wake = ctx;
    int64_t until = CCTX_NO_DEADLINE;
    if (timeout > 0 && cctx_remaining(ctx) > timeout) {
        if (real_clock(&now))
            until = add_sat(now, timeout);
        else if (!(w.child = cctx_with_timeout(ctx, timeout, NULL)))
            r = -1;
        else
            wake = w.child;
    }
    if (r == 0) {
        wait_holding(ctx, fds, nfds, &w, wake, until);
        r = w.r;
        /* A ctx that ended wins over a failed done fd. */
        if (r < 0 && (err = cctx_err(ctx)))
            r = failed_with(err);
    }
    int e = errno;
    poll_cancelled(&w);
    errno = e;
    return r;
}
