/* SPDX-License-Identifier: MIT */
/*
 * A thread cancelled (pthread_cancel) in the calls of <cctx/io.h>.
 *
 * cctx_cond_wait is a cancellation point, as pthread_cond_wait is: a
 * cancellation acted on in its wait unwinds the thread with the mutex taken
 * back, and leaves nothing registered on the context. One still pending as
 * the wait ends acts after the call, never in the wait for the waker that
 * the call may still make: the wake-up lives on the waiting thread's stack,
 * and the waker would touch it after the thread was gone.
 *
 * What cctx_poll and cctx_dial make for their own use (a context and a
 * large array; a socket and an address list) is given back when a thread
 * is cancelled in their waits, as when they return.
 *
 * cctx_connect's connect, with the socket's send timeout cut to one tick,
 * and cctx_getaddrinfo's waits for a slot and for its helper run with
 * cancellation off: acted on there, a cancel left the socket's timeout cut
 * for good, or a lock of the resolver's held by a thread that was gone. So
 * does its getaddrinfo on the calling thread, which left a socket of
 * glibc's open.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/io.h>

#include <cctx/testing.h>

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"
#include "io_internal.h"
#include "resolve_internal.h"
#include "support.h"
#include "thread_syscall.h"

struct waiter {
    cctx_t *ctx;
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    atomic_int tid;
    atomic_int cleaned_up_in_call; /* the program's cleanup handler ran inside it */
    int r;
};

static void unlock_on_cancel(void *arg)
{
    struct waiter *w = arg;
    atomic_store(&w->cleaned_up_in_call, 1);
    CHECK_EQ(pthread_mutex_unlock(&w->mutex), 0); /* error-checking: held */
}

/* Waits until cancelled, in the call or right after it. */
static void *wait_until_cancelled(void *arg)
{
    struct waiter *w = arg;
    atomic_store(&w->tid, thread_id());
    CHECK_EQ(pthread_mutex_lock(&w->mutex), 0);
    pthread_cleanup_push(unlock_on_cancel, w);
    w->r = cctx_cond_wait(w->ctx, &w->cond, &w->mutex);
    pthread_cleanup_pop(0);
    CHECK_EQ(pthread_mutex_unlock(&w->mutex), 0);
    pthread_testcancel();
    return NULL;
}

static void waiter_init(struct waiter *w, cctx_cancel_t **cancel)
{
    *w = (struct waiter){.ctx = cctx_with_cancel(cctx_background(), cancel)};
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ERRORCHECK);
    CHECK_EQ(pthread_mutex_init(&w->mutex, &ma), 0);
    pthread_mutexattr_destroy(&ma);
    CHECK_EQ(pthread_cond_init(&w->cond, NULL), 0);
}

/* Whether ctx, not yet ended, has anything in its list (an ended one keeps
 * its cause there). */
static bool anything_registered(cctx_t *ctx)
{
    struct cctx__cancelable *c = (struct cctx__cancelable *)ctx;
    cctx__lock(ctx);
    bool any = c->children != NULL;
    cctx__unlock(ctx);
    return any;
}

/* ---- cancelled in the wait ---------------------------------------------------------- */

/* Before, the wake-up stayed in ctx's list, and a later cancel of ctx ran it
 * on the dead frame, with a mutex and a condition variable the program had
 * destroyed (a crash under valgrind's eye, and in a plain run). */
static void cancel_in_the_wait(void)
{
    cctx_cancel_t *cancel;
    struct waiter *w = malloc(sizeof *w);
    CHECK(w != NULL);
    waiter_init(w, &cancel);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, wait_until_cancelled, w), 0);
    while (!atomic_load(&w->tid))
        real_sleep_ms(1);
    wait_until_blocked(atomic_load(&w->tid));
    CHECK(anything_registered(w->ctx)); /* its wake-up */
    cancel_and_join(t);
    CHECK(atomic_load(&w->cleaned_up_in_call));
    CHECK(!anything_registered(w->ctx));
    cctx_t *ctx = w->ctx;
    CHECK_EQ(pthread_cond_destroy(&w->cond), 0);
    CHECK_EQ(pthread_mutex_destroy(&w->mutex), 0);
    free(w);
    cctx_cancel(cancel);
    cctx_release(ctx);
}

