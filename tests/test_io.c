/*
 * Section 9: <cctx/io.h>. Every call is run through the same scenarios by a
 * table of operations (struct op): it succeeds when its object is ready; a
 * caller blocked in it gets ECANCELED when another thread cancels, and
 * ETIMEDOUT when the fake clock passes the deadline; a context already done
 * makes it fail at once and touch nothing; signals (EINTR) do not end it;
 * non-blocking descriptors work and no descriptor's flags change.
 *
 * The blocked caller is on a thread of its own; the main thread waits until
 * the kernel reports it asleep (/proc/self/task/TID/stat) before acting, but
 * only so that the act lands mid-wait most of the time: every scenario's
 * outcome is the same if it lands before the wait starts.
 *
 * Then what the table cannot say: no byte lost across a cancel, partial
 * counts, MSG_WAITALL, poll's timeout and array, the cond_wait after-function
 * (mutex held on return, nothing left registered, no deadlock when the
 * canceller holds the mutex), slices that never end early on the fake clock,
 * fallbacks for descriptors without RWF_NOWAIT, and bad input.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/io.h>
#include <cctx/testing.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include "harness.h"
#include "support.h"

static const int64_t T0 = CCTX_SEC(1000); /* where fake-clock tests start */
#define SLOW_BOUND CCTX_SEC(5)            /* "returns soon", generously */

/* ---- helpers ---------------------------------------------------------------- */

/* Returns once the thread whose tid will appear in *tid has been seen asleep
 * three times in a row, or after two seconds: an optimisation of where the
 * next act lands, never a condition of any check. */
static void await_blocked(atomic_int *tid)
{
    while (atomic_load(tid) == 0)
        sched_yield();
    int64_t until = real_now() + CCTX_SEC(2);
    for (int seen = 0; seen < 3 && real_now() < until;) {
        seen = thread_state(atomic_load(tid)) == 'S' ? seen + 1 : 0;
        real_sleep_ms(1);
    }
}

static int fd_flags(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    CHECK(fl >= 0);
    return fl;
}

static void set_nonblock(int fd, bool on)
{
    int fl = fd_flags(fd);
    CHECK_EQ(fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK), 0);
}

/* Bytes readable now, read without waiting (the fd's flags are put back). */
static size_t drain(int fd, char *out, size_t cap)
{
    int fl = fd_flags(fd);
    set_nonblock(fd, true);
    size_t n = 0;
    for (;;) {
        char tmp[4096];
        ssize_t r = read(fd, tmp, sizeof tmp);
        if (r <= 0)
            break;
        if (out) {
            CHECK(n + (size_t)r <= cap);
            memcpy(out + n, tmp, (size_t)r);
        }
        n += (size_t)r;
    }
    CHECK_EQ(fcntl(fd, F_SETFL, fl), 0);
    return n;
}

/* Fills a pipe or socket until the kernel takes no more; returns the count. */
static size_t fill(int fd)
{
    int fl = fd_flags(fd);
    set_nonblock(fd, true);
    static const char junk[4096];
    size_t n = 0;
    ssize_t r;
    while ((r = write(fd, junk, sizeof junk)) > 0)
        n += (size_t)r;
    CHECK(errno == EAGAIN);
    while ((r = write(fd, junk, 1)) > 0) /* the last partial page */
        n += (size_t)r;
    CHECK_EQ(fcntl(fd, F_SETFL, fl), 0);
    return n;
}

static int count_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    CHECK(d != NULL);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static unsigned char pattern(size_t i)
{
    return (unsigned char)(i * 7 + i / 251);
}

static int tcp_listener(struct sockaddr_in *addr, int backlog)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(l >= 0);
    *addr = (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_EQ(bind(l, (struct sockaddr *)addr, sizeof *addr), 0);
    socklen_t len = sizeof *addr;
    CHECK_EQ(getsockname(l, (struct sockaddr *)addr, &len), 0);
    CHECK_EQ(listen(l, backlog), 0);
    return l;
}

