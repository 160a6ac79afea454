/* SPDX-License-Identifier: MIT */
/*
 * A deadline in the hands of its firer at the moment of fork() (src/timer.c):
 * taken off its heap, its context not yet marked. The child lacks the thread
 * that held it, so the child's own timer thread fires it; a firing that has
 * committed, or one of the thread that forks, is not fired again.
 *
 * The firer is held between taking the deadline off its heap and firing it
 * through timer.c's hook cctx__timer_popped, or, where the firing finds its
 * context's lock busy, by holding that lock: the firing then waits for it on
 * a runner, or on the timer thread when no runner can start (runner.c's hook
 * cctx__runner_thread_start).
 *
 * A child whose first start of the timer thread is refused: cctx_wait,
 * cctx_wait_any, cctx_cancel_and_wait and the waits of <cctx/io.h> (sliced,
 * on a descriptor, on a condition variable) and cctx_proc_wait try again as
 * they wait (src/fork.c); so does a cancel that waits for a marking left to a runner
 * that could not start.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/io.h>
#include <cctx/proc.h>
#include <cctx/testing.h>

#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cctx_config.h" /* CCTX_USE_COND_CLOCKWAIT */
#include "harness.h"
#include "internal.h"
#include "support.h"
#include "testhooks.h"

/* ---- holding a firing --------------------------------------------------------------- */

static atomic_int hold_armed, held, may_fire;
static struct cctx__timer *_Atomic held_firing;

/* The hook: holds the next firing, whichever it is, until may_fire. */
static void hold_the_firing(struct cctx__timer *t)
{
    if (!atomic_exchange(&hold_armed, 0))
        return;
    atomic_store(&held_firing, t);
    atomic_store(&held, 1);
    while (!atomic_load(&may_fire))
        real_sleep_ms(1);
}

/* Before the deadline is made, so that however late this thread runs the
 * firing is held. */
static void hold_the_next_firing(void)
{
    atomic_store(&held, 0);
    atomic_store(&may_fire, 0);
    atomic_store(&hold_armed, 1);
    atomic_store(&cctx__timer_popped, hold_the_firing);
}

static void until_held(cctx_t *c)
{
    int64_t give_up = real_now() + CCTX_SEC(10);
    while (!atomic_load(&held) && real_now() < give_up)
        real_sleep_ms(1);
    CHECK(atomic_load(&held));
    CHECK(atomic_load(&held_firing) == (struct cctx__timer *)c);
}

/* Until a thread sleeps waiting for c's lock, which this thread holds. */
static void until_waited_for(cctx_t *c)
{
    int64_t give_up = real_now() + CCTX_SEC(10);
    while ((atomic_load(&c->word) & 3) != 2 && real_now() < give_up)
        real_sleep_ms(1);
    CHECK((atomic_load(&c->word) & 3) == 2);
}

/* In the child: 0 if c's deadline fires there within a generous bound. */
static int done_in_the_child(cctx_t *c)
{
    int fd = cctx_done_fd(c); /* a call that starts the child's timer and runners */
    if (fd < 0)
        return 11;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 10000) != 1)
        return 12; /* never fired */
    if (cctx_err(c) != ETIMEDOUT)
        return 13;
    /* Never early: the clock the child inherited had reached the deadline
     * (an advance steps it there before it takes the deadline in hand). */
    cctx_cause_t cause;
    int64_t deadline;
    cctx_cause(c, &cause);
    if (!cctx_deadline(c, &deadline) || cause.when < deadline)
        return 15;
    return cctx__test_timer_orphans() == 0 ? 0 : 14;
}

/* In the child of a fork that fell while another thread had c's firing in
 * hand: it is handed to the child's timer, which fires it. */
static int fires_in_the_child(cctx_t *c)
{
    atomic_store(&cctx__timer_popped, NULL);
    if (cctx__test_timer_orphans() != 1)
        return 10;
    return done_in_the_child(c);
}

/* Forks a child that exits with check(c), within 30 s; returns its pid. */
static pid_t fork_to_check(cctx_t *c, int (*check)(cctx_t *c))
{
    fflush(stdout);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        alarm(30);
        _exit(check(c));
    }
    return pid;
}

/* ---- the timer thread's firing ------------------------------------------------------- */

