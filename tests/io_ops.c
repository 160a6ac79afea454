/* SPDX-License-Identifier: MIT */
/* What the test_io*.c files share: see io_ops.h. */
#define _GNU_SOURCE
#include "io_ops.h"

#include <arpa/inet.h>
#include <cctx/io.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"
#include "support.h"

/* ---- helpers ---------------------------------------------------------------- */

void await_blocked(atomic_int *tid)
{
    while (atomic_load(tid) == 0)
        sched_yield();
    /* Fails rather than gives up: a test that went on would make the object
     * ready, or end the context, before the call blocks, and pass without
     * testing the wait it is named for. */
    wait_until_blocked(atomic_load(tid));
}

int fd_flags(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    CHECK(fl >= 0);
    return fl;
}

void set_nonblock(int fd, bool on)
{
    int fl = fd_flags(fd);
    CHECK_EQ(fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK), 0);
}

size_t drain(int fd, char *out, size_t cap)
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

unsigned char pattern(size_t i)
{
    return (unsigned char)(i * 7 + i / 251);
}

int tcp_listener(struct sockaddr_in *addr, int backlog)
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

/* ---- the table of operations ------------------------------------------------- */

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
void write_hello(struct fx *f)
{
    CHECK_EQ(write(f->fds[1], "hello", 5), 5);
}
void read_ok(struct fx *f)
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
const struct op op_read = {"read", pipe_setup, read_call, write_hello, read_ok,
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
const struct op op_write = {"write", full_pipe_setup, write_call, drain_fill, write_ok,
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
const struct op op_recv = {"recv", socketpair_setup, recv_call, write_hello, read_ok,
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
const struct op op_send = {"send", full_socket_setup, send_call, drain_fill, write_ok,
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
const struct op op_poll = {"poll", pipe_setup, poll_call, write_hello, poll_ok,
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
const struct op op_accept = {"accept", listener_setup, accept_call, client_connects,
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
void check_sndtimeo(int fd)
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
const struct op op_connect = {"connect", unix_full_setup, connect_call, accept_filler,
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
const struct op op_cond = {"cond_wait", sync_setup, cond_call, cond_signal, cond_ok,
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
const struct op op_mutex = {"mutex_lock", held_mutex_setup, mutex_call, main_unlocks,
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
const struct op op_sem = {"sem_wait", sync_setup, sem_call, post, sem_ok,
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
const struct op op_join = {"thread_join", target_setup, join_call, let_target_go,
                           join_ok, still_joinable, target_teardown};

/* ---- running a call ---------------------------------------------------------- */

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

void start_call(struct fx *f, cctx_t *ctx)
{
    f->ctx = ctx;
    atomic_store(&f->tid, 0);
    CHECK_EQ(pthread_create(&f->caller, NULL, caller_main, f), 0);
}

int finish_call(struct fx *f)
{
    CHECK_EQ(pthread_join(f->caller, NULL), 0);
    return f->err;
}