/* An abstract Unix address unique to this process and call. */
static socklen_t unix_addr(struct sockaddr_un *a)
{
    static atomic_int seq;
    *a = (struct sockaddr_un){.sun_family = AF_UNIX};
    int n = snprintf(a->sun_path + 1, sizeof a->sun_path - 1, "cctx-io-%d-%d", (int)getpid(),
                     atomic_fetch_add(&seq, 1));
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

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

/* ---- the table of operations ------------------------------------------------- */

/* Everything an operation needs; only its own parts are set up. */
struct fx {
    const struct op *op;
    bool nonblock;
    int fds[2];     /* pipe / socketpair: [0] the read side */
    int lfd, cfd;   /* listener, connecting socket */
    int filler;     /* the connection that fills a Unix backlog */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    size_t filled;  /* bytes written to fill fds[1] */
    int watch_fd, watch_flags; /* a descriptor whose flags must not change */
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    int signalled;
    sem_t sem, go;
    pthread_t target;
    bool target_joined;
    char buf[256];
    /* the call */
    cctx_t *ctx;
    pthread_t caller;
    atomic_int tid;
    long result;
    int err; /* 0, or the call's error number (errno or returned) */
    int64_t elapsed, ended; /* real_now() when the call returned */
};

struct op {
    const char *name;
    void (*setup)(struct fx *f);       /* a state in which the call blocks */
    int (*call)(struct fx *f);         /* 0 or the error; result in f->result */
    void (*ready)(struct fx *f);       /* make the call succeed */
    void (*check_ok)(struct fx *f);    /* after success */
    void (*check_untouched)(struct fx *f); /* after failure, with ready() done */
    void (*teardown)(struct fx *f);
};

static int as_err(long r)
{
    return r < 0 ? errno : 0;
}

static void close_all(struct fx *f)
{
    int *all[] = {&f->fds[0], &f->fds[1], &f->lfd, &f->cfd, &f->filler};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (*all[i] >= 0) {
            close(*all[i]);
            *all[i] = -1;
        }
}

/* read on an empty pipe */
static void pipe_setup(struct fx *f)
{
    CHECK_EQ(pipe2(f->fds, O_CLOEXEC | (f->nonblock ? O_NONBLOCK : 0)), 0);
    f->watch_fd = f->fds[0];
}
static int read_call(struct fx *f)
{
    f->result = cctx_read(f->ctx, f->fds[0], f->buf, sizeof f->buf);
    return as_err(f->result);
}
static void write_hello(struct fx *f)
{
    CHECK_EQ(write(f->fds[1], "hello", 5), 5);
}
static void read_ok(struct fx *f)
{
    CHECK_EQ(f->result, 5);
    CHECK(memcmp(f->buf, "hello", 5) == 0);
}
static void hello_still_there(struct fx *f)
{
    char b[16];
    CHECK_EQ(drain(f->fds[0], b, sizeof b), 5);
    CHECK(memcmp(b, "hello", 5) == 0);
}
static const struct op op_read = {"read", pipe_setup, read_call, write_hello, read_ok,
                                  hello_still_there, close_all};

/* write to a full pipe */
static void full_pipe_setup(struct fx *f)
{
    pipe_setup(f);
    f->filled = fill(f->fds[1]);
    f->watch_fd = f->fds[1];
}
static int write_call(struct fx *f)
{
    f->result = cctx_write(f->ctx, f->fds[1], "0123456789", 10);
    return as_err(f->result);
}
/* Exactly the fill: the blocked writer's bytes may follow at once. */
static void drain_fill(struct fx *f)
{
    char tmp[4096];
    for (size_t n = f->filled; n > 0;) {
        struct pollfd p = {.fd = f->fds[0], .events = POLLIN};
        CHECK_EQ(poll(&p, 1, 5000), 1);
        ssize_t r = read(f->fds[0], tmp, n < sizeof tmp ? n : sizeof tmp);
        CHECK(r > 0);
        n -= (size_t)r;
    }
}
static void write_ok(struct fx *f)
{
    CHECK_EQ(f->result, 10);
    char b[16];
    CHECK_EQ(drain(f->fds[0], b, sizeof b), 10);
    CHECK(memcmp(b, "0123456789", 10) == 0);
}
static void nothing_written(struct fx *f)
{
    CHECK_EQ(drain(f->fds[0], NULL, 0), 0);
}
static const struct op op_write = {"write", full_pipe_setup, write_call, drain_fill, write_ok,
                                   nothing_written, close_all};

/* recv on an empty socketpair */
static void socketpair_setup(struct fx *f)
{
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (f->nonblock ? SOCK_NONBLOCK : 0),
                        0, f->fds),
             0);
    f->watch_fd = f->fds[0];
}
static int recv_call(struct fx *f)
{
    f->result = cctx_recv(f->ctx, f->fds[0], f->buf, sizeof f->buf, 0);
    return as_err(f->result);
}
static const struct op op_recv = {"recv", socketpair_setup, recv_call, write_hello, read_ok,
                                  hello_still_there, close_all};