/* ---- pending as the wait ends, with the wake-up handed to the waker --------------- */

/* Threads that <cctx/io.h> starts through this hook (cctx_cond_wait's
 * waker, a lookup's helper), held back until `held_go` opens. */
static struct latch held_go = LATCH_INIT;

struct held_start {
    void *(*fn)(void *);
    void *arg;
};

static void *start_when_let_go(void *arg)
{
    struct held_start h = *(struct held_start *)arg;
    free(arg);
    latch_wait_open(&held_go);
    return h.fn(h.arg);
}

static int hold_new_threads(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *),
                            void *arg)
{
    struct held_start *h = malloc(sizeof *h);
    if (!h)
        return EAGAIN;
    *h = (struct held_start){fn, arg};
    int r = pthread_create(t, attr, start_when_let_go, h);
    if (r != 0)
        free(h);
    return r;
}

/* Whether thread tid sleeps in a futex wait on `word`: after a broadcast, a
 * waiter leaves the condition variable's futex for the mutex's. */
static bool sleeps_on(pid_t tid, const void *word)
{
    long nr;
    unsigned long addr = 0, op = 0;
    return thread_syscall(tid, &nr, &addr, &op) && nr == SYS_futex && addr == (unsigned long)word;
}

/* The waiter is woken by a broadcast and waits for the mutex, which this
 * thread holds as it ends ctx (the wake-up goes to the waker, held back)
 * and cancels the waiter. The waiter's wait then ends with the cancellation
 * pending, and it must wait for the waker with w on its stack: before, the
 * cancellation acted in that wait, the thread unwound out of the call, and
 * the waker later wrote to its dead frame. */
static void cancel_pending_as_the_wait_ends(void)
{
    atomic_store(&cctx__io_thread_create, hold_new_threads);
    cctx_cancel_t *cancel;
    struct waiter w;
    waiter_init(&w, &cancel);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, wait_until_cancelled, &w), 0);
    while (!atomic_load(&w.tid))
        real_sleep_ms(1);
    wait_until_blocked(atomic_load(&w.tid));
    CHECK_EQ(pthread_mutex_lock(&w.mutex), 0);
    CHECK_EQ(pthread_cond_broadcast(&w.cond), 0);
    for (int i = 0; !sleeps_on(atomic_load(&w.tid), &w.mutex); i++) {
        CHECK(i < 10000); /* 10 s */
        real_sleep_ms(1);
    }
    cctx_cancel(cancel); /* the mutex is ours: the wake-up goes to the waker */
    CHECK_EQ(pthread_cancel(t), 0);
    CHECK_EQ(pthread_mutex_unlock(&w.mutex), 0);
    /* Now the waiter waits for the waker, or (before) has unwound. */
    for (int i = 0; i < 5000 && !atomic_load(&w.cleaned_up_in_call); i++) {
        if (i > 100 && thread_state(atomic_load(&w.tid)) == 'S')
            break;
        real_sleep_ms(1);
    }
    CHECK(!atomic_load(&w.cleaned_up_in_call));
    latch_open(&held_go);
    join_cancelled(t); /* at its pthread_testcancel, after the call */
    CHECK_EQ(w.r, ECANCELED);
    CHECK_EQ(pthread_cond_destroy(&w.cond), 0);
    CHECK_EQ(pthread_mutex_destroy(&w.mutex), 0);
    cctx_release(w.ctx);
}

/* Its scopes are not unpoisoned when a cancellation unwinds a thread, and
 * the thread's end then reads as a use after scope. */
#define SKIP_UNDER_ASAN()                                                                          \
    do {                                                                                           \
        if (TEST_UNDER_ASAN)                                                                       \
            SKIP_IN_THIS_BUILD("AddressSanitizer takes the unwinding of a cancelled thread for "   \
                               "a use after scope");                                               \
    } while (0)

