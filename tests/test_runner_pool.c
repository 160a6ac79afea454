/* SPDX-License-Identifier: MIT */
/*
 * The runners' pool (runner.c): work that finds no idle runner and can start
 * none (RUNNERS_MAX runners alive, or thread creation failing) is taken by
 * the next runner that runs out of work, also by one that had just found
 * nothing to do and was on its way to the idle list; with no runner at all,
 * the caller gets the work back (a job) or does it itself (a deadline's
 * after-functions, on the timer thread). Thread creation is made to fail
 * through runner.c's hook cctx__runner_thread_start. A child of fork() made
 * from an after-function on a runner goes on as that runner, and counts it.
 * With RUNNERS_MAX runners blocked in after-functions, spare runners still
 * wake a waiting thread (a library waker), finish a firing the timer
 * thread had to hand over, start a grace period's clock and signal a
 * process; and a place given back as another runner finds none is taken
 * again for the work that runner came for.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <cctx/proc.h>
#include <cctx/signal.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"
#include "support.h"
#include "testhooks.h"

enum { RUNNERS_MAX = 256, RUNNERS_SPARE = 4 }; /* runner.c's */

static atomic_int starts_refused;

static int refuse_start(void *(*fn)(void *), void *arg)
{
    (void)fn, (void)arg;
    atomic_fetch_add(&starts_refused, 1);
    return ENOMEM;
}

/* ---- runners kept busy --------------------------------------------------------------- */

/* n after-functions of one deadline, each on a runner of its own. Slot 0's
 * returns when `first_go` opens, the others' when `go` does. */
struct busy {
    pthread_t registrar;
    atomic_int too_late; /* an fn ran at registration: the deadline came first */
    struct latch in, go, first_go, first_left;
    atomic_int first_tid; /* the thread slot 0's fn runs on */
    struct slot {
        struct busy *b;
        int i;
        cctx_after_t reg;
    } slots[RUNNERS_MAX];
    cctx_t *ctx;
    int n;
};

static void hold_runner(void *arg)
{
    struct slot *s = arg;
    struct busy *b = s->b;
    if (pthread_equal(pthread_self(), b->registrar)) {
        atomic_store(&b->too_late, 1);
        return;
    }
    if (s->i == 0)
        atomic_store(&b->first_tid, thread_id());
    latch_add(&b->in);
    if (s->i == 0) {
        latch_wait_open(&b->first_go);
        latch_add(&b->first_left);
    } else {
        latch_wait_open(&b->go);
    }
}

static struct busy *busy_new(int n)
{
    static const struct latch fresh = LATCH_INIT;
    struct busy *b = calloc(1, sizeof *b);
    CHECK(b != NULL);
    b->in = b->go = b->first_go = b->first_left = fresh;
    b->registrar = pthread_self();
    b->n = n;
    return b;
}

/* Lets every fn of b return and waits until each has. */
static void busy_end(struct busy *b, int registered)
{
    latch_open(&b->first_go);
    latch_open(&b->go);
    for (int i = 0; i < registered; i++)
        cctx_after_stop(&b->slots[i].reg);
    cctx_release(b->ctx);
    free(b);
}

/* Returns once n runners each run an after-function that blocks. A deadline
 * fires them all at once; should it come before the last registration, the
 * attempt is undone and made again with a longer timeout. */
static struct busy *keep_runners_busy(int n)
{
    for (int64_t timeout = CCTX_MSEC(100);; timeout *= 4) {
        CHECK(timeout < CCTX_SEC(60));
        struct busy *b = busy_new(n);
        b->ctx = cctx_with_timeout(cctx_background(), timeout, NULL);
        CHECK(b->ctx != NULL);
        int i;
        for (i = 0; i < n && !atomic_load(&b->too_late); i++) {
            b->slots[i] = (struct slot){.b = b, .i = i};
            CHECK_EQ(cctx_after_func(b->ctx, &b->slots[i].reg, hold_runner, &b->slots[i]), 0);
        }
        if (!atomic_load(&b->too_late)) {
            latch_wait_n(&b->in, n);
            return b;
        }
        busy_end(b, i);
    }
}