/* send on a full socketpair */
static void full_socket_setup(struct fx *f)
{
    socketpair_setup(f);
    f->filled = fill(f->fds[1]);
    f->watch_fd = f->fds[1];
}
static int send_call(struct fx *f)
{
    f->result = cctx_send(f->ctx, f->fds[1], "0123456789", 10, MSG_NOSIGNAL);
    return as_err(f->result);
}
static const struct op op_send = {"send", full_socket_setup, send_call, drain_fill, write_ok,
                                  nothing_written, close_all};

/* poll for POLLIN on an empty pipe */
static int poll_call(struct fx *f)
{
    struct pollfd p = {.fd = f->fds[0], .events = POLLIN};
    f->result = cctx_poll(f->ctx, &p, 1, -1);
    if (f->result == 1)
        CHECK_EQ(p.revents, POLLIN);
    return as_err(f->result);
}
static void poll_ok(struct fx *f)
{
    CHECK_EQ(f->result, 1);
    hello_still_there(f);
}
static const struct op op_poll = {"poll", pipe_setup, poll_call, write_hello, poll_ok,
                                  hello_still_there, close_all};

/* accept on a TCP listener with nothing pending */
static void listener_setup(struct fx *f)
{
    struct sockaddr_in a;
    f->lfd = tcp_listener(&a, 8);
    memcpy(&f->addr, &a, sizeof a);
    f->addrlen = sizeof a;
    if (f->nonblock)
        set_nonblock(f->lfd, true);
    f->watch_fd = f->lfd;
}
static int accept_call(struct fx *f)
{
    struct sockaddr_in peer;
    socklen_t len = sizeof peer;
    f->result = cctx_accept(f->ctx, f->lfd, (struct sockaddr *)&peer, &len);
    if (f->result >= 0)
        CHECK(len == sizeof peer && peer.sin_family == AF_INET);
    return as_err(f->result);
}
static void client_connects(struct fx *f)
{
    f->cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(f->cfd >= 0);
    CHECK_EQ(connect(f->cfd, (struct sockaddr *)&f->addr, f->addrlen), 0);
}
static void accept_ok(struct fx *f)
{
    CHECK(f->result >= 0);
    CHECK_EQ(fd_flags((int)f->result) & O_NONBLOCK, 0); /* accept's defaults */
    CHECK_EQ(fcntl((int)f->result, F_GETFD) & FD_CLOEXEC, 0);
    close((int)f->result);
}
static void connection_still_pending(struct fx *f)
{
    struct pollfd p = {.fd = f->lfd, .events = POLLIN};
    CHECK_EQ(poll(&p, 1, 5000), 1);
    int fd = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);
    CHECK(fd >= 0);
    close(fd);
}
static const struct op op_accept = {"accept", listener_setup, accept_call, client_connects,
                                    accept_ok, connection_still_pending, close_all};