TEST(timer_fork_while_the_timer_thread_holds_a_due_deadline_fires_it_in_the_child)
{
    SKIP_FORK_UNDER_SANITIZERS();
    hold_the_next_firing();
    cctx_t *c = armed_timeout(cctx_background(), CCTX_MSEC(5));
    until_held(c);
    pid_t pid = fork_to_check(c, fires_in_the_child);
    atomic_store(&may_fire, 1);
    CHECK_EQ(child_exit_status(pid), 0);
    CHECK_EQ(cctx_wait(c, CCTX_SEC(10)), ETIMEDOUT);
    atomic_store(&cctx__timer_popped, NULL);
    cctx_release(c);
}

TEST(timer_firing_is_out_of_hand_once_committed)
{
    /* Committed: a fork from here on must not hand the child a firing whose
     * reference the firer has given up (the context may be freed). */
    cctx_t *c = cctx_with_timeout(cctx_background(), CCTX_MSEC(1), NULL);
    CHECK_EQ(cctx_wait(c, CCTX_SEC(10)), ETIMEDOUT);
    int64_t give_up = real_now() + CCTX_SEC(10);
    while (cctx__test_timer_in_hand(false) && real_now() < give_up)
        real_sleep_ms(1);
    CHECK(cctx__test_timer_in_hand(false) == NULL);
    cctx_release(c);
}

/* ---- a firing that finds its context's lock busy ------------------------------------------ */

/* In the child: this thread holds c's lock here too; the runner or timer
 * thread that waited for it is not here. */
static int unlock_then_fired_in_the_child(cctx_t *c)
{
    cctx__unlock(c);
    return done_in_the_child(c);
}

/* A deadline whose firing finds its lock held by this thread, and waits for
 * it; a fork then, and the child must exit 0 from check. */
static void fork_while_the_firing_waits_for_the_lock(int (*check)(cctx_t *c))
{
    cctx_t *c;
    for (;;) {
        c = armed_timeout(cctx_background(), CCTX_MSEC(5));
        cctx__lock(c);
        /* Active: its firing is yet to come, and will wait for the lock.
         * Else it fired before this thread took the lock. */
        if (cctx_err(c) == 0)
            break;
        cctx__unlock(c);
        cctx_release(c);
    }
    until_waited_for(c);
    pid_t pid = fork_to_check(c, check);
    cctx__unlock(c);
    CHECK_EQ(child_exit_status(pid), 0);
    CHECK_EQ(cctx_wait(c, CCTX_SEC(10)), ETIMEDOUT);
    cctx_release(c);
}

TEST(timer_fork_while_a_runner_waits_to_mark_a_busy_deadline_fires_it_in_the_child)
{
    SKIP_FORK_UNDER_SANITIZERS();
    /* The timer thread finds the lock busy and hands the firing to a
     * runner, which waits for the lock. */
    fork_while_the_firing_waits_for_the_lock(unlock_then_fired_in_the_child);
}

static int refuse_start(void *(*fn)(void *), void *arg)
{
    (void)fn, (void)arg;
    return EAGAIN;
}

static int start_runners_unlock_then_fired_in_the_child(cctx_t *c)
{
    atomic_store(&cctx__runner_thread_start, cctx__os_thread_start);
    cctx__unlock(c);
    return fires_in_the_child(c);
}

TEST(timer_fork_while_the_timer_thread_waits_to_mark_a_busy_deadline_fires_it_in_the_child)
{
    SKIP_FORK_UNDER_SANITIZERS();
    /* No runner can start: the timer thread takes the job back and waits
     * for the lock itself. */
    atomic_store(&cctx__runner_thread_start, refuse_start);
    fork_while_the_firing_waits_for_the_lock(start_runners_unlock_then_fired_in_the_child);
    atomic_store(&cctx__runner_thread_start, cctx__os_thread_start);
}

/* ---- an advance of the fake clock ------------------------------------------------------ */

static void *advance(void *d)
{
    cctx_fake_clock_advance(*(int64_t *)d);
    return NULL;
}

