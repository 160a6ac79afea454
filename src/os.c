/* SPDX-License-Identifier: MIT */
/*
 * The operating-system layer (see os.h). Nothing else in the library makes a
 * system call except the library threads' pthread calls.
 */
#define _GNU_SOURCE
#include "os.h"
#include "atomics.h"
#include "testhooks.h"

#include <cctx.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#if CCTX_HAVE_GETAUXVAL
#include <sys/auxv.h>
#endif
#include <time.h>
#include <unistd.h>

int64_t cctx__os_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A test's answer instead of the machine's (testhooks.h): 0 none, 1 one
 * CPU, 2 several. */
_Atomic int cctx__test_cpus;

bool cctx__os_several_cpus(void)
{
    int forced = cctx__atomic_load_relaxed(&cctx__test_cpus);
    if (forced)
        return forced > 1;
#if CCTX_USE_LINUX
    /* It fails (EINVAL) with more CPUs than a cpu_set_t holds. */
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        return CPU_COUNT(&set) > 1;
#endif
    return sysconf(_SC_NPROCESSORS_ONLN) > 1;
}

int cctx__os_thread_start(void *(*fn)(void *), void *arg)
{
    pthread_attr_t attr;
    pthread_t tid;
    if (pthread_attr_init(&attr) != 0)
        return ENOMEM;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int err = pthread_create(&tid, &attr, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    return err == EAGAIN ? ENOMEM : err;
}

const char *cctx__os_getenv_unprivileged(const char *name)
{
#if CCTX_USE_SECURE_GETENV
    return secure_getenv(name); /* the kernel's AT_SECURE: capabilities too */
#else
    /* The same answer by hand: the kernel's, where it can be read (file
     * capabilities too), and the ids as well. */
#if CCTX_HAVE_GETAUXVAL && defined(AT_SECURE)
    if (getauxval(AT_SECURE))
        return NULL;
#endif
    if (getuid() != geteuid() || getgid() != getegid())
        return NULL;
    return getenv(name);
#endif
}

void cctx__os_cond_init_monotonic(pthread_cond_t *c)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(c, &a);
    pthread_condattr_destroy(&a);
}

#if CCTX_USE_FUTEX
#include <sys/syscall.h>
#if CCTX_HAVE_LINUX_FUTEX_H
#include <linux/futex.h>
#else
/* Without the kernel's headers (Debian's musl-gcc): the numbers of
 * linux/futex.h, which are kernel ABI and never change. */
#define FUTEX_WAKE 1
#define FUTEX_WAIT_BITSET 9
#define FUTEX_PRIVATE_FLAG 128
#define FUTEX_BITSET_MATCH_ANY 0xffffffff
#endif

int cctx__os_wait(_Atomic uint32_t *word, uint32_t expected, int64_t deadline)
{
    struct timespec ts, *tsp = NULL;
    if (deadline != CCTX_NO_DEADLINE) {
        if (deadline < 0)
            deadline = 0;
        ts.tv_sec = deadline / 1000000000;
        ts.tv_nsec = deadline % 1000000000;
        tsp = &ts;
    }
    /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC time, so spurious
     * wake-ups never stretch the total wait. */
    /* The caller's errno is left as it was: calls that promise so (the
     * waits of <cctx/io.h>, cctx_after_stop inside them) wait here, and
     * syscall(2) sets errno on EAGAIN, EINTR and ETIMEDOUT. */
    int saved = errno;
    long r = syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG,
                     expected, tsp, NULL, FUTEX_BITSET_MATCH_ANY);
    bool timed_out = r == -1 && errno == ETIMEDOUT;
    errno = saved;
    return timed_out ? ETIMEDOUT : 0;
}

void cctx__os_wake(_Atomic uint32_t *word)
{
    int saved = errno;
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, INT32_MAX, NULL, NULL, 0);
    errno = saved;
}

void cctx__os_fork_watch(void)
{
    /* A futex is a word in memory: the child has nothing to remake. */
}

#else /* portable fallback: condition variables */

/* Waiters hash on the word's address into a stripe; a wake broadcasts its
 * stripe. Spurious wake-ups are allowed by the contract of cctx__os_wait. */
#define STRIPES 64
static struct stripe {
    pthread_mutex_t lock;
    pthread_cond_t cond;
} stripes[STRIPES];
static pthread_once_t stripes_once = PTHREAD_ONCE_INIT;

/* A stripe's lock held by another thread at the instant of fork() stays
 * held in the child, which has no such thread: the child makes them anew.
 * Nothing in the child waits on them yet (its only thread is in fork). */
static void stripes_child(void)
{
    for (int i = 0; i < STRIPES; i++) {
        pthread_mutex_init(&stripes[i].lock, NULL);
        cctx__os_cond_init_monotonic(&stripes[i].cond);
    }
}

static void stripes_init(void)
{
    stripes_child();
    pthread_atfork(NULL, NULL, stripes_child);
}

static struct stripe *stripe_of(_Atomic uint32_t *word)
{
    pthread_once(&stripes_once, stripes_init);
    return &stripes[((uintptr_t)word >> 4) % STRIPES];
}

void cctx__os_fork_watch(void)
{
    pthread_once(&stripes_once, stripes_init);
}