/* connect to a Unix listener whose backlog (0) is full */
static void unix_full_setup(struct fx *f)
{
    struct sockaddr_un a;
    f->addrlen = unix_addr(&a);
    memcpy(&f->addr, &a, sizeof a);
    f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(f->lfd >= 0);
    CHECK_EQ(bind(f->lfd, (struct sockaddr *)&f->addr, f->addrlen), 0);
    CHECK_EQ(listen(f->lfd, 0), 0);
    f->filler = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    CHECK_EQ(connect(f->filler, (struct sockaddr *)&f->addr, f->addrlen), 0);
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
    CHECK_ERRNO(connect(probe, (struct sockaddr *)&f->addr, f->addrlen), -1, EAGAIN);
    close(probe);
    f->cfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (f->nonblock ? SOCK_NONBLOCK : 0), 0);
    CHECK(f->cfd >= 0);
    struct timeval tv = {7, 0}; /* must be unchanged afterwards */
    CHECK_EQ(setsockopt(f->cfd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv), 0);
    f->watch_fd = f->cfd;
}
static int connect_call(struct fx *f)
{
    f->result = cctx_connect(f->ctx, f->cfd, (struct sockaddr *)&f->addr, f->addrlen);
    return as_err(f->result);
}
static void accept_filler(struct fx *f)
{
    int fd = accept(f->lfd, NULL, NULL);
    CHECK(fd >= 0);
    close(fd);
}
static void check_sndtimeo(int fd)
{
    struct timeval tv;
    socklen_t len = sizeof tv;
    CHECK_EQ(getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, &len), 0);
    CHECK(tv.tv_sec == 7 && tv.tv_usec == 0);
}
static void connect_ok(struct fx *f)
{
    CHECK_EQ(f->result, 0);
    struct sockaddr_un peer;
    socklen_t len = sizeof peer;
    CHECK_EQ(getpeername(f->cfd, (struct sockaddr *)&peer, &len), 0);
    check_sndtimeo(f->cfd);
}
static void not_connected(struct fx *f)
{
    struct sockaddr_un peer;
    socklen_t len = sizeof peer;
    CHECK_ERRNO(getpeername(f->cfd, (struct sockaddr *)&peer, &len), -1, ENOTCONN);
    check_sndtimeo(f->cfd);
}
static const struct op op_connect = {"connect", unix_full_setup, connect_call, accept_filler,
                                     connect_ok, not_connected, close_all};

/* cond_wait with nobody signalling; an error-checking mutex, so that an
 * unlock by a thread that does not hold it fails */
static void sync_setup(struct fx *f)
{
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ERRORCHECK);
    CHECK_EQ(pthread_mutex_init(&f->mutex, &ma), 0);
    pthread_mutexattr_destroy(&ma);
    CHECK_EQ(pthread_cond_init(&f->cond, NULL), 0);
    CHECK_EQ(sem_init(&f->sem, 0, 0), 0);
    CHECK_EQ(sem_init(&f->go, 0, 0), 0);
}
static void sync_teardown(struct fx *f)
{
    pthread_mutex_destroy(&f->mutex);
    pthread_cond_destroy(&f->cond);
    sem_destroy(&f->sem);
    sem_destroy(&f->go);
}
static int cond_call(struct fx *f)
{
    CHECK_EQ(pthread_mutex_lock(&f->mutex), 0);
    int r; /* waits at least once, so that a done ctx is seen even if signalled */
    while ((r = cctx_cond_wait(f->ctx, &f->cond, &f->mutex)) == 0 && !f->signalled)
        ;
    f->result = f->signalled;
    CHECK_EQ(pthread_mutex_unlock(&f->mutex), 0); /* held on every return */
    return r;
}
static void cond_signal(struct fx *f)
{
    CHECK_EQ(pthread_mutex_lock(&f->mutex), 0);
    f->signalled = 1;
    CHECK_EQ(pthread_cond_signal(&f->cond), 0);
    CHECK_EQ(pthread_mutex_unlock(&f->mutex), 0);
}
static void cond_ok(struct fx *f)
{
    CHECK_EQ(f->result, 1);
}
static void nothing_to_check(struct fx *f)
{
    (void)f;
}
static const struct op op_cond = {"cond_wait", sync_setup, cond_call, cond_signal, cond_ok,
                                  nothing_to_check, sync_teardown};

