/* SPDX-License-Identifier: MIT */
/*
 * Section 9, <cctx/io.h>, continued from test_io.c: what the table of
 * operations cannot say about the pthread calls. cctx_cond_wait's
 * after-function: the mutex is held on every return, nothing is left
 * registered, and a canceller (or a fake-clock advancer) that holds the
 * mutex does not deadlock, nor does a busy mutex delay other deadlines or
 * other waiters' wake-ups, also when no thread can be created (the first
 * wait then fails before it sleeps) and in a fork child (robust mutexes:
 * test_io_robust.c). cctx_mutex_lock and cctx_sem_wait wait in slices that
 * never end early on the fake clock, and that in a fork child (joins too)
 * end at a deadline the child inherited; pthread errors come back
 * unchanged.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/io.h>
#include <cctx/testing.h>

#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "io_internal.h"
#include "io_ops.h"
#include "support.h"

static const int64_t T0 = CCTX_SEC(1000); /* where fake-clock tests start */

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

/* ---- no thread can be created ------------------------------------------------------- */

static atomic_int creates_refused;

static int refuse_thread(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg)
{
    (void)t, (void)a, (void)fn, (void)arg;
    atomic_fetch_add(&creates_refused, 1);
    return EAGAIN;
}

static const cctx__io_create_fn real_create = pthread_create;

/* With no thread to be had, the first cctx_cond_wait of the process fails
 * with EAGAIN before it waits (nothing would wake it otherwise: the test
 * signals nobody), holding the mutex, with nothing left registered on ctx;
 * once threads can be made again, it works. */
static void no_thread_at_first_wait(void)
{
    pthread_mutex_t *m = new_errorcheck_mutex();
    pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
    cctx_cancel_t *cancel;
    cctx_t *ctx = cctx_with_cancel(cctx_background(), &cancel);
    cctx__io_thread_create = refuse_thread;
    CHECK_EQ(pthread_mutex_lock(m), 0);
    CHECK_EQ(cctx_cond_wait(ctx, &cond, m), EAGAIN);
    CHECK(atomic_load(&creates_refused) > 0);
    CHECK_EQ(pthread_mutex_unlock(m), 0); /* error-checking: it was held */
    cctx_cancel(cancel);                  /* touches no cond_wait frame */
    cctx_release(ctx);
    cctx__io_thread_create = real_create;

    int flag = 0;
    struct cond_case c = {.mutex = m, .cond = &cond, .flag = &flag};
    c.ctx = cctx_with_cancel(cctx_background(), &cancel);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, cond_waiter, &c), 0);
    await_blocked(&c.tid);
    CHECK_EQ(pthread_mutex_lock(m), 0);
    cctx_cancel(cancel);
    CHECK_EQ(pthread_mutex_unlock(m), 0);
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_EQ(c.r, ECANCELED);
    cctx_release(c.ctx);
    pthread_mutex_destroy(m);
    free(m);
}

TEST(io_cond_wait_without_threads_fails_before_waiting)
{
    run_with_watchdog(no_thread_at_first_wait, 20);
}

/* Waiters already asleep, then thread creation starts failing (thread
 * exhaustion), and the canceller holds the mutex: the after-function must
 * neither create a thread nor wait for the mutex. The cancel returns with
 * the mutex still held, and the waiters wake once it is let go. */