int cctx__os_wait(_Atomic uint32_t *word, uint32_t expected, int64_t deadline)
{
    struct stripe *s = stripe_of(word);
    int r = 0;
    /* The condition waits are cancellation points, where a futex wait is
     * none: a thread cancelled in one would die holding the stripe's lock,
     * and every word of the stripe would wait for ever. */
    int cancel_state;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel_state);
    pthread_mutex_lock(&s->lock);
    /* A waker changes the word before it takes this stripe's lock to
     * broadcast, so under the lock either the change is seen or the
     * broadcast is still to come. Acquire, as a futex wait's check gives the
     * caller what the changer wrote before it. */
    if (cctx__atomic_load_acquire(word) == expected) {
        if (deadline == CCTX_NO_DEADLINE) {
            pthread_cond_wait(&s->cond, &s->lock);
        } else {
            if (deadline < 0)
                deadline = 0;
            struct timespec ts = {deadline / 1000000000, deadline % 1000000000};
            r = pthread_cond_timedwait(&s->cond, &s->lock, &ts) == ETIMEDOUT ? ETIMEDOUT : 0;
        }
    }
    pthread_mutex_unlock(&s->lock);
    pthread_setcancelstate(cancel_state, NULL);
    return r;
}

void cctx__os_wake(_Atomic uint32_t *word)
{
    struct stripe *s = stripe_of(word);
    pthread_mutex_lock(&s->lock);
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}
#endif

/* write and close are cancellation points, which the library's calls that
 * signal or close a done descriptor (cctx_cancel, cctx_release, cctx_done_fd)
 * must not be: a thread with a pthread_cancel pending died in them, the
 * descriptor never signalled (its pollers waited for ever, and the
 * cancellation reached neither the context's descendants nor its
 * after-functions) or never closed (and the release's reference on the
 * parent never dropped). Neither call blocks here (the descriptors are
 * non-blocking, and closing an eventfd or a pipe never lingers), so they
 * run with cancellation off, and a pending cancel acts at the thread's next
 * cancellation point. */
static int cancel_off(void)
{
    int state;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &state);
    return state;
}

static void cancel_back(int state)
{
    pthread_setcancelstate(state, NULL);
}

#if CCTX_USE_EVENTFD
#include <sys/eventfd.h>

int cctx__os_event_new(void)
{
    return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

void cctx__test_hold_pipes_lock(bool hold)
{
    (void)hold; /* no table: nothing to hold */
}

void cctx__os_event_signal(int fd)
{
    uint64_t one = 1;
    int state = cancel_off();
    /* EAGAIN only when the counter would overflow: it is readable then anyway. */
    ssize_t r = write(fd, &one, sizeof one);
    (void)r;
    cancel_back(state);
}

void cctx__os_event_close(int fd)
{
    int state = cancel_off();
    close(fd);
    cancel_back(state);
}

#else /* portable fallback: a pipe */

/* The pipe's write end is kept in a table indexed by the read end. */
static pthread_mutex_t pipes_lock = PTHREAD_MUTEX_INITIALIZER;
static int *pipe_writer;
static int pipe_writers;

/* A fork while another thread holds the table's lock (growing it, say)
 * would leave it held in the child for good: every done descriptor the
 * child made, signalled or closed would hang there. The lock nests inside
 * nothing (the table's calls run with no lock of the library's held), so
 * taking it before a fork cannot deadlock. Every use of the table follows a
 * cctx__os_event_new, which registers the handlers. */
static void pipes_lock_take(void)
{
    pthread_mutex_lock(&pipes_lock);
}

static void pipes_lock_give(void)
{
    pthread_mutex_unlock(&pipes_lock);
}

static pthread_once_t pipes_fork_once = PTHREAD_ONCE_INIT;

static void pipes_hold_over_fork(void)
{
    pthread_atfork(pipes_lock_take, pipes_lock_give, pipes_lock_give);
}

int cctx__os_event_new(void)
{
    pthread_once(&pipes_fork_once, pipes_hold_over_fork);
    int p[2];
#if CCTX_USE_PIPE2
    if (pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0)
        return -1;
#else
    /* A fork and exec on another thread between pipe and fcntl would leak
     * the two ends into that program; POSIX before 2024 has no pipe2. */
    if (pipe(p) != 0)
        return -1;
    for (int i = 0; i < 2; i++) {
        fcntl(p[i], F_SETFD, FD_CLOEXEC);
        fcntl(p[i], F_SETFL, O_NONBLOCK);
    }
#endif
    pthread_mutex_lock(&pipes_lock);
    if (p[0] >= pipe_writers) {
        int n = p[0] * 2 + 16;
        int *grown = realloc(pipe_writer, sizeof *grown * (size_t)n);
        if (!grown) {
            pthread_mutex_unlock(&pipes_lock);
            int state = cancel_off();
            close(p[0]);
            close(p[1]);
            cancel_back(state);
            errno = ENOMEM;
            return -1;
        }
        pipe_writer = grown;
        pipe_writers = n;
    }
    pipe_writer[p[0]] = p[1];
    pthread_mutex_unlock(&pipes_lock);
    return p[0];
}

void cctx__test_hold_pipes_lock(bool hold)
{
    if (hold)
        pthread_mutex_lock(&pipes_lock);
    else
        pthread_mutex_unlock(&pipes_lock);
}

void cctx__os_event_signal(int fd)
{
    pthread_mutex_lock(&pipes_lock);
    int w = pipe_writer[fd];
    pthread_mutex_unlock(&pipes_lock);
    char c = 1;
    int state = cancel_off();
    ssize_t r = write(w, &c, 1);
    (void)r;
    cancel_back(state);
}

void cctx__os_event_close(int fd)
{
    int state = cancel_off(); /* the first close is made holding the lock */
    pthread_mutex_lock(&pipes_lock);
    close(pipe_writer[fd]);
    pthread_mutex_unlock(&pipes_lock);
    close(fd);
    cancel_back(state);
}
#endif