/* mutex_lock on a mutex the main thread holds */
static void held_mutex_setup(struct fx *f)
{
    sync_setup(f);
    CHECK_EQ(pthread_mutex_lock(&f->mutex), 0);
}
static int mutex_call(struct fx *f)
{
    int r = cctx_mutex_lock(f->ctx, &f->mutex);
    if (r == 0)
        CHECK_EQ(pthread_mutex_unlock(&f->mutex), 0);
    return r;
}
static void main_unlocks(struct fx *f)
{
    CHECK_EQ(pthread_mutex_unlock(&f->mutex), 0);
}
static void mutex_ok(struct fx *f)
{
    CHECK_EQ(pthread_mutex_trylock(&f->mutex), 0);
    CHECK_EQ(pthread_mutex_unlock(&f->mutex), 0);
}
static const struct op op_mutex = {"mutex_lock", held_mutex_setup, mutex_call, main_unlocks,
                                   mutex_ok, mutex_ok, sync_teardown};

/* sem_wait on a semaphore at 0 */
static int sem_call(struct fx *f)
{
    f->result = cctx_sem_wait(f->ctx, &f->sem);
    return as_err(f->result);
}
static void post(struct fx *f)
{
    CHECK_EQ(sem_post(&f->sem), 0);
}
static void sem_ok(struct fx *f)
{
    int v;
    CHECK_EQ(sem_getvalue(&f->sem, &v), 0);
    CHECK_EQ(v, 0);
}
static void unit_still_there(struct fx *f)
{
    int v;
    CHECK_EQ(sem_getvalue(&f->sem, &v), 0);
    CHECK_EQ(v, 1);
}
static const struct op op_sem = {"sem_wait", sync_setup, sem_call, post, sem_ok,
                                 unit_still_there, sync_teardown};

/* thread_join on a thread that waits for `go` */
static void *target_main(void *arg)
{
    struct fx *f = arg;
    while (sem_wait(&f->go) != 0)
        ;
    return (void *)(intptr_t)0x1234;
}
static void target_setup(struct fx *f)
{
    sync_setup(f);
    CHECK_EQ(pthread_create(&f->target, NULL, target_main, f), 0);
}
static int join_call(struct fx *f)
{
    void *ret = NULL;
    int r = cctx_thread_join(f->ctx, f->target, &ret);
    if (r == 0) {
        f->target_joined = true;
        f->result = (long)(intptr_t)ret;
    }
    return r;
}
static void let_target_go(struct fx *f)
{
    CHECK_EQ(sem_post(&f->go), 0);
}
static void join_ok(struct fx *f)
{
    CHECK_EQ(f->result, 0x1234);
}
static void still_joinable(struct fx *f)
{
    void *ret = NULL;
    CHECK_EQ(pthread_join(f->target, &ret), 0); /* it ran on and ends now */
    f->target_joined = true;
    CHECK(ret == (void *)(intptr_t)0x1234);
}
static void target_teardown(struct fx *f)
{
    if (!f->target_joined) {
        sem_post(&f->go);
        pthread_join(f->target, NULL);
    }
    sync_teardown(f);
}
static const struct op op_join = {"thread_join", target_setup, join_call, let_target_go,
                                  join_ok, still_joinable, target_teardown};

/* ---- scenarios --------------------------------------------------------------------- */

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

static void *caller_main(void *arg)
{
    struct fx *f = arg;
    atomic_store(&f->tid, thread_id());
    int64_t t0 = real_now();
    errno = 0;
    f->err = f->op->call(f);
    f->ended = real_now();
    f->elapsed = f->ended - t0;
    return NULL;
}

static void start_call(struct fx *f, cctx_t *ctx)
{
    f->ctx = ctx;
    atomic_store(&f->tid, 0);
    CHECK_EQ(pthread_create(&f->caller, NULL, caller_main, f), 0);
}