TEST(timer_fork_while_another_thread_advances_past_a_deadline_fires_it_in_the_child)
{
    SKIP_FORK_UNDER_SANITIZERS();
    cctx_fake_clock_start(CCTX_SEC(1));
    hold_the_next_firing();
    cctx_t *c = cctx_with_timeout(cctx_background(), CCTX_MSEC(5), NULL);
    int64_t d = CCTX_MSEC(10);
    pthread_t advancer;
    CHECK_EQ(pthread_create(&advancer, NULL, advance, &d), 0);
    until_held(c);
    pid_t pid = fork_to_check(c, fires_in_the_child);
    atomic_store(&may_fire, 1);
    CHECK_EQ(pthread_join(advancer, NULL), 0);
    CHECK_EQ(child_exit_status(pid), 0);
    CHECK_EQ(cctx_err(c), ETIMEDOUT);
    atomic_store(&cctx__timer_popped, NULL);
    cctx_release(c);
    cctx_fake_clock_stop();
}

static void fork_here(void *arg)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        /* This thread is the advancing one, and goes on with its firing
         * here: handing it to the child's timer as well would fire it, and
         * give up its reference, twice. */
        _exit(cctx__test_timer_orphans() == 0 ? 0 : 1);
    }
    *(pid_t *)arg = pid;
}

TEST(timer_fork_from_an_after_function_of_an_advance_leaves_the_firing_to_its_thread)
{
    SKIP_FORK_UNDER_SANITIZERS();
    cctx_fake_clock_start(CCTX_SEC(1));
    cctx_t *c = cctx_with_timeout(cctx_background(), CCTX_MSEC(5), NULL);
    pid_t pid = -1;
    cctx_after_t reg;
    CHECK_EQ(cctx_after_func(c, &reg, fork_here, &pid), 0);
    cctx_fake_clock_advance(CCTX_MSEC(10)); /* runs fork_here on this thread */
    CHECK(pid > 0);
    CHECK_EQ(child_exit_status(pid), 0);
    CHECK_EQ(cctx_err(c), ETIMEDOUT);
    cctx_release(c);
    cctx_fake_clock_stop();
}

/* ---- nested advances ------------------------------------------------------------------ */

struct nested {
    cctx_t *inner;
    struct cctx__timer *in_hand_after; /* the advance's record once the nested one is over */
};

static void advance_again(void *arg)
{
    struct nested *n = arg;
    cctx_fake_clock_advance(CCTX_MSEC(10)); /* fires inner, on this thread */
    n->in_hand_after = cctx__test_timer_in_hand(true);
}

TEST(timer_nested_advance_puts_back_the_record_of_the_firing_it_ran_in)
{
    cctx_fake_clock_start(CCTX_SEC(1));
    cctx_t *outer = cctx_with_timeout(cctx_background(), CCTX_MSEC(5), NULL);
    struct nested n = {.inner = cctx_with_timeout(cctx_background(), CCTX_MSEC(12), NULL)};
    cctx_after_t reg;
    CHECK_EQ(cctx_after_func(outer, &reg, advance_again, &n), 0);
    cctx_fake_clock_advance(CCTX_MSEC(6));
    CHECK_EQ(cctx_err(n.inner), ETIMEDOUT);
    /* While outer's after-function ran, outer's firing was still in hand: a
     * fork there would have to hand it on. */
    CHECK(n.in_hand_after == (struct cctx__timer *)outer);
    CHECK(cctx__test_timer_in_hand(true) == NULL);
    cctx_release(n.inner);
    cctx_release(outer);
    cctx_fake_clock_stop();
}

/* ---- a child whose threads could not start at first ------------------------------------ */

/* Forks a child with a 300 ms deadline, which exits with check(c): 0. */
static void check_in_a_child(int (*check)(cctx_t *c))
{
    cctx_t *c = cctx_with_timeout(cctx_background(), CCTX_MSEC(300), NULL);
    CHECK(c);
    pid_t pid = fork_to_check(c, check);
    CHECK_EQ(child_exit_status(pid), 0);
    cctx_release(c);
}

/* The child's first call that restarts finds that no thread can start (a
 * moment without memory, a thread limit): a later call must try again, or
 * the deadlines it inherited never fire. */
