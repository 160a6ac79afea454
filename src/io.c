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
 * (EOPNOTSUPP) we fall back to poll-then-call, see fallback_mode.
 *
 * RWF_NOWAIT also means "would wait for the disk" on regular files, where
 * poll always reports ready: a second EAGAIN right after a POLLIN/POLLOUT on
 * a descriptor whose readiness is not exact (anything but a pipe or a
 * socket) switches to the fallback, or the loop would spin.
 *
 * Condition variables: see cond_fire. Locks, semaphores and joins: see
 * sliced.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/io.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define unlikely(x) __builtin_expect(!!(x), 0)

/* Slices of the waits that nothing can interrupt (mutex, semaphore, join,
 * a Unix connect on a full backlog): short at first, so that a cancel soon
 * after the wait starts is seen soon, then capped, so that a long wait costs
 * one wake-up per SLICE_MAX. SLICE_FLOOR keeps a wait whose deadline has
 * passed, but whose context the timer thread has not marked yet, from
 * spinning. */
#define SLICE_MIN CCTX_MSEC(1)
#define SLICE_MAX CCTX_MSEC(16)
#define SLICE_FLOOR CCTX_USEC(50)

/* cctx_poll's entries on the stack; more take a malloc. */
enum { POLL_STACK = 32 };

static int fail(int err)
{
    errno = err;
    return -1;
}

static int64_t next_slice(int64_t slice)
{
    return slice < SLICE_MAX ? slice * 2 : SLICE_MAX;
}

/* ---- waiting on a descriptor ------------------------------------------- */

/* Waits until fd reports one of `events` (or an error or hang-up, which the
 * next call on it will report) or ctx ends. 0, or -1 with errno: ctx's error,
 * the done fd's failure, or poll's. */
static int wait_ready(cctx_t *ctx, int fd, short events)
{
    int err = cctx_err(ctx);
    if (err)
        return fail(err);
    int done = cctx_done_fd(ctx);
    if (done < 0)
        return -1;
    struct pollfd p[2] = {{.fd = fd, .events = events}, {.fd = done, .events = POLLIN}};
    int r;
    do {
        r = poll(p, 2, -1);
    } while (r < 0 && errno == EINTR && !cctx_err(ctx));
    /* A ctx that ended wins over a ready descriptor: nothing is consumed yet. */
    if ((err = cctx_err(ctx)))
        return fail(err);
    return r < 0 ? -1 : 0;
}

/* ---- transfers --------------------------------------------------------- */

enum kind { K_READ, K_WRITE, K_RECV, K_SEND };

enum mode {
    M_NOWAIT, /* try with RWF_NOWAIT (read/write) or MSG_DONTWAIT (recv/send) */
    M_PLAIN,  /* plain call, poll on EAGAIN: non-blocking fds, regular files */
    M_POLLED, /* poll first, then a plain call: blocking fds without RWF_NOWAIT */
};

struct xfer {
    cctx_t *ctx;
    int fd;
    enum kind kind;
    int flags;      /* recv/send: the caller's flags */
    enum mode mode; /* kept across the pieces of one call */
    bool ready;     /* poll reported readiness since the last attempt */
};

static ssize_t attempt(const struct xfer *x, char *p, size_t n)
{
    struct iovec v = {p, n};
    switch (x->kind) {
    case K_RECV: return recv(x->fd, p, n, x->flags | MSG_DONTWAIT);
    case K_SEND: return send(x->fd, p, n, x->flags | MSG_DONTWAIT);
    case K_READ:
        return x->mode == M_NOWAIT ? preadv2(x->fd, &v, 1, -1, RWF_NOWAIT) : read(x->fd, p, n);
    default:
        if (x->mode == M_NOWAIT)
            return pwritev2(x->fd, &v, 1, -1, RWF_NOWAIT);
        /* After POLLOUT a pipe has room for PIPE_BUF bytes; a larger write
         * to a blocking descriptor could sleep in the kernel deaf to ctx. */
        return write(x->fd, p, x->mode == M_POLLED && n > PIPE_BUF ? PIPE_BUF : n);
    }
}

/* How to go on without RWF_NOWAIT. The flags are read, never written. */
static enum mode fallback_mode(int fd)
{
    struct stat st;
    if (fstat(fd, &st) == 0 && (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)))
        return M_PLAIN;
    int fl = fcntl(fd, F_GETFL);
    return fl >= 0 && (fl & O_NONBLOCK) ? M_PLAIN : M_POLLED;
}