TEST(io_cond_wait_thread_cancelled_in_it_leaves_nothing_registered)
{
    SKIP_UNDER_ASAN();
    run_with_watchdog(cancel_in_the_wait, 30);
}

TEST(io_cond_wait_cancellation_pending_as_it_ends_acts_after_the_call)
{
    SKIP_UNDER_ASAN();
#ifndef __GLIBC__
    /* sleeps_on looks for the waiter on glibc's mutex lock word, which is
     * where glibc's condition variable leaves a woken waiter; musl's keeps
     * it elsewhere first. */
    SKIP_IN_THIS_BUILD("the waiter's futex is known for glibc's mutexes only");
#endif
    run_with_watchdog(cancel_pending_as_the_wait_ends, 30);
}

/* ---- connect: the send timeout put back ------------------------------------------- */

/* The calls below run with a cancel made pending first, and turn
 * cancellation off as soon as they return (no cancellation point lies
 * between), so the thread ends normally when the call kept it out. */
static void make_cancel_pending(void)
{
    CHECK_EQ(pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL), 0);
    CHECK_EQ(pthread_cancel(pthread_self()), 0);
    CHECK_EQ(pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL), 0);
}

struct connecting {
    int fd;
    struct sockaddr_in to;
    int r;
};

static void *connect_with_cancel_pending(void *arg)
{
    struct connecting *c = arg;
    make_cancel_pending();
    c->r = cctx_connect(cctx_background(), c->fd, (struct sockaddr *)&c->to, sizeof c->to);
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
    return NULL;
}

/* Before, the cancel acted in connect (a cancellation point), between the
 * cut of SO_SNDTIMEO to one tick and its restore: every later blocking send
 * on the socket timed out after a few ms. */
TEST(io_connect_cancelled_puts_the_send_timeout_back)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(l >= 0);
    struct connecting c = {.to = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)},
                           .r = -2};
    socklen_t len = sizeof c.to;
    CHECK_EQ(bind(l, (struct sockaddr *)&c.to, sizeof c.to), 0);
    CHECK_EQ(listen(l, 8), 0);
    CHECK_EQ(getsockname(l, (struct sockaddr *)&c.to, &len), 0);
    c.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0); /* blocking */
    CHECK(c.fd >= 0);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, connect_with_cancel_pending, &c), 0);
    void *ret;
    CHECK_EQ(pthread_join(t, &ret), 0);
    CHECK(ret == NULL);
    CHECK_EQ(c.r, 0); /* a loopback listener with room: connected at once */
    struct timeval tv;
    socklen_t tl = sizeof tv;
    CHECK_EQ(getsockopt(c.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, &tl), 0);
    CHECK(tv.tv_sec == 0 && tv.tv_usec == 0);
    close(c.fd);
    close(l);
}

/* ---- getaddrinfo: no resolver lock left held -------------------------------------- */

struct lookup {
    cctx_t *ctx;
    atomic_int tid;
    int rc; /* -1000 until the call returns */
    int err;
};

static void *lookup_then_end(void *arg)
{
    struct lookup *l = arg;
    atomic_store(&l->tid, thread_id());
    struct addrinfo *res = NULL;
    l->rc = cctx_getaddrinfo(l->ctx, "localhost", NULL, NULL, &res);
    l->err = errno;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
    if (l->rc == 0)
        freeaddrinfo(res);
    return NULL;
}

/* Every helper thread has finished, the one of a lookup run here after the
 * cancelled one included (within 10 s): before, it hung for ever on the
 * lock the cancelled thread had died holding. */
static void helpers_all_finish(void)
{
    cctx_t *ctx = cctx_with_timeout(cctx_background(), CCTX_SEC(10), NULL);
    struct addrinfo *res = NULL;
    if (cctx_getaddrinfo(ctx, "localhost", NULL, NULL, &res) == 0)
        freeaddrinfo(res); /* the answer does not matter here, only the slot */
    cctx_release(ctx);
    for (int i = 0; cctx__resolve_in_flight() > 0; i++) {
        CHECK(i < 10000);
        real_sleep_ms(1);
    }
}