static int fires_after_a_failed_restart(cctx_t *c)
{
    atomic_store(&cctx__timer_thread_start, refuse_start);
    atomic_store(&cctx__runner_thread_start, refuse_start);
    if (cctx_done_fd(c) < 0) /* a call that restarts: nothing can start */
        return 10;
    atomic_store(&cctx__timer_thread_start, cctx__os_thread_start);
    atomic_store(&cctx__runner_thread_start, cctx__os_thread_start);
    if (cctx_wait(c, CCTX_SEC(10)) != ETIMEDOUT)
        return 11;
    return 0;
}

TEST(timer_fork_child_whose_first_restart_could_not_start_threads_tries_again)
{
    SKIP_FORK_UNDER_SANITIZERS();
    check_in_a_child(fires_after_a_failed_restart);
}

/* The call whose restart fails is itself a wait: it tries again while it
 * waits, or it sleeps through the deadline it waits for (cctx_wait returned
 * 0 at its timeout, the deadline long past and its context not ended). The
 * timer thread is refused once only, as a moment without memory or threads
 * would refuse it. */
static atomic_int timer_starts;
static int refuse_first_start(void *(*fn)(void *), void *arg)
{
    if (atomic_fetch_add(&timer_starts, 1) == 0)
        return EAGAIN;
    return cctx__os_thread_start(fn, arg);
}

static int wait_fires_after_its_own_failed_restart(cctx_t *c)
{
    atomic_store(&timer_starts, 0);
    atomic_store(&cctx__timer_thread_start, refuse_first_start);
    if (cctx_wait(c, CCTX_SEC(5)) != ETIMEDOUT)
        return 10;
    return atomic_load(&timer_starts) == 2 ? 0 : 11;
}

static int wait_any_fires_after_its_own_failed_restart(cctx_t *c)
{
    atomic_store(&timer_starts, 0);
    atomic_store(&cctx__timer_thread_start, refuse_first_start);
    if (cctx_wait_any(&c, 1, CCTX_SEC(5)) != 0)
        return 10;
    return atomic_load(&timer_starts) == 2 ? 0 : 11;
}

TEST(timer_fork_child_wait_whose_restart_could_not_start_the_timer_tries_again_while_it_waits)
{
    SKIP_FORK_UNDER_SANITIZERS();
    int (*checks[])(cctx_t *) = {wait_fires_after_its_own_failed_restart,
                                 wait_any_fires_after_its_own_failed_restart};
    for (size_t i = 0; i < sizeof checks / sizeof *checks; i++)
        check_in_a_child(checks[i]);
}

/* A sliced wait of <cctx/io.h> is the call whose restart fails: it tries
 * again at each slice, or it polls for ever a context whose deadline is
 * long past. The child's alarm bounds the wait that never ends. */
static int sem_wait_fires_after_its_own_failed_restart(cctx_t *c)
{
    alarm(10);
    sem_t sem;
    if (sem_init(&sem, 0, 0) != 0)
        return 12;
    atomic_store(&timer_starts, 0);
    atomic_store(&cctx__timer_thread_start, refuse_first_start);
    if (cctx_sem_wait(c, &sem) == 0 || errno != ETIMEDOUT)
        return 10;
    return atomic_load(&timer_starts) == 2 ? 0 : 11;
}

TEST(timer_fork_child_sliced_wait_whose_restart_could_not_start_the_timer_tries_again)
{
    SKIP_FORK_UNDER_SANITIZERS();
    check_in_a_child(sem_wait_fires_after_its_own_failed_restart);
}

/* A wait that another thread begins while a restart is under way, which
 * then fails, tries it again itself: had it found the child no longer stale
 * it would sleep to its timeout, and the call that failed (cctx_done_fd
 * here) makes no other. The first start of the timer thread lets that wait
 * fall asleep before it refuses. */
static cctx_t *meanwhile_ctx;
static pthread_t meanwhile;
static atomic_int meanwhile_tid;
static int meanwhile_result;

static void *wait_meanwhile(void *arg)
{
    (void)arg;
    atomic_store(&meanwhile_tid, thread_id());
    meanwhile_result = cctx_wait(meanwhile_ctx, CCTX_SEC(5));
    return NULL;
}