/* Lets slot 0's fn return, and returns once its runner has found no job and
 * sleeps on the run queue's lock, which the caller then holds: the runner
 * has looked for work, and once the lock is let go it finds the queue empty
 * and goes to the idle list without another look at the jobs. */
static void bring_runner_to_idle_edge(struct busy *b)
{
    cctx__word_lock(&cctx__runner_queue.lock);
    latch_open(&b->first_go);
    latch_wait_n(&b->first_left, 1);
    wait_until_blocked(atomic_load(&b->first_tid));
}

/* ---- jobs -------------------------------------------------------------------------- */

struct test_job {
    struct cctx__job job;
    struct latch *ran;
};

static void run_test_job(struct cctx__job *job)
{
    struct test_job *j = container_of(job, struct test_job, job);
    latch_add(j->ran);
}

/* Jobs that keep the spare runners busy until `go` opens. */
struct spares {
    struct latch in, go;
    struct held_job {
        struct cctx__job job;
        struct spares *s;
    } jobs[RUNNERS_SPARE];
};

static void hold_spare(struct cctx__job *job)
{
    struct spares *s = container_of(job, struct held_job, job)->s;
    latch_add(&s->in);
    latch_wait_open(&s->go);
}

/* With RUNNERS_MAX runners in after-functions, the pool's last threads. */
static void keep_spares_busy(struct spares *s)
{
    static const struct latch fresh = LATCH_INIT;
    s->in = s->go = fresh;
    for (int i = 0; i < RUNNERS_SPARE; i++) {
        s->jobs[i] = (struct held_job){.job.run = hold_spare, .s = s};
        CHECK(cctx__runner_submit(&s->jobs[i].job));
    }
    latch_wait_n(&s->in, RUNNERS_SPARE);
}

/* ---- work no runner was found for ------------------------------------------------- */

static void work_at_the_runner_limit(void)
{
    struct busy *b = keep_runners_busy(RUNNERS_MAX);
    struct spares spares;
    keep_spares_busy(&spares);
    bring_runner_to_idle_edge(b);
    /* The pool is full and its one runner not in an fn or a job has not yet
     * reached the idle list: the job finds no idler and may start no
     * runner. */
    cctx__runner_thread_start = refuse_start;
    struct latch ran = LATCH_INIT;
    struct test_job j = {.job.run = run_test_job, .ran = &ran};
    CHECK(cctx__runner_submit(&j.job));
    CHECK_EQ(atomic_load(&starts_refused), 0); /* none was even tried */
    cctx__word_unlock(&cctx__runner_queue.lock);
    /* Before, the runner slept on the idle list and left after 2 s; the job
     * waited for one of the blocked after-functions to return. */
    latch_wait_n(&ran, 1);
    cctx__runner_thread_start = cctx__os_thread_start;
    latch_open(&spares.go);
    busy_end(b, RUNNERS_MAX);
}

TEST(runner_work_at_the_limit_goes_to_the_runner_about_to_go_idle)
{
    run_with_watchdog(work_at_the_runner_limit, 60);
}

static void work_no_runner_could_start_for(void)
{
    struct busy *b = keep_runners_busy(1);
    bring_runner_to_idle_edge(b);
    cctx__runner_thread_start = refuse_start;
    struct latch ran = LATCH_INIT;
    struct test_job j = {.job.run = run_test_job, .ran = &ran};
    CHECK(cctx__runner_submit(&j.job));
    CHECK_EQ(atomic_load(&starts_refused), 1);
    cctx__word_unlock(&cctx__runner_queue.lock);
    latch_wait_n(&ran, 1); /* before: never, once the runner had left */
    cctx__runner_thread_start = cctx__os_thread_start;
    busy_end(b, 1);
}

TEST(runner_work_no_runner_could_start_for_goes_to_the_runner_about_to_go_idle)
{
    run_with_watchdog(work_no_runner_could_start_for, 30);
}

/* ---- every place taken by a blocked after-function ------------------------------------ */

/* cctx_wait_any wakes its caller through a library waker, queued ahead of
 * the user's after-functions when the deadline fires. */