/* Waits in the lookup, is cancelled there (pthread_cancel), and goes on
 * waiting until ctx ends; then the cancel acts, after the call. */
static void cancel_in_a_lookup(bool in_the_slot_wait)
{
    cctx_cancel_t *cancel;
    struct lookup l = {.ctx = cctx_with_cancel(cctx_background(), &cancel), .rc = -1000};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, lookup_then_end, &l), 0);
    while (!atomic_load(&l.tid))
        real_sleep_ms(1);
    wait_until_blocked(atomic_load(&l.tid));
    CHECK_EQ(pthread_cancel(t), 0);
    real_sleep_ms(20);
    wait_until_blocked(atomic_load(&l.tid)); /* still in the call (before: gone) */
    if (in_the_slot_wait)
        cctx_cancel(cancel);
    else
        latch_open(&held_go); /* the helper starts, and answers */
    void *ret;
    CHECK_EQ(pthread_join(t, &ret), 0);
    CHECK(ret == NULL);
    CHECK(l.rc != -1000); /* it returned */
    if (in_the_slot_wait) {
        /* ended by ctx, as a lookup still is */
        CHECK_EQ(l.rc, EAI_SYSTEM);
        CHECK_EQ(l.err, ECANCELED);
        atomic_store(&cctx__resolve_helpers_max, 256);
    }
    helpers_all_finish();
    cctx_release(l.ctx);
}

/* Every slot taken (none allowed): the lookup waits for one. Before, a
 * cancel there left the slots' lock held, and every helper after it hung
 * as it gave its slot back. */
static void cancel_in_the_slot_wait(void)
{
    atomic_store(&cctx__resolve_helpers_max, 0);
    cancel_in_a_lookup(true);
}

/* The helper held back from starting: the lookup waits for its answer.
 * Before, a cancel there left the job's lock held: the helper hung on it
 * and its slot was never given back. */
static void cancel_in_the_wait_for_the_helper(void)
{
    /* (The waker that the lookup's cctx_cond_wait starts is held too.) */
    atomic_store(&cctx__io_thread_create, hold_new_threads);
    cancel_in_a_lookup(false);
}

TEST(resolve_cancelled_in_the_wait_for_a_slot_leaves_no_lock_held)
{
    run_with_watchdog(cancel_in_the_slot_wait, 60);
}

TEST(resolve_cancelled_in_the_wait_for_its_helper_leaves_no_lock_held)
{
    run_with_watchdog(cancel_in_the_wait_for_the_helper, 60);
}

/* A numeric host, or none, is looked up on the calling thread, by
 * getaddrinfo itself, where glibc acts on a cancel: in its netlink query for
 * the interfaces' addresses (AI_ADDRCONFIG, which NULL hints imply), and in
 * the connect of a UDP socket to each address that sorts two or more. Acted
 * on there, the cancel left that socket open and unwound the thread out of
 * cctx_getaddrinfo. The lookup now returns its answer, and the cancel acts
 * after it. */
struct local_lookup {
    const char *node;
    const struct addrinfo *hints;
    int rc;
};

static void look_up_locally(void *arg)
{
    struct local_lookup *l = arg;
    struct addrinfo *res = NULL;
    l->rc = cctx_getaddrinfo(cctx_background(), l->node, "80", l->hints, &res);
    if (l->rc == 0)
        freeaddrinfo(res);
}