static void cancel_holding_mutex_no_threads(void)
{
    enum { N = 3 };
    pthread_mutex_t *m = new_errorcheck_mutex();
    pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
    int flag = 0;
    cctx_cancel_t *cancel;
    cctx_t *ctx = cctx_with_cancel(cctx_background(), &cancel);
    struct cond_case c[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        c[i] = (struct cond_case){.ctx = ctx, .mutex = m, .cond = &cond, .flag = &flag};
        CHECK_EQ(pthread_create(&t[i], NULL, cond_waiter, &c[i]), 0);
    }
    for (int i = 0; i < N; i++)
        await_blocked(&c[i].tid);
    cctx__io_thread_create = refuse_thread;
    CHECK_EQ(pthread_mutex_lock(m), 0);
    cctx_cancel(cancel);
    CHECK_EQ(cctx_err(ctx), ECANCELED);
    CHECK_EQ(pthread_mutex_unlock(m), 0);
    for (int i = 0; i < N; i++) {
        CHECK_EQ(pthread_join(t[i], NULL), 0);
        CHECK_EQ(c[i].r, ECANCELED);
    }
    CHECK_EQ(atomic_load(&creates_refused), 0); /* none was even tried */
    cctx__io_thread_create = real_create;
    pthread_mutex_destroy(m);
    free(m);
    cctx_release(ctx);
}

TEST(io_cond_wait_cancel_holding_mutex_without_new_threads)
{
    run_with_watchdog(cancel_holding_mutex_no_threads, 20);
}

/* Two waiters on two mutexes, both held by the canceller: letting go of
 * one wakes its waiter while the other mutex stays held (the library's
 * waker does not sit on the busy one). */
static void busy_mutex_does_not_block_other_wakeups(void)
{
    pthread_mutex_t *ma = new_errorcheck_mutex(), *mb = new_errorcheck_mutex();
    pthread_cond_t ca = PTHREAD_COND_INITIALIZER, cb = PTHREAD_COND_INITIALIZER;
    int flag = 0;
    cctx_cancel_t *cancel;
    cctx_t *ctx = cctx_with_cancel(cctx_background(), &cancel);
    struct cond_case a = {.ctx = ctx, .mutex = ma, .cond = &ca, .flag = &flag};
    struct cond_case b = {.ctx = ctx, .mutex = mb, .cond = &cb, .flag = &flag};
    pthread_t ta, tb;
    CHECK_EQ(pthread_create(&ta, NULL, cond_waiter, &a), 0);
    CHECK_EQ(pthread_create(&tb, NULL, cond_waiter, &b), 0);
    await_blocked(&a.tid);
    await_blocked(&b.tid);
    CHECK_EQ(pthread_mutex_lock(ma), 0);
    CHECK_EQ(pthread_mutex_lock(mb), 0);
    cctx_cancel(cancel);
    real_sleep_ms(30); /* let the waker start on ma, if it would sit there */
    CHECK_EQ(pthread_mutex_unlock(mb), 0);
    CHECK_EQ(pthread_join(tb, NULL), 0); /* the watchdog fails a hang here */
    CHECK_EQ(b.r, ECANCELED);
    CHECK_EQ(pthread_mutex_unlock(ma), 0);
    CHECK_EQ(pthread_join(ta, NULL), 0);
    CHECK_EQ(a.r, ECANCELED);
    pthread_mutex_destroy(ma);
    pthread_mutex_destroy(mb);
    free(ma);
    free(mb);
    cctx_release(ctx);
}

TEST(io_cond_wait_busy_mutex_does_not_block_other_wakeups)
{
    run_with_watchdog(busy_mutex_does_not_block_other_wakeups, 20);
}

/* Many mutexes kept busy delay no wake-up queued on a free one. 60
 * waiters' wake-ups wait for mutexes this thread keeps (ThreadSanitizer
 * follows at most 64 locks held by one thread); 100 ms later (when a waker
 * that waited a slice for each busy mutex in turn would be early in a round
 * of 60 x 16 ms, about 0.9 s) a 61st waiter's mutex is busy only for the
 * instant of its cancel. Its wake-up must not wait for the rest of that
 * round, 0.8 s: it waits one slice at most, and 0.4 s is far from both. */
enum { KEPT = 60 };