/* Whether poll's readiness means the next non-waiting call makes progress
 * (unless another thread takes the data first). */
static bool exact_readiness(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode));
}

/* One successful call (>= 0 bytes), waiting as needed, or -1 with errno. */
static ssize_t xfer_one(struct xfer *x, char *p, size_t n)
{
    bool rw = x->kind == K_READ || x->kind == K_WRITE;
    short events = x->kind == K_READ || x->kind == K_RECV ? POLLIN : POLLOUT;
    for (;;) {
        if (x->mode == M_POLLED && !x->ready) {
            if (wait_ready(x->ctx, x->fd, events) < 0)
                return -1;
            x->ready = true;
        }
        bool was_ready = x->ready;
        ssize_t r = attempt(x, p, n);
        x->ready = false;
        if (r >= 0)
            return r;
        int e = errno;
        if (e == EINTR) {
            x->ready = was_ready;
            continue;
        }
        if (rw && x->mode == M_NOWAIT &&
            (e == EOPNOTSUPP || e == ENOSYS ||
             (e == EAGAIN && was_ready && !exact_readiness(x->fd)))) {
            x->mode = fallback_mode(x->fd);
            x->ready = was_ready;
            continue;
        }
        if ((e != EAGAIN && e != EWOULDBLOCK) || (x->flags & MSG_DONTWAIT))
            return fail(e);
        if (wait_ready(x->ctx, x->fd, events) < 0)
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
            return done ? (ssize_t)done : -1;
        if (r == 0)
            break;
        done += (size_t)r;
    } while (done < len && !cctx_err(x->ctx));
    return (ssize_t)done;
}

static int check_xfer(cctx_t *ctx, int fd, const void *buf, size_t len)
{
    if (unlikely(!ctx || (!buf && len)))
        return EINVAL;
    if (unlikely(fd < 0))
        return EBADF;
    return cctx_err(ctx);
}

ssize_t cctx_read(cctx_t *ctx, int fd, void *buf, size_t len)
{
    int err = check_xfer(ctx, fd, buf, len);
    if (unlikely(err))
        return fail(err);
    if (unlikely(len == 0)) {
        ssize_t r;
        while ((r = read(fd, buf, 0)) < 0 && errno == EINTR)
            ;
        return r;
    }
    struct xfer x = {.ctx = ctx, .fd = fd, .kind = K_READ};
    return xfer_one(&x, buf, len);
}

ssize_t cctx_write(cctx_t *ctx, int fd, const void *buf, size_t len)
{
    int err = check_xfer(ctx, fd, buf, len);
    if (unlikely(err))
        return fail(err);
    if (unlikely(len == 0)) {
        ssize_t r;
        while ((r = write(fd, buf, 0)) < 0 && errno == EINTR)
            ;
        return r;
    }
    struct xfer x = {.ctx = ctx, .fd = fd, .kind = K_WRITE};
    return xfer_all(&x, (char *)buf, len);
}

ssize_t cctx_recv(cctx_t *ctx, int fd, void *buf, size_t len, int flags)
{
    int err = check_xfer(ctx, fd, buf, len);
    if (unlikely(err))
        return fail(err);
    struct xfer x = {.ctx = ctx, .fd = fd, .kind = K_RECV, .flags = flags};
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
        return fail(err);
    struct xfer x = {.ctx = ctx, .fd = fd, .kind = K_SEND, .flags = flags};
    return xfer_all(&x, (char *)buf, len);
}

/* ---- accept and connect ------------------------------------------------ */

int cctx_accept(cctx_t *ctx, int fd, struct sockaddr *addr, socklen_t *addrlen)
{
    if (unlikely(!ctx || (addr && !addrlen)))
        return fail(EINVAL);
    if (unlikely(fd < 0))
        return fail(EBADF);
    /* No non-waiting accept exists for a blocking listener, so readiness
     * comes first; wait_ready also checks ctx before anything is taken. */
    for (;;) {
        if (wait_ready(ctx, fd, POLLIN) < 0)
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
    int r = connect(fd, addr, addrlen);
    int e = errno;
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &old, ol);
    errno = e;
    return r;
}

/* Sleeps `ns` of real time, or until ctx ends (0, or -1 with errno). Real
 * time, not cctx_sleep's clock: what it waits for (a Unix listener's backlog)
 * moves in real time, also while a test runs the fake clock. */