static int finish_call(struct fx *f)
{
    CHECK_EQ(pthread_join(f->caller, NULL), 0);
    return f->err;
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
 * blocking socket's SO_SNDTIMEO is back. */
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

/* ---- cond_wait specifics ---------------------------------------------------------------- */

struct cond_case {
    cctx_t *ctx;
    pthread_mutex_t *mutex;
    pthread_cond_t *cond;
    int *flag;
    atomic_int tid;
    atomic_int in_wait; /* set under the mutex just before the wait */
    int r;
};

static void *cond_waiter(void *arg)
{
    struct cond_case *c = arg;
    atomic_store(&c->tid, thread_id());
    CHECK_EQ(pthread_mutex_lock(c->mutex), 0);
    atomic_store(&c->in_wait, 1);
    c->r = 0;
    while (!*c->flag && (c->r = cctx_cond_wait(c->ctx, c->cond, c->mutex)) == 0)
        ;
    CHECK_EQ(pthread_mutex_unlock(c->mutex), 0); /* error-checking: held */
    return NULL;
}

static pthread_mutex_t *new_errorcheck_mutex(void)
{
    pthread_mutex_t *m = malloc(sizeof *m);
    CHECK(m != NULL);
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ERRORCHECK);
    CHECK_EQ(pthread_mutex_init(m, &ma), 0);
    pthread_mutexattr_destroy(&ma);
    return m;
}

/* The caller of cctx_cancel holds the mutex: the after-function must not wait
 * for it on this thread. Once the mutex is free the waiter returns, holding
 * it. Several waiters on one cond and context, some on another context. */
static void cancel_holding_mutex(void)
{
    enum { N = 6 };
    pthread_mutex_t *m = new_errorcheck_mutex();
    pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
    int flag = 0;
    cctx_cancel_t *cancel;
    cctx_t *ctx = cctx_with_cancel(cctx_background(), &cancel);
    cctx_t *other = cctx_with_cancel(cctx_background(), NULL);
    struct cond_case c[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        c[i] = (struct cond_case){.ctx = i < N - 1 ? ctx : other, .mutex = m, .cond = &cond,
                                  .flag = &flag};
        CHECK_EQ(pthread_create(&t[i], NULL, cond_waiter, &c[i]), 0);
    }
    for (int i = 0; i < N; i++)
        while (!atomic_load(&c[i].in_wait))
            sched_yield();
    /* Each waiter held the mutex from in_wait until its wait released it. */
    CHECK_EQ(pthread_mutex_lock(m), 0);
    cctx_cancel(cancel);
    CHECK_EQ(cctx_err(ctx), ECANCELED);
    CHECK_EQ(pthread_mutex_unlock(m), 0);
    for (int i = 0; i < N - 1; i++) {
        CHECK_EQ(pthread_join(t[i], NULL), 0);
        CHECK_EQ(c[i].r, ECANCELED);
    }
    CHECK_EQ(pthread_mutex_lock(m), 0);
    flag = 1;
    CHECK_EQ(pthread_cond_broadcast(&cond), 0);
    CHECK_EQ(pthread_mutex_unlock(m), 0);
    CHECK_EQ(pthread_join(t[N - 1], NULL), 0);
    CHECK_EQ(c[N - 1].r, 0);
    pthread_mutex_destroy(m);
    free(m);
    pthread_cond_destroy(&cond);
    cctx_release(other);
    cctx_release(ctx);
}

TEST(io_cond_wait_cancel_by_mutex_holder_does_not_deadlock)
{
    run_with_watchdog(cancel_holding_mutex, 20);
}

/* The same through the fake clock: the thread that advances it holds the
 * mutex and runs the after-function. */
static void advance_holding_mutex(void)
{
    cctx_fake_clock_start(T0);
    pthread_mutex_t *m = new_errorcheck_mutex();
    pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
    int flag = 0;
    struct cond_case c = {.mutex = m, .cond = &cond, .flag = &flag};
    c.ctx = cctx_with_timeout(cctx_background(), CCTX_SEC(1), NULL);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, cond_waiter, &c), 0);
    while (!atomic_load(&c.in_wait))
        sched_yield();
    CHECK_EQ(pthread_mutex_lock(m), 0);
    cctx_fake_clock_advance(CCTX_SEC(1));
    CHECK_EQ(pthread_mutex_unlock(m), 0);
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_EQ(c.r, ETIMEDOUT);
    pthread_mutex_destroy(m);
    free(m);
    cctx_release(c.ctx);
    cctx_fake_clock_stop();
}