static void many_busy_mutexes_do_not_delay_a_free_ones_wakeup(void)
{
    pthread_mutex_t *m[KEPT + 1];
    pthread_cond_t cv[KEPT + 1];
    struct cond_case c[KEPT + 1];
    pthread_t t[KEPT + 1];
    int flag = 0;
    cctx_cancel_t *keep_cancel, *free_cancel;
    cctx_t *kept = cctx_with_cancel(cctx_background(), &keep_cancel);
    cctx_t *lone = cctx_with_cancel(cctx_background(), &free_cancel);
    for (int i = 0; i <= KEPT; i++) {
        m[i] = new_errorcheck_mutex();
        CHECK_EQ(pthread_cond_init(&cv[i], NULL), 0);
        c[i] = (struct cond_case){
            .ctx = i < KEPT ? kept : lone, .mutex = m[i], .cond = &cv[i], .flag = &flag};
        CHECK_EQ(pthread_create(&t[i], NULL, cond_waiter, &c[i]), 0);
    }
    for (int i = 0; i <= KEPT; i++)
        await_blocked(&c[i].tid);
    for (int i = 0; i < KEPT; i++)
        CHECK_EQ(pthread_mutex_lock(m[i]), 0);
    cctx_cancel(keep_cancel); /* each mutex busy: all go to the waker */
    real_sleep_ms(100);
    CHECK_EQ(pthread_mutex_lock(m[KEPT]), 0);
    int64_t t0 = real_now();
    cctx_cancel(free_cancel);
    CHECK_EQ(pthread_mutex_unlock(m[KEPT]), 0);
    CHECK_EQ(pthread_join(t[KEPT], NULL), 0);
    int64_t took = real_now() - t0;
    printf("a free mutex's wake-up with %d busy ones queued: %.2f ms\n", KEPT, took / 1e6);
    CHECK_EQ(c[KEPT].r, ECANCELED);
    CHECK(took < CCTX_MSEC(400));
    for (int i = 0; i < KEPT; i++)
        CHECK_EQ(pthread_mutex_unlock(m[i]), 0);
    for (int i = 0; i <= KEPT; i++) {
        if (i < KEPT)
            CHECK_EQ(pthread_join(t[i], NULL), 0);
        CHECK_EQ(c[i].r, ECANCELED);
        pthread_cond_destroy(&cv[i]);
        pthread_mutex_destroy(m[i]);
        free(m[i]);
    }
    cctx_release(kept);
    cctx_release(lone);
}

TEST(io_cond_wait_many_busy_mutexes_do_not_delay_a_free_ones_wakeup)
{
    run_with_watchdog(many_busy_mutexes_do_not_delay_a_free_ones_wakeup, 30);
}

static int count_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    CHECK(d != NULL);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* fork: the child starts no waker at fork time, and its first
 * cctx_cond_wait (canceled by a thread holding the mutex, so the waker is
 * needed) starts one of its own. */
TEST(io_cond_wait_fork_child_starts_its_own_waker)
{
    if (TEST_UNDER_TSAN) {
        SKIP_IN_THIS_BUILD("ThreadSanitizer (die_after_fork)");
    }
    /* The parent's waker runs: a cancel by the mutex holder needs it. */
    cancel_holding_mutex_no_threads();
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
    cctx_cancel_t *cancel;
    cctx_t *ctx = cctx_with_cancel(cctx_background(), &cancel);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        if (count_threads() != 1)
            _exit(10);
        int flag = 0;
        struct cond_case c = {.ctx = ctx, .mutex = &m, .cond = &cond, .flag = &flag};
        pthread_t t;
        if (pthread_create(&t, NULL, cond_waiter, &c) != 0)
            _exit(11);
        await_blocked(&c.tid);
        pthread_mutex_lock(&m);
        cctx_cancel(cancel);
        pthread_mutex_unlock(&m);
        pthread_join(t, NULL);
        _exit(c.r == ECANCELED ? 0 : 12);
    }
    int status;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
    cctx_release(ctx);
}

/* fork: a child whose only deadline it inherited, and whose first waiting
 * call is a sliced one (which registers nothing, so nothing else restarts
 * the child's timer thread), still sees that deadline fire. Each kind in a
 * child of its own: the first to restart the timer would end the others'
 * contexts before they wait. The child's alarm is the test's bound. */