static int nap(cctx_t *ctx, int64_t ns)
{
    int done = cctx_done_fd(ctx);
    if (done < 0)
        return -1;
    struct pollfd p = {.fd = done, .events = POLLIN};
    poll(&p, 1, (int)((ns + CCTX_MSEC(1) - 1) / CCTX_MSEC(1))); /* EINTR: just sooner */
    int err = cctx_err(ctx);
    return err ? fail(err) : 0;
}

int cctx_connect(cctx_t *ctx, int fd, const struct sockaddr *addr, socklen_t addrlen)
{
    if (unlikely(!ctx || !addr))
        return fail(EINVAL);
    if (unlikely(fd < 0))
        return fail(EBADF);
    int err = cctx_err(ctx);
    if (err)
        return fail(err);
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -1;
    bool interrupted = false;
    for (int64_t slice = SLICE_MIN;;) {
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
            slice = next_slice(slice);
            continue;
        }
        /* EALREADY: an earlier attempt (a canceled call's?) is in flight. */
        if (e != EINPROGRESS && e != EALREADY)
            return fail(e);
        if (wait_ready(ctx, fd, POLLOUT) < 0)
            return -1;
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
            return -1;
        return soerr ? fail(soerr) : 0;
    }
}

/* ---- poll ---------------------------------------------------------------- */

int cctx_poll(cctx_t *ctx, struct pollfd *fds, nfds_t nfds, int64_t timeout)
{
    if (unlikely(!ctx || (!fds && nfds)))
        return fail(EINVAL);
    int err = cctx_err(ctx);
    if (err)
        return fail(err);
    int r;
    if (timeout == 0) {
        while ((r = poll(fds, nfds, 0)) < 0 && errno == EINTR)
            ;
        return r;
    }
    if (unlikely(nfds >= SIZE_MAX / sizeof *fds))
        return fail(EINVAL);
    /* The timeout is a derived context's deadline, so that it is measured on
     * cctx_now()'s clock (fake or real) and wakes poll through the same kind
     * of descriptor; ctx's own deadline, if sooner, does the job alone. */
    cctx_t *child = NULL, *wake = ctx;
    if (timeout > 0 && cctx_remaining(ctx) > timeout) {
        if (!(child = cctx_with_timeout(ctx, timeout, NULL)))
            return -1;
        wake = child;
    }
    struct pollfd stack[POLL_STACK], *p = stack;
    if (nfds >= POLL_STACK && !(p = malloc((nfds + 1) * sizeof *p))) {
        cctx_release(child);
        return fail(ENOMEM);
    }
    int wfd = cctx_done_fd(wake);
    if (wfd >= 0) {
        if (nfds)
            memcpy(p, fds, nfds * sizeof *p);
        p[nfds] = (struct pollfd){.fd = wfd, .events = POLLIN};
        while ((r = poll(p, nfds + 1, -1)) < 0 && errno == EINTR && !cctx_err(ctx))
            ;
    } else {
        r = -1;
    }
    /* A ctx that ended wins, even over an EINTR or a failed done fd. */
    if ((err = cctx_err(ctx)))
        r = fail(err);
    else if (r >= 0) {
        r = 0; /* if none is ready the timeout passed: poll's 0 */
        for (nfds_t i = 0; i < nfds; i++) {
            fds[i].revents = p[i].revents;
            r += p[i].revents != 0;
        }
    }
    int e = errno;
    if (p != stack)
        free(p);
    cctx_release(child);
    errno = e;
    return r;
}

/* ---- condition variables --------------------------------------------------- */