static int refuse_first_start_once_a_wait_sleeps(void *(*fn)(void *), void *arg)
{
    if (atomic_fetch_add(&timer_starts, 1) > 0)
        return cctx__os_thread_start(fn, arg);
    if (pthread_create(&meanwhile, NULL, wait_meanwhile, NULL) != 0)
        _exit(13);
    while (!atomic_load(&meanwhile_tid))
        real_sleep_ms(1);
    wait_until_blocked(atomic_load(&meanwhile_tid));
    return EAGAIN;
}

static int wait_begun_during_a_failing_restart_tries_again(cctx_t *c)
{
    meanwhile_ctx = c;
    atomic_store(&timer_starts, 0);
    atomic_store(&cctx__timer_thread_start, refuse_first_start_once_a_wait_sleeps);
    if (cctx_done_fd(c) < 0)
        return 10;
    if (pthread_join(meanwhile, NULL) != 0)
        return 11;
    if (meanwhile_result != ETIMEDOUT)
        return 12;
    return atomic_load(&timer_starts) == 2 ? 0 : 14;
}

TEST(timer_fork_child_wait_begun_while_another_thread_restarts_in_vain_tries_again)
{
    SKIP_FORK_UNDER_SANITIZERS();
    check_in_a_child(wait_begun_during_a_failing_restart_tries_again);
}

/* A wait that only ctx's end stops, a wait on a descriptor of <cctx/io.h>
 * or cctx_cond_wait, whose restart fails: it tries again as it waits, or it
 * waits for ever through a deadline long past. The timer thread is refused
 * three times, so that the tries of the wait's own slices are needed. */
static atomic_int refusals_left;
static _Atomic int64_t first_start_at, last_start_at;

static int refuse_a_few_starts(void *(*fn)(void *), void *arg)
{
    int64_t now = real_now();
    if (atomic_fetch_add(&timer_starts, 1) == 0)
        atomic_store(&first_start_at, now);
    atomic_store(&last_start_at, now);
    if (atomic_fetch_sub(&refusals_left, 1) > 0)
        return EAGAIN;
    return cctx__os_thread_start(fn, arg);
}

static void refuse_the_next_three_starts(void)
{
    alarm(10); /* the wait that never ends */
    atomic_store(&timer_starts, 0);
    atomic_store(&refusals_left, 3);
    atomic_store(&cctx__timer_thread_start, refuse_a_few_starts);
}

/* The four starts, the first two made before the wait sleeps (the call's
 * own restart, then its wait's first try), spread over two slices (10 ms
 * each) at least: the slices are waits, not a spin on an end read on the
 * wrong clock. 15 ms, not 20, for rounding; a loaded machine only spreads
 * them further. */
static int started_as_expected(void)
{
    if (atomic_load(&timer_starts) != 4)
        return 11;
    return atomic_load(&last_start_at) - atomic_load(&first_start_at) >= CCTX_MSEC(15) ? 0 : 13;
}

static int read_fires_after_its_own_failed_restarts(cctx_t *c)
{
    int fds[2];
    if (pipe(fds) != 0)
        return 12;
    refuse_the_next_three_starts();
    char b;
    if (cctx_read(c, fds[0], &b, 1) != -1 || errno != ETIMEDOUT)
        return 10;
    return started_as_expected();
}

/* cctx_poll without a timeout, then with one that comes after c's deadline:
 * either way only c's deadline ends the wait. */
static int poll_fires_after_its_own_failed_restarts(cctx_t *c, int64_t timeout)
{
    int fds[2];
    if (pipe(fds) != 0)
        return 12;
    refuse_the_next_three_starts();
    struct pollfd p = {.fd = fds[0], .events = POLLIN};
    if (cctx_poll(c, &p, 1, timeout) != -1 || errno != ETIMEDOUT)
        return 10;
    return started_as_expected();
}

static int poll_forever_fires_after_its_own_failed_restarts(cctx_t *c)
{
    return poll_fires_after_its_own_failed_restarts(c, -1);
}

static int poll_longer_fires_after_its_own_failed_restarts(cctx_t *c)
{
    return poll_fires_after_its_own_failed_restarts(c, CCTX_SEC(8));
}

/* Nobody signals cond: the wait ends with c's deadline, and a slice that
 * runs out while c is live is no wake-up (0) to the caller. The mutex is
 * held on each return. */