static void wait_any_with_every_place_taken(void)
{
    struct busy *b = keep_runners_busy(RUNNERS_MAX);
    cctx_t *d = cctx_with_timeout(cctx_background(), CCTX_MSEC(50), NULL);
    /* Before, the waker waited for a place, behind blocked fns: for ever. */
    CHECK_EQ(cctx_wait_any(&d, 1, -1), 0);
    CHECK_EQ(cctx_err(d), ETIMEDOUT);
    cctx_release(d);
    busy_end(b, RUNNERS_MAX);
}

TEST(runner_wait_any_wakes_while_every_place_runs_a_blocked_after_function)
{
    run_with_watchdog(wait_any_with_every_place_taken, 30);
}

/* A deadline whose context's lock is held as it fires: the timer thread
 * hands the firing to a runner as a job. Every pop is counted: the only
 * deadlines armed once the runners are kept busy are the test's own. */
static struct latch popped = LATCH_INIT;
static atomic_int timer_tid;

static void note_popped(struct cctx__timer *t)
{
    (void)t;
    atomic_store(&timer_tid, thread_id());
    latch_add(&popped);
}

static void handoff_with_every_place_taken(void)
{
    struct busy *b = keep_runners_busy(RUNNERS_MAX);
    cctx_t *d;
    int pops;
    atomic_store(&cctx__timer_popped, note_popped);
    for (;;) {
        /* A deadline that fired before the lock below was counted before
         * it was marked: the count here is past it. */
        pops = latch_count(&popped);
        d = armed_timeout(cctx_background(), CCTX_MSEC(50));
        cctx__lock(d); /* as a thread deriving from d holds it */
        /* Active: its firing is yet to come, and will find the lock held.
         * Else a thread this late saw it fire first. */
        if (cctx_err(d) == 0)
            break;
        cctx__unlock(d);
        cctx_release(d);
    }
    latch_wait_n(&popped, pops + 1);
    /* The timer thread found the lock held, handed the firing over, and
     * sleeps again. */
    wait_until_blocked(atomic_load(&timer_tid));
    cctx__unlock(d);
    atomic_store(&cctx__timer_popped, NULL);
    /* Before, the job waited for a place, behind blocked fns: for ever. */
    CHECK_EQ(cctx_wait(d, -1), ETIMEDOUT);
    cctx_release(d);
    busy_end(b, RUNNERS_MAX);
}

TEST(runner_firing_handed_over_ends_while_every_place_runs_a_blocked_after_function)
{
    run_with_watchdog(handoff_with_every_place_taken, 30);
}

/* A grace period's clock and a process's signals ride on the library's own
 * after-functions, which the spare runners run too. */
static void grace_with_every_place_taken(void)
{
    struct busy *b = keep_runners_busy(RUNNERS_MAX);
    cctx_t *d = cctx_with_timeout(cctx_background(), CCTX_MSEC(50), NULL);
    cctx_t *g = cctx_with_grace(d, CCTX_MSEC(50), NULL);
    CHECK(d && g);
    /* Before, its clock waited for a place, behind blocked fns: for ever. */
    CHECK_EQ(cctx_wait(g, -1), ETIMEDOUT);
    cctx_release(g);
    cctx_release(d);
    busy_end(b, RUNNERS_MAX);
}

TEST(runner_grace_period_ends_while_every_place_runs_a_blocked_after_function)
{
    run_with_watchdog(grace_with_every_place_taken, 30);
}

/* A grace period already over when its parent ends (grace 0) ends its
 * context by the timer thread's firing when a spare runner starts it, so
 * that the user's after-functions of that context wait for a place: on
 * the spare they held it (four of them held them all, and the library's
 * own after-functions waited for ever). */
static struct latch grace_fns_go = LATCH_INIT, grace_fns_done = LATCH_INIT;
static atomic_int grace_fns_ran;

static void blocking_grace_fn(void *arg)
{
    (void)arg;
    atomic_fetch_add(&grace_fns_ran, 1);
    latch_wait_open(&grace_fns_go);
    latch_add(&grace_fns_done);
}