/*
 * The end of ctx must wake a thread blocked in pthread_cond_wait without a
 * lost wake-up. The after-function (Go's AfterFunc + sync.Cond pattern)
 * takes the mutex before it broadcasts: the waiter holds the mutex from
 * before it decides to sleep until pthread_cond_wait releases it, so once fn
 * has had the mutex the waiter is either asleep on cond (registered, so even
 * a broadcast made after fn lets the mutex go reaches it) or awake already.
 *
 * The after-function runs on whichever thread ends ctx: a canceller that may
 * hold the mutex itself (waiting for it would deadlock), the timer thread (a
 * busy mutex would hold up every other deadline), or a thread advancing the
 * fake clock. So it only tries the lock; when the mutex is busy it hands
 * lock-broadcast-unlock to a detached helper thread, which may wait.
 *
 * state (atomic) moves:
 *   ARMING  -> FIRED     fn ran before the waiter slept (on the waiter's own
 *                        thread if ctx was already done): fn touches nothing
 *                        and the waiter, seeing FIRED, does not sleep
 *   WAITING -> FIRED     fn wakes the waiter (trylock, or the helper)
 *   WAITING -> LEAVING   the waiter woke first: fn, if it comes, does nothing
 * After WAITING -> FIRED the waiter (holding the mutex again) lets it go
 * while cctx_after_stop waits for fn, because fn waits for the mutex in the
 * one case where no helper could be started; then, if fn handed off, it
 * waits under the mutex for the helper's `done`, which the helper sets and
 * broadcasts under the mutex: once the waiter sees it, the helper touches
 * nothing of the waiter's frame or of cond again, only the mutex, to unlock
 * it (which POSIX allows even if the mutex is destroyed right after).
 */
enum { CW_ARMING, CW_WAITING, CW_FIRED, CW_LEAVING };

struct cond_wait {
    pthread_cond_t *cond;
    pthread_mutex_t *mutex;
    atomic_int state;
    int handoff; /* written by fn; read after cctx_after_stop */
    int done;    /* written by the helper; both sides under mutex */
    cctx_after_t reg;
};

static void *cond_helper(void *arg)
{
    struct cond_wait *w = arg;
    pthread_cond_t *cond = w->cond;
    pthread_mutex_t *mutex = w->mutex;
    pthread_mutex_lock(mutex);
    w->done = 1;
    pthread_cond_broadcast(cond);
    pthread_mutex_unlock(mutex);
    return NULL;
}

/* A detached thread with every signal blocked (it must not take the
 * application's signals) and a small stack. */
static int start_helper(struct cond_wait *w)
{
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0)
        return -1;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t t;
    int r = pthread_create(&t, &attr, cond_helper, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    return r;
}

static void cond_fire(void *arg)
{
    struct cond_wait *w = arg;
    int s = atomic_load_explicit(&w->state, memory_order_acquire);
    do {
        if (s == CW_LEAVING)
            return;
    } while (!atomic_compare_exchange_weak_explicit(&w->state, &s, CW_FIRED,
                                                    memory_order_acq_rel, memory_order_acquire));
    if (s == CW_ARMING)
        return;
    /* Broadcast after the unlock (see above): the waiter then wakes to a
     * free mutex instead of blocking on ours. cctx_after_stop in the waiter
     * waits for fn, so cond is still valid here. */
    if (pthread_mutex_trylock(w->mutex) == 0) {
        pthread_mutex_unlock(w->mutex);
        pthread_cond_broadcast(w->cond);
        return;
    }
    w->handoff = 1;
    if (start_helper(w) == 0)
        return;
    w->handoff = 0;
    pthread_mutex_lock(w->mutex);
    pthread_cond_broadcast(w->cond);
    pthread_mutex_unlock(w->mutex);
}

int cctx_cond_wait(cctx_t *ctx, pthread_cond_t *cond, pthread_mutex_t *mutex)
{
    if (unlikely(!ctx || !cond || !mutex))
        return EINVAL;
    int err = cctx_err(ctx);
    if (err)
        return err;
    struct cond_wait w = {.cond = cond, .mutex = mutex, .state = CW_ARMING};
    if ((err = cctx_after_func(ctx, &w.reg, cond_fire, &w)))
        return err;
    int s = CW_ARMING;
    if (!atomic_compare_exchange_strong_explicit(&w.state, &s, CW_WAITING, memory_order_acq_rel,
                                                 memory_order_acquire)) {
        cctx_after_stop(&w.reg); /* fn ran without touching cond or mutex */
        return cctx_err(ctx);
    }
    int rc = pthread_cond_wait(cond, mutex);
    s = CW_WAITING;
    if (atomic_compare_exchange_strong_explicit(&w.state, &s, CW_LEAVING, memory_order_acq_rel,
                                                memory_order_acquire)) {
        cctx_after_stop(&w.reg); /* fn, if running, returns without the mutex */
        return rc ? rc : cctx_err(ctx);
    }
    pthread_mutex_unlock(mutex);
    cctx_after_stop(&w.reg);
    pthread_mutex_lock(mutex);
    while (w.handoff && !w.done)
        if (pthread_cond_wait(cond, mutex) != 0)
            break;
    return cctx_err(ctx);
}

/* ---- mutexes, semaphores, joins ---------------------------------------------- */