static void *read_forever(void *arg)
{
    char c;
    (void)!read(*(int *)arg, &c, 1); /* nobody writes: the child's exit ends it */
    return NULL;
}

static int sliced_in_child(int kind, cctx_t *ctx, pthread_mutex_t *held)
{
    alarm(10);
    if (kind == 0)
        return cctx_mutex_lock(ctx, held); /* locked by the parent: never free here */
    if (kind == 1) {
        sem_t sem;
        if (sem_init(&sem, 0, 0) != 0)
            return -1;
        return cctx_sem_wait(ctx, &sem) < 0 ? errno : 0;
    }
    int fds[2];
    pthread_t t;
    if (pipe(fds) != 0 || pthread_create(&t, NULL, read_forever, &fds[0]) != 0)
        return -1;
    return cctx_thread_join(ctx, t, NULL);
}

TEST(io_sliced_waits_in_a_fork_child_end_at_an_inherited_deadline)
{
    SKIP_FORK_UNDER_SANITIZERS();
    pthread_mutex_t held = PTHREAD_MUTEX_INITIALIZER;
    CHECK_EQ(pthread_mutex_lock(&held), 0);
    for (int kind = 0; kind < 3; kind++) {
        cctx_t *ctx = cctx_with_timeout(cctx_background(), CCTX_MSEC(20), NULL);
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0)
            _exit(sliced_in_child(kind, ctx, &held) == ETIMEDOUT ? 0 : 1);
        int status;
        CHECK_EQ(waitpid(pid, &status, 0), pid);
        if (!WIFEXITED(status))
            fprintf(stderr, "kind %d: the child was killed (signal %d)\n", kind,
                    WIFSIGNALED(status) ? WTERMSIG(status) : 0);
        CHECK(WIFEXITED(status));
        CHECK_EQ(WEXITSTATUS(status), 0);
        cctx_release(ctx);
    }
    CHECK_EQ(pthread_mutex_unlock(&held), 0);
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

/* cctx_cond_wait leaves errno alone, as the pthread calls do, also when
 * ctx's end wakes it: its wait for the after-function (cctx_after_stop,
 * a futex wait) set errno to EAGAIN when the word had already changed. */
struct errno_waiter {
    cctx_t *ctx;
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    atomic_int in;
    int rc, errno_after;
};

static void *wait_with_errno_set(void *arg)
{
    struct errno_waiter *w = arg;
    CHECK_EQ(pthread_mutex_lock(&w->mutex), 0);
    atomic_store(&w->in, 1);
    errno = 777;
    w->rc = cctx_cond_wait(w->ctx, &w->cond, &w->mutex);
    w->errno_after = errno;
    CHECK_EQ(pthread_mutex_unlock(&w->mutex), 0);
    return NULL;
}

TEST(io_cond_wait_leaves_errno_alone_when_ctx_ends)
{
    for (int i = 0; i < 300; i++) {
        cctx_cancel_t *cancel;
        struct errno_waiter w = {.ctx = cctx_with_cancel(cctx_background(), &cancel)};
        pthread_mutex_init(&w.mutex, NULL);
        pthread_cond_init(&w.cond, NULL);
        pthread_t t;
        CHECK_EQ(pthread_create(&t, NULL, wait_with_errno_set, &w), 0);
        while (!atomic_load(&w.in))
            sched_yield();
        /* Every other round the canceller holds the mutex, and the wake-up
         * goes through the waker. */
        bool hold = i % 2;
        if (hold)
            CHECK_EQ(pthread_mutex_lock(&w.mutex), 0);
        cctx_cancel(cancel);
        if (hold)
            CHECK_EQ(pthread_mutex_unlock(&w.mutex), 0);
        CHECK_EQ(pthread_join(t, NULL), 0);
        CHECK(w.rc == 0 || w.rc == ECANCELED);
        CHECK_EQ(w.errno_after, 777);
        cctx_release(w.ctx);
        pthread_cond_destroy(&w.cond);
        pthread_mutex_destroy(&w.mutex);
    }
}