TEST(io_cond_wait_fake_clock_advanced_by_mutex_holder)
{
    run_with_watchdog(advance_holding_mutex, 20);
}

/* A real deadline fires on the library's timer thread while the mutex is
 * held elsewhere: the after-function must not hold that thread up, so a
 * later deadline still fires while the mutex stays held. */
TEST(io_cond_wait_busy_mutex_does_not_delay_other_deadlines)
{
    pthread_mutex_t *m = new_errorcheck_mutex();
    pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
    int flag = 0;
    struct cond_case c = {.mutex = m, .cond = &cond, .flag = &flag};
    c.ctx = cctx_with_timeout(cctx_background(), CCTX_MSEC(5), NULL);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, cond_waiter, &c), 0);
    while (!atomic_load(&c.in_wait))
        sched_yield();
    CHECK_EQ(pthread_mutex_lock(m), 0);
    cctx_t *later = cctx_with_timeout(cctx_background(), CCTX_MSEC(20), NULL);
    CHECK_EQ(cctx_wait(later, CCTX_SEC(10)), ETIMEDOUT);
    CHECK_EQ(cctx_err(c.ctx), ETIMEDOUT);
    CHECK_EQ(pthread_mutex_unlock(m), 0);
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_EQ(c.r, ETIMEDOUT);
    pthread_mutex_destroy(m);
    free(m);
    cctx_release(later);
    cctx_release(c.ctx);
}

/* After cctx_cond_wait returns, ctx no longer knows the cond or the mutex:
 * they are freed, then ctx is canceled (AddressSanitizer would catch a
 * touch). Both after a signal and after a spurious-free normal return. */
TEST(io_cond_wait_leaves_nothing_registered)
{
    for (int round = 0; round < 20; round++) {
        pthread_mutex_t *m = new_errorcheck_mutex();
        pthread_cond_t *cond = malloc(sizeof *cond);
        CHECK(cond != NULL);
        CHECK_EQ(pthread_cond_init(cond, NULL), 0);
        int flag = 0;
        cctx_cancel_t *cancel;
        struct cond_case c = {.mutex = m, .cond = cond, .flag = &flag};
        c.ctx = cctx_with_cancel(cctx_background(), &cancel);
        pthread_t t;
        CHECK_EQ(pthread_create(&t, NULL, cond_waiter, &c), 0);
        while (!atomic_load(&c.in_wait))
            sched_yield();
        if (round % 2)
            await_blocked(&c.tid);
        CHECK_EQ(pthread_mutex_lock(m), 0);
        flag = 1;
        CHECK_EQ(pthread_cond_signal(cond), 0);
        CHECK_EQ(pthread_mutex_unlock(m), 0);
        CHECK_EQ(pthread_join(t, NULL), 0);
        CHECK_EQ(c.r, 0);
        CHECK_EQ(pthread_cond_destroy(cond), 0);
        CHECK_EQ(pthread_mutex_destroy(m), 0);
        free(cond);
        free(m);
        cctx_cancel(cancel);
        cctx_release(c.ctx);
    }
}

/* Signal and cancel race, many times: the result is 0 or ECANCELED, the
 * mutex is held on return (the waiter's unlock checks), nothing hangs. */