/*
 * Nothing wakes a thread blocked in pthread_mutex_lock, sem_wait or
 * pthread_join early: a futex wake makes glibc retry and sleep again, and a
 * post would hand a semaphore unit to whichever waiter takes it. So these
 * wait in timed slices and check ctx between them. The slice is measured
 * from the real clock, but whether ctx has ended is only ever cctx_err's
 * answer, never the timed call's: under the fake clock a slice that runs
 * out at the (virtual) deadline just leads to the next one.
 *
 * ThreadSanitizer (GCC 12's) intercepts the CLOCK_REALTIME timed calls but
 * not the clock* ones, and would not see the synchronization they give, so
 * under it the slices are measured on CLOCK_REALTIME (a clock step then
 * lengthens or shortens one slice).
 */
#if defined(__SANITIZE_THREAD__)
#define SLICE_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SLICE_TSAN 1
#endif
#endif
#ifndef SLICE_TSAN
#define SLICE_TSAN 0
#endif

typedef int (*timed_fn)(void *obj, void **out, const struct timespec *until);

static int timed_mutex(void *obj, void **out, const struct timespec *until)
{
    (void)out;
#if SLICE_TSAN
    return pthread_mutex_timedlock(obj, until);
#else
    return pthread_mutex_clocklock(obj, CLOCK_MONOTONIC, until);
#endif
}

static int timed_sem(void *obj, void **out, const struct timespec *until)
{
    (void)out;
#if SLICE_TSAN
    int r = sem_timedwait(obj, until);
#else
    int r = sem_clockwait(obj, CLOCK_MONOTONIC, until);
#endif
    return r == 0 ? 0 : errno;
}

static int timed_join(void *obj, void **out, const struct timespec *until)
{
#if SLICE_TSAN
    return pthread_timedjoin_np(*(pthread_t *)obj, out, until);
#else
    return pthread_clockjoin_np(*(pthread_t *)obj, out, CLOCK_MONOTONIC, until);
#endif
}

/* Calls timed() slice after slice until it succeeds or fails with something
 * other than a timeout, or ctx ends; returns 0 or the error. */
static int sliced(cctx_t *ctx, timed_fn timed, void *obj, void **out)
{
    for (int64_t slice = SLICE_MIN;; slice = next_slice(slice)) {
        int err = cctx_err(ctx);
        if (err)
            return err;
        int64_t d = cctx_remaining(ctx);
        d = d < SLICE_FLOOR ? SLICE_FLOOR : d > slice ? slice : d;
        struct timespec until;
        clock_gettime(SLICE_TSAN ? CLOCK_REALTIME : CLOCK_MONOTONIC, &until);
        int64_t ns = until.tv_nsec + d;
        until.tv_sec += (time_t)(ns / CCTX_SEC(1));
        until.tv_nsec = (long)(ns % CCTX_SEC(1));
        int r = timed(obj, out, &until);
        if (r != ETIMEDOUT && r != EINTR)
            return r;
    }
}

int cctx_mutex_lock(cctx_t *ctx, pthread_mutex_t *mutex)
{
    if (unlikely(!ctx || !mutex))
        return EINVAL;
    int err = cctx_err(ctx);
    if (err)
        return err;
    int r = pthread_mutex_trylock(mutex);
    return r == EBUSY ? sliced(ctx, timed_mutex, mutex, NULL) : r;
}

int cctx_sem_wait(cctx_t *ctx, sem_t *sem)
{
    if (unlikely(!ctx || !sem))
        return fail(EINVAL);
    int err = cctx_err(ctx);
    if (err)
        return fail(err);
    int r;
    while ((r = sem_trywait(sem)) < 0 && errno == EINTR)
        ;
    if (r == 0)
        return 0;
    if (errno != EAGAIN)
        return -1;
    err = sliced(ctx, timed_sem, sem, NULL);
    return err ? fail(err) : 0;
}

int cctx_thread_join(cctx_t *ctx, pthread_t thread, void **ret)
{
    if (unlikely(!ctx))
        return EINVAL;
    int err = cctx_err(ctx);
    if (err)
        return err;
    if (pthread_equal(thread, pthread_self()))
        return EDEADLK; /* as pthread_join says; and ThreadSanitizer aborts on it */
    int r = pthread_tryjoin_np(thread, ret);
    return r == EBUSY ? sliced(ctx, timed_join, &thread, ret) : r;
}