static void zero_graces_with_every_place_taken(void)
{
    struct busy *b = keep_runners_busy(RUNNERS_MAX);
    enum { N = RUNNERS_SPARE + 1 };
    cctx_t *d[N], *g[N];
    cctx_after_t reg[N];
    for (int i = 0; i < N; i++) {
        d[i] = cctx_with_timeout(cctx_background(), CCTX_MSEC(10), NULL);
        g[i] = cctx_with_grace(d[i], 0, NULL);
        CHECK(d[i] && g[i]);
        CHECK_EQ(cctx_after_func(g[i], &reg[i], blocking_grace_fn, NULL), 0);
    }
    for (int i = 0; i < N; i++)
        CHECK_EQ(cctx_wait(g[i], -1), ETIMEDOUT);
    /* The spares are free: a grace period still ends. */
    cctx_t *pd = cctx_with_timeout(cctx_background(), CCTX_MSEC(10), NULL);
    cctx_t *pg = cctx_with_grace(pd, CCTX_MSEC(20), NULL);
    CHECK_EQ(cctx_wait(pg, -1), ETIMEDOUT);
    CHECK_EQ(atomic_load(&grace_fns_ran), 0); /* they wait for a place */
    latch_open(&grace_fns_go);
    busy_end(b, RUNNERS_MAX);
    latch_wait_n(&grace_fns_done, N); /* each ran, once a place was free */
    for (int i = 0; i < N; i++) {
        cctx_release(g[i]);
        cctx_release(d[i]);
    }
    cctx_release(pg);
    cctx_release(pd);
}

TEST(runner_zero_grace_runs_no_user_after_function_on_a_spare)
{
    run_with_watchdog(zero_graces_with_every_place_taken, 30);
}

/* The user's after-functions of a cancellation made on a runner without a
 * place (a job, a library after-function) wait for a place, as a
 * deadline's do: on the spare they held it. Each of these makes
 * RUNNERS_SPARE + 1 such cancellations, whose after-functions block, and
 * then needs a spare for a grace period's clock. */
static struct latch spare_fns_go = LATCH_INIT, spare_fns_done = LATCH_INIT;
static atomic_int spare_fns_ran;

static void blocking_user_fn(void *arg)
{
    (void)arg;
    atomic_fetch_add(&spare_fns_ran, 1);
    latch_wait_open(&spare_fns_go);
    latch_add(&spare_fns_done);
}

enum { ON_SPARES = RUNNERS_SPARE + 1 };

/* A grace period still ends, so a spare was free; the user's fns have not
 * run, as no place was; then, once places are free, each runs. */
static void spares_stayed_free(struct busy *b)
{
    cctx_t *pd = cctx_with_timeout(cctx_background(), CCTX_MSEC(10), NULL);
    cctx_t *pg = cctx_with_grace(pd, CCTX_MSEC(20), NULL);
    CHECK(pd && pg);
    CHECK_EQ(cctx_wait(pg, -1), ETIMEDOUT);
    CHECK_EQ(atomic_load(&spare_fns_ran), 0);
    latch_open(&spare_fns_go);
    busy_end(b, RUNNERS_MAX);
    latch_wait_n(&spare_fns_done, ON_SPARES);
    cctx_release(pg);
    cctx_release(pd);
}

/* Fresh for each test: the runner may run them all in one process. */
static void spare_fns_reset(void)
{
    static const struct latch fresh = LATCH_INIT;
    spare_fns_go = spare_fns_done = fresh;
    atomic_store(&spare_fns_ran, 0);
}

static void signal_delivery_with_every_place_taken(void)
{
    spare_fns_reset();
    struct busy *b = keep_runners_busy(RUNNERS_MAX);
    static const int usr2[] = {SIGUSR2};
    cctx_t *ctx[ON_SPARES];
    cctx_after_t reg[ON_SPARES];
    for (int i = 0; i < ON_SPARES; i++) {
        ctx[i] = cctx_with_signals(cctx_background(), usr2, 1, NULL);
        CHECK(ctx[i] != NULL);
        CHECK_EQ(cctx_after_func(ctx[i], &reg[i], blocking_user_fn, NULL), 0);
    }
    CHECK_EQ(kill(getpid(), SIGUSR2), 0);
    /* Before, the delivery ran the first fn itself, on a spare, and the
     * other contexts waited for it to return: for ever. */
    for (int i = 0; i < ON_SPARES; i++)
        CHECK_EQ(cctx_wait(ctx[i], -1), ECANCELED);
    spares_stayed_free(b);
    for (int i = 0; i < ON_SPARES; i++)
        cctx_release(ctx[i]);
}