static void signal_cancel_race(void)
{
    uint64_t rng = 0x5eed;
    int rounds = TEST_UNDER_TSAN ? 100 : 400, canceled = 0;
    for (int i = 0; i < rounds; i++) {
        pthread_mutex_t *m = new_errorcheck_mutex();
        pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
        int flag = 0;
        cctx_cancel_t *cancel;
        struct cond_case c = {.mutex = m, .cond = &cond, .flag = &flag};
        c.ctx = cctx_with_cancel(cctx_background(), &cancel);
        pthread_t t;
        CHECK_EQ(pthread_create(&t, NULL, cond_waiter, &c), 0);
        uint64_t x = xorshift64(&rng);
        for (uint64_t k = 0; k < x % 2000; k++)
            __asm__ volatile("");
        bool hold = x & 1;
        if (hold)
            CHECK_EQ(pthread_mutex_lock(m), 0);
        if (x & 2)
            cctx_cancel(cancel);
        if (!hold)
            CHECK_EQ(pthread_mutex_lock(m), 0);
        flag = 1;
        pthread_cond_signal(&cond);
        if (!(x & 2))
            cctx_cancel(cancel);
        CHECK_EQ(pthread_mutex_unlock(m), 0);
        CHECK_EQ(pthread_join(t, NULL), 0);
        CHECK(c.r == 0 || c.r == ECANCELED);
        canceled += c.r == ECANCELED;
        pthread_mutex_destroy(m);
        free(m);
        cctx_release(c.ctx);
    }
    printf("%d of %d rounds ended ECANCELED\n", canceled, rounds);
}

TEST(io_cond_wait_signal_cancel_race)
{
    run_with_watchdog(signal_cancel_race, 60);
}

/* ---- slices never end early on the fake clock ------------------------------------------ */

struct sliced_case {
    cctx_t *ctx;
    pthread_mutex_t *mutex;
    sem_t *sem;
    atomic_int tid, finished;
    int r;
};

static void *lock_it(void *arg)
{
    struct sliced_case *s = arg;
    atomic_store(&s->tid, thread_id());
    s->r = s->mutex ? cctx_mutex_lock(s->ctx, s->mutex) : cctx_sem_wait(s->ctx, s->sem) ? errno : 0;
    atomic_store(&s->finished, 1);
    return NULL;
}

/* A 10 ms virtual deadline: 60 ms of real time (many slices) pass without
 * ending the wait; the advance does. */
static void fake_deadline_not_early(bool use_sem)
{
    cctx_fake_clock_start(T0);
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    sem_t sem;
    CHECK_EQ(sem_init(&sem, 0, 0), 0);
    struct sliced_case s = {.mutex = use_sem ? NULL : &m, .sem = &sem};
    s.ctx = cctx_with_timeout(cctx_background(), CCTX_MSEC(10), NULL);
    CHECK_EQ(pthread_mutex_lock(&m), 0);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, lock_it, &s), 0);
    real_sleep_ms(60);
    CHECK_EQ(atomic_load(&s.finished), 0);
    cctx_fake_clock_advance(CCTX_MSEC(10));
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_EQ(s.r, ETIMEDOUT);
    CHECK_EQ(pthread_mutex_unlock(&m), 0);
    sem_destroy(&sem);
    cctx_release(s.ctx);
    cctx_fake_clock_stop();
}

TEST(io_mutex_lock_fake_deadline_not_early_on_real_time)
{
    fake_deadline_not_early(false);
}

TEST(io_sem_wait_fake_deadline_not_early_on_real_time)
{
    fake_deadline_not_early(true);
}

/* pthread errors come back as pthread_mutex_lock / pthread_join give them. */
TEST(io_mutex_and_join_pass_pthread_errors_through)
{
    cctx_t *ctx = cctx_with_cancel(cctx_background(), NULL);
    pthread_mutex_t *m = new_errorcheck_mutex();
    CHECK_EQ(cctx_mutex_lock(ctx, m), 0);
    CHECK_EQ(cctx_mutex_lock(ctx, m), EDEADLK);
    CHECK_EQ(pthread_mutex_unlock(m), 0);
    pthread_mutex_destroy(m);
    free(m);
    CHECK_EQ(cctx_thread_join(ctx, pthread_self(), NULL), EDEADLK);
    cctx_release(ctx);
}

/* ---- descriptors without RWF_NOWAIT, regular files, the done fd ------------------------- */

/* A pty does not take RWF_NOWAIT: a blocking read polls first and is
 * canceled like any other; data written later still arrives. */
TEST(io_read_pty_without_rwf_nowait)
{
    int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0) {
        printf("no pty here: skipped\n");
        return;
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
    char path[] = "/tmp/cctx-io-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    unlink(path);
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