TEST(resolve_local_lookup_with_a_cancel_pending_returns_and_leaves_no_socket)
{
    struct addrinfo stream = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct local_lookup lookups[] = {
        {.node = "127.0.0.1", .hints = NULL}, /* glibc's AI_ADDRCONFIG: netlink */
        {.node = NULL, .hints = &stream},     /* ::1 and 127.0.0.1, sorted */
    };
    for (size_t i = 0; i < sizeof lookups / sizeof *lookups; i++) {
        int open_fds = count_open_fds();
        lookups[i].rc = -1000;
        CHECK(returns_with_cancel_pending(look_up_locally, &lookups[i]));
        CHECK_EQ(lookups[i].rc, 0);
        CHECK_EQ(count_open_fds(), open_fds);
    }
    CHECK_EQ(cctx__resolve_in_flight(), 0); /* no helper: on the calling thread */
}

/* ---- cctx_poll and cctx_dial: what they made given back ---------------------------- */

/* Waits until the thread tid sleeps in poll or ppoll (not in a lock or a
 * lookup before it), five looks in a row. */
static void wait_until_polling(pid_t tid)
{
    int64_t until = real_now() + CCTX_SEC(10);
    for (int stable = 0; stable < 5;) {
        CHECK(real_now() < until);
        long nr;
        unsigned long a0, a1;
        bool in = thread_syscall(tid, &nr, &a0, &a1) && nr == SYS_ppoll;
#ifdef SYS_poll
        in = in || nr == SYS_poll;
#endif
        stable = in ? stable + 1 : 0;
        real_sleep_ms(1);
    }
}

struct poller {
    cctx_t *ctx;
    int fd;
    atomic_int tid;
};

/* cctx_poll's copy of the array takes 4 KB: the heap shows it. */
enum { POLLED = 511 };

static void *poll_until_cancelled(void *arg)
{
    struct poller *p = arg;
    atomic_store(&p->tid, thread_id());
    struct pollfd fds[POLLED]; /* more than the call keeps on its stack */
    for (size_t i = 0; i < sizeof fds / sizeof *fds; i++)
        fds[i] = (struct pollfd){.fd = p->fd, .events = POLLIN};
    cctx_poll(p->ctx, fds, sizeof fds / sizeof *fds, CCTX_SEC(100));
    return NULL;
}

/* Under the fake clock the timeout is a context derived from ctx. Before,
 * a thread cancelled in the wait left it in ctx's list, and its copy of
 * the array unfreed. */
static void cancel_in_a_poll(void)
{
    cctx_fake_clock_start(CCTX_SEC(1000));
    cctx_cancel_t *cancel;
    struct poller p = {.ctx = cctx_with_cancel(cctx_background(), &cancel)};
    int pipefd[2];
    CHECK_EQ(pipe(pipefd), 0);
    p.fd = pipefd[0];
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, poll_until_cancelled, &p), 0);
    while (!atomic_load(&p.tid))
        real_sleep_ms(1);
    wait_until_polling(atomic_load(&p.tid));
    /* Not under ThreadSanitizer: glibc's cancellation handler is installed
     * past its sigaction and runs inside its poll interceptor, where it
     * models no atomic operation, so the cleanup's unlink under ctx's lock
     * would read as a race with this look. */
    if (!TEST_UNDER_TSAN)
        CHECK(anything_registered(p.ctx)); /* the timeout's context */
    cancel_and_join(t);
    CHECK(!anything_registered(p.ctx));
    cctx_cancel(cancel);
    cctx_release(p.ctx);
    close(pipefd[0]);
    close(pipefd[1]);
    cctx_fake_clock_stop();
}

/* The heap is looked at around a second cancelled call: the first leaves
 * what the C library keeps for good (the thread's arena, its stack). Each
 * may also give a timer shard its heap (1 KB, kept for the shard's next
 * deadlines: a new thread takes the next of eight shards), which the bound
 * lets through. */
static void twice_leaving_the_heap_as_it_was(void (*cancel_in_a_call)(void), long long bytes)
{
    cancel_in_a_call();
    long long heap = heap_in_use();
    cancel_in_a_call();
    if (heap >= 0) /* -1: nothing here can tell */
        CHECK(heap_in_use() - heap < bytes);
}

static void cancel_in_a_poll_twice(void)
{
    twice_leaving_the_heap_as_it_was(cancel_in_a_poll, POLLED * sizeof(struct pollfd) / 2);
}