static int cond_wait_fires_on(cctx_t *c, pthread_cond_t *cond)
{
    pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
    refuse_the_next_three_starts();
    pthread_mutex_lock(&mutex);
    int r, woken = 0;
    while ((r = cctx_cond_wait(c, cond, &mutex)) == 0)
        woken++;
    bool held = pthread_mutex_trylock(&mutex) == EBUSY;
    pthread_mutex_unlock(&mutex);
    if (r != ETIMEDOUT || !held)
        return 10;
    if (woken)
        return 14;
    return started_as_expected();
}

static int cond_wait_fires_after_its_own_failed_restarts(cctx_t *c)
{
    pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
    return cond_wait_fires_on(c, &cond);
}

#if CCTX_USE_COND_CLOCKWAIT
/* A condition variable that keeps CLOCK_MONOTONIC: a slice's end read on
 * CLOCK_REALTIME would be decades away there, and the wait would never try
 * again (the fallback without pthread_cond_clockwait, <cctx/io.h>). */
static int monotonic_cond_wait_fires_after_its_own_failed_restarts(cctx_t *c)
{
    pthread_condattr_t a;
    pthread_cond_t cond;
    if (pthread_condattr_init(&a) || pthread_condattr_setclock(&a, CLOCK_MONOTONIC) ||
        pthread_cond_init(&cond, &a))
        return 12;
    return cond_wait_fires_on(c, &cond);
}
#endif

TEST(timer_fork_child_descriptor_and_cond_waits_whose_restart_failed_try_again)
{
    SKIP_FORK_UNDER_SANITIZERS();
    int (*checks[])(cctx_t *) = {
        read_fires_after_its_own_failed_restarts,
        poll_forever_fires_after_its_own_failed_restarts,
        poll_longer_fires_after_its_own_failed_restarts,
        cond_wait_fires_after_its_own_failed_restarts,
#if CCTX_USE_COND_CLOCKWAIT
        monotonic_cond_wait_fires_after_its_own_failed_restarts,
#endif
    };
    for (size_t i = 0; i < sizeof checks / sizeof *checks; i++)
        check_in_a_child(checks[i]);
}

/* cctx_proc_wait for a process that runs on until c's deadline signals it:
 * only c's deadline, inherited, ends that wait, by the SIGTERM it sends. */
static int proc_wait_fires_after_its_own_failed_restarts(cctx_t *c)
{
    refuse_the_next_three_starts();
    char *argv[] = {"sleep", "30", NULL};
    cctx_proc_t *p = cctx_proc_spawn(c, "/bin/sleep", argv, NULL, NULL);
    if (!p)
        return 12;
    int status = 0;
    int r = cctx_proc_wait(p, &status);
    cctx_proc_free(p);
    if (r != 0 || !WIFSIGNALED(status) || WTERMSIG(status) != SIGTERM || cctx_err(c) != ETIMEDOUT)
        return 10;
    return started_as_expected();
}

TEST(timer_fork_child_proc_wait_whose_restart_failed_tries_again)
{
    SKIP_FORK_UNDER_SANITIZERS();
    if (access("/bin/sleep", X_OK) != 0)
        SKIP("no /bin/sleep");
    check_in_a_child(proc_wait_fires_after_its_own_failed_restarts);
}

/* cctx_cancel_and_wait is the call whose restart fails: it tries again while
 * it waits, or it sleeps to its timeout while the holder it waits for is
 * let go only by an after-function of an inherited deadline, which needs the
 * timer thread. */
static cctx_cancel_t *quiesced;

static void let_go(void *arg)
{
    cctx_release(arg);
}

static int cancel_and_wait_sees_a_holder_let_go_after_its_own_failed_restart(cctx_t *deadline)
{
    (void)deadline;
    atomic_store(&timer_starts, 0);
    atomic_store(&cctx__timer_thread_start, refuse_first_start);
    if (cctx_cancel_and_wait(quiesced, CCTX_SEC(5), NULL) != 0)
        return 10;
    return atomic_load(&timer_starts) == 2 ? 0 : 11;
}