TEST(runner_signal_delivery_runs_no_user_after_function_on_a_spare)
{
    run_with_watchdog(signal_delivery_with_every_place_taken, 30);
}

static void last_release_jobs_with_every_place_taken(void)
{
    spare_fns_reset();
    struct busy *b = keep_runners_busy(RUNNERS_MAX);
    cctx_after_t reg[ON_SPARES];
    for (int i = 0; i < ON_SPARES; i++) {
        cctx_t *c = cctx_with_cancel(cctx_background(), NULL);
        CHECK(c != NULL);
        CHECK_EQ(cctx_after_func(c, &reg[i], blocking_user_fn, NULL), 0);
        /* The library's look keeps the last reference; its release ends c
         * (an after-function is registered), so a runner's job makes it. */
        cctx_ref(c);
        cctx_release(c);
        cctx__runner_release(c, __FILE__, __LINE__, __func__);
    }
    /* Before, each job ran its fn on a spare: the grace period's clock
     * found none free, for ever. */
    spares_stayed_free(b);
}

TEST(runner_last_release_in_a_job_runs_no_user_after_function_on_a_spare)
{
    run_with_watchdog(last_release_jobs_with_every_place_taken, 30);
}

static void process_end_with_every_place_taken(void)
{
    struct busy *b = keep_runners_busy(RUNNERS_MAX);
    /* 2 s: the child catches SIGTERM long before (it says 'R' once it
     * does), so that the SIGKILL kill_after later is what ends it. */
    cctx_t *d = cctx_with_timeout(cctx_background(), CCTX_SEC(2), NULL);
    int to, from;
    cctx_proc_t *p = spawn_term_catcher(d, CCTX_MSEC(50), &to, &from);
    /* Before, neither signal went until a place was free: for ever. */
    int st;
    CHECK_EQ(cctx_proc_wait(p, &st), 0);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    CHECK_EQ(read_byte(from, 10000), 'T');
    cctx_proc_free(p);
    close(to);
    close(from);
    cctx_release(d);
    busy_end(b, RUNNERS_MAX);
}

TEST(runner_process_signals_go_while_every_place_runs_a_blocked_after_function)
{
    run_with_watchdog(process_end_with_every_place_taken, 30);
}

/* ---- no runner at all -------------------------------------------------------------- */

/* Two submits with no runner alive, each failing to start one: the first
 * fails while the second's start is still under way, and returns before the
 * second's fails. */
static atomic_int starts_tried;
static struct latch second_start_tried = LATCH_INIT, submits_returned = LATCH_INIT;

static int refuse_start_in_turn(void *(*fn)(void *), void *arg)
{
    (void)fn, (void)arg;
    if (atomic_fetch_add(&starts_tried, 1) == 0) {
        latch_wait_n(&second_start_tried, 1);
    } else {
        latch_add(&second_start_tried);
        latch_wait_n(&submits_returned, 1); /* the first's: ours cannot */
    }
    return ENOMEM;
}

static struct latch ran_either = LATCH_INIT;

struct submitter {
    struct test_job j;
    bool taken; /* what cctx__runner_submit returned */
};

static void *submit_main(void *arg)
{
    struct submitter *s = arg;
    s->taken = cctx__runner_submit(&s->j.job);
    latch_add(&submits_returned);
    return NULL;
}