TEST(io_poll_cancelled_in_its_wait_gives_back_its_context)
{
    SKIP_UNDER_ASAN();
    run_with_watchdog(cancel_in_a_poll_twice, 30);
}

struct dialer {
    cctx_t *ctx;
    char port[8];
    atomic_int tid;
};

static void *dial_until_cancelled(void *arg)
{
    struct dialer *d = arg;
    atomic_store(&d->tid, thread_id());
    cctx_dial(d->ctx, "127.0.0.1", d->port, SOCK_STREAM);
    return NULL;
}

/* A listener whose accept queue is full drops new connections' SYNs: a
 * connect to it waits. Before, a thread cancelled in that wait left the
 * socket open (and the address list unfreed, which the same handler frees
 * now). */
static void cancel_in_a_dial(void)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(l >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    CHECK_EQ(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    CHECK_EQ(listen(l, 0), 0);
    CHECK_EQ(getsockname(l, (struct sockaddr *)&a, &len), 0);
    int queued[4];
    for (int i = 0; i < 4; i++) { /* the queue's one place, and SYNs dropped after */
        queued[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        CHECK(queued[i] >= 0);
        CHECK(connect(queued[i], (struct sockaddr *)&a, sizeof a) == 0 || errno == EINPROGRESS);
    }
    int open_fds = count_open_fds();
    cctx_cancel_t *cancel;
    struct dialer d = {.ctx = cctx_with_cancel(cctx_background(), &cancel)};
    snprintf(d.port, sizeof d.port, "%u", (unsigned)ntohs(a.sin_port));
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, dial_until_cancelled, &d), 0);
    while (!atomic_load(&d.tid))
        real_sleep_ms(1);
    wait_until_polling(atomic_load(&d.tid));
    cancel_and_join(t);
    cctx_cancel(cancel);
    cctx_release(d.ctx); /* and its done descriptor, which the wait made */
    CHECK_EQ(count_open_fds(), open_fds);
    for (int i = 0; i < 4; i++)
        close(queued[i]);
    close(l);
}

static void cancel_in_a_dial_twice(void)
{
    twice_leaving_the_heap_as_it_was(cancel_in_a_dial, sizeof(struct addrinfo));
}

TEST(io_dial_cancelled_in_its_connect_closes_its_socket)
{
    SKIP_UNDER_ASAN();
    run_with_watchdog(cancel_in_a_dial_twice, 30);
}

struct refused_dial {
    char port[8];
    int r, err;
};

static void *dial_refused_with_cancel_pending(void *arg)
{
    struct refused_dial *d = arg;
    make_cancel_pending();
    d->r = cctx_dial(cctx_background(), "127.0.0.1", d->port, SOCK_STREAM);
    d->err = errno;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
    return NULL;
}

/* A loopback port bound but not listening refuses a connect at once: the
 * connect fails with no wait, so a cancel made pending before the dial
 * meets no cancellation point until the close of the refused socket.
 * Before, that close acted on it, with the socket already forgotten by the
 * cleanup handler (so that it would not be closed twice): the socket leaked.
 * The close now runs with cancellation off, and the dial returns. */
TEST(io_dial_refused_with_a_cancel_pending_closes_its_socket)
{
    int bound = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(bound >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    CHECK_EQ(bind(bound, (struct sockaddr *)&a, sizeof a), 0);
    CHECK_EQ(getsockname(bound, (struct sockaddr *)&a, &len), 0);
    struct refused_dial d = {.r = -2};
    snprintf(d.port, sizeof d.port, "%u", (unsigned)ntohs(a.sin_port));
    int open_fds = count_open_fds();
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, dial_refused_with_cancel_pending, &d), 0);
    void *ret;
    CHECK_EQ(pthread_join(t, &ret), 0);
    CHECK(ret == NULL);
    CHECK_EQ(d.r, -1);
    CHECK_EQ(d.err, ECONNREFUSED);
    CHECK_EQ(count_open_fds(), open_fds);
    close(bound);
}