TEST(timer_fork_child_cancel_and_wait_whose_restart_could_not_start_the_timer_tries_again)
{
    SKIP_FORK_UNDER_SANITIZERS();
    cctx_t *c = cctx_with_cancel(cctx_background(), &quiesced);
    CHECK(c);
    cctx_t *holder = cctx_without_cancel(c);
    CHECK(holder);
    cctx_t *deadline = cctx_with_timeout(cctx_background(), CCTX_MSEC(300), NULL);
    CHECK(deadline);
    cctx_after_t reg;
    CHECK_EQ(cctx_after_func(deadline, &reg, let_go, holder), 0);
    pid_t pid =
        fork_to_check(deadline, cancel_and_wait_sees_a_holder_let_go_after_its_own_failed_restart);
    CHECK_EQ(child_exit_status(pid), 0);
    CHECK_EQ(cctx_cancel_and_wait(quiesced, CCTX_SEC(10), NULL), 0);
    cctx_after_stop(&reg);
    cctx_release(deadline);
    cctx_release(c);
}

/* ---- a marking left to a runner ------------------------------------------------------- */

/* A deadline's firing that finds a descendant's lock busy marks what it
 * can and hands the rest to a runner as a job (firing.c). Forked while the
 * job waits in the queue for a runner that has yet to start, the child
 * inherits the job and the deadline's context ended, its marking not
 * complete; a cancel there waits for that marking, which only the child's
 * own runner can finish. If the restart that the cancel makes cannot start
 * one, the cancel tries again as it waits, or it waits for ever. */
static atomic_int submitting, may_refuse, runner_starts;
static cctx_t *busy_below;
static cctx_cancel_t *ended_above;

/* The firing's runner: held until the fork, then refused, so the timer
 * thread takes the job back and finishes the marking itself (runner.c). */
static int hold_then_refuse(void *(*fn)(void *), void *arg)
{
    (void)fn, (void)arg;
    atomic_store(&submitting, 1);
    while (!atomic_load(&may_refuse))
        real_sleep_ms(1);
    return EAGAIN;
}

static int refuse_first_runner(void *(*fn)(void *), void *arg)
{
    if (atomic_fetch_add(&runner_starts, 1) == 0)
        return EAGAIN;
    return cctx__os_thread_start(fn, arg);
}

static int cancel_waits_for_the_runner_it_could_not_start(cctx_t *c)
{
    alarm(10); /* the cancel that never returns */
    atomic_store(&runner_starts, 0);
    atomic_store(&cctx__runner_thread_start, refuse_first_runner);
    cctx__unlock(busy_below); /* held here too */
    cctx_cancel(ended_above); /* ended: waits for its marking */
    if (cctx_err(c) != ETIMEDOUT || cctx_err(busy_below) != ETIMEDOUT)
        return 10;
    return atomic_load(&runner_starts) == 2 ? 0 : 11;
}

TEST(timer_fork_child_cancel_waiting_for_a_runner_whose_restart_failed_tries_again)
{
    SKIP_FORK_UNDER_SANITIZERS();
    atomic_store(&submitting, 0);
    atomic_store(&may_refuse, 0);
    atomic_store(&cctx__runner_thread_start, hold_then_refuse);
    /* Held until busy_below is busy; and not so near that a slow start
     * finds it past, which ends it at once, without the timer thread. */
    hold_the_next_firing();
    cctx_t *c = cctx_with_timeout(cctx_background(), CCTX_MSEC(100), &ended_above);
    CHECK(c);
    busy_below = cctx_with_cancel(c, NULL);
    CHECK(busy_below);
    cctx__lock(busy_below);
    atomic_store(&may_fire, 1);
    int64_t give_up = real_now() + CCTX_SEC(10);
    while (!atomic_load(&submitting) && real_now() < give_up)
        real_sleep_ms(1);
    CHECK(atomic_load(&submitting));
    CHECK_EQ(cctx_err(c), ETIMEDOUT); /* marked, but not below */
    pid_t pid = fork_to_check(c, cancel_waits_for_the_runner_it_could_not_start);
    atomic_store(&may_refuse, 1);
    cctx__unlock(busy_below);
    CHECK_EQ(child_exit_status(pid), 0);
    CHECK_EQ(cctx_wait(busy_below, CCTX_SEC(10)), ETIMEDOUT);
    atomic_store(&cctx__runner_thread_start, cctx__os_thread_start);
    atomic_store(&cctx__timer_popped, NULL);
    cctx_release(busy_below);
    cctx_release(c);
}