static void submits_with_no_runner(void)
{
    cctx__runner_thread_start = refuse_start_in_turn;
    struct submitter s[2];
    pthread_t t[2];
    for (int i = 0; i < 2; i++) {
        s[i] = (struct submitter){.j = {.job.run = run_test_job, .ran = &ran_either}};
        CHECK_EQ(pthread_create(&t[i], NULL, submit_main, &s[i]), 0);
    }
    for (int i = 0; i < 2; i++)
        CHECK_EQ(pthread_join(t[i], NULL), 0);
    CHECK_EQ(atomic_load(&starts_tried), 2);
    /* Before, the first counted on the second's runner, which never came,
     * and its job stayed queued with no runner to take it. */
    CHECK(!s[0].taken);
    CHECK(!s[1].taken);
    CHECK_EQ(latch_count(&ran_either), 0);
    /* Handed back, not left behind: with threads again, runners take both. */
    cctx__runner_thread_start = cctx__os_thread_start;
    for (int i = 0; i < 2; i++)
        CHECK(cctx__runner_submit(&s[i].j.job));
    latch_wait_n(&ran_either, 2);
}

TEST(runner_job_comes_back_to_its_submitter_when_no_runner_exists_or_starts)
{
    run_with_watchdog(submits_with_no_runner, 30);
}

struct on_thread {
    struct latch ran;
    pthread_t registrar, thread;
};

static void note_thread(void *arg)
{
    struct on_thread *o = arg;
    o->thread = pthread_self();
    latch_add(&o->ran);
}

static void deadline_with_no_runner(void)
{
    cctx__runner_thread_start = refuse_start;
    static const struct latch fresh = LATCH_INIT;
    for (int64_t timeout = CCTX_MSEC(20);; timeout *= 4) {
        CHECK(timeout < CCTX_SEC(60));
        struct on_thread o = {.ran = fresh, .registrar = pthread_self()};
        cctx_after_t reg;
        cctx_t *c = cctx_with_timeout(cctx_background(), timeout, NULL);
        CHECK(c != NULL);
        CHECK_EQ(cctx_after_func(c, &reg, note_thread, &o), 0);
        latch_wait_n(&o.ran, 1);
        cctx_release(c);
        if (pthread_equal(o.thread, o.registrar))
            continue; /* the deadline came before the registration */
        CHECK(atomic_load(&starts_refused) > 0);
        break;
    }
    cctx__runner_thread_start = cctx__os_thread_start;
}

TEST(runner_deadline_runs_its_after_functions_itself_when_no_runner_can_start)
{
    run_with_watchdog(deadline_with_no_runner, 30);
}

/* ---- fork() from an after-function on a runner ------------------------------------------ */

static atomic_int child_fn_ran;

/* Set while a test registers: a deadline that passed before its
 * after-function was registered runs it there, on the registering thread,
 * where it proves nothing about runners. */
static _Thread_local bool registering;

static void note_ran(void *arg)
{
    (void)arg;
    atomic_store(&child_fn_ran, registering ? 2 : 1);
}

/* In the child, on a thread of its own: once the runner it was forked on has
 * gone (idle for 2 s), a deadline's after-function still gets a runner. That
 * runner is the child's first thread: gone, it stays a zombie in the list of
 * threads until the process ends. */
static void *after_the_runner_left(void *arg)
{
    (void)arg;
    int64_t give_up = real_now() + CCTX_SEC(10);
    while (thread_state(getpid()) != 'Z' && real_now() < give_up)
        real_sleep_ms(10);
    if (thread_state(getpid()) != 'Z')
        _exit(20);
    for (int64_t timeout = CCTX_MSEC(1); timeout <= CCTX_SEC(1); timeout *= 2) {
        atomic_store(&child_fn_ran, 0);
        cctx_t *c = cctx_with_timeout(cctx_background(), timeout, NULL);
        cctx_after_t reg = {0};
        registering = true;
        if (!c || cctx_after_func(c, &reg, note_ran, NULL) != 0)
            _exit(21);
        registering = false;
        give_up = real_now() + CCTX_SEC(10);
        while (!atomic_load(&child_fn_ran) && real_now() < give_up)
            real_sleep_ms(1);
        if (atomic_load(&child_fn_ran) != 2) /* 2: ran at once; again, later */
            _exit(atomic_load(&child_fn_ran) ? 0 : 22);
    }
    _exit(24);
}

static void fork_on_a_runner(void *arg)
{
    if (registering) { /* not on a runner: try again, later */
        atomic_store((_Atomic pid_t *)arg, 0);
        return;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        /* A runner blocks every signal, and the child keeps its mask: the
         * watchdog's alarm must be let through, or a hang would be for ever. */
        sigset_t alrm;
        sigemptyset(&alrm);
        sigaddset(&alrm, SIGALRM);
        pthread_sigmask(SIG_UNBLOCK, &alrm, NULL);
        alarm(30);
        pthread_t t;
        if (pthread_create(&t, NULL, after_the_runner_left, NULL) != 0)
            _exit(23);
        return; /* the runner goes on in the child, and leaves when idle */
    }
    atomic_store((_Atomic pid_t *)arg, pid);
}

TEST(runner_pool_child_forked_on_a_runner_still_starts_runners_after_it_leaves)
{
    SKIP_FORK_UNDER_SANITIZERS();
#ifndef __GLIBC__
    /* musl 1.2.3's pthread_create waits for ever in a child of fork() made
     * on a thread other than the first, once that thread has exited (its
     * thread-list lock is never let go): no library can start a thread
     * there. */
    SKIP_IN_THIS_BUILD("not glibc (musl cannot start a thread in such a child)");
#endif
    _Atomic pid_t pid = 0;
    for (int64_t timeout = CCTX_MSEC(1); atomic_load(&pid) == 0; timeout *= 2) {
        CHECK(timeout <= CCTX_SEC(10));
        atomic_store(&pid, -1);
        cctx_t *c = cctx_with_timeout(cctx_background(), timeout, NULL);
        cctx_after_t reg = {0};
        registering = true;
        CHECK_EQ(cctx_after_func(c, &reg, fork_on_a_runner, (void *)&pid), 0);
        registering = false;
        CHECK_EQ(cctx_wait(c, CCTX_SEC(10)), ETIMEDOUT);
        while (atomic_load(&pid) == -1)
            real_sleep_ms(1);
        cctx_release(c);
    }
    CHECK(atomic_load(&pid) > 0);
    CHECK_EQ(child_exit_status(atomic_load(&pid)), 0);
}

/* ---- a place given back as another runner is turned away ----------------------------- */

/* One place is free; a runner takes it, finds the queue empty, and holds it
 * (found_nothing) while a deadline queues a user's after-function and the
 * runner summoned for that finds every place taken (turned_away). Before,
 * both went idle, and the after-function waited for one of the other 255
 * to return, with a place free. */
static atomic_int window_taken, window_armed;
static struct latch in_window = LATCH_INIT, turned = LATCH_INIT, late_fn_ran = LATCH_INIT;

static void hold_place_until_one_is_turned_away(void)
{
    if (atomic_exchange(&window_taken, 1))
        return;
    latch_add(&in_window);
    latch_wait_open(&turned);
}

static void note_turned_away(void)
{
    if (atomic_load(&window_armed))
        latch_open(&turned);
}

static void late_fn(void *arg)
{
    (void)arg;
    latch_add(&late_fn_ran);
}

static void place_given_back_as_one_is_turned_away(void)
{
    struct busy *b = keep_runners_busy(RUNNERS_MAX - 1);
    atomic_store(&cctx__runner_found_nothing, hold_place_until_one_is_turned_away);
    atomic_store(&cctx__runner_was_turned_away, note_turned_away);
    cctx__runner_notify(1); /* a runner for nothing: it takes the free place */
    latch_wait_n(&in_window, 1);
    atomic_store(&window_armed, 1);
    cctx_t *ctx = cctx_with_timeout(cctx_background(), CCTX_MSEC(1), NULL);
    cctx_after_t reg;
    CHECK_EQ(cctx_after_func(ctx, &reg, late_fn, NULL), 0);
    latch_wait_n(&late_fn_ran, 1); /* before: never, while the 255 block */
    atomic_store(&cctx__runner_found_nothing, NULL);
    atomic_store(&cctx__runner_was_turned_away, NULL);
    busy_end(b, RUNNERS_MAX - 1);
    cctx_release(ctx);
}

TEST(runner_place_given_back_as_another_is_turned_away_is_taken_again)
{
    run_with_watchdog(place_given_back_as_one_is_turned_away, 60);
}
